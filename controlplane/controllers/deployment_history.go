package controllers

import (
	"sort"
	"strconv"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// defaultRevisionHistoryLimit applies when spec.revisionHistoryLimit is
// unset (the API server defaults it to the same 10).
const defaultRevisionHistoryLimit = 10

// revisionsOf returns the live ControllerRevisions d controls.
func (c *Deployment) revisionsOf(d *api.Deployment) ([]*api.ControllerRevision, error) {
	objs, _, err := c.Store.List(api.KindControllerRevision, store.ListOptions{Namespace: d.Namespace, OwnerUID: d.UID})
	if err != nil {
		return nil, err
	}
	var out []*api.ControllerRevision
	for _, o := range objs {
		r := o.(*api.ControllerRevision)
		if ref := controllerOf(r, api.KindDeployment); ref != nil && ref.UID == d.UID && r.DeletionTimestamp == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// planHistory returns the writes that bring d's revision history up to
// date, given its revisions and the template hashes that still have pods:
//
//   - the current template (hash) has a revision: a new one numbered one
//     above the highest, or, when the template was rolled out before (an
//     undo), its old one renumbered to the top, as Kubernetes does;
//   - that revision carries d's change-cause annotation when d has one;
//   - d's revision annotation names the current template's number;
//   - of the other revisions, those without pods are kept up to
//     spec.revisionHistoryLimit, the lowest numbers deleted first.
//
// A paused Deployment rolls nothing out, so its template gets no new
// revision until it is resumed.
func planHistory(d *api.Deployment, hash string, revs []*api.ControllerRevision, inUse map[string]bool) []store.Op {
	var cur *api.ControllerRevision
	var top int64
	for _, r := range revs {
		if r.Labels[PodTemplateHashLabel] == hash {
			cur = r
		}
		top = max(top, r.Revision)
	}
	cause, hasCause := d.Annotations[api.ChangeCauseAnnotation]
	var ops []store.Op
	var number int64
	switch {
	case cur == nil && d.Spec.Paused:
	case cur == nil:
		number = top + 1
		ops = append(ops, store.Op{Type: store.OpCreate, Object: newRevisionFor(d, hash, number)})
	case cur.Revision < top || (hasCause && cur.Annotations[api.ChangeCauseAnnotation] != cause):
		next := api.DeepCopy(cur)
		if cur.Revision < top {
			next.Revision = top + 1
		}
		if hasCause {
			if next.Annotations == nil {
				next.Annotations = map[string]string{}
			}
			next.Annotations[api.ChangeCauseAnnotation] = cause
		}
		number = next.Revision
		ops = append(ops, store.Op{Type: store.OpUpdate, Object: next})
	default:
		number = cur.Revision
	}
	if want := strconv.FormatInt(number, 10); number > 0 && d.Annotations[api.RevisionAnnotation] != want {
		next := api.DeepCopy(d)
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		next.Annotations[api.RevisionAnnotation] = want
		ops = append(ops, store.Op{Type: store.OpUpdate, Object: next})
	}

	var idle []*api.ControllerRevision
	for _, r := range revs {
		if r != cur && !inUse[r.Labels[PodTemplateHashLabel]] {
			idle = append(idle, r)
		}
	}
	limit := defaultRevisionHistoryLimit
	if d.Spec.RevisionHistoryLimit != nil {
		limit = int(max(0, *d.Spec.RevisionHistoryLimit))
	}
	if excess := len(idle) - limit; excess > 0 {
		sort.Slice(idle, func(i, j int) bool {
			if idle[i].Revision != idle[j].Revision {
				return idle[i].Revision < idle[j].Revision
			}
			return idle[i].Name < idle[j].Name
		})
		for _, r := range idle[:excess] {
			ops = append(ops, store.Op{Type: store.OpDelete, Key: store.KeyOf(r), Preconditions: store.Preconditions{UID: r.UID}})
		}
	}
	return ops
}

// newRevisionFor records d's current template as revision number. It
// carries the template's labels (which d's selector matches, so clients
// find a Deployment's revisions with its selector) and the hash.
func newRevisionFor(d *api.Deployment, hash string, number int64) *api.ControllerRevision {
	info, _ := api.ByKind(api.KindControllerRevision)
	r := info.New().(*api.ControllerRevision)
	r.Namespace = d.Namespace
	r.Name = d.Name + "-" + hash
	r.Labels = map[string]string{}
	for k, v := range d.Spec.Template.Labels {
		r.Labels[k] = v
	}
	r.Labels[PodTemplateHashLabel] = hash
	if cause, ok := d.Annotations[api.ChangeCauseAnnotation]; ok {
		r.Annotations = map[string]string{api.ChangeCauseAnnotation: cause}
	}
	yes := true
	r.OwnerReferences = []api.OwnerReference{{APIVersion: "apps/v1", Kind: string(api.KindDeployment), Name: d.Name, UID: d.UID, Controller: &yes, BlockOwnerDeletion: &yes}}
	r.Data = api.DeepCopy(&api.ControllerRevision{Data: d.Spec.Template}).Data
	r.Revision = number
	return r
}
