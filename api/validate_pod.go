package api

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

func (v *validator) podSpec(s *PodSpec, p string) {
	if len(s.Containers) == 0 {
		v.required(p+".containers", "")
	}
	names := make(map[string]bool, len(s.Containers))
	portNames := map[string]bool{}
	type hostPortKey struct {
		port  int32
		proto Protocol
	}
	hostPorts := map[hostPortKey]bool{}
	for i := range s.Containers {
		c := &s.Containers[i]
		cp := idx(p+".containers", i)
		switch {
		case c.Name == "":
			v.required(cp+".name", "")
		case names[c.Name]:
			v.duplicate(cp+".name", c.Name)
		default:
			v.invalidMsgs(cp+".name", c.Name, DNS1123LabelErrors(c.Name))
		}
		names[c.Name] = true
		if c.Image == "" {
			v.required(cp+".image", "")
		}
		switch c.ImagePullPolicy {
		case PullAlways, PullNever, PullIfNotPresent:
		case "":
			v.required(cp+".imagePullPolicy", "")
		default:
			v.notSupported(cp+".imagePullPolicy", c.ImagePullPolicy, "Always", "IfNotPresent", "Never")
		}
		for j, port := range c.Ports {
			pp := idx(cp+".ports", j)
			if port.Name != "" {
				v.invalidMsgs(pp+".name", port.Name, portNameErrors(port.Name))
				if portNames[port.Name] {
					v.duplicate(pp+".name", port.Name)
				}
				portNames[port.Name] = true
			}
			v.port(pp+".containerPort", port.ContainerPort)
			if port.HostPort != 0 {
				v.port(pp+".hostPort", port.HostPort)
				if s.HostNetwork && port.HostPort != port.ContainerPort {
					v.invalid(pp+".hostPort", port.HostPort, "must match `containerPort` when `hostNetwork` is true")
				}
				k := hostPortKey{port.HostPort, port.Protocol}
				if hostPorts[k] {
					v.duplicate(pp+".hostPort", fmt.Sprintf("%d/%s", port.HostPort, port.Protocol))
				}
				hostPorts[k] = true
			}
			v.protocol(pp+".protocol", port.Protocol)
		}
		for j, e := range c.Env {
			if e.Name == "" {
				v.required(idx(cp+".env", j)+".name", "")
			} else if !envVarNameRE.MatchString(e.Name) {
				v.invalid(idx(cp+".env", j)+".name", e.Name, "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit")
			}
		}
		v.resources(&c.Resources, cp+".resources")
		v.probe(c.LivenessProbe, cp+".livenessProbe", true)
		v.probe(c.ReadinessProbe, cp+".readinessProbe", false)
		v.probe(c.StartupProbe, cp+".startupProbe", true)
		v.securityContext(c.SecurityContext, s.SecurityContext, cp+".securityContext")
	}
	v.podSecurityContext(s.SecurityContext, p+".securityContext")
	switch s.RestartPolicy {
	case RestartPolicyAlways, RestartPolicyOnFailure, RestartPolicyNever:
	case "":
		v.required(p+".restartPolicy", "")
	default:
		v.notSupported(p+".restartPolicy", s.RestartPolicy, "Always", "Never", "OnFailure")
	}
	if s.TerminationGracePeriodSeconds != nil {
		v.nonNegative(p+".terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds)
	}
	if s.NodeName != "" {
		v.invalidMsgs(p+".nodeName", s.NodeName, DNS1123SubdomainErrors(s.NodeName))
	}
	v.labels(s.NodeSelector, p+".nodeSelector")
	for i := range s.Tolerations {
		v.toleration(&s.Tolerations[i], idx(p+".tolerations", i))
	}
	if a := s.Affinity; a != nil {
		ap := p + ".affinity"
		if na := a.NodeAffinity; na != nil {
			np := ap + ".nodeAffinity"
			if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
				rp := np + ".requiredDuringSchedulingIgnoredDuringExecution"
				if len(r.NodeSelectorTerms) == 0 {
					v.required(rp+".nodeSelectorTerms", "must have at least one node selector term")
				}
				for i := range r.NodeSelectorTerms {
					v.nodeSelectorTerm(&r.NodeSelectorTerms[i], idx(rp+".nodeSelectorTerms", i))
				}
			}
			for i, t := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				tp := idx(np+".preferredDuringSchedulingIgnoredDuringExecution", i)
				v.weight(tp+".weight", t.Weight)
				v.nodeSelectorTerm(&t.Preference, tp+".preference")
			}
		}
		if pa := a.PodAffinity; pa != nil {
			v.podAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, ap+".podAffinity")
		}
		if pa := a.PodAntiAffinity; pa != nil {
			v.podAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, ap+".podAntiAffinity")
		}
	}
	type spreadKey struct {
		key    string
		action UnsatisfiableConstraintAction
	}
	spread := map[spreadKey]bool{}
	for i, c := range s.TopologySpreadConstraints {
		cp := idx(p+".topologySpreadConstraints", i)
		if c.MaxSkew <= 0 {
			v.invalid(cp+".maxSkew", c.MaxSkew, "must be greater than zero")
		}
		if c.TopologyKey == "" {
			v.required(cp+".topologyKey", "can not be empty")
		} else {
			v.invalidMsgs(cp+".topologyKey", c.TopologyKey, qualifiedNameErrors(c.TopologyKey))
		}
		switch c.WhenUnsatisfiable {
		case DoNotSchedule, ScheduleAnyway:
		default:
			v.notSupported(cp+".whenUnsatisfiable", c.WhenUnsatisfiable, "DoNotSchedule", "ScheduleAnyway")
		}
		k := spreadKey{c.TopologyKey, c.WhenUnsatisfiable}
		if spread[k] {
			v.duplicate(cp, fmt.Sprintf("{%v, %v}", c.TopologyKey, c.WhenUnsatisfiable))
		}
		spread[k] = true
		v.labelSelector(c.LabelSelector, cp+".labelSelector")
	}
}

