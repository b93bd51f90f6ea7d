package userspace

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// tconn is one proxied TCP connection: the client's socket, the one to
// its backend, and the bytes on their way in each direction. Only its
// loop touches it.
type tconn struct {
	l       *loop
	svc     *tcpService
	gen     int32 // tells this connection's epoll events from a reused fd's
	client  netip.Addr
	backend netip.AddrPort
	failed  map[netip.AddrPort]bool

	c, b       side // client, backend
	up, down   direction
	connecting bool
	deadline   time.Time
	closed     bool
}

// side is one socket and what epoll last said of it (edge-triggered:
// a flag stays set until a call finds nothing to do).
type side struct {
	fd                 int
	readable, writable bool
	peerClosed         bool // EPOLLRDHUP: the peer's FIN arrived
}

// direction moves bytes from src to dst: through a pooled buffer while
// reads are small, through a pipe with splice once a read fills the
// buffer (bulk: the bytes never enter user space).
type direction struct {
	src, dst *side
	buf      *[]byte
	off, end int
	splicing bool
	pipe     [2]int
	inPipe   int
	eof      bool // src said EOF
	shut     bool // dst was half-closed
}

func (d *direction) pending() bool  { return d.end > d.off || d.inPipe > 0 }
func (d *direction) finished() bool { return d.eof && !d.pending() }

func (l *loop) start(t *tcpService, cfd int, client netip.Addr) {
	l.gen++
	c := &tconn{l: l, svc: t, gen: l.gen, client: client, c: side{fd: cfd}, b: side{fd: -1}}
	c.up = direction{src: &c.c, dst: &c.b}
	c.down = direction{src: &c.b, dst: &c.c}
	if err := l.register(c, cfd); err != nil {
		t.log.Warn("register client socket", "err", err)
		rawClose(cfd)
		return
	}
	l.conns[c] = struct{}{}
	c.connectNext()
}

// connectNext connects to the next backend the balancer picks, skipping
// those that failed; with none left the client is reset.
func (c *tconn) connectNext() {
	t := c.svc
	skip := func(be netip.AddrPort) bool { return c.failed[be] }
	for {
		be, ok := t.bal.pick(c.client, c.l.now(), skip)
		if !ok {
			c.close(true) // as the kernel answers a port nobody listens on
			return
		}
		fd, err := rawSocket()
		if err != nil {
			t.log.Warn("backend socket", "err", err)
			c.close(true)
			return
		}
		err = rawConnect(fd, be)
		if err != nil && !errors.Is(err, unix.EINPROGRESS) {
			rawClose(fd)
			c.markFailed(be, err)
			continue
		}
		c.backend, c.b = be, side{fd: fd}
		if rerr := c.l.register(c, fd); rerr != nil {
			rawClose(fd)
			c.b.fd = -1
			t.log.Warn("register backend socket", "err", rerr)
			c.close(true)
			return
		}
		if err == nil {
			c.established()
			return
		}
		c.connecting = true
		c.deadline = c.l.now().Add(c.l.dialTimeout)
		c.l.connecting[c] = struct{}{}
		return
	}
}

func (c *tconn) markFailed(be netip.AddrPort, err error) {
	c.svc.log.Debug("connect to backend", "backend", be, "err", err)
	c.svc.bal.failed(be, c.l.now())
	if c.failed == nil {
		c.failed = map[netip.AddrPort]bool{}
	}
	c.failed[be] = true
}

// backendFailed drops a backend connection that did not come up and
// tries the next backend.
func (c *tconn) backendFailed(err error) {
	delete(c.l.connecting, c)
	c.connecting = false
	c.l.forget(c.b.fd)
	rawClose(c.b.fd) // leaves the epoll set with it
	c.b = side{fd: -1}
	c.markFailed(c.backend, err)
	c.connectNext()
}

func (c *tconn) established() {
	c.connecting = false
	delete(c.l.connecting, c)
	c.b.writable = true
	// A backend removed while we connected: closed like the others.
	if c.svc.closeTCP && !c.svc.bal.contains(c.backend) {
		c.close(true)
		return
	}
	c.pump()
}

