//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Stale-flow cleanup: socket iterators that destroy the sockets still
 * connected to a backend that left its service, so the client gets an
 * error and reconnects (to a live backend) instead of talking into the
 * void. Only sockets the load balancer translated count: their storage
 * (skiff_sockrev) must name the service, which skiff_stale lists together
 * with the departed backend. Needs bpf_sock_destroy (Linux 6.5);
 * the loader probes it by loading this object, which is optional.
 *
 * An iterator walks the sockets of the network namespace it was created
 * in: the loader creates one per namespace it visits.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "skiff_kernel.h"
#include "skiff_lb.h"
#include "skiff_maps.h"

char __license[] SEC("license") = "Dual MIT/GPL";

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKIFF_MAX_STALE);
	__type(key, struct stale_key);
	__type(value, __u8);
} skiff_stale SEC(".maps");

/* Sockets destroyed since the loader last reset it (index 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} skiff_destroyed SEC(".maps");

/* skc is the socket, sk the same as a full struct sock (for its storage). */
static __always_inline void destroy_if_stale(struct sock_common *skc, struct sock *sk, __u8 proto)
{
	/* IPv4 sockets, and IPv6 ones connected to an IPv4-mapped address
	 * (their skc_daddr is the IPv4 peer). A native IPv6 socket has no
	 * translation, so the lookup below skips it. */
	if (skc->skc_family != SKIFF_AF_INET && skc->skc_family != SKIFF_AF_INET6)
		return;
	struct sock_revnat *r = bpf_sk_storage_get(&skiff_sockrev, sk, 0, 0);
	if (!r)
		return; /* not translated by skiff */
	if (r->addr != skc->skc_daddr || r->port != skc->skc_dport)
		return; /* connected elsewhere since */

	struct stale_key skey = {
		.vip = r->vip,
		.vport = r->vport,
		.addr = r->addr,
		.port = r->port,
		.proto = proto,
	};
	if (!bpf_map_lookup_elem(&skiff_stale, &skey))
		return;

	if (bpf_sock_destroy(skc) == 0) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&skiff_destroyed, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
}

SEC("iter/tcp")
int skiff_destroy_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	/* Listeners are not flows; time-wait and request sockets are not full
	 * sockets and cannot be destroyed. */
	unsigned char state = skc->skc_state;
	if (state == SKIFF_TCP_LISTEN || state == SKIFF_TCP_TIME_WAIT || state == SKIFF_TCP_NEW_SYN_RECV)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	destroy_if_stale(skc, (struct sock *)tp, SKIFF_PROTO_TCP);
	return 0;
}

SEC("iter/udp")
int skiff_destroy_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	if (!udp)
		return 0;
	destroy_if_stale((struct sock_common *)udp, (struct sock *)udp, SKIFF_PROTO_UDP);
	return 0;
}
