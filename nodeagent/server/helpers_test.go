package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/controlplane/pki"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// testPKI is a cluster CA with the certificates the tests present.
type testPKI struct {
	ca     *pki.CA
	node   tls.Certificate // system:node:n1, server and client usage, 127.0.0.1
	server tls.Certificate // system:server:s1
	other  tls.Certificate // system:node:n2: of the CA, not a server
	admin  tls.Certificate // admin, client usage
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("skiff-test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id pki.Identity, usage pki.Usage) tls.Certificate {
		key, keyPEM, err := pki.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		req := pki.SignRequest{Identity: id, Usage: usage}
		if usage != pki.UsageClient {
			req.IPs = []net.IP{net.ParseIP("127.0.0.1")}
		}
		certPEM, err := ca.Issue(&key.PublicKey, req, now)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.TLSCertificate(pki.Bundle{CertPEM: certPEM, KeyPEM: keyPEM})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return &testPKI{
		ca:     ca,
		node:   issue(pki.NodeIdentity("n1"), pki.UsageServerAndClient),
		server: issue(pki.ServerIdentity("s1"), pki.UsageServerAndClient),
		other:  issue(pki.NodeIdentity("n2"), pki.UsageServerAndClient),
		admin:  issue(pki.AdminIdentity(), pki.UsageClient),
	}
}

// client returns an HTTP client presenting cert (nil: none) and trusting
// the CA.
func (p *testPKI) client(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: p.ca.Pool(), ServerName: "127.0.0.1"}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
}

// startServer serves s on 127.0.0.1 until the test ends and returns its
// base URL.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Serve did not stop")
		}
	})
	return "https://" + ln.Addr().String()
}

// fakeContainers is a Containers over a map "ns/pod/container" (and
// "ns/pod/container/previous").
type fakeContainers struct {
	mu   sync.Mutex
	refs map[string]ContainerRef
	errs map[string]error
}

func (f *fakeContainers) set(key string, ref ContainerRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs == nil {
		f.refs = map[string]ContainerRef{}
	}
	f.refs[key] = ref
}

func (f *fakeContainers) Lookup(ns, pod, ctr string, previous bool) (ContainerRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ns + "/" + pod + "/" + ctr
	if previous {
		key += "/previous"
	}
	if err, ok := f.errs[key]; ok {
		return ContainerRef{}, err
	}
	if r, ok := f.refs[key]; ok {
		return r, nil
	}
	if previous {
		if _, ok := f.refs[ns+"/"+pod+"/"+ctr]; ok {
			return ContainerRef{}, ErrNoPrevious
		}
	}
	for k := range f.refs {
		if strings.HasPrefix(k, ns+"/"+pod+"/") {
			return ContainerRef{}, fmt.Errorf("lookup %s: %w", ctr, ErrContainerNotFound)
		}
	}
	return ContainerRef{}, ErrPodNotFound
}

// fakeExec runs a few commands in Go: "echo ARGS...", "cat" (stdin to
// stdout), "exit N", "fail-stderr", "sleep" (until cancelled), "tty-size"
// (prints each resize until stdin closes).
type fakeExec struct {
	mu      sync.Mutex
	running map[runtime.ContainerID]bool
	killed  chan struct{}
}

func (f *fakeExec) Exec(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
	f.mu.Lock()
	running := f.running[id]
	f.mu.Unlock()
	if !running {
		return -1, fmt.Errorf("fake: exec in %s: %w", id, runtime.ErrInvalidState)
	}
	out := req.Stdout
	if out == nil {
		out = io.Discard
	}
	switch req.Cmd[0] {
	case "echo":
		fmt.Fprintln(out, strings.Join(req.Cmd[1:], " "))
		return 0, nil
	case "cat":
		if req.Stdin == nil {
			return 0, nil
		}
		_, err := io.Copy(out, req.Stdin)
		return 0, err
	case "exit":
		var n int
		fmt.Sscan(req.Cmd[1], &n)
		return n, nil
	case "fail-stderr":
		fmt.Fprint(out, "to stdout\n")
		fmt.Fprint(req.Stderr, "to stderr\n")
		return 2, nil
	case "sleep":
		<-ctx.Done()
		if f.killed != nil {
			close(f.killed)
		}
		return 137, nil
	case "tty-size":
		// Prints each size until one 1 column wide.
		for {
			select {
			case sz := <-req.Resize:
				if sz.Width == 1 {
					return 0, nil
				}
				fmt.Fprintf(out, "%dx%d\n", sz.Width, sz.Height)
			case <-ctx.Done():
				return 1, nil
			}
		}
	}
	return -1, fmt.Errorf("exec: %q: executable file not found in $PATH", req.Cmd[0])
}

// fakeImages imports archives that start with "IMAGES:" followed by
// comma-separated references; anything else is malformed.
type fakeImages struct {
	mu   sync.Mutex
	imgs []runtime.ImageInfo
}

func (f *fakeImages) ImportImages(ctx context.Context, r io.Reader) ([]runtime.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	refs, ok := strings.CutPrefix(string(b), "IMAGES:")
	if !ok {
		return nil, errors.New("archive/tar: invalid tar header")
	}
	var out []runtime.Image
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ref := range strings.Split(refs, ",") {
		img := runtime.Image{Ref: ref, ID: runtime.ImageID("sha256:" + fmt.Sprintf("%064x", len(ref)))}
		out = append(out, img)
		f.imgs = append(f.imgs, runtime.ImageInfo{Image: img, Size: int64(len(b))})
	}
	return out, nil
}

func (f *fakeImages) ListImages(context.Context) ([]runtime.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]runtime.ImageInfo(nil), f.imgs...), nil
}
