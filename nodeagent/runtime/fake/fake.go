package fake

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Clock is the time source of the fake: delays and timestamps.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Op names a Runtime method, for failure injection.
type Op string

// The operations of runtime.Runtime.
const (
	OpRunSandbox      Op = "RunSandbox"
	OpStopSandbox     Op = "StopSandbox"
	OpRemoveSandbox   Op = "RemoveSandbox"
	OpEnsureImage     Op = "EnsureImage"
	OpCreateContainer Op = "CreateContainer"
	OpStartContainer  Op = "StartContainer"
	OpStopContainer   Op = "StopContainer"
	OpRemoveContainer Op = "RemoveContainer"
)

// FailFunc decides whether an operation fails: a non-nil error is returned
// (wrapped) instead of doing it. subject is the sandbox's pod
// (namespace/name), the container's name or the image reference.
type FailFunc func(op Op, subject string) error

// Options configure a Runtime. The zero value is a runtime without delays
// or failures on the wall clock.
type Options struct {
	Clock Clock
	// StartDelay is how long StartContainer takes before the container
	// runs (a simulated node's time from bound to Ready).
	StartDelay time.Duration
	// PullDelay is how long EnsureImage takes to "pull" an absent image.
	PullDelay time.Duration
	// Fail injects failures; it may also be changed later with SetFail.
	Fail FailFunc
	// Program says what a container's process does (default: Interpret).
	Program func(cfg runtime.ContainerConfig) Program
}

// Program is what a fake container's process does. The zero Program runs
// until it is stopped.
type Program struct {
	// Stdout and Stderr are lines the process writes when it starts (to
	// the container's LogPath, in the CRI format).
	Stdout, Stderr []string
	// ExitCode, if set, is the status the process exits with at once.
	ExitCode *int32
	// OOM: the process exceeds any memory limit at once and is killed
	// (exit 137, reason OOMKilled). Without a limit it runs.
	OOM bool
	// StartError, if set, is why the process cannot start (say, its
	// executable does not exist): StartContainer fails with it.
	StartError string
}

// Version is what the fake reports.
var Version = runtime.Version{Name: "fake", Version: "0.1.0"}

// Runtime is an in-memory runtime.Runtime, runtime.Execer and
// runtime.ImageStore: sandboxes and containers are records, processes are
// timestamps, images are names. What a container's process does is its
// Program (Interpret by default: `sh -c "exit N"` exits with status N as
// soon as it starts; any other runs until it is stopped or Exit is
// called). It is safe for concurrent use and
// small (a few hundred bytes per container), so a process can hold one per
// simulated node.
type Runtime struct {
	opts Options

	mu         sync.Mutex
	fail       FailFunc
	sandboxes  map[runtime.SandboxID]*sandbox
	containers map[runtime.ContainerID]*container
	images     map[string]runtime.ImageInfo
}

var (
	_ runtime.Runtime    = (*Runtime)(nil)
	_ runtime.Execer     = (*Runtime)(nil)
	_ runtime.ImageStore = (*Runtime)(nil)
)

type sandbox struct {
	s          runtime.Sandbox
	containers map[runtime.ContainerID]struct{}
}

type container struct {
	st        runtime.ContainerStatus
	prog      Program
	resources runtime.Resources
	logPath   string
}

// New returns an empty runtime.
func New(opts Options) *Runtime {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Program == nil {
		opts.Program = Interpret
	}
	return &Runtime{
		opts:       opts,
		fail:       opts.Fail,
		sandboxes:  map[runtime.SandboxID]*sandbox{},
		containers: map[runtime.ContainerID]*container{},
		images:     map[string]runtime.ImageInfo{},
	}
}

// SetFail replaces the failure injection (nil: nothing fails).
func (r *Runtime) SetFail(f FailFunc) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

func (r *Runtime) check(op Op, subject string) error {
	r.mu.Lock()
	f := r.fail
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := f(op, subject); err != nil {
		return fmt.Errorf("fake: %s %s: %w", op, subject, err)
	}
	return nil
}

// Exit makes a running container's process exit with code, as a crash or
// a finished job would.
func (r *Runtime) Exit(id runtime.ContainerID, code int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return fmt.Errorf("fake: container %s: %w", id, runtime.ErrNotFound)
	}
	if c.st.State != runtime.ContainerRunning {
		return fmt.Errorf("fake: container %s is %s: %w", id, c.st.State, runtime.ErrInvalidState)
	}
	r.exit(c, code, "")
	return nil
}

// exit records the end of c's process (r.mu held).
func (r *Runtime) exit(c *container, code int32, reason string) {
	c.st.State = runtime.ContainerExited
	c.st.FinishedAt = r.opts.Clock.Now()
	c.st.ExitCode = code
	if reason == "" {
		reason = "Completed"
		if code != 0 {
			reason = "Error"
		}
	}
	c.st.Reason = reason
}

