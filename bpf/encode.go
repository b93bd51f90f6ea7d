package bpf

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// The maps hold addresses and ports in network byte order, as the kernel
// hands them to the programs; these convert from and to host values.

func addrKey(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func addrFromKey(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func portKey(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func portFromKey(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

func svcKeyOf(k ServiceKey) lbSvcKey {
	return lbSvcKey{Vip: addrKey(k.VIP), Port: portKey(k.Port), Proto: uint8(k.Protocol)}
}

func serviceKeyOf(k lbSvcKey) ServiceKey {
	return ServiceKey{VIP: addrFromKey(k.Vip), Port: portFromKey(k.Port), Protocol: Protocol(k.Proto)}
}

func backendValueOf(b Backend) lbBackendValue {
	return lbBackendValue{Addr: addrKey(b.Addr), Port: portKey(b.Port)}
}

func backendOf(v lbBackendValue) Backend {
	return Backend{Addr: addrFromKey(v.Addr), Port: portFromKey(v.Port)}
}

// affinitySeconds is the map's timeout for d: whole seconds, rounded up.
func affinitySeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

func compareBackends(a, b Backend) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// normalize checks s and returns it as the datapath keeps it: IPv4-mapped
// addresses unmapped, backends sorted without duplicates, the timeout in
// whole seconds. The result never shares the caller's backing array.
func normalize(s Service) (Service, error) {
	bad := func(format string, args ...any) (Service, error) {
		return Service{}, fmt.Errorf("%w %s: %s", ErrInvalidService, s.Key(), fmt.Sprintf(format, args...))
	}
	s.VIP = s.VIP.Unmap()
	if !s.VIP.Is4() {
		return bad("VIP is not IPv4")
	}
	if s.Port == 0 {
		return bad("port 0")
	}
	if s.Protocol != TCP && s.Protocol != UDP {
		return bad("protocol is neither TCP nor UDP")
	}
	if s.AffinityTimeout < 0 {
		return bad("negative affinity timeout")
	}
	s.AffinityTimeout = time.Duration(affinitySeconds(s.AffinityTimeout)) * time.Second
	backends := make([]Backend, 0, len(s.Backends))
	for _, b := range s.Backends {
		b.Addr = b.Addr.Unmap()
		if !b.Addr.Is4() {
			return bad("backend %s is not IPv4", b)
		}
		if b.Port == 0 {
			return bad("backend %s has port 0", b)
		}
		backends = append(backends, b)
	}
	slices.SortFunc(backends, compareBackends)
	backends = slices.Compact(backends)
	if len(backends) > MaxBackends {
		return bad("%d backends (at most %d)", len(backends), MaxBackends)
	}
	s.Backends = backends
	return s, nil
}

// sameService reports whether desired (as given to Sync) would program
// exactly what have (normalized) holds, without allocating in the common
// case of a sorted, duplicate-free, IPv4 backend list.
func sameService(have, desired Service) bool {
	if have.AffinityTimeout != time.Duration(affinitySeconds(desired.AffinityTimeout))*time.Second ||
		len(have.Backends) != len(desired.Backends) {
		return false
	}
	for i, b := range desired.Backends {
		if b != have.Backends[i] {
			return false
		}
	}
	return true
}
