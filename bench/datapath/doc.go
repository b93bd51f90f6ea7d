// Command datapath measures issue 6's service datapath side by side, in
// one run, on one machine:
//
//   - short connections: HTTP/1.1 requests/s with a new TCP connection per
//     request to a ClusterIP with 3 backends, for direct-to-pod (the
//     client picks a backend), the eBPF datapath, the userspace proxier,
//     Debian's HAProxy in tcp mode and kube-proxy-style iptables DNAT;
//   - bulk: throughput of one long-lived connection through each;
//   - service programming: time to add one service when 1,000, 10,000 and
//     20,000 exist through the eBPF loader (Upsert, Sync) and the Proxier,
//     beside kube-proxy's two rule engines (an nftables delta with nft -f,
//     an iptables partial restore).
//
// Run it as root (-h lists the knobs):
//
//	go run ./bench/datapath
//
// It never touches the machine's own network: it creates a network
// namespace skiff-bench-dp-<pid> (lo only, no route off the machine) and
// forks every process from a thread that sits in it — backends (10.0.0.1-3
// on lo: HTTP on 8080, a bulk sender on 9000), the userspace proxier,
// haproxy, the load generators, and every ip/sysctl/iptables/nft
// command. net.ipv4.tcp_tw_reuse=1 is set inside that namespace only (and
// the machine's own value is checked unchanged). The eBPF programs attach
// to a cgroup it creates, /sys/fs/cgroup/unified/skiff-bench-dp-<pid>;
// load generators start in its child cgroup (clone3 into the cgroup) for
// every mode. Pins go to a private bpffs. Every child process checks that
// it runs in the benchmark's namespace and refuses otherwise. All is
// removed at the end, on SIGINT/SIGTERM, and (for a run that died) at the
// next start.
//
// The load generator is this binary in another role (a closed loop of
// -workers connections, bench/internal/load).
package main
