package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

func TestDropThreshold(t *testing.T) {
	for _, tc := range []struct {
		share float64
		want  uint64
		bad   bool
	}{
		{share: 0, want: 0},
		{share: 1, want: 1 << 32},
		{share: 0.5, want: 1 << 31},
		{share: 0.3, want: 1288490189},
		{share: -0.1, bad: true},
		{share: 1.01, bad: true},
		{share: math.NaN(), bad: true},
		{share: math.Inf(1), bad: true},
	} {
		got, err := dropThreshold(tc.share)
		if tc.bad {
			if err == nil {
				t.Errorf("dropThreshold(%v) = %d, want an error", tc.share, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("dropThreshold(%v) = %d, %v; want %d", tc.share, got, err, tc.want)
		}
	}
}

func TestDropConfigRequired(t *testing.T) {
	full := DropConfig{NetnsPath: "/run/netns/x", Interface: "eth0", PinDir: "/sys/fs/bpf/x"}
	for _, cfg := range []DropConfig{
		{Interface: full.Interface, PinDir: full.PinDir},
		{NetnsPath: full.NetnsPath, PinDir: full.PinDir},
		{NetnsPath: full.NetnsPath, Interface: full.Interface},
	} {
		if err := SetDrop(cfg, 0.5); err == nil {
			t.Errorf("SetDrop(%+v) succeeded", cfg)
		}
	}
	if err := ClearDrop(DropConfig{}); err == nil {
		t.Error("ClearDrop without PinDir succeeded")
	}
	if _, _, err := DropStats(DropConfig{}); err == nil {
		t.Error("DropStats without PinDir succeeded")
	}
}

// TestSetDropRefusesHostNetns: the machine's own namespace is refused
// before anything is loaded or pinned.
func TestSetDropRefusesHostNetns(t *testing.T) {
	var host string
	var st unix.Stat_t
	switch {
	case unix.Stat("/proc/1/ns/net", &st) == nil:
		host = "/proc/1/ns/net"
	case unix.Stat("/proc/self/ns/net", &st) == nil && st.Ino == initNetnsIno:
		host = "/proc/self/ns/net"
	default:
		needIntegration(t, "cannot name the machine's network namespace from here (/proc/1/ns/net unreadable and not in the initial one)")
	}
	pins := filepath.Join(t.TempDir(), "pins")
	err := SetDrop(DropConfig{NetnsPath: host, Interface: "lo", PinDir: pins}, 1)
	if !errors.Is(err, ErrHostNetns) {
		t.Fatalf("SetDrop on %s: %v, want ErrHostNetns", host, err)
	}
	if exists(pins) {
		t.Errorf("refused SetDrop created %s", pins)
	}
	if err := SetDrop(DropConfig{NetnsPath: t.TempDir(), Interface: "lo", PinDir: pins}, 1); err == nil {
		t.Error("SetDrop on a directory that is no network namespace succeeded")
	}
}

// dropEnv is two network namespaces joined by a veth pair (eth0 in both),
// IPv4 only, with permanent neighbour entries: the UDP datagrams of a test
// are the only packets on the link, so the drop counters must match them.
type dropEnv struct {
	t            *testing.T
	ns1, ns2     string // paths
	pins         string
	recv1, recv2 *net.UDPConn // bound in ns1 (10.99.0.1) and ns2 (10.99.0.2)
	send1, send2 *net.UDPConn // from ns1 to ns2 and back
	round        uint32
	ids          map[string]bool // of the last SetDrop's links and maps
}

const (
	dropAddr1 = "10.99.0.1"
	dropAddr2 = "10.99.0.2"
	dropMAC1  = "02:00:0a:63:00:01"
	dropMAC2  = "02:00:0a:63:00:02"
	dropPort  = 9999
	dropN     = 2000
)

func newDropEnv(t *testing.T) *dropEnv {
	t.Helper()
	requirePrivileged(t)
	e := &dropEnv{t: t, pins: filepath.Join(testBPFFS(t), "drop-n1")}
	name1, ns1 := testNetns(t)
	name2, ns2 := testNetns(t)
	e.ns1, e.ns2 = ns1, ns2
	for _, ns := range []string{ns1, ns2} {
		if err := inNetns(ns, func() error {
			for _, k := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("disable IPv6 in %s: %v", ns, err)
		}
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// Created inside ns1 with its peer moved to ns2: the machine's own
	// namespace never sees the pair.
	ip("-n", name1, "link", "add", "eth0", "address", dropMAC1, "type", "veth", "peer", "name", "eth0", "address", dropMAC2, "netns", name2)
	for _, n := range []struct{ ns, addr, peer, peerMAC string }{
		{name1, dropAddr1, dropAddr2, dropMAC2},
		{name2, dropAddr2, dropAddr1, dropMAC1},
	} {
		ip("-n", n.ns, "addr", "add", n.addr+"/24", "dev", "eth0")
		ip("-n", n.ns, "link", "set", "eth0", "up")
		ip("-n", n.ns, "neigh", "replace", n.peer, "lladdr", n.peerMAC, "dev", "eth0", "nud", "permanent")
	}
	e.recv1 = e.socket(ns1, func() (*net.UDPConn, error) { return listenUDP(dropAddr1) })
	e.recv2 = e.socket(ns2, func() (*net.UDPConn, error) { return listenUDP(dropAddr2) })
	e.send1 = e.socket(ns1, func() (*net.UDPConn, error) { return dialUDP(dropAddr2) })
	e.send2 = e.socket(ns2, func() (*net.UDPConn, error) { return dialUDP(dropAddr1) })
	// Registered after the bpffs: runs before its unmount.
	t.Cleanup(func() {
		if err := ClearDrop(e.cfg()); err != nil {
			t.Errorf("ClearDrop: %v", err)
		}
	})
	return e
}

// socket opens a socket inside ns (it stays there) and closes it at the end.
func (e *dropEnv) socket(ns string, open func() (*net.UDPConn, error)) *net.UDPConn {
	e.t.Helper()
	var c *net.UDPConn
	if err := inNetns(ns, func() (err error) { c, err = open(); return err }); err != nil {
		e.t.Fatalf("socket in %s: %v", ns, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func listenUDP(addr string) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr), Port: dropPort})
	if err != nil {
		return nil, err
	}
	// Room for every datagram of a round (root may exceed rmem_max).
	raw, err := c.SyscallConn()
	if err == nil {
		err = raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func dialUDP(addr string) (*net.UDPConn, error) {
	return net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(addr), Port: dropPort})
}

func (e *dropEnv) cfg() DropConfig {
	return DropConfig{NetnsPath: e.ns1, Interface: "eth0", PinDir: e.pins}
}

// send sends dropN datagrams over one direction of the link and returns
// how many of this round arrived.
func (e *dropEnv) send(from, to *net.UDPConn) int {
	e.t.Helper()
	e.round++
	msg := make([]byte, 8)
	binary.BigEndian.PutUint32(msg, e.round)
	for i := range dropN {
		binary.BigEndian.PutUint32(msg[4:], uint32(i))
		if _, err := from.Write(msg); err != nil {
			e.t.Fatalf("send: %v", err)
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // let the receiving side's backlog drain
		}
	}
	seen := make(map[uint32]bool)
	buf := make([]byte, 64)
	for {
		to.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := to.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return len(seen)
		}
		if err != nil {
			e.t.Fatalf("receive: %v", err)
		}
		if n == 8 && binary.BigEndian.Uint32(buf) == e.round {
			seen[binary.BigEndian.Uint32(buf[4:])] = true
		}
	}
}

// forward sends across ns1's egress, back across its ingress.
func (e *dropEnv) forward() int { return e.send(e.send1, e.recv2) }
func (e *dropEnv) back() int    { return e.send(e.send2, e.recv1) }

func (e *dropEnv) set(share float64) {
	e.t.Helper()
	if err := SetDrop(e.cfg(), share); err != nil {
		e.t.Fatalf("SetDrop(%v): %v", share, err)
	}
	// Nothing of this process holds the links or maps: the pins do.
	e.ids = e.pinnedIDs()
	if fds := heldFDs(e.t, e.ids); len(fds) > 0 {
		e.t.Fatalf("after SetDrop the process still holds %v", fds)
	}
}

func (e *dropEnv) stats() (seen, dropped uint64) {
	e.t.Helper()
	seen, dropped, err := DropStats(e.cfg())
	if err != nil {
		e.t.Fatalf("DropStats: %v", err)
	}
	return seen, dropped
}

// checkRound sends a round one way and checks the arrivals against
// share and the counters against the arrivals.
func (e *dropEnv) checkRound(dir string, send func() int, share float64) {
	e.t.Helper()
	seen0, dropped0 := e.stats()
	got := send()
	seen, dropped := e.stats()
	want := float64(dropN) * (1 - share)
	// ±5 points of dropN: over 4 standard deviations at share 0.3.
	if math.Abs(float64(got)-want) > 0.05*dropN || (share == 0 || share == 1) && float64(got) != want {
		e.t.Errorf("share %v %s: %d of %d arrived, want %.0f", share, dir, got, dropN, want)
	}
	if seen-seen0 != dropN || dropped-dropped0 != uint64(dropN-got) {
		e.t.Errorf("share %v %s: counters seen +%d dropped +%d, want +%d and +%d (%d arrived)",
			share, dir, seen-seen0, dropped-dropped0, dropN, dropN-got, got)
	}
	e.t.Logf("share %v %s: %d of %d arrived", share, dir, got, dropN)
}

// heldFDs lists this process's descriptors of the BPF objects named in
// ids ("link_id:\t5", "map_id:\t7", as in /proc/self/fdinfo).
func heldFDs(t *testing.T, ids map[string]bool) []string {
	t.Helper()
	infos, err := filepath.Glob("/proc/self/fdinfo/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fi := range infos {
		data, err := os.ReadFile(fi)
		if err != nil {
			continue // closed meanwhile
		}
		for _, line := range strings.Split(string(data), "\n") {
			if ids[line] {
				out = append(out, filepath.Base(fi)+" "+line)
			}
		}
	}
	return out
}

// pinnedIDs names the pinned links and maps as heldFDs matches them.
func (e *dropEnv) pinnedIDs() map[string]bool {
	e.t.Helper()
	ids := make(map[string]bool)
	for _, id := range e.linkIDs() {
		ids[fmt.Sprintf("link_id:\t%d", id)] = true
	}
	for _, name := range []string{dropPinConfig, dropPinCounters} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(e.pins, name), nil)
		if err != nil {
			e.t.Fatalf("pinned map %s: %v", name, err)
		}
		info, err := m.Info()
		m.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			e.t.Fatalf("map %s: no id", name)
		}
		ids[fmt.Sprintf("map_id:\t%d", id)] = true
	}
	return ids
}

