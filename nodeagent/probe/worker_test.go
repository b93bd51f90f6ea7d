package probe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// call is one probe run the scripted prober waits to be told the result of.
type call struct {
	t     target
	at    time.Time
	ctx   context.Context
	reply chan reply
}

type reply struct {
	out outcome
	err error
}

// scriptProber hands every probe run to the test.
type scriptProber struct {
	clock *fakeClock
	calls chan *call
}

func (p *scriptProber) probe(ctx context.Context, t target) (outcome, error) {
	c := &call{t: t, at: p.clock.Now(), ctx: ctx, reply: make(chan reply, 1)}
	select {
	case p.calls <- c:
	case <-ctx.Done():
		return outcome{}, fmt.Errorf("%w: %w", errNotNow, ctx.Err())
	}
	select {
	case r := <-c.reply:
		return r.out, r.err
	case <-ctx.Done():
		return outcome{}, fmt.Errorf("%w: %w", errNotNow, ctx.Err())
	}
}

type harness struct {
	t     *testing.T
	clock *fakeClock
	p     *scriptProber
	m     *Manager
	stash []*call // calls of another kind than the one awaited

	mu          sync.Mutex
	idle        map[idleKey]time.Time // what each worker waits for, last it said
	idleChanged chan struct{}         // closed and replaced on every report
}

type idleKey struct {
	kind Kind
	id   runtime.ContainerID
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	clock := newFakeClock()
	cfg.Clock = clock
	m := NewManager(cfg)
	p := &scriptProber{clock: clock, calls: make(chan *call)}
	m.prober = p
	h := &harness{t: t, clock: clock, p: p, m: m, idle: map[idleKey]time.Time{}, idleChanged: make(chan struct{})}
	m.idleHook = func(k Kind, id runtime.ContainerID, due time.Time) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.idle[idleKey{k, id}] = due
		close(h.idleChanged)
		h.idleChanged = make(chan struct{})
	}
	t.Cleanup(m.Stop)
	return h
}

// awaitIdle waits until the worker of kind k for container id reports
// that it waits for its timer due at (or, with a zero at, only for a
// change): then it does nothing until the clock reaches at or it is
// poked. Each report satisfies one awaitIdle.
func (h *harness) awaitIdle(k Kind, id runtime.ContainerID, at time.Time) {
	h.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		due, ok := h.idle[idleKey{k, id}]
		changed := h.idleChanged
		h.mu.Unlock()
		if ok && due.Equal(at) {
			h.mu.Lock()
			delete(h.idle, idleKey{k, id})
			h.mu.Unlock()
			return
		}
		select {
		case <-changed:
		case <-timeout:
			h.t.Fatalf("the %s worker of %s does not wait for %v (it waits for %v; clock at %v)", k, id, at, due, h.clock.Now())
		}
	}
}

// next waits for the next probe run of kind k.
func (h *harness) next(k Kind) *call {
	h.t.Helper()
	for i, c := range h.stash {
		if c.t.kind == k {
			h.stash = append(h.stash[:i], h.stash[i+1:]...)
			return c
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-h.p.calls:
			if c.t.kind == k {
				return c
			}
			h.stash = append(h.stash, c)
		case <-timeout:
			h.t.Fatalf("no %s probe (clock at %v)", k, h.clock.Now())
		}
	}
}

// answer waits for the next run of kind k and gives it a verdict.
func (h *harness) answer(k Kind, r Result, output string) *call {
	h.t.Helper()
	c := h.next(k)
	c.reply <- reply{out: outcome{result: r, output: output}}
	return c
}

// noCalls checks that no probe run is waiting (call it when the workers
// are parked).
func (h *harness) noCalls() {
	h.t.Helper()
	if len(h.stash) > 0 {
		h.t.Fatalf("unexpected %s probe at %v", h.stash[0].t.kind, h.stash[0].at)
	}
	select {
	case c := <-h.p.calls:
		h.t.Fatalf("unexpected %s probe at %v", c.t.kind, c.at)
	default:
	}
}

