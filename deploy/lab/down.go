package lab

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Down removes the lab: its processes (the daemons, the forwarder, the
// pods' processes and their shims), the nodes' network namespace mounts,
// eBPF pins, cgroups and containerd state, the network namespaces, and its
// directory. keepLogs keeps the log directory.
func (l *Lab) Down(keepLogs bool) error {
	return l.down(keepLogs)
}

func (l *Lab) down(keepLogs bool) error {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range l.Machines {
		note(m.Proc.kill())
	}
	note(l.Forwarder.kill())
	for _, m := range l.ByRole(RoleNode) {
		note(l.removeNodeLeftovers(m))
	}
	note(removeAllIfExists(l.pinRoot()))
	note(removeAllIfExists(l.stateDir()))
	for _, m := range l.Machines {
		note(delNetns(m.Netns))
	}
	note(delNetns(l.LAN))
	if keepLogs && strings.HasPrefix(l.LogDir, l.Dir+string(filepath.Separator)) {
		entries, _ := os.ReadDir(l.Dir)
		for _, e := range entries {
			if p := filepath.Join(l.Dir, e.Name()); p != l.LogDir {
				note(os.RemoveAll(p))
			}
		}
	} else {
		note(os.RemoveAll(l.Dir))
	}
	if left := l.Leftovers(keepLogs); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind: %s", strings.Join(left, "; ")))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s: down: %w", l.Name, err)
	}
	return nil
}

// Leftovers lists what of the lab still exists: processes, network
// namespaces, cgroups, eBPF pins, mounts, containerd state, its
// directory (the logs aside when keepLogs). Empty after a clean Down.
func (l *Lab) Leftovers(keepLogs bool) []string {
	var left []string
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, m := range l.Machines {
		if m.Proc.Alive() {
			left = append(left, fmt.Sprintf("%s's process %d", m.Name, m.Proc.PID))
		}
		if exists(m.NetnsPath()) {
			left = append(left, "netns "+m.Netns)
		}
	}
	if l.Forwarder.Alive() {
		left = append(left, fmt.Sprintf("the forwarder, process %d", l.Forwarder.PID))
	}
	if exists(netnsPath(l.LAN)) {
		left = append(left, "netns "+l.LAN)
	}
	for _, m := range l.ByRole(RoleNode) {
		for _, root := range cgroupRoots() {
			if p := filepath.Join(root, l.CgroupParent(m)); exists(p) {
				left = append(left, "cgroup "+p)
			}
		}
		ns := l.ContainerdNamespace(m)
		if shims := findShims(ns); len(shims) > 0 {
			left = append(left, fmt.Sprintf("%d containerd shims of %s", len(shims), ns))
		}
		if p := "/run/containerd/runc/" + ns; exists(p) {
			left = append(left, p)
		}
	}
	for _, p := range []string{l.pinRoot(), l.stateDir()} {
		if exists(p) {
			left = append(left, p)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 {
				p := unescapeMountPoint(f[4])
				for _, d := range []string{l.Dir, l.stateDir()} {
					if p == d || strings.HasPrefix(p, d+"/") {
						left = append(left, "mount "+p)
					}
				}
			}
		}
	}
	if exists(l.Dir) {
		entries, _ := os.ReadDir(l.Dir)
		for _, e := range entries {
			if p := filepath.Join(l.Dir, e.Name()); !keepLogs || p != l.LogDir {
				left = append(left, p)
			}
		}
	}
	return left
}

// removeNodeLeftovers ends a node's pods and shims (its agent is gone)
// and removes their mounts, cgroups and runc state.
func (l *Lab) removeNodeLeftovers(m *Machine) error {
	var errs []error
	parent := l.CgroupParent(m)
	for range 5 {
		pids := cgroupPIDs(parent)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		sleepBrief()
	}
	ns := l.ContainerdNamespace(m)
	for _, sh := range findShims(ns) {
		syscall.Kill(sh.pid, syscall.SIGKILL)
		if sh.socket != "" {
			os.Remove(sh.socket)
		}
	}
	// The pods' network namespace mounts.
	nsDir := filepath.Join(l.stateDir(), m.Name, "netns")
	if entries, err := os.ReadDir(nsDir); err == nil {
		for _, e := range entries {
			p := filepath.Join(nsDir, e.Name())
			if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	// Containers' root filesystems the killed shims left mounted.
	errs = append(errs, unmountUnder(m.Dir))
	for _, root := range cgroupRoots() {
		if err := removeCgroupTree(filepath.Join(root, parent)); err != nil {
			errs = append(errs, err)
		}
	}
	// runc's state of the namespace lives under /run/containerd whatever
	// the daemon's own directories.
	for _, d := range []string{"/run/containerd/runc/" + ns, "/run/containerd/io.containerd.runtime.v2.task/" + ns} {
		errs = append(errs, removeAllIfExists(d))
	}
	return errors.Join(errs...)
}

func removeAllIfExists(p string) error {
	if err := os.RemoveAll(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// cgroupRoots lists the mounted cgroup hierarchies (v1 controllers and
// the v2 one).
func cgroupRoots() []string {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var roots []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
		roots = append(roots, "/sys/fs/cgroup")
	}
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			roots = append(roots, p)
		}
	}
	return roots
}

// cgroupPIDs lists the processes in parent's cgroup tree, any hierarchy.
func cgroupPIDs(parent string) []int {
	seen := map[int]bool{}
	var out []int
	for _, root := range cgroupRoots() {
		filepath.WalkDir(filepath.Join(root, parent), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// removeCgroupTree removes a cgroup directory tree, deepest first.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}

type shim struct {
	pid    int
	socket string
}

// findShims finds the containerd shims of a containerd namespace, and the
// socket each listens on (/run/containerd/s/<sha256 of address/ns/id>).
func findShims(ns string) []shim {
	entries, _ := os.ReadDir("/proc")
	var out []shim
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		flags := map[string]string{}
		for i := 0; i+1 < len(args); i++ {
			if strings.HasPrefix(args[i], "-") {
				flags[strings.TrimLeft(args[i], "-")] = args[i+1]
			}
		}
		if flags["namespace"] != ns {
			continue
		}
		s := shim{pid: pid}
		if flags["address"] != "" && flags["id"] != "" {
			sum := sha256.Sum256([]byte(filepath.Join(flags["address"], ns, flags["id"])))
			s.socket = filepath.Join("/run/containerd/s", fmt.Sprintf("%x", sum))
		}
		out = append(out, s)
	}
	return out
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and such octal-escaped.
		p := unescapeMountPoint(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

func unescapeMountPoint(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
