package bpf

import (
	"net/netip"
	"testing"
	"time"
)

// affinityEntry returns the client's (its netns') affinity entry for k.
func (e *env) affinityEntry(k ServiceKey) (lbAffinityKey, lbAffinityValue, bool) {
	e.t.Helper()
	id := e.dp.lookup(k).id
	var (
		key lbAffinityKey
		val lbAffinityValue
	)
	it := e.dp.objs.SkiffAffinity.Iterate()
	for it.Next(&key, &val) {
		if key.Id == id {
			return key, val, true
		}
	}
	if err := it.Err(); err != nil {
		e.t.Fatal(err)
	}
	return key, val, false
}

func TestAffinity(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	tcp := Service{VIP: netip.MustParseAddr("10.96.0.30"), Port: 80, Protocol: TCP, Backends: bes, AffinityTimeout: time.Hour}
	udp := Service{VIP: netip.MustParseAddr("10.96.0.30"), Port: 8080, Protocol: UDP, Backends: bes, AffinityTimeout: time.Hour}
	e.sync(tcp, udp)
	c := e.client()

	one := func(op, addr string) string {
		t.Helper()
		seen := checkAll(t, op, c.do(request{Op: op, Addr: addr, N: 20}), addr)
		if len(seen) != 1 {
			t.Fatalf("%s with affinity reached %v, want one backend", op, seen)
		}
		for b := range seen {
			return b
		}
		return ""
	}
	first := one("tcp", "10.96.0.30:80")
	if got := one("udp", "10.96.0.30:8080"); got == "" {
		t.Fatal("udp: no backend")
	}
	if got := one("udpconn", "10.96.0.30:8080"); got == "" {
		t.Fatal("udpconn: no backend")
	}

	// The affine backend leaves: the client moves to another one and
	// sticks to that.
	var rest []Backend
	for _, b := range bes {
		if b.String() != first {
			rest = append(rest, b)
		}
	}
	tcp.Backends = rest
	e.sync(tcp, udp)
	second := one("tcp", "10.96.0.30:80")
	if second == first {
		t.Fatalf("still on %s after it left the service", first)
	}

	// An expired entry is replaced by a fresh pick.
	key, val, ok := e.affinityEntry(tcp.Key())
	if !ok {
		t.Fatal("no affinity entry")
	}
	val.LastNs = 1 // long ago
	if err := e.dp.objs.SkiffAffinity.Put(key, val); err != nil {
		t.Fatal(err)
	}
	one("tcp", "10.96.0.30:80")
	if _, val, _ := e.affinityEntry(tcp.Key()); val.LastNs <= 1 {
		t.Errorf("expired entry was not renewed: %+v", val)
	}
	// A fresh entry decides, as long as its backend is a member: point it
	// at the other remaining backend.
	_, cur, _ := e.affinityEntry(tcp.Key())
	target := rest[0]
	if backendOf(lbBackendValue{Addr: cur.Addr, Port: cur.Port}) == target {
		target = rest[1]
	}
	cur.Addr, cur.Port = addrKey(target.Addr), portKey(target.Port)
	if err := e.dp.objs.SkiffAffinity.Put(key, cur); err != nil {
		t.Fatal(err)
	}
	if got := one("tcp", "10.96.0.30:80"); got != target.String() {
		t.Errorf("with a fresh entry for %s, connections went to %s", target, got)
	}
	// One for a backend that is no member is ignored.
	stranger := netip.MustParseAddrPort(first)
	cur.Addr, cur.Port = addrKey(stranger.Addr()), portKey(stranger.Port())
	e.dp.objs.SkiffAffinity.Put(key, cur)
	if got := one("tcp", "10.96.0.30:80"); got == first {
		t.Errorf("an affinity entry for %s (no longer a member) was followed", first)
	}

	// Affinity off: spread again.
	tcp.AffinityTimeout = 0
	tcp.Backends = bes
	if st := e.sync(tcp, udp); st.Updated != 1 {
		t.Fatalf("stats %+v, want 1 updated", st)
	}
	seen := checkAll(t, "tcp", c.do(request{Op: "tcp", Addr: "10.96.0.30:80", N: 30}), "")
	if len(seen) != 3 {
		t.Errorf("without affinity: %v, want 3 backends", seen)
	}
	var n int
	var mk lbMemberKey
	var one8 uint8
	for it := e.dp.objs.SkiffMembers.Iterate(); it.Next(&mk, &one8); {
		if mk.Id == e.dp.lookup(tcp.Key()).id {
			n++
		}
	}
	if n != 0 {
		t.Errorf("%d affinity members left for a service without affinity", n)
	}
}
