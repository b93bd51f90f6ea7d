package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/skiffhq/skiff/api"
)

// NetworkConfig is the cluster's address plan. The FSM allocates service
// cluster IPs, node ports and node pod CIDRs from it as part of applying
// the write that needs them, so two writers can never get the same address,
// even across a leader change. It is replicated (system table "config"),
// so every server allocates from the same plan.
type NetworkConfig struct {
	ServiceCIDR  netip.Prefix `json:"serviceCIDR"`
	ClusterCIDR  netip.Prefix `json:"clusterCIDR"`
	NodeMaskSize int          `json:"nodeMaskSize"` // each node's pod CIDR
	NodePortMin  int32        `json:"nodePortMin"`
	NodePortMax  int32        `json:"nodePortMax"`
}

// DefaultNetwork is Kubernetes' usual plan.
var DefaultNetwork = NetworkConfig{
	ServiceCIDR:  netip.MustParsePrefix("10.96.0.0/12"),
	ClusterCIDR:  netip.MustParsePrefix("10.244.0.0/16"),
	NodeMaskSize: 24,
	NodePortMin:  api.NodePortMin,
	NodePortMax:  api.NodePortMax,
}

// Validate checks the plan is usable.
func (n NetworkConfig) Validate() error {
	switch {
	case !n.ServiceCIDR.IsValid() || !n.ServiceCIDR.Addr().Is4() || n.ServiceCIDR.Bits() > 28:
		return fmt.Errorf("service CIDR %s: want an IPv4 prefix of /28 or larger", n.ServiceCIDR)
	case !n.ClusterCIDR.IsValid() || !n.ClusterCIDR.Addr().Is4():
		return fmt.Errorf("cluster CIDR %s: want an IPv4 prefix", n.ClusterCIDR)
	case n.NodeMaskSize <= n.ClusterCIDR.Bits() || n.NodeMaskSize > 30:
		return fmt.Errorf("node mask /%d must be longer than the cluster CIDR's /%d and at most /30", n.NodeMaskSize, n.ClusterCIDR.Bits())
	case n.ServiceCIDR.Overlaps(n.ClusterCIDR):
		return fmt.Errorf("service CIDR %s overlaps cluster CIDR %s", n.ServiceCIDR, n.ClusterCIDR)
	case n.NodePortMin <= 0 || n.NodePortMax > 65535 || n.NodePortMin > n.NodePortMax:
		return fmt.Errorf("node port range %d-%d is invalid", n.NodePortMin, n.NodePortMax)
	}
	return nil
}

// TableConfig holds cluster-wide settings; record "network" is the
// NetworkConfig.
const TableConfig SystemTable = "config"

const networkRecord = "network"

// SetNetwork replaces the replicated address plan (the bootstrap server
// writes it from its flags). Addresses already allocated are kept.
func (s *Store) SetNetwork(ctx context.Context, n NetworkConfig) error {
	if err := n.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b, _ := json.Marshal(n)
	return s.PutSystem(ctx, TableConfig, networkRecord, b)
}

// Network returns the address plan in force.
func (f *FSM) Network() NetworkConfig {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.net
}

func (f *FSM) loadNetwork() {
	f.net = DefaultNetwork
	if v, ok := f.system[TableConfig][networkRecord]; ok {
		var n NetworkConfig
		if json.Unmarshal(v, &n) == nil && n.Validate() == nil {
			f.net = n
		}
	}
}

// allocations are indexes derived from the stored objects (rebuilt by
// put/remove, so a snapshot needs nothing extra): who holds which address,
// and what each node's bound pods request.
type allocations struct {
	ips       map[netip.Addr]Key
	nodePorts map[int32]Key
	podCIDRs  map[netip.Prefix]string
	usage     map[string]NodeUsage
}

func newAllocations() allocations {
	return allocations{ips: map[netip.Addr]Key{}, nodePorts: map[int32]Key{}, podCIDRs: map[netip.Prefix]string{}, usage: map[string]NodeUsage{}}
}

// NodeUsage is what the pods bound to a node request.
type NodeUsage struct {
	CPUMilli    int64
	MemoryBytes int64
	Pods        int64
}

