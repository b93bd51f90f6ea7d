// Command failover measures how long writes stop when the Raft leader dies:
// with writers creating objects continuously through every server, it
// kills the leader with SIGKILL and times the gap until the next write
// that was sent after the kill is acknowledged; then it restarts the dead
// server on its data directory, waits until it has caught up, and repeats.
// The same is done to an etcd cluster tuned for fast elections, as the
// baseline.
//
//	go run ./bench/failover -trials 20
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
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiffhq/skiff/bench/internal/cluster"
	"github.com/skiffhq/skiff/bench/internal/load"
)

func main() {
	var (
		trials   = flag.Int("trials", 20, "leader kills per system")
		writers  = flag.Int("writers", 4, "writer goroutines")
		retry    = flag.Duration("retry", 5*time.Millisecond, "pause before a writer retries on the next server")
		timeout  = flag.Duration("timeout", 100*time.Millisecond, "per-attempt write timeout (etcd holds a write whose proposal went to the dead leader until the client gives up)")
		settle   = flag.Duration("settle", 500*time.Millisecond, "steady writing between a caught-up restart and the next kill")
		skiffBin = flag.String("skiff", "bin/skiff", "skiff binary (make build)")
		etcdBin  = flag.String("etcd", "etcd", "etcd binary (Debian's etcd-server)")
		systems  = flag.String("systems", "skiff,etcd", "which systems to measure: skiff, etcd or both")
		etcdArgs = flag.String("etcd-args", "--heartbeat-interval=50 --election-timeout=250 --pre-vote", "etcd tuning flags for the baseline")
		keep     = flag.Bool("keep", false, "keep the data directories and logs")
	)
	flag.Parse()
	cfg := config{trials: *trials, writers: *writers, retry: *retry, timeout: *timeout, settle: *settle}
	if !strings.Contains(*systems, "skiff") {
		*skiffBin = ""
	}
	if !strings.Contains(*systems, "etcd") {
		*etcdBin = ""
	}
	if err := run(cfg, *skiffBin, *etcdBin, strings.Fields(*etcdArgs), *keep); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

type config struct {
	trials, writers int
	retry, timeout  time.Duration
	settle          time.Duration
}

// system is a cluster whose leader can be killed and restarted.
type system interface {
	Name() string
	Endpoints() int
	// Write stores one object through endpoint i.
	Write(ctx context.Context, i int, name string) error
	Leader(ctx context.Context) (int, error)
	Proc(i int) *cluster.Proc
	Restart(ctx context.Context, i int) error
	CaughtUp(ctx context.Context, i int) (bool, error)
}

type trial struct {
	gap      time.Duration
	killed   string
	failures int // failed write attempts during the trial
}

func run(cfg config, skiffBin, etcdBin string, etcdArgs []string, keep bool) error {
	r := cluster.NewReaper()
	r.Keep = keep
	defer r.Close()
	r.CloseOnSignal()
	ctx := context.Background()
	fmt.Printf("# failover: %d trials, %d writers, retry %v, per-attempt timeout %v\n", cfg.trials, cfg.writers, cfg.retry, cfg.timeout)
	fmt.Printf("# machine: %d CPUs, %s, %s, load %s\n", runtime.NumCPU(), kernel(), runtime.Version(), loadavg())

	var skRes []trial
	if skiffBin != "" {
		sk, err := cluster.StartSkiff(ctx, r, skiffBin, 3)
		if err != nil {
			return err
		}
		if skRes, err = trials(ctx, cfg, &skiffSystem{c: sk, hc: sk.HTTPClient(cfg.timeout, 64), body: newPodBody()}); err != nil {
			return fmt.Errorf("skiff: %w", err)
		}
		for _, s := range sk.Servers {
			s.Proc.Kill() // free the CPU for the baseline
		}
	}
	var etRes []trial
	if etcdBin != "" {
		fmt.Printf("# etcd: %s %s\n", cluster.EtcdVersion(etcdBin), strings.Join(etcdArgs, " "))
		et, err := cluster.StartEtcd(ctx, r, etcdBin, 3, etcdArgs...)
		if err != nil {
			return err
		}
		es, err := newEtcdSystem(et, cfg.timeout)
		if err != nil {
			return err
		}
		defer es.Close()
		if etRes, err = trials(ctx, cfg, es); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
	}
	if skRes != nil {
		report("skiff", skRes)
	}
	if etRes != nil {
		report("etcd", etRes)
	}
	if skRes != nil && etRes != nil {
		s, e := gaps(skRes), gaps(etRes)
		fmt.Println()
		fmt.Println("| | skiff | etcd | skiff/etcd |")
		fmt.Println("|---|--:|--:|--:|")
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}, {"max", 1}} {
			a, b := load.Percentile(s, q.q), load.Percentile(e, q.q)
			fmt.Printf("| %s | %s ms | %s ms | %.2f |\n", q.name, ms(a), ms(b), float64(a)/float64(b))
		}
	}
	return nil
}

