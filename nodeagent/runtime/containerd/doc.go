// Package containerd is the node agent's runtime.Runtime on a real
// containerd daemon (client github.com/containerd/containerd/v2, tested
// against containerd 1.6 + runc on cgroup v1 hybrid hosts).
//
// A sandbox is a network namespace the runtime creates and bind-mounts
// under its state directory, plus a containerd container record without a
// task that carries the pod's metadata: there is no pause image. Containers
// are containerd containers whose OCI spec joins that namespace, with
// their own UTS namespace carrying the pod's hostname and their cgroup
// under "<parent>/pod<uid>/<id>". All state the agent needs (pod and
// container metadata, start times, exit codes, start errors) lives in
// containerd — labels, an extension and the task — so an agent that
// restarts finds everything as it was. Container output goes to a logging
// binary (logdriver, run by the shim) that keeps writing the CRI-format log
// file while the agent is down.
//
// Daemon starts and supervises a private containerd when none is running.
//
// containerd imports runtime, api, logs (through logdriver) and the
// containerd client; nothing of the agent, the client or the control plane.
package containerd
