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

// labelSuffix follows the link name in the label of every address the
// proxy adds ("lo:skiff"): the mark that tells its VIPs from addresses
// anyone else put on the link.
const labelSuffix = ":skiff"

// vips keeps the proxy's VIPs on a link of its namespace.
type vips struct {
	h     *netlink.Handle
	link  netlink.Link
	label string
	owned map[netip.Addr]bool // labelled addresses on the link
	other map[netip.Addr]bool // addresses on the link the proxy did not add
}

func openVIPs(netnsPath, linkName string) (*vips, error) {
	label := linkName + labelSuffix
	if len(label) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("address label %q is longer than %d bytes: use a shorter link name", label, unix.IFNAMSIZ-1)
	}
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
	v := &vips{h: h, link: link, label: label}
	if err := v.load(); err != nil {
		h.Close()
		return nil, err
	}
	return v, nil
}

// load reads the link's IPv4 addresses: labelled ones are the proxy's
// (also those a crashed run left), the rest are someone else's.
func (v *vips) load() error {
	addrs, err := v.h.AddrList(v.link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", v.link.Attrs().Name, err)
	}
	v.owned = make(map[netip.Addr]bool)
	v.other = make(map[netip.Addr]bool)
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		if a.Label == v.label && ones == 32 {
			v.owned[ip] = true
		} else {
			v.other[ip] = true
		}
	}
	return nil
}

func (v *vips) addr(ip netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: v.label}
}

// ensure makes ip local: adds it with the proxy's label unless it is
// already on the link.
func (v *vips) ensure(ip netip.Addr) error {
	if v.owned[ip] || v.other[ip] {
		return nil
	}
	if err := v.h.AddrAdd(v.link, v.addr(ip)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s/32 to %s: %w", ip, v.link.Attrs().Name, err)
	}
	v.owned[ip] = true
	return nil
}

// remove deletes ip if the proxy added it.
func (v *vips) remove(ip netip.Addr) error {
	if !v.owned[ip] {
		return nil
	}
	if err := v.h.AddrDel(v.link, v.addr(ip)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete %s/32 from %s: %w", ip, v.link.Attrs().Name, err)
	}
	delete(v.owned, ip)
	return nil
}

// removeAll deletes every address the proxy added.
func (v *vips) removeAll() error {
	var errs []error
	for ip := range v.owned {
		errs = append(errs, v.remove(ip))
	}
	return errors.Join(errs...)
}

func (v *vips) close() { v.h.Close() }
