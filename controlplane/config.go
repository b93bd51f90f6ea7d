package controlplane

import (
	"log/slog"
	"time"

	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/scheduler"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is one server's configuration (the flags of `skiff server`).
type Config struct {
	DataDir  string // raft log, snapshots, admin.conf
	NodeID   string // raft server ID; defaults to the hostname
	RaftAddr string // host:port the Raft transport listens on (":0" picks a port)
	APIAddr  string // host:port the HTTP API listens on (":0" picks a port)
	// AdvertiseRaft/AdvertiseAPI override what peers dial (default: the
	// bound listener address).
	AdvertiseRaft string
	AdvertiseAPI  string
	Bootstrap     bool   // start a new single-server cluster
	Join          string // API address of any member to join through
	// Token is the server join token (K10<ca hash>::<id>.<secret>) a
	// joining server needs to get its certificate.
	Token string
	// AllowPrivileged admits privileged containers, host namespaces and
	// added capabilities (the secure default refuses them).
	AllowPrivileged bool
	// Network is the address plan the bootstrap server records for the
	// cluster (zero: store.DefaultNetwork). Other servers use the recorded
	// one.
	Network store.NetworkConfig
	// CloudProvider names the cloud provider ("local" by default, or
	// "fake"); Cloud configures it (the local provider's load-balancer
	// address pool).
	CloudProvider string
	Cloud         cloudprovider.Config
	// NodeGracePeriod is how long a node's agent may stay silent before the
	// node is marked unreachable and its pods evicted (default 10s).
	NodeGracePeriod time.Duration
	// SchedulerStrategy is how the scheduler ranks nodes that fit:
	// scheduler.LeastAllocated (spread, the default) or
	// scheduler.MostAllocated (bin-packing).
	SchedulerStrategy scheduler.ScoringStrategy
	// SchedulerBatchSize is the most pods placed per scheduling cycle and
	// bound per store write (default 500; 1 is kube-scheduler's mode, for
	// benchmarks).
	SchedulerBatchSize int
	// MetricsAddr, if set, serves /metrics without authentication on its
	// own plain-HTTP listener (for a Prometheus without a credential); the
	// API's /metrics always needs one.
	MetricsAddr string
	// Dev makes a single-server cluster that bootstraps itself when its
	// data dir is empty (skiff dev).
	Dev bool

	Build BuildInfo

	Logger *slog.Logger
	// Registry receives every metric and is served on /metrics (nil: a
	// fresh registry with the Go and process collectors).
	Registry *prometheus.Registry
	// Ready, if set, is closed once the server serves and admin.conf is
	// written.
	Ready chan<- struct{}
}

// BuildInfo identifies the binary (skiff_build_info).
type BuildInfo struct {
	Version, Commit, Date string
}
