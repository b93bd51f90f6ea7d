/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The connected sockets' reverse translation, defined once for both
 * objects: the loader hands lb.c's pinned instance to stale.c
 * (MapReplacements), which needs the identical definition. */
#ifndef SKIFF_MAPS_H
#define SKIFF_MAPS_H

#include "skiff_lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_sockrev SEC(".maps");

#endif /* SKIFF_MAPS_H */
