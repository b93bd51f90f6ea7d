package raft

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/skiffhq/skiff/test/e2e/harness"
)

// The model: a register per key, kept in a Namespace object's label "v".
// Writes whose outcome is unknown (timeouts, 5xx, dropped connections)
// may or may not have happened: the nondeterministic step offers both.

type opKind string

const (
	opCreate opKind = "create"
	opPut    opKind = "put"
	opDelete opKind = "delete"
	opGet    opKind = "get"
)

type linInput struct {
	Op    opKind
	Key   string
	Value string
}

type linOutput struct {
	Status  int
	Value   string
	Unknown bool
}

type register struct {
	Exists bool
	Value  string
}

var model = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(linInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{register{}} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(register), input.(linInput), output.(linOutput)
		next, status := s, 0
		switch in.Op {
		case opCreate:
			if s.Exists {
				status = http.StatusConflict
			} else {
				next, status = register{true, in.Value}, http.StatusCreated
			}
		case opPut:
			if s.Exists {
				next, status = register{true, in.Value}, http.StatusOK
			} else {
				status = http.StatusNotFound
			}
		case opDelete:
			if s.Exists {
				next, status = register{}, http.StatusOK
			} else {
				status = http.StatusNotFound
			}
		case opGet:
			if s.Exists {
				if out.Status == http.StatusOK && out.Value == s.Value {
					return []any{s}
				}
				return nil
			}
			if out.Status == http.StatusNotFound {
				return []any{s}
			}
			return nil
		}
		if out.Unknown {
			return []any{s, next}
		}
		if out.Status == status {
			return []any{next}
		}
		return nil
	},
	Equal: func(a, b any) bool { return a.(register) == b.(register) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if out.Unknown {
			return fmt.Sprintf("%s(%s, %s) -> unknown", in.Op, in.Key, in.Value)
		}
		return fmt.Sprintf("%s(%s, %s) -> %d %s", in.Op, in.Key, in.Value, out.Status, out.Value)
	},
}

func namespaceBody(key, value string) []byte {
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": key, "labels": map[string]string{"v": value}},
	})
	return b
}

// do runs one operation against url and classifies the outcome.
func do(ctx context.Context, hc *http.Client, url string, in linInput) (linOutput, bool) {
	path := url + "/api/v1/namespaces"
	var method string
	var body []byte
	switch in.Op {
	case opCreate:
		method, body = http.MethodPost, namespaceBody(in.Key, in.Value)
	case opPut:
		method, path, body = http.MethodPut, path+"/"+in.Key, namespaceBody(in.Key, in.Value)
	case opDelete:
		method, path = http.MethodDelete, path+"/"+in.Key
	case opGet:
		method, path = http.MethodGet, path+"/"+in.Key
	}
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return linOutput{Unknown: true}, false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		// Never reached a server: certainly not applied.
		return linOutput{}, false
	}
	var code int
	var rbody []byte
	if err == nil {
		code = resp.StatusCode
		rbody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if code == http.StatusServiceUnavailable && resp.Header.Get("X-Skiff-Write-Outcome") != "unknown" {
			// Refused before it was proposed (no leader yet).
			return linOutput{}, false
		}
	}
	switch {
	case err == nil && (code == 200 || code == 201 || code == 404 || code == 409):
		out := linOutput{Status: code}
		if in.Op == opGet && code == 200 {
			var ns struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
			}
			if json.Unmarshal(rbody, &ns) != nil {
				return linOutput{}, false
			}
			out.Value = ns.Metadata.Labels["v"]
		}
		return out, true
	case err == nil && code/100 == 4:
		// A definite rejection that the model does not expect is a bug.
		return linOutput{Status: code, Value: string(rbody)}, true
	}
	return linOutput{Unknown: true}, false
}

// outcome classifies what do returned.
type outcome int

const (
	definite   outcome = iota // a real answer
	notApplied                // certainly had no effect: leave it out
	unknownOut                // may or may not have taken effect
)

