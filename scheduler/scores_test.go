package scheduler

import (
	"reflect"
	"testing"

	"github.com/skiffhq/skiff/api"
)

// runScore runs plugin's PreScore, Score and NormalizeScore over every node
// of snap; a skipped plugin gives nil.
func runScore(t *testing.T, plugin ScorePlugin, snap *Snapshot, pod *api.Pod) map[string]int64 {
	t.Helper()
	state := NewCycleState(pod)
	nodes := snap.Nodes()
	if pre, ok := plugin.(PreScorePlugin); ok {
		st := pre.PreScore(state, pod, snap, nodes)
		if st.Code() == Skip {
			return nil
		}
		if !st.IsSuccess() {
			t.Fatalf("PreScore: %v", st.Err())
		}
	}
	scores := make([]int64, len(nodes))
	for i, ni := range nodes {
		s, st := plugin.Score(state, pod, ni)
		if !st.IsSuccess() {
			t.Fatalf("Score: %v", st.Err())
		}
		scores[i] = s
	}
	if n, ok := plugin.(ScoreNormalizer); ok {
		if st := n.NormalizeScore(state, pod, scores); !st.IsSuccess() {
			t.Fatalf("NormalizeScore: %v", st.Err())
		}
	}
	out := make(map[string]int64, len(nodes))
	for i, ni := range nodes {
		out[ni.Name()] = scores[i]
	}
	return out
}

type scoreCase struct {
	name  string
	nodes []*api.Node
	bound []*api.Pod
	pod   *api.Pod
	want  map[string]int64
}

func runScoreCases(t *testing.T, plugin ScorePlugin, cases []scoreCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := runScore(t, plugin, NewSnapshot(tc.nodes, tc.bound), tc.pod)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResourceScores(t *testing.T) {
	nodes := func() []*api.Node {
		return []*api.Node{testNode("a", "4", "8Gi"), testNode("b", "4", "8Gi")}
	}
	// b already has 2 cpu / 4Gi used.
	bound := []*api.Pod{testPod("x", "2", "4Gi", onNode("b"))}
	runScoreCases(t, &NodeResourcesFit{Strategy: LeastAllocated}, []scoreCase{
		{name: "least allocated prefers empty", nodes: nodes(), bound: bound, pod: testPod("p", "1", "2Gi"),
			want: map[string]int64{"a": 75, "b": 25}},
		{name: "zero requests use defaults", nodes: nodes(), pod: testPod("p", "", ""),
			// cpu (4000-100)/4000 = 97, mem (8192-200)/8192 = 97
			want: map[string]int64{"a": 97, "b": 97}},
	})
	runScoreCases(t, &NodeResourcesFit{Strategy: MostAllocated}, []scoreCase{
		{name: "most allocated prefers full", nodes: nodes(), bound: bound, pod: testPod("p", "1", "2Gi"),
			want: map[string]int64{"a": 25, "b": 75}},
	})
	runScoreCases(t, &BalancedAllocation{}, []scoreCase{
		{name: "balanced", nodes: nodes(), pod: testPod("p", "2", "2Gi"),
			// a: cpu 0.5 mem 0.25 -> 1 - 0.125 = 87
			want: map[string]int64{"a": 87, "b": 87}},
		{name: "evens out", nodes: nodes(), bound: []*api.Pod{testPod("x", "", "4Gi", onNode("b"))}, pod: testPod("p", "2", "1Gi"),
			// a: 0.5/0.125 -> 81; b: cpu (100m+2)/4=0.525, mem 5Gi/8=0.625 -> 95
			want: map[string]int64{"a": 81, "b": 95}},
	})
}

func TestNodeAffinityScore(t *testing.T) {
	nodes := []*api.Node{
		testNode("a", "1", "1Gi", withLabels("disk", "ssd", "zone", "z1")),
		testNode("b", "1", "1Gi", withLabels("disk", "ssd")),
		testNode("c", "1", "1Gi"),
	}
	pref := func(p *api.Pod) {
		affinity(p).NodeAffinity = &api.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []api.PreferredSchedulingTerm{
			{Weight: 30, Preference: expr("disk", api.NodeSelectorOpIn, "ssd")},
			{Weight: 10, Preference: expr("zone", api.NodeSelectorOpExists)},
		}}
	}
	runScoreCases(t, &NodeAffinity{}, []scoreCase{
		{name: "no preference skips", nodes: nodes, pod: testPod("p", "", ""), want: nil},
		{name: "weights summed and normalised", nodes: nodes, pod: testPod("p", "", "", pref),
			want: map[string]int64{"a": 100, "b": 75, "c": 0}},
	})
}

