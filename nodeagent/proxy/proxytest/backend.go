package proxytest

import (
	"bufio"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// Backend is a server in the test namespace that answers every line on
// a TCP connection, and every UDP datagram, with its Name.
type Backend struct {
	Addr    netip.Addr
	TCPPort uint16
	UDPPort uint16
}

// Name is what the backend answers: its address.
func (b Backend) Name() string { return b.Addr.String() }

// TCP is the backend's TCP address.
func (b Backend) TCP() netip.AddrPort { return netip.AddrPortFrom(b.Addr, b.TCPPort) }

// UDP is the backend's UDP address.
func (b Backend) UDP() netip.AddrPort { return netip.AddrPortFrom(b.Addr, b.UDPPort) }

// StartBackend puts addr on lo of the namespace (a /32) and serves TCP on
// tcpPort and UDP on udpPort there until the test ends.
func (e *Env) StartBackend(t testing.TB, addr netip.Addr, tcpPort, udpPort uint16) Backend {
	t.Helper()
	e.NS.IP(t, "addr", "replace", addr.String()+"/32", "dev", "lo")
	b := Backend{Addr: addr, TCPPort: tcpPort, UDPPort: udpPort}
	var ln net.Listener
	var pc net.PacketConn
	if err := e.NS.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp4", b.TCP().String()); err != nil {
			return err
		}
		if pc, err = net.ListenPacket("udp4", b.UDP().String()); err != nil {
			ln.Close()
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("backend %s: %v", addr, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	name := []byte(b.Name() + "\n")
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write(name); err != nil {
						return
					}
				}
			})
		}
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(name[:len(name)-1], from)
		}
	})
	return b
}
