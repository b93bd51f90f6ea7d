package load

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Op performs one operation. worker is in [0, workers); seq counts the
// worker's operations from 0, so (worker, seq) is unique within a run.
type Op func(ctx context.Context, worker, seq int) error

// Config is one closed-loop run.
type Config struct {
	Workers  int
	Warmup   time.Duration // operations before the window are not counted
	Duration time.Duration // length of the measured window
}

// Result is what one run measured.
type Result struct {
	Workers int
	Window  time.Duration
	// Ops completed inside the window; their latencies, sorted.
	Ops       int
	Latencies []time.Duration
	// Errors over the whole run (warm-up included), and the first one.
	Errors   int
	FirstErr error
}

// Rate is operations per second in the window.
func (r Result) Rate() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Window.Seconds()
}

// Percentile returns the q-quantile (0 < q <= 1) of the latencies
// (nearest rank).
func (r Result) Percentile(q float64) time.Duration {
	return Percentile(r.Latencies, q)
}

// Percentile returns the q-quantile of sorted durations (nearest rank).
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// Run runs op from cfg.Workers goroutines until the warm-up and the window
// have passed (or ctx ends). A worker does not start an operation after
// the window closes; an operation counts (throughput and latency) when it
// completes inside the window.
func Run(ctx context.Context, cfg Config, op Op) Result {
	start := time.Now()
	from := start.Add(cfg.Warmup)
	until := from.Add(cfg.Duration)
	type workerResult struct {
		lat      []time.Duration
		errs     int
		firstErr error
	}
	out := make([]workerResult, cfg.Workers)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &out[w]
			res.lat = make([]time.Duration, 0, 1024)
			for seq := 0; ctx.Err() == nil; seq++ {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				err := op(ctx, w, seq)
				t1 := time.Now()
				if err != nil {
					res.errs++
					if res.firstErr == nil {
						res.firstErr = err
					}
					continue
				}
				if !t1.Before(from) && !t1.After(until) {
					res.lat = append(res.lat, t1.Sub(t0))
				}
			}
		}()
	}
	wg.Wait()
	r := Result{Workers: cfg.Workers, Window: cfg.Duration}
	for _, w := range out {
		r.Latencies = append(r.Latencies, w.lat...)
		r.Errors += w.errs
		if r.FirstErr == nil {
			r.FirstErr = w.firstErr
		}
	}
	r.Ops = len(r.Latencies)
	slices.Sort(r.Latencies)
	return r
}
