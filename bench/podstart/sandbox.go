package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The run's names all carry the outer process's PID, so a leftover of a
// crashed run is recognised by a PID that no longer runs.
const (
	// netnsPrefix names the run's network namespace and its pods' cgroup
	// parent (/skiff-bench-<pid>).
	netnsPrefix = "skiff-bench-"
	// dirPrefix names the run's data directory under os.TempDir().
	dirPrefix = "skiff-bench-podstart-"
	// innerEnv tells the re-executed process it is the inner half and
	// names the namespace it must be in.
	innerEnv = "SKIFF_PODSTART_NETNS"
	// dirEnv passes the data directory to the inner half.
	dirEnv = "SKIFF_PODSTART_DIR"
	// hostNSEnv passes the outer half's network namespace (nsID), which
	// the inner half must not be in.
	hostNSEnv = "SKIFF_PODSTART_HOSTNS"
)

// sandbox is one run's namespace, data directory and cgroup parent.
type sandbox struct {
	netns string // skiff-bench-<pid>
	dir   string // <tmp>/skiff-bench-podstart-<pid>
}

func newSandbox(pid int) sandbox {
	return sandbox{
		netns: netnsPrefix + strconv.Itoa(pid),
		dir:   filepath.Join(os.TempDir(), dirPrefix+strconv.Itoa(pid)),
	}
}

// cgroupParent is where the node puts its pods' cgroups (and the baseline
// its containers').
func (s sandbox) cgroupParent() string { return "/" + s.netns }

// nodeName is the node's name; its runtime state is /run/skiff/<node>.
func (s sandbox) nodeName() string { return s.netns }

// containerdNamespace is the node's containerd namespace: distinct per run,
// because runc's state and the shims' sockets live under /run/containerd
// whatever the daemon's own directories.
func (s sandbox) containerdNamespace() string { return s.netns }

// pinDir is where the agent's eBPF datapath pins its maps and links.
func (s sandbox) pinDir() string { return filepath.Join("/sys/fs/bpf/skiff", s.nodeName()) }

// baselineNamespace holds containerd-alone's image and containers.
func (s sandbox) baselineNamespace() string { return s.netns + "-baseline" }

// agentDir is the agent's --data-dir (its containerd lives under it).
func (s sandbox) agentDir() string { return filepath.Join(s.dir, "agent") }

// containerdSocket is the socket of the containerd the agent starts.
func (s sandbox) containerdSocket() string {
	return filepath.Join(s.agentDir(), "containerd", "containerd.sock")
}

// prerequisites lists what a real node needs here and is missing.
func prerequisites(bin, image string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "not root (a real node runs containers, network namespaces and cgroups)")
	}
	for _, c := range []string{"ip", "nsenter", "containerd", "runc"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c+" not found (make run installs it: test/deps.sh)")
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "CNI plugins not in /usr/lib/cni (apt-get install containernetworking-plugins)")
	}
	if _, err := os.Stat(bin); err != nil {
		missing = append(missing, bin+" missing (make build)")
	}
	if _, err := os.Stat(image); err != nil {
		missing = append(missing, image+" missing (make images)")
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return nil
}

// runOuter creates the namespace, runs this program again inside it, and
// cleans up after it however it ended. It returns the exit code.
func runOuter(o options) int {
	if err := prerequisites(o.bin, o.image); err != nil {
		fmt.Fprintln(os.Stderr, "podstart: cannot run a real node here:", err)
		return 1
	}
	removeStale()
	s := newSandbox(os.Getpid())
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		return 1
	}
	defer s.cleanup(o.keep)
	for _, args := range [][]string{{"netns", "add", s.netns}, {"-n", s.netns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "podstart: ip %s: %v: %s\n", strings.Join(args, " "), err, out)
			return 1
		}
	}
	hostNS, err := nsID("/proc/self/ns/net")
	if err != nil {
		fmt.Fprintln(os.Stderr, "podstart: this process's network namespace:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "podstart: find this program:", err)
		return 1
	}
	// nsenter execs the program in place, so the child's PID is the inner
	// half's own.
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + s.netns, "--", self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), innerEnv+"="+s.netns, dirEnv+"="+s.dir, hostNSEnv+"="+hostNS)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "podstart: start the inner half:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			// The inner half stops its processes on SIGTERM; the deferred
			// cleanup takes care of the containers.
			fmt.Fprintf(os.Stderr, "\n%v: stopping the benchmark and cleaning up\n", sig)
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case err := <-done:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &ee) && ee.ExitCode() >= 0:
				return ee.ExitCode()
			default:
				fmt.Fprintln(os.Stderr, "podstart: inner half:", err)
				return 1
			}
		}
	}
}

