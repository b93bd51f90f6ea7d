package linear

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// never is the return time of a write whose outcome is unknown: it may
// take effect any time after its call.
const never = int64(1) << 62

// History records operations from concurrent workers; it is safe for
// concurrent use.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

// NewHistory starts a history; times are kept as offsets from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Start is when the history began.
func (h *History) Start() time.Time { return h.start }

// Record adds an operation that client called at call and that returned
// now with out and oc: NotApplied operations and reads without an answer
// are left out, a write of Unknown outcome is kept as one that may take
// effect any time after its call.
func (h *History) Record(client int, in Input, call time.Time, out Output, oc Outcome) {
	ret := time.Since(h.start).Nanoseconds()
	switch oc {
	case NotApplied:
		return
	case Unknown:
		if !in.Op.IsWrite() {
			return
		}
		out.Unknown, ret = true, never
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call.Sub(h.start).Nanoseconds(), Output: out, Return: ret})
}

// Stats counts a history's operations.
type Stats struct {
	Ops int
	// Acked: writes with a definite answer. Unknown: writes without one.
	Acked, Unknown int
}

// Stats counts the operations recorded so far.
func (h *History) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Stats{Ops: len(h.ops)}
	for _, op := range h.ops {
		switch {
		case !op.Input.(Input).Op.IsWrite():
		case op.Output.(Output).Unknown:
			s.Unknown++
		default:
			s.Acked++
		}
	}
	return s
}

// FirstAckAfter returns how long after t the first write with a definite
// answer that was sent after t returned; false if there was none.
func (h *History) FirstAckAfter(t time.Time) (time.Duration, bool) {
	from := t.Sub(h.start).Nanoseconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	first := int64(-1)
	for _, op := range h.ops {
		if !op.Input.(Input).Op.IsWrite() || op.Output.(Output).Unknown || op.Call <= from {
			continue
		}
		if first < 0 || op.Return < first {
			first = op.Return
		}
	}
	if first < 0 {
		return 0, false
	}
	return time.Duration(first - from), true
}

// Operations returns a copy of the recorded operations.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Check runs porcupine over the history with Model. If the history is not
// linearizable (or the check times out) it writes porcupine's
// visualization into dir and returns an error naming it.
func (h *History) Check(timeout time.Duration, dir string) error {
	ops := h.Operations()
	res, info := porcupine.CheckOperationsVerbose(Model(), ops, timeout)
	if res == porcupine.Ok {
		return nil
	}
	viz := filepath.Join(dir, fmt.Sprintf("skiff-linearizability-%d.html", time.Now().UnixNano()))
	f, err := os.Create(viz)
	if err != nil {
		return fmt.Errorf("history of %d operations is %s (not linearizable); visualization: %w", len(ops), res, err)
	}
	defer f.Close()
	if err := porcupine.Visualize(Model(), info, f); err != nil {
		return fmt.Errorf("history of %d operations is %s (not linearizable); visualization: %w", len(ops), res, err)
	}
	return fmt.Errorf("history of %d operations is %s (not linearizable); visualization: %s", len(ops), res, viz)
}

// AckedBetween counts the writes with a definite answer that were sent at
// or after from and returned by to.
func (h *History) AckedBetween(from, to time.Time) int {
	f, t := from.Sub(h.start).Nanoseconds(), to.Sub(h.start).Nanoseconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, op := range h.ops {
		if op.Input.(Input).Op.IsWrite() && !op.Output.(Output).Unknown && op.Call >= f && op.Return <= t {
			n++
		}
	}
	return n
}
