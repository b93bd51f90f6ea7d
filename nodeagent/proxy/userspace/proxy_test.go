package userspace_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/nodeagent/network/netnstest"
	"github.com/skiffhq/skiff/nodeagent/proxy/userspace"
)

// backend is a TCP and UDP server on addr inside ns that answers every
// line (TCP) or datagram (UDP) with its own address.
type backend struct {
	addr netip.AddrPort
	ln   net.Listener
	pc   net.PacketConn
}

func startBackend(t *testing.T, ns netnstest.NS, addr netip.AddrPort) *backend {
	t.Helper()
	ns.IP(t, "addr", "add", addr.Addr().String()+"/32", "dev", "lo")
	b := &backend{addr: addr}
	if err := ns.Do(func() error {
		var err error
		if b.ln, err = net.Listen("tcp4", addr.String()); err != nil {
			return err
		}
		b.pc, err = net.ListenPacket("udp4", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		b.ln.Close()
		b.pc.Close()
		wg.Wait()
	})
	name := []byte(addr.String() + "\n")
	wg.Go(func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
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
			_, from, err := b.pc.ReadFrom(buf)
			if err != nil {
				return
			}
			b.pc.WriteTo(name, from)
		}
	})
	return b
}

func newProxy(t *testing.T, cfg userspace.Config) *userspace.Proxy {
	t.Helper()
	p, err := userspace.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// owned lists the VIP routes (proto 86 in the local table) of ns.
func owned(t *testing.T, ns netnstest.NS) map[string]bool {
	t.Helper()
	out := ns.IP(t, "-4", "route", "show", "table", "local", "proto", "86")
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "local" {
			got[f[1]] = true
		}
	}
	return got
}

// hasAddr reports whether ip is an address on lo of ns.
func hasAddr(t *testing.T, ns netnstest.NS, ip string) bool {
	t.Helper()
	return strings.Contains(ns.IP(t, "-4", "-o", "addr", "show", "dev", "lo", "to", ip+"/32"), "inet ")
}

func dialTCP(t *testing.T, ns netnstest.NS, addr string) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	})
	return c, err
}

