package bpf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// DefaultPinDir is where the agent pins the datapath's maps and links.
const DefaultPinDir = "/sys/fs/bpf/skiff"

// Config of the datapath.
type Config struct {
	// PinDir is the bpffs directory for pinned maps and links (default
	// DefaultPinDir; tests use their own). It must be on a bpffs.
	PinDir string
	// CgroupPath is the cgroup v2 directory the programs attach to
	// (required). Processes in it and in every cgroup below it are balanced.
	CgroupPath string
	// AttachToRoot allows CgroupPath to be the root of the cgroup v2
	// hierarchy (every process of the host, for host-reachable services).
	// Never set in tests.
	AttachToRoot bool
	// NetnsPaths lists the network namespaces (a bind mount such as
	// /run/netns/NAME, or /proc/PID/ns/net) whose sockets stale-flow cleanup
	// visits, besides the loader's own; a socket iterator sees only the
	// namespace it runs in. Nil: only the loader's own.
	NetnsPaths func() ([]string, error)
	// Logger receives what the loader did (attach, reuse, update); nil
	// discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.PinDir == "" {
		c.PinDir = DefaultPinDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Datapath is an open handle on the pinned socket load balancer. Its
// methods are safe for concurrent use.
type Datapath struct {
	cfg      Config
	log      *slog.Logger
	objs     lbObjects
	links    []link.Link
	stale    *staleFlows // nil without SockDestroy
	features Features

	destroyTCP atomic.Bool

	mu       sync.Mutex // guards what follows, and serializes map writes
	services map[svcIndex]*programmed
	epoch    uint64 // of the last Sync
	ids      idAllocator
	closed   bool
}

// attachment is one program and the hook it runs on.
type attachment struct {
	name   string // the link's pin name
	attach ebpf.AttachType
	prog   func(*lbObjects) *ebpf.Program
}

var attachments = []attachment{
	{"link_connect4", ebpf.AttachCGroupInet4Connect, func(o *lbObjects) *ebpf.Program { return o.SkiffConnect4 }},
	{"link_sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, func(o *lbObjects) *ebpf.Program { return o.SkiffSendmsg4 }},
	{"link_recvmsg4", ebpf.AttachCGroupUDP4Recvmsg, func(o *lbObjects) *ebpf.Program { return o.SkiffRecvmsg4 }},
	{"link_getpeername4", ebpf.AttachCgroupInet4GetPeername, func(o *lbObjects) *ebpf.Program { return o.SkiffGetpeername4 }},
	// IPv4-mapped addresses of dual-stack sockets.
	{"link_connect6", ebpf.AttachCGroupInet6Connect, func(o *lbObjects) *ebpf.Program { return o.SkiffConnect6 }},
	{"link_sendmsg6", ebpf.AttachCGroupUDP6Sendmsg, func(o *lbObjects) *ebpf.Program { return o.SkiffSendmsg6 }},
	{"link_recvmsg6", ebpf.AttachCGroupUDP6Recvmsg, func(o *lbObjects) *ebpf.Program { return o.SkiffRecvmsg6 }},
	{"link_getpeername6", ebpf.AttachCgroupInet6GetPeername, func(o *lbObjects) *ebpf.Program { return o.SkiffGetpeername6 }},
}

// Open loads the programs and maps, or re-opens the pinned ones of an
// earlier run (the datapath kept forwarding meanwhile), attaches to
// CgroupPath (reusing pinned links; the programs of this binary replace
// the pinned ones with Link.Update, atomically), and returns the handle.
// The services programmed by the earlier run are read back from the maps.
func Open(cfg Config) (*Datapath, error) {
	cfg.setDefaults()
	cgroupID, err := checkCgroup(cfg.CgroupPath, cfg.AttachToRoot)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("bpf: create pin directory: %w", err)
	}
	if err := checkBPFFS(cfg.PinDir); err != nil {
		return nil, err
	}

	d := &Datapath{cfg: cfg, log: cfg.Logger, services: map[svcIndex]*programmed{}}
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("bpf: %w", err)
	}
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinDir}})
	if err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("bpf: pinned maps in %s have another layout (an older skiff?); run skiff agent --cleanup: %w", cfg.PinDir, err)
		}
		return nil, fmt.Errorf("bpf: load programs: %w", err)
	}
	if err := d.attach(cgroupID); err != nil {
		d.closeHandles()
		return nil, err
	}
	if err := d.restore(); err != nil {
		d.closeHandles()
		return nil, err
	}
	d.stale, err = openStaleFlows(d.objs.SkiffSockrev, false)
	if err != nil {
		d.log.Info("bpf: stale-flow cleanup unavailable; sockets to removed backends stay until they fail", "err", err)
	} else {
		d.features.SockDestroy = true
	}
	d.log.Info("bpf: datapath open", "cgroup", cfg.CgroupPath, "pins", cfg.PinDir,
		"services", len(d.services), "sockDestroy", d.features.SockDestroy)
	return d, nil
}

