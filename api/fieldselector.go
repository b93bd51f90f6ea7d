package api

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Field names a field selector may use. metadata.name and
// metadata.namespace apply to every kind; the others to the kind named.
const (
	FieldMetadataName            = "metadata.name"
	FieldMetadataNamespace       = "metadata.namespace"
	FieldPodNodeName             = "spec.nodeName"
	FieldPodPhase                = "status.phase"
	FieldPodRestartPolicy        = "spec.restartPolicy"
	FieldPodIP                   = "status.podIP"
	FieldNodeUnschedulable       = "spec.unschedulable"
	FieldEventType               = "type"
	FieldEventReason             = "reason"
	FieldEventSource             = "source"
	FieldEventInvolvedKind       = "involvedObject.kind"
	FieldEventInvolvedName       = "involvedObject.name"
	FieldEventInvolvedNamespace  = "involvedObject.namespace"
	FieldEventInvolvedUID        = "involvedObject.uid"
	FieldEventInvolvedAPIVersion = "involvedObject.apiVersion"
	FieldEventInvolvedFieldPath  = "involvedObject.fieldPath"
	FieldServiceType             = "spec.type"
	FieldNamespacePhase          = "status.phase"
)

// selectableFields lists, per kind, the fields beyond metadata.name and
// metadata.namespace.
var selectableFields = map[Kind][]string{
	KindPod:       {FieldPodNodeName, FieldPodPhase, FieldPodRestartPolicy, FieldPodIP},
	KindNode:      {FieldNodeUnschedulable},
	KindEvent:     {FieldEventType, FieldEventReason, FieldEventSource, FieldEventInvolvedKind, FieldEventInvolvedName, FieldEventInvolvedNamespace, FieldEventInvolvedUID, FieldEventInvolvedAPIVersion, FieldEventInvolvedFieldPath},
	KindService:   {FieldServiceType},
	KindNamespace: {FieldNamespacePhase},
}

var knownFields = func() map[string]bool {
	m := map[string]bool{FieldMetadataName: true, FieldMetadataNamespace: true}
	for _, fs := range selectableFields {
		for _, f := range fs {
			m[f] = true
		}
	}
	return m
}()

// SelectableFields returns the fields a field selector may use for kind k.
func SelectableFields(k Kind) []string {
	return append([]string{FieldMetadataName, FieldMetadataNamespace}, selectableFields[k]...)
}

// fieldValue returns one selectable field of o; ok is false when o's kind
// has no such field.
func fieldValue(o Object, field string) (v string, ok bool) {
	m := o.GetObjectMeta()
	switch field {
	case FieldMetadataName:
		return m.Name, true
	case FieldMetadataNamespace:
		return m.Namespace, true
	}
	switch o := o.(type) {
	case *Pod:
		switch field {
		case FieldPodNodeName:
			return o.Spec.NodeName, true
		case FieldPodPhase:
			return string(o.Status.Phase), true
		case FieldPodRestartPolicy:
			return string(o.Spec.RestartPolicy), true
		case FieldPodIP:
			return o.Status.PodIP, true
		}
	case *Node:
		if field == FieldNodeUnschedulable {
			return strconv.FormatBool(o.Spec.Unschedulable), true
		}
	case *Event:
		switch field {
		case FieldEventType:
			return string(o.Type), true
		case FieldEventReason:
			return o.Reason, true
		case FieldEventSource:
			return o.Source.Component, true
		case FieldEventInvolvedKind:
			return o.InvolvedObject.Kind, true
		case FieldEventInvolvedName:
			return o.InvolvedObject.Name, true
		case FieldEventInvolvedNamespace:
			return o.InvolvedObject.Namespace, true
		case FieldEventInvolvedUID:
			return string(o.InvolvedObject.UID), true
		case FieldEventInvolvedAPIVersion:
			return o.InvolvedObject.APIVersion, true
		case FieldEventInvolvedFieldPath:
			return o.InvolvedObject.FieldPath, true
		}
	case *Service:
		if field == FieldServiceType {
			return string(o.Spec.Type), true
		}
	case *Namespace:
		if field == FieldNamespacePhase {
			return string(o.Status.Phase), true
		}
	}
	return "", false
}

