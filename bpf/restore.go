package bpf

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// restore reads the services an earlier run programmed back from the maps,
// and deletes what a run that died mid-write left without an owner
// (backend slots and members of no service, members of a former backend).
func (d *Datapath) restore() error {
	byID := map[uint32]*programmed{}
	var (
		key   lbSvcKey
		value lbSvcValue
		bad   []lbSvcKey
	)
	it := d.objs.SkiffServices.Iterate()
	for it.Next(&key, &value) {
		k := serviceKeyOf(key)
		p := &programmed{
			svc: Service{VIP: k.VIP, Port: k.Port, Protocol: k.Protocol},
			id:  value.Id,
			gen: value.Gen & 1,
		}
		if value.Flags&flagAffinity != 0 {
			p.svc.AffinityTimeout = time.Duration(value.AffinityTimeout) * time.Second
		}
		p.svc.Backends = make([]Backend, value.Count)
		idx, ok := indexOf(k)
		if !ok || value.Id == 0 || value.Id > MaxServices || byID[value.Id] != nil {
			bad = append(bad, key) // not written by this loader
			continue
		}
		d.services[idx] = p
		byID[value.Id] = p
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("bpf: read services: %w", err)
	}

	var (
		bkey   lbBackendKey
		bvalue lbBackendValue
		orphan []lbBackendKey
	)
	it = d.objs.SkiffBackends.Iterate()
	for it.Next(&bkey, &bvalue) {
		p := byID[bkey.Id]
		if p == nil || bkey.Gen > 1 {
			orphan = append(orphan, bkey)
			continue
		}
		p.slots[bkey.Gen] = max(p.slots[bkey.Gen], int(bkey.Index)+1)
		if bkey.Gen == p.gen && int(bkey.Index) < len(p.svc.Backends) {
			p.svc.Backends[bkey.Index] = backendOf(bvalue)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("bpf: read backends: %w", err)
	}
	var errs []error
	for _, k := range bad {
		errs = append(errs, deleteKey(d.objs.SkiffServices, k))
	}
	for _, k := range orphan {
		errs = append(errs, deleteKey(d.objs.SkiffBackends, k))
	}

	used := make(map[uint32]bool, len(byID))
	for _, p := range d.services {
		k := p.svc.Key()
		used[p.id] = true
		// The loader writes backends sorted; anything else (a slot
		// missing after a crash) is rewritten by the next Sync.
		if slices.ContainsFunc(p.svc.Backends, func(b Backend) bool { return !b.Addr.IsValid() }) ||
			!slices.IsSortedFunc(p.svc.Backends, compareBackends) {
			d.log.Warn("bpf: pinned service has an incomplete backend set; the next sync rewrites it", "service", k)
			p.svc.Backends = slices.DeleteFunc(p.svc.Backends, func(b Backend) bool { return !b.Addr.IsValid() })
			p.svc.AffinityTimeout = -1 // never equal to a desired service
		}
	}
	// A run that died between removing a service and zeroing its
	// counters leaves them set; ids above the highest in use were never
	// handed out or were zeroed.
	for _, id := range d.ids.reset(used) {
		errs = append(errs, d.zeroCounters(id))
	}

	var (
		mkey  lbMemberKey
		one   uint8
		stray []lbMemberKey
	)
	it = d.objs.SkiffMembers.Iterate()
	for it.Next(&mkey, &one) {
		p := byID[mkey.Id]
		if p == nil || p.svc.AffinityTimeout <= 0 ||
			!slices.Contains(p.svc.Backends, Backend{Addr: addrFromKey(mkey.Addr), Port: portFromKey(mkey.Port)}) {
			stray = append(stray, mkey)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("bpf: read affinity members: %w", err)
	}
	for _, k := range stray {
		errs = append(errs, deleteKey(d.objs.SkiffMembers, k))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf: remove leftovers: %w", err)
	}
	return nil
}
