// Package client is the Go client of the skiff API: CRUD, list, and watch
// with automatic resume and relist. The CLI and node agents use it.
//
// client depends on api only.
package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff/api"
)

// Config is what admin.conf (and any client config) holds.
type Config struct {
	APIVersion string   `json:"apiVersion"` // "skiff/v1"
	Kind       string   `json:"kind"`       // "Config"
	Servers    []string `json:"servers"`    // API base URLs, e.g. https://127.0.0.1:6443

	// CertificateAuthorityData is the cluster CA (PEM) that server
	// certificates must chain to (https servers).
	CertificateAuthorityData string `json:"certificateAuthorityData,omitempty"`
	// ClientCertificateData and ClientKeyData (PEM) are a client
	// certificate credential (admin.conf carries the admin's).
	ClientCertificateData string `json:"clientCertificateData,omitempty"`
	ClientKeyData         string `json:"clientKeyData,omitempty"`
	// Token is a bearer credential: "<id>.<secret>" from `skiff token
	// create`.
	Token string `json:"token,omitempty"`
}

// ListOptions filters a list or watch.
type ListOptions struct {
	Namespace     string // "" = all namespaces (or cluster-scoped kinds)
	LabelSelector string // kubectl -l syntax
	FieldSelector string // e.g. spec.nodeName=node-1
	// Stale allows a list to be served from the answering server's replica,
	// which may lag the leader, instead of the default linearizable read.
	// Watches are always served from the local replica.
	Stale bool
}

// List is the result of a list call.
type List struct {
	Items           []api.Object
	ResourceVersion string
}

// EventType is a watch event type.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	Bookmark EventType = "BOOKMARK"
	// Relisted is delivered (with Object nil) before the ADDED events of a
	// relist forced by a 410 Gone: consumers reconcile against the new list.
	Relisted EventType = "RELISTED"
)

// Event is one watch event.
type Event struct {
	Type   EventType
	Object api.Object
}

// DeleteOptions are the preconditions of a delete and its grace period.
type DeleteOptions struct {
	ResourceVersion string
	UID             api.UID
	// GracePeriodSeconds applies to a pod running on a node: nil gives it
	// its own terminationGracePeriodSeconds (its node stops it, then it
	// goes), 0 deletes the object at once (force).
	GracePeriodSeconds *int64
}

// Member is one control-plane server as `skiff members` shows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Members is the cluster membership with the answering server's view.
type Members struct {
	Members      []Member `json:"members"`
	Leader       string   `json:"leader"`
	LastIndex    uint64   `json:"lastIndex"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Server       string   `json:"server"` // id of the server that answered
}

// Client talks to one cluster; it is safe for concurrent use.
type Client struct {
	cfg     Config
	servers []string // base URLs without a trailing slash
	http    *http.Client
	timeout time.Duration
	idle    time.Duration
	// current is the index of the server that last answered.
	current atomic.Int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send through hc. hc must not set a
// Timeout: it would cut watch streams (use WithTimeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithTimeout bounds each non-watch call, failover retries included
// (default 30s; 0: only the caller's context bounds it). Opening a watch is
// bounded by it too, the stream itself is not.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithWatchIdleTimeout sets how long a watch stream may stay silent before
// the client assumes its server is gone and resumes elsewhere (default
// 30s). The server sends a bookmark every few seconds, so a healthy stream
// is never idle that long.
func WithWatchIdleTimeout(d time.Duration) Option { return func(c *Client) { c.idle = d } }

// Defaults of a Client.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultWatchIdleTimeout = 30 * time.Second
)

// sharedTransport is the one connection pool of every Client that is not
// given its own http.Client: many clients in one process (node agents,
// benchmarks) share idle connections instead of each opening their own.
var sharedTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}).DialContext
	t.MaxIdleConns = 2048
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	// A server that vanished without closing its connections (its machine
	// cut off: no RST) would hold every request on them until the call's
	// timeout, and the next call would pick it again. A ping after a
	// second of silence, unanswered for a second, closes the connection:
	// requests on it fail within ~2s and move to the next server, well
	// inside a node's grace period.
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: time.Second, PingTimeout: time.Second}
	return t
})

// New returns a client for the servers of cfg.
func New(cfg Config, opts ...Option) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("client: config lists no servers")
	}
	c := &Client{cfg: cfg, timeout: DefaultTimeout, idle: DefaultWatchIdleTimeout}
	for _, s := range cfg.Servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("client: server %q is not an http(s) URL", s)
		}
		c.servers = append(c.servers, strings.TrimRight(s, "/"))
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		t := sharedTransport()
		if cfg.CertificateAuthorityData != "" || cfg.ClientCertificateData != "" {
			tc, err := cfg.TLSConfig()
			if err != nil {
				return nil, err
			}
			t = t.Clone()
			t.TLSClientConfig = tc
		}
		c.http = &http.Client{Transport: t}
	}
	return c, nil
}

// TLSConfig builds the TLS settings of the config's credentials (the
// cluster CA and the client certificate).
func (cfg Config) TLSConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertificateAuthorityData != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CertificateAuthorityData)) {
			return nil, errors.New("client: certificateAuthorityData holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if cfg.ClientCertificateData != "" || cfg.ClientKeyData != "" {
		cert, err := tls.X509KeyPair([]byte(cfg.ClientCertificateData), []byte(cfg.ClientKeyData))
		if err != nil {
			return nil, fmt.Errorf("client: clientCertificateData/clientKeyData: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Servers returns the API base URLs the client fails over between.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }
