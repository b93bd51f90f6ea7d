package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// DefaultPort is the agent endpoint's port (the kubelet's), reported in
// the Node's status.daemonEndpoints.kubeletEndpoint.Port.
const DefaultPort = 10250

// DefaultMaxImageBytes bounds an image archive's size (POST /images).
const DefaultMaxImageBytes int64 = 8 << 30

// Identities of the callers the endpoint admits (controlplane/pki's
// GroupServers and ServerUserPrefix; the agent must not import it).
const (
	groupServers     = "system:servers"
	serverUserPrefix = "system:server:"
)

// ContainerRef is a container as Containers.Lookup finds it.
type ContainerRef struct {
	ID runtime.ContainerID
	// LogPath is the container's log file (CRI format, nodeagent/logs);
	// empty when it keeps none.
	LogPath string
	// Running: a follower of its log stops once it is not.
	Running bool
}

// Lookup's errors (wrapped or as is). The server answers 404 for the
// first three, 400 for ErrContainerNotStarted.
var (
	// ErrPodNotFound: no pod of that namespace and name runs on this node.
	ErrPodNotFound = errors.New("pod not found on this node")
	// ErrContainerNotFound: the pod has no container of that name.
	ErrContainerNotFound = errors.New("container not found")
	// ErrNoPrevious: previous was asked for and the container has not
	// restarted (or its earlier instance is gone).
	ErrNoPrevious = errors.New("previous terminated container not found")
	// ErrContainerNotStarted: the container exists in the spec but has
	// not been created yet (image pull, back-off before its first start).
	ErrContainerNotStarted = errors.New("container is waiting to start")
)

// Containers finds a pod's containers on this node. The agent implements
// it from what it drives; it must be safe for concurrent use and fast (a
// log follower calls it about once a second).
type Containers interface {
	// Lookup finds container of pod namespace/pod: its current instance,
	// or with previous the one before it (the last that terminated).
	Lookup(namespace, pod, container string, previous bool) (ContainerRef, error)
}

// Config is the server's dependencies.
type Config struct {
	// NodeName names the node in error messages.
	NodeName   string
	Containers Containers
	// Exec runs commands in containers (nil: exec answers 404).
	Exec runtime.Execer
	// Images imports and lists images (nil: /images answers 404).
	Images runtime.ImageStore
	// Certificate is the node's certificate (system:node:<name>, issued
	// with server usage by the join handshake). GetCertificate, if set,
	// is used instead, so a renewed certificate is served without a
	// restart.
	Certificate    tls.Certificate
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs is the cluster CA: callers must present a certificate it
	// issued, of a control-plane server.
	ClientCAs *x509.CertPool
	// MaxImageBytes bounds an image archive (default 8 GiB).
	MaxImageBytes int64
	Logger        *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the agent's endpoint. It is an http.Handler; Serve runs
// it on a listener with TLS.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	// sessions tracks hijacked exec connections, which http.Server's
	// Shutdown does not wait for.
	sessions sync.WaitGroup
}

var _ http.Handler = (*Server)(nil)

// New returns a server over cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Containers == nil {
		return nil, errors.New("server: Config.Containers is required")
	}
	if cfg.ClientCAs == nil {
		return nil, errors.New("server: Config.ClientCAs is required: only the cluster's API servers may call the agent")
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	s.mux.HandleFunc("POST /exec/{namespace}/{pod}/{container}", s.exec)
	s.mux.HandleFunc("GET /images", s.listImages)
	s.mux.HandleFunc("POST /images", s.importImages)
	return s, nil
}

// ServeHTTP admits API servers only, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := authorize(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("the node agent has no endpoint %s %s", r.Method, r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r) // sets the path values

}

// authorize admits a client whose verified certificate is a control-plane
// server's.
func authorize(r *http.Request) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return errors.New("the node agent answers the cluster's API servers only: present a server certificate of the cluster CA")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	cn := leaf.Subject.CommonName
	if !strings.HasPrefix(cn, serverUserPrefix) || !slices.Contains(leaf.Subject.Organization, groupServers) {
		return fmt.Errorf("user %q is forbidden: the node agent answers the cluster's API servers only (%s in %s)", cn, serverUserPrefix+"<id>", groupServers)
	}
	return nil
}

// TLSConfig is the endpoint's TLS: the node's certificate, and client
// certificates of the cluster CA required. HTTP/1.1 only: exec upgrades
// the connection.
func (s *Server) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  s.cfg.ClientCAs,
		NextProtos: []string{"http/1.1"},
	}
	if s.cfg.GetCertificate != nil {
		cfg.GetCertificate = s.cfg.GetCertificate
	} else {
		cfg.Certificates = []tls.Certificate{s.cfg.Certificate}
	}
	return cfg
}

// ListenAndServe listens on addr (":10250") and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves TLS on ln until ctx ends, then stops: requests in flight
// get a few seconds, exec sessions and log followers end with ctx. It
// closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		// Requests (and exec sessions) end when ctx does.
		BaseContext: func(net.Listener) context.Context { return ctx },
		// No HTTP/2: exec needs an HTTP/1.1 upgrade.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	cancel()
	<-stopped
	s.sessions.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("server: %w", err)
}
