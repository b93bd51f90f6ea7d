package bpf

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func without(bes []Backend, name string) []Backend {
	return slices.DeleteFunc(slices.Clone(bes), func(b Backend) bool { return b.String() == name })
}

func TestStaleUDPFlowMovesToLiveBackend(t *testing.T) {
	// udp6hold: a dual-stack socket connected to the IPv4-mapped VIP.
	for _, hold := range []string{"udphold", "udp6hold"} {
		t.Run(hold, func(t *testing.T) { testStaleUDP(t, hold) })
	}
}

func testStaleUDP(t *testing.T, hold string) {
	e := newEnv(t)
	if !e.dp.Features().SockDestroy {
		needIntegration(t, "no bpf_sock_destroy on this kernel (Linux >= 6.5)")
	}
	// A namespace that is gone by the time of the cleanup (a deleted
	// pod's) is skipped without an error.
	e.dp.cfg.NetnsPaths = func() ([]string, error) { return []string{e.netns, "/run/netns/skiff-test-bpf-gone"}, nil }
	bes := e.backends(5353, backendAddrs...)
	svc := Service{VIP: netip.MustParseAddr("10.96.0.53"), Port: 53, Protocol: UDP, Backends: bes}
	e.sync(svc)
	c := e.client()
	resp := c.do(request{Op: hold, Name: "dns", Addr: "10.96.0.53:53"})
	checkAll(t, hold, resp, "10.96.0.53:53")
	gone := resp.Backends[0]

	start := time.Now()
	svc.Backends = without(bes, gone)
	st := e.sync(svc)
	if st.Destroyed != 1 {
		t.Errorf("Sync destroyed %d sockets, want 1 (the held one)", st.Destroyed)
	}
	// The client's socket fails, it reconnects and lands on a live backend.
	resp = c.do(request{Op: "udpping", Name: "dns", Addr: "10.96.0.53:53"})
	took := time.Since(start)
	if resp.Errs[0] == "" {
		t.Errorf("the socket to the removed backend %s still worked (answer from %s)", gone, resp.Backends[0])
	}
	if resp.Backends[0] == "" || resp.Backends[0] == gone {
		t.Errorf("after reconnecting: backend %q, want a live one", resp.Backends[0])
	}
	t.Logf("first error %q, then %s, %v after the endpoint removal", resp.Errs[0], resp.Backends[0], took)
	if took > time.Second {
		t.Errorf("moving to a live backend took %v, want <= 1s", took)
	}
	// Sockets to backends that stay are left alone.
	resp = c.do(request{Op: "udpping", Name: "dns", Addr: "10.96.0.53:53"})
	if resp.Errs[0] != "" {
		t.Errorf("socket to a live backend: %s", resp.Errs[0])
	}
}

func TestStaleTCPOnlyWithFlag(t *testing.T) {
	e := newEnv(t)
	if !e.dp.Features().SockDestroy {
		needIntegration(t, "no bpf_sock_destroy on this kernel (Linux >= 6.5)")
	}
	bes := e.backends(8080, backendAddrs...)
	svc := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes}
	e.sync(svc)
	c := e.client()
	resp := c.do(request{Op: "hold", Name: "a", Addr: "10.96.0.10:80"})
	checkAll(t, "hold", resp, "10.96.0.10:80")
	first := resp.Backends[0]

	// Off (default): the connection to the removed backend goes on.
	svc.Backends = without(bes, first)
	if st := e.sync(svc); st.Destroyed != 0 {
		t.Errorf("destroyed %d TCP sockets without SetDestroyTCP", st.Destroyed)
	}
	if resp := c.do(request{Op: "ping", Name: "a"}); resp.Errs[0] != "" {
		t.Errorf("TCP connection to a removed backend broke without SetDestroyTCP: %s", resp.Errs[0])
	}

	// On: a connection to a backend that leaves is reset.
	e.dp.SetDestroyTCP(true)
	resp = c.do(request{Op: "hold", Name: "b", Addr: "10.96.0.10:80"})
	checkAll(t, "hold", resp, "10.96.0.10:80")
	second := resp.Backends[0]
	svc.Backends = without(svc.Backends, second)
	if st := e.sync(svc); st.Destroyed != 1 {
		t.Errorf("destroyed %d TCP sockets, want 1", st.Destroyed)
	}
	if resp := c.do(request{Op: "ping", Name: "b"}); resp.Errs[0] == "" {
		t.Errorf("TCP connection to removed backend %s still works with SetDestroyTCP(true)", second)
	} else {
		t.Logf("connection to %s: %s", second, resp.Errs[0])
	}
	// A removed service's flows count too.
	resp = c.do(request{Op: "hold", Name: "c", Addr: "10.96.0.10:80"})
	checkAll(t, "hold", resp, "10.96.0.10:80")
	if st := e.sync(); st.Removed != 1 || st.Destroyed != 1 {
		t.Errorf("removing the service: %+v, want 1 removed, 1 destroyed", st)
	}
}
