package auth

import (
	"github.com/skiffhq/skiff/api"
)

// authorizeNode applies Kubernetes' Node authorizer to the credential of
// node self. A node may:
//
//   - get, list and watch Services, Endpoints, Nodes and Namespaces;
//   - get a Pod (or its status) bound to it, as PodLookup reports;
//   - list and watch Pods only with a field selector requiring
//     spec.nodeName=self (other requirements may be ANDed), in one
//     namespace or all;
//   - create its own Node, and update its own Node and its status
//     (AdmitNode then restricts what may change);
//   - update the status of a Pod bound to it, and delete it (a pod being
//     deleted gracefully goes once its node has stopped it);
//   - create Events in any namespace.
//
// Everything else is denied: creating pods or updating their spec, other
// nodes, deleting its own Node, any other kind, and every non-resource path
// but GET /skiff/v1/members.
func (z *Authorizer) authorizeNode(self string, a Attributes) Decision {
	if a.Kind == "" {
		if a.Path == PathMembers && (a.Method == "GET" || a.Method == "HEAD") {
			return allow("any authenticated user may read %s", a.Path)
		}
		if a.Path == PathHeartbeats+"/"+self && a.Method == "POST" {
			return allow("node %q may report its own heartbeat", self)
		}
		return deny("node %q may not %s %s", self, a.Method, a.Path)
	}
	if !a.Verb.valid() {
		return deny("unknown verb %q", a.Verb)
	}
	res := resourceName(a)
	switch a.Kind {
	case api.KindService, api.KindEndpoints, api.KindNamespace:
		if a.Verb.ReadOnly() {
			return allow("node %q may %s %s", self, a.Verb, res)
		}
	case api.KindNode:
		switch a.Verb {
		case VerbGet, VerbList, VerbWatch:
			return allow("node %q may %s %s", self, a.Verb, res)
		case VerbCreate, VerbUpdate:
			if a.Name == "" {
				return deny("node %q may only %s its own Node; the request names no node", self, a.Verb)
			}
			if a.Name != self {
				return deny("node %q may not %s node %q", self, a.Verb, a.Name)
			}
			if a.Verb == VerbCreate && a.Subresource != "" {
				break
			}
			if a.Subresource != "" {
				return allow("node %q may %s its own node's %s", self, a.Verb, a.Subresource)
			}
			return allow("node %q may %s its own node", self, a.Verb)
		}
	case api.KindPod:
		return z.authorizeNodePod(self, a, res)
	case api.KindEvent:
		if a.Verb == VerbCreate && a.Subresource == "" {
			return allow("node %q may create events", self)
		}
	}
	return deny("node %q may not %s %s", self, a.Verb, res)
}

func (z *Authorizer) authorizeNodePod(self string, a Attributes, res string) Decision {
	switch {
	case a.Verb == VerbList || a.Verb == VerbWatch:
		return nodePodSelector(self, a)
	case a.Verb == VerbGet:
		return z.boundPod(self, a, "read")
	case a.Verb == VerbUpdate && a.Subresource == "status":
		return z.boundPod(self, a, "update the status of")
	case a.Verb == VerbDelete && a.Subresource == "":
		return z.boundPod(self, a, "delete")
	}
	return deny("node %q may not %s %s", self, a.Verb, res)
}

// boundPod allows the request if the pod it names is bound to self.
func (z *Authorizer) boundPod(self string, a Attributes, what string) Decision {
	pod := a.Namespace + "/" + a.Name
	if a.Name == "" {
		return deny("node %q may only %s pods bound to it; the request names no pod", self, what)
	}
	if z.pods == nil {
		return deny("node %q may only %s pods bound to it; pod bindings are unknown to this server", self, what)
	}
	node, found := z.pods.PodNode(a.Namespace, a.Name)
	switch {
	case !found:
		return deny("node %q may only %s pods bound to it; pod %s not found", self, what, pod)
	case node == "":
		return deny("node %q may only %s pods bound to it; pod %s is not bound to a node", self, what, pod)
	case node != self:
		return deny("node %q may only %s pods bound to it; pod %s is bound to %q", self, what, pod, node)
	}
	return allow("pod %s is bound to node %q", pod, self)
}

// nodePodSelector allows a list or watch of pods whose field selector pins
// spec.nodeName to self. It parses with api.ParseFieldSelector, the parser
// the store filters with, so the two can never read a selector differently.
func nodePodSelector(self string, a Attributes) Decision {
	want := api.FieldPodNodeName + "=" + self
	sel, err := api.ParseFieldSelector(a.FieldSelector)
	if err != nil {
		return deny("node %q may only %s pods with the field selector %s: %v", self, a.Verb, want, err)
	}
	got, ok := api.ExactMatch(sel, api.FieldPodNodeName)
	switch {
	case !ok:
		return deny("node %q may only %s pods with the field selector %s", self, a.Verb, want)
	case got != self:
		return deny("node %q may only %s pods with the field selector %s, not %s=%s", self, a.Verb, want, api.FieldPodNodeName, got)
	}
	return allow("node %q may %s pods bound to it", self, a.Verb)
}
