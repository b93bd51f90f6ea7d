package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/apiserver"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/controllers"
	"github.com/skiffhq/skiff/controlplane/pki"
	"github.com/skiffhq/skiff/controlplane/raftnode"
	"github.com/skiffhq/skiff/controlplane/store"
	"github.com/skiffhq/skiff/scheduler"
)

// Namespaces every cluster has; the leader creates them when missing.
var systemNamespaces = []string{"default", "kube-system"}

// Run starts one server and blocks until ctx is cancelled, then shuts it
// down: the API stops accepting requests, Raft stops, files are closed.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.complete(); err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// The server's heap is mostly long-lived objects; collecting less
		// often costs memory it has and saves CPU the write path needs
		// (GC was ~15% of the leader's CPU under write load at GOGC=100).
		debug.SetGCPercent(300)
	}
	log := cfg.Logger
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "skiff_build_info",
		Help:        "Build of this skiff binary.",
		ConstLabels: prometheus.Labels{"version": cfg.Build.Version, "commit": cfg.Build.Commit, "goversion": runtime.Version(), "role": "server"},
	})
	buildInfo.Set(1)
	reg.MustRegister(buildInfo)

	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", cfg.APIAddr, err)
	}
	defer apiLn.Close()
	apiAdv := cfg.AdvertiseAPI
	if apiAdv == "" {
		apiAdv = apiLn.Addr().String()
	}

	sans := append([]string{apiAdv, cfg.AdvertiseRaft, cfg.RaftAddr}, defaultSANs()...)
	p, err := setupPKI(ctx, cfg, pki.ServerIdentity(cfg.NodeID), sans)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	cloud, err := cloudprovider.New(cfg.CloudProvider, cfg.Cloud)
	if err != nil {
		return fmt.Errorf("cloud provider: %w", err)
	}
	s := &server{cfg: cfg, log: log, apiAddr: apiAdv, pki: p, cloud: cloud}
	s.httpc = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: p.clientTLS(), MaxIdleConnsPerHost: 256}}
	var fsm *store.FSM
	fsm = store.NewFSM(store.WithMetrics(store.NewMetrics(reg, func() *store.FSM { return fsm })))
	node, err := raftnode.New(raftnode.Config{
		ID:         raftnode.ServerID(cfg.NodeID),
		DataDir:    filepath.Join(cfg.DataDir, "raft"),
		BindAddr:   cfg.RaftAddr,
		Advertise:  cfg.AdvertiseRaft,
		Bootstrap:  cfg.Bootstrap,
		TLS:        &raftnode.PeerTLS{Certificate: func() (*tls.Certificate, error) { return p.cert.GetCertificate(nil) }, CA: p.pool, Group: auth.GroupServers},
		OnLeader:   s.leading,
		Logger:     log,
		Registerer: reg,
	}, fsm)
	if err != nil {
		return err
	}
	s.node = node
	s.store = store.New(fsm, node, store.Options{})
	defer func() {
		s.store.Close()
		if err := node.Shutdown(); err != nil {
			log.Warn("raft shutdown", "err", err)
		}
	}()

	s.tokens = &tokens{st: s.store, caHash: func() string { h, _ := pki.HashPEM(p.caPEM); return h }, now: time.Now}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	s.liveness = controllers.NewLiveness(time.Now)
	s.schedMetrics = scheduler.NewMetrics(reg)
	s.ctrlMetrics = controllers.NewMetrics(reg)
	apiHandler := apiserver.New(apiserver.Config{
		Store:      s.store,
		Cluster:    s,
		Logger:     log,
		Registerer: reg,
		Metrics:    metricsHandler,
		Profiling:  profilingHandler(),
		ServerID:   cfg.NodeID,
		Heartbeats: s.liveness,
		Security: &apiserver.Security{
			Authenticator: auth.NewAuthenticator(s.tokens, time.Now),
			Authorizer:    auth.NewAuthorizer(podLookup{st: s.store}),
			Limiter:       auth.NewLimiter(auth.LimiterConfig{}, time.Now),
			Gate:          auth.NewGate(256, 512),
			Policy:        api.PodPolicy{AllowPrivileged: cfg.AllowPrivileged},
			Tokens:        tokenService{t: s.tokens},
			Certs:         &certService{pki: p, tokens: s.tokens, now: time.Now},
		},
		ForwardTransport: &http.Transport{TLSClientConfig: p.clientTLS(), MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second},
	})
	srv := &http.Server{
		Handler:           apiHandler,
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies are small (3 MiB at most): a client that cannot send one in
		// 30 s is holding a connection, not uploading. No write timeout:
		// watches stream for as long as the client stays.
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 1 << 20,
		TLSConfig:      p.apiTLS(),
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.ServeTLS(apiLn, "", "") }()
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metricsHandler)
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErr <- metricsSrv.Serve(mln) }()
	}
	log.Info("serving", "api", "https://"+apiAdv, "raft", node.Addr(), "id", cfg.NodeID, "dataDir", cfg.DataDir, "metrics", cfg.MetricsAddr)

	var wg sync.WaitGroup
	bgCtx, cancelBG := context.WithCancel(ctx)
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.maintainMembership(bgCtx)
	}()
	go func() {
		defer wg.Done()
		p.renewLoop(bgCtx, pki.ServerIdentity(cfg.NodeID), sans, log)
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("api server: %w", err)
	}
	cancelBG()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx) // watches end when their contexts do
	if metricsSrv != nil {
		metricsSrv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	log.Info("stopped", "id", cfg.NodeID)
	return runErr
}

