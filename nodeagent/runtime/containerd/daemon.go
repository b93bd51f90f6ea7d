package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// DaemonConfig configures a private containerd.
type DaemonConfig struct {
	// Dir holds everything of the daemon: config.toml, root/, state/,
	// opt/, containerd.sock and containerd.log. Its socket path must fit a
	// unix socket address (about 100 bytes).
	Dir string
	// Binary is the containerd executable (default: "containerd" in PATH).
	Binary string
	// LogLevel is containerd's log level (default "warn").
	LogLevel string
	// KillWithParent makes the kernel kill the daemon when the process
	// that runs it dies (tests, so a crashed run leaves no daemon). A dev
	// cluster leaves it off: a daemon that outlives a crashed agent keeps
	// serving its containers and the next agent adopts it.
	KillWithParent bool
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL
	// (default 10 s).
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// Daemon runs and supervises a containerd process with its own config:
// root, state and sockets under one directory, the CRI plugin off. The
// shims it starts (and so the containers) outlive it; a restarted daemon
// on the same directory finds them again.
type Daemon struct {
	cfg   DaemonConfig
	ready chan struct{} // closed when the socket first answers
}

// NewDaemon returns a daemon that Run starts.
func NewDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Dir == "" {
		return nil, errors.New("containerd daemon: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("containerd daemon: %w", err)
	}
	cfg.Dir = dir
	if n := len(filepath.Join(dir, "containerd.sock.ttrpc")); n > 100 {
		return nil, fmt.Errorf("containerd daemon: directory %s is too long for a socket path (%d bytes)", dir, n)
	}
	if cfg.Binary == "" {
		cfg.Binary = "containerd"
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Daemon{cfg: cfg, ready: make(chan struct{})}, nil
}

// Address is the daemon's gRPC socket.
func (d *Daemon) Address() string { return filepath.Join(d.cfg.Dir, "containerd.sock") }

// Ready is closed once the daemon first answers on its socket.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// WaitReady waits until the daemon answers, ctx ends, or run (the
// channel Run's result is sent on) reports that Run ended.
func (d *Daemon) WaitReady(ctx context.Context, run <-chan error) error {
	select {
	case <-d.ready:
		return nil
	case err := <-run:
		if err == nil {
			err = errors.New("stopped")
		}
		return fmt.Errorf("containerd daemon: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("containerd daemon: waiting for %s: %w", d.Address(), ctx.Err())
	}
}

func (d *Daemon) configTOML() string {
	q := func(p string) string { return fmt.Sprintf("%q", filepath.Join(d.cfg.Dir, p)) }
	return strings.Join([]string{
		"# Written by skiff: a private containerd for the node agent.",
		"version = 2",
		"root = " + q("root"),
		"state = " + q("state"),
		`disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]`,
		"",
		"[grpc]",
		"  address = " + q("containerd.sock"),
		"[ttrpc]",
		"  address = " + q("containerd.sock.ttrpc"),
		"[debug]",
		fmt.Sprintf("  level = %q", d.cfg.LogLevel),
		`[plugins."io.containerd.internal.v1.opt"]`,
		"  path = " + q("opt"),
		"",
	}, "\n")
}

// Run starts containerd, restarts it whenever it dies (with back-off)
// and stops it (SIGTERM, then SIGKILL) when ctx ends; it returns then, or
// when the daemon cannot be started at all.
func (d *Daemon) Run(ctx context.Context) error {
	// The daemon is forked from this thread; with KillWithParent the
	// kernel signals it when the thread (not the process) ends, so the
	// thread must not end or be reused while the daemon runs.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()

	if err := os.MkdirAll(d.cfg.Dir, 0o711); err != nil {
		return fmt.Errorf("containerd daemon: %w", err)
	}
	config := filepath.Join(d.cfg.Dir, "config.toml")
	if err := os.WriteFile(config, []byte(d.configTOML()), 0o644); err != nil {
		return fmt.Errorf("containerd daemon: %w", err)
	}
	binary, err := exec.LookPath(d.cfg.Binary)
	if err != nil {
		return fmt.Errorf("containerd daemon: %w", err)
	}
	backoff := 100 * time.Millisecond
	for {
		started := time.Now()
		exited, pid, err := d.start(binary, config)
		if err != nil {
			return err
		}
		d.cfg.Logger.Info("containerd started", "pid", pid, "address", d.Address())
		waitErr := d.supervise(ctx, exited)
		if ctx.Err() != nil {
			d.stop(pid, exited)
			return nil
		}
		if time.Since(started) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		d.cfg.Logger.Warn("containerd exited; restarting", "pid", pid, "err", waitErr, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// start forks the daemon; exited reports its end.
func (d *Daemon) start(binary, config string) (<-chan error, int, error) {
	logFile, err := os.OpenFile(filepath.Join(d.cfg.Dir, "containerd.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("containerd daemon: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "--config", config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if d.cfg.KillWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	// The kernel sends Pdeathsig when the thread that forked the child
	// exits, not the process, and Go retires threads (one locked by a
	// goroutine that ends, as network namespace setup does). Fork from a
	// thread locked for the daemon's whole life, so only this process's
	// death kills it.
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread goes when the daemon has
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait() // ends when the daemon does
	}()
	if err := <-started; err != nil {
		return nil, 0, fmt.Errorf("containerd daemon: start %s: %w", binary, err)
	}
	return exited, cmd.Process.Pid, nil
}

// supervise waits for the daemon to answer (closing ready the first time)
// and then for it to exit or ctx to end.
func (d *Daemon) supervise(ctx context.Context, exited <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for answered := false; !answered; {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before it served: %v (see %s)", err, filepath.Join(d.cfg.Dir, "containerd.log"))
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if Serving(ctx, d.Address()) {
				answered = true
			}
		}
	}
	select {
	case <-d.ready:
	default:
		close(d.ready)
	}
	select {
	case err := <-exited:
		return err
	case <-ctx.Done():
		return nil
	}
}

// stop ends the daemon: SIGTERM, then SIGKILL after StopTimeout.
func (d *Daemon) stop(pid int, exited <-chan error) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(d.cfg.StopTimeout):
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-exited
}

// Serving reports whether a containerd answers on address.
func Serving(ctx context.Context, address string) bool {
	// A socket file nobody listens on (a killed daemon's) refuses at once,
	// where the gRPC client would retry until its timeout: a restarting
	// agent would lose a second here, and another while its new daemon
	// starts.
	conn, err := net.DialTimeout("unix", address, 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := containerd.New(address, containerd.WithTimeout(time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	return err == nil && ok
}
