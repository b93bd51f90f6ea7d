package controllers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// PodTemplateHashLabel marks a Deployment's pods with the hash of the
// template they were made from, as in Kubernetes.
const PodTemplateHashLabel = "pod-template-hash"

// Deployment runs each Deployment's pods: it creates them from the
// template (labelled with its hash and owned by the Deployment), scales
// them to spec.replicas, replaces pods of an older template with
// RollingUpdate (within maxSurge and maxUnavailable, counting ready pods)
// or Recreate, and reports status. It keeps the revision history too: one
// ControllerRevision per template rolled out (see planHistory), which
// `skiff rollout history` lists and `skiff rollout undo` copies back into
// the template.
//
// Each pass writes its revisions, the Deployment's revision annotation and
// its pod changes in one batch.
//
// Not yet: minReadySeconds, progress deadlines.
type Deployment struct {
	Store Store
	Log   *slog.Logger
	queue *Queue[store.Key]
}

// deploymentWorkers Deployments are synced at once (kube-controller-manager
// runs 5): a sync mostly waits for its batch to commit, and one worker made
// pod creation the bottleneck of a 500-Deployment apply.
const deploymentWorkers = 4

// Name implements Controller.
func (c *Deployment) Name() string { return "deployment" }

// Run reconciles until ctx ends.
func (c *Deployment) Run(ctx context.Context) error {
	c.queue = NewQueue[store.Key]()
	deps, _, dw, err := c.Store.ListAndWatch(api.KindDeployment, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch deployments: %w", err)
	}
	defer dw.Stop()
	_, _, pw, err := c.Store.ListAndWatch(api.KindPod, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer pw.Stop()
	_, _, rw, err := c.Store.ListAndWatch(api.KindControllerRevision, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch controllerrevisions: %w", err)
	}
	defer rw.Stop()
	for _, d := range deps {
		c.queue.Add(store.KeyOf(d))
	}
	defer work(ctx, deploymentWorkers, c.queue, c.Log, c.sync)()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-dw.Events():
			if !ok {
				return fmt.Errorf("deployment watch ended: %w", dw.Err())
			}
			c.queue.Add(store.KeyOf(e.Object))
		case e, ok := <-pw.Events():
			if !ok {
				return fmt.Errorf("pod watch ended: %w", pw.Err())
			}
			c.queueOwner(e.Object)
		case e, ok := <-rw.Events():
			if !ok {
				return fmt.Errorf("controllerrevision watch ended: %w", rw.Err())
			}
			c.queueOwner(e.Object) // a revision deleted by hand comes back
		}
	}
}

// queueOwner queues the Deployment that controls o, if any.
func (c *Deployment) queueOwner(o api.Object) {
	if ref := controllerOf(o, api.KindDeployment); ref != nil {
		c.queue.Add(store.Key{Kind: api.KindDeployment, Namespace: o.GetObjectMeta().Namespace, Name: ref.Name})
	}
}

// controllerOf returns the owner reference of kind that controls o.
func controllerOf(o api.Object, kind api.Kind) *api.OwnerReference {
	for i, r := range o.GetObjectMeta().OwnerReferences {
		if api.Kind(r.Kind) == kind && r.Controller != nil && *r.Controller {
			return &o.GetObjectMeta().OwnerReferences[i]
		}
	}
	return nil
}

// TemplateHash is the pod-template-hash of a template.
func TemplateHash(t *api.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%08x", h.Sum32())[:8]
}

