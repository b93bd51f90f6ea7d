package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
)

// qualifiedName is how kubectl names an object of a kind in output that
// may mix kinds: "deployment.apps/web", "service/web".
func qualifiedName(info api.ResourceInfo, name string) string {
	return kindName(info) + "/" + name
}

// kindName is "deployment.apps" or "service".
func kindName(info api.ResourceInfo) string {
	if info.Group == "" {
		return info.Singular
	}
	return info.Singular + "." + info.Group
}

// tablePrinter turns objects into the rows of `skiff get`.
type tablePrinter struct {
	now           func() time.Time
	wide          bool
	withNamespace bool // -A: a NAMESPACE column first
	qualify       bool // several kinds: names as kind.group/name
}

// kindColumns prints one kind. name is the NAME cell (maybe qualified).
type kindColumns struct {
	header func(wide bool) []string
	row    func(o fields, name string, now time.Time, wide bool) []string
}

var columnsByKind = map[api.Kind]kindColumns{
	api.KindPod:                {podHeader, podRow},
	api.KindDeployment:         {deploymentHeader, deploymentRow},
	api.KindService:            {serviceHeader, serviceRow},
	api.KindNode:               {nodeHeader, nodeRow},
	api.KindNamespace:          {namespaceHeader, namespaceRow},
	api.KindEndpoints:          {endpointsHeader, endpointsRow},
	api.KindEvent:              {eventHeader, eventRow},
	api.KindDaemonSet:          {daemonSetHeader, daemonSetRow},
	api.KindControllerRevision: {controllerRevisionHeader, controllerRevisionRow},
}

var defaultColumns = kindColumns{
	header: func(bool) []string { return []string{"NAME", "AGE"} },
	row: func(o fields, name string, now time.Time, _ bool) []string {
		return []string{name, age(now, o.time("metadata", "creationTimestamp"))}
	},
}

func columnsFor(k api.Kind) kindColumns {
	if c, ok := columnsByKind[k]; ok {
		return c
	}
	return defaultColumns
}

func (p tablePrinter) header(info api.ResourceInfo) []string {
	h := columnsFor(info.Kind).header(p.wide)
	if p.withNamespace && info.Namespaced {
		h = append([]string{"NAMESPACE"}, h...)
	}
	return h
}

func (p tablePrinter) row(info api.ResourceInfo, o fields) []string {
	name := o.str("metadata", "name")
	if p.qualify {
		name = qualifiedName(info, name)
	}
	r := columnsFor(info.Kind).row(o, name, p.now(), p.wide)
	if p.withNamespace && info.Namespaced {
		r = append([]string{o.str("metadata", "namespace")}, r...)
	}
	return r
}

func created(o fields) time.Time { return o.time("metadata", "creationTimestamp") }

// Pods.

func podHeader(wide bool) []string {
	h := []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
	if wide {
		h = append(h, "IP", "NODE")
	}
	return h
}

func podRow(o fields, name string, now time.Time, wide bool) []string {
	total := len(o.list("spec", "containers"))
	ready, restarts := 0, int64(0)
	reason := o.str("status", "phase")
	if r := o.str("status", "reason"); r != "" {
		reason = r
	}
	if reason == "" {
		reason = "Pending"
	}
	statuses := o.list("status", "containerStatuses")
	for i := len(statuses) - 1; i >= 0; i-- {
		cs := statuses[i]
		restarts += cs.numOr(0, "restartCount")
		switch {
		case cs.str("state", "waiting", "reason") != "":
			reason = cs.str("state", "waiting", "reason")
		case cs.str("state", "terminated", "reason") != "":
			reason = cs.str("state", "terminated", "reason")
		case cs.has("state", "terminated"):
			if sig := cs.numOr(0, "state", "terminated", "signal"); sig != 0 {
				reason = fmt.Sprintf("Signal:%d", sig)
			} else {
				reason = fmt.Sprintf("ExitCode:%d", cs.numOr(0, "state", "terminated", "exitCode"))
			}
		case cs.bool("ready") && cs.has("state", "running"):
			ready++
		}
	}
	if o.has("metadata", "deletionTimestamp") {
		if o.str("status", "reason") == "NodeLost" {
			reason = "Unknown"
		} else {
			reason = "Terminating"
		}
	}
	r := []string{name, fmt.Sprintf("%d/%d", ready, total), reason, fmt.Sprint(restarts), age(now, created(o))}
	if wide {
		r = append(r, orNone(o.str("status", "podIP")), orNone(o.str("spec", "nodeName")))
	}
	return r
}

// Deployments and DaemonSets.

func deploymentHeader(wide bool) []string {
	h := []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}
	if wide {
		h = append(h, "CONTAINERS", "IMAGES", "SELECTOR")
	}
	return h
}

