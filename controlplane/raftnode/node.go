package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/controlplane/store"
)

// ServerID names a member of the Raft group.
type ServerID string

// Timing holds the Raft timeouts. The library's defaults (1 s heartbeat)
// make failover take seconds; skiff's defaults aim at sub-second.
type Timing struct {
	Heartbeat   time.Duration // follower waits this long (randomised up to 2x) before an election
	Election    time.Duration // candidate's election timeout
	LeaderLease time.Duration // leader steps down after this long without a quorum
	Commit      time.Duration // leader heartbeat when idle
}

// DefaultTiming is tuned for fast failover on a LAN or loopback (kill -9
// of the leader to the next acknowledged write: p50 ~250 ms here). 250 ms
// timeouts were tried to ride out CPU starvation (three servers and 5,000
// simulated nodes on two cores lose the leader every few seconds): they
// did not stop the churn at that load and made every failover 2.7x slower
// (p50 679 ms), so the fast timings stay.
var DefaultTiming = Timing{
	Heartbeat:   100 * time.Millisecond,
	Election:    100 * time.Millisecond,
	LeaderLease: 100 * time.Millisecond,
	Commit:      5 * time.Millisecond,
}

// Config configures a Node.
type Config struct {
	ID        ServerID
	DataDir   string // raft.db and snapshots/ go here
	BindAddr  string // host:port to listen on
	Advertise string // host:port peers dial (default: the bound address)
	// Bootstrap makes a new single-member cluster if there is no state yet.
	Bootstrap bool
	// TLS, if set, makes the transport mutual TLS between servers of this
	// cluster (plain TCP otherwise: tests and single-process dev only).
	TLS    *PeerTLS
	Timing Timing
	// OnLeader runs (in its own goroutine) each time this node becomes the
	// leader and has applied every earlier entry; its context is cancelled
	// the moment leadership is lost or the node shuts down.
	OnLeader func(ctx context.Context)
	Logger   *slog.Logger
	// RaftLogLevel is the hclog level of the library's own log ("warn").
	RaftLogLevel string
	Registerer   prometheus.Registerer
}

// Node is one running Raft member. It implements store.Replicator.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *store.FSM
	logs      *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	log       *slog.Logger
	metrics   *metrics

	// readyGen is the leadership generation whose barrier has completed
	// (0: none); leaderGen counts leadership acquisitions.
	leaderGen atomic.Uint64
	readyGen  atomic.Uint64

	notify   chan bool
	observer *raft.Observer
	obsCh    chan raft.Observation
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

var _ store.Replicator = (*Node)(nil)

// New opens (or creates) the node's data and starts Raft.
func New(cfg Config, fsm *store.FSM) (*Node, error) {
	if cfg.ID == "" {
		return nil, errors.New("raft: server id is required")
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RaftLogLevel == "" {
		cfg.RaftLogLevel = "warn"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raft: create data dir: %w", err)
	}
	n := &Node{cfg: cfg, fsm: fsm, log: cfg.Logger.With("component", "raft"),
		notify: make(chan bool, 1), stop: make(chan struct{}), obsCh: make(chan raft.Observation, 16)}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft." + string(cfg.ID), Level: hclog.LevelFromString(cfg.RaftLogLevel), Output: os.Stderr})

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("raft: open log store: %w", err)
	}
	n.logs = logs
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raft: open snapshot store: %w", err)
	}
	var adv net.Addr
	if cfg.Advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.Advertise); err != nil {
			logs.Close()
			return nil, fmt.Errorf("raft: advertise address %q: %w", cfg.Advertise, err)
		}
	}
	var trans *raft.NetworkTransport
	if cfg.TLS != nil {
		var stream *tlsStream
		if stream, err = newTLSStream(cfg.BindAddr, adv, cfg.TLS); err == nil {
			trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 8, Timeout: 5 * time.Second, Logger: hlog})
		}
	} else {
		trans, err = raft.NewTCPTransportWithLogger(cfg.BindAddr, adv, 8, 5*time.Second, hlog)
	}
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raft: listen on %s: %w", cfg.BindAddr, err)
	}
	n.transport = trans

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.Timing.Heartbeat
	rc.ElectionTimeout = cfg.Timing.Election
	rc.LeaderLeaseTimeout = cfg.Timing.LeaderLease
	rc.CommitTimeout = cfg.Timing.Commit
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = 16384
	rc.TrailingLogs = 10240
	rc.NotifyCh = n.notify
	rc.Logger = hlog

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, logs, snaps)
		if err != nil {
			n.closeStores()
			return nil, fmt.Errorf("raft: inspect state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter}}}
			if err := raft.BootstrapCluster(rc, logs, logs, snaps, trans, conf); err != nil {
				n.closeStores()
				return nil, fmt.Errorf("raft: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, &fsmAdapter{fsm: fsm}, logs, logs, snaps, trans)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("raft: start: %w", err)
	}
	n.raft = r
	n.metrics = newMetrics(cfg.Registerer, n)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(2)
	go n.leadershipLoop()
	go n.observeLoop()
	return n, nil
}

func (n *Node) closeStores() {
	if n.transport != nil {
		n.transport.Close()
	}
	n.logs.Close()
}

// Addr is the address peers reach this node's transport at.
func (n *Node) Addr() string { return string(n.transport.LocalAddr()) }

// ID is this node's server ID.
func (n *Node) ID() ServerID { return n.cfg.ID }

// leadershipLoop follows leadership changes: on gaining it, it waits for a
// barrier (every earlier entry applied), marks the node ready for
// linearizable reads and starts OnLeader; on losing it, it cancels OnLeader
// at once.
func (n *Node) leadershipLoop() {
	defer n.wg.Done()
	var cancel context.CancelFunc = func() {}
	var leaderWG sync.WaitGroup
	defer func() { cancel(); leaderWG.Wait() }()
	for {
		select {
		case <-n.stop:
			return
		case isLeader := <-n.notify:
			cancel()
			n.readyGen.Store(0)
			if !isLeader {
				n.log.Info("lost leadership")
				continue
			}
			gen := n.leaderGen.Add(1)
			ctx, stopLeading := context.WithCancel(context.Background())
			cancel = stopLeading
			leaderWG.Add(1)
			go func() {
				defer leaderWG.Done()
				if err := n.raft.Barrier(10 * time.Second).Error(); err != nil {
					n.log.Warn("leader barrier failed", "err", err)
					return
				}
				if ctx.Err() != nil || n.leaderGen.Load() != gen {
					return
				}
				n.readyGen.Store(gen)
				n.log.Info("became leader", "index", n.raft.LastIndex())
				if n.cfg.OnLeader != nil {
					n.cfg.OnLeader(ctx)
				}
			}()
		}
	}
}

func (n *Node) observeLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case o := <-n.obsCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				n.metrics.leaderChanges.Inc()
				n.log.Debug("leader changed", "leader", lo.LeaderID)
			}
		}
	}
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Ready reports whether a leader is known and this node has applied what
// it knows to be committed.
func (n *Node) Ready() bool {
	if n.IsLeader() {
		return n.readyGen.Load() != 0
	}
	_, id := n.raft.LeaderWithID()
	return id != ""
}

