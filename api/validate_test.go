package api

import (
	"strings"
	"testing"
)

// validDeployment returns a defaulted, valid Deployment (the Kubernetes
// docs' nginx example).
func validDeployment(t testing.TB) *Deployment {
	t.Helper()
	o, err := DecodeObject(readTestdata(t, "nginx-deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	Default(o)
	return o.(*Deployment)
}

func validService(t testing.TB) *Service {
	t.Helper()
	o, err := DecodeObject(readTestdata(t, "my-service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	Default(o)
	return o.(*Service)
}

func TestValidateDeployment(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *Deployment)
		want   []string // exact error strings, in order
	}{
		{"valid", func(d *Deployment) {}, nil},
		{"negative replicas", func(d *Deployment) { *d.Spec.Replicas = -1 },
			[]string{"spec.replicas: Invalid value: -1: must be greater than or equal to 0"}},
		{"selector does not match template", func(d *Deployment) { d.Spec.Template.Labels = map[string]string{"app": "other"} },
			[]string{`spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: ` + "`selector` does not match template `labels`"}},
		{"selector required", func(d *Deployment) { d.Spec.Selector = nil },
			[]string{"spec.selector: Required value"}},
		{"empty selector", func(d *Deployment) { d.Spec.Selector = &LabelSelector{} },
			[]string{"spec.selector: Invalid value: api.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]api.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"}},
		{"invalid name", func(d *Deployment) { d.Name = "Nginx_Deployment" },
			[]string{`metadata.name: Invalid value: "Nginx_Deployment": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')`}},
		{"missing name", func(d *Deployment) { d.Name = "" },
			[]string{"metadata.name: Required value: name or generateName is required"}},
		{"invalid label key and value", func(d *Deployment) { d.Labels = map[string]string{"bad key": "ok", "ok": "-bad"} },
			[]string{
				`metadata.labels: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')`,
				`metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')`,
			}},
		{"restartPolicy Never", func(d *Deployment) { d.Spec.Template.Spec.RestartPolicy = RestartPolicyNever },
			[]string{`spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"`}},
		{"no containers", func(d *Deployment) { d.Spec.Template.Spec.Containers = nil },
			[]string{"spec.template.spec.containers: Required value"}},
		{"duplicate container and missing image", func(d *Deployment) {
			c := d.Spec.Template.Spec.Containers[0]
			c.Image = ""
			c.Ports = nil
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, c)
		}, []string{
			`spec.template.spec.containers[1].image: Required value`,
			`spec.template.spec.containers[1].name: Duplicate value: "nginx"`,
		}},
		{"bad ports", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].Ports = []ContainerPort{
				{Name: "http", ContainerPort: 0, Protocol: ProtocolTCP},
				{Name: "http", ContainerPort: 70000, Protocol: "ICMP"},
			}
		}, []string{
			"spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
			"spec.template.spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
			`spec.template.spec.containers[0].ports[1].name: Duplicate value: "http"`,
			`spec.template.spec.containers[0].ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`,
		}},
		{"limits below requests", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources = ResourceRequirements{
				Requests: ResourceList{ResourceCPU: MustParseQuantity("2"), ResourceMemory: MustParseQuantity("64Mi")},
				Limits:   ResourceList{ResourceCPU: MustParseQuantity("1500m"), ResourceMemory: MustParseQuantity("1Gi")},
			}
		}, []string{`spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1500m`}},
		{"probe without handler", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].LivenessProbe = &Probe{PeriodSeconds: 10}
		}, []string{"spec.template.spec.containers[0].livenessProbe: Required value: must specify a handler type (exec, httpGet or tcpSocket)"}},
		{"probe with two handlers", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].ReadinessProbe = &Probe{ProbeHandler: ProbeHandler{
				Exec: &ExecAction{Command: []string{"true"}}, TCPSocket: &TCPSocketAction{Port: FromInt32(80)}}}
		}, []string{"spec.template.spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type"}},
		{"maxSurge and maxUnavailable both 0", func(d *Deployment) {
			d.Spec.Strategy.RollingUpdate = &RollingUpdateDeployment{MaxSurge: IntOrStringPtr(FromString("0%")), MaxUnavailable: IntOrStringPtr(FromInt32(0))}
		}, []string{"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0\": may not be 0 when `maxSurge` is 0"}},
		{"bad percent", func(d *Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = IntOrStringPtr(FromString("ten%"))
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = IntOrStringPtr(FromString("150%"))
		}, []string{
			`spec.strategy.rollingUpdate.maxSurge: Invalid value: "ten%": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')`,
			`spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%`,
		}},
		{"recreate with rollingUpdate", func(d *Deployment) { d.Spec.Strategy.Type = RecreateDeploymentStrategyType },
			[]string{"spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"}},
		{"bad tolerations and taint effect", func(d *Deployment) {
			d.Spec.Template.Spec.Tolerations = []Toleration{
				{Key: "a", Operator: "Maybe"},
				{Operator: TolerationOpEqual, Value: "x"},
				{Key: "b", Operator: TolerationOpExists, Effect: "NoRun"},
			}
		}, []string{
			`spec.template.spec.tolerations[0].operator: Unsupported value: "Maybe": supported values: "Equal", "Exists"`,
			`spec.template.spec.tolerations[1].operator: Invalid value: "Equal": operator must be Exists when ` + "`key`" + ` is empty, which means "match all values and all keys"`,
			`spec.template.spec.tolerations[2].effect: Unsupported value: "NoRun": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"`,
		}},
		{"bad affinity and spread", func(d *Deployment) {
			d.Spec.Template.Spec.Affinity = &Affinity{NodeAffinity: &NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{{
					MatchExpressions: []NodeSelectorRequirement{{Key: "zone", Operator: NodeSelectorOpIn}}}}},
			}}
			d.Spec.Template.Spec.TopologySpreadConstraints = []TopologySpreadConstraint{{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: DoNotSchedule}}
		}, []string{
			"spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
			"spec.template.spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDeployment(t)
			tt.mutate(d)
			checkErrors(t, Validate(d), tt.want)
		})
	}
}

