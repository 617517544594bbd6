// SPDX-License-Identifier: Apache-2.0
/*
 * The policy compiler (contract in compile.h).
 *
 * Rules depend on a workload only through its identity (its label set), so they are compiled per
 * identity and cached there; a node's rule set is the concatenation of the cached rules of the
 * identities it hosts (already in order: identity is the first sort key), and its ipcache is what
 * those rules' remote identities need. An update marks identities dirty by what changed:
 *   a policy edit     -> the identities its old and new selector match;
 *   an identity appearing or disappearing -> the identities selected by policies with a peer
 *                        selector that matches it (their remote sets change), and itself;
 *   the set of CIDR prefixes changing -> the identities selected by policies with CIDR peers;
 * recompiles those, then recomposes only the nodes that host a dirty identity, lost or gained a
 * workload, or hold an ipcache entry whose source changed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/smap.h"
#include "bulkhead/util.h"
#include "compile.h"

/* ---- the compiler's state ------------------------------------------------------------------- */

struct wl;

struct ident {
	uint32_t id;
	char *text;		   /* canonical labels, or "cidr:PREFIX" */
	struct ctl_labels labels;  /* parsed (not for CIDR identities) */
	bool cidr;
	struct ctl_prefix prefix;  /* CIDR identities */
	struct wl **wls;	   /* workloads that have it */
	size_t n_wls, cap_wls;
	size_t n_refs;		   /* CIDR identities: policies naming the prefix */
	time_t unused_since;	   /* 0 while in use */
	bool was_used;		   /* in use at the last update */
	bool dirty;		   /* rules need recompiling */
	bool recompiled;	   /* recompiled in this update: nodes hosting it recompose */
	bool ipc_dirty;		   /* its addresses changed: nodes referring to it recompose */
	/* compiled */
	bool observe;
	uint8_t def_verdict[2];
	uint32_t def_rule[2];
	struct ctl_crule *rules;
	size_t n_rules;
};

struct wl {
	struct ctl_doc doc; /* CTL_KIND_WORKLOAD */
	struct ident *ident;
	bool changed;	    /* identity to be resolved again at the next update */
};

struct pol {
	struct ctl_doc doc; /* CTL_KIND_POLICY */
	/* remote identities of each rule's peers, resolved lazily; valid while resolved_gen is
	 * the compiler's identity generation */
	uint32_t **remotes[2][2];
	size_t *n_remotes[2][2];
	uint64_t resolved_gen;
	bool has_cidr;
};

struct node {
	char *name;
	struct ctl_doc spec; /* CTL_KIND_NODE, valid when has_spec */
	bool has_spec;
	struct ctl_labels base; /* from enrollment (the join token), under the spec's */
	bool observe_all;	/* enrolled in observe mode: every endpoint observes */
	struct wl **wls;
	size_t n_wls, cap_wls;
	uint32_t *refs; /* remote identities its rules name, sorted */
	size_t n_refs;
	bool dirty;
	struct ctl_node_out out;
};

struct ctl_compiler {
	unsigned long grace_s;
	struct bh_smap idents;	/* text -> ident */
	struct bh_smap ident_ids;	/* "%u" -> ident */
	struct bh_smap rule_keys;	/* key -> (uintptr_t) id */
	struct bh_smap rule_ids;	/* "%u" -> key (owned) */
	struct bh_smap policies;	/* name -> pol */
	struct bh_smap workloads;	/* name -> wl */
	struct bh_smap nodes;	/* name -> node */
	struct bh_smap addrs;	/* "addr/len" -> wl */
	uint32_t next_identity, next_rule;
	uint64_t ident_gen;	/* bumped when the set of identities in use changes */
	bool cidr_changed;
	bool all_dirty;
	/* addresses that came or went since the last update: a node whose CIDR peers contain one
	 * must recompose its ipcache (workloads inside a CIDR are listed there) */
	struct ctl_prefix *moved;
	size_t n_moved, cap_moved;
	struct ctl_numbering_change *num;
	size_t n_num, cap_num;
	bool num_handed; /* the log was handed to the caller: the next entry starts a new one */
	const char **changed_nodes;
	size_t n_changed_nodes, cap_changed_nodes;
};

/* ---- numbering --------------------------------------------------------------------------- */

static int num_log(struct ctl_compiler *c, int what, uint32_t id, const char *text, time_t since)
{
	/* the log runs from one update's hand-over to the next: what put/delete numbered (a CIDR
	 * a policy names) must reach the caller with the update that follows */
	if (c->num_handed) {
		c->n_num = 0;
		c->num_handed = false;
	}
	struct ctl_numbering_change ch = {.what = what, .id = id, .text = text,
					  .unused_since = since};

	return BH_PUSH(c->num, c->n_num, c->cap_num, ch);
}

static struct ident *ident_new(struct ctl_compiler *c, uint32_t id, const char *text)
{
	struct ident *i = calloc(1, sizeof(*i));
	char k[16];

	if (!i || !(i->text = strdup(text)))
		goto fail;
	i->id = id;
	if (!strncmp(text, "cidr:", 5)) {
		struct bh_error err = {0};

		i->cidr = true;
		if (ctl_prefix_parse(text + 5, &i->prefix, &err))
			goto fail;
	} else {
		struct bh_error err = {0};

		if (ctl_labels_parse(text, &i->labels, &err))
			goto fail;
	}
	snprintf(k, sizeof(k), "%u", id);
	if (bh_smap_put(&c->idents, text, i))
		goto fail;
	if (bh_smap_put(&c->ident_ids, k, i)) {
		bh_smap_del(&c->idents, text);
		goto fail;
	}
	if (id >= c->next_identity)
		c->next_identity = id + 1;
	return i;
fail:
	if (i) {
		free(i->text);
		ctl_labels_free(&i->labels);
	}
	free(i);
	return NULL;
}

static void ident_free(struct ident *i)
{
	if (!i)
		return;
	free(i->text);
	ctl_labels_free(&i->labels);
	free(i->wls);
	free(i->rules);
	free(i);
}

/* The identity of text, allocating a number if it has none. */
static struct ident *ident_get(struct ctl_compiler *c, const char *text)
{
	struct ident *i = bh_smap_get(&c->idents, text);

	if (i)
		return i;
	i = ident_new(c, c->next_identity, text);
	if (i && num_log(c, CTL_NUM_IDENTITY_PUT, i->id, i->text, 0))
		return NULL;
	return i;
}

static bool ident_in_use(const struct ident *i)
{
	return i->cidr ? i->n_refs > 0 : i->n_wls > 0;
}

static uint32_t rule_id_get(struct ctl_compiler *c, const char *key)
{
	uintptr_t id = (uintptr_t)bh_smap_get(&c->rule_keys, key);
	char k[16], *copy;

	if (id)
		return (uint32_t)id;
	id = c->next_rule++;
	snprintf(k, sizeof(k), "%u", (uint32_t)id);
	copy = strdup(key);
	if (!copy || bh_smap_put(&c->rule_keys, key, (void *)id) || bh_smap_put(&c->rule_ids, k, copy)) {
		free(copy);
		return 0;
	}
	if (num_log(c, CTL_NUM_RULE_ID_PUT, (uint32_t)id, copy, 0))
		return 0;
	return (uint32_t)id;
}

int ctl_compiler_identity_load(struct ctl_compiler *c, uint32_t id, const char *labels,
			       time_t unused_since)
{
	struct ident *i;
	char k[16];

	snprintf(k, sizeof(k), "%u", id);
	if (id < CTL_ID_USER_MIN || bh_smap_get(&c->idents, labels) || bh_smap_get(&c->ident_ids, k))
		return -EEXIST;
	i = ident_new(c, id, labels);
	if (!i)
		return -EINVAL;
	/* in use or not is decided by the model; until then it counts from when it was stored */
	i->unused_since = unused_since;
	return 0;
}

int ctl_compiler_rule_id_load(struct ctl_compiler *c, uint32_t id, const char *key)
{
	char k[16], *copy;

	snprintf(k, sizeof(k), "%u", id);
	if (id < CTL_RULE_ID_MIN || bh_smap_get(&c->rule_keys, key) || bh_smap_get(&c->rule_ids, k))
		return -EEXIST;
	copy = strdup(key);
	if (!copy || bh_smap_put(&c->rule_keys, key, (void *)(uintptr_t)id) ||
	    bh_smap_put(&c->rule_ids, k, copy)) {
		free(copy);
		return -ENOMEM;
	}
	if (id >= c->next_rule)
		c->next_rule = id + 1;
	return 0;
}

