package userspace

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Protocol is a service port's transport protocol.
type Protocol uint8

// Protocols (their IP protocol numbers).
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// ServiceKey names a service port: its VIP, port and protocol.
type ServiceKey struct {
	VIP      netip.Addr
	Port     uint16
	Protocol Protocol
}

func (k ServiceKey) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.VIP, k.Port), k.Protocol)
}

// Service is one service port and its ready backends.
type Service struct {
	VIP      netip.Addr
	Port     uint16
	Protocol Protocol
	// Backends are the ready backends; none: connections are refused.
	Backends []netip.AddrPort
	// AffinityTimeout > 0 turns on ClientIP affinity: a client's new flows
	// go to the backend of its last one while less than this has passed
	// since it was last used.
	AffinityTimeout time.Duration
}

// Key returns the service port's key.
func (s Service) Key() ServiceKey { return ServiceKey{VIP: s.VIP, Port: s.Port, Protocol: s.Protocol} }

// Counters count a service port's traffic since it was first synced.
type Counters struct {
	// Connections are accepted TCP connections plus UDP flows started.
	Connections uint64
	// Datagrams are UDP datagrams received from clients.
	Datagrams uint64
}

type counters struct {
	connections atomic.Uint64
	datagrams   atomic.Uint64
}

// Defaults of Config.
const (
	DefaultLink           = "lo"
	DefaultUDPIdleTimeout = 30 * time.Second
	DefaultDialTimeout    = 2 * time.Second
)

// Config configures a Proxy.
type Config struct {
	// NetNS is the network namespace the VIPs, listeners and backend
	// connections live in (a path such as /run/netns/NAME). Empty: the
	// calling process's.
	NetNS string
	// Link is the link the VIPs' local routes point at (default lo).
	Link string
	// UDPIdleTimeout ends a UDP flow nobody used for that long (default 30s).
	UDPIdleTimeout time.Duration
	// DialTimeout bounds a connect to a backend before the next one is
	// tried (default 2s).
	DialTimeout time.Duration
	// CloseTCP closes TCP connections to a backend at once when it leaves
	// its service; otherwise they drain (UDP flows are always closed).
	CloseTCP bool
	// Logger (default: discard).
	Logger *slog.Logger
	// Now is the clock of affinity and idle timeouts (default time.Now).
	Now func() time.Time
}

// listener is one proxied service port.
type listener interface {
	update(backends []netip.AddrPort, affinity time.Duration)
	sweep(now time.Time)
	// close stops the listener; drain asks to leave established
	// connections be (the service stays, without backends).
	close(drain bool)
	// reset ends the connections close left to drain.
	reset()
}

// Proxy is the userspace service proxy of one network namespace. Sync,
// Counters and Close are safe for concurrent use.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	sockets sockets

	loops *loops // the TCP event loops

	mu        sync.Mutex // serialises Sync and Close; guards what follows
	vips      *vips
	listeners map[ServiceKey]listener
	draining  map[ServiceKey][]listener // closed, connections draining
	counters  map[ServiceKey]*counters
	closed    bool

	stop chan struct{}
	done chan struct{} // the janitor ended
}

