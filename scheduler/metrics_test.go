package scheduler

import (
	"testing"

	"github.com/skiffhq/skiff/api"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMetricsNilSafe(t *testing.T) {
	var m *Metrics
	m.observeAttempt(resultScheduled, 0)
	m.observeBatch(3)
	m.ObserveBound(0)
	m.setPending(1, 2, 3)
	NewMetrics(nil) // unregistered is fine
}

func TestSchedulerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := New(Config{Metrics: m})
	snap := NewSnapshot(clusterNodes(2, "1", "1Gi"), nil)
	s.ScheduleBatch(snap, []*api.Pod{testPod("a", "1", ""), testPod("b", "1", ""), testPod("c", "1", "")})
	got := map[string]float64{}
	for _, mt := range gatherOne(t, reg, "skiff_scheduler_schedule_attempts_total") {
		got[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
	}
	if got[resultScheduled] != 2 || got[resultUnschedulable] != 1 {
		t.Fatalf("attempts %v", got)
	}
	if h := gatherOne(t, reg, "skiff_scheduler_batch_size")[0].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 3 {
		t.Fatalf("batch size %v", h)
	}
}

// gatherOne returns the series of the named metric family.
func gatherOne(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}
