package proxytest

import (
	"net/netip"

	"github.com/skiffhq/skiff/api"
)

// Service is a ClusterIP Service fixture in namespace "default".
func Service(name string, clusterIP netip.Addr, ports ...api.ServicePort) *api.Service {
	return &api.Service{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name},
		Spec: api.ServiceSpec{
			Type:            api.ServiceTypeClusterIP,
			ClusterIP:       clusterIP.String(),
			Ports:           ports,
			SessionAffinity: api.ServiceAffinityNone,
		},
	}
}

// WithAffinity turns on ClientIP affinity with the given timeout.
func WithAffinity(s *api.Service, seconds int32) *api.Service {
	s.Spec.SessionAffinity = api.ServiceAffinityClientIP
	s.Spec.SessionAffinityConfig = &api.SessionAffinityConfig{ClientIP: &api.ClientIPConfig{TimeoutSeconds: &seconds}}
	return s
}

// Port is a service port fixture.
func Port(name string, proto api.Protocol, port, target int32) api.ServicePort {
	return api.ServicePort{Name: name, Protocol: proto, Port: port, TargetPort: api.FromInt32(target)}
}

// Endpoints is the Endpoints fixture of service name: ready and not
// ready addresses with the ports of the service's (name, protocol,
// target port).
func Endpoints(name string, ready, notReady []netip.Addr, ports ...api.ServicePort) *api.Endpoints {
	ss := api.EndpointSubset{}
	for _, a := range ready {
		ss.Addresses = append(ss.Addresses, api.EndpointAddress{IP: a.String()})
	}
	for _, a := range notReady {
		ss.NotReadyAddresses = append(ss.NotReadyAddresses, api.EndpointAddress{IP: a.String()})
	}
	for _, p := range ports {
		ss.Ports = append(ss.Ports, api.EndpointPort{Name: p.Name, Protocol: p.Protocol, Port: p.TargetPort.IntVal})
	}
	return &api.Endpoints{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name},
		Subsets:    []api.EndpointSubset{ss},
	}
}
