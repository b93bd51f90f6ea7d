package auth

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// Verb is what a request does, as Kubernetes' authorizers name it.
type Verb string

// Verbs. A GET of a collection is list, or watch with ?watch=true; a GET of
// one object (or its status) is get.
const (
	VerbGet    Verb = "get"
	VerbList   Verb = "list"
	VerbWatch  Verb = "watch"
	VerbCreate Verb = "create"
	VerbUpdate Verb = "update"
	VerbDelete Verb = "delete"
)

// ReadOnly reports whether v only reads.
func (v Verb) ReadOnly() bool { return v == VerbGet || v == VerbList || v == VerbWatch }

func (v Verb) valid() bool {
	switch v {
	case VerbGet, VerbList, VerbWatch, VerbCreate, VerbUpdate, VerbDelete:
		return true
	}
	return false
}

// Non-resource paths Authorize knows. Anything else outside the resource
// API is for admins and servers only.
const (
	PathHealthz      = "/healthz"
	PathReadyz       = "/readyz"
	PathVersion      = "/version"
	PathCA           = "/skiff/v1/ca"
	PathMetrics      = "/metrics"
	PathMembers      = "/skiff/v1/members"
	PathTokens       = "/skiff/v1/tokens"
	PathJoin         = "/skiff/v1/join"
	PathCertificates = "/skiff/v1/certificates"
	// PathHeartbeats/<node> is where a node agent reports it is alive
	// (kept in the leader's memory, not written to Raft).
	PathHeartbeats = "/skiff/v1/heartbeats"
)

// Attributes describe one request to authorize. A resource request sets
// Kind (and Verb); a non-resource request leaves Kind empty and sets Path
// and Method.
type Attributes struct {
	User User
	Verb Verb
	Kind api.Kind
	// Namespace is the namespace in the path: "" for cluster-scoped kinds
	// and for lists and watches across all namespaces.
	Namespace string
	// Name is the object's name: from the path, or for create from the
	// object in the body (the node rules need it).
	Name string
	// Subresource is "" or "status".
	Subresource string
	// FieldSelector is the raw ?fieldSelector= of a list or watch: the very
	// string the store will filter with.
	FieldSelector string
	// Path and Method describe a non-resource request (/metrics,
	// /skiff/v1/tokens/abc); Path is the URL path without the query.
	Path   string
	Method string
}

// Decision is Authorize's answer. Reason says which rule decided; for a
// denial it is specific enough to show to the client in the 403.
type Decision struct {
	Allowed bool
	Reason  string
}

func allow(format string, args ...any) Decision {
	return Decision{Allowed: true, Reason: fmt.Sprintf(format, args...)}
}

func deny(format string, args ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, args...)}
}

// PodLookup finds the node a pod is bound to; the node rules use it to let a
// node read and report on its own pods only. Implementations read the local
// store and must be safe for concurrent use.
type PodLookup interface {
	PodNode(namespace, name string) (nodeName string, found bool)
}

// Authorizer decides whether an authenticated user may make a request. It
// holds no state of its own and is safe for concurrent use.
type Authorizer struct {
	pods PodLookup
}

// NewAuthorizer returns an Authorizer that resolves pod bindings with pods
// (nil: nodes may not read single pods nor update their status).
func NewAuthorizer(pods PodLookup) *Authorizer { return &Authorizer{pods: pods} }

// Authorize applies, in order:
//
//   - the public paths (/healthz, /readyz, /version, GET /skiff/v1/ca):
//     allowed for anyone, even anonymous;
//   - GroupMasters and cluster-wide RoleAdmin: everything;
//   - GroupServers: everything (trusted peers);
//   - node credentials (NodeName): the node rules of authorizeNode;
//   - non-resource paths: /metrics for roles view and up, GET
//     /skiff/v1/members for anyone authenticated, the rest admin only;
//   - roles edit and view (and namespace-scoped admin), confined to
//     User.Namespace when it is set.
//
// Everything else is denied.
func (z *Authorizer) Authorize(a Attributes) Decision {
	if a.Kind == "" && isPublic(a.Path, a.Method) {
		return allow("%s is public", a.Path)
	}
	u := a.User
	switch {
	case u.Name == "":
		return deny("anonymous requests may only reach %s, %s, %s and %s", PathHealthz, PathReadyz, PathVersion, PathCA)
	case u.InGroup(GroupMasters):
		return allow("user %q is in %s", u.Name, GroupMasters)
	case IsServer(u):
		return allow("user %q is in %s", u.Name, GroupServers)
	case IsAdmin(u):
		return allow("user %q has role admin", u.Name)
	}
	if node, ok := NodeName(u); ok {
		return z.authorizeNode(node, a)
	}
	if u.InGroup(GroupNodes) {
		return deny("user %q is in %s but is not named %s<node>", u.Name, GroupNodes, NodeUserPrefix)
	}
	if a.Kind == "" {
		return authorizePath(a)
	}
	return authorizeRole(a)
}

// isPublic reports the paths the API server serves before authentication.
func isPublic(p, method string) bool {
	switch p {
	case PathHealthz, PathReadyz, PathVersion:
		return true
	case PathCA:
		return method == http.MethodGet || method == http.MethodHead
	}
	return false
}

// authorizePath decides non-resource requests of users that are neither
// admins nor servers.
func authorizePath(a Attributes) Decision {
	u, p := a.User, a.Path
	if p == "" {
		return deny("request names neither a kind nor a path")
	}
	if path.Clean(p) != p {
		return deny("path %q is not canonical", p)
	}
	read := a.Method == http.MethodGet || a.Method == http.MethodHead
	switch {
	case p == PathMetrics:
		if !u.Role.Valid() {
			return deny("user %q has no role: %s needs role view or higher", u.Name, p)
		}
		if !read {
			return deny("role %s may only read %s", u.Role, p)
		}
		return allow("role %s may read %s", u.Role, p)
	case p == PathMembers:
		if !read {
			return deny("only admins may %s %s", a.Method, p)
		}
		return allow("any authenticated user may read %s", p)
	case under(p, PathHeartbeats):
		return deny("only node agents report heartbeats, each its own")
	case under(p, PathTokens):
		return deny("only admins may use %s; user %q has %s", PathTokens, u.Name, describeRole(u))
	case under(p, PathJoin), under(p, PathCertificates):
		return deny("only servers and admins may use %s", p)
	}
	return deny("user %q may not %s %s", u.Name, a.Method, p)
}

// under reports whether p is root or a path below it.
func under(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

func describeRole(u User) string {
	switch {
	case !u.Role.Valid():
		return "no role"
	case u.Namespace != "":
		return fmt.Sprintf("role %s in namespace %s", u.Role, u.Namespace)
	}
	return "role " + string(u.Role)
}

// resourceName is how reasons name what a request addresses: "pods",
// "nodes/status".
func resourceName(a Attributes) string {
	r := strings.ToLower(string(a.Kind)) + "s"
	if info, ok := api.ByKind(a.Kind); ok {
		r = info.Resource
	}
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	return r
}
