package cloudprovider

import (
	"fmt"
	"net/netip"
	"strings"
)

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct {
	First, Last netip.Addr
}

// RangeOf is the range covering every address of p, network and broadcast
// addresses included (a pool carved out of a LAN is not a subnet of its own;
// write a range to leave some out).
func RangeOf(p netip.Prefix) AddrRange {
	p = p.Masked()
	return AddrRange{First: p.Addr(), Last: lastAddr(p)}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether a is in the range.
func (r AddrRange) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

func (r AddrRange) overlaps(o AddrRange) bool {
	return r.First.BitLen() == o.First.BitLen() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// String writes the range as an address, a prefix when it is exactly one,
// or first-last.
func (r AddrRange) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	for bits := 0; bits < r.First.BitLen(); bits++ {
		if p := netip.PrefixFrom(r.First, bits); p.Masked().Addr() == r.First && lastAddr(p) == r.Last {
			return p.String()
		}
	}
	return r.First.String() + "-" + r.Last.String()
}

func (r AddrRange) validate() error {
	switch {
	case !r.First.IsValid() || !r.Last.IsValid():
		return fmt.Errorf("range %s-%s: invalid address", r.First, r.Last)
	case r.First.Zone() != "" || r.Last.Zone() != "":
		return fmt.Errorf("range %s: addresses must not have a zone", r)
	case r.First.BitLen() != r.Last.BitLen():
		return fmt.Errorf("range %s-%s mixes IPv4 and IPv6", r.First, r.Last)
	case r.First.Compare(r.Last) > 0:
		return fmt.Errorf("range %s-%s: first address is after the last", r.First, r.Last)
	}
	return nil
}

// Pool is a load balancer address pool: ranges tried in order, first free
// address first.
//
// Pool implements the flag.Value (and pflag.Value) interface, so a server
// flag can be repeated or take a comma-separated list.
type Pool []AddrRange

// ParsePool parses a comma-separated list of entries, each a prefix
// (192.168.1.240/28, all of its addresses), a range
// (192.168.1.240-192.168.1.250, both ends included) or one address. IPv4
// and IPv6 entries may be mixed; entries must not overlap.
func ParsePool(s string) (Pool, error) {
	var p Pool
	if err := p.Set(s); err != nil {
		return nil, err
	}
	return p, nil
}

// ParseRange parses one pool entry (see ParsePool).
func ParseRange(s string) (AddrRange, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return AddrRange{}, fmt.Errorf("empty pool entry")
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return AddrRange{}, fmt.Errorf("pool entry %q: %v", s, err)
		}
		if p.Addr().Is4In6() {
			return AddrRange{}, fmt.Errorf("pool entry %q: write IPv4 prefixes in IPv4 form", s)
		}
		if p.Masked() != p {
			return AddrRange{}, fmt.Errorf("pool entry %q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return RangeOf(p), nil
	case strings.Contains(s, "-"):
		lo, hi, _ := strings.Cut(s, "-")
		first, err := parseAddr(lo)
		if err != nil {
			return AddrRange{}, fmt.Errorf("pool entry %q: first address: %v", s, err)
		}
		last, err := parseAddr(hi)
		if err != nil {
			return AddrRange{}, fmt.Errorf("pool entry %q: last address: %v", s, err)
		}
		r := AddrRange{First: first, Last: last}
		if err := r.validate(); err != nil {
			return AddrRange{}, fmt.Errorf("pool entry %q: %v", s, err)
		}
		return r, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return AddrRange{}, fmt.Errorf("pool entry %q: want an address, a prefix (a.b.c.d/n) or a range (first-last): %v", s, err)
	}
	return AddrRange{First: a, Last: a}, nil
}

// parseAddr parses an address without a zone, IPv4-mapped IPv6 turned into
// IPv4 so that one address has one spelling in the allocator.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %s must not have a zone", a)
	}
	return a.Unmap(), nil
}

// Set adds the comma-separated entries of s to the pool (flag.Value).
func (p *Pool) Set(s string) error {
	next := append(Pool(nil), *p...)
	for _, e := range strings.Split(s, ",") {
		r, err := ParseRange(e)
		if err != nil {
			return err
		}
		next = append(next, r)
	}
	if err := next.Validate(); err != nil {
		return err
	}
	*p = next
	return nil
}

// String writes the pool in the form ParsePool reads (flag.Value).
func (p Pool) String() string {
	s := make([]string, len(p))
	for i, r := range p {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// Type names the flag's value type (pflag.Value).
func (Pool) Type() string { return "pool" }

// Validate checks every range and that no two overlap.
func (p Pool) Validate() error {
	for i, r := range p {
		if err := r.validate(); err != nil {
			return err
		}
		for _, o := range p[:i] {
			if r.overlaps(o) {
				return fmt.Errorf("pool entries %s and %s overlap", o, r)
			}
		}
	}
	return nil
}

// Contains reports whether a is in the pool.
func (p Pool) Contains(a netip.Addr) bool {
	for _, r := range p {
		if r.Contains(a) {
			return true
		}
	}
	return false
}
