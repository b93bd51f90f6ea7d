package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/controlplane/apiserver"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/pki"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Files under DataDir/pki.
const (
	pkiDirName = "pki"
	caName     = "ca"
	serverName = "server"
	tokenFile  = "token" // the bootstrap server's join token for other servers
	caRecord   = "cluster"
)

// serverPKI is one server's view of the cluster PKI: the CA certificate
// (always), the CA key (on the bootstrap server at once, on the others once
// Raft has replicated it) and this server's own certificate.
type serverPKI struct {
	dir   string
	caPEM []byte
	pool  *x509.CertPool
	cert  *pki.ReloadingCertificate

	mu sync.Mutex
	ca *pki.CA // nil until the key is known
}

type caBundle struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
}

// setupPKI prepares the certificates before Raft and the API start: a new
// CA on bootstrap, this server's certificate (issued locally, or by the
// cluster through a join token), or what an earlier run left on disk.
func setupPKI(ctx context.Context, cfg Config, id pki.Identity, sans []string) (*serverPKI, error) {
	p := &serverPKI{dir: filepath.Join(cfg.DataDir, pkiDirName)}
	caB, err := pki.LoadBundle(p.dir, caName)
	switch {
	case err == nil:
		if p.ca, err = pki.LoadCA(caB.CertPEM, caB.KeyPEM); err != nil {
			return nil, err
		}
		p.caPEM = caB.CertPEM
	case errors.Is(err, fs.ErrNotExist):
		if pem, rerr := os.ReadFile(filepath.Join(p.dir, caName+".crt")); rerr == nil {
			p.caPEM = pem // a joined server: the certificate without the key
		} else if cfg.Bootstrap {
			if p.ca, err = pki.NewCA("skiff-ca", time.Now()); err != nil {
				return nil, err
			}
			if err := pki.SaveBundle(p.dir, caName, p.ca.Bundle()); err != nil {
				return nil, err
			}
			p.caPEM = p.ca.CertPEM()
		}
	default:
		return nil, err
	}

	srv, err := pki.LoadBundle(p.dir, serverName)
	if errors.Is(err, fs.ErrNotExist) {
		switch {
		case p.ca != nil:
			srv, err = p.issueServer(id, sans)
		case cfg.Join != "":
			srv, err = p.joinCertificate(ctx, cfg, id, sans)
		default:
			err = fmt.Errorf("no certificate in %s: start the first server with --bootstrap, the others with --join ADDR --token TOKEN", p.dir)
		}
	}
	if err != nil {
		return nil, err
	}
	if p.caPEM == nil {
		return nil, fmt.Errorf("no CA certificate in %s", p.dir)
	}
	p.pool = x509.NewCertPool()
	if !p.pool.AppendCertsFromPEM(p.caPEM) {
		return nil, fmt.Errorf("%s/%s.crt holds no certificate", p.dir, caName)
	}
	c, err := pki.TLSCertificate(srv)
	if err != nil {
		return nil, err
	}
	p.cert = pki.NewReloadingCertificate(c)
	return p, nil
}

func sanList(addrs []string) ([]string, []net.IP) {
	var dns []string
	var ips []net.IP
	seen := map[string]bool{}
	add := func(h string) {
		if h == "" || seen[h] {
			return
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip)
			}
		} else {
			dns = append(dns, h)
		}
	}
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil {
			add(h)
		} else {
			add(a)
		}
	}
	return dns, ips
}

// defaultSANs are the names a server answers to besides its addresses.
func defaultSANs() []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		out = append(out, h)
	}
	return out
}

func (p *serverPKI) issueServer(id pki.Identity, sans []string) (pki.Bundle, error) {
	key, keyPEM, err := pki.GenerateKey()
	if err != nil {
		return pki.Bundle{}, err
	}
	dns, ips := sanList(sans)
	certPEM, err := p.ca.Issue(&key.PublicKey, pki.SignRequest{Identity: id, Usage: pki.UsageServerAndClient, DNSNames: dns, IPs: ips}, time.Now())
	if err != nil {
		return pki.Bundle{}, err
	}
	b := pki.Bundle{CertPEM: certPEM, KeyPEM: keyPEM}
	return b, pki.SaveBundle(p.dir, serverName, b)
}

