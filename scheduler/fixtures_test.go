package scheduler

import (
	"fmt"
	"time"

	"github.com/skiffhq/skiff/api"
)

// testNode builds a ready node; opts adjust it.
func testNode(name, cpu, mem string, opts ...func(*api.Node)) *api.Node {
	n := &api.Node{
		ObjectMeta: api.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: api.NodeStatus{
			Allocatable: api.ResourceList{
				api.ResourceCPU:    api.MustParseQuantity(cpu),
				api.ResourceMemory: api.MustParseQuantity(mem),
				api.ResourcePods:   api.MustParseQuantity("110"),
			},
			Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func withLabels(kv ...string) func(*api.Node) {
	return func(n *api.Node) {
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withTaint(key, value string, effect api.TaintEffect) func(*api.Node) {
	return func(n *api.Node) {
		n.Spec.Taints = append(n.Spec.Taints, api.Taint{Key: key, Value: value, Effect: effect})
	}
}

func withMaxPods(p string) func(*api.Node) {
	return func(n *api.Node) { n.Status.Allocatable[api.ResourcePods] = api.MustParseQuantity(p) }
}

func cordoned(n *api.Node) { n.Spec.Unschedulable = true }

func notReady(n *api.Node) {
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionFalse}}
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testPod builds a pod in namespace "default" with one container
// requesting cpu and mem ("" for none).
func testPod(name, cpu, mem string, opts ...func(*api.Pod)) *api.Pod {
	req := api.ResourceList{}
	if cpu != "" {
		req[api.ResourceCPU] = api.MustParseQuantity(cpu)
	}
	if mem != "" {
		req[api.ResourceMemory] = api.MustParseQuantity(mem)
	}
	p := &api.Pod{
		ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{}, CreationTimestamp: api.NewTime(epoch)},
		Spec:       api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i", Resources: api.ResourceRequirements{Requests: req}}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func podLabels(kv ...string) func(*api.Pod) {
	return func(p *api.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func onNode(node string) func(*api.Pod) { return func(p *api.Pod) { p.Spec.NodeName = node } }

func hostPort(port int32, proto api.Protocol) func(*api.Pod) {
	return func(p *api.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, api.ContainerPort{ContainerPort: port, HostPort: port, Protocol: proto})
	}
}

func tolerate(key, value string, effect api.TaintEffect) func(*api.Pod) {
	return func(p *api.Pod) {
		op := api.TolerationOpEqual
		if value == "" {
			op = api.TolerationOpExists
		}
		p.Spec.Tolerations = append(p.Spec.Tolerations, api.Toleration{Key: key, Operator: op, Value: value, Effect: effect})
	}
}

func createdAt(t time.Time) func(*api.Pod) {
	return func(p *api.Pod) { p.CreationTimestamp = api.NewTime(t) }
}

func affinity(p *api.Pod) *api.Affinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &api.Affinity{}
	}
	return p.Spec.Affinity
}

func antiAffinity(key string, sel map[string]string) func(*api.Pod) {
	return func(p *api.Pod) {
		a := affinity(p)
		if a.PodAntiAffinity == nil {
			a.PodAntiAffinity = &api.PodAntiAffinity{}
		}
		a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
			api.PodAffinityTerm{LabelSelector: &api.LabelSelector{MatchLabels: sel}, TopologyKey: key})
	}
}

func podAffinity(key string, sel map[string]string) func(*api.Pod) {
	return func(p *api.Pod) {
		a := affinity(p)
		if a.PodAffinity == nil {
			a.PodAffinity = &api.PodAffinity{}
		}
		a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
			api.PodAffinityTerm{LabelSelector: &api.LabelSelector{MatchLabels: sel}, TopologyKey: key})
	}
}

func spread(key string, maxSkew int32, when api.UnsatisfiableConstraintAction, sel map[string]string) func(*api.Pod) {
	return func(p *api.Pod) {
		p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, api.TopologySpreadConstraint{
			MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when, LabelSelector: &api.LabelSelector{MatchLabels: sel},
		})
	}
}

// clusterNodes returns n identical nodes named node-0000...
func clusterNodes(n int, cpu, mem string, opts ...func(*api.Node)) []*api.Node {
	out := make([]*api.Node, n)
	for i := range out {
		out[i] = testNode(fmt.Sprintf("node-%04d", i), cpu, mem, opts...)
		out[i].Labels["topology.kubernetes.io/zone"] = fmt.Sprintf("zone-%d", i%3)
	}
	return out
}

// deploymentPods returns replicas pods labelled app=name.
func deploymentPods(name string, replicas int, cpu, mem string, opts ...func(*api.Pod)) []*api.Pod {
	out := make([]*api.Pod, replicas)
	for i := range out {
		o := append([]func(*api.Pod){podLabels("app", name)}, opts...)
		out[i] = testPod(fmt.Sprintf("%s-%d", name, i), cpu, mem, o...)
	}
	return out
}