func gaps(ts []trial) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.gap)
	}
	slices.Sort(out)
	return out
}

func report(name string, ts []trial) {
	g := gaps(ts)
	fmt.Printf("\n%s: write gap after kill -9 of the leader, %d trials: p50 %s ms, p99 %s ms, max %s ms, min %s ms\n",
		name, len(ts), ms(load.Percentile(g, 0.5)), ms(load.Percentile(g, 0.99)), ms(load.Percentile(g, 1)), ms(load.Percentile(g, 0)))
	var b strings.Builder
	for i, t := range ts {
		fmt.Fprintf(&b, " %d:%s(%s,%d)", i+1, ms(t.gap), t.killed, t.failures)
	}
	fmt.Printf("  trials (gap ms, killed, failed attempts):%s\n", b.String())
}

// trials runs the writers and kills the leader cfg.trials times.
func trials(ctx context.Context, cfg config, sys system) ([]trial, error) {
	var (
		killedAt   atomic.Int64 // unix ns after the killed process was reaped; 0: no trial running
		firstAck   atomic.Int64 // unix ns of the first ack of a write sent after killedAt
		failures   atomic.Int64
		wctx, stop = context.WithCancel(ctx)
		wg         sync.WaitGroup
	)
	defer func() { stop(); wg.Wait() }()
	for w := range cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep := w % sys.Endpoints()
			for seq := 0; wctx.Err() == nil; seq++ {
				t0 := time.Now()
				actx, cancel := context.WithTimeout(wctx, cfg.timeout)
				err := sys.Write(actx, ep, fmt.Sprintf("f-%d-%d-%d", time.Now().UnixNano()%1e9, w, seq))
				cancel()
				if err != nil {
					if wctx.Err() != nil {
						return
					}
					failures.Add(1)
					ep = (ep + 1) % sys.Endpoints()
					time.Sleep(cfg.retry)
					continue
				}
				t1 := time.Now().UnixNano()
				if k := killedAt.Load(); k != 0 && t0.UnixNano() > k {
					for {
						cur := firstAck.Load()
						if (cur != 0 && cur <= t1) || firstAck.CompareAndSwap(cur, t1) {
							break
						}
					}
				}
			}
		}()
	}
	var out []trial
	for i := range cfg.trials {
		if err := waitSteady(ctx, sys, cfg.settle); err != nil {
			return out, err
		}
		leader, err := sys.Leader(ctx)
		if err != nil {
			return out, err
		}
		p := sys.Proc(leader)
		firstAck.Store(0)
		failures.Store(0)
		kill := time.Now()
		if err := p.KillNoWait(); err != nil {
			return out, err
		}
		<-p.Exited()
		// Only writes sent once the old leader is certainly gone count.
		killedAt.Store(time.Now().UnixNano())
		deadline := time.Now().Add(30 * time.Second)
		for firstAck.Load() == 0 {
			if time.Now().After(deadline) {
				return out, fmt.Errorf("trial %d: no write acknowledged 30 s after killing %s", i+1, p.Name)
			}
			time.Sleep(time.Millisecond)
		}
		t := trial{gap: time.Unix(0, firstAck.Load()).Sub(kill), killed: p.Name, failures: int(failures.Load())}
		killedAt.Store(0)
		out = append(out, t)
		fmt.Fprintf(os.Stderr, "%s trial %2d: killed %s (pid %d), next ack after %s ms, %d failed attempts\n",
			sys.Name(), i+1, p.Name, p.PID(), ms(t.gap), t.failures)
		if err := sys.Restart(ctx, leader); err != nil {
			return out, err
		}
		if err := waitCaughtUp(ctx, sys, leader); err != nil {
			return out, err
		}
	}
	return out, nil
}

