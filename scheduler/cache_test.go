package scheduler

import (
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func TestCacheSnapshotsShareUnchangedNodes(t *testing.T) {
	c := NewCache()
	for _, n := range clusterNodes(3, "4", "8Gi") {
		c.AddNode(n)
	}
	s1 := c.Snapshot()
	c.AddPod(testPod("p", "1", "1Gi", onNode("node-0001")))
	s2 := c.Snapshot()
	if s1.Get("node-0000") != s2.Get("node-0000") {
		t.Fatal("unchanged node copied")
	}
	if s1.Get("node-0001") == s2.Get("node-0001") {
		t.Fatal("changed node shared")
	}
	if s1.Get("node-0001").Requested.MilliCPU != 0 || s2.Get("node-0001").Requested.MilliCPU != 1000 {
		t.Fatal("snapshots not isolated")
	}
	// Assume in a snapshot must not leak into the cache or other snapshots.
	if err := s2.Assume(testPod("q", "1", ""), "node-0000"); err != nil {
		t.Fatal(err)
	}
	if c.Snapshot().Get("node-0000").Requested.MilliCPU != 0 || s1.Get("node-0000").Requested.MilliCPU != 0 {
		t.Fatal("snapshot Assume leaked")
	}
}

func TestCachePodLifecycle(t *testing.T) {
	c := NewCache()
	c.AddNode(testNode("n", "4", "8Gi"))
	pending := testPod("p", "1", "1Gi")
	c.AddPod(pending)
	if _, pods := c.Counts(); pods != 0 {
		t.Fatal("pending pod cached")
	}
	// Assume, then the store confirms.
	if err := c.AssumePod(pending, "n"); err != nil {
		t.Fatal(err)
	}
	c.UpdatePod(pending) // a stale unbound event must not undo the assumption
	if got := c.Snapshot().Get("n").Requested.MilliCPU; got != 1000 {
		t.Fatalf("requested %d", got)
	}
	bound := testPod("p", "1", "1Gi", onNode("n"))
	c.UpdatePod(bound)
	c.ForgetPod(bound) // confirmed: Forget is a no-op
	if got := c.Snapshot().Get("n").Requested.MilliCPU; got != 1000 {
		t.Fatalf("requested %d after confirm", got)
	}
	if err := c.AssumePod(bound, "n"); !errors.Is(err, ErrAlreadyBound) {
		t.Fatalf("assume of bound pod: %v", err)
	}
	// Finished pods free their room.
	done := testPod("p", "1", "1Gi", onNode("n"), func(p *api.Pod) { p.Status.Phase = api.PodSucceeded })
	c.UpdatePod(done)
	if got := c.Snapshot().Get("n").Requested.MilliCPU; got != 0 {
		t.Fatalf("requested %d after success", got)
	}
	// Assume then Forget.
	q := testPod("q", "2", "")
	if err := c.AssumePod(q, "n"); err != nil {
		t.Fatal(err)
	}
	c.ForgetPod(q)
	if got := c.Snapshot().Get("n").Requested.MilliCPU; got != 0 {
		t.Fatalf("requested %d after forget", got)
	}
	// Delete.
	c.AddPod(testPod("r", "1", "", onNode("n")))
	c.DeletePod(testPod("r", "", ""))
	if _, pods := c.Counts(); pods != 0 {
		t.Fatalf("%d pods left", pods)
	}
}

func TestCacheNodeLifecycle(t *testing.T) {
	c := NewCache()
	// A pod may arrive before its node.
	c.AddPod(testPod("p", "1", "", onNode("late")))
	if c.Snapshot().Len() != 0 {
		t.Fatal("node without object in snapshot")
	}
	c.AddNode(testNode("late", "4", "8Gi"))
	s := c.Snapshot()
	if s.Len() != 1 || s.Get("late").Requested.MilliCPU != 1000 {
		t.Fatalf("late node: %+v", s.Get("late"))
	}
	c.UpdateNode(testNode("late", "4", "8Gi", cordoned))
	if !c.Snapshot().Get("late").Node.Spec.Unschedulable {
		t.Fatal("update lost")
	}
	c.DeleteNode("late")
	if n, pods := c.Counts(); n != 0 || pods != 1 {
		t.Fatalf("after delete: %d nodes %d pods", n, pods)
	}
	c.DeletePod(testPod("p", "", ""))
	c.AddNode(testNode("late", "4", "8Gi"))
	if got := c.Snapshot().Get("late").Requested.MilliCPU; got != 0 {
		t.Fatalf("re-added node carries %d", got)
	}
}

// dumpIndex renders a snapshot's affinity index canonically.
func dumpIndex(s *Snapshot) string {
	ix := s.podIdx()
	var lines []string
	for k, vals := range ix.byLabel {
		for v, set := range vals {
			var keys []string
			for p := range set {
				keys = append(keys, string(p.Key)+"@"+p.NodeName)
			}
			sort.Strings(keys)
			lines = append(lines, fmt.Sprintf("label %s=%s %v", k, v, keys))
		}
	}
	for id, g := range ix.anti {
		lines = append(lines, fmt.Sprintf("anti %s pods=%d domains=%v", id, g.pods, g.domains))
	}
	n := 0
	for _, vals := range ix.antiByLabel {
		for _, set := range vals {
			n += len(set)
		}
	}
	lines = append(lines, fmt.Sprintf("antiIndexed=%d other=%d", n, len(ix.antiOther)))
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Property: a snapshot kept up to date with UpdateSnapshot has the same
// nodes and affinity index as a fresh one, whatever happened in between.
func TestUpdateSnapshotMatchesFresh(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	c := NewCache()
	for _, n := range clusterNodes(20, "64", "256Gi") {
		c.AddNode(n)
	}
	snap := c.Snapshot()
	snap.podIdx()
	s := New(Config{})
	var live []*api.Pod
	for round := 0; round < 60; round++ {
		// Schedule a small batch in the snapshot and keep half of it.
		var batch []*api.Pod
		for i := 0; i < 5; i++ {
			app := fmt.Sprintf("app-%d", rng.Intn(4))
			batch = append(batch, testPod(fmt.Sprintf("r%d-%d", round, i), "100m", "", podLabels("app", app),
				antiAffinity("kubernetes.io/hostname", map[string]string{"app": app})))
		}
		for i, r := range s.ScheduleBatch(snap, batch) {
			if r.NodeName == "" || i%2 == 1 {
				continue
			}
			if err := c.AssumePod(r.Pod, r.NodeName); err != nil {
				t.Fatal(err)
			}
			bound := *r.Pod
			bound.Spec.NodeName = r.NodeName
			live = append(live, &bound)
		}
		// Cluster churn: confirmations, deletions, node changes.
		switch rng.Intn(4) {
		case 0:
			if len(live) > 0 {
				i := rng.Intn(len(live))
				c.DeletePod(live[i])
				live = append(live[:i], live[i+1:]...)
			}
		case 1:
			for _, p := range live {
				c.UpdatePod(p)
			}
		case 2:
			name := fmt.Sprintf("node-%04d", rng.Intn(20))
			c.UpdateNode(testNode(name, "64", "256Gi", withLabels("round", fmt.Sprint(round))))
		case 3:
			c.AddNode(testNode(fmt.Sprintf("extra-%d", round), "64", "256Gi"))
		}
		c.UpdateSnapshot(snap)
		fresh := c.Snapshot()
		if got, want := dumpIndex(snap), dumpIndex(fresh); got != want {
			t.Fatalf("round %d: index drift\ngot:\n%s\nwant:\n%s", round, got, want)
		}
		if snap.Len() != fresh.Len() {
			t.Fatalf("round %d: %d nodes, want %d", round, snap.Len(), fresh.Len())
		}
		for i, ni := range snap.Nodes() {
			if ni != fresh.Nodes()[i] || ni.Requested != fresh.Nodes()[i].Requested {
				t.Fatalf("round %d: node %s differs", round, ni.Name())
			}
		}
	}
}
