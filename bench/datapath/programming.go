package main

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bpf"
	"github.com/skiffhq/skiff/nodeagent/proxy"
)

// chainName is kube-proxy's chain naming: a prefix and 16 characters of
// the base32 SHA-256 of what the chain is for.
func chainName(prefix, of string) string {
	h := sha256.Sum256([]byte(of))
	return prefix + base32.StdEncoding.EncodeToString(h[:])[:16]
}

// vipOf is the ClusterIP of the i-th generated service (10.100.0.1 ...).
func vipOf(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(100 + i/62500), byte(i / 250 % 250), byte(i%250 + 1)})
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// programmingResult is the time to add one service when n exist.
type programmingResult struct {
	N int
	// eBPF: Upsert of one service (the loader's incremental change),
	// Sync of the full set plus one (the loader diffs), Proxier.Update of
	// one service's API objects (what the agent pays per watch event), and
	// Proxier.Sync of the API objects plus one (what it pays after a list).
	Upsert, UpsertP99, BPFSync, ProxierUpdate, ProxierUpdateP99, ProxierSync time.Duration
	// kube-proxy's engines: the nftables delta (nft -f) and the iptables
	// partial restore (iptables-restore --noflush), and their full loads.
	NFT, NFTFull, IPT, IPTFull time.Duration
	Err                        []string
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func p99(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*0.99))]
}

