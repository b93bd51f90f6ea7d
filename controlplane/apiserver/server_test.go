package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestCRUDSeveralKinds(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := []struct {
		name, collection, object, manifest string
		labelKey                           string
	}{
		{"namespace", "/api/v1/namespaces", "/api/v1/namespaces/team", namespaceJSON, "team"},
		{"node", "/api/v1/nodes", "/api/v1/nodes/node-1", nodeJSON, "zone"},
		{"pod", "/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/web-1", fmt.Sprintf(podJSON, "web-1", "web", ""), "app"},
		{"deployment", "/apis/apps/v1/namespaces/default/deployments", "/apis/apps/v1/namespaces/default/deployments/web", deployJSON, "app"},
		{"service", "/api/v1/namespaces/default/services", "/api/v1/namespaces/default/services/web", serviceJSON, "app"},
		{"controllerrevision", "/apis/apps/v1/namespaces/default/controllerrevisions", "/apis/apps/v1/namespaces/default/controllerrevisions/web-1", fmt.Sprintf(revisionJSON, 1, "nginx:1.27"), "app"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			created := expect(t, do(t, "POST", ts.URL+c.collection, c.manifest), http.StatusCreated).object(t)
			md := meta(t, created)
			rv, _ := md["resourceVersion"].(string)
			if rv == "" || md["uid"] == "" {
				t.Fatalf("created object lacks server fields: %v", md)
			}
			got := expect(t, do(t, "GET", ts.URL+c.object, ""), http.StatusOK).object(t)
			if meta(t, got)["resourceVersion"] != rv || got["kind"] == "" || got["apiVersion"] == "" {
				t.Fatalf("get: %v", got)
			}
			list := expect(t, do(t, "GET", ts.URL+c.collection, ""), http.StatusOK).object(t)
			if !strings.HasSuffix(list["kind"].(string), "List") || meta(t, list)["resourceVersion"] == "" {
				t.Fatalf("list envelope: %v", list)
			}
			items := list["items"].([]any)
			found := false
			for _, it := range items {
				m := it.(map[string]any)
				if m["kind"] == "" || m["apiVersion"] == "" {
					t.Fatalf("list item without kind: %v", m)
				}
				if meta(t, m)["name"] == md["name"] {
					found = true
				}
			}
			if !found {
				t.Fatalf("created object not listed: %s", list)
			}

			// Update with the current resourceVersion as precondition.
			md["labels"] = map[string]any{"updated": "yes"}
			body := mustJSON(t, created)
			updated := expect(t, do(t, "PUT", ts.URL+c.object, body), http.StatusOK).object(t)
			if meta(t, updated)["resourceVersion"] == rv || meta(t, updated)["labels"].(map[string]any)["updated"] != "yes" {
				t.Fatalf("update did not apply: %v", updated)
			}
			// The same body again carries a stale resourceVersion.
			expectStatus(t, do(t, "PUT", ts.URL+c.object, body), http.StatusConflict, api.ReasonConflict, "")

			deleted := expect(t, do(t, "DELETE", ts.URL+c.object, ""), http.StatusOK).object(t)
			if meta(t, deleted)["name"] != md["name"] {
				t.Fatalf("delete returned %v", deleted)
			}
			expectStatus(t, do(t, "GET", ts.URL+c.object, ""), http.StatusNotFound, api.ReasonNotFound, "not found")
		})
	}
}

// revisionJSON is a ControllerRevision with a revision number and image.
const revisionJSON = `{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"web-1","labels":{"app":"web"}},
	"data":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":%[2]q}]}},"revision":%[1]d}`