// Counts reports how many sandboxes and containers exist.
func (r *Runtime) Counts() (sandboxes, containers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sandboxes), len(r.containers)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Version implements runtime.Runtime.
func (r *Runtime) Version(context.Context) (runtime.Version, error) { return Version, nil }

// RunSandbox implements runtime.Runtime.
func (r *Runtime) RunSandbox(_ context.Context, cfg runtime.SandboxConfig) (runtime.SandboxID, error) {
	if err := r.check(OpRunSandbox, cfg.Pod.Namespace+"/"+cfg.Pod.Name); err != nil {
		return "", err
	}
	id := runtime.SandboxID(newID())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sandboxes[id] = &sandbox{
		s: runtime.Sandbox{ID: id, Pod: cfg.Pod, State: runtime.SandboxReady, CreatedAt: r.opts.Clock.Now(),
			Labels: maps.Clone(cfg.Labels), Annotations: maps.Clone(cfg.Annotations)},
		containers: map[runtime.ContainerID]struct{}{},
	}
	return id, nil
}

// StopSandbox implements runtime.Runtime.
func (r *Runtime) StopSandbox(_ context.Context, id runtime.SandboxID) error {
	r.mu.Lock()
	sb, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if err := r.check(OpStopSandbox, sb.s.Pod.Namespace+"/"+sb.s.Pod.Name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for cid := range sb.containers {
		if c := r.containers[cid]; c != nil && c.st.State == runtime.ContainerRunning {
			r.exit(c, 137, "Error")
		}
	}
	sb.s.State = runtime.SandboxNotReady
	return nil
}

// RemoveSandbox implements runtime.Runtime.
func (r *Runtime) RemoveSandbox(_ context.Context, id runtime.SandboxID) error {
	r.mu.Lock()
	sb, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if err := r.check(OpRemoveSandbox, sb.s.Pod.Namespace+"/"+sb.s.Pod.Name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for cid := range sb.containers {
		delete(r.containers, cid)
	}
	delete(r.sandboxes, id)
	return nil
}

// SandboxStatus implements runtime.Runtime.
func (r *Runtime) SandboxStatus(_ context.Context, id runtime.SandboxID) (runtime.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, ok := r.sandboxes[id]
	if !ok {
		return runtime.Sandbox{}, fmt.Errorf("fake: sandbox %s: %w", id, runtime.ErrNotFound)
	}
	return sb.s, nil
}

// ListSandboxes implements runtime.Runtime.
func (r *Runtime) ListSandboxes(context.Context) ([]runtime.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runtime.Sandbox, 0, len(r.sandboxes))
	for _, sb := range r.sandboxes {
		out = append(out, sb.s)
	}
	return out, nil
}

// normalizeRef spells an image reference fully, as containerd does:
// nginx -> docker.io/library/nginx:latest.
func normalizeRef(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash {
		name = "docker.io/library/" + name
	} else if !strings.ContainsAny(first, ".:") && first != "localhost" {
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	if i := strings.LastIndex(name, ":"); i < 0 || strings.Contains(name[i:], "/") {
		name += ":latest"
	}
	return name
}

// EnsureImage implements runtime.Runtime. The fake's "registry" serves
// every image except those of hosts under .invalid (RFC 2606: a name that
// never resolves), whose pulls fail.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (runtime.Image, error) {
	if ref == "" {
		return runtime.Image{}, fmt.Errorf("fake: empty image reference: %w", runtime.ErrImagePull)
	}
	full := normalizeRef(ref)
	r.mu.Lock()
	img, present := r.images[full]
	r.mu.Unlock()
	switch {
	case present && policy != api.PullAlways:
		return img.Image, nil
	case !present && policy == api.PullNever:
		return runtime.Image{}, fmt.Errorf("fake: image %s: %w", full, runtime.ErrImageNotPresent)
	}
	if err := r.check(OpEnsureImage, ref); err != nil {
		return runtime.Image{}, fmt.Errorf("%w: %w", runtime.ErrImagePull, err)
	}
	if host, _, _ := strings.Cut(full, "/"); host == "invalid" || strings.HasSuffix(host, ".invalid") {
		return runtime.Image{}, fmt.Errorf("fake: pull %s: %w: host %s does not resolve", full, runtime.ErrImagePull, host)
	}
	if err := r.wait(ctx, r.opts.PullDelay); err != nil {
		return runtime.Image{}, err
	}
	sum := sha256.Sum256([]byte(full))
	img = runtime.ImageInfo{Image: runtime.Image{Ref: full, ID: runtime.ImageID("sha256:" + hex.EncodeToString(sum[:]))}, Size: 1}
	r.mu.Lock()
	r.images[full] = img
	r.mu.Unlock()
	return img.Image, nil
}

func (r *Runtime) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.opts.Clock.After(d):
		return nil
	}
}

