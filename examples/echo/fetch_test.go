package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backends answers in turn with names a, b, c and counts connections.
func backends(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var next, conns atomic.Int32
	names := []string{"a", "b", "c"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, names[int(next.Add(1)-1)%len(names)])
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestFetchCountsNamesOnNewConnections(t *testing.T) {
	srv, conns := backends(t)
	var out, errOut bytes.Buffer
	err := fetchCommand(context.Background(), []string{srv.URL, "-n", "9", "-c", "3"}, &out, &errOut, protoHTTP)
	if err != nil {
		t.Fatalf("fetch: %v (%s)", err, errOut.String())
	}
	if got, want := out.String(), "a\t3\nb\t3\nc\t3\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if n := conns.Load(); n != 9 {
		t.Errorf("%d connections for 9 requests, want one each", n)
	}
	if !strings.Contains(errOut.String(), "9 answers from 3 names, 0 failed") {
		t.Errorf("summary %q", errOut.String())
	}
}

func TestFetchFailures(t *testing.T) {
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	closed := closedPort(t)

	for _, tc := range []struct {
		name, target string
		want         string
	}{
		{"503", unavailable.URL, "HTTP 503: draining"},
		{"closed port", "127.0.0.1:" + closed, "connection refused"},
		{"timeout", slow.URL, "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := fetchCommand(context.Background(), []string{"--timeout", "200ms", "-n", "2", tc.target}, &out, &errOut, protoHTTP)
			if err == nil || err.Error() != "2 of 2 requests failed" {
				t.Errorf("fetch: %v, want 2 of 2 failed", err)
			}
			if out.Len() != 0 {
				t.Errorf("output %q, want none", out.String())
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr %q, want it to contain %q", errOut.String(), tc.want)
			}
		})
	}
}

func TestFetchStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	tl := fetch(ctx, fetchConfig{N: 100, Concurrency: 1}, func(context.Context) (string, error) {
		if calls.Add(1) == 3 {
			cancel()
		}
		return "a", nil
	})
	if tl.failed+tl.answered() != 100 || tl.answered() < 3 || tl.answered() > 4 {
		t.Errorf("after cancelling at the 3rd request: %d answered, %d failed", tl.answered(), tl.failed)
	}
	if !errors.Is(tl.firstErr, context.Canceled) {
		t.Errorf("first error %v, want context.Canceled", tl.firstErr)
	}
}

func TestUDPFromNewSocketsEachTime(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	sources := map[string]bool{}
	served := make(chan struct{})
	go func() {
		defer close(served)
		buf := make([]byte, 100)
		for i := 0; ; i++ {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			sources[from.String()] = true
			mu.Unlock()
			pc.WriteTo([]byte(fmt.Sprintf("pod-%d\n", i%2)), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-served })

	var out, errOut bytes.Buffer
	if err := fetchCommand(context.Background(), []string{pc.LocalAddr().String(), "-n", "6"}, &out, &errOut, protoUDP); err != nil {
		t.Fatalf("udp: %v (%s)", err, errOut.String())
	}
	if got, want := out.String(), "pod-0\t3\npod-1\t3\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sources) != 6 {
		t.Errorf("%d source addresses for 6 datagrams, want a new socket each", len(sources))
	}
}

func TestUDPTimeout(t *testing.T) {
	// A bound socket that never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ask := udpAsker(fetchConfig{Target: pc.LocalAddr().String(), Timeout: 50 * time.Millisecond})
	var ne net.Error
	if _, err := ask(context.Background()); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("udp to a silent socket: %v, want a timeout", err)
	}
}

func TestRunCommandLine(t *testing.T) {
	srv, _ := backends(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"fetch", srv.URL, "-n", "1"}, exitOK, "a\t1\n"},
		{[]string{"fetch", "-n", "1", srv.URL}, exitOK, "b\t1\n"},
		{[]string{"fetch", strings.TrimPrefix(srv.URL, "http://"), "-n=1"}, exitOK, "c\t1\n"},
		{[]string{"fetch"}, exitUsage, ""},
		{[]string{"fetch", srv.URL, "-n", "0"}, exitUsage, ""},
		{[]string{"fetch", srv.URL, "--bogus"}, exitUsage, ""},
		{[]string{"udp", "a", "b"}, exitUsage, ""},
		{[]string{"serve", "extra"}, exitUsage, ""},
		{[]string{"frobnicate"}, exitUsage, ""},
		{[]string{"help"}, exitOK, usage},
		{[]string{"fetch", "-h"}, exitOK, usage},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || out.String() != tc.out {
			t.Errorf("echo %q: exit %d, output %q; want %d, %q (stderr %q)", tc.args, code, out.String(), tc.code, tc.out, errOut.String())
		}
		if tc.code == exitUsage && !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("echo %q: stderr %q, want the usage", tc.args, errOut.String())
		}
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// hold keeps one connection for its duration, and fails when the server
// closes it.
func TestHold(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "pod-a") }))
	defer srv.Close()
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	var out bytes.Buffer
	if err := hold(context.Background(), holdConfig{Target: mustURL(t, srv.URL+"/"), For: 200 * time.Millisecond, Interval: 10 * time.Millisecond, Timeout: time.Second}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "held one connection to pod-a") || conns.Load() != 1 {
		t.Errorf("out %q, %d connections; want one connection to pod-a", out.String(), conns.Load())
	}

	closing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintln(w, "pod-b")
	}))
	defer closing.Close()
	err := hold(context.Background(), holdConfig{Target: mustURL(t, closing.URL+"/"), For: time.Second, Interval: 10 * time.Millisecond, Timeout: time.Second}, &out)
	if err == nil || !strings.Contains(err.Error(), "broke after 0 requests") {
		t.Errorf("hold against a server that closes: %v", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