func (v *validator) weight(p string, w int32) {
	if w < 1 || w > 100 {
		v.invalid(p, w, "must be in the range 1-100")
	}
}

func (v *validator) podAffinityTerms(req []PodAffinityTerm, pref []WeightedPodAffinityTerm, p string) {
	for i := range req {
		v.podAffinityTerm(&req[i], idx(p+".requiredDuringSchedulingIgnoredDuringExecution", i))
	}
	for i := range pref {
		tp := idx(p+".preferredDuringSchedulingIgnoredDuringExecution", i)
		v.weight(tp+".weight", pref[i].Weight)
		v.podAffinityTerm(&pref[i].PodAffinityTerm, tp+".podAffinityTerm")
	}
}

func (v *validator) podAffinityTerm(t *PodAffinityTerm, p string) {
	v.labelSelector(t.LabelSelector, p+".labelSelector")
	v.labelSelector(t.NamespaceSelector, p+".namespaceSelector")
	for i, ns := range t.Namespaces {
		v.invalidMsgs(idx(p+".namespaces", i), ns, DNS1123LabelErrors(ns))
	}
	if t.TopologyKey == "" {
		v.required(p+".topologyKey", "can not be empty")
	} else {
		v.invalidMsgs(p+".topologyKey", t.TopologyKey, qualifiedNameErrors(t.TopologyKey))
	}
}

func (v *validator) nodeSelectorTerm(t *NodeSelectorTerm, p string) {
	for i, r := range t.MatchExpressions {
		rp := idx(p+".matchExpressions", i)
		v.invalidMsgs(rp+".key", r.Key, qualifiedNameErrors(r.Key))
		v.nodeSelectorRequirement(r, rp)
	}
	for i, r := range t.MatchFields {
		rp := idx(p+".matchFields", i)
		if r.Key != FieldMetadataName {
			v.notSupported(rp+".key", r.Key, FieldMetadataName)
		}
		if r.Operator != NodeSelectorOpIn && r.Operator != NodeSelectorOpNotIn {
			v.notSupported(rp+".operator", r.Operator, "In", "NotIn")
			continue
		}
		if len(r.Values) != 1 {
			v.required(rp+".values", "must be only one value when `operator` is 'In' or 'NotIn' for node field selector")
		}
	}
}