func ask(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("?\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestVIPRoutesOwned(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	ns.IP(t, "addr", "add", "10.96.0.99/32", "dev", "lo")                                            // someone else's
	ns.IP(t, "route", "add", "local", "10.96.0.98/32", "dev", "lo", "table", "local", "proto", "86") // a crashed proxy's
	p := newProxy(t, userspace.Config{NetNS: ns.Path})

	vip := netip.MustParseAddr("10.96.0.1")
	err := p.Sync([]userspace.Service{
		{VIP: vip, Port: 80, Protocol: userspace.TCP},
		{VIP: netip.MustParseAddr("10.96.0.99"), Port: 80, Protocol: userspace.TCP},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := owned(t, ns); len(got) != 1 || !got["10.96.0.1"] {
		t.Errorf("VIP routes after Sync: %v, want only 10.96.0.1 (the crashed proxy's 10.96.0.98 removed, the foreign 10.96.0.99 left alone)", got)
	}
	if !hasAddr(t, ns, "10.96.0.99") {
		t.Error("the foreign address is gone")
	}

	// No backends: nothing listens on the VIP, the kernel refuses at once.
	start := time.Now()
	c, err := dialTCP(t, ns, "10.96.0.1:80")
	if err == nil {
		c.Close()
		t.Fatal("connected to a service without backends")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("dial without backends: %v after %v, want connection refused at once", err, time.Since(start))
	}

	if err := p.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if got := owned(t, ns); len(got) != 0 {
		t.Errorf("VIP routes of removed services remain: %v", got)
	}
	if !hasAddr(t, ns, "10.96.0.99") {
		t.Error("Sync removed an address the proxy did not add")
	}

	// Cleanup removes what a proxy left without Close.
	ns.IP(t, "route", "add", "local", "10.96.0.97/32", "dev", "lo", "table", "local", "proto", "86")
	if err := userspace.Cleanup(userspace.Config{NetNS: ns.Path}); err != nil {
		t.Fatal(err)
	}
	if got := owned(t, ns); len(got) != 0 {
		t.Errorf("Cleanup left VIP routes: %v", got)
	}
	if !hasAddr(t, ns, "10.96.0.99") {
		t.Error("Cleanup removed an address the proxy did not add")
	}
}

func TestVIPsRemovedOnClose(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	p, err := userspace.New(userspace.Config{NetNS: ns.Path})
	if err != nil {
		t.Fatal(err)
	}
	be := startBackend(t, ns, netip.MustParseAddrPort("10.0.0.1:8080"))
	if err := p.Sync([]userspace.Service{{VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: userspace.TCP, Backends: []netip.AddrPort{be.addr}}}); err != nil {
		t.Fatal(err)
	}
	c, err := dialTCP(t, ns, "10.96.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := ask(c); err != nil || got != be.addr.String() {
		t.Fatalf("ask = %q, %v", got, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := owned(t, ns); len(got) != 0 {
		t.Errorf("VIP routes after Close: %v", got)
	}
	if _, err := ask(c); err == nil {
		t.Error("a proxied connection outlived Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestTCPToRemovedBackend: by default a connection to a backend that left
// drains (keeps working); with CloseTCP it is closed at once. New
// connections avoid the backend either way.
func TestTCPToRemovedBackend(t *testing.T) {
	netnstest.Require(t)
	for _, closeTCP := range []bool{false, true} {
		name := "drain"
		if closeTCP {
			name = "CloseTCP"
		}
		t.Run(name, func(t *testing.T) {
			ns := netnstest.New(t)
			b1 := startBackend(t, ns, netip.MustParseAddrPort("10.0.0.1:8080"))
			b2 := startBackend(t, ns, netip.MustParseAddrPort("10.0.0.2:8080"))
			p := newProxy(t, userspace.Config{NetNS: ns.Path, CloseTCP: closeTCP})
			svc := userspace.Service{VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: userspace.TCP, Backends: []netip.AddrPort{b1.addr, b2.addr}}
			if err := p.Sync([]userspace.Service{svc}); err != nil {
				t.Fatal(err)
			}
			c, err := dialTCP(t, ns, "10.96.0.1:80")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			first, err := ask(c)
			if err != nil {
				t.Fatal(err)
			}
			keep := b1.addr
			if first == b1.addr.String() {
				keep = b2.addr
			}
			svc.Backends = []netip.AddrPort{keep}
			if err := p.Sync([]userspace.Service{svc}); err != nil {
				t.Fatal(err)
			}
			got, err := ask(c)
			switch {
			case !closeTCP && (err != nil || got != first):
				t.Fatalf("draining connection: ask = %q, %v; want %s", got, err, first)
			case closeTCP && err == nil:
				t.Fatalf("connection to a removed backend still answers (%q) with CloseTCP", got)
			}
			for range 5 {
				c2, err := dialTCP(t, ns, "10.96.0.1:80")
				if err != nil {
					t.Fatal(err)
				}
				got, err := ask(c2)
				c2.Close()
				if err != nil || got != keep.String() {
					t.Fatalf("new connection: %q, %v; want %s", got, err, keep)
				}
			}

			// The service loses all its backends: its connections drain
			// (closed with CloseTCP); removed, they are reset.
			c3, err := dialTCP(t, ns, "10.96.0.1:80")
			if err != nil {
				t.Fatal(err)
			}
			defer c3.Close()
			if _, err := ask(c3); err != nil {
				t.Fatal(err)
			}
			svc.Backends = nil
			if err := p.Sync([]userspace.Service{svc}); err != nil {
				t.Fatal(err)
			}
			got, err = ask(c3)
			switch {
			case !closeTCP && (err != nil || got != keep.String()):
				t.Fatalf("connection of a service without backends, draining: %q, %v", got, err)
			case closeTCP && err == nil:
				t.Fatalf("connection of a service without backends still answers (%q) with CloseTCP", got)
			}
			if err := p.Sync(nil); err != nil {
				t.Fatal(err)
			}
			if got, err := ask(c3); err == nil || os.IsTimeout(err) {
				t.Fatalf("connection of a removed service: %q, %v; want it reset", got, err)
			}
		})
	}
}

func TestUDPIdleFlowsAndCounters(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	b1 := startBackend(t, ns, netip.MustParseAddrPort("10.0.0.1:5353"))
	p := newProxy(t, userspace.Config{NetNS: ns.Path, UDPIdleTimeout: 200 * time.Millisecond})
	udp := userspace.Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 53, Protocol: userspace.UDP, Backends: []netip.AddrPort{b1.addr}}
	tcp := userspace.Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 53, Protocol: userspace.TCP, Backends: []netip.AddrPort{b1.addr}}
	tcp.Backends = []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:8053")} // nobody listens
	if err := p.Sync([]userspace.Service{udp, tcp}); err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", "0.0.0.0:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	vip := &net.UDPAddr{IP: net.ParseIP("10.96.0.10"), Port: 53}
	send := func() string {
		t.Helper()
		if _, err := pc.WriteTo([]byte("?"), vip); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from.String() != vip.String() {
			t.Fatalf("reply from %v, want the VIP %v", from, vip)
		}
		return strings.TrimSpace(string(buf[:n]))
	}
	for range 3 {
		if got := send(); got != b1.addr.String() {
			t.Fatalf("reply %q", got)
		}
	}
	if c := p.Counters()[udp.Key()]; c.Connections != 1 || c.Datagrams != 3 {
		t.Fatalf("counters after 3 datagrams of one flow = %+v, want 1 flow, 3 datagrams", c)
	}
	// Idle past the timeout: the flow ends, the next datagram starts another.
	deadline := time.Now().Add(5 * time.Second)
	for p.Counters()[udp.Key()].Connections < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the idle flow was never closed")
		}
		time.Sleep(300 * time.Millisecond)
		send()
	}

	// A TCP backend that refuses: the client is reset, not left hanging.
	c, err := dialTCP(t, ns, "10.96.0.10:53")
	if err == nil { // the reset may come before or after connect returns
		defer c.Close()
		_, err = ask(c)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("through a proxy whose only backend refuses: %v, want a reset", err)
	}
	if got := p.Counters()[tcp.Key()].Connections; got != 1 {
		t.Fatalf("TCP connections counted %d, want 1", got)
	}
	keys := slices.Collect(maps.Keys(p.Counters()))
	if len(keys) != 2 {
		t.Fatalf("counters for %v, want the 2 services", keys)
	}
}

// TestTCPBulkIntact: a large transfer both ways arrives intact through
// the proxy (small reads are copied, bulk is spliced), and the half-close
// of each side reaches the other.
func TestTCPBulkIntact(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	ns.IP(t, "addr", "add", "10.0.0.1/32", "dev", "lo")
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.0.0.1:7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	// The backend echoes until the client half-closes, then says "bye"
	// and closes.
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
		c.Write([]byte("bye"))
	})
	p := newProxy(t, userspace.Config{NetNS: ns.Path})
	if err := p.Sync([]userspace.Service{{VIP: netip.MustParseAddr("10.96.0.1"), Port: 7000, Protocol: userspace.TCP,
		Backends: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:7000")}}}); err != nil {
		t.Fatal(err)
	}
	c, err := dialTCP(t, ns, "10.96.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, 8<<20)
	rand.Read(data)
	go func() {
		// A few small writes first, then the bulk.
		for _, chunk := range [][]byte{data[:10], data[10:500], data[500:]} {
			c.Write(chunk)
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, []byte("bye")) {
		t.Fatalf("no bye after the echo (%d bytes)", len(got))
	}
	got = got[:len(got)-3]
	if len(got) != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, want the %d sent, intact", len(got), len(data))
	}
}

// TestTCPConnectTimeoutNextBackend: a backend that never answers the SYN
// costs its client the dial timeout, then the next backend serves it.
func TestTCPConnectTimeoutNextBackend(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	ns.IP(t, "route", "add", "10.9.9.0/24", "dev", "lo") // SYNs to 10.9.9.9 are dropped
	live := startBackend(t, ns, netip.MustParseAddrPort("10.0.0.1:8080"))
	dead := netip.MustParseAddrPort("10.9.9.9:8080")
	p := newProxy(t, userspace.Config{NetNS: ns.Path, DialTimeout: 200 * time.Millisecond})
	if err := p.Sync([]userspace.Service{{VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: userspace.TCP,
		Backends: []netip.AddrPort{dead, live.addr}}}); err != nil {
		t.Fatal(err)
	}
	slow := 0
	for i := range 4 {
		start := time.Now()
		c, err := dialTCP(t, ns, "10.96.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		got, err := ask(c)
		c.Close()
		took := time.Since(start)
		if err != nil || got != live.addr.String() {
			t.Fatalf("connection %d: %q, %v; want the live backend", i, got, err)
		}
		if took >= 200*time.Millisecond {
			slow++
		}
		if took > 2*time.Second {
			t.Fatalf("connection %d took %v", i, took)
		}
	}
	// The first connection finds the dead backend; the next ones pass it
	// over while it is marked down.
	if slow != 1 {
		t.Errorf("%d of 4 connections waited for the dial timeout, want 1", slow)
	}
}
