package probe

import (
	"context"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Clock is the Manager's time source, injected so tests drive periods and
// delays; nodeagent.RealClock satisfies it.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config holds the Manager's dependencies; every field is optional.
type Config struct {
	// Clock schedules probes; nil is the wall clock.
	Clock Clock
	// Execer runs exec probes in containers; nil makes them fail with
	// "probe errored".
	Execer runtime.Execer
	// Dial opens the connections of httpGet and tcpSocket probes; nil
	// dials from the agent's own network namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// UserAgent of HTTP probes; empty is DefaultUserAgent.
	UserAgent string
	// Logger gets a line per result change; nil discards.
	Logger *slog.Logger
	// Metrics records every probe run; nil records nothing.
	Metrics *Metrics
	// DisableFastStart makes readiness wait a whole period after a
	// failure before the container's first success, as the kubelet does.
	DisableFastStart bool
}

// fastStart is the first retry delay of readiness before a container's
// first success; it doubles up to the probe's period.
const fastStart = 10 * time.Millisecond

// updateBuffer is how many updates wait for the agent before workers
// block.
const updateBuffer = 256

// Manager runs the probes of a node's pods. Its methods are safe for
// concurrent use.
type Manager struct {
	clock     Clock
	log       *slog.Logger
	metrics   *Metrics
	prober    prober
	fastStart bool
	updates   chan Update
	// idleHook, for tests, is called by a worker about to wait: until due,
	// or (zero due) only for a change.
	idleHook func(k Kind, id runtime.ContainerID, due time.Time)

	mu         sync.Mutex
	pods       map[api.UID]*podEntry
	containers map[runtime.ContainerID]*containerEntry
	stopped    bool
	wg         sync.WaitGroup // every worker
	closeOnce  sync.Once
}

// podEntry is a pod the Manager probes.
type podEntry struct {
	uid         api.UID
	ref         string // namespace/name, for logs
	ip          string
	terminating bool
	// current is each container's running container ("" while none).
	current map[string]runtime.ContainerID
	// ids are the pod's entries in Manager.containers.
	ids     map[runtime.ContainerID]bool
	workers map[workerKey]*worker
}

type workerKey struct {
	container string
	kind      Kind
}

// containerEntry holds the results of one running container; a container
// has a result for each kind of probe it has.
type containerEntry struct {
	pod       api.UID
	name      string
	startedAt time.Time
	results   map[Kind]Result
}

// NewManager returns a Manager with no pods.
func NewManager(cfg Config) *Manager {
	m := &Manager{
		clock:      cfg.Clock,
		log:        cfg.Logger,
		metrics:    cfg.Metrics,
		prober:     newChecker(cfg),
		fastStart:  !cfg.DisableFastStart,
		updates:    make(chan Update, updateBuffer),
		pods:       map[api.UID]*podEntry{},
		containers: map[runtime.ContainerID]*containerEntry{},
	}
	if m.clock == nil {
		m.clock = wallClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return m
}

// Updates delivers every change of a probe result (from the initial
// values: not ready, alive, startup unknown). The agent must keep reading
// it: workers wait while it is full. It is closed by Stop. After RemovePod
// returns, no update about that pod is sent any more.
func (m *Manager) Updates() <-chan Update { return m.updates }

// AddPod starts probing a pod, or brings the Manager up to date with it:
// call it again whenever one of its containers starts, restarts (a new
// ID: its results start over) or stops (an empty ID: its probes pause),
// and when its IP changes or it starts terminating. Containers without
// probes are tracked too, so Started and Ready answer for them.
func (m *Manager) AddPod(p Pod) {
	var stale []*worker
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	pe := m.pods[p.UID]
	if pe == nil {
		pe = &podEntry{uid: p.UID, current: map[string]runtime.ContainerID{}, ids: map[runtime.ContainerID]bool{},
			workers: map[workerKey]*worker{}}
		m.pods[p.UID] = pe
	}
	pe.ref = p.Namespace + "/" + p.Name
	pe.ip = p.IP
	pe.terminating = p.Terminating

	wanted := map[workerKey]bool{}
	live := map[runtime.ContainerID]bool{}
	names := map[string]bool{}
	for i := range p.Containers {
		c := &p.Containers[i]
		name := c.Spec.Name
		names[name] = true
		pe.current[name] = c.ID
		if c.ID != "" {
			live[c.ID] = true
			ce := m.containers[c.ID]
			if ce == nil {
				started := c.StartedAt
				if started.IsZero() {
					started = m.clock.Now() // unknown: from when it is first seen
				}
				ce = &containerEntry{pod: p.UID, name: name, startedAt: started, results: map[Kind]Result{}}
				m.containers[c.ID] = ce
				pe.ids[c.ID] = true
			}
			for _, k := range kinds {
				if _, ok := ce.results[k]; !ok && probeFor(&c.Spec, k) != nil {
					ce.results[k] = initial(k)
					if (k == Readiness && c.WasReady) || (k == Startup && c.WasStarted) {
						ce.results[k] = Success
					}
				}
			}
		}
		for _, k := range kinds {
			spec := probeFor(&c.Spec, k)
			if spec == nil {
				continue
			}
			key := workerKey{name, k}
			wanted[key] = true
			sp := withDefaults(*spec)
			w := pe.workers[key]
			if w != nil && (!reflect.DeepEqual(w.spec, sp) || !reflect.DeepEqual(w.ports, c.Spec.Ports)) {
				w.cancel() // under mu: a stale worker records nothing more
				stale = append(stale, w)
				w = nil
			}
			if w == nil {
				w = m.newWorker(pe, name, k, sp, c.Spec.Ports)
				pe.workers[key] = w
				m.wg.Add(1)
				go w.run()
			}
			w.poke()
		}
	}
	for key, w := range pe.workers {
		if !wanted[key] {
			w.cancel()
			stale = append(stale, w)
			delete(pe.workers, key)
		}
	}
	for name := range pe.current {
		if !names[name] {
			delete(pe.current, name)
		}
	}
	// Results of containers that are no longer current: the one a
	// restart replaced, one that exited.
	for id := range pe.ids {
		if !live[id] {
			delete(m.containers, id)
			delete(pe.ids, id)
		}
	}
	m.mu.Unlock()
	for _, w := range stale {
		<-w.done
	}
}

// RemovePod stops probing a pod and forgets its results. It returns once
// the pod's workers have stopped (a probe in flight is cancelled).
func (m *Manager) RemovePod(uid api.UID) {
	m.mu.Lock()
	pe := m.pods[uid]
	if pe == nil {
		m.mu.Unlock()
		return
	}
	delete(m.pods, uid)
	for id := range pe.ids {
		delete(m.containers, id)
	}
	for _, w := range pe.workers {
		w.cancel()
	}
	m.mu.Unlock()
	for _, w := range pe.workers {
		<-w.done
	}
}

// Stop stops every worker, waits for them and closes Updates. The Manager
// ignores AddPod afterwards.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	for _, pe := range m.pods {
		for _, w := range pe.workers {
			w.cancel()
		}
	}
	m.pods = map[api.UID]*podEntry{}
	m.containers = map[runtime.ContainerID]*containerEntry{}
	m.mu.Unlock()
	m.wg.Wait()
	m.closeOnce.Do(func() { close(m.updates) })
}

