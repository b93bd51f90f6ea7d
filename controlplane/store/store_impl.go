package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
)

// Replicator is the replicated log the store writes through. controlplane's
// Raft node implements it; NewInMemory uses a local one.
type Replicator interface {
	// Apply appends cmd to the log and, once it is committed and applied to
	// the local FSM, returns the FSM's response. It returns ErrNotLeader
	// (nothing was appended) or ErrUnknownOutcome (leadership was lost after
	// appending).
	Apply(ctx context.Context, cmd []byte) (any, error)
	// ReadBarrier confirms leadership and returns once the local FSM holds
	// every write acknowledged before the call.
	ReadBarrier(ctx context.Context) error
	IsLeader() bool
}

// Options tunes the write path.
type Options struct {
	// MaxBatchOps caps the writes merged into one log entry (default 512).
	MaxBatchOps int
	// MaxInFlight caps log entries being committed at once (default 4).
	// While they are, new writes queue up and go out together.
	MaxInFlight int
	// Now returns the time written into entries (default time.Now).
	Now func() time.Time
}

// Store is the object store: reads from the local FSM, writes through the
// Replicator, with concurrent writes merged into shared log entries.
type Store struct {
	*FSM
	repl Replicator
	opts Options

	proposals chan *proposal
	inflight  chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ Interface = (*Store)(nil)

type proposal struct {
	recs [][]byte
	done chan proposalResult
}

type proposalResult struct {
	results []Result
	err     error
}

// New returns a store over fsm, writing through repl. Close stops it.
func New(fsm *FSM, repl Replicator, opts Options) *Store {
	if opts.MaxBatchOps <= 0 {
		opts.MaxBatchOps = 512
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		FSM: fsm, repl: repl, opts: opts,
		proposals: make(chan *proposal, 4096),
		inflight:  make(chan struct{}, opts.MaxInFlight),
		stop:      make(chan struct{}),
	}
	s.wg.Add(1)
	go s.batchLoop()
	return s
}

// Close stops the write loop; writes after Close fail.
func (s *Store) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// IsLeader reports whether writes can be made here.
func (s *Store) IsLeader() bool { return s.repl.IsLeader() }

// ReadBarrier makes the next local read linearizable.
func (s *Store) ReadBarrier(ctx context.Context) error { return s.repl.ReadBarrier(ctx) }

// Create stores a new object.
func (s *Store) Create(ctx context.Context, o api.Object) (api.Object, error) {
	return s.one(ctx, Op{Type: OpCreate, Object: o})
}

// Update replaces an object's metadata and spec (its status is kept).
func (s *Store) Update(ctx context.Context, o api.Object) (api.Object, error) {
	return s.one(ctx, Op{Type: OpUpdate, Object: o})
}

// UpdateStatus replaces an object's status only.
func (s *Store) UpdateStatus(ctx context.Context, o api.Object) (api.Object, error) {
	return s.one(ctx, Op{Type: OpUpdateStatus, Object: o})
}

// Delete removes an object (or marks it deleted while finalizers remain).
func (s *Store) Delete(ctx context.Context, key Key, pre Preconditions) (api.Object, error) {
	return s.one(ctx, Op{Type: OpDelete, Key: key, Preconditions: pre})
}

// SetMember records a server's addresses in the replicated state.
func (s *Store) SetMember(ctx context.Context, m Member) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.PutSystem(ctx, TableMembers, m.ID, b)
}

// PutSystem writes a system record.
func (s *Store) PutSystem(ctx context.Context, t SystemTable, key string, value []byte) error {
	return s.system(ctx, record{Type: opPutSystem, Kind: api.Kind(t), Name: key, Object: value})
}

// DeleteSystem removes a system record (ErrNotFound if there is none).
func (s *Store) DeleteSystem(ctx context.Context, t SystemTable, key string) error {
	return s.system(ctx, record{Type: opDeleteSystem, Kind: api.Kind(t), Name: key})
}

func (s *Store) system(ctx context.Context, r record) error {
	if r.Kind == "" || r.Name == "" {
		return fmt.Errorf("%w: system record needs a table and a key", ErrInvalid)
	}
	res, err := s.propose(ctx, [][]byte{r.marshal(nil)})
	if err != nil {
		return err
	}
	return res[0].Err
}