// A ControllerRevision may be renumbered but its template never changes;
// it has no status.
func TestControllerRevisionUpdates(t *testing.T) {
	ts := newTestServer(t, Config{})
	revs := ts.URL + "/apis/apps/v1/namespaces/default/controllerrevisions"
	created := expect(t, do(t, "POST", revs, fmt.Sprintf(revisionJSON, 1, "nginx:1.27")), http.StatusCreated).object(t)
	if created["data"].(map[string]any)["spec"].(map[string]any)["restartPolicy"] != "Always" {
		t.Fatalf("the template was not defaulted: %v", created["data"])
	}
	got := expect(t, do(t, "PUT", revs+"/web-1", fmt.Sprintf(revisionJSON, 3, "nginx:1.27")), http.StatusOK).object(t)
	if got["revision"] != float64(3) {
		t.Fatalf("renumbered: %v", got)
	}
	expectStatus(t, do(t, "PUT", revs+"/web-1", fmt.Sprintf(revisionJSON, 3, "nginx:1.28")), http.StatusUnprocessableEntity, api.ReasonInvalid, "data: Invalid value")
	expectStatus(t, do(t, "POST", revs, strings.Replace(fmt.Sprintf(revisionJSON, 0, "nginx:1.27"), "web-1", "web-2", 1)), http.StatusUnprocessableEntity, api.ReasonInvalid, "revision: Invalid value: 0")
	expectStatus(t, do(t, "GET", revs+"/web-1/status", ""), http.StatusNotFound, api.ReasonNotFound, "subresource")
	list := expect(t, do(t, "GET", revs+"?labelSelector=app%3Dweb", ""), http.StatusOK).object(t)
	if list["kind"] != "ControllerRevisionList" || len(list["items"].([]any)) != 1 {
		t.Fatalf("list: %v", list)
	}
}

func TestWriteErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	pods := ts.URL + "/api/v1/namespaces/default/pods"
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusCreated)

	t.Run("already exists", func(t *testing.T) {
		s := expectStatus(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusConflict, api.ReasonAlreadyExists, `pods "a" already exists`)
		if s.Details == nil || s.Details.Name != "a" {
			t.Fatalf("details: %+v", s.Details)
		}
	})
	t.Run("not found", func(t *testing.T) {
		expectStatus(t, do(t, "GET", pods+"/nope", ""), http.StatusNotFound, api.ReasonNotFound, `pods "nope" not found`)
		expectStatus(t, do(t, "DELETE", pods+"/nope", ""), http.StatusNotFound, api.ReasonNotFound, "not found")
		expectStatus(t, do(t, "PUT", pods+"/nope", fmt.Sprintf(podJSON, "nope", "web", "")), http.StatusNotFound, api.ReasonNotFound, "not found")
	})
	t.Run("missing namespace", func(t *testing.T) {
		expectStatus(t, do(t, "POST", ts.URL+"/api/v1/namespaces/ghost/pods", fmt.Sprintf(podJSON, "a", "web", "")),
			http.StatusNotFound, api.ReasonNotFound, `namespace "ghost" not found`)
	})
	t.Run("body too large", func(t *testing.T) {
		big := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"big","annotations":{"x":"%s"}}}`,
			strings.Repeat("x", DefaultMaxBodyBytes))
		expectStatus(t, do(t, "POST", pods, big), http.StatusRequestEntityTooLarge, api.ReasonRequestEntityTooLarge, "limit")
		// Exactly one byte over, too.
		body := strings.Repeat(" ", DefaultMaxBodyBytes+1)
		expectStatus(t, do(t, "POST", pods, body), http.StatusRequestEntityTooLarge, api.ReasonRequestEntityTooLarge, "limit")
		if _, err := ts.store.Get(store.Key{Kind: api.KindPod, Namespace: "default", Name: "big"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("oversized object was stored: %v", err)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		expectStatus(t, do(t, "POST", pods, `{"apiVersion":"v1","kind":"Pod",`), http.StatusBadRequest, api.ReasonBadRequest, "malformed")
		expectStatus(t, do(t, "POST", pods, `{"apiVersion":"v1" "kind":"Pod"}`), http.StatusBadRequest, api.ReasonBadRequest, "malformed")
		expectStatus(t, do(t, "POST", pods, ``), http.StatusBadRequest, api.ReasonBadRequest, "empty")
	})
	t.Run("kind and namespace mismatch", func(t *testing.T) {
		expectStatus(t, do(t, "POST", pods, serviceJSON), http.StatusBadRequest, api.ReasonBadRequest, "does not match")
		body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"i"}]}}`
		expectStatus(t, do(t, "POST", pods, body), http.StatusBadRequest, api.ReasonBadRequest, "namespace")
		expectStatus(t, do(t, "PUT", pods+"/other", fmt.Sprintf(podJSON, "a", "web", "")), http.StatusBadRequest, api.ReasonBadRequest, "name")
	})
	t.Run("kind filled from URL", func(t *testing.T) {
		body := `{"metadata":{"name":"bare"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
		got := expect(t, do(t, "POST", pods, body), http.StatusCreated).object(t)
		if got["kind"] != "Pod" || got["apiVersion"] != "v1" || meta(t, got)["namespace"] != "default" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("yaml body", func(t *testing.T) {
		body := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-yaml\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
		expect(t, do(t, "POST", pods, body, "Content-Type", "application/yaml"), http.StatusCreated)
	})
	t.Run("generateName", func(t *testing.T) {
		body := `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
		got := expect(t, do(t, "POST", pods, body), http.StatusCreated).object(t)
		name, _ := meta(t, got)["name"].(string)
		if len(name) != len("web-")+5 || !strings.HasPrefix(name, "web-") || strings.Trim(name[4:], nameChars) != "" {
			t.Fatalf("generated name %q", name)
		}
	})
	t.Run("cluster-scoped object with namespace", func(t *testing.T) {
		body := `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n","namespace":"default"}}`
		expectStatus(t, do(t, "POST", ts.URL+"/api/v1/nodes", body), http.StatusBadRequest, api.ReasonBadRequest, "cluster-scoped")
	})
	// After all the bad requests the server still serves good ones.
	expect(t, do(t, "GET", pods+"/a", ""), http.StatusOK)
}

