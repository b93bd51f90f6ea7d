package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// probeServer serves the paths the HTTP table uses, and counts
// connections and the headers of the last request.
type probeServer struct {
	*httptest.Server
	conns      atomic.Int32
	lastHeader atomic.Pointer[http.Header]
	lastHost   atomic.Pointer[string]
}

func newProbeServer(t *testing.T, tlsToo bool) *probeServer {
	t.Helper()
	ps := &probeServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "fine") })
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("x") != "1" {
			w.WriteHeader(400)
		}
	})
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	mux.HandleFunc("/notfound", http.NotFound)
	mux.HandleFunc("/redirect-ok", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/redirect-bad", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/unavailable", http.StatusFound) })
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/redirect-loop", http.StatusFound) })
	mux.HandleFunc("/redirect-elsewhere", func(w http.ResponseWriter, r *http.Request) {
		// Same server, other host name: not followed.
		u := *r.URL
		u.Scheme, u.Host, u.Path = "http", strings.Replace(r.Host, "127.0.0.1", "localhost", 1), "/unavailable"
		http.Redirect(w, r, u.String(), http.StatusFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		ps.lastHeader.Store(&h)
		host := r.Host
		ps.lastHost.Store(&host)
	})
	ps.Server = httptest.NewUnstartedServer(mux)
	ps.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ps.conns.Add(1)
		}
	}
	if tlsToo {
		ps.StartTLS()
	} else {
		ps.Start()
	}
	t.Cleanup(ps.Close)
	return ps
}

func (ps *probeServer) port(t *testing.T) int32 {
	u, err := url.Parse(ps.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(u.Host)
	var n int32
	fmt.Sscan(p, &n)
	return n
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}

func httpTarget(port api.IntOrString, path string, mod func(*api.HTTPGetAction)) target {
	h := &api.HTTPGetAction{Path: path, Port: port, Scheme: api.URISchemeHTTP}
	if mod != nil {
		mod(h)
	}
	return target{
		kind:  Readiness,
		spec:  withDefaults(api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: h}}),
		podIP: "127.0.0.1",
		ports: []api.ContainerPort{{Name: "http", ContainerPort: port.IntVal}},
	}
}

func TestHTTPGet(t *testing.T) {
	ps := newProbeServer(t, false)
	port := api.FromInt32(ps.port(t))
	closed := closedPort(t)
	c := newChecker(Config{})

	for _, tc := range []struct {
		name    string
		t       target
		result  Result
		msg     string // the whole message (message()), or with a trailing * a prefix
		errored bool
	}{
		{"200", httpTarget(port, "/ok", nil), Success, "", false},
		{"query string", httpTarget(port, "/query?x=1", nil), Success, "", false},
		{"503", httpTarget(port, "/unavailable", nil), Failure, "Readiness probe failed: HTTP probe failed with statuscode: 503", false},
		{"404", httpTarget(port, "/notfound", nil), Failure, "Readiness probe failed: HTTP probe failed with statuscode: 404", false},
		{"redirect on the same host is followed", httpTarget(port, "/redirect-ok", nil), Success, "", false},
		{"redirect to a failure", httpTarget(port, "/redirect-bad", nil), Failure, "Readiness probe failed: HTTP probe failed with statuscode: 503", false},
		{"redirect loop", httpTarget(port, "/redirect-loop", nil), Failure, "Readiness probe failed: Get \"/redirect-loop\": stopped after 10 redirects", false},
		{"redirect to another host is not followed", httpTarget(port, "/redirect-elsewhere", nil), Success, "Readiness probe warning: Probe terminated redirects, Response body: *", false},
		{"named port", httpTarget(api.FromString("http"), "/ok", nil), Success, "", false},
		{"unknown named port", httpTarget(api.FromString("metrics"), "/ok", nil), Failure, `Readiness probe errored: port "metrics" is not among the container's ports`, true},
		{"closed port", httpTarget(api.FromInt32(closed), "/healthz", nil), Failure,
			fmt.Sprintf(`Readiness probe failed: Get "http://127.0.0.1:%d/healthz": dial tcp 127.0.0.1:%d: connect: connection refused`, closed, closed), false},
		{"timeout", httpTarget(port, "/slow", nil), Failure, "Readiness probe failed: Get \"http://127.0.0.1:" + port.String() + "/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)", false},
		{"host given", httpTarget(port, "/ok", func(h *api.HTTPGetAction) { h.Host = "localhost" }), Success, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "named port" {
				tc.t.ports = []api.ContainerPort{{Name: "http", ContainerPort: ps.port(t)}}
			}
			out, err := c.probe(context.Background(), tc.t)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			got := message(tc.t.kind, out)
			if out.result != tc.result || out.errored != tc.errored || !matches(got, tc.msg) {
				t.Errorf("got %v (errored %v) %q; want %v (errored %v) %q", out.result, out.errored, got, tc.result, tc.errored, tc.msg)
			}
		})
	}
}

