package apiserver

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/controlplane/auth"
)

// nodeTokens authenticates every bearer token as node n1.
type nodeTokens struct{}

func (nodeTokens) VerifyBearer(_, _ string, _ time.Time) (auth.User, error) {
	return auth.User{Name: "system:node:n1", Groups: []string{"system:nodes"}, Source: auth.SourceToken}, nil
}

// A watch lasts as long as its client: it must not hold one of its class's
// concurrency slots, or a few hundred node agents (each watching its pods)
// would leave none for their heartbeats and status writes.
func TestWatchesHoldNoGateSlot(t *testing.T) {
	s := newTestServer(t, Config{Security: &Security{
		Authenticator: auth.NewAuthenticator(nodeTokens{}, nil),
		Authorizer:    auth.NewAuthorizer(nil),
		Gate:          auth.NewGate(1, 1, auth.WithQueueWait(0)),
	}})
	get := func(ctx context.Context, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer abcdef.0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		w := get(ctx, "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn1")
		if w.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(w.Body)
			t.Fatalf("watch: %d %s", w.StatusCode, b)
		}
		defer w.Body.Close()
	}
	resp := get(context.Background(), "/api/v1/nodes")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("a node's list while two of its watches are open: %d %s", resp.StatusCode, b)
	}
}

// blockingHeartbeats holds every heartbeat until released.
type blockingHeartbeats struct{ release chan struct{} }

func (b blockingHeartbeats) Heartbeat(string) { <-b.release }

// A heartbeat takes no slot either: while the node's class is full (its
// status writes, here one slow heartbeat standing in for them), its
// heartbeats still get through.
func TestHeartbeatsHoldNoGateSlot(t *testing.T) {
	hb := blockingHeartbeats{release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(hb.release) }) }
	defer release() // before the server's cleanup closes it
	s := newTestServer(t, Config{Heartbeats: hb, Security: &Security{
		Authenticator: auth.NewAuthenticator(nodeTokens{}, nil),
		Authorizer:    auth.NewAuthorizer(nil),
		Gate:          auth.NewGate(1, 1, auth.WithQueueWait(0)),
	}})
	post := func() (int, error) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+auth.PathHeartbeats+"/n1", nil)
		req.Header.Set("Authorization", "Bearer abcdef.0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	codes := make(chan int, 3)
	for range 3 {
		go func() { c, _ := post(); codes <- c }()
	}
	time.Sleep(100 * time.Millisecond) // all three inside the handler, none refused
	select {
	case c := <-codes:
		t.Fatalf("a heartbeat was answered %d while the others were in flight", c)
	default:
	}
	release()
	for range 3 {
		if c := <-codes; c != http.StatusNoContent {
			t.Errorf("heartbeat: %d", c)
		}
	}
}