func TestInvalidManifests(t *testing.T) {
	ts := newTestServer(t, Config{})
	deploys := ts.URL + "/apis/apps/v1/namespaces/default/deployments"
	cases := []struct {
		name, body string
		fields     []string
	}{
		{"negative replicas", strings.Replace(deployJSON, `"replicas":2`, `"replicas":-1`, 1), []string{"spec.replicas"}},
		{"selector mismatch", strings.Replace(deployJSON, `"matchLabels":{"app":"web"}`, `"matchLabels":{"app":"other"}`, 1), []string{"spec.template.metadata.labels"}},
		{"unknown field", strings.Replace(deployJSON, `"image":"nginx:1.27"`, `"image":"nginx:1.27","imagee":"x"`, 1), []string{"spec.template.spec.containers[0].imagee"}},
		{"every error at once", strings.Replace(strings.Replace(deployJSON, `"replicas":2`, `"replicas":-1,"bogus":1`, 1), `"matchLabels":{"app":"web"}`, `"matchLabels":{"app":"other"}`, 1),
			[]string{"spec.bogus"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := expectStatus(t, do(t, "POST", deploys, c.body), http.StatusUnprocessableEntity, api.ReasonInvalid, "invalid")
			if s.Details == nil || len(s.Details.Causes) == 0 {
				t.Fatalf("no causes: %+v", s)
			}
			for _, f := range c.fields {
				found := false
				for _, cause := range s.Details.Causes {
					if cause.Field == f {
						found = true
					}
				}
				if !found {
					t.Fatalf("no cause for %s in %+v", f, s.Details.Causes)
				}
			}
		})
	}
	t.Run("update validated against current", func(t *testing.T) {
		expect(t, do(t, "POST", deploys, deployJSON), http.StatusCreated)
		changed := strings.NewReplacer(`"matchLabels":{"app":"web"}`, `"matchLabels":{"app":"x"}`, `"labels":{"app":"web"}`, `"labels":{"app":"x"}`).Replace(deployJSON)
		s := expectStatus(t, do(t, "PUT", deploys+"/web", changed), http.StatusUnprocessableEntity, api.ReasonInvalid, "")
		if len(s.Details.Causes) == 0 {
			t.Fatalf("no causes: %+v", s)
		}
	})
	expect(t, do(t, "GET", deploys, ""), http.StatusOK)
}

