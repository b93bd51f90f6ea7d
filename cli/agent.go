package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/hollow"
	"github.com/skiffhq/skiff/nodeagent/proxy"
	"github.com/skiffhq/skiff/nodeagent/runtime/containerd"
	"github.com/skiffhq/skiff/nodeagent/runtime/fake"
	"github.com/skiffhq/skiff/nodeagent/server"
)

// Runtimes of skiff agent --runtime.
const (
	runtimeContainerd = "containerd"
	runtimeFake       = "fake"
)

type agentFlags struct {
	token       string
	nodeName    string
	nodeIP      string
	runtime     string
	simulate    int
	prefix      string
	readyDelay  time.Duration
	cpu         string
	memory      string
	maxPods     int
	heartbeat   time.Duration
	fenceAfter  time.Duration
	labels      string
	concurrency int
	http1       bool
	logs        logFlags

	// Real nodes (containerd).
	dataDir, containerd, namespace, cgroupParent, stateDir string
	cniBinDir, serviceCIDR                                 string
	backoffMax                                             time.Duration
	images                                                 []string
	port                                                   int
	proxyMode, pinDir, metricsAddr                         string
	cleanup, bpfStats                                      bool
}

// name is --node-name, or the host name in lower case.
func (f *agentFlags) name() (string, error) {
	if f.nodeName != "" {
		return f.nodeName, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--node-name not given and no host name: %w", err)
	}
	return strings.ToLower(h), nil
}