// podRequests sums a pod's container requests.
func podRequests(p *api.Pod) NodeUsage {
	u := NodeUsage{Pods: 1}
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[api.ResourceCPU]; ok {
			u.CPUMilli += q.MilliValue()
		}
		if q, ok := c.Resources.Requests[api.ResourceMemory]; ok {
			u.MemoryBytes += q.Value()
		}
	}
	return u
}

// counts reports whether a pod takes capacity on its node: bound and not
// finished.
func counts(p *api.Pod) bool {
	return p.Spec.NodeName != "" && p.Status.Phase != api.PodSucceeded && p.Status.Phase != api.PodFailed
}

// index records (add) or forgets (!add) what o holds.
func (a allocations) index(o api.Object, add bool) {
	k := KeyOf(o)
	switch o := o.(type) {
	case *api.Service:
		for _, s := range append([]string{o.Spec.ClusterIP}, o.Spec.ClusterIPs...) {
			if ip, err := netip.ParseAddr(s); err == nil {
				if add {
					a.ips[ip] = k
				} else if a.ips[ip] == k {
					delete(a.ips, ip)
				}
			}
		}
		for _, p := range o.Spec.Ports {
			if p.NodePort == 0 {
				continue
			}
			if add {
				a.nodePorts[p.NodePort] = k
			} else if a.nodePorts[p.NodePort] == k {
				delete(a.nodePorts, p.NodePort)
			}
		}
	case *api.Node:
		if c, err := netip.ParsePrefix(o.Spec.PodCIDR); err == nil {
			if add {
				a.podCIDRs[c] = o.Name
			} else if a.podCIDRs[c] == o.Name {
				delete(a.podCIDRs, c)
			}
		}
	case *api.Pod:
		if !counts(o) {
			return
		}
		r := podRequests(o)
		u := a.usage[o.Spec.NodeName]
		if add {
			u.CPUMilli, u.MemoryBytes, u.Pods = u.CPUMilli+r.CPUMilli, u.MemoryBytes+r.MemoryBytes, u.Pods+r.Pods
		} else {
			u.CPUMilli, u.MemoryBytes, u.Pods = u.CPUMilli-r.CPUMilli, u.MemoryBytes-r.MemoryBytes, u.Pods-r.Pods
		}
		if u == (NodeUsage{}) {
			delete(a.usage, o.Spec.NodeName)
		} else {
			a.usage[o.Spec.NodeName] = u
		}
	}
}

// NodeUsage returns what the pods bound to node request.
func (f *FSM) NodeUsage(node string) NodeUsage {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.alloc.usage[node]
}

// probe returns the first offset in [0, n) from a start derived from key
// (deterministic: every replica computes the same) for which free is true.
func probe(key Key, salt string, n uint64, free func(off uint64) bool) (uint64, bool) {
	if n == 0 {
		return 0, false
	}
	h := fnv.New64a()
	h.Write([]byte(salt + "/" + key.Namespace + "/" + key.Name))
	start := h.Sum64() % n
	for i := uint64(0); i < n; i++ {
		off := (start + i) % n
		if free(off) {
			return off, true
		}
	}
	return 0, false
}

