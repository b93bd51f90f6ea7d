package nodeagent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// podState is the agent's record of one pod (one UID). The event loop
// owns pod, gone, dirty, running and retry (under Agent.mu); the worker
// running for the pod, of which there is at most one, owns the rest.
type podState struct {
	uid api.UID

	// Guarded by Agent.mu.
	pod     *api.Pod // latest known from the API; nil if only the runtime knows it
	gone    bool     // deleted from the API (or never there: an orphan)
	dirty   bool     // something changed since the worker last looked
	running bool     // a worker goroutine is on it
	retry   Timer    // a scheduled retry or wake-up
	seen    uint64   // relist generation that last listed it

	// Owned by the worker.
	meta     runtime.PodMeta
	sandbox  runtime.SandboxID
	stale    []runtime.SandboxID // older sandboxes of the pod, to remove
	netns    string
	ip       netip.Addr
	attached bool
	failures int                   // consecutive failed syncs, for back-off
	waiting  map[string]waitReason // why a container is not running
	crash    map[string]crashLoop  // restart back-off per container
	// startBackoff is the back-off of containers that failed to start
	// (never ran: a failed pull, a missing executable).
	startBackoff map[string]startBackoff
}

// startBackoff is a container's back-off after failed starts; attempt
// is the attempt number its next start uses.
type startBackoff struct {
	delay   time.Duration
	until   time.Time
	lastErr string
	pull    bool // the image pull failed (ImagePullBackOff)
	attempt uint32
}

// waitReason is what a container waits for (the Waiting state it shows).
type waitReason struct {
	reason, message string
}

// crashLoop is a container's restart back-off: it may start again at until.
type crashLoop struct {
	delay time.Duration
	until time.Time
}

// newerRV reports whether resource version a is after b (versions are
// Raft indexes; an unparsable one is never newer).
func newerRV(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && (errB != nil || x > y)
}

// runPods sets up the pod network, adopts what the runtime already runs,
// then lists and watches the node's pods and dispatches them to workers
// until ctx ends.
func (a *Agent) runPods(ctx context.Context) error {
	if err := a.setupNetwork(ctx); err != nil {
		return err
	}
	if err := a.adopt(ctx); err != nil {
		return err
	}
	opts := client.ListOptions{FieldSelector: api.FieldPodNodeName + "=" + a.cfg.NodeName}
	var relistGen uint64
	backoff := registerRetryMin
	for ctx.Err() == nil {
		// List, then watch from the list's version: what the list does not
		// hold is gone (orphans, pods deleted while the agent was away).
		l, err := a.c.List(ctx, api.KindPod, opts)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("list pods; retrying", "err", err, "in", backoff)
			}
			if !a.sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, registerRetryMax)
			continue
		}
		relistGen++
		if relistGen == 1 {
			a.reattach(ctx, l.Items)
		}
		for _, o := range l.Items {
			a.upsert(ctx, o.(*api.Pod), relistGen)
		}
		a.sweep(ctx, relistGen)
		if err := a.watch(ctx, opts, l.ResourceVersion, &relistGen); err != nil && ctx.Err() == nil {
			a.log.Warn("pod watch ended; listing again", "err", err)
			if !a.sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, registerRetryMax)
			continue
		}
		backoff = registerRetryMin
	}
	return nil
}

