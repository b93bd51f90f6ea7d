package controllers

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

type env struct {
	t   *testing.T
	ctx context.Context
	st  *store.Store
}

func newEnv(t *testing.T, cs ...func(*store.Store) Controller) *env {
	ctx, cancel := context.WithCancel(context.Background())
	st := store.NewInMemory()
	nsInfo, _ := api.ByKind(api.KindNamespace)
	ns := nsInfo.New()
	ns.GetObjectMeta().Name = "default"
	st.Create(ctx, ns)
	var ctrls []Controller
	for _, c := range cs {
		ctrls = append(ctrls, c(st))
	}
	done := make(chan struct{})
	go func() { Run(ctx, slog.New(slog.DiscardHandler), ctrls...); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return &env{t: t, ctx: ctx, st: st}
}

func deploymentCtrl(st *store.Store) Controller {
	return &Deployment{Store: st, Log: slog.New(slog.DiscardHandler)}
}

func gcCtrl(st *store.Store) Controller {
	return &GarbageCollector{Store: st, Log: slog.New(slog.DiscardHandler)}
}

func (e *env) pods() []*api.Pod {
	objs, _, _ := e.st.List(api.KindPod, store.ListOptions{Namespace: "default"})
	var out []*api.Pod
	for _, o := range objs {
		out = append(out, o.(*api.Pod))
	}
	return out
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newDeployment(name string, replicas int32, image string, strategy api.DeploymentStrategyType) *api.Deployment {
	info, _ := api.ByKind(api.KindDeployment)
	d := info.New().(*api.Deployment)
	d.Namespace, d.Name = "default", name
	d.Spec.Replicas = &replicas
	d.Spec.Selector = &api.LabelSelector{MatchLabels: map[string]string{"app": name}}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.Template.Spec.Containers = []api.Container{{Name: "c", Image: image}}
	d.Spec.Strategy.Type = strategy
	api.Default(d)
	return d
}

// update changes a deployment, retrying on conflicts with the controller's
// status writes, as any client does.
func (e *env) update(k store.Key, change func(*api.Deployment)) {
	e.t.Helper()
	for i := 0; i < 50; i++ {
		o, err := e.st.Get(k)
		if err != nil {
			e.t.Fatal(err)
		}
		next := api.DeepCopy(o.(*api.Deployment))
		change(next)
		_, err = e.st.Update(e.ctx, next)
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrConflict) {
			e.t.Fatal(err)
		}
	}
	e.t.Fatal("update kept conflicting")
}

func countByImage(ps []*api.Pod, image string) int {
	n := 0
	for _, p := range ps {
		if p.Spec.Containers[0].Image == image {
			n++
		}
	}
	return n
}

// kubelet marks every pod ready as soon as it appears.
func (e *env) kubelet() {
	_, _, w, _ := e.st.ListAndWatch(api.KindPod, store.ListOptions{})
	go func() {
		defer w.Stop()
		for {
			select {
			case <-e.ctx.Done():
				return
			case ev, ok := <-w.Events():
				if !ok {
					return
				}
				if ev.Type != store.Added {
					continue
				}
				p := api.DeepCopy(ev.Object.(*api.Pod))
				p.Status.PodIP = "10.244.0.1"
				p.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
				e.st.UpdateStatus(e.ctx, p)
			}
		}
	}()
}

func TestDeploymentScales(t *testing.T) {
	e := newEnv(t, deploymentCtrl)
	d, err := e.st.Create(e.ctx, newDeployment("web", 3, "nginx:1", ""))
	if err != nil {
		t.Fatal(err)
	}
	e.eventually("3 pods", func() bool { return len(e.pods()) == 3 })
	for _, p := range e.pods() {
		ref := controllerOf(p, api.KindDeployment)
		if ref == nil || ref.UID != d.GetObjectMeta().UID || p.Labels[PodTemplateHashLabel] == "" || p.Labels["app"] != "web" {
			t.Fatalf("pod %s: owner %+v labels %v", p.Name, ref, p.Labels)
		}
	}
	e.eventually("status replicas 3", func() bool {
		o, _ := e.st.Get(store.KeyOf(d))
		s := o.(*api.Deployment).Status
		return s.Replicas == 3 && s.UpdatedReplicas == 3 && s.ObservedGeneration == o.GetObjectMeta().Generation
	})
	scale := func(n int32) { e.update(store.KeyOf(d), func(d *api.Deployment) { d.Spec.Replicas = &n }) }
	scale(5)
	e.eventually("5 pods", func() bool { return len(e.pods()) == 5 })
	scale(1)
	e.eventually("1 pod", func() bool { return len(e.pods()) == 1 })
	// A pod deleted by hand is replaced.
	e.st.Delete(e.ctx, store.KeyOf(e.pods()[0]), store.Preconditions{})
	e.eventually("the pod replaced", func() bool { return len(e.pods()) == 1 })
}

func TestRollingUpdateKeepsAvailability(t *testing.T) {
	e := newEnv(t, deploymentCtrl)
	e.kubelet()
	d, _ := e.st.Create(e.ctx, newDeployment("web", 4, "nginx:1", api.RollingUpdateDeploymentStrategyType))
	e.eventually("4 ready pods of v1", func() bool { return countByImage(e.pods(), "nginx:1") == 4 && countReady(e.pods()) == 4 })

	// Watch availability while rolling to v2 (25% / 25% of 4: surge 1, unavailable 1).
	stop := make(chan struct{})
	worst := make(chan int32, 1)
	go func() {
		low := int32(4)
		for {
			select {
			case <-stop:
				worst <- low
				return
			default:
			}
			if r := countReady(e.pods()); r < low {
				low = r
			}
			if n := int32(len(e.pods())); n > 5 {
				low = -n // more than replicas+surge: report as a violation
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	e.update(store.KeyOf(d), func(d *api.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:2" })
	e.eventually("4 ready pods of v2 and none of v1", func() bool {
		ps := e.pods()
		return len(ps) == 4 && countByImage(ps, "nginx:2") == 4 && countReady(ps) == 4
	})
	close(stop)
	if low := <-worst; low < 3 {
		t.Fatalf("availability fell to %d ready pods (maxUnavailable 1 of 4); negative means pods beyond the surge", low)
	}
}

func TestRecreateRemovesOldPodsFirst(t *testing.T) {
	e := newEnv(t, deploymentCtrl)
	d, _ := e.st.Create(e.ctx, newDeployment("db", 2, "pg:1", api.RecreateDeploymentStrategyType))
	e.eventually("2 pods", func() bool { return len(e.pods()) == 2 })
	_, _, w, _ := e.st.ListAndWatch(api.KindPod, store.ListOptions{})
	defer w.Stop()
	e.update(store.KeyOf(d), func(d *api.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "pg:2" })
	e.eventually("2 pods of v2", func() bool { return countByImage(e.pods(), "pg:2") == 2 && len(e.pods()) == 2 })
	// In the event stream, both deletions of v1 come before any v2 pod.
	deleted := 0
	timeout := time.After(2 * time.Second)
	for deleted < 2 {
		select {
		case ev := <-w.Events():
			p := ev.Object.(*api.Pod)
			if ev.Type == store.Added && p.Spec.Containers[0].Image == "pg:2" {
				t.Fatalf("a v2 pod started while %d of 2 v1 pods were still there", 2-deleted)
			}
			if ev.Type == store.Deleted {
				deleted++
			}
		case <-timeout:
			t.Fatal("no deletions seen")
		}
	}
}

func TestGarbageCollectorDeletesPodsOfDeletedDeployment(t *testing.T) {
	e := newEnv(t, deploymentCtrl, gcCtrl)
	d, _ := e.st.Create(e.ctx, newDeployment("web", 3, "nginx:1", ""))
	e.eventually("3 pods", func() bool { return len(e.pods()) == 3 })
	// An unowned pod stays.
	info, _ := api.ByKind(api.KindPod)
	loner := info.New().(*api.Pod)
	loner.Namespace, loner.Name = "default", "loner"
	loner.Spec.Containers = []api.Container{{Name: "c", Image: "i"}}
	e.st.Create(e.ctx, loner)
	if _, err := e.st.Delete(e.ctx, store.KeyOf(d), store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("owned pods deleted", func() bool { return len(e.pods()) == 1 })
	if _, err := e.st.Get(store.KeyOf(loner)); errors.Is(err, store.ErrNotFound) {
		t.Fatal("the garbage collector deleted a pod without an owner")
	}
}
