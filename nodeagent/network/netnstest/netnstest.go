package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "skiff-test-net-"

// RequireEnv is the variable that turns a missing prerequisite into a
// failure instead of a skip.
const RequireEnv = "SKIFF_REQUIRE_INTEGRATION"

// Require skips the test (or fails it under SKIFF_REQUIRE_INTEGRATION=1)
// unless it runs as root with the ip tool, then removes stale namespaces
// of crashed runs. Extra names binaries the test needs besides ip.
func Require(t testing.TB, extra ...string) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root (network namespaces)"
	}
	for _, bin := range append([]string{"ip"}, extra...) {
		if missing != "" {
			break
		}
		if _, err := exec.LookPath(bin); err != nil {
			missing = bin + " in PATH"
		}
	}
	if missing != "" {
		Missing(t, missing)
	}
	RemoveStale(t)
}

// Missing skips the test for want, or fails it under
// SKIFF_REQUIRE_INTEGRATION=1.
func Missing(t testing.TB, want string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("integration prerequisite missing: %s (%s=1)", want, RequireEnv)
	}
	t.Skipf("needs %s; set %s=1 to make this a failure", want, RequireEnv)
}

// RemoveStale deletes namespaces named by this package whose creating
// process is gone: leftovers of a run that crashed before its cleanup.
func RemoveStale(t testing.TB) {
	t.Helper()
	names, _ := filepath.Glob("/run/netns/" + Prefix + "*")
	for _, p := range names {
		name := filepath.Base(p)
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, Prefix), "-", 2)[0])
		if err != nil || alive(pid) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Logf("remove stale netns %s: %v: %s", name, err, out)
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

var seq atomic.Int64

// NS is a network namespace a test created.
type NS struct {
	Name string // the name ip netns knows it by
	Path string // /run/netns/<Name>
}

// New creates a network namespace with lo up and deletes it when the test
// ends. The namespace has no interface but lo: nothing in it reaches off
// the machine until the test adds links.
func New(t testing.TB) NS {
	t.Helper()
	name := fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := NS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Error(err)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// Delete deletes the namespace now (a test that removes a sandbox's
// namespace under the network); deleting it again does nothing.
func (ns NS) Delete() error {
	if _, err := os.Stat(ns.Path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", ns.Name, err, out)
	}
	return nil
}

// IP runs `ip -n <ns> args...` and fails the test on error.
func (ns NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Do runs fn inside the namespace, after checking that the thread is in
// it and not in the machine's own namespace (lab rule 3: traffic a test
// sends must never start there).
func (ns NS) Do(fn func() error) error {
	want, err := os.Stat(ns.Path)
	if err != nil {
		return fmt.Errorf("netnstest: %w", err)
	}
	return nsrun.Do(ns.Path, func() error {
		self, err := os.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
		if err != nil {
			return fmt.Errorf("netnstest: own netns: %w", err)
		}
		host, err := nsrun.InHostNetNS()
		if err != nil {
			return err
		}
		if host || !os.SameFile(self, want) {
			return fmt.Errorf("netnstest: thread is not in %s: refusing to run", ns.Name)
		}
		return fn()
	})
}
