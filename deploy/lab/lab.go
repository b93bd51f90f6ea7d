package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// Role is what a machine runs.
type Role string

// Roles.
const (
	RoleServer Role = "server"
	RoleNode   Role = "node"
)

// Ports of the daemons on their machines (each machine has its own
// namespace, so every one uses the same).
const (
	apiPort   = 6443
	raftPort  = 6444
	agentPort = 10250
)

// lanPrefix is the lab's LAN: the bridge .1, servers .11 up, nodes .101 up.
var lanPrefix = netip.MustParsePrefix("10.250.0.0/24")

// Config describes a lab to bring up.
type Config struct {
	// Name tells labs apart (default "lab"): lowercase letters, digits and
	// dashes, at most 12.
	Name string
	// Servers and Nodes: how many of each (default 3 and 3).
	Servers, Nodes int
	// Dir holds the lab's state, data and logs (default
	// /var/lib/skiff/lab/<name>).
	Dir string
	// LogDir holds every process's log (default <Dir>/logs).
	LogDir string
	// Bin is the skiff binary the machines run (default: this program).
	Bin string
	// Images are image tarballs every node imports at start.
	Images []string
	// NodeGracePeriod is the servers' --node-grace-period (default 10s).
	NodeGracePeriod time.Duration
	// ServerArgs and AgentArgs are extra flags of every server and agent
	// (e.g. --proxy-mode=userspace, --fence-after=10s).
	ServerArgs, AgentArgs []string
	// Progress gets a line per step (nil: none).
	Progress io.Writer
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$`)

func (c *Config) setDefaults() error {
	if c.Name == "" {
		c.Name = "lab"
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("lab: name %q: lowercase letters, digits and dashes, at most 12, not starting or ending with a dash", c.Name)
	}
	if c.Servers == 0 {
		c.Servers = 3
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Servers < 1 || c.Servers > 9 || c.Nodes < 0 || c.Nodes > 50 {
		return fmt.Errorf("lab: %d servers and %d nodes: want 1-9 servers and 0-50 nodes", c.Servers, c.Nodes)
	}
	if c.Dir == "" {
		c.Dir = DefaultDir(c.Name)
	}
	if c.LogDir == "" {
		c.LogDir = filepath.Join(c.Dir, "logs")
	}
	if c.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("lab: the skiff binary: %w", err)
		}
		c.Bin = exe
	}
	if c.NodeGracePeriod == 0 {
		c.NodeGracePeriod = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// DefaultDir is the directory of the lab called name.
func DefaultDir(name string) string { return filepath.Join("/var/lib/skiff/lab", name) }

// Machine is one network namespace of the lab and the daemon in it.
type Machine struct {
	Name  string     `json:"name"` // s1, n1, ...
	Role  Role       `json:"role"`
	Netns string     `json:"netns"` // skiff-lab-<lab>-<name>
	IP    netip.Addr `json:"ip"`
	Dir   string     `json:"dir"` // its --data-dir
	Proc  Proc       `json:"proc"`
}

// State is what lab.json holds: enough for another process to find,
// change and remove the lab.
type State struct {
	Name     string     `json:"name"`
	Dir      string     `json:"dir"`
	LogDir   string     `json:"logDir"`
	Bin      string     `json:"bin"`
	LAN      string     `json:"lan"` // the LAN namespace
	Machines []*Machine `json:"machines"`
	// Forwarder relays Forwards (127.0.0.1 ports) to the API servers.
	Forwarder Proc      `json:"forwarder"`
	Forwards  []Forward `json:"forwards"`
	Created   time.Time `json:"created"`
}

// Lab is a running (or half-built) lab.
type Lab struct {
	State
	progress io.Writer
}

const stateFile = "lab.json"

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("lab: save state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(l.Dir, stateFile))
}

// Open finds the lab whose directory is dir.
func Open(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab: no lab in %s (skiff lab up creates one)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l := &Lab{progress: io.Discard}
	if err := json.Unmarshal(b, &l.State); err != nil {
		return nil, fmt.Errorf("lab: %s: %w", filepath.Join(dir, stateFile), err)
	}
	return l, nil
}

// SetProgress sends progress lines to w.
func (l *Lab) SetProgress(w io.Writer) { l.progress = w }

func (l *Lab) say(format string, args ...any) {
	fmt.Fprintf(l.progress, format+"\n", args...)
}

// Machine returns the machine called name.
func (l *Lab) Machine(name string) (*Machine, error) {
	for _, m := range l.Machines {
		if m.Name == name {
			return m, nil
		}
	}
	var names []string
	for _, m := range l.Machines {
		names = append(names, m.Name)
	}
	return nil, fmt.Errorf("lab %s: no machine %q (machines: %s)", l.Name, name, strings.Join(names, ", "))
}

// ByRole returns the machines of a role, in order.
func (l *Lab) ByRole(r Role) []*Machine {
	var out []*Machine
	for _, m := range l.Machines {
		if m.Role == r {
			out = append(out, m)
		}
	}
	return out
}

// AdminConfig is the path of the lab's admin config (servers through the
// forwarder).
func (l *Lab) AdminConfig() string { return filepath.Join(l.Dir, "admin.conf") }

// Client returns an admin client of the lab.
func (l *Lab) Client(opts ...client.Option) (*client.Client, error) {
	cfg, err := client.LoadConfig(l.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return client.New(*cfg, opts...)
}

// NetnsPath is the path of a machine's network namespace.
func (m *Machine) NetnsPath() string { return netnsPath(m.Netns) }

// CgroupParent is a node's pods' cgroup parent.
func (l *Lab) CgroupParent(m *Machine) string { return "/skiff-lab-" + l.Name + "-" + m.Name }

// ContainerdNamespace is a node's containerd namespace.
func (l *Lab) ContainerdNamespace(m *Machine) string { return "skiff-lab-" + l.Name + "-" + m.Name }

// PinDir is the bpffs directory of a node's eBPF pins; pinRoot the lab's.
func (l *Lab) PinDir(m *Machine) string { return filepath.Join(l.pinRoot(), m.Name) }
func (l *Lab) pinRoot() string          { return "/sys/fs/bpf/skiff-lab-" + l.Name }

// stateDir is the nodes' --state-dir (netns mounts under <it>/<node>).
func (l *Lab) stateDir() string { return "/run/skiff-lab-" + l.Name }

func (l *Lab) apiURL(m *Machine) string {
	return "https://" + net.JoinHostPort(m.IP.String(), strconv.Itoa(apiPort))
}

// Up builds a lab: the network, the servers (the first bootstraps, the
// others join), the forwarder, the admin config, the nodes; it returns
// once every node is Ready. On error what was built is removed.
func Up(ctx context.Context, cfg Config) (l *Lab, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := prerequisites(cfg.Bin); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, stateFile)); err == nil {
		return nil, fmt.Errorf("lab %s already exists in %s: `skiff lab down --name %s` removes it", cfg.Name, cfg.Dir, cfg.Name)
	}
	for _, d := range []string{cfg.Dir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	l = &Lab{State: State{Name: cfg.Name, Dir: cfg.Dir, LogDir: cfg.LogDir, Bin: cfg.Bin,
		LAN: "skiff-lab-" + cfg.Name + "-lan", Created: time.Now().UTC()}, progress: cfg.Progress}
	for i := range cfg.Servers {
		l.Machines = append(l.Machines, l.newMachine(RoleServer, i))
	}
	for i := range cfg.Nodes {
		l.Machines = append(l.Machines, l.newMachine(RoleNode, i))
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.say("lab up failed: %v; removing what was built (logs kept in %s)", err, l.LogDir)
			l.down(true)
		}
	}()
	start := time.Now()
	if err := l.buildNetwork(); err != nil {
		return l, err
	}
	l.say("network: LAN %s (%s), %d machines", l.LAN, lanPrefix, len(l.Machines))
	if err := l.startForwarder(); err != nil {
		return l, err
	}
	if err := l.startServers(ctx, cfg); err != nil {
		return l, err
	}
	if err := l.startNodes(ctx, cfg); err != nil {
		return l, err
	}
	l.say("lab %s is up in %.1fs", l.Name, time.Since(start).Seconds())
	return l, nil
}

func (l *Lab) newMachine(r Role, i int) *Machine {
	var name string
	var ip netip.Addr
	b := lanPrefix.Addr().As4()
	if r == RoleServer {
		name, b[3] = "s"+strconv.Itoa(i+1), byte(11+i)
	} else {
		name, b[3] = "n"+strconv.Itoa(i+1), byte(101+i)
	}
	ip = netip.AddrFrom4(b)
	return &Machine{Name: name, Role: r, Netns: "skiff-lab-" + l.Name + "-" + name, IP: ip, Dir: filepath.Join(l.Dir, name)}
}

func (l *Lab) buildNetwork() error {
	if err := addLAN(l.LAN); err != nil {
		return err
	}
	gw := lanPrefix.Addr().Next() // .1: the forwarder's address on the LAN
	if err := ip("-n", l.LAN, "addr", "add", netip.PrefixFrom(gw, lanPrefix.Bits()).String(), "dev", lanBridge); err != nil {
		return err
	}
	for _, m := range l.Machines {
		if err := plug(l.LAN, m.Netns, m.Name, netip.PrefixFrom(m.IP, lanPrefix.Bits())); err != nil {
			return err
		}
		if m.Role == RoleNode {
			// Pods' traffic to other nodes' pods crosses the node.
			if err := sysctl(m.Netns, "net.ipv4.ip_forward", "1"); err != nil {
				return fmt.Errorf("lab: %s: %w", m.Name, err)
			}
		}
	}
	return l.save()
}

// startForwarder starts `skiff lab forward` relaying a free 127.0.0.1
// port to each server's API.
func (l *Lab) startForwarder() error {
	servers := l.ByRole(RoleServer)
	ports, err := freePorts(len(servers))
	if err != nil {
		return err
	}
	args := []string{l.Bin, "lab", "forward", "--netns", l.LAN}
	l.Forwards = nil
	for i, s := range servers {
		f := Forward{Listen: "127.0.0.1:" + strconv.Itoa(ports[i]), Target: net.JoinHostPort(s.IP.String(), strconv.Itoa(apiPort))}
		l.Forwards = append(l.Forwards, f)
		args = append(args, f.Listen+"="+f.Target)
	}
	p, err := startDetached(args, filepath.Join(l.LogDir, "forwarder.log"), nil)
	if err != nil {
		return err
	}
	l.Forwarder = p
	return l.save()
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("lab: free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// serverArgs is a server's command line (without --bootstrap/--join).
func (l *Lab) serverArgs(m *Machine, cfg Config) []string {
	args := []string{"nsenter", "--net=" + m.NetnsPath(), "--", l.Bin, "server",
		"--data-dir", m.Dir, "--node-id", m.Name,
		"--raft-addr", net.JoinHostPort(m.IP.String(), strconv.Itoa(raftPort)),
		"--api-addr", net.JoinHostPort(m.IP.String(), strconv.Itoa(apiPort)),
		"--node-grace-period", cfg.NodeGracePeriod.String()}
	return append(args, cfg.ServerArgs...)
}

func (l *Lab) startServers(ctx context.Context, cfg Config) error {
	servers := l.ByRole(RoleServer)
	token := ""
	for i, m := range servers {
		args := l.serverArgs(m, cfg)
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", l.apiURL(servers[0]), "--token", token)
		}
		p, err := startDetached(args, l.logPath(m), nil)
		if err != nil {
			return err
		}
		// Restarts run without --bootstrap/--join/--token: the server
		// keeps its identity in its data directory.
		p.Args = l.serverArgs(m, cfg)
		m.Proc = p
		if err := l.save(); err != nil {
			return err
		}
		if i == 0 {
			if err := l.writeAdminConfig(ctx, m); err != nil {
				return err
			}
			t, err := waitFile(ctx, filepath.Join(m.Dir, "token"), m, 60*time.Second)
			if err != nil {
				return err
			}
			token = t
		}
		if err := l.waitMembers(ctx, i+1, 60*time.Second); err != nil {
			return err
		}
		l.say("server %s (%s) joined: %d of %d", m.Name, m.IP, i+1, len(servers))
	}
	return nil
}

func (l *Lab) logPath(m *Machine) string { return filepath.Join(l.LogDir, m.Name+".log") }

// writeAdminConfig waits for the bootstrap server's admin.conf and writes
// the lab's, with the forwarder's addresses as the servers.
func (l *Lab) writeAdminConfig(ctx context.Context, m *Machine) error {
	path := filepath.Join(m.Dir, "admin.conf")
	if _, err := waitFile(ctx, path, m, 60*time.Second); err != nil {
		return err
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	cfg.Servers = nil
	for _, f := range l.Forwards {
		cfg.Servers = append(cfg.Servers, "https://"+f.Listen)
	}
	return cfg.Save(l.AdminConfig())
}

// waitFile waits until path holds something and returns it (trimmed).
func waitFile(ctx context.Context, path string, m *Machine, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		if !m.Proc.Alive() {
			return "", fmt.Errorf("lab: %s exited; its log %s ends:\n%s", m.Name, m.Proc.Log, tail(m.Proc.Log, 20))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("lab: %s: no %s after %v; its log %s ends:\n%s", m.Name, path, timeout, m.Proc.Log, tail(m.Proc.Log, 20))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// waitMembers waits until the cluster has n voters and a leader.
func (l *Lab) waitMembers(ctx context.Context, n int, timeout time.Duration) error {
	c, err := l.Client(client.WithTimeout(2 * time.Second))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ms, err := c.Members(ctx)
		if err == nil {
			voters := 0
			for _, m := range ms.Members {
				if m.Suffrage == "" || strings.EqualFold(m.Suffrage, "voter") {
					voters++
				}
			}
			if voters >= n && ms.Leader != "" {
				return nil
			}
			err = fmt.Errorf("%d of %d voters, leader %q", voters, n, ms.Leader)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: the servers did not form a cluster of %d after %v: %v", n, timeout, last)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// agentArgs is a node's command line.
func (l *Lab) agentArgs(m *Machine, cfg Config, token string) []string {
	var servers []string
	for _, s := range l.ByRole(RoleServer) {
		servers = append(servers, l.apiURL(s))
	}
	args := []string{"nsenter", "--net=" + m.NetnsPath(), "--", l.Bin, "agent",
		"--server", strings.Join(servers, ","), "--token", token,
		"--node-name", m.Name, "--node-ip", m.IP.String(),
		"--data-dir", m.Dir, "--containerd-namespace", l.ContainerdNamespace(m),
		"--cgroup-parent", l.CgroupParent(m), "--state-dir", l.stateDir(),
		"--bpf-pin-dir", l.PinDir(m), "--port", strconv.Itoa(agentPort)}
	for _, img := range cfg.Images {
		args = append(args, "--import-image", img)
	}
	return append(args, cfg.AgentArgs...)
}

func (l *Lab) startNodes(ctx context.Context, cfg Config) error {
	nodes := l.ByRole(RoleNode)
	if len(nodes) == 0 {
		return nil
	}
	c, err := l.Client(client.WithTimeout(10 * time.Second))
	if err != nil {
		return err
	}
	tok, err := c.CreateToken(ctx, client.TokenRequest{Usage: "agent", TTL: "24h", Description: "skiff lab " + l.Name})
	if err != nil {
		return fmt.Errorf("lab: create an agent token: %w", err)
	}
	for _, m := range nodes {
		p, err := startDetached(l.agentArgs(m, cfg, tok.Token), l.logPath(m), nil)
		if err != nil {
			return err
		}
		m.Proc = p
		if err := l.save(); err != nil {
			return err
		}
	}
	return l.WaitNodesReady(ctx, 180*time.Second)
}

// WaitNodesReady waits until every node of the lab is Ready.
func (l *Lab) WaitNodesReady(ctx context.Context, timeout time.Duration) error {
	c, err := l.Client(client.WithTimeout(5 * time.Second))
	if err != nil {
		return err
	}
	nodes := l.ByRole(RoleNode)
	deadline := time.Now().Add(timeout)
	lastSaid := time.Now()
	for {
		ready := map[string]bool{}
		if list, err := c.List(ctx, api.KindNode, client.ListOptions{}); err == nil {
			for _, o := range list.Items {
				n := o.(*api.Node)
				for _, cond := range n.Status.Conditions {
					if cond.Type == api.NodeReady && cond.Status == api.ConditionTrue {
						ready[n.Name] = true
					}
				}
			}
		}
		var waiting []string
		for _, m := range nodes {
			if !ready[m.Name] {
				waiting = append(waiting, m.Name)
				if !m.Proc.Alive() {
					return fmt.Errorf("lab: node %s exited; its log %s ends:\n%s", m.Name, m.Proc.Log, tail(m.Proc.Log, 20))
				}
			}
		}
		if len(waiting) == 0 {
			l.say("nodes Ready: %d of %d", len(nodes), len(nodes))
			return nil
		}
		if time.Since(lastSaid) > 5*time.Second {
			l.say("waiting for nodes to be Ready: %s", strings.Join(waiting, ", "))
			lastSaid = time.Now()
		}
		if time.Now().After(deadline) {
			m, _ := l.Machine(waiting[0])
			return fmt.Errorf("lab: nodes %s not Ready after %v; %s's log ends:\n%s", strings.Join(waiting, ", "), timeout, m.Name, tail(m.Proc.Log, 20))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
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

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// prerequisites lists what the lab needs and is missing.
func prerequisites(bin string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, cgroups, containers)")
	}
	for _, c := range []string{"ip", "nsenter", "containerd", "runc"} {
		if _, err := lookPath(c); err != nil {
			missing = append(missing, c+" (make run installs it: test/deps.sh)")
		}
	}
	if _, err := os.Stat(bin); err != nil {
		missing = append(missing, "the skiff binary "+bin)
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: missing: %s", strings.Join(missing, "; "))
	}
	return nil
}
