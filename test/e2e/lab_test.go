package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/deploy/lab"
)

// labGrace is the lab's node grace period (servers) and fence period
// (agents): short, so node-loss scenarios finish quickly.
const labGrace = 4 * time.Second

// startLab brings up a 3-server, 3-node lab for the test and removes it
// afterwards. Every process's log goes to a directory kept when the test
// fails (and named in its output), removed when it passes.
func startLab(t *testing.T, image string) (*lab.Lab, *env) {
	t.Helper()
	logs, err := os.MkdirTemp("", "skiff-lab-logs-")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("e2e%d", os.Getpid()%1000000)
	dir := filepath.Join(os.TempDir(), "skiff-lab-"+name)
	if old, err := lab.Open(dir); err == nil {
		old.Down(false) // a crashed run's
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{
		Name: name, Dir: dir, LogDir: logs, Bin: skiffBin, Images: []string{image},
		NodeGracePeriod: labGrace, Progress: testWriter{t},
	})
	t.Cleanup(func() {
		if l != nil {
			if err := l.Down(true); err != nil {
				t.Errorf("lab down: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("the lab's process logs are kept in %s", logs)
		} else {
			os.RemoveAll(logs)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	// The CLI runs in this namespace: the lab's forwarder listens on its
	// loopback.
	e := &env{t: t, vars: append(os.Environ(), "SKIFF_CONFIG="+l.AdminConfig())}
	return l, e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestLab runs issue 7's scenarios against one lab of 3 servers and 3
// nodes, in order (each leaves the lab whole for the next).
func TestLab(t *testing.T) {
	requireNode(t)
	image, echoBin := echoTools(t)
	l, e := startLab(t, image)

	e.mustSkiff("apply", "-f", "examples/web.yaml")
	e.mustSkiff("rollout", "status", "deploy/web", "--timeout", "90s")
	vip := serviceIP(t, e, "web")

	t.Run("PodToPodAndClusterIPAcrossNodes", func(t *testing.T) { labCrossNode(t, e, vip) })
	t.Run("AgentKill9UnderClusterIPLoad", func(t *testing.T) { labAgentKills(t, l, e, echoBin, vip, 20) })
}

func serviceIP(t *testing.T, e *env, name string) string {
	t.Helper()
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(e.mustSkiff("get", "svc", name, "-o", "json")), &svc); err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// labPods lists the web pods with their nodes.
func labPods(t *testing.T, e *env) []struct{ Name, IP, Node string } {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				PodIP string `json:"podIP"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(e.mustSkiff("get", "pods", "-l", "app=web", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var out []struct{ Name, IP, Node string }
	for _, p := range list.Items {
		out = append(out, struct{ Name, IP, Node string }{p.Metadata.Name, p.Status.PodIP, p.Spec.NodeName})
	}
	return out
}

// Scenario 1: every pod reaches every other pod (on other nodes: through
// the nodes' routes over the LAN) and the ClusterIP spreads over pods on
// all nodes, TCP and UDP.
func labCrossNode(t *testing.T, e *env, vip string) {
	pods := labPods(t, e)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Node] = true
	}
	if len(pods) != 3 || len(nodes) < 2 {
		t.Fatalf("want 3 web pods on at least 2 nodes, got %+v", pods)
	}
	for _, from := range pods {
		for _, to := range pods {
			if from.Node == to.Node {
				continue
			}
			out := e.mustSkiff("exec", from.Name, "--", "echo", "fetch", "http://"+to.IP+":8080/", "-n", "3")
			if !strings.Contains(out, to.Name+"\t3") {
				t.Errorf("%s (%s) → %s (%s) on %s: %q", from.Name, from.Node, to.Name, to.Node, to.IP, out)
			}
		}
		for _, probe := range [][]string{{"fetch", "http://" + vip + "/", "-n", "30"}, {"udp", vip + ":9090", "-n", "30"}} {
			out := e.mustSkiff(append([]string{"exec", from.Name, "--", "echo"}, probe...)...)
			for _, to := range pods {
				if !strings.Contains(out, to.Name+"\t") {
					t.Errorf("from %s on %s, echo %s: no answer from %s on %s:\n%s", from.Name, from.Node, strings.Join(probe, " "), to.Name, to.Node, out)
				}
			}
		}
	}
}

// Scenario 5: kill -9 a node's agent again and again while a pod-like
// client on that node streams requests to the ClusterIP: none fails.
func labAgentKills(t *testing.T, l *lab.Lab, e *env, echoBin, vip string, kills int) {
	n, err := l.Machine("n1")
	if err != nil {
		t.Fatal(err)
	}
	s := startClientStream(t, n.NetnsPath(), echoBin, l.CgroupParent(n), "http://"+vip+"/")
	waitFor(t, 15*time.Second, "the ClusterIP stream under way", func() bool { ok, _ := s.rounds(); return ok >= 3 })
	for i := range kills {
		if err := l.Kill("n1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // no agent
		if err := l.Start("n1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(700 * time.Millisecond) // the agent starts, adopts, programs its datapath
		if !l.Running("n1") {
			t.Fatalf("kill %d: the restarted agent exited", i+1)
		}
	}
	ok, fails := s.end()
	if len(fails) > 0 || ok < kills {
		t.Errorf("ClusterIP stream across %d agent kills: %d rounds of 10 requests ok, %d failed:\n%s", kills, ok, len(fails), failSummary(fails))
	} else {
		t.Logf("ClusterIP stream across %d kill -9s of n1's agent: %d rounds of 10 requests, none failed", kills, ok)
	}
	// The node is still Ready and its pods untouched.
	if err := l.WaitNodesReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
