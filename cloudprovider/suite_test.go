package cloudprovider

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/skiffhq/skiff/api"
)

// The contract every provider's LoadBalancer and Routes must meet, run
// against each built-in provider (containerd's shared-suite pattern), so the
// fake the controller tests use cannot drift from the real thing.

func providersUnderTest(t *testing.T) map[string]Interface {
	pool, err := ParsePool("10.0.0.0/28")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Interface{}
	for _, name := range Providers() {
		p, err := New(name, Config{LoadBalancerPool: pool})
		if err != nil {
			t.Fatal(err)
		}
		if p.ProviderName() != name {
			t.Fatalf("New(%q).ProviderName() = %q", name, p.ProviderName())
		}
		out[name] = p
	}
	return out
}

func TestLoadBalancerContract(t *testing.T) {
	ctx := context.Background()
	for name, p := range providersUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			lb, ok := p.LoadBalancer()
			if !ok {
				t.Fatal("no load balancer")
			}
			x, y := lbService("a/x", "ux", ""), lbService("a/y", "uy", "")
			if st, exists, err := lb.GetLoadBalancer(ctx, "c", x); exists || st != nil || err != nil {
				t.Fatalf("Get before Ensure = %v, %v, %v", st, exists, err)
			}
			if err := lb.UpdateLoadBalancer(ctx, "c", x, nil); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Update before Ensure = %v, want ErrNotFound", err)
			}
			stx, err := lb.EnsureLoadBalancer(ctx, "c", x, nil)
			if err != nil || len(stx.Ingress) != 1 || stx.Ingress[0].IP == "" {
				t.Fatalf("Ensure = %v, %v", stx, err)
			}
			again, err := lb.EnsureLoadBalancer(ctx, "c", x, nil)
			if err != nil || !reflect.DeepEqual(again, stx) {
				t.Fatalf("second Ensure = %v, %v; first gave %v", again, err, stx)
			}
			again.Ingress[0].IP = "scribbled"
			if got, exists, err := lb.GetLoadBalancer(ctx, "c", x); !exists || err != nil || !reflect.DeepEqual(got, stx) {
				t.Fatalf("Get = %v, %v, %v; want %v (statuses must not alias)", got, exists, err, stx)
			}
			sty, err := lb.EnsureLoadBalancer(ctx, "c", y, nil)
			if err != nil || reflect.DeepEqual(sty, stx) {
				t.Fatalf("second service got %v, %v; first has %v", sty, err, stx)
			}
			if err := lb.UpdateLoadBalancer(ctx, "c", x, []*api.Node{{ObjectMeta: api.ObjectMeta{Name: "n1"}}}); err != nil {
				t.Fatalf("Update: %v", err)
			}
			for range 2 {
				if err := lb.EnsureLoadBalancerDeleted(ctx, "c", x); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}
			if st, exists, err := lb.GetLoadBalancer(ctx, "c", x); exists || st != nil || err != nil {
				t.Fatalf("Get after delete = %v, %v, %v", st, exists, err)
			}

			r, ok := lb.(Restorer)
			if !ok {
				t.Fatal("load balancer is not a Restorer")
			}
			restored := lbService("a/z", "uz", "")
			restored.Status.LoadBalancer = *stx
			if err := r.Restore([]*api.Service{restored}); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got, exists, err := lb.GetLoadBalancer(ctx, "c", restored); !exists || err != nil || !reflect.DeepEqual(got, stx) {
				t.Fatalf("Get after Restore = %v, %v, %v; want %v", got, exists, err, stx)
			}
			if _, exists, _ := lb.GetLoadBalancer(ctx, "c", y); exists {
				t.Fatal("Restore kept a load balancer its services no longer record")
			}
		})
	}
}

