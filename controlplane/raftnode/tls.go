package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// PeerTLS makes the Raft transport mutual TLS: every connection, in and
// out, presents this server's certificate and accepts the peer only if its
// certificate chains to CA and names Group among its organizations. Peers
// are recognised by certificate, not by address, so a server keeps its
// identity when it restarts on another port.
type PeerTLS struct {
	// Certificate returns this server's current certificate (it may be
	// renewed while running).
	Certificate func() (*tls.Certificate, error)
	CA          *x509.CertPool
	Group       string // e.g. "system:servers"
}

func (p *PeerTLS) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("raft peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.CA, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("raft peer %q: certificate not issued by this cluster's CA: %w", leaf.Subject.CommonName, err)
	}
	if !slices.Contains(leaf.Subject.Organization, p.Group) {
		return fmt.Errorf("raft peer %q is not a control-plane server (organizations %v, want %q)", leaf.Subject.CommonName, leaf.Subject.Organization, p.Group)
	}
	return nil
}

func (p *PeerTLS) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.Certificate()
		},
		ClientAuth:       tls.RequireAnyClientCert, // verified below, chain and group
		VerifyConnection: p.verify,
	}
}

func (p *PeerTLS) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.Certificate()
		},
		// Chain and group are checked in VerifyConnection; the host name is
		// not, since peers are dialled by address.
		InsecureSkipVerify: true,
		VerifyConnection:   p.verify,
	}
}

// tlsStream is a raft.StreamLayer over mutual TLS.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

var _ raft.StreamLayer = (*tlsStream)(nil)

func newTLSStream(bind string, advertise net.Addr, p *PeerTLS) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if a, ok := advertise.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %s is not advertisable: give an advertise address", advertise)
	}
	return &tlsStream{Listener: tls.NewListener(ln, p.serverConfig()), advertise: advertise, client: p.clientConfig()}, nil
}

func (s *tlsStream) Addr() net.Addr { return s.advertise }

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(addr), s.client)
	if err != nil {
		return nil, err
	}
	return conn, nil
}
