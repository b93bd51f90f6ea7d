package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/nodeagent"
	"github.com/skiffhq/skiff/nodeagent/proxy"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	"github.com/skiffhq/skiff/nodeagent/runtime/fake"
	"github.com/skiffhq/skiff/test/testcluster"
)

const wait = 15 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runningAgent is an agent started by a test; stop ends it and waits.
type runningAgent struct {
	*nodeagent.Agent
	stop func()
}

func startAgent(t *testing.T, c *client.Client, name string, rt runtime.Runtime) *runningAgent {
	t.Helper()
	ag, err := nodeagent.New(nodeagent.Config{
		Client: c, NodeName: name, Runtime: rt,
		Capacity: api.ResourceList{
			api.ResourceCPU:    api.MustParseQuantity("4"),
			api.ResourceMemory: api.MustParseQuantity("16Gi"),
		},
		Labels:          map[string]string{"topology.kubernetes.io/zone": "z1"},
		Addresses:       []api.NodeAddress{{Type: api.NodeInternalIP, Address: "198.18.0.1"}},
		Version:         "test",
		HeartbeatPeriod: 100 * time.Millisecond,
		RelistPeriod:    50 * time.Millisecond,
		ResyncPeriod:    300 * time.Millisecond,
		BackoffMin:      200 * time.Millisecond,
		Logger:          testLogger(t).With("test", t.Name()),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent %s: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("agent %s did not stop within 10s", name)
			}
		})
	}
	t.Cleanup(stop)
	return &runningAgent{Agent: ag, stop: stop}
}

func getNode(t *testing.T, c *client.Client, name string) *api.Node {
	t.Helper()
	o, err := c.Get(context.Background(), api.KindNode, "", name)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Node)
}

func getPod(t *testing.T, c *client.Client, name string) *api.Pod {
	t.Helper()
	o, err := c.Get(context.Background(), api.KindPod, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Pod)
}

func createPod(t *testing.T, c *client.Client, name, node string, mutate ...func(*api.Pod)) *api.Pod {
	t.Helper()
	p := &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
	p.Name, p.Namespace = name, "default"
	p.Spec.NodeName = node
	p.Spec.Containers = []api.Container{{Name: "web", Image: "nginx:1.27"}, {Name: "sidecar", Image: "busybox:1.36", Command: []string{"sleep", "3600"}}}
	for _, m := range mutate {
		m(p)
	}
	o, err := c.Create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Pod)
}

func containerStatus(p *api.Pod, name string) *api.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func condition(p *api.Pod, typ api.PodConditionType) api.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func podReady(p *api.Pod) bool {
	return p.Status.Phase == api.PodRunning && condition(p, api.PodReady) == api.ConditionTrue
}

func waitPod(t *testing.T, c *client.Client, name, what string, cond func(*api.Pod) bool) *api.Pod {
	t.Helper()
	var p *api.Pod
	testcluster.Eventually(t, wait, fmt.Sprintf("pod %s %s", name, what), func() bool {
		o, err := c.Get(context.Background(), api.KindPod, "default", name)
		if err != nil {
			return false
		}
		p = o.(*api.Pod)
		return cond(p)
	})
	return p
}

func nodeReady(n *api.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == api.NodeReady {
			return c.Status == api.ConditionTrue
		}
	}
	return false
}