int ctl_compiler_numbering_copy(struct ctl_compiler *dst, const struct ctl_compiler *src)
{
	int rc = 0;

	BH_SMAP_EACH(&src->idents, e)
	{
		const struct ident *i = e->val;

		rc = ctl_compiler_identity_load(dst, i->id, i->text, i->unused_since ? i->unused_since : 1);
		if (rc)
			return rc;
	}
	BH_SMAP_EACH(&src->rule_ids, e)
	{
		rc = ctl_compiler_rule_id_load(dst, (uint32_t)strtoul(e->key, NULL, 10), e->val);
		if (rc)
			return rc;
	}
	ctl_compiler_counters_set(dst, src->next_identity, src->next_rule);
	return 0;
}

void ctl_compiler_counters(struct ctl_compiler *c, uint32_t *next_identity, uint32_t *next_rule)
{
	*next_identity = c->next_identity;
	*next_rule = c->next_rule;
}

void ctl_compiler_counters_set(struct ctl_compiler *c, uint32_t next_identity, uint32_t next_rule)
{
	if (next_identity > c->next_identity)
		c->next_identity = next_identity;
	if (next_rule > c->next_rule)
		c->next_rule = next_rule;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int ctl_compiler_create(struct ctl_compiler **out, unsigned long grace_s)
{
	struct ctl_compiler *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->grace_s = grace_s;
	c->next_identity = CTL_ID_USER_MIN;
	c->next_rule = CTL_RULE_ID_MIN;
	c->ident_gen = 1;
	*out = c;
	return 0;
}

static void pol_memo_free(struct pol *p)
{
	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 2; a++) {
			if (p->remotes[d][a])
				for (size_t k = 0; k < p->doc.policy.n_rules[d][a]; k++)
					free(p->remotes[d][a][k]);
			free(p->remotes[d][a]);
			free(p->n_remotes[d][a]);
			p->remotes[d][a] = NULL;
			p->n_remotes[d][a] = NULL;
		}
	p->resolved_gen = 0;
}

static void pol_free(struct pol *p)
{
	if (!p)
		return;
	pol_memo_free(p);
	ctl_doc_free(&p->doc);
	free(p);
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	free(n->name);
	if (n->has_spec)
		ctl_doc_free(&n->spec);
	ctl_labels_free(&n->base);
	free(n->wls);
	free(n->refs);
	ctl_node_out_free(&n->out);
	free(n);
}

void ctl_compiler_destroy(struct ctl_compiler *c)
{
	if (!c)
		return;
	BH_SMAP_EACH(&c->idents, e)
		ident_free(e->val);
	BH_SMAP_EACH(&c->rule_ids, e)
		free(e->val);
	BH_SMAP_EACH(&c->policies, e)
		pol_free(e->val);
	BH_SMAP_EACH(&c->workloads, e)
	{
		struct wl *w = e->val;

		ctl_doc_free(&w->doc);
		free(w);
	}
	BH_SMAP_EACH(&c->nodes, e)
		node_free(e->val);
	bh_smap_free(&c->idents);
	bh_smap_free(&c->ident_ids);
	bh_smap_free(&c->rule_keys);
	bh_smap_free(&c->rule_ids);
	bh_smap_free(&c->policies);
	bh_smap_free(&c->workloads);
	bh_smap_free(&c->nodes);
	bh_smap_free(&c->addrs);
	free(c->num);
	free(c->moved);
	free(c->changed_nodes);
	free(c);
}

/* ---- the model --------------------------------------------------------------------------- */

static struct node *node_get(struct ctl_compiler *c, const char *name)
{
	struct node *n = bh_smap_get(&c->nodes, name);

	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)) || bh_smap_put(&c->nodes, name, n)) {
		if (n)
			free(n->name);
		free(n);
		return NULL;
	}
	n->dirty = true;
	return n;
}

static void node_drop_wl(struct node *n, struct wl *w)
{
	for (size_t i = 0; i < n->n_wls; i++)
		if (n->wls[i] == w) {
			n->wls[i] = n->wls[--n->n_wls];
			break;
		}
	n->dirty = true;
}

static void ident_drop_wl(struct ident *i, struct wl *w)
{
	for (size_t k = 0; k < i->n_wls; k++)
		if (i->wls[k] == w) {
			i->wls[k] = i->wls[--i->n_wls];
			break;
		}
	i->ipc_dirty = true;
}

static void addr_key(const struct ctl_prefix *p, char *buf, size_t len)
{
	ctl_prefix_format(p, buf, len);
}

/* Marks every identity a selector matches dirty. */
static void mark_selected(struct ctl_compiler *c, const struct ctl_selector *s)
{
	BH_SMAP_EACH(&c->idents, e)
	{
		struct ident *i = e->val;

		if (!i->cidr && ident_in_use(i) && ctl_selector_matches(s, &i->labels))
			i->dirty = true;
	}
}

static int cidr_ref(struct ctl_compiler *c, const struct ctl_prefix *p, int delta)
{
	char text[64] = "cidr:";
	struct ident *i;

	ctl_prefix_format(p, text + 5, sizeof(text) - 5);
	i = delta > 0 ? ident_get(c, text) : bh_smap_get(&c->idents, text);
	if (!i)
		return delta > 0 ? -ENOMEM : 0;
	if (delta > 0)
		i->n_refs++;
	else if (i->n_refs)
		i->n_refs--;
	/* what counts is whether it is in use now against the last update (was_used): a CIDR that
	 * went away and came back in one batch changed nothing */
	if ((i->n_refs > 0) != i->was_used)
		c->cidr_changed = true;
	return 0;
}

/* Counts (delta +1/-1) the CIDR prefixes a policy names. */
static int policy_cidrs(struct ctl_compiler *c, struct pol *p, int delta)
{
	p->has_cidr = false;
	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 2; a++)
			for (size_t k = 0; k < p->doc.policy.n_rules[d][a]; k++) {
				const struct ctl_rule *r = &p->doc.policy.rules[d][a][k];

				for (size_t q = 0; q < r->n_peers; q++) {
					const struct ctl_peer *pe = &r->peers[q];

					if (pe->kind != CTL_PEER_CIDR)
						continue;
					p->has_cidr = true;
					if (cidr_ref(c, &pe->cidr, delta))
						return -ENOMEM;
					for (size_t x = 0; x < pe->n_except; x++)
						if (cidr_ref(c, &pe->except[x], delta))
							return -ENOMEM;
				}
			}
	return 0;
}

/* Host workloads take their node's labels: a node spec change re-resolves them. */
static void node_hosts_changed(struct ctl_compiler *c, const char *name)
{
	struct node *n = bh_smap_get(&c->nodes, name);

	if (!n)
		return;
	for (size_t i = 0; i < n->n_wls; i++)
		if (n->wls[i]->doc.workload.attach_host)
			n->wls[i]->changed = true;
	n->dirty = true;
	(void)c;
}

static int wl_unlink(struct ctl_compiler *c, struct wl *w)
{
	struct node *n = bh_smap_get(&c->nodes, w->doc.workload.node);
	char k[64];

	if (n)
		node_drop_wl(n, w);
	if (w->ident)
		ident_drop_wl(w->ident, w);
	w->ident = NULL;
	for (size_t i = 0; i < w->doc.workload.n_addrs; i++) {
		if (BH_PUSH(c->moved, c->n_moved, c->cap_moved, w->doc.workload.addrs[i]))
			return -ENOMEM;
		addr_key(&w->doc.workload.addrs[i], k, sizeof(k));
		if (bh_smap_get(&c->addrs, k) == w)
			bh_smap_del(&c->addrs, k);
	}
	return 0;
}

static int wl_link(struct ctl_compiler *c, struct wl *w)
{
	struct node *n = node_get(c, w->doc.workload.node);
	char k[64];

	if (!n || BH_PUSH(n->wls, n->n_wls, n->cap_wls, w))
		return -ENOMEM;
	n->dirty = true;
	for (size_t i = 0; i < w->doc.workload.n_addrs; i++) {
		if (BH_PUSH(c->moved, c->n_moved, c->cap_moved, w->doc.workload.addrs[i]))
			return -ENOMEM;
		addr_key(&w->doc.workload.addrs[i], k, sizeof(k));
		if (bh_smap_put(&c->addrs, k, w))
			return -ENOMEM;
	}
	w->changed = true;
	return 0;
}

