package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/client/remotecommand"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/pki"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/nodeagent/logs"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	agentserver "github.com/skiffhq/skiff/nodeagent/server"
)

// proxyTokens maps bearer token IDs to users: admins (system:masters),
// viewer and editor (roles), nodeon (the node n1).
type proxyTokens struct{}

func (proxyTokens) VerifyBearer(id, _ string, _ time.Time) (auth.User, error) {
	switch id {
	case "admins":
		return auth.User{Name: "alice", Groups: []string{auth.GroupMasters}}, nil
	case "viewer":
		return auth.User{Name: "victor", Role: auth.RoleView}, nil
	case "editor":
		return auth.User{Name: "eve", Role: auth.RoleEdit}, nil
	case "nodeon":
		return auth.User{Name: auth.NodeUserPrefix + "n1", Groups: []string{auth.GroupNodes}}, nil
	}
	return auth.User{}, auth.ErrUnauthorized
}

// proxyPKI issues the certificates of a cluster: this API server's, and
// nodes'.
type proxyPKI struct {
	ca *pki.CA
}

func (p proxyPKI) issue(t *testing.T, id pki.Identity) tls.Certificate {
	t.Helper()
	key, keyPEM, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := p.ca.Issue(&key.PublicKey, pki.SignRequest{Identity: id, Usage: pki.UsageServerAndClient,
		IPs: []net.IP{net.ParseIP("127.0.0.1")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.TLSCertificate(pki.Bundle{CertPEM: certPEM, KeyPEM: keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// agentFakes are the agent's view of its containers.
type agentFakes struct {
	mu      sync.Mutex
	refs    map[string]agentserver.ContainerRef // "ns/pod/ctr"
	imports int
}

func (a *agentFakes) set(key string, ref agentserver.ContainerRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refs[key] = ref
}

func (a *agentFakes) Lookup(ns, pod, ctr string, previous bool) (agentserver.ContainerRef, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if previous {
		return agentserver.ContainerRef{}, agentserver.ErrNoPrevious
	}
	r, ok := a.refs[ns+"/"+pod+"/"+ctr]
	if !ok {
		return agentserver.ContainerRef{}, agentserver.ErrContainerNotFound
	}
	return r, nil
}

func (a *agentFakes) Exec(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
	switch req.Cmd[0] {
	case "echo":
		fmt.Fprintln(req.Stdout, strings.Join(req.Cmd[1:], " "))
		fmt.Fprintln(req.Stderr, "on stderr")
		return 3, nil
	case "cat":
		_, err := io.Copy(req.Stdout, req.Stdin)
		return 0, err
	}
	return -1, fmt.Errorf("exec: %q: executable file not found in $PATH", req.Cmd[0])
}

func (a *agentFakes) ImportImages(ctx context.Context, r io.Reader) ([]runtime.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(b), "TAR") {
		return nil, errors.New("archive/tar: invalid tar header")
	}
	a.mu.Lock()
	a.imports++
	a.mu.Unlock()
	return []runtime.Image{{Ref: "localhost/skiff/echo:latest", ID: "sha256:abc"}}, nil
}

func (a *agentFakes) ListImages(ctx context.Context) ([]runtime.ImageInfo, error) {
	return []runtime.ImageInfo{{Image: runtime.Image{Ref: "localhost/skiff/echo:latest", ID: "sha256:abc"}, Size: 42}}, nil
}

type proxyFixture struct {
	api    *testServer
	agent  *agentFakes
	dir    string
	pki    proxyPKI
	server tls.Certificate
}

// newProxyFixture runs an API server (plain HTTP, token users) and the
// agent of node n1 (nodeagent/server over TLS), with pods:
// default/web (one container "web", bound to n1), default/multi
// (containers a and b, on n1), default/pending (not scheduled).
func newProxyFixture(t *testing.T, gate *auth.Gate) *proxyFixture {
	t.Helper()
	ca, err := pki.NewCA("skiff-test-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := &proxyFixture{agent: &agentFakes{refs: map[string]agentserver.ContainerRef{}}, dir: t.TempDir(), pki: proxyPKI{ca: ca}}
	f.server = f.pki.issue(t, pki.ServerIdentity("s1"))
	f.api = newTestServer(t, Config{
		Security: &Security{
			Authenticator: auth.NewAuthenticator(proxyTokens{}, nil),
			Authorizer:    auth.NewAuthorizer(nil),
			Gate:          gate,
		},
		NodeTLS: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{f.server}},
	})
	port := f.startAgent(t, f.pki.issue(t, pki.NodeIdentity("n1")))
	f.addNode(t, "n1", port)
	f.create(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"nodeName":"n1","containers":[{"name":"web","image":"echo"}]}}`)
	f.create(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"multi"},"spec":{"nodeName":"n1","containers":[{"name":"a","image":"echo"},{"name":"b","image":"echo"}]}}`)
	f.create(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pending"},"spec":{"containers":[{"name":"web","image":"echo"}]}}`)
	f.agent.set("default/web/web", agentserver.ContainerRef{ID: "c1", LogPath: f.log(t, "web.log", "hello", "world"), Running: true})
	f.agent.set("default/multi/b", agentserver.ContainerRef{ID: "c2", LogPath: f.log(t, "b.log", "from b"), Running: true})
	return f
}

// startAgent serves an agent with cert on 127.0.0.1 and returns its port.
func (f *proxyFixture) startAgent(t *testing.T, cert tls.Certificate) int32 {
	t.Helper()
	s, err := agentserver.New(agentserver.Config{NodeName: "n1", Containers: f.agent, Exec: f.agent, Images: f.agent,
		Certificate: cert, ClientCAs: f.pki.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func (f *proxyFixture) create(t *testing.T, manifest string) {
	t.Helper()
	o, err := api.DecodeObject([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	api.Default(o)
	if o.GetObjectMeta().Namespace == "" && o.GetTypeMeta().Kind == string(api.KindPod) {
		o.GetObjectMeta().Namespace = "default"
	}
	if _, err := f.api.store.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

func (f *proxyFixture) addNode(t *testing.T, name string, port int32) {
	t.Helper()
	f.create(t, fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q},
		"status":{"addresses":[{"type":"Hostname","address":"nowhere.invalid"},{"type":"InternalIP","address":"127.0.0.1"}],
		"daemonEndpoints":{"kubeletEndpoint":{"Port":%d}}}}`, name, port))
}

func (f *proxyFixture) log(t *testing.T, name string, lines ...string) string {
	t.Helper()
	path := f.dir + "/" + name
	w, err := logs.NewWriter(path, logs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		fmt.Fprintln(w.Stream(logs.Stdout), l)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// client returns a client authenticated by token id.
func (f *proxyFixture) client(t *testing.T, id string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Servers: []string{f.api.URL}, Token: id + ".0123456789abcdef"}, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// statusOf returns the api.Status of err, failing the test without one.
func statusOf(t *testing.T, err error) *api.Status {
	t.Helper()
	var st *api.Status
	if !errors.As(err, &st) {
		t.Fatalf("error %v is not an api.Status", err)
	}
	return st
}

func TestPodLogs(t *testing.T) {
	f := newProxyFixture(t, nil)
	admin := f.client(t, "admins")
	ctx := context.Background()
	one := int64(1)
	tests := []struct {
		name string
		pod  string
		opts client.LogOptions
		want string
		code int
		msg  string
	}{
		{name: "the only container", pod: "web", want: "hello\nworld\n"},
		{name: "tail", pod: "web", opts: client.LogOptions{TailLines: &one}, want: "world\n"},
		{name: "named container", pod: "multi", opts: client.LogOptions{Container: "b"}, want: "from b\n"},
		{name: "several containers", pod: "multi", code: 400,
			msg: "a container name must be specified for pod multi, choose one of: [a b]"},
		{name: "not a container of the pod", pod: "web", opts: client.LogOptions{Container: "db"}, code: 400,
			msg: "container db is not valid for pod web"},
		{name: "not scheduled", pod: "pending", code: 400, msg: `pod "pending" is not scheduled yet`},
		{name: "no such pod", pod: "ghost", code: 404, msg: `pods "ghost" not found`},
		{name: "previous from the agent", pod: "web", opts: client.LogOptions{Previous: true}, code: 404,
			msg: `previous terminated container "web" in pod "web" not found`},
		{name: "container unknown to the agent", pod: "multi", opts: client.LogOptions{Container: "a"}, code: 404,
			msg: `container "a" in pod "multi" not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := admin.Logs(ctx, "default", tc.pod, tc.opts, &out)
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if out.String() != tc.want {
					t.Errorf("log %q, want %q", out.String(), tc.want)
				}
				return
			}
			st := statusOf(t, err)
			if st.Code != tc.code || !strings.Contains(st.Message, tc.msg) {
				t.Errorf("status %d %q, want %d with %q", st.Code, st.Message, tc.code, tc.msg)
			}
		})
	}
}

// TestPodLogsWaiting: a container that never ran has no log yet; kubectl's
// message says why.
func TestPodLogsWaiting(t *testing.T) {
	f := newProxyFixture(t, nil)
	o, err := f.api.store.Get(podKey("web"))
	if err != nil {
		t.Fatal(err)
	}
	pod := api.DeepCopy(o.(*api.Pod))
	pod.Status.ContainerStatuses = []api.ContainerStatus{{Name: "web", State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
	if _, err := f.api.store.UpdateStatus(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	err = f.client(t, "admins").Logs(context.Background(), "default", "web", client.LogOptions{}, io.Discard)
	st := statusOf(t, err)
	if st.Code != 400 || st.Message != `container "web" in pod "web" is waiting to start: ImagePullBackOff` {
		t.Errorf("%d %q", st.Code, st.Message)
	}
}

func podKey(name string) store.Key {
	return store.Key{Kind: api.KindPod, Namespace: "default", Name: name}
}

// TestPodLogsFollow: lines reach the client as they are written, through
// the API server, and the stream ends when the container stops.
func TestPodLogsFollow(t *testing.T) {
	f := newProxyFixture(t, nil)
	path := f.dir + "/follow.log"
	w, err := logs.NewWriter(path, logs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f.agent.set("default/web/web", agentserver.ContainerRef{ID: "c1", LogPath: path, Running: true})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := f.client(t, "viewer").Logs(context.Background(), "default", "web", client.LogOptions{Follow: true}, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	for i := range 3 {
		fmt.Fprintf(w.Stream(logs.Stdout), "line %d\n", i)
		if !sc.Scan() || sc.Text() != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d: %q %v", i, sc.Text(), sc.Err())
		}
	}
	f.agent.set("default/web/web", agentserver.ContainerRef{ID: "c1", LogPath: path, Running: false})
	for sc.Scan() {
		t.Errorf("unexpected line %q", sc.Text())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Logs = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follow did not end")
	}
}

func TestPodExec(t *testing.T) {
	f := newProxyFixture(t, nil)
	admin := f.client(t, "admins")
	ctx := context.Background()

	conn, err := admin.OpenExec(ctx, "default", "web", client.ExecOptions{Command: []string{"echo", "hi", "there"}})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	st, err := remotecommand.Run(ctx, conn, remotecommand.Streams{Stdout: &out, Stderr: &errOut})
	if err != nil || st.Code != 3 || out.String() != "hi there\n" || errOut.String() != "on stderr\n" {
		t.Errorf("echo: %+v %v %q %q", st, err, out.String(), errOut.String())
	}

	conn, err = admin.OpenExec(ctx, "default", "web", client.ExecOptions{Command: []string{"cat"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	in := strings.Repeat("stdin through two proxies ", 5000)
	st, err = remotecommand.Run(ctx, conn, remotecommand.Streams{Stdin: strings.NewReader(in), Stdout: &out})
	if err != nil || st.Code != 0 || out.String() != in {
		t.Errorf("cat: %+v %v, %d bytes of %d", st, err, out.Len(), len(in))
	}

	conn, err = admin.OpenExec(ctx, "default", "web", client.ExecOptions{Command: []string{"nope"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err = remotecommand.Run(ctx, conn, remotecommand.Streams{})
	if err != nil || st.Code != remotecommand.ExitCannotRun || !strings.Contains(st.Message, "executable file not found") {
		t.Errorf("not found: %+v %v", st, err)
	}

	_, err = admin.OpenExec(ctx, "default", "multi", client.ExecOptions{Command: []string{"ls"}})
	if st := statusOf(t, err); st.Code != 400 || !strings.Contains(st.Message, "choose one of: [a b]") {
		t.Errorf("several containers: %d %q", st.Code, st.Message)
	}
	// Without an upgrade the API server refuses before reaching the node.
	r := do(t, http.MethodPost, f.api.URL+"/api/v1/namespaces/default/pods/web/exec?command=ls", "",
		"Authorization", "Bearer admins.0123456789abcdef")
	expectStatus(t, r, 400, api.ReasonBadRequest, "exec needs a connection upgrade")
}

func TestNodeImages(t *testing.T) {
	f := newProxyFixture(t, nil)
	admin := f.client(t, "admins")
	ctx := context.Background()
	imgs, err := admin.ImportImages(ctx, "n1", strings.NewReader("TAR archive"), -1)
	if err != nil || len(imgs) != 1 || imgs[0].Ref != "localhost/skiff/echo:latest" {
		t.Fatalf("import: %+v %v", imgs, err)
	}
	_, err = admin.ImportImages(ctx, "n1", strings.NewReader("garbage"), 7)
	if st := statusOf(t, err); st.Code != 400 || !strings.Contains(st.Message, "invalid tar header (nothing imported)") {
		t.Errorf("malformed: %d %q", st.Code, st.Message)
	}
	list, err := admin.ListImages(ctx, "n1")
	if err != nil || len(list) != 1 || list[0].Size != 42 {
		t.Errorf("list: %+v %v", list, err)
	}
	_, err = admin.ListImages(ctx, "n9")
	if st := statusOf(t, err); st.Code != 404 || !strings.Contains(st.Message, `nodes "n9" not found`) {
		t.Errorf("unknown node: %d %q", st.Code, st.Message)
	}
	r := do(t, http.MethodGet, f.api.URL+"/api/v1/nodes/n1/proxy/configz", "", "Authorization", "Bearer admins.0123456789abcdef")
	expectStatus(t, r, 404, api.ReasonNotFound, "nodes/proxy serves only images")
}

// TestStreamingAuthorization: the API server authorizes pods/log,
// pods/exec and nodes/proxy as Kubernetes' roles do, before any node is
// contacted.
func TestStreamingAuthorization(t *testing.T) {
	f := newProxyFixture(t, nil)
	ctx := context.Background()
	t.Run("view reads logs", func(t *testing.T) {
		if err := f.client(t, "viewer").Logs(ctx, "default", "web", client.LogOptions{}, io.Discard); err != nil {
			t.Error(err)
		}
	})
	t.Run("view may not exec", func(t *testing.T) {
		_, err := f.client(t, "viewer").OpenExec(ctx, "default", "web", client.ExecOptions{Command: []string{"echo"}})
		if st := statusOf(t, err); st.Code != 403 || !strings.Contains(st.Message, "pods/exec") {
			t.Errorf("%d %q", st.Code, st.Message)
		}
	})
	t.Run("view may not import images", func(t *testing.T) {
		_, err := f.client(t, "viewer").ImportImages(ctx, "n1", strings.NewReader("TAR"), 3)
		if st := statusOf(t, err); st.Code != 403 || !strings.Contains(st.Message, "nodes/proxy") {
			t.Errorf("%d %q", st.Code, st.Message)
		}
	})
	t.Run("a node may not exec", func(t *testing.T) {
		_, err := f.client(t, "nodeon").OpenExec(ctx, "default", "web", client.ExecOptions{Command: []string{"echo"}})
		if st := statusOf(t, err); st.Code != 403 {
			t.Errorf("%d %q", st.Code, st.Message)
		}
	})
	t.Run("anonymous", func(t *testing.T) {
		r := do(t, http.MethodGet, f.api.URL+"/api/v1/namespaces/default/pods/web/log", "")
		expectStatus(t, r, 401, api.ReasonUnauthorized, "authentication required")
	})
	f.agent.mu.Lock()
	defer f.agent.mu.Unlock()
	if f.agent.imports != 0 {
		t.Errorf("%d refused imports reached the node", f.agent.imports)
	}
}

// TestAgentIdentityChecked: an endpoint that presents another node's
// certificate (a node that took over an address, or an impostor) is not
// talked to.
func TestAgentIdentityChecked(t *testing.T) {
	f := newProxyFixture(t, nil)
	port := f.startAgent(t, f.pki.issue(t, pki.NodeIdentity("n2")))
	f.addNode(t, "n3", port)
	f.create(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"on-n3"},"spec":{"nodeName":"n3","containers":[{"name":"web","image":"echo"}]}}`)
	err := f.client(t, "admins").Logs(context.Background(), "default", "on-n3", client.LogOptions{}, io.Discard)
	st := statusOf(t, err)
	if st.Code != 502 || !strings.Contains(st.Message, `the agent presented the certificate of "system:node:n2", want "system:node:n3"`) {
		t.Errorf("%d %q", st.Code, st.Message)
	}
}

// TestUserCredentialsStayOnTheServer: the agent sees the API server's
// certificate, never the user's token.
func TestUserCredentialsStayOnTheServer(t *testing.T) {
	f := newProxyFixture(t, nil)
	headers := make(chan http.Header, 1)
	raw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Clone()
		fmt.Fprintln(w, "ok")
	}))
	raw.TLS = &tls.Config{Certificates: []tls.Certificate{f.pki.issue(t, pki.NodeIdentity("n4"))}}
	raw.StartTLS()
	t.Cleanup(raw.Close)
	f.addNode(t, "n4", int32(raw.Listener.Addr().(*net.TCPAddr).Port))
	f.create(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"on-n4"},"spec":{"nodeName":"n4","containers":[{"name":"web","image":"echo"}]}}`)
	var out strings.Builder
	if err := f.client(t, "viewer").Logs(context.Background(), "default", "on-n4", client.LogOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	h := <-headers
	if h.Get("Authorization") != "" {
		t.Errorf("the user's Authorization header reached the node: %q", h.Get("Authorization"))
	}
	if out.String() != "ok\n" {
		t.Errorf("body %q", out.String())
	}
}

// TestStreamingHoldsNoGateSlot: a followed log lasts as long as its
// client and must not hold one of the gate's slots.
func TestStreamingHoldsNoGateSlot(t *testing.T) {
	f := newProxyFixture(t, auth.NewGate(1, 1, auth.WithQueueWait(0)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := f.dir + "/idle.log"
	w, err := logs.NewWriter(path, logs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Fprintln(w.Stream(logs.Stdout), "first")
	f.agent.set("default/web/web", agentserver.ContainerRef{ID: "c1", LogPath: path, Running: true})
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer pr.Close()
	for range 2 {
		wg.Go(func() {
			f.client(t, "admins").Logs(ctx, "default", "web", client.LogOptions{Follow: true}, pw)
		})
	}
	sc := bufio.NewScanner(pr)
	for range 2 {
		if !sc.Scan() {
			t.Fatal("no line from the followers")
		}
	}
	// Both followers are streaming; a plain request still gets the slot.
	r := do(t, http.MethodGet, f.api.URL+"/api/v1/pods", "", "Authorization", "Bearer admins.0123456789abcdef")
	expect(t, r, 200)
	cancel()
}