// CreateContainer implements runtime.Runtime.
func (r *Runtime) CreateContainer(_ context.Context, sid runtime.SandboxID, cfg runtime.ContainerConfig) (runtime.ContainerID, error) {
	if err := r.check(OpCreateContainer, cfg.Meta.Name); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, ok := r.sandboxes[sid]
	if !ok {
		return "", fmt.Errorf("fake: sandbox %s: %w", sid, runtime.ErrNotFound)
	}
	if sb.s.State != runtime.SandboxReady {
		return "", fmt.Errorf("fake: sandbox %s is %s: %w", sid, sb.s.State, runtime.ErrInvalidState)
	}
	if _, ok := r.images[cfg.Image.Ref]; !ok {
		return "", fmt.Errorf("fake: image %s: %w", cfg.Image.Ref, runtime.ErrImageNotPresent)
	}
	id := runtime.ContainerID(newID())
	r.containers[id] = &container{
		st: runtime.ContainerStatus{Container: runtime.Container{
			ID: id, SandboxID: sid, Meta: cfg.Meta, Image: cfg.Image, State: runtime.ContainerCreated,
			CreatedAt: r.opts.Clock.Now(), Labels: maps.Clone(cfg.Labels), Annotations: maps.Clone(cfg.Annotations)}},
		prog:      r.opts.Program(cfg),
		resources: cfg.Resources,
		logPath:   cfg.LogPath,
	}
	sb.containers[id] = struct{}{}
	return id, nil
}

// StartContainer implements runtime.Runtime.
func (r *Runtime) StartContainer(ctx context.Context, id runtime.ContainerID) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	var name string
	var state runtime.ContainerState
	if ok {
		name, state = c.st.Meta.Name, c.st.State
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("fake: container %s: %w", id, runtime.ErrNotFound)
	}
	if state != runtime.ContainerCreated {
		return fmt.Errorf("fake: container %s is %s: %w", id, state, runtime.ErrInvalidState)
	}
	if err := r.check(OpStartContainer, name); err != nil {
		return err
	}
	if err := r.wait(ctx, r.opts.StartDelay); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok = r.containers[id]
	if !ok {
		return fmt.Errorf("fake: container %s removed while starting: %w", id, runtime.ErrNotFound)
	}
	if c.st.State != runtime.ContainerCreated {
		return fmt.Errorf("fake: container %s is %s: %w", id, c.st.State, runtime.ErrInvalidState)
	}
	now := r.opts.Clock.Now()
	if c.prog.StartError != "" {
		c.st.StartedAt = now
		r.exit(c, 128, "StartError")
		c.st.Message = c.prog.StartError
		return fmt.Errorf("fake: start container %s: %s", id, c.prog.StartError)
	}
	c.st.State = runtime.ContainerRunning
	c.st.StartedAt = now
	if err := writeLog(c.logPath, now, c.prog); err != nil {
		r.exit(c, 128, "StartError")
		c.st.Message = err.Error()
		return fmt.Errorf("fake: start container %s: %w", id, err)
	}
	switch {
	case c.prog.OOM && c.resources.MemoryLimit > 0:
		r.exit(c, 137, "OOMKilled")
	case c.prog.ExitCode != nil:
		r.exit(c, *c.prog.ExitCode, "")
	}
	return nil
}

// StopContainer implements runtime.Runtime. The fake's processes exit at
// once on SIGTERM (status 0) unless grace is zero (killed: 137).
func (r *Runtime) StopContainer(_ context.Context, id runtime.ContainerID, grace time.Duration) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if err := r.check(OpStopContainer, c.st.Meta.Name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch c.st.State {
	case runtime.ContainerRunning:
		if grace > 0 {
			r.exit(c, 0, "")
		} else {
			r.exit(c, 137, "Error")
		}
	case runtime.ContainerCreated:
		// Never started: it cannot run any more.
		c.st.State = runtime.ContainerExited
		c.st.FinishedAt = r.opts.Clock.Now()
	}
	return nil
}

// RemoveContainer implements runtime.Runtime.
func (r *Runtime) RemoveContainer(_ context.Context, id runtime.ContainerID) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if err := r.check(OpRemoveContainer, c.st.Meta.Name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sb := r.sandboxes[c.st.SandboxID]; sb != nil {
		delete(sb.containers, id)
	}
	delete(r.containers, id)
	return nil
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(_ context.Context, id runtime.ContainerID) (runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return runtime.ContainerStatus{}, fmt.Errorf("fake: container %s: %w", id, runtime.ErrNotFound)
	}
	return c.st, nil
}

// ListContainers implements runtime.Runtime.
func (r *Runtime) ListContainers(_ context.Context, sid runtime.SandboxID) ([]runtime.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sid != "" {
		sb, ok := r.sandboxes[sid]
		if !ok {
			return nil, nil
		}
		out := make([]runtime.Container, 0, len(sb.containers))
		for cid := range sb.containers {
			out = append(out, r.containers[cid].st.Container)
		}
		return out, nil
	}
	out := make([]runtime.Container, 0, len(r.containers))
	for _, c := range r.containers {
		out = append(out, c.st.Container)
	}
	return out, nil
}
