package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Scheduling attempt results (the "result" label).
const (
	resultScheduled     = "scheduled"
	resultUnschedulable = "unschedulable"
	resultError         = "error"
)

// Metrics are the scheduler's Prometheus metrics. A nil *Metrics records
// nothing, so every component works without them.
type Metrics struct {
	Attempts          *prometheus.CounterVec
	AttemptDuration   prometheus.Histogram
	SchedulingLatency prometheus.Histogram
	BatchSize         prometheus.Histogram
	Pending           *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, still usable).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_scheduler_schedule_attempts_total",
			Help: "Pod scheduling attempts by result (scheduled, unschedulable, error).",
		}, []string{"result"}),
		AttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_scheduler_attempt_duration_seconds",
			Help:    "Time to filter and score one pod.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}),
		SchedulingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_scheduler_scheduling_latency_seconds",
			Help:    "Time from a pod entering the scheduling queue to its binding being committed.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_scheduler_batch_size",
			Help:    "Pods scheduled per batch (bindings per store write).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_scheduler_pending_pods",
			Help: "Pods waiting in the scheduling queue by sub-queue (active, backoff, unschedulable).",
		}, []string{"queue"}),
	}
	if reg != nil {
		reg.MustRegister(m.Attempts, m.AttemptDuration, m.SchedulingLatency, m.BatchSize, m.Pending)
	}
	return m
}

func (m *Metrics) observeAttempt(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.Attempts.WithLabelValues(result).Inc()
	m.AttemptDuration.Observe(d.Seconds())
}

func (m *Metrics) observeBatch(n int) {
	if m == nil || n == 0 {
		return
	}
	m.BatchSize.Observe(float64(n))
}

// ObserveBound records the latency of a pod from entering the queue to
// its binding being committed; Queue.Bound calls it.
func (m *Metrics) ObserveBound(d time.Duration) {
	if m == nil {
		return
	}
	m.SchedulingLatency.Observe(d.Seconds())
}

func (m *Metrics) setPending(active, backoff, unschedulable int) {
	if m == nil {
		return
	}
	m.Pending.WithLabelValues("active").Set(float64(active))
	m.Pending.WithLabelValues("backoff").Set(float64(backoff))
	m.Pending.WithLabelValues("unschedulable").Set(float64(unschedulable))
}
