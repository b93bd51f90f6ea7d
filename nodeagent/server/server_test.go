package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client/remotecommand"
	"github.com/skiffhq/skiff/nodeagent/logs"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

type fixture struct {
	pki    *testPKI
	url    string
	hc     *http.Client // presents the API server's certificate
	ctrs   *fakeContainers
	exec   *fakeExec
	images *fakeImages
	dir    string
}

func newFixture(t *testing.T, mutate ...func(*Config)) *fixture {
	t.Helper()
	p := newTestPKI(t)
	f := &fixture{pki: p, ctrs: &fakeContainers{}, exec: &fakeExec{running: map[runtime.ContainerID]bool{}},
		images: &fakeImages{}, dir: t.TempDir()}
	cfg := Config{NodeName: "n1", Containers: f.ctrs, Exec: f.exec, Images: f.images,
		Certificate: p.node, ClientCAs: p.ca.Pool()}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.url = startServer(t, s)
	f.hc = p.client(&p.server)
	return f
}

// writeLog writes lines to a new log file and returns its path.
func (f *fixture) writeLog(t *testing.T, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	w, err := logs.NewWriter(path, logs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		s := logs.Stdout
		if rest, ok := strings.CutPrefix(l, "ERR "); ok {
			s, l = logs.Stderr, rest
		}
		fmt.Fprintln(w.Stream(s), l)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := f.hc.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// statusMessage decodes an api.Status body.
func statusMessage(t *testing.T, body string) string {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Kind != "Status" {
		t.Fatalf("not a Status: %q (%v)", body, err)
	}
	return st.Message
}

func TestOnlyAPIServersMayCall(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		hc   *http.Client
		code int // 0: the TLS handshake fails
		msg  string
	}{
		{"API server", f.hc, http.StatusOK, ""},
		{"admin", f.pki.client(&f.pki.admin), http.StatusForbidden, `user "admin" is forbidden`},
		{"another node", f.pki.client(&f.pki.other), http.StatusForbidden, `user "system:node:n2" is forbidden`},
		{"no certificate", f.pki.client(nil), 0, ""},
	}
	foreign := newTestPKI(t)
	tests = append(tests, struct {
		name string
		hc   *http.Client
		code int
		msg  string
	}{"server of another CA", func() *http.Client {
		hc := foreign.client(&foreign.server)
		hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = f.pki.ca.Pool()
		return hc
	}(), 0, ""})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.hc.Get(f.url + "/images")
			if tc.code == 0 {
				if err == nil {
					// TLS 1.3 reports a refused client certificate on the
					// first read.
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatalf("request succeeded with %d, want a refused handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("code %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			if tc.msg != "" && !strings.Contains(statusMessage(t, string(b)), tc.msg) {
				t.Errorf("message %q does not contain %q", b, tc.msg)
			}
		})
	}
}

// TestNodeCertificateServesTLS: the agent serves with the certificate the
// join handshake gives it (usage server-and-client, see
// controlplane/security.go), which must allow server authentication; the
// API server's certificate must allow client authentication.
func TestNodeCertificateServesTLS(t *testing.T) {
	p := newTestPKI(t)
	for name, c := range map[string]tls.Certificate{"node": p.node, "server": p.server} {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
			t.Errorf("%s certificate usages %v: want ServerAuth and ClientAuth", name, leaf.ExtKeyUsage)
		}
	}
}

