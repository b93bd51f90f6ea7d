package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/deploy/lab"
	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
	"github.com/skiffhq/skiff/test/e2e/linear"
)

// labAPI speaks to the lab's servers directly on its LAN (not through the
// forwarder), with the admin credential: a refused or unanswered dial
// means what it says about that server.
type labAPI struct {
	l     *lab.Lab
	cfg   *client.Config
	lan   *http.Client
	names []string          // the servers: s1, s2, ...
	urls  map[string]string // server name -> API URL on the LAN
}

// labRequestTimeout bounds each request of the scenarios: a request that
// no server answers in time has an unknown outcome.
const labRequestTimeout = 3 * time.Second

func newLabAPI(t *testing.T, l *lab.Lab) *labAPI {
	t.Helper()
	cfg, err := client.LoadConfig(l.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	a := &labAPI{l: l, cfg: cfg, urls: map[string]string{}}
	a.lan = a.httpClient(l.DialLAN)
	for _, m := range l.ByRole(lab.RoleServer) {
		u, err := l.APIURL(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		a.names = append(a.names, m.Name)
		a.urls[m.Name] = u
	}
	if len(a.names) < 3 {
		t.Fatalf("the lab has %d servers, want at least 3", len(a.names))
	}
	t.Cleanup(a.lan.CloseIdleConnections)
	return a
}

func (a *labAPI) httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	tc, err := a.cfg.TLSConfig()
	if err != nil {
		panic(err) // LoadConfig checked the credentials
	}
	return &http.Client{Timeout: labRequestTimeout, Transport: &http.Transport{
		DialContext: dial, TLSClientConfig: tc, MaxIdleConnsPerHost: 64,
	}}
}

// inside returns a client that dials from inside a machine's own network
// namespace: the way to a server cut off from the LAN.
func (a *labAPI) inside(t *testing.T, name string) *http.Client {
	m, err := a.l.Machine(name)
	if err != nil {
		t.Fatal(err)
	}
	hc := a.httpClient(func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := nsrun.Do(m.NetnsPath(), func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	})
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

func (a *labAPI) urlsOf(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, a.urls[n])
	}
	return out
}

// members asks one server for its view of the membership.
func (a *labAPI) members(ctx context.Context, hc *http.Client, name string) (*client.Members, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.urls[name]+"/skiff/v1/members", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: members: %s", name, resp.Status)
	}
	var m client.Members
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: members: %w", name, err)
	}
	return &m, nil
}

