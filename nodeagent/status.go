package nodeagent

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Container waiting reasons, as the kubelet shows them.
const (
	reasonContainerCreating = "ContainerCreating"
	reasonErrImagePull      = "ErrImagePull"
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonErrImageNeverPull = "ErrImageNeverPull"
	reasonCreateError       = "CreateContainerError"
	reasonRunError          = "RunContainerError"
	reasonCrashLoopBackOff  = "CrashLoopBackOff"
	reasonNotReady          = "ContainersNotReady"
	reasonPodCompleted      = "PodCompleted"
)

// observation is what a sync saw of a pod on the node: the input of
// podStatus.
type observation struct {
	now        time.Time
	hostIP     string
	podIP      netip.Addr
	runtime    string // runtime name: container IDs are <runtime>://<id>
	containers map[string]containerObs
}

// containerObs is one spec container as observed: its newest runtime
// container (cur), the one before (prev, for lastState), and why it is not
// running when the agent knows (waiting).
type containerObs struct {
	cur, prev *runtime.ContainerStatus
	waiting   *waitReason
	// restarts counts failed starts of a container that has none in the
	// runtime (it never ran).
	restarts int32
	// ready and started are the probes' verdicts on cur while it runs.
	ready, started bool
}

// podStatus computes the status a pod should show. It is pure: the same
// pod and observation give the same status, so an unchanged pod is never
// written again. Conditions keep their transition time while their status
// holds; other writers' conditions are kept.
func podStatus(pod *api.Pod, obs observation) api.PodStatus {
	old := pod.Status
	st := api.PodStatus{
		Message:   old.Message,
		Reason:    old.Reason,
		HostIP:    obs.hostIP,
		StartTime: old.StartTime,
	}
	if st.StartTime == nil {
		st.StartTime = api.NewTime(obs.now)
	}
	if obs.podIP.IsValid() {
		st.PodIP = obs.podIP.String()
		st.PodIPs = []api.PodIP{{IP: st.PodIP}}
	}

	var running, waiting, stopped, succeeded int
	var unready []string
	for _, c := range pod.Spec.Containers {
		cs := containerStatus(c, obs.containers[c.Name], obs.runtime)
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			stopped++ // restarting
		default:
			waiting++
		}
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}

	switch {
	case old.Phase == api.PodSucceeded || old.Phase == api.PodFailed:
		st.Phase = old.Phase // terminal phases are final
	case waiting > 0:
		st.Phase = api.PodPending
	case running > 0:
		st.Phase = api.PodRunning
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case api.RestartPolicyNever:
			st.Phase = api.PodFailed
			if stopped == succeeded {
				st.Phase = api.PodSucceeded
			}
		case api.RestartPolicyOnFailure:
			st.Phase = api.PodRunning
			if stopped == succeeded {
				st.Phase = api.PodSucceeded
			}
		default:
			st.Phase = api.PodRunning
		}
	default:
		st.Phase = api.PodPending
	}

	ready := api.PodCondition{Status: api.ConditionTrue}
	switch {
	case st.Phase == api.PodSucceeded || st.Phase == api.PodFailed:
		ready = api.PodCondition{Status: api.ConditionFalse, Reason: reasonPodCompleted}
	case len(unready) > 0:
		ready = api.PodCondition{Status: api.ConditionFalse, Reason: reasonNotReady,
			Message: "containers with unready status: [" + strings.Join(unready, " ") + "]"}
	}
	now := api.NewTime(obs.now)
	mine := []api.PodCondition{
		{Type: api.PodScheduled, Status: api.ConditionTrue},
		{Type: api.PodInitialized, Status: api.ConditionTrue},
		{Type: api.ContainersReady, Status: ready.Status, Reason: ready.Reason, Message: ready.Message},
		{Type: api.PodReady, Status: ready.Status, Reason: ready.Reason, Message: ready.Message},
	}
	prev := map[api.PodConditionType]api.PodCondition{}
	for _, c := range old.Conditions {
		prev[c.Type] = c
	}
	for _, c := range mine {
		if p, ok := prev[c.Type]; ok && p.Status == c.Status {
			c.LastTransitionTime = p.LastTransitionTime
			c.LastProbeTime = p.LastProbeTime
		} else {
			c.LastTransitionTime = now
		}
		if c.Type == api.PodScheduled {
			if p, ok := prev[c.Type]; ok && p.Status == api.ConditionTrue {
				c = p // the scheduler's, as it wrote it
			}
		}
		st.Conditions = append(st.Conditions, c)
		delete(prev, c.Type)
	}
	var others []api.PodCondition
	for _, c := range prev {
		others = append(others, c)
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Type < others[j].Type })
	st.Conditions = append(st.Conditions, others...)
	return st
}

func containerStatus(c api.Container, o containerObs, rt string) api.ContainerStatus {
	cs := api.ContainerStatus{Name: c.Name, Image: c.Image}
	started := false
	cs.Started = &started
	if o.prev != nil && o.prev.State == runtime.ContainerExited {
		cs.LastTerminationState = api.ContainerState{Terminated: terminated(o.prev)}
	}
	cur := o.cur
	if cur == nil {
		w := waitReason{reason: reasonContainerCreating}
		if o.waiting != nil {
			w = *o.waiting
		}
		cs.State = api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: w.reason, Message: w.message}}
		cs.RestartCount = o.restarts
		return cs
	}
	cs.Image = cur.Image.Ref
	cs.ImageID = string(cur.Image.ID)
	cs.ContainerID = rt + "://" + string(cur.ID)
	cs.RestartCount = int32(cur.Meta.Attempt)
	switch cur.State {
	case runtime.ContainerRunning:
		started = o.started
		cs.Ready = o.ready
		cs.State = api.ContainerState{Running: &api.ContainerStateRunning{StartedAt: api.NewTime(cur.StartedAt)}}
	case runtime.ContainerExited:
		if o.waiting != nil && o.waiting.reason == reasonCrashLoopBackOff {
			cs.LastTerminationState = api.ContainerState{Terminated: terminated(cur)}
			cs.State = api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: o.waiting.reason, Message: o.waiting.message}}
			break
		}
		cs.State = api.ContainerState{Terminated: terminated(cur)}
	default:
		w := waitReason{reason: reasonContainerCreating}
		if o.waiting != nil {
			w = *o.waiting
		}
		cs.State = api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: w.reason, Message: w.message}}
	}
	return cs
}

func terminated(c *runtime.ContainerStatus) *api.ContainerStateTerminated {
	return &api.ContainerStateTerminated{ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message,
		StartedAt: timeOrNil(c.StartedAt), FinishedAt: timeOrNil(c.FinishedAt)}
}

func timeOrNil(t time.Time) *api.Time {
	if t.IsZero() {
		return nil
	}
	return api.NewTime(t)
}

// statusEqual compares two statuses as they are written on the wire (times
// at second precision), which is what an update would change.
func statusEqual(a, b api.PodStatus) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
