package scheduler

import (
	"fmt"
	"time"

	"github.com/skiffhq/skiff/api"
)

// Config configures a Scheduler. The zero value is usable.
type Config struct {
	// Strategy is how NodeResourcesFit scores; default LeastAllocated.
	Strategy ScoringStrategy
	// PercentageOfNodesToScore bounds the search: filtering stops once
	// this percentage of the nodes (but at least MinFeasibleNodes) is
	// found feasible, and only those are scored. 0 means adaptive, as in
	// kube-scheduler: 50% minus 1% per 125 nodes, at least 5% (10% at
	// 5,000 nodes); 100 scores every node.
	//
	// The trade-off: a lower percentage schedules faster on big clusters,
	// at the price of a placement that is the best of a sample rather
	// than of the whole cluster. The search starts where the previous pod's
	// stopped, so over a batch every node is considered.
	PercentageOfNodesToScore int
	// MinFeasibleNodes is the floor of the search; default 100.
	MinFeasibleNodes int
	// Weights overrides the weight of score plugins by name. Defaults
	// (kube-scheduler's): NodeResourcesFit 1, BalancedAllocation 1,
	// NodeAffinity 2, InterPodAffinity 2, PodTopologySpread 2,
	// TaintToleration 3. A weight of 0 disables the plugin.
	Weights map[string]int64
	// Metrics, if set, records scheduling attempts and durations.
	Metrics *Metrics
}

// defaultWeights are the score plugin weights when Config.Weights does
// not say otherwise.
var defaultWeights = map[string]int64{
	"NodeResourcesFit":   1,
	"BalancedAllocation": 1,
	"NodeAffinity":       2,
	"InterPodAffinity":   2,
	"PodTopologySpread":  2,
	"TaintToleration":    3,
}

const defaultMinFeasibleNodes = 100

type filterEntry struct {
	filter FilterPlugin
	pre    PreFilterPlugin
}

type scoreEntry struct {
	score  ScorePlugin
	pre    PreScorePlugin
	norm   ScoreNormalizer
	weight int64
}

// Scheduler places one pod at a time on a Snapshot. It keeps a little
// state between pods (where the last search stopped, scratch buffers), so
// it is used by one goroutine at a time.
type Scheduler struct {
	cfg       Config
	filters   []filterEntry
	scores    []scoreEntry
	nextStart int

	active   []FilterPlugin
	feasible []*NodeInfo
	failed   []*Status
	totals   []int64
	buf      []int64
}

// DefaultFilters returns the built-in filters in the order they run
// (cheap and unresolvable first).
func DefaultFilters() []FilterPlugin {
	return []FilterPlugin{
		&NodeName{},
		&NodeUnschedulable{},
		&NodeReady{},
		&TaintToleration{},
		&NodeAffinity{},
		&HostPorts{},
		&NodeResourcesFit{},
		&PodTopologySpread{},
		&InterPodAffinity{},
	}
}

// DefaultScores returns the built-in score plugins for strategy.
func DefaultScores(strategy ScoringStrategy) []ScorePlugin {
	return []ScorePlugin{
		&NodeResourcesFit{Strategy: strategy},
		&BalancedAllocation{},
		&NodeAffinity{},
		&InterPodAffinity{},
		&PodTopologySpread{},
		&TaintToleration{},
	}
}

// New returns a Scheduler with the built-in plugins.
func New(cfg Config) *Scheduler {
	if cfg.Strategy == "" {
		cfg.Strategy = LeastAllocated
	}
	return NewWithPlugins(cfg, DefaultFilters(), DefaultScores(cfg.Strategy))
}

// NewWithPlugins returns a Scheduler running the given plugins; a plugin
// that also implements PreFilterPlugin, PreScorePlugin or ScoreNormalizer
// gets those called too.
func NewWithPlugins(cfg Config, filters []FilterPlugin, scores []ScorePlugin) *Scheduler {
	if cfg.MinFeasibleNodes <= 0 {
		cfg.MinFeasibleNodes = defaultMinFeasibleNodes
	}
	s := &Scheduler{cfg: cfg}
	for _, f := range filters {
		e := filterEntry{filter: f}
		e.pre, _ = f.(PreFilterPlugin)
		s.filters = append(s.filters, e)
	}
	for _, sc := range scores {
		w, ok := cfg.Weights[sc.Name()]
		if !ok {
			w, ok = defaultWeights[sc.Name()]
			if !ok {
				w = 1
			}
		}
		if w == 0 {
			continue
		}
		e := scoreEntry{score: sc, weight: w}
		e.pre, _ = sc.(PreScorePlugin)
		e.norm, _ = sc.(ScoreNormalizer)
		s.scores = append(s.scores, e)
	}
	return s
}