// attach links each program to the cgroup: a pinned link on the same
// cgroup and hook gets the new program (Link.Update, no gap); one on
// another cgroup is replaced; a missing one is created and pinned.
func (d *Datapath) attach(cgroupID uint64) error {
	for _, a := range attachments {
		prog := a.prog(&d.objs)
		path := filepath.Join(d.cfg.PinDir, a.name)
		l, err := link.LoadPinnedLink(path, nil)
		switch {
		case err == nil:
			if attachedTo(l, cgroupID, a.attach) {
				if err := l.Update(prog); err != nil {
					l.Close()
					return fmt.Errorf("bpf: update pinned link %s: %w", path, err)
				}
				d.links = append(d.links, l)
				d.log.Debug("bpf: pinned link updated", "link", a.name)
				continue
			}
			d.log.Info("bpf: pinned link is on another cgroup; replacing it", "link", a.name)
			if err := unpinAndDetach(l); err != nil {
				return fmt.Errorf("bpf: replace pinned link %s: %w", path, err)
			}
		case errors.Is(err, os.ErrNotExist):
		default:
			return fmt.Errorf("bpf: load pinned link %s: %w", path, err)
		}
		l, err = link.AttachCgroup(link.CgroupOptions{Path: d.cfg.CgroupPath, Attach: a.attach, Program: prog})
		if err != nil {
			return fmt.Errorf("bpf: attach %s to %s: %w", a.name, d.cfg.CgroupPath, err)
		}
		d.links = append(d.links, l)
		if err := l.Pin(path); err != nil {
			return fmt.Errorf("bpf: pin link %s: %w", path, err)
		}
		d.log.Debug("bpf: attached", "link", a.name, "cgroup", d.cfg.CgroupPath)
	}
	return nil
}

func attachedTo(l link.Link, cgroupID uint64, attach ebpf.AttachType) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	cg := info.Cgroup()
	return cg != nil && cg.CgroupId == cgroupID && ebpf.AttachType(cg.AttachType) == attach
}

// unpinAndDetach removes l's pin and detaches it even if another process
// still holds it.
func unpinAndDetach(l link.Link) error {
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return err
	}
	if err := l.Detach(); err != nil && !errors.Is(err, link.ErrNotSupported) {
		return err
	}
	return nil
}

// Features reports the optional parts this datapath runs with.
func (d *Datapath) Features() Features { return d.features }

// SetDestroyTCP makes stale-flow cleanup destroy TCP connections to removed
// backends too (connected UDP sockets always are). Off by default: an
// established TCP connection to a backend leaving the endpoints (a rolling
// update) usually ends by itself.
func (d *Datapath) SetDestroyTCP(on bool) { d.destroyTCP.Store(on) }

// Close releases this process's handles; pins and links stay, so the
// programs go on balancing with the maps as they are.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.closeHandles()
}

func (d *Datapath) closeHandles() error {
	var errs []error
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	d.links = nil
	if d.stale != nil {
		errs = append(errs, d.stale.Close())
	}
	errs = append(errs, d.objs.Close())
	return errors.Join(errs...)
}

// Cleanup detaches the programs and removes every pin under cfg.PinDir
// and the directory itself (skiff agent --cleanup). Nothing balances the
// cgroup afterwards. A missing PinDir is not an error.
func Cleanup(cfg Config) error {
	cfg.setDefaults()
	entries, err := os.ReadDir(cfg.PinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bpf: cleanup: %w", err)
	}
	var errs []error
	for _, a := range attachments {
		path := filepath.Join(cfg.PinDir, a.name)
		l, err := link.LoadPinnedLink(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bpf: cleanup: load pinned link %s: %w", path, err))
			continue
		}
		if err := unpinAndDetach(l); err != nil {
			errs = append(errs, fmt.Errorf("bpf: cleanup: detach %s: %w", path, err))
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(cfg.PinDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("bpf: cleanup: %w", err))
		}
	}
	if err := os.Remove(cfg.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("bpf: cleanup: %w", err))
	}
	if len(errs) == 0 {
		cfg.Logger.Info("bpf: datapath removed", "pins", cfg.PinDir)
	}
	return errors.Join(errs...)
}

var _ io.Closer = (*Datapath)(nil)

// ProgramStats is what the kernel counted for one program. The kernel
// counts only while BPF statistics are on (sysctl kernel.bpf_stats_enabled
// or ebpf.EnableStats); otherwise both are zero.
type ProgramStats struct {
	Runs    uint64
	RunTime time.Duration
}

// ProgramStats returns the statistics of the programs, by hook name
// (connect4, sendmsg4, recvmsg4, getpeername4, and the same with 6 for
// IPv4-mapped addresses on dual-stack sockets).
func (d *Datapath) ProgramStats() (map[string]ProgramStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	out := make(map[string]ProgramStats, len(attachments))
	for _, a := range attachments {
		st, err := a.prog(&d.objs).Stats()
		if err != nil {
			return nil, fmt.Errorf("bpf: program stats: %w", err)
		}
		out[strings.TrimPrefix(a.name, "link_")] = ProgramStats{Runs: st.RunCount, RunTime: st.Runtime}
	}
	return out, nil
}
