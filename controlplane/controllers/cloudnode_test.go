package controllers

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
)

// cloudStore is an in-memory store with the default namespace, closed when
// the test ends.
func cloudStore(t *testing.T) *store.Store {
	t.Helper()
	st := store.NewInMemory()
	t.Cleanup(st.Close)
	nsInfo, _ := api.ByKind(api.KindNamespace)
	ns := nsInfo.New()
	ns.GetObjectMeta().Name = "default"
	if _, err := st.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return st
}

// testNode is a node fixture: ready says what its Ready condition is ("":
// none).
type testNode struct {
	name       string
	ready      api.ConditionStatus
	providerID string
	podCIDR    string
	labels     map[string]string
}

func createNode(t *testing.T, st *store.Store, tn testNode) *api.Node {
	t.Helper()
	info, _ := api.ByKind(api.KindNode)
	n := info.New().(*api.Node)
	n.Name, n.Labels = tn.name, tn.labels
	n.Spec.ProviderID, n.Spec.PodCIDR = tn.providerID, tn.podCIDR
	if tn.ready != "" {
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: tn.ready}}
	}
	o, err := st.Create(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Node)
}

func getNode(st *store.Store, name string) *api.Node {
	o, err := st.Get(store.Key{Kind: api.KindNode, Name: name})
	if err != nil {
		return nil
	}
	return o.(*api.Node)
}

// deadlines wraps a Fake: it counts the calls controllers make through it
// (the test's own calls to the Fake are not counted) and records those made
// with a context without a deadline: provider calls may block, so
// controllers bound them.
type deadlines struct {
	*cloudprovider.Fake
	mu      sync.Mutex
	count   map[string]int
	missing []string
}

func (d *deadlines) check(ctx context.Context, what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.count[what]++
	if _, ok := ctx.Deadline(); !ok {
		d.missing = append(d.missing, what)
	}
}

// calls is how many calls of what the controller made.
func (d *deadlines) calls(what string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[what]
}

func (d *deadlines) Instances() (cloudprovider.Instances, bool) {
	if _, ok := d.Fake.Instances(); !ok {
		return nil, false
	}
	return deadlineInstances{d}, true
}

func (d *deadlines) Routes() (cloudprovider.Routes, bool) {
	if _, ok := d.Fake.Routes(); !ok {
		return nil, false
	}
	return deadlineRoutes{d}, true
}

func (d *deadlines) assertAll(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.missing) > 0 {
		t.Errorf("provider calls without a deadline: %v", d.missing)
	}
}

type deadlineInstances struct{ d *deadlines }

func (i deadlineInstances) InstanceExists(ctx context.Context, n *api.Node) (bool, error) {
	i.d.check(ctx, "InstanceExists")
	return i.d.Fake.InstanceExists(ctx, n)
}

func (i deadlineInstances) InstanceMetadata(ctx context.Context, n *api.Node) (*cloudprovider.InstanceMetadata, error) {
	i.d.check(ctx, "InstanceMetadata")
	return i.d.Fake.InstanceMetadata(ctx, n)
}

type deadlineRoutes struct{ d *deadlines }

func (r deadlineRoutes) ListRoutes(ctx context.Context, cluster string) ([]*cloudprovider.Route, error) {
	r.d.check(ctx, "ListRoutes")
	return r.d.Fake.ListRoutes(ctx, cluster)
}

func (r deadlineRoutes) CreateRoute(ctx context.Context, cluster, hint string, route *cloudprovider.Route) error {
	r.d.check(ctx, "CreateRoute")
	return r.d.Fake.CreateRoute(ctx, cluster, hint, route)
}

func (r deadlineRoutes) DeleteRoute(ctx context.Context, cluster string, route *cloudprovider.Route) error {
	r.d.check(ctx, "DeleteRoute")
	return r.d.Fake.DeleteRoute(ctx, cluster, route)
}

func newDeadlines() *deadlines {
	return &deadlines{Fake: cloudprovider.NewFake(), count: map[string]int{}}
}

