package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// counterChunk is how many ids one batch lookup of the counters reads.
const counterChunk = 4096

// Counters returns the counters of every programmed service.
func (d *Datapath) Counters() (map[ServiceKey]Counters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("bpf: counters: %w", err)
	}
	byID, err := d.readCounters(ncpu)
	if err != nil {
		return nil, fmt.Errorf("bpf: counters: %w", err)
	}
	out := make(map[ServiceKey]Counters, len(d.services))
	for _, p := range d.services {
		out[p.svc.Key()] = byID[p.id]
	}
	return out, nil
}

// readCounters sums the per-CPU counters of ids 0..the highest handed out,
// in batches of counterChunk ids (one syscall each), or one by one where
// the kernel has no batch lookup.
func (d *Datapath) readCounters(ncpu int) ([]Counters, error) {
	highest := d.ids.next // ids < next were handed out
	sums := make([]Counters, max(highest, 1))
	keys := make([]uint32, counterChunk)
	values := make([]lbCounters, counterChunk*ncpu)
	var cursor ebpf.MapBatchCursor
	for start := uint32(0); start < highest; start += counterChunk {
		n, err := d.objs.SkiffCounters.BatchLookup(&cursor, keys, values, nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return d.readCountersOneByOne(ncpu, sums)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, err
		}
		for i := range n {
			id := keys[i]
			if id >= uint32(len(sums)) {
				continue
			}
			for _, v := range values[i*ncpu : (i+1)*ncpu] {
				sums[id].Connections += v.Connections
				sums[id].Datagrams += v.Datagrams
			}
		}
		if err != nil { // ErrKeyNotExist: the end of the array
			break
		}
	}
	return sums, nil
}

func (d *Datapath) readCountersOneByOne(ncpu int, sums []Counters) ([]Counters, error) {
	perCPU := make([]lbCounters, ncpu)
	for _, p := range d.services {
		if err := d.objs.SkiffCounters.Lookup(p.id, perCPU); err != nil {
			return nil, err
		}
		var c Counters
		for _, v := range perCPU {
			c.Connections += v.Connections
			c.Datagrams += v.Datagrams
		}
		sums[p.id] = c
	}
	return sums, nil
}
