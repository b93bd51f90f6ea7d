package containerd

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	errgrpcpkg "github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/skiffhq/skiff/nodeagent/runtime"
	"github.com/skiffhq/skiff/nodeagent/runtime/containerd/logdriver"
)

// containerRecords lists the records of sandbox's containers (every
// container's when sandbox is "").
func (r *Runtime) containerRecords(ctx context.Context, sandbox runtime.SandboxID) ([]containers.Container, error) {
	filter := fmt.Sprintf("labels.%q==%s", labelKind, kindContainer)
	if sandbox != "" {
		filter += fmt.Sprintf(",labels.%q==%q", labelSandbox, string(sandbox))
	}
	return r.client.ContainerService().List(ctx, filter)
}

// containerRecord reads a container's record and metadata.
func (r *Runtime) containerRecord(ctx context.Context, id runtime.ContainerID) (containers.Container, containerMeta, error) {
	var m containerMeta
	rec, err := r.client.ContainerService().Get(ctx, string(id))
	if err != nil {
		return rec, m, notFound(err)
	}
	if rec.Labels[labelKind] != kindContainer {
		return rec, m, fmt.Errorf("%s is not a container: %w", id, runtime.ErrNotFound)
	}
	return rec, m, unmarshalMeta(rec, &m)
}

// CreateContainer implements runtime.Runtime.
func (r *Runtime) CreateContainer(ctx context.Context, sid runtime.SandboxID, cfg runtime.ContainerConfig) (runtime.ContainerID, error) {
	ctx = r.ns(ctx)
	sbRec, sb, err := r.sandboxRecord(ctx, sid)
	if err != nil {
		return "", fmt.Errorf("containerd: create container %s: sandbox %s: %w", cfg.Meta.Name, sid, err)
	}
	if st := r.sandboxFromRecord(sbRec, sb).State; st != runtime.SandboxReady {
		return "", fmt.Errorf("containerd: create container %s: sandbox %s is %s: %w", cfg.Meta.Name, sid, st, runtime.ErrInvalidState)
	}
	img, imgCfg, err := r.localImage(ctx, cfg.Image.Ref)
	if err != nil {
		return "", fmt.Errorf("containerd: create container %s: %w", cfg.Meta.Name, err)
	}
	id := runtime.ContainerID(newID())
	cgroup := filepath.Join(podCgroup(r.cfg.CgroupParent, sb.Pod.UID), string(id))
	specOpts, err := r.specOpts(img, imgCfg, sb, cfg, cgroup)
	if err != nil {
		return "", fmt.Errorf("containerd: create container %s: %w", cfg.Meta.Name, err)
	}
	image := cfg.Image
	if image.ID == "" {
		image.ID = r.imageID(ctx, img)
	}
	ext, err := marshalMeta(containerMeta{Meta: cfg.Meta, Image: image, LogPath: cfg.LogPath, Cgroup: cgroup,
		Labels: maps.Clone(cfg.Labels), Annotations: maps.Clone(cfg.Annotations)})
	if err != nil {
		return "", fmt.Errorf("containerd: create container %s: %w", cfg.Meta.Name, err)
	}
	create := func() error {
		_, err := r.client.NewContainer(ctx, string(id),
			containerd.WithImage(img),
			containerd.WithSnapshotter(r.cfg.Snapshotter),
			containerd.WithNewSnapshot(string(id), img),
			containerd.WithRuntime(runcRuntime, nil),
			containerd.WithNewSpec(specOpts...),
			containerd.WithContainerLabels(map[string]string{
				labelKind: kindContainer, labelSandbox: string(sid), labelPodUID: string(sb.Pod.UID)}),
			containerd.WithContainerExtension(extMeta, ext),
		)
		return err
	}
	err = create()
	if errdefs.IsNotFound(err) {
		// The image's snapshots were collected since it was prepared
		// (deleted and imported again): unpack it again, once.
		r.forget(img.Name())
		if _, _, err = r.localImage(ctx, cfg.Image.Ref); err == nil {
			err = create()
		}
	}
	if err != nil {
		// The snapshot may have been prepared before the failure.
		_ = r.client.SnapshotService(r.cfg.Snapshotter).Remove(ctx, string(id))
		return "", fmt.Errorf("containerd: create container %s: %w", cfg.Meta.Name, err)
	}
	return id, nil
}

