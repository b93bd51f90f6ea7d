package cni

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Plugin operations, as the metrics label them.
const (
	opAdd   = "add"
	opDel   = "del"
	opCheck = "check"
)

// Metrics are the CNI network's Prometheus metrics.
type Metrics struct {
	// Duration of each plugin chain run, by operation (add, del, check)
	// and result (success, error).
	Duration *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_cni_operation_duration_seconds",
			Help:    "Time to run the CNI plugin chain for one sandbox, by operation (add, del, check) and result.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}, []string{"operation", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Duration)
	}
	return m
}

func (m *Metrics) observe(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.Duration.WithLabelValues(op, result).Observe(d.Seconds())
}
