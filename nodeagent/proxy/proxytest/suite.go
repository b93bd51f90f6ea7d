package proxytest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/proxy"
)

// Factory makes the Proxier under test, its metrics registered on reg.
// The suite closes it; the factory removes whatever else it made (pins)
// with t.Cleanup.
type Factory func(t *testing.T, reg prometheus.Registerer) proxy.Proxier

// Features are what the Proxier under test supports beyond the common
// behaviour.
type Features struct {
	// StaleFlows: connected UDP sockets to a removed backend are moved to
	// a live one (userspace: its flow is closed; eBPF: the socket is
	// destroyed and the client reconnects). Without it the test is skipped
	// with the reason.
	StaleFlows bool
}

// Addresses and ports the suite uses inside the test namespace.
var (
	BackendAddrs = []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"),
	}
	WebVIP   = netip.MustParseAddr("10.96.0.10")
	EmptyVIP = netip.MustParseAddr("10.96.0.20")
)

const (
	backendTCPPort = 8080
	backendUDPPort = 5353
	// noHang bounds how long a refused or unreachable connect may take.
	noHang = 500 * time.Millisecond
	// staleFlowDeadline is the target for a connected UDP client
	// to reach a live backend after its backend left.
	staleFlowDeadline = time.Second
)

var (
	httpPort = Port("http", api.ProtocolTCP, 80, backendTCPPort)
	dnsPort  = Port("dns", api.ProtocolUDP, 53, backendUDPPort)
)

// Run runs the suite against the Proxier that newProxier makes, in env:
// three backends (10.0.0.1-3) in the namespace, one client process in the
// namespace (and env's cgroup), a fresh Proxier per test.
func Run(t *testing.T, env *Env, newProxier Factory, feat Features) {
	for _, a := range BackendAddrs {
		env.StartBackend(t, a, backendTCPPort, backendUDPPort)
	}
	client := env.StartClient(t)
	s := &suite{env: env, client: client, newProxier: newProxier, feat: feat}
	t.Run("SpreadOverBackends", s.spread)
	t.Run("ClientIPAffinity", s.affinity)
	t.Run("RemovedBackendGetsNoNewConnections", s.removedBackend)
	t.Run("StaleUDPFlowMoves", s.staleUDP)
	t.Run("NoReadyBackendsRefuses", s.noReadyBackends)
	t.Run("RemovedServiceFailsFast", s.removedService)
	t.Run("TenThousandServices", s.manyServices)
	t.Run("UpdateChangesOneService", s.updates)
}

type suite struct {
	env        *Env
	client     *Client
	newProxier Factory
	feat       Features
}

func (s *suite) proxier(t *testing.T) (proxy.Proxier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p := s.newProxier(t, reg)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p, reg
}

func syncOK(t *testing.T, p proxy.Proxier, svcs []*api.Service, eps []*api.Endpoints) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.Sync(context.Background(), svcs, eps); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return time.Since(start)
}

func web() *api.Service { return Service("web", WebVIP, httpPort, dnsPort) }

func webEndpoints(ready ...netip.Addr) *api.Endpoints {
	return Endpoints("web", ready, nil, httpPort, dnsPort)
}

func vip(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// backends checks every result succeeded with peer as its peer and
// returns how often each backend answered.
func backends(t *testing.T, what string, rs []Result, peer netip.AddrPort) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i, r := range rs {
		if r.Err != "" {
			t.Fatalf("%s #%d: %s", what, i, r.Err)
		}
		if r.Peer != peer.String() {
			t.Fatalf("%s #%d: the client saw %s as its peer, want the VIP %s", what, i, r.Peer, peer)
		}
		seen[r.Backend]++
	}
	return seen
}

