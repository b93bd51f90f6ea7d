package scheduler

import (
	"reflect"
	"testing"

	"github.com/skiffhq/skiff/api"
)

// runFilter runs plugin's PreFilter (if any) and Filter for pod on the
// named node of snap; it returns the code and reasons.
func runFilter(t *testing.T, plugin FilterPlugin, snap *Snapshot, pod *api.Pod, node string) (Code, []string) {
	t.Helper()
	state := NewCycleState(pod)
	if pre, ok := plugin.(PreFilterPlugin); ok {
		st := pre.PreFilter(state, pod, snap)
		if st.Code() == Skip {
			return Success, nil
		}
		if !st.IsSuccess() {
			return st.Code(), st.Reasons()
		}
	}
	ni := snap.Get(node)
	if ni == nil {
		t.Fatalf("no node %s", node)
	}
	st := plugin.Filter(state, pod, ni)
	return st.Code(), st.Reasons()
}

type filterCase struct {
	name    string
	nodes   []*api.Node
	bound   []*api.Pod
	pod     *api.Pod
	node    string
	code    Code
	reasons []string
}

func runFilterCases(t *testing.T, plugin FilterPlugin, cases []filterCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := NewSnapshot(tc.nodes, tc.bound)
			node := tc.node
			if node == "" {
				node = tc.nodes[0].Name
			}
			code, reasons := runFilter(t, plugin, snap, tc.pod, node)
			if code != tc.code || !reflect.DeepEqual(reasons, tc.reasons) {
				t.Fatalf("got %v %q, want %v %q", code, reasons, tc.code, tc.reasons)
			}
		})
	}
}

func TestNodeUnschedulable(t *testing.T) {
	runFilterCases(t, &NodeUnschedulable{}, []filterCase{
		{name: "schedulable", nodes: []*api.Node{testNode("n", "1", "1Gi")}, pod: testPod("p", "", ""), code: Success},
		{name: "cordoned", nodes: []*api.Node{testNode("n", "1", "1Gi", cordoned)}, pod: testPod("p", "", ""),
			code: UnschedulableAndUnresolvable, reasons: []string{ReasonNodeUnschedulable}},
		{name: "cordoned but tolerated", nodes: []*api.Node{testNode("n", "1", "1Gi", cordoned)},
			pod: testPod("p", "", "", tolerate(TaintNodeUnschedulable, "", api.TaintEffectNoSchedule)), code: Success},
		{name: "tolerate everything", nodes: []*api.Node{testNode("n", "1", "1Gi", cordoned)},
			pod: testPod("p", "", "", tolerate("", "", "")), code: Success},
	})
}

func TestNodeReady(t *testing.T) {
	runFilterCases(t, &NodeReady{}, []filterCase{
		{name: "ready", nodes: []*api.Node{testNode("n", "1", "1Gi")}, pod: testPod("p", "", ""), code: Success},
		{name: "not ready", nodes: []*api.Node{testNode("n", "1", "1Gi", notReady)}, pod: testPod("p", "", ""),
			code: UnschedulableAndUnresolvable, reasons: []string{ReasonNodeNotReady}},
		{name: "no conditions", nodes: []*api.Node{testNode("n", "1", "1Gi", func(n *api.Node) { n.Status.Conditions = nil })},
			pod: testPod("p", "", ""), code: UnschedulableAndUnresolvable, reasons: []string{ReasonNodeNotReady}},
		{name: "not ready tolerated", nodes: []*api.Node{testNode("n", "1", "1Gi", notReady)},
			pod: testPod("p", "", "", tolerate(TaintNodeNotReady, "", "")), code: Success},
	})
}

func TestNodeName(t *testing.T) {
	nodes := []*api.Node{testNode("a", "1", "1Gi"), testNode("b", "1", "1Gi")}
	runFilterCases(t, &NodeName{}, []filterCase{
		{name: "unset", nodes: nodes, pod: testPod("p", "", ""), node: "a", code: Success},
		{name: "match", nodes: nodes, pod: testPod("p", "", "", onNode("a")), node: "a", code: Success},
		{name: "other", nodes: nodes, pod: testPod("p", "", "", onNode("a")), node: "b",
			code: UnschedulableAndUnresolvable, reasons: []string{ReasonNodeName}},
	})
}

