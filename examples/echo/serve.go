package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// serverConfig is what `echo serve` runs.
type serverConfig struct {
	Name     string // answered to every request; default the hostname
	HTTPAddr string // "" disables HTTP
	UDPAddr  string // "" disables UDP
	// ShutdownDelay is how long /healthz fails before the listeners close
	// on SIGTERM, so load balancers stop sending new requests first.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests.
	ShutdownTimeout time.Duration
	AccessLog       bool
}

func serveCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg serverConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.Name, "name", "", "name to answer with (default: the hostname)")
	fs.StringVar(&cfg.HTTPAddr, "http", ":8080", `HTTP listen address ("" disables)`)
	fs.StringVar(&cfg.UDPAddr, "udp", ":9090", `UDP listen address ("" disables)`)
	fs.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, fail /healthz this long before closing the listeners")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, wait this long for in-flight requests")
	fs.BoolVar(&cfg.AccessLog, "access-log", false, "log every HTTP request and UDP datagram")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, pos)
	}
	if cfg.Name == "" {
		if cfg.Name, err = os.Hostname(); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	s, err := listen(cfg, stdout)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// server answers HTTP and UDP with its name.
type server struct {
	cfg     serverConfig
	log     *lockedWriter
	httpLn  net.Listener   // nil: HTTP disabled
	udpConn net.PacketConn // nil: UDP disabled
	http    *http.Server

	draining atomic.Bool  // SIGTERM arrived
	failing  atomic.Bool  // /healthz/fail was requested
	sleeping atomic.Int32 // /sleep requests in their wait
}

// listen binds the server's sockets; Serve serves them.
func listen(cfg serverConfig, log io.Writer) (*server, error) {
	s := &server{cfg: cfg, log: &lockedWriter{w: log}}
	if cfg.HTTPAddr == "" && cfg.UDPAddr == "" {
		return nil, fmt.Errorf("%w: both --http and --udp are disabled", errUsage)
	}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen http: %w", err)
		}
		s.httpLn = ln
	}
	if cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp", cfg.UDPAddr)
		if err != nil {
			if s.httpLn != nil {
				s.httpLn.Close()
			}
			return nil, fmt.Errorf("listen udp: %w", err)
		}
		s.udpConn = pc
	}
	s.http = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return s, nil
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	text := func(w http.ResponseWriter, code int, body string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, body+"\n")
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, s.cfg.Name)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.draining.Load():
			text(w, http.StatusServiceUnavailable, "draining")
		case s.failing.Load():
			text(w, http.StatusServiceUnavailable, "failing")
		default:
			text(w, http.StatusOK, "ok")
		}
	})
	mux.HandleFunc("/healthz/fail", func(w http.ResponseWriter, r *http.Request) {
		s.failing.Store(true)
		text(w, http.StatusOK, "/healthz now fails")
	})
	mux.HandleFunc("/healthz/ok", func(w http.ResponseWriter, r *http.Request) {
		s.failing.Store(false)
		text(w, http.StatusOK, "/healthz now succeeds")
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			text(w, http.StatusBadRequest, "d must be a duration, e.g. /sleep?d=2s")
			return
		}
		s.sleeping.Add(1)
		defer s.sleeping.Add(-1)
		select {
		case <-time.After(d):
			text(w, http.StatusOK, s.cfg.Name)
		case <-r.Context().Done():
		}
	})
	if !s.cfg.AccessLog {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.printf("http %s %s %s", r.RemoteAddr, r.Method, r.URL.RequestURI())
		mux.ServeHTTP(w, r)
	})
}

// Serve serves until ctx ends, then shuts down gracefully: /healthz fails,
// ShutdownDelay passes, the listeners close and in-flight requests finish.
// It returns nil after a clean shutdown.
func (s *server) Serve(ctx context.Context) error {
	s.log.printf("echo serving as %q: http=%s udp=%s", s.cfg.Name, addrString(s.httpLn), packetAddrString(s.udpConn))
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	if s.httpLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.http.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
			}
		}()
	}
	if s.udpConn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveUDP(); err != nil {
				errc <- fmt.Errorf("udp: %w", err)
			}
		}()
	}

	var failed error
	select {
	case <-ctx.Done():
		s.log.printf("echo: shutting down (%v)", context.Cause(ctx))
	case failed = <-errc:
	}
	s.draining.Store(true)
	if failed == nil && s.cfg.ShutdownDelay > 0 {
		s.log.printf("echo: /healthz fails for %s before the listeners close", s.cfg.ShutdownDelay)
		time.Sleep(s.cfg.ShutdownDelay)
	}
	if s.udpConn != nil {
		s.udpConn.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil && failed == nil {
		failed = fmt.Errorf("http: in-flight requests did not finish in %s: %w", s.cfg.ShutdownTimeout, err)
		s.http.Close()
	}
	if s.httpLn != nil && failed != nil {
		s.httpLn.Close() // Serve may never have taken it
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	s.log.printf("echo: stopped")
	return nil
}

// serveUDP answers every datagram with the name until the socket closes.
func (s *server) serveUDP() error {
	buf := make([]byte, 64<<10)
	reply := []byte(s.cfg.Name + "\n")
	for {
		_, from, err := s.udpConn.ReadFrom(buf)
		if err != nil {
			if s.draining.Load() && errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if s.cfg.AccessLog {
			s.log.printf("udp %s", from)
		}
		// A reply that cannot be sent (the client went away) is the
		// client's loss, not the server's end.
		s.udpConn.WriteTo(reply, from)
	}
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

func packetAddrString(pc net.PacketConn) string {
	if pc == nil {
		return "off"
	}
	return pc.LocalAddr().String()
}

// lockedWriter serialises log lines from the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}
