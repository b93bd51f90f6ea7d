package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func TestAdmitNode(t *testing.T) {
	nodeA := nodeUser("a")
	// modified returns a copy of node a changed by f.
	modified := func(f func(n *api.Node)) *api.Node {
		n := testNode("a")
		f(n)
		return n
	}
	tainted := func(n *api.Node) {
		n.Spec.Taints = []api.Taint{{Key: "dedicated", Value: "db", Effect: api.TaintEffectNoSchedule}}
	}
	tests := []struct {
		name        string
		user        User
		kind        api.Kind
		verb        Verb
		subresource string
		newObj      api.Object
		oldObj      api.Object
		wantFields  []string // field paths of the errors, in order; nil: admitted
		errHas      string
	}{
		// Users that are not nodes are not this check's business.
		{name: "admin taints a node", user: adminCert(), kind: api.KindNode, verb: VerbUpdate, newObj: modified(tainted), oldObj: testNode("a")},
		{name: "edit token anything", user: tokenUser(RoleEdit, ""), kind: api.KindPod, verb: VerbCreate, newObj: testPod("default", "x", "")},

		// Node create.
		{name: "create own node", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: modified(func(n *api.Node) {
			n.Labels["kubernetes.io/os"] = "linux"
			n.Labels["topology.kubernetes.io/zone"] = "z1"
			n.Labels["node.kubernetes.io/instance-type"] = "m5"
			n.Labels["skiff.io/agent-version"] = "1.0"
		})},
		{name: "create node b", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: testNode("b"), wantFields: []string{"metadata.name"}, errHas: `node "a" may not create node "b"`},
		{name: "create with taints", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: modified(tainted), wantFields: []string{"spec.taints"}, errHas: `spec.taints: node "a" may not set its own taints`},
		{name: "create unschedulable", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: modified(func(n *api.Node) { n.Spec.Unschedulable = true }), wantFields: []string{"spec.unschedulable"}},
		{name: "create with pod CIDR", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: modified(func(n *api.Node) {
			n.Spec.PodCIDR = "10.42.0.0/24"
			n.Spec.PodCIDRs = []string{"10.42.0.0/24"}
		}), wantFields: []string{"spec.podCIDR", "spec.podCIDRs"}},
		{name: "create with admin label", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: modified(func(n *api.Node) {
			n.Labels["dedicated"] = "db"
			n.Labels["node-role.kubernetes.io/control-plane"] = ""
		}), wantFields: []string{"metadata.labels[dedicated]", "metadata.labels[node-role.kubernetes.io/control-plane]"}},
		{name: "create with everything wrong", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: modified(func(n *api.Node) {
			tainted(n)
			n.Spec.Unschedulable = true
		}), wantFields: []string{"spec.taints", "spec.unschedulable"}},
		{name: "create without a node", user: nodeA, kind: api.KindNode, verb: VerbCreate, newObj: testPod("default", "x", "a"), wantFields: []string{""}},

		// Node update.
		{name: "update own node", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(func(n *api.Node) {
			n.Labels["kubernetes.io/arch"] = "arm64"
			n.Annotations = map[string]string{"skiff.io/anything": "x"}
		})},
		{name: "update own node keeps admin's taints and labels", user: nodeA, kind: api.KindNode, verb: VerbUpdate,
			oldObj: modified(func(n *api.Node) { tainted(n); n.Labels["dedicated"] = "db"; n.Spec.Unschedulable = true }),
			newObj: modified(func(n *api.Node) {
				tainted(n)
				n.Labels["dedicated"] = "db"
				n.Spec.Unschedulable = true
				n.Labels["kubernetes.io/os"] = "linux"
			})},
		{name: "update own node empty and nil taints are equal", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(func(n *api.Node) { n.Spec.Taints = []api.Taint{} })},
		{name: "update node b", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("b"), newObj: testNode("b"), wantFields: []string{"metadata.name"}, errHas: `node "a" may not update node "b"`},
		{name: "update node b status", user: nodeA, kind: api.KindNode, verb: VerbUpdate, subresource: "status", oldObj: testNode("b"), newObj: testNode("b"), wantFields: []string{"metadata.name"}},
		{name: "set own taints", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(tainted), wantFields: []string{"spec.taints"}, errHas: `spec.taints: node "a" may not change its own taints`},
		{name: "remove own taints", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: modified(tainted), newObj: testNode("a"), wantFields: []string{"spec.taints"}},
		{name: "set own unschedulable", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(func(n *api.Node) { n.Spec.Unschedulable = true }), wantFields: []string{"spec.unschedulable"}, errHas: "may not change its own unschedulable flag"},
		{name: "uncordon itself", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: modified(func(n *api.Node) { n.Spec.Unschedulable = true }), newObj: testNode("a"), wantFields: []string{"spec.unschedulable"}},
		{name: "change own pod CIDR", user: nodeA, kind: api.KindNode, verb: VerbUpdate,
			oldObj:     modified(func(n *api.Node) { n.Spec.PodCIDR = "10.42.0.0/24"; n.Spec.PodCIDRs = []string{"10.42.0.0/24"} }),
			newObj:     modified(func(n *api.Node) { n.Spec.PodCIDR = "10.42.1.0/24"; n.Spec.PodCIDRs = []string{"10.42.1.0/24"} }),
			wantFields: []string{"spec.podCIDR", "spec.podCIDRs"}},
		{name: "add admin label", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(func(n *api.Node) { n.Labels["dedicated"] = "db" }), wantFields: []string{"metadata.labels[dedicated]"}, errHas: `may not add, change or remove label "dedicated"`},
		{name: "remove admin label", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: modified(func(n *api.Node) { n.Labels["dedicated"] = "db" }), newObj: testNode("a"), wantFields: []string{"metadata.labels[dedicated]"}},
		{name: "change admin label", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: modified(func(n *api.Node) { n.Labels["dedicated"] = "db" }), newObj: modified(func(n *api.Node) { n.Labels["dedicated"] = "web" }), wantFields: []string{"metadata.labels[dedicated]"}},
		{name: "bare prefix label", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(func(n *api.Node) { n.Labels["skiff.io/agent-"] = "x" }), wantFields: []string{"metadata.labels[skiff.io/agent-]"}},
		{name: "skiff label outside agent prefix", user: nodeA, kind: api.KindNode, verb: VerbUpdate, oldObj: testNode("a"), newObj: modified(func(n *api.Node) { n.Labels["skiff.io/trusted"] = "true" }), wantFields: []string{"metadata.labels[skiff.io/trusted]"}},
		// The store keeps spec and metadata on /status: a heartbeat carrying
		// a stale spec must still pass.
		{name: "status update with stale spec", user: nodeA, kind: api.KindNode, verb: VerbUpdate, subresource: "status", oldObj: modified(tainted), newObj: testNode("a")},
		{name: "update without stored node", user: nodeA, kind: api.KindNode, verb: VerbUpdate, newObj: testNode("a"), wantFields: []string{""}},
		{name: "delete own node", user: nodeA, kind: api.KindNode, verb: VerbDelete, oldObj: testNode("a"), wantFields: []string{""}, errHas: `node "a" may not delete Node`},

		// Pods.
		{name: "own pod status", user: nodeA, kind: api.KindPod, verb: VerbUpdate, subresource: "status", oldObj: testPod("default", "x", "a"), newObj: testPod("default", "x", "a")},
		{name: "other pod's status", user: nodeA, kind: api.KindPod, verb: VerbUpdate, subresource: "status", oldObj: testPod("default", "x", "b"), newObj: testPod("default", "x", "a"),
			wantFields: []string{"spec.nodeName"}, errHas: `spec.nodeName: node "a" may only update the status of pods bound to it; pod default/x is bound to "b"`},
		{name: "unbound pod's status", user: nodeA, kind: api.KindPod, verb: VerbUpdate, subresource: "status", oldObj: testPod("default", "x", ""), newObj: testPod("default", "x", "a"), wantFields: []string{"spec.nodeName"}, errHas: "is not bound to a node"},
		{name: "pod status without stored pod", user: nodeA, kind: api.KindPod, verb: VerbUpdate, subresource: "status", newObj: testPod("default", "x", "a"), wantFields: []string{""}},
		{name: "create pod", user: nodeA, kind: api.KindPod, verb: VerbCreate, newObj: testPod("default", "x", "a"), wantFields: []string{""}, errHas: `node "a" may not create Pod`},
		{name: "update own pod spec", user: nodeA, kind: api.KindPod, verb: VerbUpdate, oldObj: testPod("default", "x", "a"), newObj: testPod("default", "x", "a"), wantFields: []string{""}},

		// Events and the rest.
		{name: "create event", user: nodeA, kind: api.KindEvent, verb: VerbCreate, newObj: &api.Event{}},
		{name: "delete service", user: nodeA, kind: api.KindService, verb: VerbDelete, oldObj: &api.Service{}, wantFields: []string{""}, errHas: "may not delete Service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AdmitNode(tt.user, tt.kind, tt.verb, tt.subresource, tt.newObj, tt.oldObj)
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("err = %v, want admitted", err)
				}
				return
			}
			if !errors.Is(err, ErrForbidden) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			var ae *AdmissionError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %T, want *AdmissionError", err)
			}
			var got []string
			for _, fe := range ae.Fields {
				got = append(got, fe.Field)
				if fe.Type != api.FieldForbidden {
					t.Errorf("%s: type %s, want %s", fe.Field, fe.Type, api.FieldForbidden)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.wantFields, " ") {
				t.Errorf("fields = %q, want %q (err: %v)", got, tt.wantFields, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %q, want it to contain %q", err, tt.errHas)
			}
		})
	}
}

func TestNodeMaySetLabel(t *testing.T) {
	for key, want := range map[string]bool{
		"kubernetes.io/hostname":                true,
		"kubernetes.io/os":                      true,
		"kubernetes.io/arch":                    true,
		"node.kubernetes.io/instance-type":      true,
		"topology.kubernetes.io/zone":           true,
		"skiff.io/agent-version":                true,
		"node.kubernetes.io/":                   false,
		"kubernetes.io/role":                    false,
		"node-role.kubernetes.io/control-plane": false,
		"skiff.io/pool":                         false,
		"dedicated":                             false,
		"":                                      false,
	} {
		if got := NodeMaySetLabel(key); got != want {
			t.Errorf("NodeMaySetLabel(%q) = %v, want %v", key, got, want)
		}
	}
}
