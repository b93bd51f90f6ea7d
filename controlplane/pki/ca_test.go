package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
)

func TestCARoundTrip(t *testing.T) {
	ca := newTestCA(t, t0)
	c := ca.Cert()
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero {
		t.Errorf("CA basic constraints: IsCA=%v valid=%v maxPathLenZero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; c.KeyUsage != want {
		t.Errorf("CA KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if !c.NotBefore.Equal(t0.Add(-caClockSkew)) || !c.NotAfter.Equal(t0.Add(caValidity)) {
		t.Errorf("CA validity %v .. %v", c.NotBefore, c.NotAfter)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("CA serial %v is not a positive 128-bit number", c.SerialNumber)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	sum := sha256.Sum256(c.Raw)
	if want := hex.EncodeToString(sum[:]); ca.Hash() != want {
		t.Errorf("Hash() = %s, want %s", ca.Hash(), want)
	}
	if !bytes.HasPrefix(ca.KeyPEM(), []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("KeyPEM is not PKCS#8: %.40q", ca.KeyPEM())
	}

	loaded, err := LoadCA(ca.CertPEM(), ca.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Hash() != ca.Hash() {
		t.Errorf("loaded CA hash %s != %s", loaded.Hash(), ca.Hash())
	}
	h, err := HashPEM(ca.CertPEM())
	if err != nil || h != ca.Hash() {
		t.Errorf("HashPEM = %s, %v; want %s", h, err, ca.Hash())
	}
	// A certificate issued by the original verifies against the loaded
	// CA's pool: same key, same certificate.
	b := issueBundle(t, loaded, SignRequest{Identity: AdminIdentity(), Usage: UsageClient}, t0)
	if _, err := parseCert(t, b.CertPEM).Verify(x509.VerifyOptions{
		Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("certificate from loaded CA does not verify against the original: %v", err)
	}
	if other := newTestCA(t, t0); other.Hash() == ca.Hash() {
		t.Error("two CAs share a hash")
	}
}

func TestLoadCARejects(t *testing.T) {
	ca := newTestCA(t, t0)
	other := newTestCA(t, t0)
	leaf := issueBundle(t, ca, SignRequest{Identity: AdminIdentity(), Usage: UsageClient}, t0)
	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr string
		wantIs  error
	}{
		{name: "key of another CA", cert: ca.CertPEM(), key: other.KeyPEM(), wantErr: "does not match", wantIs: ErrKeyMismatch},
		{name: "not a CA", cert: leaf.CertPEM, key: leaf.KeyPEM, wantErr: "is not a CA"},
		{name: "garbage certificate", cert: []byte("nope"), key: ca.KeyPEM(), wantErr: "no PEM block"},
		{name: "key PEM as certificate", cert: ca.KeyPEM(), key: ca.KeyPEM(), wantErr: `PEM block is "PRIVATE KEY", want "CERTIFICATE"`},
		{name: "garbage key", cert: ca.CertPEM(), key: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), wantErr: "parse private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(tt.cert, tt.key)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
				t.Fatalf("LoadCA error = %v, want %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestParseKeyPEMSEC1(t *testing.T) {
	key, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Error("SEC 1 key parsed to another key")
	}
}
