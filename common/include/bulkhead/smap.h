/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small string-keyed hash map: keys are copied, values are the caller's. Not thread-safe. A
 * zeroed struct bh_smap is an empty map.
 */
#ifndef BULKHEAD_SMAP_H
#define BULKHEAD_SMAP_H

#include <stddef.h>

struct bh_smap_ent {
	char *key;
	void *val;
	struct bh_smap_ent *next;
};

struct bh_smap {
	struct bh_smap_ent **b;
	size_t nb, n;
};

/* The value of key, or NULL. */
void *bh_smap_get(const struct bh_smap *m, const char *key);
/* Sets key (copied) to val, replacing any value it had. 0 or -ENOMEM (map unchanged). */
int bh_smap_put(struct bh_smap *m, const char *key, void *val);
/* Removes key; returns its value, or NULL if it was not there. */
void *bh_smap_del(struct bh_smap *m, const char *key);
/* Frees the map's own memory (not the values); the map is empty after. */
void bh_smap_free(struct bh_smap *m);
/* Every entry in key order: a malloc'd array of m->n pointers (NULL on ENOMEM). */
struct bh_smap_ent **bh_smap_sorted(const struct bh_smap *m);

/* Iterates every entry e (in no order); the map must not change meanwhile. */
#define BH_SMAP_EACH(m, e)                                                                        \
	for (size_t _i = 0; _i < (m)->nb; _i++)                                                   \
		for (struct bh_smap_ent *e = (m)->b[_i]; e; e = e->next)

#endif
