package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

type member struct {
	node  *Node
	store *store.Store
	dir   string
}

func start(t *testing.T, id, dir, addr string, bootstrap bool) *member {
	t.Helper()
	fsm := store.NewFSM()
	n, err := New(Config{ID: ServerID(id), DataDir: dir, BindAddr: addr, Bootstrap: bootstrap,
		Logger: slog.New(slog.DiscardHandler), RaftLogLevel: "warn"}, fsm)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{node: n, store: store.New(fsm, n, store.Options{}), dir: dir}
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	m.store.Close()
	m.node.Shutdown()
}

func waitLeader(t *testing.T, ms ...*member) *member {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range ms {
			if m.node.IsLeader() && m.node.Ready() {
				return m
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no leader within 10s")
	return nil
}

func ns(name string) api.Object {
	info, _ := api.ByKind(api.KindNamespace)
	o := info.New()
	o.GetObjectMeta().Name = name
	return o
}

func TestRestartRecoversFromDisk(t *testing.T) {
	dir := t.TempDir()
	m := start(t, "s1", dir, "127.0.0.1:0", true)
	waitLeader(t, m)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if _, err := m.store.Create(ctx, ns(fmt.Sprintf("ns%d", i))); err != nil {
			t.Fatal(err)
		}
		if i == 15 {
			if err := m.node.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := m.store.LastIndex()
	m.stop()

	m2 := start(t, "s1", dir, "127.0.0.1:0", true)
	waitLeader(t, m2)
	if err := m2.store.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	objs, _, _ := m2.store.List(api.KindNamespace, store.ListOptions{})
	if len(objs) != 30 {
		t.Fatalf("after restart: %d namespaces, want 30", len(objs))
	}
	if m2.store.LastIndex() < want {
		t.Fatalf("after restart: index %d < %d", m2.store.LastIndex(), want)
	}
}

func TestThreeServersFailover(t *testing.T) {
	ctx := context.Background()
	a := start(t, "a", t.TempDir(), "127.0.0.1:0", true)
	waitLeader(t, a)
	b := start(t, "b", t.TempDir(), "127.0.0.1:0", false)
	c := start(t, "c", t.TempDir(), "127.0.0.1:0", false)
	for _, m := range []*member{b, c} {
		if err := a.node.AddVoter(ctx, m.node.ID(), m.node.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.store.Create(ctx, ns("before")); err != nil {
		t.Fatal(err)
	}
	// Followers refuse writes and consistent reads.
	if _, err := b.store.Create(ctx, ns("x")); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("follower write: %v, want ErrNotLeader", err)
	}
	if err := b.store.ReadBarrier(ctx); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("follower read barrier: %v", err)
	}

	// Failover of a healthy cluster: every member has caught up first (a
	// member added a moment ago may not even have its configuration yet).
	deadline := time.Now().Add(10 * time.Second)
	for b.store.LastIndex() < a.store.LastIndex() || c.store.LastIndex() < a.store.LastIndex() {
		if time.Now().After(deadline) {
			t.Fatalf("followers did not catch up: a=%d b=%d c=%d", a.store.LastIndex(), b.store.LastIndex(), c.store.LastIndex())
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.stop()
	killed := time.Now()
	leader := waitLeader(t, b, c)
	if _, err := leader.store.Create(ctx, ns("after")); err != nil {
		t.Fatal(err)
	}
	t.Logf("new leader %s wrote %v after the old one stopped", leader.node.ID(), time.Since(killed))
	for _, m := range []*member{b, c} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := m.store.Get(store.Key{Kind: api.KindNamespace, Name: "after"}); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never saw the write", m.node.ID())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := m.store.Get(store.Key{Kind: api.KindNamespace, Name: "before"}); err != nil {
			t.Fatalf("%s lost an acknowledged write: %v", m.node.ID(), err)
		}
	}
}