func TestNodeResourcesFitFilter(t *testing.T) {
	n := func() []*api.Node { return []*api.Node{testNode("n", "2", "4Gi", withMaxPods("2"))} }
	runFilterCases(t, &NodeResourcesFit{}, []filterCase{
		{name: "fits empty", nodes: n(), pod: testPod("p", "2", "4Gi"), code: Success},
		{name: "no requests", nodes: n(), pod: testPod("p", "", ""), code: Success},
		{name: "cpu", nodes: n(), pod: testPod("p", "2100m", "1Gi"), code: Unschedulable, reasons: []string{ReasonInsufficientCPU}},
		{name: "memory", nodes: n(), pod: testPod("p", "1", "5Gi"), code: Unschedulable, reasons: []string{ReasonInsufficientMemory}},
		{name: "cpu and memory", nodes: n(), pod: testPod("p", "3", "5Gi"), code: Unschedulable,
			reasons: []string{ReasonInsufficientCPU, ReasonInsufficientMemory}},
		{name: "bound pods count", nodes: n(), bound: []*api.Pod{testPod("b", "1500m", "1Gi", onNode("n"))},
			pod: testPod("p", "600m", "1Gi"), code: Unschedulable, reasons: []string{ReasonInsufficientCPU}},
		{name: "exact fit with bound", nodes: n(), bound: []*api.Pod{testPod("b", "1500m", "1Gi", onNode("n"))},
			pod: testPod("p", "500m", "3Gi"), code: Success},
		{name: "too many pods", nodes: n(), bound: []*api.Pod{testPod("a", "", "", onNode("n")), testPod("b", "", "", onNode("n"))},
			pod: testPod("p", "", ""), code: Unschedulable, reasons: []string{ReasonTooManyPods}},
		{name: "finished pods free room", nodes: n(), bound: []*api.Pod{testPod("b", "2", "4Gi", onNode("n"), func(p *api.Pod) { p.Status.Phase = api.PodSucceeded })},
			pod: testPod("p", "2", "4Gi"), code: Success},
	})
}

func nodeAffinityPod(terms ...api.NodeSelectorTerm) func(*api.Pod) {
	return func(p *api.Pod) {
		affinity(p).NodeAffinity = &api.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &api.NodeSelector{NodeSelectorTerms: terms}}
	}
}

func expr(key string, op api.NodeSelectorOperator, values ...string) api.NodeSelectorTerm {
	return api.NodeSelectorTerm{MatchExpressions: []api.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func TestNodeAffinityFilter(t *testing.T) {
	nodes := []*api.Node{testNode("n", "1", "1Gi", withLabels("disk", "ssd", "cores", "8"))}
	fail := []string{ReasonNodeAffinity}
	U := UnschedulableAndUnresolvable
	sel := func(kv ...string) func(*api.Pod) {
		return func(p *api.Pod) {
			p.Spec.NodeSelector = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				p.Spec.NodeSelector[kv[i]] = kv[i+1]
			}
		}
	}
	runFilterCases(t, &NodeAffinity{}, []filterCase{
		{name: "none", nodes: nodes, pod: testPod("p", "", ""), code: Success},
		{name: "nodeSelector match", nodes: nodes, pod: testPod("p", "", "", sel("disk", "ssd")), code: Success},
		{name: "nodeSelector mismatch", nodes: nodes, pod: testPod("p", "", "", sel("disk", "hdd")), code: U, reasons: fail},
		{name: "nodeSelector missing", nodes: nodes, pod: testPod("p", "", "", sel("gpu", "yes")), code: U, reasons: fail},
		{name: "In", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpIn, "hdd", "ssd"))), code: Success},
		{name: "In mismatch", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpIn, "hdd"))), code: U, reasons: fail},
		{name: "NotIn", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpNotIn, "hdd"))), code: Success},
		{name: "NotIn mismatch", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpNotIn, "ssd"))), code: U, reasons: fail},
		{name: "NotIn absent label", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("gpu", api.NodeSelectorOpNotIn, "x"))), code: Success},
		{name: "Exists", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpExists))), code: Success},
		{name: "Exists mismatch", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("gpu", api.NodeSelectorOpExists))), code: U, reasons: fail},
		{name: "DoesNotExist", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("gpu", api.NodeSelectorOpDoesNotExist))), code: Success},
		{name: "DoesNotExist mismatch", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpDoesNotExist))), code: U, reasons: fail},
		{name: "Gt", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("cores", api.NodeSelectorOpGt, "4"))), code: Success},
		{name: "Gt mismatch", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("cores", api.NodeSelectorOpGt, "8"))), code: U, reasons: fail},
		{name: "Lt", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("cores", api.NodeSelectorOpLt, "16"))), code: Success},
		{name: "Lt not a number", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("disk", api.NodeSelectorOpLt, "16"))), code: U, reasons: fail},
		{name: "terms ORed", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(expr("gpu", api.NodeSelectorOpExists), expr("disk", api.NodeSelectorOpIn, "ssd"))), code: Success},
		{name: "expressions ANDed", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(api.NodeSelectorTerm{MatchExpressions: []api.NodeSelectorRequirement{
			{Key: "disk", Operator: api.NodeSelectorOpIn, Values: []string{"ssd"}}, {Key: "gpu", Operator: api.NodeSelectorOpExists}}})), code: U, reasons: fail},
		{name: "empty term matches nothing", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(api.NodeSelectorTerm{})), code: U, reasons: fail},
		{name: "matchFields name", nodes: nodes, pod: testPod("p", "", "", nodeAffinityPod(api.NodeSelectorTerm{MatchFields: []api.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: api.NodeSelectorOpIn, Values: []string{"n"}}}})), code: Success},
		{name: "selector and affinity both", nodes: nodes, pod: testPod("p", "", "", sel("disk", "ssd"), nodeAffinityPod(expr("cores", api.NodeSelectorOpGt, "10"))), code: U, reasons: fail},
	})
}