func names(addrs ...netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

func sameSet(seen map[string]int, want []string) bool {
	if len(seen) != len(want) {
		return false
	}
	for _, w := range want {
		if seen[w] == 0 {
			return false
		}
	}
	return true
}

// spread: TCP, connected and unconnected UDP to the VIP land on all three
// backends, and the client sees the VIP as its peer.
func (s *suite) spread(t *testing.T) {
	p, reg := s.proxier(t)
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	all := names(BackendAddrs...)

	if seen := backends(t, "TCP", s.client.TCP(t, vip(WebVIP, 80), 30), vip(WebVIP, 80)); !sameSet(seen, all) {
		t.Errorf("30 TCP connections reached %v, want all of %v", seen, all)
	}
	if seen := backends(t, "connected UDP", s.client.UDP(t, vip(WebVIP, 53), 30, true), vip(WebVIP, 53)); !sameSet(seen, all) {
		t.Errorf("30 connected UDP sockets reached %v, want all of %v", seen, all)
	}
	if seen := backends(t, "unconnected UDP", s.client.UDP(t, vip(WebVIP, 53), 30, false), vip(WebVIP, 53)); !sameSet(seen, all) {
		t.Errorf("30 unconnected UDP requests reached %v, want all of %v", seen, all)
	}

	m := gather(t, reg)
	if got := m.value("skiff_proxy_mode_info", map[string]string{"mode": string(p.Mode())}); got != 1 {
		t.Errorf("skiff_proxy_mode_info{mode=%q} = %v, want 1", p.Mode(), got)
	}
	httpLabels := map[string]string{"namespace": "default", "service": "web", "port": "http", "protocol": "TCP"}
	dnsLabels := map[string]string{"namespace": "default", "service": "web", "port": "dns", "protocol": "UDP"}
	if got := m.value("skiff_proxy_service_connections_total", httpLabels); got < 30 {
		t.Errorf("connections of web:http = %v, want >= 30", got)
	}
	if got := m.value("skiff_proxy_service_datagrams_total", dnsLabels); got < 30 {
		t.Errorf("datagrams of web:dns = %v, want >= 30 (the unconnected requests)", got)
	}
	for _, l := range []map[string]string{httpLabels, dnsLabels} {
		if got := m.value("skiff_proxy_service_backends", l); got != 3 {
			t.Errorf("backends of web:%s = %v, want 3", l["port"], got)
		}
	}
	if got := m.count("skiff_proxy_sync_duration_seconds", map[string]string{"mode": string(p.Mode()), "kind": "full", "result": "success"}); got != 1 {
		t.Errorf("sync duration observations = %v, want 1", got)
	}
}

// affinity: with ClientIP affinity every connection of the client goes to
// one backend.
func (s *suite) affinity(t *testing.T) {
	p, _ := s.proxier(t)
	syncOK(t, p, []*api.Service{WithAffinity(web(), 60)}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	if seen := backends(t, "TCP", s.client.TCP(t, vip(WebVIP, 80), 20), vip(WebVIP, 80)); len(seen) != 1 {
		t.Errorf("with ClientIP affinity 20 TCP connections reached %v, want one backend", seen)
	}
	if seen := backends(t, "unconnected UDP", s.client.UDP(t, vip(WebVIP, 53), 20, false), vip(WebVIP, 53)); len(seen) != 1 {
		t.Errorf("with ClientIP affinity 20 UDP requests reached %v, want one backend", seen)
	}
	if seen := backends(t, "connected UDP", s.client.UDP(t, vip(WebVIP, 53), 20, true), vip(WebVIP, 53)); len(seen) != 1 {
		t.Errorf("with ClientIP affinity 20 connected UDP sockets reached %v, want one backend", seen)
	}
}

// removedBackend: a backend that leaves the endpoints gets no new
// connections; one that comes back gets them again.
func (s *suite) removedBackend(t *testing.T) {
	p, _ := s.proxier(t)
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	backends(t, "TCP before", s.client.TCP(t, vip(WebVIP, 80), 3), vip(WebVIP, 80))

	left := BackendAddrs[:2]
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(left...)})
	if seen := backends(t, "TCP", s.client.TCP(t, vip(WebVIP, 80), 30), vip(WebVIP, 80)); !sameSet(seen, names(left...)) {
		t.Errorf("after removing %s, 30 TCP connections reached %v, want exactly %v", BackendAddrs[2], seen, names(left...))
	}
	if seen := backends(t, "UDP", s.client.UDP(t, vip(WebVIP, 53), 30, false), vip(WebVIP, 53)); !sameSet(seen, names(left...)) {
		t.Errorf("after removing %s, 30 UDP requests reached %v, want exactly %v", BackendAddrs[2], seen, names(left...))
	}

	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	if seen := backends(t, "TCP", s.client.TCP(t, vip(WebVIP, 80), 30), vip(WebVIP, 80)); !sameSet(seen, names(BackendAddrs...)) {
		t.Errorf("after adding %s back, 30 TCP connections reached %v, want all three", BackendAddrs[2], seen)
	}
}

