package userspace

import (
	"net"
	"net/netip"
	"time"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// sockets opens the proxy's sockets in its network namespace: a socket
// belongs to the namespace of the thread that created it, so with NetNS
// set every socket is created on a thread inside it (nsrun.Do); without,
// in the caller's. (The TCP event loops' threads enter the namespace
// for good instead.)
type sockets struct {
	netns       string
	dialTimeout time.Duration
}

func (s sockets) in(fn func() error) error {
	if s.netns == "" {
		return fn()
	}
	return nsrun.Do(s.netns, fn)
}

func (s sockets) dialUDP(be netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := s.in(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(be))
		return err
	})
	return c, err
}
