package nodeagent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

var (
	t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
)

func testPod(policy api.RestartPolicy, names ...string) *api.Pod {
	p := &api.Pod{}
	p.Name, p.Namespace, p.UID = "p", "default", "uid-p"
	p.Spec.RestartPolicy = policy
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, api.Container{Name: n, Image: n + ":1"})
	}
	return p
}

func ctr(name string, attempt uint32, state runtime.ContainerState, exit int32) *runtime.ContainerStatus {
	st := &runtime.ContainerStatus{Container: runtime.Container{
		ID: runtime.ContainerID(name + "-id"), Meta: runtime.ContainerMeta{Name: name, Attempt: attempt}, State: state,
		Image: runtime.Image{Ref: "docker.io/library/" + name + ":1", ID: "sha256:" + runtime.ImageID(name)},
	}}
	if state != runtime.ContainerCreated {
		st.StartedAt = t0
	}
	if state == runtime.ContainerExited {
		st.FinishedAt, st.ExitCode, st.Reason = t1, exit, "Completed"
		if exit != 0 {
			st.Reason = "Error"
		}
	}
	return st
}

func obsOf(cs map[string]containerObs) observation {
	return observation{now: t1, hostIP: "198.18.0.1", podIP: netip.MustParseAddr("10.244.0.2"), runtime: "fake", containers: cs}
}

func cond(st api.PodStatus, typ api.PodConditionType) api.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return api.PodCondition{}
}

func TestPodStatusPhases(t *testing.T) {
	crashLoop := &waitReason{reason: reasonCrashLoopBackOff, message: "back-off 10s"}
	pull := &waitReason{reason: reasonErrImagePull, message: "registry unreachable"}
	for _, tc := range []struct {
		name      string
		policy    api.RestartPolicy
		obs       map[string]containerObs
		phase     api.PodPhase
		ready     api.ConditionStatus
		waitingOf string // container "a"'s waiting reason, if any
	}{
		{"nothing created yet", api.RestartPolicyAlways, nil, api.PodPending, api.ConditionFalse, reasonContainerCreating},
		{"image pull failing", api.RestartPolicyAlways, map[string]containerObs{"a": {waiting: pull}}, api.PodPending, api.ConditionFalse, reasonErrImagePull},
		{"one running, one created", api.RestartPolicyAlways, map[string]containerObs{
			"a": {cur: ctr("a", 0, runtime.ContainerCreated, 0)}, "b": {ready: true, started: true, cur: ctr("b", 0, runtime.ContainerRunning, 0)}},
			api.PodPending, api.ConditionFalse, reasonContainerCreating},
		{"all running", api.RestartPolicyAlways, map[string]containerObs{
			"a": {ready: true, started: true, cur: ctr("a", 0, runtime.ContainerRunning, 0)}, "b": {ready: true, started: true, cur: ctr("b", 0, runtime.ContainerRunning, 0)}},
			api.PodRunning, api.ConditionTrue, ""},
		{"running, one not ready (its readiness probe)", api.RestartPolicyAlways, map[string]containerObs{
			"a": {started: true, cur: ctr("a", 0, runtime.ContainerRunning, 0)}, "b": {ready: true, started: true, cur: ctr("b", 0, runtime.ContainerRunning, 0)}},
			api.PodRunning, api.ConditionFalse, ""},
		{"crash looping", api.RestartPolicyAlways, map[string]containerObs{
			"a": {cur: ctr("a", 3, runtime.ContainerExited, 1), waiting: crashLoop}, "b": {ready: true, started: true, cur: ctr("b", 0, runtime.ContainerRunning, 0)}},
			api.PodRunning, api.ConditionFalse, reasonCrashLoopBackOff},
		{"never: all succeeded", api.RestartPolicyNever, map[string]containerObs{
			"a": {cur: ctr("a", 0, runtime.ContainerExited, 0)}, "b": {cur: ctr("b", 0, runtime.ContainerExited, 0)}},
			api.PodSucceeded, api.ConditionFalse, ""},
		{"never: one failed", api.RestartPolicyNever, map[string]containerObs{
			"a": {cur: ctr("a", 0, runtime.ContainerExited, 0)}, "b": {cur: ctr("b", 0, runtime.ContainerExited, 2)}},
			api.PodFailed, api.ConditionFalse, ""},
		{"on failure: one still running", api.RestartPolicyOnFailure, map[string]containerObs{
			"a": {cur: ctr("a", 0, runtime.ContainerExited, 0)}, "b": {ready: true, started: true, cur: ctr("b", 0, runtime.ContainerRunning, 0)}},
			api.PodRunning, api.ConditionFalse, ""},
		{"on failure: all succeeded", api.RestartPolicyOnFailure, map[string]containerObs{
			"a": {cur: ctr("a", 0, runtime.ContainerExited, 0)}, "b": {cur: ctr("b", 0, runtime.ContainerExited, 0)}},
			api.PodSucceeded, api.ConditionFalse, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := podStatus(testPod(tc.policy, "a", "b"), obsOf(tc.obs))
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if got := cond(st, api.PodReady).Status; got != tc.ready {
				t.Errorf("Ready %s, want %s", got, tc.ready)
			}
			if cond(st, api.ContainersReady).Status != tc.ready {
				t.Errorf("ContainersReady differs from Ready")
			}
			w := st.ContainerStatuses[0].State.Waiting
			switch {
			case tc.waitingOf == "" && w != nil:
				t.Errorf("container a waits (%s), want not waiting", w.Reason)
			case tc.waitingOf != "" && (w == nil || w.Reason != tc.waitingOf):
				t.Errorf("container a state %+v, want waiting %s", st.ContainerStatuses[0].State, tc.waitingOf)
			}
			if st.PodIP != "10.244.0.2" || st.HostIP != "198.18.0.1" || !st.StartTime.Equal(t1) {
				t.Errorf("podIP %q hostIP %q startTime %v", st.PodIP, st.HostIP, st.StartTime)
			}
		})
	}
}