func TestTaintTolerationFilter(t *testing.T) {
	gpu := func() []*api.Node {
		return []*api.Node{testNode("n", "1", "1Gi", withTaint("dedicated", "gpu", api.TaintEffectNoSchedule))}
	}
	fail := []string{"node(s) had untolerated taint {dedicated: gpu}"}
	U := UnschedulableAndUnresolvable
	runFilterCases(t, &TaintToleration{}, []filterCase{
		{name: "no taints", nodes: []*api.Node{testNode("n", "1", "1Gi")}, pod: testPod("p", "", ""), code: Success},
		{name: "untolerated", nodes: gpu(), pod: testPod("p", "", ""), code: U, reasons: fail},
		{name: "tolerated Equal", nodes: gpu(), pod: testPod("p", "", "", tolerate("dedicated", "gpu", api.TaintEffectNoSchedule)), code: Success},
		{name: "tolerated Exists any effect", nodes: gpu(), pod: testPod("p", "", "", tolerate("dedicated", "", "")), code: Success},
		{name: "wrong value", nodes: gpu(), pod: testPod("p", "", "", tolerate("dedicated", "tpu", "")), code: U, reasons: fail},
		{name: "wrong effect", nodes: gpu(), pod: testPod("p", "", "", tolerate("dedicated", "gpu", api.TaintEffectNoExecute)), code: U, reasons: fail},
		{name: "NoExecute", nodes: []*api.Node{testNode("n", "1", "1Gi", withTaint("k", "v", api.TaintEffectNoExecute))}, pod: testPod("p", "", ""),
			code: U, reasons: []string{"node(s) had untolerated taint {k: v}"}},
		{name: "PreferNoSchedule passes", nodes: []*api.Node{testNode("n", "1", "1Gi", withTaint("k", "v", api.TaintEffectPreferNoSchedule))}, pod: testPod("p", "", ""), code: Success},
	})
}

func TestHostPortsFilter(t *testing.T) {
	n := func() []*api.Node { return []*api.Node{testNode("n", "1", "1Gi")} }
	bound := []*api.Pod{testPod("b", "", "", onNode("n"), hostPort(80, ""))}
	runFilterCases(t, &HostPorts{}, []filterCase{
		{name: "no ports", nodes: n(), bound: bound, pod: testPod("p", "", ""), code: Success},
		{name: "free", nodes: n(), bound: bound, pod: testPod("p", "", "", hostPort(81, api.ProtocolTCP)), code: Success},
		{name: "conflict (TCP default)", nodes: n(), bound: bound, pod: testPod("p", "", "", hostPort(80, api.ProtocolTCP)),
			code: Unschedulable, reasons: []string{ReasonHostPorts}},
		{name: "other protocol", nodes: n(), bound: bound, pod: testPod("p", "", "", hostPort(80, api.ProtocolUDP)), code: Success},
	})
}

