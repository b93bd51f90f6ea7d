package scheduler

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/api"
)

// benchSchedule schedules 10,000 pods (100 Deployments of 100 replicas)
// onto 5,000 nodes in batches of 500, a fresh Cache snapshot per batch,
// as the server does. prebound pods (Deployments of the same shape) are
// already running, placed round-robin.
func benchSchedule(b *testing.B, anti bool, prebound int, cfg Config) {
	nodes := clusterNodes(5000, "32", "128Gi")
	deployment := func(prefix string, d int) []*api.Pod {
		name := fmt.Sprintf("%s-%03d", prefix, d)
		var opts []func(*api.Pod)
		if anti {
			opts = append(opts, antiAffinity("kubernetes.io/hostname", map[string]string{"app": name}))
		}
		return deploymentPods(name, 100, "100m", "128Mi", opts...)
	}
	var pods, running []*api.Pod
	for d := 0; d < 100; d++ {
		pods = append(pods, deployment("dep", d)...)
	}
	for d := 0; d < prebound/100; d++ {
		for i, p := range deployment("old", d) {
			p.Spec.NodeName = nodes[(d*100+i)%len(nodes)].Name
			running = append(running, p)
		}
	}
	const batch = 500
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		cache := NewCache()
		for _, n := range nodes {
			cache.AddNode(n)
		}
		for _, p := range running {
			cache.AddPod(p)
		}
		s := New(cfg)
		b.StartTimer()
		snap := cache.Snapshot()
		for i := 0; i < len(pods); i += batch {
			cache.UpdateSnapshot(snap)
			res := s.ScheduleBatch(snap, pods[i:i+batch])
			for _, r := range res {
				if r.NodeName == "" {
					b.Fatalf("%s unschedulable: %s", r.Pod.Name, r.Diagnosis.Message())
				}
				if err := cache.AssumePod(r.Pod, r.NodeName); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(len(pods)*b.N)/b.Elapsed().Seconds(), "pods/s")
}

func BenchmarkSchedule5000Nodes(b *testing.B) { benchSchedule(b, false, 0, Config{}) }

func BenchmarkSchedule5000NodesAntiAffinity(b *testing.B) { benchSchedule(b, true, 0, Config{}) }

// The last 10,000 of the 50,000 pods: 40,000 already bound.
func BenchmarkSchedule5000Nodes40kBound(b *testing.B) { benchSchedule(b, false, 40000, Config{}) }

func BenchmarkSchedule5000NodesAntiAffinity40kBound(b *testing.B) {
	benchSchedule(b, true, 40000, Config{})
}

// Scoring every feasible node instead of the adaptive sample.
func BenchmarkSchedule5000NodesScoreAll(b *testing.B) {
	benchSchedule(b, false, 0, Config{PercentageOfNodesToScore: 100})
}

// 40% of the nodes carry a taint the pods do not tolerate, as in the
// issue's example message: filter failures on the hot path.
func BenchmarkSchedule5000NodesTainted(b *testing.B) {
	nodes := clusterNodes(5000, "32", "128Gi")
	for i := range nodes {
		if i%5 < 2 {
			nodes[i].Spec.Taints = []api.Taint{{Key: "dedicated", Value: "gpu", Effect: api.TaintEffectNoSchedule}}
		}
	}
	pods := deploymentPods("web", 10000, "100m", "128Mi")
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		cache := NewCache()
		for _, n := range nodes {
			cache.AddNode(n)
		}
		s := New(Config{})
		b.StartTimer()
		snap := cache.Snapshot()
		for i := 0; i < len(pods); i += 500 {
			cache.UpdateSnapshot(snap)
			for _, r := range s.ScheduleBatch(snap, pods[i:i+500]) {
				if r.NodeName == "" {
					b.Fatal(r.Diagnosis.Message())
				}
				if err := cache.AssumePod(r.Pod, r.NodeName); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(len(pods)*b.N)/b.Elapsed().Seconds(), "pods/s")
}
