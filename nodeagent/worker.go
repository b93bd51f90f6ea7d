package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/network"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Restart back-off of crashing containers, as the kubelet's: the first
// restart is immediate, then 10s doubling to 5m; a container that ran for
// 10 minutes starts over.
const (
	DefaultBackoffMin = 10 * time.Second
	DefaultBackoffMax = 5 * time.Minute
	crashBackoffReset = 10 * time.Minute
	defaultGrace      = 30 * time.Second
	statusRetries     = 5
)

// syncPod moves a pod one pass forward — sandbox, network, images,
// containers — then reports its status if it changed. Each step looks at
// what exists first, so a pass after a failure, a restart or an adoption
// only does what is missing. It returns when the pod wants another look
// without any event (a container's restart back-off ending), and the
// first error, for a retry with back-off.
func (a *Agent) syncPod(ctx context.Context, ps *podState, pod *api.Pod) (time.Duration, error) {
	if ps.meta.UID == "" {
		ps.meta = runtime.PodMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID}
	}
	if err := a.removeStale(ctx, ps, pod); err != nil {
		return 0, err
	}
	if err := a.ensureSandbox(ctx, ps, pod); err != nil {
		return 0, err
	}
	if err := a.attach(ctx, ps, pod); err != nil {
		return 0, err
	}
	wake, obs, err := a.ensureContainers(ctx, ps, pod)
	a.probe(ps, pod, obs)
	if werr := a.writeStatus(ctx, ps, pod, obs); werr != nil && err == nil {
		err = werr
	}
	return wake, err
}

// ensureSandbox makes sure the pod has a ready sandbox: it creates one,
// or replaces one that died (with the next attempt number).
func (a *Agent) ensureSandbox(ctx context.Context, ps *podState, pod *api.Pod) error {
	if ps.sandbox != "" {
		sb, err := a.rt.SandboxStatus(ctx, ps.sandbox)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			a.log.Warn("sandbox vanished; creating another", "pod", podName(ps, pod), "sandbox", ps.sandbox)
			a.detach(ctx, ps, ps.sandbox)
			ps.sandbox, ps.attached, ps.ip = "", false, netip.Addr{}
			ps.meta.Attempt++
		case err != nil:
			return fmt.Errorf("sandbox status: %w", err)
		case sb.State != runtime.SandboxReady:
			a.log.Warn("sandbox not ready; replacing it", "pod", podName(ps, pod), "sandbox", ps.sandbox)
			if err := a.removeSandbox(ctx, ps, ps.sandbox, graceOf(pod)); err != nil {
				return err
			}
			ps.sandbox, ps.attached, ps.ip = "", false, netip.Addr{}
			ps.meta.Attempt++
		default:
			ps.netns = sb.NetNS
			return nil
		}
	}
	id, err := a.rt.RunSandbox(ctx, runtime.SandboxConfig{Pod: ps.meta, Hostname: pod.Name})
	if err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	ps.sandbox = id
	sb, err := a.rt.SandboxStatus(ctx, id)
	if err != nil {
		return fmt.Errorf("sandbox status: %w", err)
	}
	ps.netns = sb.NetNS
	return nil
}

