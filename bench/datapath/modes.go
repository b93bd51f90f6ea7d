package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
	"github.com/skiffhq/skiff/nodeagent/proxy"
)

// Addresses inside the bench namespace.
var backendAddrs = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}

const (
	httpPort = 8080
	bulkPort = 9000
	vipHTTP  = 80
)

// mode is one way of reaching the backends.
type mode struct {
	name string
	// up makes the mode ready.
	up func(e *env) (*running, error)
}

// running is a mode made ready.
type running struct {
	targets []string // short-connection targets, used round-robin
	bulk    string   // the bulk target
	pid     int      // the proxy process (0: none, the kernel does it)
	down    func()   // the teardown
}

var modes = []mode{
	{"direct", upDirect},
	{"ebpf", upEBPF},
	{"userspace", upUserspace},
	{"haproxy", upHAProxy},
	{"iptables", upIPTables},
}

func upDirect(*env) (*running, error) {
	var t []string
	for _, b := range backendAddrs {
		t = append(t, fmt.Sprintf("%s:%d", b, httpPort))
	}
	return &running{targets: t, bulk: fmt.Sprintf("%s:%d", backendAddrs[0], bulkPort), down: func() {}}, nil
}

// service is the benchmark's ClusterIP Service at vip (http 80 -> 8080,
// bulk 9000 -> 9000) and its Endpoints with the three backends.
func service(vip string) ([]*api.Service, []*api.Endpoints) {
	ports := []api.ServicePort{
		{Name: "http", Protocol: api.ProtocolTCP, Port: vipHTTP, TargetPort: api.FromInt32(httpPort)},
		{Name: "bulk", Protocol: api.ProtocolTCP, Port: bulkPort, TargetPort: api.FromInt32(bulkPort)},
	}
	svc := &api.Service{ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: api.ServiceSpec{Type: api.ServiceTypeClusterIP, ClusterIP: vip, Ports: ports}}
	ss := api.EndpointSubset{Ports: []api.EndpointPort{
		{Name: "http", Protocol: api.ProtocolTCP, Port: httpPort},
		{Name: "bulk", Protocol: api.ProtocolTCP, Port: bulkPort},
	}}
	for _, b := range backendAddrs {
		ss.Addresses = append(ss.Addresses, api.EndpointAddress{IP: b})
	}
	ep := &api.Endpoints{ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"}, Subsets: []api.EndpointSubset{ss}}
	return []*api.Service{svc}, []*api.Endpoints{ep}
}

func vipTargets(vip string, pid int, down func()) *running {
	return &running{targets: []string{fmt.Sprintf("%s:%d", vip, vipHTTP)}, bulk: fmt.Sprintf("%s:%d", vip, bulkPort), pid: pid, down: down}
}

// upEBPF opens the eBPF datapath on the bench cgroup (the load generator
// runs in its child) from this process, as the agent does.
func upEBPF(e *env) (*running, error) {
	const vip = "10.96.0.10"
	cfg := proxy.Config{Mode: proxy.ModeEBPF, PinDir: filepath.Join(e.bpffs, "datapath"), CgroupPath: e.cgroup}
	p, err := proxy.New(cfg)
	if err != nil {
		return nil, err
	}
	svcs, eps := service(vip)
	if err := p.Sync(context.Background(), svcs, eps); err != nil {
		p.Close()
		proxy.Cleanup(cfg)
		return nil, err
	}
	return vipTargets(vip, 0, func() {
		p.Close()
		if err := proxy.Cleanup(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "ebpf cleanup:", err)
		}
	}), nil
}

// upUserspace runs the userspace proxier in its own process in the
// namespace.
func upUserspace(e *env) (*running, error) {
	const vip = "10.96.0.11"
	svcs, eps := service(vip)
	c, stdout, stdin, err := e.start("userspace", userspaceArgs{Services: svcs, Endpoints: eps, CPUProfile: userspaceProfile}, false)
	if err != nil {
		return nil, err
	}
	if err := readyLine(c, stdout); err != nil {
		c.stop()
		return nil, err
	}
	return vipTargets(vip, c.cmd.Process.Pid, func() {
		stdin.Close() // a clean exit writes the profile
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			c.stop()
		}
	}), nil
}

// userspaceProfile is -cpuprofile-userspace.
var userspaceProfile string

const haproxyConfig = `global
    maxconn 4000
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend http
    bind {{VIP}}:80
    default_backend http
backend http
    balance roundrobin
{{HTTP}}
frontend bulk
    bind {{VIP}}:9000
    default_backend bulk
backend bulk
    balance roundrobin
{{BULK}}
`

