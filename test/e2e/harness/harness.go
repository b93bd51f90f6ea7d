// Package harness starts real skiff processes for end-to-end tests: it
// builds bin/skiff once per test binary, picks loopback ports, runs servers
// with their own data dirs and logs, kills them by PID (also with -9) and
// cleans up after each test.
//
// It is test support only: nothing outside test/ imports it.
package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/client"
)

// binary is the skiff binary Main built for this test binary.
var binary string

// repoRoot finds the module root from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Build compiles ./cmd/skiff of this checkout into dir and returns the
// binary's path.
func Build(dir string) (string, error) {
	path := filepath.Join(dir, "skiff")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/skiff")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/skiff: %v\n%s", err, out)
	}
	return path, nil
}

// Main is TestMain for packages that use the harness: it builds skiff once
// into a temporary directory ($SKIFF_BIN overrides), runs the tests, and
// removes the build.
func Main(m *testing.M) int {
	if p := os.Getenv("SKIFF_BIN"); p != "" {
		binary = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "skiff-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Binary returns the skiff binary built by Main.
func Binary(t testing.TB) string {
	t.Helper()
	if binary == "" {
		t.Fatal("harness: call harness.Main from the package's TestMain")
	}
	return binary
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Server is one `skiff server` process.
type Server struct {
	ID       string
	Dir      string
	RaftAddr string
	APIAddr  string
	Join     string // API address to join through ("" bootstraps)
	Token    string // server join token, with Join
	LogPath  string

	t     testing.TB
	bin   string
	admin *http.Client // set by StartCluster once the first admin.conf exists
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
}

// NewServer prepares a server with fresh ports and directories.
func NewServer(t testing.TB, id, join string) *Server {
	base := t.TempDir()
	s := &Server{ID: id, Dir: filepath.Join(base, "data"), RaftAddr: FreeAddr(t), APIAddr: FreeAddr(t),
		Join: join, LogPath: filepath.Join(base, id+".log"), t: t, bin: Binary(t)}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			s.dumpLog()
		}
	})
	return s
}

// URL is the server's API base URL.
func (s *Server) URL() string { return "https://" + s.APIAddr }

// AdminConf is the path of the admin.conf the server writes when ready.
func (s *Server) AdminConf() string { return filepath.Join(s.Dir, "admin.conf") }

// JoinToken reads the server join token a bootstrap server wrote.
func (s *Server) JoinToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, "token"))
	return strings.TrimSpace(string(b)), err
}

// Start runs the process (again, after Kill, on the same data dir).
func (s *Server) Start() {
	s.t.Helper()
	args := []string{"server", "--data-dir", s.Dir, "--node-id", s.ID, "--raft-addr", s.RaftAddr, "--api-addr", s.APIAddr}
	if s.Join == "" {
		args = append(args, "--bootstrap")
	} else {
		args = append(args, "--join", s.Join, "--token", s.Token)
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start %s: %v", s.ID, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
}

// Kill sends SIGKILL to the process (if running) and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for a clean exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// PID of the running process (0 if none).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) dumpLog() {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	s.t.Logf("--- last lines of %s (%s):\n%s", s.ID, s.LogPath, strings.Join(lines, "\n"))
}

// Members is GET /skiff/v1/members.
type Members struct {
	Members []struct {
		ID      string `json:"id"`
		APIAddr string `json:"apiAddr"`
		Leader  bool   `json:"leader"`
	} `json:"members"`
	Leader       string `json:"leader"`
	LastIndex    uint64 `json:"lastIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
}

// probe answers health checks before any credential exists: /readyz is
// public, and the CA is not known yet.
var probe = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // only for /readyz

// AdminClient returns an HTTP client with the admin credential of an
// admin.conf, trusting its cluster CA.
func AdminClient(t testing.TB, adminConf string) *http.Client {
	t.Helper()
	cfg, err := client.LoadConfig(adminConf)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	tc.InsecureSkipVerify = false
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64}}
}

// Members asks this server for the membership, with the cluster's admin
// credential.
func (s *Server) Members() (*Members, error) {
	if s.admin == nil {
		return nil, fmt.Errorf("%s: no admin credential yet", s.ID)
	}
	resp, err := s.admin.Get(s.URL() + "/skiff/v1/members")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("members: %s", resp.Status)
	}
	var m Members
	return &m, json.NewDecoder(resp.Body).Decode(&m)
}

// Ready reports GET /readyz == 200.
func (s *Server) Ready() bool {
	resp, err := probe.Get(s.URL() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// Eventually polls cond every 10ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Cluster is n servers: the first bootstraps, the others join through it.
type Cluster struct {
	Servers []*Server
	// Admin is an HTTP client with the cluster's admin credential.
	Admin *http.Client
}

// StartCluster starts n servers and waits until all are members and ready.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	first := NewServer(t, "s1", "")
	first.Start()
	Eventually(t, 20*time.Second, "s1 ready with admin.conf and a join token", func() bool {
		_, err1 := os.Stat(first.AdminConf())
		_, err2 := first.JoinToken()
		return first.Ready() && err1 == nil && err2 == nil
	})
	c.Admin = AdminClient(t, first.AdminConf())
	first.admin = c.Admin
	token, _ := first.JoinToken()
	c.Servers = append(c.Servers, first)
	for i := 2; i <= n; i++ {
		s := NewServer(t, fmt.Sprintf("s%d", i), first.APIAddr)
		s.Token = token
		s.admin = c.Admin
		s.Start()
		c.Servers = append(c.Servers, s)
	}
	Eventually(t, 30*time.Second, fmt.Sprintf("%d members, all ready", n), func() bool {
		for _, s := range c.Servers {
			m, err := s.Members()
			if err != nil || len(m.Members) != n || m.Leader == "" || !s.Ready() {
				return false
			}
			for _, mm := range m.Members {
				if mm.APIAddr == "" {
					return false
				}
			}
		}
		return true
	})
	return c
}

// Leader returns the server that is leader now (nil if none agrees).
func (c *Cluster) Leader() *Server {
	for _, s := range c.Servers {
		if s.PID() == 0 {
			continue
		}
		m, err := s.Members()
		if err != nil || m.Leader == "" {
			continue
		}
		for _, x := range c.Servers {
			if x.ID == m.Leader && x.PID() != 0 {
				return x
			}
		}
	}
	return nil
}

// URLs lists every server's API URL.
func (c *Cluster) URLs() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.URL())
	}
	return out
}

// Do sends one request and returns status and body (for tests that want
// the raw API).
func Do(ctx context.Context, hc *http.Client, method, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), err
}
