package apiserver

import (
	"context"
	"io"
	"net/http"
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