// StartContainer implements runtime.Runtime. A container that fails to
// start (its executable is missing, say) is recorded as exited with
// reason StartError and the runtime's message, as CRI runtimes do.
func (r *Runtime) StartContainer(ctx context.Context, id runtime.ContainerID) error {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, string(id))
	if err != nil {
		return fmt.Errorf("containerd: start container %s: %w", id, notFound(err))
	}
	rec, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return fmt.Errorf("containerd: start container %s: %w", id, notFound(err))
	}
	var m containerMeta
	if rec.Labels[labelKind] != kindContainer {
		return fmt.Errorf("containerd: start container %s: not a container: %w", id, runtime.ErrNotFound)
	}
	if err := unmarshalMeta(rec, &m); err != nil {
		return fmt.Errorf("containerd: start container %s: %w", id, err)
	}
	if rec.Labels[labelFinishedAt] != "" {
		return fmt.Errorf("containerd: start container %s: it has exited: %w", id, runtime.ErrInvalidState)
	}
	var task containerd.Task
	if rec.Labels[labelStartedAt] == "" {
		// The usual case, in as few calls as can be: no task yet.
		creator, err := r.logIO(m.LogPath)
		if err != nil {
			return r.startFailed(ctx, c, id, err)
		}
		task, err = c.NewTask(ctx, creator)
		if err != nil && !errdefs.IsAlreadyExists(err) {
			return r.startFailed(ctx, c, id, err)
		}
	}
	if task == nil {
		// A task exists: an earlier call created it and may not have
		// got to start it.
		task, err = c.Task(ctx, nil)
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("containerd: start container %s: it has run: %w", id, runtime.ErrInvalidState)
		}
		if err != nil {
			return fmt.Errorf("containerd: start container %s: %w", id, err)
		}
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("containerd: start container %s: %w", id, err)
		}
		if st.Status != containerd.Created {
			return fmt.Errorf("containerd: start container %s: it is %s: %w", id, st.Status, runtime.ErrInvalidState)
		}
	}
	if _, err := c.SetLabels(ctx, map[string]string{labelStartedAt: formatTime(time.Now())}); err != nil {
		return fmt.Errorf("containerd: start container %s: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		return r.startFailed(ctx, c, id, err)
	}
	return nil
}

