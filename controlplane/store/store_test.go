package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

func newNS(name string) *api.Namespace {
	info, _ := api.ByKind(api.KindNamespace)
	o := info.New().(*api.Namespace)
	o.Name = name
	return o
}

func newPod(ns, name string, labels map[string]string) *api.Pod {
	info, _ := api.ByKind(api.KindPod)
	o := info.New().(*api.Pod)
	o.Namespace, o.Name, o.Labels = ns, name, labels
	return o
}

func setup(t *testing.T, opts ...FSMOption) *Store {
	t.Helper()
	s := NewInMemory(opts...)
	t.Cleanup(s.Close)
	if _, err := s.Create(context.Background(), newNS("default")); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreateGetConflicts(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	p, err := s.Create(ctx, newPod("default", "a", nil))
	if err != nil {
		t.Fatal(err)
	}
	m := p.GetObjectMeta()
	if m.ResourceVersion != "2" || m.Generation != 1 || m.UID == "" || m.CreationTimestamp == nil {
		t.Fatalf("server fields not set: %+v", m)
	}
	if _, err := s.Create(ctx, newPod("default", "a", nil)); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Create(ctx, newPod("nope", "a", nil)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("create in missing namespace: %v, want ErrNotFound", err)
	}
	got, err := s.Get(Key{Kind: api.KindPod, Namespace: "default", Name: "a"})
	if err != nil || got.GetObjectMeta().UID != m.UID {
		t.Fatalf("get: %v %v", got, err)
	}
	if _, err := s.Get(Key{Kind: api.KindPod, Namespace: "default", Name: "b"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}

	// Update with the current resourceVersion succeeds; a stale one conflicts.
	upd := api.DeepCopy(p.(*api.Pod))
	upd.Labels = map[string]string{"x": "1"}
	p2, err := s.Update(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	if p2.GetObjectMeta().ResourceVersion == m.ResourceVersion {
		t.Fatal("update did not change resourceVersion")
	}
	if p2.GetObjectMeta().UID != m.UID || p2.GetObjectMeta().CreationTimestamp == nil {
		t.Fatal("update lost server-owned metadata")
	}
	stale := api.DeepCopy(p.(*api.Pod))
	stale.Labels = map[string]string{"x": "2"}
	if _, err := s.Update(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if got, _ := s.Get(KeyOf(p)); got.GetObjectMeta().Labels["x"] != "1" {
		t.Fatal("rejected update changed the object")
	}

	// An update that changes nothing keeps the resourceVersion.
	same := api.DeepCopy(p2.(*api.Pod))
	p3, err := s.Update(ctx, same)
	if err != nil || p3.GetObjectMeta().ResourceVersion != p2.GetObjectMeta().ResourceVersion {
		t.Fatalf("no-op update: %v rv %s -> %s", err, p2.GetObjectMeta().ResourceVersion, p3.GetObjectMeta().ResourceVersion)
	}

	// Delete with a wrong uid precondition conflicts; then deletes.
	if _, err := s.Delete(ctx, KeyOf(p), Preconditions{UID: "other"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete with wrong uid: %v", err)
	}
	if _, err := s.Delete(ctx, KeyOf(p), Preconditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, KeyOf(p), Preconditions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestStatusAndGeneration(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	p, _ := s.Create(ctx, newPod("default", "a", nil))
	st := api.DeepCopy(p.(*api.Pod))
	st.Status.Phase = api.PodRunning
	st.Labels = map[string]string{"ignored": "yes"}
	p2, err := s.UpdateStatus(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if p2.(*api.Pod).Status.Phase != api.PodRunning {
		t.Fatal("status not written")
	}
	if p2.GetObjectMeta().Labels["ignored"] != "" {
		t.Fatal("status update changed metadata")
	}
	if p2.GetObjectMeta().Generation != 1 {
		t.Fatalf("status update bumped generation to %d", p2.GetObjectMeta().Generation)
	}
	// A spec change bumps generation; the main resource keeps status.
	sp := api.DeepCopy(p2.(*api.Pod))
	sp.Spec.NodeName = "n1"
	sp.Status = api.PodStatus{}
	p3, err := s.Update(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if p3.GetObjectMeta().Generation != 2 {
		t.Fatalf("spec change: generation %d, want 2", p3.GetObjectMeta().Generation)
	}
	if p3.(*api.Pod).Status.Phase != api.PodRunning {
		t.Fatal("main-resource update overwrote status")
	}
}

func TestFinalizers(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	p := newPod("default", "f", nil)
	p.Finalizers = []string{"skiff.io/test"}
	if _, err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	d, err := s.Delete(ctx, KeyOf(p), Preconditions{})
	if err != nil || d.GetObjectMeta().DeletionTimestamp == nil {
		t.Fatalf("delete with finalizer: %v %+v", err, d)
	}
	cur := api.DeepCopy(d.(*api.Pod))
	cur.Finalizers = nil
	if _, err := s.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(KeyOf(p)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("object still there after its last finalizer went: %v", err)
	}
}

func TestNamespaceDeleteRefusedWhileNotEmpty(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	s.Create(ctx, newPod("default", "a", nil))
	if _, err := s.Delete(ctx, Key{Kind: api.KindNamespace, Name: "default"}, Preconditions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete non-empty namespace: %v", err)
	}
}

func TestBatchIndependentResults(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	s.Create(ctx, newPod("default", "exists", nil))
	res, err := s.Batch(ctx, []Op{
		{Type: OpCreate, Object: newPod("default", "new1", nil)},
		{Type: OpCreate, Object: newPod("default", "exists", nil)},
		{Type: OpCreate, Object: newPod("default", "new2", nil)},
		{Type: OpCreate, Object: newPod("default", "", nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil {
		t.Fatalf("good ops failed: %v %v", res[0].Err, res[2].Err)
	}
	if !errors.Is(res[1].Err, ErrAlreadyExists) || !errors.Is(res[3].Err, ErrInvalid) {
		t.Fatalf("bad ops: %v %v", res[1].Err, res[3].Err)
	}
	if res[0].Object.GetObjectMeta().ResourceVersion != res[2].Object.GetObjectMeta().ResourceVersion {
		t.Fatal("writes of one batch should share a log entry")
	}
	if res[0].Object.GetObjectMeta().UID == res[2].Object.GetObjectMeta().UID {
		t.Fatal("uids in one entry must differ")
	}
}

func TestConcurrentWritesAreBatched(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Create(ctx, newPod("default", fmt.Sprintf("p%d", i), nil)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	objs, _, _ := s.List(api.KindPod, ListOptions{})
	if len(objs) != 200 {
		t.Fatalf("listed %d pods, want 200", len(objs))
	}
}

func recv(t *testing.T, w Watcher) Event {
	t.Helper()
	select {
	case e, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch closed: %v", w.Err())
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

func TestWatchResumeAndSelectors(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	a, _ := s.Create(ctx, newPod("default", "a", map[string]string{"app": "web"}))
	rvA := s.LastIndex()
	s.Create(ctx, newPod("default", "b", map[string]string{"app": "db"}))

	sel, err := api.ParseSelector("app=web")
	if err != nil {
		t.Fatal(err)
	}
	// Resume from before "a" was created: history replays it.
	w, err := s.Watch(api.KindPod, ListOptions{}, rvA-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if e := recv(t, w); e.Type != Added || e.Object.GetObjectMeta().Name != "a" {
		t.Fatalf("first event %v %s", e.Type, e.Object.GetObjectMeta().Name)
	}
	if e := recv(t, w); e.Type != Added || e.Object.GetObjectMeta().Name != "b" {
		t.Fatalf("second event %v %s", e.Type, e.Object.GetObjectMeta().Name)
	}

	ws, err := s.Watch(api.KindPod, ListOptions{Labels: sel}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Stop()
	// Relabel a out of the selector: the selector watch sees DELETED.
	upd := api.DeepCopy(a.(*api.Pod))
	upd.Labels = map[string]string{"app": "other"}
	s.Update(ctx, upd)
	if e := recv(t, ws); e.Type != Deleted || e.Object.GetObjectMeta().Name != "a" {
		t.Fatalf("selector watch: %v %s, want DELETED a", e.Type, e.Object.GetObjectMeta().Name)
	}
	if e := recv(t, w); e.Type != Modified {
		t.Fatalf("plain watch: %v, want MODIFIED", e.Type)
	}
	s.Delete(ctx, KeyOf(a), Preconditions{})
	e := recv(t, w)
	if e.Type != Deleted || e.ResourceVersion != s.LastIndex() {
		t.Fatalf("delete event %v rv %d (last %d)", e.Type, e.ResourceVersion, s.LastIndex())
	}
}

func TestWatchTooOldAndFuture(t *testing.T) {
	ctx := context.Background()
	s := setup(t, WithHistory(5))
	for i := 0; i < 20; i++ {
		s.Create(ctx, newPod("default", fmt.Sprintf("p%d", i), nil))
	}
	if _, err := s.Watch(api.KindPod, ListOptions{}, 2); !errors.Is(err, ErrGone) {
		t.Fatalf("watch from a compacted version: %v, want ErrGone", err)
	}
	w, err := s.Watch(api.KindPod, ListOptions{}, s.LastIndex()-2)
	if err != nil {
		t.Fatalf("watch within history: %v", err)
	}
	w.Stop()
	start := time.Now()
	if _, err := s.Watch(api.KindPod, ListOptions{}, s.LastIndex()+100); !errors.Is(err, ErrFutureVersion) {
		t.Fatalf("watch from the future: %v, want ErrFutureVersion", err)
	}
	if time.Since(start) < futureWait/2 {
		t.Fatal("a future version should be waited for briefly first")
	}
}

func TestListAndWatchHasNoGap(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Create(ctx, newPod("default", fmt.Sprintf("p%d", i), nil))
		}
	}()
	time.Sleep(20 * time.Millisecond)
	items, rv, w, err := s.ListAndWatch(api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	seen := map[string]bool{}
	for _, o := range items {
		seen[o.GetObjectMeta().Name] = true
	}
	all, _, _ := s.List(api.KindPod, ListOptions{})
	deadline := time.After(5 * time.Second)
	for len(seen) < len(all) {
		select {
		case e := <-w.Events():
			if e.ResourceVersion <= rv {
				t.Fatalf("event at %d not after list rv %d", e.ResourceVersion, rv)
			}
			seen[e.Object.GetObjectMeta().Name] = true
		case <-deadline:
			t.Fatalf("saw %d of %d pods", len(seen), len(all))
		}
	}
	w.Stop()
}

func TestSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	for i := 0; i < 50; i++ {
		s.Create(ctx, newPod("default", fmt.Sprintf("p%d", i), map[string]string{"i": fmt.Sprint(i)}))
	}
	s.SetMember(ctx, Member{ID: "s1", RaftAddr: "a:1", APIAddr: "a:2"})
	w, _ := s.Watch(api.KindPod, ListOptions{}, 0)
	idx, persist := s.Snapshot()
	var buf bytes.Buffer
	if err := persist(&buf); err != nil {
		t.Fatal(err)
	}
	fresh := NewFSM()
	if err := fresh.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if fresh.Index() != idx {
		t.Fatalf("restored index %d, want %d", fresh.Index(), idx)
	}
	a, _, _ := s.List(api.KindPod, ListOptions{})
	b, _, _ := fresh.List(api.KindPod, ListOptions{})
	if len(a) != len(b) || len(b) != 50 {
		t.Fatalf("restored %d pods, want %d", len(b), len(a))
	}
	for i := range a {
		if !equalObjects(a[i], b[i]) || a[i].GetObjectMeta().ResourceVersion != b[i].GetObjectMeta().ResourceVersion {
			t.Fatalf("object %d differs after restore", i)
		}
	}
	if m := fresh.Members(); len(m) != 1 || m[0].APIAddr != "a:2" {
		t.Fatalf("members after restore: %+v", m)
	}
	// Restoring over a live FSM closes its watchers.
	if err := s.FSM.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.Events():
		if ok {
			t.Fatal("watcher got an event instead of closing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not closed by restore")
	}
	if !errors.Is(w.Err(), ErrWatchClosed) {
		t.Fatalf("watcher error %v", w.Err())
	}
	if _, err := s.Watch(api.KindPod, ListOptions{}, 3); !errors.Is(err, ErrGone) {
		t.Fatalf("resume from before the restore: %v, want ErrGone", err)
	}
}

func TestDeterministicReplay(t *testing.T) {
	// Two FSMs fed the same entries end in the same state (uids, times).
	ctx := context.Background()
	s := setup(t)
	s.Create(ctx, newPod("default", "a", nil))
	_, persist := s.Snapshot()
	var buf bytes.Buffer
	persist(&buf)
	rec := record{Type: OpCreate, Kind: api.KindPod, Namespace: "default", Name: "z", Object: []byte(`{"metadata":{"name":"z","namespace":"default"}}`)}
	cmd := appendCommand(12345, [][]byte{rec.marshal(nil)})
	f1, f2 := NewFSM(), NewFSM()
	f1.Restore(bytes.NewReader(buf.Bytes()))
	f2.Restore(bytes.NewReader(buf.Bytes()))
	r1 := f1.Apply(100, cmd).([]Result)
	r2 := f2.Apply(100, cmd).([]Result)
	if r1[0].Err != nil || r1[0].Object.GetObjectMeta().UID != r2[0].Object.GetObjectMeta().UID ||
		!r1[0].Object.GetObjectMeta().CreationTimestamp.Equal(r2[0].Object.GetObjectMeta().CreationTimestamp.Time) {
		t.Fatalf("replicas disagree: %+v vs %+v", r1[0], r2[0])
	}
}

func TestUndecodableEntryDoesNotStopTheFSM(t *testing.T) {
	f := NewFSM()
	if _, ok := f.Apply(1, []byte("garbage")).(error); !ok {
		t.Fatal("want an error response")
	}
	if f.Index() != 1 {
		t.Fatal("index not advanced past a bad entry")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	rec := record{Type: OpCreate, Kind: api.KindPod, Namespace: "default", Name: "z", Object: []byte(`{"metadata":{"name":"z"}}`)}
	f.Add(appendCommand(1, [][]byte{rec.marshal(nil), record{Type: OpDelete, Kind: api.KindPod, Name: "y"}.marshal(nil)}))
	f.Add([]byte("S\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := decodeCommand(data)
		if err != nil {
			return
		}
		var recs [][]byte
		for _, r := range cmd.Ops {
			recs = append(recs, r.marshal(nil))
		}
		again, err := decodeCommand(appendCommand(cmd.Time, recs))
		if err != nil || len(again.Ops) != len(cmd.Ops) {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		// Applying arbitrary entries must never panic.
		NewFSM().Apply(1, data)
	})
}

func TestSystemTables(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	if err := s.PutSystem(ctx, TableTokens, "abc123", []byte(`{"usage":"agent"}`)); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.GetSystem(TableTokens, "abc123"); !ok || string(v) != `{"usage":"agent"}` {
		t.Fatalf("get: %q %v", v, ok)
	}
	if err := s.DeleteSystem(ctx, TableTokens, "abc123"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSystem(ctx, TableTokens, "abc123"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.PutSystem(ctx, TableTokens, "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	// System records survive a snapshot.
	s.PutSystem(ctx, TableCA, "cluster", []byte("pem"))
	_, persist := s.Snapshot()
	var buf bytes.Buffer
	persist(&buf)
	fresh := NewFSM()
	if err := fresh.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if v, ok := fresh.GetSystem(TableCA, "cluster"); !ok || string(v) != "pem" {
		t.Fatalf("after restore: %q %v", v, ok)
	}
}

// TestNodeWatchIndex checks the hub's by-node index keeps a node agent's
// watch (spec.nodeName=<node>) exact: a binding to the node arrives as
// ADDED, a deletion as DELETED, other nodes' pods not at all, and the
// watch's progress still moves on while it receives nothing.
func TestNodeWatchIndex(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	for _, n := range []string{"a", "b"} {
		info, _ := api.ByKind(api.KindNode)
		node := info.New()
		node.GetObjectMeta().Name = n
		if _, err := s.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	fields := func(node string) ListOptions {
		fs, err := api.ParseFieldSelector(api.FieldPodNodeName + "=" + node)
		if err != nil {
			t.Fatal(err)
		}
		return ListOptions{Fields: fs}
	}
	wa, err := s.Watch(api.KindPod, fields("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Stop()
	_, _, wb, err := s.ListAndWatch(api.KindPod, fields("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Stop()
	p, err := s.Create(ctx, newPod("default", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Batch(ctx, []Op{{Type: OpBind, Key: KeyOf(p), Node: "a"}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("bind: %v %v", err, res)
	}
	if e := recv(t, wa); e.Type != Added || e.Object.GetObjectMeta().Name != "p" {
		t.Fatalf("node a's watch got %s %s, want ADDED p", e.Type, e.Object.GetObjectMeta().Name)
	}
	forceDelete(t, s, KeyOf(p))
	if e := recv(t, wa); e.Type != Deleted {
		t.Fatalf("node a's watch got %s, want DELETED", e.Type)
	}
	select {
	case e := <-wb.Events():
		t.Fatalf("node b's watch got %s %s", e.Type, e.Object.GetObjectMeta().Name)
	case <-time.After(20 * time.Millisecond):
	}
	if got, want := wb.Progress(), s.LastIndex(); got != want {
		t.Fatalf("node b's watch progress %d, want %d", got, want)
	}
}

// TestListIndexes checks lists served from the owner and node indexes
// return exactly what a scan would, through updates, binds, deletes and a
// snapshot restore.
func TestListIndexes(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	info, _ := api.ByKind(api.KindNode)
	node := info.New()
	node.GetObjectMeta().Name = "n1"
	if _, err := s.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	owned := func(name string, uid api.UID) *api.Pod {
		p := newPod("default", name, nil)
		p.OwnerReferences = []api.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "d", UID: uid}}
		return p
	}
	for _, p := range []*api.Pod{owned("a1", "uid-a"), owned("a2", "uid-a"), owned("b1", "uid-b"), newPod("default", "free", nil)} {
		if _, err := s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	names := func(opts ListOptions) string {
		t.Helper()
		objs, _, err := s.List(api.KindPod, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range objs {
			out = append(out, o.GetObjectMeta().Name)
		}
		return fmt.Sprint(out)
	}
	onNode, _ := api.ParseFieldSelector("spec.nodeName=n1")
	check := func(what string, opts ListOptions, want string) {
		t.Helper()
		if got := names(opts); got != want {
			t.Errorf("%s: %s, want %s", what, got, want)
		}
	}
	check("owner a", ListOptions{OwnerUID: "uid-a"}, "[a1 a2]")
	check("owner a, other namespace", ListOptions{OwnerUID: "uid-a", Namespace: "other"}, "[]")
	check("owner b", ListOptions{OwnerUID: "uid-b"}, "[b1]")
	check("node n1 before binding", ListOptions{Fields: onNode}, "[]")
	for _, n := range []string{"a1", "free"} {
		if res, err := s.Batch(ctx, []Op{{Type: OpBind, Key: Key{Kind: api.KindPod, Namespace: "default", Name: n}, Node: "n1"}}); err != nil || res[0].Err != nil {
			t.Fatalf("bind %s: %v %v", n, err, res)
		}
	}
	check("node n1", ListOptions{Fields: onNode}, "[a1 free]")
	check("owner a after binding", ListOptions{OwnerUID: "uid-a"}, "[a1 a2]")
	// The owner reference changes: the index follows.
	cur, _ := s.Get(Key{Kind: api.KindPod, Namespace: "default", Name: "a2"})
	moved := api.DeepCopy(cur.(*api.Pod))
	moved.OwnerReferences[0].UID = "uid-b"
	if _, err := s.Update(ctx, moved); err != nil {
		t.Fatal(err)
	}
	check("owner a after an ownerReference change", ListOptions{OwnerUID: "uid-a"}, "[a1]")
	check("owner b after an ownerReference change", ListOptions{OwnerUID: "uid-b"}, "[a2 b1]")
	forceDelete(t, s, Key{Kind: api.KindPod, Namespace: "default", Name: "a1"})
	check("owner a after delete", ListOptions{OwnerUID: "uid-a"}, "[]")
	check("node n1 after delete", ListOptions{Fields: onNode}, "[free]")
	// A restored snapshot rebuilds the indexes.
	_, persist := s.Snapshot()
	var buf bytes.Buffer
	if err := persist(&buf); err != nil {
		t.Fatal(err)
	}
	fresh := NewFSM()
	if err := fresh.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opts ListOptions
		want string
	}{{ListOptions{OwnerUID: "uid-b"}, "[a2 b1]"}, {ListOptions{Fields: onNode}, "[free]"}} {
		objs, _, _ := fresh.List(api.KindPod, c.opts)
		var got []string
		for _, o := range objs {
			got = append(got, o.GetObjectMeta().Name)
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("after restore: %v, want %s", got, c.want)
		}
	}
}

// forceDelete deletes key at once (grace 0), as a node does once its pod
// stopped.
func forceDelete(t *testing.T, s *Store, key Key) {
	t.Helper()
	zero := int64(0)
	res, err := s.Batch(context.Background(), []Op{{Type: OpDelete, Key: key, Grace: &zero}})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		t.Fatalf("force delete %v: %v", key, err)
	}
}

// A pod that may be running on a node is deleted in two steps: the delete
// marks it with a deadline, and its node's delete with grace 0 removes it.
func TestGracefulPodDelete(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	if _, err := s.Create(ctx, newNode("n1", "", "")); err != nil {
		t.Fatal(err)
	}
	grace := func(g int64) *int64 { return &g }
	del := func(name string, g *int64) (api.Object, error) {
		res, err := s.Batch(ctx, []Op{{Type: OpDelete, Key: Key{Kind: api.KindPod, Namespace: "default", Name: name}, Grace: g}})
		if err != nil {
			return nil, err
		}
		return res[0].Object, res[0].Err
	}
	exists := func(name string) bool {
		_, err := s.Get(Key{Kind: api.KindPod, Namespace: "default", Name: name})
		return err == nil
	}
	mk := func(name, node string, phase api.PodPhase, own *int64) *api.Pod {
		p := newPod("default", name, nil)
		p.Spec.TerminationGracePeriodSeconds = own
		if _, err := s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if node != "" {
			if res, err := s.Batch(ctx, []Op{{Type: OpBind, Key: KeyOf(p), Node: node}}); err != nil || res[0].Err != nil {
				t.Fatalf("bind %s: %v %v", name, err, res)
			}
		}
		if phase != "" {
			cur, _ := s.Get(KeyOf(p))
			c := api.DeepCopy(cur.(*api.Pod))
			c.Status.Phase = phase
			if _, err := s.UpdateStatus(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		cur, _ := s.Get(KeyOf(p))
		return cur.(*api.Pod)
	}

	// Bound and running, its own grace (45 s): marked, not removed.
	mk("run", "n1", api.PodRunning, grace(45))
	before := time.Now().Truncate(time.Second)
	o, err := del("run", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := o.GetObjectMeta()
	if m.DeletionTimestamp == nil || m.DeletionGracePeriodSeconds == nil || *m.DeletionGracePeriodSeconds != 45 {
		t.Fatalf("graceful delete: deletionTimestamp %v, grace %v; want a deadline and 45", m.DeletionTimestamp, m.DeletionGracePeriodSeconds)
	}
	if d := m.DeletionTimestamp.Sub(before); d < 44*time.Second || d > 47*time.Second {
		t.Errorf("deadline %v after the delete, want about 45s", d)
	}
	if !exists("run") {
		t.Fatal("a running pod vanished on a graceful delete")
	}
	// A longer grace changes nothing; a shorter one brings the deadline in.
	if o, _ = del("run", grace(100)); *o.GetObjectMeta().DeletionGracePeriodSeconds != 45 {
		t.Errorf("a longer grace moved the deadline: %v", *o.GetObjectMeta().DeletionGracePeriodSeconds)
	}
	if o, _ = del("run", grace(5)); *o.GetObjectMeta().DeletionGracePeriodSeconds != 5 {
		t.Errorf("a shorter grace did not: %v", *o.GetObjectMeta().DeletionGracePeriodSeconds)
	}
	// Status writes and spec updates keep it (it has no finalizer to lose).
	cur, _ := s.Get(Key{Kind: api.KindPod, Namespace: "default", Name: "run"})
	c := api.DeepCopy(cur.(*api.Pod))
	c.Labels = map[string]string{"x": "y"}
	if _, err := s.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !exists("run") {
		t.Fatal("an update removed a pod in its grace period")
	}
	// The node's delete (grace 0) removes it.
	if _, err := del("run", grace(0)); err != nil || exists("run") {
		t.Fatalf("force delete: %v, still there %v", err, exists("run"))
	}

	// At once: a pod on no node, a finished pod, an explicit grace 0.
	mk("pending", "", "", nil)
	mk("done", "n1", api.PodSucceeded, nil)
	mk("forced", "n1", api.PodRunning, nil)
	for name, g := range map[string]*int64{"pending": nil, "done": nil, "forced": grace(0)} {
		if _, err := del(name, g); err != nil || exists(name) {
			t.Errorf("%s: delete %v, still there %v; want it gone at once", name, err, exists(name))
		}
	}
	// The default grace is the API's default (30 s) when the spec has none.
	mk("dflt", "n1", api.PodRunning, nil)
	if o, _ := del("dflt", nil); o == nil || *o.GetObjectMeta().DeletionGracePeriodSeconds != api.DefaultTerminationGracePeriodSeconds {
		t.Errorf("default grace: %v", o)
	}
}
