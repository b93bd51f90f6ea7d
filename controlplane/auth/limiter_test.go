package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiterBurstThenRefill(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(LimiterConfig{PerUserQPS: 10, PerUserBurst: 20}, clk.Now)
	u := tokenUser(RoleEdit, "")
	for i := range 20 {
		if ok, _ := l.Allow(u); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow(u)
	if ok {
		t.Fatal("request past the burst allowed")
	}
	// One token comes back every 1/QPS = 100ms.
	if retry != 100*time.Millisecond {
		t.Errorf("retryAfter = %v, want 100ms", retry)
	}

	clk.Advance(50 * time.Millisecond)
	if ok, retry := l.Allow(u); ok || retry != 50*time.Millisecond {
		t.Errorf("after 50ms: Allow = %v, %v; want false, 50ms", ok, retry)
	}
	clk.Advance(50 * time.Millisecond)
	if ok, _ := l.Allow(u); !ok {
		t.Error("after 100ms: refused, want one refilled token")
	}
	if ok, _ := l.Allow(u); ok {
		t.Error("second request after 100ms allowed, want only one token")
	}

	// A long idle time refills up to the burst, not beyond.
	clk.Advance(time.Hour)
	allowed := 0
	for range 100 {
		if ok, _ := l.Allow(u); ok {
			allowed++
		}
	}
	if allowed != 20 {
		t.Errorf("after an hour idle %d requests allowed, want the burst of 20", allowed)
	}
}

func TestLimiterClassesAreSeparate(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(LimiterConfig{PerUserQPS: 1, PerUserBurst: 5, NodeQPS: 1, NodeBurst: 3}, clk.Now)
	flooder := tokenUser(RoleEdit, "")
	for range 1000 {
		l.Allow(flooder)
	}
	if ok, _ := l.Allow(flooder); ok {
		t.Fatal("flooding user not limited")
	}
	// Another user has a bucket of its own.
	if ok, _ := l.Allow(tokenUser(RoleView, "")); !ok {
		t.Error("second user limited by the first user's flood")
	}
	// Nodes have their own class and limits, one bucket per node.
	for _, n := range []string{"a", "b"} {
		for i := range 3 {
			if ok, _ := l.Allow(nodeUser(n)); !ok {
				t.Errorf("node %s request %d refused during a user flood", n, i+1)
			}
		}
	}
	if ok, _ := l.Allow(nodeUser("a")); ok {
		t.Error("node a not limited past its own burst")
	}
	// A user named like a node but outside system:nodes is a user.
	impostor := User{Name: "system:node:c", Role: RoleEdit}
	for range 5 {
		l.Allow(impostor)
	}
	if ok, _ := l.Allow(impostor); ok {
		t.Error("impostor got node limits")
	}
	if ok, _ := l.Allow(nodeUser("c")); !ok {
		t.Error("node c refused: the impostor drained its bucket")
	}
}

func TestLimiterServersUnlimited(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(LimiterConfig{PerUserQPS: 1, PerUserBurst: 1, NodeQPS: 1, NodeBurst: 1}, clk.Now)
	for i := range 10000 {
		if ok, retry := l.Allow(serverCert()); !ok || retry != 0 {
			t.Fatalf("server request %d: Allow = %v, %v", i+1, ok, retry)
		}
	}
	if n := l.users.len() + l.nodes.len(); n != 0 {
		t.Errorf("%d buckets kept for servers, want none", n)
	}
}

func TestLimiterBounded(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(LimiterConfig{PerUserQPS: 1, PerUserBurst: 2, MaxUsers: 100}, clk.Now)
	hot := User{Name: "hot", Role: RoleEdit}
	l.Allow(hot)
	l.Allow(hot)
	for i := range 1000 {
		l.Allow(User{Name: fmt.Sprintf("user-%d", i), Role: RoleView})
		if i%10 == 0 {
			// hot stays recently used, so it is never the one evicted.
			if ok, _ := l.Allow(hot); ok {
				t.Fatalf("hot user got a fresh bucket after %d other users", i)
			}
		}
	}
	if n := l.users.len(); n != 100 {
		t.Errorf("%d user buckets kept, want MaxUsers = 100", n)
	}
	if len(l.users.byKey) != l.users.lru.Len() {
		t.Errorf("index has %d keys, LRU %d", len(l.users.byKey), l.users.lru.Len())
	}
	// The least recently used were dropped: user-0 starts over with a full
	// bucket.
	if ok, _ := l.Allow(User{Name: "user-0"}); !ok {
		t.Error("evicted user-0 refused, want a fresh bucket")
	}
}

func TestLimiterDefaultsAndClockSkew(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clk.Now)
	want := LimiterConfig{PerUserQPS: 200, PerUserBurst: 400, NodeQPS: 50, NodeBurst: 100, MaxUsers: DefaultMaxUsers}
	if l.cfg != want {
		t.Errorf("config = %+v, want %+v", l.cfg, want)
	}
	u := tokenUser(RoleView, "")
	for range 400 {
		l.Allow(u)
	}
	clk.Advance(-time.Hour) // a clock stepping back must not mint tokens
	if ok, retry := l.Allow(u); ok || retry != 5*time.Millisecond {
		t.Errorf("after the clock stepped back: Allow = %v, %v; want false, 5ms", ok, retry)
	}
}

func TestAdminCertIsNotRateLimited(t *testing.T) {
	l := NewLimiter(LimiterConfig{PerUserQPS: 1, PerUserBurst: 1}, func() time.Time { return time.Unix(0, 0) })
	admin := User{Name: "admin", Groups: []string{GroupMasters}, Source: SourceCert}
	for i := 0; i < 100; i++ {
		if ok, _ := l.Allow(admin); !ok {
			t.Fatalf("request %d of the cluster admin was limited", i)
		}
	}
	user := User{Name: "token:abc", Source: SourceToken, Role: RoleAdmin}
	l.Allow(user)
	if ok, _ := l.Allow(user); ok {
		t.Fatal("an admin-role token is a user like any other and is limited")
	}
}
