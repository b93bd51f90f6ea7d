package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bench/internal/load"
	"github.com/skiffhq/skiff/client"
)

// variant is one way of starting the echo container.
type variant string

// The variants of the pod-start phase.
const (
	skiffProbe      variant = "skiff, readiness probe"
	skiffNoProbe    variant = "skiff, no probe"
	containerdAlone variant = "containerd alone"
	containerdSecc  variant = "containerd + seccomp"
	containerdLogs  variant = "containerd + secc. + logs"
)

// short names a variant in object names.
func (v variant) short() string {
	switch v {
	case skiffProbe:
		return "probe"
	case skiffNoProbe:
		return "plain"
	case containerdAlone:
		return "ctrd"
	case containerdSecc:
		return "ctrd-seccomp"
	default:
		return "ctrd-logs"
	}
}

func (v variant) isSkiff() bool { return v == skiffProbe || v == skiffNoProbe }

// startSample is one measured start. For skiff, the phases are read from
// the pod watch: apply → pod created (the Deployment controller) → bound
// (the scheduler) → container running (the agent: sandbox, CNI, image
// check, create, start, status write) → Ready (the readiness probe).
type startSample struct {
	total                          time.Duration // apply → Ready (skiff), create → started (containerd)
	created, bound, running, ready time.Duration // the phases (skiff only)
	teardown                       time.Duration // delete → the pod gone (skiff only)
	busy                           float64       // how busy the machine's CPUs were meanwhile, %
}

// startResults holds the samples of each variant.
type startResults struct {
	variants []variant
	samples  map[variant][]startSample
	warmup   map[variant]startSample
}

// measureStarts runs one unmeasured warm-up start per variant (the node's
// first pod creates its bridge), then o.starts starts per variant, the
// variants interleaved and their order rotated each round so load drift
// hits all of them alike.
func measureStarts(ctx context.Context, o options, n *node, tr *tracker, base *baseline) (*startResults, error) {
	res := &startResults{
		variants: []variant{skiffProbe, skiffNoProbe, containerdAlone},
		samples:  map[variant][]startSample{},
		warmup:   map[variant]startSample{},
	}
	if o.breakdown {
		res.variants = append(res.variants, containerdSecc, containerdLogs)
	}
	for _, v := range res.variants {
		s, err := startOnce(ctx, o, n, tr, base, v, "warmup")
		if err != nil {
			return nil, err
		}
		res.warmup[v] = s
	}
	began := time.Now()
	for i := range o.starts {
		for k := range res.variants {
			v := res.variants[(i+k)%len(res.variants)]
			s, err := startOnce(ctx, o, n, tr, base, v, strconv.Itoa(i))
			if err != nil {
				return nil, err
			}
			res.samples[v] = append(res.samples[v], s)
		}
		if (i+1)%10 == 0 || i+1 == o.starts {
			fmt.Fprintf(os.Stderr, "#   %d/%d rounds of starts (%.0fs)\n", i+1, o.starts, time.Since(began).Seconds())
		}
	}
	return res, nil
}

// startOnce measures one start of variant v and notes how busy the
// machine was meanwhile.
func startOnce(ctx context.Context, o options, n *node, tr *tracker, base *baseline, v variant, suffix string) (startSample, error) {
	a := takeSnapshot(nil)
	s, err := startVariant(ctx, o, n, tr, base, v, suffix)
	s.busy = busyPercent(a, takeSnapshot(nil))
	return s, err
}

func startVariant(ctx context.Context, o options, n *node, tr *tracker, base *baseline, v variant, suffix string) (startSample, error) {
	name := "ps-" + v.short() + "-" + suffix
	if !v.isSkiff() {
		took, err := base.start(ctx, name, startOpts{seccomp: v != containerdAlone, logs: v == containerdLogs})
		return startSample{total: took}, err
	}
	probe := time.Duration(0)
	if v == skiffProbe {
		probe = time.Second
	}
	obj, err := api.DecodeObject([]byte(deploymentJSON(name, 1, probe)))
	if err != nil {
		return startSample{}, err
	}
	t0 := time.Now()
	if _, err := n.client.Create(ctx, obj); err != nil {
		return startSample{}, fmt.Errorf("create deployment %s: %w", name, err)
	}
	if _, err := tr.waitReady(ctx, name, 1, o.timeout); err != nil {
		return startSample{}, fmt.Errorf("%w\nagent log:\n%s", err, n.agent.LogTail(20))
	}
	var s startSample
	for _, r := range tr.app(name) {
		if r.t.ready.IsZero() {
			continue
		}
		t := r.t
		if t.running.IsZero() || t.running.After(t.ready) {
			t.running = t.ready
		}
		s = startSample{total: t.ready.Sub(t0), created: t.seen.Sub(t0), bound: t.bound.Sub(t.seen),
			running: t.running.Sub(t.bound), ready: t.ready.Sub(t.running)}
	}
	deleted := time.Now()
	if _, err := n.client.Delete(ctx, api.KindDeployment, "default", name, client.DeleteOptions{}); err != nil {
		return startSample{}, fmt.Errorf("delete deployment %s: %w", name, err)
	}
	gone, err := tr.waitGone(ctx, name, o.timeout)
	if err != nil {
		return startSample{}, fmt.Errorf("%w\nagent log:\n%s", err, n.agent.LogTail(20))
	}
	s.teardown = gone.Sub(deleted)
	return s, nil
}

