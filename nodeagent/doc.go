// Package nodeagent is the agent that runs on every node: it registers its
// Node, watches the Pods bound to it, runs their containers through a
// runtime (containerd, or a fake for simulated nodes), gives them network
// namespaces and addresses through CNI, runs probes, reports status, and
// programs the service datapath (eBPF socket load balancing, or a userspace
// proxy where eBPF is not available).
//
// nodeagent may import api, client and bpf; it must not import
// controlplane, scheduler or cli: it talks to the control plane only
// through the API.
//
// Status: not implemented yet.
package nodeagent
