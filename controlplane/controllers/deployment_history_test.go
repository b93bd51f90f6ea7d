package controllers

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"testing"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// revisions returns the ControllerRevisions of namespace default, lowest
// number first.
func (e *env) revisions() []*api.ControllerRevision {
	objs, _, _ := e.st.List(api.KindControllerRevision, store.ListOptions{Namespace: "default"})
	var out []*api.ControllerRevision
	for _, o := range objs {
		out = append(out, o.(*api.ControllerRevision))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out
}

// revisionNumbers lists "name=number" of every revision, lowest first.
func (e *env) revisionNumbers() []string {
	var out []string
	for _, r := range e.revisions() {
		out = append(out, fmt.Sprintf("%s=%d", r.Name, r.Revision))
	}
	return out
}

func (e *env) deployment(k store.Key) *api.Deployment {
	e.t.Helper()
	o, err := e.st.Get(k)
	if err != nil {
		e.t.Fatal(err)
	}
	return o.(*api.Deployment)
}

// waitRevision waits until the deployment's revision annotation is n and
// its revisions are want ("name=number", lowest number first).
func (e *env) waitRevision(k store.Key, n int, want ...string) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("revision %d and revisions %v", n, want), func() bool {
		return e.deployment(k).Annotations[api.RevisionAnnotation] == strconv.Itoa(n) &&
			reflect.DeepEqual(e.revisionNumbers(), want)
	})
}

func setImage(image, cause string) func(*api.Deployment) {
	return func(d *api.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
		if cause != "" {
			d.Annotations[api.ChangeCauseAnnotation] = cause
		}
	}
}

