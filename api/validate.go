package api

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Validate checks o as the API server does before storing it, reporting
// every problem at once with its field path ("spec.replicas",
// "spec.template.spec.containers[1].name"). Objects are expected to be
// defaulted (Default) first: fields Default fills are required here.
func Validate(o Object) FieldErrors {
	v := &validator{}
	switch o := o.(type) {
	case *Namespace:
		v.objectMeta(&o.ObjectMeta, false, DNS1123LabelErrors)
		v.namespace(o)
	case *Node:
		v.objectMeta(&o.ObjectMeta, false, DNS1123SubdomainErrors)
		v.node(o)
	case *Pod:
		v.objectMeta(&o.ObjectMeta, true, DNS1123SubdomainErrors)
		v.podSpec(&o.Spec, "spec")
	case *Deployment:
		v.objectMeta(&o.ObjectMeta, true, DNS1123SubdomainErrors)
		v.deployment(&o.Spec)
	case *DaemonSet:
		v.objectMeta(&o.ObjectMeta, true, DNS1123SubdomainErrors)
		v.daemonSet(&o.Spec)
	case *ControllerRevision:
		v.objectMeta(&o.ObjectMeta, true, DNS1123SubdomainErrors)
		v.controllerRevision(o)
	case *Service:
		v.objectMeta(&o.ObjectMeta, true, DNS1035LabelErrors)
		v.service(&o.Spec)
	case *Endpoints:
		v.objectMeta(&o.ObjectMeta, true, DNS1123SubdomainErrors)
		v.endpoints(o)
	case *Event:
		v.objectMeta(&o.ObjectMeta, true, DNS1123SubdomainErrors)
		v.event(o)
	default:
		v.errs = append(v.errs, FieldError{Field: "kind", Type: FieldNotSupported,
			Detail: fmt.Sprintf("Unsupported value: %T", o)})
	}
	if len(v.errs) == 0 {
		return nil
	}
	sortFieldErrors(v.errs)
	return v.errs
}

// validator collects field errors.
type validator struct{ errs FieldErrors }

func (v *validator) required(field, msg string) {
	d := "Required value"
	if msg != "" {
		d += ": " + msg
	}
	v.errs = append(v.errs, FieldError{Field: field, Type: FieldRequired, Detail: d})
}

func (v *validator) invalid(field string, value any, msg string) {
	v.errs = append(v.errs, FieldError{Field: field, Type: FieldInvalid,
		Detail: "Invalid value: " + fmtValue(value) + ": " + msg})
}

func (v *validator) invalidMsgs(field string, value any, msgs []string) {
	if len(msgs) > 0 {
		v.invalid(field, value, strings.Join(msgs, ", "))
	}
}

func (v *validator) notSupported(field string, value any, supported ...string) {
	q := make([]string, len(supported))
	for i, s := range supported {
		q[i] = strconv.Quote(s)
	}
	v.errs = append(v.errs, FieldError{Field: field, Type: FieldNotSupported,
		Detail: "Unsupported value: " + fmtValue(value) + ": supported values: " + strings.Join(q, ", ")})
}

func (v *validator) duplicate(field string, value any) {
	v.errs = append(v.errs, FieldError{Field: field, Type: FieldDuplicate, Detail: "Duplicate value: " + fmtValue(value)})
}

func (v *validator) forbidden(field, msg string) {
	v.errs = append(v.errs, FieldError{Field: field, Type: FieldForbidden, Detail: "Forbidden: " + msg})
}

func fmtValue(value any) string {
	rv := reflect.ValueOf(value)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		value = rv.Elem().Interface()
		rv = rv.Elem()
	}
	switch x := value.(type) {
	case fmt.Stringer:
		return strconv.Quote(x.String())
	}
	switch rv.Kind() {
	case reflect.String:
		return strconv.Quote(rv.String())
	case reflect.Map, reflect.Slice, reflect.Struct:
		return fmt.Sprintf("%#v", value)
	}
	return fmt.Sprintf("%v", value)
}

