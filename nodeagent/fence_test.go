package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	"github.com/skiffhq/skiff/nodeagent/runtime/fake"
	"github.com/skiffhq/skiff/test/testcluster"
)

// fenceAfter is the fence period of these tests.
const fenceAfter = 600 * time.Millisecond

// cutter is a dialer whose connections the test can cut, all at once, as
// a link going down does: open ones are closed and new ones fail to dial.
type cutter struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

var errCut = errors.New("network is unreachable (cut by the test)")

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	fail := &net.OpError{Op: "dial", Net: network, Err: errCut}
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut {
		return nil, fail
	}
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		conn.Close()
		return nil, fail
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

func (c *cutter) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for _, conn := range c.conns {
			conn.Close()
		}
		c.conns = nil
	}
}

// cuttableNodeClient is testcluster.NodeClient over a cutter.
func cuttableNodeClient(t *testing.T, cl *testcluster.Cluster, name string, cut *cutter) *client.Client {
	t.Helper()
	j, err := client.NewJoiner(context.Background(), []string{cl.URL}, cl.AgentToken(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cfg, err := j.JoinNode(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, DialContext: cut.dial, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(cfg, client.WithHTTPClient(&http.Client{Transport: tr}), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logRecorder is a slog.Handler that keeps every record's level and
// message with its attributes.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}

// has reports whether a record holds every one of parts.
func (l *logRecorder) has(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.recs, func(r string) bool {
		for _, p := range parts {
			if !strings.Contains(r, p) {
				return false
			}
		}
		return true
	})
}

func (l *logRecorder) dump(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		t.Log(r)
	}
}

// fenceRig is a node agent with fencing on, over a fake runtime and a
// client whose connections the test cuts, and peers that answer or not
// as the test says.
type fenceRig struct {
	cl     *testcluster.Cluster
	rt     *fake.Runtime
	cut    *cutter
	log    *logRecorder
	peerUp atomic.Bool
	probed sync.Map // peer addresses the agent probed
}

const (
	fenceHeartbeat = 100 * time.Millisecond
	fenceNode      = "node-f"
	peerAddr       = "198.18.0.2:10250"
)

// newFenceRig starts a cluster, adds a peer Node (InternalIP and agent port
// peerAddr) unless alone, and starts the agent.
func newFenceRig(t *testing.T, alone bool) *fenceRig {
	t.Helper()
	r := &fenceRig{
		// Long enough that the control plane never evicts during a test.
		cl:  testcluster.Start(t, testcluster.Options{NodeGracePeriod: time.Minute}),
		rt:  fake.New(fake.Options{StartDelay: 10 * time.Millisecond}),
		cut: &cutter{},
		log: &logRecorder{},
	}
	r.peerUp.Store(true)
	if !alone {
		addPeerNode(t, r.cl.Admin, "peer-1", peerAddr)
	}
	ag, err := nodeagent.New(nodeagent.Config{
		Client: cuttableNodeClient(t, r.cl, fenceNode, r.cut), NodeName: fenceNode, Runtime: r.rt,
		Addresses:       []api.NodeAddress{{Type: api.NodeInternalIP, Address: "198.18.0.1"}},
		DaemonPort:      10250,
		Version:         "test",
		HeartbeatPeriod: fenceHeartbeat,
		RelistPeriod:    50 * time.Millisecond,
		BackoffMin:      200 * time.Millisecond,
		FenceAfter:      fenceAfter,
		ReachPeer: func(_ context.Context, addr string) error {
			r.probed.Store(addr, true)
			if addr == peerAddr && r.peerUp.Load() {
				return nil
			}
			return fmt.Errorf("dial %s: %w", addr, errCut)
		},
		Logger: slog.New(slog.NewMultiHandler(r.log, testLogger(t).Handler())).With("test", t.Name()),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("agent did not stop within 10s")
		}
		if t.Failed() {
			r.log.dump(t)
		}
	})
	return r
}

func addPeerNode(t *testing.T, c *client.Client, name, addr string) {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	n := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: string(api.KindNode)}}
	n.Name = name
	if _, err := c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	// The controllers write the new Node too (its pod CIDR): retry on a
	// conflict with a fresh read.
	testcluster.Eventually(t, wait, "the peer Node's status written", func() bool {
		o, err := c.Get(context.Background(), api.KindNode, "", name)
		if err != nil {
			t.Fatal(err)
		}
		n := o.(*api.Node)
		n.Status.Addresses = []api.NodeAddress{{Type: api.NodeInternalIP, Address: host}}
		n.Status.DaemonEndpoints = &api.NodeDaemonEndpoints{KubeletEndpoint: api.DaemonEndpoint{Port: 10250}}
		_, err = c.UpdateStatus(context.Background(), n)
		if err != nil && !client.IsConflict(err) {
			t.Fatal(err)
		}
		return err == nil
	})
}

// running counts the runtime's running containers and its sandboxes.
func (r *fenceRig) running(t *testing.T) (containers, sandboxes int) {
	t.Helper()
	cs, err := r.rt.ListContainers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.State == runtime.ContainerRunning {
			containers++
		}
	}
	sbs, err := r.rt.ListSandboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return containers, len(sbs)
}

// startPod creates a pod of two containers on the node and waits until it
// runs.
func (r *fenceRig) startPod(t *testing.T, name string) *api.Pod {
	t.Helper()
	createPod(t, r.cl.Admin, name, fenceNode)
	return waitPod(t, r.cl.Admin, name, "Running and Ready", podReady)
}

