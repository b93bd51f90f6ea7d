// Package runtime defines how the node agent runs pods: the Runtime
// interface (sandboxes, images, containers; a small cousin of Kubernetes'
// CRI), its types with typed IDs, and its error classes.
//
// Implementations live beside it: fake/ (in memory, for simulated nodes
// and tests; thousands of instances fit in one process) and containerd/
// (real containers on a containerd daemon). runtimetest/ is the
// conformance suite both pass: the agent relies only on what that suite
// checks.
//
// runtime imports api (for UIDs and pull policies) and nothing else of
// skiff: no client, no controlplane, no network code.
package runtime
