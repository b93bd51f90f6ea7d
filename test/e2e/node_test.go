package e2e

import (
	"encoding/json"
	"errors"
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

	// The Service's ClusterIP spreads over the three pods, over TCP and
	// UDP, from inside a pod (eBPF mode: the kernel allows it here).
	dev.waitOutput(`msg="service proxy mode"`, 0, 10*time.Second)
	if !strings.Contains(dev.output(), "mode=ebpf") {
		t.Errorf("the dev node did not pick the eBPF datapath:\n%s", grepLines(dev.output(), "proxy"))
	}
	vip := checkClusterIP(t, e, pods)

	// Logs and exec reach the pod through the API server and the agent.
	if out := e.mustSkiff("logs", pods[1].Name); !strings.Contains(out, `echo serving as "`+pods[1].Name+`"`) {
		t.Errorf("skiff logs %s:\n%s", pods[1].Name, out)
	}
	follow := e.start("skiff logs -f", "logs", "-f", pods[1].Name)
	follow.waitOutput("echo serving as", 0, 30*time.Second)
	if r := e.skiff("exec", pods[1].Name, "--", "sh", "-c", "hostname; exit 3"); r.err == nil ||
		strings.TrimSpace(r.stdout) != pods[1].Name || exitCode(r.err) != 3 {
		t.Errorf("skiff exec: stdout %q, exit %v (want the pod's name and exit code 3)\n%s", r.stdout, r.err, r.stderr)
	}
	if r := e.skiff("logs", pods[1].Name, "--previous"); r.err == nil || !strings.Contains(r.stderr, "previous terminated container") {
		t.Errorf("logs --previous of a container that never restarted: %v\n%s", r.err, r.stderr)
	}
	if err := follow.stop(10 * time.Second); err != nil && exitCode(err) < 0 {
		t.Errorf("logs -f: %v", err)
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
	// same restart counts. A pod-like client streaming requests to the
	// ClusterIP all along sees no failure: the pinned eBPF programs and
	// maps keep translating while no agent runs.
	stream := e.startClientStream(t, echoBin, cgroupParent, "http://"+vip+"/")
	waitFor(t, 10*time.Second, "the ClusterIP stream under way", func() bool { ok, _ := stream.rounds(); return ok >= 3 })
	before := e.pods(t)
	if err := dev.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-dev.done
	atKill, _ := stream.rounds()
	for _, p := range before {
		if out, err := e.inNetns(echoBin, "fetch", "http://"+p.IP+":8080/", "-n", "1", "--require-test-netns"); err != nil {
			t.Fatalf("pod %s stopped answering while skiff was down: %v\n%s", p.Name, err, out)
		}
	}
	time.Sleep(time.Second) // no agent at all
	atRestart, _ := stream.rounds()
	dev2 := e.start("skiff dev (restarted)", args...)
	dev2.waitOutput("skiff dev is ready", 0, 90*time.Second)
	dev2.waitOutput("adopted sandboxes from the runtime", 0, 30*time.Second)
	time.Sleep(2 * time.Second) // a few relists: a wrongly restarted container would show by now
	ok, fails := stream.end()
	if len(fails) > 0 || atRestart <= atKill || ok <= atRestart {
		t.Errorf("ClusterIP stream across the kill -9 and restart: %d rounds of 10 requests ok (%d at the kill, %d at the restart), %d failed:\n%s",
			ok, atKill, atRestart, len(fails), failSummary(fails))
	} else {
		t.Logf("ClusterIP stream across the kill -9 and restart: %d rounds of 10 requests, %d while no agent ran, none failed", ok, atRestart-atKill)
	}
	after := e.pods(t)
	for i := range before {
		b, a := before[i], after[i]
		if a.ContainerID != b.ContainerID || a.Restarts != b.Restarts || !a.Ready {
			t.Errorf("pod %s after the agent's kill -9: container %s restarts %d ready %v, want %s restarts %d ready",
				b.Name, a.ContainerID, a.Restarts, a.Ready, b.ContainerID, b.Restarts)
		}
	}

	// The tour skiff dev printed works as written (its last step deletes
	// the Deployment).
	tour := tourCommands(t, dev2.output())
	for _, args := range tour {
		e.mustSkiff(args...)
	}
	if len(tour) < 5 || !slices.Equal(tour[len(tour)-1], []string{"delete", "-f", "examples/web.yaml"}) {
		t.Fatalf("the printed tour %q does not end by deleting examples/web.yaml", tour)
	}

	// Deleting the Deployment removes the pods only once their containers
	// and network namespaces are gone.
	waitFor(t, 60*time.Second, "the pods gone", func() bool { return len(e.pods(t)) == 0 })
	if pids := cgroupProcs(cgroupParent); len(pids) > 0 {
		t.Errorf("processes %v still run in the pods' cgroups after the pods were deleted", pids)
	}
	if ns, _ := os.ReadDir(filepath.Join("/run/skiff", node, "netns")); len(ns) > 0 {
		t.Errorf("%d network namespaces left after the pods were deleted", len(ns))
	}
	if logs, _ := os.ReadDir(filepath.Join(data, "agent", "pods")); len(logs) > 0 {
		t.Errorf("%d pod log directories left after the pods were deleted", len(logs))
	}
	if out, _ := e.inNetns("ip", "-o", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
		t.Errorf("veths left after the pods were deleted:\n%s", out)
	}
	if err := dev2.stop(30 * time.Second); err != nil {
		t.Errorf("skiff dev exited with %v", err)
	}
}

// checkClusterIP asserts that the web Service's ClusterIP answers from
// each of pods, over TCP (port 80) and UDP (9090), from inside a pod, and
// returns it.
func checkClusterIP(t *testing.T, e *env, pods []podView) string {
	t.Helper()
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(e.mustSkiff("get", "svc", "web", "-o", "json")), &svc); err != nil {
		t.Fatal(err)
	}
	vip := svc.Spec.ClusterIP
	for _, probe := range [][]string{
		{"echo", "fetch", "http://" + vip + "/", "-n", "30"},
		{"echo", "udp", vip + ":9090", "-n", "30"},
	} {
		var out string
		// The endpoints reach the datapath within moments of readiness.
		waitFor(t, 10*time.Second, "the ClusterIP answering from every pod: "+strings.Join(probe, " "), func() bool {
			r := e.skiff(append([]string{"exec", "deploy/web", "--"}, probe...)...)
			out = r.stdout
			for _, p := range pods {
				if !strings.Contains(out, p.Name+"\t") {
					return false
				}
			}
			return r.err == nil
		})
	}
	return vip
}