// Leader returns the current leader's ID and Raft address ("" if unknown).
func (n *Node) Leader() (ServerID, string) {
	addr, id := n.raft.LeaderWithID()
	return ServerID(id), string(addr)
}

// Apply implements store.Replicator.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	start := time.Now()
	f := n.raft.Apply(cmd, 5*time.Second)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, fmt.Errorf("%w: %v", store.ErrNotLeader, err)
		default:
			return nil, fmt.Errorf("%w: %v", store.ErrUnknownOutcome, err)
		}
	}
	n.metrics.commit.Observe(time.Since(start).Seconds())
	return f.Response(), nil
}

// ReadBarrier implements store.Replicator: the leader confirms it still
// leads (a heartbeat round with a quorum) after its start-of-term barrier,
// so the local FSM holds every acknowledged write.
func (n *Node) ReadBarrier(ctx context.Context) error {
	for n.readyGen.Load() == 0 || n.readyGen.Load() != n.leaderGen.Load() {
		if !n.IsLeader() {
			return store.ErrNotLeader
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("%w: %v", store.ErrNotLeader, err)
	}
	return nil
}

// AddVoter adds (or re-addresses) a server; only the leader can.
func (n *Node) AddVoter(ctx context.Context, id ServerID, addr string) error {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("%w: %v", store.ErrNotLeader, err)
		}
		return fmt.Errorf("add voter %s at %s: %w", id, addr, err)
	}
	return nil
}

// RemoveServer removes a server from the group; only the leader can.
func (n *Node) RemoveServer(id ServerID) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// Server is one member of the Raft configuration.
type Server struct {
	ID       ServerID
	Address  string
	Suffrage string
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: ServerID(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	return out, nil
}

// LastIndex is the index of the last log entry; AppliedIndex the last one
// handed to the FSM.
func (n *Node) LastIndex() uint64    { return n.raft.LastIndex() }
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// State is "Leader", "Follower", "Candidate" or "Shutdown".
func (n *Node) State() string { return n.raft.State().String() }

// Snapshot forces a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Shutdown stops Raft and closes the stores. A leader does not hand over
// leadership first: followers elect a new one within the election timeout.
func (n *Node) Shutdown() error {
	var err error
	n.stopOnce.Do(func() {
		close(n.stop)
		n.raft.DeregisterObserver(n.observer)
		err = n.raft.Shutdown().Error()
		n.wg.Wait()
		n.transport.Close()
		if cerr := n.logs.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// fsmAdapter connects hashicorp/raft to store.FSM.
type fsmAdapter struct{ fsm *store.FSM }

func (a *fsmAdapter) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return a.fsm.Apply(l.Index, l.Data)
}

func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	_, persist := a.fsm.Snapshot()
	return &fsmSnapshot{persist: persist}, nil
}

func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return a.fsm.Restore(rc)
}

type fsmSnapshot struct{ persist func(io.Writer) error }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
