package network

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// IPAM hands out the addresses of one pod CIDR to sandboxes, in memory.
// Like CNI's host-local, it never gives out the network address, the first
// host address (the bridge's gateway) or, for IPv4, the broadcast address,
// and it allocates round-robin so a released address is not reused at
// once (a stale connection to it reaches nothing rather than a new pod).
type IPAM struct {
	prefix      netip.Prefix
	first, last netip.Addr // the usable range, inclusive

	mu        sync.Mutex
	next      netip.Addr
	byAddr    map[netip.Addr]runtime.SandboxID
	bySandbox map[runtime.SandboxID]netip.Addr
}

var _ Network = (*IPAM)(nil)

// NewIPAM returns an allocator over prefix (at least four addresses).
func NewIPAM(prefix netip.Prefix) (*IPAM, error) {
	prefix = prefix.Masked()
	if !prefix.IsValid() {
		return nil, fmt.Errorf("network: invalid pod CIDR %v", prefix)
	}
	bits := prefix.Addr().BitLen() - prefix.Bits()
	if bits < 2 {
		return nil, fmt.Errorf("network: pod CIDR %v is too small: want /%d or larger", prefix, prefix.Addr().BitLen()-2)
	}
	first := prefix.Addr().Next().Next() // skip the network and the gateway
	last := lastAddr(prefix)
	if prefix.Addr().Is4() {
		last = last.Prev() // broadcast
	}
	return &IPAM{prefix: prefix, first: first, last: last, next: first,
		byAddr: map[netip.Addr]runtime.SandboxID{}, bySandbox: map[runtime.SandboxID]netip.Addr{}}, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	host := p.Addr().BitLen() - p.Bits()
	for i := len(b) - 1; host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Prefix is the pod CIDR.
func (m *IPAM) Prefix() netip.Prefix { return m.prefix }

func (m *IPAM) usable(a netip.Addr) bool {
	return m.prefix.Contains(a) && a.Compare(m.first) >= 0 && a.Compare(m.last) <= 0
}

// Attach implements Network.
func (m *IPAM) Attach(_ context.Context, a Attachment) (netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ip, ok := m.bySandbox[a.Sandbox]; ok {
		return ip, nil
	}
	if p := a.Prefer; p.IsValid() && m.usable(p) {
		if _, taken := m.byAddr[p]; !taken {
			m.take(p, a.Sandbox)
			return p, nil
		}
	}
	for ip, wrapped := m.next, false; ; {
		if _, taken := m.byAddr[ip]; !taken {
			m.take(ip, a.Sandbox)
			return ip, nil
		}
		if ip = ip.Next(); !ip.IsValid() || ip.Compare(m.last) > 0 {
			if wrapped {
				return netip.Addr{}, fmt.Errorf("network: %v: %w", m.prefix, ErrExhausted)
			}
			ip, wrapped = m.first, true
		}
		if ip == m.next && wrapped {
			return netip.Addr{}, fmt.Errorf("network: %v: %w", m.prefix, ErrExhausted)
		}
	}
}

func (m *IPAM) take(ip netip.Addr, sb runtime.SandboxID) {
	m.byAddr[ip] = sb
	m.bySandbox[sb] = ip
	if m.next = ip.Next(); !m.next.IsValid() || m.next.Compare(m.last) > 0 {
		m.next = m.first
	}
}

// Detach implements Network: the sandbox's address is free again.
func (m *IPAM) Detach(_ context.Context, a Attachment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ip, ok := m.bySandbox[a.Sandbox]; ok {
		delete(m.bySandbox, a.Sandbox)
		delete(m.byAddr, ip)
	}
	return nil
}

// InUse reports how many addresses are allocated.
func (m *IPAM) InUse() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byAddr)
}
