/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The reverse-translation map, defined once for both objects: the loader
 * hands lb.c's pinned instance to stale.c (MapReplacements), which needs
 * the identical definition. */
#ifndef SKIFF_MAPS_H
#define SKIFF_MAPS_H

#include "skiff_lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKIFF_MAX_REVNAT);
	__type(key, struct revnat_key);
	__type(value, struct revnat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_revnat SEC(".maps");

#endif /* SKIFF_MAPS_H */