// staleUDP: a long-lived connected UDP client whose backend leaves
// reaches a live backend within a second.
func (s *suite) staleUDP(t *testing.T) {
	if !s.feat.StaleFlows {
		t.Skip("this datapath cannot move established flows (no bpf_sock_destroy on this kernel)")
	}
	p, _ := s.proxier(t)
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	id := s.client.OpenUDP(t, vip(WebVIP, 53))
	first := s.client.AskUDP(t, id, time.Second)
	if first.Err != "" {
		t.Fatalf("first request: %s", first.Err)
	}
	var keep []netip.Addr
	for _, a := range BackendAddrs {
		if a.String() != first.Backend {
			keep = append(keep, a)
		}
	}
	if len(keep) != 2 {
		t.Fatalf("the first answer %q is not a backend", first.Backend)
	}
	start := time.Now()
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(keep...)})
	var log []string
	for {
		r := s.client.AskUDP(t, id, 100*time.Millisecond)
		elapsed := time.Since(start)
		log = append(log, fmt.Sprintf("%v: backend=%q err=%q", elapsed.Round(time.Millisecond), r.Backend, r.Err))
		if r.Err == "" && r.Backend != first.Backend {
			t.Logf("moved from %s to %s %v after the sync began", first.Backend, r.Backend, elapsed.Round(time.Millisecond))
			break
		}
		if elapsed > staleFlowDeadline {
			t.Fatalf("the client is still not on a live backend %v after %s left:\n%s", elapsed, first.Backend, strings.Join(log, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 5 {
		if r := s.client.AskUDP(t, id, time.Second); r.Err != "" || r.Backend == first.Backend {
			t.Fatalf("after moving: backend=%q err=%q", r.Backend, r.Err)
		}
	}
}

// noReadyBackends: a service whose endpoints are all not ready refuses
// connections at once.
func (s *suite) noReadyBackends(t *testing.T) {
	p, _ := s.proxier(t)
	empty := Service("empty", EmptyVIP, httpPort, dnsPort)
	syncOK(t, p, []*api.Service{web(), empty},
		[]*api.Endpoints{webEndpoints(BackendAddrs...), Endpoints("empty", nil, BackendAddrs, httpPort, dnsPort)})
	for i, r := range s.client.TCP(t, vip(EmptyVIP, 80), 3) {
		if !r.Refused || r.Elapsed > noHang {
			t.Errorf("TCP #%d to a service without ready backends: err=%q refused=%v after %v; want refused within %v", i, r.Err, r.Refused, r.Elapsed, noHang)
		}
	}
	for i, r := range s.client.UDP(t, vip(EmptyVIP, 53), 3, true) {
		if r.Err == "" || r.Elapsed > noHang {
			t.Errorf("connected UDP #%d to a service without ready backends: backend=%q err=%q after %v; want an error within %v", i, r.Backend, r.Err, r.Elapsed, noHang)
		}
	}
	// The other service is unaffected.
	backends(t, "TCP to web", s.client.TCP(t, vip(WebVIP, 80), 3), vip(WebVIP, 80))
}

// removedService: once a service is gone, its VIP fails at once.
func (s *suite) removedService(t *testing.T) {
	p, _ := s.proxier(t)
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	backends(t, "TCP", s.client.TCP(t, vip(WebVIP, 80), 3), vip(WebVIP, 80))
	syncOK(t, p, nil, nil)
	for i, r := range s.client.TCP(t, vip(WebVIP, 80), 3) {
		if r.Err == "" || r.Elapsed > noHang {
			t.Errorf("TCP #%d to a removed service: backend=%q err=%q after %v; want an error within %v", i, r.Backend, r.Err, r.Elapsed, noHang)
		}
	}
}

// manyServices: 10,000 services are programmed; random ones, the first
// and the last answer from a backend with the VIP as peer; one more
// service added to them works too.
func (s *suite) manyServices(t *testing.T) {
	const n = 10000
	p, _ := s.proxier(t)
	svcs := make([]*api.Service, 0, n+1)
	eps := make([]*api.Endpoints, 0, n+1)
	vipOf := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 100, byte(i / 250), byte(i%250 + 1)}) }
	port := Port("http", api.ProtocolTCP, 80, backendTCPPort)
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		svcs = append(svcs, Service(name, vipOf(i), port))
		eps = append(eps, Endpoints(name, BackendAddrs, nil, port))
	}
	took := syncOK(t, p, svcs, eps)
	t.Logf("%s: Sync of %d services took %v", p.Mode(), n, took)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	check := []int{0, n - 1}
	for range 20 {
		check = append(check, rng.IntN(n))
	}
	all := names(BackendAddrs...)
	for _, i := range check {
		r := s.client.TCP(t, vip(vipOf(i), 80), 1)
		backends(t, fmt.Sprintf("TCP to service %d (%s)", i, vipOf(i)), r, vip(vipOf(i), 80))
		if !slices.Contains(all, r[0].Backend) {
			t.Fatalf("service %d answered %q, not a backend", i, r[0].Backend)
		}
	}

	name := "svc-new"
	svcs = append(svcs, Service(name, vipOf(n), port))
	eps = append(eps, Endpoints(name, BackendAddrs, nil, port))
	took = syncOK(t, p, svcs, eps)
	t.Logf("%s: Sync of %d services with one added took %v (full set translated and diffed)", p.Mode(), n+1, took)
	backends(t, "TCP to the added service", s.client.TCP(t, vip(vipOf(n), 80), 1), vip(vipOf(n), 80))

	name = "svc-updated"
	took = updateOK(t, p, proxy.ServiceUpdate{Namespace: "default", Name: name,
		Service: Service(name, vipOf(n+1), port), Endpoints: Endpoints(name, BackendAddrs, nil, port)})
	t.Logf("%s: Update adding one service to %d took %v", p.Mode(), n+1, took)
	backends(t, "TCP to the service added by Update", s.client.TCP(t, vip(vipOf(n+1), 80), 1), vip(vipOf(n+1), 80))
}

