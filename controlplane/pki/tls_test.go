package pki

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake over a pipe and a one-byte exchange (in
// TLS 1.3 the client finishes its handshake before the server has checked
// the client certificate; the server's verdict arrives on the first read).
// It returns the server's and the client's errors.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	sc, cc := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		// Close the pipe, not the tls.Conn: a close_notify written into a
		// pipe nobody reads would block for tls's 5s timeout.
		defer sc.Close()
		if err := s.Handshake(); err != nil {
			done <- err
			return
		}
		_, err := s.Write([]byte{1})
		done <- err
	}()
	c := tls.Client(cc, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(c, make([]byte, 1))
	}
	cc.Close()
	return <-done, clientErr
}

func TestMutualTLS(t *testing.T) {
	now := time.Now() // crypto/tls verifies against the real clock
	ca := newTestCA(t, now)
	foreign := newTestCA(t, now)
	serverCert := tlsCert(t, issueBundle(t, ca, SignRequest{
		Identity: ServerIdentity("s1"), Usage: UsageServerAndClient,
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, now))
	peerCert := tlsCert(t, issueBundle(t, ca, SignRequest{
		Identity: ServerIdentity("s2"), Usage: UsageServerAndClient, DNSNames: []string{"s2"},
	}, now))
	nodeCert := tlsCert(t, issueBundle(t, ca, SignRequest{Identity: NodeIdentity("a"), Usage: UsageClient}, now))
	foreignCert := tlsCert(t, issueBundle(t, foreign, SignRequest{Identity: NodeIdentity("a"), Usage: UsageClient}, now))
	foreignServer := tlsCert(t, issueBundle(t, foreign, SignRequest{Identity: ServerIdentity("s1"), Usage: UsageServer, DNSNames: []string{"localhost"}}, now))
	nodeServing := tlsCert(t, issueBundle(t, ca, SignRequest{Identity: NodeIdentity("a"), Usage: UsageServerAndClient, DNSNames: []string{"localhost"}}, now))
	serverOnly := tlsCert(t, issueBundle(t, ca, SignRequest{Identity: ServerIdentity("s3"), Usage: UsageServer, DNSNames: []string{"s3"}}, now))

	api := ServerTLSConfig(serverCert, ca.Pool(), tls.RequireAndVerifyClientCert)
	optional := ServerTLSConfig(serverCert, ca.Pool(), tls.VerifyClientCertIfGiven)
	raft := ServerTLSConfig(serverCert, ca.Pool(), tls.RequireAndVerifyClientCert)
	raft.VerifyConnection = RequirePeerGroup(GroupServers)
	raftDialer := ClientTLSConfig(ca.Pool(), &peerCert, "localhost")
	raftDialer.VerifyConnection = RequirePeerGroup(GroupServers)

	tests := []struct {
		name      string
		server    *tls.Config
		client    *tls.Config
		wantErr   string // substring of the first error; "" means success
		wantGroup string // when set, the server saw a client of this group
	}{
		{name: "node client cert", server: api, client: ClientTLSConfig(ca.Pool(), &nodeCert, "localhost"), wantGroup: GroupNodes},
		{name: "by IP SAN", server: api, client: ClientTLSConfig(ca.Pool(), &nodeCert, "127.0.0.1")},
		{name: "client cert from a foreign CA", server: api, client: ClientTLSConfig(ca.Pool(), &foreignCert, "localhost"), wantErr: "unknown certificate authority"},
		{name: "no client cert", server: api, client: ClientTLSConfig(ca.Pool(), nil, "localhost"), wantErr: "certificate required"},
		{name: "server cert lacks client usage", server: api, client: ClientTLSConfig(ca.Pool(), &serverOnly, "localhost"), wantErr: "bad certificate"},
		{name: "no client cert, optional", server: optional, client: ClientTLSConfig(ca.Pool(), nil, "localhost")},
		{name: "foreign client cert, optional", server: optional, client: ClientTLSConfig(ca.Pool(), &foreignCert, "localhost"), wantErr: "unknown certificate authority"},
		{name: "server name not in SANs", server: api, client: ClientTLSConfig(ca.Pool(), &nodeCert, "s9.example.com"), wantErr: "certificate is valid for"},
		{name: "server from a foreign CA", server: ServerTLSConfig(foreignServer, ca.Pool(), tls.RequireAndVerifyClientCert),
			client: ClientTLSConfig(ca.Pool(), &nodeCert, "localhost"), wantErr: "certificate signed by unknown authority"},
		{name: "TLS 1.2 client refused", server: api, client: func() *tls.Config {
			c := ClientTLSConfig(ca.Pool(), &nodeCert, "localhost")
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return c
		}(), wantErr: "protocol version"},
		{name: "raft peer", server: raft, client: raftDialer, wantGroup: GroupServers},
		{name: "raft: node cert of this cluster cannot join", server: raft, client: func() *tls.Config {
			c := ClientTLSConfig(ca.Pool(), &nodeCert, "localhost")
			c.VerifyConnection = RequirePeerGroup(GroupServers)
			return c
		}(), wantErr: `not in group "system:servers"`},
		{name: "raft: dialer refuses a node posing as a peer", server: ServerTLSConfig(nodeServing, ca.Pool(), tls.RequireAndVerifyClientCert),
			client: raftDialer, wantErr: `peer CN="system:node:a" O=["system:nodes"] is not in group "system:servers"`},
		{name: "raft: no cert cannot join", server: raft, client: ClientTLSConfig(ca.Pool(), nil, "localhost"), wantErr: "certificate required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen Identity
			server := tt.server.Clone()
			prev := server.VerifyConnection
			server.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					seen = IdentityFromCert(cs.PeerCertificates[0])
				}
				if prev != nil {
					return prev(cs)
				}
				return nil
			}
			serverErr, clientErr := handshake(t, server, tt.client)
			err := errors.Join(serverErr, clientErr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("handshake: server %v; client %v", serverErr, clientErr)
				}
				if tt.wantGroup != "" && !seen.InGroup(tt.wantGroup) {
					t.Errorf("server saw %v, want group %s", seen, tt.wantGroup)
				}
				return
			}
			if err == nil {
				t.Fatalf("handshake succeeded, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("handshake: server %v; client %v; want %q", serverErr, clientErr, tt.wantErr)
			}
		})
	}
}

