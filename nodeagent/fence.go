package nodeagent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// Isolation fencing (Config.FenceAfter), as VMware HA's host isolation
// response: an agent that has reached no API server AND no other node's
// agent for FenceAfter stops every pod it runs. The control plane marks a
// silent node unreachable after its grace period and replaces its pods
// elsewhere; fencing keeps the originals from running on beside their
// replacements once the node is cut off.
//
// Reaching no API server alone is not isolation: with every server down
// (an outage of the control plane) the other nodes still answer, and the
// pods keep running. A node that knows no other node never fences, since
// it cannot tell the two apart.
//
//	every check period (FenceAfter/10, at most the heartbeat period):
//	  heartbeat answered? ── yes ──> connected (resume if fenced)
//	        │ no
//	  any peer's agent port accepts a TCP connection? ── yes ──> outage: keep pods
//	        │ no (or no peers known: never fence)
//	  isolated since the first such check; after FenceAfter: fence
//
// Fencing lets no pod worker start (as shutting down does) and tears
// every sandbox down as a deletion would (containers with their grace
// period, sandbox, network); a pod whose worker is still busy is torn down
// at the next check after it finishes. The pods stay in the agent's books: once a heartbeat
// is answered again and a list of the node's pods succeeds, the pods the
// API still has are started again by the normal reconcile (new sandbox,
// new containers) and those deleted meanwhile are forgotten.

// ReachFunc tells whether something accepts connections at addr
// (host:port); nil means it does.
type ReachFunc func(ctx context.Context, addr string) error

