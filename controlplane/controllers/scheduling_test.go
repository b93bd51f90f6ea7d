package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// newSchedStore is an in-memory store with the default namespace.
func newSchedStore(t *testing.T) *store.Store {
	t.Helper()
	st := store.NewInMemory()
	info, _ := api.ByKind(api.KindNamespace)
	ns := info.New()
	ns.GetObjectMeta().Name = "default"
	if _, err := st.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return st
}

// schedNode creates a Ready node with cpu cores and 110 pods allocatable.
func schedNode(t *testing.T, st *store.Store, name, cpu string) {
	t.Helper()
	ctx := context.Background()
	info, _ := api.ByKind(api.KindNode)
	n := info.New().(*api.Node)
	n.Name = name
	n.Labels = map[string]string{"kubernetes.io/hostname": name}
	created, err := st.Create(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	n = api.DeepCopy(created.(*api.Node))
	n.Status.Allocatable = api.ResourceList{
		api.ResourceCPU:    api.MustParseQuantity(cpu),
		api.ResourceMemory: api.MustParseQuantity("64Gi"),
		api.ResourcePods:   api.MustParseQuantity("110"),
	}
	n.Status.Capacity = n.Status.Allocatable
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	if _, err := st.UpdateStatus(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// schedPod creates a pending pod asking for cpu.
func schedPod(t *testing.T, st *store.Store, name, cpu string) *api.Pod {
	t.Helper()
	info, _ := api.ByKind(api.KindPod)
	p := info.New().(*api.Pod)
	p.Namespace, p.Name = "default", name
	p.Labels = map[string]string{"app": "web"}
	p.Spec.Containers = []api.Container{{Name: "c", Image: "i", Resources: api.ResourceRequirements{
		Requests: api.ResourceList{api.ResourceCPU: api.MustParseQuantity(cpu)}}}}
	api.Default(p)
	o, err := st.Create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Pod)
}

func startScheduling(t *testing.T, st *store.Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Scheduling{Store: st, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	}
}

// waitPods polls until cond holds for the pods in the store.
func waitPods(t *testing.T, st *store.Store, what string, cond func([]*api.Pod) bool) []*api.Pod {
	t.Helper()
	var pods []*api.Pod
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		objs, _, err := st.List(api.KindPod, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = pods[:0]
		for _, o := range objs {
			pods = append(pods, o.(*api.Pod))
		}
		if cond(pods) {
			return pods
		}
	}
	for _, p := range pods {
		t.Logf("pod %s node %q conditions %+v", p.Name, p.Spec.NodeName, p.Status.Conditions)
	}
	t.Fatalf("timed out waiting for %s", what)
	return nil
}

func boundCount(pods []*api.Pod) int {
	n := 0
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

func TestSchedulingBindsAndSpreads(t *testing.T) {
	st := newSchedStore(t)
	defer st.Close()
	for i := range 3 {
		schedNode(t, st, fmt.Sprintf("n%d", i), "2")
	}
	stop := startScheduling(t, st)
	defer stop()
	for i := range 6 {
		schedPod(t, st, fmt.Sprintf("web-%d", i), "500m")
	}
	pods := waitPods(t, st, "6 pods bound", func(ps []*api.Pod) bool { return boundCount(ps) == 6 })
	perNode := map[string]int{}
	for _, p := range pods {
		perNode[p.Spec.NodeName]++
		if c := podCondition(p, api.PodScheduled); c == nil || c.Status != api.ConditionTrue {
			t.Errorf("pod %s bound without PodScheduled=True: %+v", p.Name, p.Status.Conditions)
		}
	}
	for n, c := range perNode {
		if c != 2 {
			t.Errorf("LeastAllocated should spread 6 pods 2 per node; got %v (node %s)", perNode, n)
		}
	}
}

func TestSchedulingReportsWhyAPodIsPending(t *testing.T) {
	ctx := context.Background()
	st := newSchedStore(t)
	defer st.Close()
	for i := range 3 {
		schedNode(t, st, fmt.Sprintf("n%d", i), "2")
	}
	stop := startScheduling(t, st)
	defer stop()
	big := schedPod(t, st, "big", "8")
	const want = "0/3 nodes are available: 3 Insufficient cpu."
	waitPods(t, st, "PodScheduled=False", func(ps []*api.Pod) bool {
		c := podCondition(ps[0], api.PodScheduled)
		return c != nil && c.Status == api.ConditionFalse && c.Reason == api.PodReasonUnschedulable && c.Message == want
	})
	evKey := store.Key{Kind: api.KindEvent, Namespace: "default", Name: "big.failedscheduling"}
	o, err := st.Get(evKey)
	if err != nil {
		t.Fatalf("no FailedScheduling event: %v", err)
	}
	ev := o.(*api.Event)
	if ev.Reason != ReasonFailedScheduling || ev.Message != want || ev.Type != api.EventTypeWarning ||
		ev.InvolvedObject.Name != "big" || ev.InvolvedObject.UID != big.UID || ev.Count != 1 {
		t.Fatalf("event %+v", ev)
	}

	// A node that fits joins: the parked pod is retried at once and lands.
	schedNode(t, st, "huge", "16")
	pods := waitPods(t, st, "big bound", func(ps []*api.Pod) bool { return boundCount(ps) == 1 })
	if pods[0].Spec.NodeName != "huge" {
		t.Fatalf("bound to %s", pods[0].Spec.NodeName)
	}
	// Deleting the pod (for good: no agent here to confirm a graceful
	// delete) deletes its event.
	if res, err := st.Batch(ctx, []store.Op{forceDeleteOp(big)}); err != nil || res[0].Err != nil {
		t.Fatalf("delete: %v %v", err, res)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if _, err := st.Get(evKey); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event of a deleted pod remains")
		}
	}
}

// racingStore holds back the first binding write until a second one
// arrives, so two schedulers both place pods on a node they each believe
// empty, and counts the bindings the store turned down.
type racingStore struct {
	*store.Store
	mu       sync.Mutex
	waiting  int
	release  chan struct{}
	rejected int
	log      []string
}

func (r *racingStore) Batch(ctx context.Context, ops []store.Op) ([]store.Result, error) {
	if len(ops) > 0 && ops[0].Type == store.OpBind {
		r.mu.Lock()
		r.waiting++
		if r.waiting == 2 {
			close(r.release)
		}
		r.mu.Unlock()
		select {
		case <-r.release:
		case <-time.After(5 * time.Second):
		}
	}
	res, err := r.Store.Batch(ctx, ops)
	r.mu.Lock()
	if len(ops) > 0 && ops[0].Type == store.OpBind {
		var errs []error
		for _, x := range res {
			errs = append(errs, x.Err)
		}
		r.log = append(r.log, fmt.Sprintf("bind batch of %d (%s...): err %v, results %v", len(ops), ops[0].Key.Name, err, errs))
	}
	for _, x := range res {
		if errors.Is(x.Err, store.ErrConflict) {
			r.rejected++
		}
	}
	r.mu.Unlock()
	return res, err
}

// TestSchedulingNeverOvercommits runs two schedulers at once on one store,
// as after a leader change the old leader has not noticed yet: each binds
// pods to a node it believes empty, and the store's re-check inside the
// FSM turns the loser's bindings down.
func TestSchedulingNeverOvercommits(t *testing.T) {
	st := newSchedStore(t)
	defer st.Close()
	race := &racingStore{Store: st, release: make(chan struct{})}
	schedNode(t, st, "only", "10")
	for i := range 30 {
		schedPod(t, st, fmt.Sprintf("p-%02d", i), "1")
	}
	var dones []chan error
	ctx, cancel := context.WithCancel(context.Background())
	for range 2 {
		c := &Scheduling{Store: race, Log: slog.New(slog.DiscardHandler)}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		dones = append(dones, done)
	}
	defer func() {
		cancel()
		for _, d := range dones {
			if err := <-d; err != nil {
				t.Error(err)
			}
		}
	}()
	waitPods(t, st, "10 pods bound and 20 reported unschedulable", func(ps []*api.Pod) bool {
		unsched := 0
		for _, p := range ps {
			if c := podCondition(p, api.PodScheduled); p.Spec.NodeName == "" && c != nil && c.Status == api.ConditionFalse {
				unsched++
			}
		}
		return boundCount(ps) == 10 && unsched == 20
	})
	// The loser's batch may still be on its way back.
	var rejected int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		race.mu.Lock()
		rejected = race.rejected
		race.mu.Unlock()
		if rejected >= 10 {
			break
		}
	}
	if rejected < 10 {
		t.Fatalf("the two schedulers did not race (%d bindings rejected; want ≥ 10): %v", rejected, race.log)
	}
	t.Logf("%d racing bindings rejected by the store", rejected)
}
