package scheduler

import (
	"strconv"

	"github.com/skiffhq/skiff/api"
)

// ReasonNodeAffinity is the NodeAffinity filter reason.
const ReasonNodeAffinity = "node(s) didn't match Pod's node affinity/selector"

var statusNodeAffinity = NewStatus(UnschedulableAndUnresolvable, ReasonNodeAffinity)

// NodeAffinity filters nodes by the pod's nodeSelector and required node
// affinity, and scores them by its preferred node affinity.
type NodeAffinity struct{}

var (
	_ PreFilterPlugin = (*NodeAffinity)(nil)
	_ FilterPlugin    = (*NodeAffinity)(nil)
	_ PreScorePlugin  = (*NodeAffinity)(nil)
	_ ScorePlugin     = (*NodeAffinity)(nil)
	_ ScoreNormalizer = (*NodeAffinity)(nil)
)

// Name implements Plugin.
func (*NodeAffinity) Name() string { return "NodeAffinity" }

type nodeAffinityState struct {
	selector map[string]string
	required *api.NodeSelector
}

// requiredNodeAffinity returns the pod's hard node constraints, or nil.
func requiredNodeAffinity(pod *api.Pod) *nodeAffinityState {
	var req *api.NodeSelector
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		req = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if len(pod.Spec.NodeSelector) == 0 && req == nil {
		return nil
	}
	return &nodeAffinityState{selector: pod.Spec.NodeSelector, required: req}
}

func (s *nodeAffinityState) matches(node *api.Node) bool {
	if s == nil {
		return true
	}
	for k, v := range s.selector {
		if got, ok := node.Labels[k]; !ok || got != v {
			return false
		}
	}
	if s.required != nil {
		return nodeSelectorMatches(s.required, node)
	}
	return true
}

// PreFilter implements PreFilterPlugin.
func (*NodeAffinity) PreFilter(state *CycleState, pod *api.Pod, _ *Snapshot) *Status {
	state.nodeAffinity = requiredNodeAffinity(pod)
	if state.nodeAffinity == nil {
		return NewStatus(Skip)
	}
	return nil
}

// Filter implements FilterPlugin.
func (*NodeAffinity) Filter(state *CycleState, _ *api.Pod, node *NodeInfo) *Status {
	if state.nodeAffinity.matches(node.Node) {
		return nil
	}
	return statusNodeAffinity
}

// nodeSelectorMatches reports whether any term of ns matches node. An
// empty term matches nothing, as in Kubernetes.
func nodeSelectorMatches(ns *api.NodeSelector, node *api.Node) bool {
	for i := range ns.NodeSelectorTerms {
		if nodeSelectorTermMatches(&ns.NodeSelectorTerms[i], node) {
			return true
		}
	}
	return false
}

func nodeSelectorTermMatches(t *api.NodeSelectorTerm, node *api.Node) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for i := range t.MatchExpressions {
		if !requirementMatches(&t.MatchExpressions[i], node.Labels) {
			return false
		}
	}
	for i := range t.MatchFields {
		r := &t.MatchFields[i]
		if r.Key != "metadata.name" {
			return false
		}
		if !requirementMatches(r, map[string]string{"metadata.name": node.Name}) {
			return false
		}
	}
	return true
}

func requirementMatches(r *api.NodeSelectorRequirement, labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case api.NodeSelectorOpIn:
		return ok && containsString(r.Values, v)
	case api.NodeSelectorOpNotIn:
		return !ok || !containsString(r.Values, v)
	case api.NodeSelectorOpExists:
		return ok
	case api.NodeSelectorOpDoesNotExist:
		return !ok
	case api.NodeSelectorOpGt, api.NodeSelectorOpLt:
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		want, err := strconv.ParseInt(r.Values[0], 10, 64)
		if err != nil {
			return false
		}
		if r.Operator == api.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

type preferredNodeAffinityState struct {
	terms []api.PreferredSchedulingTerm
}

// PreScore implements PreScorePlugin: skip without preferred terms.
func (*NodeAffinity) PreScore(state *CycleState, pod *api.Pod, _ *Snapshot, _ []*NodeInfo) *Status {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return NewStatus(Skip)
	}
	state.prefAffinity = &preferredNodeAffinityState{terms: a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution}
	return nil
}

// Score implements ScorePlugin: the sum of the weights of matching terms.
func (*NodeAffinity) Score(state *CycleState, _ *api.Pod, node *NodeInfo) (int64, *Status) {
	var sum int64
	for i := range state.prefAffinity.terms {
		t := &state.prefAffinity.terms[i]
		if t.Weight != 0 && nodeSelectorTermMatches(&t.Preference, node.Node) {
			sum += int64(t.Weight)
		}
	}
	return sum, nil
}

// NormalizeScore implements ScoreNormalizer.
func (*NodeAffinity) NormalizeScore(_ *CycleState, _ *api.Pod, scores []int64) *Status {
	normalizeMax(scores)
	return nil
}
