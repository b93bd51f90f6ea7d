//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Packet-loss injection for skiff lab: a tcx program that drops each
 * packet with a configured probability, on an interface's ingress or
 * egress. This kernel has no netem qdisc, so "drop 30% of a link's
 * packets" is this. Every packet counts (ARP too, as with netem).
 *
 * The loader pins skiff_drop_config and the links, so a setting outlives the
 * process that made it; changing the share only rewrites skiff_drop_config.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual MIT/GPL";

/* tcx verdicts (linux/bpf.h of 6.6; Debian 12's headers predate them). */
#define SKIFF_TCX_NEXT -1
#define SKIFF_TCX_DROP 2

struct drop_config {
	/* A packet is dropped when a uniform 32-bit random number is below
	 * threshold: 0 drops nothing, 1 << 32 drops everything. */
	__u64 threshold;
};

struct drop_counters {
	__u64 seen;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_config);
} skiff_drop_config SEC(".maps");

/* Per CPU, [0] ingress, [1] egress. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct drop_counters);
} skiff_drop_counters SEC(".maps");

static __always_inline int drop(__u32 dir)
{
	__u32 zero = 0;
	struct drop_config *cfg = bpf_map_lookup_elem(&skiff_drop_config, &zero);
	struct drop_counters *c = bpf_map_lookup_elem(&skiff_drop_counters, &dir);
	/* Per-CPU values: no other writer, no atomics needed. */
	if (c)
		c->seen++;
	if (!cfg || (__u64)bpf_get_prandom_u32() >= cfg->threshold)
		return SKIFF_TCX_NEXT;
	if (c)
		c->dropped++;
	return SKIFF_TCX_DROP;
}

SEC("tc")
int skiff_drop_ingress(struct __sk_buff *skb)
{
	return drop(0);
}

SEC("tc")
int skiff_drop_egress(struct __sk_buff *skb)
{
	return drop(1);
}
