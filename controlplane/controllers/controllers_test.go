package controllers

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestQueueDedupsAndRequeues(t *testing.T) {
	q := NewQueue[string]()
	var retries []func()
	q.after = func(_ time.Duration, f func()) { retries = append(retries, f) }
	q.Add("a")
	q.Add("a")
	q.Add("b")
	if q.Len() != 2 {
		t.Fatalf("len %d, want 2", q.Len())
	}
	ctx := context.Background()
	k, _ := q.Get(ctx)
	q.Add(k) // added while active: processed again after Done
	q.Done(k, nil)
	if q.Len() != 2 {
		t.Fatalf("a key added while active was not requeued (len %d)", q.Len())
	}
	k, _ = q.Get(ctx)
	q.Done(k, errors.New("boom"))
	if len(retries) != 1 {
		t.Fatal("a failed key was not scheduled for retry")
	}
	retries[0]()
	if q.Len() != 2 {
		t.Fatalf("retry did not requeue (len %d)", q.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	q2 := NewQueue[string]()
	if _, ok := q2.Get(cctx); ok {
		t.Fatal("Get on a cancelled context returned a key")
	}
}

func mkPod(name, ip string, labels map[string]string, ready bool, ports ...api.ContainerPort) *api.Pod {
	info, _ := api.ByKind(api.KindPod)
	p := info.New().(*api.Pod)
	p.Namespace, p.Name, p.Labels = "default", name, labels
	p.Spec.NodeName = "n1"
	p.Spec.Containers = []api.Container{{Name: "c", Image: "i", Ports: ports}}
	p.Status.PodIP = ip
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	p.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: st}}
	return p
}

func TestEndpointSubsets(t *testing.T) {
	svc := &api.Service{Spec: api.ServiceSpec{Ports: []api.ServicePort{
		{Name: "http", Port: 80, Protocol: api.ProtocolTCP, TargetPort: api.FromString("web")},
		{Name: "metrics", Port: 9090, Protocol: api.ProtocolTCP, TargetPort: api.FromInt32(9100)},
	}}}
	pods := []api.Object{
		mkPod("a", "10.0.0.2", nil, true, api.ContainerPort{Name: "web", ContainerPort: 8080, Protocol: api.ProtocolTCP}),
		mkPod("b", "10.0.0.3", nil, false, api.ContainerPort{Name: "web", ContainerPort: 8080, Protocol: api.ProtocolTCP}),
		mkPod("c", "10.0.0.4", nil, true, api.ContainerPort{Name: "web", ContainerPort: 8081, Protocol: api.ProtocolTCP}),
		mkPod("noip", "", nil, true),
	}
	got := EndpointSubsets(svc, pods)
	if len(got) != 2 {
		t.Fatalf("want 2 subsets (two port sets), got %+v", got)
	}
	find := func(port int32) api.EndpointSubset {
		for _, s := range got {
			if s.Ports[0].Port == port {
				return s
			}
		}
		t.Fatalf("no subset for port %d", port)
		return api.EndpointSubset{}
	}
	s8080 := find(8080)
	if len(s8080.Addresses) != 1 || s8080.Addresses[0].IP != "10.0.0.2" || len(s8080.NotReadyAddresses) != 1 || s8080.Ports[1].Port != 9100 {
		t.Fatalf("8080 subset: %+v", s8080)
	}
	if s := find(8081); len(s.Addresses) != 1 || s.Addresses[0].IP != "10.0.0.4" {
		t.Fatalf("8081 subset: %+v", s)
	}
}

func TestEndpointsController(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store.NewInMemory()
	defer st.Close()
	nsInfo, _ := api.ByKind(api.KindNamespace)
	ns := nsInfo.New()
	ns.GetObjectMeta().Name = "default"
	st.Create(ctx, ns)
	c := &Endpoints{Store: st, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	svcInfo, _ := api.ByKind(api.KindService)
	svc := svcInfo.New().(*api.Service)
	svc.Namespace, svc.Name = "default", "web"
	svc.Spec.Selector = map[string]string{"app": "web"}
	svc.Spec.Ports = []api.ServicePort{{Port: 80, Protocol: api.ProtocolTCP, TargetPort: api.FromInt32(8080)}}
	if _, err := st.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	p, _ := st.Create(ctx, mkPod("p1", "10.244.0.5", map[string]string{"app": "web"}, false))
	st.Create(ctx, mkPod("other", "10.244.0.6", map[string]string{"app": "db"}, true))

	key := store.Key{Kind: api.KindEndpoints, Namespace: "default", Name: "web"}
	waitFor := func(what string, want func(*api.Endpoints) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			if o, err := st.Get(key); err == nil && want(o.(*api.Endpoints)) {
				return time.Since(start)
			}
			time.Sleep(time.Millisecond)
		}
		o, err := st.Get(key)
		t.Fatalf("%s: endpoints %+v %v", what, o, err)
		return 0
	}
	waitFor("not-ready pod listed as not ready", func(e *api.Endpoints) bool {
		return len(e.Subsets) == 1 && len(e.Subsets[0].Addresses) == 0 && len(e.Subsets[0].NotReadyAddresses) == 1
	})
	// Readiness flips: the address moves within milliseconds.
	ready := api.DeepCopy(p.(*api.Pod))
	ready.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
	if _, err := st.UpdateStatus(ctx, ready); err != nil {
		t.Fatal(err)
	}
	d := waitFor("ready pod listed", func(e *api.Endpoints) bool {
		return len(e.Subsets) == 1 && reflect.DeepEqual(ipsOf(e.Subsets[0].Addresses), []string{"10.244.0.5"})
	})
	t.Logf("readiness change reached the endpoints in %v", d)
	// Relabelling the pod out of the selector removes it.
	cur, _ := st.Get(store.KeyOf(p))
	gone := api.DeepCopy(cur.(*api.Pod))
	gone.Labels = map[string]string{"app": "elsewhere"}
	st.Update(ctx, gone)
	waitFor("relabelled pod dropped", func(e *api.Endpoints) bool { return len(e.Subsets) == 0 })
	// Deleting the service deletes its endpoints.
	st.Delete(ctx, store.KeyOf(svc), store.Preconditions{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := st.Get(key); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("endpoints of a deleted service remain")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func ipsOf(as []api.EndpointAddress) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.IP)
	}
	return out
}
