package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes      = 3 << 20
	DefaultBookmarkInterval  = 5 * time.Second
	DefaultFutureVersionWait = 2 * time.Second
)

// Config is the API server's dependencies and limits.
type Config struct {
	Store store.Interface
	// Cluster is the Raft node. nil runs a standalone server that is always
	// ready and its own (only) member.
	Cluster Cluster
	Logger  *slog.Logger
	// Registerer receives the server's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// MaxBodyBytes bounds request bodies (default 3 MiB); larger ones get
	// 413 RequestEntityTooLarge.
	MaxBodyBytes int64
	// BookmarkInterval is how often an idle watch that allows bookmarks
	// gets one (default 5s).
	BookmarkInterval time.Duration
	// FutureVersionWait is how long a watch or list at a resourceVersion
	// the local replica has not applied yet waits for it before answering
	// 400 (default 2s). A client that fails over to a lagging follower
	// thus resumes instead of failing.
	FutureVersionWait time.Duration
	// Metrics, if set, is served at /metrics.
	Metrics http.Handler
	// Profiling, if set, is served under /debug/pprof/ (to admins only:
	// the authorizer allows unknown paths to system:masters alone).
	Profiling http.Handler
	// ForwardTransport carries requests forwarded to the leader (default:
	// a clone of http.DefaultTransport keeping many idle connections).
	ForwardTransport http.RoundTripper
	// Heartbeats receives node agents' heartbeats on the leader (nil: the
	// endpoint answers 404).
	Heartbeats HeartbeatSink
	// Security authenticates, authorizes, rate-limits and admits requests
	// (nil: none, for unit tests of other behaviour).
	Security *Security
	// ServerID names this server in the X-Skiff-Forwarded header of
	// forwarded requests (default "1").
	ServerID string
	// NodeTLS is how this server dials node agents for logs, exec and
	// images (proxy.go): its certificate as the client certificate, and
	// the cluster CA (RootCAs, or a VerifyConnection checking the chain).
	// Nil: ForwardTransport's TLS settings.
	NodeTLS *tls.Config
}

// Server serves the API. It implements http.Handler.
type Server struct {
	cfg     Config
	store   store.Interface
	log     *slog.Logger
	metrics *Metrics
	enc     *encodeCache
}

var _ http.Handler = (*Server)(nil)

// New returns a server over cfg.Store.
func New(cfg Config) *Server {
	if cfg.Store == nil {
		panic("apiserver: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = DefaultBookmarkInterval
	}
	if cfg.FutureVersionWait <= 0 {
		cfg.FutureVersionWait = DefaultFutureVersionWait
	}
	if cfg.ForwardTransport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 512
		cfg.ForwardTransport = t
	}
	if cfg.ServerID == "" {
		cfg.ServerID = "1"
	}
	return &Server{
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		metrics: NewMetrics(cfg.Registerer),
		enc:     newEncodeCache(4096),
	}
}

// ServeHTTP routes one request, recording metrics and turning panics into
// 500 answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	labels := requestLabels{verb: "other", resource: "unknown"}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if rec.wroteHeader {
				// Half an answer was sent: abort the connection so the
				// client sees a failure, not a truncated success.
				s.observe(labels, http.StatusInternalServerError, start)
				panic(http.ErrAbortHandler)
			}
			writeStatus(rec, newStatus(http.StatusInternalServerError, api.ReasonInternalError,
				fmt.Sprintf("internal error serving %s %s: %v", r.Method, r.URL.Path, p)))
		}
		code := rec.code
		if !rec.wroteHeader {
			code = http.StatusOK
		}
		s.observe(labels, code, start)
	}()
	s.route(rec, r, &labels)
}

type requestLabels struct{ verb, resource string }

