package scheduler

import "github.com/skiffhq/skiff/api"

// defaultMaxPods is the pod capacity of a node whose allocatable omits
// "pods" (the kubelet's default).
const defaultMaxPods = 110

// NodeInfo is a node plus the pods bound (or assumed) to it, with the sums
// the filters need precomputed. A NodeInfo inside a Snapshot is read-only;
// the Cache and Snapshot.Assume copy it before changing it.
type NodeInfo struct {
	Node *api.Node
	Pods []*PodInfo
	// Allocatable is what the node offers to pods.
	Allocatable Resources
	// Requested sums Requests of Pods (Requested.Pods is len(Pods)).
	Requested Resources
	// NonZeroRequested sums NonZeroRequests of Pods, for scoring.
	NonZeroRequested Resources
	// usedPorts counts the pods holding each host port.
	usedPorts map[HostPort]int
	// Copies of node fields every filter reads, kept here so the filter
	// loop does not chase the node pointer for each of 5,000 nodes.
	ready         bool
	unschedulable bool
	taints        []api.Taint
	labels        map[string]string
	// taintStatus[i] is the filter failure for taints[i] (NoSchedule and
	// NoExecute only), built once per node update rather than per pod.
	taintStatus []*Status
	// withRequiredAnti counts pods with required anti-affinity terms, so
	// the common case needs no look at Pods.
	withRequiredAnti int
}

// NewNodeInfo returns the NodeInfo of node with pods bound to it.
func NewNodeInfo(node *api.Node, pods ...*PodInfo) *NodeInfo {
	ni := &NodeInfo{}
	ni.SetNode(node)
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// Name returns the node's name ("" for a NodeInfo whose node is unknown).
func (ni *NodeInfo) Name() string {
	if ni.Node == nil {
		return ""
	}
	return ni.Node.Name
}

// Labels returns the node's labels.
func (ni *NodeInfo) Labels() map[string]string { return ni.labels }

// SetNode replaces the node object, recomputing what derives from it.
func (ni *NodeInfo) SetNode(node *api.Node) {
	ni.Node = node
	ni.Allocatable = Resources{}
	ni.ready, ni.unschedulable, ni.taints, ni.labels, ni.taintStatus = false, false, nil, nil, nil
	if node == nil {
		return
	}
	ni.unschedulable = node.Spec.Unschedulable
	ni.taints = node.Spec.Taints
	if len(ni.taints) > 0 {
		ni.taintStatus = make([]*Status, len(ni.taints))
		for i := range ni.taints {
			t := &ni.taints[i]
			if t.Effect == api.TaintEffectNoSchedule || t.Effect == api.TaintEffectNoExecute {
				ni.taintStatus[i] = NewStatus(UnschedulableAndUnresolvable, UntoleratedTaintReason(t))
			}
		}
	}
	ni.labels = node.Labels
	al := node.Status.Allocatable
	ni.Allocatable.MilliCPU = al.Cpu().MilliValue()
	ni.Allocatable.Memory = al.Memory().Value()
	if q, ok := al[api.ResourcePods]; ok {
		ni.Allocatable.Pods = q.Value()
	} else {
		ni.Allocatable.Pods = defaultMaxPods
	}
	for _, c := range node.Status.Conditions {
		if c.Type == api.NodeReady {
			ni.ready = c.Status == api.ConditionTrue
		}
	}
}

// AddPod accounts for p on the node.
func (ni *NodeInfo) AddPod(p *PodInfo) {
	ni.Pods = append(ni.Pods, p)
	ni.Requested.MilliCPU += p.Requests.MilliCPU
	ni.Requested.Memory += p.Requests.Memory
	ni.Requested.Pods++
	ni.NonZeroRequested.MilliCPU += p.NonZeroRequests.MilliCPU
	ni.NonZeroRequested.Memory += p.NonZeroRequests.Memory
	ni.NonZeroRequested.Pods++
	if len(p.HostPorts) > 0 {
		if ni.usedPorts == nil {
			ni.usedPorts = make(map[HostPort]int)
		}
		for _, hp := range p.HostPorts {
			ni.usedPorts[hp]++
		}
	}
	if len(p.requiredAnti) > 0 {
		ni.withRequiredAnti++
	}
}

// RemovePod removes the pod with key from the node; it reports whether
// the pod was there.
func (ni *NodeInfo) RemovePod(key PodKey) bool {
	for i, p := range ni.Pods {
		if p.Key != key {
			continue
		}
		last := len(ni.Pods) - 1
		ni.Pods[i] = ni.Pods[last]
		ni.Pods[last] = nil
		ni.Pods = ni.Pods[:last]
		ni.Requested.MilliCPU -= p.Requests.MilliCPU
		ni.Requested.Memory -= p.Requests.Memory
		ni.Requested.Pods--
		ni.NonZeroRequested.MilliCPU -= p.NonZeroRequests.MilliCPU
		ni.NonZeroRequested.Memory -= p.NonZeroRequests.Memory
		ni.NonZeroRequested.Pods--
		for _, hp := range p.HostPorts {
			if ni.usedPorts[hp]--; ni.usedPorts[hp] <= 0 {
				delete(ni.usedPorts, hp)
			}
		}
		if len(p.requiredAnti) > 0 {
			ni.withRequiredAnti--
		}
		return true
	}
	return false
}

// PortInUse reports whether a bound pod holds hp.
func (ni *NodeInfo) PortInUse(hp HostPort) bool { return ni.usedPorts[hp] > 0 }

// Clone returns a copy that can be changed without affecting ni (the
// PodInfos and the node object are shared; they are immutable).
func (ni *NodeInfo) Clone() *NodeInfo {
	c := *ni
	c.Pods = make([]*PodInfo, len(ni.Pods), len(ni.Pods)+4)
	copy(c.Pods, ni.Pods)
	if ni.usedPorts != nil {
		c.usedPorts = make(map[HostPort]int, len(ni.usedPorts))
		for k, v := range ni.usedPorts {
			c.usedPorts[k] = v
		}
	}
	return &c
}