// numFeasibleToFind is how many feasible nodes end the search.
func (s *Scheduler) numFeasibleToFind(n int) int {
	min := s.cfg.MinFeasibleNodes
	if n <= min {
		return n
	}
	pct := s.cfg.PercentageOfNodesToScore
	if pct <= 0 {
		pct = 50 - n/125
		if pct < 5 {
			pct = 5
		}
	}
	if pct >= 100 {
		return n
	}
	k := n * pct / 100
	if k < min {
		k = min
	}
	return k
}

// Result is the outcome of scheduling one pod of a batch.
type Result struct {
	Pod *api.Pod
	// NodeName is where the pod was assumed; "" when it fits nowhere.
	NodeName string
	// Diagnosis is set when NodeName is "".
	Diagnosis *Diagnosis
}

// ScheduleBatch schedules pods in order on snap, assuming each placed pod
// before the next is considered, so a batch never overcommits a node. The
// caller commits the bindings and calls snap.Forget (or discards the
// snapshot) for those the store rejects.
func (s *Scheduler) ScheduleBatch(snap *Snapshot, pods []*api.Pod) []Result {
	out := make([]Result, len(pods))
	for i, pod := range pods {
		pi, node, diag := s.schedule(snap, pod)
		out[i] = Result{Pod: pod, NodeName: node, Diagnosis: diag}
		if node != "" {
			if err := snap.assume(pi, node); err != nil {
				out[i] = Result{Pod: pod, Diagnosis: &Diagnosis{NumNodes: snap.Len(), Err: err}}
			}
		}
	}
	s.cfg.Metrics.observeBatch(len(pods))
	return out
}

// SchedulePod picks a node for pod on snap without assuming it there;
// it returns "" and a Diagnosis when no node fits.
func (s *Scheduler) SchedulePod(snap *Snapshot, pod *api.Pod) (nodeName string, diag *Diagnosis) {
	_, node, d := s.schedule(snap, pod)
	return node, d
}

func (s *Scheduler) schedule(snap *Snapshot, pod *api.Pod) (*PodInfo, string, *Diagnosis) {
	var start time.Time
	if s.cfg.Metrics != nil {
		start = time.Now()
	}
	state := NewCycleState(pod)
	node, diag := s.run(state, snap, pod)
	if m := s.cfg.Metrics; m != nil {
		result := resultScheduled
		switch {
		case diag != nil && diag.Err != nil:
			result = resultError
		case diag != nil:
			result = resultUnschedulable
		}
		m.observeAttempt(result, time.Since(start))
	}
	return state.pod, node, diag
}

func (s *Scheduler) run(state *CycleState, snap *Snapshot, pod *api.Pod) (string, *Diagnosis) {
	n := snap.Len()
	diag := &Diagnosis{NumNodes: n}
	if err := state.pod.parseErr; err != nil {
		diag.Err = fmt.Errorf("pod %s: %w", state.pod.Key, err)
		return "", diag
	}
	s.active = s.active[:0]
	for _, f := range s.filters {
		if f.pre != nil {
			st := f.pre.PreFilter(state, pod, snap)
			switch st.Code() {
			case Skip:
				continue
			case Success:
			case Error:
				diag.Err = fmt.Errorf("%s: %w", f.pre.Name(), st.Err())
				return "", diag
			default:
				for i := 0; i < n; i++ {
					diag.add(st)
				}
				diag.Unresolvable = st.Code() == UnschedulableAndUnresolvable
				return "", diag
			}
		}
		s.active = append(s.active, f.filter)
	}
	if n == 0 {
		return "", diag
	}

	want := s.numFeasibleToFind(n)
	startAt := s.nextStart % n
	feasible, processed, unresolvable, err := s.filterNodes(state, snap, pod, diag, startAt, want)
	if err != nil {
		diag.Err = err
		return "", diag
	}
	s.nextStart = (startAt + processed) % n
	s.feasible = feasible
	switch len(feasible) {
	case 0:
		diag.Unresolvable = unresolvable
		return "", diag
	case 1:
		return feasible[0].Name(), nil
	}
	best, err := s.score(state, snap, pod, feasible)
	if err != nil {
		diag.Err = err
		return "", diag
	}
	return best, nil
}

