package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// IfName is the sandbox's interface on the pod network.
const IfName = "eth0"

// DefaultBridge is the bridge's name when Config.BridgeName is empty.
const DefaultBridge = "skiff0"

// DefaultPluginDirs are searched for plugins when Config.PluginDirs is
// empty: Debian's location, then the upstream one.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Config configures a Network.
type Config struct {
	// PodCIDR is the node's pod CIDR (required). Its first address is the
	// bridge's and the pods' gateway.
	PodCIDR netip.Prefix
	// StateDir is the agent's state directory (required). The network
	// keeps StateDir/cni/{net.d,cache,ipam} there: the conflist written
	// for operators, libcni's result cache, host-local's allocations.
	StateDir string
	// BridgeName is the bridge pods attach to (default skiff0).
	BridgeName string
	// MTU of the bridge and the pods' interfaces (0: the plugin's
	// default, 1500).
	MTU int
	// PluginDirs are searched for the plugin binaries (default
	// DefaultPluginDirs).
	PluginDirs []string
	// IPMasq masquerades pod traffic leaving the pod CIDR. Off by default:
	// pods get no way off the node unless the operator asks.
	IPMasq bool
	// NetNS is the network namespace the bridge lives in (a path such as
	// /run/netns/NAME). Empty: the namespace of the calling process.
	NetNS string
	// Logger (default: discard).
	Logger *slog.Logger
	// Metrics (nil: none).
	Metrics *Metrics
}

func (c Config) dir(sub string) string { return filepath.Join(c.StateDir, "cni", sub) }
func (c Config) confDir() string       { return c.dir("net.d") }
func (c Config) cacheDir() string      { return c.dir("cache") }
func (c Config) dataDir() string       { return c.dir("ipam") }

// Network attaches sandboxes to the node's bridge through the CNI plugins.
type Network struct {
	cfg  Config
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	log  *slog.Logger

	locksMu sync.Mutex
	locks   map[runtime.SandboxID]*sandboxLock
}

var _ network.Network = (*Network)(nil)

type sandboxLock struct {
	sync.Mutex
	users int
}

// New checks cfg, writes the conflist and returns the network. It does
// not run any plugin: the bridge appears with the first Attach.
func New(cfg Config) (*Network, error) {
	if !cfg.PodCIDR.IsValid() {
		return nil, errors.New("cni: no pod CIDR")
	}
	cfg.PodCIDR = cfg.PodCIDR.Masked()
	if cfg.PodCIDR.Addr().BitLen()-cfg.PodCIDR.Bits() < 2 {
		return nil, fmt.Errorf("cni: pod CIDR %v is too small", cfg.PodCIDR)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("cni: no state dir")
	}
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridge
	}
	if len(cfg.BridgeName) > 15 {
		return nil, fmt.Errorf("cni: bridge name %q is longer than 15 bytes", cfg.BridgeName)
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = DefaultPluginDirs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NetNS != "" {
		if ok, err := nsrun.IsNetNS(cfg.NetNS); err != nil || !ok {
			return nil, fmt.Errorf("cni: %s is not a network namespace (%v)", cfg.NetNS, err)
		}
	}
	if _, err := (&invoke.RawExec{}).FindInPath("bridge", cfg.PluginDirs); err != nil {
		return nil, fmt.Errorf("cni: bridge plugin not in %v (install containernetworking-plugins): %w", cfg.PluginDirs, err)
	}
	conf, err := conflist(cfg)
	if err != nil {
		return nil, err
	}
	list, err := libcni.NetworkConfFromBytes(conf)
	if err != nil {
		return nil, fmt.Errorf("cni: parse conflist: %w", err)
	}
	for _, d := range []string{cfg.confDir(), cfg.cacheDir(), cfg.dataDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cni: %w", err)
		}
	}
	if err := writeFile(filepath.Join(cfg.confDir(), "10-skiff.conflist"), conf); err != nil {
		return nil, err
	}
	ex := &nsExec{netns: cfg.NetNS, raw: &invoke.RawExec{Stderr: io.Discard}}
	return &Network{
		cfg:   cfg,
		cni:   libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, cfg.cacheDir(), ex),
		list:  list,
		log:   cfg.Logger,
		locks: map[runtime.SandboxID]*sandboxLock{},
	}, nil
}

