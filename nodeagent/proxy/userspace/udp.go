package userspace

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// maxDatagram is the largest UDP payload over IPv4: buffers this size
// never truncate.
const maxDatagram = 65535

// udpService proxies one UDP service port: datagrams from a client go to
// its flow's backend over a socket connected to that backend, and the
// backend's replies go back from VIP:port (the socket the client sent to),
// so the client sees the VIP as their source.
type udpService struct {
	key     ServiceKey
	conn    *net.UDPConn // bound to VIP:port
	bal     *balancer
	ctr     *counters
	sockets sockets
	now     func() time.Time
	log     *slog.Logger
	idle    time.Duration

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow // by client address
	closed bool
	wg     sync.WaitGroup // the read loop and every flow's reply loop
}

// udpFlow is one client's association with a backend.
type udpFlow struct {
	client  netip.AddrPort
	backend netip.AddrPort
	conn    *net.UDPConn // connected to the backend
	last    atomic.Int64 // unix nanoseconds of the last datagram either way
}

func startUDP(key ServiceKey, conn *net.UDPConn, bal *balancer, ctr *counters, s sockets, now func() time.Time, log *slog.Logger, idle time.Duration) *udpService {
	u := &udpService{key: key, conn: conn, bal: bal, ctr: ctr, sockets: s, now: now, log: log, idle: idle, flows: make(map[netip.AddrPort]*udpFlow)}
	u.wg.Add(1)
	go u.readLoop()
	return u
}

func (u *udpService) readLoop() {
	defer u.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			u.log.Debug("udp read", "service", u.key, "err", err)
			continue
		}
		u.ctr.datagrams.Add(1)
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		f := u.flow(client)
		if f == nil {
			continue // no backend: dropped, as by a port nobody reads
		}
		f.last.Store(u.now().UnixNano())
		if _, err := f.conn.Write(buf[:n]); err != nil {
			// The backend's port went away (an ICMP error queued on the
			// socket): forget the flow so the next datagram picks again.
			u.log.Debug("udp to backend", "service", u.key, "backend", f.backend, "err", err)
			u.drop(f)
		}
	}
}

// flow returns client's flow, starting one to a picked backend when it
// has none.
func (u *udpService) flow(client netip.AddrPort) *udpFlow {
	u.mu.Lock()
	f := u.flows[client]
	u.mu.Unlock()
	if f != nil {
		return f
	}
	var failed map[netip.AddrPort]bool
	skip := func(be netip.AddrPort) bool { return failed[be] }
	for {
		be, ok := u.bal.pick(client.Addr(), u.now(), skip)
		if !ok {
			return nil
		}
		c, err := u.sockets.dialUDP(be)
		if err != nil {
			u.log.Debug("udp dial backend", "service", u.key, "backend", be, "err", err)
			if failed == nil {
				failed = make(map[netip.AddrPort]bool)
			}
			failed[be] = true
			continue
		}
		f = &udpFlow{client: client, backend: be, conn: c}
		break
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || !u.bal.contains(f.backend) {
		f.conn.Close()
		return nil
	}
	u.ctr.connections.Add(1)
	u.flows[client] = f
	u.wg.Add(1)
	go u.replyLoop(f)
	return f
}

// replyLoop sends the backend's datagrams to the client until the flow is
// closed or the backend's port refuses.
func (u *udpService) replyLoop(f *udpFlow) {
	defer u.wg.Done()
	defer u.drop(f)
	buf := make([]byte, maxDatagram)
	for {
		n, err := f.conn.Read(buf)
		if err != nil {
			return
		}
		f.last.Store(u.now().UnixNano())
		if _, err := u.conn.WriteToUDPAddrPort(buf[:n], f.client); err != nil {
			u.log.Debug("udp to client", "service", u.key, "client", f.client, "err", err)
		}
	}
}

// drop forgets f and closes its socket (its reply loop then ends).
func (u *udpService) drop(f *udpFlow) {
	u.mu.Lock()
	if u.flows[f.client] == f {
		delete(u.flows, f.client)
	}
	u.mu.Unlock()
	f.conn.Close()
}

// update replaces the backends and closes the flows to those that left
// at once: their clients' next datagrams start flows to live backends.
func (u *udpService) update(backends []netip.AddrPort, affinity time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.bal.update(backends, affinity)
	for c, f := range u.flows {
		if !u.bal.contains(f.backend) {
			delete(u.flows, c)
			f.conn.Close()
		}
	}
}

// sweep closes the flows idle for longer than the idle timeout and ends
// expired affinities.
func (u *udpService) sweep(now time.Time) {
	u.bal.expire(now)
	deadline := now.Add(-u.idle).UnixNano()
	u.mu.Lock()
	defer u.mu.Unlock()
	for c, f := range u.flows {
		if f.last.Load() < deadline {
			delete(u.flows, c)
			f.conn.Close()
		}
	}
}

// reset does nothing: a closed UDP service has no flows left.
func (u *udpService) reset() {}

// close stops the service and closes its flows (a flow has no
// connection to drain).
func (u *udpService) close(bool) {
	u.mu.Lock()
	u.closed = true
	u.conn.Close()
	for c, f := range u.flows {
		delete(u.flows, c)
		f.conn.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}
