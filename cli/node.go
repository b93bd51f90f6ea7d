package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bpf"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/network/cni"
	"github.com/skiffhq/skiff/nodeagent/network/routes"
	"github.com/skiffhq/skiff/nodeagent/proxy"
	"github.com/skiffhq/skiff/nodeagent/runtime/containerd"
	"github.com/skiffhq/skiff/nodeagent/server"
)

// nodeConfig is what a real node (containerd, CNI, host routes) needs.
// skiff agent fills it from flags, skiff dev from its own settings.
type nodeConfig struct {
	Servers []string
	// Token joins the node the first time; later starts reuse the
	// credentials saved in DataDir (a token may have expired by then).
	Token *api.JoinToken
	Name  string
	// NodeIP is the node's InternalIP (default: the first global IPv4
	// address of an interface that is up, else 127.0.0.1).
	NodeIP  string
	DataDir string
	// Containerd is the socket of a running containerd; empty starts and
	// supervises one with its state under DataDir/containerd.
	Containerd   string
	Namespace    string
	CgroupParent string
	// StateDir holds the sandboxes' network namespace mounts (a tmpfs
	// such as /run is best: they do not outlive a reboot).
	StateDir      string
	CNIPluginDirs []string
	ServiceCIDR   netip.Prefix
	Labels        map[string]string
	MaxPods       int
	Heartbeat     time.Duration
	// FenceAfter is nodeagent.Config.FenceAfter: stop the node's pods
	// once it has reached no API server and no other node for this long
	// (0: never).
	FenceAfter time.Duration
	BackoffMax time.Duration
	// Port is the agent endpoint's (logs, exec, image import; default
	// 10250), on NodeIP.
	Port int
	// ProxyMode is the service load balancing: auto, ebpf or userspace.
	ProxyMode proxy.Mode
	// PinDir is where the eBPF datapath pins its maps and links (default
	// /sys/fs/bpf/skiff/<node>).
	PinDir string
	// BPFStats turns on the kernel's run-time statistics of the eBPF
	// programs (skiff_proxy_bpf_program_run_seconds_total).
	BPFStats bool
	// MetricsAddr, if set, serves the agent's /metrics there (plain HTTP).
	MetricsAddr string
	// Images are tarballs imported into the node's containerd at start.
	Images  []string
	Version string
	Log     *slog.Logger
}

// nodeCredentials is the file a joined node keeps its client config in.
const nodeCredentials = "node.conf"