func TestUnconditionalUpdateAndStatus(t *testing.T) {
	ts := newTestServer(t, Config{})
	pods := ts.URL + "/api/v1/namespaces/default/pods"
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusCreated)
	// No resourceVersion: unconditional.
	upd := expect(t, do(t, "PUT", pods+"/a", fmt.Sprintf(podJSON, "a", "web2", "")), http.StatusOK).object(t)
	if meta(t, upd)["labels"].(map[string]any)["app"] != "web2" {
		t.Fatalf("update: %v", upd)
	}
	st := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]},"status":{"phase":"Running","podIP":"10.0.0.5"}}`
	got := expect(t, do(t, "PUT", pods+"/a/status", st), http.StatusOK).object(t)
	if got["status"].(map[string]any)["phase"] != "Running" {
		t.Fatalf("status update: %v", got)
	}
	got = expect(t, do(t, "GET", pods+"/a/status", ""), http.StatusOK).object(t)
	if got["status"].(map[string]any)["podIP"] != "10.0.0.5" {
		t.Fatalf("status get: %v", got)
	}
	expect(t, do(t, "DELETE", pods+"/a/status", ""), http.StatusMethodNotAllowed)
	expectStatus(t, do(t, "GET", ts.URL+"/api/v1/namespaces/default/endpoints/x/status", ""), http.StatusNotFound, api.ReasonNotFound, "subresource")
}

func TestDeletePreconditionsAndNamespaces(t *testing.T) {
	ts := newTestServer(t, Config{})
	expect(t, do(t, "POST", ts.URL+"/api/v1/namespaces", namespaceJSON), http.StatusCreated)
	pods := ts.URL + "/api/v1/namespaces/team/pods"
	p := expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusCreated).object(t)
	rv := meta(t, p)["resourceVersion"].(string)

	expectStatus(t, do(t, "DELETE", ts.URL+"/api/v1/namespaces/team", ""), http.StatusConflict, api.ReasonConflict, "not empty")
	expectStatus(t, do(t, "DELETE", ts.URL+"/api/v1/namespaces/default", ""), http.StatusForbidden, api.ReasonForbidden, "cannot be deleted")

	expectStatus(t, do(t, "DELETE", pods+"/a", `{"preconditions":{"resourceVersion":"1"}}`), http.StatusConflict, api.ReasonConflict, "")
	expectStatus(t, do(t, "DELETE", pods+"/a", `{"preconditions":{"uid":"nope"}}`), http.StatusConflict, api.ReasonConflict, "")
	expectStatus(t, do(t, "DELETE", pods+"/a", `{"preconditions":`), http.StatusBadRequest, api.ReasonBadRequest, "DeleteOptions")
	body := fmt.Sprintf(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background","preconditions":{"resourceVersion":%q,"uid":%q}}`, rv, meta(t, p)["uid"])
	expect(t, do(t, "DELETE", pods+"/a", body), http.StatusOK)
	expect(t, do(t, "DELETE", ts.URL+"/api/v1/namespaces/team", ""), http.StatusOK)
}

func TestRoutingErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", "/api/v1/widgets", 404, `"widgets"`},
		{"GET", "/api/v1/namespaces/default/widgets/x", 404, `"widgets"`},
		{"GET", "/apis/apps/v1/pods", 404, `"pods" in apps/v1`},
		{"GET", "/api/v1/deployments", 404, `"deployments" in v1`},
		{"GET", "/api/v1/pods/x", 404, "namespaced"},
		{"GET", "/api/v1/namespaces/default/nodes", 404, "not namespaced"},
		{"GET", "/nothing/here", 404, "/nothing/here"},
		{"PATCH", "/api/v1/namespaces/default/pods/x", 405, "PATCH"},
		{"DELETE", "/api/v1/namespaces/default/pods", 405, "DELETE"},
		{"POST", "/api/v1/pods", 405, "namespace"},
		{"GET", "/skiff/v1/join", 405, "GET"},
	}
	for _, c := range cases {
		r := do(t, c.method, ts.URL+c.path, "")
		if r.code != c.code {
			t.Errorf("%s %s: HTTP %d, want %d: %s", c.method, c.path, r.code, c.code, r.body)
			continue
		}
		if s := r.status(t); !strings.Contains(s.Message, c.msg) {
			t.Errorf("%s %s: message %q lacks %q", c.method, c.path, s.Message, c.msg)
		}
	}
	expect(t, do(t, "GET", ts.URL+"/healthz", ""), 200)
	expect(t, do(t, "GET", ts.URL+"/readyz", ""), 200)
	m := expect(t, do(t, "GET", ts.URL+"/skiff/v1/members", ""), 200).object(t)
	if m["leader"] != "1" {
		t.Fatalf("members: %v", m)
	}
}

