package scheduler

import "github.com/skiffhq/skiff/api"

// ReasonHostPorts is the HostPorts filter reason.
const ReasonHostPorts = "node(s) didn't have free ports for the requested pod ports"

var statusHostPorts = NewStatus(Unschedulable, ReasonHostPorts)

// HostPorts rejects nodes where a bound pod already holds one of the
// pod's host ports (same port and protocol).
type HostPorts struct{}

var (
	_ PreFilterPlugin = (*HostPorts)(nil)
	_ FilterPlugin    = (*HostPorts)(nil)
)

// Name implements Plugin.
func (*HostPorts) Name() string { return "HostPorts" }

// PreFilter implements PreFilterPlugin: pods without host ports skip.
func (*HostPorts) PreFilter(state *CycleState, _ *api.Pod, _ *Snapshot) *Status {
	if len(state.pod.HostPorts) == 0 {
		return NewStatus(Skip)
	}
	return nil
}

// Filter implements FilterPlugin.
func (*HostPorts) Filter(state *CycleState, _ *api.Pod, node *NodeInfo) *Status {
	for _, hp := range state.pod.HostPorts {
		if node.PortInUse(hp) {
			return statusHostPorts
		}
	}
	return nil
}
