// SPDX-License-Identifier: Apache-2.0
/* A small string-keyed hash map (contract in bulkhead/smap.h): chained, power-of-two buckets. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/smap.h"
#include "bulkhead/util.h"


static uint64_t smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

static struct bh_smap_ent **smap_slot(const struct bh_smap *m, const char *key)
{
	struct bh_smap_ent **e;

	if (!m->nb)
		return NULL;
	for (e = &m->b[smap_hash(key) & (m->nb - 1)]; *e; e = &(*e)->next)
		if (!strcmp((*e)->key, key))
			return e;
	return e;
}

void *bh_smap_get(const struct bh_smap *m, const char *key)
{
	struct bh_smap_ent **e = smap_slot(m, key);

	return e && *e ? (*e)->val : NULL;
}

static int smap_grow(struct bh_smap *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	struct bh_smap_ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < m->nb; i++) {
		struct bh_smap_ent *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[smap_hash(e->key) & (nb - 1)];
			b[smap_hash(e->key) & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

int bh_smap_put(struct bh_smap *m, const char *key, void *val)
{
	struct bh_smap_ent **e, *n;

	if (m->n + 1 > m->nb && smap_grow(m))
		return -ENOMEM;
	e = smap_slot(m, key);
	if (*e) {
		(*e)->val = val;
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->key = strdup(key))) {
		free(n);
		return -ENOMEM;
	}
	n->val = val;
	*e = n;
	m->n++;
	return 0;
}

void *bh_smap_del(struct bh_smap *m, const char *key)
{
	struct bh_smap_ent **e = smap_slot(m, key), *d;
	void *v;

	if (!e || !*e)
		return NULL;
	d = *e;
	v = d->val;
	*e = d->next;
	free(d->key);
	free(d);
	m->n--;
	return v;
}

void bh_smap_free(struct bh_smap *m)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct bh_smap_ent *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e->key);
			free(e);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static int smap_ent_cmp(const void *a, const void *b)
{
	return strcmp((*(struct bh_smap_ent *const *)a)->key, (*(struct bh_smap_ent *const *)b)->key);
}

struct bh_smap_ent **bh_smap_sorted(const struct bh_smap *m)
{
	struct bh_smap_ent **v = malloc((m->n ? m->n : 1) * sizeof(*v));
	size_t k = 0;

	if (!v)
		return NULL;
	for (size_t i = 0; i < m->nb; i++)
		for (struct bh_smap_ent *e = m->b[i]; e; e = e->next)
			v[k++] = e;
	bh_sort(v, k, sizeof(*v), smap_ent_cmp);
	return v;
}