// filterNode runs the active filters on ni; nil means feasible.
func (s *Scheduler) filterNode(state *CycleState, pod *api.Pod, ni *NodeInfo) (*Status, string) {
	for _, f := range s.active {
		if st := f.Filter(state, pod, ni); st != nil && st.code != Success {
			return st, f.Name()
		}
	}
	return nil, ""
}

// filterNodes examines nodes from startAt until want are feasible or all
// were seen; it returns the feasible nodes in search order and how many
// nodes it examined.
func (s *Scheduler) filterNodes(state *CycleState, snap *Snapshot, pod *api.Pod, diag *Diagnosis, startAt, want int) ([]*NodeInfo, int, bool, error) {
	n := snap.Len()
	feasible := s.feasible[:0]
	failed := s.failed[:0]
	processed := 0
	unresolvable := true
	for processed < n && len(feasible) < want {
		ni := snap.nodes[(startAt+processed)%n]
		processed++
		st, name := s.filterNode(state, pod, ni)
		if st == nil {
			feasible = append(feasible, ni)
			continue
		}
		if st.code == Error {
			return nil, processed, false, fmt.Errorf("%s: %w", name, st.Err())
		}
		if st.code != UnschedulableAndUnresolvable {
			unresolvable = false
		}
		failed = append(failed, st)
	}
	s.failed = failed[:0]
	if len(feasible) == 0 {
		// The reasons only matter when the pod fits nowhere; counting
		// them for every rejected node of every pod would cost a map
		// update each.
		for _, st := range failed {
			diag.add(st)
		}
	}
	return feasible, processed, unresolvable, nil
}

// score returns the feasible node with the highest weighted score; ties go
// to the finer fit (finerFit), then to the node found first (the search
// order rotates between pods).
func (s *Scheduler) score(state *CycleState, snap *Snapshot, pod *api.Pod, feasible []*NodeInfo) (string, error) {
	k := len(feasible)
	if cap(s.totals) < k {
		s.totals = make([]int64, k)
		s.buf = make([]int64, k)
	}
	totals, buf := s.totals[:k], s.buf[:k]
	for i := range totals {
		totals[i] = 0
	}
	for _, e := range s.scores {
		if e.pre != nil {
			st := e.pre.PreScore(state, pod, snap, feasible)
			if st.Code() == Skip {
				continue
			}
			if !st.IsSuccess() {
				return "", fmt.Errorf("%s: %w", e.score.Name(), st.Err())
			}
		}
		for i, ni := range feasible {
			v, st := e.score.Score(state, pod, ni)
			if !st.IsSuccess() {
				return "", fmt.Errorf("%s: %w", e.score.Name(), st.Err())
			}
			buf[i] = v
		}
		if e.norm != nil {
			if st := e.norm.NormalizeScore(state, pod, buf); !st.IsSuccess() {
				return "", fmt.Errorf("%s: %w", e.score.Name(), st.Err())
			}
		}
		for i := range buf {
			totals[i] += buf[i] * e.weight
		}
	}
	// Scores are whole percentages, so on big nodes an empty node and one
	// with a few small pods tie; ranking ties by exact utilisation (lower
	// first for LeastAllocated, higher for MostAllocated) keeps spreading
	// and packing precise instead of favouring whichever node the search
	// met first.
	most := s.cfg.Strategy == MostAllocated
	best, bestU := 0, -1.0
	for i := 1; i < k; i++ {
		switch {
		case totals[i] > totals[best]:
			best, bestU = i, -1
		case totals[i] == totals[best]:
			if bestU < 0 {
				bestU = utilisation(state, feasible[best])
			}
			if u := utilisation(state, feasible[i]); most && u > bestU || !most && u < bestU {
				best, bestU = i, u
			}
		}
	}
	return feasible[best].Name(), nil
}

// utilisation is the mean of the cpu and memory fractions of ni if the
// pod were placed there.
func utilisation(state *CycleState, ni *NodeInfo) float64 {
	req := &state.pod.NonZeroRequests
	var u float64
	if ni.Allocatable.MilliCPU > 0 {
		u += float64(ni.NonZeroRequested.MilliCPU+req.MilliCPU) / float64(ni.Allocatable.MilliCPU)
	}
	if ni.Allocatable.Memory > 0 {
		u += float64(ni.NonZeroRequested.Memory+req.Memory) / float64(ni.Allocatable.Memory)
	}
	return u / 2
}
