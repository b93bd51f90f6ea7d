package bpf

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Packet-loss injection for skiff lab (drop.c): this kernel has no netem
// qdisc, so a tcx program on an interface's ingress and egress drops each
// packet with a set probability. The command that sets it exits at once,
// so the links and maps are pinned under DropConfig.PinDir and outlive it:
//
//	PinDir/skiff_drop_config    the threshold (one entry)
//	PinDir/skiff_drop_counters  per-CPU seen/dropped, [0] ingress, [1] egress
//	PinDir/ingress, PinDir/egress  the tcx links
//
// Changing the share of a pinned attachment rewrites skiff_drop_config only.

// ErrHostNetns is returned for a DropConfig.NetnsPath that is the
// machine's own network namespace: dropping its packets would cut the
// machine off, so only namespaces the lab created are accepted.
var ErrHostNetns = errors.New("the machine's own network namespace")

// ErrNoDrop is returned by DropStats when no drop is set at the PinDir.
var ErrNoDrop = errors.New("no packet drop set")

// DropConfig names the interface whose packets are dropped, and where the
// setting is pinned. All fields are required.
type DropConfig struct {
	// NetnsPath is the network namespace holding the interface, e.g.
	// /run/netns/skiff-lab-x-n1. Never the machine's own (ErrHostNetns).
	NetnsPath string
	// Interface is the interface name inside NetnsPath, e.g. eth0.
	Interface string
	// PinDir is a directory on a bpffs for this interface's pins, e.g.
	// /sys/fs/bpf/skiff-lab/<lab>/drop-n1. One PinDir per interface.
	PinDir string
}

const (
	dropPinIngress  = "ingress"
	dropPinEgress   = "egress"
	dropPinConfig   = dropMapSkiffDropConfig
	dropPinCounters = dropMapSkiffDropCounters
	bpffsDefault    = "/sys/fs/bpf"
)

// The indexes of skiff_drop_counters.
const (
	dropIngress uint32 = 0
	dropEgress  uint32 = 1
)

func (c DropConfig) check() error {
	switch {
	case c.NetnsPath == "":
		return errors.New("bpf: drop: NetnsPath is required")
	case c.Interface == "":
		return errors.New("bpf: drop: Interface is required")
	case c.PinDir == "":
		return errors.New("bpf: drop: PinDir is required")
	}
	return nil
}

// dropThreshold turns a share of packets into drop.c's threshold: a packet
// is dropped when a uniform 32-bit random number is below it.
func dropThreshold(share float64) (uint64, error) {
	if math.IsNaN(share) || share < 0 || share > 1 {
		return 0, fmt.Errorf("bpf: drop: share %v is not within 0..1", share)
	}
	return uint64(math.Round(share * (1 << 32))), nil
}

// SetDrop makes the interface of cfg drop the given share (0..1) of its
// packets, in both directions, until ClearDrop. It attaches drop.c with
// tcx on first use and pins everything; later calls only rewrite the
// share (an attachment whose interface went away is replaced). A share of
// 0 keeps the programs attached, counting but dropping nothing.
func SetDrop(cfg DropConfig, share float64) error {
	if err := cfg.check(); err != nil {
		return err
	}
	threshold, err := dropThreshold(share)
	if err != nil {
		return err
	}
	if err := checkNotHostNetns(cfg.NetnsPath); err != nil {
		return err
	}
	if err := dropPinDir(cfg.PinDir); err != nil {
		return err
	}
	unlock, err := lockDir(cfg.PinDir, true)
	if err != nil {
		return fmt.Errorf("bpf: drop: %w", err)
	}
	defer unlock()
	// Everything runs in the target namespace: the ifindex is looked up,
	// and tcx resolves it, in the calling thread's namespace. Pins are
	// paths in the mount namespace, which setns(CLONE_NEWNET) leaves alone.
	err = inNetns(cfg.NetnsPath, func() error {
		iface, err := net.InterfaceByName(cfg.Interface)
		if err != nil {
			return fmt.Errorf("interface %s: %w", cfg.Interface, err)
		}
		return setDrop(cfg.PinDir, iface.Index, threshold)
	})
	if err != nil {
		return fmt.Errorf("bpf: drop on %s in %s: %w", cfg.Interface, cfg.NetnsPath, err)
	}
	return nil
}

// setDrop runs in the interface's namespace with the pin directory locked.
func setDrop(dir string, ifindex int, threshold uint64) error {
	links := map[string]ebpf.AttachType{
		dropPinIngress: ebpf.AttachTCXIngress,
		dropPinEgress:  ebpf.AttachTCXEgress,
	}
	// Keep the pinned links that are attached to this interface, if their
	// program's maps are still pinned (else nobody could set their share).
	mapsPinned := exists(filepath.Join(dir, dropPinConfig)) && exists(filepath.Join(dir, dropPinCounters))
	missing := map[string]ebpf.AttachType{}
	for name, attach := range links {
		path := filepath.Join(dir, name)
		ok, err := pinnedLinkOn(path, ifindex)
		if err != nil {
			return err
		}
		if ok && mapsPinned {
			continue
		}
		if err := unpinLink(path); err != nil {
			return err
		}
		missing[name] = attach
	}

	if len(missing) == 0 {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, dropPinConfig), nil)
		if err != nil {
			return fmt.Errorf("load pinned config: %w", err)
		}
		defer m.Close()
		return putDropConfig(m, threshold)
	}

	spec, err := loadDrop()
	if err != nil {
		return err
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinByName // reuse the pinned maps, or create and pin them
	}
	var objs dropObjects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}); err != nil {
		return fmt.Errorf("load drop program: %w", err)
	}
	defer objs.Close()
	// The share is in place before the first packet meets the program.
	if err := putDropConfig(objs.SkiffDropConfig, threshold); err != nil {
		return err
	}
	progs := map[string]*ebpf.Program{dropPinIngress: objs.SkiffDropIngress, dropPinEgress: objs.SkiffDropEgress}
	for name, attach := range missing {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: progs[name], Attach: attach})
		if err != nil {
			return fmt.Errorf("attach tcx %s: %w", name, err)
		}
		err = l.Pin(filepath.Join(dir, name))
		l.Close() // detaches unless pinned
		if err != nil {
			return fmt.Errorf("pin %s link: %w", name, err)
		}
	}
	return nil
}