// waitSteady waits for an agreed leader and then lets the writers run for
// settle, so every trial starts from steady state.
func waitSteady(ctx context.Context, sys system, settle time.Duration) error {
	if _, err := sys.Leader(ctx); err != nil {
		return err
	}
	time.Sleep(settle)
	return nil
}

func waitCaughtUp(ctx context.Context, sys system, i int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := sys.CaughtUp(ctx, i)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s endpoint %d did not catch up in 60 s (last error: %v)", sys.Name(), i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// skiffSystem writes Pods through any server over HTTPS with the admin
// credential; followers forward to the leader.
type skiffSystem struct {
	c    *cluster.Skiff
	hc   *http.Client
	body podBody
}

func (s *skiffSystem) Name() string             { return "skiff" }
func (s *skiffSystem) Endpoints() int           { return len(s.c.Servers) }
func (s *skiffSystem) Proc(i int) *cluster.Proc { return s.c.Servers[i].Proc }

func (s *skiffSystem) Write(ctx context.Context, i int, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.c.Servers[i].URL()+"/api/v1/namespaces/default/pods", bytes.NewReader(s.body.build(name)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

func (s *skiffSystem) Leader(ctx context.Context) (int, error) {
	l, err := s.c.Leader(ctx, 30*time.Second)
	if err != nil {
		return 0, err
	}
	return slices.Index(s.c.Servers, l), nil
}

func (s *skiffSystem) Restart(ctx context.Context, i int) error {
	return s.c.Restart(ctx, s.c.Servers[i])
}

func (s *skiffSystem) CaughtUp(ctx context.Context, i int) (bool, error) {
	return s.c.CaughtUp(ctx, s.c.Servers[i], 2)
}

// etcdSystem puts keys through one client per member, so the writers do
// the same client-side failover as skiff's.
type etcdSystem struct {
	e       *cluster.Etcd
	mu      sync.Mutex
	clients []*clientv3.Client
	body    podBody
}

func newEtcdSystem(e *cluster.Etcd, timeout time.Duration) (*etcdSystem, error) {
	s := &etcdSystem{e: e, body: newPodBody()}
	for _, m := range e.Members {
		c, err := cluster.Client(1, m.ClientURL)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

func (s *etcdSystem) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		c.Close()
	}
}

func (s *etcdSystem) Name() string             { return "etcd" }
func (s *etcdSystem) Endpoints() int           { return len(s.e.Members) }
func (s *etcdSystem) Proc(i int) *cluster.Proc { return s.e.Members[i].Proc }

func (s *etcdSystem) Write(ctx context.Context, i int, name string) error {
	s.mu.Lock()
	c := s.clients[i]
	s.mu.Unlock()
	_, err := c.Put(ctx, "/registry/pods/default/"+name, string(s.body.build(name)))
	return err
}

func (s *etcdSystem) Leader(ctx context.Context) (int, error) {
	l, err := s.e.Leader(ctx, 30*time.Second)
	if err != nil {
		return 0, err
	}
	return slices.Index(s.e.Members, l), nil
}

// Restart restarts the member and gives its endpoint a fresh client: gRPC's
// reconnect backoff would otherwise keep the old one failing for seconds.
func (s *etcdSystem) Restart(ctx context.Context, i int) error {
	if err := s.e.Restart(ctx, s.e.Members[i]); err != nil {
		return err
	}
	c, err := cluster.Client(1, s.e.Members[i].ClientURL)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.clients[i]
	s.clients[i] = c
	s.mu.Unlock()
	old.Close()
	return nil
}

func (s *etcdSystem) CaughtUp(ctx context.Context, i int) (bool, error) {
	return s.e.CaughtUp(ctx, s.e.Members[i], 2)
}

type podBody struct{ head, tail []byte }

func newPodBody() podBody {
	return podBody{
		head: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"`),
		tail: []byte(`"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`),
	}
}

func (b podBody) build(name string) []byte {
	out := make([]byte, 0, len(b.head)+len(name)+len(b.tail))
	out = append(out, b.head...)
	out = append(out, name...)
	return append(out, b.tail...)
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

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}