func deploymentRow(o fields, name string, now time.Time, wide bool) []string {
	desired := o.numOr(1, "spec", "replicas")
	r := []string{
		name,
		fmt.Sprintf("%d/%d", o.numOr(0, "status", "readyReplicas"), desired),
		fmt.Sprint(o.numOr(0, "status", "updatedReplicas")),
		fmt.Sprint(o.numOr(0, "status", "availableReplicas")),
		age(now, created(o)),
	}
	if wide {
		r = append(r, templateColumns(o)...)
	}
	return r
}

func daemonSetHeader(wide bool) []string {
	h := []string{"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"}
	if wide {
		h = append(h, "CONTAINERS", "IMAGES", "SELECTOR")
	}
	return h
}

func daemonSetRow(o fields, name string, now time.Time, wide bool) []string {
	n := func(f string) string { return fmt.Sprint(o.numOr(0, "status", f)) }
	r := []string{
		name,
		n("desiredNumberScheduled"), n("currentNumberScheduled"), n("numberReady"),
		n("updatedNumberScheduled"), n("numberAvailable"),
		orNone(labelString(o.strMap("spec", "template", "spec", "nodeSelector"))),
		age(now, created(o)),
	}
	if wide {
		r = append(r, templateColumns(o)...)
	}
	return r
}

// templateColumns are the CONTAINERS IMAGES SELECTOR cells of a workload.
func templateColumns(o fields) []string {
	var names, images []string
	for _, c := range o.list("spec", "template", "spec", "containers") {
		names = append(names, c.str("name"))
		images = append(images, c.str("image"))
	}
	return []string{
		orNone(strings.Join(names, ",")),
		orNone(strings.Join(images, ",")),
		orNone(selectorString(o.obj("spec", "selector"))),
	}
}

// selectorString formats a LabelSelector as kubectl does.
func selectorString(sel fields) string {
	var parts []string
	if ml := sel.strMap("matchLabels"); len(ml) > 0 {
		parts = append(parts, labelString(ml))
	}
	for _, e := range sel.list("matchExpressions") {
		key, vals := e.str("key"), e.strs("values")
		switch e.str("operator") {
		case "In":
			parts = append(parts, fmt.Sprintf("%s in (%s)", key, strings.Join(vals, ",")))
		case "NotIn":
			parts = append(parts, fmt.Sprintf("%s notin (%s)", key, strings.Join(vals, ",")))
		case "Exists":
			parts = append(parts, key)
		case "DoesNotExist":
			parts = append(parts, "!"+key)
		}
	}
	return strings.Join(parts, ",")
}

// ControllerRevisions.

func controllerRevisionHeader(bool) []string {
	return []string{"NAME", "CONTROLLER", "REVISION", "AGE"}
}

func controllerRevisionRow(o fields, name string, now time.Time, _ bool) []string {
	return []string{name, orNone(controllerName(o)), fmt.Sprint(o.numOr(0, "revision")), age(now, created(o))}
}

// controllerName is an object's controller as kubectl names it
// ("deployment.apps/web"), or "".
func controllerName(o fields) string {
	for _, r := range o.list("metadata", "ownerReferences") {
		if !r.bool("controller") {
			continue
		}
		kind := strings.ToLower(r.str("kind"))
		if group, _, ok := strings.Cut(r.str("apiVersion"), "/"); ok {
			kind += "." + group
		}
		return kind + "/" + r.str("name")
	}
	return ""
}

// Services.

func serviceHeader(wide bool) []string {
	h := []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}
	if wide {
		h = append(h, "SELECTOR")
	}
	return h
}

func serviceRow(o fields, name string, now time.Time, wide bool) []string {
	typ := o.str("spec", "type")
	if typ == "" {
		typ = "ClusterIP"
	}
	clusterIP := o.str("spec", "clusterIP")
	if clusterIP == "" {
		clusterIP = "<none>"
	}
	r := []string{name, typ, clusterIP, serviceExternalIP(o, typ), servicePorts(o), age(now, created(o))}
	if wide {
		r = append(r, orNone(labelString(o.strMap("spec", "selector"))))
	}
	return r
}

