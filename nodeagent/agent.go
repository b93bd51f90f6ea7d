package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/probe"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Well-known node labels the agent sets (a node may set these on itself).
const (
	LabelHostname = "kubernetes.io/hostname"
	LabelOS       = "kubernetes.io/os"
	LabelArch     = "kubernetes.io/arch"
)

// Defaults of Config.
const (
	DefaultHeartbeatPeriod = 2 * time.Second
	DefaultRelistPeriod    = 5 * time.Second
	DefaultResyncPeriod    = time.Minute
	DefaultMaxPods         = 110
	// statusWriters bounds one agent's status writes in flight, as the
	// kubelet's status manager does: a node starting many pods at once
	// should not put them all on the control plane at the same moment.
	statusWriters = 4
)

// Config is everything an Agent needs; Client, NodeName and Runtime are
// required.
type Config struct {
	// Client talks to the control plane with this node's credential
	// (system:node:<NodeName>).
	Client   *client.Client
	NodeName string
	Runtime  runtime.Runtime
	// NewNetwork builds the pod network once the control plane has given
	// the node its pod CIDR (default: an in-memory network.IPAM).
	NewNetwork func(podCIDR netip.Prefix) (network.Network, error)

	// Capacity is what the node has (cpu, memory, pods; pods defaults to
	// DefaultMaxPods); Allocatable what pods may use (default Capacity).
	Capacity    api.ResourceList
	Allocatable api.ResourceList
	// Labels are added to the node's (only those a node may set itself:
	// kubernetes.io/{hostname,os,arch}, node.kubernetes.io/*,
	// topology.kubernetes.io/*, skiff.io/agent-*). hostname, os and arch
	// are set by default.
	Labels map[string]string
	// Addresses of the node; the first InternalIP is the pods' hostIP.
	Addresses []api.NodeAddress
	// NodeInfo is reported as status.nodeInfo; the agent fills in the OS,
	// architecture and container runtime when they are empty.
	NodeInfo api.NodeSystemInfo
	// Version is the agent's version (status.nodeInfo.kubeletVersion).
	Version string
	// Metrics, if set, gets the agent's metrics (probes).
	Metrics prometheus.Registerer
	// SimulatedProbes makes every probe pass without running it: for
	// simulated nodes, whose pods have no process and no address to
	// probe (a kubemark hollow node does the same).
	SimulatedProbes bool
	// DaemonPort is the port of the agent's endpoint (logs, exec, image
	// import), reported in the Node's status (0: it serves none).
	DaemonPort int32
	// Proxy, if set, is kept programmed with every Service and its
	// Endpoints (service load balancing; simulated nodes have none).
	Proxy ServiceProxy
	// Routes, if set, is kept programmed with a route to every other
	// node's pod CIDR via its InternalIP (simulated nodes have none).
	Routes RouteSyncer
	// PodLogDir holds the containers' log files (the runtime writes them;
	// `skiff logs` reads them). Empty: container output is discarded (the
	// fake runtime of simulated nodes has none).
	PodLogDir string

	// HeartbeatPeriod is how often the agent tells the control plane it is
	// alive (default 2s; the control plane's grace period is 10s).
	HeartbeatPeriod time.Duration
	// RelistPeriod is how often the agent lists the runtime's containers
	// to notice ones that exited on their own (default 5s).
	RelistPeriod time.Duration
	// ResyncPeriod is how often every pod is synced even if nothing was
	// noticed (default 1m): the safety net for what a relist cannot see,
	// such as a sandbox that vanished before any relist saw it.
	ResyncPeriod time.Duration

	// FenceAfter turns on isolation fencing: when the agent has reached no
	// API server and no other node's agent for this long, it stops every
	// pod it runs, and starts those the API still has once an API server
	// answers again (see fence.go). Set it to the control plane's node
	// grace period, after which the pods are replaced elsewhere. A node
	// that knows no other node never fences. 0: never.
	FenceAfter time.Duration
	// ReachPeer tells whether another node's agent accepts connections at
	// host:port, for fencing (default: a TCP connection).
	ReachPeer ReachFunc

	// BackoffMin and BackoffMax bound the back-off of restarting a
	// crashing container or retrying a failed start or pull: BackoffMin
	// (default 10s) doubling up to BackoffMax (default 5m), as the
	// kubelet's.
	BackoffMin, BackoffMax time.Duration

	Clock  Clock        // default RealClock
	Logger *slog.Logger // default: discard
}

// Agent runs one node: it registers the Node, heartbeats, watches the pods
// bound to the node and drives each to its desired state through the
// runtime, reporting their status.
//
// Goroutines: Run itself (the event loop), one heartbeat loop, the pod
// watch's reader (in the client), one worker per pod only while that
// pod is changing, and with fencing on a fence loop and a node watch. All
// of them end before Run returns.
type Agent struct {
	cfg    Config
	c      *client.Client
	rt     runtime.Runtime
	clock  Clock
	log    *slog.Logger
	rtName string

	hostIP string

	// Set by Run once the pod CIDR is known.
	net network.Network
	// Owned by the event loop: what the last relist saw.
	relisted          map[runtime.ContainerID]relisted
	relistedSandboxes map[runtime.SandboxID]api.UID

	statusSlots chan struct{} // statusWriters tokens
	probes      *probe.Manager
	// lastBeat is when the heartbeat loop last got an answer (unix ns of
	// a.clock), so the fence checks need not send beats of their own.
	lastBeat atomic.Int64

	mu       sync.Mutex
	node     *api.Node // set by Register, and by Run once it has a pod CIDR
	pods     map[api.UID]*podState
	stopping bool // no worker may start: shutting down, or fenced
	workers  sync.WaitGroup
}

