// Package runtimetest is the conformance suite of runtime.Runtime: every
// implementation (the fake now, containerd next) runs it from its own
// tests, and the agent relies on nothing the suite does not check.
//
//	func TestConformance(t *testing.T) {
//		runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return fake.New(fake.Options{}) })
//	}
//
// The containers it runs use one image (Options.Image, busybox by default)
// and a few commands (commands.go: Describe says what each does, for a
// runtime that simulates processes). Beyond the Runtime interface it
// checks runtime.Execer (exec), runtime.ImageStore (import, list) and
// ResourceReader (the cgroup limits a container really gets), which the
// runtime under test must implement. It is test support only.
package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Options adapt the suite to a runtime.
type Options struct {
	// Image is the reference of an image that has sh and sleep (default
	// busybox:1.36). A real runtime must be able to pull or already hold it.
	Image string
	// Timeout bounds each wait for a container to change state (default
	// 10s).
	Timeout time.Duration
	// Archive is an image tarball (OCI layout or docker save) that
	// ImportImages must load; it may name Image.
	Archive []byte
	// LogDir is a directory for the containers' log files (default: a
	// temporary directory of the test).
	LogDir string
}

// ResourceReader reads back the limits a container's cgroup enforces.
type ResourceReader interface {
	Resources(ctx context.Context, id runtime.ContainerID) (runtime.Resources, error)
}

// Run runs the suite. newRuntime returns a runtime with no sandboxes (one
// per subtest; the suite cleans up what it creates).
func Run(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Image == "" {
		o.Image = "busybox:1.36"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	s := &suite{opts: o, newRuntime: newRuntime}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Version", s.version},
		{"SandboxLifecycle", s.sandboxLifecycle},
		{"ContainerLifecycle", s.containerLifecycle},
		{"ListAfterCreate", s.listAfterCreate},
		{"ExitStatus", s.exitStatus},
		{"StopAndRemoveAreIdempotent", s.idempotentTeardown},
		{"RemoveSandboxRemovesContainers", s.removeSandboxRemovesContainers},
		{"NotFound", s.notFound},
		{"StartTwice", s.startTwice},
		{"ImagePolicy", s.imagePolicy},
		{"ConcurrentSandboxes", s.concurrentSandboxes},
		{"Exec", s.exec},
		{"Logs", s.logs},
		{"Resources", s.resources},
		{"OOMKilled", s.oomKilled},
		{"StopHonoursSIGTERM", s.stopHonoursTERM},
		{"StartError", s.startError},
		{"ImportImages", s.importImages},
		{"PullFailure", s.pullFailure},
	} {
		t.Run(tc.name, tc.run)
	}
}

