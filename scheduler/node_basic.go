package scheduler

import "github.com/skiffhq/skiff/api"

// Well-known taint keys the node filters treat as implicit taints, so
// pods (DaemonSets) tolerating them may still land on such nodes.
const (
	TaintNodeUnschedulable = "node.kubernetes.io/unschedulable"
	TaintNodeNotReady      = "node.kubernetes.io/not-ready"
)

// Filter reasons of the node plugins.
const (
	ReasonNodeUnschedulable = "node(s) were unschedulable"
	ReasonNodeNotReady      = "node(s) were not ready"
	ReasonNodeName          = "node(s) didn't match the requested node name"
)

var (
	statusNodeUnschedulable = NewStatus(UnschedulableAndUnresolvable, ReasonNodeUnschedulable)
	statusNodeNotReady      = NewStatus(UnschedulableAndUnresolvable, ReasonNodeNotReady)
	statusNodeName          = NewStatus(UnschedulableAndUnresolvable, ReasonNodeName)
)

// NodeName passes only the node a pod names in spec.nodeName, if any.
type NodeName struct{}

var _ FilterPlugin = (*NodeName)(nil)

// Name implements Plugin.
func (*NodeName) Name() string { return "NodeName" }

// Filter implements FilterPlugin.
func (*NodeName) Filter(_ *CycleState, pod *api.Pod, node *NodeInfo) *Status {
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name() {
		return statusNodeName
	}
	return nil
}

// NodeUnschedulable rejects cordoned nodes unless the pod tolerates the
// node.kubernetes.io/unschedulable:NoSchedule taint.
type NodeUnschedulable struct{}

var _ FilterPlugin = (*NodeUnschedulable)(nil)

// Name implements Plugin.
func (*NodeUnschedulable) Name() string { return "NodeUnschedulable" }

// Filter implements FilterPlugin.
func (*NodeUnschedulable) Filter(_ *CycleState, pod *api.Pod, node *NodeInfo) *Status {
	if !node.unschedulable {
		return nil
	}
	t := api.Taint{Key: TaintNodeUnschedulable, Effect: api.TaintEffectNoSchedule}
	if tolerated(pod.Spec.Tolerations, &t) {
		return nil
	}
	return statusNodeUnschedulable
}

// NodeReady rejects nodes whose Ready condition is not True, unless the
// pod tolerates the node.kubernetes.io/not-ready taint (NoSchedule).
type NodeReady struct{}

var _ FilterPlugin = (*NodeReady)(nil)

// Name implements Plugin.
func (*NodeReady) Name() string { return "NodeReady" }

// Filter implements FilterPlugin.
func (*NodeReady) Filter(_ *CycleState, pod *api.Pod, node *NodeInfo) *Status {
	if node.ready {
		return nil
	}
	t := api.Taint{Key: TaintNodeNotReady, Effect: api.TaintEffectNoSchedule}
	if tolerated(pod.Spec.Tolerations, &t) {
		return nil
	}
	return statusNodeNotReady
}

// tolerated reports whether any of tols tolerates t.
func tolerated(tols []api.Toleration, t *api.Taint) bool {
	for i := range tols {
		if toleratesTaint(&tols[i], t) {
			return true
		}
	}
	return false
}

func toleratesTaint(tol *api.Toleration, t *api.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key == "" {
		return tol.Operator == api.TolerationOpExists
	}
	if tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case api.TolerationOpExists:
		return true
	case "", api.TolerationOpEqual:
		return tol.Value == t.Value
	}
	return false
}
