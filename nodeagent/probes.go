package nodeagent

import (
	"context"
	"strings"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/probe"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// probe brings the prober up to date with a pod after a sync (its running
// containers, its IP) and fills in their verdicts: a running container is
// ready and started only as its probes say (at once when it has none).
func (a *Agent) probe(ps *podState, pod *api.Pod, obs observation) {
	if a.cfg.SimulatedProbes {
		for name, o := range obs.containers {
			if o.cur != nil && o.cur.State == runtime.ContainerRunning {
				o.ready, o.started = true, true
				obs.containers[name] = o
			}
		}
		return
	}
	p := probe.Pod{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, Terminating: pod.DeletionTimestamp != nil}
	if obs.podIP.IsValid() {
		p.IP = obs.podIP.String()
	}
	for _, spec := range pod.Spec.Containers {
		c := probe.Container{Spec: spec}
		if o := obs.containers[spec.Name]; o.cur != nil && o.cur.State == runtime.ContainerRunning {
			c.ID, c.StartedAt = o.cur.ID, o.cur.StartedAt
			c.WasReady, c.WasStarted = reportedState(pod, spec.Name, o.cur.ID)
		}
		p.Containers = append(p.Containers, c)
	}
	a.probes.AddPod(p)
	for name, o := range obs.containers {
		if o.cur != nil && o.cur.State == runtime.ContainerRunning {
			o.ready, o.started = a.probes.Ready(o.cur.ID), a.probes.Started(o.cur.ID)
			obs.containers[name] = o
		}
	}
}

// reportedState is what the pod's last reported status says of container
// id: ready, started (false, false if it names another container).
func reportedState(pod *api.Pod, name string, id runtime.ContainerID) (ready, started bool) {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != name {
			continue
		}
		_, reported, _ := strings.Cut(cs.ContainerID, "://")
		if reported != string(id) || cs.State.Running == nil {
			return false, false
		}
		return cs.Ready, cs.Started != nil && *cs.Started
	}
	return false, false
}

// unhealthy reports a running container whose liveness or startup probe
// failed (for good: the failure threshold was reached).
func (a *Agent) unhealthy(id runtime.ContainerID) bool {
	if r, ok := a.probes.Get(id, probe.Liveness); ok && r == probe.Failure {
		return true
	}
	r, ok := a.probes.Get(id, probe.Startup)
	return ok && r == probe.Failure
}

// probeLoop wakes the worker of a pod whose probe result changed: its
// status (Ready) changes, or a container must be restarted.
func (a *Agent) probeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-a.probes.Updates():
			if !ok {
				return
			}
			a.mu.Lock()
			if ps := a.pods[u.PodUID]; ps != nil {
				a.kick(ctx, ps)
			}
			a.mu.Unlock()
		}
	}
}