type suite struct {
	opts       Options
	newRuntime func(t *testing.T) runtime.Runtime
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func podMeta(name string) runtime.PodMeta {
	return runtime.PodMeta{Name: name, Namespace: "runtimetest", UID: api.UID("uid-" + name)}
}

// sandbox runs a sandbox that is removed when the test ends.
func (s *suite) sandbox(t *testing.T, rt runtime.Runtime, name string) runtime.SandboxID {
	t.Helper()
	id, err := rt.RunSandbox(s.ctx(t), runtime.SandboxConfig{Pod: podMeta(name), Hostname: name,
		Labels: map[string]string{"runtimetest": name}})
	if err != nil {
		t.Fatalf("RunSandbox: %v", err)
	}
	t.Cleanup(func() { rt.RemoveSandbox(context.Background(), id) })
	return id
}

func (s *suite) image(t *testing.T, rt runtime.Runtime) runtime.Image {
	t.Helper()
	img, err := rt.EnsureImage(s.ctx(t), s.opts.Image, api.PullIfNotPresent)
	if err != nil {
		t.Fatalf("EnsureImage(%s): %v", s.opts.Image, err)
	}
	if img.Ref == "" || img.ID == "" {
		t.Fatalf("EnsureImage(%s) = %+v: want a reference and an ID", s.opts.Image, img)
	}
	return img
}

var sleeping = CmdSleep

func exiting(code int) []string { return CmdExit(code) }

func (s *suite) create(t *testing.T, rt runtime.Runtime, sb runtime.SandboxID, name string, cmd []string) runtime.ContainerID {
	t.Helper()
	id, err := rt.CreateContainer(s.ctx(t), sb, runtime.ContainerConfig{
		Meta: runtime.ContainerMeta{Name: name}, Image: s.image(t, rt), Command: cmd,
		Labels: map[string]string{"runtimetest": name}})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	return id
}

func (s *suite) status(t *testing.T, rt runtime.Runtime, id runtime.ContainerID) runtime.ContainerStatus {
	t.Helper()
	st, err := rt.ContainerStatus(s.ctx(t), id)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return st
}

// waitState polls until the container is in state.
func (s *suite) waitState(t *testing.T, rt runtime.Runtime, id runtime.ContainerID, state runtime.ContainerState) runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(s.opts.Timeout)
	for {
		st := s.status(t, rt, id)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %s after %v, want %s", id, st.State, s.opts.Timeout, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *suite) version(t *testing.T) {
	rt := s.newRuntime(t)
	v, err := rt.Version(s.ctx(t))
	if err != nil || v.Name == "" || v.Version == "" {
		t.Fatalf("Version = %+v, %v: want a name and a version", v, err)
	}
}

func (s *suite) sandboxLifecycle(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	id := s.sandbox(t, rt, "lifecycle")
	sb, err := rt.SandboxStatus(ctx, id)
	if err != nil {
		t.Fatalf("SandboxStatus: %v", err)
	}
	if sb.ID != id || sb.State != runtime.SandboxReady || sb.Pod != podMeta("lifecycle") || sb.CreatedAt.IsZero() {
		t.Errorf("SandboxStatus = %+v: want ready, with its pod and creation time", sb)
	}
	if sb.Labels["runtimetest"] != "lifecycle" {
		t.Errorf("sandbox labels = %v: want the ones it was created with", sb.Labels)
	}
	list, err := rt.ListSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(list, func(x runtime.Sandbox) bool { return x.ID == id }); i < 0 || list[i].Pod != podMeta("lifecycle") {
		t.Errorf("ListSandboxes = %+v: want %s with its pod", list, id)
	}
	if err := rt.StopSandbox(ctx, id); err != nil {
		t.Fatalf("StopSandbox: %v", err)
	}
	if sb, err := rt.SandboxStatus(ctx, id); err != nil || sb.State != runtime.SandboxNotReady {
		t.Errorf("after StopSandbox: %+v, %v: want NotReady", sb, err)
	}
	if err := rt.RemoveSandbox(ctx, id); err != nil {
		t.Fatalf("RemoveSandbox: %v", err)
	}
	if _, err := rt.SandboxStatus(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("SandboxStatus after RemoveSandbox: %v, want ErrNotFound", err)
	}
	list, _ = rt.ListSandboxes(ctx)
	if slices.ContainsFunc(list, func(x runtime.Sandbox) bool { return x.ID == id }) {
		t.Error("a removed sandbox is still listed")
	}
}

func (s *suite) containerLifecycle(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "containers")
	id := s.create(t, rt, sb, "main", sleeping)
	st := s.status(t, rt, id)
	if st.State != runtime.ContainerCreated || st.SandboxID != sb || st.Meta.Name != "main" || st.CreatedAt.IsZero() || !st.StartedAt.IsZero() {
		t.Errorf("created container = %+v: want Created in its sandbox, not started", st)
	}
	before := time.Now().Add(-time.Second)
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	st = s.waitState(t, rt, id, runtime.ContainerRunning)
	if st.StartedAt.Before(before) || !st.FinishedAt.IsZero() {
		t.Errorf("running container = %+v: want a start time and no finish time", st)
	}
	if err := rt.StopContainer(ctx, id, 2*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st = s.status(t, rt, id)
	if st.State != runtime.ContainerExited || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("stopped container = %+v: want Exited, finished after it started", st)
	}
	if err := rt.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := rt.ContainerStatus(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ContainerStatus after RemoveContainer: %v, want ErrNotFound", err)
	}
}

func (s *suite) listAfterCreate(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	a := s.sandbox(t, rt, "list-a")
	b := s.sandbox(t, rt, "list-b")
	ca := s.create(t, rt, a, "one", sleeping)
	cb := s.create(t, rt, b, "two", sleeping)

	inA, err := rt.ListContainers(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(inA) != 1 || inA[0].ID != ca || inA[0].SandboxID != a || inA[0].Meta.Name != "one" || inA[0].State != runtime.ContainerCreated {
		t.Errorf("ListContainers(a) = %+v: want only %s, Created", inA, ca)
	}
	if inA[0].Labels["runtimetest"] != "one" || inA[0].Image.Ref == "" {
		t.Errorf("listed container %+v: want its labels and image", inA[0])
	}
	all, err := rt.ListContainers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []runtime.ContainerID{ca, cb} {
		if !slices.ContainsFunc(all, func(c runtime.Container) bool { return c.ID == id }) {
			t.Errorf("ListContainers(\"\") = %+v: missing %s", all, id)
		}
	}
	if err := rt.StartContainer(ctx, ca); err != nil {
		t.Fatal(err)
	}
	s.waitState(t, rt, ca, runtime.ContainerRunning)
	inA, _ = rt.ListContainers(ctx, a)
	if len(inA) != 1 || inA[0].State != runtime.ContainerRunning {
		t.Errorf("ListContainers(a) after start = %+v: want Running", inA)
	}
}

func (s *suite) exitStatus(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "exit")
	for _, code := range []int{0, 3} {
		id := s.create(t, rt, sb, fmt.Sprintf("exit-%d", code), exiting(code))
		if err := rt.StartContainer(ctx, id); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		st := s.waitState(t, rt, id, runtime.ContainerExited)
		if int(st.ExitCode) != code || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
			t.Errorf("exit %d: status %+v: want that exit code, started, then finished", code, st)
		}
		if st.Reason == "" {
			t.Errorf("exit %d: no reason", code)
		}
	}
}

