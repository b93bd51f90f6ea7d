package auth

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Gate defaults.
const (
	DefaultSystemSlots = 200
	DefaultNormalSlots = 400
	DefaultQueueWait   = time.Second
)

// Gate bounds the requests in flight per PriorityClass. Each class has its
// own slots, so users filling theirs never take a slot from nodes or
// servers. Long-running requests (watches) should not hold a slot. It is
// safe for concurrent use.
type Gate struct {
	slots [numClasses]chan struct{}
	wait  time.Duration
	// timer starts a timer; tests replace it to fire on demand.
	timer func(time.Duration) (<-chan time.Time, func())
}

// GateOption configures a Gate.
type GateOption func(*Gate)

// WithQueueWait sets how long Acquire queues for a slot before it gives up
// with ErrTooManyRequests (default DefaultQueueWait; 0 rejects at once when
// the class is full).
func WithQueueWait(d time.Duration) GateOption {
	return func(g *Gate) { g.wait = max(d, 0) }
}

// NewGate returns a Gate with systemSlots for PrioritySystem and
// normalSlots for PriorityNormal; zero or negative counts take the defaults.
func NewGate(systemSlots, normalSlots int, opts ...GateOption) *Gate {
	if systemSlots <= 0 {
		systemSlots = DefaultSystemSlots
	}
	if normalSlots <= 0 {
		normalSlots = DefaultNormalSlots
	}
	g := &Gate{wait: DefaultQueueWait, timer: realTimer}
	g.slots[PrioritySystem] = make(chan struct{}, systemSlots)
	g.slots[PriorityNormal] = make(chan struct{}, normalSlots)
	for _, o := range opts {
		o(g)
	}
	return g
}

func realTimer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Acquire takes a slot of class c, queueing up to the queue wait. It
// returns a release func to call (once; later calls do nothing) when the
// request is done, or ErrTooManyRequests when no slot freed in time, or
// ctx's error when the request was cancelled while queued.
func (g *Gate) Acquire(ctx context.Context, c PriorityClass) (release func(), err error) {
	if c < 0 || c >= numClasses {
		return nil, fmt.Errorf("acquire: unknown priority class %d", int(c))
	}
	sem := g.slots[c]
	select {
	case sem <- struct{}{}:
		return g.releaser(sem), nil
	default:
	}
	if g.wait == 0 {
		return nil, fmt.Errorf("%w: all %d %s slots are busy", ErrTooManyRequests, cap(sem), c)
	}
	expired, stop := g.timer(g.wait)
	defer stop()
	select {
	case sem <- struct{}{}:
		return g.releaser(sem), nil
	case <-expired:
		return nil, fmt.Errorf("%w: all %d %s slots stayed busy for %v", ErrTooManyRequests, cap(sem), c, g.wait)
	case <-ctx.Done():
		return nil, fmt.Errorf("acquire %s slot: %w", c, ctx.Err())
	}
}

func (g *Gate) releaser(sem chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { <-sem }) }
}

// InFlight returns the slots of class c in use, for metrics.
func (g *Gate) InFlight(c PriorityClass) int {
	if c < 0 || c >= numClasses {
		return 0
	}
	return len(g.slots[c])
}
