package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Exec implements runtime.Execer: the command runs in the container's
// namespaces and cgroup with its process settings (user, env, working
// directory, capabilities).
func (r *Runtime) Exec(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
	ctx = r.ns(ctx)
	if len(req.Cmd) == 0 {
		return -1, fmt.Errorf("containerd: exec in %s: no command", id)
	}
	c, err := r.client.LoadContainer(ctx, string(id))
	if err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, notFound(err))
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return -1, fmt.Errorf("containerd: exec in %s: not running: %w", id, runtime.ErrInvalidState)
	}
	if err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, err)
	}
	if st, err := task.Status(ctx); err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, err)
	} else if st.Status != containerd.Running {
		return -1, fmt.Errorf("containerd: exec in %s: it is %s: %w", id, st.Status, runtime.ErrInvalidState)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: spec: %w", id, err)
	}
	pspec := *spec.Process
	pspec.Args = req.Cmd
	pspec.Terminal = req.TTY
	pspec.ConsoleSize = nil

	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil || req.TTY {
		stderr = io.Discard
	}
	// The caller may pass one writer for both streams: copies never
	// write to it at once.
	var mu sync.Mutex
	stdout, stderr = &lockedWriter{mu: &mu, w: stdout}, &lockedWriter{mu: &mu, w: stderr}
	var stdin io.Reader
	stdinEOF := make(chan struct{})
	if req.Stdin != nil {
		stdin = &eofReader{r: req.Stdin, eof: stdinEOF}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(filepath.Join(r.cfg.StateDir, "fifo"))}
	if req.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	execID := "exec-" + newID()[:20]
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(opts...))
	if err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, err)
	}
	cleanup := context.WithoutCancel(ctx)
	defer proc.Delete(cleanup, containerd.WithProcessKill)
	exited, err := proc.Wait(ctx)
	if err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, err)
	}

	// Helpers that live as long as the process: stdin's end and resizes.
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(done); wg.Wait() }()
	if req.Stdin != nil {
		wg.Go(func() {
			select {
			case <-stdinEOF:
				// The shim keeps its end of the FIFO open: tell it.
				_ = proc.CloseIO(cleanup, containerd.WithStdinCloser)
			case <-done:
			}
		})
	}
	if req.TTY && req.Resize != nil {
		wg.Go(func() {
			for {
				select {
				case sz, ok := <-req.Resize:
					if !ok {
						return
					}
					_ = proc.Resize(cleanup, uint32(sz.Width), uint32(sz.Height))
				case <-done:
					return
				}
			}
		})
	}

	select {
	case st := <-exited:
		// The output is complete once the copies end.
		proc.IO().Wait()
		code, _, err := st.Result()
		if err != nil {
			return -1, fmt.Errorf("containerd: exec in %s: %w", id, err)
		}
		return int(code), nil
	case <-ctx.Done():
		_ = proc.Kill(cleanup, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		return -1, fmt.Errorf("containerd: exec in %s: %w", id, ctx.Err())
	}
}

// eofReader closes eof when r is exhausted.
type eofReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.eof) })
		if errors.Is(err, io.EOF) {
			return n, io.EOF
		}
	}
	return n, err
}

// lockedWriter serialises writes of several copies to possibly one writer.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
