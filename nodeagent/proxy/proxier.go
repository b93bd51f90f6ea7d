package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
)

// Proxier programs a node's service datapath. Sync and Close may be
// called from different goroutines; Syncs are serialised.
type Proxier interface {
	// Sync makes the datapath serve exactly the ClusterIP service ports of
	// services, each with the ready addresses of the Endpoints of the same
	// namespace and name: the full desired set, passed again after any
	// change. What is already programmed and unchanged is left alone.
	Sync(ctx context.Context, services []*api.Service, endpoints []*api.Endpoints) error
	// Update applies changes to single services and leaves the others as
	// the last Sync or Update left them: the incremental form of Sync, for
	// a watch event. In ebpf mode its cost grows with the change, not with
	// the services programmed; the userspace proxy re-syncs its full set.
	// After an error, call Sync with the full set.
	Update(ctx context.Context, updates []ServiceUpdate) error
	// Mode is the datapath in use (ebpf or userspace; never auto).
	Mode() Mode
	// Close releases the proxier. In ebpf mode forwarding goes on (pinned
	// maps and links stay for the next agent); in userspace mode the
	// listeners and VIPs go away with it.
	Close() error
}

// Mode selects the datapath.
type Mode string

// Modes.
const (
	// ModeAuto picks ebpf when the kernel passes the feature probes, and
	// userspace otherwise (or when the probe cannot tell).
	ModeAuto      Mode = "auto"
	ModeEBPF      Mode = "ebpf"
	ModeUserspace Mode = "userspace"
)

// ParseMode parses a --proxy-mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeEBPF, ModeUserspace:
		return m, nil
	}
	return "", fmt.Errorf("proxy mode %q: want auto, ebpf or userspace", s)
}

// engine is a datapath: it serves a full set of service ports.
type engine interface {
	sync(ports []ServicePort) error
	// update writes service ports (new or changed) and deletes others,
	// leaving the rest alone.
	update(upsert []ServicePort, remove []PortKey) error
	// counters reads per service port traffic counters.
	counters() (map[PortKey]PortCounters, error)
	close() error
}

// PortCounters are a service port's traffic counters.
type PortCounters struct {
	// Connections: TCP connections and connected (or, in userspace mode,
	// per-client) UDP flows.
	Connections uint64
	// Datagrams: UDP datagrams sent by clients.
	Datagrams uint64
}

// proxier is the Proxier over either engine: it turns API objects into
// service ports, times the sync and keeps what the metrics report.
type proxier struct {
	mode     Mode
	eng      engine
	metrics  *metrics
	log      *slog.Logger
	nodeName string

	mu     sync.Mutex // serialises Sync, Update and Close
	state  *programmedState
	closed bool
}

var _ Proxier = (*proxier)(nil)

func (p *proxier) Mode() Mode { return p.mode }

func (p *proxier) Sync(ctx context.Context, services []*api.Service, endpoints []*api.Endpoints) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: closed")
	}
	ports, skipped := ServicePorts(services, endpoints, p.nodeName)
	p.logSkipped(skipped, p.state.allSkipped())
	start := time.Now()
	err := p.eng.sync(ports)
	p.metrics.observeSync(p.mode, "full", time.Since(start), err)
	p.state.reset(ports, skipped)
	if err != nil {
		return fmt.Errorf("proxy: %s sync of %d service ports: %w", p.mode, len(ports), err)
	}
	return nil
}

func (p *proxier) Update(ctx context.Context, updates []ServiceUpdate) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: closed")
	}
	var (
		upsert []ServicePort
		remove []PortKey
	)
	for _, u := range updates {
		n := nsName{u.Namespace, u.Name}
		var ports []ServicePort
		var skipped []Skipped
		if u.Service != nil {
			ports, skipped = appendServicePorts(nil, nil, u.Service, u.Endpoints, p.nodeName)
		}
		keep, up, rm, skipped := p.state.diff(n, ports, skipped)
		if len(skipped) > 0 {
			was := make(map[Skipped]bool)
			for _, sk := range p.state.skippedOf(n) {
				was[sk] = true
			}
			p.logSkipped(skipped, was)
		}
		// Recorded before the datapath is written, so that a later update
		// in this batch sees it; after an error the caller syncs in full,
		// which starts the record over.
		p.state.set(n, keep, skipped)
		upsert = append(upsert, up...)
		remove = append(remove, rm...)
	}
	if len(upsert)+len(remove) == 0 {
		return nil
	}
	start := time.Now()
	err := p.eng.update(upsert, remove)
	p.metrics.observeSync(p.mode, "update", time.Since(start), err)
	if err != nil {
		return fmt.Errorf("proxy: %s update of %d service ports: %w", p.mode, len(upsert)+len(remove), err)
	}
	return nil
}

// logSkipped logs each of skipped that was not in was: once, when it
// first appears.
func (p *proxier) logSkipped(skipped []Skipped, was map[Skipped]bool) {
	for _, s := range skipped {
		if !was[s] {
			p.log.Info("service not served by the proxy", "namespace", s.Namespace, "service", s.Service, "port", s.Port, "reason", s.Reason)
		}
	}
}

