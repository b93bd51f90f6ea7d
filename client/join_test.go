package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:6443":         "https://127.0.0.1:6443",
		"http://127.0.0.1:6443":  "https://127.0.0.1:6443",
		"https://127.0.0.1:6443": "https://127.0.0.1:6443",
		"example.com":            "https://example.com",
	} {
		if got := ServerURL(in); got != want {
			t.Errorf("ServerURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// joinServer is a TLS server that serves its own certificate as "the CA"
// and signs nothing real: it records what reached it.
func joinServer(t *testing.T) (srv *httptest.Server, caPEM []byte, hash string, gotSecret *atomic.Bool, gotReq *atomic.Value) {
	t.Helper()
	gotSecret, gotReq = &atomic.Bool{}, &atomic.Value{}
	srv = httptest.NewUnstartedServer(nil)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case pathCA:
			w.Write(caPEM)
		case pathCertificates:
			if strings.Contains(r.Header.Get("Authorization"), "0123456789abcdef") {
				gotSecret.Store(true)
			}
			var req CertificateRequest
			dec := json.NewDecoder(r.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			gotReq.Store(req)
			json.NewEncoder(w).Encode(CertificateResponse{Certificate: "CERT", CA: string(caPEM)})
		}
	})
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert := srv.Certificate()
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	sum := sha256.Sum256(cert.Raw)
	return srv, caPEM, hex.EncodeToString(sum[:]), gotSecret, gotReq
}

func TestFetchPinnedCA(t *testing.T) {
	srv, caPEM, hash, gotSecret, _ := joinServer(t)
	ctx := context.Background()
	good := api.JoinToken{CAHash: hash, ID: "abcdef", Secret: "0123456789abcdef"}

	got, err := FetchPinnedCA(ctx, srv.URL, good)
	if err != nil || string(got) != string(caPEM) {
		t.Fatalf("FetchPinnedCA with the right pin: %v", err)
	}
	wrong := good
	wrong.CAHash = strings.Repeat("0", 64)
	if _, err := FetchPinnedCA(ctx, srv.URL, wrong); err == nil || !strings.Contains(err.Error(), "not this cluster") {
		t.Errorf("FetchPinnedCA with another pin: %v", err)
	}
	bare := good
	bare.CAHash = ""
	if _, err := FetchPinnedCA(ctx, srv.URL, bare); err == nil {
		t.Error("FetchPinnedCA accepted a token without a pin")
	}
	if gotSecret.Load() {
		t.Error("the secret was sent while fetching the CA")
	}
}

func TestJoinerJoinNode(t *testing.T) {
	srv, caPEM, hash, gotSecret, gotReq := joinServer(t)
	tok := api.JoinToken{CAHash: hash, ID: "abcdef", Secret: "0123456789abcdef"}
	j, err := NewJoiner(context.Background(), []string{strings.TrimPrefix(srv.URL, "https://")}, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cfg, err := j.JoinNode(context.Background(), "node-1", []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !gotSecret.Load() {
		t.Error("the token was not sent with the CSR")
	}
	req := gotReq.Load().(CertificateRequest)
	if req.Usage != api.TokenUsageAgent || req.Name != "node-1" || len(req.Addresses) != 1 {
		t.Errorf("request = %+v", req)
	}
	block, _ := pem.Decode([]byte(req.CSR))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	if csr.Subject.CommonName != "system:node:node-1" || len(csr.Subject.Organization) != 1 || csr.Subject.Organization[0] != "system:nodes" {
		t.Errorf("CSR subject = %v, want the node identity", csr.Subject)
	}
	if cfg.ClientCertificateData != "CERT" || cfg.CertificateAuthorityData != string(caPEM) || !strings.Contains(cfg.ClientKeyData, "PRIVATE KEY") {
		t.Errorf("config = %+v", cfg)
	}
	if len(cfg.Servers) != 1 || cfg.Servers[0] != srv.URL {
		t.Errorf("servers = %v, want [%s]", cfg.Servers, srv.URL)
	}
}

// A server whose certificate the pinned CA did not issue gets no CSR.
func TestRequestCertificateNeedsThePinnedCA(t *testing.T) {
	srv, _, _, gotSecret, _ := joinServer(t)
	otherPEM := selfSigned(t)
	_, err := RequestCertificate(context.Background(), srv.URL, otherPEM, api.JoinToken{ID: "abcdef", Secret: "0123456789abcdef"}, CertificateRequest{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "not issued by the cluster CA") {
		t.Fatalf("RequestCertificate to a server of another CA: %v", err)
	}
	if gotSecret.Load() {
		t.Error("the secret reached a server of another CA")
	}
}

// selfSigned returns a CA certificate that issued nothing anyone serves.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