func TestReloadingCertificate(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	req := SignRequest{Identity: ServerIdentity("s1"), Usage: UsageServerAndClient, DNSNames: []string{"localhost"}}
	first := tlsCert(t, issueBundle(t, ca, req, now))
	second := tlsCert(t, issueBundle(t, ca, req, now))
	node := NewReloadingCertificate(tlsCert(t, issueBundle(t, ca, SignRequest{Identity: NodeIdentity("a"), Usage: UsageClient}, now)))

	var empty ReloadingCertificate
	if _, err := empty.GetCertificate(nil); err == nil {
		t.Error("GetCertificate with no certificate succeeded")
	}

	r := NewReloadingCertificate(first)
	server := r.ServerTLSConfig(ca.Pool(), tls.RequireAndVerifyClientCert)
	for i, want := range []tls.Certificate{first, second} {
		r.Set(want)
		var got []byte
		client := node.ClientTLSConfig(ca.Pool(), "localhost")
		client.VerifyConnection = func(cs tls.ConnectionState) error {
			got = cs.PeerCertificates[0].Raw
			return nil
		}
		if serverErr, clientErr := handshake(t, server, client); serverErr != nil || clientErr != nil {
			t.Fatalf("handshake %d: server %v; client %v", i, serverErr, clientErr)
		}
		if string(got) != string(want.Leaf.Raw) {
			t.Errorf("handshake %d: server presented serial %v, want %v", i, r.Current().Leaf.SerialNumber, want.Leaf.SerialNumber)
		}
	}
}
