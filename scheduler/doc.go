// Package scheduler assigns pending Pods to Nodes: a queue of unscheduled
// pods, a cache of nodes and their allocations, filter plugins (resources
// fit, node selector, taints and tolerations, host ports, affinity,
// cordoned and not-ready nodes) and score plugins (least or most allocated,
// topology spread, preferred affinity), and a binder that commits many
// bindings in one write.
//
// It runs on the control-plane leader only and stops when leadership is
// lost. scheduler may import api; it must not know about Raft, HTTP, the
// store's implementation, cli or nodeagent: controlplane hands it a small
// interface to read nodes and pods and to bind.
//
// Status: not implemented yet; pods stay unscheduled.
package scheduler
