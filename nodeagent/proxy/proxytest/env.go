package proxytest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/nodeagent/network/netnstest"
)

// CgroupRoot is where cgroup v2 is mounted on these machines (hybrid).
const CgroupRoot = "/sys/fs/cgroup/unified"

// CgroupPrefix starts the name of every cgroup this package creates
// (under CgroupRoot) and of every bpffs it mounts (under os.TempDir).
const CgroupPrefix = "skiff-test-proxy-"

// Env is where a suite runs.
type Env struct {
	// NS is the network namespace of backends, clients and VIPs.
	NS netnstest.NS
	// Cgroup is the cgroup v2 directory an eBPF datapath attaches to (""
	// without one); clients run in its child ClientCgroup, as pods run
	// below the agent's cgroup parent.
	Cgroup string
	// ClientCgroup is Cgroup's child the clients run in.
	ClientCgroup string

	spawn *spawner // forks clients, from inside NS
}

// Options of NewEnv.
type Options struct {
	// Cgroup creates a cgroup v2 directory for the clients (an eBPF
	// datapath attaches to it).
	Cgroup bool
}

// NewEnv checks the prerequisites (root, ip, cgroup v2 when asked),
// removes leftovers of crashed runs, and creates the namespace (and
// cgroup) that t.Cleanup removes.
func NewEnv(t *testing.T, opts Options) *Env {
	t.Helper()
	netnstest.Require(t)
	RemoveStale(t)
	env := &Env{NS: netnstest.New(t)}
	sp, err := newSpawner(env.NS.Path)
	if err != nil {
		t.Fatalf("client spawner: %v", err)
	}
	env.spawn = sp
	t.Cleanup(sp.stop) // after the clients' cleanups (registered later)
	if opts.Cgroup {
		env.Cgroup = NewCgroup(t)
		env.ClientCgroup = filepath.Join(env.Cgroup, "clients")
		if err := os.Mkdir(env.ClientCgroup, 0o755); err != nil {
			t.Fatalf("create client cgroup: %v", err)
		}
		t.Cleanup(func() {
			if err := removeCgroup(env.ClientCgroup); err != nil {
				t.Error(err)
			}
		})
	}
	return env
}

var seq atomic.Int64

func name() string { return fmt.Sprintf("%s%d-%d", CgroupPrefix, os.Getpid(), seq.Add(1)) }

// NewCgroup creates a cgroup v2 directory under CgroupRoot and removes it
// when the test ends (after the test's clients, which t.Cleanup ends
// first).
func NewCgroup(t testing.TB) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(CgroupRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		netnstest.Missing(t, "cgroup v2 at "+CgroupRoot)
	}
	dir := filepath.Join(CgroupRoot, name())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := removeCgroup(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// removeCgroup removes an empty cgroup; processes just killed may take a
// moment to leave it.
func removeCgroup(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BPFFS mounts a private bpffs instance (its pins are seen by nobody
// else) and unmounts it when the test ends; it returns the mount point.
func BPFFS(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), name()+"-bpffs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("bpffs mount point: %v", err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		netnstest.Missing(t, fmt.Sprintf("a bpffs mount (%v)", err))
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// RemoveStale removes what crashed runs of this package left: cgroups
// and bpffs mounts whose creating process is gone. A cgroup that still
// holds processes (a crashed run's clients) is left alone and logged:
// only their own test ends processes.
func RemoveStale(t testing.TB) {
	t.Helper()
	netnstest.RemoveStale(t)
	cgroups, _ := filepath.Glob(filepath.Join(CgroupRoot, CgroupPrefix+"*"))
	for _, dir := range cgroups {
		if ownerAlive(filepath.Base(dir)) {
			continue
		}
		children, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
		for _, c := range children {
			os.Remove(filepath.Dir(c))
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("stale cgroup %s: %v", dir, err)
		}
	}
	for _, dir := range bpffsMounts() {
		if ownerAlive(strings.TrimSuffix(filepath.Base(dir), "-bpffs")) {
			continue
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Logf("stale bpffs %s: %v", dir, err)
			continue
		}
		os.Remove(dir)
	}
}

// ownerAlive reports whether the process named in a CgroupPrefix name
// still runs.
func ownerAlive(base string) bool {
	pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(base, CgroupPrefix), "-", 2)[0])
	if err != nil {
		return true // not ours to judge
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// bpffsMounts lists this package's bpffs mount points.
func bpffsMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	prefix := filepath.Join(os.TempDir(), CgroupPrefix)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], prefix) && strings.HasSuffix(fields[4], "-bpffs") {
			out = append(out, fields[4])
		}
	}
	return out
}
