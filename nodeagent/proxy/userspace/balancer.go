package userspace

import (
	"net/netip"
	"sync"
	"time"
)

// balancer picks a backend for each new flow of one service port:
// round-robin over the ready backends, or the client's sticky backend
// while its ClientIP affinity lasts. A backend a connect failed to reach
// is passed over for a while (unless no other is left), so one dead
// backend does not cost every other new connection a dial timeout. It is
// safe for concurrent use.
type balancer struct {
	mu       sync.Mutex
	backends []netip.AddrPort
	next     int
	affinity time.Duration // 0: none
	sticky   map[netip.Addr]stickyEntry
	down     map[netip.AddrPort]time.Time // passed over until
}

// downFor is how long a backend that failed a connect is passed over.
const downFor = 5 * time.Second

type stickyEntry struct {
	backend netip.AddrPort
	last    time.Time // affinity lasts until last+affinity
}

func newBalancer(backends []netip.AddrPort, affinity time.Duration) *balancer {
	b := &balancer{}
	b.update(backends, affinity)
	return b
}

// update replaces the backends and the affinity timeout. Sticky entries
// whose backend left are dropped; the others keep their clients.
func (b *balancer) update(backends []netip.AddrPort, affinity time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append([]netip.AddrPort(nil), backends...)
	if b.next >= len(b.backends) {
		b.next = 0
	}
	b.affinity = affinity
	for be := range b.down {
		if !b.has(be) {
			delete(b.down, be)
		}
	}
	if affinity <= 0 {
		b.sticky = nil
		return
	}
	if b.sticky == nil {
		b.sticky = make(map[netip.Addr]stickyEntry)
	}
	for c, e := range b.sticky {
		if !b.has(e.backend) {
			delete(b.sticky, c)
		}
	}
}

func (b *balancer) has(be netip.AddrPort) bool {
	for _, x := range b.backends {
		if x == be {
			return true
		}
	}
	return false
}

// pick returns the backend for a new flow from client at now, skipping
// backends for which skip reports true (those a dial just failed to
// reach). It reports false when no backend is left.
func (b *balancer) pick(client netip.Addr, now time.Time, skip func(netip.AddrPort) bool) (netip.AddrPort, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	skipped := func(be netip.AddrPort) bool { return skip != nil && skip(be) }
	isDown := func(be netip.AddrPort) bool { return now.Before(b.down[be]) }
	if b.affinity > 0 {
		if e, ok := b.sticky[client]; ok {
			if now.Before(e.last.Add(b.affinity)) && !skipped(e.backend) && !isDown(e.backend) {
				e.last = now
				b.sticky[client] = e
				return e.backend, true
			}
			delete(b.sticky, client)
		}
	}
	// Backends that are up first; when only failed ones are left, those.
	for _, avoidDown := range []bool{true, false} {
		for range len(b.backends) {
			be := b.backends[b.next]
			b.next = (b.next + 1) % len(b.backends)
			if skipped(be) || (avoidDown && isDown(be)) {
				continue
			}
			if b.affinity > 0 {
				b.sticky[client] = stickyEntry{backend: be, last: now}
			}
			return be, true
		}
	}
	return netip.AddrPort{}, false
}

// failed records that a connect to be failed at now.
func (b *balancer) failed(be netip.AddrPort, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.has(be) {
		return
	}
	if b.down == nil {
		b.down = make(map[netip.AddrPort]time.Time)
	}
	b.down[be] = now.Add(downFor)
}

// expire drops the sticky entries whose affinity ended before now, and
// the failure marks that lapsed.
func (b *balancer) expire(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for be, until := range b.down {
		if !now.Before(until) {
			delete(b.down, be)
		}
	}
	for c, e := range b.sticky {
		if !now.Before(e.last.Add(b.affinity)) {
			delete(b.sticky, c)
		}
	}
}

// contains reports whether be is a backend.
func (b *balancer) contains(be netip.AddrPort) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.has(be)
}

// snapshot returns the current backends.
func (b *balancer) snapshot() []netip.AddrPort {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]netip.AddrPort(nil), b.backends...)
}
