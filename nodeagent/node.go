package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	goruntime "runtime"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// Reasons of the node conditions, as the kubelet writes them.
const (
	reasonReady           = "KubeletReady"
	reasonMemoryOK        = "KubeletHasSufficientMemory"
	reasonDiskOK          = "KubeletHasNoDiskPressure"
	reasonPIDOK           = "KubeletHasSufficientPID"
	reasonNetworkNotReady = "NetworkNotReady"
	registerRetryMin      = 200 * time.Millisecond
	registerRetryMax      = 10 * time.Second
	heartbeatLogInterval  = 30 // consecutive failures between two warnings
)

// Register creates the Node, or updates it if it exists (an agent
// restarted, or a node re-joining under its old name): labels the node may
// set, and status (capacity, allocatable, addresses, conditions, node
// info). It retries until it succeeds, ctx ends, or the control plane
// refuses the node for good (a label it may not set, an invalid name).
func (a *Agent) Register(ctx context.Context) error {
	if a.rtName == "" {
		v, err := a.rt.Version(ctx)
		if err != nil {
			return fmt.Errorf("nodeagent: runtime version: %w", err)
		}
		a.rtName = v.Name
		if a.cfg.NodeInfo.ContainerRuntimeVersion == "" {
			a.cfg.NodeInfo.ContainerRuntimeVersion = v.Name + "://" + v.Version
		}
	}
	backoff := registerRetryMin
	for {
		// Alive before registered: the control plane may check liveness
		// of a node the moment it exists, before the heartbeat loop starts.
		// (The leader keeps heartbeats in memory by name; this one costs
		// nothing if the node is refused.)
		hctx, cancel := context.WithTimeout(ctx, a.cfg.HeartbeatPeriod)
		_ = a.c.Heartbeat(hctx, a.cfg.NodeName)
		cancel()
		n, err := a.register(ctx)
		if err == nil {
			a.setNode(n)
			a.log.Debug("node registered", "podCIDR", n.Spec.PodCIDR)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if terminal(err) {
			return fmt.Errorf("nodeagent: register node %s: %w", a.cfg.NodeName, err)
		}
		a.log.Warn("register node; retrying", "err", err, "in", backoff)
		if !a.sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, registerRetryMax)
	}
}

func (a *Agent) register(ctx context.Context) (*api.Node, error) {
	want := a.desiredNode()
	o, err := a.c.Create(ctx, want)
	if err == nil {
		return o.(*api.Node), nil
	}
	if !client.IsAlreadyExists(err) {
		return nil, err
	}
	o, err = a.c.Get(ctx, api.KindNode, "", a.cfg.NodeName)
	if err != nil {
		return nil, err
	}
	cur := o.(*api.Node)
	if changed := mergeLabels(cur.Labels, want.Labels); changed != nil {
		upd := *cur
		upd.Labels = changed
		o, err = a.c.Update(ctx, &upd)
		if err != nil {
			return nil, err
		}
		cur = o.(*api.Node)
	}
	st := *cur
	st.Status = want.Status
	st.Status.Conditions = mergeNodeConditions(cur.Status.Conditions, want.Status.Conditions)
	o, err = a.c.UpdateStatus(ctx, &st)
	if err != nil {
		return nil, err
	}
	return o.(*api.Node), nil
}