// joinCertificate gets this server's certificate from the cluster: fetch
// the CA, check it against the token's pin (before sending anything
// secret), then send a CSR with the token.
func (p *serverPKI) joinCertificate(ctx context.Context, cfg Config, id pki.Identity, sans []string) (pki.Bundle, error) {
	if cfg.Token == "" {
		return pki.Bundle{}, errors.New("joining needs a server token: --token K10<ca hash>::<id>.<secret> (the bootstrap server wrote one to DATA_DIR/token; `skiff token create --usage server` makes more)")
	}
	tok, err := api.ParseJoinToken(cfg.Token)
	if err != nil {
		return pki.Bundle{}, err
	}
	caPEM, err := client.FetchPinnedCA(ctx, cfg.Join, tok)
	if err != nil {
		return pki.Bundle{}, err
	}
	key, keyPEM, err := pki.GenerateKey()
	if err != nil {
		return pki.Bundle{}, err
	}
	csr, err := pki.NewCSR(key, id, nil, nil)
	if err != nil {
		return pki.Bundle{}, err
	}
	resp, err := client.RequestCertificate(ctx, cfg.Join, caPEM, tok, client.CertificateRequest{
		CSR: string(csr), Usage: api.TokenUsageServer, Name: cfg.NodeID, Addresses: sans})
	if err != nil {
		return pki.Bundle{}, err
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return pki.Bundle{}, err
	}
	if err := pki.WriteFileAtomic(filepath.Join(p.dir, caName+".crt"), caPEM, 0o600); err != nil {
		return pki.Bundle{}, err
	}
	p.caPEM = caPEM
	b := pki.Bundle{CertPEM: []byte(resp.Certificate), KeyPEM: keyPEM}
	return b, pki.SaveBundle(p.dir, serverName, b)
}

// apiURL is the https base URL of a join address (server.go forwards and
// joins with it).
func apiURL(addr string) string { return client.ServerURL(addr) }

// CA returns the CA with its key, if known yet.
func (p *serverPKI) CA() *pki.CA {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ca
}

func (p *serverPKI) setCA(ca *pki.CA) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ca == nil {
		p.ca = ca
	}
}

// learnCA takes the CA key from the replicated record (joined servers).
func (p *serverPKI) learnCA(st *store.Store) {
	if p.CA() != nil {
		return
	}
	v, ok := st.GetSystem(store.TableCA, caRecord)
	if !ok {
		return
	}
	var b caBundle
	if json.Unmarshal(v, &b) != nil {
		return
	}
	if ca, err := pki.LoadCA(b.Cert, b.Key); err == nil && bytes.Equal(ca.CertPEM(), p.caPEM) {
		p.setCA(ca)
	}
}

// publishCA records the CA in Raft (on the leader that has its key), so
// any later leader can sign.
func (p *serverPKI) publishCA(ctx context.Context, st *store.Store) error {
	ca := p.CA()
	if ca == nil {
		return nil
	}
	if _, ok := st.GetSystem(store.TableCA, caRecord); ok {
		return nil
	}
	b, _ := json.Marshal(caBundle{Cert: ca.CertPEM(), Key: ca.KeyPEM()})
	return st.PutSystem(ctx, store.TableCA, caRecord, b)
}

// clientTLS is what this server presents when it calls other servers
// (joins, forwarding): its own certificate, trusting the cluster CA.
func (p *serverPKI) clientTLS() *tls.Config {
	return client.PinnedTLSConfig(p.pool, p.cert.GetClientCertificate)
}

// apiTLS serves the API: client certificates optional (tokens work too)
// but verified against the cluster CA when given.
func (p *serverPKI) apiTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: p.cert.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      p.pool,
	}
}

// adminConfig issues an admin client certificate and returns admin.conf's
// contents.
func (p *serverPKI) adminConfig(servers []string) ([]byte, error) {
	ca := p.CA()
	if ca == nil {
		return nil, errors.New("the CA key is not known here yet")
	}
	key, keyPEM, err := pki.GenerateKey()
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.Issue(&key.PublicKey, pki.SignRequest{Identity: pki.AdminIdentity(), Usage: pki.UsageClient}, time.Now())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("apiVersion: skiff/v1\nkind: Config\nservers:\n")
	for _, u := range servers {
		fmt.Fprintf(&b, "- %s\n", u)
	}
	fmt.Fprintf(&b, "certificateAuthorityData: %s\n", jsonString(p.caPEM))
	fmt.Fprintf(&b, "clientCertificateData: %s\n", jsonString(certPEM))
	fmt.Fprintf(&b, "clientKeyData: %s\n", jsonString(keyPEM))
	return b.Bytes(), nil
}

// jsonString quotes s as a JSON string, which is valid YAML.
func jsonString(b []byte) string {
	q, _ := json.Marshal(string(b))
	return string(q)
}

// The join request and answer are one wire format on both sides: the
// conversions fail to compile if their fields drift apart.
var (
	_ = apiserver.CertificateRequest(client.CertificateRequest{})
	_ = apiserver.CertificateResponse(client.CertificateResponse{})
)

// certService implements apiserver.CertService.
type certService struct {
	pki    *serverPKI
	tokens *tokens
	now    func() time.Time
}

func (c *certService) CAPEM() []byte { return c.pki.caPEM }