func (h *harness) update() Update {
	h.t.Helper()
	select {
	case u := <-h.m.Updates():
		return u
	case <-time.After(10 * time.Second):
		h.t.Fatal("no update")
	}
	return Update{}
}

func (h *harness) expectUpdate(want Update) {
	h.t.Helper()
	if got := h.update(); got != want {
		h.t.Fatalf("update %+v, want %+v", got, want)
	}
}

func (h *harness) noUpdate() {
	h.t.Helper()
	select {
	case u := <-h.m.Updates():
		h.t.Fatalf("unexpected update %+v", u)
	default:
	}
}

// probeSpec is a probe whose handler the scripted prober ignores.
func probeSpec(delay, period, success, failure int32) *api.Probe {
	return &api.Probe{
		ProbeHandler:        api.ProbeHandler{Exec: &api.ExecAction{Command: []string{"check"}}},
		InitialDelaySeconds: delay, PeriodSeconds: period, SuccessThreshold: success, FailureThreshold: failure,
	}
}

func testPod(ip string, cs ...Container) Pod {
	return Pod{UID: "uid-1", Namespace: "default", Name: "web-1", IP: ip, Containers: cs}
}

func sec(n int) time.Duration { return time.Duration(n) * time.Second }

func TestReadinessThresholds(t *testing.T) {
	h := newHarness(t, Config{DisableFastStart: true})
	t0 := h.clock.Now()
	c := Container{Spec: api.Container{Name: "web", ReadinessProbe: probeSpec(5, 10, 1, 3)}, ID: "id1", StartedAt: t0}
	h.m.AddPod(testPod("10.0.0.5", c))

	if r, ok := h.m.Get("id1", Readiness); !ok || r != Failure || h.m.Ready("id1") || !h.m.Started("id1") {
		t.Fatalf("new container: readiness %v %v, ready %v, started %v; want Failure, not ready, started", r, ok, h.m.Ready("id1"), h.m.Started("id1"))
	}
	if _, ok := h.m.Get("id1", Liveness); ok {
		t.Error("Get reports a liveness result for a container without a liveness probe")
	}
	// Nothing before initialDelaySeconds.
	h.awaitIdle(Readiness, "id1", t0.Add(sec(5)))
	h.noCalls()
	h.clock.Advance(sec(5))
	if c := h.answer(Readiness, Success, "fine"); !c.at.Equal(t0.Add(sec(5))) || c.t.podIP != "10.0.0.5" || c.t.containerID != "id1" {
		t.Fatalf("first probe at %v of %s/%s", c.at, c.t.podIP, c.t.containerID)
	}
	h.expectUpdate(Update{PodUID: "uid-1", Container: "web", ContainerID: "id1", Kind: Readiness, Result: Success})
	if !h.m.Ready("id1") {
		t.Error("not ready after a success")
	}

	// Two failures stay under failureThreshold 3; the third flips it.
	h.awaitIdle(Readiness, "id1", t0.Add(sec(15)))
	for i, at := range []int{25, 35} {
		h.clock.Advance(sec(10))
		h.answer(Readiness, Failure, "HTTP probe failed with statuscode: 503")
		h.awaitIdle(Readiness, "id1", t0.Add(sec(at)))
		h.noUpdate()
		if !h.m.Ready("id1") {
			t.Fatalf("not ready after %d failures", i+1)
		}
	}
	h.clock.Advance(sec(10))
	h.answer(Readiness, Failure, "HTTP probe failed with statuscode: 503")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "web", ContainerID: "id1", Kind: Readiness, Result: Failure,
		Message: "Readiness probe failed: HTTP probe failed with statuscode: 503"})
	if h.m.Ready("id1") {
		t.Error("ready after failureThreshold failures")
	}

	// A success in between resets the count.
	h.awaitIdle(Readiness, "id1", t0.Add(sec(45)))
	h.clock.Advance(sec(10))
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "web", ContainerID: "id1", Kind: Readiness, Result: Success})
	for _, at := range []int{55, 65} {
		h.awaitIdle(Readiness, "id1", t0.Add(sec(at)))
		h.clock.Advance(sec(10))
		h.answer(Readiness, Failure, "x")
	}
	h.awaitIdle(Readiness, "id1", t0.Add(sec(75)))
	h.clock.Advance(sec(10))
	h.answer(Readiness, Success, "")
	h.awaitIdle(Readiness, "id1", t0.Add(sec(85)))
	h.clock.Advance(sec(10))
	h.answer(Readiness, Failure, "x")
	h.awaitIdle(Readiness, "id1", t0.Add(sec(95)))
	h.noUpdate()
}

