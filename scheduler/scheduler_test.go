package scheduler

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func scheduleAll(t *testing.T, s *Scheduler, snap *Snapshot, pods []*api.Pod) map[string]int {
	t.Helper()
	perNode := map[string]int{}
	for _, r := range s.ScheduleBatch(snap, pods) {
		if r.NodeName == "" {
			t.Fatalf("%s unschedulable: %s", r.Pod.Name, r.Diagnosis.Message())
		}
		perNode[r.NodeName]++
	}
	return perNode
}

func TestScheduleSpreadsWithLeastAllocated(t *testing.T) {
	snap := NewSnapshot(clusterNodes(10, "4", "8Gi"), nil)
	perNode := scheduleAll(t, New(Config{}), snap, deploymentPods("web", 30, "100m", "128Mi"))
	if len(perNode) != 10 {
		t.Fatalf("pods on %d nodes, want 10: %v", len(perNode), perNode)
	}
	for n, c := range perNode {
		if c != 3 {
			t.Fatalf("%s has %d pods, want 3: %v", n, c, perNode)
		}
	}
}

func TestScheduleBinPacksWithMostAllocated(t *testing.T) {
	snap := NewSnapshot(clusterNodes(10, "4", "8Gi"), nil)
	perNode := scheduleAll(t, New(Config{Strategy: MostAllocated}), snap, deploymentPods("web", 12, "1", "1Gi"))
	// 4 cpu per node: 12 one-cpu pods fill exactly 3 nodes.
	if len(perNode) != 3 {
		t.Fatalf("pods on %d nodes, want 3: %v", len(perNode), perNode)
	}
}