func (c *Deployment) sync(ctx context.Context, k store.Key) error {
	o, err := c.Store.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return nil // its pods and revisions go with the garbage collector
	}
	if err != nil {
		return err
	}
	d := o.(*api.Deployment)
	if d.DeletionTimestamp != nil {
		return nil
	}
	objs, _, err := c.Store.List(api.KindPod, store.ListOptions{Namespace: d.Namespace, OwnerUID: d.UID})
	if err != nil {
		return err
	}
	hash := TemplateHash(&d.Spec.Template)
	var current, old []*api.Pod
	inUse := map[string]bool{} // template hashes that still have pods
	for _, o := range objs {
		p := o.(*api.Pod)
		if ref := controllerOf(p, api.KindDeployment); ref == nil || ref.UID != d.UID {
			continue
		}
		if p.DeletionTimestamp != nil {
			inUse[p.Labels[PodTemplateHashLabel]] = true
			continue
		}
		if p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
			// A finished pod of a Deployment is replaced: remove it.
			if _, err := c.Store.Delete(ctx, store.KeyOf(p), store.Preconditions{UID: p.UID}); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			continue
		}
		inUse[p.Labels[PodTemplateHashLabel]] = true
		if p.Labels[PodTemplateHashLabel] == hash {
			current = append(current, p)
		} else {
			old = append(old, p)
		}
	}
	revs, err := c.revisionsOf(d)
	if err != nil {
		return err
	}
	ops := planHistory(d, hash, revs, inUse)
	wroteDeployment := false
	for _, op := range ops {
		if op.Type == store.OpUpdate && api.KindOf(op.Object) == api.KindDeployment {
			wroteDeployment = true
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if !d.Spec.Paused {
		pods, err := c.rollout(d, hash, want, current, old)
		if err != nil {
			return err
		}
		ops = append(ops, pods...)
	}
	if err := applyOps(ctx, c.Store, ops); err != nil {
		return err
	}
	if wroteDeployment {
		// The revision annotation moved d's resourceVersion: report status
		// against the stored Deployment, unless its spec moved on too (the
		// watch brings it back then).
		o, err := c.Store.Get(k)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		next := o.(*api.Deployment)
		if next.UID != d.UID || next.Generation != d.Generation {
			return nil
		}
		d = next
	}
	return c.updateStatus(ctx, d, hash)
}

// rollout returns the writes of one step towards want pods of the current
// template.
func (c *Deployment) rollout(d *api.Deployment, hash string, want int32, current, old []*api.Pod) ([]store.Op, error) {
	total := int32(len(current) + len(old))
	var create int32
	var remove []*api.Pod
	if d.Spec.Strategy.Type == api.RecreateDeploymentStrategyType {
		if len(old) > 0 {
			remove = old // every old pod goes before any new one starts
		} else {
			create = want - int32(len(current))
		}
	} else {
		var surge, unavail int32
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
			var err error
			if surge, unavail, err = api.ResolveFenceposts(ru.MaxSurge, ru.MaxUnavailable, want); err != nil {
				return nil, err
			}
		} else {
			surge, unavail = 1, 0
		}
		if surge == 0 && unavail == 0 {
			unavail = 1
		}
		// Scale up the new template within the surge.
		create = min(want-int32(len(current)), want+surge-total)
		// Scale down old pods: not-ready ones freely (they serve nothing),
		// ready ones only while enough ready pods remain.
		sortForRemoval(old)
		ready := countReady(current) + countReady(old)
		minReady := want - unavail
		for _, p := range old {
			if podReady(p) {
				if ready-1 < minReady {
					continue
				}
				ready--
			}
			remove = append(remove, p)
		}
	}
	// Too many of the current template (scale down): not-ready first.
	if extra := int32(len(current)) - want; extra > 0 {
		sortForRemoval(current)
		remove = append(remove, current[:extra]...)
	}
	var ops []store.Op
	if create > 0 {
		tmpl := newPodFor(d, hash)
		for i := int32(0); i < create; i++ {
			// The pods share the template's maps and slices: they are
			// encoded into the log entry, never changed in place.
			p := *tmpl
			p.Name = podName(d, hash)
			ops = append(ops, store.Op{Type: store.OpCreate, Object: &p})
		}
	}
	for _, p := range remove {
		ops = append(ops, store.Op{Type: store.OpDelete, Key: store.KeyOf(p), Preconditions: store.Preconditions{UID: p.UID}})
	}
	return ops, nil
}

func countReady(ps []*api.Pod) int32 {
	var n int32
	for _, p := range ps {
		if podReady(p) {
			n++
		}
	}
	return n
}

// sortForRemoval puts the pods to remove first: unbound, then not ready,
// then the newest.
func sortForRemoval(ps []*api.Pod) {
	rank := func(p *api.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case !podReady(p):
			return 1
		}
		return 2
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if a, b := rank(ps[i]), rank(ps[j]); a != b {
			return a < b
		}
		return ps[i].Name > ps[j].Name
	})
}

func podName(d *api.Deployment, hash string) string {
	return d.Name + "-" + hash + "-" + randomSuffix()
}

// newPodFor returns a new pod of d's template.
func newPodFor(d *api.Deployment, hash string) *api.Pod {
	info, _ := api.ByKind(api.KindPod)
	p := info.New().(*api.Pod)
	p.Namespace = d.Namespace
	p.Name = podName(d, hash)
	p.Labels = map[string]string{PodTemplateHashLabel: hash}
	for k, v := range d.Spec.Template.Labels {
		p.Labels[k] = v
	}
	if len(d.Spec.Template.Annotations) > 0 {
		p.Annotations = map[string]string{}
		for k, v := range d.Spec.Template.Annotations {
			p.Annotations[k] = v
		}
	}
	yes := true
	p.OwnerReferences = []api.OwnerReference{{APIVersion: "apps/v1", Kind: string(api.KindDeployment), Name: d.Name, UID: d.UID, Controller: &yes, BlockOwnerDeletion: &yes}}
	p.Spec = api.DeepCopy(&api.Pod{Spec: d.Spec.Template.Spec}).Spec
	api.Default(p)
	return p
}

const suffixChars = "bcdfghjklmnpqrstvwxz2456789"

func randomSuffix() string {
	var b [5]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = suffixChars[int(b[i])%len(suffixChars)]
	}
	return string(b[:])
}

func (c *Deployment) updateStatus(ctx context.Context, d *api.Deployment, hash string) error {
	objs, _, err := c.Store.List(api.KindPod, store.ListOptions{Namespace: d.Namespace, OwnerUID: d.UID})
	if err != nil {
		return err
	}
	var st api.DeploymentStatus
	for _, o := range objs {
		p := o.(*api.Pod)
		if ref := controllerOf(p, api.KindDeployment); ref == nil || ref.UID != d.UID || p.DeletionTimestamp != nil {
			continue
		}
		st.Replicas++
		if p.Labels[PodTemplateHashLabel] == hash {
			st.UpdatedReplicas++
		}
		if podReady(p) {
			st.ReadyReplicas++
			st.AvailableReplicas++
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st.UnavailableReplicas = max(0, want-st.AvailableReplicas)
	st.ObservedGeneration = d.Generation
	st.Conditions = d.Status.Conditions
	st.CollisionCount = d.Status.CollisionCount
	if statusEqual(st, d.Status) {
		return nil
	}
	next := api.DeepCopy(d)
	next.Status = st
	_, err = c.Store.UpdateStatus(ctx, next)
	if errors.Is(err, store.ErrConflict) {
		c.queue.Add(store.KeyOf(d)) // changed meanwhile: look again
		return nil
	}
	return err
}

func statusEqual(a, b api.DeploymentStatus) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
