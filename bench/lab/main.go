// Command lab measures what the fault scenarios of `skiff lab` (issue 7)
// promise, on a real 3-server, 3-node lab (network namespaces on one
// machine): failover after kill -9 of the Raft leader under write load
// (time to a new leader, time until writes are acknowledged again), and
// rescheduling after a node is cut off (time until its pods run Ready
// elsewhere), against their targets. Run as root after `make build
// images`:
//
//	go run ./bench/lab -kills 20 -losses 5
//
// bench/failover compares the same leader kill with etcd's, on loopback.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/deploy/lab"
)

type options struct {
	kills, losses, writers int
	grace, settle, timeout time.Duration
	bin, image             string
	keep                   bool
}

func main() {
	var o options
	flag.IntVar(&o.kills, "kills", 20, "leader kills under write load")
	flag.IntVar(&o.losses, "losses", 5, "node losses (a node cut off until its pods are replaced, then healed)")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writers during the kills")
	flag.DurationVar(&o.grace, "grace", 4*time.Second, "the servers' --node-grace-period and the agents' --fence-after")
	flag.DurationVar(&o.settle, "settle", 500*time.Millisecond, "steady writing between a caught-up restart and the next kill")
	flag.DurationVar(&o.timeout, "timeout", 200*time.Millisecond, "per-attempt write timeout")
	flag.StringVar(&o.bin, "skiff", "bin/skiff", "skiff binary (make build)")
	flag.StringVar(&o.image, "image", "bin/images/echo.tar", "the echo image tarball (make images)")
	flag.BoolVar(&o.keep, "keep", false, "keep the lab's logs")
	flag.Parse()
	for _, p := range []*string{&o.bin, &o.image} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/lab:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx := context.Background()
	name := fmt.Sprintf("bench%d", os.Getpid()%100000)
	dir := filepath.Join(os.TempDir(), "skiff-lab-"+name)
	l, err := lab.Up(ctx, lab.Config{Name: name, Dir: dir, Bin: o.bin, Images: []string{o.image},
		NodeGracePeriod: o.grace, AgentArgs: []string{"--fence-after=" + o.grace.String()}, Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Down(o.keep); err != nil {
			fmt.Fprintln(os.Stderr, "bench/lab:", err)
		}
		if o.keep {
			fmt.Fprintln(os.Stderr, "logs kept in", l.LogDir)
		}
	}()
	fmt.Printf("# bench/lab: %d servers, %d nodes in network namespaces; load %s\n", len(l.ByRole(lab.RoleServer)), len(l.ByRole(lab.RoleNode)), loadavg())
	a, err := newAPI(l)
	if err != nil {
		return err
	}
	if o.kills > 0 {
		gaps, leaders, err := failovers(ctx, o, l, a)
		if err != nil {
			return err
		}
		fmt.Printf("\nfailover after kill -9 of the leader, %d writers (one create at a time each, %v per attempt), %d kills:\n", o.writers, o.timeout, len(gaps))
		printDist("  new leader named by a survivor", leaders, time.Second)
		printDist("  writes acknowledged again", gaps, time.Second)
	}
	if o.losses > 0 {
		res, err := nodeLosses(ctx, o, l)
		if err != nil {
			return err
		}
		fmt.Printf("\nnode loss (cable cut), grace period %v, %d losses:\n", o.grace, len(res))
		printDist("  pods Ready elsewhere", res, o.grace+2*time.Second)
	}
	fmt.Printf("# load at the end: %s\n", loadavg())
	return nil
}

func printDist(what string, ds []time.Duration, target time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	verdict := "met"
	if pct(0.99) > target {
		verdict = "MISSED"
	}
	fmt.Printf("%-36s p50 %6.0f ms  p99 %6.0f ms  max %6.0f ms  (p99 / target %v = %.2f, %s)\n", what,
		ms(pct(0.5)), ms(pct(0.99)), ms(s[len(s)-1]), target, float64(pct(0.99))/float64(target), verdict)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// labAPI talks to the servers on the lab's LAN with the admin credential.
type labAPI struct {
	hc      *http.Client
	servers []string // names
	urls    map[string]string
}

func newAPI(l *lab.Lab) (*labAPI, error) {
	cfg, err := client.LoadConfig(l.AdminConfig())
	if err != nil {
		return nil, err
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	a := &labAPI{urls: map[string]string{},
		hc: &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DialContext: l.DialLAN, MaxIdleConnsPerHost: 16}}}
	for _, s := range l.ByRole(lab.RoleServer) {
		u, err := l.APIURL(s.Name)
		if err != nil {
			return nil, err
		}
		a.servers = append(a.servers, s.Name)
		a.urls[s.Name] = u
	}
	return a, nil
}

func (a *labAPI) create(ctx context.Context, server, ns string) error {
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, ns)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.urls[server]+"/api/v1/namespaces", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
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

// members asks one server for its view.
func (a *labAPI) members(ctx context.Context, server string) (client.Members, error) {
	var m client.Members
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.urls[server]+"/skiff/v1/members", nil)
	if err != nil {
		return m, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("members: %s", resp.Status)
	}
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// agreedLeader waits until every running server names the same leader.
func (a *labAPI) agreedLeader(ctx context.Context, l *lab.Lab) (string, client.Members, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader, ok := "", true
		var lm client.Members
		for _, s := range a.servers {
			if !l.Running(s) {
				continue
			}
			m, err := a.members(ctx, s)
			if err != nil || m.Leader == "" || (leader != "" && m.Leader != leader) {
				ok = false
				break
			}
			leader = m.Leader
			if s == leader {
				lm = m
			}
		}
		if ok && leader != "" && lm.Leader != "" {
			return leader, lm, nil
		}
		if time.Now().After(deadline) {
			return "", lm, fmt.Errorf("no agreed leader after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failovers kills the leader o.kills times under write load and returns
// the time from each kill to the first acknowledged write sent after it,
// and to the first survivor naming a new leader.
func failovers(ctx context.Context, o options, l *lab.Lab, a *labAPI) (gaps, leaders []time.Duration, err error) {
	var (
		killedAt atomic.Int64 // unix ns once the leader is gone; 0: no kill under way
		firstAck atomic.Int64
		wctx     context.Context
		stop     context.CancelFunc
		wg       sync.WaitGroup
	)
	wctx, stop = context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	for w := range o.writers {
		wg.Go(func() {
			i := w % len(a.servers)
			for seq := 0; wctx.Err() == nil; seq++ {
				t0 := time.Now()
				actx, cancel := context.WithTimeout(wctx, o.timeout)
				err := a.create(actx, a.servers[i], fmt.Sprintf("bl-%d-%d-%d", time.Now().UnixNano()%1e9, w, seq))
				cancel()
				if err != nil {
					i = (i + 1) % len(a.servers)
					time.Sleep(5 * time.Millisecond)
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
		})
	}
	for i := range o.kills {
		leader, _, err := a.agreedLeader(ctx, l)
		if err != nil {
			return gaps, leaders, err
		}
		time.Sleep(o.settle)
		firstAck.Store(0)
		kill := time.Now()
		if err := l.Kill(leader); err != nil {
			return gaps, leaders, err
		}
		killedAt.Store(time.Now().UnixNano())
		var newLeader time.Duration
		deadline := time.Now().Add(30 * time.Second)
		for firstAck.Load() == 0 || newLeader == 0 {
			if newLeader == 0 {
				for _, s := range a.servers {
					if s == leader {
						continue
					}
					if m, err := a.members(ctx, s); err == nil && m.Leader != "" && m.Leader != leader {
						newLeader = time.Since(kill)
						break
					}
				}
			}
			if time.Now().After(deadline) {
				return gaps, leaders, fmt.Errorf("kill %d: no new leader or acknowledged write 30s after killing %s", i+1, leader)
			}
			time.Sleep(2 * time.Millisecond)
		}
		gap := time.Unix(0, firstAck.Load()).Sub(kill)
		killedAt.Store(0)
		gaps, leaders = append(gaps, gap), append(leaders, newLeader)
		fmt.Fprintf(os.Stderr, "kill %2d: %s; new leader after %.0f ms, writes acknowledged after %.0f ms\n", i+1, leader, ms(newLeader), ms(gap))
		if err := l.Start(leader); err != nil {
			return gaps, leaders, err
		}
		if err := a.caughtUp(ctx, l, leader); err != nil {
			return gaps, leaders, err
		}
	}
	return gaps, leaders, nil
}

// caughtUp waits until server s has applied what the leader has.
func (a *labAPI) caughtUp(ctx context.Context, l *lab.Lab, s string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, lm, err := a.agreedLeader(ctx, l)
		if err == nil {
			if m, err := a.members(ctx, s); err == nil && m.AppliedIndex+2 >= lm.AppliedIndex {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not catch up within 60s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodeLosses runs a 3-replica Deployment and o.losses times cuts off a
// node that runs one of its pods, timing until 3 pods run Ready off that
// node; then heals it and waits for the cluster to settle.
func nodeLosses(ctx context.Context, o options, l *lab.Lab) ([]time.Duration, error) {
	c, err := l.Client(client.WithTimeout(5 * time.Second))
	if err != nil {
		return nil, err
	}
	dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bench-web","namespace":"default"},
"spec":{"replicas":3,"selector":{"matchLabels":{"app":"bench-web"}},"template":{"metadata":{"labels":{"app":"bench-web"}},
"spec":{"containers":[{"name":"web","image":"localhost/skiff/echo:latest","imagePullPolicy":"IfNotPresent","ports":[{"containerPort":8080}],
"readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":1}}]}}}}`
	obj, err := api.DecodeObject([]byte(dep))
	if err != nil {
		return nil, err
	}
	if _, err := c.Create(ctx, obj); err != nil {
		return nil, err
	}
	pods := func() []*api.Pod {
		list, err := c.List(ctx, api.KindPod, client.ListOptions{Namespace: "default", LabelSelector: "app=bench-web"})
		if err != nil {
			return nil
		}
		var out []*api.Pod
		for _, o := range list.Items {
			out = append(out, o.(*api.Pod))
		}
		return out
	}
	ready := func(p *api.Pod) bool {
		for _, cnd := range p.Status.Conditions {
			if cnd.Type == api.PodReady && cnd.Status == api.ConditionTrue {
				return true
			}
		}
		return false
	}
	settled := func() bool {
		ps := pods()
		n := 0
		for _, p := range ps {
			if ready(p) && p.DeletionTimestamp == nil {
				n++
			}
		}
		return n == 3 && len(ps) == 3
	}
	if err := waitUntil(120*time.Second, "bench-web Ready", settled); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := range o.losses {
		var victim string
		for _, p := range pods() {
			if p.Spec.NodeName != "" {
				victim = p.Spec.NodeName
				if i%2 == 0 {
					break
				}
			}
		}
		lost := map[string]bool{}
		for _, p := range pods() {
			if p.Spec.NodeName == victim {
				lost[p.Name] = true
			}
		}
		cut := time.Now()
		if err := l.Cut(victim); err != nil {
			return out, err
		}
		err := waitUntil(60*time.Second, "pods replaced", func() bool {
			n := 0
			for _, p := range pods() {
				if !lost[p.Name] && p.Spec.NodeName != victim && ready(p) {
					n++
				}
			}
			return n >= 3
		})
		took := time.Since(cut)
		if err != nil {
			l.Heal(victim)
			return out, err
		}
		out = append(out, took)
		fmt.Fprintf(os.Stderr, "loss %d: %s cut off with %d pods; 3 pods Ready elsewhere after %.0f ms\n", i+1, victim, len(lost), ms(took))
		if err := l.Heal(victim); err != nil {
			return out, err
		}
		if err := l.WaitNodesReady(ctx, 60*time.Second); err != nil {
			return out, err
		}
		if err := waitUntil(60*time.Second, "the cluster settled after the heal", settled); err != nil {
			return out, err
		}
	}
	return out, nil
}

func waitUntil(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
