package apiserver

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// target is what a resource path addresses.
type target struct {
	info        api.ResourceInfo
	namespace   string // namespace in the path ("" for cluster-scoped kinds and all-namespace lists)
	name        string // "" for a collection
	subresource string // "" or "status"
}

func (t target) collection() bool { return t.name == "" }

// resourceLabel is the resource label of the request metrics.
func (t target) resourceLabel() string {
	if t.subresource != "" {
		return t.info.Resource + "/" + t.subresource
	}
	return t.info.Resource
}

// parseResourcePath maps /api/v1/... and /apis/{group}/{version}/... to a
// target. ok is false when the path is not an API resource path at all.
func parseResourcePath(path string) (t target, ok bool, err *statusError) {
	var group, version string
	var rest []string
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		version, rest = segs[1], segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		group, version, rest = segs[1], segs[2], segs[3:]
	default:
		return target{}, false, nil
	}
	gv := version
	if group != "" {
		gv = group + "/" + version
	}
	for _, s := range rest {
		if s == "" {
			return target{}, true, notFoundPath(fmt.Sprintf("the server could not find the requested path %s", path))
		}
	}
	lookup := func(resource string) (api.ResourceInfo, *statusError) {
		info, found := api.ByGroupResource(group, version, resource)
		if !found {
			return info, notFoundPath(fmt.Sprintf("the server does not serve resource %q in %s", resource, gv))
		}
		return info, nil
	}
	// /namespaces/{ns}/{resource}/... addresses namespaced objects, except
	// /namespaces/{name}[/status] which is the Namespace itself.
	if len(rest) >= 3 && rest[0] == "namespaces" && rest[2] != "status" {
		ns := rest[1]
		info, serr := lookup(rest[2])
		if serr != nil {
			return target{}, true, serr
		}
		if !info.Namespaced {
			return target{}, true, notFoundPath(fmt.Sprintf("%s is not namespaced: use /%s", info.GroupResource(), strings.Join(pathPrefix(info), "/")+"/"+info.Resource))
		}
		t = target{info: info, namespace: ns}
		switch len(rest) {
		case 3:
		case 4:
			t.name = rest[3]
		case 5:
			t.name, t.subresource = rest[3], rest[4]
		default:
			return target{}, true, notFoundPath(fmt.Sprintf("the server could not find the requested path %s", path))
		}
	} else {
		if len(rest) == 0 {
			return target{}, true, notFoundPath(fmt.Sprintf("the server could not find the requested path %s: no resource named", path))
		}
		info, serr := lookup(rest[0])
		if serr != nil {
			return target{}, true, serr
		}
		t = target{info: info}
		switch len(rest) {
		case 1:
		case 2, 3:
			if info.Namespaced {
				return target{}, true, notFoundPath(fmt.Sprintf("%s is namespaced: use /%s/namespaces/{namespace}/%s/%s", info.GroupResource(), strings.Join(pathPrefix(info), "/"), info.Resource, rest[1]))
			}
			t.name = rest[1]
			if len(rest) == 3 {
				t.subresource = rest[2]
			}
		default:
			return target{}, true, notFoundPath(fmt.Sprintf("the server could not find the requested path %s", path))
		}
	}
	if t.subresource != "" && (t.subresource != "status" || !t.info.HasStatus) {
		return target{}, true, notFoundPath(fmt.Sprintf("%s has no subresource %q", t.info.GroupResource(), t.subresource))
	}
	return t, true, nil
}

func pathPrefix(info api.ResourceInfo) []string {
	if info.Group == "" {
		return []string{"api", info.Version}
	}
	return []string{"apis", info.Group, info.Version}
}

// verb names a request as Kubernetes' audit logs and metrics do.
func verb(r *http.Request, t target) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if t.collection() {
			if isWatch(r) {
				return "watch"
			}
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodDelete:
		return "delete"
	}
	return "other"
}

func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "1" || v == "true"
}