func TestContainerLogs(t *testing.T) {
	f := newFixture(t)
	cur := f.writeLog(t, "web-1.log", "one", "ERR two", "three")
	prev := f.writeLog(t, "web-0.log", "crashed")
	f.ctrs.set("default/web-abc/web", ContainerRef{ID: "c1", LogPath: cur, Running: true})
	f.ctrs.set("default/web-abc/web/previous", ContainerRef{ID: "c0", LogPath: prev})
	f.ctrs.set("default/solo/app", ContainerRef{ID: "c2", LogPath: f.writeLog(t, "app-0.log", "x")})
	f.ctrs.errs = map[string]error{"default/waiting/app": ErrContainerNotStarted}

	tests := []struct {
		name, path string
		code       int
		want       string // body, or a substring of the Status message
	}{
		{"all", "/containerLogs/default/web-abc/web", 200, "one\ntwo\nthree\n"},
		{"tail", "/containerLogs/default/web-abc/web?tailLines=1", 200, "three\n"},
		{"tail 0", "/containerLogs/default/web-abc/web?tailLines=0", 200, ""},
		{"previous", "/containerLogs/default/web-abc/web?previous=true", 200, "crashed\n"},
		{"no previous", "/containerLogs/default/solo/app?previous=true", 404, `previous terminated container "app" in pod "solo" not found`},
		{"unknown container", "/containerLogs/default/web-abc/nope", 404, `container "nope" in pod "web-abc" not found`},
		{"unknown pod", "/containerLogs/default/ghost/web", 404, `pod "ghost" not found in namespace "default" on node "n1"`},
		{"waiting", "/containerLogs/default/waiting/app", 400, `container "app" in pod "waiting" is waiting to start`},
		{"bad tail", "/containerLogs/default/web-abc/web?tailLines=-2", 400, "tailLines"},
		{"bad follow", "/containerLogs/default/web-abc/web?follow=maybe", 400, "follow"},
		{"short path", "/containerLogs/default/web-abc", 404, "no endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.get(t, tc.path)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %s", code, tc.code, body)
			}
			if code == 200 {
				if body != tc.want {
					t.Errorf("body %q, want %q", body, tc.want)
				}
				return
			}
			if msg := statusMessage(t, body); !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not contain %q", msg, tc.want)
			}
		})
	}

	t.Run("timestamps", func(t *testing.T) {
		code, body := f.get(t, "/containerLogs/default/web-abc/web?timestamps=true&tailLines=1")
		if code != 200 {
			t.Fatal(code, body)
		}
		ts, text, _ := strings.Cut(strings.TrimSuffix(body, "\n"), " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || text != "three" {
			t.Errorf("body %q: want an RFC 3339 timestamp and \"three\" (%v)", body, err)
		}
	})
	t.Run("sinceSeconds", func(t *testing.T) {
		code, body := f.get(t, "/containerLogs/default/web-abc/web?sinceSeconds=3600")
		if code != 200 || body != "one\ntwo\nthree\n" {
			t.Errorf("within the hour: %d %q", code, body)
		}
	})
}

// TestContainerLogsFollow streams lines as they are written and ends once
// the container stops running.
func TestContainerLogsFollow(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(f.dir, "web-0.log")
	w, err := logs.NewWriter(path, logs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Fprintln(w.Stream(logs.Stdout), "before")
	f.ctrs.set("default/web-abc/web", ContainerRef{ID: "c1", LogPath: path, Running: true})

	resp, err := f.hc.Get(f.url + "/containerLogs/default/web-abc/web?follow=true&tailLines=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("code %d", resp.StatusCode)
	}
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10s")
			return ""
		}
	}
	if l := next(); l != "before" {
		t.Fatalf("first line %q", l)
	}
	for i := range 3 {
		fmt.Fprintf(w.Stream(logs.Stdout), "live %d\n", i)
		if l := next(); l != fmt.Sprintf("live %d", i) {
			t.Fatalf("line %q, want live %d", l, i)
		}
	}
	// The container exits: the stream ends by itself.
	fmt.Fprintln(w.Stream(logs.Stderr), "last words")
	f.ctrs.set("default/web-abc/web", ContainerRef{ID: "c1", LogPath: path, Running: false})
	if l := next(); l != "last words" {
		t.Fatalf("line %q, want the last words", l)
	}
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follow did not end after the container stopped")
	}
}

