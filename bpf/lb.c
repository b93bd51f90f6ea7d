//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Socket-level load balancing for ClusterIP services, on a cgroup v2
 * directory: the destination is rewritten once at connect() (TCP and
 * connected UDP) or per datagram at sendmsg() (unconnected UDP), and the
 * application is shown the VIP as its peer (recvmsg, getpeername). Packets
 * of an established flow are never touched.
 *
 * Services are IPv4. The *6 programs handle IPv4-mapped addresses
 * (::ffff:a.b.c.d) of dual-stack sockets, as a JVM opens them, and leave
 * real IPv6 alone.
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "skiff_lb.h"
#include "skiff_maps.h"

#define ECONNREFUSED 111

char __license[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKIFF_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct svc_key);
	__type(value, struct svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKIFF_MAX_BACKEND_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct backend_key);
	__type(value, struct backend_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKIFF_MAX_BACKEND_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct member_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKIFF_MAX_AFFINITY);
	__type(key, struct affinity_key);
	__type(value, struct affinity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKIFF_MAX_REVNAT);
	__type(key, struct revnat_key);
	__type(value, struct revnat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKIFF_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_counters SEC(".maps");

/* Refuse the connect() or sendmsg() with ECONNREFUSED, as a closed port
 * would, instead of the EPERM a plain 0 gives. */
static __always_inline int refuse(void)
{
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* Pick a backend of svc for this socket: the affine one while it is fresh
 * and still a member, else a random one. Returns 0 when there is none. */
static __always_inline int pick(struct bpf_sock_addr *ctx, const struct svc_value *svc,
				struct backend_value *out)
{
	__u32 id = svc->id;
	__u16 count = svc->count;
	__u8 gen = svc->gen;
	int affinity = svc->flags & SKIFF_SVC_AFFINITY;
	__u64 timeout_ns = (__u64)svc->affinity_timeout * 1000000000ULL;
	struct affinity_key akey = {};
	__u64 now = 0;

	if (count == 0)
		return 0;

	if (affinity) {
		struct affinity_value *av;

		akey.netns = bpf_get_netns_cookie(ctx);
		akey.id = id;
		now = bpf_ktime_get_ns();
		av = bpf_map_lookup_elem(&skiff_affinity, &akey);
		if (av && now - av->last_ns <= timeout_ns) {
			struct member_key mkey = {
				.id = id,
				.addr = av->addr,
				.port = av->port,
			};

			if (bpf_map_lookup_elem(&skiff_members, &mkey)) {
				out->addr = av->addr;
				out->port = av->port;
				av->last_ns = now;
				return 1;
			}
		}
	}

	struct backend_key bkey = {
		.id = id,
		.index = bpf_get_prandom_u32() % count,
		.gen = gen,
	};
	struct backend_value *be = bpf_map_lookup_elem(&skiff_backends, &bkey);
	if (!be)
		return 0; /* the service was just removed */
	out->addr = be->addr;
	out->port = be->port;

	if (affinity) {
		struct affinity_value av = {
			.last_ns = now,
			.addr = out->addr,
			.port = out->port,
		};
		bpf_map_update_elem(&skiff_affinity, &akey, &av, BPF_ANY);
	}
	return 1;
}

/* Translate vip:port (network order) when it is a service: returns -1 when
 * it is none (leave it), 0 to refuse, 1 with *be set. datagram: a sendmsg
 * of an unconnected UDP socket (counted per datagram), else a connect(). */
static __always_inline int translate(struct bpf_sock_addr *ctx, __u32 vip, __u16 port, __u8 proto,
				     int datagram, struct backend_value *be)
{
	struct svc_key key = {
		.vip = vip,
		.port = port,
		.proto = proto,
	};
	struct svc_value *svc = bpf_map_lookup_elem(&skiff_services, &key);
	if (!svc)
		return -1;

	__u32 id = svc->id;
	struct counters *c = bpf_map_lookup_elem(&skiff_counters, &id);
	if (c) {
		if (datagram)
			c->datagrams++;
		else
			c->connections++;
	}

	if (!pick(ctx, svc, be))
		return 0;

	if (!datagram) {
		struct sock_revnat *r = bpf_sk_storage_get(&skiff_sockrev, ctx->sk, 0,
							   BPF_SK_STORAGE_GET_F_CREATE);
		if (r) {
			r->addr = be->addr;
			r->port = be->port;
			r->vip = vip;
			r->vport = port;
		}
		return 1;
	}
	struct revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = be->addr,
		.port = be->port,
	};
	struct revnat_value rval = {
		.vip = vip,
		.port = port,
	};
	bpf_map_update_elem(&skiff_revnat, &rkey, &rval, BPF_ANY);
	return 1;
}

/* A UDP socket connected through a service before is being connected
 * elsewhere: forget the old translation. */
static __always_inline void forget(struct bpf_sock_addr *ctx, __u8 proto, int datagram)
{
	if (proto != SKIFF_PROTO_UDP || datagram)
		return;
	if (bpf_sk_storage_get(&skiff_sockrev, ctx->sk, 0, 0))
		bpf_sk_storage_delete(&skiff_sockrev, ctx->sk);
}

static __always_inline __u8 proto_of(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == SKIFF_PROTO_TCP)
		return SKIFF_PROTO_TCP;
	if (ctx->protocol == SKIFF_PROTO_UDP)
		return SKIFF_PROTO_UDP;
	return 0;
}

