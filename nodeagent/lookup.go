package nodeagent

import (
	"context"
	"fmt"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	"github.com/skiffhq/skiff/nodeagent/server"
)

// lookupTimeout bounds the runtime reads of one Lookup.
const lookupTimeout = 5 * time.Second

var _ server.Containers = (*Agent)(nil)

// Lookup finds a container of a pod this node runs, for the agent's
// endpoint (logs, exec): its current instance, or with previous the one
// before it. It reads the runtime, not the workers' state, so it never
// races a pod's worker.
func (a *Agent) Lookup(namespace, name, container string, previous bool) (server.ContainerRef, error) {
	a.mu.Lock()
	var pod *api.Pod
	for _, ps := range a.pods {
		if ps.pod != nil && !ps.gone && ps.pod.Namespace == namespace && ps.pod.Name == name {
			pod = ps.pod
			break
		}
	}
	a.mu.Unlock()
	if pod == nil {
		return server.ContainerRef{}, server.ErrPodNotFound
	}
	inSpec := false
	for _, c := range pod.Spec.Containers {
		inSpec = inSpec || c.Name == container
	}
	if !inSpec {
		return server.ContainerRef{}, server.ErrContainerNotFound
	}

	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	sbs, err := a.rt.ListSandboxes(ctx)
	if err != nil {
		return server.ContainerRef{}, fmt.Errorf("list sandboxes: %w", err)
	}
	// Every sandbox of the pod: a replaced sandbox's containers count as
	// earlier instances.
	var all []runtime.Container
	for _, sb := range sbs {
		if sb.Pod.UID != pod.UID {
			continue
		}
		cs, err := a.rt.ListContainers(ctx, sb.ID)
		if err != nil {
			return server.ContainerRef{}, fmt.Errorf("list containers: %w", err)
		}
		for _, c := range cs {
			if c.Meta.Name == container {
				all = append(all, c)
			}
		}
	}
	// Newest first: by attempt, then creation.
	var cur, prev *runtime.Container
	for i := range all {
		c := &all[i]
		switch {
		case cur == nil || newer(c, cur):
			cur, prev = c, cur
		case prev == nil || newer(c, prev):
			prev = c
		}
	}
	pick := cur
	if previous {
		pick = prev
	}
	switch {
	case pick == nil && previous:
		return server.ContainerRef{}, server.ErrNoPrevious
	case pick == nil:
		return server.ContainerRef{}, server.ErrContainerNotStarted
	}
	return server.ContainerRef{
		ID:      pick.ID,
		LogPath: a.logPath(pod, container, pick.Meta.Attempt),
		Running: pick.State == runtime.ContainerRunning,
	}, nil
}

func newer(a, b *runtime.Container) bool {
	if a.Meta.Attempt != b.Meta.Attempt {
		return a.Meta.Attempt > b.Meta.Attempt
	}
	return a.CreatedAt.After(b.CreatedAt)
}
