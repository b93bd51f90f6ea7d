package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// DaemonSet runs one pod of each DaemonSet on every eligible node (its
// template's node selector matches and it tolerates the node's NoSchedule
// and NoExecute taints; cordoned nodes still run daemons), removes pods
// from nodes no longer eligible, and replaces pods of an older template one
// node at a time within maxUnavailable (RollingUpdate) or when deleted
// (OnDelete). Daemon pods are placed by this controller (spec.nodeName),
// not by the scheduler, as Kubernetes did before 1.12.
type DaemonSet struct {
	Store Store
	Log   *slog.Logger
	queue *Queue[store.Key]
}

// Name implements Controller.
func (c *DaemonSet) Name() string { return "daemonset" }

// Run reconciles until ctx ends.
func (c *DaemonSet) Run(ctx context.Context) error {
	c.queue = NewQueue[store.Key]()
	sets, _, sw, err := c.Store.ListAndWatch(api.KindDaemonSet, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch daemonsets: %w", err)
	}
	defer sw.Stop()
	_, _, pw, err := c.Store.ListAndWatch(api.KindPod, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer pw.Stop()
	_, _, nw, err := c.Store.ListAndWatch(api.KindNode, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer nw.Stop()
	for _, s := range sets {
		c.queue.Add(store.KeyOf(s))
	}
	defer work(ctx, 1, c.queue, c.Log, c.sync)()
	all := func() {
		objs, _, _ := c.Store.List(api.KindDaemonSet, store.ListOptions{})
		for _, o := range objs {
			c.queue.Add(store.KeyOf(o))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sw.Events():
			if !ok {
				return fmt.Errorf("daemonset watch ended: %w", sw.Err())
			}
			c.queue.Add(store.KeyOf(e.Object))
		case e, ok := <-pw.Events():
			if !ok {
				return fmt.Errorf("pod watch ended: %w", pw.Err())
			}
			if ref := controllerOf(e.Object, api.KindDaemonSet); ref != nil {
				c.queue.Add(store.Key{Kind: api.KindDaemonSet, Namespace: e.Object.GetObjectMeta().Namespace, Name: ref.Name})
			}
		case _, ok := <-nw.Events():
			if !ok {
				return fmt.Errorf("node watch ended: %w", nw.Err())
			}
			all() // a node came, went or changed labels or taints
		}
	}
}

// eligible reports whether a daemon of ds belongs on node n.
func eligible(ds *api.DaemonSet, n *api.Node) bool {
	for k, v := range ds.Spec.Template.Spec.NodeSelector {
		if n.Labels[k] != v {
			return false
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Effect != api.TaintEffectNoSchedule && t.Effect != api.TaintEffectNoExecute {
			continue
		}
		if t.Key == TaintNodeUnreachable || t.Key == "node.kubernetes.io/unschedulable" {
			continue // daemons tolerate these, as in Kubernetes
		}
		if !toleratesTaint(ds.Spec.Template.Spec.Tolerations, t) {
			return false
		}
	}
	return true
}

func toleratesTaint(ts []api.Toleration, t api.Taint) bool {
	for _, tol := range ts {
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		switch {
		case tol.Key == "" && tol.Operator == api.TolerationOpExists:
			return true
		case tol.Key == t.Key && tol.Operator == api.TolerationOpExists:
			return true
		case tol.Key == t.Key && tol.Value == t.Value:
			return true
		}
	}
	return false
}

func (c *DaemonSet) sync(ctx context.Context, k store.Key) error {
	o, err := c.Store.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ds := o.(*api.DaemonSet)
	if ds.DeletionTimestamp != nil {
		return nil
	}
	hash := TemplateHash(&ds.Spec.Template)
	nodes, _, err := c.Store.List(api.KindNode, store.ListOptions{})
	if err != nil {
		return err
	}
	pods, _, err := c.Store.List(api.KindPod, store.ListOptions{Namespace: ds.Namespace, OwnerUID: ds.UID})
	if err != nil {
		return err
	}
	byNode := map[string][]*api.Pod{}
	for _, po := range pods {
		p := po.(*api.Pod)
		if ref := controllerOf(p, api.KindDaemonSet); ref != nil && ref.UID == ds.UID && p.DeletionTimestamp == nil {
			byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		}
	}
	var ops []store.Op
	del := func(p *api.Pod) {
		ops = append(ops, store.Op{Type: store.OpDelete, Key: store.KeyOf(p), Preconditions: store.Preconditions{UID: p.UID}})
	}
	var st api.DaemonSetStatus
	var outdated []*api.Pod
	unavailable := int32(0)
	want := map[string]bool{}
	for _, no := range nodes {
		n := no.(*api.Node)
		if !eligible(ds, n) {
			continue
		}
		want[n.Name] = true
		st.DesiredNumberScheduled++
		ps := byNode[n.Name]
		if len(ps) == 0 {
			ops = append(ops, store.Op{Type: store.OpCreate, Object: newDaemonPod(ds, hash, n.Name)})
			unavailable++
			continue
		}
		for _, extra := range ps[1:] {
			del(extra) // one daemon per node
		}
		p := ps[0]
		st.CurrentNumberScheduled++
		if p.Labels[PodTemplateHashLabel] == hash {
			st.UpdatedNumberScheduled++
		} else {
			outdated = append(outdated, p)
		}
		if podReady(p) {
			st.NumberReady++
			st.NumberAvailable++
		} else {
			unavailable++
		}
	}
	for node, ps := range byNode {
		if !want[node] {
			st.NumberMisscheduled += int32(len(ps))
			for _, p := range ps {
				del(p)
			}
		}
	}
	if ds.Spec.UpdateStrategy.Type != api.OnDeleteDaemonSetStrategyType {
		maxUnavail := int32(1)
		if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
			v, err := api.ScaledValue(ru.MaxUnavailable, int(st.DesiredNumberScheduled), false)
			if err != nil {
				return err
			}
			maxUnavail = max(int32(v), 1)
		}
		sortForRemoval(outdated)
		for _, p := range outdated {
			if podReady(p) {
				if unavailable >= maxUnavail {
					break
				}
				unavailable++
			}
			del(p) // its replacement is created on the next pass
		}
	}
	if err := applyOps(ctx, c.Store, ops); err != nil {
		return err
	}
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	st.ObservedGeneration = ds.Generation
	st.Conditions = ds.Status.Conditions
	if fmt.Sprint(st) == fmt.Sprint(ds.Status) {
		return nil
	}
	next := api.DeepCopy(ds)
	next.Status = st
	if _, err := c.Store.UpdateStatus(ctx, next); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

func newDaemonPod(ds *api.DaemonSet, hash, node string) *api.Pod {
	info, _ := api.ByKind(api.KindPod)
	p := info.New().(*api.Pod)
	p.Namespace = ds.Namespace
	p.Name = fmt.Sprintf("%s-%s", ds.Name, randomSuffix())
	p.Labels = map[string]string{PodTemplateHashLabel: hash}
	for k, v := range ds.Spec.Template.Labels {
		p.Labels[k] = v
	}
	yes := true
	p.OwnerReferences = []api.OwnerReference{{APIVersion: "apps/v1", Kind: string(api.KindDaemonSet), Name: ds.Name, UID: ds.UID, Controller: &yes, BlockOwnerDeletion: &yes}}
	p.Spec = api.DeepCopy(&api.Pod{Spec: ds.Spec.Template.Spec}).Spec
	p.Spec.NodeName = node
	api.Default(p)
	return p
}
