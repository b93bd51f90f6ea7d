package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// staleFlows runs the socket iterators of stale.c: they destroy the
// sockets whose reverse-translation entry names a (service, backend) pair
// listed in skiff_stale.
type staleFlows struct {
	objs     staleObjects
	tcp, udp *link.Iter
}

// openStaleFlows loads stale.c over the datapath's connected sockets'
// reverse translations (tiny maps when probing). It fails on kernels
// without bpf_sock_destroy or socket iterators.
func openStaleFlows(sockrev *ebpf.Map, probing bool) (*staleFlows, error) {
	spec, err := loadStale()
	if err != nil {
		return nil, err
	}
	if probing {
		shrink(spec)
	}
	s := &staleFlows{}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"skiff_sockrev": sockrev}}
	if err := spec.LoadAndAssign(&s.objs, opts); err != nil {
		return nil, fmt.Errorf("load socket iterators: %w", err)
	}
	if s.tcp, err = link.AttachIter(link.IterOptions{Program: s.objs.SkiffDestroyTcp}); err != nil {
		s.Close()
		return nil, fmt.Errorf("attach tcp iterator: %w", err)
	}
	if s.udp, err = link.AttachIter(link.IterOptions{Program: s.objs.SkiffDestroyUdp}); err != nil {
		s.Close()
		return nil, fmt.Errorf("attach udp iterator: %w", err)
	}
	return s, nil
}

func (s *staleFlows) Close() error {
	var errs []error
	for _, it := range []*link.Iter{s.tcp, s.udp} {
		if it != nil {
			errs = append(errs, it.Close())
		}
	}
	errs = append(errs, s.objs.Close())
	return errors.Join(errs...)
}

// appendStale adds to stale the pairs (p's service, backend) for p's
// backends that keep (sorted) does not hold, when cleanup applies to the
// service's protocol.
func (d *Datapath) appendStale(stale []staleStaleKey, p *programmed, keep []Backend) []staleStaleKey {
	if d.stale == nil {
		return stale
	}
	if p.svc.Protocol == TCP && !d.destroyTCP.Load() {
		return stale
	}
	for _, b := range p.svc.Backends {
		if containsBackend(keep, b) {
			continue
		}
		stale = append(stale, staleStaleKey{
			Vip:   addrKey(p.svc.VIP),
			Vport: portKey(p.svc.Port),
			Proto: uint8(p.svc.Protocol),
			Addr:  addrKey(b.Addr),
			Port:  portKey(b.Port),
		})
	}
	return stale
}

// destroyStale destroys the sockets translated to the given pairs in the
// loader's network namespace and in Config.NetnsPaths, and returns how
// many it destroyed.
func (d *Datapath) destroyStale(stale []staleStaleKey) (int, error) {
	if len(stale) == 0 || d.stale == nil {
		return 0, nil
	}
	s := d.stale
	var tcp, udp bool
	for _, k := range stale {
		if err := s.objs.SkiffStale.Put(k, uint8(1)); err != nil {
			return 0, fmt.Errorf("bpf: stale flows: %w", err)
		}
		tcp = tcp || k.Proto == uint8(TCP)
		udp = udp || k.Proto == uint8(UDP)
	}
	defer func() {
		for _, k := range stale {
			_ = deleteKey(s.objs.SkiffStale, k)
		}
	}()
	if err := s.objs.SkiffDestroyed.Put(uint32(0), uint64(0)); err != nil {
		return 0, fmt.Errorf("bpf: stale flows: %w", err)
	}

	var iters []*link.Iter
	if tcp {
		iters = append(iters, s.tcp)
	}
	if udp {
		iters = append(iters, s.udp)
	}
	namespaces := []string{""} // our own
	if d.cfg.NetnsPaths != nil {
		more, err := d.cfg.NetnsPaths()
		if err != nil {
			return 0, fmt.Errorf("bpf: stale flows: list network namespaces: %w", err)
		}
		namespaces = append(namespaces, more...)
	}
	var errs []error
	for _, ns := range namespaces {
		err := inNetns(ns, func() error { return runIters(iters) })
		if errors.Is(err, os.ErrNotExist) {
			continue // the namespace went away (its pod was deleted): no sockets left there
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bpf: stale flows in %s: %w", nsName(ns), err))
		}
	}
	var n uint64
	if err := s.objs.SkiffDestroyed.Lookup(uint32(0), &n); err != nil {
		errs = append(errs, fmt.Errorf("bpf: stale flows: %w", err))
	}
	if n > 0 {
		d.log.Info("bpf: destroyed sockets to removed backends", "sockets", n)
	}
	return int(n), errors.Join(errs...)
}

func nsName(ns string) string {
	if ns == "" {
		return "own network namespace"
	}
	return ns
}

// runIters runs each iterator over the sockets of the calling thread's
// network namespace (an iterator binds to it when opened).
func runIters(iters []*link.Iter) error {
	for _, it := range iters {
		r, err := it.Open()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("run iterator: %w", err)
		}
	}
	return nil
}

// inNetns runs fn on a thread that is in the network namespace at path ("":
// the caller's own). The thread is thrown away if it cannot be moved back.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		err = fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the goroutine exits locked and its thread dies with it
		errc <- err
	}()
	return <-errc
}
