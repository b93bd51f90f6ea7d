package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bench/internal/cluster"
	"github.com/skiffhq/skiff/client"
)

// node is the running cluster: a control plane and one real node.
type node struct {
	sb           sandbox
	controlPlane *cluster.Proc
	agent        *cluster.Proc
	client       *client.Client
	name         string
}

// startNode starts `skiff dev --node=false` and a `skiff agent` joined to
// it, and returns once the node is Ready. Both are owned by r.
func startNode(ctx context.Context, r *cluster.Reaper, o options, sb sandbox) (*node, error) {
	cpDir := filepath.Join(sb.dir, "controlplane")
	cp, err := r.Start("skiff dev", filepath.Join(sb.dir, "controlplane.log"), o.bin,
		"dev", "--node=false", "--data-dir", cpDir, "--api-addr", "127.0.0.1:0", "--log-level", o.logLevel)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(cpDir, "admin.conf")
	c, err := waitControlPlane(ctx, cp, conf, 60*time.Second)
	if err != nil {
		return nil, err
	}
	for _, s := range c.Servers() {
		if err := cluster.LoopbackOnly(strings.TrimPrefix(s, "https://")); err != nil {
			return nil, err
		}
	}
	tok, err := c.CreateToken(ctx, client.TokenRequest{Usage: "agent", TTL: "2h", Description: "bench/podstart"})
	if err != nil {
		return nil, fmt.Errorf("create an agent token: %w", err)
	}
	ports, err := cluster.FreePorts(1)
	if err != nil {
		return nil, err
	}
	n := &node{sb: sb, controlPlane: cp, client: c, name: sb.nodeName()}
	// The Go runtime's GC trace in the agent's log shows its live heap,
	// which the RSS reading is compared with.
	if err := os.Setenv("GODEBUG", "gctrace=1"); err != nil {
		return nil, err
	}
	n.agent, err = r.Start("skiff agent", filepath.Join(sb.dir, "agent.log"), o.bin,
		"agent", "--server", strings.Join(c.Servers(), ","), "--token", tok.Token,
		"--node-name", n.name, "--data-dir", sb.agentDir(), "--cgroup-parent", sb.cgroupParent(),
		"--containerd-namespace", sb.containerdNamespace(), "--port", strconv.Itoa(ports[0]),
		"--import-image", o.image, "--log-level", o.logLevel)
	os.Unsetenv("GODEBUG")
	if err != nil {
		return nil, err
	}
	if err := n.waitReady(ctx, 120*time.Second); err != nil {
		return nil, err
	}
	return n, nil
}

// waitControlPlane waits for admin.conf and an answering API.
func waitControlPlane(ctx context.Context, cp *cluster.Proc, conf string, timeout time.Duration) (*client.Client, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if !cp.Running() {
			return nil, fmt.Errorf("skiff dev exited\n%s", cp.LogTail(30))
		}
		if cfg, err := client.LoadConfig(conf); err == nil {
			c, err := client.New(*cfg, client.WithTimeout(30*time.Second))
			if err == nil {
				if _, err = c.List(ctx, api.KindNode, client.ListOptions{}); err == nil {
					return c, nil
				}
			}
			last = err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the control plane is not ready after %v (last error: %v)\n%s", timeout, last, cp.LogTail(30))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// waitReady waits until the node reports Ready.
func (n *node) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if !n.agent.Running() {
			return fmt.Errorf("skiff agent exited\n%s", n.agent.LogTail(30))
		}
		o, err := n.client.Get(ctx, api.KindNode, "", n.name)
		if err == nil {
			for _, c := range o.(*api.Node).Status.Conditions {
				if c.Type == api.NodeReady && c.Status == api.ConditionTrue {
					return nil
				}
			}
			err = fmt.Errorf("node %s not Ready yet", n.name)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready after %v (last: %v)\n%s", n.name, timeout, last, n.agent.LogTail(30))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// procs finds the node's processes by role (see nodeProcs).
func (n *node) procs() map[group][]int {
	return nodeProcs(n.agent.PID(), n.controlPlane.PID(), n.sb.containerdSocket(), n.sb.cgroupParent())
}

// lastGC is the agent's last GC trace line's heap figures ("4->4->2 MB,
// 5 MB goal": heap at the start and end of the GC, live heap after it, the
// next GC's goal), or "" if there is none.
func (n *node) lastGC() string {
	b, err := os.ReadFile(n.agent.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.HasPrefix(l, "gc ") {
			continue
		}
		// gc N @Ts P%: clocks, cpu, A->B->C MB, D MB goal, ...
		f := strings.Split(l, ", ")
		for j, part := range f {
			if strings.Contains(part, "->") && j+1 < len(f) {
				return part + ", " + f[j+1]
			}
		}
	}
	return ""
}

// versions describes what runs the node, for the output's header.
func versions(bin string) string {
	out := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			return name + " ?"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		return line
	}
	return fmt.Sprintf("%s; %s; %s", out(bin, "version"), out("containerd", "--version"), out("runc", "--version"))
}

// loadavg is the machine's load average line (1, 5, 15 minutes).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