// writeFile replaces path atomically.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("cni: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cni: %w", err)
	}
	return nil
}

// Prefix is the pod CIDR.
func (n *Network) Prefix() netip.Prefix { return n.cfg.PodCIDR }

// Gateway is the pods' gateway: the bridge's address.
func (n *Network) Gateway() netip.Addr { return n.cfg.PodCIDR.Addr().Next() }

// BridgeName is the bridge pods attach to.
func (n *Network) BridgeName() string { return n.cfg.BridgeName }

func (n *Network) lock(id runtime.SandboxID) func() {
	n.locksMu.Lock()
	l := n.locks[id]
	if l == nil {
		l = &sandboxLock{}
		n.locks[id] = l
	}
	l.users++
	n.locksMu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		n.locksMu.Lock()
		if l.users--; l.users == 0 {
			delete(n.locks, id)
		}
		n.locksMu.Unlock()
	}
}

func (n *Network) runtimeConf(a network.Attachment) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: string(a.Sandbox), NetNS: a.NetNS, IfName: IfName}
}

// Attach implements network.Network: it runs ADD for a new sandbox and
// returns its address. A sandbox attached before (by this instance or
// one before it, over the same state dir) is CHECKed and keeps its
// address; one whose attachment is broken is detached and attached again,
// asking for the address it had. Attach asks host-local for a.Prefer when
// it is a usable address of the pod CIDR and takes another one if that is
// taken.
func (n *Network) Attach(ctx context.Context, a network.Attachment) (netip.Addr, error) {
	if a.Sandbox == "" || a.NetNS == "" {
		return netip.Addr{}, fmt.Errorf("cni: attach: sandbox %q has no network namespace", a.Sandbox)
	}
	defer n.lock(a.Sandbox)()
	rt := n.runtimeConf(a)

	prefer := a.Prefer
	if cached, cachedNS, err := n.cached(rt); err != nil {
		return netip.Addr{}, err
	} else if cached.IsValid() {
		if cachedNS == a.NetNS {
			err := n.timed(opCheck, func() error { return n.cni.CheckNetworkList(ctx, n.list, rt) })
			if err == nil {
				return cached, nil
			}
			n.log.Warn("cni: attached sandbox fails CHECK; attaching again", "sandbox", a.Sandbox, "ip", cached, "err", err)
		}
		if !prefer.IsValid() {
			prefer = cached
		}
		old := *rt
		old.NetNS = cachedNS
		if err := n.del(ctx, &old); err != nil {
			return netip.Addr{}, err
		}
	}

	if prefer.IsValid() && usable(n.cfg.PodCIDR, prefer) {
		ip, err := n.add(ctx, rt, prefer)
		if err == nil {
			return ip, nil
		}
		n.log.Info("cni: preferred address not given; taking another", "sandbox", a.Sandbox, "prefer", prefer, "err", err)
		if err := n.del(ctx, rt); err != nil {
			return netip.Addr{}, err
		}
	}
	ip, err := n.add(ctx, rt, netip.Addr{})
	if err != nil {
		// A failed ADD can leave half an attachment (a veth, an address).
		if derr := n.del(ctx, rt); derr != nil {
			n.log.Warn("cni: clean up after a failed ADD", "sandbox", a.Sandbox, "err", derr)
		}
		return netip.Addr{}, err
	}
	return ip, nil
}

// add runs ADD, asking for prefer when valid, and returns the pod address.
func (n *Network) add(ctx context.Context, rt *libcni.RuntimeConf, prefer netip.Addr) (netip.Addr, error) {
	rt = &libcni.RuntimeConf{ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName}
	if prefer.IsValid() {
		rt.CapabilityArgs = map[string]any{"ips": []string{netip.PrefixFrom(prefer, n.cfg.PodCIDR.Bits()).String()}}
	}
	var res types.Result
	err := n.timed(opAdd, func() (err error) {
		res, err = n.cni.AddNetworkList(ctx, n.list, rt)
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "no IP addresses available") {
			err = fmt.Errorf("%w (%w)", network.ErrExhausted, err)
		}
		return netip.Addr{}, fmt.Errorf("cni: add sandbox %s: %w", rt.ContainerID, err)
	}
	ip, err := n.podIP(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni: add sandbox %s: %w", rt.ContainerID, err)
	}
	return ip, nil
}

