package auth

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff/api"
)

// res and nonResource build Attributes for the table below.
func res(u User, verb Verb, kind api.Kind, namespace, name string) Attributes {
	return Attributes{User: u, Verb: verb, Kind: kind, Namespace: namespace, Name: name}
}

func status(a Attributes) Attributes { a.Subresource = "status"; return a }

func sel(a Attributes, s string) Attributes { a.FieldSelector = s; return a }

func nonResource(u User, method, p string) Attributes {
	return Attributes{User: u, Method: method, Path: p}
}

func TestAuthorize(t *testing.T) {
	z := NewAuthorizer(fakePods{
		"default/a-pod":   "a",
		"default/b-pod":   "b",
		"default/pending": "",
		"other/a-pod":     "a",
	})
	var (
		anon    = User{}
		admin   = adminCert()
		server  = serverCert()
		adminT  = tokenUser(RoleAdmin, "")
		adminNS = tokenUser(RoleAdmin, "team-a")
		edit    = tokenUser(RoleEdit, "")
		editNS  = tokenUser(RoleEdit, "team-a")
		view    = tokenUser(RoleView, "")
		viewNS  = tokenUser(RoleView, "team-a")
		nodeA   = nodeUser("a")
		noRole  = User{Name: "bob", Source: SourceCert}
		badNode = User{Name: "kubelet", Groups: []string{GroupNodes}, Source: SourceCert}
	)
	tests := []struct {
		name   string
		attrs  Attributes
		allow  bool
		reason string // substring of Decision.Reason
	}{
		// Public paths and anonymous requests.
		{"anonymous healthz", nonResource(anon, "GET", "/healthz"), true, "public"},
		{"anonymous readyz", nonResource(anon, "GET", "/readyz"), true, "public"},
		{"anonymous version", nonResource(anon, "GET", "/version"), true, "public"},
		{"anonymous CA", nonResource(anon, "GET", "/skiff/v1/ca"), true, "public"},
		{"anonymous CA write", nonResource(anon, "POST", "/skiff/v1/ca"), false, "anonymous"},
		{"anonymous get pods", res(anon, VerbGet, api.KindPod, "default", "x"), false, "anonymous"},
		{"anonymous metrics", nonResource(anon, "GET", "/metrics"), false, "anonymous"},

		// Admins and servers.
		{"masters delete node", res(admin, VerbDelete, api.KindNode, "", "a"), true, GroupMasters},
		{"masters create token", nonResource(admin, "POST", "/skiff/v1/tokens"), true, GroupMasters},
		{"masters unknown path", nonResource(admin, "GET", "/debug/pprof"), true, GroupMasters},
		{"admin token delete namespace", res(adminT, VerbDelete, api.KindNamespace, "", "team-a"), true, "role admin"},
		{"admin token revoke token", nonResource(adminT, "DELETE", "/skiff/v1/tokens/abcdef"), true, "role admin"},
		{"admin token join", nonResource(adminT, "POST", "/skiff/v1/join"), true, "role admin"},
		{"server create pod", res(server, VerbCreate, api.KindPod, "default", "x"), true, GroupServers},
		{"server join", nonResource(server, "POST", "/skiff/v1/join"), true, GroupServers},
		{"server certificates", nonResource(server, "POST", "/skiff/v1/certificates"), true, GroupServers},
		{"server metrics", nonResource(server, "GET", "/metrics"), true, GroupServers},

		// Node a: pods.
		{"node get own pod", res(nodeA, VerbGet, api.KindPod, "default", "a-pod"), true, "bound to node"},
		{"node get own pod status", status(res(nodeA, VerbGet, api.KindPod, "default", "a-pod")), true, "bound to node"},
		{"node get other node's pod", res(nodeA, VerbGet, api.KindPod, "default", "b-pod"), false, `node "a" may only read pods bound to it; pod default/b-pod is bound to "b"`},
		{"node get unbound pod", res(nodeA, VerbGet, api.KindPod, "default", "pending"), false, "pod default/pending is not bound to a node"},
		{"node get missing pod", res(nodeA, VerbGet, api.KindPod, "default", "nope"), false, "pod default/nope not found"},
		{"node list pods without selector", res(nodeA, VerbList, api.KindPod, "", ""), false, `node "a" may only list pods with the field selector spec.nodeName=a`},
		{"node watch pods without selector", res(nodeA, VerbWatch, api.KindPod, "default", ""), false, "may only watch pods with the field selector spec.nodeName=a"},
		{"node list pods of node b", sel(res(nodeA, VerbList, api.KindPod, "", ""), "spec.nodeName=b"), false, "not spec.nodeName=b"},
		{"node list pods with a prefix of its name", sel(res(nodeA, VerbList, api.KindPod, "", ""), "spec.nodeName=ab"), false, "not spec.nodeName=ab"},
		{"node list pods not on it", sel(res(nodeA, VerbList, api.KindPod, "", ""), "spec.nodeName!=a"), false, "field selector spec.nodeName=a"},
		{"node list pods escaped comma", sel(res(nodeA, VerbList, api.KindPod, "", ""), `spec.nodeName=a\,b`), false, "not spec.nodeName=a,b"},
		{"node list pods other field only", sel(res(nodeA, VerbList, api.KindPod, "", ""), "status.phase=Running"), false, "field selector spec.nodeName=a"},
		{"node list pods bad selector", sel(res(nodeA, VerbList, api.KindPod, "", ""), "spec.nodeName"), false, "parse field selector"},
		{"node list own pods", sel(res(nodeA, VerbList, api.KindPod, "", ""), "spec.nodeName=a"), true, "bound to it"},
		{"node watch own pods ANDed", sel(res(nodeA, VerbWatch, api.KindPod, "default", ""), "status.phase=Running, spec.nodeName==a"), true, "bound to it"},
		{"node create pod", res(nodeA, VerbCreate, api.KindPod, "default", "x"), false, `node "a" may not create pods`},
		{"node delete own pod", res(nodeA, VerbDelete, api.KindPod, "default", "a-pod"), true, "bound to node"},
		{"node delete other pod", res(nodeA, VerbDelete, api.KindPod, "default", "b-pod"), false, `may only delete pods bound to it; pod default/b-pod is bound to "b"`},
		{"node update own pod spec", res(nodeA, VerbUpdate, api.KindPod, "default", "a-pod"), false, `node "a" may not update pods`},
		{"node update own pod status", status(res(nodeA, VerbUpdate, api.KindPod, "default", "a-pod")), true, "bound to node"},
		{"node update own pod status in other namespace", status(res(nodeA, VerbUpdate, api.KindPod, "other", "a-pod")), true, "bound to node"},
		{"node update other pod's status", status(res(nodeA, VerbUpdate, api.KindPod, "default", "b-pod")), false, `may only update the status of pods bound to it; pod default/b-pod is bound to "b"`},

		// Node a: nodes.
		{"node get node b", res(nodeA, VerbGet, api.KindNode, "", "b"), true, "may get nodes"},
		{"node list nodes", res(nodeA, VerbList, api.KindNode, "", ""), true, "may list nodes"},
		{"node watch nodes", res(nodeA, VerbWatch, api.KindNode, "", ""), true, "may watch nodes"},
		{"node create own node", res(nodeA, VerbCreate, api.KindNode, "", "a"), true, "its own node"},
		{"node update own node", res(nodeA, VerbUpdate, api.KindNode, "", "a"), true, "its own node"},
		{"node update own node status", status(res(nodeA, VerbUpdate, api.KindNode, "", "a")), true, `node "a" may update its own node's status`},
		{"node create node b", res(nodeA, VerbCreate, api.KindNode, "", "b"), false, `node "a" may not create node "b"`},
		{"node create unnamed node", res(nodeA, VerbCreate, api.KindNode, "", ""), false, "names no node"},
		{"node update node b", res(nodeA, VerbUpdate, api.KindNode, "", "b"), false, `node "a" may not update node "b"`},
		{"node update node b status", status(res(nodeA, VerbUpdate, api.KindNode, "", "b")), false, `node "a" may not update node "b"`},
		{"node delete own node", res(nodeA, VerbDelete, api.KindNode, "", "a"), false, `node "a" may not delete nodes`},
		{"node delete node b", res(nodeA, VerbDelete, api.KindNode, "", "b"), false, `node "a" may not delete nodes`},

		// Node a: everything else.
		{"node get service", res(nodeA, VerbGet, api.KindService, "default", "web"), true, "may get services"},
		{"node list services", res(nodeA, VerbList, api.KindService, "", ""), true, "may list services"},
		{"node watch endpoints", res(nodeA, VerbWatch, api.KindEndpoints, "", ""), true, "may watch endpoints"},
		{"node get namespace", res(nodeA, VerbGet, api.KindNamespace, "", "default"), true, "may get namespaces"},
		{"node delete service", res(nodeA, VerbDelete, api.KindService, "default", "web"), false, `node "a" may not delete services`},
		{"node create service", res(nodeA, VerbCreate, api.KindService, "default", "web"), false, `node "a" may not create services`},
		{"node update endpoints", res(nodeA, VerbUpdate, api.KindEndpoints, "default", "web"), false, "may not update endpoints"},
		{"node create namespace", res(nodeA, VerbCreate, api.KindNamespace, "", "x"), false, "may not create namespaces"},
		{"node create event", res(nodeA, VerbCreate, api.KindEvent, "kube-system", ""), true, "may create events"},
		{"node delete event", res(nodeA, VerbDelete, api.KindEvent, "default", "e"), false, "may not delete events"},
		{"node list events", res(nodeA, VerbList, api.KindEvent, "", ""), false, "may not list events"},
		{"node list deployments", res(nodeA, VerbList, api.KindDeployment, "", ""), false, "may not list deployments"},
		{"node get daemonset", res(nodeA, VerbGet, api.KindDaemonSet, "default", "x"), false, "may not get daemonsets"},
		{"node list controllerrevisions", res(nodeA, VerbList, api.KindControllerRevision, "", ""), false, `node "a" may not list controllerrevisions`},
		{"node get controllerrevision", res(nodeA, VerbGet, api.KindControllerRevision, "default", "web-1"), false, "may not get controllerrevisions"},
		{"node create controllerrevision", res(nodeA, VerbCreate, api.KindControllerRevision, "default", "web-1"), false, "may not create controllerrevisions"},
		{"node unknown verb", res(nodeA, "patch", api.KindNode, "", "a"), false, `unknown verb "patch"`},
		{"node create token", nonResource(nodeA, "POST", "/skiff/v1/tokens"), false, `node "a" may not POST /skiff/v1/tokens`},
		{"node list tokens", nonResource(nodeA, "GET", "/skiff/v1/tokens"), false, `node "a" may not GET /skiff/v1/tokens`},
		{"node members", nonResource(nodeA, "GET", "/skiff/v1/members"), true, "any authenticated user"},
		{"node metrics", nonResource(nodeA, "GET", "/metrics"), false, "may not GET /metrics"},
		{"node join", nonResource(nodeA, "POST", "/skiff/v1/join"), false, "may not POST /skiff/v1/join"},
		{"system:nodes without a node name", res(badNode, VerbGet, api.KindService, "default", "web"), false, "is not named system:node:<node>"},

		// Role view.
		{"view get pod", res(view, VerbGet, api.KindPod, "default", "x"), true, "role view may get pods"},
		{"view list pods everywhere", res(view, VerbList, api.KindPod, "", ""), true, "role view may list pods"},
		{"view watch deployments", res(view, VerbWatch, api.KindDeployment, "default", ""), true, "role view may watch deployments"},
		{"view get node", res(view, VerbGet, api.KindNode, "", "a"), true, "role view may get nodes"},
		{"view list controllerrevisions", res(view, VerbList, api.KindControllerRevision, "default", ""), true, "role view may list controllerrevisions"},
		{"view delete controllerrevision", res(view, VerbDelete, api.KindControllerRevision, "default", "web-1"), false, "role view may not delete controllerrevisions"},
		{"view create pod", res(view, VerbCreate, api.KindPod, "default", "x"), false, "role view may not create pods"},
		{"view update pod", res(view, VerbUpdate, api.KindPod, "default", "x"), false, "role view may not update pods"},
		{"view delete pod", res(view, VerbDelete, api.KindPod, "default", "x"), false, "role view may not delete pods"},
		{"view update pod status", status(res(view, VerbUpdate, api.KindPod, "default", "x")), false, "role view may not update pods/status"},
		{"view create deployment", res(view, VerbCreate, api.KindDeployment, "default", "x"), false, "role view may not create deployments"},
		{"view delete namespace", res(view, VerbDelete, api.KindNamespace, "", "default"), false, "role view may not delete namespaces"},
		{"view update node", res(view, VerbUpdate, api.KindNode, "", "a"), false, "role view may not update nodes"},
		{"view create token", nonResource(view, "POST", "/skiff/v1/tokens"), false, "only admins may use /skiff/v1/tokens"},
		{"view list tokens", nonResource(view, "GET", "/skiff/v1/tokens"), false, "only admins"},
		{"view metrics", nonResource(view, "GET", "/metrics"), true, "role view may read /metrics"},
		{"view metrics write", nonResource(view, "POST", "/metrics"), false, "may only read /metrics"},
		{"view members", nonResource(view, "GET", "/skiff/v1/members"), true, "any authenticated user"},
		{"view remove member", nonResource(view, "DELETE", "/skiff/v1/members"), false, "only admins"},
		{"view join", nonResource(view, "POST", "/skiff/v1/join"), false, "only servers and admins"},
		{"view sneaky path", nonResource(view, "GET", "/skiff/v1/members/../tokens"), false, "not canonical"},
		{"view unknown path", nonResource(view, "GET", "/debug/pprof"), false, `may not GET /debug/pprof`},
		{"view unknown kind", res(view, VerbGet, "Widget", "default", "x"), false, `unknown kind "Widget"`},
		{"view unknown verb", res(view, "patch", api.KindPod, "default", "x"), false, `unknown verb "patch"`},

		// Role edit.
		{"edit create pod", res(edit, VerbCreate, api.KindPod, "default", "x"), true, "role edit may create pods"},
		{"edit update deployment", res(edit, VerbUpdate, api.KindDeployment, "default", "x"), true, "role edit may update deployments"},
		{"edit delete service", res(edit, VerbDelete, api.KindService, "default", "x"), true, "role edit may delete services"},
		{"edit create daemonset", res(edit, VerbCreate, api.KindDaemonSet, "default", "x"), true, "role edit may create daemonsets"},
		{"edit update endpoints", res(edit, VerbUpdate, api.KindEndpoints, "default", "x"), true, "role edit may update endpoints"},
		{"edit create event", res(edit, VerbCreate, api.KindEvent, "default", "x"), true, "role edit may create events"},
		{"edit list pods everywhere", res(edit, VerbList, api.KindPod, "", ""), true, "role edit may list pods"},
		{"edit get node", res(edit, VerbGet, api.KindNode, "", "a"), true, "role edit may get nodes"},
		{"edit list namespaces", res(edit, VerbList, api.KindNamespace, "", ""), true, "role edit may list namespaces"},
		{"edit update pod status", status(res(edit, VerbUpdate, api.KindPod, "default", "x")), false, "role edit may not update pods/status"},
		{"edit get controllerrevision", res(edit, VerbGet, api.KindControllerRevision, "default", "web-1"), true, "role edit may get controllerrevisions"},
		{"edit watch controllerrevisions", res(edit, VerbWatch, api.KindControllerRevision, "", ""), true, "role edit may watch controllerrevisions"},
		{"edit create controllerrevision", res(edit, VerbCreate, api.KindControllerRevision, "default", "web-1"), false, "role edit may not create controllerrevisions: the deployment controller records them"},
		{"edit update controllerrevision", res(edit, VerbUpdate, api.KindControllerRevision, "default", "web-1"), false, "role edit may not update controllerrevisions"},
		{"edit delete controllerrevision", res(edit, VerbDelete, api.KindControllerRevision, "default", "web-1"), false, "role edit may not delete controllerrevisions"},
		{"edit create node", res(edit, VerbCreate, api.KindNode, "", "a"), false, "role edit may not create nodes"},
		{"edit update node", res(edit, VerbUpdate, api.KindNode, "", "a"), false, "role edit may not update nodes"},
		{"edit update node status", status(res(edit, VerbUpdate, api.KindNode, "", "a")), false, "role edit may not update nodes/status"},
		{"edit delete node", res(edit, VerbDelete, api.KindNode, "", "a"), false, "role edit may not delete nodes"},
		{"edit create namespace", res(edit, VerbCreate, api.KindNamespace, "", "x"), false, "role edit may not create namespaces"},
		{"edit delete namespace", res(edit, VerbDelete, api.KindNamespace, "", "x"), false, "role edit may not delete namespaces"},
		{"edit create token", nonResource(edit, "POST", "/skiff/v1/tokens"), false, "only admins may use /skiff/v1/tokens"},
		{"edit list tokens", nonResource(edit, "GET", "/skiff/v1/tokens"), false, "only admins"},
		{"edit revoke token", nonResource(edit, "DELETE", "/skiff/v1/tokens/abcdef"), false, "only admins"},
		{"edit certificates", nonResource(edit, "POST", "/skiff/v1/certificates"), false, "only servers and admins"},
		{"edit metrics", nonResource(edit, "GET", "/metrics"), true, "role edit may read /metrics"},

		// Namespace-scoped credentials.
		{"scoped edit create pod in its namespace", res(editNS, VerbCreate, api.KindPod, "team-a", "x"), true, "role edit may create pods"},
		{"scoped edit create pod elsewhere", res(editNS, VerbCreate, api.KindPod, "team-b", "x"), false, "token scoped to namespace team-a may not create pods in namespace team-b"},
		{"scoped edit list pods everywhere", res(editNS, VerbList, api.KindPod, "", ""), false, "token scoped to namespace team-a may not list pods in all namespaces"},
		{"scoped edit watch events everywhere", res(editNS, VerbWatch, api.KindEvent, "", ""), false, "may not watch events in all namespaces"},
		{"scoped edit get its namespace", res(editNS, VerbGet, api.KindNamespace, "", "team-a"), true, "role edit may get namespaces"},
		{"scoped edit get another namespace", res(editNS, VerbGet, api.KindNamespace, "", "team-b"), false, "may not get namespaces: they are cluster-wide"},
		{"scoped edit delete its namespace", res(editNS, VerbDelete, api.KindNamespace, "", "team-a"), false, "may not delete namespaces"},
		{"scoped edit list namespaces", res(editNS, VerbList, api.KindNamespace, "", ""), false, "may not list namespaces"},
		{"scoped edit list nodes", res(editNS, VerbList, api.KindNode, "", ""), false, "token scoped to namespace team-a may not list nodes: they are cluster-wide"},
		{"scoped view get pod in its namespace", res(viewNS, VerbGet, api.KindPod, "team-a", "x"), true, "role view may get pods"},
		{"scoped view delete pod in its namespace", res(viewNS, VerbDelete, api.KindPod, "team-a", "x"), false, "role view may not delete pods"},
		{"scoped view get pod elsewhere", res(viewNS, VerbGet, api.KindPod, "team-b", "x"), false, "may not get pods in namespace team-b"},
		{"scoped view list pods everywhere", res(viewNS, VerbList, api.KindPod, "", ""), false, "may not list pods in all namespaces"},
		{"scoped admin create pod in its namespace", res(adminNS, VerbCreate, api.KindPod, "team-a", "x"), true, "role admin may create pods"},
		{"scoped admin create pod elsewhere", res(adminNS, VerbCreate, api.KindPod, "team-b", "x"), false, "may not create pods in namespace team-b"},
		{"scoped admin delete controllerrevision", res(adminNS, VerbDelete, api.KindControllerRevision, "team-a", "web-1"), false, "role admin may not delete controllerrevisions"},
		{"scoped edit list controllerrevisions in its namespace", res(editNS, VerbList, api.KindControllerRevision, "team-a", ""), true, "role edit may list controllerrevisions"},
		{"admin token delete controllerrevision", res(adminT, VerbDelete, api.KindControllerRevision, "default", "web-1"), true, "role admin"},
		{"scoped admin delete its namespace", res(adminNS, VerbDelete, api.KindNamespace, "", "team-a"), false, "may not delete namespaces"},
		{"scoped admin create token", nonResource(adminNS, "POST", "/skiff/v1/tokens"), false, "only admins may use /skiff/v1/tokens; user \"token-admin\" has role admin in namespace team-a"},
		{"scoped admin join", nonResource(adminNS, "POST", "/skiff/v1/join"), false, "only servers and admins"},
		{"scoped cert user", res(User{Name: "carol", Role: RoleView, Namespace: "team-a", Source: SourceCert}, VerbList, api.KindPod, "", ""), false, `user "carol" scoped to namespace team-a`},

		// No role.
		{"no role get pod", res(noRole, VerbGet, api.KindPod, "default", "x"), false, `user "bob" has no role`},
		{"no role metrics", nonResource(noRole, "GET", "/metrics"), false, "needs role view or higher"},
		{"no role members", nonResource(noRole, "GET", "/skiff/v1/members"), true, "any authenticated user"},
		{"empty attributes", Attributes{User: view}, false, "neither a kind nor a path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := z.Authorize(tt.attrs)
			if d.Allowed != tt.allow {
				t.Errorf("Allowed = %v (%s), want %v", d.Allowed, d.Reason, tt.allow)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tt.reason)
			}
		})
	}
}