// A node registers Ready with its capacity, labels and pod CIDR; a pod
// bound to it becomes Running and Ready with an address in that CIDR; once
// deleted, its containers are gone from the runtime.
func TestAgentRegistersAndRunsPods(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{NodeGracePeriod: time.Second})
	rt := fake.New(fake.Options{StartDelay: 20 * time.Millisecond})
	ag := startAgent(t, cl.NodeClient(t, "node-a"), "node-a", rt)

	var n *api.Node
	testcluster.Eventually(t, wait, "node-a registered Ready", func() bool {
		o, err := cl.Admin.Get(context.Background(), api.KindNode, "", "node-a")
		if err != nil {
			return false
		}
		n = o.(*api.Node)
		return nodeReady(n)
	})
	if n.Spec.PodCIDR == "" {
		t.Fatal("the node has no pod CIDR")
	}
	for k, v := range map[string]string{nodeagent.LabelHostname: "node-a", "topology.kubernetes.io/zone": "z1", nodeagent.LabelOS: "linux"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	if n.Status.Capacity.Cpu().MilliValue() != 4000 || n.Status.Allocatable.Pods().Value() != nodeagent.DefaultMaxPods {
		t.Errorf("capacity %v allocatable %v", n.Status.Capacity, n.Status.Allocatable)
	}
	if n.Status.NodeInfo.ContainerRuntimeVersion != "fake://"+fake.Version.Version || n.Status.NodeInfo.KubeletVersion != "test" {
		t.Errorf("nodeInfo = %+v", n.Status.NodeInfo)
	}
	if len(n.Status.Addresses) != 1 || n.Status.Addresses[0].Address != "198.18.0.1" {
		t.Errorf("addresses = %+v", n.Status.Addresses)
	}

	createPod(t, cl.Admin, "web", "node-a")
	p := waitPod(t, cl.Admin, "web", "Running and Ready", podReady)
	cidr := netip.MustParsePrefix(n.Spec.PodCIDR)
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !cidr.Contains(ip) || ip == cidr.Addr() || ip == cidr.Addr().Next() {
		t.Errorf("podIP %q: want a host address of %s past the gateway", p.Status.PodIP, cidr)
	}
	if len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.PodIP || p.Status.HostIP != "198.18.0.1" || p.Status.StartTime == nil {
		t.Errorf("podIPs %v hostIP %q startTime %v", p.Status.PodIPs, p.Status.HostIP, p.Status.StartTime)
	}
	for _, typ := range []api.PodConditionType{api.PodScheduled, api.PodInitialized, api.ContainersReady, api.PodReady} {
		if condition(p, typ) != api.ConditionTrue {
			t.Errorf("condition %s = %q, want True", typ, condition(p, typ))
		}
	}
	if len(p.Status.ContainerStatuses) != 2 {
		t.Fatalf("containerStatuses = %+v", p.Status.ContainerStatuses)
	}
	for i, cs := range p.Status.ContainerStatuses {
		if cs.Name != p.Spec.Containers[i].Name || !cs.Ready || cs.Started == nil || !*cs.Started || cs.State.Running == nil ||
			cs.State.Running.StartedAt == nil || cs.RestartCount != 0 || cs.ContainerID == "" || cs.ImageID == "" {
			t.Errorf("containerStatuses[%d] = %+v", i, cs)
		}
	}
	if got := p.Status.ContainerStatuses[0].Image; got != "docker.io/library/nginx:1.27" {
		t.Errorf("image = %q, want the resolved reference", got)
	}

	// A node only writes what changed: once Ready, relists (every 50ms here)
	// and heartbeats write nothing.
	rv := p.ResourceVersion
	time.Sleep(300 * time.Millisecond)
	if again := getPod(t, cl.Admin, "web"); again.ResourceVersion != rv {
		t.Errorf("a Ready pod was written again (resourceVersion %s -> %s): %+v", rv, again.ResourceVersion, again.Status)
	}
	// Heartbeats keep the node reachable past the 1s grace period.
	if n := getNode(t, cl.Admin, "node-a"); !nodeReady(n) || len(n.Spec.Taints) > 0 {
		t.Errorf("node after the grace period: ready %v, taints %v", nodeReady(n), n.Spec.Taints)
	}

	// A graceful delete marks the pod; the node stops it, then deletes
	// it: the pod leaves the API only after its sandbox and containers.
	del, err := cl.Admin.Delete(context.Background(), api.KindPod, "default", "web", client.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if del.GetObjectMeta().DeletionTimestamp == nil {
		t.Fatal("a running pod was removed at once, not marked for a graceful delete")
	}
	testcluster.Eventually(t, wait, "the deleted pod gone from the API", func() bool {
		_, err := cl.Admin.Get(context.Background(), api.KindPod, "default", "web")
		if !client.IsNotFound(err) {
			return false
		}
		sb, cs := rt.Counts()
		if sb != 0 || cs != 0 {
			t.Fatalf("the pod left the API while the runtime still had %d sandboxes and %d containers", sb, cs)
		}
		return true
	})
	_ = ag
}

// A pod the scheduler places (no nodeName in its spec) runs too.
func TestAgentRunsScheduledPod(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	startAgent(t, cl.NodeClient(t, "node-s"), "node-s", fake.New(fake.Options{}))
	testcluster.Eventually(t, wait, "node-s Ready", func() bool {
		o, err := cl.Admin.Get(context.Background(), api.KindNode, "", "node-s")
		return err == nil && nodeReady(o.(*api.Node))
	})
	createPod(t, cl.Admin, "scheduled", "")
	p := waitPod(t, cl.Admin, "scheduled", "Running and Ready", podReady)
	if p.Spec.NodeName != "node-s" {
		t.Errorf("nodeName = %q", p.Spec.NodeName)
	}
}

// An agent restarted on the same runtime adopts the running containers:
// same container IDs, same start times, same pod IP, restartCount 0, and
// no status write. A sandbox that no pod claims is removed.
func TestAgentRestartAdoptsContainers(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	rt := fake.New(fake.Options{})
	nc := cl.NodeClient(t, "node-r")
	first := startAgent(t, nc, "node-r", rt)
	createPod(t, cl.Admin, "kept", "node-r")
	createPod(t, cl.Admin, "other", "node-r")
	before := waitPod(t, cl.Admin, "kept", "Ready", podReady)
	waitPod(t, cl.Admin, "other", "Ready", podReady)
	first.stop()
	ctx := context.Background()
	ids := func() map[runtime.ContainerID]time.Time {
		cs, _ := rt.ListContainers(ctx, "")
		out := map[runtime.ContainerID]time.Time{}
		for _, c := range cs {
			st, _ := rt.ContainerStatus(ctx, c.ID)
			out[c.ID] = st.StartedAt
		}
		return out
	}
	running := ids()
	if len(running) != 4 {
		t.Fatalf("%d containers in the runtime, want 4", len(running))
	}

	// While the agent is down: a pod goes away, and a stray sandbox appears.
	if _, err := cl.Admin.Delete(ctx, api.KindPod, "default", "other", client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	stray, err := rt.RunSandbox(ctx, runtime.SandboxConfig{Pod: runtime.PodMeta{Name: "stray", Namespace: "default", UID: "no-such-pod"}})
	if err != nil {
		t.Fatal(err)
	}

	startAgent(t, nc, "node-r", rt)
	testcluster.Eventually(t, wait, "the deleted pod and the stray sandbox removed", func() bool {
		sb, cs := rt.Counts()
		_, err := rt.SandboxStatus(ctx, stray)
		return sb == 1 && cs == 2 && errors.Is(err, runtime.ErrNotFound)
	})
	time.Sleep(200 * time.Millisecond) // relists and syncs of the adopted pod
	after := getPod(t, cl.Admin, "kept")
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the adopted pod's status was rewritten:\nbefore %+v\nafter  %+v", before.Status, after.Status)
	}
	for id, started := range ids() {
		if was, ok := running[id]; !ok || !was.Equal(started) {
			t.Errorf("container %s was (re)started by the new agent", id)
		}
	}
	for _, cs := range after.Status.ContainerStatuses {
		if cs.RestartCount != 0 {
			t.Errorf("container %s restartCount %d", cs.Name, cs.RestartCount)
		}
	}

	// The adopted pod is still driven: deleting it removes it.
	if _, err := cl.Admin.Delete(ctx, api.KindPod, "default", "kept", client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, wait, "the adopted pod removed", func() bool {
		sb, cs := rt.Counts()
		return sb == 0 && cs == 0
	})
}

// A container that exits is restarted (the first time at once), with
// restartCount and lastState showing the crash.
func TestAgentRestartsExitedContainer(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	rt := fake.New(fake.Options{})
	startAgent(t, cl.NodeClient(t, "node-c"), "node-c", rt)
	createPod(t, cl.Admin, "crashy", "node-c")
	p := waitPod(t, cl.Admin, "crashy", "Ready", podReady)
	id := runtime.ContainerID(p.Status.ContainerStatuses[0].ContainerID[len("fake://"):])
	if err := rt.Exit(id, 2); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cl.Admin, "crashy", "restarted", func(p *api.Pod) bool {
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount == 1 && cs.State.Running != nil && podReady(p)
	})
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 2 || last.Reason != "Error" {
		t.Errorf("lastState = %+v, want terminated with exit code 2", p.Status.ContainerStatuses[0].LastTerminationState)
	}
}