// execute opens an exec session and runs it with streams.
func (f *fixture) execute(t *testing.T, path string, s remotecommand.Streams) (remotecommand.ExitStatus, error) {
	t.Helper()
	conn, code, body := f.upgrade(t, path)
	if conn == nil {
		t.Fatalf("upgrade refused: %d %s", code, body)
	}
	return remotecommand.Run(context.Background(), conn, s)
}

func (f *fixture) upgrade(t *testing.T, path string) (io.ReadWriteCloser, int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", remotecommand.Protocol)
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, resp.StatusCode, string(b)
	}
	return resp.Body.(io.ReadWriteCloser), resp.StatusCode, ""
}

func execPath(ctr string, q url.Values) string {
	return "/exec/default/web-abc/" + ctr + "?" + q.Encode()
}

func TestExec(t *testing.T) {
	f := newFixture(t)
	f.ctrs.set("default/web-abc/web", ContainerRef{ID: "c1", Running: true})
	f.ctrs.set("default/web-abc/dead", ContainerRef{ID: "c9", Running: false})
	f.exec.running["c1"] = true

	t.Run("output and exit code", func(t *testing.T) {
		var out, errOut strings.Builder
		st, err := f.execute(t, execPath("web", url.Values{"command": {"fail-stderr"}}),
			remotecommand.Streams{Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatal(err)
		}
		if st.Code != 2 || out.String() != "to stdout\n" || errOut.String() != "to stderr\n" {
			t.Errorf("exit %+v, stdout %q, stderr %q", st, out.String(), errOut.String())
		}
	})
	t.Run("arguments", func(t *testing.T) {
		var out strings.Builder
		st, err := f.execute(t, execPath("web", url.Values{"command": {"echo", "a b", "c"}}), remotecommand.Streams{Stdout: &out})
		if err != nil || st.Code != 0 || out.String() != "a b c\n" {
			t.Errorf("%+v %v %q", st, err, out.String())
		}
	})
	t.Run("stdin", func(t *testing.T) {
		var out strings.Builder
		in := strings.Repeat("0123456789", 10000)
		st, err := f.execute(t, execPath("web", url.Values{"command": {"cat"}, "stdin": {"true"}}),
			remotecommand.Streams{Stdin: strings.NewReader(in), Stdout: &out})
		if err != nil || st.Code != 0 || out.String() != in {
			t.Errorf("%+v %v: %d bytes back of %d", st, err, out.Len(), len(in))
		}
	})
	t.Run("tty resize", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		resize := make(chan remotecommand.TermSize, 3)
		resize <- remotecommand.TermSize{Width: 80, Height: 24}
		var out syncBuilder
		res := make(chan error, 1)
		var st remotecommand.ExitStatus
		go func() {
			var err error
			st, err = f.execute(t, execPath("web", url.Values{"command": {"tty-size"}, "stdin": {"1"}, "tty": {"1"}}),
				remotecommand.Streams{Stdin: pr, Stdout: &out, Resize: resize})
			res <- err
		}()
		waitFor(t, "the first size", func() bool { return out.String() == "80x24\n" })
		resize <- remotecommand.TermSize{Width: 120, Height: 40}
		waitFor(t, "the second size", func() bool { return out.String() == "80x24\n120x40\n" })
		resize <- remotecommand.TermSize{Width: 1, Height: 1}
		if err := <-res; err != nil || st.Code != 0 {
			t.Errorf("Run = %+v, %v", st, err)
		}
	})
	t.Run("command not found", func(t *testing.T) {
		st, err := f.execute(t, execPath("web", url.Values{"command": {"nope"}}), remotecommand.Streams{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Code != remotecommand.ExitCannotRun || !strings.Contains(st.Message, `"nope": executable file not found`) {
			t.Errorf("exit %+v", st)
		}
	})
	t.Run("client leaves", func(t *testing.T) {
		f.exec.mu.Lock()
		f.exec.killed = make(chan struct{})
		killed := f.exec.killed
		f.exec.mu.Unlock()
		conn, _, body := f.upgrade(t, execPath("web", url.Values{"command": {"sleep"}}))
		if conn == nil {
			t.Fatal(body)
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() {
			_, err := remotecommand.Run(ctx, conn, remotecommand.Streams{})
			res <- err
		}()
		time.Sleep(50 * time.Millisecond)
		cancel()
		<-res
		select {
		case <-killed:
		case <-time.After(10 * time.Second):
			t.Fatal("the command was not cancelled when the client left")
		}
	})

	refusals := []struct {
		name, path string
		upgrade    bool
		code       int
		msg        string
	}{
		{"no command", execPath("web", nil), true, 400, "you must specify at least one command"},
		{"no upgrade", execPath("web", url.Values{"command": {"ls"}}), false, 400, "exec needs a connection upgrade"},
		{"not running", execPath("dead", url.Values{"command": {"ls"}}), true, 400, `cannot exec in a container that is not running: container "dead"`},
		{"unknown container", execPath("nope", url.Values{"command": {"ls"}}), true, 404, `container "nope" in pod "web-abc" not found`},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var body string
			if tc.upgrade {
				var conn io.ReadWriteCloser
				conn, code, body = f.upgrade(t, tc.path)
				if conn != nil {
					conn.Close()
					t.Fatal("upgraded")
				}
			} else {
				resp, err := f.hc.Post(f.url+tc.path, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code, body = resp.StatusCode, string(b)
			}
			if code != tc.code || !strings.Contains(statusMessage(t, body), tc.msg) {
				t.Errorf("%d %s, want %d with %q", code, body, tc.code, tc.msg)
			}
		})
	}
}

func TestImages(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxImageBytes = 1000 })
	post := func(body string) (int, string) {
		resp, err := f.hc.Post(f.url+"/images", "application/x-tar", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("IMAGES:localhost/skiff/echo:latest,docker.io/library/busybox:1.36")
	if code != 200 {
		t.Fatalf("import: %d %s", code, body)
	}
	var imported []Image
	if err := json.Unmarshal([]byte(body), &imported); err != nil {
		t.Fatal(err)
	}
	if len(imported) != 2 || imported[0].Ref != "localhost/skiff/echo:latest" || !strings.HasPrefix(imported[0].ID, "sha256:") {
		t.Errorf("imported %+v", imported)
	}

	code, body = post("this is not a tarball")
	if code != 400 || !strings.Contains(statusMessage(t, body), "invalid tar header (nothing imported)") {
		t.Errorf("malformed: %d %s", code, body)
	}
	code, body = post("IMAGES:" + strings.Repeat("x", 2000))
	if code != 413 || !strings.Contains(statusMessage(t, body), "larger than 1000 bytes") {
		t.Errorf("too large: %d %s", code, body)
	}

	code, body = f.get(t, "/images")
	var listed []Image
	if err := json.Unmarshal([]byte(body), &listed); err != nil || code != 200 {
		t.Fatalf("list: %d %s %v", code, body, err)
	}
	if len(listed) != 2 || listed[1].Ref != "docker.io/library/busybox:1.36" || listed[1].Size == 0 {
		t.Errorf("listed %+v", listed)
	}
}

func TestNoRuntimeSupport(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Exec, c.Images = nil, nil })
	f.ctrs.set("default/web-abc/web", ContainerRef{ID: "c1", Running: true})
	if code, body := f.get(t, "/images"); code != 404 || !strings.Contains(body, "not supported") {
		t.Errorf("images: %d %s", code, body)
	}
	conn, code, body := f.upgrade(t, execPath("web", url.Values{"command": {"ls"}}))
	if conn != nil || code != 404 || !strings.Contains(body, "exec is not supported") {
		t.Errorf("exec: %d %s", code, body)
	}
}

func TestNewRequiresContainersAndCA(t *testing.T) {
	if _, err := New(Config{ClientCAs: newTestPKI(t).ca.Pool()}); err == nil {
		t.Error("New without Containers succeeded")
	}
	if _, err := New(Config{Containers: &fakeContainers{}}); err == nil {
		t.Error("New without ClientCAs succeeded")
	}
}

type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