func TestAuthorizeNodeWithoutPodLookup(t *testing.T) {
	z := NewAuthorizer(nil)
	d := z.Authorize(res(nodeUser("a"), VerbGet, api.KindPod, "default", "x"))
	if d.Allowed || !strings.Contains(d.Reason, "pod bindings are unknown") {
		t.Errorf("Decision = %+v, want a denial naming the missing pod bindings", d)
	}
	// Lists need no lookup: the selector is enough.
	if d := z.Authorize(sel(res(nodeUser("a"), VerbList, api.KindPod, "", ""), "spec.nodeName=a")); !d.Allowed {
		t.Errorf("Decision = %+v, want allowed", d)
	}
}

func TestHeartbeatPaths(t *testing.T) {
	z := NewAuthorizer(nil)
	nodeA := User{Name: NodeUserPrefix + "a", Groups: []string{GroupNodes}, Source: SourceCert}
	view := User{Name: "token:v", Source: SourceToken, Role: RoleView}
	cases := []struct {
		u      User
		method string
		path   string
		want   bool
	}{
		{nodeA, "POST", PathHeartbeats + "/a", true},
		{nodeA, "POST", PathHeartbeats + "/b", false},
		{nodeA, "GET", PathHeartbeats + "/a", false},
		{view, "POST", PathHeartbeats + "/a", false},
	}
	for _, c := range cases {
		if d := z.Authorize(Attributes{User: c.u, Path: c.path, Method: c.method}); d.Allowed != c.want {
			t.Errorf("%s %s %s: allowed=%v (%s), want %v", c.u.Name, c.method, c.path, d.Allowed, d.Reason, c.want)
		}
	}
}