func TestCloudNodeCheck(t *testing.T) {
	errDown := errors.New("cloud API down")
	tests := []struct {
		name    string
		node    testNode
		setup   func(f *cloudprovider.Fake)
		wantErr bool
		// want checks the node after one pass (nil: deleted).
		want func(t *testing.T, n *api.Node)
		// calls are the provider methods called, in order.
		calls []cloudprovider.Method
	}{
		{
			name:  "not ready, instance gone: deleted",
			node:  testNode{name: "n1", ready: api.ConditionUnknown, providerID: "fake://n1"},
			setup: func(f *cloudprovider.Fake) { f.SetInstanceExists("n1", false) },
			want: func(t *testing.T, n *api.Node) {
				if n != nil {
					t.Error("the node of a gone instance was kept")
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceExists},
		},
		{
			name:  "no Ready condition yet, instance gone: deleted",
			node:  testNode{name: "n1", providerID: "fake://n1"},
			setup: func(f *cloudprovider.Fake) { f.SetInstanceExists("n1", false) },
			want: func(t *testing.T, n *api.Node) {
				if n != nil {
					t.Error("the node of a gone instance was kept")
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceExists},
		},
		{
			name:    "InstanceExists fails: kept",
			node:    testNode{name: "n1", ready: api.ConditionUnknown, providerID: "fake://n1"},
			setup:   func(f *cloudprovider.Fake) { f.SetError(cloudprovider.MethodInstanceExists, errDown) },
			wantErr: true,
			want: func(t *testing.T, n *api.Node) {
				if n == nil {
					t.Error("deleted a node although the provider did not know whether its instance exists")
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceExists},
		},
		{
			name:  "ready node: not asked, kept",
			node:  testNode{name: "n1", ready: api.ConditionTrue, providerID: "fake://n1"},
			setup: func(f *cloudprovider.Fake) { f.SetInstanceExists("n1", false) },
			want: func(t *testing.T, n *api.Node) {
				if n == nil {
					t.Error("deleted a Ready node")
				}
			},
		},
		{
			name: "not ready, instance exists: kept",
			node: testNode{name: "n1", ready: api.ConditionFalse, providerID: "fake://n1"},
			want: func(t *testing.T, n *api.Node) {
				if n == nil {
					t.Error("deleted a node whose instance exists")
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceExists},
		},
		{
			name: "no provider ID: filled",
			node: testNode{name: "n1", ready: api.ConditionTrue},
			want: func(t *testing.T, n *api.Node) {
				if n.Spec.ProviderID != "fake://n1" {
					t.Errorf("providerID %q, want fake://n1", n.Spec.ProviderID)
				}
				if _, ok := n.Labels[cloudprovider.LabelTopologyZone]; ok {
					t.Errorf("a zone label without a zone: %v", n.Labels)
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceMetadata},
		},
		{
			name: "no provider ID: filled with zone and region",
			node: testNode{name: "n1", ready: api.ConditionTrue, labels: map[string]string{"disk": "ssd"}},
			setup: func(f *cloudprovider.Fake) {
				f.SetInstanceMetadata("n1", &cloudprovider.InstanceMetadata{ProviderID: "fake://i-0123", Zone: "eu-1a", Region: "eu-1"})
			},
			want: func(t *testing.T, n *api.Node) {
				want := map[string]string{"disk": "ssd", cloudprovider.LabelTopologyZone: "eu-1a", cloudprovider.LabelTopologyRegion: "eu-1"}
				if n.Spec.ProviderID != "fake://i-0123" || !maps.Equal(n.Labels, want) {
					t.Errorf("providerID %q labels %v", n.Spec.ProviderID, n.Labels)
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceMetadata},
		},
		{
			name: "not ready, no provider ID: asked both, filled",
			node: testNode{name: "n1", ready: api.ConditionUnknown},
			want: func(t *testing.T, n *api.Node) {
				if n == nil || n.Spec.ProviderID != "fake://n1" {
					t.Errorf("node %+v", n)
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceExists, cloudprovider.MethodInstanceMetadata},
		},
		{
			name:    "metadata fails: unchanged",
			node:    testNode{name: "n1", ready: api.ConditionTrue},
			setup:   func(f *cloudprovider.Fake) { f.SetError(cloudprovider.MethodInstanceMetadata, errDown) },
			wantErr: true,
			want: func(t *testing.T, n *api.Node) {
				if n == nil || n.Spec.ProviderID != "" {
					t.Errorf("node %+v", n)
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceMetadata},
		},
		{
			name: "zone that is no label value: unchanged",
			node: testNode{name: "n1", ready: api.ConditionTrue},
			setup: func(f *cloudprovider.Fake) {
				f.SetInstanceMetadata("n1", &cloudprovider.InstanceMetadata{ProviderID: "fake://x", Zone: "no spaces allowed"})
			},
			wantErr: true,
			want: func(t *testing.T, n *api.Node) {
				if n == nil || n.Spec.ProviderID != "" || len(n.Labels) != 0 {
					t.Errorf("node %+v", n)
				}
			},
			calls: []cloudprovider.Method{cloudprovider.MethodInstanceMetadata},
		},
		{
			name: "provider without instances: nothing",
			node: testNode{name: "n1", ready: api.ConditionUnknown},
			setup: func(f *cloudprovider.Fake) {
				f.SetSupported(cloudprovider.FeatureInstances, false)
				f.SetInstanceExists("n1", false)
			},
			want: func(t *testing.T, n *api.Node) {
				if n == nil || n.Spec.ProviderID != "" {
					t.Errorf("node %+v", n)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := cloudStore(t)
			cloud := newDeadlines()
			if tt.setup != nil {
				tt.setup(cloud.Fake)
			}
			createNode(t, st, tt.node)
			c := &CloudNode{Store: st, Log: slog.New(slog.DiscardHandler), Cloud: cloud}
			err := c.Check(ctx)
			if (err != nil) != tt.wantErr {
				t.Errorf("Check: %v, want error: %v", err, tt.wantErr)
			}
			tt.want(t, getNode(st, tt.node.name))
			if got := methods(cloud.Calls()); !slices.Equal(got, tt.calls) {
				t.Errorf("calls %v, want %v", got, tt.calls)
			}
			cloud.assertAll(t)
		})
	}
}

func TestCloudNodeInitialisesOnce(t *testing.T) {
	ctx := context.Background()
	st := cloudStore(t)
	cloud := cloudprovider.NewFake()
	createNode(t, st, testNode{name: "n1", ready: api.ConditionTrue})
	c := &CloudNode{Store: st, Log: slog.New(slog.DiscardHandler), Cloud: cloud}
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if n := getNode(st, "n1"); n.Spec.ProviderID != "fake://n1" {
		t.Fatalf("providerID %q", n.Spec.ProviderID)
	}
	// The provider's answer changes: an initialised node is not asked again
	// and costs no write.
	cloud.SetInstanceMetadata("n1", &cloudprovider.InstanceMetadata{ProviderID: "fake://other", Zone: "z"})
	cloud.ResetCalls()
	idx := st.LastIndex()
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if calls := cloud.Calls(); len(calls) != 0 || st.LastIndex() != idx {
		t.Fatalf("a pass over an initialised Ready node: calls %v, writes %d", calls, st.LastIndex()-idx)
	}
	if n := getNode(st, "n1"); n.Spec.ProviderID != "fake://n1" {
		t.Fatalf("providerID changed to %q", n.Spec.ProviderID)
	}
}

// TestCloudNodeRun drives the controller through its watch and its period.
func TestCloudNodeRun(t *testing.T) {
	st := cloudStore(t)
	cloud := newDeadlines()
	ctx, cancel := context.WithCancel(context.Background())
	c := &CloudNode{Store: st, Log: slog.New(slog.DiscardHandler), Cloud: cloud, Period: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		cloud.assertAll(t)
	}()

	// A node event: initialised at once.
	createNode(t, st, testNode{name: "new", ready: api.ConditionTrue})
	waitUntil(t, "providerID of a new node", func() bool {
		n := getNode(st, "new")
		return n != nil && n.Spec.ProviderID == "fake://new"
	})
	// A silent node whose machine goes: deleted on a later period, with no
	// node event.
	createNode(t, st, testNode{name: "silent", ready: api.ConditionUnknown, providerID: "fake://silent"})
	waitUntil(t, "first check of the silent node", func() bool { return len(cloud.CallsTo(cloudprovider.MethodInstanceExists)) > 0 })
	if getNode(st, "silent") == nil {
		t.Fatal("deleted a node whose instance exists")
	}
	cloud.SetInstanceExists("silent", false)
	waitUntil(t, "silent node deleted", func() bool { return getNode(st, "silent") == nil })
	if getNode(st, "new") == nil {
		t.Fatal("the Ready node was deleted")
	}
}

func TestCloudNodeWithoutInstancesWaits(t *testing.T) {
	st := cloudStore(t)
	cloud := cloudprovider.NewFake()
	cloud.SetSupported(cloudprovider.FeatureInstances, false)
	createNode(t, st, testNode{name: "n1", ready: api.ConditionUnknown})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	c := &CloudNode{Store: st, Log: slog.New(slog.DiscardHandler), Cloud: cloud, Period: time.Millisecond}
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if calls := cloud.Calls(); len(calls) != 0 {
		t.Fatalf("calls %v", calls)
	}
}

// waitUntil polls cond until it holds (watch propagation takes a few
// milliseconds).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func methods(calls []cloudprovider.Call) []cloudprovider.Method {
	var out []cloudprovider.Method
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return out
}
