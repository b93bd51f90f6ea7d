package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestDesiredRoutes(t *testing.T) {
	node := func(name, cidr string, cidrs ...string) *api.Node {
		return &api.Node{ObjectMeta: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{PodCIDR: cidr, PodCIDRs: cidrs}}
	}
	route := func(node, cidr string) cloudprovider.Route {
		return cloudprovider.Route{TargetNode: cloudprovider.NodeName(node), DestinationCIDR: netip.MustParsePrefix(cidr)}
	}
	tests := []struct {
		name    string
		nodes   []*api.Node
		want    []cloudprovider.Route
		wantBad int
	}{
		{name: "none"},
		{name: "no pod CIDR: no route", nodes: []*api.Node{node("a", "")}},
		{
			name:  "podCIDR, sorted by node",
			nodes: []*api.Node{node("b", "10.244.1.0/24"), node("a", "10.244.0.0/24")},
			want:  []cloudprovider.Route{route("a", "10.244.0.0/24"), route("b", "10.244.1.0/24")},
		},
		{
			name:  "dual stack: one route per podCIDRs entry",
			nodes: []*api.Node{node("a", "10.244.0.0/24", "10.244.0.0/24", "fd00:10:244::/64")},
			want:  []cloudprovider.Route{route("a", "10.244.0.0/24"), route("a", "fd00:10:244::/64")},
		},
		{
			name:  "host bits are masked",
			nodes: []*api.Node{node("a", "10.244.0.7/24")},
			want:  []cloudprovider.Route{route("a", "10.244.0.0/24")},
		},
		{
			name:  "duplicate entries: one route",
			nodes: []*api.Node{node("a", "", "10.244.0.0/24", "10.244.0.0/24")},
			want:  []cloudprovider.Route{route("a", "10.244.0.0/24")},
		},
		{
			name:    "unparsable CIDR: reported, others kept",
			nodes:   []*api.Node{node("a", "nonsense"), node("b", "10.244.1.0/24")},
			want:    []cloudprovider.Route{route("b", "10.244.1.0/24")},
			wantBad: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, bad := desiredRoutes(tt.nodes)
			if !slices.Equal(got, tt.want) || len(bad) != tt.wantBad {
				t.Errorf("got %v (bad %v), want %v (%d bad)", got, bad, tt.want, tt.wantBad)
			}
		})
	}
}

// routeEnv is a route controller over an in-memory store and a fake
// provider, driven by explicit Sync calls and a fake clock.
type routeEnv struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	cloud *deadlines
	clock *fakeClock
	c     *Routes
}

func newRouteEnv(t *testing.T) *routeEnv {
	st := cloudStore(t)
	cloud := newDeadlines()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	t.Cleanup(func() { cloud.assertAll(t) })
	return &routeEnv{t: t, ctx: context.Background(), st: st, cloud: cloud, clock: clock,
		c: &Routes{Store: st, Log: slog.New(slog.DiscardHandler), Cloud: cloud, ClusterName: "test", Now: clock.Now}}
}

// routes lists the provider's routes as "node cidr".
func (e *routeEnv) routes() []string {
	e.t.Helper()
	rs, err := e.cloud.Fake.ListRoutes(e.ctx, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %s", r.TargetNode, r.DestinationCIDR))
	}
	slices.Sort(out)
	return out
}

func (e *routeEnv) sync() error {
	e.t.Helper()
	return e.c.Sync(e.ctx)
}

