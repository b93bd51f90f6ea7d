package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
)

// metrics are the proxier's Prometheus metrics:
//
//	skiff_proxy_mode_info{mode}                                1 for the datapath in use
//	skiff_proxy_sync_duration_seconds{mode,kind,result}        histogram of datapath writes (kind full: Sync, update: Update)
//	skiff_proxy_service_connections_total{namespace,service,port,protocol}
//	skiff_proxy_service_datagrams_total{namespace,service,port,protocol}
//	skiff_proxy_service_backends{namespace,service,port,protocol}
//	skiff_proxy_bpf_program_runs_total{program}                ebpf mode, while BPF statistics are on
//	skiff_proxy_bpf_program_run_seconds_total{program}
//
// The per-service and per-program series are read from the datapath when
// scraped.
type metrics struct {
	reg          prometheus.Registerer
	modeInfo     *prometheus.GaugeVec
	syncDuration *prometheus.HistogramVec
	updateOK     prometheus.Observer // syncDuration{mode, update, success}
	ports        *portCollector
}

func newMetrics(reg prometheus.Registerer, mode Mode, eng engine, state *programmedState) (*metrics, error) {
	m := &metrics{
		reg: reg,
		modeInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_proxy_mode_info",
			Help: "The service datapath in use: 1 for its mode (ebpf or userspace).",
		}, []string{"mode"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_proxy_sync_duration_seconds",
			Help:    "Time to write services into the datapath, by mode, kind (full: the whole set; update: changed services) and result.",
			Buckets: prometheus.ExponentialBuckets(0.000001, 2, 26),
		}, []string{"mode", "kind", "result"}),
		ports: &portCollector{eng: eng, state: state},
	}
	m.modeInfo.WithLabelValues(string(mode)).Set(1)
	m.updateOK = m.syncDuration.WithLabelValues(string(mode), "update", "success")
	if reg == nil {
		return m, nil
	}
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{m.modeInfo, m.syncDuration, m.ports} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, err
		}
		done = append(done, c)
	}
	return m, nil
}

func (m *metrics) observeSync(mode Mode, kind string, d time.Duration, err error) {
	if kind == "update" && err == nil {
		m.updateOK.Observe(d.Seconds()) // the hot path: no label lookup
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.syncDuration.WithLabelValues(string(mode), kind, result).Observe(d.Seconds())
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	m.reg.Unregister(m.modeInfo)
	m.reg.Unregister(m.syncDuration)
	m.reg.Unregister(m.ports)
}

var (
	portLabels       = []string{"namespace", "service", "port", "protocol"}
	connectionsDesc  = prometheus.NewDesc("skiff_proxy_service_connections_total", "New connections to a service port: TCP connections and UDP flows.", portLabels, nil)
	datagramsDesc    = prometheus.NewDesc("skiff_proxy_service_datagrams_total", "UDP datagrams clients sent to a service port.", portLabels, nil)
	backendsDesc     = prometheus.NewDesc("skiff_proxy_service_backends", "Ready backends of a service port.", portLabels, nil)
	counterErrorDesc = prometheus.NewDesc("skiff_proxy_counter_read_errors", "1 when the last scrape could not read the datapath's per-service counters.", nil, nil)
	progRunsDesc     = prometheus.NewDesc("skiff_proxy_bpf_program_runs_total", "Runs of an eBPF datapath program, counted while BPF statistics are on (skiff agent --bpf-stats or sysctl kernel.bpf_stats_enabled).", []string{"program"}, nil)
	progTimeDesc     = prometheus.NewDesc("skiff_proxy_bpf_program_run_seconds_total", "Time spent in an eBPF datapath program, counted while BPF statistics are on.", []string{"program"}, nil)
)

// statsEngine is an engine whose programs have kernel run statistics.
type statsEngine interface {
	programStats() (map[string]programStats, error)
}

type programStats struct {
	runs    uint64
	runTime time.Duration
}

// portCollector reports the served service ports and their counters, and
// the programs' run statistics where the engine has them.
type portCollector struct {
	eng   engine
	state *programmedState
}

func (c *portCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
	ch <- datagramsDesc
	ch <- backendsDesc
	ch <- counterErrorDesc
	if _, ok := c.eng.(statsEngine); ok {
		ch <- progRunsDesc
		ch <- progTimeDesc
	}
}

func (c *portCollector) Collect(ch chan<- prometheus.Metric) {
	if se, ok := c.eng.(statsEngine); ok {
		if stats, err := se.programStats(); err == nil {
			for name, st := range stats {
				ch <- prometheus.MustNewConstMetric(progRunsDesc, prometheus.CounterValue, float64(st.runs), name)
				ch <- prometheus.MustNewConstMetric(progTimeDesc, prometheus.CounterValue, st.runTime.Seconds(), name)
			}
		}
	}
	ports := c.state.ports()
	counters, err := c.eng.counters()
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(counterErrorDesc, prometheus.GaugeValue, failed)
	for _, p := range ports {
		port := p.PortName
		if port == "" {
			port = strconv.Itoa(int(p.Port))
		}
		labels := []string{p.Namespace, p.Service, port, string(p.Protocol)}
		ch <- prometheus.MustNewConstMetric(backendsDesc, prometheus.GaugeValue, float64(len(p.Backends)), labels...)
		if err != nil {
			continue
		}
		cs := counters[p.PortKey]
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.CounterValue, float64(cs.Connections), labels...)
		if p.Protocol == api.ProtocolUDP {
			ch <- prometheus.MustNewConstMetric(datagramsDesc, prometheus.CounterValue, float64(cs.Datagrams), labels...)
		}
	}
}
