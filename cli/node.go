package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/network/cni"
	"github.com/skiffhq/skiff/nodeagent/network/routes"
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
	BackoffMax    time.Duration
	// Port is the agent endpoint's (logs, exec, image import; default
	// 10250), on NodeIP.
	Port int
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
		if err := importImage(ctx, rt, path, log); err != nil {
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
	ag, err := nodeagent.New(nodeagent.Config{
		Client: c, NodeName: cfg.Name, Runtime: rt,
		NewNetwork: func(cidr netip.Prefix) (network.Network, error) {
			return cni.New(cni.Config{PodCIDR: cidr, StateDir: cfg.DataDir, PluginDirs: cfg.CNIPluginDirs, Logger: log.With("component", "cni")})
		},
		Capacity: capacity, Allocatable: nodeagent.Allocatable(capacity),
		Labels: cfg.Labels, Version: cfg.Version,
		Addresses: []api.NodeAddress{
			{Type: api.NodeInternalIP, Address: hostIP},
			{Type: api.NodeHostName, Address: cfg.Name},
		},
		HeartbeatPeriod: cfg.Heartbeat, BackoffMax: cfg.BackoffMax,
		Routes: rts, PodLogDir: filepath.Join(cfg.DataDir, "pods"),
		DaemonPort: int32(port), Logger: log,
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

// importImage loads one image tarball into the node's containerd.
func importImage(ctx context.Context, rt *containerd.Runtime, path string, log *slog.Logger) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import image: %w", err)
	}
	defer f.Close()
	imgs, err := rt.ImportImages(ctx, f)
	if err != nil {
		return fmt.Errorf("import image %s: %w", path, err)
	}
	for _, img := range imgs {
		log.Info("image imported", "image", img.Ref, "file", path)
	}
	return nil
}
