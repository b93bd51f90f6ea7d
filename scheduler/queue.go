package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
)

// ErrQueueClosed is returned by Pop and PopBatch after Close.
var ErrQueueClosed = errors.New("scheduling queue closed")

// Back-off of pods that failed to schedule: 1s doubling to 60s. A pod
// parked as unschedulable is retried after MaxUnschedulableWait even if no
// cluster event moved it, in case an event was missed.
const (
	InitialBackoff       = time.Second
	MaxBackoff           = 60 * time.Second
	MaxUnschedulableWait = 5 * time.Minute
)

// QueueOptions configure a Queue.
type QueueOptions struct {
	// Clock defaults to RealClock.
	Clock Clock
	// Metrics, if set, receives queue depth and queue-to-bound latency.
	Metrics *Metrics
}

// Queue holds the pods waiting to be scheduled. Each pod is in exactly one
// place:
//
//	Add ──► active (FIFO by creation time, then namespace/name) ──Pop──► in flight
//	in flight ──Bound──► gone (latency observed)
//	in flight ──Unschedulable──► unschedulable ──MoveAllToActive──► active, or backoff
//	in flight ──Backoff──► backoff ──(back-off expires)──► active
//
// Pods with spec.nodeName set are bound: Add and Update treat them as
// Bound, so the lead can feed every pod watch event to the queue.
//
// Queue is safe for concurrent use.
type Queue struct {
	mu            sync.Mutex
	clock         Clock
	metrics       *Metrics
	active        podHeap
	activeByKey   map[PodKey]*queuedPod
	backoff       map[PodKey]*queuedPod
	unschedulable map[PodKey]*queuedPod
	inFlight      map[PodKey]*queuedPod
	// moveCycle counts MoveAllToActive calls; a pod found unschedulable
	// after an event that happened while it was in flight goes to backoff
	// instead of waiting for another event.
	moveCycle uint64
	wake      chan struct{}
	closed    bool
}

type queuedPod struct {
	pod          *api.Pod
	key          PodKey
	added        time.Time
	attempts     int
	backoffUntil time.Time
	parkedAt     time.Time
	popCycle     uint64
	// changedInFlight: the spec changed while the pod was being scheduled,
	// so a failure may not hold for the new spec.
	changedInFlight bool
	index           int
}

// NewQueue returns an empty queue.
func NewQueue(opts QueueOptions) *Queue {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	return &Queue{
		clock:         opts.Clock,
		metrics:       opts.Metrics,
		activeByKey:   make(map[PodKey]*queuedPod),
		backoff:       make(map[PodKey]*queuedPod),
		unschedulable: make(map[PodKey]*queuedPod),
		inFlight:      make(map[PodKey]*queuedPod),
		wake:          make(chan struct{}),
	}
}

func (q *Queue) signalLocked() {
	close(q.wake)
	q.wake = make(chan struct{})
	q.metrics.setPending(q.active.Len(), len(q.backoff), len(q.unschedulable))
}

// Add enqueues a pending pod (or updates it if already queued).
func (q *Queue) Add(pod *api.Pod) { q.Update(pod) }

// Update replaces a queued pod's object. A parked pod whose spec or labels
// changed may now fit, so it returns to active (or backoff if still
// backing off); a status-only update leaves it parked.
func (q *Queue) Update(pod *api.Pod) {
	if pod.Spec.NodeName != "" {
		q.Bound(pod)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	key := KeyOf(pod)
	now := q.clock.Now()
	switch {
	case q.inFlight[key] != nil:
		e := q.inFlight[key]
		if !reflect.DeepEqual(e.pod.Spec, pod.Spec) || !reflect.DeepEqual(e.pod.Labels, pod.Labels) {
			e.changedInFlight = true
		}
		e.pod = pod
		return
	case q.unschedulable[key] != nil || q.backoff[key] != nil:
		e := q.unschedulable[key]
		if e == nil {
			e = q.backoff[key]
		}
		if reflect.DeepEqual(e.pod.Spec, pod.Spec) && reflect.DeepEqual(e.pod.Labels, pod.Labels) {
			// A status update (the scheduler's own PodScheduled=False
			// among them) cannot make the pod fit: leave it parked.
			e.pod = pod
			return
		}
		delete(q.unschedulable, key)
		delete(q.backoff, key)
		e.pod = pod
		q.activateLocked(e, now)
	default:
		if e := q.activeByKey[key]; e != nil {
			e.pod = pod
			heap.Fix(&q.active, e.index)
		} else {
			q.pushActiveLocked(&queuedPod{pod: pod, key: key, added: now})
		}
	}
	q.signalLocked()
}

// activateLocked puts e in active, or in backoff if its back-off has not
// expired.
func (q *Queue) activateLocked(e *queuedPod, now time.Time) {
	if now.Before(e.backoffUntil) {
		q.backoff[e.key] = e
		return
	}
	q.pushActiveLocked(e)
}

func (q *Queue) pushActiveLocked(e *queuedPod) {
	heap.Push(&q.active, e)
	q.activeByKey[e.key] = e
}

// Delete forgets a pod wherever it is.
func (q *Queue) Delete(pod *api.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.removeLocked(KeyOf(pod))
	q.signalLocked()
}

func (q *Queue) removeLocked(key PodKey) *queuedPod {
	if e := q.inFlight[key]; e != nil {
		delete(q.inFlight, key)
		return e
	}
	if e := q.unschedulable[key]; e != nil {
		delete(q.unschedulable, key)
		return e
	}
	if e := q.backoff[key]; e != nil {
		delete(q.backoff, key)
		return e
	}
	if e := q.activeByKey[key]; e != nil {
		heap.Remove(&q.active, e.index)
		delete(q.activeByKey, key)
		return e
	}
	return nil
}

// Bound reports that pod's binding is committed: the queue forgets it and
// records its latency from first Add.
func (q *Queue) Bound(pod *api.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.removeLocked(KeyOf(pod)); e != nil {
		q.metrics.ObserveBound(q.clock.Now().Sub(e.added))
		q.signalLocked()
	}
}

// backoffFor is 1s doubling per failed attempt, capped at MaxBackoff.
func backoffFor(attempts int) time.Duration {
	d := InitialBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= MaxBackoff {
			return MaxBackoff
		}
	}
	return d
}