int ctl_compiler_put(struct ctl_compiler *c, struct ctl_doc *doc, struct ctl_doc *old,
		     bool *had_old, struct bh_error *err)
{
	const char *name = ctl_doc_name(doc);

	*had_old = false;
	switch (doc->kind) {
	case CTL_KIND_POLICY: {
		struct pol *p = calloc(1, sizeof(*p)), *prev;

		if (!p)
			return bh_error_set(err, -ENOMEM, "out of memory");
		p->doc = *doc;
		prev = bh_smap_get(&c->policies, name);
		if (bh_smap_put(&c->policies, name, p)) {
			free(p);
			return bh_error_set(err, -ENOMEM, "out of memory");
		}
		memset(doc, 0, sizeof(*doc));
		/* the new policy's CIDRs are counted before the old one's are released, so that a
		 * CIDR both name never falls to zero (which would recompose every node naming one) */
		if (policy_cidrs(c, p, +1))
			return bh_error_set(err, -ENOMEM, "out of memory");
		if (prev) {
			mark_selected(c, &prev->doc.policy.sel);
			policy_cidrs(c, prev, -1);
			pol_memo_free(prev); /* sized by the document's rules: before it goes */
			*old = prev->doc;
			free(prev);
			*had_old = true;
		}
		mark_selected(c, &p->doc.policy.sel);
		return 0;
	}
	case CTL_KIND_WORKLOAD: {
		struct wl *prev = bh_smap_get(&c->workloads, name), *w;
		char k[64];

		for (size_t i = 0; i < doc->workload.n_addrs; i++) {
			struct wl *o;

			addr_key(&doc->workload.addrs[i], k, sizeof(k));
			o = bh_smap_get(&c->addrs, k);
			if (o && o != prev)
				return bh_error_set(err, -EEXIST,
						    "workload %s: address %s is already workload "
						    "%s's",
						    name, k, o->doc.workload.name);
		}
		w = calloc(1, sizeof(*w));
		if (!w)
			return bh_error_set(err, -ENOMEM, "out of memory");
		if (prev) {
			wl_unlink(c, prev);
			*old = prev->doc;
			*had_old = true;
			free(prev);
		}
		w->doc = *doc;
		memset(doc, 0, sizeof(*doc));
		if (bh_smap_put(&c->workloads, name, w) || wl_link(c, w))
			return bh_error_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	case CTL_KIND_NODE: {
		struct node *n = node_get(c, name);

		if (!n)
			return bh_error_set(err, -ENOMEM, "out of memory");
		if (n->has_spec) {
			*old = n->spec;
			*had_old = true;
		}
		n->spec = *doc;
		n->has_spec = true;
		memset(doc, 0, sizeof(*doc));
		node_hosts_changed(c, name);
		return 0;
	}
	}
	return bh_error_set(err, -EINVAL, "unknown kind");
}

int ctl_compiler_delete(struct ctl_compiler *c, enum ctl_kind kind, const char *name,
			struct ctl_doc *old, struct bh_error *err)
{
	switch (kind) {
	case CTL_KIND_POLICY: {
		struct pol *p = bh_smap_get(&c->policies, name);

		if (!p)
			break;
		bh_smap_del(&c->policies, name);
		mark_selected(c, &p->doc.policy.sel);
		policy_cidrs(c, p, -1);
		pol_memo_free(p);
		*old = p->doc;
		free(p);
		return 0;
	}
	case CTL_KIND_WORKLOAD: {
		struct wl *w = bh_smap_get(&c->workloads, name);

		if (!w)
			break;
		bh_smap_del(&c->workloads, name);
		wl_unlink(c, w);
		*old = w->doc;
		free(w);
		return 0;
	}
	case CTL_KIND_NODE: {
		struct node *n = bh_smap_get(&c->nodes, name);

		if (!n || !n->has_spec)
			break;
		*old = n->spec;
		n->has_spec = false;
		memset(&n->spec, 0, sizeof(n->spec));
		node_hosts_changed(c, name);
		return 0;
	}
	}
	return bh_error_set(err, -ENOENT, "%s %s does not exist", ctl_kind_name(kind), name);
}

int ctl_compiler_node_enrolled(struct ctl_compiler *c, const char *name, const char *labels,
			       bool observe, struct bh_error *err)
{
	struct ctl_labels l = {0};
	struct node *n;
	int rc = ctl_labels_parse(labels ? labels : "", &l, err);

	if (rc)
		return rc;
	n = node_get(c, name);
	if (!n) {
		ctl_labels_free(&l);
		return bh_error_set(err, -ENOMEM, "out of memory");
	}
	ctl_labels_free(&n->base);
	n->base = l;
	n->observe_all = observe;
	node_hosts_changed(c, name);
	return 0;
}

const struct ctl_doc *ctl_compiler_get(const struct ctl_compiler *c, enum ctl_kind kind,
				       const char *name)
{
	switch (kind) {
	case CTL_KIND_POLICY: {
		const struct pol *p = bh_smap_get(&c->policies, name);

		return p ? &p->doc : NULL;
	}
	case CTL_KIND_WORKLOAD: {
		const struct wl *w = bh_smap_get(&c->workloads, name);

		return w ? &w->doc : NULL;
	}
	case CTL_KIND_NODE: {
		const struct node *n = bh_smap_get(&c->nodes, name);

		return n && n->has_spec ? &n->spec : NULL;
	}
	}
	return NULL;
}

int ctl_compiler_each(const struct ctl_compiler *c, enum ctl_kind kind,
		      int (*cb)(const struct ctl_doc *d, void *ctx), void *ctx)
{
	const struct bh_smap *m = kind == CTL_KIND_POLICY	   ? &c->policies
			       : kind == CTL_KIND_WORKLOAD ? &c->workloads
							   : &c->nodes;
	struct bh_smap_ent **v = bh_smap_sorted(m);
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n && !rc; i++) {
		const struct ctl_doc *d = ctl_compiler_get(c, kind, v[i]->key);

		if (d)
			rc = cb(d, ctx);
	}
	free(v);
	return rc;
}

/* ---- compiling one identity ------------------------------------------------------------------ */

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Whether a CIDR identity's prefix is one a CIDR peer takes: within cidr, within no except. */
static bool cidr_peer_takes(const struct ctl_peer *pe, const struct ident *i)
{
	if (!ctl_prefix_contains(&pe->cidr, &i->prefix))
		return false;
	for (size_t x = 0; x < pe->n_except; x++)
		if (ctl_prefix_contains(&pe->except[x], &i->prefix))
			return false;
	return true;
}

/* The remote identities of a rule's peers, sorted and unique (malloc'd). */
static int resolve_peers(struct ctl_compiler *c, const struct ctl_rule *r, uint32_t **out,
			 size_t *n)
{
	uint32_t *v = NULL;
	size_t cap = 0, k = 0;

	*out = NULL;
	*n = 0;
	BH_SMAP_EACH(&c->idents, e)
	{
		struct ident *i = e->val;

		if (!ident_in_use(i))
			continue;
		for (size_t q = 0; q < r->n_peers; q++) {
			const struct ctl_peer *pe = &r->peers[q];
			bool m = pe->kind == CTL_PEER_CIDR
					 ? i->cidr && cidr_peer_takes(pe, i)
					 : !i->cidr && ctl_selector_matches(&pe->sel, &i->labels);

			if (m) {
				if (BH_PUSH(v, k, cap, i->id)) {
					free(v);
					return -ENOMEM;
				}
				break;
			}
		}
	}
	if (k)
		qsort(v, k, sizeof(*v), u32_cmp);
	*out = v;
	*n = k;
	return 0;
}

static int pol_resolve(struct ctl_compiler *c, struct pol *p)
{
	if (p->resolved_gen == c->ident_gen)
		return 0;
	pol_memo_free(p);
	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 2; a++) {
			size_t nr = p->doc.policy.n_rules[d][a];

			if (!nr)
				continue;
			p->remotes[d][a] = calloc(nr, sizeof(uint32_t *));
			p->n_remotes[d][a] = calloc(nr, sizeof(size_t));
			if (!p->remotes[d][a] || !p->n_remotes[d][a])
				return -ENOMEM;
			for (size_t k = 0; k < nr; k++)
				if (resolve_peers(c, &p->doc.policy.rules[d][a][k],
						  &p->remotes[d][a][k], &p->n_remotes[d][a][k]))
					return -ENOMEM;
		}
	p->resolved_gen = c->ident_gen;
	return 0;
}

