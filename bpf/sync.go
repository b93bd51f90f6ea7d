package bpf

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// programmed is a service as the maps hold it.
type programmed struct {
	svc   Service // normalized
	id    uint32
	gen   uint8  // generation of the backend slots in use
	slots [2]int // backend slots written per generation (the other one is stale, kept for lookups in flight)
}

// Sync makes the maps hold exactly services (the full desired set),
// changing only what differs. A changed backend set is written into the
// service's other generation of slots before the service entry switches to
// it in one update, so no lookup ever sees a half-written service.
// Backends that left a service count as stale flows: with SockDestroy,
// connected UDP sockets (and TCP ones after SetDestroyTCP(true)) still
// translated to them are destroyed before Sync returns.
//
// An invalid service (ErrInvalidService) is left as it was and reported in
// the error; the others are applied.
func (d *Datapath) Sync(services []Service) (SyncStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return SyncStats{}, errClosed
	}
	var (
		stats   SyncStats
		errs    []error
		stale   []staleStaleKey
		desired = make(map[ServiceKey]int, len(services))
	)
	for i, s := range services {
		k := s.Key()
		k.VIP = k.VIP.Unmap()
		if j, dup := desired[k]; dup {
			errs = append(errs, fmt.Errorf("%w %s: listed twice (entries %d and %d)", ErrInvalidService, k, j, i))
			continue
		}
		desired[k] = i
	}
	for k, p := range d.services {
		if _, ok := desired[k]; ok {
			continue
		}
		stale = d.appendStale(stale, p, nil)
		if err := d.remove(k, p); err != nil {
			errs = append(errs, err)
			continue
		}
		stats.Removed++
	}
	for k, i := range desired {
		st, err := d.upsert(k, services[i], &stale)
		stats.Added += st.Added
		stats.Updated += st.Updated
		if err != nil {
			errs = append(errs, err)
		}
	}
	n, err := d.destroyStale(stale)
	stats.Destroyed = n
	errs = append(errs, err)
	return stats, errors.Join(errs...)
}

// Upsert adds or changes the given services and leaves the others alone:
// the incremental form of Sync, for one changed service among many (its
// cost does not grow with the number of services programmed).
func (d *Datapath) Upsert(services ...Service) (SyncStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return SyncStats{}, errClosed
	}
	var (
		stats SyncStats
		errs  []error
		stale []staleStaleKey
	)
	for _, s := range services {
		k := s.Key()
		k.VIP = k.VIP.Unmap()
		st, err := d.upsert(k, s, &stale)
		stats.Added += st.Added
		stats.Updated += st.Updated
		errs = append(errs, err)
	}
	n, err := d.destroyStale(stale)
	stats.Destroyed = n
	errs = append(errs, err)
	return stats, errors.Join(errs...)
}

// Remove deletes the given services (missing ones are ignored); their
// backends count as stale flows as in Sync.
func (d *Datapath) Remove(keys ...ServiceKey) (SyncStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return SyncStats{}, errClosed
	}
	var (
		stats SyncStats
		errs  []error
		stale []staleStaleKey
	)
	for _, k := range keys {
		k.VIP = k.VIP.Unmap()
		p, ok := d.services[k]
		if !ok {
			continue
		}
		stale = d.appendStale(stale, p, nil)
		if err := d.remove(k, p); err != nil {
			errs = append(errs, err)
			continue
		}
		stats.Removed++
	}
	n, err := d.destroyStale(stale)
	stats.Destroyed = n
	errs = append(errs, err)
	return stats, errors.Join(errs...)
}

var errClosed = errors.New("bpf: datapath closed")

// upsert programs s under k unless the maps hold it already.
func (d *Datapath) upsert(k ServiceKey, s Service, stale *[]staleStaleKey) (SyncStats, error) {
	p := d.services[k]
	if p != nil && sameService(p.svc, s) {
		return SyncStats{}, nil
	}
	s, err := normalize(s)
	if err != nil {
		return SyncStats{}, err
	}
	if p != nil && p.svc.AffinityTimeout == s.AffinityTimeout && slices.Equal(p.svc.Backends, s.Backends) {
		return SyncStats{}, nil
	}
	if p == nil {
		id, ok := d.ids.alloc()
		if !ok {
			return SyncStats{}, fmt.Errorf("bpf: add service %s: %w (%d services)", k, ErrFull, MaxServices)
		}
		p = &programmed{svc: Service{VIP: s.VIP, Port: s.Port, Protocol: s.Protocol}, id: id, gen: 1}
		if err := d.zeroCounters(id); err != nil {
			d.ids.free(id)
			return SyncStats{}, fmt.Errorf("bpf: add service %s: %w", k, err)
		}
		if err := d.write(k, p, s); err != nil {
			d.ids.free(id)
			return SyncStats{}, fmt.Errorf("bpf: add service %s: %w", k, err)
		}
		d.services[k] = p
		return SyncStats{Added: 1}, nil
	}
	old := p.svc
	if err := d.write(k, p, s); err != nil {
		return SyncStats{}, fmt.Errorf("bpf: update service %s: %w", k, err)
	}
	*stale = d.appendStale(*stale, &programmed{svc: old}, s.Backends)
	return SyncStats{Updated: 1}, nil
}