func checkErrors(t *testing.T, errs FieldErrors, want []string) {
	t.Helper()
	sortFieldErrors(errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

func TestValidateService(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Service)
		want   []string
	}{
		{"valid", func(s *Service) {}, nil},
		{"name must be a DNS-1035 label", func(s *Service) { s.Name = "1-service" },
			[]string{`metadata.name: Invalid value: "1-service": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')`}},
		{"no ports", func(s *Service) { s.Spec.Ports = nil }, []string{"spec.ports: Required value"}},
		{"headless without ports", func(s *Service) { s.Spec.Ports = nil; s.Spec.ClusterIP = ClusterIPNone }, nil},
		{"nodePort on ClusterIP", func(s *Service) { s.Spec.Ports[0].NodePort = 30080 },
			[]string{"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"}},
		{"nodePort out of range", func(s *Service) {
			s.Spec.Type = ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort = 8080
		}, []string{"spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"}},
		{"session affinity timeout", func(s *Service) {
			s.Spec.SessionAffinity = ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &SessionAffinityConfig{ClientIP: &ClientIPConfig{TimeoutSeconds: ptrTo[int32](86401)}}
		}, []string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than or equal to 86400"}},
		{"unnamed ports when several", func(s *Service) {
			s.Spec.Ports = append(s.Spec.Ports, ServicePort{Port: 443, Protocol: ProtocolTCP, TargetPort: FromString("https")})
		}, []string{"spec.ports[0].name: Required value", "spec.ports[1].name: Required value"}},
		{"bad type and clusterIP", func(s *Service) { s.Spec.Type = "ExternalName"; s.Spec.ClusterIP = "10.0.0.300" }, []string{
			`spec.clusterIP: Invalid value: "10.0.0.300": must be empty, 'None', or a valid IP address`,
			`spec.type: Unsupported value: "ExternalName": supported values: "ClusterIP", "LoadBalancer", "NodePort"`,
		}},
		{"externalTrafficPolicy on ClusterIP", func(s *Service) { s.Spec.ExternalTrafficPolicy = ServiceExternalTrafficPolicyLocal },
			[]string{`spec.externalTrafficPolicy: Invalid value: "Local": may only be set when ` + "`type`" + ` is 'NodePort' or 'LoadBalancer'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validService(t)
			tt.mutate(s)
			checkErrors(t, Validate(s), tt.want)
		})
	}
}

func TestValidateOtherKinds(t *testing.T) {
	tests := []struct {
		name string
		obj  Object
		want []string
	}{
		{"namespace", &Namespace{ObjectMeta: ObjectMeta{Name: "dev"}}, nil},
		{"namespace name is a label", &Namespace{ObjectMeta: ObjectMeta{Name: "dev.team"}},
			[]string{`metadata.name: Invalid value: "dev.team": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')`}},
		{"cluster-scoped with namespace", &Node{ObjectMeta: ObjectMeta{Name: "n1", Namespace: "default"}},
			[]string{"metadata.namespace: Forbidden: not allowed on this type"}},
		{"node taints", &Node{ObjectMeta: ObjectMeta{Name: "n1"}, Spec: NodeSpec{Taints: []Taint{
			{Key: "a", Effect: TaintEffectNoSchedule}, {Key: "a", Effect: TaintEffectNoSchedule}, {Key: "b", Effect: "Never"}}}},
			[]string{`spec.taints[1]: Duplicate value: "a:NoSchedule"`, `spec.taints[2].effect: Unsupported value: "Never": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"`}},
		{"node capacity", &Node{ObjectMeta: ObjectMeta{Name: "n1"}, Status: NodeStatus{Capacity: ResourceList{ResourceCPU: MustParseQuantity("-1"), "gpu": MustParseQuantity("1")}}},
			[]string{
				`status.capacity[cpu]: Invalid value: "-1": must be greater than or equal to 0`,
				`status.capacity[gpu]: Invalid value: "gpu": must be a standard resource (cpu, memory, pods, ephemeral-storage) or a fully-qualified extended resource name (example.com/gpu)`,
			}},
		{"pod needs namespace", &Pod{ObjectMeta: ObjectMeta{Name: "p"}, Spec: PodSpec{RestartPolicy: RestartPolicyAlways,
			Containers: []Container{{Name: "c", Image: "busybox", ImagePullPolicy: PullAlways}}}},
			[]string{"metadata.namespace: Required value"}},
		{"endpoints", &Endpoints{ObjectMeta: ObjectMeta{Name: "svc", Namespace: "default"}, Subsets: []EndpointSubset{{
			Addresses: []EndpointAddress{{IP: "10.0.0.1"}, {IP: "nope"}}, Ports: []EndpointPort{{Port: 80, Protocol: ProtocolTCP}}}}},
			[]string{`subsets[0].addresses[1].ip: Invalid value: "nope": must be a valid IP address`}},
		{"event", &Event{ObjectMeta: ObjectMeta{Name: "e.1", Namespace: "default"}, InvolvedObject: ObjectReference{Kind: "Pod"}, Type: "Info"},
			[]string{`type: Unsupported value: "Info": supported values: "Normal", "Warning"`}},
		{"daemonset both zero", func() Object {
			ds := &DaemonSet{ObjectMeta: ObjectMeta{Name: "agent", Namespace: "kube-system"}, Spec: DaemonSetSpec{
				Selector: &LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
				Template: PodTemplateSpec{ObjectMeta: ObjectMeta{Labels: map[string]string{"app": "agent"}},
					Spec: PodSpec{Containers: []Container{{Name: "agent", Image: "agent:1"}}}},
				UpdateStrategy: DaemonSetUpdateStrategy{RollingUpdate: &RollingUpdateDaemonSet{MaxUnavailable: IntOrStringPtr(FromInt32(0))}}}}
			Default(ds)
			return ds
		}(), []string{"spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"0\": may not be 0 when `maxSurge` is 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, Validate(tt.obj), tt.want)
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	pod := func() *Pod {
		p := &Pod{ObjectMeta: ObjectMeta{Name: "p", Namespace: "default"}, Spec: PodSpec{
			Containers:  []Container{{Name: "c", Image: "busybox:1"}},
			Tolerations: []Toleration{{Key: "a", Operator: TolerationOpExists}}}}
		Default(p)
		return p
	}
	tests := []struct {
		name     string
		old, new func() Object
		want     []string
	}{
		{"deployment scale", func() Object { return validDeployment(t) }, func() Object {
			d := validDeployment(t)
			*d.Spec.Replicas = 5
			return d
		}, nil},
		{"deployment selector immutable", func() Object { return validDeployment(t) }, func() Object {
			d := validDeployment(t)
			d.Spec.Selector.MatchLabels["tier"] = "web"
			d.Spec.Template.Labels["tier"] = "web"
			return d
		}, []string{`spec.selector: Invalid value: api.LabelSelector{MatchLabels:map[string]string{"app":"nginx", "tier":"web"}, MatchExpressions:[]api.LabelSelectorRequirement(nil)}: field is immutable`}},
		{"service clusterIP immutable", func() Object {
			s := validService(t)
			s.Spec.ClusterIP = "10.96.0.10"
			return s
		}, func() Object {
			s := validService(t)
			s.Spec.ClusterIP = "10.96.0.11"
			return s
		}, []string{`spec.clusterIP: Invalid value: "10.96.0.11": field is immutable`}},
		{"name immutable", func() Object { return validService(t) }, func() Object {
			s := validService(t)
			s.Name = "other"
			return s
		}, []string{`metadata.name: Invalid value: "other": field is immutable`}},
		{"pod bind and add toleration", func() Object { return pod() }, func() Object {
			p := pod()
			p.Spec.NodeName = "node-1"
			p.Spec.Tolerations = append(p.Spec.Tolerations, Toleration{Key: "b", Operator: TolerationOpExists})
			return p
		}, nil},
		{"pod rebind", func() Object {
			p := pod()
			p.Spec.NodeName = "node-1"
			return p
		}, func() Object {
			p := pod()
			p.Spec.NodeName = "node-2"
			return p
		}, []string{`spec.nodeName: Invalid value: "node-2": field is immutable`}},
		{"pod image change", func() Object { return pod() }, func() Object {
			p := pod()
			p.Spec.Containers[0].Image = "busybox:2"
			return p
		}, []string{"spec: Forbidden: pod updates may not change fields other than `spec.nodeName` (when unset) and `spec.tolerations` (only additions to existing tolerations)"}},
		{"pod toleration removed", func() Object { return pod() }, func() Object {
			p := pod()
			p.Spec.Tolerations = nil
			return p
		}, []string{"spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"}},
		{"kind change", func() Object { return validService(t) }, func() Object { return validDeployment(t) },
			[]string{`kind: Invalid value: "Deployment": cannot replace a Service with a Deployment`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, ValidateUpdate(tt.new(), tt.old()), tt.want)
		})
	}
}

func TestPrepareForUpdate(t *testing.T) {
	old := validService(t)
	old.Spec.Type = ServiceTypeNodePort
	old.Spec.ClusterIP, old.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	old.Spec.Ports[0].NodePort = 30001
	n := validService(t)
	n.Spec.Type = ServiceTypeNodePort
	PrepareForUpdate(n, old)
	if n.Spec.ClusterIP != "10.96.0.10" || n.Spec.Ports[0].NodePort != 30001 {
		t.Errorf("spec after PrepareForUpdate = %+v", n.Spec)
	}
	Default(n)
	if errs := ValidateUpdate(n, old); errs != nil {
		t.Errorf("ValidateUpdate: %v", errs)
	}
}

func TestValidateSecurityContext(t *testing.T) {
	const c0 = "spec.template.spec.containers[0].securityContext"
	tests := []struct {
		name string
		pod  *PodSecurityContext
		sc   *SecurityContext
		want []string
	}{
		{"valid", &PodSecurityContext{RunAsUser: ptrTo[int64](1000), FSGroup: ptrTo[int64](0), SupplementalGroups: []int64{0, 1<<31 - 1}},
			&SecurityContext{RunAsUser: ptrTo[int64](0), Capabilities: &Capabilities{Add: []Capability{"NET_ADMIN", "SYS_TIME"}, Drop: []Capability{CapabilityAll}},
				Privileged: ptrTo(true), AllowPrivilegeEscalation: ptrTo(true), ReadOnlyRootFilesystem: ptrTo(true)},
			nil},
		{"negative and too large IDs",
			&PodSecurityContext{RunAsUser: ptrTo[int64](-1), RunAsGroup: ptrTo[int64](1 << 31), FSGroup: ptrTo[int64](-2), SupplementalGroups: []int64{1, -3}},
			&SecurityContext{RunAsUser: ptrTo[int64](4294967295), RunAsGroup: ptrTo[int64](-1)},
			[]string{
				c0 + ".runAsGroup: Invalid value: -1: must be between 0 and 2147483647, inclusive",
				c0 + ".runAsUser: Invalid value: 4294967295: must be between 0 and 2147483647, inclusive",
				"spec.template.spec.securityContext.fsGroup: Invalid value: -2: must be between 0 and 2147483647, inclusive",
				"spec.template.spec.securityContext.runAsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
				"spec.template.spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
				"spec.template.spec.securityContext.supplementalGroups[1]: Invalid value: -3: must be between 0 and 2147483647, inclusive",
			}},
		{"capability names", nil,
			&SecurityContext{Capabilities: &Capabilities{Add: []Capability{"CAP_NET_ADMIN", "net_raw", ""}, Drop: []Capability{"NET-ADMIN", "9P"}}},
			[]string{
				c0 + `.capabilities.add[0]: Invalid value: "CAP_NET_ADMIN": capability names are written without the "CAP_" prefix: use "NET_ADMIN"`,
				c0 + `.capabilities.add[1]: Invalid value: "net_raw": capability names are upper-case: use "NET_RAW"`,
				c0 + `.capabilities.add[2]: Required value`,
				c0 + `.capabilities.drop[0]: Invalid value: "NET-ADMIN": a capability name must consist of upper-case letters, digits and '_', and start with a letter (e.g. 'NET_ADMIN', or 'ALL')`,
				c0 + `.capabilities.drop[1]: Invalid value: "9P": a capability name must consist of upper-case letters, digits and '_', and start with a letter (e.g. 'NET_ADMIN', or 'ALL')`,
			}},
		{"privileged without privilege escalation", nil,
			&SecurityContext{Privileged: ptrTo(true), AllowPrivilegeEscalation: ptrTo(false)},
			[]string{c0 + ".allowPrivilegeEscalation: Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"}},
		{"SYS_ADMIN without privilege escalation", nil,
			&SecurityContext{Capabilities: &Capabilities{Add: []Capability{"SYS_ADMIN"}}, AllowPrivilegeEscalation: ptrTo(false)},
			[]string{c0 + ".allowPrivilegeEscalation: Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `capabilities.add` SYS_ADMIN"}},
		{"not privileged without privilege escalation", nil,
			&SecurityContext{Privileged: ptrTo(false), AllowPrivilegeEscalation: ptrTo(false), Capabilities: &Capabilities{Add: []Capability{"NET_BIND_SERVICE"}}},
			nil},
		{"runAsNonRoot as root, in the container", nil,
			&SecurityContext{RunAsNonRoot: ptrTo(true), RunAsUser: ptrTo[int64](0)},
			[]string{c0 + ".runAsUser: Invalid value: 0: must not be 0 when `runAsNonRoot` is true"}},
		{"runAsNonRoot in the container, root from the pod", &PodSecurityContext{RunAsUser: ptrTo[int64](0)},
			&SecurityContext{RunAsNonRoot: ptrTo(true)},
			[]string{c0 + ".runAsNonRoot: Invalid value: true: must not be true when the pod's `runAsUser` is 0"}},
		{"runAsNonRoot from the pod, root in the container", &PodSecurityContext{RunAsNonRoot: ptrTo(true)},
			&SecurityContext{RunAsUser: ptrTo[int64](0)},
			[]string{c0 + ".runAsUser: Invalid value: 0: must not be 0 when `runAsNonRoot` is true"}},
		{"runAsNonRoot from the pod, container user overrides", &PodSecurityContext{RunAsNonRoot: ptrTo(true), RunAsUser: ptrTo[int64](0)},
			&SecurityContext{RunAsUser: ptrTo[int64](1000)},
			// The pod's own pair is still contradictory (reported once).
			[]string{"spec.template.spec.securityContext.runAsUser: Invalid value: 0: must not be 0 when `runAsNonRoot` is true"}},
		{"runAsNonRoot overridden by the container", &PodSecurityContext{RunAsNonRoot: ptrTo(true)},
			&SecurityContext{RunAsNonRoot: ptrTo(false), RunAsUser: ptrTo[int64](0)},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDeployment(t)
			d.Spec.Template.Spec.SecurityContext = tt.pod
			d.Spec.Template.Spec.Containers[0].SecurityContext = tt.sc
			checkErrors(t, Validate(d), tt.want)
		})
	}
}