func (cfg *Config) complete() error {
	if cfg.DataDir == "" {
		return errors.New("a data directory is required (--data-dir)")
	}
	if cfg.Bootstrap && cfg.Join != "" {
		return errors.New("--bootstrap and --join exclude each other: bootstrap the first server, join the others")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --node-id and no hostname: %w", err)
		}
		cfg.NodeID = h
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = "127.0.0.1:0"
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:6443"
	}
	if cfg.Dev {
		cfg.Bootstrap = true // a no-op when the data dir already holds a cluster
	}
	if cfg.CloudProvider == "" {
		cfg.CloudProvider = cloudprovider.ProviderLocal
	}
	if cfg.Network == (store.NetworkConfig{}) {
		cfg.Network = store.DefaultNetwork
	}
	if err := cfg.Network.Validate(); err != nil {
		return fmt.Errorf("network plan: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return nil
}

// server holds one running server's parts and implements
// apiserver.Cluster.
type server struct {
	cfg     Config
	log     *slog.Logger
	apiAddr string
	node    *raftnode.Node
	store   *store.Store
	pki     *serverPKI
	tokens  *tokens
	httpc   *http.Client // TLS with this server's certificate, for calls to other servers
	cloud   cloudprovider.Interface
	// liveness holds node heartbeats; only the leader's is read.
	liveness *controllers.Liveness
	// schedMetrics outlive leadership terms (registered once).
	schedMetrics *scheduler.Metrics
	ctrlMetrics  *controllers.Metrics

	readyOnce sync.Once
}

var _ apiserver.Cluster = (*server)(nil)

func (s *server) self() store.Member {
	return store.Member{ID: s.cfg.NodeID, RaftAddr: s.node.Addr(), APIAddr: s.apiAddr}
}

// leading runs on the leader until leadership is lost: it records the CA
// and the network plan, creates the system namespaces, then runs the
// scheduler and the controllers.
func (s *server) leading(ctx context.Context) {
	if err := s.pki.publishCA(ctx, s.store); err != nil {
		s.log.Warn("record the CA in the replicated store", "err", err)
	}
	if s.cfg.Bootstrap {
		s.ensureJoinTokenFile(ctx)
		if _, ok := s.store.GetSystem(store.TableConfig, "network"); !ok {
			if err := s.store.SetNetwork(ctx, s.cfg.Network); err != nil {
				s.log.Warn("record the network plan", "err", err)
			}
		}
	}
	for _, name := range systemNamespaces {
		ns := &api.Namespace{ObjectMeta: api.ObjectMeta{Name: name}}
		info, _ := api.ByKind(api.KindNamespace)
		ns.TypeMeta = *info.New().GetTypeMeta()
		if _, err := s.store.Create(ctx, ns); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			s.log.Warn("create system namespace", "namespace", name, "err", err)
		}
	}
	// The controllers run until leadership is lost.
	controllers.Run(controllers.WithMetrics(ctx, s.ctrlMetrics), s.log,
		&controllers.Scheduling{Store: s.store, Log: s.log.With("controller", "scheduler"),
			Scheduler: scheduler.Config{Strategy: s.cfg.SchedulerStrategy}, Metrics: s.schedMetrics, BatchSize: s.cfg.SchedulerBatchSize},
		&controllers.Endpoints{Store: s.store, Log: s.log.With("controller", "endpoints")},
		&controllers.Deployment{Store: s.store, Log: s.log.With("controller", "deployment")},
		&controllers.GarbageCollector{Store: s.store, Log: s.log.With("controller", "garbage-collector")},
		&controllers.NodeLifecycle{Store: s.store, Log: s.log.With("controller", "node-lifecycle"), Liveness: s.liveness, Grace: s.cfg.NodeGracePeriod},
		&controllers.DaemonSet{Store: s.store, Log: s.log.With("controller", "daemonset")},
		&controllers.ServiceLB{Store: s.store, Log: s.log.With("controller", "service-lb"), Cloud: s.cloud, ClusterName: clusterName},
		&controllers.CloudNode{Store: s.store, Log: s.log.With("controller", "cloud-node"), Cloud: s.cloud},
		&controllers.Routes{Store: s.store, Log: s.log.With("controller", "routes"), Cloud: s.cloud, ClusterName: clusterName},
		&controllers.PodGC{Store: s.store, Log: s.log.With("controller", "pod-gc")},
	)
}

