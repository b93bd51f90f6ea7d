package scheduler

import (
	"sort"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// PodKey identifies a pod: namespace/name.
type PodKey string

// KeyOf returns pod's key.
func KeyOf(pod *api.Pod) PodKey {
	return PodKey(pod.Namespace + "/" + pod.Name)
}

// Defaults for pods that request nothing, used only for scoring (as in
// kube-scheduler) so that best-effort pods still spread instead of piling
// onto the first node.
const (
	defaultMilliCPURequest int64 = 100               // 0.1 core
	defaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// Resources are the amounts the scheduler accounts for.
type Resources struct {
	MilliCPU int64
	Memory   int64
	Pods     int64
}

// HostPort is a node port a pod claims.
type HostPort struct {
	Protocol api.Protocol
	Port     int32
}

// PodInfo is a pod with what the scheduler derives from its spec, computed
// once (when the pod is scheduled or enters the cache) and then read-only.
type PodInfo struct {
	Pod *api.Pod
	Key PodKey
	// NodeName is where the pod is bound or assumed.
	NodeName string
	// Requests sums the containers' requests (Pods is 1).
	Requests Resources
	// NonZeroRequests is Requests with defaults for unset cpu and memory,
	// for scoring.
	NonZeroRequests Resources
	HostPorts       []HostPort
	// requiredAnti are the pod's required anti-affinity terms,
	// which other pods must respect (symmetry).
	requiredAnti      []affinityTerm
	requiredAffinity  []affinityTerm
	preferredAffinity []weightedTerm
	preferredAnti     []weightedTerm
	// parseErr is set when a selector of the pod is invalid (validation
	// should have rejected it; the pod is then unschedulable).
	parseErr error
}

// NewPodInfo derives a PodInfo from pod.
func NewPodInfo(pod *api.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod, Key: KeyOf(pod), NodeName: pod.Spec.NodeName}
	var cpu, mem int64
	cpuSet, memSet := false, false
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if q, ok := c.Resources.Requests[api.ResourceCPU]; ok {
			cpu += q.MilliValue()
			cpuSet = true
		}
		if q, ok := c.Resources.Requests[api.ResourceMemory]; ok {
			mem += q.Value()
			memSet = true
		}
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto := p.Protocol
			if proto == "" {
				proto = api.ProtocolTCP
			}
			pi.HostPorts = append(pi.HostPorts, HostPort{Protocol: proto, Port: p.HostPort})
		}
	}
	pi.Requests = Resources{MilliCPU: cpu, Memory: mem, Pods: 1}
	pi.NonZeroRequests = pi.Requests
	if !cpuSet || cpu == 0 {
		pi.NonZeroRequests.MilliCPU = defaultMilliCPURequest
	}
	if !memSet || mem == 0 {
		pi.NonZeroRequests.Memory = defaultMemoryRequest
	}
	if a := pod.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			pi.requiredAffinity = pi.parseTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution)
			pi.preferredAffinity = pi.parseWeighted(pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		if paa := a.PodAntiAffinity; paa != nil {
			pi.requiredAnti = pi.parseTerms(paa.RequiredDuringSchedulingIgnoredDuringExecution)
			pi.preferredAnti = pi.parseWeighted(paa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
	}
	return pi
}

// affinityTerm is a parsed PodAffinityTerm.
type affinityTerm struct {
	src         *api.LabelSelector
	selector    api.Selector
	namespaces  []string // nil with allNamespaces false: never
	allNS       bool
	topologyKey string
	// id is a canonical text of the term, equal for the identical terms
	// that every replica of a Deployment carries, so existing pods' terms
	// are indexed once per distinct term rather than once per pod.
	id string
}

type weightedTerm struct {
	affinityTerm
	weight int64
}

func (pi *PodInfo) parseTerms(terms []api.PodAffinityTerm) []affinityTerm {
	out := make([]affinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pi.Pod, &terms[i])
		if err != nil {
			pi.parseErr = err
			continue
		}
		out = append(out, t)
	}
	return out
}

func (pi *PodInfo) parseWeighted(terms []api.WeightedPodAffinityTerm) []weightedTerm {
	out := make([]weightedTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pi.Pod, &terms[i].PodAffinityTerm)
		if err != nil {
			pi.parseErr = err
			continue
		}
		out = append(out, weightedTerm{affinityTerm: t, weight: int64(terms[i].Weight)})
	}
	return out
}

// newAffinityTerm parses t of pod. Namespaces default to the pod's own; an
// empty namespaceSelector ({}) means all namespaces. A non-empty
// namespaceSelector needs namespace labels, which the scheduler does not
// have: such a term only matches the listed namespaces.
func newAffinityTerm(pod *api.Pod, t *api.PodAffinityTerm) (affinityTerm, error) {
	sel, err := t.LabelSelector.AsSelector()
	if err != nil {
		return affinityTerm{}, err
	}
	at := affinityTerm{src: t.LabelSelector, selector: sel, topologyKey: t.TopologyKey}
	ns := t.Namespaces
	if t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0 {
		at.allNS = true
	} else if len(ns) == 0 && t.NamespaceSelector == nil {
		ns = []string{pod.Namespace}
	}
	at.namespaces = append([]string(nil), ns...)
	sort.Strings(at.namespaces)
	var b strings.Builder
	b.WriteString(t.TopologyKey)
	b.WriteByte('|')
	if at.allNS {
		b.WriteString("*")
	} else {
		b.WriteString(strings.Join(at.namespaces, ","))
	}
	b.WriteByte('|')
	b.WriteString(sel.String())
	at.id = b.String()
	return at, nil
}

// matches reports whether pod is selected by the term.
func (t *affinityTerm) matches(pod *api.Pod) bool {
	if !t.allNS {
		found := false
		for _, ns := range t.namespaces {
			if ns == pod.Namespace {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return t.selector.Matches(pod.Labels)
}
