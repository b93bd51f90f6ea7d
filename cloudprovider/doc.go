// Package cloudprovider defines the hooks the control plane's cloud
// controllers use to talk to the infrastructure skiff runs on, in the spirit
// of Kubernetes' cloud-provider but smaller:
//
//   - Instances: does the machine behind a node still exist, and what are its
//     provider ID, addresses, zone and region (node controller);
//   - LoadBalancer: an external address for a Service of type LoadBalancer
//     (service controller);
//   - Routes: one route per node pod CIDR (route controller).
//
// A provider implements Interface and reports which of the three it
// supports. New builds one by name, from a server flag: "local" for bare
// metal (load balancer addresses from a configured Pool, routes recorded for
// the node agents to program, every registered node exists) and "fake" for
// controller tests (records every call, answers are configurable).
//
// Source organization:
//
//	cloudprovider.go  the interfaces, their types and sentinel errors
//	provider.go       Config and New, the switch over the built-in providers
//	pool.go           Pool: load balancer address ranges and their parsing
//	local.go          provider "local": instances and the pool allocator
//	routes.go         the in-memory route table (local and fake share it)
//	fake.go           provider "fake"
//
// cloudprovider imports only api from skiff and the standard library (an
// import test checks it); it must never import controlplane, cli or
// nodeagent: the controllers depend on it, not the reverse.
package cloudprovider
