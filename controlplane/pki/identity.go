package pki

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Groups (certificate Organizations) and user-name prefixes of the cluster,
// as in Kubernetes.
const (
	// GroupMasters is the group of cluster administrators.
	GroupMasters = "system:masters"
	// GroupNodes is the group of every node (agent) credential.
	GroupNodes = "system:nodes"
	// GroupServers is the group of control-plane servers; only its members
	// may join the Raft group.
	GroupServers = "system:servers"
	// NodeUserPrefix starts a node's user name: system:node:<node name>.
	NodeUserPrefix = "system:node:"
	// ServerUserPrefix starts a server's user name: system:server:<id>.
	ServerUserPrefix = "system:server:"
	// AdminUser is the user name of the bootstrap admin credential.
	AdminUser = "admin"
)

// Identity is who a certificate speaks for: CommonName is the user name and
// Organizations are the groups.
type Identity struct {
	CommonName    string
	Organizations []string
}

// NodeIdentity is the identity of the agent on node nodeName.
func NodeIdentity(nodeName string) Identity {
	return Identity{CommonName: NodeUserPrefix + nodeName, Organizations: []string{GroupNodes}}
}

// ServerIdentity is the identity of control-plane server serverID.
func ServerIdentity(serverID string) Identity {
	return Identity{CommonName: ServerUserPrefix + serverID, Organizations: []string{GroupServers}}
}

// AdminIdentity is the identity of the admin credential in admin.conf.
func AdminIdentity() Identity {
	return Identity{CommonName: AdminUser, Organizations: []string{GroupMasters}}
}

// IdentityFromCert returns the identity a certificate speaks for.
func IdentityFromCert(cert *x509.Certificate) Identity {
	return Identity{
		CommonName:    cert.Subject.CommonName,
		Organizations: slices.Clone(cert.Subject.Organization),
	}
}

// InGroup reports whether group is one of id's Organizations.
func (id Identity) InGroup(group string) bool {
	return slices.Contains(id.Organizations, group)
}

// NodeName returns the node name of a node identity: the CommonName after
// NodeUserPrefix, and only when id is in GroupNodes.
func (id Identity) NodeName() (string, bool) {
	name, ok := strings.CutPrefix(id.CommonName, NodeUserPrefix)
	if !ok || name == "" || !id.InGroup(GroupNodes) {
		return "", false
	}
	return name, true
}

// Equal reports whether id and other have the same CommonName and the same set
// of Organizations (order does not matter: subjects carry no order of
// groups that means anything).
func (id Identity) Equal(other Identity) bool {
	if id.CommonName != other.CommonName || len(id.Organizations) != len(other.Organizations) {
		return false
	}
	a, b := slices.Clone(id.Organizations), slices.Clone(other.Organizations)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// String formats id as CN="..." O=[...], for errors and logs.
func (id Identity) String() string {
	return fmt.Sprintf("CN=%q O=%q", id.CommonName, id.Organizations)
}