func TestTaintTolerationScore(t *testing.T) {
	nodes := []*api.Node{
		testNode("a", "1", "1Gi"),
		testNode("b", "1", "1Gi", withTaint("k", "v", api.TaintEffectPreferNoSchedule)),
		testNode("c", "1", "1Gi", withTaint("k", "v", api.TaintEffectPreferNoSchedule), withTaint("k2", "v", api.TaintEffectPreferNoSchedule)),
	}
	runScoreCases(t, &TaintToleration{}, []scoreCase{
		{name: "no soft taints skips", nodes: []*api.Node{testNode("a", "1", "1Gi")}, pod: testPod("p", "", ""), want: nil},
		{name: "fewer soft taints better", nodes: nodes, pod: testPod("p", "", ""), want: map[string]int64{"a": 100, "b": 50, "c": 0}},
		{name: "tolerated soft taint", nodes: nodes, pod: testPod("p", "", "", tolerate("k", "v", api.TaintEffectPreferNoSchedule)),
			want: map[string]int64{"a": 100, "b": 100, "c": 0}},
	})
}

func preferredPodAffinity(anti bool, weight int32, key string, sel map[string]string) func(*api.Pod) {
	return func(p *api.Pod) {
		term := api.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: api.PodAffinityTerm{LabelSelector: &api.LabelSelector{MatchLabels: sel}, TopologyKey: key}}
		a := affinity(p)
		if anti {
			if a.PodAntiAffinity == nil {
				a.PodAntiAffinity = &api.PodAntiAffinity{}
			}
			a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, term)
			return
		}
		if a.PodAffinity == nil {
			a.PodAffinity = &api.PodAffinity{}
		}
		a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, term)
	}
}

func TestInterPodAffinityScore(t *testing.T) {
	nodes := []*api.Node{
		testNode("a", "1", "1Gi", withLabels("zone", "z1")),
		testNode("b", "1", "1Gi", withLabels("zone", "z1")),
		testNode("c", "1", "1Gi", withLabels("zone", "z2")),
	}
	bound := []*api.Pod{
		testPod("cache", "", "", onNode("a"), podLabels("app", "cache")),
		testPod("web", "", "", onNode("c"), podLabels("app", "web")),
	}
	runScoreCases(t, &InterPodAffinity{}, []scoreCase{
		{name: "no preferences skips", nodes: nodes, bound: bound, pod: testPod("p", "", ""), want: nil},
		{name: "prefer zone with cache", nodes: nodes, bound: bound,
			pod:  testPod("p", "", "", preferredPodAffinity(false, 50, "zone", map[string]string{"app": "cache"})),
			want: map[string]int64{"a": 100, "b": 100, "c": 0}},
		{name: "avoid host with web", nodes: nodes, bound: bound,
			pod:  testPod("p", "", "", preferredPodAffinity(true, 50, "kubernetes.io/hostname", map[string]string{"app": "web"})),
			want: map[string]int64{"a": 100, "b": 100, "c": 0}},
		{name: "affinity and anti combined", nodes: nodes, bound: bound,
			pod: testPod("p", "", "",
				preferredPodAffinity(false, 20, "kubernetes.io/hostname", map[string]string{"app": "cache"}),
				preferredPodAffinity(true, 40, "zone", map[string]string{"app": "web"})),
			// a: +20, b: 0, c: -40
			want: map[string]int64{"a": 100, "b": 66, "c": 0}},
	})
}

func TestPodTopologySpreadScore(t *testing.T) {
	nodes := []*api.Node{
		testNode("a1", "1", "1Gi", withLabels("zone", "a")),
		testNode("b1", "1", "1Gi", withLabels("zone", "b")),
		testNode("c1", "1", "1Gi", withLabels("zone", "c")),
		testNode("x", "1", "1Gi"),
	}
	web := map[string]string{"app": "web"}
	bound := []*api.Pod{
		testPod("w1", "", "", onNode("a1"), podLabels("app", "web")),
		testPod("w2", "", "", onNode("a1"), podLabels("app", "web")),
		testPod("w3", "", "", onNode("b1"), podLabels("app", "web")),
	}
	runScoreCases(t, &PodTopologySpread{}, []scoreCase{
		{name: "no constraints skips", nodes: nodes, bound: bound, pod: testPod("p", "", ""), want: nil},
		{name: "DoNotSchedule only skips", nodes: nodes, bound: bound, pod: testPod("p", "", "", spread("zone", 1, api.DoNotSchedule, web)), want: nil},
		{name: "emptier zones better, missing key worst", nodes: nodes, bound: bound,
			pod:  testPod("p", "", "", podLabels("app", "web"), spread("zone", 1, api.ScheduleAnyway, web)),
			want: map[string]int64{"a1": 0, "b1": 50, "c1": 100, "x": 0}},
	})
}
