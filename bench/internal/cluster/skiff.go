package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/client"
)

// SkiffServer is one `skiff server` process.
type SkiffServer struct {
	ID       string
	DataDir  string
	RaftAddr string
	APIAddr  string
	Proc     *Proc

	extraArgs []string
}

func (s *SkiffServer) args() []string {
	return []string{"server", "--data-dir", s.DataDir, "--node-id", s.ID,
		"--raft-addr", s.RaftAddr, "--api-addr", s.APIAddr}
}

// URL is the server's API base URL.
func (s *SkiffServer) URL() string { return "https://" + s.APIAddr }

// AdminConfPath is the admin.conf the server writes once it is ready.
func (s *SkiffServer) AdminConfPath() string { return filepath.Join(s.DataDir, "admin.conf") }

// Skiff is a local skiff cluster.
type Skiff struct {
	Bin     string
	Servers []*SkiffServer
	// AdminConf is the admin.conf of s1 (the cluster CA and an admin
	// client certificate, group system:masters, which the API does not
	// rate-limit), the credential every benchmark request uses.
	AdminConf string

	reaper *Reaper
	tls    *tls.Config  // from AdminConf
	http   *http.Client // admin credential, for members and leader polls
	probe  *http.Client // /readyz only, before any CA is known
}

// probeClient answers readiness checks before admin.conf (and so the
// cluster CA) exists: /readyz is public, so nothing secret is sent and the
// server certificate is not verified. Never use it for anything else.
func probeClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // only for /readyz
	}}
}

// Transport returns a new HTTP transport (HTTP/1.1, one keep-alive TLS
// connection per concurrent request, up to maxIdlePerHost kept) that
// trusts the cluster CA and presents the admin client certificate.
func (c *Skiff) Transport(maxIdlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		TLSClientConfig:     c.tls.Clone(),
		MaxIdleConnsPerHost: maxIdlePerHost,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// HTTPClient returns a client with the admin credential (see Transport).
func (c *Skiff) HTTPClient(timeout time.Duration, maxIdlePerHost int) *http.Client {
	return &http.Client{Timeout: timeout, Transport: c.Transport(maxIdlePerHost)}
}

// loadAdmin reads the admin credential from an admin.conf.
func (c *Skiff) loadAdmin(path string) error {
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return err
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return err
	}
	if tc.RootCAs == nil || len(tc.Certificates) == 0 {
		return fmt.Errorf("skiff: %s has no cluster CA or no client certificate", path)
	}
	c.AdminConf, c.tls = path, tc
	c.http = c.HTTPClient(2*time.Second, 16)
	return nil
}

