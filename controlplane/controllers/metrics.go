package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controllers' Prometheus metrics: per controller, how
// long each sync of a key takes, how it ended, and how many keys wait.
type Metrics struct {
	SyncDuration *prometheus.HistogramVec
	Syncs        *prometheus.CounterVec
	QueueDepth   *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_controller_sync_duration_seconds",
			Help:    "Time to sync one object, by controller.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}, []string{"controller"}),
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_controller_syncs_total",
			Help: "Object syncs by controller and result (success, error).",
		}, []string{"controller", "result"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_controller_queue_depth",
			Help: "Keys waiting in a controller's work queue.",
		}, []string{"controller"}),
	}
	if reg != nil {
		reg.MustRegister(m.SyncDuration, m.Syncs, m.QueueDepth)
	}
	return m
}

type metricsKey struct{}
type nameKey struct{}

// WithMetrics returns a context under which Run's controllers record m.
func WithMetrics(ctx context.Context, m *Metrics) context.Context {
	return context.WithValue(ctx, metricsKey{}, m)
}

// withName records the controller a context belongs to (Run sets it).
func withName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, nameKey{}, name)
}

// syncRecorder returns what work calls after each sync: a no-op without
// metrics in ctx.
func syncRecorder(ctx context.Context) func(start time.Time, err error, depth int) {
	m, _ := ctx.Value(metricsKey{}).(*Metrics)
	name, _ := ctx.Value(nameKey{}).(string)
	if m == nil || name == "" {
		return func(time.Time, error, int) {}
	}
	dur, ok, failed, depth := m.SyncDuration.WithLabelValues(name), m.Syncs.WithLabelValues(name, "success"),
		m.Syncs.WithLabelValues(name, "error"), m.QueueDepth.WithLabelValues(name)
	return func(start time.Time, err error, n int) {
		dur.Observe(time.Since(start).Seconds())
		if err != nil {
			failed.Inc()
		} else {
			ok.Inc()
		}
		depth.Set(float64(n))
	}
}