// logIO is where a container's output goes: the log driver writing
// logPath, or nowhere.
func (r *Runtime) logIO(logPath string) (cio.Creator, error) {
	if logPath == "" {
		return cio.NullIO, nil
	}
	if r.cfg.LogDriver == "" {
		return nil, fmt.Errorf("log path %s given but the runtime has no log driver", logPath)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	opts := logdriver.Options{Path: logPath, MaxSize: r.cfg.LogMaxSize, MaxFiles: r.cfg.LogMaxFiles}
	return cio.BinaryIO(r.cfg.LogDriver, map[string]string{logdriver.Subcommand: opts.Encode()}), nil
}

// startFailed records a failed start on the container and returns it.
func (r *Runtime) startFailed(ctx context.Context, c containerd.Container, id runtime.ContainerID, cause error) error {
	ctx = context.WithoutCancel(ctx)
	now := formatTime(time.Now())
	if _, err := c.SetLabels(ctx, map[string]string{
		labelStartedAt:  now,
		labelFinishedAt: now,
		labelExitCode:   "128",
		labelReason:     "StartError",
		labelMessage:    truncate(cause.Error(), maxMessage),
	}); err != nil {
		r.cfg.Logger.Warn("containerd: start error not recorded", "container", id, "err", err)
	}
	return fmt.Errorf("containerd: start container %s: %w", id, cause)
}

// StopContainer implements runtime.Runtime. The signal is SIGTERM (a
// process that is PID 1 in its container ignores it unless it handles it,
// and is killed after grace).
func (r *Runtime) StopContainer(ctx context.Context, id runtime.ContainerID, grace time.Duration) error {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, string(id))
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("containerd: stop container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		// Never started (or it failed to): it cannot run any more.
		rec, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err == nil && rec.Labels[labelFinishedAt] == "" {
			_, err = c.SetLabels(ctx, map[string]string{labelFinishedAt: formatTime(time.Now())})
		}
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("containerd: stop container %s: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("containerd: stop container %s: %w", id, err)
	}
	if err := stopTask(ctx, task, grace); err != nil {
		return fmt.Errorf("containerd: stop container %s: %w", id, err)
	}
	return nil
}

// stopTask sends SIGTERM, waits up to grace, then SIGKILL, and returns
// once the task's process has exited.
func stopTask(ctx context.Context, task containerd.Task, grace time.Duration) error {
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if grace > 0 && st.Status == containerd.Running {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("SIGTERM: %w", err)
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-exited:
			return nil
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RemoveContainer implements runtime.Runtime.
func (r *Runtime) RemoveContainer(ctx context.Context, id runtime.ContainerID) error {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, string(id))
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("containerd: remove container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		if err := stopTask(ctx, task, 0); err != nil {
			return fmt.Errorf("containerd: remove container %s: %w", id, err)
		}
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("containerd: remove container %s: delete task: %w", id, err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("containerd: remove container %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("containerd: remove container %s: %w", id, err)
	}
	return nil
}

// taskProcess reads the state of a container's task (nil: it has none).
func (r *Runtime) taskProcess(ctx context.Context, id runtime.ContainerID) (*tasktypes.Process, error) {
	resp, err := r.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: string(id)})
	if err != nil {
		if errdefs.IsNotFound(errgrpc(err)) {
			return nil, nil
		}
		return nil, err
	}
	return resp.Process, nil
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(ctx context.Context, id runtime.ContainerID) (runtime.ContainerStatus, error) {
	ctx = r.ns(ctx)
	rec, m, err := r.containerRecord(ctx, id)
	if err != nil {
		return runtime.ContainerStatus{}, fmt.Errorf("containerd: container %s: %w", id, err)
	}
	proc, err := r.taskProcess(ctx, id)
	if err != nil {
		return runtime.ContainerStatus{}, fmt.Errorf("containerd: container %s: task: %w", id, err)
	}
	st := containerStatus(rec, m, proc)
	if st.State == runtime.ContainerExited && proc != nil && st.ExitCode != 0 {
		// The cgroup lives until the task is deleted.
		if n, err := r.oomKills(m.Cgroup); err == nil && n > 0 {
			st.Reason = "OOMKilled"
		}
	}
	return st, nil
}

// containerStatus is what a record and its task (nil: none) say.
func containerStatus(rec containers.Container, m containerMeta, proc *tasktypes.Process) runtime.ContainerStatus {
	st := runtime.ContainerStatus{
		Container: runtime.Container{
			ID:          runtime.ContainerID(rec.ID),
			SandboxID:   runtime.SandboxID(rec.Labels[labelSandbox]),
			Meta:        m.Meta,
			Image:       m.Image,
			State:       runtime.ContainerCreated,
			CreatedAt:   rec.CreatedAt,
			Labels:      m.Labels,
			Annotations: m.Annotations,
		},
		StartedAt: parseTime(rec.Labels[labelStartedAt]),
	}
	exited := func(code int32, at time.Time) {
		st.State = runtime.ContainerExited
		st.ExitCode = code
		st.FinishedAt = at
		st.Reason = "Completed"
		if code != 0 {
			st.Reason = "Error"
		}
	}
	switch {
	case rec.Labels[labelFinishedAt] != "":
		exited(parseInt32(rec.Labels[labelExitCode]), parseTime(rec.Labels[labelFinishedAt]))
		if reason := rec.Labels[labelReason]; reason != "" {
			st.Reason = reason
		} else if st.StartedAt.IsZero() {
			st.Reason = "" // never started
		}
		st.Message = rec.Labels[labelMessage]
	case proc == nil && !st.StartedAt.IsZero():
		// Started, but the task is gone (containerd lost it, as across a
		// reboot): it is not running any more.
		exited(255, time.Time{})
		st.Reason = "Unknown"
		st.Message = "the container's task is gone"
		st.FinishedAt = st.StartedAt
	case proc == nil:
	default:
		switch proc.Status {
		case tasktypes.Status_CREATED:
		case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
			st.State = runtime.ContainerRunning
		case tasktypes.Status_STOPPED:
			exited(int32(proc.ExitStatus), proc.ExitedAt.AsTime())
		default:
			st.State = runtime.ContainerUnknown
		}
	}
	return st
}

// ListContainers implements runtime.Runtime.
func (r *Runtime) ListContainers(ctx context.Context, sandbox runtime.SandboxID) ([]runtime.Container, error) {
	ctx = r.ns(ctx)
	recs, err := r.containerRecords(ctx, sandbox)
	if err != nil {
		return nil, fmt.Errorf("containerd: list containers: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	resp, err := r.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("containerd: list tasks: %w", errgrpc(err))
	}
	procs := make(map[string]*tasktypes.Process, len(resp.Tasks))
	for _, p := range resp.Tasks {
		procs[p.ID] = p
	}
	out := make([]runtime.Container, 0, len(recs))
	for _, rec := range recs {
		var m containerMeta
		if err := unmarshalMeta(rec, &m); err != nil {
			r.cfg.Logger.Warn("containerd: skipping a container record", "id", rec.ID, "err", err)
			continue
		}
		out = append(out, containerStatus(rec, m, procs[rec.ID]).Container)
	}
	return out, nil
}

// Resources reads back the cgroup limits in force on a running container
// (for tests, and for whoever wants to see what the kernel enforces).
func (r *Runtime) Resources(ctx context.Context, id runtime.ContainerID) (runtime.Resources, error) {
	_, m, err := r.containerRecord(r.ns(ctx), id)
	if err != nil {
		return runtime.Resources{}, fmt.Errorf("containerd: container %s: %w", id, err)
	}
	res, err := r.readResources(m.Cgroup)
	if err != nil {
		return res, fmt.Errorf("containerd: container %s: cgroup %s: %w", id, m.Cgroup, err)
	}
	return res, nil
}

// errgrpc turns an error of a raw gRPC service call into containerd's
// error classes (the client's own methods do this themselves).
func errgrpc(err error) error { return errgrpcpkg.ToNative(err) }