// A pod whose containers exit with restartPolicy Never ends Succeeded or
// Failed, and stays so.
func TestAgentRestartPolicyNever(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	startAgent(t, cl.NodeClient(t, "node-n"), "node-n", fake.New(fake.Options{}))
	for name, code := range map[string]int{"job-ok": 0, "job-bad": 3} {
		createPod(t, cl.Admin, name, "node-n", func(p *api.Pod) {
			p.Spec.RestartPolicy = api.RestartPolicyNever
			p.Spec.Containers = []api.Container{{Name: "job", Image: "busybox:1.36", Command: []string{"sh", "-c", fmt.Sprintf("exit %d", code)}}}
		})
	}
	ok := waitPod(t, cl.Admin, "job-ok", "Succeeded", func(p *api.Pod) bool { return p.Status.Phase == api.PodSucceeded })
	bad := waitPod(t, cl.Admin, "job-bad", "Failed", func(p *api.Pod) bool { return p.Status.Phase == api.PodFailed })
	if term := bad.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 {
		t.Errorf("job-bad state %+v", bad.Status.ContainerStatuses[0].State)
	}
	if condition(ok, api.PodReady) != api.ConditionFalse {
		t.Errorf("a succeeded pod is Ready")
	}
}

// An image that cannot be pulled shows ErrImagePull; once pulls work the
// retry runs the pod.
func TestAgentImagePullFailureIsRetried(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	rt := fake.New(fake.Options{})
	broken := errors.New("registry unreachable")
	rt.SetFail(func(op fake.Op, subject string) error {
		if op == fake.OpEnsureImage && subject == "nginx:1.27" {
			return broken
		}
		return nil
	})
	startAgent(t, cl.NodeClient(t, "node-i"), "node-i", rt)
	createPod(t, cl.Admin, "pull", "node-i")
	p := waitPod(t, cl.Admin, "pull", "waiting with ErrImagePull", func(p *api.Pod) bool {
		return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ErrImagePull"
	})
	if p.Status.Phase != api.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
	// Retries back off: the pod shows ImagePullBackOff between pulls.
	waitPod(t, cl.Admin, "pull", "waiting with ImagePullBackOff", func(p *api.Pod) bool {
		cs := containerStatus(p, "web")
		if cs == nil {
			return false
		}
		w := cs.State.Waiting
		return w != nil && w.Reason == "ImagePullBackOff" && strings.Contains(w.Message, "registry unreachable")
	})
	rt.SetFail(nil)
	waitPod(t, cl.Admin, "pull", "Ready once pulls work", podReady)
}

