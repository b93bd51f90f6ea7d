package userspace

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The TCP proxy runs on event loops, not a goroutine per connection: one
// goroutine per CPU with its own epoll instance moves the bytes of the
// connections it accepted with raw non-blocking read, write and splice
// calls (rawsys.go), and parks in the runtime's poller while nothing
// happens. Measured on the benchmark (short HTTP connections), a
// goroutine-per-connection proxy over net.TCPConn spent ~220 µs of CPU
// per connection against HAProxy's ~150 µs: ~28 system calls per
// connection against HAProxy's ~20 (the net package's getsockname,
// getpeername and SO_ERROR calls, a read that finds nothing before every
// wait, an extra epoll_ctl, scheduler hand-offs) plus goroutine stack
// growth and garbage. The loops make ~17 calls per connection and spend
// as much CPU per connection as HAProxy.
//
// Every listener is registered in every loop (EPOLLEXCLUSIVE: one loop
// wakes per connection); a connection lives in the loop that accepted it.
// Other goroutines reach a loop through commands (run and waited for)
// woken by an eventfd.

// loops are the event loops of one Proxy.
type loops struct {
	ls []*loop
}

func startLoops(n int, netns string, dialTimeout time.Duration, now func() time.Time, log *slog.Logger) (*loops, error) {
	ls := &loops{}
	for i := range n {
		l, err := newLoop(i, netns, dialTimeout, now, log)
		if err != nil {
			ls.close()
			return nil, err
		}
		ls.ls = append(ls.ls, l)
	}
	return ls, nil
}

// each runs f in every loop, on the loop's goroutine, and waits for all.
func (ls *loops) each(f func(l *loop)) {
	var wg sync.WaitGroup
	for _, l := range ls.ls {
		wg.Add(1)
		l.do(func() {
			defer wg.Done()
			f(l)
		})
	}
	wg.Wait()
}

// close stops the loops; every connection still open is closed.
func (ls *loops) close() {
	for _, l := range ls.ls {
		l.stop()
	}
}

// loop is one event loop.
type loop struct {
	id          int
	epfd, evfd  int
	netns       string
	dialTimeout time.Duration
	now         func() time.Time
	log         *slog.Logger

	mu       sync.Mutex
	cmds     []func()
	stopping bool
	done     chan struct{}

	// Owned by the loop's goroutine.
	listeners  map[int]*tcpService
	fds        []*tconn // by fd: both fds of every connection
	conns      map[*tconn]struct{}
	connecting map[*tconn]struct{}
	paused     map[int]time.Time // listeners disarmed after EMFILE, until
	gen        int32
	epfile     *os.File // epfd in the runtime's poller
}

func newLoop(id int, netns string, dialTimeout time.Duration, now func() time.Time, log *slog.Logger) (*loop, error) {
	l := &loop{
		id: id, netns: netns, dialTimeout: dialTimeout, now: now, log: log,
		done:       make(chan struct{}),
		listeners:  map[int]*tcpService{},
		conns:      map[*tconn]struct{}{},
		connecting: map[*tconn]struct{}{},
		paused:     map[int]time.Time{},
	}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
		unix.Close(l.evfd)
		unix.Close(l.epfd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	ready := make(chan error)
	go l.run(ready)
	if err := <-ready; err != nil {
		unix.Close(l.evfd)
		unix.Close(l.epfd)
		return nil, err
	}
	return l, nil
}

// do queues f to run on the loop's goroutine and wakes the loop.
func (l *loop) do(f func()) {
	l.mu.Lock()
	l.cmds = append(l.cmds, f)
	l.mu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.wake()
	<-l.done
}

// run is the loop. It waits in the Go runtime's poller, not in a
// blocking epoll_wait: the loop's epoll fd is itself pollable, so the
// goroutine parks like any network goroutine while nothing happens and
// takes a batch of events with a non-blocking epoll_wait when something
// does. (A thread blocked in epoll_wait makes the runtime hand its P to
// another thread and take one back on every wake-up: measured, ~9 futex
// and nanosleep calls per proxied connection.)
//
// With a namespace to work in, the goroutine locks its thread there (the
// backend sockets it creates must be in it); when the loop ends the thread
// goes back (or, if it cannot, ends with the goroutine). Ending threads is
// avoided: a child process started with Pdeathsig is killed when the
// thread that forked it exits, and the runtime reuses threads for any
// goroutine.
func (l *loop) run(ready chan<- error) {
	defer close(l.done)
	if l.netns != "" {
		runtime.LockOSThread()
		restore, err := enterNetns(l.netns)
		if err != nil {
			ready <- err
			return // the thread may be half-switched: it ends
		}
		defer func() {
			if restore() == nil {
				runtime.UnlockOSThread()
			}
		}()
	}
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		ready <- fmt.Errorf("epoll fd: %w", err)
		return
	}
	l.epfile = os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := l.epfile.SyscallConn()
	if err != nil {
		ready <- fmt.Errorf("epoll fd: %w", err)
		return
	}
	ready <- nil
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	wait := func(uintptr) bool {
		n, werr = rawEpollPoll(l.epfd, events)
		return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
	}
	for {
		// Connects under way and paused listeners need the loop back
		// within a tick even when nothing happens.
		if len(l.connecting) > 0 || len(l.paused) > 0 {
			l.epfile.SetReadDeadline(l.now().Add(tick))
		} else {
			l.epfile.SetReadDeadline(time.Time{})
		}
		n, werr = 0, nil
		if err := rc.Read(wait); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			l.log.Error("event loop: wait", "loop", l.id, "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		if werr != nil {
			l.log.Error("event loop: epoll_wait", "loop", l.id, "err", werr)
		}
		for i := range n {
			ev := &events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.evfd:
				if l.commands() {
					l.shutdown()
					return
				}
			case l.listeners[fd] != nil:
				l.accept(l.listeners[fd], fd)
			default:
				if c := l.lookup(fd); c != nil && c.gen == ev.Pad {
					c.event(fd, ev.Events)
				}
			}
		}
		if len(l.connecting) > 0 || len(l.paused) > 0 {
			l.timers()
		}
	}
}

