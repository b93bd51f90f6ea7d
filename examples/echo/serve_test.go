package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary as the echo program (for the
// signal test): with ECHO_TEST_AS_MAIN=1 it is main().
func TestMain(m *testing.M) {
	if os.Getenv("ECHO_TEST_AS_MAIN") == "1" {
		os.Args = append([]string{"echo"}, strings.Fields(os.Getenv("ECHO_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

// startServer serves cfg on loopback; the channel gives Serve's result
// once (the cleanup waits for it only if the test did not).
func startServer(t *testing.T, cfg serverConfig) (*server, context.CancelFunc, <-chan error) {
	t.Helper()
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	s, err := listen(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		done <- s.Serve(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return s, cancel, done
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestServeAnswersWithItsName(t *testing.T) {
	s, _, _ := startServer(t, serverConfig{Name: "web-abc"})
	base := "http://" + s.httpLn.Addr().String()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/", 200, "web-abc"},
		{"/any/path", 200, "web-abc"},
		{"/healthz", 200, "ok"},
		{"/healthz/fail", 200, "/healthz now fails"},
		{"/healthz", 503, "failing"},
		{"/", 200, "web-abc"}, // failing health does not stop answers
		{"/healthz/ok", 200, "/healthz now succeeds"},
		{"/healthz", 200, "ok"},
		{"/sleep?d=1ms", 200, "web-abc"},
		{"/sleep?d=soon", 400, "d must be a duration, e.g. /sleep?d=2s"},
	} {
		code, body := get(t, base+tc.path)
		if code != tc.code || body != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}

	ask := udpAsker(fetchConfig{Target: s.udpConn.LocalAddr().String(), Timeout: 5 * time.Second})
	for range 3 {
		name, err := ask(context.Background())
		if err != nil || name != "web-abc" {
			t.Errorf("udp answer %q, %v", name, err)
		}
	}
}

func TestServeDrainsOnShutdown(t *testing.T) {
	s, cancel, done := startServer(t, serverConfig{Name: "web-abc", ShutdownDelay: 300 * time.Millisecond})
	base := "http://" + s.httpLn.Addr().String()

	type answer struct {
		code int
		body string
		err  error
	}
	inflight := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + "/sleep?d=500ms")
		if err != nil {
			inflight <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- answer{resp.StatusCode, strings.TrimSpace(string(b)), err}
	}()
	waitFor(t, "the /sleep request to be in its handler", func() bool { return s.sleeping.Load() == 1 })

	cancel()
	// During the delay, /healthz fails and the server still answers.
	waitFor(t, "/healthz to fail", func() bool { return s.draining.Load() })
	if code, body := get(t, base+"/healthz"); code != 503 || body != "draining" {
		t.Errorf("/healthz while draining = %d %q, want 503 draining", code, body)
	}
	if a := <-inflight; a.err != nil || a.code != 200 || a.body != "web-abc" {
		t.Errorf("in-flight request: %d %q %v, want it answered", a.code, a.body, a.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v, want a clean shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.Dial("tcp", s.httpLn.Addr().String()); err == nil {
		c.Close()
		t.Error("HTTP listener still open after shutdown")
	}
}

func TestServeShutdownTimeoutIsAnError(t *testing.T) {
	s, cancel, done := startServer(t, serverConfig{Name: "x", ShutdownTimeout: 50 * time.Millisecond})
	go http.Get("http://" + s.httpLn.Addr().String() + "/sleep?d=1m") //nolint:errcheck // cut off by the server
	waitFor(t, "the /sleep request to be in its handler", func() bool { return s.sleeping.Load() == 1 })
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not finish") {
			t.Errorf("Serve: %v, want an in-flight timeout error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestListenRefusesNothingToServe(t *testing.T) {
	if _, err := listen(serverConfig{}, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("listen with nothing enabled: %v, want errUsage", err)
	}
}

// The real program: PID 1 in a container gets SIGTERM and must exit 0
// after draining.
func TestSIGTERMExitsZero(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ECHO_TEST_AS_MAIN=1",
		"ECHO_TEST_ARGS=serve --http 127.0.0.1:0 --udp 127.0.0.1:0 --name sig-test")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("no start line: %v", lines.Err())
	}
	m := regexp.MustCompile(`http=(\S+) udp=(\S+)`).FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("start line %q names no addresses", lines.Text())
	}
	if code, body := get(t, "http://"+m[1]+"/"); code != 200 || body != "sig-test" {
		t.Errorf("GET / = %d %q", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0 (output %q)", err, rest)
	}
	if len(rest) == 0 || rest[len(rest)-1] != "echo: stopped" {
		t.Errorf("output after SIGTERM %q, want it to end with echo: stopped", rest)
	}
}

// waitFor polls cond (state changed by another goroutine) for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
