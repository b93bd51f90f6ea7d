package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/pki"
)

// testServer is one real server (TLS, Raft on disk) started in-process.
type testServer struct {
	dir   string
	url   string
	admin *http.Client
	ca    *pki.CA
	pool  *x509.CertPool
}

func startServer(t *testing.T, mutate func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ready := make(chan struct{})
	cfg := Config{DataDir: dir, NodeID: "s1", RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Bootstrap: true,
		Ready: ready, Logger: slog.New(slog.DiscardHandler)}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server not ready within 20s")
	}
	conf, err := client.LoadConfig(filepath.Join(dir, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := conf.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(filepath.Join(dir, "pki"), "ca")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(b.CertPEM, b.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{dir: dir, url: conf.Servers[0], ca: ca, pool: ca.Pool(),
		admin: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}}
}

// clientFor returns a client presenting a certificate for id (nil: none).
func (s *testServer) clientFor(t *testing.T, id *pki.Identity) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: s.pool}
	if id != nil {
		key, keyPEM, _ := pki.GenerateKey()
		certPEM, err := s.ca.Issue(&key.PublicKey, pki.SignRequest{Identity: *id, Usage: pki.UsageClient}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64}}
}

func (s *testServer) do(t *testing.T, hc *http.Client, token, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *testServer) mustDo(t *testing.T, method, path, body string, want int) string {
	t.Helper()
	code, out := s.do(t, s.admin, "", method, path, body)
	if code != want {
		t.Fatalf("admin %s %s: %d %s, want %d", method, path, code, out, want)
	}
	return out
}

func (s *testServer) createToken(t *testing.T, req string) (id, token string) {
	t.Helper()
	var created struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	out := s.mustDo(t, "POST", "/skiff/v1/tokens", req, http.StatusCreated)
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	return created.ID, created.Token
}

const (
	nodeJSON = `{"apiVersion":"v1","kind":"Node","metadata":{"name":"%s"}%s}`
	podJSON  = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","namespace":"default"},"spec":{"nodeName":"%s","containers":[{"name":"c","image":"busybox"%s}]}}`
	svcJSON  = `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}`
)

