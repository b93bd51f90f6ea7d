package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Kind is an object kind as written in manifests ("Deployment").
type Kind string

// The kinds skiff serves.
const (
	KindNamespace          Kind = "Namespace"
	KindNode               Kind = "Node"
	KindPod                Kind = "Pod"
	KindDeployment         Kind = "Deployment"
	KindDaemonSet          Kind = "DaemonSet"
	KindService            Kind = "Service"
	KindEndpoints          Kind = "Endpoints"
	KindEvent              Kind = "Event"
	KindControllerRevision Kind = "ControllerRevision"
)

// ResourceInfo describes how a kind is addressed: its API group and
// version, the plural resource name used in URLs and the CLI, short names,
// and whether objects live in a namespace.
type ResourceInfo struct {
	Kind       Kind
	Group      string // "" for the core group, "apps" for Deployment, DaemonSet and ControllerRevision
	Version    string
	Resource   string // plural, lower case: "deployments"
	Singular   string // "deployment"
	ShortNames []string
	Namespaced bool
	// HasStatus reports a status subresource: updates of the main resource
	// leave status unchanged and /status updates change only status.
	HasStatus bool
	new       func() Object
}

// APIVersion is "group/version", or "version" for the core group.
func (r ResourceInfo) APIVersion() string {
	if r.Group == "" {
		return r.Version
	}
	return r.Group + "/" + r.Version
}

// GroupResource is "resource.group" ("deployments.apps"), or "resource"
// for the core group, as kubectl prints it.
func (r ResourceInfo) GroupResource() string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

// New returns a new empty object of this kind with its TypeMeta set.
func (r ResourceInfo) New() Object {
	o := r.new()
	tm := o.GetTypeMeta()
	tm.Kind = string(r.Kind)
	tm.APIVersion = r.APIVersion()
	return o
}

var resources = []ResourceInfo{
	{Kind: KindNamespace, Version: "v1", Resource: "namespaces", Singular: "namespace", ShortNames: []string{"ns"}, HasStatus: true, new: func() Object { return &Namespace{} }},
	{Kind: KindNode, Version: "v1", Resource: "nodes", Singular: "node", ShortNames: []string{"no"}, HasStatus: true, new: func() Object { return &Node{} }},
	{Kind: KindPod, Version: "v1", Resource: "pods", Singular: "pod", ShortNames: []string{"po"}, Namespaced: true, HasStatus: true, new: func() Object { return &Pod{} }},
	{Kind: KindDeployment, Group: "apps", Version: "v1", Resource: "deployments", Singular: "deployment", ShortNames: []string{"deploy"}, Namespaced: true, HasStatus: true, new: func() Object { return &Deployment{} }},
	{Kind: KindDaemonSet, Group: "apps", Version: "v1", Resource: "daemonsets", Singular: "daemonset", ShortNames: []string{"ds"}, Namespaced: true, HasStatus: true, new: func() Object { return &DaemonSet{} }},
	{Kind: KindService, Version: "v1", Resource: "services", Singular: "service", ShortNames: []string{"svc"}, Namespaced: true, HasStatus: true, new: func() Object { return &Service{} }},
	{Kind: KindEndpoints, Version: "v1", Resource: "endpoints", Singular: "endpoints", ShortNames: []string{"ep"}, Namespaced: true, new: func() Object { return &Endpoints{} }},
	{Kind: KindControllerRevision, Group: "apps", Version: "v1", Resource: "controllerrevisions", Singular: "controllerrevision", Namespaced: true, new: func() Object { return &ControllerRevision{} }},
	{Kind: KindEvent, Version: "v1", Resource: "events", Singular: "event", ShortNames: []string{"ev"}, Namespaced: true, new: func() Object { return &Event{} }},
}

// Resources lists every kind skiff serves, sorted by resource name.
func Resources() []ResourceInfo {
	out := append([]ResourceInfo(nil), resources...)
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// ByKind finds a kind's resource info.
func ByKind(k Kind) (ResourceInfo, bool) {
	for _, r := range resources {
		if r.Kind == k {
			return r, true
		}
	}
	return ResourceInfo{}, false
}

// ByResource finds a kind by the names kubectl accepts: plural, singular,
// short name or kind, case-insensitive, optionally qualified with its group
// ("deployments.apps").
func ByResource(name string) (ResourceInfo, bool) {
	n := strings.ToLower(name)
	for _, r := range resources {
		if n == r.Resource || n == r.Singular || n == strings.ToLower(string(r.Kind)) ||
			(r.Group != "" && (n == r.Resource+"."+r.Group || n == r.Singular+"."+r.Group)) {
			return r, true
		}
		for _, s := range r.ShortNames {
			if n == s {
				return r, true
			}
		}
	}
	return ResourceInfo{}, false
}

// ByGroupResource finds a kind by the API group and plural resource name of
// a URL path.
func ByGroupResource(group, version, resource string) (ResourceInfo, bool) {
	for _, r := range resources {
		if r.Group == group && r.Version == version && r.Resource == resource {
			return r, true
		}
	}
	return ResourceInfo{}, false
}

// KindOf returns the registered kind of an object.
func KindOf(o Object) Kind { return Kind(o.GetTypeMeta().Kind) }

// DeepCopy returns a deep copy of o.
func DeepCopy[T Object](o T) T {
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("api: deep copy of %T: %v", o, err))
	}
	out := reflect.New(reflect.TypeOf(o).Elem()).Interface().(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("api: deep copy of %T: %v", o, err))
	}
	return out
}

// SpecEqual reports whether two objects of the same kind have equal specs
// (their Spec field; kinds without one compare everything but metadata and
// status). The store bumps metadata.generation when it is false.
func SpecEqual(a, b Object) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	if fa := va.FieldByName("Spec"); fa.IsValid() {
		return reflect.DeepEqual(fa.Interface(), vb.FieldByName("Spec").Interface())
	}
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		switch t.Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// CopyStatus sets dst's Status field to src's (both of the same kind). It
// is a no-op for kinds without a status.
func CopyStatus(dst, src Object) {
	vd, vs := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	if fd := vd.FieldByName("Status"); fd.IsValid() {
		fd.Set(vs.FieldByName("Status"))
	}
}
