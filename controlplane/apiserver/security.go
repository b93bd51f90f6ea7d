package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
)

// Security is the API server's protection: who is calling, what they may
// do, how fast, and what workloads the cluster's policy admits. A nil
// Config.Security serves without any (unit tests of other behaviour only;
// every real server sets it).
type Security struct {
	Authenticator *auth.Authenticator
	Authorizer    *auth.Authorizer
	Limiter       *auth.Limiter // nil: no per-credential rate limit
	Gate          *auth.Gate    // nil: no concurrency limit per priority
	Policy        api.PodPolicy
	Tokens        TokenService // serves /skiff/v1/tokens (nil: 404)
	Certs         CertService  // serves /skiff/v1/ca and /skiff/v1/certificates (nil: 404)
}

// Headers by which a follower tells the leader whose request it forwards.
// The leader believes them only from a control-plane server's certificate.
const (
	headerUser      = "X-Skiff-User"
	headerGroups    = "X-Skiff-Groups"
	headerRole      = "X-Skiff-Role"
	headerNamespace = "X-Skiff-Namespace"
)

type userKey struct{}

// userFrom returns the authenticated user of a request's context.
func userFrom(ctx context.Context) (auth.User, bool) {
	u, ok := ctx.Value(userKey{}).(auth.User)
	return u, ok
}

// public reports requests served without a credential: health, the CA
// certificate (joiners pin it by hash) and certificate signing (which
// checks its join token itself).
func public(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/livez", "/readyz":
		return true
	case auth.PathCA:
		return r.Method == http.MethodGet
	case auth.PathCertificates:
		return r.Method == http.MethodPost
	}
	return false
}

// admit authenticates the request, applies forwarded identities, rate
// limits and the concurrency gate. It returns the request carrying the
// user, and a release func; on refusal it has answered and returns nil.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (*http.Request, func()) {
	sec := s.cfg.Security
	if sec == nil || public(r) {
		return r, func() {}
	}
	u, err := sec.Authenticator.Authenticate(r)
	if err != nil {
		msg := "authentication required: use the client certificate or token of your config (admin.conf)"
		if !errors.Is(err, auth.ErrAnonymous) {
			msg = err.Error()
		}
		writeStatus(w, newStatus(http.StatusUnauthorized, api.ReasonUnauthorized, msg))
		return nil, nil
	}
	if auth.IsServer(u) && r.Header.Get(headerUser) != "" {
		u = forwardedUser(r)
	}
	if sec.Limiter != nil {
		if ok, retry := sec.Limiter.Allow(u); !ok {
			writeStatus(w, tooManyRequests(u, retry))
			return nil, nil
		}
	}
	release := func() {}
	// Two kinds of request take no slot (both still pass the rate limiter
	// above). A watch lasts as long as its client: holding a slot for it
	// would let a few hundred node agents (each watching its pods) take
	// every slot of their class. A heartbeat costs a map write on the
	// leader, and queueing it behind the nodes' own status writes (same
	// class) got nodes marked unreachable while 1,000 of them started
	// 10,000 pods: liveness must not wait for the work it vouches for.
	// Logs, exec and image transfers relayed to nodes (proxy.go) last as
	// long as their client too, and wait on a node rather than on this
	// server.
	if sec.Gate != nil && !(r.Method == http.MethodGet && isWatch(r)) && !isHeartbeat(r) && !isStreaming(r) {
		rel, err := sec.Gate.Acquire(r.Context(), auth.Priority(u))
		if err != nil {
			writeStatus(w, tooManyRequests(u, time.Second))
			return nil, nil
		}
		release = rel
	}
	return r.WithContext(context.WithValue(r.Context(), userKey{}, u)), release
}

func isHeartbeat(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, auth.PathHeartbeats+"/")
}

func forwardedUser(r *http.Request) auth.User {
	u := auth.User{Name: r.Header.Get(headerUser), Role: auth.Role(r.Header.Get(headerRole)), Namespace: r.Header.Get(headerNamespace), Source: auth.SourceToken}
	if g := r.Header.Get(headerGroups); g != "" {
		u.Groups = strings.Split(g, ",")
	}
	return u
}

