package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

func newDescribeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe KIND NAME... | KIND/NAME...",
		Short: "Show the details of objects, with their events",
		Long: `Show an object's key fields in a readable form: its metadata, then what matters
for its kind (a Deployment's replicas, strategy and pod template; a Pod's node,
IP, containers and conditions; a Service's type, IPs and ports; a Node's
conditions, capacity, taints and addresses), and last the events about it.`,
		Example: `  # A Deployment
  skiff describe deploy web

  # A Pod of namespace "staging"
  skiff describe pod web-7d9f-abcde -n staging

  # A node
  skiff describe node/node-1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := parseTargets(args)
			if err != nil {
				return err
			}
			if !anyNamed(targets) {
				return fmt.Errorf("you must specify the name of the %s to describe", targets[0].info.Singular)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			failed, n := false, 0
			for _, t := range targets {
				for _, name := range t.names {
					ctx, cancel := o.requestContext(cmd.Context())
					obj, err := c.Get(ctx, t.info.Kind, o.namespaceFor(t.info), name)
					if err != nil {
						cancel()
						failed = true
						o.reportError(err)
						continue
					}
					events, evErr := objectEvents(ctx, c, t.info, obj)
					cancel()
					if n > 0 {
						fmt.Fprintln(o.out)
					}
					n++
					describeObject(o.out, t.info, mustFields(obj), events, evErr, o.now())
				}
			}
			if failed {
				return ErrReported
			}
			return nil
		},
		ValidArgsFunction: completeKinds,
	}
	return cmd
}

// objectEvents lists the events about obj, newest last. It asks the server
// to filter by involvedObject and filters again itself, so it works with a
// server that ignores those field selectors.
func objectEvents(ctx context.Context, c *client.Client, info api.ResourceInfo, obj api.Object) ([]fields, error) {
	m := obj.GetObjectMeta()
	opts := client.ListOptions{
		Namespace: m.Namespace,
		FieldSelector: fmt.Sprintf("involvedObject.kind=%s,involvedObject.name=%s",
			info.Kind, m.Name),
	}
	l, err := c.List(ctx, api.KindEvent, opts)
	if err != nil {
		if s, ok := statusOf(err); !ok || s.Code != 400 {
			return nil, err
		}
		opts.FieldSelector = ""
		if l, err = c.List(ctx, api.KindEvent, opts); err != nil {
			return nil, err
		}
	}
	var out []fields
	for _, e := range l.Items {
		f := mustFields(e)
		ref := f.obj("involvedObject")
		if ref.str("kind") != string(info.Kind) || ref.str("name") != m.Name {
			continue
		}
		if info.Namespaced && ref.str("namespace") != "" && ref.str("namespace") != m.Namespace {
			continue
		}
		if uid := ref.str("uid"); uid != "" && m.UID != "" && uid != string(m.UID) {
			continue
		}
		out = append(out, f)
	}
	sort.SliceStable(out, func(i, j int) bool {
		_, a := eventTimes(out[i])
		_, b := eventTimes(out[j])
		return a.Before(b)
	})
	return out, nil
}

// describer writes kubectl-style "Key:  value" lines; values of
// consecutive lines align.
type describer struct {
	w   *tabwriter.Writer
	now time.Time
}

func (d *describer) line(level int, key string, value any) {
	fmt.Fprintf(d.w, "%s%s:\t%v\n", strings.Repeat("  ", level), key, value)
}

func (d *describer) heading(level int, key string) {
	fmt.Fprintf(d.w, "%s%s:\n", strings.Repeat("  ", level), key)
}

// multi prints a key with several values, one per line.
func (d *describer) multi(level int, key string, values []string) {
	if len(values) == 0 {
		d.line(level, key, "<none>")
		return
	}
	d.line(level, key, values[0])
	for _, v := range values[1:] {
		fmt.Fprintf(d.w, "%s\t%s\n", strings.Repeat("  ", level), v)
	}
}

// rows prints a small table under a heading.
func (d *describer) rows(level int, header []string, rows [][]string) {
	ind := strings.Repeat("  ", level)
	under := make([]string, len(header))
	for i, h := range header {
		under[i] = strings.Repeat("-", len(h))
	}
	fmt.Fprintf(d.w, "%s%s\n", ind, strings.Join(header, "\t"))
	fmt.Fprintf(d.w, "%s%s\n", ind, strings.Join(under, "\t"))
	for _, r := range rows {
		fmt.Fprintf(d.w, "%s%s\n", ind, strings.Join(r, "\t"))
	}
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "<unset>"
	}
	return t.Format(time.RFC1123Z)
}

func sortedPairs(m map[string]string, sep string, skip ...string) []string {
	var out []string
outer:
	for k, v := range m {
		for _, s := range skip {
			if k == s {
				continue outer
			}
		}
		out = append(out, k+sep+v)
	}
	sort.Strings(out)
	return out
}

// describeObject writes the description of one object and its events.
func describeObject(w io.Writer, info api.ResourceInfo, o fields, events []fields, evErr error, now time.Time) {
	d := &describer{w: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0), now: now}
	d.line(0, "Name", o.str("metadata", "name"))
	if info.Namespaced {
		d.line(0, "Namespace", o.str("metadata", "namespace"))
	}
	d.multi(0, "Labels", sortedPairs(o.strMap("metadata", "labels"), "="))
	d.multi(0, "Annotations", sortedPairs(o.strMap("metadata", "annotations"), ": ", LastAppliedAnnotation))
	d.line(0, "CreationTimestamp", timestamp(created(o)))
	if ref := controllerOf(o); ref != "" {
		d.line(0, "Controlled By", ref)
	}
	switch info.Kind {
	case api.KindDeployment:
		describeDeployment(d, o)
	case api.KindDaemonSet:
		describeDaemonSet(d, o)
	case api.KindPod:
		describePod(d, o)
	case api.KindService:
		describeService(d, o)
	case api.KindNode:
		describeNode(d, o)
	case api.KindNamespace:
		d.line(0, "Status", orDefault(o.str("status", "phase"), "Active"))
	case api.KindEndpoints:
		describeEndpoints(d, o)
	case api.KindEvent:
		describeEvent(d, o)
	case api.KindControllerRevision:
		d.line(0, "Revision", o.numOr(0, "revision"))
		describeTemplate(d, o.obj("data"))
	}
	describeEvents(d, events, evErr)
	d.w.Flush()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func controllerOf(o fields) string {
	for _, r := range o.list("metadata", "ownerReferences") {
		if r.bool("controller") {
			return r.str("kind") + "/" + r.str("name")
		}
	}
	return ""
}

func describeDeployment(d *describer, o fields) {
	desired := o.numOr(1, "spec", "replicas")
	d.line(0, "Selector", orNone(selectorString(o.obj("spec", "selector"))))
	d.line(0, "Replicas", fmt.Sprintf("%d desired | %d updated | %d total | %d available | %d unavailable",
		desired, o.numOr(0, "status", "updatedReplicas"), o.numOr(0, "status", "replicas"),
		o.numOr(0, "status", "availableReplicas"), o.numOr(0, "status", "unavailableReplicas")))
	strategy := orDefault(o.str("spec", "strategy", "type"), "RollingUpdate")
	d.line(0, "StrategyType", strategy)
	d.line(0, "MinReadySeconds", o.numOr(0, "spec", "minReadySeconds"))
	if strategy == "RollingUpdate" {
		d.line(0, "RollingUpdateStrategy", fmt.Sprintf("%s max unavailable, %s max surge",
			orDefault(o.str("spec", "strategy", "rollingUpdate", "maxUnavailable"), "25%"),
			orDefault(o.str("spec", "strategy", "rollingUpdate", "maxSurge"), "25%")))
	}
	describeTemplate(d, o.obj("spec", "template"))
	describeConditions(d, o.list("status", "conditions"), []string{"Type", "Status", "Reason"},
		func(c fields) []string { return []string{c.str("type"), c.str("status"), c.str("reason")} })
}

func describeDaemonSet(d *describer, o fields) {
	d.line(0, "Selector", orNone(selectorString(o.obj("spec", "selector"))))
	d.line(0, "Node-Selector", orNone(labelString(o.strMap("spec", "template", "spec", "nodeSelector"))))
	n := func(f string) int64 { return o.numOr(0, "status", f) }
	d.line(0, "Desired Number of Nodes Scheduled", n("desiredNumberScheduled"))
	d.line(0, "Current Number of Nodes Scheduled", n("currentNumberScheduled"))
	d.line(0, "Number of Nodes Scheduled with Up-to-date Pods", n("updatedNumberScheduled"))
	d.line(0, "Number of Nodes Scheduled with Available Pods", n("numberAvailable"))
	d.line(0, "Number of Nodes Misscheduled", n("numberMisscheduled"))
	d.line(0, "Pods Status", fmt.Sprintf("%d Ready", n("numberReady")))
	describeTemplate(d, o.obj("spec", "template"))
}

func describeTemplate(d *describer, t fields) {
	d.heading(0, "Pod Template")
	d.multi(1, "Labels", sortedPairs(t.strMap("metadata", "labels"), "="))
	if ann := t.strMap("metadata", "annotations"); len(ann) > 0 {
		d.multi(1, "Annotations", sortedPairs(ann, ": "))
	}
	describeContainers(d, 1, t.list("spec", "containers"), nil)
}

// describeContainers prints containers; statuses (a Pod's) add their state.
func describeContainers(d *describer, level int, containers, statuses []fields) {
	if len(containers) == 0 {
		d.line(level, "Containers", "<none>")
		return
	}
	d.heading(level, "Containers")
	for _, c := range containers {
		d.heading(level+1, c.str("name"))
		l := level + 2
		d.line(l, "Image", c.str("image"))
		var ports []string
		for _, p := range c.list("ports") {
			ports = append(ports, fmt.Sprintf("%d/%s", p.numOr(0, "containerPort"), orDefault(p.str("protocol"), "TCP")))
		}
		d.line(l, "Port", orNone(strings.Join(ports, ", ")))
		if cmd := c.strs("command"); len(cmd) > 0 {
			d.multi(l, "Command", cmd)
		}
		if args := c.strs("args"); len(args) > 0 {
			d.multi(l, "Args", args)
		}
		for _, cs := range statuses {
			if cs.str("name") != c.str("name") {
				continue
			}
			describeContainerState(d, l, "State", cs.obj("state"))
			if cs.has("lastState") && len(cs.obj("lastState")) > 0 {
				describeContainerState(d, l, "Last State", cs.obj("lastState"))
			}
			d.line(l, "Ready", cs.bool("ready"))
			d.line(l, "Restart Count", cs.numOr(0, "restartCount"))
		}
		if lim := c.strMap("resources", "limits"); len(lim) > 0 {
			d.heading(l, "Limits")
			for _, kv := range sortedPairs(lim, ":\t") {
				fmt.Fprintf(d.w, "%s%s\n", strings.Repeat("  ", l+1), kv)
			}
		}
		if req := c.strMap("resources", "requests"); len(req) > 0 {
			d.heading(l, "Requests")
			for _, kv := range sortedPairs(req, ":\t") {
				fmt.Fprintf(d.w, "%s%s\n", strings.Repeat("  ", l+1), kv)
			}
		}
		for _, p := range []struct{ key, field string }{{"Liveness", "livenessProbe"}, {"Readiness", "readinessProbe"}, {"Startup", "startupProbe"}} {
			if pr := c.obj(p.field); pr != nil {
				d.line(l, p.key, probeString(pr))
			}
		}
		var env []string
		for _, e := range c.list("env") {
			env = append(env, e.str("name")+":\t"+e.str("value"))
		}
		if len(env) == 0 {
			d.line(l, "Environment", "<none>")
		} else {
			d.heading(l, "Environment")
			for _, e := range env {
				fmt.Fprintf(d.w, "%s%s\n", strings.Repeat("  ", l+1), e)
			}
		}
	}
}

func describeContainerState(d *describer, level int, key string, st fields) {
	switch {
	case st.has("running"):
		d.line(level, key, "Running")
		d.line(level+1, "Started", timestamp(st.time("running", "startedAt")))
	case st.has("waiting"):
		d.line(level, key, "Waiting")
		if r := st.str("waiting", "reason"); r != "" {
			d.line(level+1, "Reason", r)
		}
	case st.has("terminated"):
		d.line(level, key, "Terminated")
		if r := st.str("terminated", "reason"); r != "" {
			d.line(level+1, "Reason", r)
		}
		d.line(level+1, "Exit Code", st.numOr(0, "terminated", "exitCode"))
		d.line(level+1, "Started", timestamp(st.time("terminated", "startedAt")))
		d.line(level+1, "Finished", timestamp(st.time("terminated", "finishedAt")))
	default:
		d.line(level, key, "Waiting")
	}
}

// probeString is kubectl's one-line probe summary.
func probeString(p fields) string {
	var action string
	switch {
	case p.has("httpGet"):
		h := p.obj("httpGet")
		action = fmt.Sprintf("http-get %s://%s:%s%s", strings.ToLower(orDefault(h.str("scheme"), "HTTP")), h.str("host"), h.str("port"), h.str("path"))
	case p.has("tcpSocket"):
		action = fmt.Sprintf("tcp-socket %s:%s", p.str("tcpSocket", "host"), p.str("tcpSocket", "port"))
	case p.has("exec"):
		action = "exec " + strings.Join(p.strs("exec", "command"), " ")
	default:
		action = "unknown"
	}
	return fmt.Sprintf("%s delay=%ds timeout=%ds period=%ds #success=%d #failure=%d", action,
		p.numOr(0, "initialDelaySeconds"), p.numOr(1, "timeoutSeconds"), p.numOr(10, "periodSeconds"),
		p.numOr(1, "successThreshold"), p.numOr(3, "failureThreshold"))
}

func describeConditions(d *describer, conds []fields, header []string, row func(fields) []string) {
	if len(conds) == 0 {
		d.line(0, "Conditions", "<none>")
		return
	}
	d.heading(0, "Conditions")
	rows := make([][]string, len(conds))
	for i, c := range conds {
		rows[i] = row(c)
	}
	d.rows(1, header, rows)
}

func describePod(d *describer, o fields) {
	d.line(0, "Node", orNone(o.str("spec", "nodeName")))
	d.line(0, "Start Time", timestamp(o.time("status", "startTime")))
	status := orDefault(o.str("status", "phase"), "Pending")
	if o.has("metadata", "deletionTimestamp") {
		status = "Terminating"
	}
	d.line(0, "Status", status)
	if r := o.str("status", "reason"); r != "" {
		d.line(0, "Reason", r)
	}
	if m := o.str("status", "message"); m != "" {
		d.line(0, "Message", m)
	}
	d.line(0, "IP", orNone(o.str("status", "podIP")))
	var ips []string
	for _, ip := range o.list("status", "podIPs") {
		ips = append(ips, ip.str("ip"))
	}
	if len(ips) > 0 {
		d.multi(0, "IPs", ips)
	}
	describeContainers(d, 0, o.list("spec", "containers"), o.list("status", "containerStatuses"))
	describeConditions(d, o.list("status", "conditions"), []string{"Type", "Status"},
		func(c fields) []string { return []string{c.str("type"), c.str("status")} })
	d.line(0, "Node-Selectors", orNone(labelString(o.strMap("spec", "nodeSelector"))))
	var tols []string
	for _, t := range o.list("spec", "tolerations") {
		s := t.str("key")
		if v := t.str("value"); v != "" {
			s += "=" + v
		}
		if e := t.str("effect"); e != "" {
			s += ":" + e
		}
		if t.str("operator") == "Exists" && s == "" {
			s = "op=Exists"
		}
		tols = append(tols, s)
	}
	d.multi(0, "Tolerations", tols)
}

func describeService(d *describer, o fields) {
	typ := orDefault(o.str("spec", "type"), "ClusterIP")
	d.line(0, "Selector", orNone(labelString(o.strMap("spec", "selector"))))
	d.line(0, "Type", typ)
	d.line(0, "IP", orNone(o.str("spec", "clusterIP")))
	if ips := o.strs("spec", "clusterIPs"); len(ips) > 0 {
		d.line(0, "IPs", strings.Join(ips, ","))
	}
	if ext := o.strs("spec", "externalIPs"); len(ext) > 0 {
		d.line(0, "External IPs", strings.Join(ext, ","))
	}
	if typ == "LoadBalancer" {
		d.line(0, "LoadBalancer Ingress", serviceExternalIP(o, typ))
	}
	for _, p := range o.list("spec", "ports") {
		proto := orDefault(p.str("protocol"), "TCP")
		d.line(0, "Port", fmt.Sprintf("%s  %d/%s", orDefault(p.str("name"), "<unset>"), p.numOr(0, "port"), proto))
		target := p.str("targetPort")
		if target == "" {
			target = p.str("port")
		}
		d.line(0, "TargetPort", target+"/"+proto)
		if np, ok := p.num("nodePort"); ok && np != 0 {
			d.line(0, "NodePort", fmt.Sprintf("%s  %d/%s", orDefault(p.str("name"), "<unset>"), np, proto))
		}
	}
	d.line(0, "Session Affinity", orDefault(o.str("spec", "sessionAffinity"), "None"))
}

func describeNode(d *describer, o fields) {
	d.line(0, "Roles", nodeRoles(o))
	var taints []string
	for _, t := range o.list("spec", "taints") {
		s := t.str("key")
		if v := t.str("value"); v != "" {
			s += "=" + v
		}
		taints = append(taints, s+":"+t.str("effect"))
	}
	d.multi(0, "Taints", taints)
	d.line(0, "Unschedulable", o.bool("spec", "unschedulable"))
	describeConditions(d, o.list("status", "conditions"),
		[]string{"Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message"},
		func(c fields) []string {
			return []string{c.str("type"), c.str("status"), timestamp(c.time("lastHeartbeatTime")),
				timestamp(c.time("lastTransitionTime")), c.str("reason"), c.str("message")}
		})
	var addrs []string
	for _, a := range o.list("status", "addresses") {
		addrs = append(addrs, a.str("type")+":\t"+a.str("address"))
	}
	describeBlock(d, "Addresses", addrs)
	describeBlock(d, "Capacity", sortedPairs(o.strMap("status", "capacity"), ":\t"))
	describeBlock(d, "Allocatable", sortedPairs(o.strMap("status", "allocatable"), ":\t"))
	if info := o.obj("status", "nodeInfo"); len(info) > 0 {
		d.heading(0, "System Info")
		for _, kv := range []struct{ k, f string }{
			{"Machine ID", "machineID"}, {"Boot ID", "bootID"}, {"Kernel Version", "kernelVersion"},
			{"OS Image", "osImage"}, {"Operating System", "operatingSystem"}, {"Architecture", "architecture"},
			{"Container Runtime Version", "containerRuntimeVersion"}, {"Kubelet Version", "kubeletVersion"},
		} {
			if v := info.str(kv.f); v != "" {
				d.line(1, kv.k, v)
			}
		}
	}
	if cidr := o.str("spec", "podCIDR"); cidr != "" {
		d.line(0, "PodCIDR", cidr)
	}
}

// describeBlock prints "Key:" and then one indented line per entry (each
// already "name:\tvalue").
func describeBlock(d *describer, key string, lines []string) {
	if len(lines) == 0 {
		d.line(0, key, "<none>")
		return
	}
	d.heading(0, key)
	for _, l := range lines {
		fmt.Fprintf(d.w, "  %s\n", l)
	}
}

func describeEndpoints(d *describer, o fields) {
	subsets := o.list("subsets")
	if len(subsets) == 0 {
		d.line(0, "Subsets", "<none>")
		return
	}
	d.heading(0, "Subsets")
	for _, ss := range subsets {
		var ready, notReady []string
		for _, a := range ss.list("addresses") {
			ready = append(ready, a.str("ip"))
		}
		for _, a := range ss.list("notReadyAddresses") {
			notReady = append(notReady, a.str("ip"))
		}
		d.line(1, "Addresses", orNone(strings.Join(ready, ",")))
		d.line(1, "NotReadyAddresses", orNone(strings.Join(notReady, ",")))
		var rows [][]string
		for _, p := range ss.list("ports") {
			rows = append(rows, []string{orDefault(p.str("name"), "<unset>"), p.str("port"), orDefault(p.str("protocol"), "TCP")})
		}
		if len(rows) > 0 {
			d.heading(1, "Ports")
			d.rows(2, []string{"Name", "Port", "Protocol"}, rows)
		}
	}
}

func describeEvent(d *describer, o fields) {
	first, last := eventTimes(o)
	d.line(0, "Involved Object", o.str("involvedObject", "kind")+"/"+o.str("involvedObject", "name"))
	d.line(0, "Type", o.str("type"))
	d.line(0, "Reason", o.str("reason"))
	d.line(0, "Message", o.str("message"))
	d.line(0, "Source", orNone(o.str("source", "component")))
	d.line(0, "Count", o.numOr(1, "count"))
	d.line(0, "First Seen", timestamp(first))
	d.line(0, "Last Seen", timestamp(last))
}

func describeEvents(d *describer, events []fields, err error) {
	switch {
	case err != nil:
		d.line(0, "Events", fmt.Sprintf("<unable to list events: %v>", err))
		return
	case len(events) == 0:
		d.line(0, "Events", "<none>")
		return
	}
	d.heading(0, "Events")
	rows := make([][]string, len(events))
	for i, e := range events {
		first, last := eventTimes(e)
		when := age(d.now, last)
		if n := e.numOr(1, "count"); n > 1 {
			when = fmt.Sprintf("%s (x%d over %s)", when, n, age(d.now, first))
		}
		rows[i] = []string{e.str("type"), e.str("reason"), when, orNone(e.str("source", "component")), strings.TrimSpace(e.str("message"))}
	}
	d.rows(1, []string{"Type", "Reason", "Age", "From", "Message"}, rows)
}
