// Package scheduler assigns pending Pods to Nodes. It is a pure library:
// the control plane feeds it watch events and commits the bindings it
// chooses; the scheduler itself does no I/O.
//
//   - Queue: pods waiting to be scheduled, FIFO by creation time, with
//     exponential back-off (1s doubling to 60s, injected Clock) for pods
//     that did not fit, moved back on cluster events (MoveAllToActive).
//   - Cache: nodes and bound pods from store watches plus bindings in
//     flight (AssumePod/ForgetPod), producing Snapshots cheaply
//     (copy-on-write NodeInfos; UpdateSnapshot refreshes one in place).
//   - Scheduler: runs filter plugins (NodeName, NodeUnschedulable,
//     NodeReady, TaintToleration, NodeAffinity, HostPorts,
//     NodeResourcesFit, PodTopologySpread, InterPodAffinity) over the
//     nodes of a Snapshot, scores the feasible ones (NodeResourcesFit as
//     LeastAllocated or MostAllocated, BalancedAllocation, NodeAffinity,
//     InterPodAffinity, PodTopologySpread, TaintToleration) and assumes
//     the winner in the Snapshot so the rest of the batch sees it. A pod
//     that fits nowhere gets a Diagnosis whose Message is worded as
//     kube-scheduler's ("0/5000 nodes are available: ...").
//
// The scheduler runs on the control-plane leader only; the caller stops it
// when leadership is lost (cancel the context given to Queue.Pop, discard
// the Cache). scheduler may import api, the standard library and the
// Prometheus client; it must not know about Raft, HTTP, the store's
// implementation, cli or nodeagent (imports_test.go enforces this).
// See README.md for the data flow.
package scheduler