// mergeLabels returns cur with want applied, or nil if that changes
// nothing. Labels the agent does not set are left alone.
func mergeLabels(cur, want map[string]string) map[string]string {
	changed := false
	for k, v := range want {
		if old, ok := cur[k]; !ok || old != v {
			changed = true
			break
		}
	}
	if !changed {
		return nil
	}
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// mergeNodeConditions puts want's conditions in place of cur's of the same
// type, keeping the transition time of those whose status did not change
// and any condition someone else set.
func mergeNodeConditions(cur, want []api.NodeCondition) []api.NodeCondition {
	out := make([]api.NodeCondition, 0, len(cur)+len(want))
	byType := map[api.NodeConditionType]api.NodeCondition{}
	for _, c := range cur {
		byType[c.Type] = c
	}
	mine := map[api.NodeConditionType]bool{}
	for _, w := range want {
		if old, ok := byType[w.Type]; ok && old.Status == w.Status && old.LastTransitionTime != nil {
			w.LastTransitionTime = old.LastTransitionTime
		}
		mine[w.Type] = true
		out = append(out, w)
	}
	for _, c := range cur {
		if !mine[c.Type] {
			out = append(out, c)
		}
	}
	return out
}

func (a *Agent) desiredNode() *api.Node {
	labels := map[string]string{
		LabelHostname: a.cfg.NodeName,
		LabelOS:       goruntime.GOOS,
		LabelArch:     goruntime.GOARCH,
	}
	maps.Copy(labels, a.cfg.Labels)
	capacity := maps.Clone(a.cfg.Capacity)
	if capacity == nil {
		capacity = api.ResourceList{}
	}
	if _, ok := capacity[api.ResourcePods]; !ok {
		capacity[api.ResourcePods] = api.NewQuantity(DefaultMaxPods, api.DecimalSI)
	}
	alloc := maps.Clone(a.cfg.Allocatable)
	if alloc == nil {
		alloc = maps.Clone(capacity)
	}
	now := api.NewTime(a.clock.Now())
	cond := func(t api.NodeConditionType, s api.ConditionStatus, reason, msg string) api.NodeCondition {
		return api.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	n := &api.Node{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: string(api.KindNode)},
		ObjectMeta: api.ObjectMeta{Name: a.cfg.NodeName, Labels: labels},
		Status: api.NodeStatus{
			Capacity:    capacity,
			Allocatable: alloc,
			Addresses:   a.cfg.Addresses,
			NodeInfo:    a.cfg.NodeInfo,
			Conditions: []api.NodeCondition{
				cond(api.NodeMemoryPressure, api.ConditionFalse, reasonMemoryOK, "node has sufficient memory available"),
				cond(api.NodeDiskPressure, api.ConditionFalse, reasonDiskOK, "node has no disk pressure"),
				cond(api.NodePIDPressure, api.ConditionFalse, reasonPIDOK, "node has sufficient PID available"),
				cond(api.NodeReady, api.ConditionTrue, reasonReady, "skiff agent is posting ready status"),
			},
		},
	}
	if a.cfg.DaemonPort > 0 {
		n.Status.DaemonEndpoints = &api.NodeDaemonEndpoints{KubeletEndpoint: api.DaemonEndpoint{Port: a.cfg.DaemonPort}}
	}
	return n
}

// heartbeatLoop posts a heartbeat every period (jittered by ±10%, so
// thousands of nodes started together do not beat in step) until ctx ends.
// The client retries a failed heartbeat across servers (and after 429s)
// for up to two periods: under load a late heartbeat still counts, where
// giving up early and starting over would only queue again. The next beat
// is due a period after the previous one started, never later.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	period := a.cfg.HeartbeatPeriod
	failures := 0
	for {
		start := a.clock.Now()
		hctx, cancel := context.WithTimeout(ctx, 2*period)
		err := a.c.Heartbeat(hctx, a.cfg.NodeName)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			if failures%heartbeatLogInterval == 0 {
				a.log.Warn("heartbeat failed", "err", err, "consecutiveFailures", failures+1)
			}
			failures++
		case failures > 0:
			a.log.Info("heartbeats resumed", "after", failures)
			failures = 0
		}
		if err == nil {
			a.lastBeat.Store(a.clock.Now().UnixNano())
		}
		next := time.Duration(float64(period)*(0.9+0.2*rand.Float64())) - a.clock.Now().Sub(start)
		if !a.sleep(ctx, max(next, 0)) {
			return
		}
	}
}

// setReady sets the node's Ready condition (retrying conflicts a few
// times); the other conditions stay as they are.
func (a *Agent) setReady(ctx context.Context, status api.ConditionStatus, reason, msg string) error {
	var err error
	for range statusRetries {
		var o api.Object
		o, err = a.c.Get(ctx, api.KindNode, "", a.cfg.NodeName)
		if err != nil {
			return err
		}
		n := *o.(*api.Node)
		now := api.NewTime(a.clock.Now())
		n.Status.Conditions = mergeNodeConditions(n.Status.Conditions, []api.NodeCondition{{
			Type: api.NodeReady, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}})
		o, err = a.c.UpdateStatus(ctx, &n)
		if err == nil {
			a.setNode(o.(*api.Node))
			return nil
		}
		if !client.IsConflict(err) {
			return err
		}
	}
	return err
}
