package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/skiffhq/skiff/api"
)

// fakeClock is a Clock whose time moves only with Advance.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !c.now.Before(w.at) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func (c *fakeClock) numWaiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// tryPop pops without blocking: "" when nothing is active.
func tryPop(t *testing.T, q *Queue) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := q.Pop(ctx)
	if errors.Is(err, context.Canceled) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.Name
}

func TestQueueFIFOByCreation(t *testing.T) {
	q := NewQueue(QueueOptions{Clock: newFakeClock()})
	q.Add(testPod("c", "", "", createdAt(epoch.Add(2*time.Second))))
	q.Add(testPod("b", "", "", createdAt(epoch.Add(time.Second))))
	q.Add(testPod("a2", "", "", createdAt(epoch.Add(time.Second))))
	q.Add(testPod("z", "", "", createdAt(epoch)))
	q.Add(testPod("bound", "", "", onNode("n"))) // bound pods are not queued
	var got []string
	for {
		n := tryPop(t, q)
		if n == "" {
			break
		}
		got = append(got, n)
	}
	want := []string{"z", "a2", "b", "c"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestQueuePopBatch(t *testing.T) {
	q := NewQueue(QueueOptions{Clock: newFakeClock()})
	for _, p := range deploymentPods("web", 5, "", "") {
		q.Add(p)
	}
	pods, err := q.PopBatch(context.Background(), 3)
	if err != nil || len(pods) != 3 {
		t.Fatalf("%d pods, %v", len(pods), err)
	}
	pods, _ = q.PopBatch(context.Background(), 3)
	if len(pods) != 2 {
		t.Fatalf("%d pods", len(pods))
	}
	if _, _, _, inFlight := q.Len(); inFlight != 5 {
		t.Fatalf("in flight %d", inFlight)
	}
}

func TestQueueBackoffDoubles(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	for attempt, wait := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		wait *= time.Second
		if tryPop(t, q) != "p" {
			t.Fatalf("attempt %d: not active", attempt)
		}
		q.Backoff(pod)
		clock.Advance(wait - time.Millisecond)
		if tryPop(t, q) != "" {
			t.Fatalf("attempt %d: active before %v", attempt, wait)
		}
		clock.Advance(time.Millisecond)
	}
}

func TestQueueUnschedulableWaitsForEvent(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	q.Unschedulable(pod)
	clock.Advance(10 * time.Second) // back-off over, but no event
	if tryPop(t, q) != "" {
		t.Fatal("unschedulable pod retried without an event")
	}
	q.MoveAllToActive("node added")
	if tryPop(t, q) != "p" {
		t.Fatal("event did not move the pod")
	}
	// Second failure: back-off 2s; an event during it moves to backoff.
	q.Unschedulable(pod)
	clock.Advance(time.Second)
	q.MoveAllToActive("pod deleted")
	if tryPop(t, q) != "" {
		t.Fatal("moved before back-off expired")
	}
	clock.Advance(time.Second)
	if tryPop(t, q) != "p" {
		t.Fatal("not active after back-off")
	}
	// With no event at all, MaxUnschedulableWait brings it back.
	q.Unschedulable(pod)
	clock.Advance(MaxUnschedulableWait)
	if tryPop(t, q) != "p" {
		t.Fatal("not retried after MaxUnschedulableWait")
	}
}

func TestQueueEventDuringAttempt(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	q.MoveAllToActive("node added") // while p was being scheduled
	q.Unschedulable(pod)
	clock.Advance(time.Second)
	if tryPop(t, q) != "p" {
		t.Fatal("pod missed the event that happened during its attempt")
	}
}

func TestQueueUpdateAndDelete(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	q.Unschedulable(pod)
	clock.Advance(time.Second)
	// A status-only update leaves it parked.
	st := testPod("p", "", "", func(p *api.Pod) {
		p.Status.Conditions = []api.PodCondition{{Type: api.PodScheduled, Status: api.ConditionFalse}}
	})
	q.Update(st)
	if tryPop(t, q) != "" {
		t.Fatal("status update moved the pod")
	}
	// A spec change moves it.
	q.Update(testPod("p", "", "", func(p *api.Pod) { p.Spec.NodeSelector = map[string]string{"a": "b"} }))
	if tryPop(t, q) != "p" {
		t.Fatal("spec update did not move the pod")
	}
	q.Add(testPod("d", "", ""))
	q.Delete(testPod("d", "", ""))
	q.Delete(pod)
	if a, b, u, f := q.Len(); a+b+u+f != 0 {
		t.Fatalf("left: %d %d %d %d", a, b, u, f)
	}
}

func TestQueuePopBlocksUntilBackoffExpires(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	q.Backoff(pod)
	got := make(chan string, 1)
	go func() {
		p, err := q.Pop(context.Background())
		if err != nil {
			got <- err.Error()
			return
		}
		got <- p.Name
	}()
	for clock.numWaiters() == 0 {
		time.Sleep(time.Millisecond) // wait for Pop to block on the clock
	}
	clock.Advance(time.Second)
	if name := <-got; name != "p" {
		t.Fatalf("got %q", name)
	}
}

func TestQueuePopWakesOnAddAndClose(t *testing.T) {
	q := NewQueue(QueueOptions{Clock: newFakeClock()})
	got := make(chan error, 2)
	go func() {
		_, err := q.Pop(context.Background())
		got <- err
		_, err = q.Pop(context.Background())
		got <- err
	}()
	q.Add(testPod("p", "", ""))
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := <-got; !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestQueueLatencyMetric(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	q := NewQueue(QueueOptions{Clock: clock, Metrics: m})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	clock.Advance(3 * time.Second)
	q.Update(testPod("p", "", "", onNode("n"))) // the watch sees the binding
	q.Bound(pod)                                // and the lead's callback: counted once
	h := gatherOne(t, reg, "skiff_scheduler_scheduling_latency_seconds")[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 3 {
		t.Fatalf("count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
}

func TestQueueDeletedInFlightIsDropped(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	q.Delete(pod)
	q.Unschedulable(pod)
	q.Backoff(pod)
	clock.Advance(MaxUnschedulableWait)
	q.MoveAllToActive("test")
	if a, b, u, f := q.Len(); a+b+u+f != 0 {
		t.Fatalf("deleted pod resurrected: %d %d %d %d", a, b, u, f)
	}
}

func TestQueueSpecChangeDuringAttempt(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	pod := testPod("p", "", "")
	q.Add(pod)
	tryPop(t, q)
	changed := testPod("p", "", "", func(p *api.Pod) { p.Spec.NodeSelector = map[string]string{"a": "b"} })
	q.Update(changed)
	q.Unschedulable(pod)
	clock.Advance(time.Second)
	if tryPop(t, q) != "p" {
		t.Fatal("pod whose spec changed in flight waits for an event")
	}
}
