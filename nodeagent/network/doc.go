// Package network connects pod sandboxes to this node's pod network: the
// Network interface the agent calls once a sandbox exists, and IPAM, an
// in-memory address allocator over the node's pod CIDR that implements it
// without touching the host (simulated nodes, tests). The CNI
// implementation (bridge + host-local, routes to other nodes' pod CIDRs)
// will sit beside it behind the same interface.
//
// network imports runtime (for sandbox IDs) and the standard library only.
package network
