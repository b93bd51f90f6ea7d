package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/logs"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	agentserver "github.com/skiffhq/skiff/nodeagent/server"
	"github.com/skiffhq/skiff/test/testcluster"
)

// nodeFakes stand for a node's runtime behind the agent endpoint.
type nodeFakes struct {
	mu   sync.Mutex
	refs map[string]agentserver.ContainerRef
	imgs []runtime.ImageInfo
}

func (n *nodeFakes) Lookup(ns, pod, ctr string, previous bool) (agentserver.ContainerRef, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if previous {
		return agentserver.ContainerRef{}, agentserver.ErrNoPrevious
	}
	r, ok := n.refs[ns+"/"+pod+"/"+ctr]
	if !ok {
		return agentserver.ContainerRef{}, agentserver.ErrContainerNotFound
	}
	return r, nil
}

func (n *nodeFakes) Exec(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
	switch req.Cmd[0] {
	case "echo":
		fmt.Fprintln(req.Stdout, strings.Join(req.Cmd[1:], " "))
		return 0, nil
	case "fail":
		fmt.Fprintln(req.Stderr, "failing")
		return 3, nil
	case "cat":
		if req.Stdin == nil {
			return 0, nil
		}
		_, err := io.Copy(req.Stdout, req.Stdin)
		return 0, err
	}
	return -1, fmt.Errorf(`exec: %q: executable file not found in $PATH`, req.Cmd[0])
}

func (n *nodeFakes) ImportImages(ctx context.Context, r io.Reader) ([]runtime.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	ref, ok := strings.CutPrefix(string(bytes.TrimRight(b, "\x00")), "IMAGE ")
	if !ok {
		return nil, errors.New("archive/tar: invalid tar header")
	}
	img := runtime.Image{Ref: ref, ID: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	n.mu.Lock()
	n.imgs = append(n.imgs, runtime.ImageInfo{Image: img, Size: int64(len(b))})
	n.mu.Unlock()
	return []runtime.Image{img}, nil
}

func (n *nodeFakes) ListImages(context.Context) ([]runtime.ImageInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]runtime.ImageInfo(nil), n.imgs...), nil
}

type streamCluster struct {
	t      *testing.T
	config string
	node   *nodeFakes
	dir    string
}