// tick is how often the loop checks connect timeouts while connects are
// under way.
const tick = 50 * time.Millisecond

// enterNetns moves the calling (locked) thread into the network
// namespace at path and returns the function that moves it back.
func enterNetns(path string) (restore func() error, err error) {
	own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("own netns: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		own.Close()
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		own.Close()
		return nil, fmt.Errorf("enter netns %s: %w", path, err)
	}
	return func() error {
		defer own.Close()
		return unix.Setns(int(own.Fd()), unix.CLONE_NEWNET)
	}, nil
}

// commands runs the queued commands; it reports whether the loop must
// stop.
func (l *loop) commands() bool {
	var buf [8]byte
	unix.Read(l.evfd, buf[:])
	l.mu.Lock()
	cmds, stopping := l.cmds, l.stopping
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
	return stopping
}

// shutdown closes every connection of the loop.
func (l *loop) shutdown() {
	for c := range l.conns {
		c.close(true)
	}
	unix.Close(l.evfd)
	l.epfile.Close() // closes epfd
}

// addListener registers a service's listening socket.
func (l *loop) addListener(t *tcpService) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(t.lfd)}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, t.lfd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl listener: %w", err)
	}
	l.listeners[t.lfd] = t
	return nil
}

// removeListener unregisters a service's listening socket and closes its
// connections, or leaves them to drain.
func (l *loop) removeListener(t *tcpService, drain bool) {
	if l.listeners[t.lfd] == t {
		if _, paused := l.paused[t.lfd]; !paused {
			rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, t.lfd, nil)
		}
		delete(l.listeners, t.lfd)
		delete(l.paused, t.lfd)
	}
	if !drain {
		l.closeConns(t, func(*tconn) bool { return true })
	}
}

// closeConns closes the connections of t for which match reports true.
func (l *loop) closeConns(t *tcpService, match func(*tconn) bool) {
	for c := range l.conns {
		if c.svc == t && match(c) {
			c.close(true)
		}
	}
}

// accept takes the connections waiting on a listener (a bounded batch:
// the other connections of the loop get their turn).
func (l *loop) accept(t *tcpService, lfd int) {
	for range 64 {
		nfd, client, err := rawAccept(lfd)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE), errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.ENOMEM):
			// The listener is level-triggered: disarm it for a while
			// instead of spinning on it.
			t.log.Warn("accept: out of resources, pausing the listener", "err", err)
			rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, lfd, nil)
			l.paused[lfd] = l.now().Add(100 * time.Millisecond)
			return
		default:
			t.log.Warn("accept", "err", err)
			return
		}
		t.ctr.connections.Add(1)
		l.start(t, nfd, client)
	}
}

// timers fails connects that took too long and re-arms paused listeners.
func (l *loop) timers() {
	now := l.now()
	for c := range l.connecting {
		if now.After(c.deadline) {
			c.backendFailed(unix.ETIMEDOUT)
		}
	}
	for lfd, until := range l.paused {
		if now.After(until) {
			rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(lfd)})
			delete(l.paused, lfd)
		}
	}
}

// register adds a connection's fd to the loop, edge-triggered.
func (l *loop) register(c *tconn, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: c.gen}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	for fd >= len(l.fds) {
		l.fds = append(l.fds, make([]*tconn, len(l.fds)+64)...)
	}
	l.fds[fd] = c
	return nil
}

func (l *loop) lookup(fd int) *tconn {
	if fd < 0 || fd >= len(l.fds) {
		return nil
	}
	return l.fds[fd]
}

func (l *loop) forget(fd int) {
	if fd >= 0 && fd < len(l.fds) {
		l.fds[fd] = nil
	}
}
