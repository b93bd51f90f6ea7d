package raftnode

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	leaderChanges prometheus.Counter
	commit        prometheus.Histogram
}

var (
	stateDesc   = prometheus.NewDesc("skiff_raft_state", "Raft state of this server: 0 follower, 1 candidate, 2 leader, 3 shutdown.", nil, nil)
	lastDesc    = prometheus.NewDesc("skiff_raft_last_index", "Index of the last entry in this server's log.", nil, nil)
	appliedDesc = prometheus.NewDesc("skiff_raft_applied_index", "Index of the last entry handed to the state machine.", nil, nil)
	commitDesc  = prometheus.NewDesc("skiff_raft_commit_index", "Index of the last committed entry known here.", nil, nil)
	leaderDesc  = prometheus.NewDesc("skiff_raft_is_leader", "1 if this server is the leader.", nil, nil)
)

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_raft_leader_changes_total",
			Help: "Leader changes observed by this server.",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_raft_commit_duration_seconds",
			Help:    "Time from proposing a log entry to its being applied here (leader only).",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.leaderChanges, m.commit, &stateCollector{n: n})
	}
	return m
}

// stateCollector reads Raft's state at scrape time.
type stateCollector struct{ n *Node }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{stateDesc, lastDesc, appliedDesc, commitDesc, leaderDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.n.raft
	var state float64
	switch r.State() {
	case raft.Candidate:
		state = 1
	case raft.Leader:
		state = 2
	case raft.Shutdown:
		state = 3
	}
	leader := 0.0
	if state == 2 {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, state)
	ch <- prometheus.MustNewConstMetric(lastDesc, prometheus.GaugeValue, float64(r.LastIndex()))
	ch <- prometheus.MustNewConstMetric(appliedDesc, prometheus.GaugeValue, float64(r.AppliedIndex()))
	ch <- prometheus.MustNewConstMetric(commitDesc, prometheus.GaugeValue, float64(r.CommitIndex()))
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leader)
}