func TestDeploymentRevisionHistory(t *testing.T) {
	e := newEnv(t, deploymentCtrl)
	d := newDeployment("web", 2, "nginx:1", "")
	d.Annotations = map[string]string{api.ChangeCauseAnnotation: "create web"}
	created, err := e.st.Create(e.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	k := store.KeyOf(created)
	v1 := "web-" + TemplateHash(&d.Spec.Template)
	e.waitRevision(k, 1, v1+"=1")
	r1 := e.revisions()[0]
	ref := controllerOf(r1, api.KindDeployment)
	switch {
	case ref == nil || ref.UID != created.GetObjectMeta().UID || ref.Name != "web":
		t.Fatalf("revision owner = %+v", r1.OwnerReferences)
	case r1.Labels["app"] != "web" || r1.Labels[PodTemplateHashLabel] != TemplateHash(&d.Spec.Template):
		t.Fatalf("revision labels = %v", r1.Labels)
	case !reflect.DeepEqual(r1.Data, d.Spec.Template):
		t.Fatalf("revision data = %+v, want the template %+v", r1.Data, d.Spec.Template)
	case r1.Annotations[api.ChangeCauseAnnotation] != "create web":
		t.Fatalf("revision annotations = %v", r1.Annotations)
	}
	if errs := api.Validate(r1); errs != nil {
		t.Fatalf("the controller wrote an invalid revision: %v", errs)
	}

	// A new template is revision 2; revision 1 keeps its change-cause.
	e.update(k, setImage("nginx:2", "image nginx:2"))
	v2 := "web-" + TemplateHash(&e.deployment(k).Spec.Template)
	e.waitRevision(k, 2, v1+"=1", v2+"=2")
	rs := e.revisions()
	if rs[0].Annotations[api.ChangeCauseAnnotation] != "create web" || rs[1].Annotations[api.ChangeCauseAnnotation] != "image nginx:2" {
		t.Fatalf("change-causes: %v, %v", rs[0].Annotations, rs[1].Annotations)
	}
	// Annotating after the change (kubectl annotate) labels the current
	// revision only.
	e.update(k, func(d *api.Deployment) { d.Annotations[api.ChangeCauseAnnotation] = "image nginx:2 for the fix" })
	e.eventually("the current revision's change-cause to follow", func() bool {
		rs := e.revisions()
		return len(rs) == 2 && rs[1].Annotations[api.ChangeCauseAnnotation] == "image nginx:2 for the fix" &&
			rs[0].Annotations[api.ChangeCauseAnnotation] == "create web"
	})

	// Going back to the first template renumbers its revision: 1 becomes 3.
	e.update(k, setImage("nginx:1", "back to nginx:1"))
	e.waitRevision(k, 3, v2+"=2", v1+"=3")
	if got := e.revisions()[1].Annotations[api.ChangeCauseAnnotation]; got != "back to nginx:1" {
		t.Fatalf("renumbered revision's change-cause = %q", got)
	}
	e.eventually("pods of the first template", func() bool { return countByImage(e.pods(), "nginx:1") == 2 && len(e.pods()) == 2 })

	// A revision deleted by hand comes back, numbered above the rest.
	cur := e.revisions()[1]
	if _, err := e.st.Delete(e.ctx, store.KeyOf(cur), store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	e.waitRevision(k, 3, v2+"=2", v1+"=3")
}

func TestDeploymentRevisionHistoryLimit(t *testing.T) {
	e := newEnv(t, deploymentCtrl)
	d := newDeployment("web", 0, "nginx:1", "") // no pods: every old revision may go
	two := int32(2)
	d.Spec.RevisionHistoryLimit = &two
	created, err := e.st.Create(e.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	k := store.KeyOf(created)
	names := map[int]string{}
	for i := 1; i <= 5; i++ {
		if i > 1 {
			e.update(k, setImage(fmt.Sprintf("nginx:%d", i), ""))
		}
		names[i] = "web-" + TemplateHash(&e.deployment(k).Spec.Template)
		e.eventually(fmt.Sprintf("revision %d", i), func() bool {
			return e.deployment(k).Annotations[api.RevisionAnnotation] == strconv.Itoa(i)
		})
	}
	// The current revision and the two newest old ones.
	e.waitRevision(k, 5, names[3]+"=3", names[4]+"=4", names[5]+"=5")

	// A limit of 0 keeps only the current one.
	e.update(k, func(d *api.Deployment) { zero := int32(0); d.Spec.RevisionHistoryLimit = &zero })
	e.waitRevision(k, 5, names[5]+"=5")
}

// An old revision whose pods are still running is kept whatever the limit:
// a rollout in progress can still be undone.
func TestDeploymentKeepsRevisionsWithPods(t *testing.T) {
	e := newEnv(t, deploymentCtrl)
	d := newDeployment("web", 1, "nginx:1", api.RollingUpdateDeploymentStrategyType) // surge 1, unavailable 0
	zero := int32(0)
	d.Spec.RevisionHistoryLimit = &zero
	created, err := e.st.Create(e.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	k := store.KeyOf(created)
	v1 := "web-" + TemplateHash(&d.Spec.Template)
	e.eventually("a pod", func() bool { return len(e.pods()) == 1 })
	e.markReady(e.pods()[0])

	e.update(k, setImage("nginx:2", ""))
	v2 := "web-" + TemplateHash(&e.deployment(k).Spec.Template)
	e.eventually("the surge pod of v2", func() bool { return countByImage(e.pods(), "nginx:2") == 1 })
	// The ready v1 pod must stay until v2 is ready, and its revision with it.
	e.waitRevision(k, 2, v1+"=1", v2+"=2")
	e.eventually("status to count both pods", func() bool {
		st := e.deployment(k).Status
		return st.Replicas == 2 && st.UpdatedReplicas == 1
	})
	if got := e.revisionNumbers(); !reflect.DeepEqual(got, []string{v1 + "=1", v2 + "=2"}) {
		t.Fatalf("revisions %v: the revision of running pods was pruned", got)
	}

	for _, p := range e.pods() {
		if p.Spec.Containers[0].Image == "nginx:2" {
			e.markReady(p)
		}
	}
	e.eventually("the v1 pod to go", func() bool { return len(e.pods()) == 1 && countByImage(e.pods(), "nginx:2") == 1 })
	e.waitRevision(k, 2, v2+"=2")
}

func TestGarbageCollectorDeletesRevisionsOfDeletedDeployment(t *testing.T) {
	e := newEnv(t, deploymentCtrl, gcCtrl)
	d, _ := e.st.Create(e.ctx, newDeployment("web", 0, "nginx:1", ""))
	k := store.KeyOf(d)
	e.eventually("revision 1", func() bool { return len(e.revisions()) == 1 })
	e.update(k, setImage("nginx:2", ""))
	e.eventually("revision 2", func() bool { return len(e.revisions()) == 2 })
	if _, err := e.st.Delete(e.ctx, k, store.Preconditions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("revisions deleted with their deployment", func() bool { return len(e.revisions()) == 0 })
}

// markReady reports p ready, as its node would.
func (e *env) markReady(p *api.Pod) {
	e.t.Helper()
	next := api.DeepCopy(p)
	next.Status.PodIP = "10.244.0.1"
	next.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
	if _, err := e.st.UpdateStatus(e.ctx, next); err != nil {
		e.t.Fatal(err)
	}
}

func TestPlanHistory(t *testing.T) {
	yes := true
	mkDeployment := func(mutate func(d *api.Deployment)) *api.Deployment {
		d := newDeployment("web", 1, "nginx:1", "")
		d.UID = "d-uid"
		d.ResourceVersion = "7"
		if mutate != nil {
			mutate(d)
		}
		return d
	}
	rev := func(hash string, n int64, cause string) *api.ControllerRevision {
		r := newRevisionFor(&api.Deployment{ObjectMeta: api.ObjectMeta{Name: "web", Namespace: "default", UID: "d-uid"}}, hash, n)
		r.UID, r.ResourceVersion = api.UID("uid-"+hash), "5"
		r.OwnerReferences[0].Controller = &yes
		if cause != "" {
			r.Annotations = map[string]string{api.ChangeCauseAnnotation: cause}
		}
		return r
	}
	annotated := func(n string) func(d *api.Deployment) {
		return func(d *api.Deployment) { d.Annotations = map[string]string{api.RevisionAnnotation: n} }
	}
	limit := func(n int32) func(d *api.Deployment) {
		return func(d *api.Deployment) {
			d.Annotations = map[string]string{api.RevisionAnnotation: "3"}
			d.Spec.RevisionHistoryLimit = &n
		}
	}
	tests := []struct {
		name  string
		d     *api.Deployment
		hash  string
		revs  []*api.ControllerRevision
		inUse []string
		want  []string
	}{
		{"first template", mkDeployment(nil), "h1", nil, nil,
			[]string{"create web-h1 #1", "annotate deployment web revision 1"}},
		{"first template with a change-cause", mkDeployment(func(d *api.Deployment) {
			d.Annotations = map[string]string{api.ChangeCauseAnnotation: "v1"}
		}), "h1", nil, nil,
			[]string{"create web-h1 #1 (v1)", "annotate deployment web revision 1"}},
		{"up to date", mkDeployment(annotated("2")), "h2",
			[]*api.ControllerRevision{rev("h1", 1, ""), rev("h2", 2, "")}, nil, nil},
		{"annotation missing", mkDeployment(nil), "h2",
			[]*api.ControllerRevision{rev("h1", 1, ""), rev("h2", 2, "")}, nil,
			[]string{"annotate deployment web revision 2"}},
		{"new template", mkDeployment(annotated("2")), "h3",
			[]*api.ControllerRevision{rev("h1", 1, ""), rev("h2", 2, "")}, []string{"h2"},
			[]string{"create web-h3 #3", "annotate deployment web revision 3"}},
		{"back to an old template", mkDeployment(annotated("2")), "h1",
			[]*api.ControllerRevision{rev("h1", 1, "v1"), rev("h2", 2, "v2")}, []string{"h2"},
			[]string{"update web-h1 #3 (v1)", "annotate deployment web revision 3"}},
		{"change-cause follows the deployment", mkDeployment(func(d *api.Deployment) {
			d.Annotations = map[string]string{api.RevisionAnnotation: "2", api.ChangeCauseAnnotation: "hotfix"}
		}), "h2",
			[]*api.ControllerRevision{rev("h1", 1, "v1"), rev("h2", 2, "v2")}, nil,
			[]string{"update web-h2 #2 (hotfix)"}},
		{"paused: no new revision", mkDeployment(func(d *api.Deployment) {
			d.Annotations = map[string]string{api.RevisionAnnotation: "1"}
			d.Spec.Paused = true
		}), "h2",
			[]*api.ControllerRevision{rev("h1", 1, "")}, []string{"h1"}, nil},
		{"prune the oldest idle revisions", mkDeployment(limit(1)), "h3",
			[]*api.ControllerRevision{rev("h2", 2, ""), rev("h1", 1, ""), rev("h3", 3, "")}, nil,
			[]string{"delete web-h1"}},
		{"keep revisions with pods", mkDeployment(limit(0)), "h3",
			[]*api.ControllerRevision{rev("h1", 1, ""), rev("h2", 2, ""), rev("h3", 3, "")}, []string{"h1", "h3"},
			[]string{"delete web-h2"}},
		{"default limit 10", mkDeployment(func(d *api.Deployment) {
			d.Annotations = map[string]string{api.RevisionAnnotation: "12"}
			d.Spec.RevisionHistoryLimit = nil
		}), "h12", func() []*api.ControllerRevision {
			var rs []*api.ControllerRevision
			for i := int64(1); i <= 12; i++ {
				rs = append(rs, rev(fmt.Sprintf("h%d", i), i, ""))
			}
			return rs
		}(), nil,
			[]string{"delete web-h1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inUse := map[string]bool{}
			for _, h := range tt.inUse {
				inUse[h] = true
			}
			var got []string
			for _, op := range planHistory(tt.d, tt.hash, tt.revs, inUse) {
				got = append(got, describeOp(t, op))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ops:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// describeOp names a history write for TestPlanHistory, checking the
// preconditions each must carry.
func describeOp(t *testing.T, op store.Op) string {
	t.Helper()
	switch op.Type {
	case store.OpDelete:
		if op.Preconditions.UID == "" {
			t.Errorf("delete of %s without a uid precondition", op.Key.Name)
		}
		return "delete " + op.Key.Name
	case store.OpCreate, store.OpUpdate:
		switch o := op.Object.(type) {
		case *api.Deployment:
			if op.Type != store.OpUpdate || o.ResourceVersion == "" {
				t.Errorf("deployment written without a resourceVersion precondition: %v", op.Type)
			}
			return fmt.Sprintf("annotate deployment %s revision %s", o.Name, o.Annotations[api.RevisionAnnotation])
		case *api.ControllerRevision:
			verb := map[store.OpType]string{store.OpCreate: "create", store.OpUpdate: "update"}[op.Type]
			if op.Type == store.OpUpdate && o.ResourceVersion == "" {
				t.Errorf("revision %s updated without a resourceVersion precondition", o.Name)
			}
			s := fmt.Sprintf("%s %s #%d", verb, o.Name, o.Revision)
			if c := o.Annotations[api.ChangeCauseAnnotation]; c != "" {
				s += " (" + c + ")"
			}
			return s
		}
	}
	t.Errorf("unexpected op %+v", op)
	return ""
}
