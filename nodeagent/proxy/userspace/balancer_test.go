package userspace

import (
	"net/netip"
	"testing"
	"time"
)

var (
	be1 = netip.MustParseAddrPort("10.0.0.1:8080")
	be2 = netip.MustParseAddrPort("10.0.0.2:8080")
	be3 = netip.MustParseAddrPort("10.0.0.3:8080")
	c1  = netip.MustParseAddr("10.1.0.1")
	c2  = netip.MustParseAddr("10.1.0.2")
	t0  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

func TestBalancerRoundRobin(t *testing.T) {
	b := newBalancer([]netip.AddrPort{be1, be2, be3}, 0)
	var got []netip.AddrPort
	for range 6 {
		be, ok := b.pick(c1, t0, nil)
		if !ok {
			t.Fatal("no backend")
		}
		got = append(got, be)
	}
	want := []netip.AddrPort{be1, be2, be3, be1, be2, be3}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("picks %v, want %v", got, want)
		}
	}
}

func TestBalancerSkipAndEmpty(t *testing.T) {
	b := newBalancer([]netip.AddrPort{be1, be2}, 0)
	skip := func(be netip.AddrPort) bool { return be == be1 }
	for range 4 {
		if be, ok := b.pick(c1, t0, skip); !ok || be != be2 {
			t.Fatalf("pick skipping be1 = %v, %v", be, ok)
		}
	}
	all := func(netip.AddrPort) bool { return true }
	if be, ok := b.pick(c1, t0, all); ok {
		t.Fatalf("pick with every backend skipped = %v", be)
	}
	b.update(nil, 0)
	if be, ok := b.pick(c1, t0, nil); ok {
		t.Fatalf("pick without backends = %v", be)
	}
	b.update([]netip.AddrPort{be3}, 0)
	if be, ok := b.pick(c1, t0, nil); !ok || be != be3 {
		t.Fatalf("pick after update = %v, %v", be, ok)
	}
}

func TestBalancerAffinity(t *testing.T) {
	const timeout = 10 * time.Second
	b := newBalancer([]netip.AddrPort{be1, be2, be3}, timeout)
	first, _ := b.pick(c1, t0, nil)
	other, _ := b.pick(c2, t0, nil)
	if other == first {
		t.Fatalf("second client got the first's backend %v: round-robin should move on", first)
	}
	// Each use refreshes the timeout: 9s steps never let it lapse.
	now := t0
	for range 5 {
		now = now.Add(9 * time.Second)
		if be, _ := b.pick(c1, now, nil); be != first {
			t.Fatalf("at %v client 1 got %v, want its sticky %v", now.Sub(t0), be, first)
		}
	}
	// Idle for the whole timeout: the affinity lapses and round-robin
	// picks the next backend.
	now = now.Add(timeout)
	if be, _ := b.pick(c1, now, nil); be == first {
		t.Fatalf("affinity outlived its timeout: still %v", be)
	}

	// A sticky backend that a dial failed to reach is replaced.
	cur, _ := b.pick(c2, now, nil)
	skip := func(be netip.AddrPort) bool { return be == cur }
	if be, ok := b.pick(c2, now, skip); !ok || be == cur {
		t.Fatalf("pick skipping the sticky backend = %v, %v", be, ok)
	}
	if be, _ := b.pick(c2, now, nil); be == cur {
		t.Fatal("the new pick did not become sticky")
	}
}

func TestBalancerAffinityBackendLeaves(t *testing.T) {
	b := newBalancer([]netip.AddrPort{be1, be2, be3}, time.Hour)
	first, _ := b.pick(c1, t0, nil)
	var rest []netip.AddrPort
	for _, be := range []netip.AddrPort{be1, be2, be3} {
		if be != first {
			rest = append(rest, be)
		}
	}
	b.update(rest, time.Hour)
	be, ok := b.pick(c1, t0, nil)
	if !ok || be == first {
		t.Fatalf("after its backend left, client got %v, %v", be, ok)
	}
	if again, _ := b.pick(c1, t0, nil); again != be {
		t.Fatalf("new affinity did not stick: %v then %v", be, again)
	}
}

func TestBalancerExpire(t *testing.T) {
	b := newBalancer([]netip.AddrPort{be1, be2}, time.Second)
	b.pick(c1, t0, nil)
	b.pick(c2, t0.Add(500*time.Millisecond), nil)
	b.expire(t0.Add(time.Second))
	if len(b.sticky) != 1 {
		t.Fatalf("after expire: %d sticky entries, want 1 (client 2's)", len(b.sticky))
	}
	if _, ok := b.sticky[c2]; !ok {
		t.Fatal("client 2's entry expired early")
	}
	b.update([]netip.AddrPort{be1, be2}, 0)
	if b.sticky != nil {
		t.Fatal("affinity off kept sticky entries")
	}
}

func TestBalancerPassesOverFailed(t *testing.T) {
	b := newBalancer([]netip.AddrPort{be1, be2}, 0)
	b.failed(be1, t0)
	for range 4 {
		if be, _ := b.pick(c1, t0.Add(time.Second), nil); be != be2 {
			t.Fatalf("picked %v while be1 is down", be)
		}
	}
	// Only failed backends left: they are tried anyway.
	b.failed(be2, t0)
	if _, ok := b.pick(c1, t0.Add(time.Second), nil); !ok {
		t.Fatal("no pick with every backend down")
	}
	// The mark lapses.
	now := t0.Add(downFor)
	b.expire(now)
	seen := map[netip.AddrPort]bool{}
	for range 2 {
		be, _ := b.pick(c1, now, nil)
		seen[be] = true
	}
	if len(seen) != 2 {
		t.Fatalf("after the marks lapsed picks reached %v, want both", seen)
	}
	// A failed sticky backend is replaced.
	s := newBalancer([]netip.AddrPort{be1, be2}, time.Hour)
	first, _ := s.pick(c1, t0, nil)
	s.failed(first, t0)
	if be, _ := s.pick(c1, t0, nil); be == first {
		t.Fatal("sticky backend kept after it failed")
	}
}