func TestReadinessSuccessThreshold(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	c := Container{Spec: api.Container{Name: "web", ReadinessProbe: probeSpec(0, 2, 2, 1)}, ID: "id1", StartedAt: t0}
	h.m.AddPod(testPod("10.0.0.5", c))
	h.answer(Readiness, Success, "")
	// successThreshold > 1: no fast start, a whole period to the next.
	h.awaitIdle(Readiness, "id1", t0.Add(sec(2)))
	h.noUpdate()
	h.clock.Advance(sec(2))
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "web", ContainerID: "id1", Kind: Readiness, Result: Success})
}

func TestReadinessFastStart(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	c := Container{Spec: api.Container{Name: "web", ReadinessProbe: probeSpec(0, 1, 1, 3)}, ID: "id1", StartedAt: t0}
	h.m.AddPod(testPod("10.0.0.5", c))

	// Failures before the first success retry after 10, 20, 40, ...,
	// 640 ms, then the period (1 s).
	at := t0
	for _, step := range []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000} {
		c := h.answer(Readiness, Failure, "connection refused")
		if !c.at.Equal(at) {
			t.Fatalf("probe at +%v, want +%v", c.at.Sub(t0), at.Sub(t0))
		}
		at = at.Add(step * time.Millisecond)
		if step == 1000 {
			at = c.at.Add(sec(1))
		}
		h.awaitIdle(Readiness, "id1", at)
		h.clock.AdvanceTo(at)
	}
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "web", ContainerID: "id1", Kind: Readiness, Result: Success})
	// After the first success, the period.
	h.awaitIdle(Readiness, "id1", at.Add(sec(1)))
	h.noCalls()
}

