package scheduler

import "github.com/skiffhq/skiff/api"

// Filter reasons of NodeResourcesFit, as kube-scheduler words them.
const (
	ReasonInsufficientCPU    = "Insufficient cpu"
	ReasonInsufficientMemory = "Insufficient memory"
	ReasonTooManyPods        = "Too many pods"
)

// fitStatuses holds one preallocated status per combination of missing
// resources (bit 0 pods, 1 cpu, 2 memory).
var fitStatuses = func() [8]*Status {
	var s [8]*Status
	for mask := 1; mask < 8; mask++ {
		var reasons []string
		if mask&1 != 0 {
			reasons = append(reasons, ReasonTooManyPods)
		}
		if mask&2 != 0 {
			reasons = append(reasons, ReasonInsufficientCPU)
		}
		if mask&4 != 0 {
			reasons = append(reasons, ReasonInsufficientMemory)
		}
		s[mask] = NewStatus(Unschedulable, reasons...)
	}
	return s
}()

// ScoringStrategy chooses how NodeResourcesFit ranks nodes.
type ScoringStrategy string

// Scoring strategies.
const (
	// LeastAllocated prefers the emptiest nodes: pods spread out.
	LeastAllocated ScoringStrategy = "LeastAllocated"
	// MostAllocated prefers the fullest nodes that still fit: bin-packing,
	// leaving whole nodes free for big pods or for scale-down.
	MostAllocated ScoringStrategy = "MostAllocated"
)

// NodeResourcesFit filters nodes without room for the pod's cpu, memory
// and pod count (allocatable minus the requests of bound pods) and scores
// by Strategy over cpu and memory.
type NodeResourcesFit struct {
	Strategy ScoringStrategy
}

var (
	_ FilterPlugin = (*NodeResourcesFit)(nil)
	_ ScorePlugin  = (*NodeResourcesFit)(nil)
)

// Name implements Plugin.
func (*NodeResourcesFit) Name() string { return "NodeResourcesFit" }

// Filter implements FilterPlugin.
func (*NodeResourcesFit) Filter(state *CycleState, _ *api.Pod, node *NodeInfo) *Status {
	req := &state.pod.Requests
	mask := 0
	if node.Requested.Pods+1 > node.Allocatable.Pods {
		mask |= 1
	}
	if req.MilliCPU > 0 && node.Requested.MilliCPU+req.MilliCPU > node.Allocatable.MilliCPU {
		mask |= 2
	}
	if req.Memory > 0 && node.Requested.Memory+req.Memory > node.Allocatable.Memory {
		mask |= 4
	}
	if mask == 0 {
		return nil
	}
	return fitStatuses[mask]
}

// Score implements ScorePlugin: 0..100 averaged over cpu and memory.
func (f *NodeResourcesFit) Score(state *CycleState, _ *api.Pod, node *NodeInfo) (int64, *Status) {
	req := &state.pod.NonZeroRequests
	cpu := node.NonZeroRequested.MilliCPU + req.MilliCPU
	mem := node.NonZeroRequested.Memory + req.Memory
	if f.Strategy == MostAllocated {
		return (mostAllocated(cpu, node.Allocatable.MilliCPU) + mostAllocated(mem, node.Allocatable.Memory)) / 2, nil
	}
	return (leastAllocated(cpu, node.Allocatable.MilliCPU) + leastAllocated(mem, node.Allocatable.Memory)) / 2, nil
}

func leastAllocated(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * MaxNodeScore / capacity
}

func mostAllocated(requested, capacity int64) int64 {
	if capacity <= 0 {
		return 0
	}
	if requested > capacity {
		return MaxNodeScore
	}
	return requested * MaxNodeScore / capacity
}

// BalancedAllocation prefers nodes whose cpu and memory would be used in
// similar fractions after placing the pod, so neither resource strands
// the other.
type BalancedAllocation struct{}

var _ ScorePlugin = (*BalancedAllocation)(nil)

// Name implements Plugin.
func (*BalancedAllocation) Name() string { return "BalancedAllocation" }

// Score implements ScorePlugin: (1 - standard deviation of the two
// fractions) * 100.
func (*BalancedAllocation) Score(state *CycleState, _ *api.Pod, node *NodeInfo) (int64, *Status) {
	req := &state.pod.NonZeroRequests
	if node.Allocatable.MilliCPU <= 0 || node.Allocatable.Memory <= 0 {
		return 0, nil
	}
	cf := float64(node.NonZeroRequested.MilliCPU+req.MilliCPU) / float64(node.Allocatable.MilliCPU)
	mf := float64(node.NonZeroRequested.Memory+req.Memory) / float64(node.Allocatable.Memory)
	if cf > 1 {
		cf = 1
	}
	if mf > 1 {
		mf = 1
	}
	d := cf - mf
	if d < 0 {
		d = -d
	}
	// The standard deviation of two values is half their distance.
	return int64((1 - d/2) * float64(MaxNodeScore)), nil
}
