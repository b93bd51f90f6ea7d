package raftnode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// testCA issues certificates for the TLS tests (the real CA lives in
// controlplane/pki; this keeps raftnode's tests free of it).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, cn, org string) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{org}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) peer(t *testing.T, cn, org string) *PeerTLS {
	c := ca.issue(t, cn, org)
	return &PeerTLS{Certificate: func() (*tls.Certificate, error) { return c, nil }, CA: ca.pool, Group: "system:servers"}
}

func startTLS(t *testing.T, id string, bootstrap bool, p *PeerTLS) *member {
	t.Helper()
	fsm := store.NewFSM()
	n, err := New(Config{ID: ServerID(id), DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", Bootstrap: bootstrap, TLS: p,
		Logger: discard(), RaftLogLevel: "off"}, fsm)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{node: n, store: store.New(fsm, n, store.Options{})}
	t.Cleanup(m.stop)
	return m
}

func TestTLSClusterReplicatesAndFailsOver(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	a := startTLS(t, "a", true, ca.peer(t, "system:server:a", "system:servers"))
	waitLeader(t, a)
	b := startTLS(t, "b", false, ca.peer(t, "system:server:b", "system:servers"))
	c := startTLS(t, "c", false, ca.peer(t, "system:server:c", "system:servers"))
	for _, m := range []*member{b, c} {
		if err := a.node.AddVoter(ctx, m.node.ID(), m.node.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.store.Create(ctx, ns("over-tls")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.store.LastIndex() < a.store.LastIndex() || c.store.LastIndex() < a.store.LastIndex() {
		if time.Now().After(deadline) {
			t.Fatal("followers did not catch up over TLS")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.stop()
	leader := waitLeader(t, b, c)
	if _, err := leader.store.Create(ctx, ns("after")); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.store.Get(store.Key{Kind: api.KindNamespace, Name: "over-tls"}); err != nil {
		t.Fatalf("write made over TLS lost: %v", err)
	}
}

// A peer without a certificate of this cluster's control plane can neither
// talk to a server's Raft port nor be talked to.
func TestTLSRejectsForeignPeers(t *testing.T) {
	ca := newTestCA(t)
	a := startTLS(t, "a", true, ca.peer(t, "system:server:a", "system:servers"))
	waitLeader(t, a)
	addr := a.node.Addr()

	cases := []struct {
		name string
		peer *PeerTLS
	}{
		{"certificate from another CA", func() *PeerTLS {
			other := newTestCA(t)
			p := other.peer(t, "system:server:x", "system:servers")
			p.CA = ca.pool // it even trusts our CA: its own certificate is still foreign
			return p
		}()},
		{"node certificate of this cluster", ca.peer(t, "system:node:n1", "system:nodes")},
		{"no certificate", &PeerTLS{Certificate: func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }, CA: ca.pool, Group: "system:servers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, c.peer.clientConfig())
			if err == nil {
				// TLS 1.3: the server checks the client's certificate after
				// the client's side of the handshake; its refusal arrives on
				// the first read.
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				conn.Write([]byte{0})
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil {
				t.Fatal("the server accepted a Raft connection from a foreign peer")
			}
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("no refusal, only a timeout: %v", err)
			}
		})
	}

	// And the server refuses to add such a peer's traffic to the group: a
	// voter whose transport cannot authenticate never receives the log.
	intruder := startTLS(t, "x", false, ca.peer(t, "system:node:x", "system:nodes"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.node.AddVoter(ctx, intruder.node.ID(), intruder.node.Addr())
	time.Sleep(300 * time.Millisecond)
	if got := intruder.store.LastIndex(); got != 0 {
		t.Fatalf("a peer with a node certificate received the log up to %d", got)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