func TestLivenessFailureHoldsUntilANewContainer(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	spec := api.Container{Name: "app", LivenessProbe: probeSpec(0, 10, 1, 3)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0}))
	if r, _ := h.m.Get("id1", Liveness); r != Success {
		t.Fatalf("new container's liveness %v, want Success", r)
	}
	for i := range 3 {
		if i > 0 {
			h.awaitIdle(Liveness, "id1", t0.Add(sec(10*i)))
			h.clock.Advance(sec(10))
		}
		h.answer(Liveness, Failure, "dial tcp 10.0.0.5:8080: connect: connection refused")
	}
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Liveness, Result: Failure,
		Message: "Liveness probe failed: dial tcp 10.0.0.5:8080: connect: connection refused"})
	// It holds: waits for a new container, with no timer.
	h.awaitIdle(Liveness, "id1", time.Time{})
	h.clock.Advance(sec(100))
	h.noCalls()

	// The agent restarts it: probing resumes on the new container only.
	t1 := h.clock.Now()
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id2", StartedAt: t1}))
	if c := h.answer(Liveness, Success, ""); c.t.containerID != "id2" || !c.at.Equal(t1) {
		t.Fatalf("probe of %s at %v, want id2 at %v", c.t.containerID, c.at, t1)
	}
	if _, ok := h.m.Get("id1", Liveness); ok {
		t.Error("the replaced container still has results")
	}
	if r, ok := h.m.Get("id2", Liveness); !ok || r != Success {
		t.Errorf("new container's liveness %v %v", r, ok)
	}
	h.awaitIdle(Liveness, "id2", t1.Add(sec(10)))
	h.noUpdate()
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	spec := api.Container{Name: "app",
		StartupProbe:   probeSpec(0, 1, 1, 5),
		LivenessProbe:  probeSpec(0, 10, 1, 3),
		ReadinessProbe: probeSpec(0, 10, 1, 3),
	}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0}))
	if r, _ := h.m.Get("id1", Startup); r != Unknown || h.m.Started("id1") || h.m.Ready("id1") {
		t.Fatalf("new container: startup %v, started %v, ready %v", r, h.m.Started("id1"), h.m.Ready("id1"))
	}
	for i := range 3 {
		if i > 0 {
			h.awaitIdle(Startup, "id1", t0.Add(sec(i)))
			h.clock.Advance(sec(1))
		}
		h.answer(Startup, Failure, "not yet")
	}
	h.awaitIdle(Startup, "id1", t0.Add(sec(3)))
	h.awaitIdle(Liveness, "id1", time.Time{})
	h.awaitIdle(Readiness, "id1", time.Time{})
	h.noCalls() // neither liveness nor readiness ran
	h.noUpdate()
	h.clock.Advance(sec(1))
	h.answer(Startup, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Startup, Result: Success})
	if !h.m.Started("id1") || h.m.Ready("id1") {
		t.Fatalf("after startup: started %v ready %v, want started, not ready", h.m.Started("id1"), h.m.Ready("id1"))
	}
	// Both begin at once, without waiting for a tick.
	now := h.clock.Now()
	if c := h.answer(Readiness, Success, ""); !c.at.Equal(now) {
		t.Errorf("readiness began at %v, want %v", c.at, now)
	}
	if c := h.answer(Liveness, Success, ""); !c.at.Equal(now) {
		t.Errorf("liveness began at %v, want %v", c.at, now)
	}
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Readiness, Result: Success})
	if !h.m.Ready("id1") {
		t.Error("not ready")
	}
	// The startup probe is done: only the other two run from now on.
	h.awaitIdle(Readiness, "id1", now.Add(sec(10)))
	h.awaitIdle(Liveness, "id1", now.Add(sec(10)))
	h.awaitIdle(Startup, "id1", time.Time{})
	h.noCalls()
	h.clock.Advance(sec(10))
	h.answer(Readiness, Success, "")
	h.answer(Liveness, Success, "")
	h.awaitIdle(Readiness, "id1", now.Add(sec(20)))
	h.awaitIdle(Liveness, "id1", now.Add(sec(20)))
	h.noCalls()
}

func TestStartupFailureHolds(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	spec := api.Container{Name: "app", StartupProbe: probeSpec(0, 1, 1, 2), ReadinessProbe: probeSpec(0, 1, 1, 1)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0}))
	h.answer(Startup, Failure, "no")
	h.awaitIdle(Startup, "id1", t0.Add(sec(1)))
	h.clock.Advance(sec(1))
	h.answer(Startup, Failure, "no")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Startup, Result: Failure,
		Message: "Startup probe failed: no"})
	if h.m.Started("id1") || h.m.Ready("id1") {
		t.Error("started or ready after the startup probe failed")
	}
	h.awaitIdle(Startup, "id1", time.Time{})
	h.awaitIdle(Readiness, "id1", time.Time{})
	h.noCalls()
	// On hold: a new container is probed from the start.
	h.clock.Advance(sec(60))
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id2", StartedAt: h.clock.Now()}))
	if c := h.answer(Startup, Success, ""); c.t.containerID != "id2" {
		t.Fatalf("probed %s, want id2", c.t.containerID)
	}
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id2", Kind: Startup, Result: Success})
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id2", Kind: Readiness, Result: Success})
	h.awaitIdle(Readiness, "id2", h.clock.Now().Add(sec(1)))
	h.awaitIdle(Startup, "id2", time.Time{})
	h.noCalls()
}