/* A rule before ranges are made disjoint. */
struct raw {
	uint32_t remote;
	uint8_t dir, verdict, proto;
	bool any_port;
	uint32_t lo, hi;
	uint32_t rule_id;
};

static int raw_cmp(const void *a, const void *b)
{
	const struct raw *x = a, *y = b;

	if (x->remote != y->remote)
		return x->remote < y->remote ? -1 : 1;
	if (x->dir != y->dir)
		return x->dir - y->dir;
	if (x->proto != y->proto)
		return x->proto - y->proto;
	if (x->verdict != y->verdict)
		return x->verdict - y->verdict;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->rule_id < y->rule_id ? -1 : x->rule_id > y->rule_id;
}

static int crule_cmp(const void *a, const void *b)
{
	const struct ctl_crule *x = a, *y = b;

	if (x->local != y->local)
		return x->local < y->local ? -1 : 1;
	if (x->remote != y->remote)
		return x->remote < y->remote ? -1 : 1;
	if (x->dir != y->dir)
		return x->dir - y->dir;
	if (x->proto != y->proto)
		return x->proto - y->proto;
	if (x->verdict != y->verdict)
		return x->verdict - y->verdict;
	if (x->port != y->port)
		return x->port - y->port;
	if (x->end_port != y->end_port)
		return x->end_port - y->end_port;
	return x->rule_id < y->rule_id ? -1 : x->rule_id > y->rule_id;
}

/*
 * Turns one group of raw rules (same remote, dir, proto, verdict; sorted by lo) into disjoint
 * compiled rules. An any-port rule takes the whole group (with the lowest id among the any-port
 * rules). Otherwise every port gets the lowest rule id of the rules covering it, and neighbouring
 * ports with the same id merge into one range: the datapath's keys never collide, and the id
 * reported is deterministic.
 */
static int emit_group(uint32_t local, const struct raw *g, size_t n, struct ctl_crule **out,
		      size_t *nout, size_t *cap)
{
	struct ctl_crule r = {.local = local, .remote = g[0].remote, .dir = g[0].dir,
			      .proto = g[0].proto, .verdict = g[0].verdict};
	uint32_t best = 0;
	uint32_t bounds[2 * 64 + 2];
	size_t nb = 0;

	for (size_t i = 0; i < n; i++)
		if (g[i].any_port && (!best || g[i].rule_id < best))
			best = g[i].rule_id;
	if (best || g[0].proto == 0) {
		r.rule_id = best ? best : g[0].rule_id;
		return BH_PUSH(*out, *nout, *cap, r);
	}
	if (n > 64) {
		/* many ranges on one group: merge by sweeping without the boundary table */
		goto sweep;
	}
	for (size_t i = 0; i < n; i++) {
		bounds[nb++] = g[i].lo;
		bounds[nb++] = g[i].hi + 1;
	}
	bh_sort(bounds, nb, sizeof(*bounds), u32_cmp);
	{
		uint32_t cur_lo = 0, cur_hi = 0, cur_id = 0;
		bool open = false;

		for (size_t b = 0; b + 1 < nb; b++) {
			uint32_t lo = bounds[b], hi = bounds[b + 1] - 1, id = 0;

			if (bounds[b] == bounds[b + 1])
				continue;
			for (size_t i = 0; i < n; i++)
				if (g[i].lo <= lo && g[i].hi >= hi && (!id || g[i].rule_id < id))
					id = g[i].rule_id;
			if (open && id == cur_id && lo == cur_hi + 1) {
				cur_hi = hi;
				continue;
			}
			if (open) {
				r.port = (uint16_t)cur_lo;
				r.end_port = cur_hi == cur_lo ? 0 : (uint16_t)cur_hi;
				r.rule_id = cur_id;
				if (BH_PUSH(*out, *nout, *cap, r))
					return -ENOMEM;
			}
			open = id != 0;
			cur_lo = lo;
			cur_hi = hi;
			cur_id = id;
		}
		if (open) {
			r.port = (uint16_t)cur_lo;
			r.end_port = cur_hi == cur_lo ? 0 : (uint16_t)cur_hi;
			r.rule_id = cur_id;
			if (BH_PUSH(*out, *nout, *cap, r))
				return -ENOMEM;
		}
	}
	return 0;
sweep: {
	/* sorted by lo: the union, attributed to the first rule of each merged run */
	uint32_t lo = g[0].lo, hi = g[0].hi, id = g[0].rule_id;

	for (size_t i = 1; i <= n; i++) {
		if (i < n && g[i].lo <= hi + 1) {
			if (g[i].hi > hi)
				hi = g[i].hi;
			continue;
		}
		r.port = (uint16_t)lo;
		r.end_port = hi == lo ? 0 : (uint16_t)hi;
		r.rule_id = id;
		if (BH_PUSH(*out, *nout, *cap, r))
			return -ENOMEM;
		if (i < n) {
			lo = g[i].lo;
			hi = g[i].hi;
			id = g[i].rule_id;
		}
	}
	return 0;
}
}

static const char *const dir_names[2] = {"ingress", "egress"};
static const char *const action_names[2] = {"allow", "deny"};

static int ident_compile(struct ctl_compiler *c, struct ident *i)
{
	struct raw *raw = NULL;
	size_t nraw = 0, craw = 0, cap = 0;
	struct pol **eff = NULL;
	size_t neff = 0, ceff = 0;
	bool any_enforce = false, isolated[2] = {false, false};
	int rc = -ENOMEM;

	free(i->rules);
	i->rules = NULL;
	i->n_rules = 0;
	i->dirty = false;
	i->recompiled = true;
	if (i->cidr || !ident_in_use(i))
		return 0;
	/* the policies that select it; an enforced workload ignores observe policies */
	BH_SMAP_EACH(&c->policies, e)
	{
		struct pol *p = e->val;

		if (!ctl_selector_matches(&p->doc.policy.sel, &i->labels))
			continue;
		if (BH_PUSH(eff, neff, ceff, p))
			goto out;
		if (p->doc.policy.mode == CTL_ENFORCE)
			any_enforce = true;
	}
	i->observe = neff > 0 && !any_enforce;
	for (size_t k = 0; k < neff; k++) {
		struct pol *p = eff[k];
		const struct ctl_policy *pp = &p->doc.policy;

		if (any_enforce && pp->mode != CTL_ENFORCE)
			continue;
		if (pol_resolve(c, p))
			goto out;
		for (int d = 0; d < 2; d++) {
			if (pp->isolates[d])
				isolated[d] = true;
			for (int a = 0; a < 2; a++)
				for (size_t q = 0; q < pp->n_rules[d][a]; q++) {
					const struct ctl_rule *r = &pp->rules[d][a][q];
					const uint32_t *rem = p->remotes[d][a][q];
					size_t nrem = p->n_remotes[d][a][q];
					uint32_t any = 0;
					char key[CTL_NAME_MAX + 64];
					uint32_t rid;

					snprintf(key, sizeof(key), "policy/%s/%s/%s/%zu", pp->name,
						 dir_names[d], action_names[a], q);
					rid = rule_id_get(c, key);
					if (!rid)
						goto out;
					if (!r->n_peers) {
						rem = &any;
						nrem = 1;
					}
					for (size_t x = 0; x < nrem; x++) {
						size_t np = r->n_ports ? r->n_ports : 1;

						for (size_t y = 0; y < np; y++) {
							struct raw w = {
								.remote = rem[x],
								.dir = (uint8_t)d,
								.verdict = a == CTL_DENY
										   ? CTL_VERDICT_DENY
										   : CTL_VERDICT_ALLOW,
								.rule_id = rid,
							};

							if (r->n_ports) {
								const struct ctl_port *pt = &r->ports[y];

								w.proto = pt->proto;
								w.any_port = pt->port == 0 &&
									     !pt->icmp_type_set;
								w.lo = pt->port;
								w.hi = pt->end_port ? pt->end_port
										    : pt->port;
								/* ICMP type 0 cannot be told from
								 * "any" on the wire: the loader
								 * refuses it; never widen it */
								if (pt->icmp_type_set && pt->port == 0)
									continue;
							} else {
								w.any_port = true;
							}
							if (BH_PUSH(raw, nraw, craw, w))
								goto out;
						}
					}
				}
		}
	}
	for (int d = 0; d < 2; d++) {
		if (isolated[d]) {
			char key[64];

			snprintf(key, sizeof(key), "default/%s/%u", dir_names[d], i->id);
			i->def_verdict[d] = CTL_VERDICT_DENY;
			i->def_rule[d] = rule_id_get(c, key);
			if (!i->def_rule[d])
				goto out;
		} else {
			i->def_verdict[d] = CTL_VERDICT_ALLOW;
			i->def_rule[d] = d == CTL_INGRESS ? CTL_RULE_UNSELECTED_INGRESS
							  : CTL_RULE_UNSELECTED_EGRESS;
		}
	}
	if (nraw)
		qsort(raw, nraw, sizeof(*raw), raw_cmp);
	for (size_t s = 0, e; s < nraw; s = e) {
		for (e = s + 1; e < nraw && raw[e].remote == raw[s].remote &&
				raw[e].dir == raw[s].dir && raw[e].proto == raw[s].proto &&
				raw[e].verdict == raw[s].verdict;
		     e++)
			;
		if (emit_group(i->id, raw + s, e - s, &i->rules, &i->n_rules, &cap))
			goto out;
	}
	if (i->n_rules)
		qsort(i->rules, i->n_rules, sizeof(*i->rules), crule_cmp);
	rc = 0;
out:
	free(raw);
	free(eff);
	return rc;
}

