package bpf

import (
	"errors"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	requirePrivileged(t)
	f, err := Probe()
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	t.Logf("features: %+v", f)
	if !f.SockDestroy {
		t.Errorf("SockDestroy = false on this kernel (>= 6.5 has bpf_sock_destroy)")
	}
}

func TestOpenRefusesCgroupRoot(t *testing.T) {
	requirePrivileged(t)
	_, err := Open(Config{PinDir: testBPFFS(t), CgroupPath: cgroupV2Root})
	if !errors.Is(err, ErrCgroupRoot) {
		t.Fatalf("Open at the cgroup v2 root: err = %v, want ErrCgroupRoot", err)
	}
}

func TestTCPSpreadAndPeer(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	vip := netip.MustParseAddr("10.96.0.10")
	st := e.sync(Service{VIP: vip, Port: 80, Protocol: TCP, Backends: bes})
	if st.Added != 1 {
		t.Fatalf("stats %+v, want 1 added", st)
	}
	c := e.client()
	resp := c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 30})
	seen := map[string]int{}
	for i, b := range resp.Backends {
		if resp.Errs[i] != "" {
			t.Fatalf("connection %d: %s", i, resp.Errs[i])
		}
		if resp.Peers[i] != "10.96.0.10:80" {
			t.Errorf("connection %d: getpeername = %s, want the VIP", i, resp.Peers[i])
		}
		seen[b]++
	}
	t.Logf("backends: %v", seen)
	if len(seen) != 3 {
		t.Errorf("30 connections reached %d backends, want 3: %v", len(seen), seen)
	}
	seen = checkAll(t, "dual-stack connection", c.do(request{Op: "tcp6", Addr: "10.96.0.10:80", N: 30}), "10.96.0.10:80")
	if len(seen) != 3 {
		t.Errorf("30 dual-stack connections reached %v, want 3 backends", seen)
	}
	// Run counts need kernel.bpf_stats_enabled, a host-wide switch the
	// tests leave alone: only check that all four programs report.
	stats, err := e.dp.ProgramStats()
	if err != nil {
		t.Fatalf("ProgramStats: %v", err)
	}
	for _, hook := range []string{"connect4", "sendmsg4", "recvmsg4", "getpeername4", "connect6", "sendmsg6", "recvmsg6", "getpeername6"} {
		if _, ok := stats[hook]; !ok {
			t.Errorf("ProgramStats has no %s: %v", hook, stats)
		}
	}
}

// checkAll fails the test for each failed attempt or peer other than peer.
func checkAll(t *testing.T, what string, resp response, peer string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i, b := range resp.Backends {
		if resp.Errs[i] != "" {
			t.Errorf("%s %d: %s", what, i, resp.Errs[i])
			continue
		}
		if peer != "" && resp.Peers[i] != peer {
			t.Errorf("%s %d: peer = %s, want %s", what, i, resp.Peers[i], peer)
		}
		seen[b]++
	}
	return seen
}