func idx(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

func key(p, k string) string { return p + "[" + k + "]" }

// objectMeta checks metadata; nameFn is the kind's name syntax.
func (v *validator) objectMeta(m *ObjectMeta, namespaced bool, nameFn func(string) []string) {
	switch {
	case m.Name != "":
		v.invalidMsgs("metadata.name", m.Name, nameFn(m.Name))
	case m.GenerateName != "":
		// A prefix: it only has to be valid once a suffix is appended.
		v.invalidMsgs("metadata.generateName", m.GenerateName, nameFn(strings.TrimRight(m.GenerateName, "-")+"-x"))
	default:
		v.required("metadata.name", "name or generateName is required")
	}
	if namespaced {
		if m.Namespace == "" {
			v.required("metadata.namespace", "")
		} else {
			v.invalidMsgs("metadata.namespace", m.Namespace, DNS1123LabelErrors(m.Namespace))
		}
	} else if m.Namespace != "" {
		v.forbidden("metadata.namespace", "not allowed on this type")
	}
	if m.Generation < 0 {
		v.invalid("metadata.generation", m.Generation, "must be greater than or equal to 0")
	}
	v.labels(m.Labels, "metadata.labels")
	v.annotations(m.Annotations, "metadata.annotations")
	for i, r := range m.OwnerReferences {
		p := idx("metadata.ownerReferences", i)
		if r.APIVersion == "" {
			v.required(p+".apiVersion", "")
		}
		if r.Kind == "" {
			v.required(p+".kind", "")
		}
		if r.Name == "" {
			v.required(p+".name", "")
		}
		if r.UID == "" {
			v.required(p+".uid", "")
		}
	}
	for i, f := range m.Finalizers {
		v.invalidMsgs(idx("metadata.finalizers", i), f, qualifiedNameErrors(f))
	}
}

func (v *validator) labels(labels map[string]string, p string) {
	for k, val := range labels {
		v.invalidMsgs(p, k, qualifiedNameErrors(k))
		v.invalidMsgs(p, val, labelValueErrors(val))
	}
}

func (v *validator) annotations(ann map[string]string, p string) {
	total := 0
	for k, val := range ann {
		v.invalidMsgs(p, k, qualifiedNameErrors(strings.ToLower(k)))
		total += len(k) + len(val)
	}
	if total > TotalAnnotationSizeLimit {
		v.errs = append(v.errs, FieldError{Field: p, Type: FieldInvalid,
			Detail: fmt.Sprintf("Too long: may not be more than %d bytes", TotalAnnotationSizeLimit)})
	}
}

func (v *validator) labelSelector(s *LabelSelector, p string) {
	if s == nil {
		return
	}
	v.labels(s.MatchLabels, p+".matchLabels")
	for i, e := range s.MatchExpressions {
		ep := idx(p+".matchExpressions", i)
		v.invalidMsgs(ep+".key", e.Key, qualifiedNameErrors(e.Key))
		switch e.Operator {
		case LabelSelectorOpIn, LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				v.required(ep+".values", "must be specified when `operator` is 'In' or 'NotIn'")
			}
		case LabelSelectorOpExists, LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				v.forbidden(ep+".values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
			}
		default:
			v.notSupported(ep+".operator", e.Operator, "In", "NotIn", "Exists", "DoesNotExist")
		}
		for j, val := range e.Values {
			v.invalidMsgs(idx(ep+".values", j), val, labelValueErrors(val))
		}
	}
}

func (v *validator) nonNegative(p string, n int64) {
	if n < 0 {
		v.invalid(p, n, "must be greater than or equal to 0")
	}
}

func (v *validator) port(p string, n int32) {
	if n < 1 || n > 65535 {
		v.invalid(p, n, "must be between 1 and 65535, inclusive")
	}
}

func (v *validator) protocol(p string, proto Protocol) {
	switch proto {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
	case "":
		v.required(p, "")
	default:
		v.notSupported(p, proto, "SCTP", "TCP", "UDP")
	}
}