/* ---- composing a node ------------------------------------------------------------------------ */

static int cep_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ctl_cep *)a)->name, ((const struct ctl_cep *)b)->name);
}

static int cipc_cmp(const void *a, const void *b)
{
	const struct ctl_cipc *x = a, *y = b;
	int r = ctl_prefix_cmp(&x->prefix, &y->prefix);

	if (r)
		return r;
	return x->identity < y->identity ? -1 : x->identity > y->identity;
}

static int ident_ptr_cmp(const void *a, const void *b)
{
	uint32_t x = (*(struct ident *const *)a)->id, y = (*(struct ident *const *)b)->id;

	return x < y ? -1 : x > y;
}

static struct ident *ident_by_id(const struct ctl_compiler *c, uint32_t id)
{
	char k[16];

	snprintf(k, sizeof(k), "%u", id);
	return bh_smap_get(&c->ident_ids, k);
}

static int ipc_add_wls(struct ctl_cipc **v, size_t *n, size_t *cap, const struct ident *i)
{
	for (size_t k = 0; k < i->n_wls; k++)
		for (size_t a = 0; a < i->wls[k]->doc.workload.n_addrs; a++) {
			struct ctl_cipc e = {.prefix = i->wls[k]->doc.workload.addrs[a],
					     .identity = i->id};

			if (BH_PUSH(*v, *n, *cap, e))
				return -ENOMEM;
		}
	return 0;
}

static int node_compose(struct ctl_compiler *c, struct node *n, bool *changed)
{
	struct ctl_node_out o = {0};
	struct ident **ids = NULL;
	size_t nids = 0, cids = 0, cap_r = 0, cap_i = 0, cap_refs = 0;
	uint32_t *refs = NULL;
	size_t nrefs = 0;
	int rc = -ENOMEM;

	/* endpoints, and the identities hosted */
	o.eps = calloc(n->n_wls ? n->n_wls : 1, sizeof(*o.eps));
	if (!o.eps)
		goto out;
	for (size_t k = 0; k < n->n_wls; k++) {
		struct wl *w = n->wls[k];
		struct ident *i = w->ident;
		struct ctl_cep *ep = &o.eps[o.n_eps++];

		/* copies: the workload's document may be replaced while this rule set lives on
		 * (compared with the next one, diffed against, copied by callers) */
		ep->name = strdup(w->doc.workload.name);
		ep->ifname = strdup(w->doc.workload.ifname ? w->doc.workload.ifname : "");
		if (!ep->name || !ep->ifname)
			goto out;
		ep->attach_host = w->doc.workload.attach_host;
		if (!i)
			continue;
		ep->identity = i->id;
		ep->observe = i->observe || n->observe_all;
		for (int d = 0; d < 2; d++) {
			ep->def_verdict[d] = i->def_verdict[d];
			ep->def_rule[d] = i->def_rule[d];
		}
		if (BH_PUSH(ids, nids, cids, i))
			goto out;
	}
	bh_sort(o.eps, o.n_eps, sizeof(*o.eps), cep_cmp);
	if (nids)
		qsort(ids, nids, sizeof(*ids), ident_ptr_cmp);
	/* rules: the hosted identities' rules, in identity order */
	for (size_t k = 0; k < nids; k++) {
		if (k && ids[k] == ids[k - 1])
			continue;
		if (!ids[k]->n_rules)
			continue;
		if (bh_grow((void **)&o.rules, &cap_r, o.n_rules + ids[k]->n_rules, sizeof(*o.rules)))
			goto out;
		memcpy(o.rules + o.n_rules, ids[k]->rules, ids[k]->n_rules * sizeof(*o.rules));
		o.n_rules += ids[k]->n_rules;
		for (size_t r = 0; r < ids[k]->n_rules; r++)
			if (ids[k]->rules[r].remote &&
			    BH_PUSH(refs, nrefs, cap_refs, ids[k]->rules[r].remote))
				goto out;
	}
	if (nrefs)
		qsort(refs, nrefs, sizeof(*refs), u32_cmp);
	{
		size_t u = 0;

		for (size_t k = 0; k < nrefs; k++)
			if (!u || refs[u - 1] != refs[k])
				refs[u++] = refs[k];
		nrefs = u;
	}
	/* ipcache: the addresses of every remote identity named; for a CIDR, its prefix, the
	 * prefixes within it that carry other identities, and the workloads within it (CIDR peers
	 * match only what is outside the inventory) */
	for (size_t k = 0; k < nrefs; k++) {
		struct ident *i = ident_by_id(c, refs[k]);

		if (!i)
			continue;
		if (!i->cidr) {
			if (ipc_add_wls(&o.ipc, &o.n_ipc, &cap_i, i))
				goto out;
			continue;
		}
		BH_SMAP_EACH(&c->idents, e)
		{
			struct ident *j = e->val;

			if (!ident_in_use(j))
				continue;
			if (j->cidr && ctl_prefix_contains(&i->prefix, &j->prefix)) {
				struct ctl_cipc x = {.prefix = j->prefix, .identity = j->id};

				if (BH_PUSH(o.ipc, o.n_ipc, cap_i, x))
					goto out;
			} else if (!j->cidr) {
				for (size_t w = 0; w < j->n_wls; w++)
					for (size_t a = 0; a < j->wls[w]->doc.workload.n_addrs;
					     a++) {
						const struct ctl_prefix *p =
							&j->wls[w]->doc.workload.addrs[a];
						struct ctl_cipc x = {.prefix = *p,
								     .identity = j->id};

						if (ctl_prefix_contains(&i->prefix, p) &&
						    BH_PUSH(o.ipc, o.n_ipc, cap_i, x))
							goto out;
					}
			}
		}
	}
	if (o.n_ipc) {
		size_t u = 0;

		bh_sort(o.ipc, o.n_ipc, sizeof(*o.ipc), cipc_cmp);
		/* one identity per prefix: a workload's own address wins over a CIDR identity
		 * of the same /32 or /128 (workload identities sort after? no: decide by kind) */
		for (size_t k = 0; k < o.n_ipc; k++) {
			if (u && !ctl_prefix_cmp(&o.ipc[u - 1].prefix, &o.ipc[k].prefix)) {
				struct ident *prev = ident_by_id(c, o.ipc[u - 1].identity);

				if (prev && prev->cidr)
					o.ipc[u - 1] = o.ipc[k];
				continue;
			}
			o.ipc[u++] = o.ipc[k];
		}
		o.n_ipc = u;
	}
	*changed = !ctl_node_out_equal(&o, &n->out);
	ctl_node_out_free(&n->out);
	n->out = o;
	memset(&o, 0, sizeof(o));
	free(n->refs);
	n->refs = refs;
	n->n_refs = nrefs;
	refs = NULL;
	n->dirty = false;
	rc = 0;
out:
	ctl_node_out_free(&o);
	free(ids);
	free(refs);
	return rc;
}

static bool node_refers(const struct node *n, uint32_t id)
{
	return n->n_refs && bsearch(&id, n->refs, n->n_refs, sizeof(*n->refs), u32_cmp);
}

static bool node_refers_cidr(const struct ctl_compiler *c, const struct node *n)
{
	for (size_t k = 0; k < n->n_refs; k++) {
		const struct ident *i = ident_by_id(c, n->refs[k]);

		if (i && i->cidr)
			return true;
	}
	return false;
}

