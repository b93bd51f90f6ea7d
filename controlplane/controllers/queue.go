package controllers

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/skiffhq/skiff/controlplane/store"
)

// Queue is a deduplicating work queue of keys: a key added while queued is
// queued once; a key added while being processed is processed again after.
// Failed keys come back after an exponential back-off.
type Queue[K comparable] struct {
	mu       sync.Mutex
	items    []K
	queued   map[K]bool
	active   map[K]bool
	dirty    map[K]bool
	failures map[K]int
	signal   chan struct{}
	after    func(time.Duration, func()) // injected for tests
}

// NewQueue returns an empty queue.
func NewQueue[K comparable]() *Queue[K] {
	return &Queue[K]{queued: map[K]bool{}, active: map[K]bool{}, dirty: map[K]bool{}, failures: map[K]int{},
		signal: make(chan struct{}, 1), after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// Add queues k.
func (q *Queue[K]) Add(k K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.active[k] {
		q.dirty[k] = true
		return
	}
	if q.queued[k] {
		return
	}
	q.queued[k] = true
	q.items = append(q.items, k)
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// Get blocks for the next key; ok is false once ctx is done. Call Done
// with the key when finished with it.
func (q *Queue[K]) Get(ctx context.Context) (k K, ok bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			k = q.items[0]
			q.items = q.items[1:]
			delete(q.queued, k)
			q.active[k] = true
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				select {
				case q.signal <- struct{}{}:
				default:
				}
			}
			return k, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return k, false
		case <-q.signal:
		}
	}
}

// Done finishes k: err != nil retries it after a back-off (5 ms doubling to
// 10 s); a key added meanwhile is queued again.
func (q *Queue[K]) Done(k K, err error) {
	q.mu.Lock()
	delete(q.active, k)
	again := q.dirty[k]
	delete(q.dirty, k)
	if err == nil {
		delete(q.failures, k)
	} else {
		q.failures[k]++
	}
	n := q.failures[k]
	q.mu.Unlock()
	switch {
	case again:
		q.Add(k)
	case err != nil:
		d := 5 * time.Millisecond << min(n-1, 11)
		q.after(min(d, 10*time.Second), func() { q.Add(k) })
	}
}

// Len is the number of queued keys.
func (q *Queue[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// work runs sync for the keys of q on n goroutines (the queue never hands
// one key to two of them at once) until ctx ends or the returned stop is
// called; the caller owns them and must call stop before returning (stop
// cancels the workers and waits for them, so a controller returning early
// on a failed watch does not hang).
func work(ctx context.Context, n int, q *Queue[store.Key], log *slog.Logger, syncKey func(context.Context, store.Key) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	record := syncRecorder(ctx)
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, ok := q.Get(ctx)
				if !ok {
					return
				}
				start := time.Now()
				err := syncKey(ctx, k)
				record(start, err, q.Len())
				if err != nil && ctx.Err() == nil {
					log.Warn("sync failed; will retry", "object", k.Namespace+"/"+k.Name, "err", err)
				}
				q.Done(k, err)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// applyOps writes ops in one log entry. Deletes of what is already gone,
// creates of what already exists and uid mismatches (someone else acted
// first) are not errors: the next pass sees the new state.
func applyOps(ctx context.Context, s Store, ops []store.Op) error {
	if len(ops) == 0 {
		return nil
	}
	res, err := s.Batch(ctx, ops)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, store.ErrNotFound) && !errors.Is(r.Err, store.ErrAlreadyExists) && !errors.Is(r.Err, store.ErrConflict) {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