func TestInterPodAffinityFilter(t *testing.T) {
	zoneNodes := func() []*api.Node {
		return []*api.Node{
			testNode("a1", "1", "1Gi", withLabels("zone", "a")),
			testNode("a2", "1", "1Gi", withLabels("zone", "a")),
			testNode("b1", "1", "1Gi", withLabels("zone", "b")),
			testNode("x", "1", "1Gi"), // no zone label
		}
	}
	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	host := "kubernetes.io/hostname"
	webOnA1 := []*api.Pod{testPod("w", "", "", onNode("a1"), podLabels("app", "web"))}
	runFilterCases(t, &InterPodAffinity{}, []filterCase{
		{name: "nothing", nodes: zoneNodes(), pod: testPod("p", "", ""), node: "a1", code: Success},
		{name: "anti same host", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", antiAffinity(host, web)), node: "a1",
			code: Unschedulable, reasons: []string{ReasonPodAntiAffinity}},
		{name: "anti other host", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", antiAffinity(host, web)), node: "a2", code: Success},
		{name: "anti same zone", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", antiAffinity("zone", web)), node: "a2",
			code: Unschedulable, reasons: []string{ReasonPodAntiAffinity}},
		{name: "anti other zone", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", antiAffinity("zone", web)), node: "b1", code: Success},
		{name: "anti node without key", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", antiAffinity("zone", web)), node: "x", code: Success},
		{name: "anti other namespace ignored", nodes: zoneNodes(),
			bound: []*api.Pod{testPod("w", "", "", onNode("a1"), podLabels("app", "web"), func(p *api.Pod) { p.Namespace = "other" })},
			pod:   testPod("p", "", "", antiAffinity(host, web)), node: "a1", code: Success},
		{name: "anti selector mismatch", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", antiAffinity(host, db)), node: "a1", code: Success},
		{name: "affinity same zone", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", podAffinity("zone", web)), node: "a2", code: Success},
		{name: "affinity other zone", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", podAffinity("zone", web)), node: "b1",
			code: UnschedulableAndUnresolvable, reasons: []string{ReasonPodAffinity}},
		{name: "affinity node without key", nodes: zoneNodes(), bound: webOnA1, pod: testPod("p", "", "", podAffinity("zone", web)), node: "x",
			code: UnschedulableAndUnresolvable, reasons: []string{ReasonPodAffinity}},
		{name: "affinity nothing matches anywhere", nodes: zoneNodes(), pod: testPod("p", "", "", podAffinity("zone", db)), node: "a1",
			code: UnschedulableAndUnresolvable, reasons: []string{ReasonPodAffinity}},
		{name: "affinity first of self-affine group", nodes: zoneNodes(), pod: testPod("p", "", "", podLabels("app", "db"), podAffinity("zone", db)), node: "b1", code: Success},
		{name: "existing pod anti-affinity (symmetry)", nodes: zoneNodes(),
			bound: []*api.Pod{testPod("w", "", "", onNode("a1"), antiAffinity("zone", map[string]string{"app": "batch"}))},
			pod:   testPod("p", "", "", podLabels("app", "batch")), node: "a2", code: Unschedulable, reasons: []string{ReasonExistingAntiAffinity}},
		{name: "existing pod anti-affinity other zone", nodes: zoneNodes(),
			bound: []*api.Pod{testPod("w", "", "", onNode("a1"), antiAffinity("zone", map[string]string{"app": "batch"}))},
			pod:   testPod("p", "", "", podLabels("app", "batch")), node: "b1", code: Success},
	})
}

func TestPodTopologySpreadFilter(t *testing.T) {
	nodes := func() []*api.Node {
		return []*api.Node{
			testNode("a1", "1", "1Gi", withLabels("zone", "a")),
			testNode("a2", "1", "1Gi", withLabels("zone", "a")),
			testNode("b1", "1", "1Gi", withLabels("zone", "b")),
			testNode("c1", "1", "1Gi", withLabels("zone", "c", "pool", "other")),
			testNode("x", "1", "1Gi"),
		}
	}
	web := map[string]string{"app": "web"}
	two := []*api.Pod{
		testPod("w1", "", "", onNode("a1"), podLabels("app", "web")),
		testPod("w2", "", "", onNode("b1"), podLabels("app", "web")),
	}
	p := func(opts ...func(*api.Pod)) *api.Pod {
		return testPod("p", "", "", append([]func(*api.Pod){podLabels("app", "web"), spread("zone", 1, api.DoNotSchedule, web)}, opts...)...)
	}
	runFilterCases(t, &PodTopologySpread{}, []filterCase{
		{name: "empty zone ok", nodes: nodes(), bound: two, pod: p(), node: "c1", code: Success},
		{name: "skew 2 rejected", nodes: nodes(), bound: two, pod: p(), node: "a2", code: Unschedulable, reasons: []string{ReasonTopologySpread}},
		{name: "missing label", nodes: nodes(), bound: two, pod: p(), node: "x", code: UnschedulableAndUnresolvable, reasons: []string{ReasonTopologySpreadMissingLabel}},
		{name: "maxSkew 2", nodes: nodes(), bound: two,
			pod: testPod("p", "", "", podLabels("app", "web"), spread("zone", 2, api.DoNotSchedule, web)), node: "a2", code: Success},
		{name: "ScheduleAnyway does not filter", nodes: nodes(), bound: two,
			pod: testPod("p", "", "", podLabels("app", "web"), spread("zone", 1, api.ScheduleAnyway, web)), node: "a2", code: Success},
		{name: "ineligible zone ignored by nodeSelector", nodes: nodes(), bound: two,
			pod: p(nodeAffinityPod(expr("pool", api.NodeSelectorOpDoesNotExist))), node: "a2", code: Success},
	})
}
