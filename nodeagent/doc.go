// Package nodeagent is the agent that runs on every node: it registers its
// Node, heartbeats, watches the Pods bound to it and drives each one
// through a runtime (containerd, or the fake of simulated nodes) and a pod
// network, reporting status the way the kubelet does.
//
// The Agent's event loop lists and watches the node's pods (field selector
// spec.nodeName=<node>) and periodically relists the runtime (exited
// containers, stray sandboxes). Each pod that needs work gets a worker
// goroutine that moves it forward — sandbox, network, image, containers,
// status — and exits when there is nothing left to do; a failed step is
// retried with back-off. Pods keep running when the agent stops, and a new
// agent on the same runtime adopts them without restarting anything.
//
// Subpackages: runtime/ (the Runtime interface, its fake and conformance
// suite), network/ (the Network interface and an in-memory IPAM), hollow/
// (many simulated nodes in one process). Next to come: the containerd
// runtime, CNI, probes, the service proxy. See README.md.
//
// nodeagent may import api, client and bpf; it must not import
// controlplane, scheduler or cli (imports_test.go checks it): it talks to
// the control plane only through the API.
package nodeagent
