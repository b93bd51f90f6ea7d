package controllers

import (
	"context"
	"log/slog"
	"testing"

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
