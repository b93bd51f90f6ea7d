package proxy

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

func ptr[T any](v T) *T { return &v }

func svc(name, clusterIP string, ports ...api.ServicePort) *api.Service {
	return &api.Service{ObjectMeta: api.ObjectMeta{Namespace: "ns", Name: name},
		Spec: api.ServiceSpec{Type: api.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports}}
}

func eps(name string, subsets ...api.EndpointSubset) *api.Endpoints {
	return &api.Endpoints{ObjectMeta: api.ObjectMeta{Namespace: "ns", Name: name}, Subsets: subsets}
}

func addrs(ips ...string) []api.EndpointAddress {
	var out []api.EndpointAddress
	for _, ip := range ips {
		out = append(out, api.EndpointAddress{IP: ip})
	}
	return out
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func key(vip string, port uint16, proto api.Protocol) PortKey {
	return PortKey{VIP: netip.MustParseAddr(vip), Port: port, Protocol: proto}
}

func TestServicePorts(t *testing.T) {
	http := api.ServicePort{Name: "http", Protocol: api.ProtocolTCP, Port: 80}
	dns := api.ServicePort{Name: "dns", Protocol: api.ProtocolUDP, Port: 53}
	epHTTP := api.EndpointPort{Name: "http", Protocol: api.ProtocolTCP, Port: 8080}
	epDNS := api.EndpointPort{Name: "dns", Protocol: api.ProtocolUDP, Port: 5353}

	affinity := svc("sticky", "10.96.0.3", http)
	affinity.Spec.SessionAffinity = api.ServiceAffinityClientIP
	affinity.Spec.SessionAffinityConfig = &api.SessionAffinityConfig{ClientIP: &api.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
	defaultAffinity := svc("sticky-default", "10.96.0.4", http)
	defaultAffinity.Spec.SessionAffinity = api.ServiceAffinityClientIP
	nodePort := svc("np", "10.96.0.5", api.ServicePort{Name: "http", Protocol: api.ProtocolTCP, Port: 80, NodePort: 30080})
	nodePort.Spec.Type = api.ServiceTypeNodePort
	local := svc("local", "10.96.0.6", http)
	local.Spec.InternalTrafficPolicy = ptr(api.ServiceInternalTrafficPolicyLocal)
	here, there := "node-a", "node-b"
	external := svc("ext", "", http)
	external.Spec.Type = "ExternalName"

	tests := []struct {
		name        string
		services    []*api.Service
		endpoints   []*api.Endpoints
		want        []ServicePort
		wantSkipped int
	}{{
		name:     "ports matched by name and protocol, ready addresses only, sorted and deduplicated",
		services: []*api.Service{svc("web", "10.96.0.10", http, dns)},
		endpoints: []*api.Endpoints{eps("web",
			api.EndpointSubset{Addresses: addrs("10.0.0.2", "10.0.0.1"), NotReadyAddresses: addrs("10.0.0.9"), Ports: []api.EndpointPort{epHTTP, epDNS}},
			api.EndpointSubset{Addresses: addrs("10.0.0.1", "10.0.0.3"), Ports: []api.EndpointPort{epHTTP}},
		)},
		want: []ServicePort{
			{PortKey: key("10.96.0.10", 53, api.ProtocolUDP), Namespace: "ns", Service: "web", PortName: "dns",
				Backends: []netip.AddrPort{ap("10.0.0.1:5353"), ap("10.0.0.2:5353")}},
			{PortKey: key("10.96.0.10", 80, api.ProtocolTCP), Namespace: "ns", Service: "web", PortName: "http",
				Backends: []netip.AddrPort{ap("10.0.0.1:8080"), ap("10.0.0.2:8080"), ap("10.0.0.3:8080")}},
		},
	}, {
		name:      "an unnamed single port, protocol defaulted",
		services:  []*api.Service{svc("one", "10.96.0.1", api.ServicePort{Port: 80})},
		endpoints: []*api.Endpoints{eps("one", api.EndpointSubset{Addresses: addrs("10.0.0.1"), Ports: []api.EndpointPort{{Port: 8080}}})},
		want: []ServicePort{{PortKey: key("10.96.0.1", 80, api.ProtocolTCP), Namespace: "ns", Service: "one",
			Backends: []netip.AddrPort{ap("10.0.0.1:8080")}}},
	}, {
		name:     "no endpoints, or none ready: served without backends (refused)",
		services: []*api.Service{svc("none", "10.96.0.1", http), svc("notready", "10.96.0.2", http)},
		endpoints: []*api.Endpoints{eps("notready",
			api.EndpointSubset{NotReadyAddresses: addrs("10.0.0.1"), Ports: []api.EndpointPort{epHTTP}})},
		want: []ServicePort{
			{PortKey: key("10.96.0.1", 80, api.ProtocolTCP), Namespace: "ns", Service: "none", PortName: "http"},
			{PortKey: key("10.96.0.2", 80, api.ProtocolTCP), Namespace: "ns", Service: "notready", PortName: "http"},
		},
	}, {
		name:      "endpoints of another namespace do not count",
		services:  []*api.Service{svc("web", "10.96.0.1", http)},
		endpoints: []*api.Endpoints{{ObjectMeta: api.ObjectMeta{Namespace: "other", Name: "web"}, Subsets: []api.EndpointSubset{{Addresses: addrs("10.0.0.1"), Ports: []api.EndpointPort{epHTTP}}}}},
		want:      []ServicePort{{PortKey: key("10.96.0.1", 80, api.ProtocolTCP), Namespace: "ns", Service: "web", PortName: "http"}},
	}, {
		name:     "ClientIP affinity with its timeout, or the default",
		services: []*api.Service{affinity, defaultAffinity},
		want: []ServicePort{
			{PortKey: key("10.96.0.3", 80, api.ProtocolTCP), Namespace: "ns", Service: "sticky", PortName: "http", Affinity: time.Minute},
			{PortKey: key("10.96.0.4", 80, api.ProtocolTCP), Namespace: "ns", Service: "sticky-default", PortName: "http", Affinity: 3 * time.Hour},
		},
	}, {
		name:     "NodePort: its ClusterIP part",
		services: []*api.Service{nodePort},
		want:     []ServicePort{{PortKey: key("10.96.0.5", 80, api.ProtocolTCP), Namespace: "ns", Service: "np", PortName: "http"}},
	}, {
		name:     "internalTrafficPolicy Local: this node's endpoints only",
		services: []*api.Service{local},
		endpoints: []*api.Endpoints{eps("local", api.EndpointSubset{
			Addresses: []api.EndpointAddress{{IP: "10.0.0.1", NodeName: &here}, {IP: "10.0.0.2", NodeName: &there}, {IP: "10.0.0.3"}},
			Ports:     []api.EndpointPort{epHTTP}})},
		want: []ServicePort{{PortKey: key("10.96.0.6", 80, api.ProtocolTCP), Namespace: "ns", Service: "local", PortName: "http",
			Backends: []netip.AddrPort{ap("10.0.0.1:8080")}}},
	}, {
		name: "headless and unallocated skipped silently; IPv6, SCTP, other types and a bad IP reported",
		services: []*api.Service{
			svc("headless", api.ClusterIPNone, http), svc("pending", "", http),
			svc("v6", "fd00::1", http), svc("bad", "10.96.0.300", http), external,
			svc("sctp", "10.96.0.7", api.ServicePort{Name: "s", Protocol: api.ProtocolSCTP, Port: 9}, http),
		},
		want:        []ServicePort{{PortKey: key("10.96.0.7", 80, api.ProtocolTCP), Namespace: "ns", Service: "sctp", PortName: "http"}},
		wantSkipped: 4,
	}, {
		name:        "two services on one VIP port: the first wins, the other is reported",
		services:    []*api.Service{svc("b", "10.96.0.1", http), svc("a", "10.96.0.1", http)},
		want:        []ServicePort{{PortKey: key("10.96.0.1", 80, api.ProtocolTCP), Namespace: "ns", Service: "b", PortName: "http"}},
		wantSkipped: 1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := ServicePorts(tc.services, tc.endpoints, here)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ports:\n got %+v\nwant %+v", got, tc.want)
			}
			if len(skipped) != tc.wantSkipped {
				t.Errorf("skipped %+v, want %d", skipped, tc.wantSkipped)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "ebpf", "userspace"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "iptables", "EBPF"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) accepted", s)
		}
	}
}