// upHAProxy runs Debian's haproxy in tcp mode on a VIP made local with a
// local route (as the userspace proxier's are), round-robin over the same
// backends.
func upHAProxy(e *env) (*running, error) {
	const vip = "10.96.0.12"
	var httpServers, bulkServers []string
	for i, b := range backendAddrs {
		httpServers = append(httpServers, fmt.Sprintf("    server b%d %s:%d", i+1, b, httpPort))
		bulkServers = append(bulkServers, fmt.Sprintf("    server b%d %s:%d", i+1, b, bulkPort))
	}
	cfg := strings.NewReplacer("{{VIP}}", vip, "{{HTTP}}", strings.Join(httpServers, "\n"), "{{BULK}}", strings.Join(bulkServers, "\n")).Replace(haproxyConfig)
	dir, err := os.MkdirTemp("", e.name+"-haproxy")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	e.mustRun("ip", "route", "add", "local", vip+"/32", "dev", "lo", "table", "local")
	c, err := e.startDaemon("haproxy", "-f", path, "-db")
	if err != nil {
		return nil, err
	}
	down := func() {
		c.stop()
		os.RemoveAll(dir)
		e.run(nil, "ip", "route", "del", "local", vip+"/32", "dev", "lo", "table", "local")
	}
	if err := e.waitListening(netip.MustParseAddrPort(vip+":80"), c); err != nil {
		down()
		return nil, err
	}
	return vipTargets(vip, c.cmd.Process.Pid, down), nil
}

// waitListening waits until addr accepts a connection made inside the
// namespace.
func (e *env) waitListening(addr netip.AddrPort, c *child) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := nsrun.Do(e.nsPath, func() error {
			if host, err := nsrun.InHostNetNS(); err != nil || host {
				return fmt.Errorf("not in the bench namespace")
			}
			conn, err := net.DialTimeout("tcp4", addr.String(), time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		})
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited: %s", c.name, c.out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s: %v", c.name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// upIPTables installs kube-proxy-style DNAT rules (KUBE-SERVICES ->
// KUBE-SVC-* with statistic random -> KUBE-SEP-* DNAT) in the bench
// namespace's nat table, hooked from OUTPUT, for a VIP with a local route
// (a route the connect can take before the DNAT).
func upIPTables(e *env) (*running, error) {
	const vip = "10.96.0.13"
	e.mustRun("ip", "route", "add", "local", vip+"/32", "dev", "lo", "table", "local")
	var b strings.Builder
	b.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n")
	rules := []string{
		"-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
		"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
	}
	for _, p := range []struct {
		name      string
		port, tgt int
	}{{name: "http", port: vipHTTP, tgt: httpPort}, {name: "bulk", port: bulkPort, tgt: bulkPort}} {
		svcChain := chainName("KUBE-SVC-", "default/web:"+p.name)
		fmt.Fprintf(&b, ":%s - [0:0]\n", svcChain)
		rules = append(rules, fmt.Sprintf("-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"default/web:%s cluster IP\" -m tcp --dport %d -j %s", vip, p.name, p.port, svcChain))
		rules = append(rules, sepRules(&b, svcChain, "default/web:"+p.name, p.tgt)...)
	}
	b.WriteString(strings.Join(rules, "\n") + "\nCOMMIT\n")
	if _, err := e.run(strings.NewReader(b.String()), "iptables-restore", "--noflush"); err != nil {
		return nil, err
	}
	down := func() {
		e.run(nil, "iptables", "-t", "nat", "-F")
		e.run(nil, "iptables", "-t", "nat", "-X")
		e.run(nil, "ip", "route", "del", "local", vip+"/32", "dev", "lo", "table", "local")
	}
	return vipTargets(vip, 0, down), nil
}

// sepRules declares the endpoint chains of one service port in b and
// returns the rules of its KUBE-SVC chain and KUBE-SEP chains, the way
// kube-proxy writes them: a random pick with probability 1/n, 1/(n-1), ...
func sepRules(b *strings.Builder, svcChain, svcName string, port int) []string {
	var rules []string
	n := len(backendAddrs)
	for i, ip := range backendAddrs {
		sep := chainName("KUBE-SEP-", fmt.Sprintf("%s:%s:%d", svcName, ip, port))
		fmt.Fprintf(b, ":%s - [0:0]\n", sep)
		if i < n-1 {
			rules = append(rules, fmt.Sprintf("-A %s -m comment --comment \"%s -> %s:%d\" -m statistic --mode random --probability %.11f -j %s", svcChain, svcName, ip, port, 1/float64(n-i), sep))
		} else {
			rules = append(rules, fmt.Sprintf("-A %s -m comment --comment \"%s -> %s:%d\" -j %s", svcChain, svcName, ip, port, sep))
		}
		rules = append(rules, fmt.Sprintf("-A %s -p tcp -m comment --comment \"%s\" -m tcp -j DNAT --to-destination %s:%d", sep, svcName, ip, port))
	}
	return rules
}