func updateOK(t *testing.T, p proxy.Proxier, updates ...proxy.ServiceUpdate) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.Update(context.Background(), updates); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return time.Since(start)
}

// updates: Update adds, changes and deletes single services and leaves
// the others alone; the metrics follow.
func (s *suite) updates(t *testing.T) {
	p, reg := s.proxier(t)
	syncOK(t, p, []*api.Service{web()}, []*api.Endpoints{webEndpoints(BackendAddrs...)})
	all := names(BackendAddrs...)

	// Add a second service.
	other := Service("other", EmptyVIP, httpPort)
	updateOK(t, p, proxy.ServiceUpdate{Namespace: "default", Name: "other", Service: other,
		Endpoints: Endpoints("other", BackendAddrs[:1], nil, httpPort)})
	if seen := backends(t, "TCP to other", s.client.TCP(t, vip(EmptyVIP, 80), 10), vip(EmptyVIP, 80)); !sameSet(seen, names(BackendAddrs[0])) {
		t.Errorf("the added service reached %v, want only %s", seen, BackendAddrs[0])
	}

	// Change web's endpoints: one backend leaves.
	left := BackendAddrs[1:]
	updateOK(t, p, proxy.ServiceUpdate{Namespace: "default", Name: "web", Service: web(), Endpoints: webEndpoints(left...)})
	if seen := backends(t, "TCP to web", s.client.TCP(t, vip(WebVIP, 80), 30), vip(WebVIP, 80)); !sameSet(seen, names(left...)) {
		t.Errorf("after an update without %s, web reached %v, want exactly %v", BackendAddrs[0], seen, names(left...))
	}
	if seen := backends(t, "UDP to web", s.client.UDP(t, vip(WebVIP, 53), 30, false), vip(WebVIP, 53)); !sameSet(seen, names(left...)) {
		t.Errorf("after an update without %s, web's UDP port reached %v, want exactly %v", BackendAddrs[0], seen, names(left...))
	}
	m := gather(t, reg)
	if got := m.value("skiff_proxy_service_backends", map[string]string{"namespace": "default", "service": "web", "port": "http", "protocol": "TCP"}); got != 2 {
		t.Errorf("backends of web:http after the update = %v, want 2", got)
	}
	if got := m.value("skiff_proxy_service_backends", map[string]string{"namespace": "default", "service": "other", "port": "http", "protocol": "TCP"}); got != 1 {
		t.Errorf("backends of other:http = %v, want 1", got)
	}
	if got := m.count("skiff_proxy_sync_duration_seconds", map[string]string{"mode": string(p.Mode()), "kind": "update", "result": "success"}); got != 2 {
		t.Errorf("update duration observations = %v, want 2", got)
	}

	// Delete web: its VIP fails fast, other still answers.
	updateOK(t, p, proxy.ServiceUpdate{Namespace: "default", Name: "web"})
	for i, r := range s.client.TCP(t, vip(WebVIP, 80), 3) {
		if r.Err == "" || r.Elapsed > noHang {
			t.Errorf("TCP #%d to a service deleted by Update: backend=%q err=%q after %v; want an error within %v", i, r.Backend, r.Err, r.Elapsed, noHang)
		}
	}
	backends(t, "TCP to other after web is gone", s.client.TCP(t, vip(EmptyVIP, 80), 3), vip(EmptyVIP, 80))
	if m := gather(t, reg); m.find("skiff_proxy_service_backends", map[string]string{"namespace": "default", "service": "web", "port": "http", "protocol": "TCP"}) != nil {
		t.Errorf("the deleted service web still has a backends series")
	}

	// A full Sync afterwards agrees with what the updates left.
	syncOK(t, p, []*api.Service{web(), other}, []*api.Endpoints{webEndpoints(BackendAddrs...), Endpoints("other", BackendAddrs[:1], nil, httpPort)})
	if seen := backends(t, "TCP to web after Sync", s.client.TCP(t, vip(WebVIP, 80), 30), vip(WebVIP, 80)); !sameSet(seen, all) {
		t.Errorf("after a Sync with web back, it reached %v, want all of %v", seen, all)
	}
}

// metricFamilies reads a registry.
type metricFamilies map[string]*dto.MetricFamily

func gather(t *testing.T, reg *prometheus.Registry) metricFamilies {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := metricFamilies{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func (m metricFamilies) find(name string, labels map[string]string) *dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
next:
	for _, mt := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range mt.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		return mt
	}
	return nil
}

// value is a gauge's or counter's value (-1 when the series is missing).
func (m metricFamilies) value(name string, labels map[string]string) float64 {
	mt := m.find(name, labels)
	switch {
	case mt == nil:
		return -1
	case mt.Gauge != nil:
		return mt.GetGauge().GetValue()
	case mt.Counter != nil:
		return mt.GetCounter().GetValue()
	}
	return -1
}

// count is a histogram's observation count (-1 when missing).
func (m metricFamilies) count(name string, labels map[string]string) float64 {
	mt := m.find(name, labels)
	if mt == nil || mt.Histogram == nil {
		return -1
	}
	return float64(mt.GetHistogram().GetSampleCount())
}
