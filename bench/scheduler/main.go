// Command scheduler measures skiff's scheduling end to end: real `skiff
// server` processes (one, then three) with thousands of simulated nodes
// (`skiff agent --simulate`), Deployments applied through the API, and the
// time until every pod is bound, read from a pod watch.
//
// For each cluster size and workload it prints pods/s from the first
// Deployment create to the last binding, p50/p99 of each pod's
// create→bound time (first seen in the watch → first seen bound), and the
// leader's RSS. With -baseline it runs the same workload again with the
// scheduler in kube-scheduler's mode (one pod per cycle, one binding per
// store write) and prints the ratio. Then it stops 10% of the nodes
// (kill -9 of the agent process that simulates them) and measures how
// long until all their pods run elsewhere.
//
//	go run ./bench/scheduler -nodes 5000 -pods 50000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bench/internal/cluster"
	"github.com/skiffhq/skiff/client"
)

type options struct {
	nodes, pods, replicas int
	servers               []int
	workloads             []string
	baseline              bool
	nodeLoss              bool
	grace                 time.Duration
	heartbeat             time.Duration
	readyDelay            time.Duration
	bin                   string
	keep                  bool
	profile               string
	profileFor            time.Duration
	logLevel              string
}

func main() {
	var o options
	var servers, workloads string
	flag.IntVar(&o.nodes, "nodes", 5000, "simulated nodes")
	flag.IntVar(&o.pods, "pods", 50000, "pods in total (Deployments of -replicas)")
	flag.IntVar(&o.replicas, "replicas", 100, "replicas per Deployment")
	flag.StringVar(&servers, "servers", "1,3", "cluster sizes to run, comma-separated")
	flag.StringVar(&workloads, "workloads", "basic,anti-affinity", "basic (no affinity) and/or anti-affinity (required, one pod of a Deployment per node)")
	flag.BoolVar(&o.baseline, "baseline", true, "also run each workload with one pod per cycle and one binding per write (kube-scheduler's mode)")
	flag.BoolVar(&o.nodeLoss, "node-loss", true, "after the basic workload, kill 10% of the nodes and time the reschedule")
	flag.DurationVar(&o.grace, "grace", 10*time.Second, "servers' --node-grace-period")
	flag.DurationVar(&o.heartbeat, "heartbeat", 2*time.Second, "agents' heartbeat period")
	flag.DurationVar(&o.readyDelay, "ready-delay", time.Second, "simulated pods turn Running and Ready after this")
	flag.StringVar(&o.bin, "skiff", "bin/skiff", "skiff binary (make build)")
	flag.BoolVar(&o.keep, "keep", false, "keep data directories and logs")
	flag.StringVar(&o.logLevel, "log-level", "info", "servers' --log-level (debug logs each scheduling batch)")
	flag.StringVar(&o.profile, "profile", "", "write the leader's CPU profile while pods are created and bound to PREFIX-<servers>-<workload>-<mode>.pprof (go tool pprof reads it)")
	flag.DurationVar(&o.profileFor, "profile-for", 20*time.Second, "length of the -profile capture")
	flag.Parse()
	for _, s := range strings.Split(servers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scheduler: bad -servers %q\n", servers)
			os.Exit(2)
		}
		o.servers = append(o.servers, n)
	}
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w != "basic" && w != "anti-affinity" {
			fmt.Fprintf(os.Stderr, "scheduler: unknown workload %q (want basic, anti-affinity)\n", w)
			os.Exit(2)
		}
		o.workloads = append(o.workloads, w)
	}
	if o.replicas > o.nodes && slices.Contains(o.workloads, "anti-affinity") {
		fmt.Fprintln(os.Stderr, "scheduler: anti-affinity needs -replicas <= -nodes")
		os.Exit(2)
	}
	fmt.Printf("# scheduler: %d simulated nodes, %d pods in Deployments of %d; machine: %d CPUs, %s\n",
		o.nodes, o.pods, o.replicas, runtime.NumCPU(), runtime.Version())
	fmt.Printf("# %-3s %-14s %-9s %9s %9s %9s %9s %8s\n", "srv", "workload", "mode", "pods/s", "p50 ms", "p99 ms", "total s", "RSS MiB")
	ctx := context.Background()
	for _, n := range o.servers {
		for _, w := range o.workloads {
			modes := []string{"batch"}
			if o.baseline {
				modes = append(modes, "one-by-one")
			}
			var rates []float64
			for _, mode := range modes {
				res, err := runOnce(ctx, o, n, w, mode, o.nodeLoss && w == "basic" && mode == "batch")
				if err != nil {
					fmt.Fprintf(os.Stderr, "scheduler: %d servers, %s, %s: %v\n", n, w, mode, err)
					os.Exit(1)
				}
				rates = append(rates, res.rate)
			}
			if len(rates) == 2 {
				fmt.Printf("# ratio %d servers %s: batch / one-by-one = %.2fx pods/s\n", n, w, rates[0]/rates[1])
			}
		}
	}
}

