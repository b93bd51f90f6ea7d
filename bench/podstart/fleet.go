package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// fleetName is the one-node phase's Deployment.
const fleetName = "ps-fleet"

// fleetResult is what the one-node phase measured.
type fleetResult struct {
	pods      int
	loadStart string
	// containerd alone: the same number of containers started at once.
	baseAll  time.Duration
	baseEach dist
	baseBusy float64
	baseCPU  map[group]usage
	// skiff
	allReady  time.Duration // create → the last pod Ready
	perPod    dist          // create → each pod Ready
	running   dist          // create → each pod's container running
	startCPU  map[group]usage
	startBusy float64
	teardown  time.Duration // delete → the last pod gone
	// the idle window
	idle          time.Duration
	before, after snapshot
	agentRSS      []int64          // VmRSS read every second of the window, sorted
	agentStatus   map[string]int64 // VmHWM, RssAnon, RssFile
	agentGC       string
}

// measureFleet starts o.fleet containers at once with containerd alone,
// then creates one Deployment of o.fleet pods and times until all are
// Ready, reads the node's processes over an idle window, deletes the
// Deployment and times until every pod is gone.
func measureFleet(ctx context.Context, o options, n *node, tr *tracker, base *baseline) (*fleetResult, error) {
	res := &fleetResult{pods: o.fleet, loadStart: loadavg()}
	a := takeSnapshot(n.procs())
	var b snapshot
	all, each, err := base.startMany(ctx, "ps-fleet", o.fleet, startOpts{}, func() { b = takeSnapshot(n.procs()) })
	if err != nil {
		return nil, err
	}
	res.baseAll, res.baseEach, res.baseBusy, res.baseCPU = all, summarize(each), busyPercent(a, b), b.cpuSince(a)
	fmt.Fprintf(os.Stderr, "#   containerd alone: %d containers running after %.1fs\n", o.fleet, all.Seconds())

	obj, err := api.DecodeObject([]byte(deploymentJSON(fleetName, o.fleet, o.fleetProbe)))
	if err != nil {
		return nil, err
	}
	start0 := takeSnapshot(n.procs())
	t0 := time.Now()
	if _, err := n.client.Create(ctx, obj); err != nil {
		return nil, fmt.Errorf("create deployment %s: %w", fleetName, err)
	}
	last, err := tr.waitReady(ctx, fleetName, o.fleet, 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("%w\nagent log:\n%s", err, n.agent.LogTail(20))
	}
	start1 := takeSnapshot(n.procs())
	res.allReady = last.Sub(t0)
	res.startCPU, res.startBusy = start1.cpuSince(start0), busyPercent(start0, start1)
	var ready, running []time.Duration
	for _, r := range tr.app(fleetName) {
		if !r.t.ready.IsZero() && r.t.gone.IsZero() {
			ready = append(ready, r.t.ready.Sub(t0))
			if !r.t.running.IsZero() {
				running = append(running, r.t.running.Sub(t0))
			}
		}
	}
	res.perPod, res.running = summarize(ready), summarize(running)
	fmt.Fprintf(os.Stderr, "#   %d pods Ready after %.1fs; settling %v, then idle for %v\n", o.fleet, res.allReady.Seconds(), o.settle, o.idle)

	if err := sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	res.before = takeSnapshot(n.procs())
	var rss []int64
	tick := time.NewTicker(time.Second)
	for time.Since(res.before.at) < o.idle {
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
			rss = append(rss, kbField(fmt.Sprintf("/proc/%d/status", n.agent.PID()), "VmRSS"))
		}
	}
	tick.Stop()
	slices.Sort(rss)
	res.agentRSS = rss
	res.after = takeSnapshot(res.before.groups)
	res.idle = res.after.at.Sub(res.before.at)
	res.agentStatus = map[string]int64{}
	for _, k := range []string{"VmHWM", "RssAnon", "RssFile"} {
		res.agentStatus[k] = kbField(fmt.Sprintf("/proc/%d/status", n.agent.PID()), k)
	}
	res.agentGC = n.lastGC()
	if !n.agent.Running() {
		return nil, fmt.Errorf("the agent exited during the idle window\n%s", n.agent.LogTail(20))
	}

	deleted := time.Now()
	if _, err := n.client.Delete(ctx, api.KindDeployment, "default", fleetName, client.DeleteOptions{}); err != nil {
		return nil, fmt.Errorf("delete deployment %s: %w", fleetName, err)
	}
	gone, err := tr.waitGone(ctx, fleetName, 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("%w\nagent log:\n%s", err, n.agent.LogTail(20))
	}
	res.teardown = gone.Sub(deleted)
	return res, nil
}

