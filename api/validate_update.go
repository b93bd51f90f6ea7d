package api

import (
	"fmt"
	"reflect"
)

// ValidateUpdate validates newObj as a replacement of oldObj: Validate plus
// the immutable fields (metadata.name and namespace, Deployment and
// DaemonSet spec.selector, a set Service spec.clusterIP, Node
// spec.podCIDR(s) once set, ControllerRevision data, and the pod spec,
// where only spec.nodeName may go from unset to set and spec.tolerations
// may only grow).
func ValidateUpdate(newObj, oldObj Object) FieldErrors {
	errs := Validate(newObj)
	v := &validator{errs: errs}
	if reflect.TypeOf(newObj) != reflect.TypeOf(oldObj) {
		v.invalid("kind", kindOfObject(newObj), fmt.Sprintf("cannot replace a %s with a %s", kindOfObject(oldObj), kindOfObject(newObj)))
		return v.errs
	}
	nm, om := newObj.GetObjectMeta(), oldObj.GetObjectMeta()
	if nm.Name != om.Name {
		v.immutable("metadata.name", nm.Name)
	}
	if nm.Namespace != om.Namespace {
		v.immutable("metadata.namespace", nm.Namespace)
	}
	if om.UID != "" && nm.UID != "" && nm.UID != om.UID {
		v.immutable("metadata.uid", nm.UID)
	}
	switch n := newObj.(type) {
	case *Deployment:
		o := oldObj.(*Deployment)
		if !reflect.DeepEqual(n.Spec.Selector, o.Spec.Selector) {
			v.immutable("spec.selector", n.Spec.Selector)
		}
	case *DaemonSet:
		o := oldObj.(*DaemonSet)
		if !reflect.DeepEqual(n.Spec.Selector, o.Spec.Selector) {
			v.immutable("spec.selector", n.Spec.Selector)
		}
	case *ControllerRevision:
		// A revision's number may change (an undo renumbers it), its
		// template never: that is what makes it a record.
		if !reflect.DeepEqual(n.Data, oldObj.(*ControllerRevision).Data) {
			v.errs = append(v.errs, FieldError{Field: "data", Type: FieldInvalid, Detail: "Invalid value: \"object\": field is immutable"})
		}
	case *Service:
		o := oldObj.(*Service)
		if o.Spec.ClusterIP != "" && n.Spec.ClusterIP != o.Spec.ClusterIP {
			v.immutable("spec.clusterIP", n.Spec.ClusterIP)
		}
	case *Node:
		o := oldObj.(*Node)
		if o.Spec.PodCIDR != "" && n.Spec.PodCIDR != o.Spec.PodCIDR {
			v.immutable("spec.podCIDR", n.Spec.PodCIDR)
		}
		if len(o.Spec.PodCIDRs) > 0 && !reflect.DeepEqual(n.Spec.PodCIDRs, o.Spec.PodCIDRs) {
			v.immutable("spec.podCIDRs", n.Spec.PodCIDRs)
		}
	case *Pod:
		v.podSpecUpdate(&n.Spec, &oldObj.(*Pod).Spec)
	}
	if len(v.errs) == 0 {
		return nil
	}
	sortFieldErrors(v.errs)
	return v.errs
}

func (v *validator) immutable(p string, value any) {
	v.invalid(p, value, "field is immutable")
}

// podSpecUpdate allows binding (nodeName "" -> set) and appending
// tolerations; every other pod spec change is forbidden.
func (v *validator) podSpecUpdate(n, o *PodSpec) {
	if o.NodeName != "" && n.NodeName != o.NodeName {
		v.immutable("spec.nodeName", n.NodeName)
	}
	if len(n.Tolerations) < len(o.Tolerations) || !reflect.DeepEqual(n.Tolerations[:len(o.Tolerations)], o.Tolerations) {
		v.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")
	}
	// Compare the rest with the mutable fields masked.
	m := *n
	m.NodeName = o.NodeName
	m.Tolerations = o.Tolerations
	if !reflect.DeepEqual(&m, o) {
		v.forbidden("spec", "pod updates may not change fields other than `spec.nodeName` (when unset) and `spec.tolerations` (only additions to existing tolerations)")
	}
}

// PrepareForUpdate carries over server-assigned fields a client may leave
// out when replacing an object: a Service's clusterIP, clusterIPs and node
// ports when the new spec leaves them unset. Call it before Default and
// ValidateUpdate. (Status is the caller's business: see CopyStatus.)
func PrepareForUpdate(newObj, oldObj Object) {
	if reflect.TypeOf(newObj) != reflect.TypeOf(oldObj) {
		return
	}
	if n, ok := newObj.(*Node); ok {
		o := oldObj.(*Node)
		if n.Spec.PodCIDR == "" {
			n.Spec.PodCIDR = o.Spec.PodCIDR
			if len(n.Spec.PodCIDRs) == 0 {
				n.Spec.PodCIDRs = append([]string(nil), o.Spec.PodCIDRs...)
			}
		}
		return
	}
	n, ok := newObj.(*Service)
	if !ok {
		return
	}
	o := oldObj.(*Service)
	if n.Spec.ClusterIP == "" {
		n.Spec.ClusterIP = o.Spec.ClusterIP
		if len(n.Spec.ClusterIPs) == 0 {
			n.Spec.ClusterIPs = append([]string(nil), o.Spec.ClusterIPs...)
		}
	}
	if n.Spec.Type == o.Spec.Type || n.Spec.Type == "" {
		for i := range n.Spec.Ports {
			np := &n.Spec.Ports[i]
			if np.NodePort != 0 {
				continue
			}
			for _, op := range o.Spec.Ports {
				if op.Port == np.Port && (op.Protocol == np.Protocol || np.Protocol == "") {
					np.NodePort = op.NodePort
				}
			}
		}
	}
}