/* Whether an address that came or went lies within a CIDR the node's rules name. */
static bool node_cidr_moved(const struct ctl_compiler *c, const struct node *n)
{
	if (!c->n_moved)
		return false;
	for (size_t k = 0; k < n->n_refs; k++) {
		const struct ident *i = ident_by_id(c, n->refs[k]);

		if (!i || !i->cidr)
			continue;
		for (size_t m = 0; m < c->n_moved; m++)
			if (ctl_prefix_contains(&i->prefix, &c->moved[m]))
				return true;
	}
	return false;
}

/* A workload's effective labels: its own, over its node's when it is the node's host. */
static char *wl_labels(struct ctl_compiler *c, const struct wl *w)
{
	const struct node *n = bh_smap_get(&c->nodes, w->doc.workload.node);
	struct ctl_labels l = {0};
	char *text;

	if (!w->doc.workload.attach_host || !n || (!n->has_spec && !n->base.n))
		return ctl_labels_format(&w->doc.workload.labels);
	if (ctl_labels_copy(&l, &n->base))
		return NULL;
	for (size_t i = 0; n->has_spec && i < n->spec.node.labels.n; i++)
		if (ctl_labels_set(&l, n->spec.node.labels.v[i].key,
				   n->spec.node.labels.v[i].value)) {
			ctl_labels_free(&l);
			return NULL;
		}
	for (size_t i = 0; i < w->doc.workload.labels.n; i++)
		if (ctl_labels_set(&l, w->doc.workload.labels.v[i].key,
				   w->doc.workload.labels.v[i].value)) {
			ctl_labels_free(&l);
			return NULL;
		}
	text = ctl_labels_format(&l);
	ctl_labels_free(&l);
	return text;
}

/* Resolves the identity of every workload marked changed. */
static int resolve_workloads(struct ctl_compiler *c)
{
	BH_SMAP_EACH(&c->workloads, e)
	{
		struct wl *w = e->val;
		struct ident *i;
		char *text;

		if (!w->changed)
			continue;
		w->changed = false;
		text = wl_labels(c, w);
		if (!text)
			return -ENOMEM;
		i = ident_get(c, text);
		free(text);
		if (!i)
			return -ENOMEM;
		if (w->ident != i) {
			/* its addresses now carry another identity wherever CIDRs list them */
			for (size_t a = 0; a < w->doc.workload.n_addrs; a++)
				if (BH_PUSH(c->moved, c->n_moved, c->cap_moved,
					 w->doc.workload.addrs[a]))
					return -ENOMEM;
			if (w->ident)
				ident_drop_wl(w->ident, w);
			if (BH_PUSH(i->wls, i->n_wls, i->cap_wls, w))
				return -ENOMEM;
			i->dirty = true;
			w->ident = i;
		}
		i->ipc_dirty = true;
	}
	return 0;
}

/*
 * The identities whose rules can change when identity j appears or disappears: those selected by
 * policies with a peer that matches j.
 */
static void mark_referrers(struct ctl_compiler *c, const struct ident *j)
{
	BH_SMAP_EACH(&c->policies, e)
	{
		struct pol *p = e->val;
		bool hit = false;

		for (int d = 0; d < 2 && !hit; d++)
			for (int a = 0; a < 2 && !hit; a++)
				for (size_t k = 0; k < p->doc.policy.n_rules[d][a] && !hit; k++) {
					const struct ctl_rule *r = &p->doc.policy.rules[d][a][k];

					for (size_t q = 0; q < r->n_peers && !hit; q++) {
						const struct ctl_peer *pe = &r->peers[q];

						hit = pe->kind == CTL_PEER_CIDR
							      ? j->cidr && cidr_peer_takes(pe, j)
							      : !j->cidr &&
									ctl_selector_matches(
										&pe->sel, &j->labels);
					}
				}
		if (hit)
			mark_selected(c, &p->doc.policy.sel);
	}
}

static int update(struct ctl_compiler *c, time_t now, bool all)
{
	struct bh_smap_ent **nodes = NULL;
	struct ident **gone = NULL;
	size_t ngone = 0, cgone = 0;
	bool transitions = false;
	int rc;

	c->n_changed_nodes = 0;
	if (c->num_handed) { /* nothing numbered since the last update */
		c->n_num = 0;
		c->num_handed = false;
	}
	if ((rc = resolve_workloads(c)))
		return rc;
	/* identities that came into use or fell out of it: the rules naming peers like them
	 * change; then grace periods and releases */
	BH_SMAP_EACH(&c->idents, e)
	{
		struct ident *j = e->val;
		bool used = ident_in_use(j);

		if (used != j->was_used || all) {
			transitions = true;
			j->dirty = true;
			mark_referrers(c, j);
		}
		j->was_used = used;
		if (used && j->unused_since) {
			j->unused_since = 0;
			if (num_log(c, CTL_NUM_IDENTITY_PUT, j->id, j->text, 0))
				return -ENOMEM;
		} else if (!used && !j->unused_since) {
			j->unused_since = now > 0 ? now : 1;
			if (num_log(c, CTL_NUM_IDENTITY_PUT, j->id, j->text, j->unused_since))
				return -ENOMEM;
		} else if (!used && now - j->unused_since >= (time_t)c->grace_s) {
			if (BH_PUSH(gone, ngone, cgone, j))
				return -ENOMEM;
		}
	}
	if (transitions)
		c->ident_gen++;
	for (size_t k = 0; k < ngone; k++) {
		char key[16];

		snprintf(key, sizeof(key), "%u", gone[k]->id);
		bh_smap_del(&c->ident_ids, key);
		bh_smap_del(&c->idents, gone[k]->text);
		if (num_log(c, CTL_NUM_IDENTITY_DELETE, gone[k]->id, NULL, 0)) {
			free(gone);
			return -ENOMEM;
		}
		ident_free(gone[k]);
	}
	free(gone);
	if (c->cidr_changed || all)
		BH_SMAP_EACH(&c->policies, e)
		{
			struct pol *p = e->val;

			if (p->has_cidr || all)
				mark_selected(c, &p->doc.policy.sel);
		}
	/* recompile the dirty identities */
	BH_SMAP_EACH(&c->idents, e)
	{
		struct ident *i = e->val;

		if ((i->dirty || all) && (rc = ident_compile(c, i)))
			return rc;
	}
	/* recompose the nodes that hold what changed */
	nodes = bh_smap_sorted(&c->nodes);
	if (!nodes)
		return -ENOMEM;
	for (size_t k = 0; k < c->nodes.n; k++) {
		struct node *n = nodes[k]->val;
		bool dirty = n->dirty || all, changed = false;

		for (size_t w = 0; w < n->n_wls && !dirty; w++)
			dirty = n->wls[w]->ident && n->wls[w]->ident->recompiled;
		if (!dirty && c->cidr_changed)
			dirty = node_refers_cidr(c, n);
		if (!dirty)
			BH_SMAP_EACH(&c->idents, e)
			{
				struct ident *i = e->val;

				if (i->ipc_dirty && node_refers(n, i->id)) {
					dirty = true;
					break;
				}
			}
		if (!dirty)
			dirty = node_cidr_moved(c, n);
		if (!dirty)
			continue;
		if ((rc = node_compose(c, n, &changed)))
			break;
		if (changed && BH_PUSH(c->changed_nodes, c->n_changed_nodes, c->cap_changed_nodes,
				    (const char *)n->name)) {
			rc = -ENOMEM;
			break;
		}
	}
	free(nodes);
	BH_SMAP_EACH(&c->idents, e)
	{
		struct ident *i = e->val;

		i->ipc_dirty = false;
		i->recompiled = false;
	}
	c->cidr_changed = false;
	c->n_moved = 0;
	return rc;
}

int ctl_compiler_update(struct ctl_compiler *c, time_t now, const char ***nodes_changed,
			size_t *n_nodes_changed, struct ctl_numbering_change **numbering,
			size_t *n_numbering, struct bh_error *err)
{
	int rc = update(c, now, c->all_dirty);

	if (rc)
		return bh_error_set(err, rc, "compiling: %s", strerror(-rc));
	c->all_dirty = false;
	if (nodes_changed) {
		*nodes_changed = NULL;
		*n_nodes_changed = c->n_changed_nodes;
		if (c->n_changed_nodes) {
			*nodes_changed = malloc(c->n_changed_nodes * sizeof(char *));
			if (!*nodes_changed)
				return bh_error_set(err, -ENOMEM, "out of memory");
			memcpy(*nodes_changed, c->changed_nodes,
			       c->n_changed_nodes * sizeof(char *));
		}
	}
	if (numbering) {
		*numbering = c->num;
		*n_numbering = c->n_num;
	}
	c->num_handed = true;
	return 0;
}

