package cni_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/network/cni"
	"github.com/skiffhq/skiff/nodeagent/network/netnstest"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// node is a test node: a namespace holding the bridge, the state dir and
// the Network over them.
type node struct {
	ns    netnstest.NS
	state string
	cidr  netip.Prefix
	net   *cni.Network
}

func requireCNI(t testing.TB) {
	t.Helper()
	netnstest.Require(t)
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			netnstest.Missing(t, "CNI plugin /usr/lib/cni/"+p+" (apt-get install containernetworking-plugins)")
		}
	}
}

func newNode(t testing.TB, cidr string) *node {
	t.Helper()
	requireCNI(t)
	n := &node{ns: netnstest.New(t), state: t.TempDir(), cidr: netip.MustParsePrefix(cidr)}
	n.net = n.open(t, nil)
	return n
}

// open makes a Network over the node's namespace and state dir: calling
// it again is an agent restart.
func (n *node) open(t testing.TB, m *cni.Metrics) *cni.Network {
	t.Helper()
	nw, err := cni.New(cni.Config{PodCIDR: n.cidr, StateDir: n.state, NetNS: n.ns.Path, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return nw
}

// sandbox creates a sandbox namespace and its attachment (not attached).
func sandbox(t testing.TB, id string) (netnstest.NS, network.Attachment) {
	t.Helper()
	ns := netnstest.New(t)
	return ns, network.Attachment{Sandbox: runtime.SandboxID(id), NetNS: ns.Path,
		Pod: runtime.PodMeta{Name: id, Namespace: "default", UID: api.UID("uid-" + id)}}
}

func attach(t testing.TB, nw network.Network, a network.Attachment) netip.Addr {
	t.Helper()
	ip, err := nw.Attach(context.Background(), a)
	if err != nil {
		t.Fatalf("Attach %s: %v", a.Sandbox, err)
	}
	return ip
}

func detach(t testing.TB, nw network.Network, a network.Attachment) {
	t.Helper()
	if err := nw.Detach(context.Background(), a); err != nil {
		t.Fatalf("Detach %s: %v", a.Sandbox, err)
	}
}

// veths counts the veth interfaces in the node's namespace (the host
// ends of attached sandboxes).
func (n *node) veths(t testing.TB) int {
	t.Helper()
	out := strings.TrimSpace(n.ns.IP(t, "-o", "link", "show", "type", "veth"))
	if out == "" {
		return 0
	}
	return len(strings.Split(out, "\n"))
}

// reserved lists the addresses host-local has on record.
func (n *node) reserved(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.state, "cni", "ipam", cni.NetworkName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// serve accepts TCP connections on addr inside ns and answers each with
// reply.
func serve(t *testing.T, ns netnstest.NS, addr netip.AddrPort, reply string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// fetch dials addr from inside ns and returns the first line it reads.
func fetch(ns netnstest.NS, addr netip.AddrPort) (string, error) {
	var line string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

func TestAttachConnectsSandboxes(t *testing.T) {
	n := newNode(t, "10.244.7.0/24")
	nsA, a := sandbox(t, "sandbox-a")
	nsB, b := sandbox(t, "sandbox-b")
	ipA, ipB := attach(t, n.net, a), attach(t, n.net, b)
	for _, ip := range []netip.Addr{ipA, ipB} {
		if !n.cidr.Contains(ip) || ip == n.net.Gateway() || ip == n.cidr.Addr() {
			t.Fatalf("sandbox address %v is not a pod address of %v", ip, n.cidr)
		}
	}
	if ipA == ipB {
		t.Fatalf("both sandboxes got %v", ipA)
	}
	if got := nsA.IP(t, "-o", "-4", "addr", "show", "dev", cni.IfName); !strings.Contains(got, ipA.String()+"/24") {
		t.Fatalf("eth0 of sandbox a: %q, want %v/24", got, ipA)
	}
	if got := nsA.IP(t, "route", "show", "default"); !strings.Contains(got, "via "+n.net.Gateway().String()) {
		t.Fatalf("default route in sandbox a: %q, want via %v", got, n.net.Gateway())
	}
	if got := nsA.IP(t, "-o", "link", "show", "lo"); !strings.Contains(got, "UP") {
		t.Fatalf("lo in sandbox a is not up: %q", got)
	}
	if got := n.ns.IP(t, "-o", "-4", "addr", "show", "dev", cni.DefaultBridge); !strings.Contains(got, n.net.Gateway().String()+"/24") {
		t.Fatalf("bridge in the node namespace: %q, want the gateway %v/24", got, n.net.Gateway())
	}

	// Pod to pod across the bridge, both ways, and node to pod.
	serve(t, nsA, netip.AddrPortFrom(ipA, 8080), "a")
	serve(t, nsB, netip.AddrPortFrom(ipB, 8080), "b")
	for _, tc := range []struct {
		from netnstest.NS
		to   netip.Addr
		want string
	}{{nsB, ipA, "a"}, {nsA, ipB, "b"}, {n.ns, ipA, "a"}} {
		if got, err := fetch(tc.from, netip.AddrPortFrom(tc.to, 8080)); err != nil || got != tc.want {
			t.Errorf("from %s to %v: %q, %v; want %q", tc.from.Name, tc.to, got, err, tc.want)
		}
	}

	// Idempotent: attaching again changes nothing.
	if again := attach(t, n.net, a); again != ipA {
		t.Fatalf("re-attach gave %v, want %v", again, ipA)
	}
	if v := n.veths(t); v != 2 {
		t.Fatalf("%d veths in the node namespace after a re-attach, want 2", v)
	}

	// Detach removes the veth and frees the address; twice is fine.
	detach(t, n.net, a)
	detach(t, n.net, a)
	if v := n.veths(t); v != 1 {
		t.Fatalf("%d veths after detaching one of two, want 1", v)
	}
	if got := n.reserved(t); !slices.Equal(got, []string{ipB.String()}) {
		t.Fatalf("host-local reserves %v after detaching a, want only %v", got, ipB)
	}
	if _, err := fetch(nsB, netip.AddrPortFrom(ipA, 8080)); err == nil {
		t.Fatal("a detached sandbox still answers")
	}
	// A sandbox never attached detaches without error.
	_, never := sandbox(t, "never")
	detach(t, n.net, never)
}

func TestDetachAfterNamespaceIsGone(t *testing.T) {
	n := newNode(t, "10.244.8.0/24")
	_, a := sandbox(t, "gone")
	// The sandbox's namespace is one the test deletes itself.
	tmp := netnstest.New(t)
	a.NetNS = tmp.Path
	ip := attach(t, n.net, a)
	tmp.IP(t, "link", "show") // it exists
	if err := tmp.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := n.net.Detach(context.Background(), a); err != nil {
		t.Fatalf("Detach after the namespace is gone: %v", err)
	}
	// The kernel destroys a namespace (and the veth with it) a moment
	// after its last reference goes.
	for deadline := time.Now().Add(5 * time.Second); n.veths(t) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d veths left 5s after the sandbox namespace was deleted", n.veths(t))
		}
	}
	if got := n.reserved(t); len(got) != 0 {
		t.Fatalf("host-local still reserves %v (was %v)", got, ip)
	}
	// Detach by ID only (the agent lost the path) finds the path itself.
	_, b := sandbox(t, "by-id")
	attach(t, n.net, b)
	if err := n.net.Detach(context.Background(), network.Attachment{Sandbox: b.Sandbox}); err != nil {
		t.Fatal(err)
	}
	if v := n.veths(t); v != 0 {
		t.Fatalf("Detach by ID left %d veths", v)
	}
}

func TestPrefer(t *testing.T) {
	n := newNode(t, "10.244.9.0/24")
	want := netip.MustParseAddr("10.244.9.77")
	_, a := sandbox(t, "prefer-a")
	a.Prefer = want
	if got := attach(t, n.net, a); got != want {
		t.Fatalf("Attach preferring %v = %v", want, got)
	}
	_, b := sandbox(t, "prefer-b")
	b.Prefer = want
	got := attach(t, n.net, b)
	if got == want || !n.cidr.Contains(got) {
		t.Fatalf("a second sandbox preferring the taken %v got %v", want, got)
	}
	if v := n.veths(t); v != 2 {
		t.Fatalf("%d veths after a refused preference, want 2 (no leftover of the failed ADD)", v)
	}
	for _, bad := range []string{"10.0.0.5", "10.244.9.1", "10.244.9.255"} {
		_, c := sandbox(t, "prefer-"+bad)
		c.Prefer = netip.MustParseAddr(bad)
		if got := attach(t, n.net, c); got == c.Prefer || !n.cidr.Contains(got) {
			t.Fatalf("preferring the unusable %v gave %v", bad, got)
		}
	}
}

func TestRestartFindsAttachments(t *testing.T) {
	n := newNode(t, "10.244.10.0/24")
	nsA, a := sandbox(t, "restart-a")
	ip := attach(t, n.net, a)

	reg := prometheus.NewRegistry()
	restarted := n.open(t, cni.NewMetrics(reg))
	if got := attach(t, restarted, a); got != ip {
		t.Fatalf("after a restart Attach gave %v, want %v", got, ip)
	}
	if ops := operations(t, reg); !slices.Equal(ops, []string{"check success 1"}) {
		t.Fatalf("plugin runs of a re-attach after a restart: %v, want one successful check", ops)
	}
	if v := n.veths(t); v != 1 {
		t.Fatalf("%d veths after re-attaching, want 1", v)
	}
	list, err := restarted.Attached()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Sandbox != a.Sandbox || list[0].NetNS != a.NetNS || list[0].Prefer != ip {
		t.Fatalf("Attached() = %+v, want %s in %s with %v", list, a.Sandbox, a.NetNS, ip)
	}

	// A broken attachment (its eth0 deleted behind the network's back)
	// fails CHECK and is rebuilt with the same address.
	nsA.IP(t, "link", "delete", cni.IfName)
	if got := attach(t, restarted, a); got != ip {
		t.Fatalf("repairing a broken attachment gave %v, want %v", got, ip)
	}
	if got := nsA.IP(t, "-o", "-4", "addr", "show", "dev", cni.IfName); !strings.Contains(got, ip.String()) {
		t.Fatalf("eth0 after repair: %q", got)
	}
	detach(t, restarted, a)
	if list, _ := restarted.Attached(); len(list) != 0 {
		t.Fatalf("Attached() after Detach = %+v", list)
	}
}

func TestExhausted(t *testing.T) {
	n := newNode(t, "10.244.11.0/29") // .2 to .6
	var got []string
	for i := range 5 {
		_, a := sandbox(t, "full-"+string(rune('a'+i)))
		got = append(got, attach(t, n.net, a).String())
	}
	slices.Sort(got)
	if want := "10.244.11.2 10.244.11.3 10.244.11.4 10.244.11.5 10.244.11.6"; strings.Join(got, " ") != want {
		t.Fatalf("addresses of a /29: %v, want %s", got, want)
	}
	_, full := sandbox(t, "full-z")
	if _, err := n.net.Attach(context.Background(), full); !errors.Is(err, network.ErrExhausted) {
		t.Fatalf("Attach on a full CIDR: %v, want ErrExhausted", err)
	}
	if v := n.veths(t); v != 5 {
		t.Fatalf("%d veths after a refused ADD, want 5", v)
	}
}

func TestConcurrentAttachDetach(t *testing.T) {
	n := newNode(t, "10.244.13.0/24")
	const count = 8
	atts := make([]network.Attachment, count)
	for i := range atts {
		_, atts[i] = sandbox(t, fmt.Sprintf("par-%d", i))
	}
	ips := make([]netip.Addr, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range atts {
		wg.Go(func() { ips[i], errs[i] = n.net.Attach(context.Background(), atts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		if seen[ip] || !n.cidr.Contains(ip) {
			t.Fatalf("concurrent attaches gave %v", ips)
		}
		seen[ip] = true
	}
	if v := n.veths(t); v != count {
		t.Fatalf("%d veths, want %d", v, count)
	}
	for i := range atts {
		wg.Go(func() { errs[i] = n.net.Detach(context.Background(), atts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if v, r := n.veths(t), n.reserved(t); v != 0 || len(r) != 0 {
		t.Fatalf("after detaching all: %d veths, reserved %v", v, r)
	}
}

// TestOwnNamespace runs a Network without Config.NetNS from a thread in
// the node namespace, as an agent process started inside a node's
// namespace does: the bridge is made where the caller is.
func TestOwnNamespace(t *testing.T) {
	requireCNI(t)
	node := netnstest.New(t)
	_, a := sandbox(t, "own")
	var ip netip.Addr
	if err := node.Do(func() error {
		nw, err := cni.New(cni.Config{PodCIDR: netip.MustParsePrefix("10.244.14.0/24"), StateDir: t.TempDir(), BridgeName: "own0"})
		if err != nil {
			return err
		}
		if ip, err = nw.Attach(context.Background(), a); err != nil {
			return err
		}
		return nw.Detach(context.Background(), a)
	}); err != nil {
		t.Fatal(err)
	}
	if !netip.MustParsePrefix("10.244.14.0/24").Contains(ip) {
		t.Fatalf("got %v", ip)
	}
	if got := node.IP(t, "-o", "-4", "addr", "show", "dev", "own0"); !strings.Contains(got, "10.244.14.1/24") {
		t.Fatalf("bridge own0 in the node namespace: %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]cni.Config{
		"no CIDR":      {StateDir: dir},
		"no state dir": {PodCIDR: netip.MustParsePrefix("10.1.0.0/24")},
		"tiny CIDR":    {PodCIDR: netip.MustParsePrefix("10.1.0.0/31"), StateDir: dir},
		"long bridge":  {PodCIDR: netip.MustParsePrefix("10.1.0.0/24"), StateDir: dir, BridgeName: "a-very-long-bridge"},
		"no plugins":   {PodCIDR: netip.MustParsePrefix("10.1.0.0/24"), StateDir: dir, PluginDirs: []string{dir}},
		"not a netns":  {PodCIDR: netip.MustParsePrefix("10.1.0.0/24"), StateDir: dir, NetNS: filepath.Join(dir, "x")},
	} {
		if _, err := cni.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// operations lists the plugin chain runs recorded in reg as
// "operation result count".
func operations(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, fmt.Sprintf("%s %s %d", labels["operation"], labels["result"], m.GetHistogram().GetSampleCount()))
		}
	}
	slices.Sort(out)
	return out
}

// BenchmarkAttachDetach reports the median and worst time of one
// Attach plus Detach of a fresh sandbox (run with -benchtime=20x).
func BenchmarkAttachDetach(b *testing.B) {
	n := newNode(b, "10.244.12.0/24")
	_, sb := sandbox(b, "bench")
	var attachD, detachD []time.Duration
	ctx := context.Background()
	for b.Loop() {
		start := time.Now()
		if _, err := n.net.Attach(ctx, sb); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := n.net.Detach(ctx, sb); err != nil {
			b.Fatal(err)
		}
		attachD, detachD = append(attachD, mid.Sub(start)), append(detachD, time.Since(mid))
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, name+"-max-ms")
	}
	report("attach", attachD)
	report("detach", detachD)
}
