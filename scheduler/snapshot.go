package scheduler

import (
	"errors"
	"fmt"
	"sort"

	"github.com/skiffhq/skiff/api"
)

// Errors of Snapshot and Cache.
var (
	// ErrNodeNotFound: the named node is not in the snapshot or cache.
	ErrNodeNotFound = errors.New("node not found")
	// ErrPodNotFound: the pod is not bound or assumed anywhere.
	ErrPodNotFound = errors.New("pod not found")
)

// Snapshot is a consistent view of the nodes and their pods for one batch
// of scheduling. NodeInfos are shared with the Cache and with other
// snapshots until Assume or Forget changes one, which copies it first.
// The indexes for pod affinity and topology spread are built on first use,
// so batches of pods without such constraints never pay for them.
//
// A Snapshot is used by one goroutine at a time.
type Snapshot struct {
	nodes []*NodeInfo
	index map[string]int
	owned []bool
	// assumed is where Assume put each pod, for Forget.
	assumed map[PodKey]string

	pods    *podIndex
	domains map[string][]string
	// byNodeLabel: label key -> value -> indexes into nodes, built per key
	// on first use.
	byNodeLabel map[string]map[string][]int
	// antiPods counts pods with required anti-affinity; -1: not counted.
	antiPods int
	// gen and listGen are the Cache generations the snapshot reflects
	// (0 for snapshots not made by a Cache).
	gen, listGen uint64
}

// NewSnapshot builds a snapshot from node objects and the pods bound to
// them (pods with spec.nodeName set; others are ignored). Pods on unknown
// nodes are ignored.
func NewSnapshot(nodes []*api.Node, pods []*api.Pod) *Snapshot {
	infos := make([]*NodeInfo, 0, len(nodes))
	byName := make(map[string]*NodeInfo, len(nodes))
	for _, n := range nodes {
		ni := NewNodeInfo(n)
		infos = append(infos, ni)
		byName[n.Name] = ni
	}
	for _, p := range pods {
		if ni := byName[p.Spec.NodeName]; ni != nil && !podTerminated(p) {
			ni.AddPod(NewPodInfo(p))
		}
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name() < infos[j].Name() })
	s := newSnapshot(infos)
	for i := range s.owned {
		s.owned[i] = true
	}
	return s
}

// newSnapshot wraps infos (sorted by name, node set), shared with their
// creator.
func newSnapshot(infos []*NodeInfo) *Snapshot {
	s := &Snapshot{
		nodes:    infos,
		index:    make(map[string]int, len(infos)),
		owned:    make([]bool, len(infos)),
		antiPods: -1,
	}
	for i, ni := range infos {
		s.index[ni.Name()] = i
	}
	return s
}

func podTerminated(p *api.Pod) bool {
	return p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed
}

// Nodes returns the nodes sorted by name; callers must not modify them.
func (s *Snapshot) Nodes() []*NodeInfo { return s.nodes }

// Len returns the number of nodes.
func (s *Snapshot) Len() int { return len(s.nodes) }

// Get returns the named node, or nil.
func (s *Snapshot) Get(name string) *NodeInfo {
	if i, ok := s.index[name]; ok {
		return s.nodes[i]
	}
	return nil
}

// writable returns node i, copying it first if it is shared.
func (s *Snapshot) writable(i int) *NodeInfo {
	if !s.owned[i] {
		s.nodes[i] = s.nodes[i].Clone()
		s.owned[i] = true
	}
	return s.nodes[i]
}

// Assume records pod as bound to nodeName in this snapshot, so the rest of
// the batch sees the capacity, ports and affinity it takes.
func (s *Snapshot) Assume(pod *api.Pod, nodeName string) error {
	return s.assume(NewPodInfo(pod), nodeName)
}

func (s *Snapshot) assume(pi *PodInfo, nodeName string) error {
	i, ok := s.index[nodeName]
	if !ok {
		return fmt.Errorf("assume %s on %s: %w", pi.Key, nodeName, ErrNodeNotFound)
	}
	if _, dup := s.assumed[pi.Key]; dup {
		return fmt.Errorf("assume %s on %s: already assumed", pi.Key, nodeName)
	}
	pi.NodeName = nodeName
	s.writable(i).AddPod(pi)
	if s.assumed == nil {
		s.assumed = make(map[PodKey]string)
	}
	s.assumed[pi.Key] = nodeName
	if s.pods != nil {
		s.pods.add(pi, s.nodes[i].labels)
	}
	if s.antiPods >= 0 && len(pi.requiredAnti) > 0 {
		s.antiPods++
	}
	return nil
}

