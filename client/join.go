package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
)

// The join handshake, shared by joining servers and node agents:
//
//  1. FetchPinnedCA downloads the cluster CA (GET /skiff/v1/ca) without
//     trusting the server, and compares its SHA-256 with the token's pin.
//     Nothing secret is sent before the pin matched.
//  2. RequestCertificate sends a CSR with the token as a bearer credential
//     (POST /skiff/v1/certificates) to a server that presents a certificate
//     of the pinned CA. The signer decides the identity from the token's
//     usage and the requested name; the private key never leaves the joiner.

// Paths of the handshake (the API server's auth.PathCA and
// auth.PathCertificates).
const (
	pathCA           = "/skiff/v1/ca"
	pathCertificates = "/skiff/v1/certificates"
)

// Identities of node credentials, as the signer issues them (Kubernetes'
// names): the CSR's subject must be exactly this.
const (
	nodeUserPrefix = "system:node:"
	groupNodes     = "system:nodes"
)

// CertificateRequest is the body of POST /skiff/v1/certificates: a CSR for
// a joining server (usage server) or node agent (usage agent), sent with
// the join token as a bearer credential. It mirrors the API server's
// apiserver.CertificateRequest field for field (the server rejects unknown
// fields).
type CertificateRequest struct {
	CSR       string         `json:"csr"`
	Usage     api.TokenUsage `json:"usage"`
	Name      string         `json:"name"`                // server ID or node name
	Addresses []string       `json:"addresses,omitempty"` // host names and IPs for the certificate
}

// CertificateResponse carries the signed certificate and the CA (PEM).
type CertificateResponse struct {
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// ServerURL turns a join address (host:port, or an http(s) URL) into the
// https base URL of the API: every skiff API is TLS.
func ServerURL(addr string) string {
	if strings.HasPrefix(addr, "https://") {
		return addr
	}
	if rest, ok := strings.CutPrefix(addr, "http://"); ok {
		return "https://" + rest
	}
	return "https://" + addr
}

// PinnedTLSConfig trusts exactly the CAs of pool, without host-name checks:
// the CA itself was verified against a token's hash, so any certificate it
// issued is the cluster's. clientCert (may be nil) presents a certificate.
func PinnedTLSConfig(pool *x509.CertPool, clientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		InsecureSkipVerify:   true, // replaced by VerifyConnection against the pinned pool
		GetClientCertificate: clientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			if err != nil {
				return fmt.Errorf("server certificate not issued by the cluster CA: %w", err)
			}
			return nil
		},
	}
}

// caHash is the pin of a CA certificate: the lower-case hex SHA-256 of its
// DER, what join tokens carry.
func caHash(certPEM []byte) (string, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse certificate: %w", err)
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:]), nil
}

// FetchPinnedCA downloads the cluster CA from a server and checks it
// against the token's pin. Nothing secret is sent: a mismatch aborts
// before the token's secret could reach an impostor.
func FetchPinnedCA(ctx context.Context, addr string, tok api.JoinToken) ([]byte, error) {
	if tok.CAHash == "" {
		return nil, errors.New("the token does not pin the cluster CA (want K10<sha256>::<id>.<secret>); refusing to send its secret to an unverified server")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		// The CA is not known yet: accept any certificate for this one
		// download and verify what it returns against the pin.
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ServerURL(addr)+pathCA, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the cluster CA from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	pem, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the cluster CA from %s: %s %v", addr, resp.Status, err)
	}
	got, err := caHash(pem)
	if err != nil {
		return nil, fmt.Errorf("the CA served by %s: %w", addr, err)
	}
	if got != tok.CAHash {
		return nil, fmt.Errorf("the CA served by %s has sha256 %s but the token pins %s: not this cluster (or an impostor); the token's secret was not sent", addr, got, tok.CAHash)
	}
	return pem, nil
}

