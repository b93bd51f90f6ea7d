package bpf

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The privileged tests of this package run the datapath for real, and only
// ever on objects they create (lab safety rules):
//   - a cgroup v2 directory /sys/fs/cgroup/unified/skiff-test-bpf-<pid>-<n>
//     (the programs attach there, never at the root), with the client in a
//     child cgroup of it, as a container is below the agent's cgroup;
//   - a network namespace skiff-test-bpf-<pid>-<n> with the backends'
//     addresses on its lo and no route off the machine;
//   - a bpffs mounted at a temporary directory for the pins.
// The client is this test binary re-executed (testClientEnv) through
// nsenter --net into the namespace, started into the child cgroup
// (CLONE_INTO_CGROUP). Leftovers of a crashed run (its pid is gone) are
// removed first.

const (
	testPrefix    = "skiff-test-bpf-"
	cgroupV2Root  = "/sys/fs/cgroup/unified"
	testClientEnv = "SKIFF_BPF_TEST_CLIENT"
	// The client checks it runs in this namespace, and not in this one.
	testNetnsEnv       = "SKIFF_BPF_TEST_NETNS"
	testParentNetnsEnv = "SKIFF_BPF_TEST_PARENT_NETNS"
)

func TestMain(m *testing.M) {
	if os.Getenv(testClientEnv) == "1" {
		os.Exit(clientMain())
	}
	os.Exit(m.Run())
}

// needIntegration skips the test with why, or fails it when
// SKIFF_REQUIRE_INTEGRATION=1 (CI) says the prerequisites must be there.
func needIntegration(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("SKIFF_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("SKIFF_REQUIRE_INTEGRATION=1 but %s", why)
	}
	t.Skip(why)
}

var (
	leftoversOnce sync.Once
	testSeq       atomic.Int64
)

// requirePrivileged checks for root, cgroup v2 at cgroupV2Root, ip and
// nsenter, and removes leftovers of crashed runs once.
func requirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		needIntegration(t, "the datapath tests need root (BPF, cgroups, network namespaces)")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupV2Root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		needIntegration(t, "no cgroup v2 hierarchy at "+cgroupV2Root)
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			needIntegration(t, tool+" not found (test/deps.sh installs it)")
		}
	}
	leftoversOnce.Do(func() { removeLeftovers(t) })
}

func uniqueName() string {
	return fmt.Sprintf("%s%d-%d", testPrefix, os.Getpid(), testSeq.Add(1))
}

// ownerAlive reports whether the test process that named name still runs.
func ownerAlive(name string) bool {
	rest, ok := strings.CutPrefix(name, testPrefix)
	if !ok {
		return true
	}
	pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
	if err != nil {
		return true
	}
	return pid == os.Getpid() || unix.Kill(pid, 0) == nil
}

func removeLeftovers(t testing.TB) {
	// Pins first: dropping a bpffs drops its links, which detaches the
	// programs from the old cgroups.
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || !strings.Contains(f[4], testPrefix) || ownerAlive(filepath.Base(filepath.Dir(f[4]))) {
				continue
			}
			if err := unix.Unmount(f[4], unix.MNT_DETACH); err == nil {
				t.Logf("removed leftover mount %s", f[4])
				os.RemoveAll(filepath.Dir(f[4]))
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], testPrefix) && !ownerAlive(f[0]) {
				if exec.Command("ip", "netns", "del", f[0]).Run() == nil {
					t.Logf("removed leftover netns %s", f[0])
				}
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(cgroupV2Root, testPrefix+"*"))
	for _, dir := range dirs {
		if !ownerAlive(filepath.Base(dir)) {
			if err := removeCgroup(dir); err == nil {
				t.Logf("removed leftover cgroup %s", dir)
			}
		}
	}
}

// removeCgroup kills what still runs in dir and below (a client of a
// crashed run of these tests) and removes the directories, deepest first.
func removeCgroup(dir string) error {
	var dirs []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if procs, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(f); err == nil {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
	}
	var err error
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 50; try++ {
			if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond) // killed processes leave the cgroup asynchronously
		}
	}
	return err
}

// testCgroup creates the attach cgroup and a child cgroup for the client.
func testCgroup(t testing.TB) (attach, child string) {
	t.Helper()
	attach = filepath.Join(cgroupV2Root, uniqueName())
	child = filepath.Join(attach, "pod-client")
	if err := os.Mkdir(attach, 0o755); err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := removeCgroup(attach); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	return attach, child
}