func TestScheduleAntiAffinityOnePerNode(t *testing.T) {
	snap := NewSnapshot(clusterNodes(5, "4", "8Gi"), nil)
	s := New(Config{})
	pods := deploymentPods("db", 6, "100m", "128Mi", antiAffinity("kubernetes.io/hostname", map[string]string{"app": "db"}))
	res := s.ScheduleBatch(snap, pods)
	seen := map[string]bool{}
	for _, r := range res[:5] {
		if r.NodeName == "" || seen[r.NodeName] {
			t.Fatalf("%s on %q (seen %v)", r.Pod.Name, r.NodeName, seen)
		}
		seen[r.NodeName] = true
	}
	if res[5].NodeName != "" {
		t.Fatalf("6th replica placed on %s", res[5].NodeName)
	}
	if got, want := res[5].Diagnosis.Message(), "0/5 nodes are available: 5 node(s) didn't match pod anti-affinity rules."; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestScheduleSymmetricAntiAffinity(t *testing.T) {
	nodes := clusterNodes(3, "4", "8Gi")
	bound := []*api.Pod{testPod("loner", "", "", onNode("node-0001"), antiAffinity("kubernetes.io/hostname", map[string]string{"app": "noisy"}))}
	snap := NewSnapshot(nodes, bound)
	s := New(Config{})
	for i := 0; i < 6; i++ {
		node, diag := s.SchedulePod(snap, testPod(fmt.Sprintf("n%d", i), "", "", podLabels("app", "noisy")))
		if node == "" || node == "node-0001" {
			t.Fatalf("placed on %q: %v", node, diag)
		}
	}
}

func TestScheduleTopologySpread(t *testing.T) {
	snap := NewSnapshot(clusterNodes(9, "8", "16Gi"), nil) // 3 zones x 3 nodes
	s := New(Config{Strategy: MostAllocated})              // bin-packing would pile into one zone without the constraint
	pods := deploymentPods("web", 9, "100m", "128Mi", spread("topology.kubernetes.io/zone", 1, api.DoNotSchedule, map[string]string{"app": "web"}))
	perZone := map[string]int{}
	for _, r := range s.ScheduleBatch(snap, pods) {
		if r.NodeName == "" {
			t.Fatal(r.Diagnosis.Message())
		}
		perZone[snap.Get(r.NodeName).Labels()["topology.kubernetes.io/zone"]]++
	}
	for z, c := range perZone {
		if c != 3 {
			t.Fatalf("zone %s has %d, want 3: %v", z, c, perZone)
		}
	}
}

func TestScheduleTaints(t *testing.T) {
	nodes := []*api.Node{
		testNode("gpu", "8", "16Gi", withTaint("dedicated", "gpu", api.TaintEffectNoSchedule)),
		testNode("plain", "1", "1Gi"),
	}
	s := New(Config{})
	snap := NewSnapshot(nodes, nil)
	if node, _ := s.SchedulePod(snap, testPod("p", "500m", "")); node != "plain" {
		t.Fatalf("untolerating pod on %q", node)
	}
	if node, _ := s.SchedulePod(snap, testPod("big", "4", "", tolerate("dedicated", "gpu", ""))); node != "gpu" {
		t.Fatalf("tolerating pod on %q", node)
	}
}

func TestUnschedulableMessage(t *testing.T) {
	var nodes []*api.Node
	for i := 0; i < 3000; i++ {
		nodes = append(nodes, testNode(fmt.Sprintf("small-%04d", i), "1", "64Gi"))
	}
	for i := 0; i < 2000; i++ {
		nodes = append(nodes, testNode(fmt.Sprintf("gpu-%04d", i), "64", "64Gi", withTaint("dedicated", "gpu", api.TaintEffectNoSchedule)))
	}
	snap := NewSnapshot(nodes, nil)
	node, diag := New(Config{}).SchedulePod(snap, testPod("huge", "8", "1Gi"))
	if node != "" {
		t.Fatalf("scheduled on %s", node)
	}
	want := "0/5000 nodes are available: 3000 Insufficient cpu, 2000 node(s) had untolerated taint {dedicated: gpu}."
	if got := diag.Message(); got != want {
		t.Fatalf("message\n%q\nwant\n%q", got, want)
	}
	if diag.Unresolvable {
		t.Fatal("insufficient cpu is resolvable")
	}
}

func TestDiagnosisMessageOrder(t *testing.T) {
	d := &Diagnosis{NumNodes: 7, Reasons: map[string]int{"b": 2, "a": 2, "c": 3}}
	if got, want := d.Message(), "0/7 nodes are available: 3 c, 2 a, 2 b."; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if got, want := (&Diagnosis{}).Message(), "0/0 nodes are available."; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

// Property: however pods of random sizes are batched onto small nodes, no
// node's requests exceed its allocatable.
func TestAssumeNeverOvercommits(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	nodes := clusterNodes(10, "4", "8Gi", withMaxPods("50"))
	cpus := []string{"100m", "250m", "500m", "1", "1500m"}
	mems := []string{"64Mi", "256Mi", "512Mi", "1Gi"}
	var pods []*api.Pod
	for i := 0; i < 1000; i++ {
		pods = append(pods, testPod(fmt.Sprintf("p%04d", i), cpus[rng.Intn(len(cpus))], mems[rng.Intn(len(mems))]))
	}
	for _, strategy := range []ScoringStrategy{LeastAllocated, MostAllocated} {
		snap := NewSnapshot(nodes, nil)
		res := New(Config{Strategy: strategy}).ScheduleBatch(snap, pods)
		placed := 0
		used := map[string]*Resources{}
		for _, r := range res {
			if r.NodeName == "" {
				continue
			}
			placed++
			pi := NewPodInfo(r.Pod)
			u := used[r.NodeName]
			if u == nil {
				u = &Resources{}
				used[r.NodeName] = u
			}
			u.MilliCPU += pi.Requests.MilliCPU
			u.Memory += pi.Requests.Memory
			u.Pods++
		}
		for name, u := range used {
			al := snap.Get(name).Allocatable
			if u.MilliCPU > al.MilliCPU || u.Memory > al.Memory || u.Pods > al.Pods {
				t.Fatalf("%s: %s overcommitted: %+v > %+v", strategy, name, *u, al)
			}
			if got := snap.Get(name).Requested; got != *u {
				t.Fatalf("%s: snapshot says %+v, sum is %+v", strategy, got, *u)
			}
		}
		if placed == 0 || placed == len(pods) {
			t.Fatalf("%s: placed %d of %d; the test wants a full cluster", strategy, placed, len(pods))
		}
	}
}

func TestSnapshotAssumeForget(t *testing.T) {
	nodes := []*api.Node{testNode("n", "1", "1Gi")}
	base := NewSnapshot(nodes, nil)
	shared := base.Nodes()[0]
	snap := newSnapshot([]*NodeInfo{shared}) // shares the NodeInfo, as Cache snapshots do
	pod := testPod("p", "1", "", hostPort(80, ""))
	if err := snap.Assume(pod, "n"); err != nil {
		t.Fatal(err)
	}
	if shared.Requested.MilliCPU != 0 {
		t.Fatal("Assume changed a shared NodeInfo")
	}
	s := New(Config{})
	if node, _ := s.SchedulePod(snap, testPod("q", "1", "")); node != "" {
		t.Fatalf("second 1-cpu pod placed on %s", node)
	}
	if err := snap.Assume(pod, "n"); err == nil {
		t.Fatal("double assume accepted")
	}
	if err := snap.Forget(pod); err != nil {
		t.Fatal(err)
	}
	if node, diag := s.SchedulePod(snap, testPod("q", "1", "", hostPort(80, ""))); node != "n" {
		t.Fatalf("after Forget: %q %v", node, diag)
	}
	if err := snap.Forget(pod); err == nil {
		t.Fatal("double forget accepted")
	}
	if err := snap.Assume(pod, "nope"); err == nil {
		t.Fatal("assume on unknown node accepted")
	}
}

func TestAssumeUpdatesAffinityIndex(t *testing.T) {
	snap := NewSnapshot(clusterNodes(2, "4", "8Gi"), nil)
	s := New(Config{})
	anti := antiAffinity("kubernetes.io/hostname", map[string]string{"app": "db"})
	p0 := testPod("db-0", "", "", podLabels("app", "db"), anti)
	n0, _ := s.SchedulePod(snap, p0) // builds the index
	if err := snap.Assume(p0, n0); err != nil {
		t.Fatal(err)
	}
	p1 := testPod("db-1", "", "", podLabels("app", "db"), anti)
	n1, _ := s.SchedulePod(snap, p1)
	if n1 == "" || n1 == n0 {
		t.Fatalf("db-1 on %q, db-0 on %q", n1, n0)
	}
	if err := snap.Forget(p0); err != nil {
		t.Fatal(err)
	}
	if err := snap.Assume(p1, n0); err != nil { // now free again
		t.Fatal(err)
	}
	p2 := testPod("db-2", "", "", podLabels("app", "db"), anti)
	if n2, _ := s.SchedulePod(snap, p2); n2 == "" || n2 == n0 {
		t.Fatalf("db-2 on %q with db-1 on %q", n2, n0)
	}
}

func TestPercentageOfNodesToScore(t *testing.T) {
	s := New(Config{})
	for _, tc := range []struct{ n, want int }{{50, 50}, {100, 100}, {1000, 420}, {5000, 500}, {20000, 1000}} {
		if got := s.numFeasibleToFind(tc.n); got != tc.want {
			t.Errorf("numFeasibleToFind(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	if got := New(Config{PercentageOfNodesToScore: 100}).numFeasibleToFind(5000); got != 5000 {
		t.Errorf("100%%: %d", got)
	}
}

func TestWeightZeroDisablesPlugin(t *testing.T) {
	s := New(Config{Weights: map[string]int64{"BalancedAllocation": 0}})
	for _, e := range s.scores {
		if e.score.Name() == "BalancedAllocation" {
			t.Fatal("disabled plugin still scores")
		}
	}
}

func TestInvalidSelectorIsAnError(t *testing.T) {
	pod := testPod("p", "", "", func(p *api.Pod) {
		affinity(p).PodAntiAffinity = &api.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []api.PodAffinityTerm{{
			LabelSelector: &api.LabelSelector{MatchExpressions: []api.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}, TopologyKey: "k"}}}
	})
	node, diag := New(Config{}).SchedulePod(NewSnapshot(clusterNodes(1, "1", "1Gi"), nil), pod)
	if node != "" || diag.Err == nil {
		t.Fatalf("got %q %+v", node, diag)
	}
}

// With the sampled search (PercentageOfNodesToScore), LeastAllocated still
// spreads evenly because the search window rotates.
func TestSampledSearchStillSpreads(t *testing.T) {
	snap := NewSnapshot(clusterNodes(1000, "32", "128Gi"), nil)
	perNode := scheduleAll(t, New(Config{}), snap, deploymentPods("web", 2000, "100m", "128Mi"))
	for n, c := range perNode {
		if c != 2 {
			t.Fatalf("%s has %d pods, want 2 (%d nodes used)", n, c, len(perNode))
		}
	}
}

// A self-affine Deployment: the first replica goes anywhere, the rest
// follow it into its zone within the same batch.
func TestSchedulePodAffinityColocatesBatch(t *testing.T) {
	snap := NewSnapshot(clusterNodes(9, "4", "8Gi"), nil)
	pods := deploymentPods("cache", 6, "100m", "", podAffinity("topology.kubernetes.io/zone", map[string]string{"app": "cache"}))
	zones := map[string]bool{}
	for _, r := range New(Config{}).ScheduleBatch(snap, pods) {
		if r.NodeName == "" {
			t.Fatal(r.Diagnosis.Message())
		}
		zones[snap.Get(r.NodeName).Labels()["topology.kubernetes.io/zone"]] = true
	}
	if len(zones) != 1 {
		t.Fatalf("replicas in zones %v", zones)
	}
}
