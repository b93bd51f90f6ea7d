package client

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freezer relays TCP connections to target until frozen: then it keeps
// them open and passes nothing, as a machine whose cable was pulled.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			f.mu.Unlock()
			go f.pipe(up, c)
			go f.pipe(c, up)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if f.frozen.Load() {
			continue // swallowed: nothing passes, nothing is closed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// A server that stops answering without closing its connections (cut off)
// costs a heartbeat or a read about two seconds, not the call's timeout:
// the HTTP/2 ping finds the connection dead and the call moves on to the
// next server; the next call starts there.
func TestFailoverFromFrozenServer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"}}`)
	})
	newTLS := func() *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.EnableHTTP2 = true
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	a, b := newTLS(), newTLS()
	fa := newFreezer(t, a.Listener.Addr().String())
	// Both test servers share httptest's certificate.
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate().Raw})
	c, err := New(Config{Servers: []string{"https://" + fa.ln.Addr().String(), b.URL}, CertificateAuthorityData: string(ca)},
		WithTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Heartbeat(ctx, "n1"); err != nil {
		t.Fatalf("heartbeat through the first server: %v", err)
	}
	if c.current.Load() != 0 {
		t.Fatalf("the first call went to server %d, want 0", c.current.Load())
	}
	fa.frozen.Store(true)
	start := time.Now()
	if err := c.Heartbeat(ctx, "n1"); err != nil {
		t.Fatalf("heartbeat with the first server frozen: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("heartbeat took %v with the first server frozen, want ~2s (ping detection), not the call timeout", took)
	} else {
		t.Logf("heartbeat moved to the other server after %v", took.Round(10*time.Millisecond))
	}
	if c.current.Load() != 1 {
		t.Errorf("the next call starts with server %d, want 1 (the one that answered)", c.current.Load())
	}
}