func matches(got, want string) bool {
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

func TestHTTPGetOpensANewConnectionEachTime(t *testing.T) {
	ps := newProbeServer(t, false)
	c := newChecker(Config{})
	tg := httpTarget(api.FromInt32(ps.port(t)), "/ok", nil)
	for range 5 {
		if out, err := c.probe(context.Background(), tg); err != nil || out.result != Success {
			t.Fatalf("probe: %+v %v", out, err)
		}
	}
	if n := ps.conns.Load(); n != 5 {
		t.Errorf("%d connections for 5 probes, want 5", n)
	}
}

func TestHTTPGetHeaders(t *testing.T) {
	ps := newProbeServer(t, false)
	c := newChecker(Config{})
	port := api.FromInt32(ps.port(t))

	if _, err := c.probe(context.Background(), httpTarget(port, "/headers", nil)); err != nil {
		t.Fatal(err)
	}
	h := *ps.lastHeader.Load()
	if h.Get("User-Agent") != DefaultUserAgent || h.Get("Accept") != "*/*" || h.Get("Connection") != "close" {
		t.Errorf("default headers: User-Agent %q Accept %q Connection %q", h.Get("User-Agent"), h.Get("Accept"), h.Get("Connection"))
	}

	custom := httpTarget(port, "/headers", func(h *api.HTTPGetAction) {
		h.HTTPHeaders = []api.HTTPHeader{
			{Name: "X-Probe", Value: "1"}, {Name: "Host", Value: "app.example"},
			{Name: "User-Agent", Value: "mine"}, {Name: "Accept", Value: ""},
		}
	})
	if _, err := c.probe(context.Background(), custom); err != nil {
		t.Fatal(err)
	}
	h = *ps.lastHeader.Load()
	if h.Get("X-Probe") != "1" || h.Get("User-Agent") != "mine" || *ps.lastHost.Load() != "app.example" {
		t.Errorf("custom headers: X-Probe %q User-Agent %q Host %q", h.Get("X-Probe"), h.Get("User-Agent"), *ps.lastHost.Load())
	}
	if _, ok := h["Accept"]; ok {
		t.Errorf("an empty Accept header was sent as %q, want none", h.Get("Accept"))
	}
}

func TestHTTPSIsNotVerified(t *testing.T) {
	ps := newProbeServer(t, true)
	c := newChecker(Config{})
	tg := httpTarget(api.FromInt32(ps.port(t)), "/ok", func(h *api.HTTPGetAction) { h.Scheme = api.URISchemeHTTPS })
	if out, err := c.probe(context.Background(), tg); err != nil || out.result != Success {
		t.Errorf("https probe of a self-signed server: %+v %v", out, err)
	}
}

func TestNetworkProbesWaitForThePodIP(t *testing.T) {
	c := newChecker(Config{})
	for _, tg := range []target{
		httpTarget(api.FromInt32(80), "/", nil),
		{kind: Liveness, spec: withDefaults(api.Probe{ProbeHandler: api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: api.FromInt32(80)}}})},
	} {
		tg.podIP = ""
		if _, err := c.probe(context.Background(), tg); !errors.Is(err, errNotNow) {
			t.Errorf("probe without a pod IP: %v, want errNotNow", err)
		}
	}
}

func tcpTarget(port api.IntOrString) target {
	return target{
		kind:  Liveness,
		spec:  withDefaults(api.Probe{ProbeHandler: api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: port}}}),
		podIP: "127.0.0.1",
		ports: []api.ContainerPort{{Name: "db", ContainerPort: port.IntVal}},
	}
}

func TestTCPSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-accepted })
	open := int32(ln.Addr().(*net.TCPAddr).Port)
	closed := closedPort(t)
	c := newChecker(Config{})

	named := tcpTarget(api.FromString("db"))
	named.ports = []api.ContainerPort{{Name: "db", ContainerPort: open}}

	for _, tc := range []struct {
		name   string
		t      target
		result Result
		msg    string
	}{
		{"open", tcpTarget(api.FromInt32(open)), Success, ""},
		{"named", named, Success, ""},
		{"closed", tcpTarget(api.FromInt32(closed)), Failure, fmt.Sprintf("Liveness probe failed: dial tcp 127.0.0.1:%d: connect: connection refused", closed)},
		{"port 0", tcpTarget(api.FromInt32(0)), Failure, "Liveness probe errored: port 0 is out of range"},
	} {
		out, err := c.probe(context.Background(), tc.t)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := message(tc.t.kind, out); out.result != tc.result || got != tc.msg {
			t.Errorf("%s: %v %q, want %v %q", tc.name, out.result, got, tc.result, tc.msg)
		}
	}
}

