package auth

import (
	"fmt"

	"github.com/skiffhq/skiff/api"
)

// authorizeRole applies roles edit and view (and admin confined to a
// namespace, which has edit's rights there) to resource requests:
//
//   - view: get, list and watch of every kind;
//   - edit: view, plus every write to namespaced kinds except their status
//     subresource (status belongs to nodes and controllers) and
//     ControllerRevisions (the rollout history the Deployment controller
//     keeps: `rollout undo` writes the Deployment instead), as in
//     Kubernetes' edit role; no writes to Namespaces or Nodes;
//   - with User.Namespace set: namespaced kinds only in that namespace (no
//     lists across all namespaces), and of the cluster-scoped kinds only a
//     get of that Namespace itself, as a Kubernetes RoleBinding allows.
//
// Tokens are a non-resource path (authorizePath): no role below a
// cluster-wide admin reaches them.
func authorizeRole(a Attributes) Decision {
	u := a.User
	if !u.Role.Valid() {
		return deny("user %q has no role", u.Name)
	}
	if !a.Verb.valid() {
		return deny("unknown verb %q", a.Verb)
	}
	info, ok := api.ByKind(a.Kind)
	if !ok {
		return deny("unknown kind %q", a.Kind)
	}
	res := resourceName(a)
	if u.Namespace != "" {
		who := scopedName(u)
		switch {
		case info.Namespaced && a.Namespace == "":
			return deny("%s may not %s %s in all namespaces", who, a.Verb, res)
		case info.Namespaced && a.Namespace != u.Namespace:
			return deny("%s may not %s %s in namespace %s", who, a.Verb, res, a.Namespace)
		case !info.Namespaced && !(a.Kind == api.KindNamespace && a.Verb == VerbGet && a.Name == u.Namespace):
			return deny("%s may not %s %s: they are cluster-wide", who, a.Verb, res)
		}
	}
	// The streaming subresources, as Kubernetes' roles grant them: logs
	// are read like their pod (view), exec is a write (edit), and
	// nodes/proxy reaches a node's agent directly (admins only).
	switch {
	case a.Kind == api.KindNode && a.Subresource == "proxy":
		return deny("role %s may not %s %s: only admins reach nodes' agents", u.Role, a.Verb, res)
	case a.Kind == api.KindPod && a.Subresource == "exec":
		if u.Role == RoleView || a.Verb != VerbCreate {
			return deny("role %s may not %s %s", u.Role, a.Verb, res)
		}
		return allow("role %s may %s %s", u.Role, a.Verb, res)
	}
	if a.Verb.ReadOnly() {
		return allow("role %s may %s %s", u.Role, a.Verb, res)
	}
	if u.Role == RoleView {
		return deny("role view may not %s %s", a.Verb, res)
	}
	// RoleEdit, or RoleAdmin confined to a namespace.
	switch {
	case !info.Namespaced:
		return deny("role %s may not %s %s", u.Role, a.Verb, res)
	case a.Subresource != "":
		return deny("role %s may not %s %s: status is written by nodes and controllers", u.Role, a.Verb, res)
	case a.Kind == api.KindControllerRevision:
		return deny("role %s may not %s %s: the deployment controller records them", u.Role, a.Verb, res)
	}
	return allow("role %s may %s %s", u.Role, a.Verb, res)
}

// scopedName is how reasons name a namespace-confined credential.
func scopedName(u User) string {
	if u.Source == SourceToken {
		return "token scoped to namespace " + u.Namespace
	}
	return fmt.Sprintf("user %q scoped to namespace %s", u.Name, u.Namespace)
}
