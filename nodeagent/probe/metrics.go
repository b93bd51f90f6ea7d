package probe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the prober's Prometheus metrics: probe runs by kind and
// verdict, and how long they take.
type Metrics struct {
	Probes   *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_agent_probes_total",
			Help: "Container probe runs by kind (Liveness, Readiness, Startup) and result (success, failure, error).",
		}, []string{"kind", "result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_agent_probe_duration_seconds",
			Help:    "Time a container probe takes, by kind.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 9),
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.Probes, m.Duration)
	}
	return m
}

func (m *Metrics) observe(k Kind, out outcome, d time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	switch {
	case out.errored:
		result = "error"
	case out.result == Failure:
		result = "failure"
	}
	m.Probes.WithLabelValues(string(k), result).Inc()
	m.Duration.WithLabelValues(string(k)).Observe(d.Seconds())
}