// grepLines returns the lines of out that contain s.
func grepLines(out, s string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// tourCommands are the skiff commands skiff dev printed when ready (the
// lines "  [path/]skiff ..." after "In another terminal:"), without the
// binary.
func tourCommands(t *testing.T, out string) [][]string {
	t.Helper()
	_, after, ok := strings.Cut(out, "In another terminal:")
	if !ok {
		t.Fatalf("skiff dev printed no tour:\n%s", out)
	}
	var cmds [][]string
	for _, line := range strings.Split(after, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && filepath.Base(f[0]) == "skiff" && strings.HasPrefix(line, "  ") {
			cmds = append(cmds, f[1:])
		}
		if strings.HasPrefix(line, "Stop with") {
			break
		}
	}
	return cmds
}

// exitCode is a finished command's exit code (-1: not an exit).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
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
	// The eBPF datapath's pins (maps, and the links that keep its
	// programs on the pods' cgroup): removing them detaches the programs.
	_ = os.RemoveAll(filepath.Join("/sys/fs/bpf/skiff", node))
	_ = os.Remove("/sys/fs/bpf/skiff") // the agents' common parent, if no other node pins there
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

// startDevNode starts a dev cluster with its own node in the test's
// namespace, with the echo image imported.
func startDevNode(t *testing.T, e *env, extra ...string) *daemon {
	t.Helper()
	image, _ := echoTools(t)
	data := filepath.Join(t.TempDir(), "dev")
	node := fmt.Sprintf("e2e-%d", os.Getpid())
	cgroupParent := "/" + netnsPrefix + strconv.Itoa(os.Getpid())
	e.setenv("SKIFF_CONFIG", filepath.Join(data, "admin.conf"))
	args := append([]string{"dev", "--data-dir", data, "--api-addr", "127.0.0.1:0", "--node-name", node,
		"--cgroup-parent", cgroupParent, "--import-image", image}, extra...)
	dev := e.start("skiff dev", args...)
	t.Cleanup(func() { cleanupNode(cgroupParent, node, data) })
	dev.waitOutput("skiff dev is ready", 0, 90*time.Second)
	return dev
}

// waitingReason is a pod's first container's waiting reason and message,
// or its terminated reason.
func (e *env) containerState(t *testing.T, pod string) (waiting, terminated, message string, ready bool) {
	t.Helper()
	var p struct {
		Status struct {
			ContainerStatuses []struct {
				Ready bool `json:"ready"`
				State struct {
					Waiting    *struct{ Reason, Message string } `json:"waiting"`
					Terminated *struct{ Reason, Message string } `json:"terminated"`
				} `json:"state"`
			} `json:"containerStatuses"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(e.mustSkiff("get", "pod", pod, "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Status.ContainerStatuses) == 0 {
		return "", "", "", false
	}
	cs := p.Status.ContainerStatuses[0]
	if w := cs.State.Waiting; w != nil {
		waiting, message = w.Reason, w.Message
	}
	if x := cs.State.Terminated; x != nil {
		terminated, message = x.Reason, x.Message
	}
	return waiting, terminated, message, cs.Ready
}

// TestNodeBadInput: what goes wrong on a node shows in the pod, clearly,
// and breaks nothing else.
func TestNodeBadInput(t *testing.T) {
	requireNode(t)
	e := newEnv(t)
	startDevNode(t, e)
	dir := t.TempDir()
	pod := func(name, container string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  restartPolicy: %s\n  containers:\n  - name: c\n    imagePullPolicy: IfNotPresent\n%s",
			name, map[bool]string{true: "Never", false: "Always"}[name == "oom"], container)
	}
	manifest := strings.Join([]string{
		pod("no-image", "    image: localhost/skiff/missing:1\n"),
		pod("no-binary", "    image: localhost/skiff/echo:latest\n    command: [/no/such/binary]\n"),
		pod("closed-port", "    image: localhost/skiff/echo:latest\n    readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}\n"),
		pod("oom", "    image: localhost/skiff/echo:latest\n    command: [sh, -c, 'a=0123456789; while :; do a=$a$a; done']\n    resources: {limits: {memory: 16Mi}}\n"),
		pod("too-big", "    image: localhost/skiff/echo:latest\n    resources: {requests: {memory: 64Ti}}\n"),
	}, "---\n")
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustSkiff("apply", "-f", path)

	waitFor(t, 60*time.Second, "no-image: ErrImagePull or ImagePullBackOff", func() bool {
		w, _, msg, _ := e.containerState(t, "no-image")
		return (w == "ErrImagePull" || w == "ImagePullBackOff") && strings.Contains(msg, "localhost/skiff/missing:1")
	})
	waitFor(t, 60*time.Second, "no-binary: CrashLoopBackOff with the runtime's error", func() bool {
		w, _, msg, _ := e.containerState(t, "no-binary")
		return w == "CrashLoopBackOff" && strings.Contains(msg, "/no/such/binary")
	})
	waitFor(t, 60*time.Second, "oom: OOMKilled", func() bool {
		_, x, _, _ := e.containerState(t, "oom")
		return x == "OOMKilled"
	})
	// A probe against a closed port keeps the pod running but not Ready.
	waitFor(t, 30*time.Second, "closed-port: running", func() bool {
		for _, p := range e.pods(t) {
			if p.Name == "closed-port" {
				return p.Phase == "Running"
			}
		}
		return false
	})
	time.Sleep(3 * time.Second) // three probe periods
	if _, _, _, ready := e.containerState(t, "closed-port"); ready {
		t.Error("closed-port: Ready although its readiness probe cannot connect")
	}
	// More memory than the node has: never placed, and describe says why.
	if out := e.mustSkiff("describe", "pod", "too-big"); !strings.Contains(out, "Insufficient memory") {
		t.Errorf("too-big: describe does not say why it is pending:\n%s", out)
	}
	for _, p := range e.pods(t) {
		if p.Name == "too-big" && p.Phase != "Pending" {
			t.Errorf("too-big: phase %s, want Pending", p.Phase)
		}
	}
	// A malformed tarball: a clear error, nothing imported.
	before := e.mustSkiff("image", "ls")
	bad := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(bad, []byte("not a tarball"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.skiff("image", "import", bad); r.err == nil || !strings.Contains(r.stderr, "nothing imported") {
		t.Errorf("import of a malformed tarball: %v\n%s", r.err, r.stderr)
	}
	if after := e.mustSkiff("image", "ls"); after != before {
		t.Errorf("image list changed by a failed import:\n%s\nthen\n%s", before, after)
	}
	e.mustSkiff("delete", "-f", path, "--grace-period", "1")
	waitFor(t, 60*time.Second, "the pods gone", func() bool { return len(e.pods(t)) == 0 })
}

// TestNodeUserspaceProxy: with --proxy-mode=userspace the same ClusterIP
// spreads over the same pods.
func TestNodeUserspaceProxy(t *testing.T) {
	requireNode(t)
	e := newEnv(t)
	dev := startDevNode(t, e, "--proxy-mode", "userspace")
	if !strings.Contains(grepLines(dev.output(), "service proxy mode"), "mode=userspace") {
		t.Errorf("the node did not run the userspace proxy:\n%s", grepLines(dev.output(), "proxy"))
	}
	e.mustSkiff("apply", "-f", "examples/web.yaml")
	e.mustSkiff("rollout", "status", "deploy/web", "--timeout", "90s")
	checkClusterIP(t, e, e.pods(t))
	e.mustSkiff("delete", "-f", "examples/web.yaml")
	waitFor(t, 60*time.Second, "the pods gone", func() bool { return len(e.pods(t)) == 0 })
}