func (s *Server) observe(l requestLabels, code int, start time.Time) {
	s.metrics.Requests.WithLabelValues(l.verb, l.resource, strconv.Itoa(code)).Inc()
	if l.verb != "watch" {
		s.metrics.Duration.WithLabelValues(l.verb, l.resource).Observe(time.Since(start).Seconds())
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, l *requestLabels) {
	r, release := s.admit(w, r)
	if r == nil {
		return
	}
	defer release()
	switch p := r.URL.Path; {
	case p == "/healthz" || p == "/livez":
		l.resource, l.verb = "healthz", "get"
		s.healthz(w, r)
		return
	case p == "/readyz":
		l.resource, l.verb = "readyz", "get"
		s.readyz(w, r)
		return
	case p == auth.PathCA:
		l.resource, l.verb = "ca", "get"
		s.caCert(w, r)
		return
	case p == auth.PathCertificates:
		l.resource, l.verb = "certificates", "create"
		s.signCertificate(w, r)
		return
	case p == "/metrics":
		l.resource, l.verb = "metrics", "get"
		if !s.authorizePath(w, r) {
			return
		}
		if s.cfg.Metrics == nil {
			writeStatus(w, notFoundPath("metrics are not served by this server"))
			return
		}
		s.cfg.Metrics.ServeHTTP(w, r)
		return
	case strings.HasPrefix(p, "/debug/pprof/") && s.cfg.Profiling != nil:
		l.resource, l.verb = "pprof", "get"
		if s.authorizePath(w, r) {
			s.cfg.Profiling.ServeHTTP(w, r)
		}
		return
	case p == "/skiff/v1/members":
		l.resource, l.verb = "members", "get"
		if s.authorizePath(w, r) {
			s.members(w, r)
		}
		return
	case p == "/skiff/v1/join":
		l.resource, l.verb = "join", "create"
		if s.authorizePath(w, r) {
			s.join(w, r)
		}
		return
	case strings.HasPrefix(p, auth.PathHeartbeats+"/"):
		l.resource, l.verb = "heartbeats", "create"
		if s.authorizePath(w, r) {
			s.heartbeat(w, r)
		}
		return
	case p == auth.PathTokens || strings.HasPrefix(p, auth.PathTokens+"/"):
		l.resource, l.verb = "tokens", strings.ToLower(r.Method)
		if s.authorizePath(w, r) {
			s.tokens(w, r)
		}
		return
	}
	if pt, ok := parseProxyPath(r.URL.Path); ok {
		*l = proxyLabels(r, pt)
		s.serveProxy(w, r, pt)
		return
	}
	t, ok, serr := parseResourcePath(r.URL.Path)
	if !ok {
		writeStatus(w, notFoundPath(fmt.Sprintf("the server could not find the requested path %s", r.URL.Path)))
		return
	}
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	l.resource, l.verb = t.resourceLabel(), verb(r, t)
	// Creates are authorized once the body names the object (create).
	if r.Method != http.MethodPost && !s.authorizeResource(w, r, t, t.name) {
		return
	}
	s.serveResource(w, r, t)
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, t target) {
	if t.collection() {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			if isWatch(r) {
				s.watch(w, r, t)
			} else {
				s.list(w, r, t)
			}
		case http.MethodPost:
			if t.info.Namespaced && t.namespace == "" {
				writeStatus(w, methodNotAllowed(r.Method, fmt.Sprintf("%s across all namespaces: create in /%s/namespaces/{namespace}/%s",
					t.info.GroupResource(), joinPath(pathPrefix(t.info)), t.info.Resource)))
				return
			}
			s.create(w, r, t)
		default:
			w.Header().Set("Allow", "GET, POST")
			writeStatus(w, methodNotAllowed(r.Method, "a collection of "+t.info.GroupResource()))
		}
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, t)
	case http.MethodPut:
		s.update(w, r, t)
	case http.MethodDelete:
		if t.subresource != "" {
			w.Header().Set("Allow", "GET, PUT")
			writeStatus(w, methodNotAllowed(r.Method, "the status subresource"))
			return
		}
		s.delete(w, r, t)
	default:
		if t.subresource != "" {
			w.Header().Set("Allow", "GET, PUT")
		} else {
			w.Header().Set("Allow", "GET, PUT, DELETE")
		}
		writeStatus(w, methodNotAllowed(r.Method, "a single "+t.info.Singular))
	}
}

func joinPath(segs []string) string { return strings.Join(segs, "/") }

// recorder remembers the status code for metrics and whether the header
// went out (a panic after it cannot be answered with a Status).
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush is implemented directly too: httputil.ReverseProxy and older
// callers type-assert http.Flusher.
func (r *recorder) Flush() {
	if !r.wroteHeader {
		r.code, r.wroteHeader = http.StatusOK, true
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// isDialError reports an error that happened before any byte of the
// request was sent (connecting failed), so the request was not received.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
