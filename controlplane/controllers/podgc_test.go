package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestPodGCDeletesPodsOfDeletedNodes(t *testing.T) {
	ctx := context.Background()
	st := newSchedStore(t)
	defer st.Close()
	for _, n := range []string{"gone", "alive"} {
		schedNode(t, st, n, "4")
	}
	bind := func(p *api.Pod, node string) {
		t.Helper()
		res, err := st.Batch(ctx, []store.Op{{Type: store.OpBind, Key: store.KeyOf(p), Node: node}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("bind: %v %v", err, res)
		}
	}
	bind(schedPod(t, st, "on-gone", "1"), "gone")
	bind(schedPod(t, st, "on-alive", "1"), "alive")
	schedPod(t, st, "pending", "1")
	if _, err := st.Delete(ctx, store.Key{Kind: api.KindNode, Name: "gone"}, store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	c := &PodGC{Store: st, Log: slog.New(slog.DiscardHandler)}
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	objs, _, _ := st.List(api.KindPod, store.ListOptions{})
	var names []string
	for _, o := range objs {
		names = append(names, o.GetObjectMeta().Name)
	}
	if len(names) != 2 || names[0] != "on-alive" || names[1] != "pending" {
		t.Fatalf("pods left %v, want [on-alive pending]", names)
	}
	// A second sweep changes nothing.
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if objs, _, _ := st.List(api.KindPod, store.ListOptions{}); len(objs) != 2 {
		t.Fatalf("%d pods after a second sweep", len(objs))
	}
}

func TestPodGCReactsToNodeDeletion(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := newSchedStore(t)
	defer st.Close()
	schedNode(t, st, "n", "4")
	p := schedPod(t, st, "p", "1")
	if res, err := st.Batch(ctx, []store.Op{{Type: store.OpBind, Key: store.KeyOf(p), Node: "n"}}); err != nil || res[0].Err != nil {
		t.Fatalf("bind: %v %v", err, res)
	}
	done := make(chan error, 1)
	c := &PodGC{Store: st, Log: slog.New(slog.DiscardHandler)}
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if _, err := st.Delete(ctx, store.Key{Kind: api.KindNode, Name: "n"}, store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, st, "the pod of the deleted node deleted", func(ps []*api.Pod) bool { return len(ps) == 0 })
}

// A pod deleted gracefully on a node that went silent is removed once its
// grace period is over; on a Ready node, or before its deadline, it stays.
func TestPodGCRemovesOverdueTerminatingPodsOfNotReadyNodes(t *testing.T) {
	ctx := context.Background()
	st := newSchedStore(t)
	defer st.Close()
	schedNode(t, st, "silent", "4")
	schedNode(t, st, "ready", "4")
	for _, pn := range [][2]string{{"overdue", "silent"}, {"on-ready", "ready"}, {"running", "silent"}} {
		p := schedPod(t, st, pn[0], "1")
		if res, err := st.Batch(ctx, []store.Op{{Type: store.OpBind, Key: store.KeyOf(p), Node: pn[1]}}); err != nil || res[0].Err != nil {
			t.Fatalf("bind: %v %v", err, res)
		}
	}
	grace := int64(5)
	for _, name := range []string{"overdue", "on-ready"} {
		res, err := st.Batch(ctx, []store.Op{{Type: store.OpDelete, Key: store.Key{Kind: api.KindPod, Namespace: "default", Name: name}, Grace: &grace}})
		if err != nil || res[0].Err != nil || res[0].Object.GetObjectMeta().DeletionTimestamp == nil {
			t.Fatalf("graceful delete of %s: %v %v", name, err, res)
		}
	}
	o, _ := st.Get(store.Key{Kind: api.KindNode, Name: "silent"})
	n := api.DeepCopy(o.(*api.Node))
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionUnknown}}
	if _, err := st.UpdateStatus(ctx, n); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		objs, _, _ := st.List(api.KindPod, store.ListOptions{})
		var out []string
		for _, o := range objs {
			out = append(out, o.GetObjectMeta().Name)
		}
		return out
	}
	now := time.Now()
	c := &PodGC{Store: st, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names()); got != "[on-ready overdue running]" {
		t.Fatalf("within the grace period: pods %s, want all three", got)
	}
	now = now.Add(10 * time.Second)
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names()); got != "[on-ready running]" {
		t.Fatalf("past the grace period: pods %s, want [on-ready running]", got)
	}
}
