package pki

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.key")
	for _, data := range [][]byte{[]byte("first"), []byte("second, longer")} {
		if err := WriteFileAtomic(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("read %q, want %q", got, data)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	// An existing file with a wider mode is replaced with the asked mode.
	wide := filepath.Join(dir, "wide")
	if err := os.WriteFile(wide, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(wide, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(wide); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after replace %v, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("directory holds %d files, want 2 (a temporary file left behind?)", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestBundleFiles(t *testing.T) {
	ca := newTestCA(t, t0)
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := LoadBundle(dir, "ca"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadBundle of nothing: %v, want fs.ErrNotExist", err)
	}
	if err := SaveBundle(dir, "ca", ca.Bundle()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca.crt", "ca.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v; want mode 0700", fi, err)
	}
	b, err := LoadBundle(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(b.CertPEM, b.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Hash() != ca.Hash() {
		t.Errorf("hash after save and load %s, want %s", loaded.Hash(), ca.Hash())
	}

	// A key that is not the certificate's (a crash between the two writes
	// of a renewal) is refused.
	other := issueBundle(t, ca, SignRequest{Identity: AdminIdentity(), Usage: UsageClient}, t0)
	if err := WriteFileAtomic(filepath.Join(dir, "ca.key"), other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBundle(dir, "ca"); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("LoadBundle of a mismatched pair: %v, want ErrKeyMismatch", err)
	}
	if _, err := TLSCertificate(Bundle{CertPEM: ca.CertPEM(), KeyPEM: other.KeyPEM}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("TLSCertificate of a mismatched pair: %v, want ErrKeyMismatch", err)
	}
	c, err := TLSCertificate(other)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.Leaf.Subject.CommonName != AdminUser {
		t.Errorf("TLSCertificate Leaf = %v", c.Leaf)
	}
}