func (e *routeEnv) mustSync() {
	e.t.Helper()
	if err := e.sync(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *routeEnv) wantRoutes(want ...string) {
	e.t.Helper()
	if got := e.routes(); !slices.Equal(got, want) {
		e.t.Fatalf("routes %q, want %q", got, want)
	}
}

// networkUnavailable is the node's NetworkUnavailable condition (zero if
// none).
func (e *routeEnv) networkUnavailable(name string) api.NodeCondition {
	e.t.Helper()
	n := getNode(e.st, name)
	if n == nil {
		e.t.Fatalf("node %s not found", name)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == api.NodeNetworkUnavailable {
			return c
		}
	}
	return api.NodeCondition{}
}

func TestRoutesFollowNodes(t *testing.T) {
	e := newRouteEnv(t)
	createNode(t, e.st, testNode{name: "a", podCIDR: "10.244.1.0/24", ready: api.ConditionTrue})
	createNode(t, e.st, testNode{name: "b", podCIDR: "10.244.2.0/24"})
	e.mustSync()
	e.wantRoutes("a 10.244.1.0/24", "b 10.244.2.0/24")
	for _, c := range e.cloud.CallsTo(cloudprovider.MethodCreateRoute) {
		if c.NameHint != string(c.Route.TargetNode) || c.ClusterName != "test" {
			t.Errorf("CreateRoute hint %q cluster %q for node %s; want the node name and cluster test", c.NameHint, c.ClusterName, c.Route.TargetNode)
		}
	}
	for _, name := range []string{"a", "b"} {
		c := e.networkUnavailable(name)
		if c.Status != api.ConditionFalse || c.Reason != ReasonRouteCreated || c.LastTransitionTime == nil || !c.LastTransitionTime.Time.Equal(e.clock.Now()) {
			t.Errorf("node %s NetworkUnavailable %+v, want False/RouteCreated at %v", name, c, e.clock.Now())
		}
	}
	if n := getNode(e.st, "a"); !nodeReadyTrue(n) {
		t.Errorf("the Ready condition was lost: %+v", n.Status.Conditions)
	}

	// Nothing changed: one ListRoutes, no other call, no write.
	e.cloud.ResetCalls()
	idx := e.st.LastIndex()
	e.clock.Advance(time.Minute)
	e.mustSync()
	if got := methods(e.cloud.Calls()); !slices.Equal(got, []cloudprovider.Method{cloudprovider.MethodListRoutes}) || e.st.LastIndex() != idx {
		t.Fatalf("a pass without changes: calls %v, %d writes", got, e.st.LastIndex()-idx)
	}

	// A node goes: its route goes, the other stays.
	if _, err := e.st.Delete(e.ctx, store.Key{Kind: api.KindNode, Name: "a"}, store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	e.mustSync()
	e.wantRoutes("b 10.244.2.0/24")
	if d := e.cloud.CallsTo(cloudprovider.MethodDeleteRoute); len(d) != 1 || d[0].Route.TargetNode != "a" {
		t.Fatalf("DeleteRoute calls %+v", d)
	}

	// A node comes back under the same name with another CIDR, and the old
	// CIDR goes to a new node: the stale route goes first, so neither
	// creation overlaps it.
	createNode(t, e.st, testNode{name: "b2", podCIDR: "10.244.1.0/24"})
	if _, err := e.st.Delete(e.ctx, store.Key{Kind: api.KindNode, Name: "b"}, store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	createNode(t, e.st, testNode{name: "b", podCIDR: "10.244.3.0/24"})
	createNode(t, e.st, testNode{name: "c", podCIDR: "10.244.2.0/24"})
	e.mustSync()
	e.wantRoutes("b 10.244.3.0/24", "b2 10.244.1.0/24", "c 10.244.2.0/24")
}

func TestRoutesRemoveStaleAndRecreateLost(t *testing.T) {
	e := newRouteEnv(t)
	// Left behind by a node deleted while no leader ran.
	if err := e.cloud.Fake.CreateRoute(e.ctx, "test", "gone", &cloudprovider.Route{TargetNode: "gone", DestinationCIDR: netip.MustParsePrefix("10.244.9.0/24")}); err != nil {
		t.Fatal(err)
	}
	// Another cluster's routes are not ours.
	if err := e.cloud.Fake.CreateRoute(e.ctx, "other", "x", &cloudprovider.Route{TargetNode: "x", DestinationCIDR: netip.MustParsePrefix("10.0.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	createNode(t, e.st, testNode{name: "a", podCIDR: "10.244.1.0/24"})
	e.mustSync()
	e.wantRoutes("a 10.244.1.0/24")
	if rs, _ := e.cloud.Fake.ListRoutes(e.ctx, "other"); len(rs) != 1 {
		t.Fatalf("another cluster's routes: %v", rs)
	}
	// A route lost in the provider is recreated by the next pass.
	if err := e.cloud.Fake.DeleteRoute(e.ctx, "test", &cloudprovider.Route{TargetNode: "a", DestinationCIDR: netip.MustParsePrefix("10.244.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	e.mustSync()
	e.wantRoutes("a 10.244.1.0/24")
}

func TestRoutesNodeWithoutPodCIDR(t *testing.T) {
	e := newRouteEnv(t)
	// Room for two node CIDRs: the third node gets none.
	nw := store.DefaultNetwork
	nw.ClusterCIDR, nw.NodeMaskSize = netip.MustParsePrefix("10.244.0.0/29"), 30
	if err := e.st.SetNetwork(e.ctx, nw); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		createNode(t, e.st, testNode{name: name})
	}
	var without string
	for _, name := range []string{"a", "b", "c"} {
		if getNode(e.st, name).Spec.PodCIDR == "" {
			without = name
		}
	}
	if without == "" {
		t.Fatal("every node got a pod CIDR from a /29 cut in /30s")
	}
	e.mustSync()
	if got := e.routes(); len(got) != 2 {
		t.Fatalf("routes %q, want one for each of the two nodes with a pod CIDR", got)
	}
	if c := e.networkUnavailable(without); c.Type != "" {
		t.Fatalf("node without a pod CIDR got %+v", c)
	}
}

func TestRoutesCreateFailure(t *testing.T) {
	e := newRouteEnv(t)
	createNode(t, e.st, testNode{name: "a", podCIDR: "10.244.1.0/24"})
	e.cloud.SetError(cloudprovider.MethodCreateRoute, errors.New("quota exceeded"))
	if err := e.sync(); err == nil {
		t.Fatal("Sync hid a failed CreateRoute")
	}
	e.wantRoutes()
	failedAt := e.clock.Now()
	if c := e.networkUnavailable("a"); c.Status != api.ConditionTrue || c.Reason != ReasonNoRouteCreated {
		t.Fatalf("NetworkUnavailable %+v, want True/NoRouteCreated", c)
	}
	// Failing again changes nothing in the store.
	idx := e.st.LastIndex()
	e.clock.Advance(time.Minute)
	e.sync()
	if e.st.LastIndex() != idx {
		t.Fatal("a repeated failure rewrote the condition")
	}
	if c := e.networkUnavailable("a"); !c.LastTransitionTime.Time.Equal(failedAt) {
		t.Fatalf("transition time moved without a transition: %v", c.LastTransitionTime)
	}
	e.cloud.SetError(cloudprovider.MethodCreateRoute, nil)
	e.mustSync()
	e.wantRoutes("a 10.244.1.0/24")
	if c := e.networkUnavailable("a"); c.Status != api.ConditionFalse || c.Reason != ReasonRouteCreated || !c.LastTransitionTime.Time.Equal(e.clock.Now()) {
		t.Fatalf("NetworkUnavailable %+v, want False/RouteCreated at %v", c, e.clock.Now())
	}
}

func TestRoutesListFailureChangesNothing(t *testing.T) {
	e := newRouteEnv(t)
	createNode(t, e.st, testNode{name: "a", podCIDR: "10.244.1.0/24"})
	e.cloud.SetError(cloudprovider.MethodListRoutes, errors.New("timeout"))
	idx := e.st.LastIndex()
	if err := e.sync(); err == nil {
		t.Fatal("Sync hid a failed ListRoutes")
	}
	if got := methods(e.cloud.Calls()); len(got) != 1 || e.st.LastIndex() != idx {
		t.Fatalf("after a failed ListRoutes: calls %v, %d writes", got, e.st.LastIndex()-idx)
	}
}

func TestRoutesWithoutRoutesProvider(t *testing.T) {
	e := newRouteEnv(t)
	e.cloud.SetSupported(cloudprovider.FeatureRoutes, false)
	createNode(t, e.st, testNode{name: "a", podCIDR: "10.244.1.0/24"})
	idx := e.st.LastIndex()
	e.mustSync()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Millisecond)
	defer cancel()
	e.c.Resync = time.Millisecond
	if err := e.c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if calls := e.cloud.Calls(); len(calls) != 0 || e.st.LastIndex() != idx {
		t.Fatalf("without routes: calls %v, %d writes", calls, e.st.LastIndex()-idx)
	}
}

// TestRoutesRun drives the controller through its node watch only: the
// resync period is far away.
func TestRoutesRun(t *testing.T) {
	e := newRouteEnv(t)
	createNode(t, e.st, testNode{name: "a", podCIDR: "10.244.1.0/24"})
	e.c.Resync = time.Hour
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	has := func(want ...string) func() bool {
		return func() bool { return slices.Equal(e.routes(), want) }
	}
	waitUntil(t, "route of a node that existed at start", has("a 10.244.1.0/24"))
	createNode(t, e.st, testNode{name: "b", podCIDR: "10.244.2.0/24"})
	waitUntil(t, "route of an added node", has("a 10.244.1.0/24", "b 10.244.2.0/24"))
	waitUntil(t, "NetworkUnavailable=False on the added node", func() bool {
		return e.networkUnavailable("b").Reason == ReasonRouteCreated
	})
	if _, err := e.st.Delete(e.ctx, store.Key{Kind: api.KindNode, Name: "a"}, store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "route of a deleted node removed", has("b 10.244.2.0/24"))
	// Status writes (the controller's own condition, an agent's) start no
	// pass.
	lists := e.cloud.calls("ListRoutes")
	n := api.DeepCopy(getNode(e.st, "b"))
	n.Status.Conditions = setNodeCondition(n.Status.Conditions, api.NodeCondition{Type: api.NodeReady, Status: api.ConditionTrue})
	if _, err := e.st.UpdateStatus(e.ctx, n); err != nil {
		t.Fatal(err)
	}
	// A marker after the status write: once its pass has run, any pass the
	// status write started would have run too (one watch, in order).
	createNode(t, e.st, testNode{name: "marker", podCIDR: "10.244.5.0/24"})
	waitUntil(t, "route of the marker node", has("b 10.244.2.0/24", "marker 10.244.5.0/24"))
	if n := e.cloud.calls("ListRoutes") - lists; n != 1 {
		t.Fatalf("%d passes after a status write and a node creation, want 1", n)
	}
}