static __always_inline int xlate4(struct bpf_sock_addr *ctx, __u8 proto, int datagram)
{
	struct backend_value be = {};
	int ret = translate(ctx, ctx->user_ip4, (__u16)ctx->user_port, proto, datagram, &be);
	if (ret < 0) {
		forget(ctx, proto, datagram);
		return 1;
	}
	if (ret == 0)
		return refuse();
	ctx->user_ip4 = be.addr;
	ctx->user_port = be.port;
	return 1;
}

/* An IPv4-mapped IPv6 address: ::ffff:a.b.c.d. */
static __always_inline int v4mapped(struct bpf_sock_addr *ctx)
{
	return ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 &&
	       ctx->user_ip6[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int xlate6(struct bpf_sock_addr *ctx, __u8 proto, int datagram)
{
	if (!v4mapped(ctx)) {
		forget(ctx, proto, datagram);
		return 1;
	}
	struct backend_value be = {};
	int ret = translate(ctx, ctx->user_ip6[3], (__u16)ctx->user_port, proto, datagram, &be);
	if (ret < 0) {
		forget(ctx, proto, datagram);
		return 1;
	}
	if (ret == 0)
		return refuse();
	ctx->user_ip6[3] = be.addr;
	ctx->user_port = be.port;
	return 1;
}

SEC("cgroup/connect4")
int skiff_connect4(struct bpf_sock_addr *ctx)
{
	__u8 proto = proto_of(ctx);
	return proto ? xlate4(ctx, proto, 0) : 1;
}

SEC("cgroup/sendmsg4")
int skiff_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != SKIFF_PROTO_UDP)
		return 1;
	return xlate4(ctx, SKIFF_PROTO_UDP, 1);
}

SEC("cgroup/connect6")
int skiff_connect6(struct bpf_sock_addr *ctx)
{
	__u8 proto = proto_of(ctx);
	return proto ? xlate6(ctx, proto, 0) : 1;
}

SEC("cgroup/sendmsg6")
int skiff_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != SKIFF_PROTO_UDP)
		return 1;
	return xlate6(ctx, SKIFF_PROTO_UDP, 1);
}

/* The VIP that backend addr:port stands for on this socket: 1 with *vip
 * and *vport set, else 0. */
static __always_inline int reverse(struct bpf_sock_addr *ctx, __u32 addr, __u32 *vip, __u16 *vport)
{
	__u16 port = (__u16)ctx->user_port;
	struct sock_revnat *r = bpf_sk_storage_get(&skiff_sockrev, ctx->sk, 0, 0);
	if (r && r->addr == addr && r->port == port) {
		*vip = r->vip;
		*vport = r->vport;
		return 1;
	}
	struct revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = addr,
		.port = port,
	};
	struct revnat_value *rval = bpf_map_lookup_elem(&skiff_revnat, &rkey);
	if (!rval)
		return 0;
	*vip = rval->vip;
	*vport = rval->port;
	return 1;
}

/* Show the VIP instead of the backend it was translated to. */
static __always_inline void restore4(struct bpf_sock_addr *ctx)
{
	__u32 vip;
	__u16 vport;
	if (!reverse(ctx, ctx->user_ip4, &vip, &vport))
		return;
	ctx->user_ip4 = vip;
	ctx->user_port = vport;
}

static __always_inline void restore6(struct bpf_sock_addr *ctx)
{
	__u32 vip;
	__u16 vport;
	if (!v4mapped(ctx))
		return;
	if (!reverse(ctx, ctx->user_ip6[3], &vip, &vport))
		return;
	ctx->user_ip6[3] = vip;
	ctx->user_port = vport;
}

SEC("cgroup/recvmsg4")
int skiff_recvmsg4(struct bpf_sock_addr *ctx)
{
	restore4(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int skiff_getpeername4(struct bpf_sock_addr *ctx)
{
	restore4(ctx);
	return 1;
}

SEC("cgroup/recvmsg6")
int skiff_recvmsg6(struct bpf_sock_addr *ctx)
{
	restore6(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int skiff_getpeername6(struct bpf_sock_addr *ctx)
{
	restore6(ctx);
	return 1;
}