// holds checks for d that the runtime keeps want running containers.
func (r *fenceRig) holds(t *testing.T, d time.Duration, want int, why string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cs, _ := r.running(t); cs != want {
			t.Fatalf("%s: %d containers running, want %d", why, cs, want)
		}
	}
}

func (r *fenceRig) waitLog(t *testing.T, what string, parts ...string) {
	t.Helper()
	testcluster.Eventually(t, wait, what, func() bool { return r.log.has(parts...) })
}

// (a) + (d): cut off from the API and from its peer for longer than
// FenceAfter, the node stops its containers, and not before; once the API
// answers again, the pod the API still has runs again in new containers,
// and the one deleted meanwhile does not come back.
func TestFenceStopsIsolatedNodesPodsAndResumes(t *testing.T) {
	r := newFenceRig(t, false)
	web := r.startPod(t, "web")
	r.startPod(t, "doomed")
	r.waitLog(t, "the agent knows its peer", "fencing on", "peers=1")
	if cs, sbs := r.running(t); cs != 4 || sbs != 2 {
		t.Fatalf("before the cut: %d containers running in %d sandboxes, want 4 in 2", cs, sbs)
	}

	r.peerUp.Store(false)
	r.cut.set(true)
	cutAt := time.Now()
	r.holds(t, fenceAfter/2, 4, "isolated for less than FenceAfter")
	testcluster.Eventually(t, wait, "the isolated node's containers stopped", func() bool {
		cs, sbs := r.running(t)
		return cs == 0 && sbs == 0
	})
	if took := time.Since(cutAt); took < fenceAfter {
		t.Errorf("containers stopped %v after the cut, before FenceAfter (%v)", took, fenceAfter)
	}
	if _, ok := r.probed.Load(peerAddr); !ok {
		t.Errorf("the agent never probed its peer at %s (the peer Node's InternalIP and agent port)", peerAddr)
	}
	if !r.log.has("ERROR node isolated for", "no API server and none of 1 peers reachable; stopping 2 pods (fencing)") {
		t.Error("no loud log of the fencing")
	}
	// Still cut off: the relists and resyncs start nothing again.
	r.holds(t, 5*fenceAfter/2, 0, "fenced")

	// Deleted while the node was away.
	zero := int64(0)
	if _, err := r.cl.Admin.Delete(context.Background(), api.KindPod, "default", "doomed", client.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	r.cut.set(false)
	p := waitPod(t, r.cl.Admin, "web", "running again in new containers", func(p *api.Pod) bool {
		cs := containerStatus(p, "web")
		return podReady(p) && cs != nil && cs.ContainerID != containerStatus(web, "web").ContainerID
	})
	if cs, sbs := r.running(t); cs != 2 || sbs != 1 {
		t.Errorf("after resuming: %d containers running in %d sandboxes, want web's 2 in 1", cs, sbs)
	}
	if containerStatus(p, "sidecar").ContainerID == containerStatus(web, "sidecar").ContainerID {
		t.Error("the sidecar runs in its old container")
	}
	// (The deleted pod counts as deletedMeanwhile unless the pod watch,
	// back too, told the agent first: either way it must not come back.)
	r.waitLog(t, "the resume logged", "fencing over", "pods=1")
	// The deleted pod never comes back.
	for end := time.Now().Add(fenceAfter); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		sbs, err := r.rt.ListSandboxes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range sbs {
			if sb.Pod.Name == "doomed" {
				t.Fatal("the pod deleted while the node was fenced got a sandbox again")
			}
		}
	}
}

// (b): no API server but a peer answers (a control plane outage): nothing
// is stopped, however long it lasts. Once the peer is gone too, the node
// fences: it was the peer that kept the pods running.
func TestFenceKeepsPodsWhenAPeerAnswers(t *testing.T) {
	r := newFenceRig(t, false)
	r.startPod(t, "web")
	r.waitLog(t, "the agent knows its peer", "fencing on", "peers=1")

	r.cut.set(true)
	r.holds(t, 4*fenceAfter, 2, "API servers unreachable, a peer answering")
	if !r.log.has("no API server reachable, but another node is: not isolated") {
		t.Error("the outage was not logged")
	}
	if r.log.has("node isolated") {
		t.Error("a node whose peer answers was logged isolated")
	}

	r.peerUp.Store(false)
	lost := time.Now()
	testcluster.Eventually(t, wait, "containers stopped once the peer is gone too", func() bool {
		cs, _ := r.running(t)
		return cs == 0
	})
	// Isolation counts from the last check that saw the peer, which can
	// be up to a check period before the peer was lost.
	// (The check period is FenceAfter/10, at most the 100ms heartbeat.)
	if took, slack := time.Since(lost), min(fenceAfter/10, fenceHeartbeat); took < fenceAfter-slack {
		t.Errorf("fenced %v after the peer was lost, before FenceAfter (%v) less a check period (%v)", took, fenceAfter, slack)
	}
}

// (c): a node that knows no other node never fences: alone, it cannot
// tell its isolation from an outage of the control plane. It says so.
func TestFenceNeverWithoutPeers(t *testing.T) {
	r := newFenceRig(t, true)
	r.startPod(t, "web")
	r.waitLog(t, "the agent said it will not fence", "WARN fencing is on, but no other node's agent is known")

	r.cut.set(true)
	r.holds(t, 4*fenceAfter, 2, "alone and cut off")
	if !r.log.has("no API server reachable, and no other node known: not fencing") {
		t.Error("the outage of a node without peers was not logged")
	}
	r.cut.set(false)
	r.holds(t, fenceAfter, 2, "connected again")
}