func putDropConfig(m *ebpf.Map, threshold uint64) error {
	if err := m.Put(uint32(0), dropDropConfig{Threshold: threshold}); err != nil {
		return fmt.Errorf("write drop config: %w", err)
	}
	return nil
}

// pinnedLinkOn reports whether a tcx link is pinned at path and attached
// to ifindex (a link whose interface was deleted reports ifindex 0).
func pinnedLinkOn(path string, ifindex int) (bool, error) {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load pinned link %s: %w", path, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false, fmt.Errorf("pinned link %s: %w", path, err)
	}
	tcx := info.TCX()
	return tcx != nil && int(tcx.Ifindex) == ifindex, nil
}

// unpinLink removes the pin at path, which detaches its link (no other
// reference is kept). No pin is no error.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Not a link (or unreadable): remove the file all the same.
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, errors.Join(err, rerr))
		}
		return nil
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", path, err)
	}
	return nil
}

// ClearDrop detaches the drop of cfg and removes its pins and PinDir. It
// needs only PinDir (the namespace may be gone already); nothing set is
// no error.
func ClearDrop(cfg DropConfig) error {
	if cfg.PinDir == "" {
		return errors.New("bpf: drop: PinDir is required")
	}
	unlock, err := lockDir(cfg.PinDir, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bpf: clear drop: %w", err)
	}
	defer unlock()
	var errs []error
	for _, name := range []string{dropPinIngress, dropPinEgress} {
		errs = append(errs, unpinLink(filepath.Join(cfg.PinDir, name)))
	}
	for _, name := range []string{dropPinConfig, dropPinCounters} {
		if err := os.Remove(filepath.Join(cfg.PinDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf: clear drop: %w", err)
	}
	// Still locked: a SetDrop waiting on the lock sees the directory gone
	// and makes a new one.
	if err := os.Remove(cfg.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bpf: clear drop: %w", err)
	}
	return nil
}

// DropStats returns how many packets the drop of cfg has seen and dropped,
// both directions together, since SetDrop first attached it. It needs
// only PinDir; ErrNoDrop if nothing is set there.
func DropStats(cfg DropConfig) (seen, dropped uint64, err error) {
	if cfg.PinDir == "" {
		return 0, 0, errors.New("bpf: drop: PinDir is required")
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(cfg.PinDir, dropPinCounters), nil)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("bpf: drop stats at %s: %w", cfg.PinDir, ErrNoDrop)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("bpf: drop stats: %w", err)
	}
	defer m.Close()
	for _, dir := range []uint32{dropIngress, dropEgress} {
		var perCPU []dropDropCounters
		if err := m.Lookup(dir, &perCPU); err != nil {
			return 0, 0, fmt.Errorf("bpf: drop stats: %w", err)
		}
		for _, c := range perCPU {
			seen += c.Seen
			dropped += c.Dropped
		}
	}
	return seen, dropped, nil
}

// checkNotHostNetns makes sure path is a network namespace other than the
// machine's own: PID 1's, or, where that cannot be read (as here), the
// kernel's initial one (a fixed inode since Linux 6.18; see
// nodeagent/network/nsrun, which bpf does not import).
func checkNotHostNetns(path string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return fmt.Errorf("bpf: drop: netns %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("bpf: drop: %s is not a network namespace", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("bpf: drop: netns %s: %w", path, err)
	}
	if isHostNetns(st) {
		return fmt.Errorf("bpf: drop: refusing %s: %w", path, ErrHostNetns)
	}
	return nil
}

// initNetnsIno is NET_NS_INIT_INO (linux/nsfs.h, 6.18 and later).
const initNetnsIno = 0xEFFFFFF9

func isHostNetns(st unix.Stat_t) bool {
	if st.Ino == initNetnsIno {
		return true
	}
	var host unix.Stat_t
	if unix.Stat("/proc/1/ns/net", &host) == nil {
		return st.Dev == host.Dev && st.Ino == host.Ino
	}
	return false
}

// dropPinDir makes the pin directory, mounting the default bpffs first if
// the directory is below it and it is not mounted.
func dropPinDir(dir string) error {
	dir = filepath.Clean(dir)
	if strings.HasPrefix(dir, bpffsDefault+"/") {
		if err := MountBPFFS(bpffsDefault); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpf: drop: pin directory: %w", err)
	}
	return checkBPFFS(dir)
}

// lockDir takes an exclusive flock on dir (creating it if create), so that
// two commands changing the same drop do not attach it twice. A directory
// removed while waiting (ClearDrop) is made anew, or is os.ErrNotExist.
func lockDir(dir string, create bool) (unlock func(), err error) {
	for {
		if create {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
		}
		f, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(dir, &now) == nil &&
			held.Dev == now.Dev && held.Ino == now.Ino {
			return func() { f.Close() }, nil
		}
		f.Close()
		if !create {
			return nil, os.ErrNotExist
		}
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