// setupNetwork waits for the node's pod CIDR (the control plane assigns
// it when the node is created; a full cluster CIDR leaves none until an
// operator widens it) and builds the pod network over it.
func (a *Agent) setupNetwork(ctx context.Context) error {
	n := a.Node()
	notReady := false
	for delay := time.Second; n.Spec.PodCIDR == ""; delay = min(2*delay, 30*time.Second) {
		if !notReady {
			// Nothing can be placed here until the node has a pod network.
			notReady = a.setReady(ctx, api.ConditionFalse, reasonNetworkNotReady,
				"network not ready: the node has no pod CIDR (is the cluster CIDR full?)") == nil
		}
		a.log.Warn("the node has no pod CIDR yet; waiting", "in", delay)
		if !a.sleep(ctx, delay) {
			return nil
		}
		o, err := a.c.Get(ctx, api.KindNode, "", a.cfg.NodeName)
		if err != nil {
			continue
		}
		n = o.(*api.Node)
		a.setNode(n)
	}
	cidr, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil {
		return fmt.Errorf("nodeagent: node %s: spec.podCIDR %q: %w", n.Name, n.Spec.PodCIDR, err)
	}
	a.net, err = a.cfg.NewNetwork(cidr)
	if err != nil {
		return fmt.Errorf("nodeagent: pod network over %s: %w", cidr, err)
	}
	if notReady {
		if err := a.setReady(ctx, api.ConditionTrue, reasonReady, "skiff agent is posting ready status"); err != nil {
			a.log.Warn("report the node Ready", "err", err)
		}
	}
	return nil
}

