package routes_test

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/skiffhq/skiff/nodeagent/network/netnstest"
	"github.com/skiffhq/skiff/nodeagent/network/routes"
)

// lab is a namespace standing for a node: a veth pair (up0, up1) with
// 192.168.77.1/24 and fd00:77::1/64 on up0, so the other "nodes" .2-.9
// are on-link gateways, plus two routes someone else added.
func lab(t *testing.T) netnstest.NS {
	t.Helper()
	netnstest.Require(t)
	ns := netnstest.New(t)
	ns.IP(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	ns.IP(t, "addr", "add", "192.168.77.1/24", "dev", "up0")
	ns.IP(t, "addr", "add", "fd00:77::1/64", "dev", "up0", "nodad")
	ns.IP(t, "link", "set", "up0", "up")
	ns.IP(t, "link", "set", "up1", "up")
	ns.IP(t, "route", "add", "10.250.0.0/24", "via", "192.168.77.9", "proto", "static")
	ns.IP(t, "route", "add", "10.251.0.0/24", "via", "192.168.77.9", "proto", "openr")
	return ns
}

func open(t *testing.T, ns netnstest.NS, cfg routes.Config) *routes.Routes {
	t.Helper()
	cfg.NetNS = ns.Path
	r, err := routes.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func route(dst, via string) routes.Route {
	return routes.Route{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via)}
}

// owned renders the routes skiff owns as "dst via gw" (or "dst" for an
// unreachable one), sorted.
func owned(t *testing.T, r *routes.Routes) []string {
	t.Helper()
	list, err := r.Owned()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rt := range list {
		s := rt.Dst.String()
		if rt.Via.IsValid() {
			s += " via " + rt.Via.String()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func expect(t *testing.T, r *routes.Routes, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := owned(t, r); !slices.Equal(got, want) {
		t.Fatalf("owned routes:\n got %q\nwant %q", got, want)
	}
}

func foreignIntact(t *testing.T, ns netnstest.NS) {
	t.Helper()
	out := ns.IP(t, "route", "show")
	for _, want := range []string{"10.250.0.0/24 via 192.168.77.9 dev up0 proto static", "10.251.0.0/24 via 192.168.77.9 dev up0 proto openr"} {
		if !strings.Contains(out, want) {
			t.Fatalf("foreign route %q is gone:\n%s", want, out)
		}
	}
}

func TestSync(t *testing.T) {
	ns := lab(t)
	r := open(t, ns, routes.Config{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}})
	ctx := context.Background()

	if err := r.Sync(ctx, []routes.Route{
		route("10.244.1.0/24", "192.168.77.2"),
		route("10.244.2.0/24", "192.168.77.3"),
		route("fd00:244:1::/64", "fd00:77::2"),
	}); err != nil {
		t.Fatal(err)
	}
	expect(t, r, "10.244.1.0/24 via 192.168.77.2", "10.244.2.0/24 via 192.168.77.3", "10.96.0.0/12", "fd00:244:1::/64 via fd00:77::2")
	out := ns.IP(t, "route", "show", "proto", "83")
	for _, want := range []string{"unreachable 10.96.0.0/12", "10.244.1.0/24 via 192.168.77.2 dev up0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("ip route show proto 83 lacks %q:\n%s", want, out)
		}
	}
	if got, err := exec.Command("ip", "-n", ns.Name, "route", "get", "10.96.0.10").CombinedOutput(); err == nil || !strings.Contains(string(got), "No route to host") {
		t.Fatalf("route to a service VIP: %s (%v), want unreachable", got, err)
	}
	foreignIntact(t, ns)

	// A second Sync of the same set changes nothing in the kernel.
	updates := subscribe(t, ns)
	if err := r.Sync(ctx, []routes.Route{
		route("10.244.2.0/24", "192.168.77.3"),
		route("fd00:244:1::/64", "fd00:77::2"),
		route("10.244.1.0/24", "192.168.77.2"),
	}); err != nil {
		t.Fatal(err)
	}
	if n := updates(); n != 0 {
		t.Fatalf("an unchanged Sync made %d route changes", n)
	}

	// A node leaves, one moves, one joins (and the watch above sees
	// changes when there are some).
	updates = subscribe(t, ns)
	if err := r.Sync(ctx, []routes.Route{
		route("10.244.2.0/24", "192.168.77.4"),
		route("10.244.3.0/24", "192.168.77.5"),
	}); err != nil {
		t.Fatal(err)
	}
	if n := updates(); n < 3 {
		t.Fatalf("a Sync that moves routes made %d route changes, want at least 3", n)
	}
	expect(t, r, "10.244.2.0/24 via 192.168.77.4", "10.244.3.0/24 via 192.168.77.5", "10.96.0.0/12")

	// A route deleted behind skiff's back comes back.
	ns.IP(t, "route", "del", "10.244.3.0/24")
	ns.IP(t, "route", "del", "unreachable", "10.96.0.0/12")
	if err := r.Sync(ctx, []routes.Route{route("10.244.2.0/24", "192.168.77.4"), route("10.244.3.0/24", "192.168.77.5")}); err != nil {
		t.Fatal(err)
	}
	expect(t, r, "10.244.2.0/24 via 192.168.77.4", "10.244.3.0/24 via 192.168.77.5", "10.96.0.0/12")
	foreignIntact(t, ns)

	// Cleanup removes skiff's routes and only those.
	if err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
	expect(t, r)
	foreignIntact(t, ns)
}

func TestSyncReportsBadRoutesAndAppliesTheRest(t *testing.T) {
	ns := lab(t)
	r := open(t, ns, routes.Config{})
	err := r.Sync(context.Background(), []routes.Route{
		route("10.250.0.0/24", "192.168.77.2"),        // someone else's destination
		route("10.244.5.0/24", "fd00:77::2"),          // mixed families
		route("10.244.6.0/24", "172.31.99.1"),         // gateway not on any link
		route("10.244.7.0/24", "192.168.77.7"),        // fine
		{Dst: netip.MustParsePrefix("10.244.8.0/24")}, // no gateway
	})
	if !errors.Is(err, routes.ErrConflict) {
		t.Fatalf("Sync: %v, want ErrConflict among the errors", err)
	}
	for _, want := range []string{"10.244.5.0/24", "10.244.6.0/24", "10.244.8.0/24"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	expect(t, r, "10.244.7.0/24 via 192.168.77.7")
	foreignIntact(t, ns)
}

func TestLinkName(t *testing.T) {
	ns := lab(t)
	r := open(t, ns, routes.Config{LinkName: "up0"})
	if err := r.Sync(context.Background(), []routes.Route{route("10.244.1.0/24", "192.168.77.2")}); err != nil {
		t.Fatal(err)
	}
	if got := ns.IP(t, "route", "show", "10.244.1.0/24"); !strings.Contains(got, "dev up0") {
		t.Fatalf("route: %s", got)
	}
	bad := open(t, ns, routes.Config{LinkName: "nope0"})
	if err := bad.Sync(context.Background(), nil); err == nil {
		t.Fatal("Sync with a missing link succeeded")
	}
}

// subscribe watches route changes in ns; the returned func waits a moment
// and reports how many arrived.
func subscribe(t *testing.T, ns netnstest.NS) func() int {
	t.Helper()
	h, err := netns.GetFromPath(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ch := make(chan netlink.RouteUpdate, 64)
	done := make(chan struct{})
	if err := netlink.RouteSubscribeAt(h, ch, done); err != nil {
		t.Fatal(err)
	}
	var once bool
	stop := func() {
		if !once {
			once = true
			close(done)
		}
	}
	t.Cleanup(stop)
	return func() int {
		n := 0
		timeout := time.After(300 * time.Millisecond)
		for {
			select {
			case <-ch:
				n++
			case <-timeout:
				stop()
				return n
			}
		}
	}
}
