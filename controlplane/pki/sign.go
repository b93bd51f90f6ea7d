package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"time"
)

// Usage is what a certificate may be used for (its extended key usages).
type Usage string

const (
	// UsageServer: TLS server authentication (the API, an agent's endpoint).
	UsageServer Usage = "server"
	// UsageClient: TLS client authentication (nodes, the admin).
	UsageClient Usage = "client"
	// UsageServerAndClient: both, for servers that also dial their peers
	// (the Raft transport, the API server calling agents).
	UsageServerAndClient Usage = "server-and-client"
)

// Default lifetimes of issued certificates when SignRequest.TTL is zero.
// Renewal starts when a third remains (NeedsRenewal).
const (
	DefaultServerTTL = 365 * 24 * time.Hour
	DefaultClientTTL = 365 * 24 * time.Hour
)

// Valid reports whether u is one of the Usage constants.
func (u Usage) Valid() bool {
	switch u {
	case UsageServer, UsageClient, UsageServerAndClient:
		return true
	}
	return false
}

func (u Usage) server() bool { return u == UsageServer || u == UsageServerAndClient }

func (u Usage) extKeyUsage() []x509.ExtKeyUsage {
	switch u {
	case UsageServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case UsageClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
}

// SignRequest is what the signer authorises: the identity, the usage, the
// SANs and the lifetime of the certificate. Everything in the certificate
// comes from here; of a CSR only the public key is used.
type SignRequest struct {
	Identity Identity
	Usage    Usage
	// DNSNames and IPs are the certificate's SANs. They override whatever
	// the CSR asks for: the signer knows which addresses the requester
	// owns, the requester's wish does not count. A server usage needs at
	// least one.
	DNSNames []string
	IPs      []net.IP
	// TTL is the lifetime from now; zero means DefaultServerTTL or
	// DefaultClientTTL. NotAfter never exceeds the CA's own NotAfter.
	TTL time.Duration
}

// SignCSR issues a certificate for the public key of csrPEM. The CSR must be
// signed by its key and its subject must be exactly req.Identity (same
// CommonName, same set of Organizations): a node may ask only for the name
// it authenticated as. Otherwise the error wraps ErrIdentityMismatch and
// names both identities.
func (ca *CA) SignCSR(csrPEM []byte, req SignRequest, now time.Time) ([]byte, error) {
	csr, err := parseCSRPEM(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	asked := Identity{CommonName: csr.Subject.CommonName, Organizations: csr.Subject.Organization}
	if !asked.Equal(req.Identity) {
		return nil, fmt.Errorf("pki: CSR asks for %v, but the signer allows %v: %w", asked, req.Identity, ErrIdentityMismatch)
	}
	return ca.Issue(csr.PublicKey, req, now)
}

// Issue issues a certificate for pub without a CSR: for keys the server
// generates itself (its own serving certificate at bootstrap, the admin
// client certificate in admin.conf).
func (ca *CA) Issue(pub crypto.PublicKey, req SignRequest, now time.Time) ([]byte, error) {
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if req.Identity.CommonName == "" {
		return nil, errors.New("pki: sign request has an empty common name")
	}
	if !req.Usage.Valid() {
		return nil, fmt.Errorf("pki: sign request usage %q is not one of %q, %q, %q", req.Usage, UsageServer, UsageClient, UsageServerAndClient)
	}
	if req.Usage.server() && len(req.DNSNames) == 0 && len(req.IPs) == 0 {
		// TLS clients verify SANs only; a server certificate without them
		// would be refused by every client.
		return nil, fmt.Errorf("pki: %s certificate for %v needs at least one DNS name or IP", req.Usage, req.Identity)
	}
	if req.TTL < 0 {
		return nil, fmt.Errorf("pki: negative TTL %v", req.TTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultClientTTL
		if req.Usage.server() {
			ttl = DefaultServerTTL
		}
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, fmt.Errorf("pki: CA %q expired at %v: %w", ca.cert.Subject.CommonName, ca.cert.NotAfter, ErrExpired)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   req.Identity.CommonName,
			Organization: req.Identity.Organizations,
		},
		NotBefore:             now.Add(-leafClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.Usage.extKeyUsage(),
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate for %v: %w", req.Identity, err)
	}
	return encodeCertPEM(der), nil
}

// checkPublicKey admits the keys skiff generates (ECDSA) and Ed25519; RSA
// and weak curves are refused so every credential has the same strength.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not allowed", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("public key type %T is not allowed, want ECDSA", pub)
}
