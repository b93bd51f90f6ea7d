package auth

import (
	"slices"
	"strings"
)

// Well-known groups. Only certificates signed by the cluster CA and tokens
// minted by the token store carry them, so their members are trusted as such.
const (
	// GroupMasters is the admin credential's group: it may do everything.
	GroupMasters = "system:masters"
	// GroupNodes holds node agents, named NodeUserPrefix + node name.
	GroupNodes = "system:nodes"
	// GroupServers holds the control-plane servers (forwarded requests,
	// joins); they are trusted peers and are never rate limited.
	GroupServers = "system:servers"
)

// NodeUserPrefix prefixes the user name of a node agent's credential.
const NodeUserPrefix = "system:node:"

// Source says how a user was authenticated.
type Source string

// Sources.
const (
	SourceCert  Source = "cert"
	SourceToken Source = "token"
)

// Role is what a bearer token (or a future role binding) grants. A role
// with User.Namespace set applies only in that namespace.
type Role string

// Roles, from most to least powerful.
const (
	// RoleAdmin may do everything, tokens included. Scoped to a namespace
	// it has RoleEdit's rights there: tokens, nodes and namespaces are
	// cluster-wide.
	RoleAdmin Role = "admin"
	// RoleEdit may read everything and write namespaced objects.
	RoleEdit Role = "edit"
	// RoleView may read everything.
	RoleView Role = "view"
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleEdit || r == RoleView }

// User is an authenticated identity.
type User struct {
	// Name is the certificate's common name or the token's user name;
	// node agents are NodeUserPrefix + node name.
	Name string
	// Groups are the certificate's organizations or the token's groups.
	Groups []string
	Source Source
	// Role is the token's role; certificates carry none (their groups say
	// what they are).
	Role Role
	// Namespace, when set, confines Role to one namespace.
	Namespace string
}

// InGroup reports whether u is a member of group g.
func (u User) InGroup(g string) bool { return slices.Contains(u.Groups, g) }

// NodeName returns the node a node agent's credential speaks for: the user
// must be named NodeUserPrefix + name and be in GroupNodes.
func NodeName(u User) (string, bool) {
	name, ok := strings.CutPrefix(u.Name, NodeUserPrefix)
	if !ok || name == "" || !u.InGroup(GroupNodes) {
		return "", false
	}
	return name, true
}

// IsServer reports whether u is a control-plane server of this cluster.
func IsServer(u User) bool { return u.InGroup(GroupServers) }

// IsAdmin reports whether u may do everything: the admin certificate
// (GroupMasters) or a cluster-wide admin token. Servers are not admins, but
// Authorize allows them everything too.
func IsAdmin(u User) bool {
	return u.InGroup(GroupMasters) || (u.Role == RoleAdmin && u.Namespace == "")
}
