package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireNode skips (or fails under SKIFF_REQUIRE_INTEGRATION=1) unless a
// real node can run here: root, network namespaces, containerd, runc and
// the CNI plugins.
func requireNode(t *testing.T) {
	t.Helper()
	var missing []string
	if err := canNetns(); err != nil {
		missing = append(missing, err.Error())
	}
	for _, c := range []string{"containerd", "runc"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c+" not found")
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "CNI plugins not in /usr/lib/cni (containernetworking-plugins)")
	}
	if len(missing) == 0 {
		return
	}
	if requireIntegration() {
		t.Fatalf("SKIFF_REQUIRE_INTEGRATION=1 but a real node cannot run here: %s (make test installs them: test/deps.sh)", strings.Join(missing, "; "))
	}
	t.Skipf("a real node cannot run here: %s", strings.Join(missing, "; "))
}

// echoTools builds the echo example's image and its binary (the test's
// HTTP client, run inside the sandbox's namespace).
func echoTools(t *testing.T) (image, bin string) {
	t.Helper()
	dir := t.TempDir()
	image, bin = filepath.Join(dir, "echo.tar"), filepath.Join(dir, "echo")
	build := exec.Command("go", "build", "-o", bin, "./examples/echo")
	build.Dir, build.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the echo binary: %v\n%s", err, out)
	}
	mk := exec.Command("go", "run", "./cmd/mkimage", "-out", image, "-binary", bin)
	mk.Dir = repoRoot
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("build the echo image: %v\n%s", err, out)
	}
	return image, bin
}

// podView is what the test reads of a pod.
type podView struct {
	Name, UID, IP, Phase, ContainerID string
	Ready                             bool
	Restarts                          int
	Terminating                       bool
}

func (e *env) pods(t *testing.T) []podView {
	t.Helper()
	var l struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				UID               string  `json:"uid"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				Phase             string `json:"phase"`
				PodIP             string `json:"podIP"`
				ContainerStatuses []struct {
					ContainerID  string `json:"containerID"`
					Ready        bool   `json:"ready"`
					RestartCount int    `json:"restartCount"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(e.mustSkiff("get", "pods", "-o", "json")), &l); err != nil {
		t.Fatal(err)
	}
	var out []podView
	for _, it := range l.Items {
		v := podView{Name: it.Metadata.Name, UID: it.Metadata.UID, IP: it.Status.PodIP, Phase: it.Status.Phase,
			Terminating: it.Metadata.DeletionTimestamp != nil}
		if cs := it.Status.ContainerStatuses; len(cs) > 0 {
			v.ContainerID, v.Ready, v.Restarts = cs[0].ContainerID, cs[0].Ready, cs[0].RestartCount
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b podView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// inNetns runs a command inside the test's network namespace.
func (e *env) inNetns(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.netns}, args...)...).CombinedOutput()
	return string(out), err
}

