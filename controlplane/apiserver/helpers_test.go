package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Manifests used across tests.
const (
	podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","labels":{"app":"%s"}},
		"spec":{"nodeName":"%s","containers":[{"name":"c","image":"nginx:1.27"}]}}`
	deployJSON = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
		"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
		"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}}}}`
	serviceJSON = `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
		"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}`
	nodeJSON      = `{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-1","labels":{"zone":"a"}}}`
	namespaceJSON = `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}`
)

type testServer struct {
	*httptest.Server
	store *store.Store
	api   *Server
	reg   *prometheus.Registry
}

func newTestServer(t *testing.T, cfg Config, opts ...store.FSMOption) *testServer {
	t.Helper()
	st := newStore(t, opts...)
	if cfg.Store == nil {
		cfg.Store = st
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := New(cfg)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &testServer{Server: hs, store: st, api: s, reg: reg}
}

// newStore returns an in-memory store holding the bootstrap namespaces.
func newStore(t testing.TB, opts ...store.FSMOption) *store.Store {
	t.Helper()
	st := store.NewInMemory(opts...)
	t.Cleanup(st.Close)
	for _, ns := range []string{"default", "kube-system"} {
		o := &api.Namespace{}
		o.Name = ns
		api.Default(o)
		if _, err := st.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) status(t *testing.T) api.Status {
	t.Helper()
	var s api.Status
	if err := json.Unmarshal(r.body, &s); err != nil || s.Kind != "Status" {
		t.Fatalf("response %d is not a Status: %v: %s", r.code, err, r.body)
	}
	if s.Code != r.code {
		t.Fatalf("Status code %d != HTTP code %d", s.Code, r.code)
	}
	return s
}

func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return m
}

func do(t *testing.T, method, url, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func expect(t *testing.T, r response, code int) response {
	t.Helper()
	if r.code != code {
		t.Fatalf("got HTTP %d, want %d: %s", r.code, code, r.body)
	}
	return r
}

func expectStatus(t *testing.T, r response, code int, reason api.StatusReason, msgPart string) api.Status {
	t.Helper()
	expect(t, r, code)
	s := r.status(t)
	if s.Reason != reason || s.Status != "Failure" || !strings.Contains(s.Message, msgPart) {
		t.Fatalf("got %s %q, want reason %s with %q", s.Reason, s.Message, reason, msgPart)
	}
	return s
}

func meta(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	md, ok := m["metadata"].(map[string]any)
	if !ok {
		t.Fatalf("no metadata in %v", m)
	}
	return md
}

// watchStream reads watch events line by line.
type watchStream struct {
	resp *http.Response
	sc   *bufio.Scanner
	t    *testing.T
}

type wireEvent struct {
	Type   string         `json:"type"`
	Object map[string]any `json:"object"`
}

func openWatch(t *testing.T, url string) *watchStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("watch: HTTP %d: %s", resp.StatusCode, b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &watchStream{resp: resp, sc: sc, t: t}
}

// next returns the next event, failing after 5s.
func (w *watchStream) next() wireEvent {
	w.t.Helper()
	type res struct {
		ev  wireEvent
		err error
		ok  bool
	}
	ch := make(chan res, 1)
	go func() {
		if !w.sc.Scan() {
			ch <- res{err: w.sc.Err()}
			return
		}
		var ev wireEvent
		err := json.Unmarshal(w.sc.Bytes(), &ev)
		ch <- res{ev: ev, err: err, ok: true}
	}()
	select {
	case r := <-ch:
		if !r.ok || r.err != nil {
			w.t.Fatalf("watch stream ended: %v", r.err)
		}
		return r.ev
	case <-time.After(5 * time.Second):
		w.t.Fatal("no watch event within 5s")
	}
	return wireEvent{}
}

func (w *watchStream) expectEvent(typ, name string) wireEvent {
	w.t.Helper()
	ev := w.next()
	for ev.Type == "BOOKMARK" && typ != "BOOKMARK" {
		ev = w.next()
	}
	if ev.Type != typ {
		w.t.Fatalf("got %s event, want %s: %v", ev.Type, typ, ev.Object)
	}
	if name != "" {
		if got := meta(w.t, ev.Object)["name"]; got != name {
			w.t.Fatalf("got %s of %v, want %s", typ, got, name)
		}
	}
	return ev
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