func (v *validator) namespace(ns *Namespace) {
	for i, f := range ns.Spec.Finalizers {
		v.invalidMsgs(idx("spec.finalizers", i), f, qualifiedNameErrors(string(f)))
	}
	switch ns.Status.Phase {
	case "", NamespaceActive, NamespaceTerminating:
	default:
		v.notSupported("status.phase", ns.Status.Phase, "Active", "Terminating")
	}
}

func (v *validator) node(n *Node) {
	if n.Spec.PodCIDR != "" && !validCIDR(n.Spec.PodCIDR) {
		v.invalid("spec.podCIDR", n.Spec.PodCIDR, "must be a valid CIDR")
	}
	for i, c := range n.Spec.PodCIDRs {
		if !validCIDR(c) {
			v.invalid(idx("spec.podCIDRs", i), c, "must be a valid CIDR")
		}
	}
	if len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDR != "" && n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
		v.invalid("spec.podCIDRs", n.Spec.PodCIDRs, "the first entry must match `podCIDR`")
	}
	type keyEffect struct {
		key    string
		effect TaintEffect
	}
	seen := map[keyEffect]bool{}
	for i, t := range n.Spec.Taints {
		p := idx("spec.taints", i)
		v.invalidMsgs(p+".key", t.Key, qualifiedNameErrors(t.Key))
		v.invalidMsgs(p+".value", t.Value, labelValueErrors(t.Value))
		v.taintEffect(p+".effect", t.Effect, false)
		ke := keyEffect{t.Key, t.Effect}
		if seen[ke] {
			v.duplicate(p, fmt.Sprintf("%s:%s", t.Key, t.Effect))
		}
		seen[ke] = true
	}
	v.resourceList(n.Status.Capacity, "status.capacity")
	v.resourceList(n.Status.Allocatable, "status.allocatable")
	for i, a := range n.Status.Addresses {
		p := idx("status.addresses", i)
		switch a.Type {
		case NodeHostName, NodeInternalIP, NodeExternalIP, NodeInternalDNS, NodeExternalDNS:
		default:
			v.notSupported(p+".type", a.Type, "ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")
		}
		if a.Address == "" {
			v.required(p+".address", "")
		}
	}
	for i, c := range n.Status.Conditions {
		p := idx("status.conditions", i)
		if c.Type == "" {
			v.required(p+".type", "")
		}
		v.conditionStatus(p+".status", c.Status)
	}
	if e := n.Status.DaemonEndpoints; e != nil {
		if port := e.KubeletEndpoint.Port; port < 1 || port > 65535 {
			v.invalid("status.daemonEndpoints.kubeletEndpoint.Port", port, "must be between 1 and 65535, inclusive")
		}
	}
}

func (v *validator) conditionStatus(p string, s ConditionStatus) {
	switch s {
	case ConditionTrue, ConditionFalse, ConditionUnknown:
	default:
		v.notSupported(p, s, "False", "True", "Unknown")
	}
}

func (v *validator) taintEffect(p string, e TaintEffect, allowEmpty bool) {
	switch e {
	case TaintEffectNoSchedule, TaintEffectPreferNoSchedule, TaintEffectNoExecute:
	case "":
		if !allowEmpty {
			v.required(p, "")
		}
	default:
		v.notSupported(p, e, "NoExecute", "NoSchedule", "PreferNoSchedule")
	}
}

// resourceList checks names and that amounts are non-negative.
func (v *validator) resourceList(rl ResourceList, p string) {
	for name, q := range rl {
		rp := key(p, string(name))
		switch name {
		case ResourceCPU, ResourceMemory, ResourcePods, ResourceEphemeralStorage:
		default:
			if !strings.Contains(string(name), "/") {
				v.invalid(rp, name, "must be a standard resource (cpu, memory, pods, ephemeral-storage) or a fully-qualified extended resource name (example.com/gpu)")
			} else {
				v.invalidMsgs(rp, name, qualifiedNameErrors(string(name)))
			}
		}
		if q.Sign() < 0 {
			v.invalid(rp, q.String(), "must be greater than or equal to 0")
		}
	}
}
