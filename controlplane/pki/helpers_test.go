package pki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// t0 is the fixed clock of the tests that do not need real time.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA("skiff-test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issueBundle generates a key and has ca issue a certificate for it through
// a CSR, as an agent would.
func issueBundle(t *testing.T, ca *CA, req SignRequest, now time.Time) Bundle {
	t.Helper()
	key, keyPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, req.Identity, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csr, req, now)
	if err != nil {
		t.Fatal(err)
	}
	return Bundle{CertPEM: certPEM, KeyPEM: keyPEM}
}

func tlsCert(t *testing.T, b Bundle) tls.Certificate {
	t.Helper()
	c, err := TLSCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
