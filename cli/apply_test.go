package cli

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func manifestOf(t *testing.T, yaml string) (api.ResourceInfo, api.Object) {
	t.Helper()
	objs, err := api.Decode([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := api.ByKind(api.KindOf(objs[0]))
	if info.Namespaced && objs[0].GetObjectMeta().Namespace == "" {
		objs[0].GetObjectMeta().Namespace = "default"
	}
	return info, objs[0]
}

const svcV1 = `
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`

const svcV2 = `
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
`

// stored is what the server would hold after creating obj: metadata and
// allocated fields filled in.
func stored(t *testing.T, info api.ResourceInfo, obj api.Object, mutate func(f fields)) api.Object {
	t.Helper()
	f := mustFields(obj)
	f.set("42", "metadata", "resourceVersion")
	f.set("uid-1", "metadata", "uid")
	f.set("2026-03-01T11:55:00Z", "metadata", "creationTimestamp")
	if mutate != nil {
		mutate(f)
	}
	o, err := toObject(info, f)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestPlanApply(t *testing.T) {
	info, v1 := manifestOf(t, svcV1)
	created, err := newApplied(info, v1)
	if err != nil {
		t.Fatal(err)
	}
	cur := stored(t, info, created, func(f fields) {
		f.set("10.96.0.10", "spec", "clusterIP")
		f.set([]any{"10.96.0.10"}, "spec", "clusterIPs")
		f.list("spec", "ports")[0]["nodePort"] = 30080
		f.set("someone", "metadata", "labels", "owner")     // added by someone else: kept
		f.set("yes", "metadata", "annotations", "external") // likewise
	})

	t.Run("same manifest is unchanged", func(t *testing.T) {
		_, again := manifestOf(t, svcV1)
		if _, changed, err := planApply(info, again, cur); err != nil || changed {
			t.Fatalf("changed=%v err=%v, want unchanged", changed, err)
		}
	})

	t.Run("new manifest keeps server and foreign fields", func(t *testing.T) {
		_, v2 := manifestOf(t, svcV2)
		obj, changed, err := planApply(info, v2, cur)
		if err != nil || !changed {
			t.Fatalf("changed=%v err=%v, want configured", changed, err)
		}
		f := mustFields(obj)
		checks := map[string][2]string{
			"resourceVersion (precondition)": {f.str("metadata", "resourceVersion"), "42"},
			"uid":                            {f.str("metadata", "uid"), "uid-1"},
			"clusterIP":                      {f.str("spec", "clusterIP"), "10.96.0.10"},
			"new port":                       {f.list("spec", "ports")[0].str("port"), "8080"},
			"nodePort (matched by name)":     {f.list("spec", "ports")[0].str("nodePort"), "30080"},
			"label from manifest":            {f.str("metadata", "labels", "app"), "web"},
			"label removed from manifest":    {f.str("metadata", "labels", "tier"), ""},
			"foreign label":                  {f.str("metadata", "labels", "owner"), "someone"},
			"foreign annotation":             {f.str("metadata", "annotations", "external"), "yes"},
		}
		for what, c := range checks {
			if c[0] != c[1] {
				t.Errorf("%s: got %q, want %q", what, c[0], c[1])
			}
		}
		if ips := f.strs("spec", "clusterIPs"); len(ips) != 1 {
			t.Errorf("clusterIPs not kept: %v", ips)
		}
		rec := f.str("metadata", "annotations", LastAppliedAnnotation)
		if !strings.Contains(rec, `"port":8080`) || strings.Contains(rec, LastAppliedAnnotation) || strings.Contains(rec, "30080") {
			t.Errorf("last-applied must be the new manifest only, got %s", rec)
		}
		// Applying the result's manifest again is a no-op.
		if _, changed, _ := planApply(info, v2, obj); changed {
			t.Error("re-applying the same manifest must be unchanged")
		}
	})

	t.Run("explicit values win over kept ones", func(t *testing.T) {
		_, v3 := manifestOf(t, strings.Replace(svcV2, "targetPort: 8080}", "targetPort: 8080, nodePort: 30099}", 1))
		obj, _, err := planApply(info, v3, cur)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustFields(obj).list("spec", "ports")[0].str("nodePort"); got != "30099" {
			t.Errorf("nodePort: got %s, want the manifest's 30099", got)
		}
	})

	t.Run("switching to ClusterIP drops node ports", func(t *testing.T) {
		_, v4 := manifestOf(t, strings.Replace(svcV2, "type: NodePort", "type: ClusterIP", 1))
		obj, _, err := planApply(info, v4, cur)
		if err != nil {
			t.Fatal(err)
		}
		f := mustFields(obj)
		if f.has("spec", "ports") && f.list("spec", "ports")[0].has("nodePort") {
			t.Errorf("nodePort kept on a ClusterIP service: %v", f.get("spec", "ports"))
		}
		if f.str("spec", "clusterIP") != "10.96.0.10" {
			t.Error("clusterIP must be kept")
		}
	})
}

func TestPlanApplyKeepsPodNodeNameAndStatus(t *testing.T) {
	info, pod := manifestOf(t, `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: "x:1"}]
`)
	created, _ := newApplied(info, pod)
	cur := stored(t, info, created, func(f fields) {
		f.set("node-1", "spec", "nodeName")
		f.set("Running", "status", "phase")
	})
	_, pod2 := manifestOf(t, `
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {a: b}}
spec:
  containers: [{name: c, image: "x:2"}]
`)
	obj, changed, err := planApply(info, pod2, cur)
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	f := mustFields(obj)
	if f.str("spec", "nodeName") != "node-1" || f.str("status", "phase") != "Running" || f.str("metadata", "labels", "a") != "b" {
		t.Errorf("got %v", f)
	}
}

// fakeObjects is an in-memory objectClient that can inject conflicts.
type fakeObjects struct {
	objs      map[string]api.Object
	conflicts int // the next n updates fail with 409
	creates   int
	updates   int
}

func key(k api.Kind, ns, name string) string { return string(k) + "/" + ns + "/" + name }

func (f *fakeObjects) Get(_ context.Context, k api.Kind, ns, name string) (api.Object, error) {
	if o, ok := f.objs[key(k, ns, name)]; ok {
		return o, nil
	}
	return nil, &api.Status{Status: "Failure", Reason: api.ReasonNotFound, Code: http.StatusNotFound, Message: "not found"}
}

func (f *fakeObjects) Create(_ context.Context, o api.Object) (api.Object, error) {
	f.creates++
	m := o.GetObjectMeta()
	m.ResourceVersion = "1"
	f.objs[key(api.KindOf(o), m.Namespace, m.Name)] = o
	return o, nil
}

func (f *fakeObjects) Update(_ context.Context, o api.Object) (api.Object, error) {
	f.updates++
	if f.conflicts > 0 {
		f.conflicts--
		return nil, &api.Status{Status: "Failure", Reason: api.ReasonConflict, Code: http.StatusConflict, Message: "conflict"}
	}
	m := o.GetObjectMeta()
	f.objs[key(api.KindOf(o), m.Namespace, m.Name)] = o
	return o, nil
}

func TestApplyObject(t *testing.T) {
	ctx := context.Background()
	c := &fakeObjects{objs: map[string]api.Object{}}
	info, v1 := manifestOf(t, svcV1)
	steps := []struct {
		manifest  string
		conflicts int
		want      applyAction
	}{
		{svcV1, 0, actionCreated},
		{svcV1, 0, actionUnchanged},
		{svcV2, 2, actionConfigured}, // two conflicts, then success
		{svcV2, 0, actionUnchanged},
	}
	_ = v1
	for i, s := range steps {
		_, m := manifestOf(t, s.manifest)
		c.conflicts = s.conflicts
		got, err := applyObject(ctx, c, info, m)
		if err != nil || got != s.want {
			t.Fatalf("step %d: got %q, %v; want %q", i, got, err, s.want)
		}
	}
	if c.creates != 1 || c.updates != 3 {
		t.Errorf("creates=%d updates=%d, want 1 and 3", c.creates, c.updates)
	}

	c.conflicts = 100
	_, m := manifestOf(t, svcV1)
	if _, err := applyObject(ctx, c, info, m); err == nil || !isConflict(err) {
		t.Errorf("endless conflicts must fail with the conflict, got %v", err)
	}
}

func TestReadManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", svcV1)
	write("a.json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod","namespace":"ignored"}}`)
	write("notes.txt", "not a manifest")

	objs, err := readManifests([]string{dir}, false, nil, "default", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Info.Kind != api.KindNamespace || objs[1].Info.Kind != api.KindService {
		t.Fatalf("want a.json then b.yaml, got %+v", objs)
	}
	if ns := objs[0].Object.GetObjectMeta().Namespace; ns != "" {
		t.Errorf("cluster-scoped object kept namespace %q", ns)
	}
	if ns := objs[1].Object.GetObjectMeta().Namespace; ns != "default" {
		t.Errorf("namespaced object got namespace %q, want default", ns)
	}

	// Every broken file is reported, not just the first.
	write("c.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {bogusField: 1}\n")
	write("d.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: why, namespace: other}\n")
	_, err = readManifests([]string{dir, filepath.Join(dir, "missing.yaml")}, false, nil, "default", true)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"c.yaml", "bogusField", "d.yaml", `"other"`, "missing.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}

	objs, err = readManifests([]string{"-"}, false, strings.NewReader(svcV1), "staging", true)
	if err != nil || len(objs) != 1 || objs[0].Object.GetObjectMeta().Namespace != "staging" {
		t.Errorf("stdin: %v %+v", err, objs)
	}
}