func classify(out linOutput, ok bool) outcome {
	switch {
	case ok:
		return definite
	case out.Unknown:
		return unknownOut
	}
	return notApplied
}

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
	start := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		acked   int
		unknown int
		// killedAt and firstAckAfterKill are offsets from start; the
		// latter is the return of the first write acknowledged that was
		// sent after the kill.
		killedAt          time.Duration = -1
		firstAckAfterKill time.Duration = -1
	)
	record := func(client int, in linInput, call time.Time, out linOutput, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		ret := time.Since(start).Nanoseconds()
		switch classify(out, ok) {
		case notApplied:
			return
		case unknownOut:
			if in.Op == opGet {
				return // a read without an answer changes nothing
			}
			unknown++
			ret = int64(1) << 62 // may take effect any time after its call
		default:
			if in.Op != opGet {
				acked++
				if killedAt >= 0 && call.Sub(start) > killedAt && (firstAckAfterKill < 0 || time.Duration(ret) < firstAckAfterKill) {
					firstAckAfterKill = time.Duration(ret)
				}
			}
		}
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call.Sub(start).Nanoseconds(), Output: out, Return: ret})
	}

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
				in := linInput{Key: fmt.Sprintf("lin-k%d", rng.IntN(keys)), Value: fmt.Sprintf("w%d-%d", w, seq)}
				switch r := rng.IntN(100); {
				case r < 40:
					in.Op = opGet
				case r < 65:
					in.Op = opPut
				case r < 85:
					in.Op = opCreate
				default:
					in.Op = opDelete
				}
				call := time.Now()
				out, ok := do(context.Background(), hc, urls[rng.IntN(len(urls))], in)
				record(w, in, call, out, ok)
				if !ok {
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
	killed := time.Since(start)
	mu.Lock()
	killedAt = killed
	mu.Unlock()
	t.Logf("killed leader %s at %v", victim.ID, killed)
	time.Sleep(reviveAt - killed)
	victim.Start()
	t.Logf("restarted %s", victim.ID)
	wg.Wait()

	// Final reads from whichever server leads now close the history.
	hc := c.Admin
	var leader *harness.Server
	harness.Eventually(t, 10*time.Second, "a leader after the run", func() bool { leader = c.Leader(); return leader != nil })
	for k := 0; k < keys; k++ {
		in := linInput{Op: opGet, Key: fmt.Sprintf("lin-k%d", k)}
		call := time.Now()
		out, ok := do(context.Background(), hc, leader.URL(), in)
		if !ok {
			t.Fatalf("final read of %s failed", in.Key)
		}
		record(workers, in, call, out, true)
	}
	t.Logf("history: %d operations, %d acknowledged writes, %d with unknown outcome", len(history), acked, unknown)
	if firstAckAfterKill < 0 {
		t.Fatal("no write was acknowledged after the leader was killed")
	}
	resumed := firstAckAfterKill - killedAt
	t.Logf("writes resumed %v after the leader was killed", resumed)
	if resumed > time.Second {
		t.Fatalf("writes resumed %v after the kill, want within 1s", resumed)
	}
	if acked < 50 {
		t.Fatalf("only %d acknowledged writes: the cluster barely served", acked)
	}

	res, info := porcupine.CheckOperationsVerbose(model.ToModel(), history, 60*time.Second)
	if res != porcupine.Ok {
		viz := filepath.Join(os.TempDir(), fmt.Sprintf("skiff-linearizability-%d.html", time.Now().Unix()))
		if f, err := os.Create(viz); err == nil {
			porcupine.Visualize(model.ToModel(), info, f)
			f.Close()
		}
		t.Fatalf("history is %s (not linearizable); visualization: %s", res, viz)
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
		a, ab, _ := harness.Do(context.Background(), hc, http.MethodGet, leader.URL()+"/api/v1/namespaces/"+key, nil)
		b, bb, _ := harness.Do(context.Background(), hc, http.MethodGet, victim.URL()+"/api/v1/namespaces/"+key+"?consistent=false", nil)
		if a != b || (a == 200 && labelV(ab) != labelV(bb)) {
			t.Fatalf("%s: leader says %d %q, restarted %s says %d %q", key, a, labelV(ab), victim.ID, b, labelV(bb))
		}
	}
}

func labelV(b []byte) string {
	var ns struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	json.Unmarshal(b, &ns)
	return ns.Metadata.Labels["v"]
}