type result struct{ rate float64 }

func runOnce(ctx context.Context, o options, servers int, workload, mode string, nodeLoss bool) (result, error) {
	r := cluster.NewReaper()
	r.Keep = o.keep
	defer r.Close()
	r.CloseOnSignal()
	// The default cluster CIDR (10.244.0.0/16) has room for 256 node pod
	// CIDRs of /24; 10.128.0.0/9 has 32,768.
	args := []string{"--node-grace-period", o.grace.String(), "--log-level", o.logLevel, "--cluster-cidr", "10.128.0.0/9"}
	if mode == "one-by-one" {
		args = append(args, "--scheduler-batch-size", "1")
	}
	sk, err := cluster.StartSkiff(ctx, r, o.bin, servers, args...)
	if err != nil {
		return result{}, err
	}
	cfg, err := client.LoadConfig(sk.Servers[0].AdminConfPath())
	if err != nil {
		return result{}, err
	}
	for _, s := range sk.Servers[1:] {
		cfg.Servers = append(cfg.Servers, s.URL())
	}
	c, err := client.New(*cfg, client.WithTimeout(60*time.Second))
	if err != nil {
		return result{}, err
	}
	// Found now: under the load below, the members endpoint may be slow.
	leader, err := sk.Leader(ctx, 10*time.Second)
	if err != nil {
		return result{}, err
	}
	tok, err := c.CreateToken(ctx, client.TokenRequest{Usage: "agent", Description: "bench/scheduler"})
	if err != nil {
		return result{}, fmt.Errorf("create an agent token: %w", err)
	}

	// Two agent processes: 90% of the nodes, and the 10% the node-loss
	// phase kills.
	lost := o.nodes / 10
	dir, err := r.TempDir("skiff-bench-agents-")
	if err != nil {
		return result{}, err
	}
	startAgents := func(name, prefix string, n int) (*cluster.Proc, error) {
		return r.Start(name, dir+"/"+name+".log", o.bin, "agent", "--simulate", strconv.Itoa(n),
			"--server", sk.Servers[0].URL(), "--token", tok.Token, "--node-prefix", prefix,
			"--ready-delay", o.readyDelay.String(), "--heartbeat-period", o.heartbeat.String(),
			"--cpu", "8", "--memory", "32Gi", "--max-pods", "110")
	}
	mainAgents, err := startAgents("agents-main", "sim-a-", o.nodes-lost)
	if err != nil {
		return result{}, err
	}
	doomed, err := startAgents("agents-lost", "sim-b-", lost)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := waitNodes(ctx, c, o.nodes, 5*time.Minute); err != nil {
		return result{}, err
	}
	fmt.Fprintf(os.Stderr, "# %d nodes Ready after %.1fs\n", o.nodes, time.Since(start).Seconds())

	tr, err := trackPods(ctx, c)
	if err != nil {
		return result{}, err
	}
	defer tr.stop()
	deployments := o.pods / o.replicas
	procs := map[string][]*cluster.Proc{"agents": {mainAgents, doomed}}
	for _, srv := range sk.Servers {
		procs["servers"] = append(procs["servers"], srv.Proc)
	}
	cpu0 := sampleCPU(procs)
	t0 := time.Now()
	if o.profile != "" {
		file := fmt.Sprintf("%s-%d-%s-%s.pprof", o.profile, servers, workload, mode)
		profDone := make(chan struct{})
		defer func() { <-profDone }()
		go func() {
			defer close(profDone)
			if err := captureProfile(sk, leader, o.profileFor, file); err != nil {
				fmt.Fprintf(os.Stderr, "# profile: %v\n", err)
				return
			}
			fmt.Fprintf(os.Stderr, "# leader CPU profile (%v from the first Deployment) in %s\n", o.profileFor, file)
		}()
	}
	if err := createDeployments(ctx, c, deployments, o.replicas, workload == "anti-affinity"); err != nil {
		return result{}, err
	}
	if err := tr.waitBound(ctx, deployments*o.replicas, 10*time.Minute); err != nil {
		return result{}, err
	}
	cpuUse := sampleCPU(procs).since(cpu0)
	total := tr.lastBound().Sub(t0)
	rate := float64(deployments*o.replicas) / total.Seconds()
	p50, p99 := tr.latencies()
	rss := rssMiB(leader.Proc.PID())
	fmt.Printf("  %-3d %-14s %-9s %9.0f %9.1f %9.1f %9.2f %8d\n", servers, workload, mode, rate, ms(p50), ms(p99), total.Seconds(), rss)
	fmt.Printf("#     CPU while binding: %s\n", cpuUse)
	if m, err := schedulerMetrics(sk, leader); err == nil {
		fmt.Printf("#     scheduler: %s\n", m)
	} else {
		fmt.Fprintf(os.Stderr, "# scheduler metrics: %v\n", err)
	}

	if nodeLoss {
		if err := measureNodeLoss(ctx, c, tr, doomed, "sim-b-", deployments*o.replicas, o); err != nil {
			return result{}, err
		}
	}
	return result{rate: rate}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitNodes waits until want nodes are Ready.
func waitNodes(ctx context.Context, c *client.Client, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := -1
	for {
		l, err := c.List(ctx, api.KindNode, client.ListOptions{})
		if err == nil {
			ready := 0
			for _, o := range l.Items {
				for _, cond := range o.(*api.Node).Status.Conditions {
					if cond.Type == api.NodeReady && cond.Status == api.ConditionTrue {
						ready++
					}
				}
			}
			if ready >= want {
				return nil
			}
			if ready != last {
				fmt.Fprintf(os.Stderr, "#   %d/%d nodes Ready\n", ready, want)
				last = ready
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes Ready after %v (last error: %v)", last, want, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// tracker follows every pod through one watch.
type tracker struct {
	w  *client.Watch
	mu sync.Mutex
	// seen is when a pod was first seen; bound when first seen bound.
	seen, bound map[string]time.Time
	pods        map[string]*api.Pod // current state
	last        time.Time
	changed     chan struct{}
	done        chan struct{}
}

func trackPods(ctx context.Context, c *client.Client) (*tracker, error) {
	w, err := c.Watch(ctx, api.KindPod, client.ListOptions{}, "")
	if err != nil {
		return nil, err
	}
	t := &tracker{w: w, seen: map[string]time.Time{}, bound: map[string]time.Time{}, pods: map[string]*api.Pod{},
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for e := range w.Events() {
			if e.Object == nil {
				continue
			}
			now := time.Now()
			p := e.Object.(*api.Pod)
			key := p.Namespace + "/" + p.Name
			t.mu.Lock()
			if e.Type == client.Deleted {
				delete(t.pods, key)
			} else {
				t.pods[key] = p
				if _, ok := t.seen[key]; !ok {
					t.seen[key] = now
				}
				if _, ok := t.bound[key]; !ok && p.Spec.NodeName != "" {
					t.bound[key] = now
					t.last = now
				}
			}
			t.mu.Unlock()
			select {
			case t.changed <- struct{}{}:
			default:
			}
		}
	}()
	return t, nil
}

func (t *tracker) stop() {
	t.w.Stop()
	<-t.done
}

// waitUntil waits until cond (called with t.mu held) holds.
func (t *tracker) waitUntil(ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		t.mu.Lock()
		ok, status := cond()
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-t.changed:
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "#   %s\n", status)
		case <-deadline:
			return fmt.Errorf("%s: not reached after %v: %s (watch: %v)", what, timeout, status, t.w.Err())
		case <-t.done:
			return fmt.Errorf("%s: the pod watch ended: %v", what, t.w.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (t *tracker) waitBound(ctx context.Context, want int, timeout time.Duration) error {
	return t.waitUntil(ctx, "all pods bound", timeout, func() (bool, string) {
		return len(t.bound) >= want, fmt.Sprintf("%d/%d pods bound", len(t.bound), want)
	})
}

func (t *tracker) lastBound() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

func (t *tracker) latencies() (p50, p99 time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ds []time.Duration
	for k, b := range t.bound {
		ds = append(ds, b.Sub(t.seen[k]))
	}
	slices.Sort(ds)
	if len(ds) == 0 {
		return 0, 0
	}
	return ds[len(ds)*50/100], ds[min(len(ds)-1, len(ds)*99/100)]
}

// createDeployments creates n Deployments of replicas pods (100m cpu,
// 128Mi each), from 16 writers.
func createDeployments(ctx context.Context, c *client.Client, n, replicas int, antiAffinity bool) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				obj, err := api.DecodeObject([]byte(deploymentJSON(i, replicas, antiAffinity)))
				if err != nil {
					errs <- err
					return
				}
				if _, err := c.Create(ctx, obj); err != nil {
					errs <- fmt.Errorf("create deployment %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func deploymentJSON(i, replicas int, antiAffinity bool) string {
	name := fmt.Sprintf("app-%04d", i)
	affinity := ""
	if antiAffinity {
		affinity = `,"affinity":{"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[` +
			`{"labelSelector":{"matchLabels":{"app":"` + name + `"}},"topologyKey":"kubernetes.io/hostname"}]}}`
	}
	return `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"` + name + `","namespace":"default"},` +
		`"spec":{"replicas":` + strconv.Itoa(replicas) + `,"selector":{"matchLabels":{"app":"` + name + `"}},` +
		`"template":{"metadata":{"labels":{"app":"` + name + `"}},"spec":{"containers":[{"name":"web","image":"registry.local/web:1",` +
		`"resources":{"requests":{"cpu":"100m","memory":"128Mi"}}}]` + affinity + `}}}}`
}

// measureNodeLoss waits until every pod is Ready, kills the agent process
// that simulates 10% of the nodes, and times until as many pods are Ready
// again, none of them on a lost node.
func measureNodeLoss(ctx context.Context, c *client.Client, tr *tracker, doomed *cluster.Proc, prefix string, want int, o options) error {
	ready := func(p *api.Pod) bool {
		if p.DeletionTimestamp != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == api.PodReady {
				return c.Status == api.ConditionTrue
			}
		}
		return false
	}
	if err := tr.waitUntil(ctx, "all pods Ready", 10*time.Minute, func() (bool, string) {
		n := 0
		for _, p := range tr.pods {
			if ready(p) {
				n++
			}
		}
		return n >= want, fmt.Sprintf("%d/%d pods Ready", n, want)
	}); err != nil {
		return err
	}
	tr.mu.Lock()
	onLost := 0
	for _, p := range tr.pods {
		if strings.HasPrefix(p.Spec.NodeName, prefix) {
			onLost++
		}
	}
	tr.mu.Unlock()
	doomed.Kill()
	killed := time.Now()
	err := tr.waitUntil(ctx, "pods of lost nodes running elsewhere", 5*time.Minute, func() (bool, string) {
		n, stranded := 0, 0
		for _, p := range tr.pods {
			switch {
			case strings.HasPrefix(p.Spec.NodeName, prefix):
				stranded++
			case ready(p):
				n++
			}
		}
		return n >= want && stranded == 0, fmt.Sprintf("%d/%d pods Ready elsewhere, %d still on lost nodes", n, want, stranded)
	})
	if err != nil {
		return err
	}
	d := time.Since(killed)
	fmt.Printf("# node loss: %d nodes (%d pods) killed; all their pods Ready elsewhere %.2fs after the kill "+
		"(≤ %.2fs after their last heartbeat; target grace %v + 2s = %.0fs)\n",
		o.nodes/10, onLost, d.Seconds(), (d + o.heartbeat).Seconds(), o.grace, (o.grace + 2*time.Second).Seconds())
	return nil
}

// rssMiB reads a process's VmRSS.
func rssMiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return -1
}

// cpuSample is CPU time used so far: per group of processes, by this
// program, and by the whole machine (from /proc/stat).
type cpuSample struct {
	at                 time.Time
	groups             map[string]time.Duration
	self               time.Duration
	busy, user, system time.Duration // machine-wide
}

func sampleCPU(procs map[string][]*cluster.Proc) cpuSample {
	s := cpuSample{at: time.Now(), groups: map[string]time.Duration{}}
	for g, ps := range procs {
		for _, p := range ps {
			if d, err := p.CPU(); err == nil {
				s.groups[g] += d
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		// cpu  user nice system idle iowait irq softirq steal ...
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		tick := func(i int) time.Duration {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			return time.Duration(v) * 10 * time.Millisecond // USER_HZ = 100
		}
		if len(f) > 8 {
			s.user = tick(1) + tick(2)
			s.system = tick(3) + tick(6) + tick(7)
			s.busy = s.user + s.system + tick(8)
		}
	}
	return s
}

// since describes the CPU used between a and s.
func (s cpuSample) since(a cpuSample) string {
	wall := s.at.Sub(a.at)
	cores := float64(runtime.NumCPU())
	secs := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
	out := fmt.Sprintf("%.1fs wall; servers %s, agents %s, this program %s; machine %.0f%% busy (user %s, system+irq %s)",
		wall.Seconds(), secs(s.groups["servers"]-a.groups["servers"]), secs(s.groups["agents"]-a.groups["agents"]),
		secs(s.self-a.self), 100*(s.busy-a.busy).Seconds()/(wall.Seconds()*cores), secs(s.user-a.user), secs(s.system-a.system))
	return out
}

// schedulerMetrics summarises the leader's scheduler metrics: the time its
// plugins took per pod (wall time: it includes waiting for a CPU) and the
// mean batch (pods placed per cycle; a cycle's bindings are one store
// write).
// captureProfile writes the leader's CPU profile over d to file.
func captureProfile(sk *cluster.Skiff, leader *cluster.SkiffServer, d time.Duration, file string) error {
	hc := sk.HTTPClient(d+30*time.Second, 1)
	resp, err := hc.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", leader.URL(), int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/debug/pprof/profile: %s", leader.URL(), resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func schedulerMetrics(sk *cluster.Skiff, leader *cluster.SkiffServer) (string, error) {
	hc := sk.HTTPClient(60*time.Second, 1)
	resp, err := hc.Get(leader.URL() + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s/metrics: %s", leader.URL(), resp.Status)
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			vals[name] = f
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	attempts, secs := vals["skiff_scheduler_attempt_duration_seconds_count"], vals["skiff_scheduler_attempt_duration_seconds_sum"]
	batches, bound := vals["skiff_scheduler_batch_size_count"], vals["skiff_scheduler_batch_size_sum"]
	if attempts == 0 || batches == 0 {
		return "", fmt.Errorf("no scheduler metrics on %s", leader.URL())
	}
	// API requests by verb and resource: what the agents and controllers
	// cost the server.
	var reqs []string
	for name, v := range vals {
		if rest, ok := strings.CutPrefix(name, "skiff_apiserver_requests_total{"); ok && v >= 1000 {
			reqs = append(reqs, fmt.Sprintf("%s %.0f", strings.TrimSuffix(rest, "}"), v))
		}
	}
	slices.Sort(reqs)
	return fmt.Sprintf("%.0f attempts, %.1f µs each (%.0f pods/s of scheduler time); %.0f batches of %.0f pods on average; API requests ≥ 1000: %s",
		attempts, 1e6*secs/attempts, attempts/secs, batches, bound/batches, strings.Join(reqs, "; ")), nil
}
