package raft

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/test/e2e/harness"
	"github.com/skiffhq/skiff/test/e2e/linear"
)

// The model, the operations and the history are test/e2e/linear's: a
// register per key, kept in a Namespace object's label "v".

func TestLinearizableAcrossLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers; skipped with -short")
	}
	c := harness.StartCluster(t, 3)
	urls := c.URLs()

	const (
		workers  = 6
		keys     = 8
		runFor   = 7 * time.Second
		killAt   = 2 * time.Second
		reviveAt = 4500 * time.Millisecond
	)
	h := linear.NewHistory()
	start := h.Start()

	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := c.Admin
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for seq := 0; ctx.Err() == nil; seq++ {
				in := linear.Input{Key: fmt.Sprintf("lin-k%d", rng.IntN(keys)), Value: fmt.Sprintf("w%d-%d", w, seq)}
				switch r := rng.IntN(100); {
				case r < 40:
					in.Op = linear.OpGet
				case r < 65:
					in.Op = linear.OpPut
				case r < 85:
					in.Op = linear.OpCreate
				default:
					in.Op = linear.OpDelete
				}
				call := time.Now()
				out, oc := linear.Do(context.Background(), hc, urls[rng.IntN(len(urls))], in)
				h.Record(w, in, call, out, oc)
				if oc != linear.Definite {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}

	time.Sleep(killAt)
	victim := c.Leader()
	if victim == nil {
		t.Fatal("no leader before the kill")
	}
	victim.Kill()
	killed := time.Now()
	t.Logf("killed leader %s at %v", victim.ID, killed.Sub(start))
	time.Sleep(reviveAt - killed.Sub(start))
	victim.Start()
	t.Logf("restarted %s", victim.ID)
	wg.Wait()

	// Final reads from whichever server leads now close the history.
	hc := c.Admin
	var leader *harness.Server
	harness.Eventually(t, 10*time.Second, "a leader after the run", func() bool { leader = c.Leader(); return leader != nil })
	for k := 0; k < keys; k++ {
		in := linear.Input{Op: linear.OpGet, Key: fmt.Sprintf("lin-k%d", k)}
		call := time.Now()
		out, oc := linear.Do(context.Background(), hc, leader.URL(), in)
		if oc != linear.Definite {
			t.Fatalf("final read of %s failed", in.Key)
		}
		h.Record(workers, in, call, out, oc)
	}
	st := h.Stats()
	t.Logf("history: %d operations, %d acknowledged writes, %d with unknown outcome", st.Ops, st.Acked, st.Unknown)
	resumed, ok := h.FirstAckAfter(killed)
	if !ok {
		t.Fatal("no write was acknowledged after the leader was killed")
	}
	t.Logf("writes resumed %v after the leader was killed", resumed)
	if resumed > time.Second {
		t.Fatalf("writes resumed %v after the kill, want within 1s", resumed)
	}
	if st.Acked < 50 {
		t.Fatalf("only %d acknowledged writes: the cluster barely served", st.Acked)
	}
	if err := h.Check(60*time.Second, os.TempDir()); err != nil {
		t.Fatal(err)
	}

	// The restarted server catches up and serves the same final state
	// from its own replica.
	harness.Eventually(t, 15*time.Second, victim.ID+" catching up", func() bool {
		lm, err1 := leader.Members()
		vm, err2 := victim.Members()
		return err1 == nil && err2 == nil && vm.AppliedIndex >= lm.AppliedIndex
	})
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("lin-k%d", k)
		a, av, err := linear.ReadLocal(context.Background(), hc, leader.URL(), key)
		if err != nil {
			t.Fatal(err)
		}
		b, bv, err := linear.ReadLocal(context.Background(), hc, victim.URL(), key)
		if err != nil {
			t.Fatal(err)
		}
		if a != b || av != bv {
			t.Fatalf("%s: leader says %d %q, restarted %s says %d %q", key, a, av, victim.ID, b, bv)
		}
	}
}
