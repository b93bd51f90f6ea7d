package containerd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// podCgroup is the cgroup of a pod's containers, relative to every
// hierarchy's root: "<parent>/pod<uid>".
func podCgroup(parent string, uid api.UID) string {
	clean := strings.Map(func(r rune) rune {
		if r == '/' || r == '.' || r < ' ' {
			return '_'
		}
		return r
	}, string(uid))
	return path.Join(parent, "pod"+clean)
}

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	dir         string
	v2          bool
	controllers []string // v1 only
}

// cgroupMounts lists the cgroup hierarchies mounted in this mount
// namespace (from /proc/self/mountinfo).
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 / /sys/fs/cgroup/memory rw,... shared:9 - cgroup cgroup rw,memory
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		switch tail[0] {
		case "cgroup2":
			out = append(out, cgroupMount{dir: unescapeMount(fields[4]), v2: true})
		case "cgroup":
			m := cgroupMount{dir: unescapeMount(fields[4])}
			for _, o := range strings.Split(tail[2], ",") {
				switch o {
				case "rw", "ro", "xattr", "noprefix", "clone_children":
				default:
					m.controllers = append(m.controllers, o)
				}
			}
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`); err == nil {
		return u
	}
	return s
}

// controllerDir is where the cgroup rel of controller lives: the v1
// hierarchy that has the controller, else the unified one.
func controllerDir(mounts []cgroupMount, controller, rel string) (dir string, v2 bool, err error) {
	var unified string
	for _, m := range mounts {
		if m.v2 {
			if unified == "" {
				unified = m.dir
			}
			continue
		}
		for _, c := range m.controllers {
			if c == controller {
				return filepath.Join(m.dir, rel), false, nil
			}
		}
	}
	if unified != "" {
		return filepath.Join(unified, rel), true, nil
	}
	return "", false, fmt.Errorf("no cgroup hierarchy has %s", controller)
}

// mounts lists the cgroup hierarchies once (they do not change while
// the agent runs).
func (r *Runtime) mounts() ([]cgroupMount, error) {
	r.cgroupOnce.Do(func() { r.cgroupMounts, r.cgroupErr = cgroupMounts() })
	return r.cgroupMounts, r.cgroupErr
}

// swapAccounting reports whether cgroup v1 memory+swap limits can be set
// (the kernel was booted with swap accounting).
func (r *Runtime) swapAccounting() bool {
	mounts, err := r.mounts()
	if err != nil {
		return false
	}
	dir, v2, err := controllerDir(mounts, "memory", "/")
	if err != nil || v2 {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
	return err == nil
}

// oomKills reads how many processes of cgroup rel the kernel killed for
// want of memory (cgroup v1 memory.oom_control, v2 memory.events).
func (r *Runtime) oomKills(rel string) (int, error) {
	mounts, err := r.mounts()
	if err != nil {
		return 0, err
	}
	dir, v2, err := controllerDir(mounts, "memory", rel)
	if err != nil {
		return 0, err
	}
	file := "memory.oom_control"
	if v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if k, v, ok := strings.Cut(strings.TrimSpace(string(line)), " "); ok && k == "oom_kill" {
			return strconv.Atoi(v)
		}
	}
	return 0, nil
}

// readResources reads back the limits in force on cgroup rel.
func (r *Runtime) readResources(rel string) (runtime.Resources, error) {
	mounts, err := r.mounts()
	if err != nil {
		return runtime.Resources{}, err
	}
	var res runtime.Resources
	read := func(controller, v1file, v2file string) (string, bool, error) {
		dir, v2, err := controllerDir(mounts, controller, rel)
		if err != nil {
			return "", false, err
		}
		name := v1file
		if v2 {
			name = v2file
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b)), v2, err
	}
	mem, v2, err := read("memory", "memory.limit_in_bytes", "memory.max")
	if err != nil {
		return res, err
	}
	if mem != "max" {
		n, _ := strconv.ParseInt(mem, 10, 64)
		// cgroup v1 reports "unlimited" as the largest page-aligned int64.
		if n < 1<<62 {
			res.MemoryLimit = n
		}
	}
	if v2 {
		cpuMax, _, err := read("cpu", "", "cpu.max")
		if err != nil {
			return res, err
		}
		q, p, _ := strings.Cut(cpuMax, " ")
		if q != "max" {
			res.CPUQuota, _ = strconv.ParseInt(q, 10, 64)
		}
		res.CPUPeriod, _ = strconv.ParseUint(p, 10, 64)
		w, _, err := read("cpu", "", "cpu.weight")
		if err != nil {
			return res, err
		}
		// runc's conversion, inverted: weight = 1 + ((shares-2)*9999)/262142.
		weight, _ := strconv.ParseUint(w, 10, 64)
		if weight > 0 {
			res.CPUShares = 2 + ((weight-1)*262142+9998)/9999
		}
		return res, nil
	}
	quota, _, err := read("cpu", "cpu.cfs_quota_us", "")
	if err != nil {
		return res, err
	}
	if n, _ := strconv.ParseInt(quota, 10, 64); n > 0 {
		res.CPUQuota = n
	}
	period, _, err := read("cpu", "cpu.cfs_period_us", "")
	if err != nil {
		return res, err
	}
	res.CPUPeriod, _ = strconv.ParseUint(period, 10, 64)
	shares, _, err := read("cpu", "cpu.shares", "")
	if err != nil {
		return res, err
	}
	res.CPUShares, _ = strconv.ParseUint(shares, 10, 64)
	return res, nil
}

// removeCgroup removes the (empty) cgroup rel and its empty descendants
// from every hierarchy. A cgroup that still has processes stays, and is
// not an error: the next teardown retries.
func (r *Runtime) removeCgroup(rel string) error {
	mounts, err := r.mounts()
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, m := range mounts {
		dir := filepath.Join(m.dir, rel)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if err := rmdirTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdirTree removes dir's cgroup subtree, deepest first (cgroup
// directories are removed with rmdir, never with their files).
func rmdirTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOTEMPTY) {
			return nil
		}
		return err
	}
	return nil
}
