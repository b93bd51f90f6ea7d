package auth

import (
	"container/list"
	"sync"
	"time"
)

// PriorityClass separates the requests that keep the cluster alive (node
// heartbeats and status, server-to-server traffic) from user requests, so
// no amount of the latter delays the former.
type PriorityClass int

// Priority classes.
const (
	PriorityNormal PriorityClass = iota
	PrioritySystem
	numClasses
)

func (c PriorityClass) String() string {
	switch c {
	case PriorityNormal:
		return "normal"
	case PrioritySystem:
		return "system"
	}
	return "unknown"
}

// Priority returns the class of u's requests: PrioritySystem for servers and
// nodes, PriorityNormal for everyone else (the admin included).
func Priority(u User) PriorityClass {
	if IsServer(u) || u.InGroup(GroupMasters) {
		return PrioritySystem
	}
	if _, ok := NodeName(u); ok {
		return PrioritySystem
	}
	return PriorityNormal
}

// Limiter defaults.
const (
	DefaultPerUserQPS   = 200
	DefaultPerUserBurst = 400
	DefaultNodeQPS      = 50
	DefaultNodeBurst    = 100
	DefaultMaxUsers     = 10000
)

// LimiterConfig sets the token buckets. Zero (or negative) fields take the
// defaults.
type LimiterConfig struct {
	// PerUserQPS and PerUserBurst bound each user (every credential that is
	// neither a node nor a server), by user name.
	PerUserQPS   float64
	PerUserBurst int
	// NodeQPS and NodeBurst bound each node identity, in buckets of their
	// own.
	NodeQPS   float64
	NodeBurst int
	// MaxUsers bounds the buckets kept per class; the least recently used
	// are dropped first. A dropped bucket comes back full, which costs
	// nothing for an idle credential: its bucket had refilled anyway.
	MaxUsers int
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.PerUserQPS <= 0 {
		c.PerUserQPS = DefaultPerUserQPS
	}
	if c.PerUserBurst <= 0 {
		c.PerUserBurst = DefaultPerUserBurst
	}
	if c.NodeQPS <= 0 {
		c.NodeQPS = DefaultNodeQPS
	}
	if c.NodeBurst <= 0 {
		c.NodeBurst = DefaultNodeBurst
	}
	if c.MaxUsers <= 0 {
		c.MaxUsers = DefaultMaxUsers
	}
	return c
}

// Limiter rate-limits requests per credential with token buckets. Users
// and nodes have separate buckets (a user's flood never empties a node's
// bucket); servers are never limited. It is safe for concurrent use.
type Limiter struct {
	cfg   LimiterConfig
	now   func() time.Time
	mu    sync.Mutex
	users *buckets
	nodes *buckets
}

// NewLimiter returns a Limiter with cfg (zero fields take the defaults)
// reading the time from now (nil: time.Now).
func NewLimiter(cfg LimiterConfig, now func() time.Time) *Limiter {
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		cfg:   cfg,
		now:   now,
		users: newBuckets(cfg.PerUserQPS, cfg.PerUserBurst, cfg.MaxUsers),
		nodes: newBuckets(cfg.NodeQPS, cfg.NodeBurst, cfg.MaxUsers),
	}
}

// Allow takes one token from u's bucket. When the bucket is empty it
// returns false and how long until a token is back: the API server answers
// 429 with Retry-After rounded up to whole seconds. Anonymous requests (an
// empty name) share one bucket.
func (l *Limiter) Allow(u User) (ok bool, retryAfter time.Duration) {
	// Servers and the cluster admin (system:masters) are exempt, as
	// Kubernetes' priority and fairness exempts them: an operator must be
	// able to act during a flood.
	if IsServer(u) || u.InGroup(GroupMasters) {
		return true, 0
	}
	b, key := l.users, u.Name
	if node, isNode := NodeName(u); isNode {
		b, key = l.nodes, node
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return b.take(key, l.now())
}

// buckets is one class's token buckets, kept in least-recently-used order
// and bounded.
type buckets struct {
	qps   float64
	burst float64
	limit int
	lru   *list.List // of *bucket, most recently used in front
	byKey map[string]*list.Element
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

func newBuckets(qps float64, burst, limit int) *buckets {
	return &buckets{qps: qps, burst: float64(burst), limit: limit, lru: list.New(), byKey: map[string]*list.Element{}}
}

func (bs *buckets) take(key string, now time.Time) (bool, time.Duration) {
	var b *bucket
	if e, ok := bs.byKey[key]; ok {
		bs.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		// A clock stepping back refills nothing, but takes nothing either.
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = min(bs.burst, b.tokens+elapsed.Seconds()*bs.qps)
		}
		b.last = now
	} else {
		for bs.lru.Len() >= bs.limit {
			oldest := bs.lru.Back()
			bs.lru.Remove(oldest)
			delete(bs.byKey, oldest.Value.(*bucket).key)
		}
		b = &bucket{key: key, tokens: bs.burst, last: now}
		bs.byKey[key] = bs.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / bs.qps * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

// len is the number of buckets kept, for tests.
func (bs *buckets) len() int { return bs.lru.Len() }