func (c *certService) SignCertificate(_ context.Context, id, secret string, req apiserver.CertificateRequest) (apiserver.CertificateResponse, error) {
	var ident pki.Identity
	switch req.Usage {
	case api.TokenUsageServer:
		ident = pki.ServerIdentity(req.Name)
	case api.TokenUsageAgent:
		ident = pki.NodeIdentity(req.Name)
	default:
		return apiserver.CertificateResponse{}, fmt.Errorf("%w: usage %q: want server or agent", store.ErrInvalid, req.Usage)
	}
	if errs := api.DNS1123SubdomainErrors(req.Name); req.Name == "" || len(errs) > 0 {
		return apiserver.CertificateResponse{}, fmt.Errorf("%w: name %q is not a valid server or node name", store.ErrInvalid, req.Name)
	}
	if _, err := c.tokens.Verify(id, secret, req.Usage, c.now()); err != nil {
		return apiserver.CertificateResponse{}, fmt.Errorf("%w: %w", auth.ErrUnauthorized, err)
	}
	ca := c.pki.CA()
	if ca == nil {
		return apiserver.CertificateResponse{}, store.ErrNotLeader // cannot sign here yet
	}
	addrs := append([]string{}, req.Addresses...)
	if req.Usage == api.TokenUsageServer {
		addrs = append(addrs, defaultSANs()...)
	}
	dns, ips := sanList(addrs)
	if len(dns) == 0 && len(ips) == 0 {
		dns = []string{req.Name}
	}
	cert, err := ca.SignCSR([]byte(req.CSR), pki.SignRequest{Identity: ident, Usage: pki.UsageServerAndClient, DNSNames: dns, IPs: ips}, c.now())
	if err != nil {
		return apiserver.CertificateResponse{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	return apiserver.CertificateResponse{Certificate: string(cert), CA: string(c.pki.caPEM)}, nil
}

// tokenService adapts tokens to apiserver.TokenService.
type tokenService struct{ t *tokens }

func (s tokenService) CreateToken(ctx context.Context, req apiserver.TokenRequest) (apiserver.CreatedToken, error) {
	var ttl time.Duration
	if req.TTL != "" && req.TTL != "0" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return apiserver.CreatedToken{}, fmt.Errorf("%w: ttl %q: %v", store.ErrInvalid, req.TTL, err)
		}
		ttl = d
	}
	tok, rec, err := s.t.Create(ctx, TokenSpec{Usage: req.Usage, Role: req.Role, Namespace: req.Namespace, TTL: ttl, Description: req.Description})
	if err != nil {
		return apiserver.CreatedToken{}, err
	}
	out := apiserver.CreatedToken{TokenInfo: tokenInfo(rec), Token: tok.String()}
	if req.Usage == api.TokenUsageUser {
		out.Token = tok.ID + "." + tok.Secret // a bearer credential: no CA pin
	}
	return out, nil
}

func (s tokenService) ListTokens() []apiserver.TokenInfo {
	var out []apiserver.TokenInfo
	for _, r := range s.t.List() {
		out = append(out, tokenInfo(r))
	}
	return out
}

func (s tokenService) RevokeToken(ctx context.Context, id string) error { return s.t.Revoke(ctx, id) }

func tokenInfo(r TokenRecord) apiserver.TokenInfo {
	return apiserver.TokenInfo{ID: r.ID, Usage: r.Usage, Role: r.Role, Namespace: r.Namespace, Description: r.Description, Created: r.Created, Expires: r.Expires}
}

// podLookup implements auth.PodLookup over the local store.
type podLookup struct{ st *store.Store }

func (l podLookup) PodNode(namespace, name string) (string, bool) {
	o, err := l.st.Get(store.Key{Kind: api.KindPod, Namespace: namespace, Name: name})
	if err != nil {
		return "", false
	}
	return o.(*api.Pod).Spec.NodeName, true
}

// renewLoop re-issues this server's certificate when a third of its
// lifetime remains (checked hourly; a server's key never leaves it), and
// swaps it in without restarting any listener.
func (p *serverPKI) renewLoop(ctx context.Context, id pki.Identity, sans []string, log interface{ Warn(string, ...any) }) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := p.renewIfDue(id, sans, time.Now()); err != nil {
			log.Warn("renew the server certificate", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *serverPKI) renewIfDue(id pki.Identity, sans []string, now time.Time) error {
	cur := p.cert.Current()
	if cur == nil || len(cur.Certificate) == 0 {
		return nil
	}
	certPEM := pemCert(cur.Certificate[0])
	due, _ := pki.NeedsRenewal(certPEM, now)
	if !due || p.CA() == nil {
		return nil
	}
	b, err := p.issueServer(id, sans)
	if err != nil {
		return err
	}
	c, err := pki.TLSCertificate(b)
	if err != nil {
		return err
	}
	p.cert.Set(c)
	return nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
