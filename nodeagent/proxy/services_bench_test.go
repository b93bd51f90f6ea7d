package proxy

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/api"
)

// BenchmarkServicePorts translates 10,000 Services with 3 ready
// endpoints each: the part of a Proxier.Sync that grows with the cluster.
func BenchmarkServicePorts(b *testing.B) {
	const n = 10000
	http := api.ServicePort{Name: "http", Protocol: api.ProtocolTCP, Port: 80}
	svcs := make([]*api.Service, 0, n)
	eps := make([]*api.Endpoints, 0, n)
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		svcs = append(svcs, svc(name, fmt.Sprintf("10.100.%d.%d", i/250, i%250+1), http))
		eps = append(eps, eps1(name))
	}
	for b.Loop() {
		if ports, _ := ServicePorts(svcs, eps, ""); len(ports) != n {
			b.Fatal(len(ports))
		}
	}
}

func eps1(name string) *api.Endpoints {
	return eps(name, api.EndpointSubset{Addresses: addrs("10.0.0.1", "10.0.0.2", "10.0.0.3"),
		Ports: []api.EndpointPort{{Name: "http", Protocol: api.ProtocolTCP, Port: 8080}}})
}
