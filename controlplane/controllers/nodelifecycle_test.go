package controllers

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestNodeLifecycle(t *testing.T) {
	ctx := context.Background()
	st := store.NewInMemory()
	defer st.Close()
	nsInfo, _ := api.ByKind(api.KindNamespace)
	ns := nsInfo.New()
	ns.GetObjectMeta().Name = "default"
	st.Create(ctx, ns)
	nodeInfo, _ := api.ByKind(api.KindNode)
	for _, name := range []string{"alive", "silent"} {
		n := nodeInfo.New().(*api.Node)
		n.Name = name
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		if _, err := st.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	podInfo, _ := api.ByKind(api.KindPod)
	mk := func(name, node string, tolerate bool) {
		p := podInfo.New().(*api.Pod)
		p.Namespace, p.Name = "default", name
		p.Spec.NodeName = node
		p.Spec.Containers = []api.Container{{Name: "c", Image: "i"}}
		if tolerate {
			p.Spec.Tolerations = []api.Toleration{{Key: TaintNodeUnreachable, Operator: api.TolerationOpExists, Effect: api.TaintEffectNoExecute}}
		}
		if _, err := st.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	mk("on-alive", "alive", false)
	mk("on-silent", "silent", false)
	mk("tolerant", "silent", true)

	clock := &fakeClock{t: time.Unix(1000, 0)}
	live := NewLiveness(clock.Now)
	c := &NodeLifecycle{Store: st, Log: slog.New(slog.DiscardHandler), Liveness: live, Grace: 10 * time.Second, Now: clock.Now}
	node := func(name string) *api.Node {
		o, _ := st.Get(store.Key{Kind: api.KindNode, Name: name})
		return o.(*api.Node)
	}
	ready := func(n *api.Node) api.ConditionStatus {
		for _, c := range n.Status.Conditions {
			if c.Type == api.NodeReady {
				return c.Status
			}
		}
		return ""
	}
	// pod reports whether the pod is there and not being deleted (an
	// evicted pod stays Terminating until its node confirms or the pod GC
	// removes it).
	pod := func(name string) bool {
		o, err := st.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: name})
		return err == nil && o.GetObjectMeta().DeletionTimestamp == nil
	}

	// A new leader gives everyone a full grace period.
	c.Check(ctx)
	clock.Advance(9 * time.Second)
	live.Heartbeat("alive")
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if hasTaint(node("silent"), TaintNodeUnreachable) {
		t.Fatal("tainted within the grace period")
	}
	indexBefore := st.LastIndex()
	for i := 0; i < 5; i++ {
		live.Heartbeat("alive") // heartbeats cost no Raft writes
	}
	if st.LastIndex() != indexBefore {
		t.Fatal("a heartbeat was written to the log")
	}

	clock.Advance(2 * time.Second) // silent: 11s, alive: 2s
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if n := node("silent"); !hasTaint(n, TaintNodeUnreachable) || ready(n) != api.ConditionUnknown {
		t.Fatalf("silent node not marked: taints %+v ready %s", n.Spec.Taints, ready(n))
	}
	if n := node("alive"); hasTaint(n, TaintNodeUnreachable) || ready(n) != api.ConditionTrue {
		t.Fatal("the live node was marked")
	}
	// The next pass evicts what does not tolerate the taint.
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if pod("on-silent") || !pod("tolerant") || !pod("on-alive") {
		t.Fatalf("eviction: on-silent=%v tolerant=%v on-alive=%v", pod("on-silent"), pod("tolerant"), pod("on-alive"))
	}
	// Only transitions are written: a pass with nothing new writes nothing.
	idx := st.LastIndex()
	live.Heartbeat("alive")
	c.Check(ctx)
	if st.LastIndex() != idx {
		t.Fatal("a pass without transitions wrote to the log")
	}
	// Heartbeats resume: the mark goes.
	live.Heartbeat("silent")
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if n := node("silent"); hasTaint(n, TaintNodeUnreachable) || ready(n) != api.ConditionTrue {
		t.Fatalf("recovered node still marked: %+v %s", n.Spec.Taints, ready(n))
	}

	// A node created long after the leader started, whose agent has not
	// heartbeated yet, gets a full grace period from when it is first seen.
	late := nodeInfo.New().(*api.Node)
	late.Name = "late"
	late.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	if _, err := st.Create(ctx, late); err != nil {
		t.Fatal(err)
	}
	live.Heartbeat("alive")
	live.Heartbeat("silent")
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(9 * time.Second)
	live.Heartbeat("alive")
	live.Heartbeat("silent")
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if hasTaint(node("late"), TaintNodeUnreachable) {
		t.Fatal("a new node was marked unreachable before a grace period since it appeared")
	}
	clock.Advance(2 * time.Second)
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasTaint(node("late"), TaintNodeUnreachable) {
		t.Fatal("a new node that never heartbeated was not marked after its grace period")
	}
}
