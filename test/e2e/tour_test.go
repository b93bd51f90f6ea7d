package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSimulatedClusterTour is issue 4's tour on the real binary: `skiff
// dev` with 20 simulated nodes, a 100-replica Deployment spread over them,
// a pod too big for any node that stays Pending with the scheduler's reason
// in `describe`, a LoadBalancer Service that gets an address from the
// local provider's pool, `rollout status`, and `drain` moving pods away.
func TestSimulatedClusterTour(t *testing.T) {
	e := newEnv(t)
	data := filepath.Join(t.TempDir(), "dev")
	conf := filepath.Join(data, "admin.conf")
	e.setenv("SKIFF_CONFIG", conf)
	// 192.0.2.0/24 is TEST-NET-1: the local provider only records the
	// addresses; nothing on this machine changes.
	dev := e.start("skiff dev", "dev", "--node=false", "--data-dir", data, "--api-addr", "127.0.0.1:0",
		"--load-balancer-pool", "192.0.2.10-192.0.2.20")
	dev.waitOutput("skiff dev is ready", 0, 60*time.Second)
	token := strings.TrimSpace(e.mustSkiff("token", "create", "--usage", "agent", "--ttl", "1h"))
	agent := e.start("skiff agent --simulate 20", "agent", "--simulate", "20", "--server", serverOf(t, conf),
		"--token", token, "--heartbeat-period", "500ms", "--ready-delay", "100ms")
	agent.waitOutput("20 hollow nodes registered", 0, 60*time.Second)

	e.mustSkiff("apply", "-f", "examples/simulated.yaml")
	out := e.mustSkiff("rollout", "status", "deployment/hello", "--timeout", "90s")
	if !strings.Contains(out, `deployment "hello" successfully rolled out`) {
		t.Fatalf("rollout status:\n%s", out)
	}

	// Spread: LeastAllocated puts 5 of the 100 on each of the 20 nodes.
	perNode := helloPerNode(t, e)
	if len(perNode) != 20 {
		t.Errorf("pods on %d nodes, want 20: %v", len(perNode), perNode)
	}
	for n, c := range perNode {
		if c != 5 {
			t.Errorf("node %s runs %d pods, want 5 (%v)", n, c, perNode)
		}
	}
	wide := e.mustSkiff("get", "pods", "-l", "app=hello", "-o", "wide")
	if !strings.Contains(wide, "NODE") || !strings.Contains(wide, "sim-") {
		t.Errorf("get pods -o wide shows no nodes:\n%s", wide)
	}

	// The pod that fits nowhere stays Pending, and describe says why.
	const why = "0/20 nodes are available: 20 Insufficient cpu."
	var desc string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if desc = e.mustSkiff("describe", "pod", "too-big"); strings.Contains(desc, why) {
			break
		}
	}
	t.Logf("skiff describe pod too-big:\n%s", desc)
	for _, want := range []string{"Pending", "FailedScheduling", why} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe pod too-big: want %q in:\n%s", want, desc)
		}
	}

	// The LoadBalancer Service gets an address from the pool.
	var svc struct {
		Status struct {
			LoadBalancer struct {
				Ingress []struct {
					IP string `json:"ip"`
				} `json:"ingress"`
			} `json:"loadBalancer"`
		} `json:"status"`
	}
	out = e.mustSkiff("get", "service", "hello", "-o", "json")
	if err := json.Unmarshal([]byte(out), &svc); err != nil {
		t.Fatal(err)
	}
	if in := svc.Status.LoadBalancer.Ingress; len(in) != 1 || !strings.HasPrefix(in[0].IP, "192.0.2.") {
		t.Errorf("LoadBalancer ingress %+v, want one address of 192.0.2.10-20:\n%s", in, out)
	}

	// Drain a node: its pods go elsewhere and the rollout is whole again.
	out = e.mustSkiff("drain", "sim-07", "--timeout", "60s")
	if !strings.Contains(out, "node/sim-07 drained") {
		t.Errorf("drain:\n%s", out)
	}
	e.mustSkiff("rollout", "status", "deployment/hello", "--timeout", "60s")
	var after map[string]int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		after = helloPerNode(t, e)
		total := 0
		for _, c := range after {
			total += c
		}
		if after["sim-07"] == 0 && total == 100 {
			break
		}
	}
	if after["sim-07"] != 0 {
		t.Errorf("drained node still runs %d pods", after["sim-07"])
	}
	if nodes := e.mustSkiff("get", "node", "sim-07"); !strings.Contains(nodes, "SchedulingDisabled") {
		t.Errorf("drained node not cordoned:\n%s", nodes)
	}
	if err := agent.stop(15 * time.Second); err != nil {
		t.Errorf("agent exit: %v", err)
	}
	if err := dev.stop(15 * time.Second); err != nil {
		t.Errorf("dev exit: %v", err)
	}
}

// helloPerNode counts the hello Deployment's live pods per node.
func helloPerNode(t *testing.T, e *env) map[string]int {
	t.Helper()
	var pods struct {
		Items []struct {
			Metadata struct {
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
		} `json:"items"`
	}
	out := e.mustSkiff("get", "pods", "-l", "app=hello", "-o", "json")
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatalf("get pods: %v\n%s", err, out)
	}
	per := map[string]int{}
	for _, p := range pods.Items {
		if p.Metadata.DeletionTimestamp == nil && p.Spec.NodeName != "" {
			per[p.Spec.NodeName]++
		}
	}
	return per
}