// tcpReach is the default ReachFunc: a TCP connection that is opened and
// closed.
func tcpReach(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// fenceMaxProbes bounds the peers probed in one check (in parallel; the
// first to answer ends the check). Successive checks rotate through them.
const fenceMaxProbes = 16

// fencePeriod is how often the fence loop checks: a tenth of the fence
// period, at most the heartbeat period.
func fencePeriod(after, heartbeat time.Duration) time.Duration {
	return min(max(after/10, 10*time.Millisecond), heartbeat)
}

// reach is what one check found.
type reach struct {
	api     bool // an API server answered a heartbeat
	peers   int  // peers known
	probed  int  // peers probed (only when no API server answered)
	peersUp int  // of those, how many answered
	// lastAPI is when an API server last answered (zero: unknown).
	lastAPI time.Time
}

// isolated reports a node that reached nothing although it knows peers.
func (r reach) isolated() bool { return !r.api && r.peers > 0 && r.peersUp == 0 }

// fenceAction is what a check calls for.
type fenceAction int

const (
	fenceNone   fenceAction = iota
	fenceStop               // isolated for FenceAfter: stop the pods
	fenceResume             // fenced, and an API server answers: start them again
)

// fenceState is the fence loop's decision, a pure function of the checks
// and their times (so a test can drive it with made-up ones).
type fenceState struct {
	after   time.Duration
	since   time.Time // start of the current isolation; zero if not isolated
	contact time.Time // the last answer from an API server or a peer
	fenced  bool      // the pods were stopped and not started again yet
}

// step records a check made at now and says what to do. The caller sets
// fenced once it has acted.
func (s *fenceState) step(now time.Time, r reach) fenceAction {
	switch {
	case r.api && r.lastAPI.After(s.contact):
		s.contact = r.lastAPI
	case r.api || r.peersUp > 0:
		s.contact = now
	}
	if r.isolated() {
		if s.since.IsZero() {
			// Counted from the last contact with anything, as the control
			// plane counts a node's silence from its last heartbeat.
			s.since = now
			if !s.contact.IsZero() && s.contact.Before(now) {
				s.since = s.contact
			}
		}
		if !s.fenced && now.Sub(s.since) >= s.after {
			return fenceStop
		}
		return fenceNone
	}
	s.since = time.Time{}
	if s.fenced && r.api {
		return fenceResume
	}
	return fenceNone
}

// isolatedFor is how long the current isolation has lasted at now.
func (s *fenceState) isolatedFor(now time.Time) time.Duration {
	if s.since.IsZero() {
		return 0
	}
	return now.Sub(s.since)
}

// peerSet is the other nodes' agent endpoints (host:port), kept from a
// watch of the Nodes while the API answers and used when it does not.
type peerSet struct {
	mu     sync.Mutex
	addrs  map[string]string // node name -> InternalIP:agent port
	listed bool              // a list has been seen
	next   int               // rotation of the probed peers
}

// snapshot returns up to n peer addresses, starting further along at
// each call, and how many peers there are.
func (p *peerSet) snapshot(n int) (addrs []string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := make([]string, 0, len(p.addrs))
	for _, a := range p.addrs {
		all = append(all, a)
	}
	slices.Sort(all)
	if len(all) <= n {
		return all, len(all)
	}
	start := p.next % len(all)
	p.next += n
	for i := range n {
		addrs = append(addrs, all[(start+i)%len(all)])
	}
	return addrs, len(all)
}

// peerAddr is where a node's agent listens: its first InternalIP and its
// daemon endpoint's port ("" for a node that serves none).
func peerAddr(n *api.Node) string {
	if n.Status.DaemonEndpoints == nil || n.Status.DaemonEndpoints.KubeletEndpoint.Port <= 0 {
		return ""
	}
	for _, ad := range n.Status.Addresses {
		if ad.Type != api.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(ad.Address)
		if err != nil {
			return ""
		}
		return net.JoinHostPort(ip.String(), strconv.Itoa(int(n.Status.DaemonEndpoints.KubeletEndpoint.Port)))
	}
	return ""
}

// peerAddrs is the agent endpoint of every node but self that serves one.
func peerAddrs(self string, nodes map[string]*api.Node) map[string]string {
	addrs := map[string]string{}
	for name, n := range nodes {
		if ad := peerAddr(n); ad != "" && name != self {
			addrs[name] = ad
		}
	}
	return addrs
}

// setPeers replaces the peers with addrs (kept: the caller must not
// change it afterwards), saying so when this node has none (it then
// never fences) or gets its first.
func (a *Agent) setPeers(peers *peerSet, addrs map[string]string) {
	peers.mu.Lock()
	before, first := len(peers.addrs), !peers.listed
	peers.addrs = addrs
	peers.listed = true
	peers.mu.Unlock()
	switch {
	case len(addrs) == 0 && (first || before > 0):
		a.log.Warn("fencing is on, but no other node's agent is known: this node will not fence while it has none (alone, it cannot tell its own isolation from a control plane outage)")
	case len(addrs) > 0 && (first || before == 0):
		a.log.Info("fencing on: this node stops its pods when it has reached no API server and no other node for the fence period",
			"fenceAfter", a.cfg.FenceAfter, "peers", len(addrs))
	}
}

// check finds out what this node reaches: an API server (a heartbeat),
// else any peer's agent port.
func (a *Agent) check(ctx context.Context, peers *peerSet, timeout time.Duration) reach {
	var err error
	// A beat of the heartbeat loop answered within its period (and this
	// check's) says enough; otherwise the check asks itself, so that the
	// API's return is seen within a check period.
	if last := a.lastBeat.Load(); last == 0 || a.clock.Now().Sub(time.Unix(0, last)) > a.cfg.HeartbeatPeriod+timeout {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err = a.c.Heartbeat(hctx, a.cfg.NodeName)
		cancel()
		if err == nil {
			a.lastBeat.Store(a.clock.Now().UnixNano())
		}
	}
	addrs, total := peers.snapshot(fenceMaxProbes)
	r := reach{api: err == nil, peers: total}
	if last := a.lastBeat.Load(); last != 0 {
		r.lastAPI = time.Unix(0, last)
	}
	if r.api || len(addrs) == 0 {
		return r
	}
	r.probed = len(addrs)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	up := make(chan bool, len(addrs))
	var wg sync.WaitGroup
	for _, ad := range addrs {
		wg.Go(func() { up <- a.cfg.ReachPeer(pctx, ad) == nil })
	}
	for range addrs {
		if <-up {
			r.peersUp++
			cancel() // one is enough: the others need not finish their dial
		}
	}
	wg.Wait()
	return r
}

// fenceLoop checks the node's reach every period and fences or resumes as
// fenceState says, until ctx ends.
func (a *Agent) fenceLoop(ctx context.Context, peers *peerSet) {
	period := fencePeriod(a.cfg.FenceAfter, a.cfg.HeartbeatPeriod)
	st := fenceState{after: a.cfg.FenceAfter}
	var outage bool // no API server, told once per outage
	for {
		start := a.clock.Now()
		r := a.check(ctx, peers, period)
		if ctx.Err() != nil {
			return
		}
		now := a.clock.Now()
		wasIsolated := !st.since.IsZero()
		act := st.step(now, r)
		switch {
		case r.api:
			if wasIsolated && !st.fenced {
				a.log.Info("an API server answers again; the node was isolated, but not for long enough to fence")
			}
			outage = false
		case r.isolated():
			if !wasIsolated {
				a.log.Warn("no API server and none of the peers reachable: the node may be isolated; fencing if it lasts",
					"peers", r.peers, "probed", r.probed, "fenceAfter", a.cfg.FenceAfter)
			}
			outage = true
		case !outage:
			outage = true
			if r.peers == 0 {
				a.log.Warn("no API server reachable, and no other node known: not fencing (alone, the node cannot tell isolation from an outage)")
			} else {
				a.log.Info("no API server reachable, but another node is: not isolated (a control plane outage?); the pods keep running",
					"peers", r.peers, "answered", r.peersUp)
			}
		}
		switch act {
		case fenceStop:
			a.fence(ctx, st.isolatedFor(now), r)
			st.fenced = true
		case fenceResume:
			if err := a.resume(ctx); err != nil {
				a.log.Warn("an API server answers, but the fenced pods cannot be resumed yet", "err", err)
			} else {
				st.fenced = false
			}
		case fenceNone:
			if st.fenced {
				// What a failed teardown or a worker still busy at the
				// time left.
				a.fenceTeardown(ctx)
			}
		}
		if !a.sleep(ctx, max(period-a.clock.Now().Sub(start), 0)) {
			return
		}
	}
}

// fence stops every pod of the node: no worker may start (as when
// shutting down), and every sandbox is torn down except those of pods
// whose worker is still finishing its pass (the next checks take those).
func (a *Agent) fence(ctx context.Context, isolatedFor time.Duration, r reach) {
	a.mu.Lock()
	a.stopping = true
	for _, ps := range a.pods {
		if ps.retry != nil {
			ps.retry.Stop()
			ps.retry = nil
		}
	}
	pods := 0
	for _, ps := range a.pods {
		if !ps.gone {
			pods++
		}
	}
	a.mu.Unlock()
	peers := fmt.Sprintf("none of %d peers", r.peers)
	if r.probed < r.peers {
		peers = fmt.Sprintf("none of %d probed peers (of %d)", r.probed, r.peers)
	}
	a.log.Error(fmt.Sprintf("node isolated for %v: no API server and %s reachable; stopping %d pods (fencing)",
		isolatedFor.Round(time.Millisecond), peers, pods))
	stopped, left := a.fenceTeardown(ctx)
	if ctx.Err() == nil {
		a.log.Error("node fenced: its pods are stopped until an API server answers again",
			"podsStopped", stopped, "left", left)
	}
}

// fenceTeardown tears down, in parallel, the sandboxes of every pod
// without a worker (while fenced none starts, so those pods are the fence
// loop's). It returns how many pods it tore down and how many are left:
// failed, or their worker still busy (the next check tries again).
func (a *Agent) fenceTeardown(ctx context.Context) (stopped, left int) {
	a.mu.Lock()
	var todo []*podState
	for _, ps := range a.pods {
		switch {
		case ps.running:
			left++ // ps.running went false under a.mu once the worker let go of ps
		case ps.sandbox != "" || len(ps.stale) > 0:
			todo = append(todo, ps)
		}
	}
	a.mu.Unlock()
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, ps := range todo {
		wg.Go(func() {
			a.probes.RemovePod(ps.uid)
			if errs[i] = a.teardown(ctx, ps, nil); errs[i] == nil {
				// The next sandbox is a new attempt, as after one died.
				ps.meta.Attempt++
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			left++
			if ctx.Err() == nil {
				a.log.Warn("fencing: stop a pod", "pod", podName(todo[i], nil), "err", err)
			}
			continue
		}
		stopped++
	}
	return stopped, left
}

// resume ends fencing once the API answers: the node's pods are listed,
// those deleted meanwhile are marked gone, and every pod's worker is
// woken, which starts again the ones that should run.
func (a *Agent) resume(ctx context.Context) error {
	l, err := a.c.List(ctx, api.KindPod, client.ListOptions{FieldSelector: api.FieldPodNodeName + "=" + a.cfg.NodeName})
	if err != nil {
		return fmt.Errorf("list the node's pods: %w", err)
	}
	listed := make(map[api.UID]*api.Pod, len(l.Items))
	for _, o := range l.Items {
		p := o.(*api.Pod)
		listed[p.UID] = p
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the pods stay stopped
	}
	again, gone := 0, 0
	for _, ps := range a.pods {
		if ps.gone {
			continue
		}
		p, ok := listed[ps.uid]
		switch {
		case ok:
			if ps.pod == nil || newerRV(p.ResourceVersion, ps.pod.ResourceVersion) {
				ps.pod = p
			}
			again++
		case ps.pod == nil || !newerRV(ps.pod.ResourceVersion, l.ResourceVersion):
			// Deleted while the node was away (a version newer than the
			// list came from the watch since: the watch knows better).
			ps.gone = true
			gone++
		}
	}
	a.stopping = false
	for _, ps := range a.pods {
		a.kick(ctx, ps)
	}
	a.log.Warn("an API server answers again: fencing over; starting the node's pods again",
		"pods", again, "deletedMeanwhile", gone)
	return nil
}
