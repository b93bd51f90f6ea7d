package api

import "strings"

// DefaultNamespaceName is the namespace of namespaced objects that name
// none.
const DefaultNamespaceName = "default"

// Default fills in unset fields as the Kubernetes API server does on
// create: TypeMeta, the "default" namespace, and the per-kind defaults
// (replicas 1, RollingUpdate 25%/25%, restartPolicy Always, imagePullPolicy
// from the image tag, protocol TCP, probe timings, service type ClusterIP,
// ...). Pod templates of Deployments, DaemonSets and ControllerRevisions
// get the pod defaults.
// Default is idempotent.
func Default(o Object) {
	tm := o.GetTypeMeta()
	if info, ok := ByKind(kindOfObject(o)); ok {
		if tm.Kind == "" {
			tm.Kind = string(info.Kind)
		}
		if tm.APIVersion == "" {
			tm.APIVersion = info.APIVersion()
		}
	}
	DefaultNamespace(o, DefaultNamespaceName)
	switch o := o.(type) {
	case *Namespace:
		if o.Status.Phase == "" {
			o.Status.Phase = NamespaceActive
		}
	case *Pod:
		defaultPodSpec(&o.Spec)
		if o.Status.Phase == "" {
			o.Status.Phase = PodPending
		}
	case *Deployment:
		defaultDeployment(&o.Spec)
	case *DaemonSet:
		defaultDaemonSet(&o.Spec)
	case *ControllerRevision:
		defaultPodSpec(&o.Data.Spec)
	case *Service:
		defaultService(&o.Spec)
	case *Endpoints:
		for i := range o.Subsets {
			for j := range o.Subsets[i].Ports {
				if o.Subsets[i].Ports[j].Protocol == "" {
					o.Subsets[i].Ports[j].Protocol = ProtocolTCP
				}
			}
		}
	case *Event:
		if o.Type == "" {
			o.Type = EventTypeNormal
		}
		if o.Count == 0 {
			o.Count = 1
		}
	}
}

// DefaultNamespace sets o's namespace to ns if o is of a namespaced kind
// and names none.
func DefaultNamespace(o Object, ns string) {
	m := o.GetObjectMeta()
	if m.Namespace != "" {
		return
	}
	if info, ok := ByKind(kindOfObject(o)); ok && info.Namespaced {
		m.Namespace = ns
	}
}

func ptrTo[T any](v T) *T { return &v }

func defaultDeployment(s *DeploymentSpec) {
	if s.Replicas == nil {
		s.Replicas = ptrTo[int32](1)
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &RollingUpdateDeployment{}
		}
		ru := s.Strategy.RollingUpdate
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = IntOrStringPtr(FromString("25%"))
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = IntOrStringPtr(FromString("25%"))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptrTo[int32](10)
	}
	if s.ProgressDeadlineSeconds == nil {
		s.ProgressDeadlineSeconds = ptrTo[int32](600)
	}
	defaultPodSpec(&s.Template.Spec)
}

func defaultDaemonSet(s *DaemonSetSpec) {
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &RollingUpdateDaemonSet{}
		}
		ru := s.UpdateStrategy.RollingUpdate
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = IntOrStringPtr(FromInt32(1))
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = IntOrStringPtr(FromInt32(0))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptrTo[int32](10)
	}
	defaultPodSpec(&s.Template.Spec)
}

func defaultPodSpec(s *PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptrTo[int64](DefaultTerminationGracePeriodSeconds)
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		if c.ImagePullPolicy == "" {
			c.ImagePullPolicy = defaultPullPolicy(c.Image)
		}
		for j := range c.Ports {
			if c.Ports[j].Protocol == "" {
				c.Ports[j].Protocol = ProtocolTCP
			}
			if s.HostNetwork && c.Ports[j].HostPort == 0 {
				c.Ports[j].HostPort = c.Ports[j].ContainerPort
			}
		}
		defaultProbe(c.LivenessProbe)
		defaultProbe(c.ReadinessProbe)
		defaultProbe(c.StartupProbe)
	}
	for i := range s.Tolerations {
		if s.Tolerations[i].Operator == "" {
			s.Tolerations[i].Operator = TolerationOpEqual
		}
	}
}

// defaultPullPolicy is Always for ":latest" or untagged images, else
// IfNotPresent (images pinned by digest included).
func defaultPullPolicy(image string) PullPolicy {
	if strings.Contains(image, "@") {
		return PullIfNotPresent
	}
	name := image
	if i := strings.LastIndexByte(image, '/'); i >= 0 {
		name = image[i+1:]
	}
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "latest" {
		return PullAlways
	}
	return PullIfNotPresent
}

func defaultProbe(p *Probe) {
	if p == nil {
		return
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if h := p.HTTPGet; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Scheme == "" {
			h.Scheme = URISchemeHTTP
		}
	}
}

func defaultService(s *ServiceSpec) {
	if s.Type == "" {
		s.Type = ServiceTypeClusterIP
	}
	if s.SessionAffinity == "" {
		s.SessionAffinity = ServiceAffinityNone
	}
	if s.SessionAffinity == ServiceAffinityClientIP {
		if s.SessionAffinityConfig == nil {
			s.SessionAffinityConfig = &SessionAffinityConfig{}
		}
		if s.SessionAffinityConfig.ClientIP == nil {
			s.SessionAffinityConfig.ClientIP = &ClientIPConfig{}
		}
		if s.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			s.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptrTo(DefaultClientIPServiceAffinitySeconds)
		}
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Protocol == "" {
			p.Protocol = ProtocolTCP
		}
		if p.TargetPort.IsZero() {
			p.TargetPort = FromInt32(p.Port)
		}
	}
	if (s.Type == ServiceTypeNodePort || s.Type == ServiceTypeLoadBalancer) && s.ExternalTrafficPolicy == "" {
		s.ExternalTrafficPolicy = ServiceExternalTrafficPolicyCluster
	}
	if s.InternalTrafficPolicy == nil {
		s.InternalTrafficPolicy = ptrTo(ServiceInternalTrafficPolicyCluster)
	}
}

// DefaultTerminationGracePeriodSeconds is a pod's grace period when its
// spec names none: how long its containers get between SIGTERM and SIGKILL.
const DefaultTerminationGracePeriodSeconds = 30
