package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a detached process the lab started: enough to find it again
// from another process (PID and its start time, so a reused PID is not
// mistaken for it) and to start it again.
type Proc struct {
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"` // /proc/PID/stat field 22, in clock ticks since boot
	Args      []string `json:"args"`      // the command line, nsenter included
	Log       string   `json:"log"`
}

// startDetached starts args[0] with args[1:] in its own session, stdin
// from /dev/null, stdout and stderr appended to logPath, and does not wait
// for it: it outlives the caller.
func startDetached(args []string, logPath string, env []string) (Proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("lab: log file: %w", err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "=== %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("lab: start %s: %w", args[0], err)
	}
	pid := cmd.Process.Pid
	st, err := procStartTime(pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return Proc{}, fmt.Errorf("lab: start %s: %w", args[0], err)
	}
	// Reap it when it exits while this process lives (a test); the
	// command-line tool exits first and init reaps it.
	go cmd.Wait()
	return Proc{PID: pid, StartTime: st, Args: args, Log: logPath}, nil
}

// procStartTime reads a process's start time (clock ticks since boot).
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	if f[0] == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 overall
}

// Alive reports whether the process still runs (same PID, same start).
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := procStartTime(p.PID)
	return err == nil && st == p.StartTime
}

// signal sends sig to the process if it is still the one started.
func (p Proc) signal(sig syscall.Signal) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: signal %d to %d: %w", sig, p.PID, err)
	}
	return nil
}

// stop sends SIGTERM, and SIGKILL after grace, and waits until it is gone.
func (p Proc) stop(grace time.Duration) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(grace)
	for p.Alive() {
		if time.Now().After(deadline) {
			return p.kill()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p Proc) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: process %d still there 10s after SIGKILL", p.PID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

func sleepBrief() { time.Sleep(200 * time.Millisecond) }
