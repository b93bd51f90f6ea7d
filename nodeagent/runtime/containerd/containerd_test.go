package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	"github.com/skiffhq/skiff/nodeagent/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	e := sharedEnv(t)
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return e.newRuntime(t) },
		runtimetest.Options{Image: testImage, Archive: e.archive, Timeout: 20 * time.Second})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startIn runs a sandbox and one container in it.
func startIn(t *testing.T, rt *Runtime, name string, cfg runtime.ContainerConfig) (runtime.SandboxID, runtime.ContainerID) {
	t.Helper()
	ctx := testCtx(t)
	sb, err := rt.RunSandbox(ctx, runtime.SandboxConfig{Pod: runtime.PodMeta{Name: name, Namespace: "test", UID: api.UID("uid-" + name)}, Hostname: name})
	if err != nil {
		t.Fatal(err)
	}
	img, err := rt.EnsureImage(ctx, testImage, api.PullNever)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Image = img
	if cfg.Meta.Name == "" {
		cfg.Meta.Name = "main"
	}
	id, err := rt.CreateContainer(ctx, sb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return sb, id
}

func execOut(t *testing.T, rt *Runtime, id runtime.ContainerID, cmd ...string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := rt.Exec(testCtx(t), id, runtime.ExecRequest{Cmd: cmd, Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec %q = %d, %v: %s", cmd, code, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// TestSandboxNamespaces: containers live in the sandbox's network
// namespace (not the host's) under the pod's hostname, in the pod's cgroup.
func TestSandboxNamespaces(t *testing.T) {
	rt := sharedEnv(t).newRuntime(t)
	sb, id := startIn(t, rt, "netns", runtime.ContainerConfig{Command: []string{"sleep", "3600"}})
	st, err := rt.SandboxStatus(testCtx(t), sb)
	if err != nil {
		t.Fatal(err)
	}
	var want unix.Stat_t
	if err := unix.Stat(st.NetNS, &want); err != nil {
		t.Fatalf("sandbox netns %s: %v", st.NetNS, err)
	}
	if got := execOut(t, rt, id, "readlink", "/proc/self/ns/net"); got != fmt.Sprintf("net:[%d]", want.Ino) {
		t.Errorf("container's network namespace = %s, want the sandbox's net:[%d]", got, want.Ino)
	}
	host, _ := os.Readlink("/proc/self/ns/net")
	if got := execOut(t, rt, id, "readlink", "/proc/self/ns/net"); got == host {
		t.Errorf("container is in the host's network namespace %s", host)
	}
	if got := execOut(t, rt, id, "hostname"); got != "netns" {
		t.Errorf("hostname = %q, want the pod's", got)
	}
	cg := execOut(t, rt, id, "cat", "/proc/self/cgroup")
	if want := podCgroup(rt.cfg.CgroupParent, "uid-netns") + "/" + string(id); !strings.Contains(cg, want) {
		t.Errorf("container's cgroups:\n%s\nwant %s", cg, want)
	}
	// Security defaults: no new privileges, Docker's capability set.
	status := execOut(t, rt, id, "cat", "/proc/self/status")
	for _, want := range []string{"NoNewPrivs:\t1", "CapEff:\t00000000a80425fb", "Seccomp:\t2"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/self/status lacks %q:\n%s", want, status)
		}
	}
	// The namespace goes with the sandbox.
	if err := rt.RemoveSandbox(testCtx(t), sb); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.NetNS); !os.IsNotExist(err) {
		t.Errorf("netns %s after RemoveSandbox: %v, want it gone", st.NetNS, err)
	}
}

// TestArgsAndEnv: env merges over the image's, workingDir applies, and
// the process is Command then Args (containerArgs has the table of
// Kubernetes' rules).
func TestArgsAndEnv(t *testing.T) {
	rt := sharedEnv(t).newRuntime(t)
	_, id := startIn(t, rt, "env", runtime.ContainerConfig{
		Command: []string{"sleep"}, Args: []string{"3600"},
		Env: []runtime.KeyValue{{Key: "GREETING", Value: "hi"}}, WorkingDir: "/tmp"})
	env := execOut(t, rt, id, "env")
	if !strings.Contains(env, "GREETING=hi") || !strings.Contains(env, "PATH=") {
		t.Errorf("env = %s: want GREETING=hi and the image's PATH", env)
	}
	if got := strings.TrimRight(execOut(t, rt, id, "cat", "/proc/1/cmdline"), "\x00"); got != "sleep\x003600" {
		t.Errorf("PID 1 runs %q, want sleep 3600", got)
	}
	if got := execOut(t, rt, id, "pwd"); got != "/tmp" {
		t.Errorf("working directory = %s, want /tmp", got)
	}
}

// TestStateSurvivesRestart: a new Runtime (an agent that restarted) sees
// the sandboxes and containers as they were, exit codes included, and
// logs keep being written while no runtime is connected.
func TestStateSurvivesRestart(t *testing.T) {
	e := sharedEnv(t)
	rt := e.newRuntime(t)
	log := t.TempDir() + "/ticker.log"
	sb, ticker := startIn(t, rt, "restart", runtime.ContainerConfig{
		Command: []string{"sh", "-c", "while true; do echo tick; sleep 0.1; done"}, LogPath: log})
	img, _ := rt.EnsureImage(testCtx(t), testImage, api.PullNever)
	failed, err := rt.CreateContainer(testCtx(t), sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "failed", Attempt: 2},
		Image: img, Command: []string{"sh", "-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(testCtx(t), failed); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := rt.ContainerStatus(testCtx(t), failed)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == runtime.ContainerExited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container did not exit: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before, _ := rt.ContainerStatus(testCtx(t), ticker)

	rt.Close() // the agent goes away
	size := func() int64 { fi, _ := os.Stat(log); return fi.Size() }
	s0 := size()
	time.Sleep(500 * time.Millisecond)
	if s1 := size(); s1 <= s0 {
		t.Errorf("log did not grow while no agent was connected (%d -> %d bytes)", s0, s1)
	}

	rt2, err := New(rt.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The cleanup of the first runtime purges (and closes) with this one.
	rt.client = rt2.client
	sbs, err := rt2.ListSandboxes(testCtx(t))
	if err != nil || len(sbs) != 1 || sbs[0].ID != sb || sbs[0].State != runtime.SandboxReady || sbs[0].Pod.UID != "uid-restart" {
		t.Fatalf("ListSandboxes after restart = %+v, %v", sbs, err)
	}
	cs, err := rt2.ListContainers(testCtx(t), sb)
	if err != nil || len(cs) != 2 {
		t.Fatalf("ListContainers after restart = %+v, %v", cs, err)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Meta.Name < cs[j].Meta.Name })
	if cs[0].ID != failed || cs[0].State != runtime.ContainerExited || cs[0].Meta.Attempt != 2 || cs[1].ID != ticker || cs[1].State != runtime.ContainerRunning {
		t.Errorf("containers after restart = %+v", cs)
	}
	st, err := rt2.ContainerStatus(testCtx(t), failed)
	if err != nil || st.ExitCode != 3 || st.Reason != "Error" || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("exited container after restart = %+v, %v: want exit 3, Error, its times", st, err)
	}
	after, err := rt2.ContainerStatus(testCtx(t), ticker)
	if err != nil || !after.StartedAt.Equal(before.StartedAt) || after.State != runtime.ContainerRunning {
		t.Errorf("running container after restart = %+v, %v; before %+v", after, err, before)
	}
}

// TestDaemonRestartKeepsContainers: containerd itself restarting (the
// Daemon supervising it) stops no container.
func TestDaemonRestartKeepsContainers(t *testing.T) {
	requireIntegration(t)
	dir := fmt.Sprintf("/tmp/skiff-test-ctrd-%d-r", os.Getpid())
	e, err := startEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
	rt := e.newRuntime(t)
	_, id := startIn(t, rt, "survivor", runtime.ContainerConfig{Command: []string{"sleep", "3600"}})
	pid := e.daemonPID(t)
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p := e.daemonPID(t); p != 0 && p != pid && Serving(testCtx(t), e.daemon.Address()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd was not restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := rt.ContainerStatus(testCtx(t), id)
	if err != nil || st.State != runtime.ContainerRunning {
		t.Errorf("container after containerd restarted = %+v, %v: want Running", st, err)
	}
	if got := execOut(t, rt, id, "echo", "still here"); got != "still here" {
		t.Errorf("exec after the restart: %q", got)
	}
}

// daemonPID finds the containerd serving e's directory (0: none).
func (e *testEnv) daemonPID(t *testing.T) int {
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		b, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && strings.HasSuffix(args[0], "containerd") && slices.Contains(args, e.dir+"/config.toml") {
			var pid int
			fmt.Sscan(ent.Name(), &pid)
			return pid
		}
	}
	return 0
}

// TestExecTTY: a terminal, resized while the command runs.
func TestExecTTY(t *testing.T) {
	rt := sharedEnv(t).newRuntime(t)
	_, id := startIn(t, rt, "tty", runtime.ContainerConfig{Command: []string{"sleep", "3600"}})
	resize := make(chan runtime.TermSize, 1)
	resize <- runtime.TermSize{Width: 100, Height: 30}
	var out bytes.Buffer
	code, err := rt.Exec(testCtx(t), id, runtime.ExecRequest{Cmd: []string{"sh", "-c", "sleep 0.5; test -t 1 && stty size"},
		Stdout: &out, TTY: true, Resize: resize})
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "30 100" {
		t.Errorf("exec with a TTY = %d, %v, %q: want 0, \"30 100\"", code, err, out.String())
	}
}

// TestCancelledExecIsKilled: cancelling the context ends the process.
func TestCancelledExecIsKilled(t *testing.T) {
	rt := sharedEnv(t).newRuntime(t)
	_, id := startIn(t, rt, "cancel", runtime.ContainerConfig{Command: []string{"sleep", "3600"}})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := rt.Exec(ctx, id, runtime.ExecRequest{Cmd: []string{"sleep", "60"}})
	if err == nil || time.Since(began) > 10*time.Second {
		t.Fatalf("cancelled exec = %v after %v: want an error, soon", err, time.Since(began))
	}
	for line := range strings.Lines(execOut(t, rt, id, "ps", "-o", "args")) {
		if strings.TrimSpace(line) == "sleep 60" {
			t.Errorf("the cancelled exec's process still runs")
		}
	}
}