func TestAuthorizationOnARealServer(t *testing.T) {
	s := startServer(t, nil)
	s.mustDo(t, "POST", "/api/v1/nodes", fmt.Sprintf(nodeJSON, "a", ""), http.StatusCreated)
	s.mustDo(t, "POST", "/api/v1/nodes", fmt.Sprintf(nodeJSON, "b", ""), http.StatusCreated)
	s.mustDo(t, "POST", "/api/v1/namespaces/default/pods", fmt.Sprintf(podJSON, "pa", "a", ""), http.StatusCreated)
	s.mustDo(t, "POST", "/api/v1/namespaces/default/pods", fmt.Sprintf(podJSON, "pb", "b", ""), http.StatusCreated)
	s.mustDo(t, "POST", "/api/v1/namespaces/default/services", svcJSON, http.StatusCreated)
	_, viewToken := s.createToken(t, `{"usage":"user","role":"view"}`)
	revokedID, revokedToken := s.createToken(t, `{"usage":"user","role":"edit"}`)
	s.mustDo(t, "DELETE", "/skiff/v1/tokens/"+revokedID, "", http.StatusOK)

	anon := s.clientFor(t, nil)
	nodeA := s.clientFor(t, &pki.Identity{CommonName: "system:node:a", Organizations: []string{"system:nodes"}})
	pods := "/api/v1/namespaces/default/pods"
	cases := []struct {
		name         string
		hc           *http.Client
		token        string
		method, path string
		body         string
		want         int
	}{
		{"anonymous write", anon, "", "POST", pods, fmt.Sprintf(podJSON, "x", "", ""), http.StatusUnauthorized},
		{"anonymous read", anon, "", "GET", pods, "", http.StatusUnauthorized},
		{"anonymous health", anon, "", "GET", "/healthz", "", http.StatusOK},
		{"anonymous metrics", anon, "", "GET", "/metrics", "", http.StatusUnauthorized},
		{"view token reads", anon, viewToken, "GET", pods, "", http.StatusOK},
		{"view token metrics", anon, viewToken, "GET", "/metrics", "", http.StatusOK},
		{"view token write", anon, viewToken, "POST", pods, fmt.Sprintf(podJSON, "x", "", ""), http.StatusForbidden},
		{"view token delete", anon, viewToken, "DELETE", pods + "/pa", "", http.StatusForbidden},
		{"view token creates a token", anon, viewToken, "POST", "/skiff/v1/tokens", `{"usage":"agent"}`, http.StatusForbidden},
		{"revoked token", anon, revokedToken, "GET", pods, "", http.StatusUnauthorized},
		{"malformed token", anon, "nope", "GET", pods, "", http.StatusUnauthorized},
		{"node reads its pod", nodeA, "", "GET", pods + "/pa", "", http.StatusOK},
		{"node reads another node's pod", nodeA, "", "GET", pods + "/pb", "", http.StatusForbidden},
		{"node lists its pods", nodeA, "", "GET", pods + "?fieldSelector=spec.nodeName%3Da", "", http.StatusOK},
		{"node lists all pods", nodeA, "", "GET", pods, "", http.StatusForbidden},
		{"node lists another node's pods", nodeA, "", "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Db", "", http.StatusForbidden},
		{"node updates another node", nodeA, "", "PUT", "/api/v1/nodes/b", fmt.Sprintf(nodeJSON, "b", `,"metadata":{"name":"b","labels":{"x":"y"}}`), http.StatusForbidden},
		{"node creates a pod", nodeA, "", "POST", pods, fmt.Sprintf(podJSON, "evil", "a", ""), http.StatusForbidden},
		{"node deletes a service", nodeA, "", "DELETE", "/api/v1/namespaces/default/services/web", "", http.StatusForbidden},
		{"node creates a token", nodeA, "", "POST", "/skiff/v1/tokens", `{"usage":"agent"}`, http.StatusForbidden},
		{"node sets its own taints", nodeA, "", "PUT", "/api/v1/nodes/a", `{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"},"spec":{"taints":[{"key":"k","effect":"NoSchedule"}]}}`, http.StatusForbidden},
		{"node cordons itself", nodeA, "", "PUT", "/api/v1/nodes/a", `{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"},"spec":{"unschedulable":true}}`, http.StatusForbidden},
		{"node patches another pod's status", nodeA, "", "PUT", pods + "/pb/status", fmt.Sprintf(podJSON, "pb", "b", ""), http.StatusForbidden},
		{"node reports its pod's status", nodeA, "", "PUT", pods + "/pa/status", fmt.Sprintf(podJSON, "pa", "a", ""), http.StatusOK},
		{"node heartbeats its node status", nodeA, "", "PUT", "/api/v1/nodes/a/status", fmt.Sprintf(nodeJSON, "a", ""), http.StatusOK},
		{"node reads services", nodeA, "", "GET", "/api/v1/namespaces/default/services", "", http.StatusOK},
		{"node heartbeats", nodeA, "", "POST", "/skiff/v1/heartbeats/a", "", http.StatusNoContent},
		{"node heartbeats for another node", nodeA, "", "POST", "/skiff/v1/heartbeats/b", "", http.StatusForbidden},
		{"user heartbeats for a node", anon, viewToken, "POST", "/skiff/v1/heartbeats/a", "", http.StatusForbidden},
		{"privileged pod refused by default", s.admin, "", "POST", pods, fmt.Sprintf(podJSON, "priv", "", `,"securityContext":{"privileged":true}`), http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := s.do(t, c.hc, c.token, c.method, c.path, c.body)
			if code != c.want {
				t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, code, c.want, body)
			}
			if c.want == http.StatusForbidden || c.want == http.StatusUnauthorized {
				var st api.Status
				if json.Unmarshal([]byte(body), &st) != nil || st.Code != c.want || st.Message == "" {
					t.Fatalf("not a Status naming the problem: %s", body)
				}
			}
		})
	}
	// Nothing refused was stored.
	for _, name := range []string{"x", "evil", "priv"} {
		if code, _ := s.do(t, s.admin, "", "GET", pods+"/"+name, ""); code != http.StatusNotFound {
			t.Fatalf("refused pod %s exists (%d)", name, code)
		}
	}
}

func TestPrivilegedAllowedByPolicy(t *testing.T) {
	s := startServer(t, func(c *Config) { c.AllowPrivileged = true })
	s.mustDo(t, "POST", "/api/v1/namespaces/default/pods", fmt.Sprintf(podJSON, "priv", "", `,"securityContext":{"privileged":true}`), http.StatusCreated)
}

