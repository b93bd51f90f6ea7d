// Package bpf is skiff's eBPF service datapath: socket-level load
// balancing for ClusterIP services on a cgroup v2 directory. The C programs
// (lb.c: cgroup connect4, sendmsg4, recvmsg4, getpeername4; stale.c: socket
// iterators with bpf_sock_destroy) sit next to the Go loader; bpf2go output
// is committed so that `go build` needs no clang (`make generate`
// rebuilds it with clang-14).
//
// The loader owns the pins under a bpffs directory (maps and links survive
// the agent: forwarding goes on while it is down), reconciles the desired
// services into the maps so that no lookup sees a half-written service,
// destroys flows to departed backends, and reads the per-service counters.
// See README.md for the data flow.
//
// drop.c and drop.go are the lab's packet-loss injector (skiff lab drop):
// a tcx program that drops a share of an interface's packets, pinned so
// the setting outlives the command that made it (this kernel has no netem).
//
// bpf imports nothing of skiff; nodeagent (its proxy) and deploy/lab import it.
package bpf