// FieldsOf returns the selectable fields of o and their values.
func FieldsOf(o Object) map[string]string {
	k := kindOfObject(o)
	fs := SelectableFields(k)
	out := make(map[string]string, len(fs))
	for _, f := range fs {
		if v, ok := fieldValue(o, f); ok {
			out[f] = v
		}
	}
	return out
}

type fieldRequirement struct {
	field string
	value string
	not   bool
}

// fieldRequirements is the FieldSelector of ParseFieldSelector.
type fieldRequirements []fieldRequirement

var _ FieldSelector = fieldRequirements(nil)

// Matches reports whether o satisfies every requirement. A field o's kind
// does not have reads as "".
func (rs fieldRequirements) Matches(o Object) bool {
	for _, r := range rs {
		v, _ := fieldValue(o, r.field)
		if (v == r.value) == r.not {
			return false
		}
	}
	return true
}

func (rs fieldRequirements) Empty() bool { return len(rs) == 0 }

func (rs fieldRequirements) String() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		op := "="
		if r.not {
			op = "!="
		}
		parts[i] = r.field + op + r.value
	}
	return strings.Join(parts, ",")
}

// ExactMatch returns the value fs requires field to equal, if it has such a
// requirement; stores use it to serve `spec.nodeName=n` from an index.
func ExactMatch(fs FieldSelector, field string) (string, bool) {
	rs, ok := fs.(fieldRequirements)
	if !ok {
		return "", false
	}
	for _, r := range rs {
		if r.field == field && !r.not {
			return r.value, true
		}
	}
	return "", false
}

// EverythingFields returns the field selector that matches every object.
func EverythingFields() FieldSelector { return fieldRequirements(nil) }

// ParseFieldSelector parses comma-separated `field=value`, `field==value`
// and `field!=value` requirements (kubectl --field-selector). Fields must
// be among those SelectableFields lists for some kind; the empty string
// selects everything. Values may escape ',', '=' and '!' with a backslash.
func ParseFieldSelector(s string) (FieldSelector, error) {
	if strings.TrimSpace(s) == "" {
		return fieldRequirements(nil), nil
	}
	var rs fieldRequirements
	for _, part := range splitUnescaped(s, ',') {
		part = strings.TrimSpace(part)
		var r fieldRequirement
		var field, value string
		if i := strings.Index(part, "!="); i >= 0 {
			field, value, r.not = part[:i], part[i+2:], true
		} else if i := strings.Index(part, "=="); i >= 0 {
			field, value = part[:i], part[i+2:]
		} else if i := strings.Index(part, "="); i >= 0 {
			field, value = part[:i], part[i+1:]
		} else {
			return nil, fmt.Errorf("parse field selector %q: invalid requirement %q: expected field=value, field==value or field!=value", s, part)
		}
		r.field = strings.TrimSpace(field)
		r.value = unescapeFieldValue(strings.TrimSpace(value))
		if !knownFields[r.field] {
			return nil, fmt.Errorf("parse field selector %q: field label %q is not supported", s, r.field)
		}
		rs = append(rs, r)
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].field < rs[j].field })
	return rs, nil
}

// splitUnescaped splits s on sep not preceded by a backslash.
func splitUnescaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unescapeFieldValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// kindOfObject returns the kind of o from its Go type, so objects built in
// code without TypeMeta still work.
func kindOfObject(o Object) Kind {
	switch o.(type) {
	case *Namespace:
		return KindNamespace
	case *Node:
		return KindNode
	case *Pod:
		return KindPod
	case *Deployment:
		return KindDeployment
	case *DaemonSet:
		return KindDaemonSet
	case *Service:
		return KindService
	case *Endpoints:
		return KindEndpoints
	case *Event:
		return KindEvent
	case *ControllerRevision:
		return KindControllerRevision
	}
	return KindOf(o)
}