func TestJoinTokensAtTheCertificateEndpoint(t *testing.T) {
	s := startServer(t, nil)
	_, agent := s.createToken(t, `{"usage":"agent"}`)
	_, short := s.createToken(t, `{"usage":"agent","ttl":"1s"}`)
	revokedID, revoked := s.createToken(t, `{"usage":"agent"}`)
	s.mustDo(t, "DELETE", "/skiff/v1/tokens/"+revokedID, "", http.StatusOK)
	serverTok, _ := os.ReadFile(filepath.Join(s.dir, "token"))

	csr := func(cn, org string) string {
		key, _, _ := pki.GenerateKey()
		b, err := pki.NewCSR(key, pki.Identity{CommonName: cn, Organizations: []string{org}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sign := func(token, usage, name, csrPEM string) int {
		body, _ := json.Marshal(map[string]any{"csr": csrPEM, "usage": usage, "name": name})
		code, _ := s.do(t, s.clientFor(t, nil), token, "POST", "/skiff/v1/certificates", string(body))
		return code
	}
	if code := sign(agent, "agent", "n1", csr("system:node:n1", "system:nodes")); code != http.StatusOK {
		t.Fatalf("agent token: %d", code)
	}
	if code := sign(agent, "agent", "n1", csr("system:node:other", "system:nodes")); code != http.StatusBadRequest {
		t.Fatalf("CSR for another name: %d, want 400", code)
	}
	if code := sign(agent, "server", "s9", csr("system:server:s9", "system:servers")); code != http.StatusUnauthorized {
		t.Fatalf("agent token used for a server certificate: %d, want 401", code)
	}
	if code := sign(revoked, "agent", "n2", csr("system:node:n2", "system:nodes")); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sign(short, "agent", "n3", csr("system:node:n3", "system:nodes")) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("a token with a 1s ttl still works after 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	tok, err := api.ParseJoinToken(strings.TrimSpace(string(serverTok)))
	if err != nil || tok.CAHash != s.ca.Hash() {
		t.Fatalf("the bootstrap token does not pin this CA: %v", err)
	}
}

// A joiner whose token pins another CA never sends its secret.
func TestJoinWithWrongCAHashSendsNoSecret(t *testing.T) {
	var sawSecret, sawCSR atomic.Bool
	other, _ := pki.NewCA("impostor", time.Now())
	impostor := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			sawSecret.Store(true)
		}
		if r.URL.Path == "/skiff/v1/certificates" {
			sawCSR.Store(true)
		}
		if r.URL.Path == "/skiff/v1/ca" {
			w.Write(other.CertPEM())
		}
	}))
	defer impostor.Close()
	real, _ := pki.NewCA("real", time.Now())
	tok, _ := api.NewJoinToken(real.Hash())
	dir := t.TempDir()
	_, err := setupPKI(context.Background(), Config{DataDir: dir, NodeID: "s2", Join: impostor.URL, Token: tok.String()},
		pki.ServerIdentity("s2"), []string{"127.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "not this cluster") {
		t.Fatalf("join against an impostor: %v", err)
	}
	if strings.Contains(err.Error(), tok.Secret) {
		t.Fatal("the error shows the secret")
	}
	if sawSecret.Load() || sawCSR.Load() {
		t.Fatal("the impostor received the token's secret or a CSR")
	}
	if _, err := os.Stat(filepath.Join(dir, "pki", "server.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a certificate was written: %v", err)
	}
	// An unpinned token is refused before anything is sent, too.
	bare := api.JoinToken{ID: tok.ID, Secret: tok.Secret}
	if _, err := client.FetchPinnedCA(context.Background(), impostor.URL, bare); err == nil {
		t.Fatal("an unpinned token was accepted")
	}
}

// A flood of requests from one user gets 429s while 50 nodes keep
// heartbeating: none misses its grace period (1 s here), so none is marked
// unreachable.
func TestFloodDoesNotStarveNodeHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const grace = time.Second
	s := startServer(t, func(c *Config) { c.NodeGracePeriod = grace })
	const nodes = 50
	for i := 0; i < nodes; i++ {
		s.mustDo(t, "POST", "/api/v1/nodes", fmt.Sprintf(nodeJSON, fmt.Sprintf("n%d", i), ""), http.StatusCreated)
	}
	_, floodToken := s.createToken(t, `{"usage":"user","role":"edit"}`)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ok, limited, other atomic.Int64
	flood := s.clientFor(t, nil)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/v1/namespaces/default/pods", nil)
				req.Header.Set("Authorization", "Bearer "+floodToken)
				resp, err := flood.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					if resp.Header.Get("Retry-After") == "" {
						other.Add(1)
					}
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	maxGap := make([]time.Duration, nodes)
	for i := 0; i < nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d", i)
			hc := s.clientFor(t, &pki.Identity{CommonName: "system:node:" + name, Organizations: []string{"system:nodes"}})
			last := time.Now()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/skiff/v1/heartbeats/"+name, nil)
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusNoContent {
						if gap := time.Since(last); gap > maxGap[i] {
							maxGap[i] = gap
						}
						last = time.Now()
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			if gap := time.Since(last); gap > maxGap[i] {
				maxGap[i] = gap
			}
		}()
	}
	wg.Wait()
	var worst time.Duration
	for _, g := range maxGap {
		worst = max(worst, g)
	}
	t.Logf("flood: %d ok, %d got 429 (%.0f requests/s); worst heartbeat gap over %d nodes: %v", ok.Load(), limited.Load(),
		float64(ok.Load()+limited.Load())/4, nodes, worst)
	if limited.Load() == 0 {
		t.Fatal("the flooding client was never limited")
	}
	if other.Load() > 0 {
		t.Fatalf("%d flood answers were neither 200 nor 429 with Retry-After", other.Load())
	}
	if worst > grace {
		t.Fatalf("a node went %v without a successful heartbeat (grace %v)", worst, grace)
	}
	for i := 0; i < nodes; i++ {
		_, body := s.do(t, s.admin, "", "GET", fmt.Sprintf("/api/v1/nodes/n%d", i), "")
		if strings.Contains(body, "node.kubernetes.io/unreachable") {
			t.Fatalf("node n%d was marked unreachable during the flood: %s", i, body)
		}
	}
}

func TestServerCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	p, err := setupPKI(context.Background(), Config{DataDir: dir, NodeID: "s1", Bootstrap: true}, pki.ServerIdentity("s1"), []string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	before := p.cert.Current().Leaf
	if err := p.renewIfDue(pki.ServerIdentity("s1"), []string{"127.0.0.1:1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if p.cert.Current().Leaf.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatal("a fresh certificate was renewed")
	}
	late := before.NotAfter.Add(-time.Duration(float64(before.NotAfter.Sub(before.NotBefore)) * 0.2))
	if err := p.renewIfDue(pki.ServerIdentity("s1"), []string{"127.0.0.1:1"}, late); err != nil {
		t.Fatal(err)
	}
	after := p.cert.Current()
	if after.Leaf == nil || after.Leaf.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("a certificate with 20% of its life left was not renewed")
	}
	onDisk, err := pki.LoadBundle(filepath.Join(dir, "pki"), "server")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := pki.ParseCertPEM(onDisk.CertPEM); c.SerialNumber.Cmp(after.Leaf.SerialNumber) != 0 {
		t.Fatal("the renewed certificate was not saved")
	}
}

func TestLoadBalancerServiceGetsAnIngressIP(t *testing.T) {
	pool, _ := cloudprovider.ParsePool("192.168.77.10-192.168.77.12")
	s := startServer(t, func(c *Config) { c.Cloud.LoadBalancerPool = pool })
	s.mustDo(t, "POST", "/api/v1/namespaces/default/services",
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"lb"},"spec":{"type":"LoadBalancer","selector":{"app":"x"},"ports":[{"port":80}]}}`, http.StatusCreated)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := s.mustDo(t, "GET", "/api/v1/namespaces/default/services/lb", "", http.StatusOK)
		var svc api.Service
		json.Unmarshal([]byte(out), &svc)
		if in := svc.Status.LoadBalancer.Ingress; len(in) == 1 && strings.HasPrefix(in[0].IP, "192.168.77.") {
			if svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].NodePort == 0 {
				t.Fatalf("a LoadBalancer service needs a cluster IP and a node port too: %+v", svc.Spec)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ingress IP after 10s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