// ensureContainers starts what is missing, restarts what exited (within
// the restart policy and its back-off) and reports what it observed.
func (a *Agent) ensureContainers(ctx context.Context, ps *podState, pod *api.Pod) (time.Duration, observation, error) {
	obs := observation{now: a.clock.Now(), hostIP: a.hostIP, podIP: ps.ip, runtime: a.rtName,
		containers: make(map[string]containerObs, len(pod.Spec.Containers))}
	list, err := a.rt.ListContainers(ctx, ps.sandbox)
	if err != nil {
		return 0, obs, fmt.Errorf("list containers: %w", err)
	}
	// Per name: the newest attempt and the one before; older ones go.
	newest := map[string]*runtime.Container{}
	before := map[string]*runtime.Container{}
	var extra []runtime.ContainerID
	for i := range list {
		c := &list[i]
		n := newest[c.Meta.Name]
		switch {
		case n == nil:
			newest[c.Meta.Name] = c
		case c.Meta.Attempt > n.Meta.Attempt:
			if b := before[c.Meta.Name]; b != nil {
				extra = append(extra, b.ID)
			}
			before[c.Meta.Name], newest[c.Meta.Name] = n, c
		case before[c.Meta.Name] == nil || c.Meta.Attempt > before[c.Meta.Name].Meta.Attempt:
			if b := before[c.Meta.Name]; b != nil {
				extra = append(extra, b.ID)
			}
			before[c.Meta.Name] = c
		default:
			extra = append(extra, c.ID)
		}
	}
	for _, id := range extra {
		if err := a.rt.RemoveContainer(ctx, id); err != nil {
			a.log.Warn("remove an old container", "pod", podName(ps, pod), "container", id, "err", err)
		}
	}

	var wake time.Duration
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, spec := range pod.Spec.Containers {
		cur := newest[spec.Name]
		var id runtime.ContainerID
		switch {
		case cur == nil:
			var w time.Duration
			w, id, err = a.firstStart(ctx, ps, pod, spec)
			if w > 0 && (wake == 0 || w < wake) {
				wake = w
			}
		case cur.State == runtime.ContainerCreated:
			// Created by a pass that failed (or an agent that died) before
			// starting it.
			id = cur.ID
			if err = a.rt.StartContainer(ctx, cur.ID); err != nil {
				a.setWaiting(ps, spec.Name, reasonRunError, err.Error())
				_ = a.rt.RemoveContainer(ctx, cur.ID)
				id = ""
			} else {
				a.clearWaiting(ps, spec.Name)
			}
		case cur.State == runtime.ContainerExited:
			var w time.Duration
			w, id, err = a.maybeRestart(ctx, ps, pod, spec, cur.ID)
			if w > 0 && (wake == 0 || w < wake) {
				wake = w
			}
			if id != cur.ID {
				before[spec.Name] = cur
			}
		case a.unhealthy(cur.ID):
			// Its liveness (or startup) probe failed: stop it, and let the
			// restart policy decide, as for any container that exited.
			a.log.Info("container failed its liveness probe; restarting it", "pod", podName(ps, pod), "container", spec.Name)
			if err = a.rt.StopContainer(ctx, cur.ID, graceOf(pod)); err == nil {
				var w time.Duration
				w, id, err = a.maybeRestart(ctx, ps, pod, spec, cur.ID)
				if w > 0 && (wake == 0 || w < wake) {
					wake = w
				}
				if id != cur.ID {
					before[spec.Name] = cur
				}
			}
		default:
			id = cur.ID
			a.clearWaiting(ps, spec.Name)
		}
		if err != nil {
			fail(fmt.Errorf("container %s: %w", spec.Name, err))
		}
		o := containerObs{restarts: int32(ps.startBackoff[spec.Name].attempt)}
		if w, ok := ps.waiting[spec.Name]; ok {
			o.waiting = &w
		}
		if id != "" {
			st, err := a.rt.ContainerStatus(ctx, id)
			if err != nil {
				fail(fmt.Errorf("container %s status: %w", spec.Name, err))
			} else {
				o.cur = &st
			}
		}
		if b := before[spec.Name]; b != nil && b.ID != id {
			if st, err := a.rt.ContainerStatus(ctx, b.ID); err == nil {
				o.prev = &st
			}
		}
		obs.containers[spec.Name] = o
	}
	return wake, obs, firstErr
}

// firstStart starts a container that has none in the runtime: the first
// time, or again after a start that failed (a missing executable, a
// failed pull). Failures back off as crashes do (CrashLoopBackOff, or
// ImagePullBackOff for pulls) instead of retrying in a tight loop; the
// returned duration is how long the back-off still runs.
func (a *Agent) firstStart(ctx context.Context, ps *podState, pod *api.Pod, spec api.Container) (time.Duration, runtime.ContainerID, error) {
	now := a.clock.Now()
	if bo, ok := ps.startBackoff[spec.Name]; ok && now.Before(bo.until) {
		reason, msg := reasonCrashLoopBackOff, fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s): %s",
			bo.delay, spec.Name, pod.Name, pod.Namespace, pod.UID, bo.lastErr)
		if bo.pull {
			reason, msg = reasonImagePullBackOff, fmt.Sprintf("Back-off pulling image %q: %s", spec.Image, bo.lastErr)
		}
		a.setWaiting(ps, spec.Name, reason, msg)
		return bo.until.Sub(now), "", nil
	}
	attempt := ps.startBackoff[spec.Name].attempt
	id, err := a.startContainer(ctx, ps, pod, spec, attempt)
	if err == nil {
		delete(ps.startBackoff, spec.Name)
		return 0, id, nil
	}
	if ctx.Err() != nil {
		return 0, "", err
	}
	if ps.startBackoff == nil {
		ps.startBackoff = map[string]startBackoff{}
	}
	bo := ps.startBackoff[spec.Name]
	bo.delay = min(max(2*bo.delay, a.cfg.BackoffMin), a.cfg.BackoffMax)
	bo.until = now.Add(bo.delay)
	bo.lastErr = err.Error()
	var pe *pullError
	bo.pull = errors.As(err, &pe)
	if !bo.pull {
		bo.attempt++ // a failed start counts as a restart, as the kubelet's StartError does
	}
	ps.startBackoff[spec.Name] = bo
	a.log.Warn("container failed to start; backing off", "pod", podName(ps, pod), "container", spec.Name, "err", err, "retryIn", bo.delay)
	return bo.delay, "", nil
}

