package scheduler

import "github.com/skiffhq/skiff/api"

// Plugins are called by one scheduling goroutine at a time per pod, but
// Filter and Score may be called concurrently for different nodes of the
// same pod: they must only read the CycleState and the NodeInfo. PreFilter,
// PreScore and NormalizeScore run once per pod and may write the
// CycleState.

// Plugin is anything with a stable name (used in weights, metrics and
// diagnostics).
type Plugin interface {
	Name() string
}

// FilterPlugin rejects nodes that cannot run the pod.
type FilterPlugin interface {
	Plugin
	Filter(state *CycleState, pod *api.Pod, node *NodeInfo) *Status
}

// PreFilterPlugin precomputes per-pod state over the whole snapshot before
// Filter is called per node. Returning Skip disables the plugin's Filter
// for this pod; any other failure makes the pod unschedulable on every
// node.
type PreFilterPlugin interface {
	Plugin
	PreFilter(state *CycleState, pod *api.Pod, snap *Snapshot) *Status
}

// ScorePlugin ranks feasible nodes; higher is better.
type ScorePlugin interface {
	Plugin
	Score(state *CycleState, pod *api.Pod, node *NodeInfo) (int64, *Status)
}

// PreScorePlugin precomputes per-pod scoring state over the feasible
// nodes. Returning Skip disables the plugin's Score for this pod.
type PreScorePlugin interface {
	Plugin
	PreScore(state *CycleState, pod *api.Pod, snap *Snapshot, feasible []*NodeInfo) *Status
}

// ScoreNormalizer rescales a plugin's raw scores into 0..MaxNodeScore.
// Plugins whose Score already returns 0..MaxNodeScore don't implement it.
type ScoreNormalizer interface {
	NormalizeScore(state *CycleState, pod *api.Pod, scores []int64) *Status
}

// MaxNodeScore is the highest score a plugin gives a node after
// normalisation; the scheduler multiplies it by the plugin's weight.
const MaxNodeScore int64 = 100

// CycleState is the per-pod scratch space of one scheduling attempt. The
// built-in plugins keep typed fields (a map lookup per node and plugin
// would cost more than the filters themselves); out-of-tree plugins use
// Write and Read.
type CycleState struct {
	pod *PodInfo

	nodeAffinity *nodeAffinityState
	taints       *taintScoreState
	interPod     *interPodState
	interPodPref *interPodScoreState
	spread       *spreadState
	spreadScore  *spreadState
	prefAffinity *preferredNodeAffinityState

	data map[string]any
}

// NewCycleState returns the state for scheduling pod.
func NewCycleState(pod *api.Pod) *CycleState {
	return &CycleState{pod: NewPodInfo(pod)}
}

// PodInfo returns the precomputed view of the pod being scheduled.
func (s *CycleState) PodInfo() *PodInfo { return s.pod }

// Write stores plugin data under key.
func (s *CycleState) Write(key string, v any) {
	if s.data == nil {
		s.data = make(map[string]any)
	}
	s.data[key] = v
}

// Read returns what Write stored under key.
func (s *CycleState) Read(key string) (any, bool) {
	v, ok := s.data[key]
	return v, ok
}
