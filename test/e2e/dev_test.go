package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevCluster drives `skiff dev` through the CLI: apply (created, then
// unchanged), get -o json, a watch that sees another apply's change,
// describe, error cases, a clean SIGTERM shutdown, and a restart on the
// same data that still has the objects.
func TestDevCluster(t *testing.T) {
	e := newEnv(t)
	data := filepath.Join(t.TempDir(), "dev")
	conf := filepath.Join(data, "admin.conf")
	e.setenv("SKIFF_CONFIG", conf)

	// No cluster yet: a clear error.
	r := e.skiff("get", "pods")
	if r.err == nil || !strings.Contains(r.stderr, "skiff dev") {
		t.Errorf("without a config, want an error pointing at skiff dev, got %v: %s", r.err, r.stderr)
	}

	dev := e.start("skiff dev", "dev", "--node=false", "--data-dir", data, "--api-addr", "127.0.0.1:0")
	dev.waitOutput("skiff dev is ready", 0, 60*time.Second)
	if _, err := os.Stat(conf); err != nil {
		t.Fatalf("admin.conf: %v", err)
	}

	out := e.mustSkiff("apply", "-f", "examples/web.yaml")
	for _, want := range []string{"deployment.apps/web created", "service/web created"} {
		if !strings.Contains(out, want) {
			t.Errorf("first apply: want %q in:\n%s", want, out)
		}
	}
	out = e.mustSkiff("apply", "-f", "examples/web.yaml")
	for _, want := range []string{"deployment.apps/web unchanged", "service/web unchanged"} {
		if !strings.Contains(out, want) {
			t.Errorf("second apply: want %q in:\n%s", want, out)
		}
	}

	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				ClusterIP string `json:"clusterIP"`
			} `json:"spec"`
		} `json:"items"`
	}
	out = e.mustSkiff("get", "deploy,svc", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, out)
	}
	kinds := map[string]bool{}
	for _, it := range list.Items {
		if it.Metadata.Name == "web" {
			kinds[it.Kind] = true
		}
	}
	if list.Kind != "List" || !kinds["Deployment"] || !kinds["Service"] {
		t.Errorf("get deploy,svc -o json: want a List with Deployment and Service web, got:\n%s", out)
	}

	out = e.mustSkiff("get", "deploy,svc")
	for _, want := range []string{"deployment.apps/web", "0/3", "service/web", "ClusterIP", "80/TCP"} {
		if !strings.Contains(out, want) {
			t.Errorf("get deploy,svc: want %q in:\n%s", want, out)
		}
	}

	// A watch sees a change made by another apply.
	watch := e.start("skiff get deploy -w", "get", "deploy", "-w")
	watch.waitOutput("0/3", 0, 30*time.Second)
	mark := len(watch.output())
	scaled := filepath.Join(t.TempDir(), "web-5.yaml")
	manifest, err := os.ReadFile(filepath.Join(repoRoot, "examples", "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifest), "replicas: 3") {
		t.Fatal("examples/web.yaml no longer has replicas: 3")
	}
	if err := os.WriteFile(scaled, []byte(strings.Replace(string(manifest), "replicas: 3", "replicas: 5", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out = e.mustSkiff("apply", "-f", scaled)
	if !strings.Contains(out, "deployment.apps/web configured") || !strings.Contains(out, "service/web unchanged") {
		t.Errorf("apply of the scaled manifest:\n%s", out)
	}
	watch.waitOutput("0/5", mark, 30*time.Second)
	if err := watch.stop(10 * time.Second); err != nil {
		t.Errorf("watch exit: %v", err)
	}

	out = e.mustSkiff("describe", "deploy", "web")
	for _, want := range []string{"Name:", "web", "Replicas:", "5 desired", "localhost/skiff/echo:latest", "Events:"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe: want %q in:\n%s", want, out)
		}
	}
	// The deployment controller made the pods; the service got a cluster IP.
	out = e.mustSkiff("get", "pods", "-l", "app=web", "-o", "name")
	if n := strings.Count(out, "pod/web-"); n != 5 {
		t.Errorf("want 5 pods of web, got %d:\n%s", n, out)
	}
	out = e.mustSkiff("get", "svc", "web", "-o", "json")
	if !strings.Contains(out, `"clusterIP": "10.`) {
		t.Errorf("service without an allocated cluster IP:\n%s", out)
	}
	out = e.mustSkiff("scale", "deployment/web", "--replicas", "2")
	if !strings.Contains(out, "deployment.apps/web scaled") {
		t.Errorf("scale: %s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = e.mustSkiff("get", "pods", "-l", "app=web", "-o", "name")
		if strings.Count(out, "pod/web-") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scale to 2 left:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// No node runs the pods yet, so the rollout cannot finish: status says
	// where it stands and exits non-zero at its timeout.
	r = e.skiff("rollout", "status", "deploy/web", "--timeout", "1s")
	if r.err == nil || !strings.Contains(r.stdout, "updated replicas are available") || !strings.Contains(r.stderr, "not finished") {
		t.Errorf("rollout status: %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
	}
	e.mustSkiff("scale", "deployment/web", "--replicas", "5")

	out = e.mustSkiff("members")
	if !strings.Contains(out, "dev") || !strings.Contains(out, "last index") {
		t.Errorf("members:\n%s", out)
	}

	r = e.skiff("get", "foo")
	if r.err == nil || !strings.Contains(r.stderr, `the server doesn't have a resource type "foo"`) {
		t.Errorf("get foo: %v: %s", r.err, r.stderr)
	}
	r = e.skiff("delete", "deploy", "nope")
	if r.err == nil || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("delete of a missing object: want NotFound and an error, got %v: %s", r.err, r.stderr)
	}
	e.mustSkiff("delete", "deploy", "nope", "--ignore-not-found")

	// A clean shutdown on SIGTERM, and the state survives a restart.
	if err := dev.stop(30 * time.Second); err != nil {
		t.Fatalf("skiff dev did not exit cleanly on SIGTERM: %v\n%s", err, dev.output())
	}
	dev2 := e.start("skiff dev (restarted)", "dev", "--node=false", "--data-dir", data, "--api-addr", "127.0.0.1:0")
	dev2.waitOutput("skiff dev is ready", 0, 60*time.Second)
	out = e.mustSkiff("get", "deploy", "web")
	if !strings.Contains(out, "web") || !strings.Contains(out, "0/5") {
		t.Errorf("after restart, get deploy web:\n%s", out)
	}
	out = e.mustSkiff("delete", "svc", "web")
	if !strings.Contains(out, `service "web" deleted`) {
		t.Errorf("delete svc web:\n%s", out)
	}
	r = e.skiff("get", "svc", "web")
	if r.err == nil {
		t.Errorf("svc web still there after delete:\n%s", r.stdout)
	}
	if err := dev2.stop(30 * time.Second); err != nil {
		t.Errorf("restarted skiff dev did not exit cleanly: %v", err)
	}
}
