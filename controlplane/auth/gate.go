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
	// DefaultQueueWait is how long a user's request queues for a slot.
	DefaultQueueWait = time.Second
	// DefaultSystemQueueWait is how long a node's or server's request
	// queues. Their callers retry a 429 anyway, and a retried request
	// costs the server a second decode and TLS round for nothing: at
	// 5,000 nodes, a 1 s wait turned a status-write burst into 170,000
	// rejected requests. Waiting is cheaper (Kubernetes' priority and
	// fairness likewise queues for up to its request timeout).
	DefaultSystemQueueWait = 15 * time.Second
)

// Gate bounds the requests in flight per PriorityClass. Each class has its
// own slots, so users filling theirs never take a slot from nodes or
// servers. Long-running requests (watches) should not hold a slot. It is
// safe for concurrent use.
type Gate struct {
	slots [numClasses]chan struct{}
	wait  [numClasses]time.Duration
	// timer starts a timer; tests replace it to fire on demand.
	timer func(time.Duration) (<-chan time.Time, func())
}

// GateOption configures a Gate.
type GateOption func(*Gate)

// WithQueueWait sets how long Acquire queues for a slot of any class
// before it gives up with ErrTooManyRequests (defaults DefaultQueueWait and
// DefaultSystemQueueWait; 0 rejects at once when the class is full).
func WithQueueWait(d time.Duration) GateOption {
	return func(g *Gate) {
		for c := range g.wait {
			g.wait[c] = max(d, 0)
		}
	}
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
	g := &Gate{timer: realTimer}
	g.wait[PrioritySystem] = DefaultSystemQueueWait
	g.wait[PriorityNormal] = DefaultQueueWait
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
	wait := g.wait[c]
	if wait == 0 {
		return nil, fmt.Errorf("%w: all %d %s slots are busy", ErrTooManyRequests, cap(sem), c)
	}
	expired, stop := g.timer(wait)
	defer stop()
	select {
	case sem <- struct{}{}:
		return g.releaser(sem), nil
	case <-expired:
		return nil, fmt.Errorf("%w: all %d %s slots stayed busy for %v", ErrTooManyRequests, cap(sem), c, wait)
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