// deploymentJSON is a Deployment of the echo image, replicas pods with
// small requests, a readiness probe on /healthz every probe (0: none).
func deploymentJSON(name string, replicas int, probe time.Duration) string {
	readiness := ""
	if probe > 0 {
		readiness = fmt.Sprintf(`,"readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":%d}`, max(1, int(probe.Seconds())))
	}
	return `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"` + name + `","namespace":"default","labels":{"` + benchLabel + `":"podstart"}},` +
		`"spec":{"replicas":` + strconv.Itoa(replicas) + `,"selector":{"matchLabels":{"app":"` + name + `"}},` +
		`"template":{"metadata":{"labels":{"app":"` + name + `","` + benchLabel + `":"podstart"}},"spec":{"containers":[{"name":"echo",` +
		`"image":"localhost/skiff/echo:latest","imagePullPolicy":"IfNotPresent","ports":[{"containerPort":8080}],` +
		`"resources":{"requests":{"cpu":"10m","memory":"8Mi"}}` + readiness + `}]}}}}`
}

// dist is the summary of a set of durations.
type dist struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func summarize(ds []time.Duration) dist {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return dist{}
	}
	return dist{n: len(s), p50: load.Percentile(s, 0.50), p90: load.Percentile(s, 0.90),
		p99: load.Percentile(s, 0.99), max: s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *startResults) pick(v variant, f func(startSample) time.Duration) dist {
	var ds []time.Duration
	for _, s := range r.samples[v] {
		ds = append(ds, f(s))
	}
	return summarize(ds)
}

func (r *startResults) print(o options) {
	fmt.Printf("# pod start: skiff = create of a 1-replica Deployment → its pod Ready in a pod watch;\n")
	fmt.Printf("#   containerd = NewContainer + NewTask + Start (returns once the process runs), same image, same containerd\n")
	fmt.Printf("#   nearest-rank percentiles: with %d samples p99 is the %s sample\n", o.starts, ordinal(int(0.99*float64(o.starts)+0.999999)))
	fmt.Printf("# %-26s %4s %9s %9s %9s %9s %10s\n", "variant", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "warm-up ms")
	total := func(s startSample) time.Duration { return s.total }
	for _, v := range r.variants {
		d := r.pick(v, total)
		fmt.Printf("  %-26s %4d %9.1f %9.1f %9.1f %9.1f %10.1f\n", v, d.n, ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max), ms(r.warmup[v].total))
	}
	base := r.pick(containerdAlone, total)
	for _, v := range []variant{skiffNoProbe, skiffProbe} {
		d := r.pick(v, total)
		fmt.Printf("# ratio %s / containerd alone: p50 %.1fx, p99 %.1fx\n", v, ms(d.p50)/ms(base.p50), ms(d.p99)/ms(base.p99))
	}
	if _, ok := r.samples[containerdSecc]; ok {
		secc, logs := r.pick(containerdSecc, total), r.pick(containerdLogs, total)
		fmt.Printf("# what the agent's container options cost containerd alone at p50: default seccomp profile %+.1f ms, then the log driver %+.1f ms\n",
			ms(secc.p50)-ms(base.p50), ms(logs.p50)-ms(secc.p50))
	}
	fmt.Printf("# skiff phases (p50 / p99 ms): apply→created, created→bound, bound→running, running→Ready; delete→gone\n")
	for _, v := range []variant{skiffProbe, skiffNoProbe} {
		col := func(f func(startSample) time.Duration) string {
			d := r.pick(v, f)
			return fmt.Sprintf("%6.1f / %6.1f", ms(d.p50), ms(d.p99))
		}
		fmt.Printf("  %-26s %s   %s   %s   %s;   %s\n", v,
			col(func(s startSample) time.Duration { return s.created }), col(func(s startSample) time.Duration { return s.bound }),
			col(func(s startSample) time.Duration { return s.running }), col(func(s startSample) time.Duration { return s.ready }),
			col(func(s startSample) time.Duration { return s.teardown }))
	}
	for _, v := range []variant{skiffProbe, skiffNoProbe} {
		slow := slices.Clone(r.samples[v])
		slices.SortFunc(slow, func(a, b startSample) int { return int(b.total - a.total) })
		var line []string
		for _, s := range slow[:min(3, len(slow))] {
			line = append(line, fmt.Sprintf("%.0f ms (%.0f/%.0f/%.0f/%.0f, machine %.0f%% busy)",
				ms(s.total), ms(s.created), ms(s.bound), ms(s.running), ms(s.ready), s.busy))
		}
		fmt.Printf("# slowest %s: %s\n", v, strings.Join(line, "; "))
		td := r.pick(v, func(s startSample) time.Duration { return s.teardown })
		if td.max > 10*time.Second {
			fmt.Printf("#   %s: a teardown took %.1fs: the container outlived SIGTERM until the grace period's SIGKILL (30 s by default)\n", v, td.max.Seconds())
		}
	}
	var busy []float64
	for _, v := range r.variants {
		for _, s := range r.samples[v] {
			busy = append(busy, s.busy)
		}
	}
	slices.Sort(busy)
	if len(busy) > 0 {
		fmt.Printf("# machine busy during the starts (all variants; a start's own processes included): median %.0f%%, max %.0f%% of %d CPUs\n", busy[len(busy)/2], busy[len(busy)-1], runtime.NumCPU())
	}
	for _, v := range []variant{skiffProbe, skiffNoProbe} {
		d := r.pick(v, total)
		verdict := "met"
		if d.p99 > time.Second {
			verdict = fmt.Sprintf("MISSED by %.0f ms", ms(d.p99-time.Second))
		}
		fmt.Printf("# target pod start p99 ≤ 1000 ms, %s: %.0f ms, %s\n", v, ms(d.p99), verdict)
	}
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}
