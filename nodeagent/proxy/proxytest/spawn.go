package proxytest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// spawner starts child processes from one OS thread that lives as long
// as the spawner (in a namespace, for a namespace's children). The kernel
// sends a child its Pdeathsig when the thread that forked it exits, and
// the Go runtime ends any thread whose goroutine exits locked (such as an
// event loop's that entered a namespace): a child forked from an
// ordinary thread can be killed at any moment.
type spawner struct {
	fns  chan func()
	once sync.Once
}

// newSpawner starts the spawner's thread, in the network namespace at
// nsPath ("": the process's own).
func newSpawner(nsPath string) (*spawner, error) {
	s := &spawner{fns: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with stop
		if nsPath != "" {
			if err := enter(nsPath); err != nil {
				ready <- err
				return
			}
		}
		ready <- nil
		for f := range s.fns {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

// enter moves the calling thread into the namespace at path and checks
// it is not the machine's own.
func enter(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", path, err)
	}
	if host, err := nsrun.InHostNetNS(); err != nil || host {
		return fmt.Errorf("spawner thread is not in %s (%v)", path, err)
	}
	return nil
}

// start starts cmd from the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error)
	s.fns <- func() { errc <- cmd.Start() }
	return <-errc
}

// stop ends the spawner's thread; its children's Pdeathsig fires.
func (s *spawner) stop() { s.once.Do(func() { close(s.fns) }) }

var (
	rootSpawnerOnce sync.Once
	rootSpawner     *spawner
	rootSpawnerErr  error
)

// processSpawner is the spawner of processes in the test process's own
// namespace (proxier processes); it lives as long as the test binary.
func processSpawner() (*spawner, error) {
	rootSpawnerOnce.Do(func() { rootSpawner, rootSpawnerErr = newSpawner("") })
	return rootSpawner, rootSpawnerErr
}
