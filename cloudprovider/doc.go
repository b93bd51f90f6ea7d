// Package cloudprovider defines the hooks the control plane uses to talk to
// the infrastructure it runs on: Instances (does a node still exist, its
// addresses), LoadBalancer (an external address for a Service of type
// LoadBalancer) and Routes (pod CIDR routes between nodes), with a local
// provider for single machines and a fake for tests.
//
// cloudprovider may import api; it must not import controlplane, cli or
// nodeagent.
//
// Status: not implemented yet.
package cloudprovider
