package userspace

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// tcpService proxies one TCP service port: an accept loop on VIP:port and
// two splicing copies per connection.
type tcpService struct {
	key      ServiceKey
	ln       *net.TCPListener
	bal      *balancer
	ctr      *counters
	sockets  sockets
	now      func() time.Time
	log      *slog.Logger
	closeTCP bool

	mu     sync.Mutex
	flows  map[*tcpFlow]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and every flow
}

type tcpFlow struct {
	backend netip.AddrPort
	client  *net.TCPConn
	conn    *net.TCPConn // to the backend
	once    sync.Once
}

func (f *tcpFlow) close() {
	f.once.Do(func() {
		f.client.Close()
		f.conn.Close()
	})
}

func startTCP(key ServiceKey, ln *net.TCPListener, bal *balancer, ctr *counters, s sockets, now func() time.Time, log *slog.Logger, closeTCP bool) *tcpService {
	t := &tcpService{key: key, ln: ln, bal: bal, ctr: ctr, sockets: s, now: now, log: log, closeTCP: closeTCP, flows: make(map[*tcpFlow]struct{})}
	t.wg.Add(1)
	go t.acceptLoop()
	return t
}

func (t *tcpService) acceptLoop() {
	defer t.wg.Done()
	var backoff time.Duration
	for {
		c, err := t.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or a similar passing condition: wait and
			// retry instead of spinning (net/http's rule).
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("accept", "service", t.key, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		t.ctr.connections.Add(1)
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serve(c)
	}
}

// serve connects c to a backend (trying the others when a dial fails)
// and splices the two until both directions end.
func (t *tcpService) serve(c *net.TCPConn) {
	defer t.wg.Done()
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	var failed map[netip.AddrPort]bool
	skip := func(be netip.AddrPort) bool { return failed[be] }
	var f *tcpFlow
	for {
		be, ok := t.bal.pick(client, t.now(), skip)
		if !ok {
			// No backend answered: reset rather than close, as the
			// kernel does for a port nobody listens on.
			c.SetLinger(0)
			c.Close()
			return
		}
		bc, err := t.sockets.dialTCP(be)
		if err == nil {
			f = &tcpFlow{backend: be, client: c, conn: bc}
			break
		}
		t.log.Debug("dial backend", "service", t.key, "backend", be, "err", err)
		if failed == nil {
			failed = make(map[netip.AddrPort]bool)
		}
		failed[be] = true
	}
	if !t.track(f) {
		f.close()
		return
	}
	defer t.untrack(f)
	splice(f)
}

// splice copies both ways; a direction that ends cleanly half-closes the
// other side (unless the other direction has ended too: the close that
// follows sends the FIN), an error closes both.
func splice(f *tcpFlow) {
	var ended atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(f, f.conn, f.client, &ended)
	}()
	pipe(f, f.client, f.conn, &ended)
	<-done
	f.close()
}

func pipe(f *tcpFlow, dst, src *net.TCPConn, ended *atomic.Int32) {
	if err := relay(dst, src); err != nil {
		f.close()
		return
	}
	if ended.Add(1) == 1 {
		dst.CloseWrite()
	}
}

// bufSize is the copy buffer of a direction while its reads are small.
const bufSize = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// relay copies src to dst until EOF. Small reads (requests, replies) go
// through a pooled buffer with read and write; once a read fills the
// buffer the transfer is bulk and the rest is spliced (io.Copy between
// two *net.TCPConn uses splice(2): the data never enters user space).
// Splicing a few hundred bytes costs more than copying them: two splice
// calls and a pipe against a read and a write.
func relay(dst, src *net.TCPConn) error {
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				bufPool.Put(bp)
				return werr
			}
		}
		if err == io.EOF {
			bufPool.Put(bp)
			return nil
		}
		if err != nil {
			bufPool.Put(bp)
			return err
		}
		if n == len(buf) {
			bufPool.Put(bp)
			_, err := io.Copy(dst, src)
			return err
		}
	}
}

func (t *tcpService) track(f *tcpFlow) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	// A flow whose backend left between the pick and now is closed like
	// the others were.
	if t.closeTCP && !t.bal.contains(f.backend) {
		return false
	}
	t.flows[f] = struct{}{}
	return true
}

func (t *tcpService) untrack(f *tcpFlow) {
	t.mu.Lock()
	delete(t.flows, f)
	t.mu.Unlock()
}

// update replaces the backends. With closeTCP, connections to backends
// that left are closed at once; otherwise they drain.
func (t *tcpService) update(backends []netip.AddrPort, affinity time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bal.update(backends, affinity)
	if !t.closeTCP {
		return
	}
	for f := range t.flows {
		if !t.bal.contains(f.backend) {
			f.close()
		}
	}
}

func (t *tcpService) sweep(now time.Time) { t.bal.expire(now) }

// close stops accepting, closes every connection and waits for the
// goroutines.
func (t *tcpService) close() {
	t.mu.Lock()
	t.closed = true
	t.ln.Close()
	for f := range t.flows {
		f.close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}
