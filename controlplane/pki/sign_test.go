package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSignCSRIdentity(t *testing.T) {
	ca := newTestCA(t, t0)
	key, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		csrID   Identity
		allowed Identity
		wantErr []string // substrings; nil means success
	}{
		{name: "own node name", csrID: NodeIdentity("a"), allowed: NodeIdentity("a")},
		{name: "another node's name", csrID: NodeIdentity("b"), allowed: NodeIdentity("a"),
			wantErr: []string{`CN="system:node:b"`, `CN="system:node:a"`}},
		{name: "extra group", csrID: Identity{CommonName: "system:node:a", Organizations: []string{GroupNodes, GroupMasters}}, allowed: NodeIdentity("a"),
			wantErr: []string{`system:masters`, `O=["system:nodes"]`}},
		{name: "missing group", csrID: Identity{CommonName: "system:node:a"}, allowed: NodeIdentity("a"),
			wantErr: []string{`O=[]`, `O=["system:nodes"]`}},
		{name: "group instead of another", csrID: Identity{CommonName: "system:node:a", Organizations: []string{GroupServers}}, allowed: NodeIdentity("a"),
			wantErr: []string{`system:servers`}},
		{name: "groups in another order", csrID: Identity{CommonName: "u", Organizations: []string{"b", "a"}},
			allowed: Identity{CommonName: "u", Organizations: []string{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := NewCSR(key, tt.csrID, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			certPEM, err := ca.SignCSR(csr, SignRequest{Identity: tt.allowed, Usage: UsageClient}, t0)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("SignCSR: %v", err)
				}
				if got := IdentityFromCert(parseCert(t, certPEM)); !got.Equal(tt.allowed) {
					t.Errorf("certificate identity %v, want %v", got, tt.allowed)
				}
				return
			}
			if !errors.Is(err, ErrIdentityMismatch) {
				t.Fatalf("SignCSR error = %v, want ErrIdentityMismatch", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
		})
	}
}

func TestSignCSRRejectsBadCSR(t *testing.T) {
	ca := newTestCA(t, t0)
	key, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err := NewCSR(key, NodeIdentity("a"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:a", Organization: []string{GroupNodes}}}, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224CSR, err := NewCSR(p224, NodeIdentity("a"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		csr     []byte
		wantErr string
	}{
		{name: "not PEM", csr: []byte("hello"), wantErr: "no PEM block"},
		{name: "certificate instead of CSR", csr: ca.CertPEM(), wantErr: `want "CERTIFICATE REQUEST"`},
		{name: "bad signature", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), wantErr: "CSR signature"},
		{name: "RSA key", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: rsaCSR}), wantErr: "is not allowed"},
		{name: "weak curve", csr: p224CSR, wantErr: "P-224 is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignCSR(tt.csr, SignRequest{Identity: NodeIdentity("a"), Usage: UsageClient}, t0)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SignCSR error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestIssuedCertificateVerifies(t *testing.T) {
	ca := newTestCA(t, t0)
	foreign := newTestCA(t, t0)
	server := SignRequest{
		Identity: ServerIdentity("s1"),
		Usage:    UsageServer,
		DNSNames: []string{"localhost", "s1.skiff.internal"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.7")},
	}
	key, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks for a SAN the signer does not allow: it must not appear.
	csr, err := NewCSR(key, server.Identity, []string{"evil.example.com"}, []net.IP{net.ParseIP("8.8.8.8")})
	if err != nil {
		t.Fatal(err)
	}
	serverPEM, err := ca.SignCSR(csr, server, t0)
	if err != nil {
		t.Fatal(err)
	}
	foreignPEM := issueBundle(t, foreign, SignRequest{Identity: ServerIdentity("s1"), Usage: UsageServer, DNSNames: []string{"localhost"}}, t0).CertPEM
	clientPEM := issueBundle(t, ca, SignRequest{Identity: NodeIdentity("a"), Usage: UsageClient}, t0).CertPEM
	bothPEM := issueBundle(t, ca, SignRequest{Identity: ServerIdentity("s2"), Usage: UsageServerAndClient, DNSNames: []string{"s2"}}, t0).CertPEM

	serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tests := []struct {
		name    string
		cert    []byte
		host    string
		usage   []x509.ExtKeyUsage
		at      time.Time
		wantErr string
	}{
		{name: "server by DNS name", cert: serverPEM, host: "s1.skiff.internal", usage: serverAuth},
		{name: "server by localhost", cert: serverPEM, host: "localhost", usage: serverAuth},
		{name: "server by IP", cert: serverPEM, host: "10.0.0.7", usage: serverAuth},
		{name: "server, host not in SANs", cert: serverPEM, host: "other.skiff.internal", usage: serverAuth, wantErr: "certificate is valid for"},
		{name: "server, IP not in SANs", cert: serverPEM, host: "10.0.0.8", usage: serverAuth, wantErr: "certificate is valid for"},
		{name: "server, SAN only the CSR asked for", cert: serverPEM, host: "evil.example.com", usage: serverAuth, wantErr: "certificate is valid for"},
		{name: "server used as client", cert: serverPEM, usage: clientAuth, wantErr: "incompatible key usage"},
		{name: "server before NotBefore skew", cert: serverPEM, host: "localhost", usage: serverAuth, at: t0.Add(-6 * time.Minute), wantErr: "expired or is not yet valid"},
		{name: "server after a year", cert: serverPEM, host: "localhost", usage: serverAuth, at: t0.Add(DefaultServerTTL + time.Second), wantErr: "expired or is not yet valid"},
		{name: "another CA", cert: foreignPEM, host: "localhost", usage: serverAuth, wantErr: "certificate signed by unknown authority"},
		{name: "client", cert: clientPEM, usage: clientAuth},
		{name: "client used as server", cert: clientPEM, usage: serverAuth, wantErr: "incompatible key usage"},
		{name: "server-and-client as server", cert: bothPEM, host: "s2", usage: serverAuth},
		{name: "server-and-client as client", cert: bothPEM, usage: clientAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			if at.IsZero() {
				at = t0
			}
			_, err := parseCert(t, tt.cert).Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: tt.host, CurrentTime: at, KeyUsages: tt.usage})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify error = %v, want %q", err, tt.wantErr)
			}
		})
	}

	c := parseCert(t, serverPEM)
	if !slices.Equal(c.DNSNames, server.DNSNames) || len(c.IPAddresses) != 2 {
		t.Errorf("SANs = %v %v, want %v %v", c.DNSNames, c.IPAddresses, server.DNSNames, server.IPs)
	}
	if !slices.Equal(c.ExtKeyUsage, serverAuth) || c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
		t.Errorf("server cert usage: ext=%v key=%v isCA=%v", c.ExtKeyUsage, c.KeyUsage, c.IsCA)
	}
	if c.SerialNumber.Cmp(parseCert(t, clientPEM).SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestIssueValidity(t *testing.T) {
	ca := newTestCA(t, t0)
	key, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		req          SignRequest
		now          time.Time
		wantNotAfter time.Time
		wantErr      string
	}{
		{name: "client default TTL", req: SignRequest{Identity: AdminIdentity(), Usage: UsageClient}, now: t0, wantNotAfter: t0.Add(DefaultClientTTL)},
		{name: "server default TTL", req: SignRequest{Identity: ServerIdentity("s"), Usage: UsageServer, DNSNames: []string{"s"}}, now: t0, wantNotAfter: t0.Add(DefaultServerTTL)},
		{name: "explicit TTL", req: SignRequest{Identity: AdminIdentity(), Usage: UsageClient, TTL: time.Hour}, now: t0, wantNotAfter: t0.Add(time.Hour)},
		{name: "capped at the CA's NotAfter", req: SignRequest{Identity: AdminIdentity(), Usage: UsageClient}, now: t0.Add(caValidity - 24*time.Hour), wantNotAfter: t0.Add(caValidity)},
		{name: "CA expired", req: SignRequest{Identity: AdminIdentity(), Usage: UsageClient}, now: t0.Add(caValidity), wantErr: "expired"},
		{name: "server without SANs", req: SignRequest{Identity: ServerIdentity("s"), Usage: UsageServerAndClient}, wantErr: "needs at least one DNS name or IP"},
		{name: "no usage", req: SignRequest{Identity: AdminIdentity()}, wantErr: "usage"},
		{name: "empty name", req: SignRequest{Usage: UsageClient}, wantErr: "empty common name"},
		{name: "negative TTL", req: SignRequest{Identity: AdminIdentity(), Usage: UsageClient, TTL: -time.Hour}, wantErr: "negative TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			certPEM, err := ca.Issue(&key.PublicKey, tt.req, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Issue error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := parseCert(t, certPEM)
			if !c.NotBefore.Equal(now.Add(-leafClockSkew)) || !c.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("validity %v .. %v, want %v .. %v", c.NotBefore, c.NotAfter, now.Add(-leafClockSkew), tt.wantNotAfter)
			}
		})
	}
}

func TestIdentityHelpers(t *testing.T) {
	if name, ok := NodeIdentity("worker-1").NodeName(); !ok || name != "worker-1" {
		t.Errorf("NodeName() = %q, %v", name, ok)
	}
	for _, id := range []Identity{
		ServerIdentity("worker-1"),
		AdminIdentity(),
		{CommonName: "system:node:x"}, // not in system:nodes
		{CommonName: "system:node:", Organizations: []string{GroupNodes}}, // no name
	} {
		if name, ok := id.NodeName(); ok {
			t.Errorf("%v.NodeName() = %q, true", id, name)
		}
	}
	if !AdminIdentity().InGroup(GroupMasters) || NodeIdentity("a").InGroup(GroupMasters) {
		t.Error("InGroup")
	}
	if got := ServerIdentity("s1"); got.CommonName != "system:server:s1" || !got.InGroup(GroupServers) {
		t.Errorf("ServerIdentity = %v", got)
	}
}
