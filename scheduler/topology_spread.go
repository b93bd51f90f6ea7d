package scheduler

import "github.com/skiffhq/skiff/api"

// PodTopologySpread filter reasons, as kube-scheduler words them.
const (
	ReasonTopologySpread             = "node(s) didn't match pod topology spread constraints"
	ReasonTopologySpreadMissingLabel = "node(s) didn't match pod topology spread constraints (missing required label)"
)

var (
	statusTopologySpread      = NewStatus(Unschedulable, ReasonTopologySpread)
	statusTopologySpreadLabel = NewStatus(UnschedulableAndUnresolvable, ReasonTopologySpreadMissingLabel)
)

// PodTopologySpread keeps the pods selected by a topology spread
// constraint within maxSkew across the domains of its topologyKey:
// DoNotSchedule constraints filter, ScheduleAnyway constraints score.
//
// As in Kubernetes, only nodes matching the pod's nodeSelector and
// required node affinity define domains and count pods, and only pods in
// the pod's namespace count.
type PodTopologySpread struct{}

var (
	_ PreFilterPlugin = (*PodTopologySpread)(nil)
	_ FilterPlugin    = (*PodTopologySpread)(nil)
	_ PreScorePlugin  = (*PodTopologySpread)(nil)
	_ ScorePlugin     = (*PodTopologySpread)(nil)
	_ ScoreNormalizer = (*PodTopologySpread)(nil)
)

// Name implements Plugin.
func (*PodTopologySpread) Name() string { return "PodTopologySpread" }

type spreadConstraint struct {
	maxSkew int
	key     string
	// selfMatch is 1 when the pod itself is selected: placing it adds one.
	selfMatch int
	counts    map[string]int
	min       int
}

type spreadState struct {
	constraints []spreadConstraint
}

// buildSpread counts, per domain, the pods the constraints select.
func buildSpread(pod *api.Pod, snap *Snapshot, cs []api.TopologySpreadConstraint, want api.UnsatisfiableConstraintAction) (*spreadState, *Status) {
	var na *nodeAffinityState
	var eligible map[string]bool // node name -> matches affinity (when na != nil)
	st := &spreadState{}
	for i := range cs {
		c := &cs[i]
		if c.WhenUnsatisfiable != want {
			continue
		}
		if len(st.constraints) == 0 {
			na = requiredNodeAffinity(pod)
			if na != nil {
				eligible = make(map[string]bool)
				for _, ni := range snap.nodes {
					if na.matches(ni.Node) {
						eligible[ni.Name()] = true
					}
				}
			}
		}
		sc := spreadConstraint{maxSkew: int(c.MaxSkew), key: c.TopologyKey, counts: make(map[string]int)}
		if sc.maxSkew < 1 {
			sc.maxSkew = 1
		}
		if na == nil {
			for _, v := range snap.domainValues(c.TopologyKey) {
				sc.counts[v] = 0
			}
		} else {
			for name := range eligible {
				if v, ok := snap.nodeLabel(name, c.TopologyKey); ok {
					sc.counts[v] = 0
				}
			}
		}
		term, err := newAffinityTerm(pod, &api.PodAffinityTerm{LabelSelector: c.LabelSelector, TopologyKey: c.TopologyKey})
		if err != nil {
			return nil, AsStatus(err)
		}
		if term.matches(pod) {
			sc.selfMatch = 1
		}
		snap.forEachMatching(&term, func(p *PodInfo) {
			if p.Pod.DeletionTimestamp != nil {
				return
			}
			if eligible != nil && !eligible[p.NodeName] {
				return
			}
			if v, ok := snap.nodeLabel(p.NodeName, c.TopologyKey); ok {
				if _, known := sc.counts[v]; known {
					sc.counts[v]++
				}
			}
		})
		first := true
		for _, n := range sc.counts {
			if first || n < sc.min {
				sc.min, first = n, false
			}
		}
		st.constraints = append(st.constraints, sc)
	}
	if len(st.constraints) == 0 {
		return nil, NewStatus(Skip)
	}
	return st, nil
}

// PreFilter implements PreFilterPlugin.
func (*PodTopologySpread) PreFilter(state *CycleState, pod *api.Pod, snap *Snapshot) *Status {
	if len(pod.Spec.TopologySpreadConstraints) == 0 {
		return NewStatus(Skip)
	}
	st, status := buildSpread(pod, snap, pod.Spec.TopologySpreadConstraints, api.DoNotSchedule)
	if !status.IsSuccess() {
		return status
	}
	state.spread = st
	return nil
}

// Filter implements FilterPlugin.
func (*PodTopologySpread) Filter(state *CycleState, _ *api.Pod, node *NodeInfo) *Status {
	for i := range state.spread.constraints {
		c := &state.spread.constraints[i]
		v, ok := node.labels[c.key]
		if !ok {
			return statusTopologySpreadLabel
		}
		if c.counts[v]+c.selfMatch-c.min > c.maxSkew {
			return statusTopologySpread
		}
	}
	return nil
}

// PreScore implements PreScorePlugin.
func (*PodTopologySpread) PreScore(state *CycleState, pod *api.Pod, snap *Snapshot, _ []*NodeInfo) *Status {
	if len(pod.Spec.TopologySpreadConstraints) == 0 {
		return NewStatus(Skip)
	}
	st, status := buildSpread(pod, snap, pod.Spec.TopologySpreadConstraints, api.ScheduleAnyway)
	if !status.IsSuccess() {
		return status
	}
	state.spreadScore = st
	return nil
}

// Score implements ScorePlugin: the number of selected pods in the node's
// domains (fewer is better, inverted by NormalizeScore). A node missing a
// topology key scores as the most crowded.
func (*PodTopologySpread) Score(state *CycleState, _ *api.Pod, node *NodeInfo) (int64, *Status) {
	var s int64
	for i := range state.spreadScore.constraints {
		c := &state.spreadScore.constraints[i]
		v, ok := node.labels[c.key]
		if !ok {
			return -1, nil
		}
		s += int64(c.counts[v] + c.selfMatch)
	}
	return s, nil
}

// NormalizeScore implements ScoreNormalizer: the least crowded domain
// scores 100, the most crowded 0.
func (*PodTopologySpread) NormalizeScore(_ *CycleState, _ *api.Pod, scores []int64) *Status {
	var min, max int64 = -1, -1
	for _, s := range scores {
		if s < 0 {
			continue
		}
		if min < 0 || s < min {
			min = s
		}
		if s > max {
			max = s
		}
	}
	for i, s := range scores {
		switch {
		case s < 0:
			scores[i] = 0
		case max == min:
			scores[i] = MaxNodeScore
		default:
			scores[i] = (max - s) * MaxNodeScore / (max - min)
		}
	}
	return nil
}