// adopt records the sandboxes the runtime already holds (an agent
// restarted): each becomes its pod's state, so the pod is driven from
// where it is instead of started again.
func (a *Agent) adopt(ctx context.Context) error {
	sbs, err := a.rt.ListSandboxes(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("nodeagent: list sandboxes: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sb := range sbs {
		ps := a.pods[sb.Pod.UID]
		if ps == nil {
			ps = &podState{uid: sb.Pod.UID, meta: sb.Pod}
			a.pods[sb.Pod.UID] = ps
		}
		switch {
		case ps.sandbox == "":
			ps.sandbox, ps.netns, ps.meta = sb.ID, sb.NetNS, sb.Pod
		case sb.Pod.Attempt > ps.meta.Attempt:
			ps.stale = append(ps.stale, ps.sandbox)
			ps.sandbox, ps.netns, ps.meta = sb.ID, sb.NetNS, sb.Pod
		default:
			ps.stale = append(ps.stale, sb.ID)
		}
	}
	if len(sbs) > 0 {
		a.log.Info("adopted sandboxes from the runtime", "sandboxes", len(sbs), "pods", len(a.pods))
	}
	return nil
}

// reattach learns the addresses of adopted sandboxes before any worker
// runs, preferring the ones their pods report: a network that lost its
// state (the in-memory one) then gives each adopted pod its address back
// before a new pod could be given it.
func (a *Agent) reattach(ctx context.Context, pods []api.Object) {
	for _, o := range pods {
		p := o.(*api.Pod)
		a.mu.Lock()
		ps := a.pods[p.UID]
		a.mu.Unlock()
		if ps == nil || ps.sandbox == "" {
			continue
		}
		if err := a.attach(ctx, ps, p); err != nil {
			a.log.Warn("re-attach an adopted sandbox", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
}

// watch consumes one watch until it ends. It returns nil when ctx ends.
func (a *Agent) watch(ctx context.Context, opts client.ListOptions, rv string, relistGen *uint64) error {
	w, err := a.c.Watch(ctx, api.KindPod, opts, rv)
	if err != nil {
		return err
	}
	defer w.Stop()
	relist := a.clock.After(a.cfg.RelistPeriod)
	resync := a.clock.After(a.cfg.ResyncPeriod)
	sweepPending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-relist:
			a.relist(ctx)
			relist = a.clock.After(a.cfg.RelistPeriod)
		case <-resync:
			a.resync(ctx)
			resync = a.clock.After(a.cfg.ResyncPeriod)
		case ev, ok := <-w.Events():
			if !ok {
				if err := w.Err(); err != nil {
					return err
				}
				return fmt.Errorf("watch closed")
			}
			switch ev.Type {
			case client.Relisted:
				// The client relisted (our version was compacted away):
				// the ADDED events that follow are the whole set, and
				// whatever they leave out was deleted meanwhile.
				*relistGen++
				sweepPending = true
				continue
			case client.Added, client.Modified:
				a.upsert(ctx, ev.Object.(*api.Pod), *relistGen)
			case client.Deleted:
				a.remove(ctx, ev.Object.(*api.Pod))
			}
			if sweepPending && ev.Type != client.Added {
				a.sweep(ctx, *relistGen)
				sweepPending = false
			}
		}
	}
}

// upsert records a pod from the API and wakes its worker if there is
// something to do: a new pod, a changed spec, a deletion mark. Our own
// status writes come back as MODIFIED events and wake nothing.
func (a *Agent) upsert(ctx context.Context, p *api.Pod, gen uint64) {
	if p.Spec.NodeName != a.cfg.NodeName {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.pods[p.UID]
	if ps == nil {
		ps = &podState{uid: p.UID}
		a.pods[p.UID] = ps
	}
	ps.seen = gen
	old := ps.pod
	if old != nil && !newerRV(p.ResourceVersion, old.ResourceVersion) && p.ResourceVersion != old.ResourceVersion {
		return // an older version than one we already hold
	}
	ps.pod = p
	if old == nil || old.Generation != p.Generation || (old.DeletionTimestamp == nil) != (p.DeletionTimestamp == nil) || ps.gone {
		ps.gone = false
		a.kick(ctx, ps)
	}
}

// remove marks a deleted pod gone and wakes its worker to tear it down.
func (a *Agent) remove(ctx context.Context, p *api.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.pods[p.UID]
	if ps == nil {
		return
	}
	ps.gone = true
	a.kick(ctx, ps)
}

// sweep marks gone every pod the list of generation gen did not hold.
func (a *Agent) sweep(ctx context.Context, gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ps := range a.pods {
		if ps.seen != gen && !ps.gone {
			ps.gone = true
			a.kick(ctx, ps)
		}
	}
}

// resync wakes the worker of every pod the API still has.
func (a *Agent) resync(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ps := range a.pods {
		if !ps.gone && ps.pod != nil {
			a.kick(ctx, ps)
		}
	}
}

// relisted is a container as the last relist saw it.
type relisted struct {
	pod   api.UID
	state runtime.ContainerState
}

// relist is the agent's pod lifecycle event generator (the kubelet's
// PLEG): it lists the runtime and wakes the worker of every pod whose
// containers changed state since the last relist (exited, vanished,
// appeared) or whose sandbox is not ready, and of every sandbox no pod
// claims. A pod whose containers stay as they were costs nothing.
func (a *Agent) relist(ctx context.Context) {
	sbs, err := a.rt.ListSandboxes(ctx)
	if err != nil {
		a.log.Warn("relist sandboxes", "err", err)
		return
	}
	cs, err := a.rt.ListContainers(ctx, "")
	if err != nil {
		a.log.Warn("relist containers", "err", err)
		return
	}
	owner := make(map[runtime.SandboxID]api.UID, len(sbs))
	for _, sb := range sbs {
		owner[sb.ID] = sb.Pod.UID
	}
	changed := map[api.UID]bool{}
	for id, uid := range a.relistedSandboxes {
		if _, ok := owner[id]; !ok {
			changed[uid] = true // the sandbox vanished
		}
	}
	a.relistedSandboxes = owner
	now := make(map[runtime.ContainerID]relisted, len(cs))
	for _, c := range cs {
		r := relisted{pod: owner[c.SandboxID], state: c.State}
		now[c.ID] = r
		if prev, ok := a.relisted[c.ID]; !ok || prev != r {
			changed[r.pod] = true
		}
	}
	for id, r := range a.relisted {
		if _, ok := now[id]; !ok {
			changed[r.pod] = true // vanished
		}
	}
	a.relisted = now

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sb := range sbs {
		ps := a.pods[sb.Pod.UID]
		if ps == nil {
			// Created behind the agent's back, or left by a teardown that
			// failed half-way: nothing wants it.
			ps = &podState{uid: sb.Pod.UID, gone: true, meta: sb.Pod, sandbox: sb.ID, netns: sb.NetNS}
			a.pods[sb.Pod.UID] = ps
			a.kick(ctx, ps)
			continue
		}
		if changed[sb.Pod.UID] || sb.State != runtime.SandboxReady {
			a.kick(ctx, ps)
			delete(changed, sb.Pod.UID)
		}
	}
	for uid := range changed {
		if ps := a.pods[uid]; ps != nil {
			a.kick(ctx, ps) // its sandbox is gone
		}
	}
}

// kick makes sure a worker looks at ps soon (a.mu held). A pending retry
// is brought forward: new information beats waiting out a back-off.
func (a *Agent) kick(ctx context.Context, ps *podState) {
	ps.dirty = true
	if ps.retry != nil {
		ps.retry.Stop()
		ps.retry = nil
	}
	if ps.running || a.stopping {
		return
	}
	ps.running = true
	a.workers.Add(1)
	go a.work(ctx, ps)
}

// schedule wakes ps's worker after d (a.mu held).
func (a *Agent) schedule(ctx context.Context, ps *podState, d time.Duration) {
	if a.stopping {
		return
	}
	if ps.retry != nil {
		ps.retry.Stop()
	}
	var t Timer
	t = a.clock.AfterFunc(d, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if ps.retry == t {
			ps.retry = nil
			a.kick(ctx, ps)
		}
	})
	ps.retry = t
}

// Retry back-off of a pod whose sync failed.
const (
	retryMin = 500 * time.Millisecond
	retryMax = 30 * time.Second
)

// work drives ps until nothing is left to do, then exits: a pod costs a
// goroutine only while it changes.
func (a *Agent) work(ctx context.Context, ps *podState) {
	defer a.workers.Done()
	for {
		a.mu.Lock()
		if !ps.dirty || ctx.Err() != nil || a.stopping {
			ps.running = false
			a.mu.Unlock()
			return
		}
		ps.dirty = false
		pod, gone := ps.pod, ps.gone
		a.mu.Unlock()

		var wake time.Duration
		var err error
		if gone || pod == nil || pod.DeletionTimestamp != nil {
			a.probes.RemovePod(ps.uid)
			err = a.teardown(ctx, ps, pod)
			if err == nil && !gone && pod != nil {
				err = a.finishDelete(ctx, pod)
			}
		} else {
			wake, err = a.syncPod(ctx, ps, pod)
		}
		if ctx.Err() != nil {
			continue // exits at the top
		}
		if err != nil {
			ps.failures++
			wake = min(retryMin<<min(ps.failures-1, 10), retryMax)
			a.log.Warn("pod sync failed; retrying", "pod", podName(ps, pod), "err", err, "in", wake)
		} else {
			ps.failures = 0
		}

		a.mu.Lock()
		if err == nil && (gone || pod == nil) && ps.gone && !ps.dirty && ps.sandbox == "" {
			// Torn down and deleted from the API: forget it, and its logs.
			delete(a.pods, ps.uid)
			if a.cfg.PodLogDir != "" && ps.meta.Name != "" {
				if err := os.RemoveAll(a.podLogDir(ps.meta.Namespace, ps.meta.Name, ps.uid)); err != nil {
					a.log.Warn("remove the logs of a deleted pod", "pod", podName(ps, pod), "err", err)
				}
			}
		}
		if wake > 0 && !ps.dirty {
			a.schedule(ctx, ps, wake)
		}
		a.mu.Unlock()
	}
}

func podName(ps *podState, pod *api.Pod) string {
	if pod != nil {
		return pod.Namespace + "/" + pod.Name
	}
	if ps.meta.Name != "" {
		return ps.meta.Namespace + "/" + ps.meta.Name
	}
	return string(ps.uid)
}

// attach gives ps's sandbox its pod address (once per sandbox).
func (a *Agent) attach(ctx context.Context, ps *podState, pod *api.Pod) error {
	if ps.attached {
		return nil
	}
	if pod.Spec.HostNetwork {
		ps.ip, _ = netip.ParseAddr(a.hostIP)
		ps.attached = true
		return nil
	}
	att := network.Attachment{Sandbox: ps.sandbox, Pod: ps.meta, NetNS: ps.netns}
	if p, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
		att.Prefer = p
	}
	ip, err := a.net.Attach(ctx, att)
	if err != nil {
		return fmt.Errorf("attach sandbox %s to the pod network: %w", ps.sandbox, err)
	}
	ps.ip, ps.attached = ip, true
	return nil
}