func (s *Store) one(ctx context.Context, op Op) (api.Object, error) {
	res, err := s.Batch(ctx, []Op{op})
	if err != nil {
		return nil, err
	}
	return res[0].Object, res[0].Err
}

// Batch commits ops in one log entry (shared with concurrent writers);
// each op succeeds or fails on its own.
func (s *Store) Batch(ctx context.Context, ops []Op) ([]Result, error) {
	recs := make([][]byte, 0, len(ops))
	results := make([]Result, len(ops))
	pos := make([]int, 0, len(ops))
	for i, op := range ops {
		r, err := encodeOp(op)
		if err == nil {
			recs = append(recs, r.marshal(nil))
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		pos = append(pos, i)
	}
	if len(recs) == 0 {
		return results, nil
	}
	res, err := s.propose(ctx, recs)
	if err != nil {
		return nil, err
	}
	for j, i := range pos {
		results[i] = res[j]
	}
	return results, nil
}

func (s *Store) propose(ctx context.Context, recs [][]byte) ([]Result, error) {
	if !s.repl.IsLeader() {
		return nil, ErrNotLeader
	}
	p := &proposal{recs: recs, done: make(chan proposalResult, 1)}
	select {
	case s.proposals <- p:
	case <-ctx.Done():
		return nil, ctx.Err() // not sent: nothing was written
	case <-s.stop:
		return nil, ErrNotLeader
	}
	select {
	case r := <-p.done:
		return r.results, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	}
}

// batchLoop merges queued proposals into log entries: it takes an in-flight
// slot first, so while every slot is busy, proposals accumulate and leave
// together.
func (s *Store) batchLoop() {
	defer s.wg.Done()
	for {
		select {
		case s.inflight <- struct{}{}:
		case <-s.stop:
			return
		}
		var first *proposal
		select {
		case first = <-s.proposals:
		case <-s.stop:
			return
		}
		batch := []*proposal{first}
		n := len(first.recs)
	drain:
		for n < s.opts.MaxBatchOps {
			select {
			case p := <-s.proposals:
				batch = append(batch, p)
				n += len(p.recs)
			default:
				break drain
			}
		}
		recs := make([][]byte, 0, n)
		for _, p := range batch {
			recs = append(recs, p.recs...)
		}
		data := appendCommand(s.opts.Now().UnixNano(), recs)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.inflight }()
			s.commit(batch, data)
		}()
	}
}

func (s *Store) commit(batch []*proposal, data []byte) {
	resp, err := s.repl.Apply(context.Background(), data)
	if err == nil {
		if e, ok := resp.(error); ok {
			err = e
		}
	}
	var results []Result
	if err == nil {
		var ok bool
		if results, ok = resp.([]Result); !ok {
			err = fmt.Errorf("store: unexpected apply response %T", resp)
		}
	}
	off := 0
	for _, p := range batch {
		if err != nil {
			p.done <- proposalResult{err: err}
			continue
		}
		p.done <- proposalResult{results: results[off : off+len(p.recs)]}
		off += len(p.recs)
	}
}

// localReplicator applies commands directly: a single in-process replica
// with no durability, for tests.
type localReplicator struct {
	mu    sync.Mutex
	fsm   *FSM
	index uint64
}

func (l *localReplicator) Apply(_ context.Context, cmd []byte) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index++
	return l.fsm.Apply(l.index, cmd), nil
}

func (l *localReplicator) ReadBarrier(context.Context) error { return nil }
func (l *localReplicator) IsLeader() bool                    { return true }

// NewInMemory returns a store that is always the leader and keeps nothing
// on disk: for unit tests of the layers above. Close it when done.
func NewInMemory(opts ...FSMOption) *Store {
	fsm := NewFSM(opts...)
	return New(fsm, &localReplicator{fsm: fsm}, Options{})
}

// IsRetryable reports errors after which the same write may safely be sent
// again (to the new leader): nothing was appended.
func IsRetryable(err error) bool { return errors.Is(err, ErrNotLeader) }
