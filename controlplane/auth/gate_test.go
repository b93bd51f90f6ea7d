package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// manualTimer replaces the Gate's timer with one the test fires.
func manualTimer(g *Gate) chan time.Time {
	fire := make(chan time.Time)
	g.timer = func(time.Duration) (<-chan time.Time, func()) { return fire, func() {} }
	return fire
}

func TestGateNormalFullSystemStillAcquires(t *testing.T) {
	g := NewGate(2, 3, WithQueueWait(0))
	ctx := context.Background()
	for i := range 3 {
		if _, err := g.Acquire(ctx, PriorityNormal); err != nil {
			t.Fatalf("normal slot %d: %v", i+1, err)
		}
	}
	if _, err := g.Acquire(ctx, PriorityNormal); !errors.Is(err, ErrTooManyRequests) {
		t.Fatalf("fourth normal request: err = %v, want ErrTooManyRequests", err)
	}
	for i := range 2 {
		if _, err := g.Acquire(ctx, PrioritySystem); err != nil {
			t.Fatalf("system slot %d with the normal class full: %v", i+1, err)
		}
	}
	if got := g.InFlight(PriorityNormal); got != 3 {
		t.Errorf("InFlight(normal) = %d, want 3", got)
	}
	if got := g.InFlight(PrioritySystem); got != 2 {
		t.Errorf("InFlight(system) = %d, want 2", got)
	}
}

func TestGateQueueTimesOut(t *testing.T) {
	g := NewGate(1, 1)
	fire := manualTimer(g)
	ctx := context.Background()
	if _, err := g.Acquire(ctx, PriorityNormal); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := g.Acquire(ctx, PriorityNormal)
		errc <- err
	}()
	fire <- time.Time{} // the queue wait ends with the slot still taken
	if err := <-errc; !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("err = %v, want ErrTooManyRequests", err)
	}
}

func TestGateQueuedRequestGetsReleasedSlot(t *testing.T) {
	g := NewGate(1, 1)
	manualTimer(g) // never fires
	ctx := context.Background()
	release, err := g.Acquire(ctx, PriorityNormal)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := g.Acquire(ctx, PriorityNormal)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	release()
	release() // a second call must not free a slot it does not hold
	r2 := <-got
	if n := g.InFlight(PriorityNormal); n != 1 {
		t.Errorf("InFlight = %d after double release, want 1", n)
	}
	r2()
	if n := g.InFlight(PriorityNormal); n != 0 {
		t.Errorf("InFlight = %d, want 0", n)
	}
}

func TestGateCancelledWhileQueued(t *testing.T) {
	g := NewGate(1, 1)
	manualTimer(g)
	if _, err := g.Acquire(context.Background(), PrioritySystem); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := g.Acquire(ctx, PrioritySystem)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTooManyRequests) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestGateDefaultsAndUnknownClass(t *testing.T) {
	g := NewGate(0, -1)
	if cap(g.slots[PrioritySystem]) != DefaultSystemSlots || cap(g.slots[PriorityNormal]) != DefaultNormalSlots || g.wait[PriorityNormal] != DefaultQueueWait || g.wait[PrioritySystem] != DefaultSystemQueueWait {
		t.Errorf("defaults not applied: system %d, normal %d, wait %v", cap(g.slots[PrioritySystem]), cap(g.slots[PriorityNormal]), g.wait)
	}
	if _, err := g.Acquire(context.Background(), PriorityClass(7)); err == nil {
		t.Error("unknown class acquired a slot")
	}
}
