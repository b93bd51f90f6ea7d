package scheduler

import "github.com/skiffhq/skiff/api"

// TaintToleration filters out nodes with NoSchedule or NoExecute taints
// the pod does not tolerate, and prefers nodes with fewer untolerated
// PreferNoSchedule taints.
type TaintToleration struct{}

var (
	_ FilterPlugin    = (*TaintToleration)(nil)
	_ PreScorePlugin  = (*TaintToleration)(nil)
	_ ScorePlugin     = (*TaintToleration)(nil)
	_ ScoreNormalizer = (*TaintToleration)(nil)
)

// Name implements Plugin.
func (*TaintToleration) Name() string { return "TaintToleration" }

// UntoleratedTaintReason is the filter reason for taint t, worded as
// kube-scheduler's.
func UntoleratedTaintReason(t *api.Taint) string {
	return "node(s) had untolerated taint {" + t.Key + ": " + t.Value + "}"
}

// Filter implements FilterPlugin.
func (*TaintToleration) Filter(_ *CycleState, pod *api.Pod, node *NodeInfo) *Status {
	for i, st := range node.taintStatus {
		if st != nil && !tolerated(pod.Spec.Tolerations, &node.taints[i]) {
			return st
		}
	}
	return nil
}

type taintScoreState struct {
	tolerations []api.Toleration
}

// PreScore implements PreScorePlugin: skip unless some feasible node has
// a PreferNoSchedule taint.
func (*TaintToleration) PreScore(state *CycleState, pod *api.Pod, _ *Snapshot, feasible []*NodeInfo) *Status {
	for _, ni := range feasible {
		for _, t := range ni.taints {
			if t.Effect == api.TaintEffectPreferNoSchedule {
				// Only PreferNoSchedule tolerations matter for scoring.
				var tols []api.Toleration
				for _, tol := range pod.Spec.Tolerations {
					if tol.Effect == "" || tol.Effect == api.TaintEffectPreferNoSchedule {
						tols = append(tols, tol)
					}
				}
				state.taints = &taintScoreState{tolerations: tols}
				return nil
			}
		}
	}
	return NewStatus(Skip)
}

// Score implements ScorePlugin: the number of untolerated PreferNoSchedule
// taints (inverted by NormalizeScore).
func (*TaintToleration) Score(state *CycleState, _ *api.Pod, node *NodeInfo) (int64, *Status) {
	var n int64
	for i := range node.taints {
		t := &node.taints[i]
		if t.Effect == api.TaintEffectPreferNoSchedule && !tolerated(state.taints.tolerations, t) {
			n++
		}
	}
	return n, nil
}

// NormalizeScore implements ScoreNormalizer: fewest taints scores 100.
func (*TaintToleration) NormalizeScore(_ *CycleState, _ *api.Pod, scores []int64) *Status {
	normalizeReverse(scores)
	return nil
}

// normalizeReverse maps scores to 0..MaxNodeScore, the highest raw score
// becoming 0 and 0 becoming MaxNodeScore.
func normalizeReverse(scores []int64) {
	var max int64
	for _, s := range scores {
		if s > max {
			max = s
		}
	}
	for i, s := range scores {
		if max == 0 {
			scores[i] = MaxNodeScore
		} else {
			scores[i] = MaxNodeScore - s*MaxNodeScore/max
		}
	}
}

// normalizeMax maps scores to 0..MaxNodeScore in proportion to the
// highest.
func normalizeMax(scores []int64) {
	var max int64
	for _, s := range scores {
		if s > max {
			max = s
		}
	}
	for i, s := range scores {
		if max == 0 {
			scores[i] = 0
		} else {
			scores[i] = s * MaxNodeScore / max
		}
	}
}

// normalizeMinMax maps scores (possibly negative) linearly to
// 0..MaxNodeScore.
func normalizeMinMax(scores []int64) {
	if len(scores) == 0 {
		return
	}
	min, max := scores[0], scores[0]
	for _, s := range scores {
		if s < min {
			min = s
		}
		if s > max {
			max = s
		}
	}
	for i, s := range scores {
		if max == min {
			scores[i] = 0
		} else {
			scores[i] = (s - min) * MaxNodeScore / (max - min)
		}
	}
}
