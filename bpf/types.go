package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol is the transport protocol of a service (its IP protocol number).
type Protocol uint8

// The protocols the datapath balances.
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

// String returns "TCP" or "UDP" (Kubernetes' spelling).
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// Backend is one ready endpoint of a service.
type Backend struct {
	Addr netip.Addr
	Port uint16
}

// String returns addr:port.
func (b Backend) String() string { return netip.AddrPortFrom(b.Addr, b.Port).String() }

// Service is a ClusterIP service as the datapath programs it.
type Service struct {
	VIP      netip.Addr
	Port     uint16
	Protocol Protocol
	// Backends are the ready backends, in any order (duplicates count once).
	// Empty: connections are refused at once (ECONNREFUSED), not hung.
	Backends []Backend
	// AffinityTimeout > 0 turns on ClientIP session affinity with this idle
	// timeout (whole seconds, rounded up). A client is a network namespace
	// (a pod; the host's processes are one client).
	AffinityTimeout time.Duration
}

// Key returns the service's identity in the maps.
func (s Service) Key() ServiceKey { return ServiceKey{VIP: s.VIP, Port: s.Port, Protocol: s.Protocol} }

// ServiceKey identifies a service: VIP, port and protocol.
type ServiceKey struct {
	VIP      netip.Addr
	Port     uint16
	Protocol Protocol
}

// String returns VIP:port/protocol.
func (k ServiceKey) String() string {
	return netip.AddrPortFrom(k.VIP, k.Port).String() + "/" + k.Protocol.String()
}

// Counters of one service since it was added, summed over CPUs.
type Counters struct {
	// Connections counts connect() calls to the service: TCP connections
	// and connected UDP sockets (refused ones included).
	Connections uint64
	// Datagrams counts unconnected UDP datagrams sent to the service
	// (sendmsg with a destination address); datagrams of connected UDP
	// sockets are not seen by the datapath.
	Datagrams uint64
}

// SyncStats says what a Sync (or Upsert, Remove) changed.
type SyncStats struct {
	Added, Updated, Removed int
	// Destroyed counts sockets destroyed by stale-flow cleanup.
	Destroyed int
}

// Features are the optional parts of the datapath this kernel supports.
type Features struct {
	// SockDestroy: stale-flow cleanup (socket iterators + bpf_sock_destroy,
	// Linux >= 6.5).
	SockDestroy bool
}

// Limits of the maps (skiff_lb.h).
const (
	// MaxServices is how many services the maps hold.
	MaxServices = 65535
	// MaxBackends is the most backends one service may have.
	MaxBackends = 65535
)

// ErrInvalidService marks a service the datapath cannot program (not IPv4,
// port 0, unknown protocol, too many backends); the error names it.
var ErrInvalidService = errors.New("invalid service")

// ErrFull is returned when the maps have no room for another service.
var ErrFull = errors.New("datapath full")
