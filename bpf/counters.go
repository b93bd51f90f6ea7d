package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Counters returns the counters of every programmed service.
func (d *Datapath) Counters() (map[ServiceKey]Counters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errClosed
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("bpf: counters: %w", err)
	}
	perCPU := make([]lbCounters, ncpu)
	out := make(map[ServiceKey]Counters, len(d.services))
	for _, p := range d.services {
		k := p.svc.Key()
		if err := d.objs.SkiffCounters.Lookup(p.id, perCPU); err != nil {
			return nil, fmt.Errorf("bpf: counters of %s: %w", k, err)
		}
		var c Counters
		for _, v := range perCPU {
			c.Connections += v.Connections
			c.Datagrams += v.Datagrams
		}
		out[k] = c
	}
	return out, nil
}
