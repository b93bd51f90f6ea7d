package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
	"github.com/skiffhq/skiff/nodeagent/runtime/runtimetest"
	"github.com/skiffhq/skiff/test/imagebuild"
)

func TestConformance(t *testing.T) {
	var archive bytes.Buffer
	if _, err := imagebuild.Build(&archive, imagebuild.Spec{Name: "localhost/runtimetest/tiny:1",
		Files: []imagebuild.File{{Path: "/hello.txt", Data: []byte("hello\n"), Mode: 0o644}}}); err != nil {
		t.Fatal(err)
	}
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return New(Options{Program: suiteProgram}) },
		runtimetest.Options{Archive: archive.Bytes()})
}

// suiteProgram simulates the conformance suite's commands as it describes
// them; anything else is interpreted as by default.
func suiteProgram(cfg runtime.ContainerConfig) Program {
	argv := append(append([]string(nil), cfg.Command...), cfg.Args...)
	b, ok := runtimetest.Describe(argv)
	if !ok {
		return Interpret(cfg)
	}
	p := Program{Stdout: b.Stdout, Stderr: b.Stderr, OOM: b.OOM}
	if b.ExitCode != nil {
		code := int32(*b.ExitCode)
		p.ExitCode = &code
	}
	if b.NotFound {
		p.StartError = fmt.Sprintf("exec: %q: executable file not found in $PATH", argv[0])
	}
	return p
}

// manualClock fires After channels only when advanced.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

func (c *manualClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

func setup(t *testing.T, r *Runtime) (runtime.SandboxID, runtime.ContainerID) {
	t.Helper()
	ctx := context.Background()
	sb, err := r.RunSandbox(ctx, runtime.SandboxConfig{Pod: runtime.PodMeta{Name: "p", Namespace: "ns", UID: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := r.EnsureImage(ctx, "nginx", api.PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.CreateContainer(ctx, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "web"}, Image: img})
	if err != nil {
		t.Fatal(err)
	}
	return sb, id
}

func TestStartDelay(t *testing.T) {
	clock := &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := New(Options{Clock: clock, StartDelay: time.Second})
	_, id := setup(t, r)
	done := make(chan error, 1)
	go func() { done <- r.StartContainer(context.Background(), id) }()
	for clock.pending() == 0 {
		time.Sleep(time.Millisecond)
	}
	if st, _ := r.ContainerStatus(context.Background(), id); st.State != runtime.ContainerCreated {
		t.Fatalf("before the delay: %s, want Created", st.State)
	}
	clock.advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, _ := r.ContainerStatus(context.Background(), id)
	if st.State != runtime.ContainerRunning || !st.StartedAt.Equal(clock.Now()) {
		t.Fatalf("after the delay: %+v, want Running since now", st)
	}
}

func TestStartDelayHonoursContext(t *testing.T) {
	clock := &manualClock{}
	r := New(Options{Clock: clock, StartDelay: time.Hour})
	_, id := setup(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.StartContainer(ctx, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("StartContainer with a cancelled context: %v", err)
	}
}

func TestFailureInjection(t *testing.T) {
	boom := errors.New("boom")
	r := New(Options{})
	r.SetFail(func(op Op, subject string) error {
		if op == OpEnsureImage && subject == "broken:1" {
			return boom
		}
		return nil
	})
	_, err := r.EnsureImage(context.Background(), "broken:1", api.PullIfNotPresent)
	if !errors.Is(err, boom) || !errors.Is(err, runtime.ErrImagePull) {
		t.Fatalf("EnsureImage with an injected failure: %v, want boom and ErrImagePull", err)
	}
	if _, err := r.EnsureImage(context.Background(), "fine:1", api.PullIfNotPresent); err != nil {
		t.Fatal(err)
	}
	r.SetFail(func(op Op, _ string) error {
		if op == OpStartContainer {
			return boom
		}
		return nil
	})
	_, id := setup(t, r)
	if err := r.StartContainer(context.Background(), id); !errors.Is(err, boom) {
		t.Fatalf("StartContainer: %v, want boom", err)
	}
	r.SetFail(nil)
	if err := r.StartContainer(context.Background(), id); err != nil {
		t.Fatalf("StartContainer once the failure is lifted: %v", err)
	}
}

func TestExit(t *testing.T) {
	r := New(Options{})
	_, id := setup(t, r)
	if err := r.Exit(id, 1); !errors.Is(err, runtime.ErrInvalidState) {
		t.Fatalf("Exit of a created container: %v", err)
	}
	if err := r.StartContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := r.Exit(id, 2); err != nil {
		t.Fatal(err)
	}
	st, _ := r.ContainerStatus(context.Background(), id)
	if st.State != runtime.ContainerExited || st.ExitCode != 2 || st.Reason != "Error" {
		t.Fatalf("after Exit(2): %+v", st)
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                        "docker.io/library/nginx:latest",
		"nginx:1.27":                   "docker.io/library/nginx:1.27",
		"team/app":                     "docker.io/team/app:latest",
		"ghcr.io/x/y:2":                "ghcr.io/x/y:2",
		"localhost:5000/app":           "localhost:5000/app:latest",
		"nginx@sha256:abcd":            "docker.io/library/nginx@sha256:abcd",
		"registry.local:5000/a/b:v1.2": "registry.local:5000/a/b:v1.2",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}
