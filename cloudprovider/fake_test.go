package cloudprovider

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func TestFakeRecordsCalls(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	n1 := &api.Node{ObjectMeta: api.ObjectMeta{Name: "n1"}}
	n2 := &api.Node{ObjectMeta: api.ObjectMeta{Name: "n2"}}
	svc := lbService("default/web", "u", "")
	route := Route{TargetNode: "n1", DestinationCIDR: netip.MustParsePrefix("10.244.1.0/24")}

	_, _ = f.InstanceExists(ctx, n1)
	_, _ = f.InstanceMetadata(ctx, n2)
	_, _ = f.EnsureLoadBalancer(ctx, "c", svc, []*api.Node{n1, n2})
	_, _, _ = f.GetLoadBalancer(ctx, "c", svc)
	_ = f.UpdateLoadBalancer(ctx, "c", svc, []*api.Node{n2})
	_ = f.EnsureLoadBalancerDeleted(ctx, "c", svc)
	_ = f.Restore([]*api.Service{svc})
	_ = f.CreateRoute(ctx, "c", "uid-1", &route)
	_, _ = f.ListRoutes(ctx, "c")
	_ = f.DeleteRoute(ctx, "c", &route)

	want := []Call{
		{Method: MethodInstanceExists, Node: "n1"},
		{Method: MethodInstanceMetadata, Node: "n2"},
		{Method: MethodEnsureLoadBalancer, ClusterName: "c", Service: "default/web", Nodes: []NodeName{"n1", "n2"}},
		{Method: MethodGetLoadBalancer, ClusterName: "c", Service: "default/web"},
		{Method: MethodUpdateLoadBalancer, ClusterName: "c", Service: "default/web", Nodes: []NodeName{"n2"}},
		{Method: MethodEnsureLoadBalancerDeleted, ClusterName: "c", Service: "default/web"},
		{Method: MethodRestore, Services: []string{"default/web"}},
		{Method: MethodCreateRoute, ClusterName: "c", NameHint: "uid-1", Route: route},
		{Method: MethodListRoutes, ClusterName: "c"},
		{Method: MethodDeleteRoute, ClusterName: "c", Route: route},
	}
	if got := f.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Calls() =\n%+v\nwant\n%+v", got, want)
	}
	if got := f.CallsTo(MethodUpdateLoadBalancer); len(got) != 1 || !reflect.DeepEqual(got[0], want[4]) {
		t.Fatalf("CallsTo(Update) = %+v", got)
	}
	f.ResetCalls()
	if got := f.Calls(); len(got) != 0 {
		t.Fatalf("after ResetCalls: %v", got)
	}
}

func TestFakeErrorsAreConfigurable(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	boom := errors.New("boom")
	svc := lbService("a/x", "", "")
	f.SetError(MethodEnsureLoadBalancer, boom)
	f.SetError(MethodCreateRoute, boom)
	if _, err := f.EnsureLoadBalancer(ctx, "c", svc, nil); !errors.Is(err, boom) {
		t.Fatalf("Ensure = %v, want boom", err)
	}
	if err := f.CreateRoute(ctx, "c", "", &Route{TargetNode: "n", DestinationCIDR: netip.MustParsePrefix("10.0.0.0/24")}); !errors.Is(err, boom) {
		t.Fatalf("CreateRoute = %v, want boom", err)
	}
	if rs, _ := f.ListRoutes(ctx, "c"); len(rs) != 0 {
		t.Fatal("a failed CreateRoute created the route")
	}
	if _, exists, _ := f.GetLoadBalancer(ctx, "c", svc); exists {
		t.Fatal("a failed Ensure created the load balancer")
	}
	if n := len(f.CallsTo(MethodEnsureLoadBalancer)); n != 1 {
		t.Fatalf("failed calls are recorded too: got %d", n)
	}
	f.SetError(MethodEnsureLoadBalancer, nil)
	if _, err := f.EnsureLoadBalancer(ctx, "c", svc, nil); err != nil {
		t.Fatalf("Ensure after clearing the error: %v", err)
	}
}

