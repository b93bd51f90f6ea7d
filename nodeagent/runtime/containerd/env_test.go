package containerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/nodeagent/runtime/containerd/logdriver"
	"github.com/skiffhq/skiff/test/imagebuild"
)

// The integration tests share one containerd (started through Daemon)
// and give each runtime a namespace of its own. Everything they make is
// named skiff-test-*: the daemon's directory /tmp/skiff-test-ctrd-<pid>,
// namespaces skiff-test-<random>, the cgroup parent /skiff-test-<pid>.
// Leftovers of a run that crashed are removed when the next one starts.

const testImage = "localhost/skiff-test/busybox:1"

func TestMain(m *testing.M) {
	// The shim runs this binary as the containers' log driver.
	if len(os.Args) > 1 && os.Args[1] == logdriver.Subcommand {
		logdriver.Main(os.Args[2:])
	}
	code := m.Run()
	if shared.env != nil {
		shared.env.stop()
	}
	os.Exit(code)
}

// requireIntegration skips the test when this machine cannot run
// containers, or fails it when SKIFF_REQUIRE_INTEGRATION=1 (CI).
func requireIntegration(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if !imagebuild.HaveBusybox() {
		missing = append(missing, "a static busybox ("+imagebuild.DefaultBusybox+")")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("needs %s (test/deps.sh installs them; run as root)", strings.Join(missing, ", "))
	if os.Getenv("SKIFF_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg + "; SKIFF_REQUIRE_INTEGRATION=1 forbids skipping")
	}
	t.Skip(msg)
}

type testEnv struct {
	dir          string
	daemon       *Daemon
	cancel       context.CancelFunc
	done         chan error
	archive      []byte
	cgroupParent string
}

var shared struct {
	once sync.Once
	env  *testEnv
	err  error
}

// sharedEnv starts the package's containerd once.
func sharedEnv(t testing.TB) *testEnv {
	t.Helper()
	requireIntegration(t)
	shared.once.Do(func() {
		removeStale()
		shared.env, shared.err = startEnv(fmt.Sprintf("/tmp/skiff-test-ctrd-%d", os.Getpid()))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.env
}

func startEnv(dir string) (*testEnv, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	d, err := NewDaemon(DaemonConfig{Dir: dir, KillWithParent: true, StopTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEnv{dir: dir, daemon: d, cancel: cancel, done: make(chan error, 1),
		cgroupParent: fmt.Sprintf("/skiff-test-%d", os.Getpid())}
	go func() { e.done <- d.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := d.WaitReady(wctx, e.done); err != nil {
		cancel()
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := imagebuild.Busybox(&buf, testImage); err != nil {
		e.stop()
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	e.archive = buf.Bytes()
	return e, nil
}

// stop purges every namespace the tests left (a safety net: each
// runtime purges its own), stops the daemon and removes its directory. If
// the purge fails the directory stays for the next run's removeStale,
// which retries through a daemon of its own.
func (e *testEnv) stop() {
	err := purgeAll(context.Background(), e.daemon.Address(), filepath.Join(e.dir, "run"))
	e.cancel()
	<-e.done
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd tests: leftovers in %s not removed: %v\n", e.dir, err)
		return
	}
	cleanupDir(e.dir)
	removeCgroupTree(e.cgroupParent)
}

// purgeAll purges every namespace of the daemon at address.
func purgeAll(ctx context.Context, address, stateDir string) error {
	c, err := containerd.New(address)
	if err != nil {
		return err
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(namespaces.WithNamespace(ctx, "default"))
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		rt, err := New(Config{Address: address, Namespace: ns, StateDir: stateDir})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, rt.purge(ctx))
		rt.Close()
	}
	return errors.Join(errs...)
}

// newRuntime returns a runtime on a fresh namespace of the shared daemon
// with the busybox image imported; the namespace goes at cleanup.
func (e *testEnv) newRuntime(t testing.TB) *Runtime {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(Config{
		Address:      e.daemon.Address(),
		Namespace:    "skiff-test-" + newID()[:12],
		CgroupParent: e.cgroupParent,
		StateDir:     filepath.Join(e.dir, "run"),
		LogDriver:    exe,
		DialTimeout:  2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.purge(context.Background()); err != nil {
			t.Errorf("cleanup of namespace %s: %v", rt.Namespace(), err)
		}
		rt.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.ImportImages(ctx, bytes.NewReader(e.archive)); err != nil {
		t.Fatalf("import busybox: %v", err)
	}
	return rt
}

// purge removes everything of the runtime's namespace, and the namespace.
func (r *Runtime) purge(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(r.ns(ctx), time.Minute)
	defer cancel()
	var errs []error
	sbs, err := r.ListSandboxes(ctx)
	errs = append(errs, err)
	for _, sb := range sbs {
		errs = append(errs, r.RemoveSandbox(ctx, sb.ID))
	}
	// Whatever is left: containers without a sandbox, records of any kind.
	cs, err := r.client.Containers(ctx)
	errs = append(errs, err)
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			_, err = t.Delete(ctx, containerd.WithProcessKill)
			errs = append(errs, ignoreNotFound(err))
		}
		errs = append(errs, ignoreNotFound(c.Delete(ctx, containerd.WithSnapshotCleanup)))
	}
	imgs, err := r.client.ImageService().List(ctx)
	errs = append(errs, err)
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete()) // collects content and snapshots
		}
		errs = append(errs, ignoreNotFound(r.client.ImageService().Delete(ctx, img.Name, opts...)))
	}
	// Leases of an import or unpack that was interrupted hold content and
	// snapshots (for a day by default): they go, then any snapshot left.
	ls, err := r.client.LeasesService().List(ctx)
	errs = append(errs, err)
	for _, l := range ls {
		errs = append(errs, ignoreNotFound(r.client.LeasesService().Delete(ctx, l, leases.SynchronousDelete)))
	}
	sn := r.client.SnapshotService(r.cfg.Snapshotter)
	for range 10 { // children before parents: a pass removes the leaves
		var keys []string
		if err := sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error { keys = append(keys, i.Name); return nil }); err != nil {
			errs = append(errs, err)
			break
		}
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			sn.Remove(ctx, k)
		}
	}
	// Content and snapshots go with the collection; the namespace can be
	// deleted once they are gone. runc's state directory of the namespace
	// (under /run/containerd whatever the daemon's state dir) goes too.
	for try := 0; ; try++ {
		err := r.client.NamespaceService().Delete(ctx, r.cfg.Namespace)
		if err == nil || errdefs.IsNotFound(err) {
			os.Remove(filepath.Join("/run/containerd/runc", r.cfg.Namespace))
			break
		}
		if try == 50 {
			errs = append(errs, fmt.Errorf("delete namespace: %w", err))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// alive reports whether process pid runs (a zombie does not: nothing
// may reap a killed test run whose parent is gone).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// removeStale removes what crashed runs left: daemons' directories
// (their namespaces purged through a daemon started on them, then any
// mount under them) and cgroups.
func removeStale() {
	dirs, _ := filepath.Glob("/tmp/skiff-test-ctrd-*")
	for _, dir := range dirs {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), "skiff-test-ctrd-"), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue // not ours to judge, or its run is still going
		}
		if purgeDir(dir) {
			cleanupDir(dir)
		}
	}
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		stale, _ := filepath.Glob(filepath.Join(m.dir, "skiff-test-*"))
		for _, dir := range stale {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "skiff-test-"))
			if err != nil || alive(pid) {
				continue
			}
			rmdirTree(dir)
		}
	}
}

// purgeDir starts a daemon on a stale directory and purges it, so its
// shims and containers end; it reports whether that worked.
func purgeDir(dir string) bool {
	d, err := NewDaemon(DaemonConfig{Dir: dir, KillWithParent: true, StopTimeout: 5 * time.Second})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if d.WaitReady(wctx, done) != nil {
		return false
	}
	return purgeAll(ctx, d.Address(), filepath.Join(dir, "run")) == nil
}

// cleanupDir unmounts whatever is mounted under dir (network namespaces,
// root filesystems) and removes it.
func cleanupDir(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err == nil {
		var targets []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 && strings.HasPrefix(unescapeMount(fields[4]), dir+"/") {
				targets = append(targets, unescapeMount(fields[4]))
			}
		}
		f.Close()
		for i := len(targets) - 1; i >= 0; i-- {
			unix.Unmount(targets[i], unix.MNT_DETACH)
		}
	}
	os.RemoveAll(dir)
}

func removeCgroupTree(rel string) {
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		rmdirTree(filepath.Join(m.dir, rel))
	}
}