func serviceExternalIP(o fields, typ string) string {
	external := o.strs("spec", "externalIPs")
	switch typ {
	case "LoadBalancer":
		var ips []string
		for _, ing := range o.list("status", "loadBalancer", "ingress") {
			if ip := ing.str("ip"); ip != "" {
				ips = append(ips, ip)
			} else if h := ing.str("hostname"); h != "" {
				ips = append(ips, h)
			}
		}
		ips = append(ips, external...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	case "ExternalName":
		return o.str("spec", "externalName")
	}
	return orNone(strings.Join(external, ","))
}

func servicePorts(o fields) string {
	var parts []string
	for _, p := range o.list("spec", "ports") {
		proto := p.str("protocol")
		if proto == "" {
			proto = "TCP"
		}
		if np, ok := p.num("nodePort"); ok && np != 0 {
			parts = append(parts, fmt.Sprintf("%d:%d/%s", p.numOr(0, "port"), np, proto))
		} else {
			parts = append(parts, fmt.Sprintf("%d/%s", p.numOr(0, "port"), proto))
		}
	}
	return orNone(strings.Join(parts, ","))
}

// Nodes.

func nodeHeader(wide bool) []string {
	h := []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"}
	if wide {
		h = append(h, "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME")
	}
	return h
}

func nodeRow(o fields, name string, now time.Time, wide bool) []string {
	status := "Unknown"
	for _, c := range o.list("status", "conditions") {
		if c.str("type") == "Ready" {
			if c.str("status") == "True" {
				status = "Ready"
			} else {
				status = "NotReady"
			}
		}
	}
	if o.bool("spec", "unschedulable") {
		status += ",SchedulingDisabled"
	}
	unknown := func(s string) string {
		if s == "" {
			return "<unknown>"
		}
		return s
	}
	r := []string{name, status, nodeRoles(o), age(now, created(o)), unknown(o.str("status", "nodeInfo", "kubeletVersion"))}
	if wide {
		r = append(r,
			orNone(nodeAddress(o, "InternalIP")),
			orNone(nodeAddress(o, "ExternalIP")),
			unknown(o.str("status", "nodeInfo", "osImage")),
			unknown(o.str("status", "nodeInfo", "kernelVersion")),
			unknown(o.str("status", "nodeInfo", "containerRuntimeVersion")),
		)
	}
	return r
}

func nodeRoles(o fields) string {
	var roles []string
	for k, v := range o.strMap("metadata", "labels") {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roles = append(roles, r)
			}
		case k == "kubernetes.io/role" && v != "":
			roles = append(roles, v)
		}
	}
	sort.Strings(roles)
	return orNone(strings.Join(roles, ","))
}

func nodeAddress(o fields, typ string) string {
	for _, a := range o.list("status", "addresses") {
		if a.str("type") == typ {
			return a.str("address")
		}
	}
	return ""
}

// Namespaces.

func namespaceHeader(bool) []string { return []string{"NAME", "STATUS", "AGE"} }

func namespaceRow(o fields, name string, now time.Time, _ bool) []string {
	phase := o.str("status", "phase")
	if phase == "" {
		phase = "Active"
	}
	return []string{name, phase, age(now, created(o))}
}

// Endpoints.

func endpointsHeader(bool) []string { return []string{"NAME", "ENDPOINTS", "AGE"} }

func endpointsRow(o fields, name string, now time.Time, _ bool) []string {
	return []string{name, formatEndpoints(o, 3), age(now, created(o))}
}

// formatEndpoints lists ready ip:port pairs, at most max of them, as
// kubectl does.
func formatEndpoints(o fields, max int) string {
	var list []string
	total := 0
	for _, ss := range o.list("subsets") {
		ports := ss.list("ports")
		for _, a := range ss.list("addresses") {
			ip := a.str("ip")
			if len(ports) == 0 {
				total++
				if len(list) < max {
					list = append(list, ip)
				}
				continue
			}
			for _, p := range ports {
				total++
				if len(list) < max {
					list = append(list, fmt.Sprintf("%s:%d", ip, p.numOr(0, "port")))
				}
			}
		}
	}
	s := strings.Join(list, ",")
	if more := total - len(list); more > 0 {
		s += fmt.Sprintf(" + %d more...", more)
	}
	return orNone(s)
}

// Events.

func eventHeader(wide bool) []string {
	if wide {
		return []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"}
	}
	return []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}
}

func eventRow(o fields, name string, now time.Time, wide bool) []string {
	first, last := eventTimes(o)
	count := o.numOr(1, "count")
	lastSeen := age(now, last)
	if count > 1 && !first.IsZero() && !wide {
		lastSeen = fmt.Sprintf("%s (x%d over %s)", lastSeen, count, age(now, first))
	}
	object := strings.ToLower(o.str("involvedObject", "kind")) + "/" + o.str("involvedObject", "name")
	if wide {
		source := o.str("source", "component")
		if h := o.str("source", "host"); h != "" {
			source += ", " + h
		}
		return []string{lastSeen, o.str("type"), o.str("reason"), object, orNone(source),
			strings.TrimSpace(o.str("message")), age(now, first), fmt.Sprint(count), name}
	}
	return []string{lastSeen, o.str("type"), o.str("reason"), object, strings.TrimSpace(o.str("message"))}
}

// eventTimes returns when an event was first and last seen, falling back
// to its eventTime and creation time.
func eventTimes(o fields) (first, last time.Time) {
	first, last = o.time("firstTimestamp"), o.time("lastTimestamp")
	if t := o.time("eventTime"); !t.IsZero() {
		if first.IsZero() {
			first = t
		}
		if last.IsZero() {
			last = t
		}
	}
	if first.IsZero() {
		first = created(o)
	}
	if last.IsZero() {
		last = first
	}
	return first, last
}
