package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// prefix names everything a run creates: the network namespace
// (/run/netns/skiff-bench-dp-<pid>), the cgroup
// (/sys/fs/cgroup/unified/skiff-bench-dp-<pid>) and the bpffs mount
// (<tmp>/skiff-bench-dp-<pid>-bpffs).
const prefix = "skiff-bench-dp-"

const cgroupRoot = "/sys/fs/cgroup/unified"

// env is one run's namespace, cgroup and processes. Every child process
// is forked from a thread that sits in the namespace for the whole run,
// so children start there; their Pdeathsig kills them if the benchmark
// dies.
type env struct {
	name         string // netns name
	nsPath       string
	cgroup       string // where the eBPF programs attach
	clientCgroup string // its child, where load generators run
	bpffs        string

	spawn chan func()

	mu     sync.Mutex
	procs  []*child
	closed bool
}

// child is a process of the run.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    bytes.Buffer // stderr (and stdout when not read)
	exited chan struct{}
}

func newEnv() (*env, error) {
	removeStale()
	pid := os.Getpid()
	e := &env{name: fmt.Sprintf("%s%d", prefix, pid), spawn: make(chan func())}
	e.nsPath = "/run/netns/" + e.name
	if out, err := exec.Command("ip", "netns", "add", e.name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	ready := make(chan error)
	go e.spawner(ready)
	if err := <-ready; err != nil {
		e.close()
		return nil, err
	}
	e.cgroup = filepath.Join(cgroupRoot, e.name)
	e.clientCgroup = filepath.Join(e.cgroup, "clients")
	for _, d := range []string{e.cgroup, e.clientCgroup} {
		if err := os.Mkdir(d, 0o755); err != nil {
			e.close()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
	}
	e.bpffs = filepath.Join(os.TempDir(), e.name+"-bpffs")
	if err := os.Mkdir(e.bpffs, 0o700); err != nil {
		e.close()
		return nil, err
	}
	if err := unix.Mount("bpffs", e.bpffs, "bpf", 0, "mode=0700"); err != nil {
		e.close()
		return nil, fmt.Errorf("mount bpffs: %w", err)
	}
	return e, nil
}

// spawner puts its thread into the namespace for good and runs the
// functions sent to it there.
func (e *env) spawner(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread dies with the process
	err := func() error {
		f, err := os.Open(e.nsPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		if host, err := nsrun.InHostNetNS(); err != nil || host {
			return fmt.Errorf("spawner thread is not in the bench namespace (%v)", err)
		}
		return nil
	}()
	ready <- err
	if err != nil {
		return
	}
	for f := range e.spawn {
		f()
	}
}

// run runs a command inside the namespace and returns its output.
func (e *env) run(stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errc := make(chan error)
	e.spawn <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		return "", err
	}
	err := cmd.Wait()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (e *env) mustRun(name string, args ...string) string {
	out, err := e.run(nil, name, args...)
	if err != nil {
		fatal(err)
	}
	return out
}

// setup gives the namespace lo, the backends' addresses and the sysctls
// a load generator behind a proxy needs, set inside the namespace and
// checked against the machine's own (which must not change).
func (e *env) setup() error {
	hostTW, err := os.ReadFile("/proc/sys/net/ipv4/tcp_tw_reuse")
	if err != nil {
		return err
	}
	e.mustRun("ip", "link", "set", "lo", "up")
	for _, b := range backendAddrs {
		e.mustRun("ip", "addr", "add", b+"/32", "dev", "lo")
	}
	e.mustRun("sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1")
	e.mustRun("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000")
	if got := strings.TrimSpace(e.mustRun("sysctl", "-n", "net.ipv4.tcp_tw_reuse")); got != "1" {
		return fmt.Errorf("tcp_tw_reuse in the bench namespace is %s", got)
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_tw_reuse"); !bytes.Equal(now, hostTW) {
		return fmt.Errorf("the machine's own tcp_tw_reuse changed (%q -> %q): stopping", hostTW, now)
	}
	return nil
}

// start starts this binary in a role inside the namespace (in the client
// cgroup when inCgroup). Its stdout is returned for the caller to read.
func (e *env) start(role string, args any, inCgroup bool) (*child, io.ReadCloser, io.WriteCloser, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := json.Marshal(args)
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, argsEnv+"="+string(a), nsEnv+"="+e.nsPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if inCgroup {
		fd, err := unix.Open(e.clientCgroup, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, nil, err
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	c := &child{name: role, cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &c.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	errc := make(chan error)
	e.spawn <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		return nil, nil, nil, fmt.Errorf("start %s: %w", role, err)
	}
	go func() {
		cmd.Wait()
		close(c.exited)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, c)
	e.mu.Unlock()
	return c, stdout, stdin, nil
}

// startDaemon starts an external program (haproxy) inside the namespace.
func (e *env) startDaemon(name string, args ...string) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &c.out, &c.out
	errc := make(chan error)
	e.spawn <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		cmd.Wait()
		close(c.exited)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, c)
	e.mu.Unlock()
	return c, nil
}

// stop kills a child by PID and waits for it.
func (c *child) stop() {
	c.cmd.Process.Kill()
	<-c.exited
}

// readyLine waits for a child's first line ("ready").
func readyLine(c *child, stdout io.Reader) error {
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		select {
		case <-c.exited:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("%s: %q, %v: %s", c.name, line, err, c.out.String())
	}
	return nil
}

// close kills every child by PID and removes the namespace, the cgroup
// and the bpffs. Safe to call twice.
func (e *env) close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	procs := e.procs
	e.mu.Unlock()
	for _, c := range procs {
		c.stop()
	}
	if e.bpffs != "" {
		unix.Unmount(e.bpffs, unix.MNT_DETACH)
		os.Remove(e.bpffs)
	}
	for _, d := range []string{e.clientCgroup, e.cgroup} {
		if d != "" {
			removeCgroup(d)
		}
	}
	exec.Command("ip", "netns", "delete", e.name).Run()
}

func removeCgroup(dir string) {
	for range 100 {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) || !errors.Is(err, syscall.EBUSY) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeStale removes what runs that died without cleaning up left
// (their PID is gone).
func removeStale() {
	dead := func(name string) bool {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimSuffix(strings.TrimPrefix(name, prefix), "-bpffs"), "-", 2)[0])
		if err != nil {
			return false
		}
		err = syscall.Kill(pid, 0)
		return err != nil && !errors.Is(err, syscall.EPERM)
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(filepath.Base(f[4]), prefix) && dead(filepath.Base(f[4])) && strings.HasSuffix(f[4], "-bpffs") {
				unix.Unmount(f[4], unix.MNT_DETACH)
				os.Remove(f[4])
			}
		}
	}
	names, _ := filepath.Glob("/run/netns/" + prefix + "*")
	for _, p := range names {
		if dead(filepath.Base(p)) {
			exec.Command("ip", "netns", "delete", filepath.Base(p)).Run()
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, prefix+"*"))
	for _, d := range dirs {
		if dead(filepath.Base(d)) {
			os.Remove(filepath.Join(d, "clients"))
			os.Remove(d)
		}
	}
}