// A container that cannot start (its executable does not exist) backs off
// like a crash: CrashLoopBackOff with the runtime's error, restarts
// counted, and it runs once the cause is gone.
func TestAgentStartFailureBacksOff(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	rt := fake.New(fake.Options{})
	rt.SetFail(func(op fake.Op, subject string) error {
		if op == fake.OpStartContainer && subject == "web" {
			return errors.New(`exec: "no-such-binary": executable file not found in $PATH`)
		}
		return nil
	})
	startAgent(t, cl.NodeClient(t, "node-x"), "node-x", rt)
	createPod(t, cl.Admin, "nostart", "node-x")
	p := waitPod(t, cl.Admin, "nostart", "in CrashLoopBackOff after two failed starts", func(p *api.Pod) bool {
		cs := containerStatus(p, "web")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && cs.RestartCount >= 1
	})
	if msg := containerStatus(p, "web").State.Waiting.Message; !strings.Contains(msg, "executable file not found") {
		t.Errorf("CrashLoopBackOff message %q does not carry the runtime's error", msg)
	}
	rt.SetFail(nil)
	waitPod(t, cl.Admin, "nostart", "Ready once it can start", podReady)
}

// Re-registering an existing node keeps what others set on it and updates
// the agent's own labels and status.
func TestAgentRegistersOverExistingNode(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	n := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Node"}}
	n.Name = "node-e"
	n.Labels = map[string]string{"team": "infra", "topology.kubernetes.io/zone": "old"}
	if _, err := cl.Admin.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cl.NodeClient(t, "node-e"), "node-e", fake.New(fake.Options{}))
	testcluster.Eventually(t, wait, "node-e Ready", func() bool {
		o, err := cl.Admin.Get(context.Background(), api.KindNode, "", "node-e")
		return err == nil && nodeReady(o.(*api.Node))
	})
	got := getNode(t, cl.Admin, "node-e")
	if got.Labels["team"] != "infra" || got.Labels["topology.kubernetes.io/zone"] != "z1" || got.Labels[nodeagent.LabelHostname] != "node-e" {
		t.Errorf("labels = %v", got.Labels)
	}
}