func TestTerminatingPodKeepsOnlyReadiness(t *testing.T) {
	h := newHarness(t, Config{DisableFastStart: true})
	t0 := h.clock.Now()
	spec := api.Container{Name: "app", LivenessProbe: probeSpec(0, 10, 1, 1), ReadinessProbe: probeSpec(0, 10, 1, 1)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0}))
	h.answer(Liveness, Success, "")
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Readiness, Result: Success})

	p := testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0})
	p.Terminating = true
	h.m.AddPod(p)
	h.awaitIdle(Readiness, "id1", t0.Add(sec(10)))
	h.clock.Advance(sec(10))
	h.answer(Readiness, Failure, "HTTP probe failed with statuscode: 503")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Readiness, Result: Failure,
		Message: "Readiness probe failed: HTTP probe failed with statuscode: 503"})
	h.awaitIdle(Readiness, "id1", t0.Add(sec(20)))
	h.awaitIdle(Liveness, "id1", time.Time{})
	h.noCalls() // no liveness probe of a terminating pod
	if r, _ := h.m.Get("id1", Liveness); r != Success {
		t.Errorf("liveness %v while terminating", r)
	}
}

func TestContainerNotRunningPausesProbes(t *testing.T) {
	h := newHarness(t, Config{})
	spec := api.Container{Name: "app", StartupProbe: probeSpec(0, 1, 1, 3), ReadinessProbe: probeSpec(0, 10, 1, 3)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec})) // created, not started
	if h.m.Ready("") || h.m.Started("") {
		t.Error("a container that does not run is ready or started")
	}
	h.awaitIdle(Startup, "", time.Time{})
	h.awaitIdle(Readiness, "", time.Time{})
	h.clock.Advance(sec(60))
	h.noCalls()
	t1 := h.clock.Now()
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t1}))
	h.answer(Startup, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Startup, Result: Success})
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Readiness, Result: Success})
	// It exits: probes pause and its results go.
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec}))
	if _, ok := h.m.Get("id1", Readiness); ok || h.m.Ready("id1") {
		t.Error("an exited container keeps its results")
	}
	h.awaitIdle(Startup, "", time.Time{})
	h.awaitIdle(Readiness, "", time.Time{})
	h.clock.Advance(sec(60))
	h.noCalls()
}

func TestTerminatingPodStopsStartupProbes(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	spec := api.Container{Name: "app", StartupProbe: probeSpec(0, 1, 1, 30)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0}))
	h.answer(Startup, Failure, "not yet")
	h.awaitIdle(Startup, "id1", t0.Add(sec(1)))
	p := testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: t0})
	p.Terminating = true
	h.m.AddPod(p)
	h.awaitIdle(Startup, "id1", time.Time{})
	h.clock.Advance(sec(60))
	h.noCalls()
	h.noUpdate()
}

func TestContainerWithoutProbesIsReadyOnceKnown(t *testing.T) {
	h := newHarness(t, Config{})
	if h.m.Ready("id1") {
		t.Error("an unknown container is ready")
	}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: api.Container{Name: "app"}, ID: "id1", StartedAt: h.clock.Now()}))
	if !h.m.Ready("id1") || !h.m.Started("id1") {
		t.Error("a running container without probes is not ready and started")
	}
	h.noCalls()
}

func TestSkippedProbesDoNotCount(t *testing.T) {
	h := newHarness(t, Config{})
	t0 := h.clock.Now()
	spec := api.Container{Name: "app", LivenessProbe: probeSpec(0, 10, 1, 2)}
	h.m.AddPod(testPod("", Container{Spec: spec, ID: "id1", StartedAt: t0}))
	h.answer(Liveness, Failure, "refused")
	h.awaitIdle(Liveness, "id1", t0.Add(sec(10)))
	h.clock.Advance(sec(10))
	c := h.next(Liveness)
	c.reply <- reply{err: fmt.Errorf("%w: the pod has no IP yet", errNotNow)}
	h.awaitIdle(Liveness, "id1", t0.Add(sec(20)))
	h.noUpdate() // one failure, one skip: under the threshold
	h.clock.Advance(sec(10))
	h.answer(Liveness, Failure, "refused")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Liveness, Result: Failure,
		Message: "Liveness probe failed: refused"})
}

