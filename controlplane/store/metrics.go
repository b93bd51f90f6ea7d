package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's Prometheus metrics.
type Metrics struct {
	applyDuration prometheus.Histogram
	entryOps      prometheus.Histogram
	lastIndex     prometheus.Gauge
}

// NewMetrics creates the store's metrics and registers them on reg (nil:
// not registered). fsm, if given, backs the objects-by-kind and watcher
// gauges.
func NewMetrics(reg prometheus.Registerer, fsm func() *FSM) *Metrics {
	m := &Metrics{
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_store_apply_duration_seconds",
			Help:    "Time to apply one log entry to the state machine.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}),
		entryOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_store_entry_writes",
			Help:    "Writes carried by one log entry (batching).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		lastIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_store_applied_index",
			Help: "Index of the last log entry applied to the state machine.",
		}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.applyDuration, m.entryOps, m.lastIndex)
	if fsm != nil {
		reg.MustRegister(&objectsCollector{fsm: fsm})
	}
	return m
}

func (m *Metrics) observeApply(d time.Duration, ops int, index uint64) {
	m.applyDuration.Observe(d.Seconds())
	m.entryOps.Observe(float64(ops))
	m.lastIndex.Set(float64(index))
}

var (
	objectsDesc  = prometheus.NewDesc("skiff_store_objects", "Objects stored, by kind.", []string{"kind"}, nil)
	watchersDesc = prometheus.NewDesc("skiff_store_watchers", "Open store watchers.", nil, nil)
)

// objectsCollector reads counts at scrape time instead of tracking them on
// every write.
type objectsCollector struct{ fsm func() *FSM }

func (c *objectsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- objectsDesc
	ch <- watchersDesc
}

func (c *objectsCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.fsm()
	for k, n := range f.Counts() {
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(n), string(k))
	}
	ch <- prometheus.MustNewConstMetric(watchersDesc, prometheus.GaugeValue, float64(f.hub.count()))
}