func (e *dropEnv) linkIDs() []link.ID {
	e.t.Helper()
	var ids []link.ID
	for _, name := range []string{dropPinIngress, dropPinEgress} {
		l, err := link.LoadPinnedLink(filepath.Join(e.pins, name), nil)
		if err != nil {
			e.t.Fatalf("pinned %s link: %v", name, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	return ids
}

func TestDrop(t *testing.T) {
	e := newDropEnv(t)

	// Nothing set yet: all arrive, nothing to clear or count.
	if got := e.forward(); got != dropN {
		t.Fatalf("without a drop %d of %d arrived: the test link loses packets by itself", got, dropN)
	}
	if _, _, err := DropStats(e.cfg()); !errors.Is(err, ErrNoDrop) {
		t.Fatalf("DropStats before SetDrop: %v, want ErrNoDrop", err)
	}
	if err := ClearDrop(e.cfg()); err != nil {
		t.Fatalf("ClearDrop with nothing set: %v", err)
	}

	e.set(0)
	attached := e.linkIDs()
	e.checkRound("egress", e.forward, 0)
	e.checkRound("ingress", e.back, 0)

	// A new share only rewrites the map: the same links stay attached.
	e.set(0.3)
	e.set(0.3)
	if ids := e.linkIDs(); ids[0] != attached[0] || ids[1] != attached[1] {
		t.Errorf("changing the share re-attached: links %v, were %v", ids, attached)
	}
	e.checkRound("egress", e.forward, 0.3)
	e.checkRound("ingress", e.back, 0.3)

	e.set(1)
	e.checkRound("egress", e.forward, 1)
	e.checkRound("ingress", e.back, 1)

	// A link whose pin is gone (the program is detached with it) is
	// attached again by the next SetDrop, and the counters carry on.
	if err := unpinLink(filepath.Join(e.pins, dropPinEgress)); err != nil {
		t.Fatal(err)
	}
	if got := e.forward(); got != dropN {
		t.Errorf("egress unpinned: %d of %d arrived", got, dropN)
	}
	e.set(1)
	if ids := e.linkIDs(); ids[0] != attached[0] || ids[1] == attached[1] {
		t.Errorf("after re-attaching egress: links %v, were %v (want ingress kept, egress new)", ids, attached)
	}
	e.checkRound("egress", e.forward, 1)

	if err := ClearDrop(e.cfg()); err != nil {
		t.Fatalf("ClearDrop: %v", err)
	}
	if exists(e.pins) {
		t.Errorf("ClearDrop left %s", e.pins)
	}
	if got := e.forward(); got != dropN {
		t.Errorf("after ClearDrop %d of %d arrived egress", got, dropN)
	}
	if got := e.back(); got != dropN {
		t.Errorf("after ClearDrop %d of %d arrived ingress", got, dropN)
	}
	if err := ClearDrop(e.cfg()); err != nil {
		t.Errorf("second ClearDrop: %v", err)
	}
	if _, _, err := DropStats(e.cfg()); !errors.Is(err, ErrNoDrop) {
		t.Errorf("DropStats after ClearDrop: %v, want ErrNoDrop", err)
	}
	if fds := heldFDs(t, e.ids); len(fds) > 0 {
		t.Errorf("the process still holds %v", fds)
	}
	// inNetns put every thread back where it was.
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, p := range tasks {
		if ns, err := os.Readlink(p); err == nil && ns != self {
			t.Errorf("thread %s is in %s, the process in %s", p, ns, self)
		}
	}
}

// TestDropInterfaceMissing: a wrong interface name fails and pins nothing
// that a later SetDrop would mistake for an attachment.
func TestDropInterfaceMissing(t *testing.T) {
	e := newDropEnv(t)
	cfg := e.cfg()
	cfg.Interface = "nosuch0"
	if err := SetDrop(cfg, 0.5); err == nil {
		t.Fatal("SetDrop on a missing interface succeeded")
	}
	if _, _, err := DropStats(cfg); !errors.Is(err, ErrNoDrop) {
		t.Errorf("DropStats after a failed SetDrop: %v, want ErrNoDrop", err)
	}
}
