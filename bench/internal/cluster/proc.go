package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Reaper owns the child processes and temporary directories of one
// benchmark run and ends them all in Close.
type Reaper struct {
	mu     sync.Mutex
	procs  []*Proc
	dirs   []string
	closed bool
	// spawn runs functions on one OS thread that never exits: the kernel
	// sends Pdeathsig when the thread that forked a child exits, not the
	// process, so every child is forked from this thread.
	spawn chan func()
	// Keep leaves the temporary directories (logs, data) in place.
	Keep bool
}

// NewReaper returns an empty Reaper. Call Close when done (defer it) and
// CloseOnSignal once, so an interrupted run leaves nothing behind.
func NewReaper() *Reaper {
	r := &Reaper{spawn: make(chan func())}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for f := range r.spawn {
			f()
		}
	}()
	return r
}

// CloseOnSignal closes the reaper and exits with status 130 when the
// program receives SIGINT, SIGTERM or SIGHUP.
func (r *Reaper) CloseOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-ch
		fmt.Fprintf(os.Stderr, "\n%v: stopping every process this benchmark started\n", s)
		r.Close()
		os.Exit(130)
	}()
}

// TempDir makes a directory the reaper removes on Close.
func (r *Reaper) TempDir(pattern string) (string, error) {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.dirs = append(r.dirs, d)
	r.mu.Unlock()
	return d, nil
}

// Close kills every process still running (SIGKILL, by PID), waits for
// them, and removes the temporary directories. It is safe to call twice.
func (r *Reaper) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	procs, dirs := r.procs, r.dirs
	r.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, d := range dirs {
		if r.Keep {
			fmt.Fprintf(os.Stderr, "kept %s\n", d)
			continue
		}
		os.RemoveAll(d)
	}
}

// Proc is one child process. Its output goes to a log file.
type Proc struct {
	Name    string
	Path    string
	Args    []string
	LogPath string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // set before exited is closed
}

// Start runs path with args, its stdout and stderr appended to logPath.
func (r *Reaper) Start(name, logPath, path string, args ...string) (*Proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("cluster: reaper is closed")
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The kernel kills the child if this process dies without running
	// Close (SIGKILL, a panic in another goroutine).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*")
	errc := make(chan error)
	r.spawn <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Path: path, Args: args, LogPath: logPath, cmd: cmd, log: lf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	r.procs = append(r.procs, p)
	return p, nil
}

// Restart starts the same command again (same name, arguments and log).
func (r *Reaper) Restart(p *Proc) (*Proc, error) {
	p.Kill()
	return r.Start(p.Name, p.LogPath, p.Path, p.Args...)
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the process (if it still runs) and waits until
// it has been reaped. os.Process signals through a pidfd, so a reused PID
// is never hit.
func (p *Proc) Kill() {
	if p.Running() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
}

// KillNoWait sends SIGKILL and returns at once.
func (p *Proc) KillNoWait() error { return p.cmd.Process.Signal(syscall.SIGKILL) }

// CPU returns the user+system CPU time the process has used so far.
func (p *Proc) CPU() (time.Duration, error) { return procCPU(p.PID()) }

// SelfCPU returns the CPU time of the calling process.
func SelfCPU() (time.Duration, error) { return procCPU(os.Getpid()) }

// clock ticks per second for /proc/PID/stat; 100 on every Linux port Go
// supports.
const clkTck = 100

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// Status returns the named fields of /proc/PID/status (e.g. "VmRSS",
// "VmHWM") in bytes.
func (p *Proc) Status(fields ...string) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, k := range fields {
		want[k] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[k] {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) != 2 || fs[1] != "kB" {
			return nil, fmt.Errorf("/proc/%d/status: unexpected %q", p.PID(), sc.Text())
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return nil, err
		}
		out[k] = n * 1024
	}
	return out, sc.Err()
}

// LogTail returns the last n lines of the process's log, for error
// messages.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when returned; a process started soon after binds them.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// LoopbackOnly returns an error unless hostport is a 127.0.0.1 address: a
// guard against ever sending benchmark traffic off the machine.
func LoopbackOnly(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("cluster: %q is not a loopback address; refusing", hostport)
	}
	return nil
}
