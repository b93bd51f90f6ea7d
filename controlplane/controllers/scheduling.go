package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/scheduler"
)

// Scheduling runs the scheduler on the leader (see scheduler/README.md for
// the data flow): a node and pod watch feed the scheduler's Cache and
// Queue; one loop pops batches of pending pods, places them on a snapshot
// and commits each batch's bindings in one store write, while the next
// batch is already being placed. The store re-checks every binding (the
// pod's resourceVersion, the node's remaining capacity), so a stale
// snapshot or a racing writer costs a retry, never an overcommit.
//
// A pod that fits nowhere gets PodScheduled=False with the scheduler's
// diagnosis and a FailedScheduling Event (one per pod, its count bumped on
// repeats), and waits for a cluster change that may let it fit.
type Scheduling struct {
	Store     Store
	Log       *slog.Logger
	Scheduler scheduler.Config
	Metrics   *scheduler.Metrics // may be nil
	Clock     scheduler.Clock    // default scheduler.RealClock
	// BatchSize is the most pods placed per cycle; default 500.
	BatchSize int
	// MaxInFlight is the most binding writes outstanding; default 4.
	MaxInFlight int
}

// Name implements Controller.
func (c *Scheduling) Name() string { return "scheduler" }

// Event reasons the scheduler reports.
const (
	ReasonFailedScheduling = "FailedScheduling"
	schedulerComponent     = "skiff-scheduler"
)

// schedulingRun is the state of one Run: one leadership term.
type schedulingRun struct {
	*Scheduling
	ctx   context.Context
	sched *scheduler.Scheduler
	cache *scheduler.Cache
	queue *scheduler.Queue
}