// newStreamCluster starts a control plane (test/testcluster, real TLS),
// joins node n1 with an agent token, serves its agent endpoint over the
// fakes and registers the Node with it, and creates pod default/web (one
// container, bound to n1) whose log holds two lines.
func newStreamCluster(t *testing.T) *streamCluster {
	t.Helper()
	c := testcluster.Start(t, testcluster.Options{NodeGracePeriod: time.Hour})
	ctx := context.Background()
	sc := &streamCluster{t: t, node: &nodeFakes{refs: map[string]agentserver.ContainerRef{}}, dir: t.TempDir()}
	sc.config = filepath.Join(sc.dir, "admin.conf")
	if err := c.AdminConfig.Save(sc.config); err != nil {
		t.Fatal(err)
	}

	j, err := client.NewJoiner(ctx, []string{c.URL}, c.AgentToken(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ncfg, err := j.JoinNode(ctx, "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(ncfg.ClientCertificateData), []byte(ncfg.ClientKeyData))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ncfg.CertificateAuthorityData))
	srv, err := agentserver.New(agentserver.Config{NodeName: "n1", Containers: sc.node, Exec: sc.node, Images: sc.node,
		Certificate: cert, ClientCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent endpoint: %v", err)
		}
	})

	node := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: "n1"}}
	o, err := c.Admin.Create(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	// Controllers write the new Node too (pod CIDR): retry on conflicts.
	for attempt := 0; ; attempt++ {
		node = o.(*api.Node)
		now := api.NewTime(time.Now())
		node.Status.Addresses = []api.NodeAddress{{Type: api.NodeInternalIP, Address: "127.0.0.1"}}
		node.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now}}
		node.Status.DaemonEndpoints = &api.NodeDaemonEndpoints{KubeletEndpoint: api.DaemonEndpoint{Port: int32(ln.Addr().(*net.TCPAddr).Port)}}
		_, err := c.Admin.UpdateStatus(ctx, node)
		if err == nil {
			break
		}
		if !client.IsConflict(err) || attempt == 10 {
			t.Fatal(err)
		}
		if o, err = c.Admin.Get(ctx, api.KindNode, "", "n1"); err != nil {
			t.Fatal(err)
		}
	}
	pod, err := api.DecodeObject([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},
		"spec":{"nodeName":"n1","containers":[{"name":"web","image":"localhost/skiff/echo:latest"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(sc.dir, "web.log")
	w, err := logs.NewWriter(logPath, logs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w.Stream(logs.Stdout), "listening on :8080\nGET / 200\n")
	w.Close()
	sc.node.refs["default/web/web"] = agentserver.ContainerRef{ID: "c1", LogPath: logPath, Running: true}
	return sc
}

// run runs one skiff command with stdin and returns stdout, stderr and
// its error.
func (sc *streamCluster) run(stdin string, args ...string) (string, string, error) {
	sc.t.Helper()
	var out, errOut bytes.Buffer
	o := &options{in: strings.NewReader(stdin), out: &out, errOut: &errOut, now: time.Now,
		newClient: func(cfg client.Config) (*client.Client, error) {
			return client.New(cfg, client.WithTimeout(10*time.Second))
		}}
	root := newRoot(o)
	root.SetArgs(append([]string{"--config", sc.config}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestLogsExecImage drives skiff logs, exec and image through a real
// control plane to a node's agent endpoint.
func TestLogsExecImage(t *testing.T) {
	sc := newStreamCluster(t)

	t.Run("logs", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"logs", "web"}, "listening on :8080\nGET / 200\n"},
			{[]string{"logs", "pod/web", "--tail", "1"}, "GET / 200\n"},
			{[]string{"logs", "web", "-c", "web", "--since", "1h"}, "listening on :8080\nGET / 200\n"},
		} {
			out, errOut, err := sc.run("", tc.args...)
			if err != nil || out != tc.want {
				t.Errorf("skiff %s = %q, %v (stderr %q), want %q", strings.Join(tc.args, " "), out, err, errOut, tc.want)
			}
		}
		_, _, err := sc.run("", "logs", "web", "-c", "db")
		if err == nil || !strings.Contains(err.Error(), "container db is not valid for pod web") {
			t.Errorf("unknown container: %v", err)
		}
		_, _, err = sc.run("", "logs", "web", "--previous")
		if err == nil || !strings.Contains(err.Error(), `previous terminated container "web" in pod "web" not found`) {
			t.Errorf("previous: %v", err)
		}
		_, _, err = sc.run("", "logs", "deploy/web")
		if err == nil || !strings.Contains(err.Error(), `deployment "web" has no pods`) {
			t.Errorf("deploy/web without pods: %v", err)
		}
		_, _, err = sc.run("", "logs", "svc/web")
		if err == nil || !strings.Contains(err.Error(), "only pods have logs") {
			t.Errorf("svc/web: %v", err)
		}
	})

	t.Run("exec", func(t *testing.T) {
		out, _, err := sc.run("", "exec", "web", "--", "echo", "hello", "world")
		if err != nil || out != "hello world\n" {
			t.Errorf("echo: %q %v", out, err)
		}
		out, _, err = sc.run("piped input\n", "exec", "-i", "web", "--", "cat")
		if err != nil || out != "piped input\n" {
			t.Errorf("cat with -i: %q %v", out, err)
		}
		out, _, err = sc.run("ignored", "exec", "web", "--", "cat")
		if err != nil || out != "" {
			t.Errorf("cat without -i: %q %v", out, err)
		}
		_, errOut, err := sc.run("", "exec", "web", "--", "fail")
		var ec *ExitCodeError
		if !errors.As(err, &ec) || ec.ExitCode() != 3 || !errors.Is(err, ErrReported) {
			t.Errorf("exit code: %v", err)
		}
		if errOut != "failing\ncommand terminated with exit code 3\n" {
			t.Errorf("stderr %q", errOut)
		}
		_, errOut, err = sc.run("", "exec", "web", "--", "nope")
		if !errors.As(err, &ec) || ec.ExitCode() != 126 || !strings.Contains(errOut, `error: exec: "nope": executable file not found`) {
			t.Errorf("not found: %v, stderr %q", err, errOut)
		}
		out, errOut, err = sc.run("", "exec", "-t", "web", "--", "echo", "no tty")
		if err != nil || out != "no tty\n" || !strings.Contains(errOut, "Unable to use a TTY") {
			t.Errorf("-t without a terminal: %q %q %v", out, errOut, err)
		}
		if _, _, err := sc.run("", "exec", "web"); err == nil || !strings.Contains(err.Error(), "a command is required") {
			t.Errorf("no command: %v", err)
		}
	})

	t.Run("image", func(t *testing.T) {
		archive := filepath.Join(sc.dir, "echo.tar")
		// Large enough for the progress display.
		body := append([]byte("IMAGE localhost/skiff/echo:latest"), make([]byte, progressMinSize)...)
		if err := os.WriteFile(archive, body, 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := sc.run("", "image", "import", archive)
		if err != nil || out != "node n1: imported localhost/skiff/echo:latest (0123456789abc)\n" {
			t.Errorf("import: %q %v (stderr %q)", out, err, errOut)
		}
		if !strings.Contains(errOut, "100% (8.0MiB of 8.0MiB)") {
			t.Errorf("no progress shown: %q", errOut)
		}
		bad := filepath.Join(sc.dir, "bad.tar")
		os.WriteFile(bad, []byte("not a tarball"), 0o600)
		_, errOut, err = sc.run("", "image", "import", bad, "--node", "n1")
		if !errors.Is(err, ErrReported) || !strings.Contains(errOut, "invalid tar header (nothing imported)") {
			t.Errorf("malformed: %v, stderr %q", err, errOut)
		}
		out, _, err = sc.run("", "image", "ls")
		if err != nil || !strings.Contains(out, "NODE   IMAGE") || !strings.Contains(out, "n1     localhost/skiff/echo:latest   0123456789abc   8.0MiB") {
			t.Errorf("ls: %q %v", out, err)
		}
	})
}
