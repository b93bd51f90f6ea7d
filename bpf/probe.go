package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// Probe reports whether this kernel can run the datapath: cgroup sock_addr
// programs of the four kinds, the map types and helpers they use. The
// returned error wraps ebpf.ErrNotSupported when a feature is missing;
// other errors mean "unknown" (no permission, say). Stale-flow cleanup
// (bpf_sock_destroy with socket iterators) is optional and reported in
// Features. Probe loads the programs with tiny maps and attaches nothing.
func Probe() (Features, error) {
	for _, mt := range []ebpf.MapType{ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUArray} {
		if err := features.HaveMapType(mt); err != nil {
			return Features{}, fmt.Errorf("bpf: probe map type %s: %w", mt, err)
		}
	}
	if err := features.HaveProgramType(ebpf.CGroupSockAddr); err != nil {
		return Features{}, fmt.Errorf("bpf: probe cgroup sock_addr programs: %w", err)
	}
	for _, fn := range []asm.BuiltinFunc{
		asm.FnGetSocketCookie, asm.FnGetNetnsCookie, asm.FnGetPrandomU32,
		asm.FnKtimeGetNs, asm.FnSetRetval,
	} {
		if err := features.HaveProgramHelper(ebpf.CGroupSockAddr, fn); err != nil {
			return Features{}, fmt.Errorf("bpf: probe helper %s: %w", fn, err)
		}
	}

	spec, err := loadLb()
	if err != nil {
		return Features{}, fmt.Errorf("bpf: probe: %w", err)
	}
	shrink(spec)
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return Features{}, fmt.Errorf("bpf: probe: load programs: %w", err)
	}
	defer coll.Close()

	var f Features
	if s, err := probeStale(coll.Maps["skiff_sockrev"]); err == nil {
		f.SockDestroy = true
		s.Close()
	}
	return f, nil
}

func probeStale(sockrev *ebpf.Map) (*staleFlows, error) {
	if sockrev == nil {
		return nil, errors.New("no socket storage map")
	}
	return openStaleFlows(sockrev, true)
}

// shrink makes spec's maps small and unpinned, for a load that only
// probes. (An LRU map wants room for each CPU's free list.)
func shrink(spec *ebpf.CollectionSpec) {
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
		if m.Type != ebpf.Array && m.Type != ebpf.SkStorage {
			m.MaxEntries = min(m.MaxEntries, 256)
		}
	}
}