// testBPFFS mounts a private bpffs for the test's pins.
func testBPFFS(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), uniqueName())
	mnt := filepath.Join(dir, "bpffs")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatalf("bpffs: %v", err)
	}
	if err := unix.Mount("bpffs", mnt, "bpf", 0, "mode=0700"); err != nil {
		os.RemoveAll(dir)
		needIntegration(t, "cannot mount a bpffs: "+err.Error())
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount test bpffs: %v", err)
		}
		os.RemoveAll(dir)
	})
	return filepath.Join(mnt, "skiff")
}

// testNetns creates a network namespace with lo up and addrs on lo.
func testNetns(t testing.TB, addrs ...string) (name, path string) {
	t.Helper()
	name = uniqueName()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		needIntegration(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	run := func(args ...string) {
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	run("link", "set", "lo", "up")
	for _, a := range addrs {
		run("addr", "add", a+"/32", "dev", "lo")
	}
	return name, "/run/netns/" + name
}

// env is one test's datapath world.
type env struct {
	t      testing.TB
	cfg    Config
	child  string // cgroup of the client
	netns  string // path
	dp     *Datapath
	closed bool
}

var backendAddrs = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}

func newEnv(t testing.TB) *env {
	t.Helper()
	requirePrivileged(t)
	attach, child := testCgroup(t)
	pins := testBPFFS(t)
	_, nsPath := testNetns(t, backendAddrs...)
	e := &env{t: t, child: child, netns: nsPath}
	e.cfg = Config{
		PinDir:     pins,
		CgroupPath: attach,
		NetnsPaths: func() ([]string, error) { return []string{nsPath}, nil },
		Logger:     testLogger(t),
	}
	e.open()
	t.Cleanup(func() {
		if err := Cleanup(e.cfg); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	dp, err := Open(e.cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.dp = dp
	e.t.Cleanup(func() { dp.Close() })
}

func (e *env) sync(services ...Service) SyncStats {
	e.t.Helper()
	st, err := e.dp.Sync(services)
	if err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return st
}

// backends serves TCP and UDP on port at each address, inside the netns:
// a TCP connection first gets "addr:port\n", then its lines echoed; a UDP
// datagram gets "addr:port" back.
func (e *env) backends(port uint16, addrs ...string) []Backend {
	e.t.Helper()
	var out []Backend
	for _, a := range addrs {
		ap := netip.AddrPortFrom(netip.MustParseAddr(a), port)
		var (
			ln  net.Listener
			pc  net.PacketConn
			err error
		)
		err = inNetns(e.netns, func() error {
			if ln, err = net.Listen("tcp4", ap.String()); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp4", ap.String())
			return err
		})
		if err != nil {
			e.t.Fatalf("backend %s: %v", ap, err)
		}
		e.t.Cleanup(func() { ln.Close(); pc.Close() })
		go serveTCP(ln, ap.String())
		go serveUDP(pc, ap.String())
		out = append(out, Backend{Addr: ap.Addr(), Port: port})
	}
	return out
}

// serveTCP and serveUDP end when the test closes their sockets.
func serveTCP(ln net.Listener, id string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s\n", id)
			io.Copy(c, c)
		}()
	}
}

func serveUDP(pc net.PacketConn, id string) {
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo([]byte(id), from)
	}
}

// client is the re-executed test binary in the test's netns and child
// cgroup, driven by one JSON request per line.
type client struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (e *env) client() *client {
	e.t.Helper()
	cg, err := os.Open(e.child)
	if err != nil {
		e.t.Fatalf("open client cgroup: %v", err)
	}
	defer cg.Close()
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+e.netns, "--", self)
	parentNetns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), testClientEnv+"=1", testNetnsEnv+"="+e.netns, testParentNetnsEnv+"="+parentNetns)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start client: %v", err)
	}
	c := &client{t: e.t, cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	c.out.Buffer(nil, 16<<20)
	e.t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return c
}

// do sends one request and returns the client's answer.
func (c *client) do(req request) response {
	c.t.Helper()
	line, _ := json.Marshal(req)
	if _, err := c.in.Write(append(line, '\n')); err != nil {
		c.t.Fatalf("client: %v", err)
	}
	if !c.out.Scan() {
		c.t.Fatalf("client exited: %v", c.out.Err())
	}
	var resp response
	if err := json.Unmarshal(c.out.Bytes(), &resp); err != nil {
		c.t.Fatalf("client answer %q: %v", c.out.Text(), err)
	}
	if resp.Fatal != "" {
		c.t.Fatalf("client: %s", resp.Fatal)
	}
	return resp
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
