package bpf

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestNetworkOrder(t *testing.T) {
	a := netip.MustParseAddr("10.96.0.1")
	// The bytes in memory must read 10 96 0 1, as in struct bpf_sock_addr.
	v := addrKey(a)
	if b := [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}; b != a.As4() {
		t.Errorf("addrKey(%s) lays out %v", a, b)
	}
	if addrFromKey(v) != a {
		t.Errorf("addrFromKey(addrKey(%s)) = %s", a, addrFromKey(v))
	}
	p := portKey(8080) // 0x1f90
	if b := [2]byte{byte(p), byte(p >> 8)}; b != [2]byte{0x1f, 0x90} {
		t.Errorf("portKey(8080) lays out %x", b)
	}
	if portFromKey(p) != 8080 {
		t.Errorf("portFromKey(portKey(8080)) = %d", portFromKey(p))
	}
	k := ServiceKey{VIP: a, Port: 53, Protocol: UDP}
	if got := serviceKeyOf(svcKeyOf(k)); got != k {
		t.Errorf("service key round trip: %v, want %v", got, k)
	}
}

func TestNormalize(t *testing.T) {
	vip := netip.MustParseAddr("10.96.0.1")
	b1 := Backend{netip.MustParseAddr("10.0.0.1"), 80}
	b2 := Backend{netip.MustParseAddr("10.0.0.2"), 80}
	b2b := Backend{netip.MustParseAddr("10.0.0.2"), 81}
	mapped := Backend{netip.MustParseAddr("::ffff:10.0.0.1"), 80}
	for _, tc := range []struct {
		name string
		in   Service
		want Service // zero: an ErrInvalidService
	}{
		{"sorted and deduplicated", Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{b2b, b1, b2, b1, mapped}},
			Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{b1, b2, b2b}}},
		{"mapped VIP", Service{VIP: netip.MustParseAddr("::ffff:10.96.0.1"), Port: 80, Protocol: UDP},
			Service{VIP: vip, Port: 80, Protocol: UDP, Backends: []Backend{}}},
		{"timeout rounded up", Service{VIP: vip, Port: 80, Protocol: TCP, AffinityTimeout: 1500 * time.Millisecond},
			Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{}, AffinityTimeout: 2 * time.Second}},
		{"IPv6 VIP", Service{VIP: netip.MustParseAddr("fd00::1"), Port: 80, Protocol: TCP}, Service{}},
		{"port 0", Service{VIP: vip, Protocol: TCP}, Service{}},
		{"protocol", Service{VIP: vip, Port: 80, Protocol: 132}, Service{}},
		{"IPv6 backend", Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{{netip.MustParseAddr("fd00::2"), 80}}}, Service{}},
		{"backend port 0", Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{{b1.Addr, 0}}}, Service{}},
		{"negative timeout", Service{VIP: vip, Port: 80, Protocol: TCP, AffinityTimeout: -time.Second}, Service{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalize(tc.in)
			if tc.want.Port == 0 {
				if !errors.Is(err, ErrInvalidService) {
					t.Fatalf("normalize = %v, %v; want ErrInvalidService", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Key() != tc.want.Key() || got.AffinityTimeout != tc.want.AffinityTimeout || !slices.Equal(got.Backends, tc.want.Backends) {
				t.Errorf("normalize = %+v, want %+v", got, tc.want)
			}
		})
	}
	in := []Backend{b2, b1}
	normalize(Service{VIP: vip, Port: 80, Protocol: TCP, Backends: in})
	if in[0] != b2 {
		t.Error("normalize sorted the caller's slice")
	}
	many := make([]Backend, MaxBackends+1)
	for i := range many {
		many[i] = Backend{netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(i%1000 + 1)}
	}
	if _, err := normalize(Service{VIP: vip, Port: 80, Protocol: TCP, Backends: many}); !errors.Is(err, ErrInvalidService) {
		t.Errorf("%d backends: %v, want ErrInvalidService", len(many), err)
	}
}

func TestSameService(t *testing.T) {
	vip := netip.MustParseAddr("10.96.0.1")
	b1 := Backend{netip.MustParseAddr("10.0.0.1"), 80}
	b2 := Backend{netip.MustParseAddr("10.0.0.2"), 80}
	have, _ := normalize(Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{b1, b2}, AffinityTimeout: time.Minute})
	for _, tc := range []struct {
		desired Service
		same    bool
	}{
		{Service{Backends: []Backend{b1, b2}, AffinityTimeout: time.Minute}, true},
		{Service{Backends: []Backend{b1, b2}, AffinityTimeout: time.Minute - time.Millisecond}, true}, // rounds to the same second
		{Service{Backends: []Backend{b2, b1}, AffinityTimeout: time.Minute}, false},                   // normalize decides
		{Service{Backends: []Backend{b1}, AffinityTimeout: time.Minute}, false},
		{Service{Backends: []Backend{b1, b2}}, false},
	} {
		if got := sameService(have, tc.desired); got != tc.same {
			t.Errorf("sameService(%v, %v) = %v", have, tc.desired, got)
		}
	}
}

func TestIndexOf(t *testing.T) {
	seen := map[svcIndex]ServiceKey{}
	for _, k := range []ServiceKey{
		{netip.MustParseAddr("10.96.0.1"), 80, TCP},
		{netip.MustParseAddr("10.96.0.1"), 80, UDP},
		{netip.MustParseAddr("10.96.0.1"), 81, TCP},
		{netip.MustParseAddr("10.96.1.0"), 80, TCP},
		{netip.MustParseAddr("255.255.255.255"), 65535, UDP},
		{netip.MustParseAddr("0.0.0.0"), 0, TCP},
	} {
		idx, ok := indexOf(k)
		if !ok {
			t.Fatalf("indexOf(%v) not ok", k)
		}
		if other, dup := seen[idx]; dup {
			t.Errorf("%v and %v share index %x", k, other, idx)
		}
		seen[idx] = k
	}
	if _, ok := indexOf(ServiceKey{VIP: netip.MustParseAddr("fd00::1"), Port: 80, Protocol: TCP}); ok {
		t.Error("indexOf accepted an IPv6 VIP")
	}
}

func TestIDAllocator(t *testing.T) {
	var a idAllocator
	for want := uint32(1); want <= 3; want++ {
		if id, ok := a.alloc(); !ok || id != want {
			t.Fatalf("alloc = %d, %v; want %d", id, ok, want)
		}
	}
	a.free(2)
	if id, _ := a.alloc(); id != 2 {
		t.Errorf("alloc after free(2) = %d, want 2 reused", id)
	}
	a.reset(map[uint32]bool{2: true, 5: true})
	var got []uint32
	for range 5 {
		id, _ := a.alloc()
		got = append(got, id)
	}
	if want := []uint32{1, 3, 4, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("after reset({2,5}): %v, want %v", got, want)
	}
	a.reset(nil)
	a.next = MaxServices
	if id, ok := a.alloc(); !ok || id != MaxServices {
		t.Errorf("last id: %d, %v", id, ok)
	}
	if _, ok := a.alloc(); ok {
		t.Error("alloc beyond MaxServices succeeded")
	}
}