// podIP finds the address in the pod CIDR in an ADD result.
func (n *Network) podIP(res types.Result) (netip.Addr, error) {
	if res == nil {
		return netip.Addr{}, errors.New("no result")
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("convert result: %w", err)
	}
	for _, c := range r.IPs {
		if a, ok := netip.AddrFromSlice(c.Address.IP); ok && n.cfg.PodCIDR.Contains(a.Unmap()) {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no address in %v in the result", n.cfg.PodCIDR)
}

// cached returns the address and namespace of a sandbox's cached
// attachment (zero when none).
func (n *Network) cached(rt *libcni.RuntimeConf) (netip.Addr, string, error) {
	res, err := n.cni.GetNetworkListCachedResult(n.list, rt)
	if err != nil || res == nil {
		// An unreadable cache entry is as good as none: ADD rewrites it.
		return netip.Addr{}, "", nil
	}
	ip, err := n.podIP(res)
	if err != nil {
		return netip.Addr{}, "", nil
	}
	atts, err := n.cni.GetCachedAttachments(rt.ContainerID)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("cni: read cache of sandbox %s: %w", rt.ContainerID, err)
	}
	for _, a := range atts {
		if a.Network == n.list.Name && a.IfName == rt.IfName {
			return ip, a.NetNS, nil
		}
	}
	return netip.Addr{}, "", nil
}

// Detach implements network.Network: DEL releases the address and
// removes the sandbox's veth. It succeeds for a sandbox never attached
// or already detached, and when the sandbox's namespace is gone (the
// veth went with it; only the address is released).
func (n *Network) Detach(ctx context.Context, a network.Attachment) error {
	if a.Sandbox == "" {
		return errors.New("cni: detach: no sandbox")
	}
	defer n.lock(a.Sandbox)()
	rt := n.runtimeConf(a)
	if _, cachedNS, _ := n.cached(rt); rt.NetNS == "" {
		rt.NetNS = cachedNS
	}
	return n.del(ctx, rt)
}

// del runs DEL, without a namespace when rt's is no longer one.
func (n *Network) del(ctx context.Context, rt *libcni.RuntimeConf) error {
	rt = &libcni.RuntimeConf{ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName}
	if rt.NetNS != "" {
		if ok, err := nsrun.IsNetNS(rt.NetNS); err == nil && !ok {
			rt.NetNS = ""
		}
	}
	err := n.timed(opDel, func() error { return n.cni.DelNetworkList(ctx, n.list, rt) })
	if err != nil {
		return fmt.Errorf("cni: delete sandbox %s: %w", rt.ContainerID, err)
	}
	return nil
}

// Attached lists the sandboxes with an attachment on record, with the
// namespace each was attached in and its address (as Prefer): after a
// restart, the agent detaches those whose sandbox no longer exists, or
// their addresses would leak.
func (n *Network) Attached() ([]network.Attachment, error) {
	atts, err := n.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("cni: list attachments: %w", err)
	}
	var out []network.Attachment
	for _, c := range atts {
		if c.Network != n.list.Name || c.IfName != IfName {
			continue
		}
		a := network.Attachment{Sandbox: runtime.SandboxID(c.ContainerID), NetNS: c.NetNS}
		if res, err := n.cni.GetNetworkListCachedResult(n.list, n.runtimeConf(a)); err == nil && res != nil {
			a.Prefer, _ = n.podIP(res)
		}
		out = append(out, a)
	}
	return out, nil
}

func (n *Network) timed(op string, fn func() error) error {
	start := time.Now()
	err := fn()
	n.cfg.Metrics.observe(op, time.Since(start), err)
	return err
}

// nsExec runs plugins from a thread inside netns (when set).
type nsExec struct {
	version.PluginDecoder
	netns string
	raw   *invoke.RawExec
}

var _ invoke.Exec = (*nsExec)(nil)

func (e *nsExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	if e.netns == "" {
		return e.raw.ExecPlugin(ctx, path, stdin, env)
	}
	var out []byte
	err := nsrun.Do(e.netns, func() (err error) {
		out, err = e.raw.ExecPlugin(ctx, path, stdin, env)
		return err
	})
	return out, err
}

func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return e.raw.FindInPath(plugin, paths)
}
