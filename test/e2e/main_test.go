package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/test/e2e/harness"
)

// Set by TestMain.
var (
	repoRoot string
	skiffBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir, err := os.MkdirTemp("", "skiff-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if skiffBin, err = harness.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	removeStaleNetns()
	return m.Run()
}

// requireIntegration is true in CI: a missing prerequisite fails instead of
// degrading.
func requireIntegration() bool { return os.Getenv("SKIFF_REQUIRE_INTEGRATION") == "1" }

const netnsPrefix = "skiff-test-e2e-"

// canNetns reports whether the test can create network namespaces.
func canNetns() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	for _, c := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found", c)
		}
	}
	return nil
}

// removeStaleNetns deletes namespaces left behind by crashed runs.
func removeStaleNetns() {
	if canNetns() != nil {
		return
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), netnsPrefix) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

// env is one test's sandbox: its network namespace (when root) and the
// environment of the skiff processes it runs.
type env struct {
	t     *testing.T
	netns string // "" when running in the test's own namespace
	vars  []string
}

// newEnv creates the sandbox. As root every skiff process runs inside a
// fresh network namespace with only lo, so none can reach beyond it.
func newEnv(t *testing.T) *env {
	e := &env{t: t, vars: os.Environ()}
	if err := canNetns(); err != nil {
		if requireIntegration() {
			t.Fatalf("SKIFF_REQUIRE_INTEGRATION=1 but network namespaces are unavailable: %v", err)
		}
		t.Logf("running in the current network namespace (%v); skiff binds only 127.0.0.1", err)
		return e
	}
	e.netns = fmt.Sprintf("%s%d", netnsPrefix, os.Getpid())
	_ = exec.Command("ip", "netns", "del", e.netns).Run()
	for _, args := range [][]string{{"netns", "add", e.netns}, {"-n", e.netns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", e.netns).CombinedOutput(); err != nil {
			t.Errorf("remove netns %s: %v: %s", e.netns, err, out)
		}
	})
	return e
}

func (e *env) setenv(k, v string) { e.vars = append(e.vars, k+"="+v) }

// command builds a skiff command in the sandbox. nsenter execs skiff in
// place, so the process's PID is skiff's own.
func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if e.netns != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + e.netns, skiffBin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, skiffBin, args...)
	}
	cmd.Dir = repoRoot
	cmd.Env = e.vars
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// result is a finished command.
type result struct {
	stdout, stderr string
	err            error
}

// skiff runs a client command to completion.
func (e *env) skiff(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return result{out.String(), errOut.String(), err}
}

// mustSkiff runs a client command that must succeed.
func (e *env) mustSkiff(args ...string) string {
	e.t.Helper()
	r := e.skiff(args...)
	if r.err != nil {
		e.t.Fatalf("skiff %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// daemon is a long-running skiff process whose output is collected.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// start runs a long-running skiff command; t.Cleanup kills it by PID if the
// test has not stopped it.
func (e *env) start(name string, args ...string) *daemon {
	e.t.Helper()
	cmd := e.command(context.Background(), args...)
	d := &daemon{t: e.t, cmd: cmd, done: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	pw.Close()
	go func() {
		s := bufio.NewScanner(pr)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			d.mu.Lock()
			d.out.WriteString(s.Text() + "\n")
			d.mu.Unlock()
		}
		pr.Close()
	}()
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Kill()
			<-d.done
		}
		if e.t.Failed() {
			e.t.Logf("output of %s (pid %d):\n%s", name, cmd.Process.Pid, d.output())
		}
	})
	return d
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// waitOutput waits until the output contains s (after the first skip
// bytes), failing if the process exits first.
func (d *daemon) waitOutput(s string, skip int, timeout time.Duration) {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		out := d.output()
		if len(out) >= skip && strings.Contains(out[skip:], s) {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("process exited (%v) before printing %q:\n%s", d.err, s, d.output())
		case <-deadline:
			d.t.Fatalf("no %q within %v:\n%s", s, timeout, d.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for the process to exit, returning its
// error (nil: exit status 0).
func (d *daemon) stop(timeout time.Duration) error {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		d.t.Fatalf("process %d did not exit within %v of SIGTERM:\n%s", d.cmd.Process.Pid, timeout, d.output())
		return nil
	}
}
