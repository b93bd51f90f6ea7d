package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/deploy/lab"
)

// labGrace is the lab's node grace period (servers) and fence period
// (agents): short, so node-loss scenarios finish quickly.
const labGrace = 4 * time.Second

// labOutage is how long every server stays down in scenario 4 (the issue
// asks for 60s; SKIFF_LAB_OUTAGE shortens it while developing).
var labOutage = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SKIFF_LAB_OUTAGE")); err == nil && d > 0 {
		return d
	}
	return 60 * time.Second
}()

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
		NodeGracePeriod: labGrace, AgentArgs: []string{"--fence-after=" + labGrace.String()}, Progress: testWriter{t},
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
	pods := labPodStates(t, e)
	t.Run("KillLeaderUnderWriteLoad", func(t *testing.T) { labKillLeader(t, l) })
	t.Run("PartitionLeader", func(t *testing.T) { labPartitionLeader(t, l) })
	// A server's death or partition is no node's: no pod may have moved
	// (agents talking to the lost server carry on with another).
	t.Run("PodsUndisturbedByServerFaults", func(t *testing.T) {
		if after := labPodStates(t, e); !maps.Equal(after, pods) {
			t.Errorf("pods changed across the server faults:\nbefore %+v\nafter  %+v", pods, after)
		}
	})
	t.Run("AgentKill9UnderClusterIPLoad", func(t *testing.T) { labAgentKills(t, l, e, echoBin, vip, 20) })
	t.Run("AllServersDown", func(t *testing.T) { labServersDown(t, l, e, echoBin, vip, labOutage) })
	t.Run("RollingUpdateUnderLoad", func(t *testing.T) { labRollingUpdate(t, l, e, echoBin, vip) })
	t.Run("NodeLoss", func(t *testing.T) { labNodeLoss(t, l, e) })
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