// RequestCertificate sends a CSR with a join token to a server that
// presents a certificate of the pinned CA (caPEM, from FetchPinnedCA). It
// opens a connection for this one request; a Joiner reuses connections
// across many.
func RequestCertificate(ctx context.Context, addr string, caPEM []byte, tok api.JoinToken, creq CertificateRequest) (*CertificateResponse, error) {
	hc, err := pinnedHTTPClient(caPEM, true)
	if err != nil {
		return nil, err
	}
	return requestCertificate(ctx, hc, addr, tok, creq)
}

func pinnedHTTPClient(caPEM []byte, oneShot bool) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("client: the cluster CA holds no PEM certificate")
	}
	t := &http.Transport{
		TLSClientConfig:     PinnedTLSConfig(pool, nil),
		DisableKeepAlives:   oneShot,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: t}, nil
}

func requestCertificate(ctx context.Context, hc *http.Client, addr string, tok api.JoinToken, creq CertificateRequest) (*CertificateResponse, error) {
	body, err := json.Marshal(creq)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ServerURL(addr)+pathCertificates, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.ID+"."+tok.Secret)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("request a certificate from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("request a certificate from %s: %s: %w", addr, resp.Status, decodeStatus(resp, b))
	}
	var out CertificateResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("request a certificate from %s: %w", addr, err)
	}
	return &out, nil
}

// Joiner obtains node credentials from one cluster: it pins the CA once
// and keeps a small pool of connections for the CSRs, so many nodes (a
// simulator's thousands) join without a TLS handshake each. It is safe for
// concurrent use; Close releases its connections.
type Joiner struct {
	servers []string
	tok     api.JoinToken
	caPEM   []byte
	hc      *http.Client
}

// NewJoiner fetches the cluster CA from the first of servers that answers
// and checks it against the token's pin (see FetchPinnedCA).
func NewJoiner(ctx context.Context, servers []string, tok api.JoinToken) (*Joiner, error) {
	if len(servers) == 0 {
		return nil, errors.New("client: no server to join through")
	}
	var errs []error
	for _, s := range servers {
		caPEM, err := FetchPinnedCA(ctx, s, tok)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		hc, err := pinnedHTTPClient(caPEM, false)
		if err != nil {
			return nil, err
		}
		return &Joiner{servers: servers, tok: tok, caPEM: caPEM, hc: hc}, nil
	}
	return nil, errors.Join(errs...)
}

// CAPEM is the pinned cluster CA.
func (j *Joiner) CAPEM() []byte { return j.caPEM }

// Close closes the idle connections of the CSR pool.
func (j *Joiner) Close() { j.hc.CloseIdleConnections() }

// RequestCertificate sends creq to the servers in turn until one signs.
func (j *Joiner) RequestCertificate(ctx context.Context, creq CertificateRequest) (*CertificateResponse, error) {
	var errs []error
	for _, s := range j.servers {
		resp, err := requestCertificate(ctx, j.hc, s, j.tok, creq)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// JoinNode obtains the credential of node name: a new ECDSA P-256 key
// (kept here), a CSR for system:node:<name> in system:nodes signed through
// the agent token, and returns a client Config for the cluster with that
// certificate (servers as https URLs, the pinned CA). addresses are the
// host names and IPs the certificate will also serve under (the agent's
// own endpoint).
func (j *Joiner) JoinNode(ctx context.Context, name string, addresses []string) (Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Config{}, fmt.Errorf("client: generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: nodeUserPrefix + name, Organization: []string{groupNodes}},
	}, key)
	if err != nil {
		return Config{}, fmt.Errorf("client: create CSR: %w", err)
	}
	resp, err := j.RequestCertificate(ctx, CertificateRequest{
		CSR:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		Usage:     api.TokenUsageAgent,
		Name:      name,
		Addresses: addresses,
	})
	if err != nil {
		return Config{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Config{}, fmt.Errorf("client: encode key: %w", err)
	}
	cfg := Config{
		APIVersion:               ConfigAPIVersion,
		Kind:                     ConfigKind,
		CertificateAuthorityData: string(j.caPEM),
		ClientCertificateData:    resp.Certificate,
		ClientKeyData:            string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	for _, s := range j.servers {
		cfg.Servers = append(cfg.Servers, strings.TrimRight(ServerURL(s), "/"))
	}
	return cfg, nil
}
