package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/proxy"
	"github.com/skiffhq/skiff/nodeagent/runtime/containerd"
	"github.com/skiffhq/skiff/scheduler"
)

// logFlags are the logging flags of the commands that run daemons.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

func (o *options) buildInfo() controlplane.BuildInfo {
	return controlplane.BuildInfo{Version: o.build.Version, Commit: o.build.Commit, Date: o.build.Date}
}

func newServerCmd(o *options) *cobra.Command {
	var cfg controlplane.Config
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "server --data-dir DIR (--bootstrap | --join ADDR | restart)",
		Short: "Run a control-plane server",
		Long: `Run one control-plane server: a member of the Raft group that stores every
object, serves the API, and (on the leader) runs the scheduler and controllers.

Start the first server of a new cluster with --bootstrap: it creates the
cluster CA, its own certificate and a server join token in DATA_DIR/token.
Start every other one with --join pointing at the API address of any member
and --token with that token (or one from "skiff token create --usage server"):
the joiner checks the served CA against the token's hash before it sends the
secret, then gets its certificate. A server restarted on its data directory
needs none of these: it rejoins with the state and certificates it had.

Every connection is TLS: the API (clients authenticate with a certificate or
a token), and Raft between servers (mutual TLS; only servers of this cluster
are accepted). Once ready, the server writes DATA_DIR/admin.conf, a client
config with the CA and an admin credential (export SKIFF_CONFIG=...).`,
		Example: `  # A three-server cluster on one machine
  skiff server --data-dir /var/lib/skiff/s1 --node-id s1 \
    --raft-addr 127.0.0.1:7001 --api-addr 127.0.0.1:6443 --bootstrap
  skiff server --data-dir /var/lib/skiff/s2 --node-id s2 \
    --raft-addr 127.0.0.1:7002 --api-addr 127.0.0.1:6444 --join 127.0.0.1:6443 \
    --token "$(cat /var/lib/skiff/s1/token)"
  skiff server --data-dir /var/lib/skiff/s3 --node-id s3 \
    --raft-addr 127.0.0.1:7003 --api-addr 127.0.0.1:6445 --join 127.0.0.1:6443 \
    --token "$(cat /var/lib/skiff/s1/token)"

  # Restart a member (no --bootstrap, no --join)
  skiff server --data-dir /var/lib/skiff/s2 --node-id s2 \
    --raft-addr 127.0.0.1:7002 --api-addr 127.0.0.1:6444`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				return errors.New("--data-dir is required: the directory that holds this server's Raft log, snapshots and admin.conf")
			}
			if cfg.Bootstrap && cfg.Join != "" {
				return errors.New("--bootstrap and --join exclude each other: bootstrap the first server, join the others through it")
			}
			log, err := logs.logger(o.errOut)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Build = o.buildInfo()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return controlplane.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the Raft log, snapshots and admin.conf (required)")
	f.StringVar(&cfg.NodeID, "node-id", "", "this server's Raft ID, stable across restarts (default: the hostname)")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:6444", "host:port the Raft transport listens on")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:6443", "host:port the HTTP API listens on")
	f.StringVar(&cfg.AdvertiseRaft, "advertise-raft", "", "Raft address peers dial (default: the bound --raft-addr)")
	f.StringVar(&cfg.AdvertiseAPI, "advertise-api", "", "API address clients and peers dial (default: the bound --api-addr)")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", false, "start a new cluster with this server as its only member")
	f.StringVar(&cfg.Join, "join", "", "API address (host:port or URL) of any member of the cluster to join")
	f.StringVar(&cfg.Token, "token", os.Getenv("SKIFF_TOKEN"), "server join token for --join (default $SKIFF_TOKEN)")
	f.BoolVar(&cfg.AllowPrivileged, "allow-privileged", false, "admit privileged containers, host namespaces and added capabilities")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "also serve /metrics without authentication on this host:port (plain HTTP)")
	f.DurationVar(&cfg.NodeGracePeriod, "node-grace-period", 10*time.Second, "how long a node agent may stay silent before its node is marked unreachable and its pods evicted")
	f.Var((*strategyFlag)(&cfg.SchedulerStrategy), "scheduler-strategy", "how the scheduler ranks nodes that fit: LeastAllocated (spread) or MostAllocated (bin-packing)")
	f.IntVar(&cfg.SchedulerBatchSize, "scheduler-batch-size", 500, "most pods placed per scheduling cycle and bound per Raft entry")
	_ = f.MarkHidden("scheduler-batch-size") // for benchmarks
	f.StringVar(&cfg.CloudProvider, "cloud-provider", cloudprovider.ProviderLocal, "cloud provider: "+strings.Join(cloudprovider.Providers(), " or "))
	f.Var(&cfg.Cloud.LoadBalancerPool, "load-balancer-pool", "addresses for LoadBalancer services (local provider), e.g. 192.168.1.240-192.168.1.250,10.0.5.0/28")
	net := registerNetworkFlags(cmd)
	logs.register(cmd)
	wrapNetwork(cmd, &cfg, net)
	return cmd
}

