package proxy

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"

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
	dp  *bpf.Datapath
	log *slog.Logger
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
	return &ebpfEngine{dp: dp, log: bc.Logger}, nil
}

func (e *ebpfEngine) sync(ports []ServicePort) error {
	list := make([]bpf.Service, 0, len(ports))
	for _, p := range ports {
		s := bpf.Service{VIP: p.VIP, Port: p.Port, Protocol: bpfProtocol(p.Protocol), AffinityTimeout: p.Affinity}
		s.Backends = make([]bpf.Backend, 0, len(p.Backends))
		for _, be := range p.Backends {
			s.Backends = append(s.Backends, bpf.Backend{Addr: be.Addr(), Port: be.Port()})
		}
		list = append(list, s)
	}
	st, err := e.dp.Sync(list)
	if err != nil {
		return err
	}
	if st.Added+st.Updated+st.Removed+st.Destroyed > 0 {
		e.log.Debug("datapath synced", "services", len(list), "added", st.Added, "updated", st.Updated, "removed", st.Removed, "destroyed_sockets", st.Destroyed)
	}
	return nil
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
func (e *ebpfEngine) close() error { return e.dp.Close() }

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