// The streaming subresources follow Kubernetes' roles: view reads logs,
// edit may exec, only admins reach nodes' agents.
func TestStreamingSubresources(t *testing.T) {
	z := NewAuthorizer(nil)
	sub := func(a Attributes, s string) Attributes { a.Subresource = s; return a }
	view := User{Name: "token:v", Source: SourceToken, Role: RoleView}
	edit := User{Name: "token:e", Source: SourceToken, Role: RoleEdit}
	admin := User{Name: "token:a", Source: SourceToken, Role: RoleAdmin}
	cases := []struct {
		name string
		a    Attributes
		want bool
	}{
		{"view reads logs", sub(res(view, VerbGet, api.KindPod, "default", "p"), "log"), true},
		{"view may not exec", sub(res(view, VerbCreate, api.KindPod, "default", "p"), "exec"), false},
		{"edit may exec", sub(res(edit, VerbCreate, api.KindPod, "default", "p"), "exec"), true},
		{"edit reaches no node agent", sub(res(edit, VerbGet, api.KindNode, "", "n"), "proxy"), false},
		{"view reaches no node agent", sub(res(view, VerbGet, api.KindNode, "", "n"), "proxy"), false},
		{"admin imports images", sub(res(admin, VerbCreate, api.KindNode, "", "n"), "proxy"), true},
	}
	for _, c := range cases {
		if d := z.Authorize(c.a); d.Allowed != c.want {
			t.Errorf("%s: allowed=%v (%s), want %v", c.name, d.Allowed, d.Reason, c.want)
		}
	}
}