// A sandbox removed behind the agent's back (its namespace gone) is
// replaced: the pod comes back Ready in a new sandbox.
func TestAgentReplacesVanishedSandbox(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	rt := fake.New(fake.Options{})
	startAgent(t, cl.NodeClient(t, "node-v"), "node-v", rt)
	createPod(t, cl.Admin, "phoenix", "node-v")
	before := waitPod(t, cl.Admin, "phoenix", "Ready", podReady)
	ctx := context.Background()
	sbs, _ := rt.ListSandboxes(ctx)
	if len(sbs) != 1 {
		t.Fatalf("%d sandboxes, want 1", len(sbs))
	}
	if err := rt.RemoveSandbox(ctx, sbs[0].ID); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cl.Admin, "phoenix", "Ready in a new sandbox", func(p *api.Pod) bool {
		return podReady(p) && p.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID
	})
	sbs, _ = rt.ListSandboxes(ctx)
	if len(sbs) != 1 || sbs[0].Pod.Attempt != 1 {
		t.Errorf("sandboxes after the replacement: %+v, want one, attempt 1", sbs)
	}
}

// A node that gets no pod CIDR (the cluster CIDR is full) reports
// Ready=False with NetworkNotReady, so nothing is placed on it.
func TestAgentWithoutPodCIDRIsNotReady(t *testing.T) {
	plan := store.DefaultNetwork
	plan.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/23") // room for two /24s
	cl := testcluster.Start(t, testcluster.Options{Network: plan})
	for _, name := range []string{"first", "second"} {
		startAgent(t, cl.NodeClient(t, name), name, fake.New(fake.Options{}))
		testcluster.Eventually(t, wait, name+" Ready with a pod CIDR", func() bool {
			n, err := cl.Admin.Get(context.Background(), api.KindNode, "", name)
			return err == nil && nodeReady(n.(*api.Node)) && n.(*api.Node).Spec.PodCIDR != ""
		})
	}
	startAgent(t, cl.NodeClient(t, "third"), "third", fake.New(fake.Options{}))
	testcluster.Eventually(t, wait, "third NotReady: NetworkNotReady", func() bool {
		o, err := cl.Admin.Get(context.Background(), api.KindNode, "", "third")
		if err != nil {
			return false
		}
		for _, c := range o.(*api.Node).Status.Conditions {
			if c.Type == api.NodeReady {
				return c.Status == api.ConditionFalse && c.Reason == "NetworkNotReady"
			}
		}
		return false
	})
}

