package probe

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// worker runs one probe of one container of a pod, for each container
// that runs under that name in turn.
type worker struct {
	m         *Manager
	pe        *podEntry // read under m.mu
	container string
	kind      Kind
	spec      api.Probe // with defaults
	ports     []api.ContainerPort

	wake   chan struct{} // the container or its pod changed
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *Manager) newWorker(pe *podEntry, container string, k Kind, spec api.Probe, ports []api.ContainerPort) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{
		m: m, pe: pe, container: container, kind: k, spec: spec, ports: ports,
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
}

// poke wakes the worker to look at its container again.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run probes until the worker is cancelled. Per container it keeps the
// kubelet's state: the last verdict and how many times in a row it came,
// and whether it holds after a liveness or startup failure.
func (w *worker) run() {
	defer w.m.wg.Done()
	defer close(w.done)
	var (
		cur       runtime.ContainerID
		next      time.Time // when the next probe is due
		last      Result
		run       int
		onHold    bool
		succeeded bool          // this container passed this probe once
		retry     time.Duration // fast start: the next retry delay
	)
	for {
		v := w.m.view(w)
		if v.id != cur {
			cur = v.id
			next = v.startedAt.Add(seconds(w.spec.InitialDelaySeconds))
			last, run, onHold, succeeded, retry = Unknown, 0, false, false, fastStart
		}
		var (
			due   <-chan time.Time
			dueAt time.Time
		)
		if w.active(v, onHold) {
			now := w.m.clock.Now()
			if wait := next.Sub(now); wait > 0 {
				due, dueAt = w.m.clock.After(wait), next
			} else {
				out, err := w.probe(v)
				if w.ctx.Err() != nil {
					return
				}
				if err == nil {
					if out.result == last {
						run++
					} else {
						last, run = out.result, 1
					}
					threshold := w.spec.FailureThreshold
					if out.result == Success {
						threshold = w.spec.SuccessThreshold
						succeeded = true
					}
					if run >= int(threshold) {
						w.m.record(w, cur, out)
						if out.result == Failure && (w.kind == Liveness || w.kind == Startup) {
							// The agent restarts the container; probe the
							// next one, not this one as it stops.
							onHold, run = true, 0
						}
					}
				}
				step := seconds(w.spec.PeriodSeconds)
				if w.fastStart() && !succeeded {
					step = min(retry, step)
					retry *= 2
				}
				next = now.Add(step)
				continue
			}
		}
		if w.m.idleHook != nil {
			w.m.idleHook(w.kind, cur, dueAt)
		}
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		case <-due:
		}
	}
}

// active says whether the probe runs for the container as it is now.
func (w *worker) active(v view, onHold bool) bool {
	if v.id == "" || onHold {
		return false
	}
	switch w.kind {
	case Startup:
		return !v.started && !v.terminating
	case Liveness:
		return v.started && !v.terminating
	default: // readiness goes on while the pod terminates
		return v.started
	}
}

func (w *worker) fastStart() bool {
	return w.m.fastStart && w.kind == Readiness && w.spec.SuccessThreshold == 1
}

// probe runs the probe once against v and records its metrics.
func (w *worker) probe(v view) (outcome, error) {
	start := time.Now()
	out, err := w.m.prober.probe(w.ctx, target{
		kind: w.kind, spec: w.spec, podIP: v.podIP, containerID: v.id, ports: w.ports,
	})
	debug := w.m.log.Enabled(w.ctx, slog.LevelDebug)
	if err != nil {
		if !errors.Is(err, errNotNow) {
			err = errors.Join(errNotNow, err)
		}
		if debug {
			w.m.log.Debug("probe skipped", "pod", w.ref(), "container", w.container, "probe", string(w.kind), "reason", err.Error())
		}
		return out, err
	}
	w.m.metrics.observe(w.kind, out, time.Since(start))
	if debug && out.result == Failure {
		w.m.log.Debug("probe failed", "pod", w.ref(), "container", w.container, "probe", string(w.kind), "message", message(w.kind, out))
	}
	return out, nil
}

func (w *worker) ref() string {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	return w.pe.ref
}