int ctl_compiler_recompile_all(struct ctl_compiler *c, time_t now,
			       struct ctl_numbering_change **numbering, size_t *n_numbering,
			       struct bh_error *err)
{
	/* forget every cache: peer resolutions and compiled rules */
	BH_SMAP_EACH(&c->policies, e)
		pol_memo_free(e->val);
	BH_SMAP_EACH(&c->workloads, e)
		((struct wl *)e->val)->changed = true;
	c->all_dirty = true;
	return ctl_compiler_update(c, now, NULL, NULL, numbering, n_numbering, err);
}

const struct ctl_node_out *ctl_compiler_node(const struct ctl_compiler *c, const char *node)
{
	const struct node *n = bh_smap_get(&c->nodes, node);

	return n ? &n->out : NULL;
}

int ctl_compiler_each_node(const struct ctl_compiler *c,
			   int (*cb)(const char *node, const struct ctl_node_out *o, void *ctx),
			   void *ctx)
{
	struct bh_smap_ent **v = bh_smap_sorted(&c->nodes);
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < c->nodes.n && !rc; i++)
		rc = cb(v[i]->key, &((struct node *)v[i]->val)->out, ctx);
	free(v);
	return rc;
}

/* ---- rule sets ------------------------------------------------------------------------------ */

void ctl_node_out_free(struct ctl_node_out *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_eps; i++) {
		free((char *)o->eps[i].name);
		free((char *)o->eps[i].ifname);
	}
	free(o->eps);
	free(o->ipc);
	free(o->rules);
	memset(o, 0, sizeof(*o));
}

static bool cep_equal(const struct ctl_cep *a, const struct ctl_cep *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->ifname ? a->ifname : "",
						     b->ifname ? b->ifname : "") &&
	       a->identity == b->identity && a->observe == b->observe &&
	       a->attach_host == b->attach_host && !memcmp(a->def_verdict, b->def_verdict, 2) &&
	       a->def_rule[0] == b->def_rule[0] && a->def_rule[1] == b->def_rule[1];
}

bool ctl_node_out_equal(const struct ctl_node_out *a, const struct ctl_node_out *b)
{
	if (a->n_eps != b->n_eps || a->n_ipc != b->n_ipc || a->n_rules != b->n_rules)
		return false;
	for (size_t i = 0; i < a->n_eps; i++)
		if (!cep_equal(&a->eps[i], &b->eps[i]))
			return false;
	for (size_t i = 0; i < a->n_ipc; i++)
		if (cipc_cmp(&a->ipc[i], &b->ipc[i]))
			return false;
	for (size_t i = 0; i < a->n_rules; i++)
		if (crule_cmp(&a->rules[i], &b->rules[i]))
			return false;
	return true;
}

int ctl_node_out_copy(struct ctl_node_out *dst, const struct ctl_node_out *src)
{
	struct ctl_node_out o = {0};

	o.eps = malloc((src->n_eps ? src->n_eps : 1) * sizeof(*o.eps));
	o.ipc = malloc((src->n_ipc ? src->n_ipc : 1) * sizeof(*o.ipc));
	o.rules = malloc((src->n_rules ? src->n_rules : 1) * sizeof(*o.rules));
	if (!o.eps || !o.ipc || !o.rules) {
		ctl_node_out_free(&o);
		return -ENOMEM;
	}
	for (size_t i = 0; i < src->n_eps; i++) {
		o.eps[i] = src->eps[i];
		o.eps[i].name = strdup(src->eps[i].name);
		o.eps[i].ifname = strdup(src->eps[i].ifname);
		o.n_eps = i + 1;
		if (!o.eps[i].name || !o.eps[i].ifname) {
			ctl_node_out_free(&o);
			return -ENOMEM;
		}
	}
	if (src->n_ipc)
		memcpy(o.ipc, src->ipc, src->n_ipc * sizeof(*o.ipc));
	if (src->n_rules)
		memcpy(o.rules, src->rules, src->n_rules * sizeof(*o.rules));
	o.n_ipc = src->n_ipc;
	o.n_rules = src->n_rules;
	*dst = o;
	return 0;
}

void ctl_node_delta_free(struct ctl_node_delta *d)
{
	if (!d)
		return;
	free(d->eps_add);
	free(d->eps_del);
	free(d->ipc_add);
	free(d->ipc_del);
	free(d->rules_add);
	free(d->rules_del);
	memset(d, 0, sizeof(*d));
}

/* Merge-walks two sorted arrays: what only a has goes to del, what only b has to add. */
#define DIFF(A, NA, B, NB, CMP, ADD, NADD, DEL, NDEL)                                             	do {                                                                                      		size_t i_ = 0, j_ = 0, ca_ = 0, cd_ = 0;                                          		while (i_ < (NA) || j_ < (NB)) {                                                  			int r_ = i_ == (NA) ? 1 : j_ == (NB) ? -1 : CMP(&(A)[i_], &(B)[j_]);      			if (r_ < 0) {                                                             				if (BH_PUSH(DEL, NDEL, cd_, (A)[i_]))                                					goto nomem;                                               				i_++;                                                             			} else if (r_ > 0) {                                                      				if (BH_PUSH(ADD, NADD, ca_, (B)[j_]))                                					goto nomem;                                               				j_++;                                                             			} else {                                                                  				i_++;                                                             				j_++;                                                             			}                                                                         		}                                                                                 	} while (0)

static int cep_full_cmp(const struct ctl_cep *a, const struct ctl_cep *b)
{
	int r = strcmp(a->name, b->name);

	if (r)
		return r;
	return cep_equal(a, b) ? 0 : memcmp(a, b, sizeof(*a)) < 0 ? -1 : 1;
}

int ctl_node_out_diff(const struct ctl_node_out *a, const struct ctl_node_out *b,
		      struct ctl_node_delta *d)
{
	memset(d, 0, sizeof(*d));
	DIFF(a->eps, a->n_eps, b->eps, b->n_eps, cep_full_cmp, d->eps_add, d->n_eps_add,
	     d->eps_del, d->n_eps_del);
	DIFF(a->ipc, a->n_ipc, b->ipc, b->n_ipc, cipc_cmp, d->ipc_add, d->n_ipc_add, d->ipc_del,
	     d->n_ipc_del);
	DIFF(a->rules, a->n_rules, b->rules, b->n_rules, crule_cmp, d->rules_add, d->n_rules_add,
	     d->rules_del, d->n_rules_del);
	return 0;
nomem:
	ctl_node_delta_free(d);
	return -ENOMEM;
}

/* ---- questions ---------------------------------------------------------------------------- */

uint32_t ctl_compiler_identity_of(const struct ctl_compiler *c, const char *labels)
{
	const struct ident *i = bh_smap_get(&c->idents, labels);

	return i && ident_in_use(i) ? i->id : 0;
}

const char *ctl_compiler_identity_labels(const struct ctl_compiler *c, uint32_t id)
{
	const struct ident *i = ident_by_id(c, id);

	return i ? i->text : NULL;
}

uint32_t ctl_compiler_workload_identity(const struct ctl_compiler *c, const char *name)
{
	const struct wl *w = bh_smap_get(&c->workloads, name);

	return w && w->ident ? w->ident->id : 0;
}

static int ident_id_cmp(const void *a, const void *b)
{
	const struct ident *x = (*(struct bh_smap_ent *const *)a)->val;
	const struct ident *y = (*(struct bh_smap_ent *const *)b)->val;

	return x->id < y->id ? -1 : x->id > y->id;
}

int ctl_compiler_each_identity(const struct ctl_compiler *c,
			       int (*cb)(uint32_t id, const char *labels, size_t n_workloads,
					 time_t unused_since, void *ctx),
			       void *ctx)
{
	struct bh_smap_ent **v = bh_smap_sorted(&c->idents);
	int rc = 0;

	if (!v)
		return -ENOMEM;
	bh_sort(v, c->idents.n, sizeof(*v), ident_id_cmp);
	for (size_t k = 0; k < c->idents.n && !rc; k++) {
		const struct ident *i = v[k]->val;

		rc = cb(i->id, i->text, i->cidr ? 0 : i->n_wls, i->unused_since, ctx);
	}
	free(v);
	return rc;
}