// Probes drive the pod: a failing readiness probe keeps it not Ready, a
// passing one makes it Ready; a failing liveness probe restarts the
// container.
func TestAgentProbes(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	startAgent(t, cl.NodeClient(t, "node-p"), "node-p", fake.New(fake.Options{}))
	execProbe := func(cmd ...string) *api.Probe {
		return &api.Probe{ProbeHandler: api.ProbeHandler{Exec: &api.ExecAction{Command: cmd}},
			PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	}
	createPod(t, cl.Admin, "unready", "node-p", func(p *api.Pod) {
		p.Spec.Containers = p.Spec.Containers[:1]
		p.Spec.Containers[0].ReadinessProbe = execProbe("false")
	})
	createPod(t, cl.Admin, "ready", "node-p", func(p *api.Pod) {
		p.Spec.Containers = p.Spec.Containers[:1]
		p.Spec.Containers[0].ReadinessProbe = execProbe("true")
	})
	createPod(t, cl.Admin, "dead", "node-p", func(p *api.Pod) {
		p.Spec.Containers = p.Spec.Containers[:1]
		p.Spec.Containers[0].LivenessProbe = execProbe("false")
	})
	waitPod(t, cl.Admin, "ready", "Ready by its probe", podReady)
	waitPod(t, cl.Admin, "dead", "restarted by its liveness probe", func(p *api.Pod) bool {
		cs := containerStatus(p, "web")
		return cs != nil && cs.RestartCount >= 1
	})
	p := waitPod(t, cl.Admin, "unready", "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	time.Sleep(1500 * time.Millisecond) // a probe period or more
	p = getPod(t, cl.Admin, "unready")
	if podReady(p) || containerStatus(p, "web").Ready {
		t.Errorf("pod whose readiness probe fails is Ready: %+v", p.Status)
	}
}

// recordingProxy keeps the services it was given, whole or by update.
type recordingProxy struct {
	mu         sync.Mutex
	last       map[string]int // service namespace/name -> endpoint addresses
	syncs      int
	updates    int
	failUpdate bool // the next Update fails
}

func (p *recordingProxy) Sync(_ context.Context, svcs []*api.Service, eps []*api.Endpoints) error {
	addrs := map[string]int{}
	for _, e := range eps {
		for _, ss := range e.Subsets {
			addrs[e.Namespace+"/"+e.Name] += len(ss.Addresses)
		}
	}
	out := map[string]int{}
	for _, s := range svcs {
		out[s.Namespace+"/"+s.Name] = addrs[s.Namespace+"/"+s.Name]
	}
	p.mu.Lock()
	p.last = out
	p.syncs++
	p.mu.Unlock()
	return nil
}

func (p *recordingProxy) Update(_ context.Context, updates []proxy.ServiceUpdate) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failUpdate {
		p.failUpdate = false
		return errors.New("injected update failure")
	}
	p.updates++
	for _, u := range updates {
		key := u.Namespace + "/" + u.Name
		if u.Service == nil {
			delete(p.last, key)
			continue
		}
		n := 0
		if u.Endpoints != nil {
			for _, ss := range u.Endpoints.Subsets {
				n += len(ss.Addresses)
			}
		}
		p.last[key] = n
	}
	return nil
}

func (p *recordingProxy) counts() (syncs, updates int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.syncs, p.updates
}

func (p *recordingProxy) failNextUpdate() {
	p.mu.Lock()
	p.failUpdate = true
	p.mu.Unlock()
}

func (p *recordingProxy) get() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.last)
}

// The agent keeps its service proxy programmed with every Service and its
// ready endpoints: the whole set once listed, then the changed services;
// after a failed update, the whole set again.
func TestAgentProgramsServiceProxy(t *testing.T) {
	cl := testcluster.Start(t, testcluster.Options{})
	px := &recordingProxy{}
	ag, err := nodeagent.New(nodeagent.Config{
		Client: cl.NodeClient(t, "node-s"), NodeName: "node-s", Runtime: fake.New(fake.Options{}),
		Proxy: px, HeartbeatPeriod: 100 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	createPod(t, cl.Admin, "backend", "node-s", func(p *api.Pod) {
		p.Labels = map[string]string{"app": "be"}
		p.Spec.Containers = p.Spec.Containers[:1]
	})
	svc := &api.Service{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Service"}}
	svc.Name, svc.Namespace = "be", "default"
	svc.Spec.Selector = map[string]string{"app": "be"}
	svc.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromInt32(8080), Protocol: api.ProtocolTCP}}
	if _, err := cl.Admin.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, wait, "the proxy has the service with its ready backend", func() bool {
		return px.get()["default/be"] == 1
	})
	syncs, updates := px.counts()
	if syncs < 1 || updates < 1 {
		t.Errorf("after the first service: %d whole-set syncs, %d updates; want >= 1 of each", syncs, updates)
	}

	// A failed update is followed by the whole set.
	px.failNextUpdate()
	svc2 := &api.Service{TypeMeta: svc.TypeMeta, Spec: api.ServiceSpec{Selector: svc.Spec.Selector, Ports: svc.Spec.Ports}}
	svc2.Name, svc2.Namespace = "be2", "default"
	if _, err := cl.Admin.Create(context.Background(), svc2); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, wait, "the second service programmed after the failed update", func() bool {
		s, _ := px.counts()
		return px.get()["default/be2"] == 1 && s > syncs
	})

	if _, err := cl.Admin.Delete(context.Background(), api.KindService, "default", "be", client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, wait, "the deleted service gone from the proxy", func() bool {
		_, ok := px.get()["default/be"]
		return !ok
	})
}