// event handles epoll's news of one of the connection's sockets.
func (c *tconn) event(fd int, ev uint32) {
	s := &c.c
	if fd == c.b.fd {
		s = &c.b
	}
	if c.connecting && s == &c.b {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		// A failed connect raises EPOLLERR (or EPOLLHUP); writable
		// without either is connected (no SO_ERROR call for it).
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			err := rawSocketError(fd)
			if err == nil {
				err = unix.ECONNRESET
			}
			c.backendFailed(err)
			return
		}
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
			s.readable = true
		}
		if ev&unix.EPOLLRDHUP != 0 {
			s.peerClosed = true
		}
		c.established()
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.readable = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.writable = true
	}
	if ev&unix.EPOLLRDHUP != 0 {
		s.peerClosed = true
	}
	if !c.connecting {
		c.pump()
	}
}

// pump moves what can move without blocking, in both directions, and
// closes the connection once both are done.
func (c *tconn) pump() {
	if c.closed {
		return
	}
	for _, d := range []*direction{&c.up, &c.down} {
		if !c.flow(d) {
			c.close(true)
			return
		}
	}
	if c.up.finished() && c.down.finished() {
		c.close(false)
	}
}

// flow moves bytes from d.src to d.dst until a call would block; it
// reports false when the connection failed.
func (c *tconn) flow(d *direction) bool {
	for {
		// Write what is pending first.
		if d.inPipe > 0 {
			if !d.dst.writable {
				return true
			}
			n, err := rawSplice(d.pipe[0], d.dst.fd, d.inPipe)
			if errors.Is(err, unix.EAGAIN) {
				d.dst.writable = false
				return true
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				return false
			}
			d.inPipe -= n
			continue
		}
		if d.end > d.off {
			if !d.dst.writable {
				return true
			}
			n, err := rawWrite(d.dst.fd, (*d.buf)[d.off:d.end])
			if errors.Is(err, unix.EAGAIN) {
				d.dst.writable = false
				return true
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				return false
			}
			if n > 0 {
				d.off += n
			}
			if d.off == d.end {
				d.off, d.end = 0, 0
			}
			continue
		}
		if d.eof {
			other := &c.down
			if d == &c.down {
				other = &c.up
			}
			// Half-close the destination, unless the other direction
			// is done too: then the close that follows sends the FIN.
			if !d.shut && !other.finished() {
				rawShutdown(d.dst.fd, unix.SHUT_WR)
			}
			d.shut = true
			d.release()
			return true
		}
		if !d.src.readable {
			return true
		}
		// Read.
		if d.splicing {
			n, err := rawSplice(d.src.fd, d.pipe[1], pipeSize)
			switch {
			case errors.Is(err, unix.EAGAIN):
				d.src.readable = false
				return true
			case errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				return false
			case n == 0:
				d.eof = true
			default:
				d.inPipe = n
			}
			continue
		}
		if d.buf == nil {
			d.buf = bufPool.Get().(*[]byte)
		}
		n, err := rawRead(d.src.fd, *d.buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			d.src.readable = false
			d.release()
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false
		case n == 0:
			d.eof = true
			continue
		}
		d.off, d.end = 0, n
		switch {
		case n == len(*d.buf):
			// Bulk: splice the rest (after this buffer is written).
			if err := unix.Pipe2(d.pipe[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err == nil {
				d.splicing = true
			}
		case !d.src.peerClosed:
			// A short read drained the socket: more data brings a new
			// edge. (With the peer's FIN seen, read on to the EOF.)
			d.src.readable = false
		}
	}
}

// release returns an empty buffer to the pool.
func (d *direction) release() {
	if d.buf != nil && d.end == d.off {
		bufPool.Put(d.buf)
		d.buf = nil
	}
}

// close closes both sockets (leaving the epoll set with them); reset
// sends RST instead of FIN (a failure, or no backend).
func (c *tconn) close(reset bool) {
	if c.closed {
		return
	}
	c.closed = true
	l := c.l
	delete(l.conns, c)
	delete(l.connecting, c)
	for _, s := range []*side{&c.c, &c.b} {
		if s.fd < 0 {
			continue
		}
		if reset {
			rawResetOnClose(s.fd)
		}
		l.forget(s.fd)
		rawClose(s.fd)
		s.fd = -1
	}
	for _, d := range []*direction{&c.up, &c.down} {
		if d.buf != nil {
			bufPool.Put(d.buf)
			d.buf = nil
		}
		if d.splicing {
			rawClose(d.pipe[0])
			rawClose(d.pipe[1])
			d.splicing = false
		}
	}
}
