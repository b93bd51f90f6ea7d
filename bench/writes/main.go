// Command writes measures replicated write throughput and latency: creates
// of Pods through skiff's HTTP API against puts of the same bytes to etcd,
// both as 3-member clusters on loopback, side by side in one run, at each
// client concurrency in -clients.
//
//	go run ./bench/writes -clients 1,16,256 -duration 10s
package main

import (
	"bytes"
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
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiffhq/skiff/bench/internal/cluster"
	"github.com/skiffhq/skiff/bench/internal/load"
)

func main() {
	var (
		clientsFlag = flag.String("clients", "1,16,256", "comma-separated client concurrencies")
		duration    = flag.Duration("duration", 10*time.Second, "measured window per system and level")
		warmup      = flag.Duration("warmup", 2*time.Second, "unmeasured load before each window")
		rounds      = flag.Int("rounds", 1, "repeat the whole sweep; the order of the systems alternates each round")
		payload     = flag.Int("payload", 256, "bytes of the payload annotation")
		skiffBin    = flag.String("skiff", "bin/skiff", "skiff binary (make build)")
		etcdBin     = flag.String("etcd", "etcd", "etcd binary (Debian's etcd-server)")
		etcdConns   = flag.Int("etcd-conns", 16, "etcd clients (gRPC connections) shared by the writers, as etcd's benchmark tool does")
		keep        = flag.Bool("keep", false, "keep the data directories and logs")
	)
	flag.Parse()
	levels, err := parseInts(*clientsFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "writes: -clients:", err)
		os.Exit(2)
	}
	if err := run(levels, *duration, *warmup, *rounds, *payload, *skiffBin, *etcdBin, *etcdConns, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "writes:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// system is one store under test at one concurrency.
type system interface {
	Name() string
	// Prepare returns the operation for a run with n workers and a tag
	// that makes its names unique.
	Prepare(n int, tag string) (load.Op, func(), error)
	// CPU is the CPU time all of the system's processes used so far.
	CPU() time.Duration
	// Leader names the current leader ("" if unknown). Prepare sends the
	// writes to the leader of the moment.
	Leader(ctx context.Context) string
}

type measurement struct {
	res load.Result
	// leaderMoved is set when leadership changed during the run: some
	// writes were forwarded or refused.
	leaderMoved string
	cpu         time.Duration // servers' CPU during the whole run (warm-up too)
	gen         time.Duration // this process's CPU (the load generator)
	all         time.Duration // warm-up + window
}

func run(levels []int, duration, warmup time.Duration, rounds, payload int, skiffBin, etcdBin string, etcdConns int, keep bool) error {
	r := cluster.NewReaper()
	r.Keep = keep
	defer r.Close()
	r.CloseOnSignal()
	ctx := context.Background()

	fmt.Printf("# writes: %d rounds, levels %v, %v window + %v warm-up each, %d-byte payload\n", rounds, levels, duration, warmup, payload)
	fmt.Printf("# machine: %d CPUs, %s, %s; etcd: %s\n", runtime.NumCPU(), kernel(), runtime.Version(), cluster.EtcdVersion(etcdBin))

	sk, err := cluster.StartSkiff(ctx, r, skiffBin, 3)
	if err != nil {
		return err
	}
	leader, err := sk.Leader(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	et, err := cluster.StartEtcd(ctx, r, etcdBin, 3)
	if err != nil {
		return err
	}
	eleader, err := et.Leader(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("# skiff leader at start %s (%s), etcd leader %s (%s)\n", leader.ID, leader.URL(), eleader.Name, eleader.ClientURL)

	body := newPodBody(payload)
	systems := []system{
		&skiffWrites{c: sk, body: body},
		&etcdWrites{e: et, conns: etcdConns, body: body},
	}
	results := map[string]map[int][]measurement{}
	for _, s := range systems {
		results[s.Name()] = map[int][]measurement{}
	}
	for round := range rounds {
		for _, n := range levels {
			order := systems
			if round%2 == 1 {
				order = []system{systems[1], systems[0]}
			}
			for _, s := range order {
				m, err := measure(ctx, s, n, fmt.Sprintf("r%d-c%d", round, n), load.Config{Workers: n, Warmup: warmup, Duration: duration})
				if err != nil {
					return fmt.Errorf("%s at %d clients: %w", s.Name(), n, err)
				}
				results[s.Name()][n] = append(results[s.Name()][n], m)
				fmt.Fprintf(os.Stderr, "round %d, %3d clients, %-5s: %8.0f/s p50 %v p99 %v errors %d\n", round+1, n, s.Name(),
					m.res.Rate(), ms(m.res.Percentile(0.5)), ms(m.res.Percentile(0.99)), m.res.Errors)
				if m.res.FirstErr != nil {
					fmt.Fprintf(os.Stderr, "  first error: %v\n", m.res.FirstErr)
				}
				if m.leaderMoved != "" {
					fmt.Fprintf(os.Stderr, "  leadership changed during the run: %s\n", m.leaderMoved)
				}
			}
		}
	}
	printTable(levels, results["skiff"], results["etcd"], etcdConns)
	return nil
}

func measure(ctx context.Context, s system, n int, tag string, cfg load.Config) (measurement, error) {
	before := s.Leader(ctx)
	op, done, err := s.Prepare(n, tag)
	if err != nil {
		return measurement{}, err
	}
	defer done()
	cpu0, gen0 := s.CPU(), selfCPU()
	t0 := time.Now()
	res := load.Run(ctx, cfg, op)
	m := measurement{res: res, cpu: s.CPU() - cpu0, gen: selfCPU() - gen0, all: time.Since(t0)}
	if after := s.Leader(ctx); after != before {
		m.leaderMoved = before + " -> " + after
	}
	return m, nil
}

func selfCPU() time.Duration {
	d, _ := cluster.SelfCPU()
	return d
}

// merged pools the rounds of one system at one level.
func merged(ms []measurement) (res load.Result, cpuPerK, genPerK float64, moved int) {
	var cpu, gen time.Duration
	var all int
	for _, m := range ms {
		res.Ops += m.res.Ops
		res.Window += m.res.Window
		res.Errors += m.res.Errors
		res.Latencies = append(res.Latencies, m.res.Latencies...)
		cpu += m.cpu
		gen += m.gen
		if m.leaderMoved != "" {
			moved++
		}
		// CPU covers warm-up too: scale by the ops of the whole run, which
		// the window's rate estimates.
		all += int(m.res.Rate() * m.all.Seconds())
	}
	sortDurations(res.Latencies)
	if all > 0 {
		cpuPerK = float64(cpu.Milliseconds()) / float64(all) * 1000
		genPerK = float64(gen.Milliseconds()) / float64(all) * 1000
	}
	return res, cpuPerK, genPerK, moved
}

func printTable(levels []int, sk, et map[int][]measurement, etcdConns int) {
	fmt.Println()
	fmt.Println("| clients | skiff writes/s | p50 | p99 | etcd puts/s | p50 | p99 | skiff/etcd | errors skiff/etcd | leader changes skiff/etcd | server CPU ms per 1k writes skiff/etcd | load-gen CPU ms per 1k skiff/etcd |")
	fmt.Println("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, n := range levels {
		s, scpu, sgen, smoved := merged(sk[n])
		e, ecpu, egen, emoved := merged(et[n])
		ratio := 0.0
		if e.Rate() > 0 {
			ratio = s.Rate() / e.Rate()
		}
		fmt.Printf("| %d | %.0f | %s | %s | %.0f | %s | %s | %.2f | %d / %d | %d / %d | %.0f / %.0f | %.0f / %.0f |\n",
			n, s.Rate(), ms(s.Percentile(0.5)), ms(s.Percentile(0.99)),
			e.Rate(), ms(e.Percentile(0.5)), ms(e.Percentile(0.99)), ratio,
			s.Errors, e.Errors, smoved, emoved, scpu, ecpu, sgen, egen)
	}
	fmt.Println()
	fmt.Printf("skiff: POST /api/v1/namespaces/default/pods to the leader over HTTPS (admin.conf's client certificate), one HTTP/1.1 keep-alive TLS connection per client.\n")
	fmt.Printf("etcd: Put of the same JSON bytes to a unique key on the leader; clients share min(clients, %d) etcd clients (gRPC connections), as etcd's benchmark tool does with --conns.\n", etcdConns)
	fmt.Printf("Leader changes: runs (of %d rounds) in which leadership moved; writes then went through a forwarding follower or were refused.\n", len(sk[levels[0]]))
	fmt.Printf("Latencies in ms. CPU: user+system of the 3 server processes, and of this load generator, per 1,000 acknowledged writes.\n")
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "linux"
	}
	return "linux " + strings.TrimSpace(string(b))
}

// podBody builds the JSON of a Pod named name with a payload annotation.
type podBody struct{ head, tail []byte }

func newPodBody(payload int) podBody {
	return podBody{
		head: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"`),
		tail: []byte(`","annotations":{"payload":"` + strings.Repeat("x", payload) + `"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`),
	}
}

func (b podBody) build(name string) []byte {
	out := make([]byte, 0, len(b.head)+len(name)+len(b.tail))
	out = append(out, b.head...)
	out = append(out, name...)
	return append(out, b.tail...)
}

// skiffWrites creates Pods through the leader's HTTP API.
type skiffWrites struct {
	c    *cluster.Skiff
	body podBody
}

func (s *skiffWrites) Leader(ctx context.Context) string {
	l, err := s.c.Leader(ctx, 30*time.Second)
	if err != nil {
		return "?"
	}
	return l.ID
}

func (s *skiffWrites) Name() string { return "skiff" }

func (s *skiffWrites) CPU() time.Duration {
	var total time.Duration
	for _, sv := range s.c.Servers {
		d, _ := sv.Proc.CPU()
		total += d
	}
	return total
}

func (s *skiffWrites) Prepare(n int, tag string) (load.Op, func(), error) {
	// HTTPS with admin.conf's client certificate (system:masters, not
	// rate-limited), one keep-alive connection per client.
	tr := s.c.Transport(max(512, n))
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	leader, err := s.c.Leader(context.Background(), 30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	url := leader.URL() + "/api/v1/namespaces/default/pods"
	op := func(ctx context.Context, w, seq int) error {
		name := "p-" + tag + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(seq)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(s.body.build(name)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("POST %s: %s: %s", name, resp.Status, msg)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return op, tr.CloseIdleConnections, nil
}

// etcdWrites puts the same bytes to unique keys through etcd's Go client.
type etcdWrites struct {
	e     *cluster.Etcd
	conns int
	body  podBody
}

func (e *etcdWrites) Leader(ctx context.Context) string {
	l, err := e.e.Leader(ctx, 30*time.Second)
	if err != nil {
		return "?"
	}
	return l.Name
}

func (e *etcdWrites) Name() string { return "etcd" }

func (e *etcdWrites) CPU() time.Duration {
	var total time.Duration
	for _, m := range e.e.Members {
		d, _ := m.Proc.CPU()
		total += d
	}
	return total
}

func (e *etcdWrites) Prepare(n int, tag string) (load.Op, func(), error) {
	leader, err := e.e.Leader(context.Background(), 30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	clients := make([]*clientv3.Client, min(n, e.conns))
	closeAll := func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}
	for i := range clients {
		c, err := cluster.Client(0, leader.ClientURL)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients[i] = c
	}
	op := func(ctx context.Context, w, seq int) error {
		name := "p-" + tag + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(seq)
		_, err := clients[w%len(clients)].Put(ctx, "/registry/pods/default/"+name, string(e.body.build(name)))
		return err
	}
	return op, closeAll, nil
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
