package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// benchLabel marks every Deployment and pod this program creates.
const benchLabel = "skiff-bench"

// podTimes is when the pod watch first showed a pod in each state.
type podTimes struct {
	seen, bound, running, ready, gone time.Time
}

// podRecord is one pod's timeline and its latest state.
type podRecord struct {
	app  string // its Deployment (label app)
	t    podTimes
	last *api.Pod
}

// tracker follows this program's pods through one watch and records when
// each reached each state. Its waits are woken by every event.
type tracker struct {
	w       *client.Watch
	mu      sync.Mutex
	pods    map[string]*podRecord // by namespace/name, gone ones included
	changed chan struct{}
	done    chan struct{}
}

func trackPods(ctx context.Context, c *client.Client) (*tracker, error) {
	w, err := c.Watch(ctx, api.KindPod, client.ListOptions{Namespace: "default", LabelSelector: benchLabel + "=podstart"}, "")
	if err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	t := &tracker{w: w, pods: map[string]*podRecord{}, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go t.run()
	return t, nil
}

func (t *tracker) run() {
	defer close(t.done)
	for e := range t.w.Events() {
		if e.Object == nil {
			continue
		}
		now := time.Now()
		p, ok := e.Object.(*api.Pod)
		if !ok {
			continue
		}
		key := p.Namespace + "/" + p.Name
		t.mu.Lock()
		r := t.pods[key]
		if r == nil {
			r = &podRecord{app: p.Labels["app"], t: podTimes{seen: now}}
			t.pods[key] = r
		}
		r.last = p
		if e.Type == client.Deleted {
			r.t.gone = now
		}
		if r.t.bound.IsZero() && p.Spec.NodeName != "" {
			r.t.bound = now
		}
		if r.t.running.IsZero() && containerRunning(p) {
			r.t.running = now
		}
		if r.t.ready.IsZero() && podReady(p) {
			r.t.ready = now
		}
		t.mu.Unlock()
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// stop ends the watch and waits for its goroutine.
func (t *tracker) stop() {
	t.w.Stop()
	<-t.done
}

// containerRunning: every container of the pod has started.
func containerRunning(p *api.Pod) bool {
	cs := p.Status.ContainerStatuses
	if len(cs) == 0 {
		return false
	}
	for _, c := range cs {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

func podReady(p *api.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == api.PodReady {
			return c.Status == api.ConditionTrue
		}
	}
	return false
}

// app returns the records of a Deployment's pods (copies).
func (t *tracker) app(name string) []podRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []podRecord
	for _, r := range t.pods {
		if r.app == name {
			out = append(out, *r)
		}
	}
	return out
}

// waitFor waits until cond, called with the tracker locked on every
// event, holds; status describes progress for the error and the periodic
// progress line.
func (t *tracker) waitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		t.mu.Lock()
		ok, status := cond()
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-t.changed:
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "#   %s: %s\n", what, status)
		case <-deadline.C:
			return fmt.Errorf("%s: not reached after %v: %s (watch: %v)", what, timeout, status, t.w.Err())
		case <-t.done:
			return fmt.Errorf("%s: the pod watch ended: %v", what, t.w.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitReady waits until want pods of app are Ready and returns when the
// last of them became Ready.
func (t *tracker) waitReady(ctx context.Context, app string, want int, timeout time.Duration) (time.Time, error) {
	var last time.Time
	err := t.waitFor(ctx, app+": "+fmt.Sprint(want)+" pods Ready", timeout, func() (bool, string) {
		ready, total := 0, 0
		last = time.Time{}
		var example *api.Pod
		for _, r := range t.pods {
			if r.app != app || !r.t.gone.IsZero() {
				continue
			}
			total++
			if !r.t.ready.IsZero() {
				ready++
				if r.t.ready.After(last) {
					last = r.t.ready
				}
			} else {
				example = r.last
			}
		}
		return ready >= want, fmt.Sprintf("%d/%d Ready of %d pods%s", ready, want, total, describe(example))
	})
	return last, err
}

// waitGone waits until app has no pods left and returns when the last
// disappeared.
func (t *tracker) waitGone(ctx context.Context, app string, timeout time.Duration) (time.Time, error) {
	var last time.Time
	err := t.waitFor(ctx, app+": pods gone", timeout, func() (bool, string) {
		left := 0
		last = time.Time{}
		var example *api.Pod
		for _, r := range t.pods {
			if r.app != app {
				continue
			}
			if r.t.gone.IsZero() {
				left++
				example = r.last
			} else if r.t.gone.After(last) {
				last = r.t.gone
			}
		}
		return left == 0, fmt.Sprintf("%d pods left%s", left, describe(example))
	})
	return last, err
}

// describe summarises a pod's state for progress and error messages.
func describe(p *api.Pod) string {
	if p == nil {
		return ""
	}
	s := fmt.Sprintf("; e.g. %s: node %q, phase %s", p.Name, p.Spec.NodeName, p.Status.Phase)
	if p.DeletionTimestamp != nil {
		s += ", terminating"
	}
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			s += fmt.Sprintf(", %s waiting: %s %s", c.Name, c.State.Waiting.Reason, c.State.Waiting.Message)
		case c.State.Terminated != nil:
			s += fmt.Sprintf(", %s terminated: %s (exit %d)", c.Name, c.State.Terminated.Reason, c.State.Terminated.ExitCode)
		case c.State.Running != nil:
			s += fmt.Sprintf(", %s running (ready %v)", c.Name, c.Ready)
		}
	}
	return s
}
