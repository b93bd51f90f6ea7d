package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// The Manager with its real prober: HTTP readiness against a server that
// starts failing, TCP liveness against a closed port, exec readiness
// through an Execer; the clock is fake, the network is loopback.
func TestManagerWithRealProbes(t *testing.T) {
	var unhealthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if unhealthy.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	port := newProbeServerPort(t, srv.URL)
	closed := closedPort(t)

	var execs atomic.Int32
	ex := fakeExecer{fn: func(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
		execs.Add(1)
		if id != "side-1" {
			return 0, fmt.Errorf("exec in %s: %w", id, runtime.ErrNotFound)
		}
		return 0, nil
	}}
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	m := NewManager(Config{Clock: clock, Execer: ex, Metrics: NewMetrics(reg), DisableFastStart: true})
	idle := make(chan time.Time, 100)
	m.idleHook = func(k Kind, id runtime.ContainerID, due time.Time) {
		if k == Readiness && id == "web-1" {
			select {
			case idle <- due:
			default: // the test stopped listening
			}
		}
	}
	awaitIdle := func(k Kind, id runtime.ContainerID, at time.Time) {
		t.Helper()
		for {
			select {
			case due := <-idle:
				if due.Equal(at) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the %s worker of %s does not wait for %v", k, id, at)
			}
		}
	}
	t.Cleanup(m.Stop)

	t0 := clock.Now()
	web := api.Container{
		Name:  "web",
		Ports: []api.ContainerPort{{Name: "http", ContainerPort: port}},
		ReadinessProbe: &api.Probe{
			ProbeHandler:  api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: api.FromString("http"), Scheme: api.URISchemeHTTP}},
			PeriodSeconds: 5, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 2,
		},
	}
	side := api.Container{
		Name: "side",
		LivenessProbe: &api.Probe{
			ProbeHandler:  api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: api.FromInt32(closed)}},
			PeriodSeconds: 5, FailureThreshold: 1,
		},
		ReadinessProbe: &api.Probe{ProbeHandler: api.ProbeHandler{Exec: &api.ExecAction{Command: []string{"true"}}}},
	}
	m.AddPod(Pod{UID: "u1", Namespace: "default", Name: "web-1", IP: "127.0.0.1", Containers: []Container{
		{Spec: web, ID: "web-1", StartedAt: t0},
		{Spec: side, ID: "side-1", StartedAt: t0},
	}})

	got := map[string]Update{}
	collect := func(n int) {
		t.Helper()
		for range n {
			select {
			case u := <-m.Updates():
				got[u.Container+"/"+string(u.Kind)] = u
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d updates: %+v", len(got), got)
			}
		}
	}
	collect(3)
	want := map[string]Update{
		"web/Readiness":  {PodUID: "u1", Container: "web", ContainerID: "web-1", Kind: Readiness, Result: Success},
		"side/Readiness": {PodUID: "u1", Container: "side", ContainerID: "side-1", Kind: Readiness, Result: Success},
		"side/Liveness": {PodUID: "u1", Container: "side", ContainerID: "side-1", Kind: Liveness, Result: Failure,
			Message: fmt.Sprintf("Liveness probe failed: dial tcp 127.0.0.1:%d: connect: connection refused", closed)},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
	if !m.Ready("web-1") || !m.Ready("side-1") || execs.Load() == 0 {
		t.Errorf("ready: web %v side %v (execs %d)", m.Ready("web-1"), m.Ready("side-1"), execs.Load())
	}

	// The server starts failing: two periods later the pod is not ready.
	unhealthy.Store(true)
	for i := 1; i <= 2; i++ {
		at := t0.Add(time.Duration(5*i) * time.Second)
		awaitIdle(Readiness, "web-1", at)
		clock.AdvanceTo(at)
	}
	clear(got)
	collect(1)
	w := Update{PodUID: "u1", Container: "web", ContainerID: "web-1", Kind: Readiness, Result: Failure,
		Message: "Readiness probe failed: HTTP probe failed with statuscode: 503"}
	if got["web/Readiness"] != w {
		t.Errorf("after the server failed: %+v, want %+v", got, w)
	}
	if m.Ready("web-1") {
		t.Error("web still ready")
	}

	m.RemovePod("u1")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "skiff_agent_probes_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			key := ""
			for _, l := range mt.GetLabel() {
				key += l.GetValue() + "/"
			}
			counts[key] = mt.GetCounter().GetValue()
		}
	}
	for _, key := range []string{"Readiness/success/", "Readiness/failure/", "Liveness/failure/"} {
		if counts[key] < 1 {
			t.Errorf("skiff_agent_probes_total %s = %v, want at least 1 (all: %v)", key, counts[key], counts)
		}
	}
}

func newProbeServerPort(t *testing.T, rawURL string) int32 {
	t.Helper()
	ps := &probeServer{Server: &httptest.Server{URL: rawURL}}
	return ps.port(t)
}

// A container the pod's last status reported ready (an agent restarting
// and adopting it) is ready before its first probe; its first failing
// probes take that away as usual. A container without that report starts
// not ready.
func TestManagerCarriesReportedReadiness(t *testing.T) {
	ex := fakeExecer{fn: func(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
		return 1, nil // every probe fails
	}}
	clock := newFakeClock()
	m := NewManager(Config{Clock: clock, Execer: ex, DisableFastStart: true})
	t.Cleanup(m.Stop)
	spec := func(name string) api.Container {
		return api.Container{Name: name, ReadinessProbe: &api.Probe{
			ProbeHandler:        api.ProbeHandler{Exec: &api.ExecAction{Command: []string{"false"}}},
			InitialDelaySeconds: 0, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1,
		}}
	}
	m.AddPod(Pod{UID: "p1", Namespace: "default", Name: "p", IP: "10.0.0.1", Containers: []Container{
		{Spec: spec("adopted"), ID: "adopted-1", StartedAt: clock.Now(), WasReady: true},
		{Spec: spec("fresh"), ID: "fresh-1", StartedAt: clock.Now()},
	}})
	if !m.Ready("adopted-1") {
		t.Errorf("a container reported ready is not ready before its first probe")
	}
	if m.Ready("fresh-1") {
		t.Errorf("a container never reported ready is ready before its first probe")
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.Ready("adopted-1") {
		if time.Now().After(deadline) {
			t.Fatalf("the adopted container is still ready after its probe kept failing")
		}
		clock.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
}