// Get returns container id's current result for a kind of probe; ok is
// false if the Manager does not know the container (not added, or no
// longer current) or it has no probe of that kind.
func (m *Manager) Get(id runtime.ContainerID, kind Kind) (r Result, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ce := m.containers[id]
	if ce == nil {
		return Unknown, false
	}
	r, ok = ce.results[kind]
	return r, ok
}

// Started reports whether container id has started: it has no startup
// probe, or that probe succeeded. A container the Manager does not know
// has not.
func (m *Manager) Started(id runtime.ContainerID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ce := m.containers[id]
	return ce != nil && ce.started()
}

// Ready reports whether container id is ready to serve: it has started
// and has no readiness probe, or that probe's result is Success. A
// container the Manager does not know is not ready.
func (m *Manager) Ready(id runtime.ContainerID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ce := m.containers[id]
	if ce == nil || !ce.started() {
		return false
	}
	r, ok := ce.results[Readiness]
	return !ok || r == Success
}

func (ce *containerEntry) started() bool {
	r, ok := ce.results[Startup]
	return !ok || r == Success
}

// view is what a worker needs to know about its container now.
type view struct {
	id          runtime.ContainerID
	startedAt   time.Time
	podIP       string
	terminating bool
	started     bool
}

// view returns w's container as the Manager knows it.
func (m *Manager) view(w *worker) view {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := view{podIP: w.pe.ip, terminating: w.pe.terminating}
	v.id = w.pe.current[w.container]
	if ce := m.containers[v.id]; ce != nil {
		v.startedAt = ce.startedAt
		v.started = ce.started()
	} else {
		v.id = ""
	}
	return v
}

// record stores a verdict that crossed its threshold and publishes it if
// it changed the result. A worker that was stopped, or a container that is
// no longer current, records nothing.
func (m *Manager) record(w *worker, id runtime.ContainerID, out outcome) {
	m.mu.Lock()
	ce := m.containers[id]
	if w.ctx.Err() != nil || ce == nil || ce.pod != w.pe.uid {
		m.mu.Unlock()
		return
	}
	prev := ce.results[w.kind]
	if prev == out.result {
		m.mu.Unlock()
		return
	}
	ce.results[w.kind] = out.result
	ref := w.pe.ref
	if w.kind == Startup && out.result == Success {
		// Liveness and readiness begin now, not at their next tick.
		for key, sib := range w.pe.workers {
			if key.container == w.container && sib != w {
				sib.poke()
			}
		}
	}
	m.mu.Unlock()

	u := Update{
		PodUID:      w.pe.uid,
		Container:   w.container,
		ContainerID: id,
		Kind:        w.kind,
		Result:      out.result,
		Message:     message(w.kind, out),
	}
	m.log.Info("probe result changed", "pod", ref, "container", w.container, "containerID", string(id),
		"probe", string(w.kind), "result", out.result.String(), "message", u.Message)
	select {
	case m.updates <- u:
	case <-w.ctx.Done():
	}
}

// message is the kubelet's event text for an outcome: empty for a plain
// success.
func message(k Kind, out outcome) string {
	switch {
	case out.result == Success && out.warning:
		return string(k) + " probe warning: " + out.output
	case out.result == Success:
		return ""
	case out.errored:
		return string(k) + " probe errored: " + out.output
	default:
		return string(k) + " probe failed: " + out.output
	}
}