// agreedLeader waits until every server of names names the same leader,
// one of them, and returns it.
func (a *labAPI) agreedLeader(t *testing.T, names []string, timeout time.Duration) string {
	t.Helper()
	var leader string
	var last string
	deadline := time.Now().Add(timeout)
	for {
		leader = ""
		agreed := true
		var views []string
		for _, n := range names {
			m, err := a.members(context.Background(), a.lan, n)
			if err != nil {
				views = append(views, n+": "+err.Error())
				agreed = false
				continue
			}
			views = append(views, n+": leader "+m.Leader)
			if leader == "" {
				leader = m.Leader
			}
			if m.Leader == "" || m.Leader != leader {
				agreed = false
			}
		}
		if agreed && slices.Contains(names, leader) {
			return leader
		}
		last = strings.Join(views, "; ")
		if time.Now().After(deadline) {
			t.Fatalf("the servers %v did not agree on a leader among them within %v: %s", names, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitNewLeader polls the servers of names (every 10 ms) until one of them
// names a leader among them other than old; it returns that leader and
// how long after since it was first seen.
func (a *labAPI) waitNewLeader(t *testing.T, hc *http.Client, names []string, old string, since time.Time, timeout time.Duration) (string, time.Duration) {
	t.Helper()
	deadline := since.Add(timeout)
	for time.Now().Before(deadline) {
		for _, n := range names {
			m, err := a.members(context.Background(), hc, n)
			if err == nil && m.Leader != "" && m.Leader != old && slices.Contains(names, m.Leader) {
				return m.Leader, time.Since(since)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no server of %v named a new leader (not %s) within %v", names, old, timeout)
	return "", 0
}

// labLoad is workers sending random operations on keys prefix0..prefixN-1
// to random servers of a changeable set, recording into a history.
type labLoad struct {
	targets atomic.Pointer[[]string]
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func randomOp(rng *rand.Rand, prefix string, keys, worker, seq int) linear.Input {
	in := linear.Input{Key: fmt.Sprintf("%s%d", prefix, rng.IntN(keys)), Value: fmt.Sprintf("w%d-%d", worker, seq)}
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
	return in
}

func startLabLoad(hc *http.Client, h *linear.History, prefix string, workers, keys int, targets []string) *labLoad {
	ctx, cancel := context.WithCancel(context.Background())
	ld := &labLoad{cancel: cancel}
	ld.setTargets(targets)
	seed := uint64(time.Now().UnixNano())
	for w := range workers {
		ld.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), seed))
			for seq := 0; ctx.Err() == nil; seq++ {
				in := randomOp(rng, prefix, keys, w, seq)
				ts := *ld.targets.Load()
				call := time.Now()
				out, oc := linear.Do(context.Background(), hc, ts[rng.IntN(len(ts))], in)
				h.Record(w, in, call, out, oc)
				if oc != linear.Definite {
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	return ld
}

func (ld *labLoad) setTargets(urls []string) { ld.targets.Store(&urls) }

// stop ends the workers and waits for them (each finishes its request).
func (ld *labLoad) stop() {
	ld.cancel()
	ld.wg.Wait()
}

// finalReads closes the history with a linearizable read of every key
// from the leader.
func (a *labAPI) finalReads(t *testing.T, h *linear.History, client int, leader string, keys []string) {
	t.Helper()
	for _, k := range keys {
		in := linear.Input{Op: linear.OpGet, Key: k}
		call := time.Now()
		out, oc := linear.Do(context.Background(), a.lan, a.urls[leader], in)
		if oc != linear.Definite {
			t.Fatalf("final read of %s from leader %s: %s", k, leader, oc)
		}
		h.Record(client, in, call, out, oc)
	}
}

// converge waits until every server has applied what the leader had
// applied when asked, then until every key reads the same from every
// server's own replica; it returns the agreed state (absent keys left
// out) and how long convergence took.
func (a *labAPI) converge(t *testing.T, leader string, keys []string, timeout time.Duration) (map[string]string, time.Duration) {
	t.Helper()
	start := time.Now()
	lm, err := a.members(context.Background(), a.lan, leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range a.names {
		waitFor(t, timeout, fmt.Sprintf("%s applying up to the leader's index %d", n, lm.AppliedIndex), func() bool {
			m, err := a.members(context.Background(), a.lan, n)
			return err == nil && m.AppliedIndex >= lm.AppliedIndex
		})
	}
	var state map[string]string
	var diff string
	deadline := time.Now().Add(timeout)
	for {
		state, diff = a.compareReplicas(keys)
		if diff == "" {
			return state, time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replicas diverge %v after catching up: %s", timeout, diff)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// compareReplicas reads every key from every server's own replica; diff
// describes the first key they disagree on ("" if none).
func (a *labAPI) compareReplicas(keys []string) (map[string]string, string) {
	state := map[string]string{}
	for _, k := range keys {
		var first string
		for i, n := range a.names {
			st, v, err := linear.ReadLocal(context.Background(), a.lan, a.urls[n], k)
			if err != nil {
				return nil, err.Error()
			}
			view := fmt.Sprintf("%d %q", st, v)
			if i == 0 {
				first = view
				if st == http.StatusOK {
					state[k] = v
				}
			} else if view != first {
				return nil, fmt.Sprintf("%s: %s says %s, %s says %s", k, a.names[0], first, n, view)
			}
		}
	}
	return state, ""
}

// nodesReady checks that the nodes stayed (or are again) Ready: the next
// scenario gets the whole lab.
func (a *labAPI) nodesReady(t *testing.T) {
	t.Helper()
	if err := a.l.WaitNodesReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// runID tells the keys of one run from an earlier one's in the same lab
// (the model starts from keys that do not exist).
func runID() string { return strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36), 36) }

func keyNames(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func without(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

// Scenario 2: kill -9 the Raft leader under concurrent reads and writes
// to every server: a new leader within 1 s, writes acknowledged again
// within 1 s, the API served by the others meanwhile, the history
// linearizable (no acknowledged write lost), and the restarted server
// catches up to the same state.
func labKillLeader(t *testing.T, l *lab.Lab) {
	const (
		workers = 6
		keys    = 8
	)
	prefix := "lab-kill-" + runID() + "-k"
	a := newLabAPI(t, l)
	a.agreedLeader(t, a.names, 15*time.Second)
	h := linear.NewHistory()
	load := startLabLoad(a.lan, h, prefix, workers, keys, a.urlsOf(a.names))
	defer load.stop()

	time.Sleep(2 * time.Second)
	if st := h.Stats(); st.Acked < 20 {
		t.Fatalf("before the kill only %d writes were acknowledged", st.Acked)
	}
	victim := a.agreedLeader(t, a.names, 5*time.Second)
	if err := l.Kill(victim); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Cleanup(func() { l.Start(victim) }) // whatever happens, the next scenario gets three servers
	survivors := without(a.names, victim)
	newLeader, elected := a.waitNewLeader(t, a.lan, survivors, victim, killed, 10*time.Second)

	time.Sleep(time.Until(killed.Add(2500 * time.Millisecond)))
	if err := l.Start(victim); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	servedDown := h.AckedBetween(killed, restarted)
	time.Sleep(1500 * time.Millisecond) // the load goes on across the restart
	load.stop()

	leader := a.agreedLeader(t, a.names, 20*time.Second)
	a.finalReads(t, h, workers, leader, keyNames(prefix, keys))
	st := h.Stats()
	resumed, ok := h.FirstAckAfter(killed)
	if !ok {
		t.Fatal("no write was acknowledged after the leader was killed")
	}
	t.Logf("failover: new leader after %v, writes resumed after %v (killed %s, %s took over)",
		elected.Round(time.Millisecond), resumed.Round(time.Millisecond), victim, newLeader)
	t.Logf("history: %d operations, %d acknowledged writes, %d with unknown outcome; %d writes acknowledged in the %v without %s",
		st.Ops, st.Acked, st.Unknown, servedDown, restarted.Sub(killed).Round(time.Millisecond), victim)
	if elected > time.Second {
		t.Errorf("a surviving server named a new leader %v after the kill, want within 1s", elected)
	}
	if resumed > time.Second {
		t.Errorf("writes were acknowledged again %v after the kill, want within 1s", resumed)
	}
	if servedDown < 20 {
		t.Errorf("only %d writes acknowledged while %s was down: the others barely served", servedDown, victim)
	}
	if err := h.Check(60*time.Second, os.TempDir()); err != nil {
		t.Fatal(err)
	}
	_, took := a.converge(t, leader, keyNames(prefix, keys), 15*time.Second)
	t.Logf("%s caught up, replicas agree (%v after the run)", victim, took.Round(time.Millisecond))
	a.nodesReady(t)
}

// Scenario 3: cut the leader off the LAN under load. The minority (the
// old leader alone) steps down and acknowledges no write, whether sent by
// a client inside its own namespace or by the skiff CLI there; the
// majority elects a leader within a few seconds and acknowledges writes;
// after healing, the old leader rejoins as a follower, every replica
// converges to the same state, every write the majority acknowledged is
// there, and the whole history is linearizable.
func labPartitionLeader(t *testing.T, l *lab.Lab) {
	const (
		workers = 4
		keys    = 8
	)
	id := runID()
	prefix, seqPrefix, cliKey := "lab-part-"+id+"-k", "lab-part-"+id+"-seq-", "lab-part-"+id+"-minority"
	a := newLabAPI(t, l)
	old := a.agreedLeader(t, a.names, 15*time.Second)
	majority := without(a.names, old)
	h := linear.NewHistory()
	load := startLabLoad(a.lan, h, prefix, workers, keys, a.urlsOf(a.names))
	defer load.stop()
	time.Sleep(1500 * time.Millisecond)

	if err := l.Cut(old); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	healed := false
	t.Cleanup(func() {
		if !healed {
			l.Heal(old)
		}
	})
	load.setTargets(a.urlsOf(majority))

	// The minority, from inside its own namespace: a client writing
	// without pause, and the CLI.
	inside := a.inside(t, old)
	ctx, stopMinority := context.WithCancel(context.Background())
	defer stopMinority()
	var minority, cli sync.WaitGroup
	var minorityWrites, minorityAcked atomic.Int64
	var minorityAckedOps []string
	var mu sync.Mutex
	minority.Go(func() {
		rng := rand.New(rand.NewPCG(99, uint64(cut.UnixNano())))
		for seq := 0; ctx.Err() == nil; seq++ {
			in := randomOp(rng, prefix, keys, 99, seq)
			if !in.Op.IsWrite() {
				in.Op = linear.OpPut
			}
			call := time.Now()
			out, oc := linear.Do(context.Background(), inside, a.urls[old], in)
			h.Record(workers+1, in, call, out, oc)
			minorityWrites.Add(1)
			if oc == linear.Definite && out.Status/100 == 2 {
				minorityAcked.Add(1)
				mu.Lock()
				minorityAckedOps = append(minorityAckedOps, fmt.Sprintf("%s(%s, %s) -> %d", in.Op, in.Key, in.Value, out.Status))
				mu.Unlock()
			}
			if oc != linear.Definite {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	var cliOut []byte
	var cliErr error
	cli.Go(func() {
		cliOut, cliErr = a.applyInside(ctx, old, cliKey)
	})

	// When the old leader stops calling itself leader, watched from inside.
	var steppedDown time.Duration
	var stepErr error
	cli.Go(func() {
		for {
			m, err := a.members(context.Background(), inside, old)
			if err == nil && m.Leader != old {
				steppedDown = time.Since(cut)
				return
			}
			if time.Since(cut) > 5*time.Second {
				stepErr = fmt.Errorf("%s, cut off, still calls itself leader 5s after the cut (last answer: %v)", old, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	newLeader, elected := a.waitNewLeader(t, a.lan, majority, old, cut, 10*time.Second)

	// Writes to unique keys, one after another, on the majority: each one
	// acknowledged must be on every server after the heal.
	seqAcked := map[string]string{}
	seqTried := 0
	for seqUntil := time.Now().Add(3 * time.Second); time.Now().Before(seqUntil); seqTried++ {
		i := seqTried
		in := linear.Input{Op: linear.OpCreate, Key: fmt.Sprintf("%s%d", seqPrefix, i), Value: fmt.Sprintf("seq-%d", i)}
		call := time.Now()
		out, oc := linear.Do(context.Background(), a.lan, a.urls[majority[i%len(majority)]], in)
		h.Record(workers+2, in, call, out, oc)
		if oc == linear.Definite && out.Status == http.StatusCreated {
			seqAcked[in.Key] = in.Value
		}
	}
	cli.Wait() // the CLI's request timeout ends it
	if stepErr != nil {
		t.Fatal(stepErr)
	}
	stopMinority()
	minority.Wait()
	ackedInPartition := h.AckedBetween(cut, time.Now())

	if err := l.Heal(old); err != nil {
		t.Fatal(err)
	}
	healed = true
	partition := time.Since(cut)
	load.setTargets(a.urlsOf(a.names))
	time.Sleep(2 * time.Second)
	load.stop()

	leader := a.agreedLeader(t, a.names, 20*time.Second)
	keysAll := append(keyNames(prefix, keys), cliKey)
	for k := range seqAcked {
		keysAll = append(keysAll, k)
	}
	a.finalReads(t, h, workers+3, leader, keysAll)
	st := h.Stats()
	t.Logf("partition: new leader after %v (%s, old leader %s cut off), old leader stepped down after %v; %d writes acknowledged by the majority in %v of partition (%d of %d sequential creates), %d of %d writes to the minority acknowledged",
		elected.Round(time.Millisecond), newLeader, old, steppedDown.Round(time.Millisecond), ackedInPartition, partition.Round(time.Millisecond), len(seqAcked), seqTried, minorityAcked.Load(), minorityWrites.Load())
	t.Logf("history: %d operations, %d acknowledged writes, %d with unknown outcome", st.Ops, st.Acked, st.Unknown)

	if n := minorityAcked.Load(); n > 0 {
		t.Errorf("the cut-off old leader acknowledged %d writes: %s", n, strings.Join(minorityAckedOps, ", "))
	}
	if minorityWrites.Load() == 0 {
		t.Error("no write was sent to the minority")
	}
	if cliErr == nil {
		t.Errorf("skiff apply inside the cut-off %s succeeded:\n%s", old, cliOut)
	} else {
		t.Logf("skiff apply inside the cut-off %s failed as it should: %v: %s", old, cliErr, bytes.TrimSpace(cliOut))
	}
	if elected > 5*time.Second {
		t.Errorf("the majority elected a leader %v after the cut, want within 5s", elected)
	}
	if ackedInPartition < 20 || len(seqAcked) < 5 {
		t.Errorf("the majority barely served during the partition: %d writes acknowledged, %d sequential creates", ackedInPartition, len(seqAcked))
	}
	if leader == old {
		t.Errorf("the old leader %s leads again right after the heal: it should have rejoined as a follower", old)
	}
	if err := h.Check(60*time.Second, os.TempDir()); err != nil {
		t.Fatal(err)
	}

	state, took := a.converge(t, leader, keysAll, 15*time.Second)
	t.Logf("healed: replicas agree %v after the run", took.Round(time.Millisecond))
	a.nodesReady(t)
	for k, v := range seqAcked {
		if got, ok := state[k]; !ok || got != v {
			t.Errorf("%s, created during the partition (acknowledged %q), reads %q (present: %v) on every server", k, v, got, ok)
		}
	}
	if v, ok := state[cliKey]; ok {
		t.Errorf("%s, applied through the cut-off %s, exists after the heal (v=%q)", cliKey, old, v)
	}
}

// applyInside runs `skiff apply` of a Namespace inside a machine's own
// namespace, against that machine's server only.
func (a *labAPI) applyInside(ctx context.Context, name, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd, err := a.l.Command(ctx, name, skiffBin, "--config", a.l.AdminConfig(), "--server", a.urls[name],
		"--request-timeout", "4s", "apply", "-f", "-")
	if err != nil {
		return nil, err
	}
	cmd.Stdin = bytes.NewReader(linear.Body(key, "minority"))
	return cmd.CombinedOutput()
}
