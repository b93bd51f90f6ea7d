package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// netnsPath is where sandbox id's network namespace is mounted.
func (r *Runtime) netnsPath(id runtime.SandboxID) string {
	return filepath.Join(r.cfg.StateDir, "netns", string(id))
}

// RunSandbox implements runtime.Runtime: a fresh network namespace, and a
// task-less containerd record that names it and the pod.
func (r *Runtime) RunSandbox(ctx context.Context, cfg runtime.SandboxConfig) (runtime.SandboxID, error) {
	ctx = r.ns(ctx)
	id := runtime.SandboxID(newID())
	netns := r.netnsPath(id)
	if err := newNetNS(netns); err != nil {
		return "", fmt.Errorf("containerd: sandbox for pod %s/%s: network namespace: %w", cfg.Pod.Namespace, cfg.Pod.Name, err)
	}
	ext, err := marshalMeta(sandboxMeta{Pod: cfg.Pod, Hostname: cfg.Hostname, NetNS: netns,
		Labels: maps.Clone(cfg.Labels), Annotations: maps.Clone(cfg.Annotations)})
	if err == nil {
		// A record needs a spec; the sandbox's is empty (it runs nothing).
		var spec typeurl.Any
		spec, err = typeurl.MarshalAny(&specs.Spec{Version: specs.Version})
		if err == nil {
			_, err = r.client.ContainerService().Create(ctx, containers.Container{
				ID:         string(id),
				Labels:     map[string]string{labelKind: kindSandbox, labelPodUID: string(cfg.Pod.UID)},
				Runtime:    containers.RuntimeInfo{Name: runcRuntime},
				Spec:       spec,
				Extensions: map[string]typeurl.Any{extMeta: ext},
			})
		}
	}
	if err != nil {
		removeNetNS(netns)
		return "", fmt.Errorf("containerd: sandbox for pod %s/%s: %w", cfg.Pod.Namespace, cfg.Pod.Name, err)
	}
	return id, nil
}

// sandboxRecord reads a sandbox's record (ErrNotFound if there is none).
func (r *Runtime) sandboxRecord(ctx context.Context, id runtime.SandboxID) (containers.Container, sandboxMeta, error) {
	var m sandboxMeta
	rec, err := r.client.ContainerService().Get(ctx, string(id))
	if err != nil {
		return rec, m, notFound(err)
	}
	if rec.Labels[labelKind] != kindSandbox {
		return rec, m, fmt.Errorf("%s is not a sandbox: %w", id, runtime.ErrNotFound)
	}
	return rec, m, unmarshalMeta(rec, &m)
}

func (r *Runtime) sandboxFromRecord(rec containers.Container, m sandboxMeta) runtime.Sandbox {
	state := runtime.SandboxNotReady
	if rec.Labels[labelStoppedAt] == "" && isNetNS(m.NetNS) {
		state = runtime.SandboxReady
	}
	return runtime.Sandbox{
		ID:          runtime.SandboxID(rec.ID),
		Pod:         m.Pod,
		State:       state,
		CreatedAt:   rec.CreatedAt,
		NetNS:       m.NetNS,
		Labels:      m.Labels,
		Annotations: m.Annotations,
	}
}

// SandboxStatus implements runtime.Runtime.
func (r *Runtime) SandboxStatus(ctx context.Context, id runtime.SandboxID) (runtime.Sandbox, error) {
	rec, m, err := r.sandboxRecord(r.ns(ctx), id)
	if err != nil {
		return runtime.Sandbox{}, fmt.Errorf("containerd: sandbox %s: %w", id, err)
	}
	return r.sandboxFromRecord(rec, m), nil
}

// ListSandboxes implements runtime.Runtime.
func (r *Runtime) ListSandboxes(ctx context.Context) ([]runtime.Sandbox, error) {
	recs, err := r.client.ContainerService().List(r.ns(ctx), fmt.Sprintf("labels.%q==%s", labelKind, kindSandbox))
	if err != nil {
		return nil, fmt.Errorf("containerd: list sandboxes: %w", err)
	}
	out := make([]runtime.Sandbox, 0, len(recs))
	for _, rec := range recs {
		var m sandboxMeta
		if err := unmarshalMeta(rec, &m); err != nil {
			r.cfg.Logger.Warn("containerd: skipping a sandbox record", "id", rec.ID, "err", err)
			continue
		}
		out = append(out, r.sandboxFromRecord(rec, m))
	}
	return out, nil
}

// StopSandbox implements runtime.Runtime: its containers are killed and
// the sandbox is marked stopped. The network namespace stays until
// RemoveSandbox, so the network can still be detached from it.
func (r *Runtime) StopSandbox(ctx context.Context, id runtime.SandboxID) error {
	ctx = r.ns(ctx)
	rec, _, err := r.sandboxRecord(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("containerd: stop sandbox %s: %w", id, err)
	}
	cs, err := r.containerRecords(ctx, id)
	if err != nil {
		return fmt.Errorf("containerd: stop sandbox %s: %w", id, err)
	}
	var errs []error
	for _, c := range cs {
		if err := r.StopContainer(ctx, runtime.ContainerID(c.ID), 0); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("containerd: stop sandbox %s: %w", id, err)
	}
	if rec.Labels[labelStoppedAt] != "" {
		return nil
	}
	rec.Labels[labelStoppedAt] = formatTime(time.Now())
	if _, err := r.client.ContainerService().Update(ctx, rec, "labels."+labelStoppedAt); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("containerd: stop sandbox %s: %w", id, err)
	}
	return nil
}

// RemoveSandbox implements runtime.Runtime: containers, network
// namespace, the pod's cgroup (once empty) and the record.
func (r *Runtime) RemoveSandbox(ctx context.Context, id runtime.SandboxID) error {
	ctx = r.ns(ctx)
	_, m, err := r.sandboxRecord(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		// Gone already; a namespace left by a crash in RunSandbox goes too.
		if err := removeNetNS(r.netnsPath(id)); err != nil {
			return fmt.Errorf("containerd: remove sandbox %s: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("containerd: remove sandbox %s: %w", id, err)
	}
	cs, err := r.containerRecords(ctx, id)
	if err != nil {
		return fmt.Errorf("containerd: remove sandbox %s: %w", id, err)
	}
	var errs []error
	for _, c := range cs {
		if err := r.RemoveContainer(ctx, runtime.ContainerID(c.ID)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("containerd: remove sandbox %s: %w", id, err)
	}
	path := m.NetNS
	if path == "" {
		path = r.netnsPath(id)
	}
	if err := removeNetNS(path); err != nil {
		return fmt.Errorf("containerd: remove sandbox %s: %w", id, err)
	}
	if err := r.removeCgroup(podCgroup(r.cfg.CgroupParent, m.Pod.UID)); err != nil {
		r.cfg.Logger.Warn("containerd: pod cgroup not removed", "sandbox", id, "err", err)
	}
	if err := r.client.ContainerService().Delete(ctx, string(id)); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("containerd: remove sandbox %s: %w", id, err)
	}
	return nil
}
