package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
)

// PEM block types.
const (
	pemCertificate   = "CERTIFICATE"
	pemPrivateKey    = "PRIVATE KEY"    // PKCS#8
	pemECPrivateKey  = "EC PRIVATE KEY" // SEC 1, accepted on load
	pemCertificateRQ = "CERTIFICATE REQUEST"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrIdentityMismatch: a CSR asks for another identity than the one
	// the signer authorised.
	ErrIdentityMismatch = errors.New("identity mismatch")
	// ErrKeyMismatch: a private key does not belong to its certificate.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrExpired: a certificate is past its NotAfter.
	ErrExpired = errors.New("certificate expired")
)

// GenerateKey returns a new ECDSA P-256 key and its PKCS#8 PEM.
func GenerateKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return key, encodeKeyPEM(der), nil
}

// ParseKeyPEM parses an ECDSA private key from a PKCS#8 "PRIVATE KEY" or a
// SEC 1 "EC PRIVATE KEY" PEM block.
func ParseKeyPEM(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, err := decodePEM(keyPEM, pemPrivateKey, pemECPrivateKey)
	if err != nil {
		return nil, err
	}
	if block.Type == pemECPrivateKey {
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse EC private key: %w", err)
		}
		return key, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want ECDSA", k)
	}
	return key, nil
}

// ParseCertPEM parses the first certificate of a PEM file.
func ParseCertPEM(certPEM []byte) (*x509.Certificate, error) {
	block, err := decodePEM(certPEM, pemCertificate)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// NewCSR returns a PEM certificate signing request for id, signed by key.
// The SANs are a wish: SignCSR issues the SANs its caller allows.
func NewCSR(key *ecdsa.PrivateKey, id Identity, dnsNames []string, ips []net.IP) ([]byte, error) {
	if id.CommonName == "" {
		return nil, errors.New("pki: CSR common name is empty")
	}
	tmpl := &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: id.CommonName, Organization: id.Organizations},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificateRQ, Bytes: der}), nil
}

// parseCSRPEM parses a CSR and checks its self-signature: the requester
// holds the private key of the public key it wants certified.
func parseCSRPEM(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, err := decodePEM(csrPEM, pemCertificateRQ)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature: %w", err)
	}
	return csr, nil
}

// decodePEM returns the first PEM block, which must be of one of types.
func decodePEM(data []byte, types ...string) (*pem.Block, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block, want %q", types[0])
	}
	for _, t := range types {
		if block.Type == t {
			return block, nil
		}
	}
	return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, types[0])
}

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func encodeKeyPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der})
}
