package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// caValidity is how long a new CA is valid. Rotating the CA means
// re-issuing every certificate and token, so it is long.
const caValidity = 10 * 365 * 24 * time.Hour

// The clock skews backdate NotBefore so that peers whose clocks lag a little
// accept a certificate issued just now.
const (
	caClockSkew   = time.Hour
	leafClockSkew = 5 * time.Minute
)

// CA is the cluster's certificate authority: its certificate and private
// key. It is immutable and safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
	hash    string
}

// NewCA creates a self-signed CA valid from now-1h for ten years.
func NewCA(commonName string, now time.Time) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("pki: CA common name is empty")
	}
	key, keyPEM, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-caClockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Leaves only: no intermediate CA can be made under this one.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	return LoadCA(encodeCertPEM(der), keyPEM)
}

// LoadCA parses a CA certificate and its private key (PKCS#8 or SEC 1 PEM),
// checking that the certificate is a CA and that the key belongs to it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: certificate %q is not a CA", cert.Subject.CommonName)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: CA key does not match certificate %q: %w", cert.Subject.CommonName, ErrKeyMismatch)
	}
	// Re-encode the key so KeyPEM is always PKCS#8, whatever was loaded.
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA key: %w", err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: encodeCertPEM(cert.Raw),
		keyPEM:  encodeKeyPEM(keyDER),
		hash:    hashDER(cert.Raw),
	}, nil
}

// Cert returns the CA certificate. Callers must not modify it.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM, the file every client trusts.
func (ca *CA) CertPEM() []byte { return clone(ca.certPEM) }

// KeyPEM returns the CA private key as a PKCS#8 "PRIVATE KEY" PEM block.
func (ca *CA) KeyPEM() []byte { return clone(ca.keyPEM) }

// Bundle returns the CA certificate and key, for SaveBundle.
func (ca *CA) Bundle() Bundle { return Bundle{CertPEM: ca.CertPEM(), KeyPEM: ca.KeyPEM()} }

// Pool returns a new pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Hash returns the lower-case hex SHA-256 of the CA certificate's DER: the
// value a join token pins (kubeadm's discovery hash, without "sha256:").
func (ca *CA) Hash() string { return ca.hash }

// HashPEM returns what Hash returns, for a CA certificate in PEM; a joiner
// uses it on the CA it fetched before trusting it.
func HashPEM(certPEM []byte) (string, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	return hashDER(cert.Raw), nil
}

func hashDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