// runNode runs a node agent on containerd until ctx ends. The containers
// keep running when it returns: the next start adopts them.
func runNode(ctx context.Context, cfg nodeConfig) error {
	log := cfg.Log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("agent data dir: %w", err)
	}
	hostIP := cfg.NodeIP
	if hostIP == "" {
		ip, err := nodeagent.HostIP(cni.DefaultBridge)
		if err != nil {
			return err
		}
		hostIP = ip
	}
	ccfg, err := nodeClientConfig(ctx, cfg, hostIP)
	if err != nil {
		return err
	}
	c, err := client.New(*ccfg)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	address := cfg.Containerd
	if address == "" {
		// The daemon dies with this process (the containers do not: their
		// shims outlive it, and the next start's daemon finds them again),
		// so a killed agent leaves no daemon that a second one would fight
		// over the same state directory.
		d, err := containerd.NewDaemon(containerd.DaemonConfig{Dir: filepath.Join(cfg.DataDir, "containerd"),
			KillWithParent: true, Logger: log.With("component", "containerd")})
		if err != nil {
			return err
		}
		if containerd.Serving(ctx, d.Address()) {
			return fmt.Errorf("a containerd is already serving %s (left by an earlier run?): stop it, or pass its socket with --containerd", d.Address())
		}
		run := make(chan error, 1)
		wg.Go(func() { run <- d.Run(ctx) })
		log.Info("starting containerd", "socket", d.Address())
		if err := d.WaitReady(ctx, run); err != nil {
			return err
		}
		address = d.Address()
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the skiff binary (the containers' log driver): %w", err)
	}
	rt, err := containerd.New(containerd.Config{
		Address: address, Namespace: cfg.Namespace, CgroupParent: cfg.CgroupParent,
		StateDir: cfg.StateDir, LogDriver: self, Logger: log.With("component", "runtime"),
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	for _, path := range cfg.Images {
		if err := importImage(ctx, rt, path, filepath.Join(cfg.DataDir, importedImages), log); err != nil {
			return err
		}
	}

	capacity, err := nodeagent.MachineCapacity(cfg.MaxPods)
	if err != nil {
		return err
	}
	rts, err := routes.New(routes.Config{ServiceCIDRs: []netip.Prefix{cfg.ServiceCIDR}, Logger: log.With("component", "routes")})
	if err != nil {
		return fmt.Errorf("host routes: %w", err)
	}
	defer rts.Close()
	cert, err := tls.X509KeyPair([]byte(ccfg.ClientCertificateData), []byte(ccfg.ClientKeyData))
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM([]byte(ccfg.CertificateAuthorityData)) {
		return errors.New("node credentials: no cluster CA")
	}
	port := cfg.Port
	if port == 0 {
		port = server.DefaultPort
	}
	// Service load balancing for the pods: eBPF programs on the cgroup
	// that holds them (cgroup v2 side of this hybrid or unified host), or
	// the userspace proxy in this network namespace.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cgroupV2 := filepath.Join(cgroupV2Root(), cfg.CgroupParent)
	if err := os.MkdirAll(cgroupV2, 0o755); err != nil {
		return fmt.Errorf("pods' cgroup %s: %w", cgroupV2, err)
	}
	pinDir := cfg.PinDir
	if pinDir == "" {
		pinDir = filepath.Join(bpffsRoot, "skiff", cfg.Name)
	}
	if cfg.ProxyMode != proxy.ModeUserspace && strings.HasPrefix(pinDir, bpffsRoot+"/") {
		// Pins live there, so the datapath outlives the agent; hosts that
		// do not mount it at boot get it mounted (as Cilium's agent does).
		if err := bpf.MountBPFFS(bpffsRoot); err != nil {
			log.Warn("no bpffs for the eBPF datapath's pins", "err", err)
		}
	}
	netnsDir := filepath.Join(cfg.StateDir, "netns")
	px, err := proxy.New(proxy.Config{
		Mode: cfg.ProxyMode, NodeName: cfg.Name, PinDir: pinDir, CgroupPath: cgroupV2, BPFStats: cfg.BPFStats,
		NetnsPaths: func() ([]string, error) { return listDir(netnsDir) },
		Logger:     log.With("component", "proxy"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer px.Close()
	if cfg.MetricsAddr != "" {
		ml, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		ms := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() { _ = ms.Serve(ml) })
		wg.Go(func() { <-ctx.Done(); _ = ms.Close() })
		log.Info("serving metrics", "addr", ml.Addr().String())
	}
	cniMetrics := cni.NewMetrics(reg)
	ag, err := nodeagent.New(nodeagent.Config{
		Client: c, NodeName: cfg.Name, Runtime: rt,
		NewNetwork: func(cidr netip.Prefix) (network.Network, error) {
			return cni.New(cni.Config{PodCIDR: cidr, StateDir: cfg.DataDir, PluginDirs: cfg.CNIPluginDirs, Metrics: cniMetrics, Logger: log.With("component", "cni")})
		},
		Capacity: capacity, Allocatable: nodeagent.Allocatable(capacity),
		Labels: cfg.Labels, Version: cfg.Version,
		Addresses: []api.NodeAddress{
			{Type: api.NodeInternalIP, Address: hostIP},
			{Type: api.NodeHostName, Address: cfg.Name},
		},
		HeartbeatPeriod: cfg.Heartbeat, BackoffMax: cfg.BackoffMax, FenceAfter: cfg.FenceAfter,
		Routes: rts, PodLogDir: filepath.Join(cfg.DataDir, "pods"),
		DaemonPort: int32(port), Proxy: px, Metrics: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	// The endpoint the API servers reach for logs, exec and image import.
	srv, err := server.New(server.Config{NodeName: cfg.Name, Containers: ag, Exec: rt, Images: rt,
		Certificate: cert, ClientCAs: cas, Logger: log.With("component", "endpoint")})
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(hostIP, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent endpoint: %w", err)
	}
	wg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			log.Error("agent endpoint stopped", "err", err)
		}
	})
	if err := ag.Register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	log.Info("node registered; running pods on containerd", "node", cfg.Name, "podCIDR", ag.Node().Spec.PodCIDR,
		"internalIP", hostIP, "containerd", address, "namespace", cfg.Namespace)
	return ag.Run(ctx)
}

// nodeClientConfig returns the node's saved credentials, or joins the
// cluster with the token and saves them.
func nodeClientConfig(ctx context.Context, cfg nodeConfig, hostIP string) (*client.Config, error) {
	path := filepath.Join(cfg.DataDir, nodeCredentials)
	saved, err := client.LoadConfig(path)
	switch {
	case err == nil:
		if len(cfg.Servers) > 0 {
			saved.Servers = cfg.Servers
		}
		return saved, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("node credentials %s: %w (delete the file to join again with a token)", path, err)
	case cfg.Token == nil:
		return nil, fmt.Errorf("no node credentials in %s and no --token to join with", path)
	}
	j, err := client.NewJoiner(ctx, cfg.Servers, *cfg.Token)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	ccfg, err := j.JoinNode(ctx, cfg.Name, []string{cfg.Name, hostIP})
	if err != nil {
		return nil, err
	}
	if err := ccfg.Save(path); err != nil {
		return nil, fmt.Errorf("save the node credentials: %w", err)
	}
	return &ccfg, nil
}

// importedImages (in the data dir) records the tarballs imported at start:
// their SHA-256 and the images they held, so that a restarted agent skips
// an import whose images containerd still has (an import takes ~1s, which
// a restarting agent should spend heartbeating instead).
const importedImages = "imported-images.json"

// importImage loads one image tarball into the node's containerd, unless
// the record says it was imported and its images are all there.
func importImage(ctx context.Context, rt *containerd.Runtime, path, record string, log *slog.Logger) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("import image: %w", err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(b))
	done := map[string][]string{} // tarball SHA-256 -> image refs
	if rb, err := os.ReadFile(record); err == nil {
		if err := json.Unmarshal(rb, &done); err != nil {
			log.Warn("unreadable record of imported images; importing again", "file", record, "err", err)
			done = map[string][]string{}
		}
	}
	if refs, ok := done[sum]; ok && len(refs) > 0 {
		have := map[string]bool{}
		if imgs, err := rt.ListImages(ctx); err == nil {
			for _, img := range imgs {
				have[img.Ref] = true
			}
		}
		all := true
		for _, r := range refs {
			all = all && have[r]
		}
		if all {
			log.Info("image already imported", "images", refs, "file", path)
			return nil
		}
	}
	imgs, err := rt.ImportImages(ctx, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("import image %s: %w", path, err)
	}
	var refs []string
	for _, img := range imgs {
		log.Info("image imported", "image", img.Ref, "file", path)
		refs = append(refs, img.Ref)
	}
	done[sum] = refs
	if out, err := json.Marshal(done); err == nil {
		if err := os.WriteFile(record, out, 0o600); err != nil {
			log.Warn("record the imported images", "file", record, "err", err)
		}
	}
	return nil
}

// cgroupV2Root is where the cgroup v2 hierarchy is mounted: the
// "unified" mount of a hybrid host, or /sys/fs/cgroup itself.
func cgroupV2Root() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}

// listDir returns the paths of the entries of dir (none if it is absent).
func listDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out, nil
}

const bpffsRoot = "/sys/fs/bpf"

// cleanupNode removes a node's service load balancing: the eBPF programs'
// links and pins, and the userspace proxy's VIPs (skiff agent --cleanup).
func cleanupNode(name, pinDir, cgroupParent string, log *slog.Logger) error {
	if pinDir == "" {
		pinDir = filepath.Join(bpffsRoot, "skiff", name)
	}
	cfg := proxy.Config{NodeName: name, PinDir: pinDir, CgroupPath: filepath.Join(cgroupV2Root(), cgroupParent)}
	if err := proxy.Cleanup(cfg); err != nil {
		return err
	}
	log.Info("removed the node's service load balancing", "node", name, "pins", pinDir)
	return nil
}