// SkiffMembers is the answer of GET /skiff/v1/members.
type SkiffMembers struct {
	Members []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raftAddr"`
		APIAddr  string `json:"apiAddr"`
		Suffrage string `json:"suffrage"`
		Leader   bool   `json:"leader"`
	} `json:"members"`
	Leader       string `json:"leader"`
	LastIndex    uint64 `json:"lastIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	Server       string `json:"server"`
}

// StartSkiff starts an n-server cluster: s1 bootstraps (creating the
// cluster CA, admin.conf and a server join token), the others join through
// it one at a time with that token. It returns once every server has
// written its admin.conf and all n are voters.
func StartSkiff(ctx context.Context, r *Reaper, bin string, n int, extraArgs ...string) (*Skiff, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("skiff binary: %w (run `make build`)", err)
	}
	root, err := r.TempDir("skiff-bench-")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Skiff{Bin: bin, reaper: r, probe: probeClient()}
	token := ""
	for i := range n {
		s := &SkiffServer{
			ID:       "s" + strconv.Itoa(i+1),
			DataDir:  filepath.Join(root, "s"+strconv.Itoa(i+1)),
			RaftAddr: "127.0.0.1:" + strconv.Itoa(ports[2*i]),
			APIAddr:  "127.0.0.1:" + strconv.Itoa(ports[2*i+1]),

			extraArgs: extraArgs,
		}
		args := s.args()
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", c.Servers[0].APIAddr, "--token", token)
		}
		args = append(args, extraArgs...)
		if s.Proc, err = r.Start("skiff-"+s.ID, filepath.Join(root, s.ID+".log"), bin, args...); err != nil {
			return nil, err
		}
		c.Servers = append(c.Servers, s)
		if err := c.waitReady(ctx, s, 60*time.Second); err != nil {
			return nil, err
		}
		if i == 0 {
			if err := c.loadAdmin(s.AdminConfPath()); err != nil {
				return nil, err
			}
			if token, err = c.joinToken(ctx, s, 30*time.Second); err != nil {
				return nil, err
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := c.Members(ctx, c.Servers[0])
		if err == nil && len(m.Members) == n && m.Leader != "" {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("skiff: %d servers did not form one cluster: %v %+v", n, err, m)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// joinToken reads the server join token the bootstrap server wrote to
// DATA_DIR/token.
func (c *Skiff) joinToken(ctx context.Context, s *SkiffServer, timeout time.Duration) (string, error) {
	path := filepath.Join(s.DataDir, "token")
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if tok := strings.TrimSpace(string(b)); err == nil && tok != "" {
			return tok, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("skiff %s: no join token in %s after %v (%v)", s.ID, path, timeout, err)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// waitReady waits for admin.conf and a 200 from /readyz.
func (c *Skiff) waitReady(ctx context.Context, s *SkiffServer, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !s.Proc.Running() {
			return fmt.Errorf("skiff %s exited: %v\n%s", s.ID, s.Proc.err, s.Proc.LogTail(30))
		}
		if _, err := os.Stat(s.AdminConfPath()); err == nil {
			if code, _ := c.get(ctx, c.probe, s.URL()+"/readyz", nil); code == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("skiff %s not ready after %v\n%s", s.ID, timeout, s.Proc.LogTail(30))
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

func (c *Skiff) get(ctx context.Context, hc *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v == nil || resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// Members asks one server for its view of the cluster.
func (c *Skiff) Members(ctx context.Context, s *SkiffServer) (SkiffMembers, error) {
	var m SkiffMembers
	code, err := c.get(ctx, c.http, s.URL()+"/skiff/v1/members", &m)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s/skiff/v1/members: %d", s.URL(), code)
	}
	return m, err
}

// Server returns the server with the given ID.
func (c *Skiff) Server(id string) *SkiffServer {
	for _, s := range c.Servers {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Leader returns the leader once every running server names the same one
// (so writes to it are not answered with 503), waiting up to timeout.
func (c *Skiff) Leader(ctx context.Context, timeout time.Duration) (*SkiffServer, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		leader := ""
		agree := true
		for _, s := range c.Servers {
			if !s.Proc.Running() {
				continue
			}
			m, err := c.Members(ctx, s)
			if err != nil || m.Leader == "" || (leader != "" && m.Leader != leader) {
				agree, last = false, err
				break
			}
			leader = m.Leader
		}
		if agree && leader != "" {
			if s := c.Server(leader); s != nil && s.Proc.Running() {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("skiff: no agreed leader after %v (last error: %v)", timeout, last)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// Restart starts a killed server again on its data directory, without
// --bootstrap, --join or --token (it keeps its certificates), and waits
// until it is ready.
func (c *Skiff) Restart(ctx context.Context, s *SkiffServer) error {
	s.Proc.Kill()
	args := append(s.args(), s.extraArgs...)
	p, err := c.reaper.Start(s.Proc.Name, s.Proc.LogPath, c.Bin, args...)
	if err != nil {
		return err
	}
	s.Proc = p
	return c.waitReady(ctx, s, 60*time.Second)
}

// CaughtUp reports whether s has applied every entry the leader had
// applied when asked, less slack.
func (c *Skiff) CaughtUp(ctx context.Context, s *SkiffServer, slack uint64) (bool, error) {
	leader, err := c.Leader(ctx, 5*time.Second)
	if err != nil {
		return false, err
	}
	lm, err := c.Members(ctx, leader)
	if err != nil {
		return false, err
	}
	sm, err := c.Members(ctx, s)
	if err != nil {
		return false, err
	}
	return sm.AppliedIndex+slack >= lm.AppliedIndex, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
