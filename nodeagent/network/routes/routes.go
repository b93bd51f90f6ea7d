package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Protocol marks the routes skiff owns (rtm_protocol; 83 is "S", unused by
// the well-known daemons in /etc/iproute2/rt_protos).
const Protocol netlink.RouteProtocol = 0x53

// ErrConflict: a route skiff wants has the destination of a route it does
// not own (whatever its metric); the foreign route is left alone.
var ErrConflict = errors.New("destination taken by a route skiff does not own")

// Route is a route to another node's pod CIDR.
type Route struct {
	Dst netip.Prefix // the other node's pod CIDR
	Via netip.Addr   // the other node's InternalIP
}

// Config configures Routes.
type Config struct {
	// NetNS is the network namespace to manage (a path such as
	// /run/netns/NAME). Empty: the calling process's.
	NetNS string
	// ServiceCIDRs get unreachable routes (none when empty).
	ServiceCIDRs []netip.Prefix
	// LinkName, when set, is the interface routes to other nodes leave by.
	// Empty: the kernel picks it from the gateway (the interface whose
	// subnet holds the other node's address).
	LinkName string
	// Logger (default: discard).
	Logger *slog.Logger
}

// Routes keeps the routes of one network namespace.
type Routes struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex // serialises Sync and Cleanup
	h  *netlink.Handle
}

// New opens a netlink handle in the configured namespace.
func New(cfg Config) (*Routes, error) {
	for _, p := range cfg.ServiceCIDRs {
		if !p.IsValid() {
			return nil, fmt.Errorf("routes: invalid service CIDR %v", p)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var h *netlink.Handle
	var err error
	if cfg.NetNS == "" {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		ns, nerr := netns.GetFromPath(cfg.NetNS)
		if nerr != nil {
			return nil, fmt.Errorf("routes: open netns %s: %w", cfg.NetNS, nerr)
		}
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		ns.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("routes: netlink handle: %w", err)
	}
	return &Routes{cfg: cfg, log: cfg.Logger, h: h}, nil
}

// Close releases the netlink handle; the routes stay.
func (r *Routes) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Close()
}

// Sync makes the routes skiff owns exactly want plus the service CIDRs'
// unreachable routes: it adds what is missing, replaces what differs and
// deletes the rest of its own. Routes it cannot apply (invalid, a
// conflict, a gateway the kernel refuses) are reported in the error,
// joined, while the others are still applied. Call it whenever the set of
// nodes changes, and now and then to repair routes deleted behind its back.
func (r *Routes) Sync(ctx context.Context, want []Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	var link int
	if r.cfg.LinkName != "" {
		l, err := r.h.LinkByName(r.cfg.LinkName)
		if err != nil {
			return fmt.Errorf("routes: link %s: %w", r.cfg.LinkName, err)
		}
		link = l.Attrs().Index
	}
	desired := map[netip.Prefix]netlink.Route{}
	for _, w := range want {
		dst := w.Dst.Masked()
		if !dst.IsValid() || !w.Via.IsValid() || dst.Addr().Is4() != w.Via.Unmap().Is4() {
			errs = append(errs, fmt.Errorf("routes: invalid route to %v via %v", w.Dst, w.Via))
			continue
		}
		if _, dup := desired[dst]; dup {
			errs = append(errs, fmt.Errorf("routes: two routes to %v", dst))
			continue
		}
		desired[dst] = netlink.Route{Dst: ipNet(dst), Gw: net.IP(w.Via.Unmap().AsSlice()), LinkIndex: link,
			Protocol: Protocol, Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST}
	}
	for _, p := range r.cfg.ServiceCIDRs {
		p = p.Masked()
		if _, dup := desired[p]; dup {
			errs = append(errs, fmt.Errorf("routes: service CIDR %v is also a node's pod CIDR", p))
		}
		desired[p] = netlink.Route{Dst: ipNet(p), Protocol: Protocol, Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNREACHABLE}
	}

	current, err := r.list()
	if err != nil {
		return err
	}
	ours, foreign := map[netip.Prefix]netlink.Route{}, map[netip.Prefix]bool{}
	for _, rt := range current {
		dst := prefixOf(rt)
		if rt.Protocol == Protocol {
			ours[dst] = rt
		} else {
			foreign[dst] = true
		}
	}
	for dst, rt := range ours {
		if _, ok := desired[dst]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("routes: delete route to %v: %w", dst, err))
			continue
		}
		r.log.Info("routes: deleted", "dst", dst, "via", rt.Gw)
	}
	for dst, rt := range desired {
		if have, ok := ours[dst]; ok && same(have, rt) {
			continue
		}
		if foreign[dst] {
			errs = append(errs, fmt.Errorf("routes: route to %v: %w", dst, ErrConflict))
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := r.h.RouteReplace(&rt); err != nil {
			errs = append(errs, fmt.Errorf("routes: replace route to %v via %v: %w", dst, rt.Gw, err))
			continue
		}
		r.log.Info("routes: set", "dst", dst, "via", rt.Gw, "type", rt.Type)
	}
	return errors.Join(errs...)
}

// Cleanup deletes every route skiff owns in the namespace.
func (r *Routes) Cleanup() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	current, err := r.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, rt := range current {
		if rt.Protocol != Protocol {
			continue
		}
		if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("routes: delete route to %v: %w", prefixOf(rt), err))
		}
	}
	return errors.Join(errs...)
}

// Owned lists the routes skiff owns (the unreachable ones with no Via).
func (r *Routes) Owned() ([]Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	current, err := r.list()
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, rt := range current {
		if rt.Protocol != Protocol {
			continue
		}
		via, _ := netip.AddrFromSlice(rt.Gw)
		out = append(out, Route{Dst: prefixOf(rt), Via: via.Unmap()})
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	return out, nil
}

// list dumps the main table of both families, retrying a dump the kernel
// interrupted (the table changed under it).
func (r *Routes) list() ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
	var err error
	for range 5 {
		var rts []netlink.Route
		rts, err = r.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE)
		if err == nil {
			return rts, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("routes: list routes: %w", err)
}

// same reports whether the kernel's route have already is want.
func same(have, want netlink.Route) bool {
	if have.Type != want.Type || !have.Gw.Equal(want.Gw) {
		return false
	}
	return want.LinkIndex == 0 || have.LinkIndex == want.LinkIndex
}

func prefixOf(rt netlink.Route) netip.Prefix {
	if rt.Dst == nil { // a default route
		if rt.Family == unix.AF_INET6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	a, _ := netip.AddrFromSlice(rt.Dst.IP)
	ones, _ := rt.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