// cgroupProcs lists the processes in the pods' cgroups (cgroup v1 pids
// hierarchy, or v2).
func cgroupProcs(parent string) []int {
	var pids []int
	for _, root := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"} {
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

// TestNodeRunsWeb is issue 5's end-to-end test: a dev cluster with its own
// node in a network namespace runs examples/web.yaml in containerd.
func TestNodeRunsWeb(t *testing.T) {
	requireNode(t)
	e := newEnv(t)
	image, echoBin := echoTools(t)
	data := filepath.Join(t.TempDir(), "dev")
	node := fmt.Sprintf("e2e-%d", os.Getpid())
	cgroupParent := "/" + netnsPrefix + strconv.Itoa(os.Getpid())
	e.setenv("SKIFF_CONFIG", filepath.Join(data, "admin.conf"))
	args := []string{"dev", "--data-dir", data, "--api-addr", "127.0.0.1:0", "--node-name", node,
		"--cgroup-parent", cgroupParent, "--import-image", image}
	dev := e.start("skiff dev", args...)
	t.Cleanup(func() { cleanupNode(cgroupParent, node, data) })
	dev.waitOutput("skiff dev is ready", 0, 90*time.Second)

	e.mustSkiff("apply", "-f", "examples/web.yaml")
	e.mustSkiff("rollout", "status", "deploy/web", "--timeout", "90s")
	pods := e.pods(t)
	if len(pods) != 3 {
		t.Fatalf("%d pods, want 3: %+v", len(pods), pods)
	}
	for _, p := range pods {
		if p.Phase != "Running" || !p.Ready || p.IP == "" || !strings.HasPrefix(p.ContainerID, "containerd://") {
			t.Fatalf("pod not running and ready in containerd: %+v", p)
		}
		// The pod answers on its own IP, inside the sandbox namespace.
		out, err := e.inNetns(echoBin, "fetch", "http://"+p.IP+":8080/", "-n", "1", "--require-test-netns")
		if err != nil || !strings.Contains(out, p.Name) {
			t.Fatalf("GET http://%s:8080/ (pod %s): %v\n%s", p.IP, p.Name, err, out)
		}
	}

	// A killed container is restarted by its restart policy.
	victim := pods[0]
	pids := cgroupProcs(filepath.Join(cgroupParent, "pod"+victim.UID))
	if len(pids) == 0 {
		t.Fatalf("no process in the cgroup of pod %s", victim.Name)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitFor(t, 60*time.Second, "the killed container restarted and Ready", func() bool {
		for _, p := range e.pods(t) {
			if p.Name == victim.Name {
				return p.Restarts == 1 && p.Ready && p.ContainerID != victim.ContainerID
			}
		}
		return false
	})

	// kill -9 of the agent (here, the whole dev process) leaves the
	// containers running; the next start adopts them: same container IDs,
	// same restart counts.
	before := e.pods(t)
	if err := dev.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-dev.done
	for _, p := range before {
		if out, err := e.inNetns(echoBin, "fetch", "http://"+p.IP+":8080/", "-n", "1", "--require-test-netns"); err != nil {
			t.Fatalf("pod %s stopped answering while skiff was down: %v\n%s", p.Name, err, out)
		}
	}
	dev2 := e.start("skiff dev (restarted)", args...)
	dev2.waitOutput("skiff dev is ready", 0, 90*time.Second)
	dev2.waitOutput("adopted sandboxes from the runtime", 0, 30*time.Second)
	time.Sleep(2 * time.Second) // a few relists: a wrongly restarted container would show by now
	after := e.pods(t)
	for i := range before {
		b, a := before[i], after[i]
		if a.ContainerID != b.ContainerID || a.Restarts != b.Restarts || !a.Ready {
			t.Errorf("pod %s after the agent's kill -9: container %s restarts %d ready %v, want %s restarts %d ready",
				b.Name, a.ContainerID, a.Restarts, a.Ready, b.ContainerID, b.Restarts)
		}
	}

	// Deleting the Deployment removes the pods only once their containers
	// and network namespaces are gone.
	e.mustSkiff("delete", "-f", "examples/web.yaml")
	waitFor(t, 60*time.Second, "the pods gone", func() bool { return len(e.pods(t)) == 0 })
	if pids := cgroupProcs(cgroupParent); len(pids) > 0 {
		t.Errorf("processes %v still run in the pods' cgroups after the pods were deleted", pids)
	}
	if ns, _ := os.ReadDir(filepath.Join("/run/skiff", node, "netns")); len(ns) > 0 {
		t.Errorf("%d network namespaces left after the pods were deleted", len(ns))
	}
	if out, _ := e.inNetns("ip", "-o", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
		t.Errorf("veths left after the pods were deleted:\n%s", out)
	}
	if err := dev2.stop(30 * time.Second); err != nil {
		t.Errorf("skiff dev exited with %v", err)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// cleanupNode removes what a failed test may leave: processes in the
// pods' cgroups (containers and their shims outlive skiff by design),
// the cgroups, the sandboxes' network namespace mounts.
func cleanupNode(cgroupParent, node, data string) {
	for range 3 {
		pids := cgroupProcs(cgroupParent)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Shims of this test's containerd (their command line names its
	// socket, under the test's data dir).
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "containerd-shim") && strings.Contains(string(cmdline), data) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	state := filepath.Join("/run/skiff", node)
	if ns, err := os.ReadDir(filepath.Join(state, "netns")); err == nil {
		for _, n := range ns {
			_ = syscall.Unmount(filepath.Join(state, "netns", n.Name()), syscall.MNT_DETACH)
		}
	}
	_ = os.RemoveAll(state)
	for _, root := range []string{"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory",
		"/sys/fs/cgroup/pids", "/sys/fs/cgroup/blkio", "/sys/fs/cgroup/devices", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/cpuset",
		"/sys/fs/cgroup/net_cls,net_prio", "/sys/fs/cgroup/perf_event", "/sys/fs/cgroup/hugetlb", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"} {
		removeCgroupTree(filepath.Join(root, cgroupParent))
	}
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