func TestListSelectors(t *testing.T) {
	ts := newTestServer(t, Config{})
	pods := ts.URL + "/api/v1/namespaces/default/pods"
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "node-1")), http.StatusCreated)
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "b", "web", "node-2")), http.StatusCreated)
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "c", "db", "node-1")), http.StatusCreated)
	expect(t, do(t, "POST", ts.URL+"/api/v1/namespaces/kube-system/pods", fmt.Sprintf(podJSON, "d", "web", "node-1")), http.StatusCreated)

	names := func(path string) string {
		t.Helper()
		l := expect(t, do(t, "GET", ts.URL+path, ""), 200).object(t)
		var out []string
		for _, it := range l["items"].([]any) {
			out = append(out, meta(t, it.(map[string]any))["name"].(string))
		}
		return strings.Join(out, ",")
	}
	cases := map[string]string{
		"/api/v1/namespaces/default/pods":                                               "a,b,c",
		"/api/v1/pods":                                                                  "a,b,c,d",
		"/api/v1/pods?labelSelector=app%3Dweb":                                          "a,b,d",
		"/api/v1/pods?labelSelector=app+in+(db)":                                        "c",
		"/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dnode-1":          "a,c",
		"/api/v1/pods?labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dnode-1":     "a,d",
		"/api/v1/pods?fieldSelector=metadata.name%3Db&consistent=false":                 "b",
		"/api/v1/namespaces/default/pods?labelSelector=app%3Dweb&resourceVersion=0":     "a,b",
		"/api/v1/pods?fieldSelector=metadata.namespace%3Dkube-system&resourceVersion=1": "d",
		"/api/v1/namespaces/default/pods?labelSelector=app%21%3Dweb&fieldSelector=":     "c",
		"/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dnode-9":          "",
	}
	for path, want := range cases {
		if got := names(path); got != want {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
	expectStatus(t, do(t, "GET", pods+"?labelSelector=app+in+(", ""), 400, api.ReasonBadRequest, "labelSelector")
	expectStatus(t, do(t, "GET", pods+"?fieldSelector=spec.bogus%3D1", ""), 400, api.ReasonBadRequest, "fieldSelector")
	expectStatus(t, do(t, "GET", pods+"?resourceVersion=abc", ""), 400, api.ReasonBadRequest, "resourceVersion")
}

// panicStore panics on Get, to check the server survives handler panics.
type panicStore struct{ store.Interface }

func (panicStore) Get(store.Key) (api.Object, error) { panic("boom") }

func TestPanicIsA500AndServerKeepsServing(t *testing.T) {
	st := store.NewInMemory()
	t.Cleanup(st.Close)
	ts := newTestServer(t, Config{Store: panicStore{st}})
	expectStatus(t, do(t, "GET", ts.URL+"/api/v1/nodes/x", ""), 500, api.ReasonInternalError, "boom")
	expect(t, do(t, "GET", ts.URL+"/api/v1/nodes", ""), 200)
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, Config{})
	expect(t, do(t, "GET", ts.URL+"/api/v1/nodes", ""), 200)
	expect(t, do(t, "GET", ts.URL+"/api/v1/nodes/x", ""), 404)
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		if mf.GetName() == "skiff_apiserver_requests_total" {
			found := false
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				if l["verb"] == "get" && l["resource"] == "nodes" && l["code"] == "404" {
					found = true
				}
			}
			if !found {
				t.Errorf("no get/nodes/404 sample")
			}
		}
	}
	for _, n := range []string{"skiff_apiserver_requests_total", "skiff_apiserver_request_duration_seconds", "skiff_apiserver_open_watches", "skiff_apiserver_forwarded_requests_total"} {
		if !seen[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}