// Forget undoes Assume (the store rejected the binding).
func (s *Snapshot) Forget(pod *api.Pod) error {
	key := KeyOf(pod)
	nodeName, ok := s.assumed[key]
	if !ok {
		return fmt.Errorf("forget %s: %w", key, ErrPodNotFound)
	}
	delete(s.assumed, key)
	i := s.index[nodeName]
	ni := s.writable(i)
	var pi *PodInfo
	for _, p := range ni.Pods {
		if p.Key == key {
			pi = p
			break
		}
	}
	ni.RemovePod(key)
	if pi != nil {
		if s.pods != nil {
			s.pods.remove(pi, ni.labels)
		}
		if s.antiPods >= 0 && len(pi.requiredAnti) > 0 {
			s.antiPods--
		}
	}
	return nil
}

// hasRequiredAnti reports whether any pod has required anti-affinity, so
// pods without affinity skip the symmetry check.
func (s *Snapshot) hasRequiredAnti() bool {
	if s.antiPods < 0 {
		s.antiPods = 0
		for _, ni := range s.nodes {
			s.antiPods += ni.withRequiredAnti
		}
	}
	return s.antiPods > 0
}

// nodeLabel returns the value of label key of the named node.
func (s *Snapshot) nodeLabel(nodeName, key string) (string, bool) {
	ni := s.Get(nodeName)
	if ni == nil || ni.Node == nil {
		return "", false
	}
	v, ok := ni.labels[key]
	return v, ok
}

// domainValues returns the distinct values of node label key.
func (s *Snapshot) domainValues(key string) []string {
	if vs, ok := s.domains[key]; ok {
		return vs
	}
	seen := make(map[string]struct{})
	var vs []string
	for _, ni := range s.nodes {
		if v, ok := ni.labels[key]; ok {
			if _, dup := seen[v]; !dup {
				seen[v] = struct{}{}
				vs = append(vs, v)
			}
		}
	}
	if s.domains == nil {
		s.domains = make(map[string][]string)
	}
	s.domains[key] = vs
	return vs
}

// nodesWith returns the indexes of the nodes whose label key is value.
func (s *Snapshot) nodesWith(key, value string) []int {
	vals, ok := s.byNodeLabel[key]
	if !ok {
		vals = make(map[string][]int)
		for i, ni := range s.nodes {
			if v, ok := ni.labels[key]; ok {
				vals[v] = append(vals[v], i)
			}
		}
		if s.byNodeLabel == nil {
			s.byNodeLabel = make(map[string]map[string][]int)
		}
		s.byNodeLabel[key] = vals
	}
	return vals[value]
}

// podIndex finds pods by label and existing required anti-affinity terms
// by the distinct term, without scanning every pod. Value sets are maps so
// that removing one pod of a label shared by thousands stays cheap.
type podIndex struct {
	byLabel map[string]map[string]map[*PodInfo]struct{}
	// anti holds the distinct required anti-affinity terms of existing
	// pods, by term id; antiByLabel finds them from one matchLabels pair
	// of their selector (every selected pod must carry it), antiOther
	// holds the terms without matchLabels.
	anti        map[string]*antiGroup
	antiByLabel map[string]map[string]map[*antiGroup]struct{}
	antiOther   map[*antiGroup]struct{}
}

// antiGroup is one distinct required anti-affinity term and how many pods
// carrying it run in each topology domain.
type antiGroup struct {
	term    affinityTerm
	domains map[string]int
	pods    int
}

func (s *Snapshot) podIdx() *podIndex {
	if s.pods != nil {
		return s.pods
	}
	ix := &podIndex{
		byLabel:     make(map[string]map[string]map[*PodInfo]struct{}),
		anti:        make(map[string]*antiGroup),
		antiByLabel: make(map[string]map[string]map[*antiGroup]struct{}),
		antiOther:   make(map[*antiGroup]struct{}),
	}
	for _, ni := range s.nodes {
		for _, p := range ni.Pods {
			ix.add(p, ni.labels)
		}
	}
	s.pods = ix
	return ix
}

