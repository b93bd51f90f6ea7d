/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The few kernel types the stale-flow iterators read, declared with only
 * the fields used. preserve_access_index makes every access a CO-RE
 * relocation against the running kernel's BTF, so the offsets here do not
 * matter (vmlinux.h is avoided on purpose: its types inside ?: expressions
 * have failed the verifier here).
 */
#ifndef SKIFF_KERNEL_H
#define SKIFF_KERNEL_H

#define SKIFF_AF_INET 2
#define SKIFF_AF_INET6 10

/* include/net/tcp_states.h */
#define SKIFF_TCP_TIME_WAIT 6
#define SKIFF_TCP_LISTEN 10
#define SKIFF_TCP_NEW_SYN_RECV 12

struct sock_common {
	__u32 skc_daddr;
	__u16 skc_dport;
	unsigned short skc_family;
	unsigned char skc_state;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

struct tcp_sock; /* only passed on, from bpf_skc_to_tcp_sock */

struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	__u32 uid;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	__u32 uid;
	int bucket;
} __attribute__((preserve_access_index));

#endif /* SKIFF_KERNEL_H */
