package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/skiffhq/skiff/bpf"
	"github.com/skiffhq/skiff/client"
)

// Kill sends SIGKILL to a machine's daemon and waits until it is gone. A
// node's pods keep running (their shims outlive the agent).
func (l *Lab) Kill(name string) error {
	m, err := l.Machine(name)
	if err != nil {
		return err
	}
	return m.Proc.kill()
}

// Stop stops a machine's daemon: SIGTERM, SIGKILL after 15 s.
func (l *Lab) Stop(name string) error {
	m, err := l.Machine(name)
	if err != nil {
		return err
	}
	return m.Proc.stop(15 * time.Second)
}

// Start starts a machine's daemon again (after Kill or Stop) with its
// command line; it keeps its data directory. It does nothing if the
// daemon runs.
func (l *Lab) Start(name string) error {
	m, err := l.Machine(name)
	if err != nil {
		return err
	}
	if m.Proc.Alive() {
		return nil
	}
	p, err := startDetached(m.Proc.Args, l.logPath(m), nil)
	if err != nil {
		return err
	}
	m.Proc = p
	return l.save()
}

// Running reports whether a machine's daemon runs.
func (l *Lab) Running(name string) bool {
	m, err := l.Machine(name)
	return err == nil && m.Proc.Alive()
}

// Cut takes a machine off the LAN (its cable pulled: the LAN side of its
// veth down); Heal puts it back.
func (l *Lab) Cut(name string) error { return l.cable(name, false) }

// Heal reconnects a machine cut off by Cut.
func (l *Lab) Heal(name string) error { return l.cable(name, true) }

func (l *Lab) cable(name string, up bool) error {
	m, err := l.Machine(name)
	if err != nil {
		return err
	}
	return setCable(l.LAN, m.Name, up)
}

// Command returns a command that runs args inside a machine's network
// namespace (nsenter, so bpffs and cgroup mounts stay visible).
func (l *Lab) Command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	m, err := l.Machine(name)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("lab: exec on %s: no command", name)
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + m.NetnsPath(), "--"}, args...)...), nil
}

// Leader asks the servers (through the forwarder) which one leads.
func (l *Lab) Leader(ctx context.Context) (string, error) {
	c, err := l.Client(client.WithTimeout(2 * time.Second))
	if err != nil {
		return "", err
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return "", err
	}
	if ms.Leader == "" {
		return "", fmt.Errorf("lab: no leader (asked %s)", ms.Server)
	}
	return ms.Leader, nil
}

// MachineStatus is one line of `skiff lab status`.
type MachineStatus struct {
	Machine *Machine
	Running bool
	// Cut: its cable is down.
	Cut bool
	// Detail: a server's Raft role, a node's Ready condition.
	Detail string
}

// Drop makes a machine lose share (0 to 1) of its packets, both ways, with
// a tc BPF program on its eth0 (pinned under the lab's bpffs directory,
// so it outlives this process); share 0 removes it.
func (l *Lab) Drop(name string, share float64) error {
	m, err := l.Machine(name)
	if err != nil {
		return err
	}
	cfg := bpf.DropConfig{NetnsPath: m.NetnsPath(), Interface: machineIf, PinDir: filepath.Join(l.pinRoot(), "drop-"+m.Name)}
	if share == 0 {
		return bpf.ClearDrop(cfg)
	}
	return bpf.SetDrop(cfg, share)
}
