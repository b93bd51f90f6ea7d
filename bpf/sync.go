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
	seen  uint64 // the last Sync (epoch) that listed it
}

// svcIndex is a ServiceKey packed for cheap hashing: a Sync of 20,000
// services looks each one up.
type svcIndex uint64

// indexOf packs k; ok is false for what the maps cannot hold (not IPv4).
func indexOf(k ServiceKey) (svcIndex, bool) {
	if !k.VIP.Is4() {
		return 0, false
	}
	b := k.VIP.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	return svcIndex(v<<24 | uint64(k.Port)<<8 | uint64(k.Protocol)), true
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
// the error; the others are applied. Sync costs a map lookup per service
// listed even when nothing changed; Upsert and Remove cost only the change.
func (d *Datapath) Sync(services []Service) (SyncStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return SyncStats{}, ErrClosed
	}
	d.epoch++
	var (
		stats   SyncStats
		errs    []error
		stale   []staleStaleKey
		changed []int            // indexes into services
		added   map[svcIndex]int // new services seen so far: duplicates
		kept    int              // programmed services listed
	)
	for i, s := range services {
		k := s.Key()
		k.VIP = k.VIP.Unmap()
		idx, ok := indexOf(k)
		if !ok {
			errs = append(errs, fmt.Errorf("%w %s: VIP is not IPv4", ErrInvalidService, k))
			continue
		}
		if p := d.services[idx]; p != nil {
			if p.seen == d.epoch {
				errs = append(errs, fmt.Errorf("%w %s: listed twice", ErrInvalidService, k))
				continue
			}
			p.seen = d.epoch
			kept++
			if sameService(p.svc, s) {
				continue
			}
		} else {
			if added == nil {
				added = map[svcIndex]int{}
			}
			if _, dup := added[idx]; dup {
				errs = append(errs, fmt.Errorf("%w %s: listed twice", ErrInvalidService, k))
				continue
			}
			added[idx] = i
		}
		changed = append(changed, i)
	}
	// Removals first: they free ids for the additions.
	for idx, p := range d.services {
		if kept == len(d.services) {
			break // all listed: nothing to remove
		}
		if p.seen == d.epoch {
			continue
		}
		stale = d.appendStale(stale, p, nil)
		if err := d.remove(idx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		stats.Removed++
	}
	for _, i := range changed {
		st, err := d.upsert(services[i], &stale)
		stats.Added += st.Added
		stats.Updated += st.Updated
		errs = append(errs, err)
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
		return SyncStats{}, ErrClosed
	}
	var (
		stats SyncStats
		errs  []error
		stale []staleStaleKey
	)
	for _, s := range services {
		st, err := d.upsert(s, &stale)
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
		return SyncStats{}, ErrClosed
	}
	var (
		stats SyncStats
		errs  []error
		stale []staleStaleKey
	)
	for _, k := range keys {
		p := d.lookup(k)
		if p == nil {
			continue
		}
		idx, _ := indexOf(p.svc.Key())
		stale = d.appendStale(stale, p, nil)
		if err := d.remove(idx, p); err != nil {
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

// ErrClosed is returned by the methods of a closed Datapath.
var ErrClosed = errors.New("bpf: datapath closed")

// lookup returns how k is programmed, or nil.
func (d *Datapath) lookup(k ServiceKey) *programmed {
	k.VIP = k.VIP.Unmap()
	idx, ok := indexOf(k)
	if !ok {
		return nil
	}
	return d.services[idx]
}

// upsert programs s unless the maps hold it already.
func (d *Datapath) upsert(s Service, stale *[]staleStaleKey) (SyncStats, error) {
	s, err := normalize(s)
	if err != nil {
		return SyncStats{}, err
	}
	k := s.Key()
	idx, _ := indexOf(k)
	p := d.services[idx]
	if p != nil {
		p.seen = d.epoch
		if p.svc.AffinityTimeout == s.AffinityTimeout && slices.Equal(p.svc.Backends, s.Backends) {
			return SyncStats{}, nil
		}
	}
	if p == nil {
		id, ok := d.ids.alloc()
		if !ok {
			return SyncStats{}, fmt.Errorf("bpf: add service %s: %w (%d services)", k, ErrFull, MaxServices)
		}
		// The id's counters are zero: fresh from the map, or zeroed when
		// its last service was removed.
		p = &programmed{svc: Service{VIP: s.VIP, Port: s.Port, Protocol: s.Protocol}, id: id, gen: 1, seen: d.epoch}
		if err := d.write(k, p, s); err != nil {
			d.ids.free(id)
			return SyncStats{}, fmt.Errorf("bpf: add service %s: %w", k, err)
		}
		d.services[idx] = p
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
func (d *Datapath) remove(idx svcIndex, p *programmed) error {
	k := p.svc.Key()
	if err := deleteKey(d.objs.SkiffServices, svcKeyOf(k)); err != nil {
		return fmt.Errorf("bpf: remove service %s: %w", k, err)
	}
	delete(d.services, idx)
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
	// Last, when no lookup of the service can be in flight any more, so
	// the id goes back to the pool with zero counters.
	errs = append(errs, d.zeroCounters(p.id))
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

// zeroCounters resets the counters of a service id going back to the pool.
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

// reset makes used the ids in use, after reading them back from the maps,
// and returns the ids below the highest one in use that are free.
func (a *idAllocator) reset(used map[uint32]bool) []uint32 {
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
	return a.freed
}
