package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bpf"
)

// DefaultPinDir is where the eBPF datapath pins its maps and links.
const DefaultPinDir = "/sys/fs/bpf/skiff"

func probeBPF() (ProbeResult, error) {
	f, err := bpf.Probe()
	return ProbeResult{SockDestroy: f.SockDestroy}, err
}

func isNotSupported(err error) bool { return errors.Is(err, ebpf.ErrNotSupported) }

func bpfConfig(cfg Config) bpf.Config {
	pin := cfg.PinDir
	if pin == "" {
		pin = DefaultPinDir
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return bpf.Config{PinDir: pin, CgroupPath: cfg.CgroupPath, NetnsPaths: cfg.NetnsPaths, Logger: log.With("proxy", "ebpf")}
}

// ebpfEngine serves service ports with the eBPF datapath.
type ebpfEngine struct {
	dp    *bpf.Datapath
	log   *slog.Logger
	stats io.Closer // BPF run statistics kept on (Config.BPFStats), or nil
}

func openEBPF(cfg Config) (engine, error) {
	if cfg.CgroupPath == "" {
		return nil, errors.New("no cgroup to attach to (Config.CgroupPath)")
	}
	bc := bpfConfig(cfg)
	dp, err := bpf.Open(bc)
	if err != nil {
		return nil, err
	}
	dp.SetDestroyTCP(cfg.DestroyTCP)
	e := &ebpfEngine{dp: dp, log: bc.Logger}
	if cfg.BPFStats {
		st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			dp.Close()
			return nil, fmt.Errorf("enable BPF run statistics: %w", err)
		}
		e.stats = st
	}
	return e, nil
}

func bpfServices(ports []ServicePort) []bpf.Service {
	list := make([]bpf.Service, 0, len(ports))
	for _, p := range ports {
		s := bpf.Service{VIP: p.VIP, Port: p.Port, Protocol: bpfProtocol(p.Protocol), AffinityTimeout: p.Affinity}
		s.Backends = make([]bpf.Backend, 0, len(p.Backends))
		for _, be := range p.Backends {
			s.Backends = append(s.Backends, bpf.Backend{Addr: be.Addr(), Port: be.Port()})
		}
		list = append(list, s)
	}
	return list
}

func (e *ebpfEngine) sync(ports []ServicePort) error {
	st, err := e.dp.Sync(bpfServices(ports))
	if err != nil {
		return err
	}
	if st.Added+st.Updated+st.Removed+st.Destroyed > 0 {
		e.log.Debug("datapath synced", "services", len(ports), "added", st.Added, "updated", st.Updated, "removed", st.Removed, "destroyed_sockets", st.Destroyed)
	}
	return nil
}

// update removes first: a key that moves between services in one batch
// is removed and written again.
func (e *ebpfEngine) update(upsert []ServicePort, remove []PortKey) error {
	var errs []error
	if len(remove) > 0 {
		keys := make([]bpf.ServiceKey, 0, len(remove))
		for _, k := range remove {
			keys = append(keys, bpf.ServiceKey{VIP: k.VIP, Port: k.Port, Protocol: bpfProtocol(k.Protocol)})
		}
		_, err := e.dp.Remove(keys...)
		errs = append(errs, err)
	}
	if len(upsert) > 0 {
		_, err := e.dp.Upsert(bpfServices(upsert)...)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (e *ebpfEngine) programStats() (map[string]programStats, error) {
	st, err := e.dp.ProgramStats()
	if err != nil {
		return nil, err
	}
	out := make(map[string]programStats, len(st))
	for name, s := range st {
		out[name] = programStats{runs: s.Runs, runTime: s.RunTime}
	}
	return out, nil
}

func bpfProtocol(p api.Protocol) bpf.Protocol {
	if p == api.ProtocolUDP {
		return bpf.UDP
	}
	return bpf.TCP
}

func (e *ebpfEngine) counters() (map[PortKey]PortCounters, error) {
	cs, err := e.dp.Counters()
	if err != nil {
		return nil, err
	}
	out := make(map[PortKey]PortCounters, len(cs))
	for k, c := range cs {
		proto := api.ProtocolTCP
		if k.Protocol == bpf.UDP {
			proto = api.ProtocolUDP
		}
		out[PortKey{VIP: k.VIP, Port: k.Port, Protocol: proto}] = PortCounters{Connections: c.Connections, Datagrams: c.Datagrams}
	}
	return out, nil
}

// close releases the handles; pinned maps and links keep forwarding.
func (e *ebpfEngine) close() error {
	if e.stats != nil {
		e.stats.Close()
	}
	return e.dp.Close()
}

// Cleanup removes what proxiers of cfg left on the node: the eBPF
// datapath's links and pins under cfg.PinDir (when cfg.CgroupPath or a
// pin directory is given) and the userspace proxy's labelled VIPs on
// cfg.Link in cfg.NetNS (skiff agent --cleanup).
func Cleanup(cfg Config) error {
	var errs []error
	if err := bpf.Cleanup(bpfConfig(cfg)); err != nil {
		errs = append(errs, fmt.Errorf("ebpf: %w", err))
	}
	if err := cleanupUserspace(cfg); err != nil {
		errs = append(errs, fmt.Errorf("userspace: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("proxy: cleanup: %w", err)
	}
	return nil
}
