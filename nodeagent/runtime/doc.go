// Package runtime defines how the node agent runs pods: the Runtime
// interface (sandboxes, images, containers; a small cousin of Kubernetes'
// CRI), its types with typed IDs, and its error classes.
//
// Implementations live beside it: fake/ (in memory, for simulated nodes
// and tests; thousands of instances fit in one process) and, later,
// containerd. runtimetest/ is the conformance suite every implementation
// passes: the agent relies only on what that suite checks.
//
// runtime imports api (for UIDs and pull policies) and nothing else of
// skiff: no client, no controlplane, no network code.
package runtime