func (v *validator) nodeSelectorRequirement(r NodeSelectorRequirement, p string) {
	switch r.Operator {
	case NodeSelectorOpIn, NodeSelectorOpNotIn:
		if len(r.Values) == 0 {
			v.required(p+".values", "must be specified when `operator` is 'In' or 'NotIn'")
		}
	case NodeSelectorOpExists, NodeSelectorOpDoesNotExist:
		if len(r.Values) > 0 {
			v.forbidden(p+".values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
		}
	case NodeSelectorOpGt, NodeSelectorOpLt:
		if len(r.Values) != 1 {
			v.required(p+".values", "must be specified single value when `operator` is 'Lt' or 'Gt'")
		} else if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
			v.invalid(idx(p+".values", 0), r.Values[0], "must be an integer when `operator` is 'Lt' or 'Gt'")
		}
	default:
		v.notSupported(p+".operator", r.Operator, "DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
	}
	for i, val := range r.Values {
		v.invalidMsgs(idx(p+".values", i), val, labelValueErrors(val))
	}
}

func (v *validator) toleration(t *Toleration, p string) {
	if t.Key != "" {
		v.invalidMsgs(p+".key", t.Key, qualifiedNameErrors(t.Key))
	}
	switch t.Operator {
	case TolerationOpEqual, "":
		if t.Key == "" {
			v.invalid(p+".operator", t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\"")
		}
		v.invalidMsgs(p+".value", t.Value, labelValueErrors(t.Value))
	case TolerationOpExists:
		if t.Value != "" {
			v.invalid(p+".value", t.Value, "value must be empty when `operator` is 'Exists'")
		}
	default:
		v.notSupported(p+".operator", t.Operator, "Equal", "Exists")
	}
	v.taintEffect(p+".effect", t.Effect, true)
	if t.TolerationSeconds != nil && t.Effect != TaintEffectNoExecute {
		v.invalid(p+".effect", t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set")
	}
}

func (v *validator) resources(r *ResourceRequirements, p string) {
	v.resourceList(r.Limits, p+".limits")
	v.resourceList(r.Requests, p+".requests")
	for name, req := range r.Requests {
		lim, ok := r.Limits[name]
		if ok && req.Cmp(lim) > 0 {
			v.invalid(key(p+".requests", string(name)), req.String(), "must be less than or equal to "+string(name)+" limit of "+lim.String())
		}
	}
}

// probe checks one probe; successThreshold must be 1 for liveness and
// startup probes, as in Kubernetes.
func (v *validator) probe(pr *Probe, p string, successMustBeOne bool) {
	if pr == nil {
		return
	}
	n := 0
	if h := pr.Exec; h != nil {
		n++
		if len(h.Command) == 0 {
			v.required(p+".exec.command", "")
		}
	}
	if h := pr.HTTPGet; h != nil {
		n++
		v.probePort(p+".httpGet.port", h.Port)
		switch h.Scheme {
		case URISchemeHTTP, URISchemeHTTPS, "":
		default:
			v.notSupported(p+".httpGet.scheme", h.Scheme, "HTTP", "HTTPS")
		}
		for i, hd := range h.HTTPHeaders {
			if hd.Name == "" {
				v.required(idx(p+".httpGet.httpHeaders", i)+".name", "")
			}
		}
	}
	if h := pr.TCPSocket; h != nil {
		n++
		v.probePort(p+".tcpSocket.port", h.Port)
	}
	switch n {
	case 0:
		v.required(p, "must specify a handler type (exec, httpGet or tcpSocket)")
	case 1:
	default:
		v.forbidden(p, "may not specify more than 1 handler type")
	}
	v.nonNegative(p+".initialDelaySeconds", int64(pr.InitialDelaySeconds))
	v.nonNegative(p+".timeoutSeconds", int64(pr.TimeoutSeconds))
	v.nonNegative(p+".periodSeconds", int64(pr.PeriodSeconds))
	v.nonNegative(p+".successThreshold", int64(pr.SuccessThreshold))
	v.nonNegative(p+".failureThreshold", int64(pr.FailureThreshold))
	if successMustBeOne && pr.SuccessThreshold != 1 && pr.SuccessThreshold != 0 {
		v.invalid(p+".successThreshold", pr.SuccessThreshold, "must be 1")
	}
}

func (v *validator) probePort(p string, port IntOrString) {
	if port.Type == IntOrStringString {
		v.invalidMsgs(p, port.StrVal, portNameErrors(port.StrVal))
		return
	}
	v.port(p, port.IntVal)
}

// maxID is the largest UID or GID a pod may ask for, as in Kubernetes:
// larger IDs are not portable (tools that treat IDs as signed 32-bit), and
// 4294967295 is (uid_t)-1, which setresuid(2) reads as "unchanged".
const maxID = 1<<31 - 1

func (v *validator) id(p string, n *int64) {
	if n != nil && (*n < 0 || *n > maxID) {
		v.invalid(p, *n, fmt.Sprintf("must be between 0 and %d, inclusive", maxID))
	}
}

func (v *validator) podSecurityContext(sc *PodSecurityContext, p string) {
	if sc == nil {
		return
	}
	v.id(p+".runAsUser", sc.RunAsUser)
	v.id(p+".runAsGroup", sc.RunAsGroup)
	v.id(p+".fsGroup", sc.FSGroup)
	for i := range sc.SupplementalGroups {
		v.id(idx(p+".supplementalGroups", i), &sc.SupplementalGroups[i])
	}
	if isTrue(sc.RunAsNonRoot) && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		v.invalid(p+".runAsUser", 0, "must not be 0 when `runAsNonRoot` is true")
	}
}

// securityContext checks a container's security context; pod is the pod's,
// whose runAsUser and runAsNonRoot the container inherits.
func (v *validator) securityContext(sc *SecurityContext, pod *PodSecurityContext, p string) {
	if sc == nil {
		return
	}
	v.id(p+".runAsUser", sc.RunAsUser)
	v.id(p+".runAsGroup", sc.RunAsGroup)
	if c := sc.Capabilities; c != nil {
		v.capabilities(c.Add, p+".capabilities.add")
		v.capabilities(c.Drop, p+".capabilities.drop")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		// no_new_privs cannot hold a process that is already privileged.
		if isTrue(sc.Privileged) {
			v.invalid(p+".allowPrivilegeEscalation", false, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
		}
		if c := sc.Capabilities; c != nil {
			for _, name := range c.Add {
				if name == "SYS_ADMIN" || name == CapabilityAll {
					v.invalid(p+".allowPrivilegeEscalation", false, fmt.Sprintf("cannot set `allowPrivilegeEscalation` to false and `capabilities.add` %s", name))
				}
			}
		}
	}
	// A non-root container told to run as UID 0 could never start; say so
	// here rather than in the agent's events, at the container's own field.
	// A contradiction wholly in the pod's context is podSecurityContext's.
	var podUID *int64
	var podNonRoot *bool
	if pod != nil {
		podUID, podNonRoot = pod.RunAsUser, pod.RunAsNonRoot
	}
	switch {
	case sc.RunAsUser != nil:
		if *sc.RunAsUser == 0 && isTrue(cmp.Or(sc.RunAsNonRoot, podNonRoot)) {
			v.invalid(p+".runAsUser", 0, "must not be 0 when `runAsNonRoot` is true")
		}
	case isTrue(sc.RunAsNonRoot) && podUID != nil && *podUID == 0:
		v.invalid(p+".runAsNonRoot", true, "must not be true when the pod's `runAsUser` is 0")
	}
}

func (v *validator) capabilities(caps []Capability, p string) {
	for i, c := range caps {
		cp := idx(p, i)
		upper := strings.ToUpper(string(c))
		switch {
		case c == "":
			v.required(cp, "")
		case strings.HasPrefix(upper, "CAP_"):
			v.invalid(cp, c, fmt.Sprintf("capability names are written without the \"CAP_\" prefix: use %q", strings.TrimPrefix(upper, "CAP_")))
		case !isCapabilityName(upper):
			v.invalid(cp, c, "a capability name must consist of upper-case letters, digits and '_', and start with a letter (e.g. 'NET_ADMIN', or 'ALL')")
		case upper != string(c):
			v.invalid(cp, c, fmt.Sprintf("capability names are upper-case: use %q", upper))
		}
	}
}

func isCapabilityName(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_'):
		default:
			return false
		}
	}
	return s != ""
}

func isTrue(b *bool) bool { return b != nil && *b }
