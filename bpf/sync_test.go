package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// mapState reads the services map and the active backends back.
func mapState(t testing.TB, d *Datapath) map[ServiceKey][]Backend {
	t.Helper()
	out := map[ServiceKey][]Backend{}
	var (
		k lbSvcKey
		v lbSvcValue
	)
	it := d.objs.SkiffServices.Iterate()
	for it.Next(&k, &v) {
		var bes []Backend
		for i := range v.Count {
			var b lbBackendValue
			if err := d.objs.SkiffBackends.Lookup(lbBackendKey{Id: v.Id, Index: i, Gen: v.Gen}, &b); err != nil {
				t.Fatalf("%s slot %d: %v", serviceKeyOf(k), i, err)
			}
			bes = append(bes, backendOf(b))
		}
		out[serviceKeyOf(k)] = bes
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSyncInvalidAndDuplicates(t *testing.T) {
	e := newEnv(t)
	b := []Backend{{netip.MustParseAddr("10.0.0.1"), 80}}
	a := Service{VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: TCP, Backends: b}
	c := Service{VIP: netip.MustParseAddr("10.96.0.3"), Port: 80, Protocol: TCP, Backends: b}
	e.sync(a, c)

	brokenC := c
	brokenC.Backends = []Backend{{netip.MustParseAddr("fd00::1"), 80}}
	st, err := e.dp.Sync([]Service{
		a, a, // listed twice
		{VIP: netip.MustParseAddr("fd00::1"), Port: 80, Protocol: TCP}, // not IPv4
		brokenC, // was valid: left as it was
		{VIP: netip.MustParseAddr("10.96.0.2"), Port: 53, Protocol: UDP, Backends: b},
		{VIP: netip.MustParseAddr("10.96.0.4"), Port: 53, Protocol: UDP},
		{VIP: netip.MustParseAddr("10.96.0.4"), Port: 53, Protocol: UDP}, // new, listed twice
	})
	if !errors.Is(err, ErrInvalidService) {
		t.Fatalf("Sync err = %v, want ErrInvalidService", err)
	}
	t.Logf("Sync: %v", err)
	if st != (SyncStats{Added: 2}) {
		t.Errorf("stats %+v, want 2 added", st)
	}
	got := mapState(t, e.dp)
	want := map[ServiceKey][]Backend{a.Key(): b, c.Key(): b,
		{netip.MustParseAddr("10.96.0.2"), 53, UDP}: b, {netip.MustParseAddr("10.96.0.4"), 53, UDP}: nil}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("maps hold %v, want %v", got, want)
	}
}

func TestUpsertAndRemove(t *testing.T) {
	e := newEnv(t)
	var bes []Backend
	for i := range 5 {
		bes = append(bes, Backend{netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 8080})
	}
	a := Service{VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: TCP, Backends: bes}
	if st, err := e.dp.Upsert(a); err != nil || st != (SyncStats{Added: 1}) {
		t.Fatalf("Upsert: %+v, %v", st, err)
	}
	if st, _ := e.dp.Upsert(a); st != (SyncStats{}) {
		t.Errorf("Upsert of the same service: %+v", st)
	}
	// Shrink, grow, shrink: every generation holds exactly the set written.
	for _, n := range []int{2, 5, 1, 0, 3} {
		a.Backends = bes[:n]
		if st, err := e.dp.Upsert(a); err != nil || st != (SyncStats{Updated: 1}) {
			t.Fatalf("Upsert with %d backends: %+v, %v", n, st, err)
		}
		if got := mapState(t, e.dp)[a.Key()]; !slices.Equal(got, bes[:n]) {
			t.Errorf("with %d backends the maps hold %v", n, got)
		}
		p := e.dp.lookup(a.Key())
		if p.slots[p.gen] != n {
			t.Errorf("active generation has %d slots, want %d", p.slots[p.gen], n)
		}
	}
	if st, err := e.dp.Remove(a.Key(), ServiceKey{VIP: netip.MustParseAddr("10.96.9.9"), Port: 1, Protocol: UDP}); err != nil || st != (SyncStats{Removed: 1}) {
		t.Fatalf("Remove: %+v, %v", st, err)
	}
	var n int
	var k lbBackendKey
	var v lbBackendValue
	for it := e.dp.objs.SkiffBackends.Iterate(); it.Next(&k, &v); {
		n++
	}
	if n != 0 || len(mapState(t, e.dp)) != 0 {
		t.Errorf("after Remove: %d backend slots, services %v", n, mapState(t, e.dp))
	}
}