// mb is bytes in MB (10^6 bytes: the conservative reading of the 50 MB
// target).
func mb(b int64) float64 { return float64(b) / 1e6 }

// rssTarget is issue 5's agent RSS target with 100 pods.
const rssTarget = 50_000_000

func (f *fleetResult) print(o options) {
	probe := "no readiness probe"
	if o.fleetProbe > 0 {
		probe = fmt.Sprintf("readiness probe every %v", o.fleetProbe)
	}
	fmt.Printf("# %d pods on one node: one Deployment (cpu 10m, memory 8Mi, %s), load %s before; busy %% includes the node's own processes\n", f.pods, probe, f.loadStart)
	fmt.Printf("#   containerd alone: %d containers (plain, as above) started at once, one goroutine each\n", f.pods)
	fmt.Printf("# %-28s %9s %9s %9s %9s %8s\n", "", "all s", "p50 s", "p99 s", "max s", "busy %")
	fmt.Printf("  %-28s %9.2f %9.2f %9.2f %9.2f %8.0f\n", "skiff: create → Ready", f.allReady.Seconds(), f.perPod.p50.Seconds(), f.perPod.p99.Seconds(), f.perPod.max.Seconds(), f.startBusy)
	fmt.Printf("  %-28s %9s %9.2f %9.2f %9.2f\n", "skiff: create → running", "", f.running.p50.Seconds(), f.running.p99.Seconds(), f.running.max.Seconds())
	fmt.Printf("  %-28s %9.2f %9.2f %9.2f %9.2f %8.0f\n", "containerd alone: started", f.baseAll.Seconds(), f.baseEach.p50.Seconds(), f.baseEach.p99.Seconds(), f.baseEach.max.Seconds(), f.baseBusy)
	fmt.Printf("  %-28s %9.2f\n", "skiff: delete → all gone", f.teardown.Seconds())
	fmt.Printf("# ratio all Ready / containerd alone all started: %.1fx\n", f.allReady.Seconds()/f.baseAll.Seconds())
	cpuLine := func(who string, cpu map[group]usage, wall time.Duration, busy float64) {
		var parts []string
		var total time.Duration
		for _, g := range groupOrder {
			u := cpu[g]
			if u.cpu+u.children == 0 {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.1fs (+%.1fs children)", g, u.cpu.Seconds(), u.children.Seconds()))
			total += u.cpu + u.children
		}
		fmt.Printf("# CPU while %s started (%.1fs, machine %.0f%% busy): %s; sum %.1fs = %.0f ms per container\n",
			who, wall.Seconds(), busy, strings.Join(parts, ", "), total.Seconds(), float64(total.Milliseconds())/float64(f.pods))
	}
	cpuLine(fmt.Sprintf("skiff's %d pods", f.pods), f.startCPU, f.allReady, f.startBusy)
	cpuLine(fmt.Sprintf("containerd alone's %d containers", f.pods), f.baseCPU, f.baseAll, f.baseBusy)

	fmt.Printf("# idle %.0fs with %d pods (after %v of settling): RSS at the end of the window; PSS splits shared pages; CPU = utime+stime over the window\n",
		f.idle.Seconds(), f.pods, o.settle)
	fmt.Printf("# %-16s %5s %10s %10s %12s\n", "process", "n", "RSS MB", "PSS MB", "CPU % core")
	after, cpu := f.after.totals(), f.after.cpuSince(f.before)
	for _, g := range groupOrder {
		a := after[g]
		fmt.Printf("  %-16s %5d %10.1f %10.1f %12.2f\n", g, a.n, mb(a.rss), mb(a.pss), 100*cpu[g].cpu.Seconds()/f.idle.Seconds())
	}
	agent := after[groupAgent]
	verdict := "met"
	if agent.rss > rssTarget {
		verdict = fmt.Sprintf("MISSED by %.1f MB", mb(agent.rss-rssTarget))
	}
	fmt.Printf("# target agent RSS ≤ 50 MB (10^6 bytes) with %d pods: %.1f MB at the end of the window, %s; read every second of it: p50 %.1f, max %.1f MB\n",
		f.pods, mb(agent.rss), verdict, mb(f.agentRSS[len(f.agentRSS)/2]), mb(f.agentRSS[len(f.agentRSS)-1]))
	fmt.Printf("#   agent RSS: anonymous %.1f MB, file-backed %.1f MB (the skiff binary's pages, shared with the control plane and the log drivers); peak (VmHWM) %.1f MB; Go heap at its last GC: %s\n",
		mb(f.agentStatus["RssAnon"]), mb(f.agentStatus["RssFile"]), mb(f.agentStatus["VmHWM"]), f.agentGC)
}