func TestRoutesContract(t *testing.T) {
	ctx := context.Background()
	pfx := netip.MustParsePrefix
	for name, p := range providersUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			rt, ok := p.Routes()
			if !ok {
				t.Fatal("no routes")
			}
			list := func(cluster string) []Route {
				t.Helper()
				rs, err := rt.ListRoutes(ctx, cluster)
				if err != nil {
					t.Fatal(err)
				}
				out := make([]Route, len(rs))
				for i, r := range rs {
					out[i] = *r
				}
				return out
			}
			if got := list("c"); len(got) != 0 {
				t.Fatalf("routes of a new provider: %v", got)
			}
			n2 := &Route{TargetNode: "n2", DestinationCIDR: pfx("10.244.2.0/24")}
			n1 := &Route{TargetNode: "n1", DestinationCIDR: pfx("10.244.1.0/24")}
			n1v6 := &Route{TargetNode: "n1", DestinationCIDR: pfx("fd00:10:244:1::/64")}
			named := &Route{Name: "custom", TargetNode: "n3", DestinationCIDR: pfx("10.244.3.0/24")}
			for _, c := range []struct {
				hint string
				r    *Route
			}{{"uid-2", n2}, {"uid-1", n1}, {"uid-1", n1v6}, {"ignored", named}, {"uid-1", n1}} {
				if err := rt.CreateRoute(ctx, "c", c.hint, c.r); err != nil {
					t.Fatalf("CreateRoute(%s, %v): %v", c.hint, c.r, err)
				}
			}
			if n1.Name != "" {
				t.Fatal("CreateRoute wrote to its argument")
			}
			want := []Route{
				{Name: "custom", TargetNode: "n3", DestinationCIDR: pfx("10.244.3.0/24")},
				{Name: "uid-1-10-244-1-0-24", TargetNode: "n1", DestinationCIDR: pfx("10.244.1.0/24")},
				{Name: "uid-1-fd00-10-244-1---64", TargetNode: "n1", DestinationCIDR: pfx("fd00:10:244:1::/64")},
				{Name: "uid-2-10-244-2-0-24", TargetNode: "n2", DestinationCIDR: pfx("10.244.2.0/24")},
			}
			if got := list("c"); !reflect.DeepEqual(got, want) {
				t.Fatalf("ListRoutes = %v\nwant %v", got, want)
			}
			if got := list("other"); len(got) != 0 {
				t.Fatalf("routes leaked into another cluster: %v", got)
			}

			for _, bad := range []*Route{
				{TargetNode: "n9", DestinationCIDR: pfx("10.244.1.128/25")}, // overlaps n1's
				{TargetNode: "n9", DestinationCIDR: pfx("10.244.0.0/16")},
			} {
				if err := rt.CreateRoute(ctx, "c", "h", bad); !errors.Is(err, ErrConflict) {
					t.Errorf("CreateRoute(%v) = %v, want ErrConflict", bad, err)
				}
			}
			if err := rt.CreateRoute(ctx, "c", "h", &Route{Name: "custom", TargetNode: "n9", DestinationCIDR: pfx("10.250.0.0/24")}); !errors.Is(err, ErrConflict) {
				t.Errorf("CreateRoute with a taken name = %v, want ErrConflict", err)
			}
			for _, bad := range []*Route{
				{DestinationCIDR: pfx("10.245.0.0/24")},
				{TargetNode: "n9"},
				{TargetNode: "n9", DestinationCIDR: pfx("10.245.0.1/24")},
			} {
				if err := rt.CreateRoute(ctx, "c", "h", bad); err == nil {
					t.Errorf("CreateRoute(%+v) succeeded", bad)
				}
			}

			// Delete by name, by target and destination, and of a missing route.
			for _, del := range []*Route{
				{Name: "custom"},
				{TargetNode: "n1", DestinationCIDR: pfx("fd00:10:244:1::/64")},
				{Name: "no-such-route"},
				{TargetNode: "n2", DestinationCIDR: pfx("10.244.9.0/24")},
			} {
				if err := rt.DeleteRoute(ctx, "c", del); err != nil {
					t.Fatalf("DeleteRoute(%v): %v", del, err)
				}
			}
			if got := list("c"); !reflect.DeepEqual(got, []Route{want[1], want[3]}) {
				t.Fatalf("after deletes, ListRoutes = %v", got)
			}
			// The node's old CIDR is gone, so a new node can take an overlapping one.
			if err := rt.DeleteRoute(ctx, "c", &Route{Name: want[1].Name}); err != nil {
				t.Fatal(err)
			}
			if err := rt.CreateRoute(ctx, "c", "", &Route{TargetNode: "n9", DestinationCIDR: pfx("10.244.1.0/25")}); err != nil {
				t.Fatalf("CreateRoute after the overlapping route was deleted: %v", err)
			}
			if got := list("c"); len(got) != 2 || got[0].Name != "n9-10-244-1-0-25" {
				t.Fatalf("ListRoutes = %v", got)
			}
		})
	}
}