func (s *suite) idempotentTeardown(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "idempotent")
	id := s.create(t, rt, sb, "main", sleeping)
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := rt.StopContainer(ctx, id, time.Second); err != nil {
			t.Errorf("StopContainer #%d: %v", i+1, err)
		}
	}
	for i := range 2 {
		if err := rt.RemoveContainer(ctx, id); err != nil {
			t.Errorf("RemoveContainer #%d: %v", i+1, err)
		}
	}
	if err := rt.StopContainer(ctx, id, 0); err != nil {
		t.Errorf("StopContainer of a removed container: %v", err)
	}
	for i := range 2 {
		if err := rt.StopSandbox(ctx, sb); err != nil {
			t.Errorf("StopSandbox #%d: %v", i+1, err)
		}
	}
	for i := range 2 {
		if err := rt.RemoveSandbox(ctx, sb); err != nil {
			t.Errorf("RemoveSandbox #%d: %v", i+1, err)
		}
	}
	if err := rt.StopSandbox(ctx, sb); err != nil {
		t.Errorf("StopSandbox of a removed sandbox: %v", err)
	}
}

func (s *suite) removeSandboxRemovesContainers(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "cascade")
	running := s.create(t, rt, sb, "running", sleeping)
	created := s.create(t, rt, sb, "created", sleeping)
	if err := rt.StartContainer(ctx, running); err != nil {
		t.Fatal(err)
	}
	s.waitState(t, rt, running, runtime.ContainerRunning)
	if err := rt.StopSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if st := s.status(t, rt, running); st.State != runtime.ContainerExited {
		t.Errorf("after StopSandbox the container is %s, want Exited", st.State)
	}
	if err := rt.RemoveSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	for _, id := range []runtime.ContainerID{running, created} {
		if _, err := rt.ContainerStatus(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("container %s after RemoveSandbox: %v, want ErrNotFound", id, err)
		}
	}
	if list, _ := rt.ListContainers(ctx, ""); slices.ContainsFunc(list, func(c runtime.Container) bool { return c.SandboxID == sb }) {
		t.Errorf("containers of a removed sandbox are still listed: %+v", list)
	}
}

func (s *suite) notFound(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	img := s.image(t, rt)
	if _, err := rt.CreateContainer(ctx, "no-such-sandbox", runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "x"}, Image: img, Command: sleeping}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("CreateContainer in an unknown sandbox: %v, want ErrNotFound", err)
	}
	if err := rt.StartContainer(ctx, "no-such-container"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("StartContainer of an unknown container: %v, want ErrNotFound", err)
	}
	if _, err := rt.ContainerStatus(ctx, "no-such-container"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ContainerStatus of an unknown container: %v, want ErrNotFound", err)
	}
	if _, err := rt.SandboxStatus(ctx, "no-such-sandbox"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("SandboxStatus of an unknown sandbox: %v, want ErrNotFound", err)
	}
}

func (s *suite) startTwice(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "twice")
	id := s.create(t, rt, sb, "main", sleeping)
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.waitState(t, rt, id, runtime.ContainerRunning)
	if err := rt.StartContainer(ctx, id); !errors.Is(err, runtime.ErrInvalidState) {
		t.Errorf("starting a running container: %v, want ErrInvalidState", err)
	}
}

func (s *suite) imagePolicy(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	img := s.image(t, rt)
	again, err := rt.EnsureImage(ctx, s.opts.Image, api.PullNever)
	if err != nil || again != img {
		t.Errorf("EnsureImage(PullNever) of a present image = %+v, %v: want %+v", again, err, img)
	}
	if _, err := rt.EnsureImage(ctx, "skiff.invalid/absent:1", api.PullNever); !errors.Is(err, runtime.ErrImageNotPresent) {
		t.Errorf("EnsureImage(PullNever) of an absent image: %v, want ErrImageNotPresent", err)
	}
}

func (s *suite) concurrentSandboxes(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	img := s.image(t, rt)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- func() error {
				sb, err := rt.RunSandbox(ctx, runtime.SandboxConfig{Pod: podMeta(fmt.Sprintf("concurrent-%d", i))})
				if err != nil {
					return err
				}
				defer rt.RemoveSandbox(context.Background(), sb)
				id, err := rt.CreateContainer(ctx, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"}, Image: img, Command: sleeping})
				if err != nil {
					return err
				}
				if err := rt.StartContainer(ctx, id); err != nil {
					return err
				}
				if _, err := rt.ListContainers(ctx, ""); err != nil {
					return err
				}
				if err := rt.StopContainer(ctx, id, time.Second); err != nil {
					return err
				}
				if err := rt.RemoveContainer(ctx, id); err != nil {
					return err
				}
				return rt.RemoveSandbox(ctx, sb)
			}()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