func addrAt(p netip.Prefix, off uint64) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(off)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// allocateService fills in (or checks) a service's cluster IP and node
// ports. k's own current holdings count as free for it (updates).
func (f *FSM) allocateService(k Key, s *api.Service, old *api.Service) error {
	if old != nil && s.Spec.ClusterIP == "" {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
	}
	mine := func(holder Key, held bool) bool { return !held || holder == k }
	switch s.Spec.ClusterIP {
	case api.ClusterIPNone:
	case "":
		cidr := f.net.ServiceCIDR
		size := uint64(1) << (32 - cidr.Bits())
		// Skip the network address, the first host (kept for the API
		// service, as Kubernetes does) and the broadcast address.
		off, ok := probe(k, "svc", size-3, func(off uint64) bool {
			h, held := f.alloc.ips[addrAt(cidr, off+2)]
			return mine(h, held)
		})
		if !ok {
			return fmt.Errorf("%w: spec.clusterIP: the service CIDR %s is full", ErrConflict, cidr)
		}
		ip := addrAt(cidr, off+2).String()
		s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
	default:
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil || !f.net.ServiceCIDR.Contains(ip) {
			return fmt.Errorf("%w: spec.clusterIP: %s is not in the service CIDR %s", ErrInvalid, s.Spec.ClusterIP, f.net.ServiceCIDR)
		}
		if h, held := f.alloc.ips[ip]; !mine(h, held) {
			return fmt.Errorf("%w: spec.clusterIP: %s is already allocated to service %s/%s", ErrInvalid, ip, h.Namespace, h.Name)
		}
		if len(s.Spec.ClusterIPs) == 0 {
			s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		}
	}
	wantsNodePorts := s.Spec.Type == api.ServiceTypeNodePort || s.Spec.Type == api.ServiceTypeLoadBalancer
	taken := map[int32]bool{}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if !wantsNodePorts {
			p.NodePort = 0
			continue
		}
		if p.NodePort == 0 && old != nil {
			for _, op := range old.Spec.Ports {
				if op.NodePort != 0 && op.Port == p.Port && op.Protocol == p.Protocol {
					p.NodePort = op.NodePort
				}
			}
		}
		if p.NodePort != 0 {
			if p.NodePort < f.net.NodePortMin || p.NodePort > f.net.NodePortMax {
				return fmt.Errorf("%w: spec.ports[%d].nodePort: %d is outside %d-%d", ErrInvalid, i, p.NodePort, f.net.NodePortMin, f.net.NodePortMax)
			}
			if h, held := f.alloc.nodePorts[p.NodePort]; !mine(h, held) || taken[p.NodePort] {
				return fmt.Errorf("%w: spec.ports[%d].nodePort: %d is already allocated", ErrInvalid, i, p.NodePort)
			}
			taken[p.NodePort] = true
			continue
		}
		n := uint64(f.net.NodePortMax - f.net.NodePortMin + 1)
		off, ok := probe(Key{Namespace: k.Namespace, Name: fmt.Sprintf("%s/%d", k.Name, i)}, "np", n, func(off uint64) bool {
			port := f.net.NodePortMin + int32(off)
			h, held := f.alloc.nodePorts[port]
			return mine(h, held) && !taken[port]
		})
		if !ok {
			return fmt.Errorf("%w: spec.ports[%d].nodePort: no node port free in %d-%d", ErrConflict, i, f.net.NodePortMin, f.net.NodePortMax)
		}
		p.NodePort = f.net.NodePortMin + int32(off)
		taken[p.NodePort] = true
	}
	return nil
}

// allocateNode gives a node a pod CIDR when it has none. A full cluster CIDR
// leaves it without one (the node is still stored; its agent cannot run
// pods until an operator widens the plan).
func (f *FSM) allocateNode(n *api.Node, old *api.Node) error {
	if n.Spec.PodCIDR == "" && old != nil {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = old.Spec.PodCIDR, old.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		c, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil {
			return fmt.Errorf("%w: spec.podCIDR %q: %v", ErrInvalid, n.Spec.PodCIDR, err)
		}
		if holder, held := f.alloc.podCIDRs[c]; held && holder != n.Name {
			return fmt.Errorf("%w: spec.podCIDR %s is allocated to node %s", ErrConflict, c, holder)
		}
		return nil
	}
	cc := f.net.ClusterCIDR
	subnets := uint64(1) << (f.net.NodeMaskSize - cc.Bits())
	step := uint64(1) << (32 - f.net.NodeMaskSize)
	off, ok := probe(Key{Name: n.Name}, "cidr", subnets, func(off uint64) bool {
		_, held := f.alloc.podCIDRs[netip.PrefixFrom(addrAt(cc, off*step), f.net.NodeMaskSize)]
		return !held
	})
	if !ok {
		return nil
	}
	c := netip.PrefixFrom(addrAt(cc, off*step), f.net.NodeMaskSize).String()
	n.Spec.PodCIDR, n.Spec.PodCIDRs = c, []string{c}
	return nil
}
