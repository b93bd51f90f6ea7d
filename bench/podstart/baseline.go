package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

// baseline starts the echo image's container with containerd alone: the
// Go client against the agent's own containerd, in a containerd namespace
// of its own, with the image imported there too.
type baseline struct {
	c            *containerd.Client
	ns           string
	img          containerd.Image
	cgroupParent string
	logDriver    string // the skiff binary, for withLogs starts
	logDir       string
}

// startOpts are the agent's choices a baseline start may add to plain
// containerd, to tell their costs apart.
type startOpts struct {
	seccomp bool // containerd's default seccomp profile (the agent's default)
	logs    bool // stdout/stderr to `skiff log-driver` (cio.BinaryIO), as the agent does
}

// baselineSnapshotter is the snapshotter the agent's runtime uses.
const baselineSnapshotter = "overlayfs"

func newBaseline(ctx context.Context, socket, ns, imagePath, cgroupParent, logDriver, logDir string) (*baseline, error) {
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	c, err := containerd.New(socket, containerd.WithDefaultNamespace(ns))
	if err != nil {
		return nil, fmt.Errorf("containerd: connect %s: %w", socket, err)
	}
	b := &baseline{c: c, ns: ns, cgroupParent: cgroupParent, logDriver: logDriver, logDir: logDir}
	ctx = b.ctx(ctx)
	f, err := os.Open(imagePath)
	if err != nil {
		c.Close()
		return nil, err
	}
	defer f.Close()
	imgs, err := c.Import(ctx, f)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd: import %s into namespace %s: %w", imagePath, ns, err)
	}
	if len(imgs) == 0 {
		c.Close()
		return nil, fmt.Errorf("containerd: import %s: no image in the archive", imagePath)
	}
	b.img = containerd.NewImage(c, imgs[0])
	if err := b.img.Unpack(ctx, baselineSnapshotter); err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd: unpack %s: %w", b.img.Name(), err)
	}
	return b, nil
}

func (b *baseline) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, b.ns)
}

// start creates and starts one container (NewContainer with a new
// snapshot and the image's config, NewTask, Start) and returns how long
// that took; then, off the clock, it removes the container again.
func (b *baseline) start(ctx context.Context, id string, so startOpts) (time.Duration, error) {
	ctr, task, took, err := b.run(ctx, id, so)
	if err != nil {
		return 0, err
	}
	return took, b.remove(b.ctx(ctx), ctr, task)
}

// run creates and starts one container and returns it running, with how
// long that took.
func (b *baseline) run(ctx context.Context, id string, so startOpts) (containerd.Container, containerd.Task, time.Duration, error) {
	ctx = b.ctx(ctx)
	specOpts := []oci.SpecOpts{oci.WithImageConfig(b.img), oci.WithCgroup(b.cgroupParent + "/" + id)}
	if so.seccomp {
		specOpts = append(specOpts, seccomp.WithDefaultProfile())
	}
	creator := cio.NullIO
	if so.logs {
		path := filepath.Join(b.logDir, id+".log")
		creator = cio.BinaryIO(b.logDriver, map[string]string{"log-driver": url.Values{"path": {path}}.Encode()})
	}
	began := time.Now()
	ctr, err := b.c.NewContainer(ctx, id, containerd.WithImage(b.img), containerd.WithSnapshotter(baselineSnapshotter),
		containerd.WithNewSnapshot(id, b.img), containerd.WithNewSpec(specOpts...))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("containerd: create container %s: %w", id, err)
	}
	task, err := ctr.NewTask(ctx, creator)
	if err != nil {
		return nil, nil, 0, errors.Join(fmt.Errorf("containerd: create task %s: %w", id, err), b.remove(ctx, ctr, nil))
	}
	if err := task.Start(ctx); err != nil {
		return nil, nil, 0, errors.Join(fmt.Errorf("containerd: start task %s: %w", id, err), b.remove(ctx, ctr, task))
	}
	return ctr, task, time.Since(began), nil
}

// startMany starts n containers at once (one goroutine each, as the agent
// runs one worker per pod) and returns how long each took and how long
// until the last was running. It calls running (if not nil) once all run,
// then removes them, off the clock.
func (b *baseline) startMany(ctx context.Context, prefix string, n int, so startOpts, running func()) (all time.Duration, each []time.Duration, err error) {
	type started struct {
		ctr  containerd.Container
		task containerd.Task
		took time.Duration
		err  error
	}
	out := make([]started, n)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Go(func() {
			ctr, task, took, err := b.run(ctx, fmt.Sprintf("%s-%03d", prefix, i), so)
			out[i] = started{ctr, task, took, err}
		})
	}
	wg.Wait()
	all = time.Since(began)
	if running != nil {
		running()
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for _, s := range out {
		if s.err != nil {
			mu.Lock()
			errs = append(errs, s.err)
			mu.Unlock()
			continue
		}
		each = append(each, s.took)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := b.remove(b.ctx(ctx), s.ctr, s.task); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return all, each, errors.Join(errs...)
}

// remove kills the task (if any), waits for it and deletes it, then the
// container and its snapshot.
func (b *baseline) remove(ctx context.Context, ctr containerd.Container, task containerd.Task) error {
	ctx = context.WithoutCancel(ctx)
	if task != nil {
		exited, err := task.Wait(ctx)
		if err != nil {
			return fmt.Errorf("containerd: wait task %s: %w", ctr.ID(), err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("containerd: kill task %s: %w", ctr.ID(), err)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("containerd: task %s did not exit 30s after SIGKILL", ctr.ID())
		}
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("containerd: delete task %s: %w", ctr.ID(), err)
		}
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("containerd: delete container %s: %w", ctr.ID(), err)
	}
	return nil
}

// close removes the baseline's leftovers (containers of a failed start,
// the image) and disconnects. The namespace itself goes with the run's
// containerd.
func (b *baseline) close(ctx context.Context) error {
	ctx = b.ctx(context.WithoutCancel(ctx))
	var errs []error
	if ctrs, err := b.c.Containers(ctx); err == nil {
		for _, ctr := range ctrs {
			task, err := ctr.Task(ctx, nil)
			if err != nil {
				task = nil
			}
			errs = append(errs, b.remove(ctx, ctr, task))
		}
	}
	if err := b.c.ImageService().Delete(ctx, b.img.Name()); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("containerd: delete image %s: %w", b.img.Name(), err))
	}
	return errors.Join(append(errs, b.c.Close())...)
}

// containerdVersion is the daemon's version as it reports it.
func (b *baseline) containerdVersion(ctx context.Context) string {
	v, err := b.c.Version(ctx)
	if err != nil {
		return "containerd ?"
	}
	return "containerd " + v.Version
}
