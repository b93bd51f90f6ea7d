package apiserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"

	"github.com/skiffhq/skiff/api"
)

// HeaderForwarded marks a request a follower forwarded to the leader. A
// server that is not the leader answers such a request with 503 instead of
// forwarding it again, so a stale view of the leader never loops.
const HeaderForwarded = "X-Skiff-Forwarded"

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// forward proxies r to the leader's API. body is the request body when it
// was already read (nil: stream r.Body as is).
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Header.Get(HeaderForwarded) != "" {
		writeStatus(w, unavailable(fmt.Sprintf(
			"this server is not the leader and the request was already forwarded once (by %s); retry", r.Header.Get(HeaderForwarded))))
		return
	}
	var leader string
	if s.cfg.Cluster != nil {
		leader = s.cfg.Cluster.LeaderAPIURL()
	}
	if leader == "" {
		writeStatus(w, unavailable("no leader elected yet"))
		return
	}
	target, err := url.Parse(leader)
	if err != nil || target.Host == "" {
		writeStatus(w, unavailable(fmt.Sprintf("leader API URL %q is unusable: %v", leader, err)))
		return
	}
	if body != nil {
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	s.metrics.Forwarded.Inc()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(HeaderForwarded, s.cfg.ServerID)
			if u, ok := userFrom(pr.In.Context()); ok {
				setForwardedUser(pr.Out.Header, u)
			}
		},
		Transport:     s.cfg.ForwardTransport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("forwarding to leader failed", "leader", leader, "method", r.Method, "path", r.URL.Path, "err", err)
			if isDialError(err) || r.Method == http.MethodGet || r.Method == http.MethodHead {
				writeStatus(w, unavailable(fmt.Sprintf("leader %s unreachable: %v", leader, err)))
				return
			}
			// The leader may have received (and applied) the write.
			e := newStatus(http.StatusGatewayTimeout, api.ReasonTimeout, fmt.Sprintf(
				"forwarding to leader %s failed after sending the request: the write may have been applied; read before retrying: %v", leader, err))
			e.unknown = true
			writeStatus(w, e)
		},
	}
	proxy.ServeHTTP(w, r)
}
