package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// followerStore is a replica that is not the leader.
type followerStore struct{ *store.Store }

func (followerStore) IsLeader() bool                    { return false }
func (followerStore) ReadBarrier(context.Context) error { return store.ErrNotLeader }

// deposedStore believes it leads but loses leadership before proposing.
type deposedStore struct{ *store.Store }

func (deposedStore) Create(context.Context, api.Object) (api.Object, error) {
	return nil, fmt.Errorf("proposing: %w", store.ErrNotLeader)
}

// unknownStore loses leadership after proposing.
type unknownStore struct{ *store.Store }

func (unknownStore) Create(context.Context, api.Object) (api.Object, error) {
	return nil, fmt.Errorf("committing: %w", store.ErrUnknownOutcome)
}

type fakeCluster struct {
	leader  string
	ready   bool
	joined  []JoinRequest
	members MembersInfo
}

func (c *fakeCluster) LeaderAPIURL() string { return c.leader }
func (c *fakeCluster) Members(context.Context) (MembersInfo, error) {
	return c.members, nil
}
func (c *fakeCluster) Join(_ context.Context, r JoinRequest) error {
	c.joined = append(c.joined, r)
	return nil
}
func (c *fakeCluster) Ready() bool { return c.ready }

func TestFollowerForwardsToLeader(t *testing.T) {
	leaderCluster := &fakeCluster{ready: true}
	leader := newTestServer(t, Config{Cluster: leaderCluster, ServerID: "leader"})
	leaderCluster.leader = leader.URL

	replica := newStore(t)
	followerCluster := &fakeCluster{leader: leader.URL, ready: true}
	follower := newTestServer(t, Config{Store: followerStore{replica}, Cluster: followerCluster, ServerID: "follower"})

	pods := "/api/v1/namespaces/default/pods"
	created := expect(t, do(t, "POST", follower.URL+pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusCreated).object(t)
	if meta(t, created)["name"] != "a" {
		t.Fatalf("forwarded create answered %v", created)
	}
	if _, err := leader.store.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: "a"}); err != nil {
		t.Fatalf("write did not land on the leader: %v", err)
	}
	if _, err := replica.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: "a"}); err == nil {
		t.Fatal("write landed on the follower's own store")
	}
	// A consistent read is forwarded; a stale one reads the local replica.
	expect(t, do(t, "GET", follower.URL+pods+"/a", ""), http.StatusOK)
	expect(t, do(t, "GET", follower.URL+pods+"/a?consistent=false", ""), http.StatusNotFound)
	l := expect(t, do(t, "GET", follower.URL+pods, ""), http.StatusOK).object(t)
	if len(l["items"].([]any)) != 1 {
		t.Fatalf("forwarded list: %v", l)
	}
	// Errors of the leader come back unchanged.
	expectStatus(t, do(t, "POST", follower.URL+pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusConflict, api.ReasonAlreadyExists, "already exists")
	expect(t, do(t, "PUT", follower.URL+pods+"/a", fmt.Sprintf(podJSON, "a", "x", "")), http.StatusOK)
	expect(t, do(t, "DELETE", follower.URL+pods+"/a", ""), http.StatusOK)

	// Join is forwarded to the leader too.
	expect(t, do(t, "POST", follower.URL+"/skiff/v1/join", `{"id":"s3","raftAddr":"127.0.0.1:7000","apiAddr":"127.0.0.1:6443"}`), http.StatusOK)
	if len(leaderCluster.joined) != 1 || leaderCluster.joined[0].ID != "s3" || len(followerCluster.joined) != 0 {
		t.Fatalf("join landed on %v / %v", leaderCluster.joined, followerCluster.joined)
	}

	if n := counterValue(t, follower, "skiff_apiserver_forwarded_requests_total"); n < 7 {
		t.Fatalf("forwarded counter = %v", n)
	}
}

func TestForwardingLoopsAndNoLeader(t *testing.T) {
	replica := newStore(t)
	cluster := &fakeCluster{}
	follower := newTestServer(t, Config{Store: followerStore{replica}, Cluster: cluster})
	pods := follower.URL + "/api/v1/namespaces/default/pods"

	r := expectStatus(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusServiceUnavailable, api.ReasonServiceUnavailable, "no leader elected yet")
	if r.Details == nil || r.Details.RetryAfterSeconds != 1 {
		t.Fatalf("no retry-after in %+v", r)
	}

	// Two followers that each believe the other leads: one hop, then 503.
	replica2 := newStore(t)
	other := newTestServer(t, Config{Store: followerStore{replica2}, Cluster: &fakeCluster{leader: follower.URL}})
	cluster.leader = other.URL
	resp := do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", ""))
	expectStatus(t, resp, http.StatusServiceUnavailable, api.ReasonServiceUnavailable, "already forwarded")
	if resp.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q", resp.header.Get("Retry-After"))
	}
	expectStatus(t, do(t, "GET", pods+"/a", "", HeaderForwarded, "x"), http.StatusServiceUnavailable, api.ReasonServiceUnavailable, "already forwarded")

	// Leader unreachable: 503, and watches are still served locally.
	cluster.leader = "http://127.0.0.1:1"
	expectStatus(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusServiceUnavailable, api.ReasonServiceUnavailable, "unreachable")
	w := openWatch(t, pods+"?watch=true")
	if _, err := replica.Create(context.Background(), podObject(t, "local")); err != nil {
		t.Fatal(err)
	}
	w.expectEvent("ADDED", "local")
	expectStatus(t, do(t, "GET", follower.URL+"/readyz", ""), http.StatusServiceUnavailable, api.ReasonServiceUnavailable, "not ready")
}

func TestLeadershipLostDuringWrite(t *testing.T) {
	leader := newTestServer(t, Config{})
	st := newStore(t)
	deposed := newTestServer(t, Config{Store: deposedStore{st}, Cluster: &fakeCluster{leader: leader.URL}})
	// Not proposed: the buffered body is forwarded to the new leader.
	expect(t, do(t, "POST", deposed.URL+"/api/v1/namespaces/default/pods", fmt.Sprintf(podJSON, "a", "web", "")), http.StatusCreated)
	if _, err := leader.store.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: "a"}); err != nil {
		t.Fatalf("write not forwarded: %v", err)
	}

	st2 := newStore(t)
	unknown := newTestServer(t, Config{Store: unknownStore{st2}, Cluster: &fakeCluster{leader: leader.URL}})
	resp := do(t, "POST", unknown.URL+"/api/v1/namespaces/default/pods", fmt.Sprintf(podJSON, "b", "web", ""))
	expectStatus(t, resp, http.StatusServiceUnavailable, api.ReasonServiceUnavailable, "may have been applied")
	if resp.header.Get(HeaderWriteOutcome) != "unknown" || resp.header.Get("Retry-After") == "" {
		t.Fatalf("headers: %v", resp.header)
	}
}

func podObject(t *testing.T, name string) api.Object {
	t.Helper()
	o, err := api.DecodeObject([]byte(fmt.Sprintf(podJSON, name, "web", "")))
	if err != nil {
		t.Fatal(err)
	}
	o.GetObjectMeta().Namespace = "default"
	api.Default(o)
	return o
}

func counterValue(t *testing.T, ts *testServer, name string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
