package userspace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the local routes that make the proxy's VIPs local
// (rtm_protocol 86, "V"; `ip route show table local proto 86`): Sync
// removes only such routes, a restarted proxy adopts them, Cleanup
// removes them all.
//
// A VIP is made local with a /32 route of type local in the local table
// rather than an address: a bind to it works the same, but adding a route
// costs a trie insert where adding an address walks the link's address
// list (10,000 VIPs: ~0.2 s instead of ~2 s of kernel time here), and the
// VIPs stay out of address lists and source address selection.
const RouteProtocol netlink.RouteProtocol = 0x56

// vips keeps the proxy's VIPs local in its namespace.
type vips struct {
	h     *netlink.Handle
	link  netlink.Link
	owned map[netip.Addr]bool
}

func openVIPs(netnsPath, linkName string) (*vips, error) {
	var h *netlink.Handle
	var err error
	if netnsPath == "" {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		ns, nerr := netns.GetFromPath(netnsPath)
		if nerr != nil {
			return nil, fmt.Errorf("open netns %s: %w", netnsPath, nerr)
		}
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		ns.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	link, err := h.LinkByName(linkName)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("link %s: %w", linkName, err)
	}
	v := &vips{h: h, link: link}
	if err := v.load(); err != nil {
		h.Close()
		return nil, err
	}
	return v, nil
}

// load reads the proxy's local routes, also those a crashed run left.
func (v *vips) load() error {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Protocol: RouteProtocol}
	rts, err := v.h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list local routes: %w", err)
	}
	v.owned = make(map[netip.Addr]bool)
	for _, rt := range rts {
		if rt.Dst == nil || rt.Type != unix.RTN_LOCAL {
			continue
		}
		if ones, bits := rt.Dst.Mask.Size(); ones != 32 || bits != 32 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(rt.Dst.IP); ok {
			v.owned[ip.Unmap()] = true
		}
	}
	return nil
}

func (v *vips) route(ip netip.Addr) *netlink.Route {
	return &netlink.Route{
		LinkIndex: v.link.Attrs().Index,
		Dst:       &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  RouteProtocol,
	}
}

// ensure makes ip local. An address that is local already (someone
// else's address or route) is used as it is and never removed.
func (v *vips) ensure(ip netip.Addr) error {
	if v.owned[ip] {
		return nil
	}
	err := v.h.RouteAdd(v.route(ip))
	switch {
	case errors.Is(err, unix.EEXIST):
		return nil
	case err != nil:
		return fmt.Errorf("add local route %s/32 dev %s: %w", ip, v.link.Attrs().Name, err)
	}
	v.owned[ip] = true
	return nil
}

// remove deletes ip's local route if the proxy added it.
func (v *vips) remove(ip netip.Addr) error {
	if !v.owned[ip] {
		return nil
	}
	if err := v.h.RouteDel(v.route(ip)); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete local route %s/32: %w", ip, err)
	}
	delete(v.owned, ip)
	return nil
}

// removeAll deletes every local route the proxy added.
func (v *vips) removeAll() error {
	var errs []error
	for ip := range v.owned {
		errs = append(errs, v.remove(ip))
	}
	return errors.Join(errs...)
}

func (v *vips) close() { v.h.Close() }