func TestFakeInstances(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	inst, _ := f.Instances()
	n := &api.Node{ObjectMeta: api.ObjectMeta{Name: "n1"}, Status: api.NodeStatus{Addresses: []api.NodeAddress{{Type: api.NodeInternalIP, Address: "10.0.0.1"}}}}

	if ok, err := inst.InstanceExists(ctx, n); !ok || err != nil {
		t.Fatalf("default InstanceExists = %v, %v", ok, err)
	}
	m, err := inst.InstanceMetadata(ctx, n)
	if err != nil || m.ProviderID != "fake://n1" || len(m.NodeAddresses) != 1 {
		t.Fatalf("default metadata = %+v, %v", m, err)
	}

	f.SetInstanceMetadata("n1", &InstanceMetadata{ProviderID: "fake://i-123", Zone: "z1", Region: "r1", InstanceType: "m1"})
	if m, _ := inst.InstanceMetadata(ctx, n); m.ProviderID != "fake://i-123" || m.Zone != "z1" {
		t.Fatalf("configured metadata = %+v", m)
	}

	f.SetInstanceExists("n1", false)
	if ok, err := inst.InstanceExists(ctx, n); ok || err != nil {
		t.Fatalf("InstanceExists of a gone instance = %v, %v", ok, err)
	}
	if _, err := inst.InstanceMetadata(ctx, n); !errors.Is(err, ErrNotFound) {
		t.Fatalf("InstanceMetadata of a gone instance = %v, want ErrNotFound", err)
	}
	other := &api.Node{ObjectMeta: api.ObjectMeta{Name: "n2"}}
	if ok, _ := inst.InstanceExists(ctx, other); !ok {
		t.Fatal("marking n1 gone affected n2")
	}
	f.SetInstanceExists("n1", true)
	if ok, _ := inst.InstanceExists(ctx, n); !ok {
		t.Fatal("n1 did not come back")
	}
}

func TestFakeLoadBalancerCounterAndCannedStatus(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	var got []string
	for _, name := range []string{"a/x", "a/y", "a/x", "b/z"} {
		st, err := f.EnsureLoadBalancer(ctx, "c", lbService(name, "", ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ingressIP(st))
	}
	if want := []string{"203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ingress = %v, want %v", got, want)
	}

	canned := &api.LoadBalancerStatus{Ingress: []api.LoadBalancerIngress{{Hostname: "lb.example.com"}}}
	f.SetLoadBalancerStatus("a", "x", canned)
	canned.Ingress[0].Hostname = "scribbled"
	st, err := f.EnsureLoadBalancer(ctx, "c", lbService("a/x", "", ""), nil)
	if err != nil || st.Ingress[0].Hostname != "lb.example.com" {
		t.Fatalf("canned status: %v, %v", st, err)
	}
}

func TestFakeSupported(t *testing.T) {
	f := NewFake()
	f.SetSupported(FeatureLoadBalancer, false)
	if _, ok := f.LoadBalancer(); ok {
		t.Fatal("load balancer still supported")
	}
	if _, ok := f.Instances(); !ok {
		t.Fatal("instances turned off too")
	}
	f.SetSupported(FeatureRoutes, false)
	f.SetSupported(FeatureInstances, false)
	if _, ok := f.Routes(); ok {
		t.Fatal("routes still supported")
	}
	if _, ok := f.Instances(); ok {
		t.Fatal("instances still supported")
	}
	f.SetSupported(FeatureLoadBalancer, true)
	if _, ok := f.LoadBalancer(); !ok {
		t.Fatal("load balancer not back")
	}
}

func TestFakeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := &api.Node{ObjectMeta: api.ObjectMeta{Name: "n"}}
			for range 50 {
				_, _ = f.InstanceExists(ctx, n)
				_, _ = f.EnsureLoadBalancer(ctx, "c", lbService("a/x", "", ""), nil)
				_, _ = f.ListRoutes(ctx, "c")
				f.SetInstanceExists("n", i%2 == 0)
				_ = f.Calls()
			}
		}()
	}
	wg.Wait()
	if n := len(f.Calls()); n != 8*50*3 {
		t.Fatalf("%d calls recorded, want %d", n, 8*50*3)
	}
	if n := len(f.CallsTo(MethodEnsureLoadBalancer)); n != 400 {
		t.Fatalf("%d Ensure calls", n)
	}
}
