// Package userspace is skiff's fallback service proxy: where the kernel
// cannot run the eBPF datapath, ClusterIP traffic is proxied in user space
// on VIPs made local in the node's network namespace.
//
// Every VIP of a wanted service is made local with a /32 route of type
// local on lo (this kernel has no dummy driver), in the local table, with
// its own routing protocol (RouteProtocol, "proto 86"), which marks the
// routes the proxy owns: Sync removes only those, a restarted proxy adopts
// them, and Cleanup removes them all. A service port with ready backends
// gets a listener on VIP:port; one without has none, so the kernel refuses
// its connections at once (TCP RST, ICMP port unreachable).
//
// TCP runs on event loops (loop.go: a goroutine and an epoll instance
// per CPU, raw non-blocking system calls, as HAProxy works, because a
// goroutine per connection over net.TCPConn cost ~45% more CPU per short
// connection):
// small reads are copied through a pooled buffer, and once a read fills
// it the direction is bulk and spliced through a pipe (splice(2): the
// bytes never enter user space). UDP datagrams go through a per-client
// flow table with an idle timeout, a goroutine per flow.
//
// Backends are picked round-robin, or by ClientIP affinity with a timeout
// refreshed on use; a backend a connect failed to reach is passed over for
// a few seconds (the connection itself goes on to the next backend). When
// a backend leaves a service, new connections avoid it at once; UDP flows
// to it are closed at once (the client's next datagram starts a flow to a
// live backend), TCP connections to it drain unless Config.CloseTCP
// closes them at once; so do the connections of a service that lost all
// its backends. A removed service's connections are reset (its VIP goes
// with it). Close ends every connection.
//
// The proxy works in the network namespace of the calling process, or in
// another one given by path (Config.NetNS: tests), through a netlink
// handle opened there, sockets created on a thread inside it, and event
// loops whose goroutines lock their threads inside it.
//
// userspace imports the standard library, x/sys/unix, netlink and nsrun; it knows
// nothing of the API objects (nodeagent/proxy turns Services and
// Endpoints into Service values).
package userspace