// New checks cfg and returns an agent; nothing is contacted until
// Register or Run.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("nodeagent: no client")
	case cfg.Runtime == nil:
		return nil, errors.New("nodeagent: no runtime")
	case cfg.NodeName == "":
		return nil, errors.New("nodeagent: no node name")
	}
	if errs := api.DNS1123SubdomainErrors(cfg.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("nodeagent: node name %q: %s", cfg.NodeName, errs[0])
	}
	if cfg.HeartbeatPeriod <= 0 {
		cfg.HeartbeatPeriod = DefaultHeartbeatPeriod
	}
	if cfg.RelistPeriod <= 0 {
		cfg.RelistPeriod = DefaultRelistPeriod
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = DefaultResyncPeriod
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	if cfg.FenceAfter < 0 {
		return nil, fmt.Errorf("nodeagent: fence period %v: want 0 (never) or more", cfg.FenceAfter)
	}
	if cfg.ReachPeer == nil {
		cfg.ReachPeer = tcpReach
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NewNetwork == nil {
		cfg.NewNetwork = func(p netip.Prefix) (network.Network, error) { return network.NewIPAM(p) }
	}
	if cfg.NodeInfo.OperatingSystem == "" {
		cfg.NodeInfo.OperatingSystem = goruntime.GOOS
	}
	if cfg.NodeInfo.Architecture == "" {
		cfg.NodeInfo.Architecture = goruntime.GOARCH
	}
	if cfg.NodeInfo.KubeletVersion == "" {
		cfg.NodeInfo.KubeletVersion = cfg.Version
	}
	a := &Agent{
		cfg: cfg, c: cfg.Client, rt: cfg.Runtime, clock: cfg.Clock,
		log:         cfg.Logger.With("node", cfg.NodeName),
		pods:        map[api.UID]*podState{},
		statusSlots: make(chan struct{}, statusWriters),
	}
	execer, _ := cfg.Runtime.(runtime.Execer)
	var pm *probe.Metrics
	if cfg.Metrics != nil {
		pm = probe.NewMetrics(cfg.Metrics)
	}
	a.probes = probe.NewManager(probe.Config{Clock: cfg.Clock, Execer: execer, Metrics: pm, Logger: a.log.With("component", "probe")})
	for _, ad := range cfg.Addresses {
		if ad.Type == api.NodeInternalIP {
			a.hostIP = ad.Address
			break
		}
	}
	return a, nil
}

// NodeName is the node this agent runs.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Node is the Node as last registered (nil before Register).
func (a *Agent) Node() *api.Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node
}

func (a *Agent) setNode(n *api.Node) {
	a.mu.Lock()
	a.node = n
	a.mu.Unlock()
}

// Run registers the node (unless Register already did), then heartbeats
// and runs the node's pods until ctx ends, and returns nil then; an error
// means the node could not run at all (refused registration, no runtime).
// Pods keep running when Run returns: an agent started again on the same
// runtime adopts them.
func (a *Agent) Run(parent context.Context) error {
	if a.Node() == nil {
		if err := a.Register(parent); err != nil {
			if parent.Err() != nil {
				return nil
			}
			return err
		}
	}
	// Every loop ends with ctx, before the workers are stopped for good
	// (fencing may start them again only while ctx lasts).
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.heartbeatLoop(ctx) })
	wg.Go(func() { a.probeLoop(ctx) })

	if a.cfg.Proxy != nil {
		wg.Go(func() { a.servicesLoop(ctx) })
	}
	// The fence loop drives the workers and the prober: it ends before
	// they are stopped.
	var fencing sync.WaitGroup
	var peers *peerSet
	if a.cfg.FenceAfter > 0 {
		peers = &peerSet{}
		fencing.Go(func() { a.fenceLoop(ctx, peers) })
	}
	if a.cfg.Routes != nil || peers != nil {
		wg.Go(func() { a.nodesLoop(ctx, peers) })
	}

	err := a.runPods(ctx)
	cancel()
	fencing.Wait()

	a.mu.Lock()
	a.stopping = true
	for _, ps := range a.pods {
		if ps.retry != nil {
			ps.retry.Stop()
			ps.retry = nil
		}
	}
	a.mu.Unlock()
	a.workers.Wait()
	a.probes.Stop()
	if parent.Err() != nil {
		return nil
	}
	return err
}

// sleep waits d or until ctx ends (false).
func (a *Agent) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-a.clock.After(d):
		return true
	}
}

// terminal reports an API answer no retry changes: the request itself is
// refused (forbidden, invalid).
func terminal(err error) bool {
	var st *api.Status
	if !errors.As(err, &st) {
		return false
	}
	switch st.Code {
	case 400, 401, 403, 405, 413, 415, 422:
		return true
	}
	return false
}
