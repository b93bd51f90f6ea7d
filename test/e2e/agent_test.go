package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAgentSimulate runs `skiff agent --simulate 3` against `skiff dev`:
// three hollow nodes join with an agent token and register Ready, a
// deployment's pods are scheduled onto them and become Running with pod
// IPs, its rollout completes, and SIGTERM stops the simulator cleanly.
func TestAgentSimulate(t *testing.T) {
	e := newEnv(t)
	data := filepath.Join(t.TempDir(), "dev")
	conf := filepath.Join(data, "admin.conf")
	e.setenv("SKIFF_CONFIG", conf)
	dev := e.start("skiff dev", "dev", "--node=false", "--data-dir", data, "--api-addr", "127.0.0.1:0")
	dev.waitOutput("skiff dev is ready", 0, 60*time.Second)
	server := serverOf(t, conf)

	// A token of another cluster: the agent refuses before sending it.
	r := e.skiff("agent", "--server", server, "--data-dir", filepath.Join(t.TempDir(), "agent"),
		"--token", "K10"+strings.Repeat("a", 64)+"::abcdef.0123456789abcdef")
	if r.err == nil || !strings.Contains(r.stderr, "not this cluster") {
		t.Errorf("agent with another cluster's token: %v\n%s", r.err, r.stderr)
	}

	token := strings.TrimSpace(e.mustSkiff("token", "create", "--usage", "agent", "--ttl", "1h"))
	agent := e.start("skiff agent --simulate 3", "agent", "--simulate", "3", "--server", server, "--token", token,
		"--heartbeat-period", "500ms", "--ready-delay", "100ms", "--labels", "topology.kubernetes.io/zone=e2e")
	agent.waitOutput("3 hollow nodes registered", 0, 60*time.Second)

	var nodes struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				PodCIDR string `json:"podCIDR"`
			} `json:"spec"`
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	out := e.mustSkiff("get", "nodes", "-o", "json")
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("get nodes -o json: %v\n%s", err, out)
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" && n.Spec.PodCIDR != "" && n.Metadata.Labels["topology.kubernetes.io/zone"] == "e2e" {
				ready[n.Metadata.Name] = true
			}
		}
	}
	for _, name := range []string{"sim-0", "sim-1", "sim-2"} {
		if !ready[name] {
			t.Errorf("node %s is not registered Ready with a pod CIDR and its label:\n%s", name, out)
		}
	}

	e.mustSkiff("apply", "-f", "examples/web.yaml")
	out = e.mustSkiff("rollout", "status", "deploy/web", "--timeout", "60s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Errorf("rollout status:\n%s", out)
	}
	var pods struct {
		Items []struct {
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
				PodIP string `json:"podIP"`
			} `json:"status"`
		} `json:"items"`
	}
	out = e.mustSkiff("get", "pods", "-l", "app=web", "-o", "json")
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatalf("get pods -o json: %v\n%s", err, out)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("want 3 pods, got:\n%s", out)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != "Running" || p.Status.PodIP == "" || !ready[p.Spec.NodeName] {
			t.Errorf("pod on %q: phase %s, IP %q", p.Spec.NodeName, p.Status.Phase, p.Status.PodIP)
		}
	}
	out = e.mustSkiff("get", "endpoints", "web", "-o", "json")
	var ep struct {
		Subsets []struct {
			Addresses []struct {
				IP string `json:"ip"`
			} `json:"addresses"`
			Ports []struct {
				Port int `json:"port"`
			} `json:"ports"`
		} `json:"subsets"`
	}
	if err := json.Unmarshal([]byte(out), &ep); err != nil {
		t.Fatalf("get endpoints -o json: %v\n%s", err, out)
	}
	var addrs, ports int
	for _, ss := range ep.Subsets {
		addrs += len(ss.Addresses)
		ports += len(ss.Ports)
	}
	if addrs != 3 || ports != 2 {
		t.Errorf("the service's endpoints are not the three pods on two ports (%d addresses, %d ports):\n%s", addrs, ports, out)
	}

	if err := agent.stop(15 * time.Second); err != nil {
		t.Errorf("agent exit after SIGTERM: %v\n%s", err, agent.output())
	}
	if !strings.Contains(agent.output(), "stopped 3 hollow nodes") {
		t.Errorf("agent output:\n%s", agent.output())
	}
	if err := dev.stop(15 * time.Second); err != nil {
		t.Errorf("dev exit: %v", err)
	}
}

// serverOf reads the API URL from an admin.conf.
func serverOf(t *testing.T, conf string) string {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^- (https://\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no server in %s:\n%s", conf, b)
	}
	return string(m[1])
}