// setForwardedUser marks a request forwarded to the leader with its user.
func setForwardedUser(h http.Header, u auth.User) {
	h.Set(headerUser, u.Name)
	h.Set(headerGroups, strings.Join(u.Groups, ","))
	h.Set(headerRole, string(u.Role))
	h.Set(headerNamespace, u.Namespace)
}

func tooManyRequests(u auth.User, retry time.Duration) *statusError {
	secs := int((retry + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return newStatus(http.StatusTooManyRequests, api.ReasonTooManyRequests,
		fmt.Sprintf("too many requests from %s; retry after %ds", u.Name, secs)).withRetryAfter(secs)
}

// authorize checks attributes against the authorizer; false means it has
// answered 403.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, a auth.Attributes) bool {
	sec := s.cfg.Security
	if sec == nil || public(r) {
		return true
	}
	u, _ := userFrom(r.Context())
	a.User = u
	d := sec.Authorizer.Authorize(a)
	if d.Allowed {
		return true
	}
	writeStatus(w, newStatus(http.StatusForbidden, api.ReasonForbidden, fmt.Sprintf("%s is forbidden: %s", u.Name, d.Reason)))
	return false
}

// authorizeResource authorizes a request for a resource path.
func (s *Server) authorizeResource(w http.ResponseWriter, r *http.Request, t target, name string) bool {
	return s.authorize(w, r, auth.Attributes{
		Verb: auth.Verb(verb(r, t)), Kind: t.info.Kind, Namespace: t.namespace, Name: name,
		Subresource: t.subresource, FieldSelector: r.URL.Query().Get("fieldSelector"),
		Path: r.URL.Path, Method: r.Method,
	})
}

// authorizePath authorizes a non-resource request.
func (s *Server) authorizePath(w http.ResponseWriter, r *http.Request) bool {
	return s.authorize(w, r, auth.Attributes{Path: r.URL.Path, Method: r.Method})
}

// admitObject runs admission on a create or update: the node restriction
// and the cluster's pod policy. false means it has answered.
func (s *Server) admitObject(w http.ResponseWriter, r *http.Request, t target, newObj, oldObj api.Object) bool {
	sec := s.cfg.Security
	if sec == nil {
		return true
	}
	u, _ := userFrom(r.Context())
	if err := auth.AdmitNode(u, t.info.Kind, auth.Verb(verb(r, t)), t.subresource, newObj, oldObj); err != nil {
		e := newStatus(http.StatusForbidden, api.ReasonForbidden, fmt.Sprintf("%s is forbidden: %v", u.Name, err))
		var ae *auth.AdmissionError
		if errors.As(err, &ae) {
			e.status.Details = &api.StatusDetails{Kind: string(t.info.Kind), Name: newObj.GetObjectMeta().Name, Causes: ae.Fields.Causes()}
		}
		writeStatus(w, e)
		return false
	}
	// Policy applies to what a write adds: an update that keeps a
	// violation the object already had (a scale of a workload admitted
	// before the policy was tightened) is not blocked; status writes are
	// never checked.
	if t.subresource == "" {
		errs := newViolations(api.PolicyForObject(newObj, sec.Policy), oldObj, sec.Policy)
		if len(errs) > 0 {
			e := newStatus(http.StatusForbidden, api.ReasonForbidden, fmt.Sprintf("%s %q is forbidden by the cluster's pod policy: %v", t.info.Kind, newObj.GetObjectMeta().Name, errs))
			e.status.Details = &api.StatusDetails{Kind: string(t.info.Kind), Name: newObj.GetObjectMeta().Name, Causes: errs.Causes()}
			writeStatus(w, e)
			return false
		}
	}
	return true
}

// newViolations drops the violations oldObj already had.
func newViolations(errs api.FieldErrors, oldObj api.Object, p api.PodPolicy) api.FieldErrors {
	if oldObj == nil || len(errs) == 0 {
		return errs
	}
	had := map[string]bool{}
	for _, e := range api.PolicyForObject(oldObj, p) {
		had[e.Field] = true
	}
	var out api.FieldErrors
	for _, e := range errs {
		if !had[e.Field] {
			out = append(out, e)
		}
	}
	return out
}
