package pki

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path so that readers see the old file or
// the new one, never a torn write: a temporary file in the same directory,
// fsync, chmod, rename, then fsync of the directory so the rename survives
// a crash.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Chmod before writing: CreateTemp's 0600 is already tight, but a key
	// must never be readable at a wider mode, even briefly.
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort: some file systems refuse to sync a directory.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Bundle is a certificate and its private key, in PEM.
type Bundle struct {
	CertPEM []byte
	KeyPEM  []byte
}

// SaveBundle writes dir/NAME.key and dir/NAME.crt, both 0600, creating dir
// (0700) if needed. The key is written first; a crash between the two
// leaves a pair that LoadBundle rejects (ErrKeyMismatch), so the caller
// re-issues rather than serving a mismatched pair.
func SaveBundle(dir, name string, b Bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, name+".key"), b.KeyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, name+".crt"), b.CertPEM, 0o600)
}

// LoadBundle reads dir/NAME.crt and dir/NAME.key and checks that the key
// belongs to the certificate. A missing file gives an error wrapping
// fs.ErrNotExist, the signal to bootstrap or join.
func LoadBundle(dir, name string) (Bundle, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return Bundle{}, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return Bundle{}, fmt.Errorf("pki: %w", err)
	}
	b := Bundle{CertPEM: certPEM, KeyPEM: keyPEM}
	if _, err := keyPair(b); err != nil {
		return Bundle{}, fmt.Errorf("pki: %s in %s: %w", name, dir, err)
	}
	return b, nil
}

// TLSCertificate returns b as a tls.Certificate with Leaf set, checking that
// the key matches the certificate.
func TLSCertificate(b Bundle) (tls.Certificate, error) {
	c, err := keyPair(b)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	return c, nil
}

func keyPair(b Bundle) (tls.Certificate, error) {
	cert, err := ParseCertPEM(b.CertPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ParseKeyPEM(b.KeyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("key for %q: %w", cert.Subject.CommonName, ErrKeyMismatch)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}
