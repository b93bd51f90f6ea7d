package auth

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/skiffhq/skiff/api"
)

var _ error = (*AdmissionError)(nil)

// AdmissionError is AdmitNode's refusal: every field the node may not
// write, with its path. It wraps ErrForbidden; Fields become the causes of
// the 403's api.Status.
type AdmissionError struct {
	Fields api.FieldErrors
}

func (e *AdmissionError) Error() string { return e.Fields.Error() }

// Unwrap makes errors.Is(err, ErrForbidden) hold.
func (e *AdmissionError) Unwrap() error { return ErrForbidden }

// nodeLabelPrefixes and nodeLabels are the labels a node may set on its own
// Node (Kubernetes' NodeRestriction allows the same well-known ones). Every
// other label is the administrator's: a node that could set it could
// attract workloads meant for other machines.
var (
	nodeLabels = map[string]bool{
		"kubernetes.io/hostname": true,
		"kubernetes.io/os":       true,
		"kubernetes.io/arch":     true,
		// The beta spellings some tools still read.
		"beta.kubernetes.io/os":   true,
		"beta.kubernetes.io/arch": true,
	}
	nodeLabelPrefixes = []string{"node.kubernetes.io/", "topology.kubernetes.io/", "skiff.io/agent-"}
)

// NodeMaySetLabel reports whether a node may set label key on its own Node.
func NodeMaySetLabel(key string) bool {
	if nodeLabels[key] {
		return true
	}
	for _, p := range nodeLabelPrefixes {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}

// AdmitNode checks what a node credential writes, after Authorize allowed
// the request and the body was decoded (Kubernetes' NodeRestriction).
// newObj is the decoded body (nil for delete), oldObj the stored object
// (nil for create). It returns nil for users that are not nodes. For node
// self:
//
//   - create Node: it must be named self and may not set spec.taints,
//     spec.unschedulable, spec.podCIDR(s) (the control plane's to assign)
//     nor labels outside NodeMaySetLabel;
//   - update Node self: as for create, none of those may change, and labels
//     outside NodeMaySetLabel may not be added, changed or removed;
//     annotations are free;
//   - update Node self's status: only the name is checked, since the store
//     keeps metadata and spec on status writes (a stale spec in a heartbeat
//     must not fail it);
//   - update a Pod's status: the stored pod (oldObj) must be bound to self;
//   - create Event: allowed;
//   - anything else is refused.
func AdmitNode(u User, kind api.Kind, verb Verb, subresource string, newObj, oldObj api.Object) error {
	self, ok := NodeName(u)
	if !ok {
		return nil
	}
	var errs api.FieldErrors
	forbid := func(field, format string, args ...any) {
		errs = append(errs, api.FieldError{Field: field, Type: api.FieldForbidden, Detail: fmt.Sprintf(format, args...)})
	}
	switch {
	case kind == api.KindNode && verb == VerbCreate && subresource == "":
		n, ok := newObj.(*api.Node)
		if !ok {
			forbid("", "node %q: create of a Node without a Node object", self)
			break
		}
		if n.Name != self {
			forbid("metadata.name", "node %q may not create node %q", self, n.Name)
		}
		if len(n.Spec.Taints) > 0 {
			forbid("spec.taints", "node %q may not set its own taints", self)
		}
		if n.Spec.Unschedulable {
			forbid("spec.unschedulable", "node %q may not mark itself unschedulable", self)
		}
		if n.Spec.PodCIDR != "" {
			forbid("spec.podCIDR", "node %q may not choose its own pod CIDR", self)
		}
		if len(n.Spec.PodCIDRs) > 0 {
			forbid("spec.podCIDRs", "node %q may not choose its own pod CIDRs", self)
		}
		for _, k := range sortedKeys(n.Labels) {
			if !NodeMaySetLabel(k) {
				forbid(labelPath(k), "node %q may not set label %q", self, k)
			}
		}

	case kind == api.KindNode && verb == VerbUpdate:
		n, nok := newObj.(*api.Node)
		o, ook := oldObj.(*api.Node)
		if !nok || !ook {
			forbid("", "node %q: update of a Node without the new and stored Node objects", self)
			break
		}
		if o.Name != self || n.Name != self {
			forbid("metadata.name", "node %q may not update node %q", self, o.Name)
			break
		}
		if subresource == "status" {
			break
		}
		if !reflect.DeepEqual(nilIfEmpty(n.Spec.Taints), nilIfEmpty(o.Spec.Taints)) {
			forbid("spec.taints", "node %q may not change its own taints", self)
		}
		if n.Spec.Unschedulable != o.Spec.Unschedulable {
			forbid("spec.unschedulable", "node %q may not change its own unschedulable flag", self)
		}
		if n.Spec.PodCIDR != o.Spec.PodCIDR {
			forbid("spec.podCIDR", "node %q may not change its own pod CIDR", self)
		}
		if !reflect.DeepEqual(nilIfEmpty(n.Spec.PodCIDRs), nilIfEmpty(o.Spec.PodCIDRs)) {
			forbid("spec.podCIDRs", "node %q may not change its own pod CIDRs", self)
		}
		for _, k := range changedLabels(o.Labels, n.Labels) {
			if !NodeMaySetLabel(k) {
				forbid(labelPath(k), "node %q may not add, change or remove label %q", self, k)
			}
		}

	case kind == api.KindPod && verb == VerbUpdate && subresource == "status":
		o, ok := oldObj.(*api.Pod)
		if !ok {
			forbid("", "node %q: pod status update without the stored pod", self)
			break
		}
		if o.Spec.NodeName != self {
			bound := "is not bound to a node"
			if o.Spec.NodeName != "" {
				bound = fmt.Sprintf("is bound to %q", o.Spec.NodeName)
			}
			forbid("spec.nodeName", "node %q may only update the status of pods bound to it; pod %s/%s %s", self, o.Namespace, o.Name, bound)
		}

	case kind == api.KindEvent && verb == VerbCreate && subresource == "":

	default:
		res := string(kind)
		if subresource != "" {
			res += "/" + subresource
		}
		forbid("", "node %q may not %s %s", self, verb, res)
	}
	if len(errs) > 0 {
		return &AdmissionError{Fields: errs}
	}
	return nil
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// changedLabels returns, sorted, the keys added, changed or removed.
func changedLabels(old, cur map[string]string) []string {
	var out []string
	for k, v := range cur {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// labelPath is the field path of one label, in Kubernetes' notation.
func labelPath(k string) string { return "metadata.labels[" + k + "]" }