// cleanup removes everything the run may have left: processes in the pods'
// cgroups and the run's shims (they outlive the agent by design), the eBPF
// datapath's pins, the sandboxes' network namespace mounts, the cgroups,
// runc's state for the run's containerd namespaces, the network namespace
// and (unless keep) the data directory.
func (s sandbox) cleanup(keep bool) {
	for range 3 {
		pids := cgroupProcs(s.cgroupParent())
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Shims of this run's containerd name its socket, under s.dir. A
	// killed shim leaves its socket behind in /run/containerd/s.
	for _, p := range scanProcs() {
		if strings.Contains(p.cmdline, "containerd-shim") && strings.Contains(p.cmdline, s.dir) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			if sock := shimSocket(p.cmdline); sock != "" {
				_ = os.Remove(sock)
			}
		}
	}
	// The eBPF datapath's pins (maps, and the links that keep its programs
	// on the pods' cgroup): removing them detaches the programs.
	_ = os.RemoveAll(s.pinDir())
	state := filepath.Join("/run/skiff", s.nodeName())
	if ns, err := os.ReadDir(filepath.Join(state, "netns")); err == nil {
		for _, n := range ns {
			_ = syscall.Unmount(filepath.Join(state, "netns", n.Name()), syscall.MNT_DETACH)
		}
	}
	_ = os.RemoveAll(state)
	for _, ns := range []string{s.containerdNamespace(), s.baselineNamespace()} {
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", ns))
	}
	for _, root := range cgroupRoots() {
		removeCgroupTree(filepath.Join(root, s.cgroupParent()))
	}
	if _, err := os.Stat(filepath.Join("/run/netns", s.netns)); err == nil {
		if out, err := exec.Command("ip", "netns", "del", s.netns).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "podstart: remove netns %s: %v: %s\n", s.netns, err, out)
		}
	}
	if keep {
		fmt.Fprintf(os.Stderr, "# kept %s (logs, data)\n", s.dir)
		return
	}
	// Unmount anything containerd left mounted under the data directory
	// (rootfs of a container killed mid-run) before removing it.
	for _, m := range mountsUnder(s.dir) {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	_ = os.RemoveAll(s.dir)
}

// shimSocket is the socket a runc v2 shim listens on, from its command
// line (-namespace NS -id ID -address CONTAINERD): containerd names it
// /run/containerd/s/<sha256 of CONTAINERD/NS/ID>.
func shimSocket(cmdline string) string {
	f := strings.Fields(cmdline)
	arg := func(name string) string {
		for i := 0; i+1 < len(f); i++ {
			if f[i] == name {
				return f[i+1]
			}
		}
		return ""
	}
	ns, id, addr := arg("-namespace"), arg("-id"), arg("-address")
	if ns == "" || id == "" || addr == "" {
		return ""
	}
	return fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(filepath.Join(addr, ns, id))))
}

// removeStale cleans up after earlier runs that crashed: every
// skiff-bench-<pid> namespace, skiff-bench-podstart-<pid> directory,
// /skiff-bench-<pid> cgroup, /run/skiff/skiff-bench-<pid> state and
// /sys/fs/bpf/skiff/skiff-bench-<pid> pins whose PID no longer runs.
func removeStale() {
	var pids []int
	add := func(name, prefix string) {
		if pid, ok := stalePID(name, prefix); ok && !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			add(e.Name(), netnsPrefix)
		}
	}
	if entries, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range entries {
			add(e.Name(), dirPrefix)
		}
	}
	for _, dir := range append(cgroupRoots(), "/run/skiff", "/sys/fs/bpf/skiff") {
		if entries, err := os.ReadDir(dir); err == nil {
			for _, e := range entries {
				add(e.Name(), netnsPrefix)
			}
		}
	}
	for _, pid := range pids {
		fmt.Fprintf(os.Stderr, "# removing the leftovers of an earlier run (PID %d)\n", pid)
		newSandbox(pid).cleanup(false)
	}
}

// stalePID returns the PID in prefix<pid> when no process with it runs.
func stalePID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(rest)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != rest {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return 0, false // still running (or someone else's)
	}
	return pid, true
}

// nsID identifies a network namespace (device and inode of its nsfs file).
func nsID(path string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// inNamespace checks that this process runs in the named network
// namespace, and in neither the outer half's (hostNS) nor PID 1's (when
// readable): the guard that keeps every packet of the benchmark inside the
// namespace the outer half created.
func inNamespace(netns, hostNS string) error {
	self, err := nsID("/proc/self/ns/net")
	if err != nil {
		return err
	}
	hosts := []string{hostNS}
	if init, err := nsID("/proc/1/ns/net"); err == nil {
		hosts = append(hosts, init)
	}
	for _, h := range hosts {
		if h == "" || self == h {
			return errors.New("running in the machine's own network namespace (or an unknown one); refusing")
		}
	}
	named, err := nsID(filepath.Join("/run/netns", netns))
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", netns, err)
	}
	if self != named {
		return fmt.Errorf("not running in the network namespace %s; refusing", netns)
	}
	return nil
}

// cgroupRoots are the hierarchies a pod's cgroups may be in (cgroup v1
// controllers and the v2 mount of a hybrid host, or a pure v2 host).
func cgroupRoots() []string {
	roots := []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
	if entries, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, e := range entries {
			if e.IsDir() && e.Name() != "unified" {
				roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
			}
		}
	}
	return roots
}

// cgroupProcs lists the processes in the cgroups under parent, in every
// hierarchy.
func cgroupProcs(parent string) []int {
	var pids []int
	for _, root := range cgroupRoots() {
		_ = filepath.WalkDir(filepath.Join(root, parent), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroupTree removes a cgroup directory tree bottom up.
func removeCgroupTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	_ = syscall.Rmdir(dir)
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}