// Run schedules until ctx ends (leadership lost) or a watch fails.
func (c *Scheduling) Run(ctx context.Context) error {
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4
	}
	if c.Clock == nil {
		c.Clock = scheduler.RealClock{}
	}
	cfg := c.Scheduler
	cfg.Metrics = c.Metrics
	r := &schedulingRun{
		Scheduling: c,
		sched:      scheduler.New(cfg),
		cache:      scheduler.NewCache(),
		queue:      scheduler.NewQueue(scheduler.QueueOptions{Clock: c.Clock, Metrics: c.Metrics}),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx

	nodes, _, nw, err := c.Store.ListAndWatch(api.KindNode, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer nw.Stop()
	pods, _, pw, err := c.Store.ListAndWatch(api.KindPod, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer pw.Stop()
	for _, o := range nodes {
		r.cache.AddNode(o.(*api.Node))
	}
	for _, o := range pods {
		r.observePod(o.(*api.Pod))
	}

	var wg sync.WaitGroup
	watchErr := make(chan error, 2)
	follow := func(w store.Watcher, handle func(store.Event)) {
		defer wg.Done()
		for e := range w.Events() {
			handle(e)
		}
		if ctx.Err() == nil {
			watchErr <- w.Err()
			cancel()
		}
	}
	wg.Add(2)
	go follow(nw, r.nodeEvent)
	go follow(pw, r.podEvent)

	r.loop(ctx)
	r.queue.Close()
	cancel()
	nw.Stop() // ends the Events loops
	pw.Stop()
	wg.Wait()
	select {
	case err := <-watchErr:
		return fmt.Errorf("watch ended: %w", err)
	default:
		return nil
	}
}

func (r *schedulingRun) nodeEvent(e store.Event) {
	n := e.Object.(*api.Node)
	if e.Type == store.Deleted {
		r.cache.DeleteNode(n.Name)
		return
	}
	r.cache.UpdateNode(n)
	r.queue.MoveAllToActive("node " + n.Name + " changed")
}

func (r *schedulingRun) podEvent(e store.Event) {
	p := e.Object.(*api.Pod)
	if e.Type != store.Deleted {
		r.observePod(p)
		return
	}
	r.cache.DeletePod(p)
	r.queue.Delete(p)
	if p.Spec.NodeName != "" {
		r.queue.MoveAllToActive("pod " + p.Namespace + "/" + p.Name + " deleted")
	}
	// The pod's FailedScheduling event, if any, goes with it.
	key := store.Key{Kind: api.KindEvent, Namespace: p.Namespace, Name: failedSchedulingEvent(p)}
	if _, err := r.Store.Get(key); err == nil {
		if _, err := r.Store.Delete(r.ctx, key, store.Preconditions{}); err != nil && !errors.Is(err, store.ErrNotFound) && r.ctx.Err() == nil {
			r.Log.Info("cannot delete the event of a deleted pod", "event", key.Namespace+"/"+key.Name, "err", err)
		}
	}
}

func failedSchedulingEvent(p *api.Pod) string { return p.Name + ".failedscheduling" }

// observePod feeds a pod's new state to the cache (bound pods) and the
// queue (pending ones; a bound pod leaves it).
func (r *schedulingRun) observePod(p *api.Pod) {
	r.cache.UpdatePod(p)
	if p.Spec.NodeName == "" && !schedulable(p) {
		r.queue.Delete(p)
		return
	}
	r.queue.Update(p)
	if p.Spec.NodeName != "" && podFinished(p) {
		// A finished pod frees its room.
		r.queue.MoveAllToActive("pod " + p.Namespace + "/" + p.Name + " finished")
	}
}

// schedulable: a pending pod the scheduler should place.
func schedulable(p *api.Pod) bool {
	return p.DeletionTimestamp == nil && !podFinished(p)
}

func podFinished(p *api.Pod) bool {
	return p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed
}

// loop places batches until the queue closes or ctx ends, then waits for
// the writes it started.
func (r *schedulingRun) loop(ctx context.Context) {
	snap := r.cache.Snapshot()
	inFlight := make(chan struct{}, r.MaxInFlight)
	var writes sync.WaitGroup
	defer writes.Wait()
	for {
		pods, err := r.queue.PopBatch(ctx, r.BatchSize)
		if err != nil {
			return
		}
		popped := time.Now()
		r.cache.UpdateSnapshot(snap)
		snapped := time.Now()
		results := r.sched.ScheduleBatch(snap, pods)
		scheduled := time.Now()
		assumeErrs := r.cache.AssumePods(results)
		var placed, failed []scheduler.Result
		for i, res := range results {
			switch {
			case res.NodeName != "":
				if assumeErrs[i] != nil {
					// Bound meanwhile (the watch was faster): done.
					r.queue.Backoff(res.Pod)
					continue
				}
				placed = append(placed, res)
			case res.Diagnosis != nil && res.Diagnosis.Err != nil:
				r.Log.Warn("scheduling failed; will retry", "pod", res.Pod.Namespace+"/"+res.Pod.Name, "err", res.Diagnosis.Err)
				r.queue.Backoff(res.Pod)
			default:
				failed = append(failed, res)
			}
		}
		placedAt := time.Now()
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			for _, res := range placed {
				r.cache.ForgetPod(res.Pod)
			}
			return
		}
		slot := time.Now()
		writes.Add(1)
		go func() {
			defer func() { <-inFlight; writes.Done() }()
			r.bind(ctx, placed)
			r.reportUnschedulable(ctx, failed)
			r.Log.Debug("scheduling batch", "pods", len(pods), "placed", len(placed), "unschedulable", len(failed),
				"snapshot", snapped.Sub(popped), "schedule", scheduled.Sub(snapped), "assume", placedAt.Sub(scheduled),
				"waitForWriteSlot", slot.Sub(placedAt), "commit", time.Since(slot))
		}()
	}
}

// bind commits placed pods' bindings in one write; a rejected binding is
// forgotten and its pod retried after a back-off.
func (r *schedulingRun) bind(ctx context.Context, placed []scheduler.Result) {
	if len(placed) == 0 {
		return
	}
	ops := make([]store.Op, len(placed))
	for i, res := range placed {
		rv, _ := strconv.ParseUint(res.Pod.ResourceVersion, 10, 64)
		ops[i] = store.Op{Type: store.OpBind, Key: store.KeyOf(res.Pod), Node: res.NodeName,
			Preconditions: store.Preconditions{ResourceVersion: rv, UID: res.Pod.UID}}
	}
	results, err := r.Store.Batch(ctx, ops)
	for i, res := range placed {
		var bindErr error
		switch {
		case err != nil:
			bindErr = err
		case results[i].Err != nil:
			bindErr = results[i].Err
		}
		if bindErr == nil {
			r.queue.Bound(res.Pod)
			continue
		}
		r.cache.ForgetPod(res.Pod)
		r.queue.Backoff(res.Pod)
		if ctx.Err() == nil && !errors.Is(bindErr, store.ErrNotFound) {
			r.Log.Info("binding rejected; will retry", "pod", res.Pod.Namespace+"/"+res.Pod.Name, "node", res.NodeName, "err", bindErr)
		}
	}
}

// reportUnschedulable parks pods that fit nowhere and tells their owners
// why: PodScheduled=False with the diagnosis, and a FailedScheduling Event.
// Both are written only when the message changes, so a pod retried after
// every cluster change does not flood the log.
func (r *schedulingRun) reportUnschedulable(ctx context.Context, failed []scheduler.Result) {
	var ops []store.Op
	now := api.NewTime(r.Clock.Now())
	for _, res := range failed {
		r.queue.Unschedulable(res.Pod)
		msg := res.Diagnosis.Message()
		if cond := podCondition(res.Pod, api.PodScheduled); cond != nil &&
			cond.Status == api.ConditionFalse && cond.Message == msg {
			continue
		}
		p := *res.Pod
		p.Status.Conditions = withPodCondition(p.Status.Conditions, api.PodCondition{
			Type: api.PodScheduled, Status: api.ConditionFalse, LastTransitionTime: now,
			Reason: api.PodReasonUnschedulable, Message: msg})
		ops = append(ops, store.Op{Type: store.OpUpdateStatus, Object: &p}, r.eventOp(res.Pod, msg, now))
	}
	if err := applyOps(ctx, r.Store, ops); err != nil && ctx.Err() == nil {
		r.Log.Warn("cannot report unschedulable pods", "err", err)
	}
}

// eventOp creates or bumps pod's FailedScheduling event.
func (r *schedulingRun) eventOp(pod *api.Pod, msg string, now *api.Time) store.Op {
	name := failedSchedulingEvent(pod)
	if o, err := r.Store.Get(store.Key{Kind: api.KindEvent, Namespace: pod.Namespace, Name: name}); err == nil {
		ev := *o.(*api.Event)
		ev.Count++
		ev.Message, ev.LastTimestamp = msg, now
		ev.InvolvedObject.ResourceVersion = pod.ResourceVersion
		ev.ResourceVersion = "" // last writer wins
		return store.Op{Type: store.OpUpdate, Object: &ev}
	}
	info, _ := api.ByKind(api.KindEvent)
	ev := info.New().(*api.Event)
	ev.Namespace, ev.Name = pod.Namespace, name
	*ev = api.Event{
		TypeMeta: ev.TypeMeta, ObjectMeta: ev.ObjectMeta,
		InvolvedObject: api.ObjectReference{Kind: string(api.KindPod), APIVersion: "v1",
			Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Reason: ReasonFailedScheduling, Message: msg, Type: api.EventTypeWarning,
		Source:         api.EventSource{Component: schedulerComponent},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: schedulerComponent,
	}
	return store.Op{Type: store.OpCreate, Object: ev}
}

func podCondition(p *api.Pod, t api.PodConditionType) *api.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// withPodCondition returns a copy of conds with c set (replacing its type).
func withPodCondition(conds []api.PodCondition, c api.PodCondition) []api.PodCondition {
	out := make([]api.PodCondition, 0, len(conds)+1)
	for _, x := range conds {
		if x.Type != c.Type {
			out = append(out, x)
		}
	}
	return append(out, c)
}