func timeIt(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func bpfServices(n int) []bpf.Service {
	out := make([]bpf.Service, 0, n)
	for i := range n {
		out = append(out, bpfService(i))
	}
	return out
}

func bpfService(i int) bpf.Service {
	s := bpf.Service{VIP: vipOf(i), Port: 80, Protocol: bpf.TCP}
	for _, b := range backendAddrs {
		s.Backends = append(s.Backends, bpf.Backend{Addr: netip.MustParseAddr(b), Port: httpPort})
	}
	return s
}

func apiServices(n int) ([]*api.Service, []*api.Endpoints) {
	svcs := make([]*api.Service, 0, n)
	eps := make([]*api.Endpoints, 0, n)
	for i := range n {
		s, e := service(vipOf(i).String())
		s[0].Name, e[0].Name = svcName(i), svcName(i)
		s[0].Spec.Ports = s[0].Spec.Ports[:1]
		e[0].Subsets[0].Ports = e[0].Subsets[0].Ports[:1]
		svcs = append(svcs, s[0])
		eps = append(eps, e[0])
	}
	return svcs, eps
}

// measureEBPF times adding one service to n through the loader (Upsert,
// then Sync) and through the Proxier.
func measureEBPF(e *env, r *programmingResult, upserts, syncs int) error {
	n := r.N
	cfg := bpf.Config{PinDir: filepath.Join(e.bpffs, fmt.Sprintf("prog-%d", n)), CgroupPath: e.cgroup}
	d, err := bpf.Open(cfg)
	if err != nil {
		return err
	}
	defer bpf.Cleanup(cfg)
	defer d.Close()
	all := bpfServices(n)
	if _, err := d.Sync(all); err != nil {
		return err
	}
	var ups []time.Duration
	for i := range upserts {
		s := bpfService(n + i)
		t, err := timeIt(func() error { _, err := d.Upsert(s); return err })
		if err != nil {
			return err
		}
		ups = append(ups, t)
		if _, err := d.Remove(s.Key()); err != nil {
			return err
		}
	}
	r.Upsert, r.UpsertP99 = median(ups), p99(ups)
	var full []time.Duration
	for i := range syncs {
		list := append(all[:n:n], bpfService(n+i))
		t, err := timeIt(func() error { _, err := d.Sync(list); return err })
		if err != nil {
			return err
		}
		full = append(full, t)
	}
	r.BPFSync = median(full)
	d.Close()
	bpf.Cleanup(cfg)

	pcfg := proxy.Config{Mode: proxy.ModeEBPF, PinDir: cfg.PinDir + "-proxier", CgroupPath: e.cgroup}
	p, err := proxy.New(pcfg)
	if err != nil {
		return err
	}
	defer proxy.Cleanup(pcfg)
	defer p.Close()
	svcs, eps := apiServices(n + max(syncs, upserts))
	ctx := context.Background()
	if err := p.Sync(ctx, svcs[:n], eps[:n]); err != nil {
		return err
	}
	var pu []time.Duration
	for i := range upserts {
		s, ep := svcs[n+i], eps[n+i]
		t, err := timeIt(func() error {
			return p.Update(ctx, []proxy.ServiceUpdate{{Namespace: s.Namespace, Name: s.Name, Service: s, Endpoints: ep}})
		})
		if err != nil {
			return err
		}
		pu = append(pu, t)
		if err := p.Update(ctx, []proxy.ServiceUpdate{{Namespace: s.Namespace, Name: s.Name}}); err != nil {
			return err
		}
	}
	r.ProxierUpdate, r.ProxierUpdateP99 = median(pu), p99(pu)
	var ps []time.Duration
	for i := range syncs {
		t, err := timeIt(func() error { return p.Sync(ctx, svcs[:n+i+1], eps[:n+i+1]) })
		if err != nil {
			return err
		}
		ps = append(ps, t)
	}
	r.ProxierSync = median(ps)
	return nil
}

// nftService writes the delta kube-proxy's nftables mode sends for a new
// service i: a service chain that picks an endpoint chain at random, one
// DNAT chain per endpoint, and its element in the service-ips verdict map.
func nftService(b *strings.Builder, i int) {
	name := "default/" + svcName(i) + "/tcp/http"
	svc := chainName("service-", name)[:16] + "-" + name
	var picks []string
	for j, ip := range backendAddrs {
		ep := chainName("endpoint-", name+ip)[:17] + "-" + name + "__" + ip + "/" + fmt.Sprint(httpPort)
		fmt.Fprintf(b, "add chain ip kube-proxy %s\n", ep)
		fmt.Fprintf(b, "add rule ip kube-proxy %s meta l4proto tcp dnat to %s:%d\n", ep, ip, httpPort)
		picks = append(picks, fmt.Sprintf("%d : goto %s", j, ep))
	}
	fmt.Fprintf(b, "add chain ip kube-proxy %s\n", svc)
	fmt.Fprintf(b, "add rule ip kube-proxy %s numgen random mod %d vmap { %s }\n", svc, len(backendAddrs), strings.Join(picks, ", "))
	fmt.Fprintf(b, "add element ip kube-proxy service-ips { %s . tcp . 80 : goto %s }\n", vipOf(i), svc)
}

// nftRuleset is kube-proxy's nftables ruleset for n services, written as
// one declaration (loading it as n*5 add commands takes minutes at 10,000:
// each command searches what the earlier ones made).
func nftRuleset(n int) string {
	var b strings.Builder
	b.WriteString("table ip kube-proxy {\n")
	b.WriteString("  chain services { ip daddr . meta l4proto . th dport vmap @service-ips ; }\n")
	b.WriteString("  chain nat-output { type nat hook output priority -100 ; policy accept ; jump services ; }\n")
	b.WriteString("  chain nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; jump services ; }\n")
	var elems []string
	for i := range n {
		name := "default/" + svcName(i) + "/tcp/http"
		svc := chainName("service-", name)[:16] + "-" + name
		var picks []string
		for j, ip := range backendAddrs {
			ep := chainName("endpoint-", name+ip)[:17] + "-" + name + "__" + ip + "/" + fmt.Sprint(httpPort)
			fmt.Fprintf(&b, "  chain %s { meta l4proto tcp dnat to %s:%d ; }\n", ep, ip, httpPort)
			picks = append(picks, fmt.Sprintf("%d : goto %s", j, ep))
		}
		fmt.Fprintf(&b, "  chain %s { numgen random mod %d vmap { %s } ; }\n", svc, len(backendAddrs), strings.Join(picks, ", "))
		elems = append(elems, fmt.Sprintf("%s . tcp . 80 : goto %s", vipOf(i), svc))
	}
	b.WriteString("  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict ;")
	if len(elems) > 0 {
		b.WriteString(" elements = { " + strings.Join(elems, ", ") + " } ;")
	}
	b.WriteString(" }\n}\n")
	return b.String()
}

// measureNFT loads n services as kube-proxy's nftables mode does, then
// times the delta that adds one (nft -f), inside the namespace.
func measureNFT(e *env, r *programmingResult, deltas int) error {
	full := nftRuleset(r.N)
	t, err := timeIt(func() error { _, err := e.run(strings.NewReader(full), "nft", "-f", "-"); return err })
	if err != nil {
		return err
	}
	r.NFTFull = t
	defer e.run(nil, "nft", "delete", "table", "ip", "kube-proxy")
	var ds []time.Duration
	for i := range deltas {
		var d strings.Builder
		nftService(&d, r.N+i)
		t, err := timeIt(func() error { _, err := e.run(strings.NewReader(d.String()), "nft", "-f", "-"); return err })
		if err != nil {
			return err
		}
		ds = append(ds, t)
	}
	r.NFT = median(ds)
	return nil
}

// iptService writes service i's KUBE-SVC and KUBE-SEP chains (declared in
// decl) and returns its KUBE-SERVICES rule and its own rules.
func iptService(decl *strings.Builder, i int) (string, []string) {
	name := "default/" + svcName(i) + ":http"
	svc := chainName("KUBE-SVC-", name)
	fmt.Fprintf(decl, ":%s - [0:0]\n", svc)
	jump := fmt.Sprintf("-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j %s", vipOf(i), name, svc)
	return jump, sepRules(decl, svc, name, httpPort)
}

// measureIPTables loads n services as kube-proxy's iptables mode does
// (iptables-restore), then times the partial restore that adds one: the
// KUBE-SERVICES chain rewritten whole plus the new service's chains
// (--noflush), as kube-proxy's partial sync writes it.
func measureIPTables(e *env, r *programmingResult, deltas int) error {
	var decl strings.Builder
	var jumps, rules []string
	for i := range r.N {
		j, rs := iptService(&decl, i)
		jumps = append(jumps, j)
		rules = append(rules, rs...)
	}
	full := "*nat\n:KUBE-SERVICES - [0:0]\n" + decl.String() +
		"-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
		strings.Join(jumps, "\n") + "\n" + strings.Join(rules, "\n") + "\nCOMMIT\n"
	t, err := timeIt(func() error { _, err := e.run(strings.NewReader(full), "iptables-restore", "-w"); return err })
	if err != nil {
		return err
	}
	r.IPTFull = t
	defer func() {
		e.run(nil, "iptables", "-w", "-t", "nat", "-F")
		e.run(nil, "iptables", "-w", "-t", "nat", "-X")
	}()
	var ds []time.Duration
	for i := range deltas {
		var d strings.Builder
		d.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n")
		j, rs := iptService(&d, r.N+i)
		jumps = append(jumps, j)
		d.WriteString(strings.Join(jumps, "\n") + "\n" + strings.Join(rs, "\n") + "\nCOMMIT\n")
		t, err := timeIt(func() error {
			_, err := e.run(strings.NewReader(d.String()), "iptables-restore", "-w", "--noflush")
			return err
		})
		if err != nil {
			return err
		}
		ds = append(ds, t)
	}
	r.IPT = median(ds)
	return nil
}
