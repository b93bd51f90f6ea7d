package api

// Service is a stable virtual IP (and optionally node ports or a load
// balancer) in front of the pods its selector matches.
type Service struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       ServiceSpec   `json:"spec,omitempty"`
	Status     ServiceStatus `json:"status,omitempty"`
}

// ServiceType is how a service is exposed.
type ServiceType string

// Service types (ExternalName is not supported).
const (
	ServiceTypeClusterIP    ServiceType = "ClusterIP"
	ServiceTypeNodePort     ServiceType = "NodePort"
	ServiceTypeLoadBalancer ServiceType = "LoadBalancer"
)

// ClusterIPNone marks a headless service: no virtual IP, DNS returns the
// pod IPs.
const ClusterIPNone = "None"

// ServiceAffinity is the session affinity of a service.
type ServiceAffinity string

// Session affinities.
const (
	ServiceAffinityNone     ServiceAffinity = "None"
	ServiceAffinityClientIP ServiceAffinity = "ClientIP"
)

// DefaultClientIPServiceAffinitySeconds is the default ClientIP affinity
// timeout (3 hours).
const DefaultClientIPServiceAffinitySeconds int32 = 10800

// ServiceExternalTrafficPolicy says whether node ports and load balancers
// route to pods on every node (Cluster) or only to local pods, keeping the
// client source IP (Local).
type ServiceExternalTrafficPolicy string

// External traffic policies.
const (
	ServiceExternalTrafficPolicyCluster ServiceExternalTrafficPolicy = "Cluster"
	ServiceExternalTrafficPolicyLocal   ServiceExternalTrafficPolicy = "Local"
)

// ServiceInternalTrafficPolicy says whether cluster-IP traffic goes to pods
// on every node or only to pods on the client's node.
type ServiceInternalTrafficPolicy string

// Internal traffic policies.
const (
	ServiceInternalTrafficPolicyCluster ServiceInternalTrafficPolicy = "Cluster"
	ServiceInternalTrafficPolicyLocal   ServiceInternalTrafficPolicy = "Local"
)

// Node port range: nodePort must be within [NodePortMin, NodePortMax].
const (
	NodePortMin = 30000
	NodePortMax = 32767
)

// ServiceSpec is the desired state of a service.
type ServiceSpec struct {
	Type     ServiceType       `json:"type,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports,omitempty"`
	// ClusterIP is allocated when empty, "None" for a headless service, and
	// immutable once set.
	ClusterIP                string                        `json:"clusterIP,omitempty"`
	ClusterIPs               []string                      `json:"clusterIPs,omitempty"`
	SessionAffinity          ServiceAffinity               `json:"sessionAffinity,omitempty"`
	SessionAffinityConfig    *SessionAffinityConfig        `json:"sessionAffinityConfig,omitempty"`
	ExternalTrafficPolicy    ServiceExternalTrafficPolicy  `json:"externalTrafficPolicy,omitempty"`
	InternalTrafficPolicy    *ServiceInternalTrafficPolicy `json:"internalTrafficPolicy,omitempty"`
	LoadBalancerIP           string                        `json:"loadBalancerIP,omitempty"`
	PublishNotReadyAddresses bool                          `json:"publishNotReadyAddresses,omitempty"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name     string   `json:"name,omitempty"`
	Protocol Protocol `json:"protocol,omitempty"`
	Port     int32    `json:"port"`
	// TargetPort is a pod port number or a container port name; it defaults
	// to Port.
	TargetPort IntOrString `json:"targetPort,omitempty"`
	// NodePort is allocated for NodePort and LoadBalancer services when 0.
	NodePort int32 `json:"nodePort,omitempty"`
}

// SessionAffinityConfig configures session affinity.
type SessionAffinityConfig struct {
	ClientIP *ClientIPConfig `json:"clientIP,omitempty"`
}

// ClientIPConfig configures ClientIP session affinity.
type ClientIPConfig struct {
	// TimeoutSeconds is in 1..86400; default 10800.
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// ServiceStatus is the observed state of a service.
type ServiceStatus struct {
	LoadBalancer LoadBalancerStatus `json:"loadBalancer,omitempty"`
}

// LoadBalancerStatus lists a load balancer's ingress points.
type LoadBalancerStatus struct {
	Ingress []LoadBalancerIngress `json:"ingress,omitempty"`
}

// LoadBalancerIngress is one ingress point of a load balancer.
type LoadBalancerIngress struct {
	IP       string `json:"ip,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}