// Scenario 1: every pod reaches every other pod (on other nodes: through
// the nodes' routes over the LAN) and the ClusterIP spreads over pods on
// all nodes, TCP and UDP.
func labCrossNode(t *testing.T, e *env, vip string) {
	pods := labPodStates(t, e)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Node] = true
	}
	if len(pods) != 3 || len(nodes) < 2 {
		t.Fatalf("want 3 web pods on at least 2 nodes, got %+v", pods)
	}
	for fromName, from := range pods {
		for toName, to := range pods {
			if from.Node == to.Node {
				continue
			}
			out := e.mustSkiff("exec", fromName, "--", "echo", "fetch", "http://"+to.IP+":8080/", "-n", "3")
			if !strings.Contains(out, toName+"\t3") {
				t.Errorf("%s (%s) → %s (%s) on %s: %q", fromName, from.Node, toName, to.Node, to.IP, out)
			}
		}
		for _, probe := range [][]string{{"fetch", "http://" + vip + "/", "-n", "30"}, {"udp", vip + ":9090", "-n", "30"}} {
			out := e.mustSkiff(append([]string{"exec", fromName, "--", "echo"}, probe...)...)
			for toName, to := range pods {
				if !strings.Contains(out, toName+"\t") {
					t.Errorf("from %s on %s, echo %s: no answer from %s on %s:\n%s", fromName, from.Node, strings.Join(probe, " "), toName, to.Node, out)
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
	// And a long-lived connection through the ClusterIP, from the same
	// node, across the first kills.
	hold := startHold(t, l, "n1", echoBin, "http://"+vip+"/", 8*time.Second)
	waitFor(t, 15*time.Second, "the ClusterIP stream under way", func() bool { ok, _ := s.rounds(); return ok >= 3 })
	before := labPodStates(t, e)
	var restarts []time.Duration
	for i := range kills {
		adopted := countLines(n.Proc.Log, "adopted sandboxes from the runtime")
		if err := l.Kill("n1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // no agent
		started := time.Now()
		if err := l.Start("n1"); err != nil {
			t.Fatal(err)
		}
		// Up again: registered and its pods adopted; the next kill comes
		// then (kills faster than the agent restarts would silence the
		// node past its grace period, and its pods would rightly move).
		waitFor(t, 30*time.Second, fmt.Sprintf("kill %d: the restarted agent adopting its pods", i+1), func() bool {
			if !l.Running("n1") {
				t.Fatalf("kill %d: the restarted agent exited", i+1)
			}
			return countLines(n.Proc.Log, "adopted sandboxes from the runtime") > adopted
		})
		restarts = append(restarts, time.Since(started))
	}
	slices.Sort(restarts)
	t.Logf("agent restart → pods adopted: median %v, max %v over %d restarts", restarts[len(restarts)/2].Round(time.Millisecond), restarts[len(restarts)-1].Round(time.Millisecond), len(restarts))
	if out, err := hold.wait(30 * time.Second); err != nil {
		t.Errorf("long-lived connection through the ClusterIP across the agent kills: %v\n%s", err, out)
	} else {
		t.Logf("long-lived connection across the agent kills: %s", out)
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
	if after := labPodStates(t, e); !maps.Equal(after, before) {
		t.Errorf("pods changed across the agent kills:\nbefore %+v\nafter  %+v", before, after)
	}
}

// countLines counts the lines of a file that contain s.
func countLines(path, s string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), s)
}

// labPodState is what "nothing restarted" compares.
type labPodState struct {
	Node, IP, ContainerID string
	Restarts              int
	Ready                 bool
}

func labPodStates(t *testing.T, e *env) map[string]labPodState {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				PodIP             string `json:"podIP"`
				ContainerStatuses []struct {
					ContainerID  string `json:"containerID"`
					RestartCount int    `json:"restartCount"`
					Ready        bool   `json:"ready"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(e.mustSkiff("get", "pods", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]labPodState{}
	for _, p := range list.Items {
		s := labPodState{Node: p.Spec.NodeName, IP: p.Status.PodIP}
		for _, c := range p.Status.ContainerStatuses {
			s.ContainerID, s.Restarts, s.Ready = c.ContainerID, c.RestartCount, c.Ready
		}
		out[p.Metadata.Name] = s
	}
	return out
}

// holdConn is `echo hold` run by a pod-like client (a node's namespace,
// a cgroup under its pods' parent): one long-lived connection through a
// ClusterIP, a request every 100ms.
type holdConn struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

func startHold(t *testing.T, l *lab.Lab, node, echoBin, url string, d time.Duration) *holdConn {
	t.Helper()
	m, err := l.Machine(node)
	if err != nil {
		t.Fatal(err)
	}
	cg := podLikeCgroup(t, l.CgroupParent(m), "e2e-hold")
	h := &holdConn{done: make(chan error, 1)}
	h.cmd = exec.Command("nsenter", "--net="+m.NetnsPath(), "sh", "-c",
		`echo $$ > `+cg+`/cgroup.procs && exec `+echoBin+` hold `+url+` --for `+d.String()+` --interval 100ms --require-test-netns`)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		os.Remove(cg)
	})
	return h
}

// wait waits for the hold to end and returns its error and output.
func (h *holdConn) wait(timeout time.Duration) (string, error) {
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return strings.TrimSpace(h.out.String()), err
	case <-time.After(timeout):
		return strings.TrimSpace(h.out.String()), fmt.Errorf("still holding after %v", timeout)
	}
}

// Scenario 4: every server down for a while (SIGKILL): the pods keep
// running, the ClusterIP keeps answering new connections, a long-lived
// one sees no reset; with the servers back nothing is restarted.
func labServersDown(t *testing.T, l *lab.Lab, e *env, echoBin, vip string, down time.Duration) {
	before := labPodStates(t, e)
	n1, _ := l.Machine("n1")
	stream := startClientStream(t, n1.NetnsPath(), echoBin, l.CgroupParent(n1), "http://"+vip+"/")
	hold := startHold(t, l, "n2", echoBin, "http://"+vip+"/", down+15*time.Second)
	waitFor(t, 15*time.Second, "the ClusterIP stream under way", func() bool { ok, _ := stream.rounds(); return ok >= 3 })
	servers := l.ByRole(lab.RoleServer)
	for _, s := range servers {
		if err := l.Kill(s.Name); err != nil {
			t.Fatal(err)
		}
	}
	atDown, _ := stream.rounds()
	t.Logf("all %d servers killed; waiting %v", len(servers), down)
	time.Sleep(down)
	atUp, _ := stream.rounds()
	for _, s := range servers {
		if err := l.Start(s.Name); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.WaitNodesReady(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the controllers catch up: an eviction would show by now
	ok, fails := stream.end()
	if len(fails) > 0 || atUp <= atDown {
		t.Errorf("ClusterIP stream: %d rounds ok (%d while the servers were down), %d failed:\n%s", ok, atUp-atDown, len(fails), failSummary(fails))
	} else {
		t.Logf("ClusterIP stream: %d rounds of 10 requests, %d of them while every server was down, none failed", ok, atUp-atDown)
	}
	if out, err := hold.wait(30 * time.Second); err != nil {
		t.Errorf("long-lived connection through the ClusterIP across the outage: %v\n%s", err, out)
	} else {
		t.Logf("long-lived connection: %s", out)
	}
	after := labPodStates(t, e)
	for name, b := range before {
		a, ok := after[name]
		if !ok || a.ContainerID != b.ContainerID || a.Restarts != b.Restarts || !a.Ready {
			t.Errorf("pod %s after the outage: %+v, before: %+v (want the same container, restarts, Ready)", name, a, b)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d pods after the outage, %d before", len(after), len(before))
	}
}

// Scenario 7: a rolling update of the Deployment behind the Service under
// constant load loses no request.
func labRollingUpdate(t *testing.T, l *lab.Lab, e *env, echoBin, vip string) {
	before := labPodStates(t, e)
	n1, _ := l.Machine("n1")
	stream := startClientStream(t, n1.NetnsPath(), echoBin, l.CgroupParent(n1), "http://"+vip+"/")
	waitFor(t, 15*time.Second, "the ClusterIP stream under way", func() bool { ok, _ := stream.rounds(); return ok >= 3 })
	manifest, err := os.ReadFile(filepath.Join(repoRoot, "examples/web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	updated := strings.Replace(string(manifest), "          imagePullPolicy: IfNotPresent\n",
		"          imagePullPolicy: IfNotPresent\n          env:\n            - name: REVISION\n              value: \"2\"\n", 1)
	if updated == string(manifest) {
		t.Fatal("examples/web.yaml: no imagePullPolicy line to add an env var after")
	}
	path := filepath.Join(t.TempDir(), "web-v2.yaml")
	if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.mustSkiff("apply", "-f", path)
	e.mustSkiff("rollout", "status", "deploy/web", "--timeout", "120s")
	// The old pods finish terminating (their shutdown delay and drain).
	waitFor(t, 60*time.Second, "the old pods gone", func() bool {
		now := labPodStates(t, e)
		for name := range before {
			if _, ok := now[name]; ok {
				return false
			}
		}
		return len(now) == 3
	})
	took := time.Since(start)
	time.Sleep(time.Second)
	ok, fails := stream.end()
	if len(fails) > 0 || ok < 10 {
		t.Errorf("ClusterIP stream across the rolling update: %d rounds of 10 requests ok, %d failed:\n%s", ok, len(fails), failSummary(fails))
	} else {
		t.Logf("rolling update of 3 pods in %v under load: %d rounds of 10 requests, none failed", took.Round(100*time.Millisecond), ok)
	}
}

// Scenario 6: a node cut off the network: its pods are replaced on the
// other nodes within the grace period + 2s and the Endpoints drop them;
// the cut-off node's agent fences (stops its pods) once it has reached
// nobody for the grace period; healed, the node is Ready again and runs
// none of its old pods.
func labNodeLoss(t *testing.T, l *lab.Lab, e *env) {
	before := labPodStates(t, e)
	victim := ""
	for _, s := range before {
		if s.Node != "n1" { // n1 hosts the other scenarios' clients
			victim = s.Node
			break
		}
	}
	if victim == "" {
		t.Fatalf("no web pod off n1: %+v", before)
	}
	m, _ := l.Machine(victim)
	lost := map[string]bool{}
	for name, s := range before {
		if s.Node == victim {
			lost[name] = true
		}
	}
	t.Logf("cutting %s off, with pods %v", victim, lost)
	cut := time.Now()
	if err := l.Cut(victim); err != nil {
		t.Fatal(err)
	}
	healed := false
	t.Cleanup(func() {
		if !healed {
			l.Heal(victim)
		}
	})
	// Replacements Ready elsewhere, the lost pods out of the Endpoints.
	var replaced time.Duration
	waitFor(t, labGrace+30*time.Second, "the lost pods replaced on other nodes", func() bool {
		ready := 0
		for name, s := range labPodStates(t, e) {
			if !lost[name] && s.Node != victim && s.Ready {
				ready++
			}
		}
		if ready >= 3 && replaced == 0 {
			replaced = time.Since(cut)
		}
		return ready >= 3
	})
	var eps struct {
		Subsets []struct {
			Addresses []struct {
				TargetRef struct{ Name string } `json:"targetRef"`
			} `json:"addresses"`
		} `json:"subsets"`
	}
	waitFor(t, 10*time.Second, "the lost pods out of the Endpoints", func() bool {
		if err := json.Unmarshal([]byte(e.mustSkiff("get", "endpoints", "web", "-o", "json")), &eps); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ss := range eps.Subsets {
			for _, a := range ss.Addresses {
				if lost[a.TargetRef.Name] {
					return false
				}
				n++
			}
		}
		return n == 3
	})
	t.Logf("node loss: pods replaced and Ready %v after the cut (grace period %v)", replaced.Round(10*time.Millisecond), labGrace)
	if replaced > labGrace+2*time.Second {
		t.Errorf("replacements Ready %v after the cut, want within the grace period + 2s (%v)", replaced, labGrace+2*time.Second)
	}
	// Fencing: the isolated node stops its pods by itself.
	parent := l.CgroupParent(m)
	waitFor(t, 2*labGrace+15*time.Second, victim+"'s pods stopped by its own agent (fencing)", func() bool {
		return len(labCgroupPIDs(parent)) == 0
	})
	t.Logf("%s fenced: no pod process left %v after the cut", victim, time.Since(cut).Round(100*time.Millisecond))
	if err := l.Heal(victim); err != nil {
		t.Fatal(err)
	}
	healed = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.WaitNodesReady(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// The returning agent finishes the evicted pods (already stopped) and
	// removes them from the API.
	waitFor(t, 30*time.Second, "the lost pods gone from the API after the heal", func() bool {
		for name := range labPodStates(t, e) {
			if lost[name] {
				return false
			}
		}
		return true
	})
	if pids := labCgroupPIDs(parent); len(pids) > 0 {
		t.Errorf("%s runs pod processes %v after the heal; its old pods were replaced", victim, pids)
	}
}

// labCgroupPIDs lists the processes under a node's pods' cgroup parent.
func labCgroupPIDs(parent string) []int { return cgroupProcs(parent) }