func TestUDP(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(5353, backendAddrs...)
	e.sync(Service{VIP: netip.MustParseAddr("10.96.0.53"), Port: 53, Protocol: UDP, Backends: bes})
	c := e.client()

	// Unconnected: each datagram is translated at sendmsg, each reply
	// comes "from" the VIP (recvmsg).
	seen := checkAll(t, "datagram", c.do(request{Op: "udp", Addr: "10.96.0.53:53", N: 30}), "10.96.0.53:53")
	t.Logf("unconnected: %v", seen)
	if len(seen) != 3 {
		t.Errorf("30 datagrams reached %d backends, want 3", len(seen))
	}
	// Connected: translated once at connect; getpeername and the replies
	// show the VIP.
	seen = checkAll(t, "connected socket", c.do(request{Op: "udpconn", Addr: "10.96.0.53:53", N: 30}), "10.96.0.53:53")
	t.Logf("connected: %v", seen)
	if len(seen) != 3 {
		t.Errorf("30 connected sockets reached %d backends, want 3", len(seen))
	}
	// Dual-stack sockets reach the service through the IPv4-mapped VIP
	// and see it (mapped) as their peer.
	for _, op := range []string{"udp6", "udp6conn"} {
		seen = checkAll(t, op, c.do(request{Op: op, Addr: "10.96.0.53:53", N: 30}), "10.96.0.53:53")
		if len(seen) != 3 {
			t.Errorf("%s: 30 tries reached %v, want 3 backends", op, seen)
		}
	}
	// A socket connected through the service and then straight to its
	// backend sees the backend as its peer again.
	resp := c.do(request{Op: "udpreconnect", Addr: "10.96.0.53:53"})
	if len(resp.Errs) != 2 || resp.Errs[0] != "" || resp.Errs[1] != "" {
		t.Fatalf("udpreconnect: %+v", resp)
	}
	if resp.Peers[0] != "10.96.0.53:53" || resp.Peers[1] != resp.Backends[0] || resp.Backends[1] != resp.Backends[0] {
		t.Errorf("reconnected to the backend: peers %v, backends %v; want the VIP, then the backend", resp.Peers, resp.Backends)
	}
	// A TCP service on the same VIP and port is another service.
	resp = c.do(request{Op: "tcp", Addr: "10.96.0.53:53", N: 1})
	if resp.Errs[0] == "" {
		t.Errorf("TCP to a UDP-only service was translated (reached %s)", resp.Backends[0])
	}
}

func TestNoBackendsRefusesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.sync(
		Service{VIP: netip.MustParseAddr("10.96.0.20"), Port: 80, Protocol: TCP},
		Service{VIP: netip.MustParseAddr("10.96.0.20"), Port: 53, Protocol: UDP},
	)
	c := e.client()
	for _, op := range []string{"tcp", "udpconn", "udp"} {
		addr := "10.96.0.20:80"
		if op != "tcp" {
			addr = "10.96.0.20:53"
		}
		resp := c.do(request{Op: op, Addr: addr, N: 1})
		if !strings.Contains(resp.Errs[0], "connection refused") {
			t.Errorf("%s to a service without backends: err = %q, want connection refused", op, resp.Errs[0])
		}
		if resp.Elapsed > 200*time.Millisecond {
			t.Errorf("%s to a service without backends took %v to fail, want at once", op, resp.Elapsed)
		}
	}
}

func TestBackendRemovedGetsNoNewConnections(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	svc := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes}
	e.sync(svc)
	svc.Backends = bes[1:]
	if st := e.sync(svc); st.Updated != 1 {
		t.Fatalf("stats %+v, want 1 updated", st)
	}
	c := e.client()
	seen := checkAll(t, "connection", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 30}), "10.96.0.10:80")
	if seen[bes[0].String()] > 0 || len(seen) != 2 {
		t.Errorf("after removing %s: %v", bes[0], seen)
	}
	// Back to three: the freed slots generation is reused.
	svc.Backends = bes
	e.sync(svc)
	seen = checkAll(t, "connection", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 30}), "10.96.0.10:80")
	if len(seen) != 3 {
		t.Errorf("after adding %s back: %v", bes[0], seen)
	}
}

func TestCounters(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	tcp := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes}
	udp := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 8080, Protocol: UDP, Backends: bes}
	e.sync(tcp, udp)
	c := e.client()
	checkAll(t, "tcp", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 7}), "")
	checkAll(t, "udp", c.do(request{Op: "udp", Addr: "10.96.0.10:8080", N: 5}), "")
	checkAll(t, "udpconn", c.do(request{Op: "udpconn", Addr: "10.96.0.10:8080", N: 3}), "")
	got, err := e.dp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := map[ServiceKey]Counters{
		tcp.Key(): {Connections: 7},
		udp.Key(): {Connections: 3, Datagrams: 5},
	}
	if !maps.Equal(got, want) {
		t.Errorf("Counters = %v, want %v", got, want)
	}
	// A service removed and added again starts from zero.
	e.sync(udp)
	e.sync(tcp, udp)
	got, _ = e.dp.Counters()
	if got[tcp.Key()] != (Counters{}) {
		t.Errorf("re-added service's counters = %+v, want zero", got[tcp.Key()])
	}
}
