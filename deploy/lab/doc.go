// Package lab runs a multi-node skiff cluster on one machine, as kind and
// k3d do with containers, out of network namespaces: `skiff lab up` and
// the fault-tolerance tests share it.
//
// Each "machine" is a network namespace (skiff-lab-<name>-<machine>) whose
// eth0 is one end of a veth pair; the other ends hang on a bridge in a
// dedicated "LAN" namespace (skiff-lab-<name>-lan), so nothing in the
// machine's own network namespace changes. Servers (s1, s2, ...) run
// `skiff server`, nodes (n1, n2, ...) run `skiff agent`, each started
// detached (its own session, its log in the lab's log directory) so that
// the cluster outlives the command that started it. Every node starts and
// supervises its own containerd (under its data directory, in its own
// containerd namespace), puts its pods under its own cgroup parent
// (/skiff-lab-<name>-<node>) where its eBPF programs attach, and pins them
// under /sys/fs/bpf/skiff-lab-<name>/<node>. Nodes route to each other's
// pod CIDRs over the LAN (the agents' host routes).
//
// The API servers listen on the LAN only; a small forwarder process in
// the machine's namespace relays 127.0.0.1 ports to them, and the lab's
// admin config names those ports (the servers' certificates carry
// 127.0.0.1), so `skiff` and the tests reach the cluster as from outside.
//
// Faults: Kill (SIGKILL of a machine's skiff process), Stop and Start,
// Cut and Heal (the machine's cable: its LAN-side veth end down, so the
// machine sees NO-CARRIER and keeps its addresses and routes), and Drop (a
// share of the machine's packets dropped by a tc BPF program on its eth0:
// this kernel has no netem).
//
// The lab's state (machines, PIDs, addresses, ports) is lab.json in its
// directory (default /var/lib/skiff/lab/<name>); Down removes everything
// the lab created: processes, pods, netns, cgroups, pins, mounts and the
// directory.
package lab
