package apiserver

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the API server's Prometheus metrics.
type Metrics struct {
	Requests    *prometheus.CounterVec
	Duration    *prometheus.HistogramVec
	OpenWatches prometheus.Gauge
	Forwarded   prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, still usable).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_apiserver_requests_total",
			Help: "API requests by verb, resource and HTTP code.",
		}, []string{"verb", "resource", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_apiserver_request_duration_seconds",
			Help:    "API request latency by verb and resource (watches excluded).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"verb", "resource"}),
		OpenWatches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_apiserver_open_watches",
			Help: "Watch streams currently open.",
		}),
		Forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_apiserver_forwarded_requests_total",
			Help: "Requests forwarded to the leader.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.OpenWatches, m.Forwarded)
	}
	return m
}