func newAgentCmd(o *options) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --server URL --token TOKEN [--node-name NAME] | --simulate N",
		Short: "Run a node agent, or N simulated nodes",
		Long: `Run the node agent: it joins the cluster with an agent token (the token pins the
cluster CA; the agent checks it before sending the secret, then gets a node
certificate for system:node:<name>, saved in --data-dir so later starts need
no token), registers its Node with this machine's CPUs and memory, heartbeats,
watches the pods bound to it, runs them in containerd and reports their
status.

Each pod gets a network namespace on the node's bridge (CNI bridge +
host-local over the node's pod CIDR), and the node keeps host routes to the
other nodes' pod CIDRs. Containers run in containerd (namespace skiff,
cgroups under /skiff); without --containerd the agent starts and supervises
its own containerd with its state under --data-dir. Their output goes to log
files under --data-dir/pods. Run it as root.

Restarting the agent (even kill -9) restarts no container: it adopts what
containerd runs. Stopping it leaves the pods running.

--runtime fake runs no containers: its containers are in-memory records, and
the control plane sees a Ready node whose pods become Running and Ready.
--simulate N runs N such nodes ("hollow nodes") in this one process, each
with its own key, certificate and connections, named <prefix><index>; the
control plane cannot tell them from real ones. Use it to exercise the
scheduler and controllers at thousands of nodes.

Get a token with: skiff token create --usage agent --ttl 24h`,
		Example: `  # A real node, named after this host (as root)
  skiff agent --server https://10.0.0.1:6443 --token "$TOKEN"

  # The same with a containerd that is already running
  skiff agent --server https://10.0.0.1:6443 --token "$TOKEN" --containerd /run/containerd/containerd.sock

  # 1,000 simulated nodes of 4 CPUs and 16Gi, containers Ready after 1s
  skiff agent --simulate 1000 --server https://127.0.0.1:6443 --token "$TOKEN"

  # Labels and a faster heartbeat
  skiff agent --simulate 50 --server https://127.0.0.1:6443 --token "$TOKEN" \
    --labels topology.kubernetes.io/zone=z1 --heartbeat-period 1s

  # One node named after this host, with the fake runtime
  skiff agent --runtime fake --server https://127.0.0.1:6443 --token "$TOKEN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := f.logs.logger(o.errOut)
			if err != nil {
				return err
			}
			if f.cleanup {
				if os.Geteuid() != 0 {
					return errors.New("--cleanup removes BPF programs and routes: run it as root")
				}
				name, err := f.name()
				if err != nil {
					return err
				}
				return cleanupNode(name, f.pinDir, f.cgroupParent, log)
			}
			if o.server == "" {
				return errors.New("--server is required: the API address(es) of the control plane, e.g. https://127.0.0.1:6443")
			}
			if f.token == "" {
				return errors.New("--token is required: an agent join token (skiff token create --usage agent --ttl 24h)")
			}
			tok, err := api.ParseJoinToken(f.token)
			if err != nil {
				return err
			}
			capacity, err := f.capacity()
			if err != nil {
				return err
			}
			labels, err := parseLabels(f.labels)
			if err != nil {
				return err
			}
			servers := splitServers(o.server)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			if f.simulate > 0 {
				if cmd.Flags().Changed("runtime") && f.runtime != runtimeFake {
					return fmt.Errorf("--simulate runs the fake runtime; --runtime %s does not apply", f.runtime)
				}
				err := hollow.Run(ctx, hollow.Config{
					Servers: servers, Token: tok, Nodes: f.simulate, Prefix: f.prefix,
					Capacity: capacity, Labels: labels, ReadyDelay: f.readyDelay,
					HeartbeatPeriod: f.heartbeat, Concurrency: f.concurrency, HTTP1: f.http1,
					Version: o.build.Version, Logger: log,
				})
				if err == nil {
					log.Info(fmt.Sprintf("stopped %d hollow nodes", f.simulate))
				}
				return err
			}
			if f.simulate < 0 {
				return fmt.Errorf("--simulate %d: want a number of nodes", f.simulate)
			}
			switch f.runtime {
			case runtimeFake:
				return runFakeAgent(ctx, f, servers, tok, capacity, labels, o.build.Version, log)
			case runtimeContainerd:
			default:
				return fmt.Errorf("--runtime %q: want %s or %s", f.runtime, runtimeContainerd, runtimeFake)
			}
			if os.Geteuid() != 0 {
				return errors.New("the node agent runs containers, pod networks and cgroups: run it as root (or --runtime fake / --simulate N for simulated nodes)")
			}
			name, err := f.name()
			if err != nil {
				return err
			}

			mode, err := proxy.ParseMode(f.proxyMode)
			if err != nil {
				return fmt.Errorf("--proxy-mode: %w", err)
			}
			svc, err := netip.ParsePrefix(f.serviceCIDR)
			if err != nil {
				return fmt.Errorf("--service-cidr %q: %w", f.serviceCIDR, err)
			}
			return runNode(ctx, nodeConfig{
				Servers: servers, Token: &tok, Name: name, NodeIP: f.nodeIP,
				DataDir: f.dataDir, Containerd: f.containerd, Namespace: f.namespace,
				CgroupParent: f.cgroupParent, StateDir: filepath.Join(f.stateDir, name),
				CNIPluginDirs: splitServers(f.cniBinDir), ServiceCIDR: svc, Labels: labels,
				MaxPods: f.maxPods, Heartbeat: f.heartbeat, FenceAfter: f.fenceAfter, BackoffMax: f.backoffMax,
				Images: f.images, Port: f.port, Version: o.build.Version, Log: log,
				ProxyMode: mode, PinDir: f.pinDir, BPFStats: f.bpfStats, MetricsAddr: f.metricsAddr,
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.token, "token", os.Getenv("SKIFF_TOKEN"), "agent join token K10<ca hash>::<id>.<secret> (default $SKIFF_TOKEN)")
	fl.StringVar(&f.nodeName, "node-name", "", "name of this node (default: the host name)")
	fl.StringVar(&f.nodeIP, "node-ip", "", "this node's InternalIP, reported as the pods' hostIP")
	fl.StringVar(&f.runtime, "runtime", runtimeContainerd, "container runtime: containerd, or fake (in-memory: nothing runs)")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/skiff/agent", "the node's state: credentials, CNI state, container logs, and containerd's when skiff runs it")
	fl.StringVar(&f.containerd, "containerd", "", "socket of a running containerd (default: start and supervise one under --data-dir)")
	fl.StringVar(&f.namespace, "containerd-namespace", containerd.DefaultNamespace, "containerd namespace of this node's containers and images")
	fl.StringVar(&f.cgroupParent, "cgroup-parent", containerd.DefaultCgroupParent, "cgroup every pod's cgroup is created under")
	fl.StringVar(&f.stateDir, "state-dir", "/run/skiff", "runtime state (network namespace mounts), under <state-dir>/<node>")
	fl.StringVar(&f.cniBinDir, "cni-bin-dir", "/usr/lib/cni,/opt/cni/bin", "directories of the CNI plugins (bridge, host-local, loopback), comma-separated")
	fl.StringVar(&f.serviceCIDR, "service-cidr", store.DefaultNetwork.ServiceCIDR.String(), "the cluster's service CIDR: an unreachable route keeps untranslated service packets on the node")
	fl.DurationVar(&f.backoffMax, "max-backoff", nodeagent.DefaultBackoffMax, "cap of the restart back-off of crashing containers and failing pulls")
	fl.BoolVar(&f.cleanup, "cleanup", false, "remove the node's service load balancing (eBPF programs, links and pins; userspace VIPs) and exit; the pods keep running")
	fl.StringVar(&f.proxyMode, "proxy-mode", string(proxy.ModeAuto), "service load balancing: auto (eBPF when the kernel allows, else userspace), ebpf or userspace")
	fl.StringVar(&f.pinDir, "bpf-pin-dir", "", "bpffs directory of the eBPF datapath's pinned maps and links (default /sys/fs/bpf/skiff/<node>)")
	fl.BoolVar(&f.bpfStats, "bpf-stats", false, "count the eBPF programs' run time (skiff_proxy_bpf_program_run_seconds_total; costs a clock read per run)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve the agent's Prometheus /metrics on this host:port (plain HTTP)")
	fl.IntVar(&f.port, "port", server.DefaultPort, "port of the agent's endpoint on --node-ip (logs, exec and image import, for API servers only)")
	fl.StringArrayVar(&f.images, "import-image", nil, "image tarball (OCI or docker save) to import into containerd at start (repeatable)")
	fl.IntVar(&f.simulate, "simulate", 0, "run N simulated nodes with the fake runtime in this process")
	fl.StringVar(&f.prefix, "node-prefix", hollow.DefaultPrefix, "with --simulate: node names are <prefix><index>, zero-padded")
	fl.DurationVar(&f.readyDelay, "ready-delay", time.Second, "fake runtime: how long a container takes to start")
	fl.StringVar(&f.cpu, "cpu", "4", "fake runtime: CPU capacity of the node(s) (a real node reports its machine's)")
	fl.StringVar(&f.memory, "memory", "16Gi", "fake runtime: memory capacity of the node(s) (a real node reports its machine's)")
	fl.IntVar(&f.maxPods, "max-pods", nodeagent.DefaultMaxPods, "how many pods the node(s) may run")
	fl.DurationVar(&f.heartbeat, "heartbeat-period", nodeagent.DefaultHeartbeatPeriod, "how often each node tells the control plane it is alive")
	fl.DurationVar(&f.fenceAfter, "fence-after", 0, "stop this node's pods when it has reached no API server and no other node for this long (isolation fencing; 0: never). Set it to the servers' --node-grace-period so pods evicted by the control plane are not left running on an isolated node")
	fl.StringVar(&f.labels, "labels", "", "node labels k=v,... (only kubernetes.io/{hostname,os,arch}, node.kubernetes.io/*, topology.kubernetes.io/*, skiff.io/agent-*)")
	fl.IntVar(&f.concurrency, "concurrency", hollow.DefaultConcurrency, "with --simulate: joins and registrations in flight")
	fl.BoolVar(&f.http1, "http1", false, "with --simulate: each node speaks HTTP/1.1 over two or three connections instead of HTTP/2 over one")
	f.logs.register(cmd)
	return cmd
}

func (f *agentFlags) capacity() (api.ResourceList, error) {
	cpu, err := api.ParseQuantity(f.cpu)
	if err != nil || cpu.Sign() <= 0 {
		return nil, fmt.Errorf("--cpu %q: want a positive quantity such as 4 or 3500m", f.cpu)
	}
	mem, err := api.ParseQuantity(f.memory)
	if err != nil || mem.Sign() <= 0 {
		return nil, fmt.Errorf("--memory %q: want a positive quantity such as 16Gi", f.memory)
	}
	if f.maxPods <= 0 {
		return nil, fmt.Errorf("--max-pods %d: want at least 1", f.maxPods)
	}
	return api.ResourceList{
		api.ResourceCPU:    cpu,
		api.ResourceMemory: mem,
		api.ResourcePods:   api.NewQuantity(int64(f.maxPods), api.DecimalSI),
	}, nil
}

func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func splitServers(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// runFakeAgent runs one agent named after this host over the fake runtime.
func runFakeAgent(ctx context.Context, f agentFlags, servers []string, tok api.JoinToken, capacity api.ResourceList, labels map[string]string, version string, log *slog.Logger) error {
	name, err := f.name()
	if err != nil {
		return err
	}
	addrs := []api.NodeAddress{{Type: api.NodeHostName, Address: name}}
	sans := []string{name}
	if f.nodeIP != "" {
		ip, err := netip.ParseAddr(f.nodeIP)
		if err != nil {
			return fmt.Errorf("--node-ip %q: %w", f.nodeIP, err)
		}
		addrs = append([]api.NodeAddress{{Type: api.NodeInternalIP, Address: ip.String()}}, addrs...)
		sans = append(sans, ip.String())
	}
	j, err := client.NewJoiner(ctx, servers, tok)
	if err != nil {
		return err
	}
	ccfg, err := j.JoinNode(ctx, name, sans)
	j.Close()
	if err != nil {
		return err
	}
	c, err := client.New(ccfg)
	if err != nil {
		return err
	}
	ag, err := nodeagent.New(nodeagent.Config{
		Client: c, NodeName: name, Runtime: fake.New(fake.Options{StartDelay: f.readyDelay}),
		Capacity: capacity, Labels: labels, Addresses: addrs, Version: version,
		HeartbeatPeriod: f.heartbeat, FenceAfter: f.fenceAfter, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := ag.Register(ctx); err != nil {
		return err
	}
	log.Info("node registered; running pods with the fake runtime", "node", name, "podCIDR", ag.Node().Spec.PodCIDR)
	return ag.Run(ctx)
}
