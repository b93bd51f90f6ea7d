package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/apiserver"
	"github.com/skiffhq/skiff/controlplane/store"
)

// newStore returns an in-memory store with the bootstrap namespaces.
func newStore(t *testing.T, opts ...store.FSMOption) *store.Store {
	t.Helper()
	st := store.NewInMemory(opts...)
	t.Cleanup(st.Close)
	for _, ns := range []string{"default", "kube-system"} {
		o := &api.Namespace{TypeMeta: api.TypeMeta{Kind: "Namespace", APIVersion: "v1"}}
		o.Name = ns
		api.Default(o)
		if _, err := st.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// newAPI serves an API server over st, through wrap if given.
func newAPI(t *testing.T, st store.Interface, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	var h http.Handler = apiserver.New(apiserver.Config{Store: st, BookmarkInterval: 50 * time.Millisecond})
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts
}

func newClient(t *testing.T, servers ...string) *Client {
	t.Helper()
	c, err := New(Config{Servers: servers}, WithTimeout(10*time.Second), WithWatchIdleTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pod(name, app string) *api.Pod {
	return &api.Pod{
		TypeMeta:   api.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: api.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec:       api.PodSpec{Containers: []api.Container{{Name: "c", Image: "nginx:1.27"}}},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCRUDAndErrors(t *testing.T) {
	ctx := ctxT(t)
	c := newClient(t, newAPI(t, newStore(t), nil).URL)

	created, err := c.Create(ctx, pod("a", "web"))
	if err != nil {
		t.Fatal(err)
	}
	p := created.(*api.Pod)
	if p.Namespace != "default" || p.ResourceVersion == "" || p.UID == "" || p.Kind != "Pod" {
		t.Fatalf("created: %+v", p.ObjectMeta)
	}
	if _, err := c.Create(ctx, pod("b", "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, pod("a", "web")); !IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	got, err := c.Get(ctx, api.KindPod, "default", "a")
	if err != nil || got.GetObjectMeta().UID != p.UID {
		t.Fatalf("get: %v %v", got, err)
	}
	if _, err := c.Get(ctx, api.KindPod, "default", "zzz"); !IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	l, err := c.List(ctx, api.KindPod, ListOptions{LabelSelector: "app=web"})
	if err != nil || len(l.Items) != 1 || l.ResourceVersion == "" || l.Items[0].GetObjectMeta().Name != "a" {
		t.Fatalf("list: %+v %v", l, err)
	}
	l, err = c.List(ctx, api.KindPod, ListOptions{Namespace: "default", FieldSelector: "metadata.name=b", Stale: true})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("list by field: %+v %v", l, err)
	}

	upd := api.DeepCopy(p)
	upd.Labels["tier"] = "front"
	out, err := c.Update(ctx, upd)
	if err != nil || out.GetObjectMeta().Labels["tier"] != "front" {
		t.Fatalf("update: %v %v", out, err)
	}
	if _, err := c.Update(ctx, upd); !IsConflict(err) { // stale resourceVersion
		t.Fatalf("stale update: %v, want Conflict", err)
	}
	st := api.DeepCopy(out.(*api.Pod))
	st.Status.Phase = "Running"
	st.Status.PodIP = "10.1.0.7"
	out, err = c.UpdateStatus(ctx, st)
	if err != nil || out.(*api.Pod).Status.PodIP != "10.1.0.7" {
		t.Fatalf("update status: %v %v", out, err)
	}

	bad := &api.Deployment{TypeMeta: api.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"}}
	bad.Name = "web"
	neg := int32(-1)
	bad.Spec.Replicas = &neg
	bad.Spec.Selector = &api.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	bad.Spec.Template.Labels = map[string]string{"app": "other"}
	bad.Spec.Template.Spec.Containers = []api.Container{{Name: "c", Image: "nginx"}}
	_, err = c.Create(ctx, bad)
	if !IsInvalid(err) {
		t.Fatalf("invalid deployment: %v", err)
	}
	var s *api.Status
	if !errors.As(err, &s) || s.Details == nil || len(s.Details.Causes) < 2 {
		t.Fatalf("causes: %+v", s)
	}

	if _, err := c.Delete(ctx, api.KindPod, "default", "a", DeleteOptions{ResourceVersion: "1"}); !IsConflict(err) {
		t.Fatalf("delete with stale precondition: %v", err)
	}
	del, err := c.Delete(ctx, api.KindPod, "", "a", DeleteOptions{UID: p.UID})
	if err != nil || del.GetObjectMeta().Name != "a" {
		t.Fatalf("delete: %v %v", del, err)
	}
	if _, err := c.Delete(ctx, api.KindPod, "default", "a", DeleteOptions{}); !IsNotFound(err) {
		t.Fatalf("delete again: %v", err)
	}

	n := &api.Node{TypeMeta: api.TypeMeta{Kind: "Node", APIVersion: "v1"}}
	n.Name = "node-1"
	if _, err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, api.KindNode, "", "node-1"); err != nil {
		t.Fatal(err)
	}
	m, err := c.Members(ctx)
	if err != nil || len(m.Members) != 1 || !m.Members[0].Leader {
		t.Fatalf("members: %+v %v", m, err)
	}
	resp, err := c.Raw(ctx, "GET", "/healthz", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("raw: %v %v", resp, err)
	}
	resp.Body.Close()
}

// collect reads events until n non-bookmark events arrived.
func collect(t *testing.T, w *Watch, n int) []Event {
	t.Helper()
	var out []Event
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended after %d events: %v", len(out), w.Err())
			}
			if ev.Type != Bookmark {
				out = append(out, ev)
			}
		case <-timeout:
			t.Fatalf("only %d of %d events: %v", len(out), n, out)
		}
	}
	return out
}

func names(evs []Event) string {
	s := ""
	for _, e := range evs {
		if s != "" {
			s += " "
		}
		s += string(e.Type)
		if e.Object != nil {
			s += ":" + e.Object.GetObjectMeta().Name
		}
	}
	return s
}

func TestWatchResumesAfterServerEndsStream(t *testing.T) {
	ctx := ctxT(t)
	var watches atomic.Int32
	var resumedFrom sync.Map
	// Every watch stream is ended by the server after 100ms.
	ts := newAPI(t, newStore(t), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("watch") != "" {
				watches.Add(1)
				resumedFrom.Store(r.URL.Query().Get("resourceVersion"), true)
				c, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
				defer cancel()
				r = r.WithContext(c)
			}
			h.ServeHTTP(w, r)
		})
	})
	c := newClient(t, ts.URL)
	if _, err := c.Create(ctx, pod("before", "web")); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, api.KindPod, ListOptions{Namespace: "default"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := names(collect(t, w, 1)); got != "ADDED:before" {
		t.Fatalf("initial: %s", got)
	}
	for i := range 5 {
		if _, err := c.Create(ctx, pod(fmt.Sprintf("p%d", i), "web")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	got := names(collect(t, w, 5))
	if got != "ADDED:p0 ADDED:p1 ADDED:p2 ADDED:p3 ADDED:p4" {
		t.Fatalf("events across resumes: %s", got)
	}
	if watches.Load() < 3 {
		t.Fatalf("only %d watch requests: the streams were not resumed", watches.Load())
	}
	// No event twice: nothing more arrives.
	select {
	case ev := <-w.Events():
		if ev.Type != Bookmark {
			t.Fatalf("duplicate event %s", names([]Event{ev}))
		}
	case <-time.After(200 * time.Millisecond):
	}
	w.Stop()
	for ev := range w.Events() { // buffered events may remain, then it is closed
		if ev.Type != Bookmark {
			t.Fatalf("event after the last expected one: %s", names([]Event{ev}))
		}
	}
	if w.Err() != nil {
		t.Fatalf("Err after Stop: %v", w.Err())
	}
}

func TestWatchRelistsOnGone(t *testing.T) {
	ctx := ctxT(t)
	var paused atomic.Bool
	st := newStore(t, store.WithHistory(2))
	ts := newAPI(t, st, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if paused.Load() && r.URL.Query().Get("watch") != "" {
				http.Error(w, "paused", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := newClient(t, ts.URL)
	// Writes go to the store directly: the test drops connections, and a
	// write on a dropped connection has an unknown outcome.
	create := func(name string) api.Object {
		t.Helper()
		o := pod(name, "web")
		o.Namespace = "default"
		out, err := st.Create(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := create("a")
	w, err := c.Watch(ctx, api.KindPod, ListOptions{}, first.GetObjectMeta().ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	create("b")
	if got := names(collect(t, w, 1)); got != "ADDED:b" {
		t.Fatalf("before the drop: %s", got)
	}
	paused.Store(true)
	ts.CloseClientConnections()
	for i := range 4 {
		create(fmt.Sprintf("p%d", i))
	}
	paused.Store(false)
	got := names(collect(t, w, 7))
	if got != "RELISTED ADDED:a ADDED:b ADDED:p0 ADDED:p1 ADDED:p2 ADDED:p3" {
		t.Fatalf("relist: %s", got)
	}
	create("after")
	if got := names(collect(t, w, 1)); got != "ADDED:after" {
		t.Fatalf("after relist: %s", got)
	}
}

func TestWatchErrorsAreSynchronous(t *testing.T) {
	ctx := ctxT(t)
	c := newClient(t, newAPI(t, newStore(t, store.WithHistory(1)), nil).URL)
	for i := range 3 {
		if _, err := c.Create(ctx, pod(fmt.Sprintf("p%d", i), "web")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Watch(ctx, api.KindPod, ListOptions{LabelSelector: "app in ("}, ""); err == nil {
		t.Fatal("bad selector accepted")
	}
	if _, err := c.Watch(ctx, api.KindPod, ListOptions{}, "1"); !IsGone(err) {
		t.Fatalf("too old: %v", err)
	}
}

// deadURL is a URL nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

func TestFailover(t *testing.T) {
	ctx := ctxT(t)
	st := newStore(t)
	good := newAPI(t, st, nil)
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no leader", http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()

	c := newClient(t, deadURL(t), unavailable.URL, good.URL)
	if _, err := c.Create(ctx, pod("a", "web")); err != nil {
		t.Fatalf("create with dead first servers: %v", err)
	}
	if _, err := c.Get(ctx, api.KindPod, "default", "a"); err != nil {
		t.Fatal(err)
	}
	if got := c.current.Load(); got != 2 {
		t.Fatalf("working server not remembered: %d", got)
	}

	// Nothing reachable: the call gives up when its context ends.
	c2 := newClient(t, deadURL(t))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c2.Get(short, api.KindPod, "default", "a"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestWatchFailsOverWhenServerDies(t *testing.T) {
	ctx := ctxT(t)
	st := newStore(t)
	a, b := newAPI(t, st, nil), newAPI(t, st, nil)
	c := newClient(t, a.URL, b.URL)
	w, err := c.Watch(ctx, api.KindPod, ListOptions{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := c.Create(ctx, pod("x", "web")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, 1)
	// Stop accepting first: otherwise the watch may reconnect to a between
	// the two calls below, and Close waits for that request forever.
	a.Listener.Close()
	a.CloseClientConnections()
	a.Close()
	// Once the watch has moved to b, the client has dropped its pooled
	// connections to a: writes find a refused, not a dead, connection and
	// fail over safely.
	for deadline := time.Now().Add(5 * time.Second); c.current.Load() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("watch did not move to the second server")
		}
	}
	for _, n := range []string{"y", "z"} {
		if _, err := c.Create(ctx, pod(n, "web")); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(collect(t, w, 2)); got != "ADDED:y ADDED:z" {
		t.Fatalf("after failover: %s", got)
	}
}

func TestWriteNotRetriedWhenOutcomeUnknown(t *testing.T) {
	ctx := ctxT(t)
	st := newStore(t)
	good := newAPI(t, st, nil)

	// A server that reads the request and hangs up without answering.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = conn.Read(buf)
			conn.Close()
		}
	}()
	c := newClient(t, "http://"+l.Addr().String(), good.URL)
	_, err = c.Create(ctx, pod("a", "web"))
	if !IsUnknownOutcome(err) {
		t.Fatalf("create on a hanging-up server: %v, want unknown outcome", err)
	}
	if _, err := st.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: "a"}); err == nil {
		t.Fatal("write was retried on the next server")
	}
	// Reads are retried.
	if _, err := c.List(ctx, api.KindPod, ListOptions{}); err != nil {
		t.Fatalf("read not failed over: %v", err)
	}

	// 503 marked "outcome unknown" is not retried either.
	unknown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerWriteOutcome, "unknown")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"leadership lost: the write may have been applied","reason":"ServiceUnavailable","code":503}`)
	}))
	defer unknown.Close()
	c = newClient(t, unknown.URL, good.URL)
	_, err = c.Create(ctx, pod("b", "web"))
	if !IsUnknownOutcome(err) || !IsUnavailable(err) {
		t.Fatalf("503 unknown outcome: %v", err)
	}
	if _, err := st.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: "b"}); err == nil {
		t.Fatal("write was retried after an unknown outcome")
	}
}

func TestConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "config")
	cfg := &Config{Servers: []string{"http://10.0.0.1:6443", "http://10.0.0.2:6443"}}
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	got, err := LoadConfig(path)
	if err != nil || len(got.Servers) != 2 || got.Kind != "Config" || got.APIVersion != "skiff/v1" {
		t.Fatalf("load: %+v %v", got, err)
	}
	jsonPath := filepath.Join(dir, "c.json")
	os.WriteFile(jsonPath, []byte(`{"apiVersion":"skiff/v1","kind":"Config","servers":["http://h:1"]}`), 0o600)
	if got, err := LoadConfig(jsonPath); err != nil || got.Servers[0] != "http://h:1" {
		t.Fatalf("json: %+v %v", got, err)
	}
	os.WriteFile(jsonPath, []byte(`servers: []`), 0o600)
	if _, err := LoadConfig(jsonPath); err == nil {
		t.Fatal("config without servers accepted")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	t.Setenv("SKIFF_CONFIG", "/x/y")
	if DefaultConfigPath() != "/x/y" {
		t.Fatal("SKIFF_CONFIG ignored")
	}
	t.Setenv("SKIFF_CONFIG", "")
	if filepath.Base(DefaultConfigPath()) != "config" {
		t.Fatal(DefaultConfigPath())
	}
	if _, err := New(Config{Servers: []string{"10.0.0.1:6443"}}); err == nil {
		t.Fatal("server without scheme accepted")
	}
}
