package hollow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/hollow"
	"github.com/skiffhq/skiff/test/testcluster"
)

// A fleet of hollow nodes registers Ready under zero-padded names, each
// with its own identity (a node may only write its own Node), runs pods the
// scheduler gives it, and stops when its context ends.
func TestFleet(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := hollow.Start(ctx, hollow.Config{
		Servers: []string{cl.URL}, Token: cl.AgentToken(t), Nodes: 12, Prefix: "h-",
		Capacity:        api.ResourceList{api.ResourceCPU: api.MustParseQuantity("2"), api.ResourceMemory: api.MustParseQuantity("4Gi")},
		Labels:          map[string]string{"topology.kubernetes.io/zone": "sim"},
		HeartbeatPeriod: 200 * time.Millisecond, Concurrency: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Nodes()) != 12 {
		t.Fatalf("%d nodes started, want 12", len(f.Nodes()))
	}
	l, err := cl.Admin.List(ctx, api.KindNode, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, o := range l.Items {
		n := o.(*api.Node)
		names[n.Name] = true
		if n.Labels["topology.kubernetes.io/zone"] != "sim" || n.Status.Capacity.Cpu().Value() != 2 {
			t.Errorf("node %s: labels %v capacity %v", n.Name, n.Labels, n.Status.Capacity)
		}
	}
	for i := range 12 {
		if want := fmt.Sprintf("h-%02d", i); !names[want] {
			t.Errorf("no node %s among %v", want, names)
		}
	}
	addrs := map[string]bool{}
	for _, n := range f.Nodes() {
		a := n.Agent.Node().Status.Addresses[0].Address
		if addrs[a] {
			t.Errorf("address %s given twice", a)
		}
		addrs[a] = true
	}

	// Each node speaks for itself only.
	n0 := f.Nodes()[0]
	other := f.Nodes()[1].Name
	o, err := n0.Client.Get(ctx, api.KindNode, "", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n0.Client.UpdateStatus(ctx, o); err == nil {
		t.Errorf("node %s updated node %s's status", n0.Name, other)
	}

	p := &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
	p.Name, p.Namespace = "on-a-hollow-node", "default"
	p.Spec.Containers = []api.Container{{Name: "c", Image: "nginx:1.27"}}
	if _, err := cl.Admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 15*time.Second, "the pod Running on a hollow node", func() bool {
		o, err := cl.Admin.Get(ctx, api.KindPod, "default", p.Name)
		if err != nil {
			return false
		}
		got := o.(*api.Pod)
		return got.Status.Phase == api.PodRunning && names[got.Spec.NodeName] && got.Status.PodIP != ""
	})

	cancel()
	done := make(chan error, 1)
	go func() { done <- f.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fleet did not stop within 10s")
	}
}

// A token the cluster does not know stops the fleet with an error.
func TestFleetBadToken(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	tok := cl.AgentToken(t)
	tok.Secret = "0000000000000000"
	_, err := hollow.Start(context.Background(), hollow.Config{Servers: []string{cl.URL}, Token: tok, Nodes: 3})
	if err == nil {
		t.Fatal("a fleet started with a wrong secret")
	}
}