func TestPodStatusContainerDetails(t *testing.T) {
	prev := ctr("a", 1, runtime.ContainerExited, 137)
	st := podStatus(testPod(api.RestartPolicyAlways, "a"), obsOf(map[string]containerObs{
		"a": {ready: true, started: true, cur: ctr("a", 2, runtime.ContainerRunning, 0), prev: prev}}))
	cs := st.ContainerStatuses[0]
	if cs.ContainerID != "fake://a-id" || cs.RestartCount != 2 || cs.Image != "docker.io/library/a:1" || cs.ImageID != "sha256:a" ||
		!cs.Ready || cs.Started == nil || !*cs.Started || !cs.State.Running.StartedAt.Equal(t0) {
		t.Errorf("container status %+v", cs)
	}
	if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 137 || !last.FinishedAt.Equal(t1) {
		t.Errorf("lastState %+v, want the previous attempt's exit", cs.LastTerminationState)
	}
}

// A status computed twice from the same observation is equal (no write),
// and conditions keep their transition time while their status holds.
func TestPodStatusIsStable(t *testing.T) {
	pod := testPod(api.RestartPolicyAlways, "a")
	scheduledAt := api.NewTime(t0.Add(-time.Hour))
	pod.Status.Conditions = []api.PodCondition{
		{Type: api.PodScheduled, Status: api.ConditionTrue, LastTransitionTime: scheduledAt},
		{Type: "example.com/Custom", Status: api.ConditionTrue},
	}
	obs := obsOf(map[string]containerObs{"a": {ready: true, started: true, cur: ctr("a", 0, runtime.ContainerRunning, 0)}})
	first := podStatus(pod, obs)
	if c := cond(first, api.PodScheduled); !c.LastTransitionTime.Equal(scheduledAt.Time) {
		t.Errorf("PodScheduled transition %v, want the scheduler's %v", c.LastTransitionTime, scheduledAt)
	}
	if cond(first, "example.com/Custom").Status != api.ConditionTrue {
		t.Error("another writer's condition was dropped")
	}
	pod.Status = first
	obs.now = t1.Add(time.Hour)
	second := podStatus(pod, obs)
	if !statusEqual(first, second) {
		t.Errorf("the same observation an hour later changed the status:\n%+v\n%+v", first, second)
	}
	// Ready flips: only its conditions get a new transition time.
	obs.containers["a"] = containerObs{cur: ctr("a", 0, runtime.ContainerExited, 1), waiting: &waitReason{reason: reasonCrashLoopBackOff}}
	third := podStatus(pod, obs)
	if c := cond(third, api.PodReady); c.Status != api.ConditionFalse || !c.LastTransitionTime.Equal(obs.now.Truncate(time.Second)) {
		t.Errorf("Ready after the crash: %+v", c)
	}
	if c := cond(third, api.PodInitialized); !c.LastTransitionTime.Equal(cond(first, api.PodInitialized).LastTransitionTime.Time) {
		t.Errorf("Initialized moved: %+v", c)
	}
	// Terminal phases stay.
	pod.Status.Phase = api.PodSucceeded
	if st := podStatus(pod, obs); st.Phase != api.PodSucceeded {
		t.Errorf("phase after Succeeded: %s", st.Phase)
	}
}
