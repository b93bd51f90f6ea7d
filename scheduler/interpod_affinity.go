package scheduler

import "github.com/skiffhq/skiff/api"

// InterPodAffinity filter reasons, as kube-scheduler words them.
const (
	ReasonPodAffinity          = "node(s) didn't match pod affinity rules"
	ReasonPodAntiAffinity      = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
)

var (
	statusPodAffinity          = NewStatus(UnschedulableAndUnresolvable, ReasonPodAffinity)
	statusPodAntiAffinity      = NewStatus(Unschedulable, ReasonPodAntiAffinity)
	statusExistingAntiAffinity = NewStatus(Unschedulable, ReasonExistingAntiAffinity)
)

// InterPodAffinity enforces required pod affinity and anti-affinity over
// topology domains (including existing pods' anti-affinity towards the
// new pod) and scores by preferred terms.
//
// Cost: PreFilter looks up matching pods through the snapshot's label
// index and walks the distinct anti-affinity terms of existing pods (one
// per Deployment, not one per pod), so Filter is a few map lookups per
// node.
type InterPodAffinity struct{}

var (
	_ PreFilterPlugin = (*InterPodAffinity)(nil)
	_ FilterPlugin    = (*InterPodAffinity)(nil)
	_ PreScorePlugin  = (*InterPodAffinity)(nil)
	_ ScorePlugin     = (*InterPodAffinity)(nil)
	_ ScoreNormalizer = (*InterPodAffinity)(nil)
)

// Name implements Plugin.
func (*InterPodAffinity) Name() string { return "InterPodAffinity" }

// domainSet is the topology values (of one key) that hold matching pods.
type domainSet struct {
	key    string
	values map[string]int
}

type interPodState struct {
	// blocked holds the nodes in a domain forbidden by anti-affinity: the
	// pod's own terms (blockedByPod) or existing pods' terms
	// (blockedByExisting). Resolving domains to nodes once per pod makes
	// Filter one pointer-keyed lookup per node.
	blocked map[*NodeInfo]uint8
	// affinity: for each affinity term, the domains holding selected pods.
	affinity []domainSet
	// affinityAnywhere is false when no pod matches some affinity term
	// and the pod matches all of its own terms: the first replica of a
	// self-affine group may go anywhere.
	firstOfGroup bool
}

const (
	blockedByPod uint8 = 1 << iota
	blockedByExisting
)

// block marks the nodes of every domain of ds with a count.
func (st *interPodState) block(snap *Snapshot, ds domainSet, why uint8) {
	for v, n := range ds.values {
		if n <= 0 {
			continue
		}
		for _, i := range snap.nodesWith(ds.key, v) {
			if st.blocked == nil {
				st.blocked = make(map[*NodeInfo]uint8)
			}
			st.blocked[snap.nodes[i]] |= why
		}
	}
}

// PreFilter implements PreFilterPlugin.
func (*InterPodAffinity) PreFilter(state *CycleState, pod *api.Pod, snap *Snapshot) *Status {
	pi := state.pod
	if len(pi.requiredAffinity) == 0 && len(pi.requiredAnti) == 0 && !snap.hasRequiredAnti() {
		return NewStatus(Skip)
	}
	st := &interPodState{}
	for i := range pi.requiredAnti {
		st.block(snap, matchingDomains(snap, &pi.requiredAnti[i]), blockedByPod)
	}
	anyEmpty := false
	for i := range pi.requiredAffinity {
		ds := matchingDomains(snap, &pi.requiredAffinity[i])
		if len(ds.values) == 0 {
			anyEmpty = true
		}
		st.affinity = append(st.affinity, ds)
	}
	if anyEmpty {
		self := true
		for i := range pi.requiredAffinity {
			if !pi.requiredAffinity[i].matches(pod) {
				self = false
				break
			}
		}
		// As kube-scheduler: only when no term matches anything anywhere.
		none := true
		for _, ds := range st.affinity {
			if len(ds.values) > 0 {
				none = false
			}
		}
		st.firstOfGroup = self && none
	}
	if snap.hasRequiredAnti() {
		snap.podIdx().forEachAntiSelecting(pod, func(g *antiGroup) {
			st.block(snap, domainSet{key: g.term.topologyKey, values: g.domains}, blockedByExisting)
		})
	}
	state.interPod = st
	return nil
}

func matchingDomains(snap *Snapshot, t *affinityTerm) domainSet {
	ds := domainSet{key: t.topologyKey, values: make(map[string]int)}
	snap.forEachMatching(t, func(p *PodInfo) {
		if v, ok := snap.nodeLabel(p.NodeName, t.topologyKey); ok {
			ds.values[v]++
		}
	})
	return ds
}

// Filter implements FilterPlugin.
func (*InterPodAffinity) Filter(state *CycleState, _ *api.Pod, node *NodeInfo) *Status {
	st := state.interPod
	labels := node.labels
	if !st.firstOfGroup {
		for _, ds := range st.affinity {
			v, ok := labels[ds.key]
			if !ok || ds.values[v] == 0 {
				return statusPodAffinity
			}
		}
	}
	if st.blocked != nil {
		if why := st.blocked[node]; why != 0 {
			if why&blockedByPod != 0 {
				return statusPodAntiAffinity
			}
			return statusExistingAntiAffinity
		}
	}
	return nil
}

type interPodScoreState struct {
	// byKey: topology key -> value -> summed weight (affinity positive,
	// anti-affinity negative) times matching pods.
	byKey map[string]map[string]int64
}

// PreScore implements PreScorePlugin. Only the incoming pod's preferred
// terms count; existing pods' preferred terms towards it (symmetry) are
// not scored.
func (*InterPodAffinity) PreScore(state *CycleState, _ *api.Pod, snap *Snapshot, _ []*NodeInfo) *Status {
	pi := state.pod
	if len(pi.preferredAffinity) == 0 && len(pi.preferredAnti) == 0 {
		return NewStatus(Skip)
	}
	st := &interPodScoreState{byKey: make(map[string]map[string]int64)}
	add := func(t *weightedTerm, sign int64) {
		m := st.byKey[t.topologyKey]
		if m == nil {
			m = make(map[string]int64)
			st.byKey[t.topologyKey] = m
		}
		snap.forEachMatching(&t.affinityTerm, func(p *PodInfo) {
			if v, ok := snap.nodeLabel(p.NodeName, t.topologyKey); ok {
				m[v] += sign * t.weight
			}
		})
	}
	for i := range pi.preferredAffinity {
		add(&pi.preferredAffinity[i], 1)
	}
	for i := range pi.preferredAnti {
		add(&pi.preferredAnti[i], -1)
	}
	state.interPodPref = st
	return nil
}

// Score implements ScorePlugin.
func (*InterPodAffinity) Score(state *CycleState, _ *api.Pod, node *NodeInfo) (int64, *Status) {
	var s int64
	for key, m := range state.interPodPref.byKey {
		if v, ok := node.labels[key]; ok {
			s += m[v]
		}
	}
	return s, nil
}

// NormalizeScore implements ScoreNormalizer.
func (*InterPodAffinity) NormalizeScore(_ *CycleState, _ *api.Pod, scores []int64) *Status {
	normalizeMinMax(scores)
	return nil
}
