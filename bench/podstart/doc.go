// Command podstart measures issue 5's node figures on a real node: how
// long a pod takes from `apply` to Ready on a warm image, beside
// containerd alone in the same run, and what a node agent costs while it
// runs 100 pods.
//
//	make build images
//	go run ./bench/podstart            # as root
//
// It runs as root and never touches the machine's own network: it creates
// a network namespace skiff-bench-<pid> (only lo, up), re-executes itself
// inside it (nsenter --net), and everything else happens there — the
// control plane (`skiff dev --node=false`), a real node (`skiff agent`,
// which starts and supervises its own containerd under the run's data
// directory, pods' cgroups under /skiff-bench-<pid>, its CNI bridge inside
// the namespace) and the measurements, which talk to the API on
// 127.0.0.1. The inner half refuses to run unless its network namespace is
// the one the outer half created.
//
// Phases, in one run:
//
//  1. Pod start, -starts times per variant, sequentially and interleaved
//     (the order rotates each round): skiff with a readiness probe, skiff
//     without, containerd alone, and (-breakdown) containerd alone with the
//     agent's default seccomp profile, then with its log driver too. For
//     skiff a 1-replica Deployment of localhost/skiff/echo:latest is
//     created and timed until its pod is Ready in a pod watch, with each
//     phase (created, bound, running, Ready); the Deployment is then
//     deleted and its pod's teardown awaited (timed too) before the next
//     start. containerd alone is NewContainer (WithNewSnapshot, WithNewSpec
//     with the image's config) + NewTask + Start through the Go client,
//     against the agent's own containerd, in a separate containerd
//     namespace with the same image imported there.
//  2. 100 pods on the node: containerd alone starts -fleet containers at
//     once, then one Deployment of -fleet replicas (cpu 10m, memory 8Mi) is
//     timed from create until all are Ready, with the CPU each group of
//     processes used meanwhile; then, after -settle, the node idles for
//     -idle: VmRSS and CPU (utime+stime over the window, as % of one core)
//     of the agent, and for context of containerd, the shims, the log
//     drivers, the pods' processes and the control plane (RSS summed per
//     group, and PSS, which splits shared pages fairly).
//
// Before each phase it reads how busy the machine's CPUs are with the node
// idle (other work on a shared machine); the busy share printed for each
// start includes that start's own processes.
//
// The outer half owns cleanup: when the inner half ends (or is killed) it
// kills what is left in the pods' cgroups and the run's shims by PID
// (removing the shims' sockets), removes the agent's eBPF pins, unmounts the
// sandboxes' network namespaces, removes the cgroups, the namespace and
// the data directory. A crashed earlier run's leftovers
// (skiff-bench-<pid> of a PID that no longer runs) are removed first.
//
// It prints, like the other benchmarks, '#' comment lines and tables.
// Benchmarks print; they do not assert.
package main