// parkLocked takes pod out of flight and sets its back-off; it returns
// nil if the pod is not in flight (deleted or bound meanwhile).
func (q *Queue) parkLocked(pod *api.Pod, now time.Time) *queuedPod {
	key := KeyOf(pod)
	e := q.inFlight[key]
	if e == nil {
		return nil
	}
	delete(q.inFlight, key)
	e.backoffUntil = now.Add(backoffFor(e.attempts))
	e.parkedAt = now
	return e
}

// Unschedulable parks pod, which Pop returned, until a cluster event may
// make it fit (MoveAllToActive), and at least its back-off. A pod deleted
// or bound since Pop is dropped.
func (q *Queue) Unschedulable(pod *api.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.parkLocked(pod, q.clock.Now())
	if e == nil {
		return
	}
	if q.moveCycle > e.popCycle || e.changedInFlight {
		// The cluster or the pod changed while it was being scheduled:
		// the failure may already be stale.
		q.backoff[e.key] = e
	} else {
		q.unschedulable[e.key] = e
	}
	e.changedInFlight = false
	q.signalLocked()
}

// Backoff requeues pod, which Pop returned, after its back-off whatever
// the cluster does: for errors and rejected bindings. A pod deleted or
// bound since Pop is dropped.
func (q *Queue) Backoff(pod *api.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.parkLocked(pod, q.clock.Now())
	if e == nil {
		return
	}
	e.changedInFlight = false
	q.backoff[e.key] = e
	q.signalLocked()
}

// MoveAllToActive returns the unschedulable pods to active (those still
// backing off to backoff) after a cluster event that may let them fit: a
// node added or changed, a pod deleted. reason is for logs and is not
// interpreted.
func (q *Queue) MoveAllToActive(reason string) {
	_ = reason
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveCycle++
	now := q.clock.Now()
	for key, e := range q.unschedulable {
		delete(q.unschedulable, key)
		q.activateLocked(e, now)
	}
	q.signalLocked()
}

// flushLocked moves expired back-offs and long-parked pods to active and
// returns how long until the next one expires (0: none pending).
func (q *Queue) flushLocked(now time.Time) time.Duration {
	var next time.Duration
	consider := func(at time.Time) {
		if d := at.Sub(now); next == 0 || d < next {
			next = d
		}
	}
	for key, e := range q.backoff {
		if !now.Before(e.backoffUntil) {
			delete(q.backoff, key)
			q.pushActiveLocked(e)
		} else {
			consider(e.backoffUntil)
		}
	}
	for key, e := range q.unschedulable {
		deadline := e.parkedAt.Add(MaxUnschedulableWait)
		if !now.Before(deadline) {
			delete(q.unschedulable, key)
			q.pushActiveLocked(e)
		} else {
			consider(deadline)
		}
	}
	return next
}

// Pop blocks until a pod is active and returns it, now in flight; the
// caller must follow with Bound, Unschedulable, Backoff or Delete.
func (q *Queue) Pop(ctx context.Context) (*api.Pod, error) {
	pods, err := q.PopBatch(ctx, 1)
	if err != nil {
		return nil, err
	}
	return pods[0], nil
}

// PopBatch blocks until at least one pod is active and returns up to max
// of them, oldest first, all in flight.
func (q *Queue) PopBatch(ctx context.Context, max int) ([]*api.Pod, error) {
	if max < 1 {
		max = 1
	}
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrQueueClosed
		}
		now := q.clock.Now()
		next := q.flushLocked(now)
		if n := q.active.Len(); n > 0 {
			if n > max {
				n = max
			}
			out := make([]*api.Pod, 0, n)
			for len(out) < n {
				e := heap.Pop(&q.active).(*queuedPod)
				delete(q.activeByKey, e.key)
				e.attempts++
				e.popCycle = q.moveCycle
				q.inFlight[e.key] = e
				out = append(out, e.pod)
			}
			q.metrics.setPending(q.active.Len(), len(q.backoff), len(q.unschedulable))
			q.mu.Unlock()
			return out, nil
		}
		wake := q.wake
		q.mu.Unlock()
		var timer <-chan time.Time
		if next > 0 {
			timer = q.clock.After(next)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		case <-timer:
		}
	}
}

// Close makes Pop and PopBatch return ErrQueueClosed.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signalLocked()
}

// Len returns the number of pods per sub-queue.
func (q *Queue) Len() (active, backoff, unschedulable, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), len(q.backoff), len(q.unschedulable), len(q.inFlight)
}

// podHeap orders pods by creation timestamp, then namespace/name.
type podHeap []*queuedPod

func (h podHeap) Len() int { return len(h) }

func (h podHeap) Less(i, j int) bool {
	ti, tj := creation(h[i].pod), creation(h[j].pod)
	if !ti.Equal(tj) {
		return ti.Before(tj)
	}
	return h[i].key < h[j].key
}

func creation(p *api.Pod) time.Time {
	if p.CreationTimestamp == nil {
		return time.Time{}
	}
	return p.CreationTimestamp.Time
}

func (h podHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *podHeap) Push(x any) {
	e := x.(*queuedPod)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *podHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