// pullError is a failed EnsureImage (ErrImagePull, ErrImageNeverPull).
type pullError struct{ err error }

func (e *pullError) Error() string { return e.err.Error() }
func (e *pullError) Unwrap() error { return e.err }

// startContainer pulls (per policy), creates and starts attempt of spec.
// On failure the container waits with the kubelet's reason.
func (a *Agent) startContainer(ctx context.Context, ps *podState, pod *api.Pod, spec api.Container, attempt uint32) (runtime.ContainerID, error) {
	img, err := a.rt.EnsureImage(ctx, spec.Image, spec.ImagePullPolicy)
	if err != nil {
		reason := reasonErrImagePull
		if errors.Is(err, runtime.ErrImageNotPresent) {
			reason = reasonErrImageNeverPull
		}
		a.setWaiting(ps, spec.Name, reason, err.Error())
		return "", &pullError{err}
	}
	cfg := runtime.ContainerConfig{
		Meta:       runtime.ContainerMeta{Name: spec.Name, Attempt: attempt},
		Image:      img,
		Command:    spec.Command,
		Args:       spec.Args,
		WorkingDir: spec.WorkingDir,
		Resources:  containerResources(spec.Resources),
		LogPath:    a.logPath(pod, spec.Name, attempt),
	}
	for _, e := range spec.Env {
		cfg.Env = append(cfg.Env, runtime.KeyValue{Key: e.Name, Value: e.Value})
	}
	id, err := a.rt.CreateContainer(ctx, ps.sandbox, cfg)
	if err != nil {
		a.setWaiting(ps, spec.Name, reasonCreateError, err.Error())
		return "", err
	}
	if err := a.rt.StartContainer(ctx, id); err != nil {
		a.setWaiting(ps, spec.Name, reasonRunError, err.Error())
		_ = a.rt.RemoveContainer(ctx, id)
		return "", err
	}
	a.clearWaiting(ps, spec.Name)
	return id, nil
}

// logPath is where attempt of a pod's container writes its output:
// <PodLogDir>/<namespace>_<pod>_<uid>/<container>/<attempt>.log, the
// kubelet's layout ("" without a PodLogDir: output discarded).
func (a *Agent) logPath(pod *api.Pod, container string, attempt uint32) string {
	if a.cfg.PodLogDir == "" {
		return ""
	}
	return filepath.Join(a.podLogDir(pod.Namespace, pod.Name, pod.UID), container, fmt.Sprintf("%d.log", attempt))
}

func (a *Agent) podLogDir(namespace, name string, uid api.UID) string {
	return filepath.Join(a.cfg.PodLogDir, namespace+"_"+name+"_"+string(uid))
}

// containerResources turns a container's requests and limits into cgroup
// settings, by the kubelet's rules: cpu.shares from the CPU request (1024
// a CPU, at least 2), a CFS quota from the CPU limit over a 100 ms period
// (at least 1 ms), the memory limit as is.
func containerResources(r api.ResourceRequirements) runtime.Resources {
	const period = 100000 // µs
	var out runtime.Resources
	cpuReq, hasReq := r.Requests[api.ResourceCPU]
	cpuLim, hasLim := r.Limits[api.ResourceCPU]
	switch {
	case hasReq:
		out.CPUShares = uint64(max(cpuReq.MilliValue()*1024/1000, 2))
	case hasLim: // a limit without a request: the request defaults to it
		out.CPUShares = uint64(max(cpuLim.MilliValue()*1024/1000, 2))
	default:
		out.CPUShares = 2 // best effort
	}
	if hasLim {
		out.CPUPeriod = period
		out.CPUQuota = max(cpuLim.MilliValue()*period/1000, 1000)
	}
	if m, ok := r.Limits[api.ResourceMemory]; ok {
		out.MemoryLimit = m.Value()
	}
	return out
}