// profilingHandler serves Go's profiles (net/http/pprof) for
// /debug/pprof/ on the API, where only admins may read them.
func profilingHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// clusterName tells this cluster's load balancers and routes apart at a
// provider shared by several clusters.
const clusterName = "skiff"

// maintainMembership joins the cluster if asked to, keeps this server's
// replicated address record current (the API address changes when it
// listens on port 0), and writes admin.conf once the server is usable.
func (s *server) maintainMembership(ctx context.Context) {
	joined := s.cfg.Join == ""
	delay := 50 * time.Millisecond
	for {
		if !joined {
			if err := s.postJoin(ctx, s.cfg.Join); err != nil {
				s.log.Warn("join failed; retrying", "via", s.cfg.Join, "err", err)
			} else {
				joined = true
				s.log.Info("joined the cluster", "via", s.cfg.Join)
			}
		} else if s.recorded() {
			s.pki.learnCA(s.store)
			if s.nsReady() && s.pki.CA() != nil {
				s.readyOnce.Do(s.becomeReady)
				delay = time.Second
			}
		} else if err := s.register(ctx); err != nil {
			s.log.Debug("record own addresses", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// ensureJoinTokenFile gives the bootstrap server a server join token in
// DataDir/token (as k3s does), so more servers can join with it.
func (s *server) ensureJoinTokenFile(ctx context.Context) {
	path := filepath.Join(s.cfg.DataDir, tokenFile)
	if _, err := os.Stat(path); err == nil {
		return
	}
	tok, _, err := s.tokens.Create(ctx, TokenSpec{Usage: api.TokenUsageServer, Description: "written to " + path + " at bootstrap"})
	if err != nil {
		s.log.Warn("create the bootstrap server token", "err", err)
		return
	}
	if err := pki.WriteFileAtomic(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		s.log.Warn("write the bootstrap server token", "err", err)
	}
}

func (s *server) recorded() bool {
	for _, m := range s.store.Members() {
		if m.ID == s.cfg.NodeID {
			return m == s.self()
		}
	}
	return false
}

func (s *server) nsReady() bool {
	_, err := s.store.Get(store.Key{Kind: api.KindNamespace, Name: "default"})
	return err == nil
}

// register writes this server's member record: directly on the leader,
// else through the leader's join endpoint (a no-op for Raft when the
// address is unchanged).
func (s *server) register(ctx context.Context) error {
	if s.node.IsLeader() {
		return s.store.SetMember(ctx, s.self())
	}
	url := s.LeaderAPIURL()
	if url == "" {
		return errors.New("no leader yet")
	}
	return s.postJoin(ctx, url)
}

func (s *server) postJoin(ctx context.Context, target string) error {
	if target == "" {
		return errors.New("no address to join through")
	}
	target = apiURL(target)
	m := s.self()
	body, _ := json.Marshal(apiserver.JoinRequest{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr})
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, target+"/skiff/v1/join", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var st api.Status
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return fmt.Errorf("join through %s: %d %s", target, resp.StatusCode, st.Message)
	}
	return nil
}

func (s *server) becomeReady() {
	if err := s.writeAdminConf(); err != nil {
		s.log.Error("write admin.conf", "err", err)
		return
	}
	s.log.Info("ready", "adminConf", filepath.Join(s.cfg.DataDir, "admin.conf"))
	if s.cfg.Ready != nil {
		close(s.cfg.Ready)
	}
}

// writeAdminConf writes the client config atomically (temp + rename), so
// a script waiting for the file never reads half of it.
func (s *server) writeAdminConf() error {
	servers := []string{"https://" + s.apiAddr}
	for _, m := range s.store.Members() {
		if m.ID != s.cfg.NodeID && m.APIAddr != "" {
			servers = append(servers, "https://"+m.APIAddr)
		}
	}
	b, err := s.pki.adminConfig(servers)
	if err != nil {
		return err
	}
	return pki.WriteFileAtomic(filepath.Join(s.cfg.DataDir, "admin.conf"), b, 0o600)
}

// LeaderAPIURL implements apiserver.Cluster.
func (s *server) LeaderAPIURL() string {
	id, _ := s.node.Leader()
	if id == "" {
		return ""
	}
	for _, m := range s.store.Members() {
		if m.ID == string(id) && m.APIAddr != "" {
			return "https://" + m.APIAddr
		}
	}
	return ""
}

// Members implements apiserver.Cluster.
func (s *server) Members(ctx context.Context) (apiserver.MembersInfo, error) {
	servers, err := s.node.Servers()
	if err != nil {
		return apiserver.MembersInfo{}, err
	}
	leader, _ := s.node.Leader()
	api := map[string]string{}
	for _, m := range s.store.Members() {
		api[m.ID] = m.APIAddr
	}
	out := apiserver.MembersInfo{Leader: string(leader), LastIndex: s.node.LastIndex(), AppliedIndex: s.store.LastIndex(), Server: s.cfg.NodeID}
	for _, sv := range servers {
		out.Members = append(out.Members, apiserver.MemberInfo{
			ID: string(sv.ID), RaftAddr: sv.Address, APIAddr: api[string(sv.ID)],
			Suffrage: sv.Suffrage, Leader: sv.ID == leader,
		})
	}
	return out, nil
}

// Join implements apiserver.Cluster: add the server to Raft, then record
// its API address.
func (s *server) Join(ctx context.Context, req apiserver.JoinRequest) error {
	if req.ID == "" || req.RaftAddr == "" || req.APIAddr == "" {
		return fmt.Errorf("%w: join needs id, raftAddr and apiAddr", store.ErrInvalid)
	}
	known := false
	if servers, err := s.node.Servers(); err == nil {
		for _, sv := range servers {
			if string(sv.ID) == req.ID && sv.Address == req.RaftAddr {
				known = true
			}
		}
	}
	if !known {
		if err := s.node.AddVoter(ctx, raftnode.ServerID(req.ID), req.RaftAddr); err != nil {
			return err
		}
	}
	return s.store.SetMember(ctx, store.Member{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr})
}

// Ready implements apiserver.Cluster.
func (s *server) Ready() bool { return s.node.Ready() }
