package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/skiffhq/skiff/api"
)

// PortKey names a service port in the datapath: VIP, port, protocol.
type PortKey struct {
	VIP      netip.Addr
	Port     uint16
	Protocol api.Protocol // TCP or UDP
}

func (k PortKey) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.VIP, k.Port), k.Protocol)
}

// ServicePort is one ClusterIP service port as the datapath serves it.
type ServicePort struct {
	PortKey
	Namespace string
	Service   string
	PortName  string // the service port's name ("" for a single unnamed port)
	// Backends are the ready endpoint addresses with the endpoint port of
	// the same name, sorted, without duplicates.
	Backends []netip.AddrPort
	// Affinity > 0: ClientIP session affinity with this timeout.
	Affinity time.Duration
}

// Skipped is a service (or one of its ports) the datapath does not serve,
// and why.
type Skipped struct {
	Namespace, Service, Port string
	Reason                   string
}

// ServicePorts turns Services and their Endpoints (same namespace and
// name) into the service ports the datapath serves: the ClusterIP part of
// ClusterIP, NodePort and LoadBalancer services (node ports and load
// balancer addresses are a later issue), TCP and UDP ports, IPv4. Headless
// services (clusterIP None) and services without a ClusterIP are left out
// silently; what else is left out is listed in skipped. With nodeName
// set, services with internalTrafficPolicy Local get only the endpoints
// on that node. The result is sorted by key.
func ServicePorts(services []*api.Service, endpoints []*api.Endpoints, nodeName string) (ports []ServicePort, skipped []Skipped) {
	eps := endpointsByName(endpoints)
	ports = make([]ServicePort, 0, len(services)) // most services have one port
	for _, s := range services {
		if s == nil {
			continue
		}
		ports, skipped = appendServicePorts(ports, skipped, s, eps[nsName{s.Namespace, s.Name}], nodeName)
	}
	return sortPorts(ports, skipped)
}

type nsName struct{ ns, name string }

func endpointsByName(endpoints []*api.Endpoints) map[nsName]*api.Endpoints {
	eps := make(map[nsName]*api.Endpoints, len(endpoints))
	for _, e := range endpoints {
		if e != nil {
			eps[nsName{e.Namespace, e.Name}] = e
		}
	}
	return eps
}

// appendServicePorts appends the service ports of one service with its
// endpoints (nil: none) to ports, and what it leaves out to skipped.
func appendServicePorts(ports []ServicePort, skipped []Skipped, s *api.Service, ep *api.Endpoints, nodeName string) ([]ServicePort, []Skipped) {
	skip := func(port, reason string) {
		skipped = append(skipped, Skipped{Namespace: s.Namespace, Service: s.Name, Port: port, Reason: reason})
	}
	switch s.Spec.Type {
	case "", api.ServiceTypeClusterIP, api.ServiceTypeNodePort, api.ServiceTypeLoadBalancer:
	default:
		skip("", fmt.Sprintf("type %s is not served", s.Spec.Type))
		return ports, skipped
	}
	if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == api.ClusterIPNone {
		return ports, skipped
	}
	vip, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil {
		skip("", fmt.Sprintf("clusterIP %q: %v", s.Spec.ClusterIP, err))
		return ports, skipped
	}
	if !vip.Unmap().Is4() {
		skip("", "IPv6 clusterIP: the datapath serves IPv4 only")
		return ports, skipped
	}
	vip = vip.Unmap()
	var affinity time.Duration
	if s.Spec.SessionAffinity == api.ServiceAffinityClientIP {
		secs := api.DefaultClientIPServiceAffinitySeconds
		if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			secs = *c.ClientIP.TimeoutSeconds
		}
		affinity = time.Duration(secs) * time.Second
	}
	local := nodeName != "" && s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == api.ServiceInternalTrafficPolicyLocal
	for _, sp := range s.Spec.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = api.ProtocolTCP
		}
		if proto != api.ProtocolTCP && proto != api.ProtocolUDP {
			skip(sp.Name, fmt.Sprintf("protocol %s is not served", proto))
			continue
		}
		if sp.Port <= 0 || sp.Port > 65535 {
			skip(sp.Name, fmt.Sprintf("port %d out of range", sp.Port))
			continue
		}
		p := ServicePort{
			PortKey:   PortKey{VIP: vip, Port: uint16(sp.Port), Protocol: proto},
			Namespace: s.Namespace,
			Service:   s.Name,
			PortName:  sp.Name,
			Affinity:  affinity,
		}
		if ep != nil {
			p.Backends = backends(ep, sp.Name, proto, local, nodeName)
		}
		ports = append(ports, p)
	}
	return ports, skipped
}

// sortPorts sorts ports by key and drops the second of two services
// claiming one VIP port (the allocator prevents it), reporting it.
func sortPorts(ports []ServicePort, skipped []Skipped) ([]ServicePort, []Skipped) {
	slices.SortFunc(ports, func(a, b ServicePort) int { return compareKeys(a.PortKey, b.PortKey) })
	out := ports[:0]
	for i, p := range ports {
		if i > 0 && p.PortKey == out[len(out)-1].PortKey {
			skipped = append(skipped, Skipped{Namespace: p.Namespace, Service: p.Service, Port: p.PortName,
				Reason: fmt.Sprintf("%s is also served for %s/%s", p.PortKey, out[len(out)-1].Namespace, out[len(out)-1].Service)})
			continue
		}
		out = append(out, p)
	}
	return out, skipped
}

// backends returns the ready addresses of ep with the port named name.
func backends(ep *api.Endpoints, name string, proto api.Protocol, local bool, nodeName string) []netip.AddrPort {
	n := 0
	for _, ss := range ep.Subsets {
		n += len(ss.Addresses)
	}
	if n == 0 {
		return nil
	}
	out := make([]netip.AddrPort, 0, n)
	for _, ss := range ep.Subsets {
		var port int32
		for _, p := range ss.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = api.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				port = p.Port
				break
			}
		}
		if port <= 0 || port > 65535 {
			continue
		}
		for _, a := range ss.Addresses {
			if local && (a.NodeName == nil || *a.NodeName != nodeName) {
				continue
			}
			ip, err := netip.ParseAddr(a.IP)
			if err != nil || !ip.Unmap().Is4() {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(out)
}

func compareKeys(a, b PortKey) int {
	if c := a.VIP.Compare(b.VIP); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	switch {
	case a.Protocol < b.Protocol:
		return -1
	case a.Protocol > b.Protocol:
		return 1
	}
	return 0
}