// defaultDevDir is where `skiff dev` keeps its data unless told otherwise.
func defaultDevDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".skiff", "dev")
	}
	return ".skiff-dev"
}

func newDevCmd(o *options) *cobra.Command {
	cfg := controlplane.Config{Dev: true}
	var logs logFlags
	var nf devNodeFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-process development cluster",
		Long: `Run a whole cluster in one process, for development and trying skiff out: a
single control-plane server that bootstraps itself the first time and keeps its
state in --data-dir across restarts. Once it is ready it prints how to point
the client commands at it.

It also runs a node agent on this machine (as root): pods run in containerd
(skiff starts and supervises its own unless --containerd names a running
one), on a CNI bridge (skiff0) over the node's pod CIDR, with their logs
under DATA_DIR/agent/pods. --node=false runs the control plane alone (add
nodes with skiff agent, or simulated ones with skiff agent --simulate N).
--import-image loads image tarballs into the node's containerd at start
(make run imports the echo example's).`,
		Example: `  # Start it (Ctrl-C stops it; the data survives)
  skiff dev

  # Elsewhere, use it
  export SKIFF_CONFIG=$HOME/.skiff/dev/admin.conf
  skiff apply -f examples/web.yaml
  skiff get deploy,svc

  # Throwaway cluster on a free port
  skiff dev --data-dir /tmp/skiff-dev --api-addr 127.0.0.1:0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				return errors.New("--data-dir must not be empty")
			}
			log, err := logs.logger(o.errOut)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Build = o.buildInfo()
			ready := make(chan struct{})
			cfg.Ready = ready
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if nf.enabled && os.Geteuid() != 0 {
				return errors.New("skiff dev runs a node agent (containers, pod networks, cgroups), which needs root: run it as root, or with --node=false for the control plane alone")
			}
			done := make(chan error, 1)
			go func() { done <- controlplane.Run(ctx, cfg) }()
			select {
			case err := <-done:
				return err
			case <-ready:
			}
			if !nf.enabled {
				o.printDevBanner(cfg.DataDir, false)
				return <-done
			}
			// The node runs next to the control plane; either ending ends both.
			nctx, cancel := context.WithCancel(ctx)
			defer cancel()
			nodeDone := make(chan error, 1)
			go func() { nodeDone <- runDevNode(nctx, cfg, nf, o.buildInfo().Version, log) }()
			nodeUp := make(chan struct{})
			go func() {
				if waitNodeReady(nctx, cfg.DataDir, nf.name) == nil {
					close(nodeUp)
				}
			}()
			for {
				select {
				case err := <-done:
					cancel()
					<-nodeDone
					return err
				case err := <-nodeDone:
					stop()
					<-done
					if err != nil {
						return fmt.Errorf("dev node: %w", err)
					}
					return nil
				case <-nodeUp:
					o.printDevBanner(cfg.DataDir, true)
					nodeUp = nil // printed once
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDevDir(), "directory for the cluster's state and admin.conf")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:6443", "host:port the HTTP API listens on (port 0 picks a free one)")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:0", "host:port the Raft transport listens on")
	f.StringVar(&cfg.NodeID, "node-id", "dev", "the server's Raft ID")
	f.BoolVar(&cfg.AllowPrivileged, "allow-privileged", false, "admit privileged containers, host namespaces and added capabilities")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "also serve /metrics without authentication on this host:port (plain HTTP)")
	f.DurationVar(&cfg.NodeGracePeriod, "node-grace-period", 10*time.Second, "how long a node agent may stay silent before its node is marked unreachable and its pods evicted")
	f.Var((*strategyFlag)(&cfg.SchedulerStrategy), "scheduler-strategy", "how the scheduler ranks nodes that fit: LeastAllocated (spread) or MostAllocated (bin-packing)")
	f.StringVar(&cfg.CloudProvider, "cloud-provider", cloudprovider.ProviderLocal, "cloud provider: "+strings.Join(cloudprovider.Providers(), " or "))
	f.Var(&cfg.Cloud.LoadBalancerPool, "load-balancer-pool", "addresses for LoadBalancer services (local provider), e.g. 192.168.1.240-192.168.1.250,10.0.5.0/28")
	f.BoolVar(&nf.enabled, "node", true, "also run a node agent on this machine (containerd; needs root)")
	f.StringVar(&nf.name, "node-name", "dev", "the node's name")
	f.StringVar(&nf.containerd, "containerd", "", "socket of a running containerd for the node (default: start one under DATA_DIR/agent/containerd)")
	f.StringArrayVar(&nf.images, "import-image", nil, "image tarball to import into the node's containerd at start (repeatable)")
	f.StringVar(&nf.cgroupParent, "cgroup-parent", containerd.DefaultCgroupParent, "cgroup the node's pods are created under")
	f.StringVar(&nf.proxyMode, "proxy-mode", string(proxy.ModeAuto), "the node's service load balancing: auto (eBPF when the kernel allows, else userspace), ebpf or userspace")
	net := registerNetworkFlags(cmd)
	logs.register(cmd)
	wrapNetwork(cmd, &cfg, net)
	return cmd
}

// devNodeFlags are skiff dev's node agent settings.
type devNodeFlags struct {
	enabled    bool
	name       string
	containerd string
	images     []string
	// cgroupParent is where pods' cgroups go (tests use one per run).
	cgroupParent string
	proxyMode    string
}

// runDevNode runs the dev cluster's own node: it joins with a fresh agent
// token the first time (later starts reuse the saved credentials).
func runDevNode(ctx context.Context, cfg controlplane.Config, nf devNodeFlags, version string, log *slog.Logger) error {
	dir := filepath.Join(cfg.DataDir, "agent")
	ncfg := nodeConfig{
		Name: nf.name, DataDir: dir, Containerd: nf.containerd,
		Namespace: containerd.DefaultNamespace, CgroupParent: nf.cgroupParent, StateDir: filepath.Join("/run/skiff", nf.name),
		CNIPluginDirs: []string{"/usr/lib/cni", "/opt/cni/bin"}, ServiceCIDR: cfg.Network.ServiceCIDR,
		MaxPods: nodeagent.DefaultMaxPods, Images: nf.images, Version: version, Log: log.With("component", "agent"),
	}
	mode, err := proxy.ParseMode(nf.proxyMode)
	if err != nil {
		return fmt.Errorf("--proxy-mode: %w", err)
	}
	ncfg.ProxyMode = mode
	admin, err := client.LoadConfig(filepath.Join(cfg.DataDir, "admin.conf"))
	if err != nil {
		return err
	}
	ncfg.Servers = admin.Servers
	if _, err := os.Stat(filepath.Join(dir, nodeCredentials)); err != nil {
		c, err := client.New(*admin)
		if err != nil {
			return err
		}
		tok, err := c.CreateToken(ctx, client.TokenRequest{Usage: "agent", Description: "skiff dev node", TTL: "1h"})
		if err != nil {
			return fmt.Errorf("create the dev node's join token: %w", err)
		}
		jt, err := api.ParseJoinToken(tok.Token)
		if err != nil {
			return err
		}
		ncfg.Token = &jt
	}
	return runNode(ctx, ncfg)
}

// waitNodeReady waits until the dev node is Ready.
func waitNodeReady(ctx context.Context, dataDir, name string) error {
	admin, err := client.LoadConfig(filepath.Join(dataDir, "admin.conf"))
	if err != nil {
		return err
	}
	c, err := client.New(*admin)
	if err != nil {
		return err
	}
	for {
		if o, err := c.Get(ctx, api.KindNode, "", name); err == nil {
			for _, cond := range o.(*api.Node).Status.Conditions {
				if cond.Type == api.NodeReady && cond.Status == api.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// networkFlags are the address plan a bootstrapping server records.
type networkFlags struct {
	serviceCIDR, clusterCIDR string
	nodeMask                 int
	nodePorts                string
}

func registerNetworkFlags(cmd *cobra.Command) *networkFlags {
	n := &networkFlags{}
	d := store.DefaultNetwork
	f := cmd.Flags()
	f.StringVar(&n.serviceCIDR, "service-cidr", d.ServiceCIDR.String(), "cluster IPs of services come from here (recorded at bootstrap)")
	f.StringVar(&n.clusterCIDR, "cluster-cidr", d.ClusterCIDR.String(), "pod CIDRs of nodes come from here (recorded at bootstrap)")
	f.IntVar(&n.nodeMask, "node-cidr-mask-size", d.NodeMaskSize, "prefix length of each node's pod CIDR")
	f.StringVar(&n.nodePorts, "service-node-port-range", fmt.Sprintf("%d-%d", d.NodePortMin, d.NodePortMax), "node ports of NodePort and LoadBalancer services")
	return n
}

// wrapNetwork parses the network flags into cfg before the command runs.
func wrapNetwork(cmd *cobra.Command, cfg *controlplane.Config, n *networkFlags) {
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		var err error
		if cfg.Network.ServiceCIDR, err = netip.ParsePrefix(n.serviceCIDR); err != nil {
			return fmt.Errorf("--service-cidr: %w", err)
		}
		if cfg.Network.ClusterCIDR, err = netip.ParsePrefix(n.clusterCIDR); err != nil {
			return fmt.Errorf("--cluster-cidr: %w", err)
		}
		cfg.Network.NodeMaskSize = n.nodeMask
		lo, hi, ok := strings.Cut(n.nodePorts, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("--service-node-port-range %q: want MIN-MAX", n.nodePorts)
		}
		cfg.Network.NodePortMin, cfg.Network.NodePortMax = int32(a), int32(b)
		if err := cfg.Network.Validate(); err != nil {
			return fmt.Errorf("network flags: %w", err)
		}
		return run(c, args)
	}
}

// printDevBanner tells the user how to reach the dev cluster.
func (o *options) printDevBanner(dataDir string, node bool) {
	conf := filepath.Join(dataDir, "admin.conf")
	if abs, err := filepath.Abs(conf); err == nil {
		conf = abs
	}
	url := "(see " + conf + ")"
	if c, err := client.LoadConfig(conf); err == nil && len(c.Servers) > 0 {
		url = strings.Join(c.Servers, ", ")
	}
	fmt.Fprintf(o.out, `
skiff dev is ready: API at %s, data in %s

In another terminal:
  export SKIFF_CONFIG=%s
`, url, dataDir, conf)
	// The commands name the binary as it was run (bin/skiff after make
	// run), so they work when pasted.
	bin := "skiff"
	if len(os.Args) > 0 && strings.Contains(os.Args[0], "/") {
		bin = os.Args[0]
	}
	tour := []string{"apply -f examples/web.yaml", "get deploy,svc", "members"}
	if node {
		tour = []string{"get nodes", "apply -f examples/web.yaml", "rollout status deploy/web", "get pods -o wide",
			"logs deploy/web", "exec deploy/web -- wget -qO- 127.0.0.1:8080", "delete -f examples/web.yaml"}
	}
	for _, c := range tour {
		fmt.Fprintf(o.out, "  %s %s\n", bin, c)
	}
	if node {
		fmt.Fprint(o.out, `
Stop with Ctrl-C; the state survives restarts, and the containers keep running
while skiff is stopped.
`)
		return
	}
	fmt.Fprint(o.out, `
No node runs here (--node=false): add one with skiff agent, or simulated
ones with skiff agent --simulate N. Stop with Ctrl-C; the state survives
restarts.
`)
}

// strategyFlag is --scheduler-strategy.
type strategyFlag scheduler.ScoringStrategy

func (f *strategyFlag) String() string {
	if *f == "" {
		return string(scheduler.LeastAllocated)
	}
	return string(*f)
}

func (f *strategyFlag) Set(v string) error {
	for _, s := range []scheduler.ScoringStrategy{scheduler.LeastAllocated, scheduler.MostAllocated} {
		if strings.EqualFold(v, string(s)) {
			*f = strategyFlag(s)
			return nil
		}
	}
	return fmt.Errorf("unknown strategy %q: want %s or %s", v, scheduler.LeastAllocated, scheduler.MostAllocated)
}

func (f *strategyFlag) Type() string { return "strategy" }
