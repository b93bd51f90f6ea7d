package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/hollow"
	"github.com/skiffhq/skiff/nodeagent/runtime/fake"
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
	labels      string
	concurrency int
	http1       bool
	logs        logFlags
}

func newAgentCmd(o *options) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --server URL --token TOKEN (--runtime fake [--node-name NAME] | --simulate N)",
		Short: "Run a node agent, or N simulated nodes",
		Long: `Run the node agent: it joins the cluster with an agent token (the token pins the
cluster CA; the agent checks it before sending the secret, then gets a node
certificate for system:node:<name>), registers its Node, heartbeats, watches
the pods bound to it, runs them and reports their status.

The containerd runtime, CNI pod networking and probes arrive with issue 5.
Until then an agent runs only the fake runtime (--runtime fake), whose
containers are in-memory records: nothing actually runs, but the control
plane sees a Ready node whose pods become Running and Ready with addresses
from the node's pod CIDR.

--simulate N runs N such nodes ("hollow nodes") in this one process, each
with its own key, certificate and connections, named <prefix><index>; the
control plane cannot tell them from real ones. Use it to exercise the
scheduler and controllers at thousands of nodes. Stop with Ctrl-C: the nodes
stop heartbeating and are marked unreachable after the grace period.

Get a token with: skiff token create --usage agent --ttl 24h`,
		Example: `  # 1,000 simulated nodes of 4 CPUs and 16Gi, containers Ready after 1s
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
			case runtimeContainerd:
				return errors.New("the containerd runtime is not implemented yet (it arrives with issue 5): " +
					"run --runtime fake for a node whose containers are simulated, or --simulate N for N such nodes")
			default:
				return fmt.Errorf("--runtime %q: want %s or %s", f.runtime, runtimeContainerd, runtimeFake)
			}
			return runFakeAgent(ctx, f, servers, tok, capacity, labels, o.build.Version, log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.token, "token", os.Getenv("SKIFF_TOKEN"), "agent join token K10<ca hash>::<id>.<secret> (default $SKIFF_TOKEN)")
	fl.StringVar(&f.nodeName, "node-name", "", "name of this node (default: the host name)")
	fl.StringVar(&f.nodeIP, "node-ip", "", "this node's InternalIP, reported as the pods' hostIP")
	fl.StringVar(&f.runtime, "runtime", runtimeContainerd, "container runtime: containerd (issue 5, not yet) or fake (in-memory: nothing runs)")
	fl.IntVar(&f.simulate, "simulate", 0, "run N simulated nodes with the fake runtime in this process")
	fl.StringVar(&f.prefix, "node-prefix", hollow.DefaultPrefix, "with --simulate: node names are <prefix><index>, zero-padded")
	fl.DurationVar(&f.readyDelay, "ready-delay", time.Second, "fake runtime: how long a container takes to start")
	fl.StringVar(&f.cpu, "cpu", "4", "CPU capacity of the node(s)")
	fl.StringVar(&f.memory, "memory", "16Gi", "memory capacity of the node(s)")
	fl.IntVar(&f.maxPods, "max-pods", nodeagent.DefaultMaxPods, "how many pods the node(s) may run")
	fl.DurationVar(&f.heartbeat, "heartbeat-period", nodeagent.DefaultHeartbeatPeriod, "how often each node tells the control plane it is alive")
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
	name := f.nodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-name not given and no host name: %w", err)
		}
		name = strings.ToLower(h)
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
		HeartbeatPeriod: f.heartbeat, Logger: log,
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
