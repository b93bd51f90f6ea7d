package api

import "testing"

func TestDefaultPullPolicy(t *testing.T) {
	tests := []struct {
		image string
		want  PullPolicy
	}{
		{"nginx", PullAlways},
		{"nginx:latest", PullAlways},
		{"nginx:1.25", PullIfNotPresent},
		{"registry.local:5000/web", PullAlways},
		{"registry.local:5000/web:v2", PullIfNotPresent},
		{"nginx@sha256:abcd", PullIfNotPresent},
	}
	for _, tt := range tests {
		if got := defaultPullPolicy(tt.image); got != tt.want {
			t.Errorf("defaultPullPolicy(%q) = %s, want %s", tt.image, got, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	d := &Deployment{Spec: DeploymentSpec{Template: PodTemplateSpec{Spec: PodSpec{Containers: []Container{{
		Name: "c", Image: "img:1",
		Ports:          []ContainerPort{{ContainerPort: 80}},
		ReadinessProbe: &Probe{ProbeHandler: ProbeHandler{HTTPGet: &HTTPGetAction{Port: FromInt32(80)}}},
	}}}}}}
	Default(d)
	Default(d) // idempotent
	s := d.Spec
	c := s.Template.Spec.Containers[0]
	p := c.ReadinessProbe
	switch {
	case d.Kind != "Deployment" || d.APIVersion != "apps/v1" || d.Namespace != "default":
		t.Errorf("meta = %+v %+v", d.TypeMeta, d.ObjectMeta)
	case *s.Replicas != 1 || *s.RevisionHistoryLimit != 10 || *s.ProgressDeadlineSeconds != 600:
		t.Errorf("spec = %+v", s)
	case s.Strategy.Type != RollingUpdateDeploymentStrategyType || *s.Strategy.RollingUpdate.MaxSurge != FromString("25%") || *s.Strategy.RollingUpdate.MaxUnavailable != FromString("25%"):
		t.Errorf("strategy = %+v", s.Strategy)
	case s.Template.Spec.RestartPolicy != RestartPolicyAlways || *s.Template.Spec.TerminationGracePeriodSeconds != 30:
		t.Errorf("pod spec = %+v", s.Template.Spec)
	case c.ImagePullPolicy != PullIfNotPresent || c.Ports[0].Protocol != ProtocolTCP:
		t.Errorf("container = %+v", c)
	case p.PeriodSeconds != 10 || p.TimeoutSeconds != 1 || p.SuccessThreshold != 1 || p.FailureThreshold != 3 || p.HTTPGet.Path != "/" || p.HTTPGet.Scheme != URISchemeHTTP:
		t.Errorf("probe = %+v", p)
	}

	ds := &DaemonSet{}
	Default(ds)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ds.Spec.UpdateStrategy.Type != RollingUpdateDaemonSetStrategyType || *ru.MaxUnavailable != FromInt32(1) {
		t.Errorf("daemonset strategy = %+v", ds.Spec.UpdateStrategy)
	}

	svc := &Service{Spec: ServiceSpec{Type: ServiceTypeNodePort, SessionAffinity: ServiceAffinityClientIP, Ports: []ServicePort{{Port: 80}, {Port: 53, Protocol: ProtocolUDP, TargetPort: FromString("dns")}}}}
	Default(svc)
	sp := svc.Spec
	if sp.Ports[0].Protocol != ProtocolTCP || sp.Ports[0].TargetPort != FromInt32(80) || sp.Ports[1].TargetPort != FromString("dns") ||
		sp.ExternalTrafficPolicy != ServiceExternalTrafficPolicyCluster || *sp.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10800 {
		t.Errorf("service spec = %+v", sp)
	}
	clusterIP := &Service{}
	Default(clusterIP)
	if clusterIP.Spec.Type != ServiceTypeClusterIP || clusterIP.Spec.SessionAffinity != ServiceAffinityNone || clusterIP.Spec.ExternalTrafficPolicy != "" {
		t.Errorf("service spec = %+v", clusterIP.Spec)
	}

	node := &Node{}
	DefaultNamespace(node, "prod")
	if node.Namespace != "" {
		t.Error("DefaultNamespace set a namespace on a cluster-scoped kind")
	}
	pod := &Pod{ObjectMeta: ObjectMeta{Namespace: "x"}}
	DefaultNamespace(pod, "prod")
	if pod.Namespace != "x" {
		t.Error("DefaultNamespace overwrote a namespace")
	}
}
