package nodeagent

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

// The fence decision over a script of checks: isolation is timed from the
// last answer of anything (an API server or a peer: the first isolated
// check when none is known); a peer or an API server ends it; only an API
// server ends fencing; a node without peers never fences.
func TestFenceStateStep(t *testing.T) {
	const after = 10 * time.Second
	var (
		connected = reach{api: true, peers: 2}
		outage    = reach{peers: 2, probed: 2, peersUp: 1} // no API server, a peer answers
		isolated  = reach{peers: 2, probed: 2}
		alone     = reach{} // no API server, no peer known
	)
	type check struct {
		at    time.Duration // since the start
		r     reach
		want  fenceAction
		acted bool // the caller acted on want (fenced / resumed)
	}
	for _, tc := range []struct {
		name   string
		checks []check
	}{
		{"connected", []check{{0, connected, fenceNone, false}, {time.Hour, connected, fenceNone, false}}},
		{"isolated past the period fences once", []check{
			{0, connected, fenceNone, false}, // the last answer: isolation counts from here
			{1 * time.Second, isolated, fenceNone, false},
			{10*time.Second - time.Millisecond, isolated, fenceNone, false},
			{10 * time.Second, isolated, fenceStop, true},
			{12 * time.Second, isolated, fenceNone, false},
		}},
		{"a control plane outage never fences", []check{
			{0, outage, fenceNone, false}, {time.Minute, outage, fenceNone, false}, {time.Hour, outage, fenceNone, false},
		}},
		{"alone never fences", []check{
			{0, alone, fenceNone, false}, {time.Hour, alone, fenceNone, false},
		}},
		{"a peer answering restarts the count", []check{
			{0, isolated, fenceNone, false},
			{9 * time.Second, isolated, fenceNone, false},
			{10*time.Second - time.Millisecond, outage, fenceNone, false}, // a peer's answer: counts from here
			{11 * time.Second, isolated, fenceNone, false},
			{20*time.Second - 2*time.Millisecond, isolated, fenceNone, false},
			{20 * time.Second, isolated, fenceStop, true},
		}},
		{"fenced: peers back is not enough, the API is", []check{
			{0, isolated, fenceNone, false},
			{after, isolated, fenceStop, true},
			{after + time.Second, outage, fenceNone, false},
			{after + 2*time.Second, connected, fenceResume, false}, // resume failed (list)
			{after + 3*time.Second, connected, fenceResume, true},
			{after + 4*time.Second, connected, fenceNone, false},
		}},
		{"isolated again after resuming", []check{
			{0, isolated, fenceNone, false},
			{after, isolated, fenceStop, true},
			{after + time.Second, connected, fenceResume, true},
			{after + 2*time.Second, isolated, fenceNone, false},
			{2*after + 2*time.Second, isolated, fenceStop, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Unix(1_700_000_000, 0)
			s := fenceState{after: after}
			for i, c := range tc.checks {
				got := s.step(t0.Add(c.at), c.r)
				if got != c.want {
					t.Fatalf("check %d at %v (%+v): action %d, want %d", i, c.at, c.r, got, c.want)
				}
				if c.acted {
					s.fenced = got == fenceStop
				}
			}
		})
	}
}

func TestPeerAddr(t *testing.T) {
	node := func(port int32, addrs ...api.NodeAddress) *api.Node {
		n := &api.Node{}
		n.Status.Addresses = addrs
		if port != 0 {
			n.Status.DaemonEndpoints = &api.NodeDaemonEndpoints{KubeletEndpoint: api.DaemonEndpoint{Port: port}}
		}
		return n
	}
	internal := func(a string) api.NodeAddress { return api.NodeAddress{Type: api.NodeInternalIP, Address: a} }
	host := api.NodeAddress{Type: api.NodeHostName, Address: "n1"}
	for _, tc := range []struct {
		n    *api.Node
		want string
	}{
		{node(10250, host, internal("10.0.0.2")), "10.0.0.2:10250"},
		{node(10250, internal("fd00::2")), "[fd00::2]:10250"},
		{node(0, internal("10.0.0.2")), ""}, // serves no endpoint (simulated)
		{node(10250, host), ""},             // no InternalIP
		{node(10250, internal("not-an-ip")), ""},
	} {
		if got := peerAddr(tc.n); got != tc.want {
			t.Errorf("peerAddr(%+v) = %q, want %q", tc.n.Status, got, tc.want)
		}
	}
}

// Past fenceMaxProbes peers, successive checks probe different ones.
func TestPeerSetSnapshotRotates(t *testing.T) {
	p := &peerSet{addrs: map[string]string{}}
	for i := range 40 {
		p.addrs[string(rune('a'+i))] = string(rune('A' + i))
	}
	seen := map[string]bool{}
	for range 3 {
		addrs, total := p.snapshot(fenceMaxProbes)
		if total != 40 || len(addrs) != fenceMaxProbes {
			t.Fatalf("snapshot: %d of %d, want %d of 40", len(addrs), total, fenceMaxProbes)
		}
		for _, a := range addrs {
			seen[a] = true
		}
	}
	if len(seen) != 40 {
		t.Errorf("3 checks probed %d distinct peers, want all 40", len(seen))
	}
	small := &peerSet{addrs: map[string]string{"a": "x:1", "b": "y:1"}}
	if addrs, total := small.snapshot(fenceMaxProbes); len(addrs) != 2 || total != 2 {
		t.Errorf("snapshot of 2 peers: %v of %d", addrs, total)
	}
}

func TestFencePeriod(t *testing.T) {
	for _, tc := range []struct{ after, heartbeat, want time.Duration }{
		{10 * time.Second, 2 * time.Second, time.Second},
		{60 * time.Second, 2 * time.Second, 2 * time.Second}, // at most a heartbeat period
		{50 * time.Millisecond, 2 * time.Second, 10 * time.Millisecond},
	} {
		if got := fencePeriod(tc.after, tc.heartbeat); got != tc.want {
			t.Errorf("fencePeriod(%v, %v) = %v, want %v", tc.after, tc.heartbeat, got, tc.want)
		}
	}
}