func TestTCPSocketTimeout(t *testing.T) {
	// A dial that never connects (there is nothing safe to time out
	// against on this machine: traffic stays on loopback).
	var deadline atomic.Int64
	c := newChecker(Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if d, ok := ctx.Deadline(); ok {
			deadline.Store(int64(time.Until(d)))
		}
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}})
	tg := tcpTarget(api.FromInt32(8080))
	tg.spec.TimeoutSeconds = 1
	start := time.Now()
	out, err := c.probe(context.Background(), tg)
	if err != nil || out.result != Failure || !strings.Contains(out.output, "deadline exceeded") {
		t.Errorf("probe: %+v %v, want a timeout failure", out, err)
	}
	if d := time.Duration(deadline.Load()); d <= 0 || d > time.Second {
		t.Errorf("dial deadline %v away, want within timeoutSeconds", d)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("probe took %v", took)
	}
}

func TestProbeCancelledIsNotCounted(t *testing.T) {
	ps := newProbeServer(t, false)
	c := newChecker(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.probe(ctx, httpTarget(api.FromInt32(ps.port(t)), "/ok", nil)); !errors.Is(err, errNotNow) {
		t.Errorf("cancelled probe: %v, want errNotNow", err)
	}
}

// fakeExecer runs scripted commands.
type fakeExecer struct {
	fn func(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error)
}

func (f fakeExecer) Exec(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
	return f.fn(ctx, id, req)
}

func TestExec(t *testing.T) {
	ex := fakeExecer{fn: func(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
		if id != "c1" {
			return 0, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
		}
		switch strings.Join(req.Cmd, " ") {
		case "true":
			return 0, nil
		case "cat /tmp/healthy":
			fmt.Fprint(req.Stdout, "yes\n")
			return 0, nil
		case "check":
			fmt.Fprint(req.Stdout, "db: ")
			fmt.Fprint(req.Stderr, "down\n")
			return 1, nil
		case "false":
			return 1, nil
		case "chatty":
			req.Stdout.Write([]byte(strings.Repeat("x", 3*maxOutput)))
			return 2, nil
		case "sleep 10":
			<-ctx.Done()
			return 0, ctx.Err()
		case "stopped":
			return 0, fmt.Errorf("exec: %w", runtime.ErrInvalidState)
		default:
			return 0, fmt.Errorf(`exec: %q: executable file not found in $PATH`, req.Cmd[0])
		}
	}}
	c := newChecker(Config{Execer: ex})
	tg := func(cmd ...string) target {
		return target{kind: Liveness, containerID: "c1",
			spec: withDefaults(api.Probe{ProbeHandler: api.ProbeHandler{Exec: &api.ExecAction{Command: cmd}}})}
	}
	for _, tc := range []struct {
		cmd     []string
		result  Result
		msg     string
		notNow  bool
		errored bool
	}{
		{cmd: []string{"true"}, result: Success},
		{cmd: []string{"cat", "/tmp/healthy"}, result: Success},
		{cmd: []string{"check"}, result: Failure, msg: "Liveness probe failed: db: down\n"},
		{cmd: []string{"false"}, result: Failure, msg: `Liveness probe failed: command "false" exited with 1`},
		{cmd: []string{"chatty"}, result: Failure, msg: "Liveness probe failed: " + strings.Repeat("x", maxOutput)},
		{cmd: []string{"sleep", "10"}, result: Failure, msg: `Liveness probe failed: command "sleep 10" timed out`},
		{cmd: []string{"nope"}, result: Failure, errored: true, msg: `Liveness probe errored: exec: "nope": executable file not found in $PATH`},
		{cmd: []string{"stopped"}, notNow: true},
	} {
		out, err := c.probe(context.Background(), tg(tc.cmd...))
		if tc.notNow {
			if !errors.Is(err, errNotNow) {
				t.Errorf("%q: %v, want errNotNow", tc.cmd, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.cmd, err)
			continue
		}
		if got := message(Liveness, out); out.result != tc.result || out.errored != tc.errored || got != tc.msg {
			t.Errorf("%q: %v errored=%v %.80q; want %v errored=%v %.80q", tc.cmd, out.result, out.errored, got, tc.result, tc.errored, tc.msg)
		}
	}

	gone := tg("true")
	gone.containerID = "c2"
	if _, err := c.probe(context.Background(), gone); !errors.Is(err, errNotNow) {
		t.Errorf("exec in a container that is gone: %v, want errNotNow", err)
	}
	noExec := newChecker(Config{})
	if out, err := noExec.probe(context.Background(), tg("true")); err != nil || !out.errored {
		t.Errorf("exec without an Execer: %+v %v, want errored", out, err)
	}
}