// add indexes p, running on a node with nodeLabels.
func (ix *podIndex) add(p *PodInfo, nodeLabels map[string]string) {
	for k, v := range p.Pod.Labels {
		vals := ix.byLabel[k]
		if vals == nil {
			vals = make(map[string]map[*PodInfo]struct{})
			ix.byLabel[k] = vals
		}
		set := vals[v]
		if set == nil {
			set = make(map[*PodInfo]struct{})
			vals[v] = set
		}
		set[p] = struct{}{}
	}
	for i := range p.requiredAnti {
		t := &p.requiredAnti[i]
		g := ix.anti[t.id]
		if g == nil {
			g = &antiGroup{term: *t, domains: make(map[string]int)}
			ix.anti[t.id] = g
			ix.indexAnti(g, true)
		}
		g.pods++
		if v, ok := nodeLabels[t.topologyKey]; ok {
			g.domains[v]++
		}
	}
}

// remove undoes add; nodeLabels must be those add saw.
func (ix *podIndex) remove(p *PodInfo, nodeLabels map[string]string) {
	for k, v := range p.Pod.Labels {
		if set := ix.byLabel[k][v]; set != nil {
			delete(set, p)
			if len(set) == 0 {
				delete(ix.byLabel[k], v)
			}
		}
	}
	for i := range p.requiredAnti {
		t := &p.requiredAnti[i]
		g := ix.anti[t.id]
		if g == nil {
			continue
		}
		if v, ok := nodeLabels[t.topologyKey]; ok {
			if g.domains[v]--; g.domains[v] <= 0 {
				delete(g.domains, v)
			}
		}
		if g.pods--; g.pods <= 0 {
			delete(ix.anti, t.id)
			ix.indexAnti(g, false)
		}
	}
}

// indexAnti adds or removes g in antiByLabel/antiOther, under the
// smallest key of its matchLabels.
func (ix *podIndex) indexAnti(g *antiGroup, add bool) {
	var key string
	found := false
	if g.term.src != nil {
		for k := range g.term.src.MatchLabels {
			if !found || k < key {
				key, found = k, true
			}
		}
	}
	if !found {
		if add {
			ix.antiOther[g] = struct{}{}
		} else {
			delete(ix.antiOther, g)
		}
		return
	}
	val := g.term.src.MatchLabels[key]
	vals := ix.antiByLabel[key]
	if vals == nil {
		vals = make(map[string]map[*antiGroup]struct{})
		ix.antiByLabel[key] = vals
	}
	set := vals[val]
	if set == nil {
		set = make(map[*antiGroup]struct{})
		vals[val] = set
	}
	if add {
		set[g] = struct{}{}
	} else if delete(set, g); len(set) == 0 {
		delete(vals, val)
	}
}

// forEachAntiSelecting calls fn for every existing anti-affinity term
// that selects pod.
func (ix *podIndex) forEachAntiSelecting(pod *api.Pod, fn func(*antiGroup)) {
	for k, v := range pod.Labels {
		for g := range ix.antiByLabel[k][v] {
			if g.term.matches(pod) {
				fn(g)
			}
		}
	}
	for g := range ix.antiOther {
		if g.term.matches(pod) {
			fn(g)
		}
	}
}

// forEachMatching calls fn for every pod selected by namespaces/selector
// of t, narrowing the candidates with the selector's most selective
// equality or In requirement.
func (s *Snapshot) forEachMatching(t *affinityTerm, fn func(*PodInfo)) {
	ix := s.podIdx()
	src := t.src
	if src == nil {
		return // a nil selector matches nothing
	}
	check := func(p *PodInfo) {
		if t.matches(p.Pod) {
			fn(p)
		}
	}
	if len(src.MatchLabels) > 0 {
		var best map[*PodInfo]struct{}
		first := true
		for k, v := range src.MatchLabels {
			c := ix.byLabel[k][v]
			if first || len(c) < len(best) {
				best, first = c, false
			}
		}
		for p := range best {
			check(p)
		}
		return
	}
	for _, e := range src.MatchExpressions {
		switch e.Operator {
		case api.LabelSelectorOpIn:
			seen := make(map[string]bool, len(e.Values))
			for _, v := range e.Values {
				if seen[v] {
					continue
				}
				seen[v] = true
				for p := range ix.byLabel[e.Key][v] {
					check(p)
				}
			}
			return
		case api.LabelSelectorOpExists:
			for _, set := range ix.byLabel[e.Key] {
				for p := range set {
					check(p)
				}
			}
			return
		}
	}
	for _, ni := range s.nodes {
		for _, p := range ni.Pods {
			check(p)
		}
	}
}