const char *ctl_compiler_workload_at(const struct ctl_compiler *c, const struct ctl_prefix *addr)
{
	char key[64];
	const struct wl *w;

	addr_key(addr, key, sizeof(key));
	w = bh_smap_get(&c->addrs, key);
	return w ? w->doc.workload.name : NULL;
}

uint32_t ctl_compiler_policy_rule_id(const struct ctl_compiler *c, const char *policy,
				     const char *dir, const char *action, size_t index)
{
	char key[CTL_NAME_MAX + 64];

	snprintf(key, sizeof(key), "policy/%s/%s/%s/%zu", policy, dir, action, index);
	return (uint32_t)(uintptr_t)bh_smap_get(&c->rule_keys, key);
}

const char *ctl_compiler_rule_describe(const struct ctl_compiler *c, uint32_t rule_id, char *buf,
				       size_t len, const char **policy)
{
	char k[16], name[CTL_NAME_MAX + 1], dir[16], act[16];
	const char *key;
	unsigned int idx;
	static __thread char pol[CTL_NAME_MAX + 1];

	if (policy)
		*policy = "";
	switch (rule_id) {
	case 1:
		snprintf(buf, len, "ICMPv6 neighbour discovery (always allowed)");
		return buf;
	case 2:
		snprintf(buf, len, "malformed packet (always dropped)");
		return buf;
	case 3:
		snprintf(buf, len, "fragment of an unknown datagram (default verdict)");
		return buf;
	case CTL_RULE_UNSELECTED_INGRESS:
	case CTL_RULE_UNSELECTED_EGRESS:
		snprintf(buf, len, "default allow: no policy isolates %s",
			 rule_id == CTL_RULE_UNSELECTED_INGRESS ? "ingress" : "egress");
		return buf;
	}
	snprintf(k, sizeof(k), "%u", rule_id);
	key = bh_smap_get(&c->rule_ids, k);
	if (!key)
		return NULL;
	if (sscanf(key, "policy/%63[^/]/%15[^/]/%15[^/]/%u", name, dir, act, &idx) == 4) {
		snprintf(buf, len, "policy %s, %s %s rule %u", name, dir, act, idx);
		if (policy) {
			snprintf(pol, sizeof(pol), "%s", name);
			*policy = pol;
		}
		return buf;
	}
	if (sscanf(key, "default/%15[^/]/%u", dir, &idx) == 2) {
		const char *labels = ctl_compiler_identity_labels(c, idx);

		snprintf(buf, len, "default deny (%s) of identity %u {%s}", dir, idx,
			 labels ? labels : "released");
		return buf;
	}
	snprintf(buf, len, "%s", key);
	return buf;
}

/* ---- explain ------------------------------------------------------------------------------ */

/* The identity the node's ipcache gives addr: longest prefix, world (2) when none. */
static uint32_t ipc_lookup(const struct ctl_node_out *o, const struct ctl_prefix *addr)
{
	int best = -1;
	uint32_t id = 2;

	for (size_t i = 0; i < o->n_ipc; i++)
		if (ctl_prefix_contains(&o->ipc[i].prefix, addr) && o->ipc[i].prefix.len > best) {
			best = o->ipc[i].prefix.len;
			id = o->ipc[i].identity;
		}
	return id;
}

static bool rule_takes(const struct ctl_crule *r, uint32_t local, uint32_t remote, int dir,
		       uint8_t proto, uint16_t port)
{
	uint16_t hi = r->end_port ? r->end_port : r->port;

	if (r->local != local || r->dir != dir || (r->remote && r->remote != remote))
		return false;
	if (r->proto && r->proto != proto)
		return false;
	return !r->proto || (!r->port && !r->end_port) || (port >= r->port && port <= hi);
}

/* Decides one direction at one node as the datapath does: deny first, then allow, then default. */
static int decide(const struct ctl_compiler *c, const struct ctl_node_out *o,
		  const struct ctl_cep *ep, uint32_t remote, int dir, uint8_t proto,
		  uint16_t port, uint32_t *rule)
{
	static const uint8_t order[2] = {CTL_VERDICT_DENY, CTL_VERDICT_ALLOW};

	(void)c;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < o->n_rules; i++)
			if (o->rules[i].verdict == order[k] &&
			    rule_takes(&o->rules[i], ep->identity, remote, dir, proto, port)) {
				*rule = o->rules[i].rule_id;
				return order[k];
			}
	*rule = ep->def_rule[dir];
	return ep->def_verdict[dir];
}

static const struct ctl_cep *find_ep(const struct ctl_node_out *o, const char *name)
{
	for (size_t i = 0; i < o->n_eps; i++)
		if (!strcmp(o->eps[i].name, name))
			return &o->eps[i];
	return NULL;
}

static size_t say(char *why, size_t len, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t say(char *why, size_t len, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= len)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(why + at, len - at, fmt, ap);
	va_end(ap);
	return n < 0 ? at : at + (size_t)n;
}

/* The address of w in the family of other (or its first one). */
static const struct ctl_prefix *wl_addr(const struct wl *w, int family)
{
	for (size_t i = 0; i < w->doc.workload.n_addrs; i++)
		if (!family || w->doc.workload.addrs[i].family == family)
			return &w->doc.workload.addrs[i];
	return NULL;
}

int ctl_compiler_explain(const struct ctl_compiler *c, const char *from,
			 const struct ctl_prefix *from_addr, const char *to,
			 const struct ctl_prefix *to_addr, uint8_t proto, uint16_t port,
			 bool *observed, char *why, size_t len)
{
	const struct wl *wf = from ? bh_smap_get(&c->workloads, from) : NULL;
	const struct wl *wt = to ? bh_smap_get(&c->workloads, to) : NULL;
	const struct ctl_prefix *sa = from_addr, *da = to_addr;
	size_t at = 0;
	int verdict = CTL_VERDICT_ALLOW;
	char desc[160];

	*observed = false;
	why[0] = '\0';
	if ((from && !wf) || (to && !wt)) {
		snprintf(why, len, "no workload named %s", from && !wf ? from : to);
		return -ENOENT;
	}
	if (wf)
		sa = wl_addr(wf, da ? da->family : 0);
	if (wt)
		da = wl_addr(wt, sa ? sa->family : 0);
	if (wf && !sa) {
		snprintf(why, len, "workload %s has no address%s", from, da ? " of that family" : "");
		return -EINVAL;
	}
	if (wt && !da) {
		snprintf(why, len, "workload %s has no address%s", to, sa ? " of that family" : "");
		return -EINVAL;
	}
	if (!sa || !da || sa->family != da->family) {
		snprintf(why, len, "source and destination need addresses of one family");
		return -EINVAL;
	}
	for (int side = 0; side < 2; side++) {
		const struct wl *w = side == 0 ? wf : wt;
		const struct node *n;
		const struct ctl_cep *ep;
		uint32_t remote, rule;
		int v, dir = side == 0 ? CTL_EGRESS : CTL_INGRESS;
		const char *pol;

		if (!w)
			continue;
		n = bh_smap_get(&c->nodes, w->doc.workload.node);
		ep = n ? find_ep(&n->out, w->doc.workload.name) : NULL;
		if (!ep || !ep->identity) {
			snprintf(why, len, "workload %s is not compiled yet", w->doc.workload.name);
			return -EAGAIN;
		}
		remote = ipc_lookup(&n->out, side == 0 ? da : sa);
		v = decide(c, &n->out, ep, remote, dir, proto, port, &rule);
		if (!ctl_compiler_rule_describe(c, rule, desc, sizeof(desc), &pol))
			snprintf(desc, sizeof(desc), "rule %u", rule);
		at = say(why, len, at, "%s%s at node %s (%s, identity %u; peer identity %u): %s by rule %u, %s%s\n",
			 at ? "" : "", dir == CTL_EGRESS ? "egress" : "ingress", n->name,
			 w->doc.workload.name, ep->identity, remote,
			 v == CTL_VERDICT_DENY ? "DENY" : "ALLOW", rule, desc,
			 v == CTL_VERDICT_DENY && ep->observe ? " (observe mode: would deny, passes)" : "");
		if (v == CTL_VERDICT_DENY) {
			if (ep->observe)
				*observed = true;
			else
				verdict = CTL_VERDICT_DENY;
		}
		if (verdict == CTL_VERDICT_DENY)
			break;
	}
	return verdict;
}