func (p *proxier) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.metrics.unregister()
	if err := p.eng.close(); err != nil {
		return fmt.Errorf("proxy: close %s: %w", p.mode, err)
	}
	return nil
}

// Config configures New.
type Config struct {
	// Mode: auto (default), ebpf or userspace.
	Mode Mode
	// NodeName filters the endpoints of services with
	// internalTrafficPolicy Local to this node's (empty: no filter).
	NodeName string

	// PinDir is the bpffs directory of the eBPF datapath's pinned maps and
	// links (default /sys/fs/bpf/skiff).
	PinDir string
	// CgroupPath is the cgroup v2 directory the eBPF programs attach to:
	// the one that holds every pod (the agent's cgroup parent under
	// /sys/fs/cgroup/unified). Required for ebpf and auto.
	CgroupPath string
	// NetnsPaths lists the network namespaces (paths such as
	// /run/netns/NAME or /proc/PID/ns/net: the pods') whose sockets the
	// eBPF stale-flow cleanup visits besides the agent's own: a socket
	// iterator sees only the namespace it runs in. Nil: only the agent's.
	NetnsPaths func() ([]string, error)
	// BPFStats turns the kernel's BPF run statistics on while the eBPF
	// datapath is open (skiff_proxy_bpf_program_run_seconds_total). They
	// cost a clock read per program run; off, the metric shows only what
	// kernel.bpf_stats_enabled counts.
	BPFStats bool
	// Probe reports what the kernel supports (default bpf.Probe; tests
	// inject failures).
	Probe func() (ProbeResult, error)

	// NetNS is the network namespace of the userspace proxy's VIPs,
	// listeners and backend connections (a path such as /run/netns/NAME).
	// Empty: the calling process's (the node's).
	NetNS string
	// Link holds the userspace proxy's VIPs (default lo).
	Link string
	// UDPIdleTimeout ends idle userspace UDP flows (default 30s).
	UDPIdleTimeout time.Duration

	// DestroyTCP closes TCP connections to a backend that leaves its
	// service (ebpf: with bpf_sock_destroy where the kernel has it;
	// userspace: at once). Off: they drain. Connected UDP flows to such
	// backends are always closed.
	DestroyTCP bool

	// Logger (default: discard).
	Logger *slog.Logger
	// Registerer gets the proxy's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// ProbeResult is what the eBPF feature probe found.
type ProbeResult struct {
	// SockDestroy: stale flows can be destroyed (kernel >= 6.5).
	SockDestroy bool
}

// New starts the proxier of cfg.Mode. In auto mode it probes the kernel:
// ebpf when the probe passes and the datapath opens, userspace when a
// feature is missing (the probe's error wraps ebpf.ErrNotSupported), when
// the probe cannot tell (any other error) or when opening fails. It logs
// the mode it chose and why, and sets skiff_proxy_mode_info.
func New(cfg Config) (Proxier, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Probe == nil {
		cfg.Probe = probeBPF
	}
	log := cfg.Logger
	var (
		eng    engine
		mode   Mode
		reason string
		err    error
	)
	switch cfg.Mode {
	case ModeEBPF:
		mode, reason = ModeEBPF, "requested"
		eng, err = openEBPF(cfg)
	case ModeUserspace:
		mode, reason = ModeUserspace, "requested"
		eng, err = openUserspace(cfg)
	case ModeAuto:
		mode, reason, eng, err = chooseAuto(cfg)
	default:
		return nil, fmt.Errorf("proxy: unknown mode %q", cfg.Mode)
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: %s mode: %w", mode, err)
	}
	state := newProgrammedState()
	m, err := newMetrics(cfg.Registerer, mode, eng, state)
	if err != nil {
		eng.close()
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	log.Info("service proxy mode", "mode", mode, "requested", cfg.Mode, "reason", reason)
	return &proxier{mode: mode, eng: eng, metrics: m, log: log, nodeName: cfg.NodeName, state: state}, nil
}

// chooseAuto probes and opens the eBPF datapath, falling back to userspace.
func chooseAuto(cfg Config) (Mode, string, engine, error) {
	feat, err := cfg.Probe()
	var reason string
	switch {
	case err == nil:
		eng, oerr := openEBPF(cfg)
		if oerr == nil {
			return ModeEBPF, fmt.Sprintf("eBPF feature probe passed (stale-flow socket destroy: %v)", feat.SockDestroy), eng, nil
		}
		reason = fmt.Sprintf("eBPF probe passed but the datapath did not open: %v", oerr)
	case isNotSupported(err):
		reason = fmt.Sprintf("kernel lacks an eBPF feature: %v", err)
	default:
		reason = fmt.Sprintf("eBPF support unknown, the probe failed: %v", err)
	}
	cfg.Logger.Warn("eBPF datapath unavailable, falling back to the userspace proxy", "reason", reason)
	eng, err := openUserspace(cfg)
	return ModeUserspace, reason, eng, err
}
