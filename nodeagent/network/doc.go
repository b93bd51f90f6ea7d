// Package network connects pod sandboxes to this node's pod network: the
// Network interface the agent calls once a sandbox exists, and IPAM, an
// in-memory address allocator over the node's pod CIDR that implements it
// without touching the host (simulated nodes, tests).
//
// The real implementations sit in subpackages: cni (libcni with the
// bridge, host-local and loopback plugins) and routes (host routes to the
// other nodes' pod CIDRs, the service CIDR's unreachable route). nsrun
// runs code on a thread inside another network namespace; netnstest
// gives privileged tests their namespaces.
//
// network imports runtime (for sandbox IDs) and the standard library only.
package network
