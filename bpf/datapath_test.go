package bpf

import (
	"errors"
	"net/netip"
	"testing"
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
}