// write switches p to s: the backends go into the unused generation, then
// the members (affinity), then the service entry flips to the new
// generation in one update. p is changed only once the flip is done.
func (d *Datapath) write(k ServiceKey, p *programmed, s Service) error {
	gen := 1 - p.gen
	n := len(s.Backends)
	if n > 0 {
		keys := make([]lbBackendKey, n)
		values := make([]lbBackendValue, n)
		for i, b := range s.Backends {
			keys[i] = lbBackendKey{Id: p.id, Index: uint16(i), Gen: gen}
			values[i] = backendValueOf(b)
		}
		if err := d.putMany(d.objs.SkiffBackends, keys, values); err != nil {
			return fmt.Errorf("write backends: %w", err)
		}
	}
	// Slots beyond n of this generation are left from an older set.
	for i := n; i < p.slots[gen]; i++ {
		if err := deleteKey(d.objs.SkiffBackends, lbBackendKey{Id: p.id, Index: uint16(i), Gen: gen}); err != nil {
			return fmt.Errorf("delete old backend slot: %w", err)
		}
	}
	p.slots[gen] = n

	affinity := s.AffinityTimeout > 0
	hadAffinity := p.svc.AffinityTimeout > 0
	if affinity {
		for _, b := range s.Backends {
			if hadAffinity && containsBackend(p.svc.Backends, b) {
				continue
			}
			if err := d.objs.SkiffMembers.Put(memberKey(p.id, b), uint8(1)); err != nil {
				return fmt.Errorf("write affinity members: %w", err)
			}
		}
	}

	value := lbSvcValue{Id: p.id, Count: uint16(n), Gen: gen, AffinityTimeout: affinitySeconds(s.AffinityTimeout)}
	if affinity {
		value.Flags = flagAffinity
	}
	if err := d.objs.SkiffServices.Put(svcKeyOf(k), value); err != nil {
		return fmt.Errorf("write service entry: %w", err)
	}
	old := p.svc
	p.svc, p.gen = s, gen

	if hadAffinity {
		for _, b := range old.Backends {
			if affinity && containsBackend(s.Backends, b) {
				continue
			}
			if err := deleteKey(d.objs.SkiffMembers, memberKey(p.id, b)); err != nil {
				return fmt.Errorf("delete affinity member: %w", err)
			}
		}
	}
	return nil
}

const flagAffinity = 1 // SKIFF_SVC_AFFINITY

// remove deletes the service entry first (new lookups miss it), then its
// backend slots and members; a lookup in flight that finds no backend
// refuses the connection, as for a service without backends.
func (d *Datapath) remove(k ServiceKey, p *programmed) error {
	if err := deleteKey(d.objs.SkiffServices, svcKeyOf(k)); err != nil {
		return fmt.Errorf("bpf: remove service %s: %w", k, err)
	}
	delete(d.services, k)
	var errs []error
	for gen := range 2 {
		for i := range p.slots[gen] {
			errs = append(errs, deleteKey(d.objs.SkiffBackends, lbBackendKey{Id: p.id, Index: uint16(i), Gen: uint8(gen)}))
		}
	}
	if p.svc.AffinityTimeout > 0 {
		for _, b := range p.svc.Backends {
			errs = append(errs, deleteKey(d.objs.SkiffMembers, memberKey(p.id, b)))
		}
	}
	d.ids.free(p.id)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf: remove service %s: %w", k, err)
	}
	return nil
}

func memberKey(id uint32, b Backend) lbMemberKey {
	return lbMemberKey{Id: id, Addr: addrKey(b.Addr), Port: portKey(b.Port)}
}

// containsBackend reports whether sorted holds b.
func containsBackend(sorted []Backend, b Backend) bool {
	_, ok := slices.BinarySearchFunc(sorted, b, compareBackends)
	return ok
}

// putMany writes keys[i] -> values[i]: in one batch where the kernel
// supports it, else one by one.
func (d *Datapath) putMany(m *ebpf.Map, keys []lbBackendKey, values []lbBackendValue) error {
	if len(keys) > 1 {
		_, err := m.BatchUpdate(keys, values, nil)
		if err == nil || !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
	}
	for i := range keys {
		if err := m.Put(keys[i], values[i]); err != nil {
			return err
		}
	}
	return nil
}

func deleteKey(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// zeroCounters resets the counters of a (re)used service id.
func (d *Datapath) zeroCounters(id uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	return d.objs.SkiffCounters.Put(id, make([]lbCounters, n))
}

// idAllocator hands out service ids 1..MaxServices, reusing freed ones.
type idAllocator struct {
	next  uint32 // ids >= next were never handed out
	freed []uint32
}

func (a *idAllocator) alloc() (uint32, bool) {
	if n := len(a.freed); n > 0 {
		id := a.freed[n-1]
		a.freed = a.freed[:n-1]
		return id, true
	}
	if a.next == 0 {
		a.next = 1
	}
	if a.next > MaxServices {
		return 0, false
	}
	id := a.next
	a.next++
	return id, true
}

func (a *idAllocator) free(id uint32) { a.freed = append(a.freed, id) }

// reset makes used the ids in use, after reading them back from the maps.
func (a *idAllocator) reset(used map[uint32]bool) {
	var highest uint32
	for id := range used {
		highest = max(highest, id)
	}
	a.freed = nil
	for id := highest; id >= 1; id-- { // lowest ids are handed out first
		if !used[id] {
			a.freed = append(a.freed, id)
		}
	}
	a.next = highest + 1
}
