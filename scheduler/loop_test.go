package scheduler

import (
	"context"
	"testing"
	"time"
)

// TestSchedulingLoop drives Queue, Cache and Scheduler the way the control
// plane does (see README.md), with a fake store that accepts bindings
// unless told to reject one.
func TestSchedulingLoop(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	c := NewCache()
	s := New(Config{})
	for _, n := range clusterNodes(3, "1", "4Gi") {
		c.AddNode(n)
	}
	for _, p := range deploymentPods("web", 4, "1", "") {
		q.Add(p)
	}
	snap := c.Snapshot()
	reject := map[string]bool{}
	// cycle runs one batch and returns the bound pods and diagnoses.
	cycle := func() (bound map[string]string, failed map[string]string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // never block: the test moves the clock itself
		pods, err := q.PopBatch(ctx, 10)
		if err != nil {
			return nil, nil
		}
		c.UpdateSnapshot(snap)
		bound, failed = map[string]string{}, map[string]string{}
		for _, r := range s.ScheduleBatch(snap, pods) {
			if r.NodeName == "" {
				q.Unschedulable(r.Pod)
				failed[r.Pod.Name] = r.Diagnosis.Message()
				continue
			}
			if err := c.AssumePod(r.Pod, r.NodeName); err != nil {
				t.Fatal(err)
			}
			if reject[r.Pod.Name] { // the store refused the binding
				delete(reject, r.Pod.Name)
				c.ForgetPod(r.Pod)
				q.Backoff(r.Pod)
				continue
			}
			b := *r.Pod
			b.Spec.NodeName = r.NodeName
			c.UpdatePod(&b) // the watch confirms
			q.Update(&b)    // = Bound
			bound[r.Pod.Name] = r.NodeName
		}
		return bound, failed
	}

	bound, failed := cycle()
	if len(bound) != 3 || len(failed) != 1 {
		t.Fatalf("bound %v failed %v", bound, failed)
	}
	for _, msg := range failed {
		if msg != "0/3 nodes are available: 3 Insufficient cpu." {
			t.Fatalf("message %q", msg)
		}
	}
	// Nothing changes: the pod stays parked even after its back-off.
	clock.Advance(2 * time.Second)
	if bound, _ := cycle(); len(bound) != 0 {
		t.Fatalf("bound %v without a cluster change", bound)
	}
	// A node joins: the pod is retried and lands there, unless the store
	// rejects the first binding, in which case it backs off and retries.
	c.AddNode(testNode("node-new", "1", "4Gi"))
	q.MoveAllToActive("node added")
	for name := range failed {
		reject[name] = true
	}
	if bound, _ := cycle(); len(bound) != 0 {
		t.Fatalf("rejected binding reported bound: %v", bound)
	}
	clock.Advance(backoffFor(2))
	bound, failed = cycle()
	if len(bound) != 1 || len(failed) != 0 {
		t.Fatalf("bound %v failed %v", bound, failed)
	}
	for _, node := range bound {
		if node != "node-new" {
			t.Fatalf("placed on %s", node)
		}
	}
	if a, b, u, f := q.Len(); a+b+u+f != 0 {
		t.Fatalf("queue not empty: %d %d %d %d", a, b, u, f)
	}
	if nodes, pods := c.Counts(); nodes != 4 || pods != 4 {
		t.Fatalf("cache: %d nodes %d pods", nodes, pods)
	}
}
