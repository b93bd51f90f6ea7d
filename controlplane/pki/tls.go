package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// ServerTLSConfig returns a TLS 1.3 server configuration presenting cert
// and verifying client certificates against ca as clientAuth says (the
// API uses VerifyClientCertIfGiven, since bearer tokens are also accepted;
// the Raft transport uses RequireAndVerifyClientCert).
func ServerTLSConfig(cert tls.Certificate, ca *x509.CertPool, clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    ca,
		ClientAuth:   clientAuth,
	}
}

// ClientTLSConfig returns a TLS 1.3 client configuration trusting only ca,
// presenting cert when it is not nil, and expecting serverName in the
// server certificate's SANs.
func ClientTLSConfig(ca *x509.CertPool, cert *tls.Certificate, serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    ca,
		ServerName: serverName,
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// ReloadingCertificate holds the certificate a listener or dialer presents;
// Set swaps it (after renewal) and new handshakes use the new one, without
// restarting anything. The zero value holds no certificate. It is safe for
// concurrent use.
type ReloadingCertificate struct {
	cert atomic.Pointer[tls.Certificate]
}

// NewReloadingCertificate returns a ReloadingCertificate holding cert.
func NewReloadingCertificate(cert tls.Certificate) *ReloadingCertificate {
	r := &ReloadingCertificate{}
	r.Set(cert)
	return r
}

// Set replaces the certificate presented by later handshakes.
func (r *ReloadingCertificate) Set(cert tls.Certificate) { r.cert.Store(&cert) }

// Current returns the certificate held, or nil.
func (r *ReloadingCertificate) Current() *tls.Certificate { return r.cert.Load() }

// GetCertificate is a tls.Config.GetCertificate.
func (r *ReloadingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.cert.Load()
	if c == nil {
		return nil, errors.New("pki: no certificate loaded")
	}
	return c, nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate.
func (r *ReloadingCertificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := r.cert.Load()
	if c == nil {
		// An empty certificate tells the server we have none; it decides.
		return &tls.Certificate{}, nil
	}
	return c, nil
}

// ServerTLSConfig is the package's ServerTLSConfig presenting r's current
// certificate.
func (r *ReloadingCertificate) ServerTLSConfig(ca *x509.CertPool, clientAuth tls.ClientAuthType) *tls.Config {
	cfg := ServerTLSConfig(tls.Certificate{}, ca, clientAuth)
	cfg.Certificates = nil
	cfg.GetCertificate = r.GetCertificate
	return cfg
}

// ClientTLSConfig is the package's ClientTLSConfig presenting r's current
// certificate.
func (r *ReloadingCertificate) ClientTLSConfig(ca *x509.CertPool, serverName string) *tls.Config {
	cfg := ClientTLSConfig(ca, nil, serverName)
	cfg.GetClientCertificate = r.GetClientCertificate
	return cfg
}

// RequirePeerGroup returns a tls.Config.VerifyConnection that accepts only
// a peer whose verified certificate is in group. Every credential of the
// cluster chains to the same CA, so chain verification alone would let a
// node certificate into the Raft group; the Raft transport sets
// RequirePeerGroup(GroupServers) on both its listener and its dialer.
func RequirePeerGroup(group string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		// VerifiedChains is set only when the chain was verified against
		// the pool; PeerCertificates alone would trust anything.
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return fmt.Errorf("pki: peer presented no verified certificate, want group %q", group)
		}
		id := IdentityFromCert(cs.VerifiedChains[0][0])
		if !id.InGroup(group) {
			return fmt.Errorf("pki: peer %v is not in group %q", id, group)
		}
		return nil
	}
}