// maybeRestart restarts an exited container if the restart policy says so
// and its back-off allows; otherwise it returns how long the back-off
// still runs.
func (a *Agent) maybeRestart(ctx context.Context, ps *podState, pod *api.Pod, spec api.Container, cur runtime.ContainerID) (time.Duration, runtime.ContainerID, error) {
	st, err := a.rt.ContainerStatus(ctx, cur)
	if err != nil {
		return 0, cur, err
	}
	if pod.Spec.RestartPolicy == api.RestartPolicyNever || (pod.Spec.RestartPolicy == api.RestartPolicyOnFailure && st.ExitCode == 0) {
		a.clearWaiting(ps, spec.Name)
		return 0, cur, nil
	}
	if ps.crash == nil {
		ps.crash = map[string]crashLoop{}
	}
	now := a.clock.Now()
	cl := ps.crash[spec.Name]
	if !st.StartedAt.IsZero() && st.FinishedAt.Sub(st.StartedAt) >= crashBackoffReset {
		cl = crashLoop{}
	}
	if now.Before(cl.until) {
		a.setWaiting(ps, spec.Name, reasonCrashLoopBackOff,
			fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", cl.delay, spec.Name, pod.Name, pod.Namespace, pod.UID))
		return cl.until.Sub(now), cur, nil
	}
	id, err := a.startContainer(ctx, ps, pod, spec, st.Meta.Attempt+1)
	if err != nil {
		return 0, cur, err
	}
	switch {
	case cl.delay == 0 && cl.until.IsZero():
		cl.delay = a.cfg.BackoffMin
	default:
		cl.delay = min(2*cl.delay, a.cfg.BackoffMax)
	}
	cl.until = now.Add(cl.delay)
	ps.crash[spec.Name] = cl
	return 0, id, nil
}

func (a *Agent) setWaiting(ps *podState, name, reason, msg string) {
	if ps.waiting == nil {
		ps.waiting = map[string]waitReason{}
	}
	ps.waiting[name] = waitReason{reason: reason, message: msg}
}

func (a *Agent) clearWaiting(ps *podState, name string) {
	delete(ps.waiting, name)
}

// writeStatus reports the pod's status if it differs from what the API
// holds. A conflict (someone wrote the pod since we read it) is retried on
// a fresh copy.
func (a *Agent) writeStatus(ctx context.Context, ps *podState, pod *api.Pod, obs observation) error {
	if statusEqual(pod.Status, podStatus(pod, obs)) {
		return nil
	}
	select {
	case a.statusSlots <- struct{}{}:
		defer func() { <-a.statusSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	for range statusRetries {
		want := podStatus(pod, obs)
		if statusEqual(pod.Status, want) {
			return nil
		}
		upd := *pod
		upd.Status = want
		o, err := a.c.UpdateStatus(ctx, &upd)
		if err == nil {
			a.observe(o.(*api.Pod))
			return nil
		}
		if client.IsNotFound(err) || isForbidden(err) {
			// Deleted (the node authorizer answers 403, not 404, for a pod
			// that is no longer bound to this node): the watch says so next.
			return nil
		}
		if !client.IsConflict(err) {
			return fmt.Errorf("update status: %w", err)
		}
		o, err = a.c.Get(ctx, api.KindPod, pod.Namespace, pod.Name)
		if client.IsNotFound(err) || isForbidden(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("update status: read after a conflict: %w", err)
		}
		pod = o.(*api.Pod)
		if pod.UID != ps.uid || pod.Spec.NodeName != a.cfg.NodeName {
			return nil // another pod of the same name now
		}
		a.observe(pod)
	}
	return fmt.Errorf("update status: still conflicting after %d tries", statusRetries)
}

// observe records a newer version of a pod that the agent itself wrote or
// read, without waking its worker.
func (a *Agent) observe(p *api.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ps := a.pods[p.UID]; ps != nil && ps.pod != nil && newerRV(p.ResourceVersion, ps.pod.ResourceVersion) {
		ps.pod = p
	}
}

func isForbidden(err error) bool {
	var st *api.Status
	return errors.As(err, &st) && st.Code == 403
}

// graceOf is how long the pod's containers get between SIGTERM and
// SIGKILL: the grace its deletion was given, else its spec's.
func graceOf(pod *api.Pod) time.Duration {
	switch {
	case pod == nil:
		return defaultGrace
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return defaultGrace
}

// finishDelete removes a pod being deleted gracefully once its containers
// and sandbox are gone: the delete with grace 0 that only its node sends.
func (a *Agent) finishDelete(ctx context.Context, pod *api.Pod) error {
	zero := int64(0)
	_, err := a.c.Delete(ctx, api.KindPod, pod.Namespace, pod.Name, client.DeleteOptions{UID: pod.UID, GracePeriodSeconds: &zero})
	switch {
	case err == nil:
		a.log.Debug("pod deleted after its containers stopped", "pod", pod.Namespace+"/"+pod.Name)
		return nil
	case client.IsNotFound(err), client.IsConflict(err), isForbidden(err):
		return nil // already gone, or another pod of that name now
	}
	return fmt.Errorf("delete the stopped pod: %w", err)
}

// teardown stops and removes everything of a pod that is deleted or being
// deleted: its containers get their grace period, in parallel, then the
// sandbox goes, then its address.
func (a *Agent) teardown(ctx context.Context, ps *podState, pod *api.Pod) error {
	if pod == nil {
		a.mu.Lock()
		pod = ps.pod // the last version seen, for its grace period
		a.mu.Unlock()
	}
	grace := graceOf(pod)
	for len(ps.stale) > 0 {
		if err := a.removeSandbox(ctx, ps, ps.stale[0], grace); err != nil {
			return err
		}
		ps.stale = ps.stale[1:]
	}
	if ps.sandbox == "" {
		return nil
	}
	if err := a.removeSandbox(ctx, ps, ps.sandbox, grace); err != nil {
		return err
	}
	ps.sandbox, ps.attached, ps.ip = "", false, netip.Addr{}
	ps.waiting, ps.crash = nil, nil
	a.log.Debug("pod torn down", "pod", podName(ps, pod))
	return nil
}

// removeStale removes sandboxes of the pod older than the current one
// (left by an agent that died while replacing one).
func (a *Agent) removeStale(ctx context.Context, ps *podState, pod *api.Pod) error {
	for len(ps.stale) > 0 {
		if err := a.removeSandbox(ctx, ps, ps.stale[0], graceOf(pod)); err != nil {
			return err
		}
		ps.stale = ps.stale[1:]
	}
	return nil
}

// removeSandbox stops the sandbox's containers (gracefully, in parallel),
// the sandbox, detaches it from the network and removes it.
func (a *Agent) removeSandbox(ctx context.Context, ps *podState, id runtime.SandboxID, grace time.Duration) error {
	cs, err := a.rt.ListContainers(ctx, id)
	if err != nil {
		return fmt.Errorf("list containers of sandbox %s: %w", id, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		if c.State != runtime.ContainerRunning && c.State != runtime.ContainerCreated {
			continue
		}
		if len(cs) == 1 {
			errs[i] = a.rt.StopContainer(ctx, c.ID, grace)
			continue
		}
		wg.Go(func() { errs[i] = a.rt.StopContainer(ctx, c.ID, grace) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containers: %w", err)
	}
	if err := a.rt.StopSandbox(ctx, id); err != nil {
		return fmt.Errorf("stop sandbox %s: %w", id, err)
	}
	a.detach(ctx, ps, id)
	if err := a.rt.RemoveSandbox(ctx, id); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", id, err)
	}
	return nil
}

func (a *Agent) detach(ctx context.Context, ps *podState, id runtime.SandboxID) {
	if a.net == nil {
		return
	}
	if err := a.net.Detach(ctx, network.Attachment{Sandbox: id, Pod: ps.meta, NetNS: ps.netns}); err != nil {
		a.log.Warn("detach sandbox from the pod network", "sandbox", id, "err", err)
	}
}
