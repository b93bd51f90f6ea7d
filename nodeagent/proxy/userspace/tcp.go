package userspace

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// bufSize is a direction's buffer while its reads are small; pipeSize is
// what one splice moves at most once they are not.
const (
	bufSize  = 16 << 10
	pipeSize = 64 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// tcpService proxies one TCP service port: a listening socket on
// VIP:port registered in every event loop.
type tcpService struct {
	key      ServiceKey
	lfd      int
	bal      *balancer
	ctr      *counters
	loops    *loops
	log      *slog.Logger
	closeTCP bool
}

// listenTCP opens a non-blocking listening socket on addr in the calling
// thread's network namespace.
func listenTCP(addr netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("listen tcp %s: socket: %w", addr, err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen tcp %s: bind: %w", addr, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	return fd, nil
}

func newTCP(key ServiceKey, lfd int, bal *balancer, ctr *counters, ls *loops, log *slog.Logger, closeTCP bool) *tcpService {
	return &tcpService{key: key, lfd: lfd, bal: bal, ctr: ctr, loops: ls, log: log, closeTCP: closeTCP}
}

// registerTCP registers new services' listening sockets in every loop
// (one round trip to the loops for all of them) and returns those that
// failed, closed.
func registerTCP(ls *loops, ts []*tcpService) map[*tcpService]error {
	var mu sync.Mutex
	failed := map[*tcpService]error{}
	ls.each(func(l *loop) {
		for _, t := range ts {
			if err := l.addListener(t); err != nil {
				mu.Lock()
				failed[t] = err
				mu.Unlock()
			}
		}
	})
	for t := range failed {
		t.close(false)
	}
	return failed
}

// update replaces the backends. With closeTCP, connections to backends
// that left are closed at once; otherwise they drain.
func (t *tcpService) update(backends []netip.AddrPort, affinity time.Duration) {
	t.bal.update(backends, affinity)
	if !t.closeTCP {
		return
	}
	t.loops.each(func(l *loop) {
		l.closeConns(t, func(c *tconn) bool { return !t.bal.contains(c.backend) })
	})
}

func (t *tcpService) sweep(now time.Time) { t.bal.expire(now) }

// close stops accepting. The service's connections drain if drain is
// set (its VIP stays: a service left without backends) and closeTCP is
// not; otherwise they are reset (a removed service: with its VIP gone
// their packets would go nowhere).
func (t *tcpService) close(drain bool) {
	t.loops.each(func(l *loop) { l.removeListener(t, drain && !t.closeTCP) })
	rawClose(t.lfd)
}

// reset closes the connections of a closed service that were left to
// drain (the service is gone now, and its VIP with it).
func (t *tcpService) reset() {
	t.loops.each(func(l *loop) { l.closeConns(t, func(*tconn) bool { return true }) })
}