func TestErroredProbeMessage(t *testing.T) {
	h := newHarness(t, Config{})
	spec := api.Container{Name: "app", LivenessProbe: probeSpec(0, 10, 1, 1)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: h.clock.Now()}))
	c := h.next(Liveness)
	c.reply <- reply{out: errored(errors.New(`port "http" is not among the container's ports`))}
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Liveness, Result: Failure,
		Message: `Liveness probe errored: port "http" is not among the container's ports`})
}

func TestRemovePodCancelsAndStops(t *testing.T) {
	h := newHarness(t, Config{})
	spec := api.Container{Name: "app", LivenessProbe: probeSpec(0, 10, 1, 1), ReadinessProbe: probeSpec(0, 10, 1, 1)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: h.clock.Now()}))
	inflight := h.next(Liveness) // never answered
	h.next(Readiness)            // never answered
	done := make(chan struct{})
	go func() {
		h.m.RemovePod("uid-1")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RemovePod did not return while a probe was in flight")
	}
	if inflight.ctx.Err() == nil {
		t.Error("the in-flight probe was not cancelled")
	}
	if _, ok := h.m.Get("id1", Liveness); ok || h.m.Ready("id1") {
		t.Error("results survive RemovePod")
	}
	h.clock.Advance(sec(60))
	h.noCalls()
	h.noUpdate()
	h.m.RemovePod("uid-1") // twice is fine
}

func TestSpecChangeRestartsTheWorker(t *testing.T) {
	h := newHarness(t, Config{DisableFastStart: true})
	t0 := h.clock.Now()
	c := Container{Spec: api.Container{Name: "app", ReadinessProbe: probeSpec(0, 10, 1, 1)}, ID: "id1", StartedAt: t0}
	h.m.AddPod(testPod("10.0.0.5", c))
	h.answer(Readiness, Failure, "x")
	h.awaitIdle(Readiness, "id1", t0.Add(sec(10)))
	c.Spec.ReadinessProbe = probeSpec(0, 3, 1, 1)
	h.m.AddPod(testPod("10.0.0.5", c))
	// The new worker probes at once (the container started long enough
	// ago), then every 3 s.
	h.answer(Readiness, Success, "")
	h.expectUpdate(Update{PodUID: "uid-1", Container: "app", ContainerID: "id1", Kind: Readiness, Result: Success})
	h.awaitIdle(Readiness, "id1", t0.Add(sec(3)))
	h.clock.Advance(sec(3))
	h.answer(Readiness, Success, "")
	// Removing the probe stops its worker.
	c.Spec.ReadinessProbe = nil
	h.m.AddPod(testPod("10.0.0.5", c))
	h.clock.Advance(sec(60))
	h.noCalls()
}

func TestStopClosesUpdates(t *testing.T) {
	h := newHarness(t, Config{})
	spec := api.Container{Name: "app", LivenessProbe: probeSpec(0, 10, 1, 1)}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id1", StartedAt: h.clock.Now()}))
	h.next(Liveness) // in flight
	stopped := make(chan struct{})
	go func() { h.m.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	if _, open := <-h.m.Updates(); open {
		t.Error("Updates still open after Stop")
	}
	h.m.AddPod(testPod("10.0.0.5", Container{Spec: spec, ID: "id2", StartedAt: h.clock.Now()}))
	h.noCalls()
	h.m.Stop() // twice is fine
}

var _ runtime.Execer = fakeExecer{}
