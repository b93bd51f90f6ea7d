package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/controlplane/apiserver"
	"github.com/skiffhq/skiff/controlplane/controllers"
	"github.com/skiffhq/skiff/controlplane/store"
)

// testCluster is an in-process API server over an in-memory store, with
// the Deployment controller running, for commands end to end.
type testCluster struct {
	t   *testing.T
	st  *store.Store
	url string
	dir string
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	st := store.NewInMemory()
	ns := &api.Namespace{}
	ns.Name = "default"
	api.Default(ns)
	if _, err := st.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(apiserver.New(apiserver.Config{Store: st}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		controllers.Run(ctx, slog.New(slog.DiscardHandler), &controllers.Deployment{Store: st, Log: slog.New(slog.DiscardHandler)})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done; hs.Close(); st.Close() })
	return &testCluster{t: t, st: st, url: hs.URL, dir: t.TempDir()}
}

// run runs one skiff command against the cluster and returns its output.
func (tc *testCluster) run(args ...string) (string, error) {
	tc.t.Helper()
	var out, errOut bytes.Buffer
	o := &options{in: strings.NewReader(""), out: &out, errOut: &errOut, now: time.Now,
		newClient: func(cfg client.Config) (*client.Client, error) { return client.New(cfg) }}
	root := newRoot(o)
	root.SetArgs(append([]string{"--server", tc.url, "--config", filepath.Join(tc.dir, "no-config")}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// mustRun runs a command that must succeed.
func (tc *testCluster) mustRun(args ...string) string {
	tc.t.Helper()
	out, err := tc.run(args...)
	if err != nil {
		tc.t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply applies the web Deployment with image and change-cause.
func (tc *testCluster) apply(image, cause string) {
	tc.t.Helper()
	f := filepath.Join(tc.dir, "web.yaml")
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: %q
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: %s
`, cause, image)
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		tc.t.Fatal(err)
	}
	tc.mustRun("apply", "-f", f)
}

func (tc *testCluster) deployment(name string) *api.Deployment {
	tc.t.Helper()
	o, err := tc.st.Get(store.Key{Kind: api.KindDeployment, Namespace: "default", Name: name})
	if err != nil {
		tc.t.Fatal(err)
	}
	return o.(*api.Deployment)
}

// waitRevision waits until the controller has recorded Deployment name's
// template as revision n, with count revisions in all.
func (tc *testCluster) waitRevision(name string, n, count int) {
	tc.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := tc.deployment(name)
		revs, _, _ := tc.st.List(api.KindControllerRevision, store.ListOptions{Namespace: "default"})
		if d.Annotations[api.RevisionAnnotation] == fmt.Sprint(n) && len(revs) == count {
			return
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("deployment %s: revision %q with %d revisions, want %d with %d", name, d.Annotations[api.RevisionAnnotation], len(revs), n, count)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRolloutHistoryAndUndo(t *testing.T) {
	tc := newTestCluster(t)
	tc.apply("nginx:1", "create web")
	tc.waitRevision("web", 1, 1)
	tc.apply("nginx:2", "image nginx:2")
	tc.waitRevision("web", 2, 2)

	want := "deployment.apps/web\n" +
		"REVISION  CHANGE-CAUSE\n" +
		"1         create web\n" +
		"2         image nginx:2\n"
	for _, args := range [][]string{{"deployment/web"}, {"deploy/web"}, {"deployments", "web"}, {"web"}} {
		if got := tc.mustRun(append([]string{"rollout", "history"}, args...)...); got != want {
			t.Errorf("rollout history %v:\n%s\nwant:\n%s", args, got, want)
		}
	}
	out := tc.mustRun("rollout", "history", "deploy/web", "--revision", "1")
	for _, s := range []string{"deployment.apps/web with revision #1\n", "Pod Template:", "app=web", "kubernetes.io/change-cause: create web", "Image:", "nginx:1"} {
		if !strings.Contains(out, s) {
			t.Errorf("rollout history --revision 1 lacks %q:\n%s", s, out)
		}
	}
	if _, err := tc.run("rollout", "history", "deploy/web", "--revision", "7"); err == nil || err.Error() != "unable to find specified revision 7 in history" {
		t.Errorf("history of a missing revision: %v", err)
	}
	if _, err := tc.run("rollout", "history", "svc/web"); err == nil || !strings.Contains(err.Error(), "only deployments") {
		t.Errorf("history of a service: %v", err)
	}

	// Undo: errors and no-ops change nothing.
	if _, err := tc.run("rollout", "undo", "deploy/web", "--to-revision", "7"); err == nil || err.Error() != "unable to find specified revision 7 in history" {
		t.Errorf("undo to a missing revision: %v", err)
	}
	if out := tc.mustRun("rollout", "undo", "deploy/web", "--to-revision", "2"); out != "deployment.apps/web skipped rollback (current template already matches revision 2)\n" {
		t.Errorf("undo to the current revision: %q", out)
	}
	if _, err := tc.run("rollout", "undo", "deploy/nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("undo of a missing deployment: %v", err)
	}

	// Undo to the previous revision: revision 1 comes back as 3.
	if out := tc.mustRun("rollout", "undo", "deployments", "web"); out != "deployment.apps/web rolled back\n" {
		t.Errorf("undo: %q", out)
	}
	d := tc.deployment("web")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1" || d.Annotations[api.ChangeCauseAnnotation] != "create web" {
		t.Fatalf("after undo: image %s, annotations %v", img, d.Annotations)
	}
	tc.waitRevision("web", 3, 2)
	want = "deployment.apps/web\n" +
		"REVISION  CHANGE-CAUSE\n" +
		"2         image nginx:2\n" +
		"3         create web\n"
	if got := tc.mustRun("rollout", "history", "deployment/web"); got != want {
		t.Errorf("history after undo:\n%s\nwant:\n%s", got, want)
	}

	// Again: the previous revision is now 2.
	tc.mustRun("rollout", "undo", "deploy/web")
	tc.waitRevision("web", 4, 2)
	if img := tc.deployment("web").Spec.Template.Spec.Containers[0].Image; img != "nginx:2" {
		t.Fatalf("after the second undo: image %s", img)
	}
	// And explicitly back to 3.
	tc.mustRun("rollout", "undo", "deploy/web", "--to-revision=3")
	tc.waitRevision("web", 5, 2)
	if img := tc.deployment("web").Spec.Template.Spec.Containers[0].Image; img != "nginx:1" {
		t.Fatalf("after undo --to-revision 3: image %s", img)
	}

	out = tc.mustRun("get", "controllerrevisions")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME CONTROLLER REVISION AGE" {
		t.Fatalf("get controllerrevisions:\n%s", out)
	}
	var numbers []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 || !strings.HasPrefix(f[0], "web-") || f[1] != "deployment.apps/web" {
			t.Errorf("get controllerrevisions row %q", l)
			continue
		}
		numbers = append(numbers, f[2])
	}
	if strings.Join(numbers, ",") != "4,5" && strings.Join(numbers, ",") != "5,4" {
		t.Errorf("get controllerrevisions shows revisions %v, want 4 and 5:\n%s", numbers, out)
	}
}

func TestRolloutUndoWithoutPreviousRevision(t *testing.T) {
	tc := newTestCluster(t)
	tc.apply("nginx:1", "create web")
	tc.waitRevision("web", 1, 1)
	if _, err := tc.run("rollout", "undo", "deploy/web"); err == nil || err.Error() != `deployment "web" has no revision before 1 to roll back to` {
		t.Errorf("undo without history: %v", err)
	}
	if _, err := tc.run("rollout", "undo", "deploy/web", "--to-revision", "-1"); err == nil || !strings.Contains(err.Error(), "must be a positive number") {
		t.Errorf("undo to -1: %v", err)
	}
}

// conflictingClient makes someone else write the Deployment just before
// each of the first n updates, so they conflict.
type conflictingClient struct {
	historyClient
	st      *store.Store
	n       int
	updates int
}

func (c *conflictingClient) Update(ctx context.Context, o api.Object) (api.Object, error) {
	c.updates++
	if c.n > 0 {
		c.n--
		for {
			cur, err := c.st.Get(store.KeyOf(o))
			if err != nil {
				return nil, err
			}
			d := api.DeepCopy(cur.(*api.Deployment))
			d.Labels = map[string]string{"touched": fmt.Sprint(c.n)}
			_, err = c.st.Update(ctx, d)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrConflict) { // the controller wrote status meanwhile
				return nil, err
			}
		}
	}
	return c.historyClient.Update(ctx, o)
}

func TestUndoRetriesOnConflict(t *testing.T) {
	tc := newTestCluster(t)
	tc.apply("nginx:1", "create web")
	tc.waitRevision("web", 1, 1)
	tc.apply("nginx:2", "image nginx:2")
	tc.waitRevision("web", 2, 2)
	real, err := client.New(client.Config{Servers: []string{tc.url}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	c := &conflictingClient{historyClient: real, st: tc.st, n: 2}
	msg, err := undoDeployment(ctx, c, "default", "web", 0)
	// Two conflicts we caused, maybe more with the controller's status writes.
	if err != nil || msg != "rolled back" || c.updates < 3 {
		t.Fatalf("undo = %q, %v after %d updates; want rolled back after 3 or more", msg, err, c.updates)
	}
	d := tc.deployment("web")
	if d.Spec.Template.Spec.Containers[0].Image != "nginx:1" || d.Labels["touched"] != "0" {
		t.Fatalf("after undo: image %s, labels %v: the other writer's change must survive", d.Spec.Template.Spec.Containers[0].Image, d.Labels)
	}

	c = &conflictingClient{historyClient: real, st: tc.st, n: undoAttempts}
	if _, err := undoDeployment(ctx, c, "default", "web", 2); err == nil || !client.IsConflict(err) || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("endless conflicts: %v", err)
	}
}

func TestUndoTarget(t *testing.T) {
	tmpl := func(image string) api.PodTemplateSpec {
		return api.PodTemplateSpec{ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Image: image}}}}
	}
	history := func(current string, revs ...string) *deploymentHistory {
		h := &deploymentHistory{d: &api.Deployment{}}
		h.d.Name = "web"
		h.d.Spec.Template = tmpl(current)
		for i, image := range revs {
			r := &api.ControllerRevision{Data: tmpl(image), Revision: int64(i + 1)}
			r.Name = fmt.Sprintf("web-%d", i+1)
			h.revs = append(h.revs, r)
		}
		return h
	}
	tests := []struct {
		name string
		h    *deploymentHistory
		to   int64
		want string // the revision's name, or the error
	}{
		{"previous", history("v3", "v1", "v2", "v3"), 0, "web-2"},
		{"explicit", history("v3", "v1", "v2", "v3"), 1, "web-1"},
		{"explicit current", history("v3", "v1", "v2", "v3"), 3, "web-3"},
		{"missing", history("v3", "v1", "v2", "v3"), 9, "unable to find specified revision 9 in history"},
		{"current not the newest", history("v1", "v1", "v2"), 0, `deployment "web" has no revision before 1 to roll back to`},
		{"current below others", history("v2", "v1", "v2", "v3"), 0, "web-1"},
		{"template not recorded yet", history("v4", "v1", "v2", "v3"), 0, "web-3"},
		{"only the current", history("v1", "v1"), 0, `deployment "web" has no revision before 1 to roll back to`},
		{"no history", history("v1"), 0, `no rollout history found for deployment "web"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.h.undoTarget(tt.to)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = r.Name
			}
			if got != tt.want {
				t.Errorf("undoTarget(%d) = %q, want %q", tt.to, got, tt.want)
			}
		})
	}
}

func TestPrintHistory(t *testing.T) {
	var b bytes.Buffer
	printHistory(&b, "web", nil)
	if b.String() != "No rollout history found.\n" {
		t.Errorf("empty history: %q", b.String())
	}
	b.Reset()
	r10 := &api.ControllerRevision{Revision: 10}
	r10.Annotations = map[string]string{api.ChangeCauseAnnotation: "kubectl set image deployment/web web=nginx:2"}
	printHistory(&b, "web", []*api.ControllerRevision{{Revision: 9}, r10})
	want := "deployment.apps/web\n" +
		"REVISION  CHANGE-CAUSE\n" +
		"9         <none>\n" +
		"10        kubectl set image deployment/web web=nginx:2\n"
	if b.String() != want {
		t.Errorf("history:\n%s\nwant:\n%s", b.String(), want)
	}
}
