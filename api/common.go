package api

// ConditionStatus is the status of a condition: True, False or Unknown.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Protocol is a network protocol of a port.
type Protocol string

// Protocols.
const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
)

// ObjectReference points at another object, as in Event.involvedObject and
// EndpointAddress.targetRef.
type ObjectReference struct {
	Kind            string `json:"kind,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	UID             UID    `json:"uid,omitempty"`
	APIVersion      string `json:"apiVersion,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// FieldPath names a part of the object ("spec.containers{web}").
	FieldPath string `json:"fieldPath,omitempty"`
}

// ResourceName names a compute resource ("cpu", "memory", "pods", or an
// extended resource such as "example.com/gpu").
type ResourceName string

// Standard resource names.
const (
	ResourceCPU              ResourceName = "cpu"
	ResourceMemory           ResourceName = "memory"
	ResourcePods             ResourceName = "pods"
	ResourceEphemeralStorage ResourceName = "ephemeral-storage"
)

// ResourceList is a set of resource amounts.
type ResourceList map[ResourceName]Quantity

// Cpu returns the CPU amount, zero when absent.
func (rl ResourceList) Cpu() Quantity { return rl[ResourceCPU] }

// Memory returns the memory amount, zero when absent.
func (rl ResourceList) Memory() Quantity { return rl[ResourceMemory] }

// Pods returns the pod count, zero when absent.
func (rl ResourceList) Pods() Quantity { return rl[ResourcePods] }