// New opens the proxy in its namespace. VIP routes that an earlier proxy
// left (RouteProtocol) are adopted: the first Sync keeps those still
// wanted and removes the others.
func New(cfg Config) (*Proxy, error) {
	if cfg.Link == "" {
		cfg.Link = DefaultLink
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v, err := openVIPs(cfg.NetNS, cfg.Link)
	if err != nil {
		return nil, fmt.Errorf("userspace proxy: %w", err)
	}
	ls, err := startLoops(runtime.GOMAXPROCS(0), cfg.NetNS, cfg.DialTimeout, cfg.Now, cfg.Logger)
	if err != nil {
		v.close()
		return nil, fmt.Errorf("userspace proxy: %w", err)
	}
	p := &Proxy{
		loops:     ls,
		cfg:       cfg,
		log:       cfg.Logger,
		sockets:   sockets{netns: cfg.NetNS, dialTimeout: cfg.DialTimeout},
		vips:      v,
		listeners: make(map[ServiceKey]listener),
		draining:  make(map[ServiceKey][]listener),
		counters:  make(map[ServiceKey]*counters),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go p.janitor()
	return p, nil
}

// janitor ends idle UDP flows and expired affinities.
func (p *Proxy) janitor() {
	defer close(p.done)
	period := min(p.cfg.UDPIdleTimeout/2, 10*time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			now := p.cfg.Now()
			for _, l := range p.listeners {
				l.sweep(now)
			}
			p.mu.Unlock()
		}
	}
}

// Sync makes the proxy serve exactly services (the full desired set):
// VIPs of every service local, a listener for every service port with
// backends, none for the others; listeners of service ports that stay
// keep their connections and get the new backends. Errors for one
// service port do not stop the others; they are returned joined.
func (p *Proxy) Sync(services []Service) error {
	want := make(map[ServiceKey]Service, len(services))
	vipSet := make(map[netip.Addr]bool)
	var errs []error
	for _, s := range services {
		if err := validate(s); err != nil {
			errs = append(errs, err)
			continue
		}
		k := s.Key()
		if _, dup := want[k]; dup {
			errs = append(errs, fmt.Errorf("service %s listed twice", k))
			continue
		}
		want[k] = s
		vipSet[s.VIP] = true
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("userspace proxy: closed")
	}
	for ip := range vipSet {
		if err := p.vips.ensure(ip); err != nil {
			errs = append(errs, err)
		}
	}
	var closing []closeReq
	for k, l := range p.listeners {
		if s, ok := want[k]; !ok || len(s.Backends) == 0 {
			closing = append(closing, closeReq{l, ok})
			delete(p.listeners, k)
			if ok {
				p.draining[k] = append(p.draining[k], l)
			}
		}
	}
	p.closeListeners(closing)
	for k, ls := range p.draining {
		if _, ok := want[k]; !ok {
			for _, l := range ls {
				l.reset()
			}
			delete(p.draining, k)
		}
	}
	for k := range p.counters {
		if _, ok := want[k]; !ok {
			delete(p.counters, k)
		}
	}
	var open []Service
	for k, s := range want {
		if p.counters[k] == nil {
			p.counters[k] = new(counters)
		}
		if len(s.Backends) == 0 {
			continue
		}
		if l := p.listeners[k]; l != nil {
			l.update(s.Backends, s.AffinityTimeout)
			continue
		}
		open = append(open, s)
	}
	// One trip into the namespace for all new sockets, one to the event
	// loops for all new TCP listeners.
	var addedTCP []*tcpService
	if err := p.sockets.in(func() error {
		for _, s := range open {
			l, err := p.listen(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", s.Key(), err))
				continue
			}
			if t, ok := l.(*tcpService); ok {
				addedTCP = append(addedTCP, t)
			}
			p.listeners[s.Key()] = l
		}
		return nil
	}); err != nil {
		errs = append(errs, err)
	}
	for t, err := range registerTCP(p.loops, addedTCP) {
		errs = append(errs, fmt.Errorf("service %s: %w", t.key, err))
		delete(p.listeners, t.key)
	}
	for ip := range p.vips.owned {
		if !vipSet[ip] {
			if err := p.vips.remove(ip); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("userspace proxy: sync: %w", err)
	}
	return nil
}

func validate(s Service) error {
	switch {
	case !s.VIP.Is4():
		return fmt.Errorf("service %s: VIP is not IPv4", s.Key())
	case s.Port == 0:
		return fmt.Errorf("service %s: port 0", s.Key())
	case s.Protocol != TCP && s.Protocol != UDP:
		return fmt.Errorf("service %s: unsupported protocol", s.Key())
	}
	for _, be := range s.Backends {
		if !be.Addr().Is4() || be.Port() == 0 {
			return fmt.Errorf("service %s: invalid backend %s", s.Key(), be)
		}
	}
	return nil
}

// listen opens s's socket in the calling thread's namespace and starts
// serving it (a TCP service once registered with the loops).
func (p *Proxy) listen(s Service) (listener, error) {
	k := s.Key()
	addr := netip.AddrPortFrom(s.VIP, s.Port)
	bal := newBalancer(s.Backends, s.AffinityTimeout)
	log := p.log.With("service", k.String())
	switch s.Protocol {
	case TCP:
		lfd, err := listenTCP(addr)
		if err != nil {
			return nil, err
		}
		return newTCP(k, lfd, bal, p.counters[k], p.loops, log, p.cfg.CloseTCP), nil
	default:
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, err
		}
		return startUDP(k, c, bal, p.counters[k], p.sockets, p.cfg.Now, log, p.cfg.UDPIdleTimeout), nil
	}
}

// closeReq asks to close a listener, leaving its connections to drain.
type closeReq struct {
	l     listener
	drain bool
}

// closeListeners closes listeners: the TCP ones in one round trip to the
// event loops.
func (p *Proxy) closeListeners(reqs []closeReq) {
	var tcp []closeReq
	for _, r := range reqs {
		if _, ok := r.l.(*tcpService); ok {
			tcp = append(tcp, r)
			continue
		}
		r.l.close(r.drain)
	}
	if len(tcp) == 0 {
		return
	}
	p.loops.each(func(l *loop) {
		for _, r := range tcp {
			t := r.l.(*tcpService)
			l.removeListener(t, r.drain && !t.closeTCP)
		}
	})
	for _, r := range tcp {
		rawClose(r.l.(*tcpService).lfd)
	}
}

// Counters returns the counters of every synced service port.
func (p *Proxy) Counters() map[ServiceKey]Counters {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[ServiceKey]Counters, len(p.counters))
	for k, c := range p.counters {
		out[k] = Counters{Connections: c.connections.Load(), Datagrams: c.datagrams.Load()}
	}
	return out
}

// Close stops every listener, closes every connection and flow, and
// removes the VIP routes the proxy added. Closing twice does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	var closing []closeReq
	for k, l := range p.listeners {
		closing = append(closing, closeReq{l, false})
		delete(p.listeners, k)
	}
	p.closeListeners(closing)
	err := p.vips.removeAll()
	p.vips.close()
	p.mu.Unlock()
	<-p.done
	p.loops.close()
	if err != nil {
		return fmt.Errorf("userspace proxy: close: %w", err)
	}
	return nil
}

// Cleanup removes every VIP route a proxy added in cfg.NetNS (routes of
// RouteProtocol in the local table): what a proxy that did not Close left
// behind (skiff agent --cleanup).
func Cleanup(cfg Config) error {
	if cfg.Link == "" {
		cfg.Link = DefaultLink
	}
	v, err := openVIPs(cfg.NetNS, cfg.Link)
	if err != nil {
		return fmt.Errorf("userspace proxy: cleanup: %w", err)
	}
	defer v.close()
	if err := v.removeAll(); err != nil {
		return fmt.Errorf("userspace proxy: cleanup: %w", err)
	}
	return nil
}
