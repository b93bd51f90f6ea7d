// Package routes keeps a node's host routes in step with the cluster: one
// route to every other node's pod CIDR through that node's InternalIP,
// and an unreachable route over the service CIDR, so a packet to a
// service VIP that the datapath did not translate dies on the node
// instead of following the default route off it.
//
// Every route it adds carries its own routing protocol number (Protocol,
// shown by `ip route` as "proto 83"): Sync removes only such routes when
// they are no longer wanted, and never replaces a route someone else
// added (a conflict is reported instead). Cleanup removes them all.
//
// Routes work in the network namespace of the calling process, or in
// another one given by path, through a netlink handle opened inside it:
// no thread changes namespace.
//
// routes imports github.com/vishvananda/netlink and netns only; it knows
// nothing of Nodes or the API (the agent turns Node objects into Routes).
package routes
