// SPDX-License-Identifier: Apache-2.0
/*
 * The policy state of the controller: the operator's objects (policies, workloads, node labels)
 * held by the compiler, made durable as revisions in the store, and the operator methods that read
 * and change them (apply, delete, rollback, get, describe, explain, the rule set of a node).
 *
 * A change runs in this order: every file is parsed (a file with any error changes nothing), the
 * changes are put into the compiler (with an undo log), the compiler updates, and only then is the
 * new revision written to the store in one transaction together with any identity and rule id the
 * update allocated. Any failure undoes the compiler, so memory and store never disagree; an
 * acknowledged change is in the store (synchronous=FULL) and survives kill -9.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/log.h"
#include "bulkhead/pki.h"
#include "bulkhead/smap.h"
#include "bulkhead/util.h"
#include "compile.h"
#include "ctl.h"
#include "flows.h"

#define ST(x) BULKHEAD__RPC_STATUS__RPC_##x

/* How long an identity no workload uses keeps its number (it is never given to another set). */
#define IDENTITY_GRACE_S (15 * 60)
/* Lines of a node diff sent back at most (per node) */
#define DIFF_LINES_MAX 2000

/* ---- rendering ------------------------------------------------------------------------------ */

static const char *ident_text(const struct ctl_compiler *comp, uint32_t id, char *buf, size_t len)
{
	const char *l;

	switch (id) {
	case 0:
		return "any";
	case 1:
		return "host";
	case 2:
		return "world";
	case 3:
		return "controller";
	}
	l = ctl_compiler_identity_labels(comp, id);
	snprintf(buf, len, "%u{%s}", id, l ? l : "?");
	return buf;
}

/* "ingress 300{app=db} <- 301{app=api} tcp/5432 allow  # policy db-in, ingress allow rule 0" */
static void rule_line(const struct ctl_compiler *comp, const struct ctl_crule *r, char *buf,
		      size_t len)
{
	char a[200], b[200], p[16], port[24], desc[200];

	if (!r->proto || (!r->port && !r->end_port))
		port[0] = '\0';
	else if (r->end_port)
		snprintf(port, sizeof(port), "/%u-%u", r->port, r->end_port);
	else
		snprintf(port, sizeof(port), "/%u", r->port);
	if (!ctl_compiler_rule_describe(comp, r->rule_id, desc, sizeof(desc), NULL))
		snprintf(desc, sizeof(desc), "rule %u", r->rule_id);
	snprintf(buf, len, "%s %s %s %s %s%s %s  # %s", r->dir ? "egress" : "ingress",
		 ident_text(comp, r->local, a, sizeof(a)), r->dir ? "->" : "<-",
		 ident_text(comp, r->remote, b, sizeof(b)), bh_ip_proto_name(r->proto, p, sizeof(p)), port,
		 r->verdict == CTL_VERDICT_DENY ? "deny" : "allow", desc);
}

static void ipc_line(const struct ctl_compiler *comp, const struct ctl_cipc *e, char *buf,
		     size_t len)
{
	char p[64], id[200];

	snprintf(buf, len, "ipcache %s -> %s", ctl_prefix_format(&e->prefix, p, sizeof(p)),
		 ident_text(comp, e->identity, id, sizeof(id)));
}

static void ep_line(const struct ctl_compiler *comp, const struct ctl_cep *e, char *buf,
		    size_t len)
{
	char id[200];

	snprintf(buf, len, "endpoint %s on %s (%s) identity %s %s ingress:%s egress:%s", e->name,
		 e->ifname ? e->ifname : "-", e->attach_host ? "host" : "veth",
		 ident_text(comp, e->identity, id, sizeof(id)), e->observe ? "observe" : "enforce",
		 e->def_verdict[0] == CTL_VERDICT_DENY ? "deny" : "allow",
		 e->def_verdict[1] == CTL_VERDICT_DENY ? "deny" : "allow");
}

/* ---- string vectors for replies --------------------------------------------------------------- */

struct strv {
	char **v;
	size_t n, cap;
};

static int strv_add(struct strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int strv_add(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *str;
	int n;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	va_start(ap, fmt);
	n = vasprintf(&str, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	s->v[s->n++] = str;
	return 0;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- loading at start ------------------------------------------------------------------------- */

static int load_identity(uint32_t id, const char *labels, time_t unused_since, void *arg)
{
	struct ctl *c = arg;

	if (ctl_compiler_identity_load(c->comp, id, labels, unused_since))
		bh_log(LOG_WARNING, "store: identity %u {%s} conflicts with another: skipped", id,
		       labels);
	return 0;
}

static int load_rule_id(uint32_t id, const char *key, void *arg)
{
	struct ctl *c = arg;

	if (ctl_compiler_rule_id_load(c->comp, id, key))
		bh_log(LOG_WARNING, "store: rule id %u (%s) conflicts with another: skipped", id,
		       key);
	return 0;
}

struct load_ctx {
	struct ctl *c;
	struct bh_error *err;
	size_t n;
};

/* Parses one stored object (canonical JSON) into a document. */
static int parse_stored(const char *kind, const char *name, const char *body, struct ctl_doc *out,
			struct bh_error *err)
{
	struct ctl_docset ds = {0};
	char fname[128];
	int rc;

	snprintf(fname, sizeof(fname), "store:%s/%s", kind, name);
	rc = ctl_yaml_load(fname, body, strlen(body), &ds, err);
	if (rc)
		return rc;
	if (ds.n != 1 || strcmp(ctl_kind_name(ds.v[0].kind), kind) ||
	    strcmp(ctl_doc_name(&ds.v[0]), name)) {
		ctl_docset_free(&ds);
		return bh_error_set(err, -EINVAL, "%s: the stored body is not that object", fname);
	}
	*out = ds.v[0];
	ds.n = 0;
	ctl_docset_free(&ds);
	return 0;
}

static int load_object(const char *kind, const char *name, const char *body, void *arg)
{
	struct load_ctx *l = arg;
	struct ctl_doc d, old;
	bool had;
	int rc = parse_stored(kind, name, body, &d, l->err);

	if (rc)
		return rc;
	rc = ctl_compiler_put(l->c->comp, &d, &old, &had, l->err);
	ctl_doc_free(&d);
	if (had)
		ctl_doc_free(&old);
	l->n++;
	return rc;
}

static int numbering_save(struct ctl *c, const struct ctl_numbering_change *num, size_t n,
			  struct bh_error *err);

/* Updates the compiler outside an operator change and stores what it numbered. */
static int recompile(struct ctl *c, struct bh_error *err)
{
	struct ctl_numbering_change *num;
	const char **changed = NULL;
	size_t n_num, n_changed = 0;
	int rc = ctl_compiler_update(c->comp, time(NULL), &changed, &n_changed, &num, &n_num, err);

	if (!rc && n_num && !(rc = ctl_store_begin(c->store, err))) {
		rc = numbering_save(c, num, n_num, err);
		if (rc)
			ctl_store_rollback(c->store);
		else
			rc = ctl_store_commit(c->store, err);
	}
	/* the rule sets changed without a new revision (what enrollment gave a node): their
	 * watches get them at the current revision */
	if (!rc && n_changed)
		ctl_rollout_changed(c, changed, n_changed, c->revision);
	free(changed);
	return rc;
}

static int load_node(const struct ctl_node *n, void *arg)
{
	struct ctl *c = arg;
	struct bh_error err = {0};

	if (n->revoked)
		return 0;
	if (ctl_compiler_node_enrolled(c->comp, n->name, n->labels, !strcmp(n->mode, "observe"),
				       &err))
		bh_log(LOG_WARNING, "node %s: its enrollment labels \"%s\" are not usable: %s",
		       n->name, n->labels, err.msg);
	return 0;
}

void ctl_policy_node_enrolled(struct ctl *c, const char *name)
{
	struct ctl_node n;
	struct bh_error err = {0};

	if (!c->comp || ctl_store_node_get(c->store, name, &n))
		return;
	load_node(&n, c);
	if (recompile(c, &err))
		bh_log(LOG_ERR, "recompiling after the enrollment of %s: %s", name, err.msg);
}

int ctl_policy_load(struct ctl *c, struct bh_error *err)
{
	struct load_ctx l = {.c = c, .err = err};
	uint64_t next_id = 0, next_rule = 0;
	int rc;

	rc = ctl_compiler_create(&c->comp, IDENTITY_GRACE_S);
	if (rc)
		return bh_error_set(err, rc, "out of memory");
	if ((rc = ctl_store_identity_load(c->store, load_identity, c)) ||
	    (rc = ctl_store_rule_id_load(c->store, load_rule_id, c)))
		return bh_error_set(err, rc, "store: loading identities and rule ids: %s",
				    bh_strerror(rc));
	if (ctl_store_counter_peek(c->store, CTL_COUNTER_IDENTITY, &next_id) == 0 &&
	    ctl_store_counter_peek(c->store, CTL_COUNTER_RULE_ID, &next_rule) == 0)
		ctl_compiler_counters_set(c->comp, (uint32_t)next_id, (uint32_t)next_rule);
	rc = ctl_store_node_list(c->store, load_node, c);
	if (rc)
		return bh_error_set(err, rc, "store: loading nodes: %s", bh_strerror(rc));
	rc = ctl_store_objects_at(c->store, 0, NULL, load_object, &l);
	if (rc) {
		if (!err->msg[0])
			bh_error_set(err, rc, "store: loading objects: %s", bh_strerror(rc));
		return rc;
	}
	{
		struct ctl_numbering_change *num;
		size_t n_num;

		rc = ctl_compiler_recompile_all(c->comp, time(NULL), &num, &n_num, err);
		if (rc)
			return rc;
		/* what loading numbered (an identity whose row was lost, grace periods) */
		if (n_num && !(rc = ctl_store_begin(c->store, err))) {
			rc = numbering_save(c, num, n_num, err);
			if (rc)
				ctl_store_rollback(c->store);
			else
				rc = ctl_store_commit(c->store, err);
		}
		if (rc)
			return rc;
	}
	c->revision = ctl_store_revision_current(c->store);
	bh_log(LOG_INFO, "policy state: revision %llu, %zu objects",
	       (unsigned long long)c->revision, l.n);
	return 0;
}

void ctl_policy_unload(struct ctl *c)
{
	ctl_compiler_destroy(c->comp);
	c->comp = NULL;
}

/* ---- the change pipeline ---------------------------------------------------------------------- */

struct change {
	enum ctl_kind kind;
	char name[CTL_NAME_MAX + 1];
	bool del;
	struct ctl_doc doc; /* the new object (put) */
	char *json;	    /* its canonical form (put) */
	const char *action;
	/* undo */
	bool done, had_old;
	struct ctl_doc old;
};

struct plan {
	struct change *v;
	size_t n, cap;
};

static void plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		if (!p->v[i].del)
			ctl_doc_free(&p->v[i].doc);
		if (p->v[i].had_old)
			ctl_doc_free(&p->v[i].old);
		free(p->v[i].json);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static struct change *plan_add(struct plan *p)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct change *nv = realloc(p->v, cap * sizeof(*nv));

		if (!nv)
			return NULL;
		p->v = nv;
		p->cap = cap;
	}
	memset(&p->v[p->n], 0, sizeof(p->v[0]));
	return &p->v[p->n++];
}

static int plan_find(const struct plan *p, enum ctl_kind k, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].kind == k && !strcmp(p->v[i].name, name))
			return (int)i;
	return -1;
}

/* Adds a put of doc (taken) to the plan, deciding created / configured / unchanged. */
static int plan_put(struct ctl *c, struct plan *p, struct ctl_doc *doc, const char *where,
		    struct bh_error *err)
{
	const struct ctl_doc *cur;
	struct change *ch;
	char *cur_json;

	if (plan_find(p, doc->kind, ctl_doc_name(doc)) >= 0)
		return bh_error_set(err, -EINVAL, "%s: %s %s is declared twice", where,
				    ctl_kind_name(doc->kind), ctl_doc_name(doc));
	ch = plan_add(p);
	if (!ch)
		return bh_error_set(err, -ENOMEM, "out of memory");
	ch->kind = doc->kind;
	snprintf(ch->name, sizeof(ch->name), "%s", ctl_doc_name(doc));
	ch->doc = *doc;
	memset(doc, 0, sizeof(*doc));
	ch->json = ctl_doc_to_json(&ch->doc);
	if (!ch->json)
		return bh_error_set(err, -ENOMEM, "out of memory");
	cur = ctl_compiler_get(c->comp, ch->kind, ch->name);
	if (!cur) {
		ch->action = "created";
		return 0;
	}
	cur_json = ctl_doc_to_json(cur);
	if (!cur_json)
		return bh_error_set(err, -ENOMEM, "out of memory");
	ch->action = strcmp(cur_json, ch->json) ? "configured" : "unchanged";
	free(cur_json);
	return 0;
}

static int plan_del(struct ctl *c, struct plan *p, enum ctl_kind k, const char *name,
		    struct bh_error *err)
{
	struct change *ch;

	if (!ctl_compiler_get(c->comp, k, name))
		return bh_error_set(err, -ENOENT, "%s %s does not exist", ctl_kind_name(k), name);
	if (plan_find(p, k, name) >= 0)
		return 0;
	ch = plan_add(p);
	if (!ch)
		return bh_error_set(err, -ENOMEM, "out of memory");
	ch->kind = k;
	ch->del = true;
	ch->action = "deleted";
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	return 0;
}

/* Puts the changes into the compiler, recording how to undo each. */
static int plan_enact(struct ctl *c, struct plan *p, struct bh_error *err)
{
	for (size_t i = 0; i < p->n; i++) {
		struct change *ch = &p->v[i];
		int rc;

		if (!strcmp(ch->action, "unchanged"))
			continue;
		if (ch->del) {
			rc = ctl_compiler_delete(c->comp, ch->kind, ch->name, &ch->old, err);
			ch->had_old = rc == 0;
		} else {
			struct ctl_doc copy;
			struct ctl_docset ds = {0};

			/* the compiler takes the document: give it a fresh parse of the
			 * canonical form and keep ours for the reply */
			rc = ctl_yaml_load("canonical", ch->json, strlen(ch->json), &ds, err);
			if (rc)
				return rc;
			copy = ds.v[0];
			ds.n = 0;
			ctl_docset_free(&ds);
			rc = ctl_compiler_put(c->comp, &copy, &ch->old, &ch->had_old, err);
			ctl_doc_free(&copy);
		}
		if (rc)
			return rc;
		ch->done = true;
	}
	return 0;
}

static void plan_undo(struct ctl *c, struct plan *p)
{
	struct bh_error err = {0};

	for (size_t i = p->n; i-- > 0;) {
		struct change *ch = &p->v[i];
		struct ctl_doc gone;
		bool had;

		if (!ch->done)
			continue;
		if (ch->had_old) {
			if (ctl_compiler_put(c->comp, &ch->old, &gone, &had, &err))
				bh_log(LOG_ERR, "undo: %s", err.msg);
			ctl_doc_free(&ch->old);
			ch->had_old = false;
			if (had)
				ctl_doc_free(&gone);
		} else if (!ctl_compiler_delete(c->comp, ch->kind, ch->name, &gone, &err)) {
			ctl_doc_free(&gone);
		}
		ch->done = false;
	}
}

/* Writes what an update allocated or released, inside the caller's transaction. */
static int numbering_save(struct ctl *c, const struct ctl_numbering_change *num, size_t n,
			  struct bh_error *err)
{
	uint32_t next_id, next_rule;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		switch (num[i].what) {
		case CTL_NUM_IDENTITY_PUT:
			rc = ctl_store_identity_put(c->store, num[i].id, num[i].text,
						    num[i].unused_since, err);
			break;
		case CTL_NUM_IDENTITY_DELETE:
			rc = ctl_store_identity_delete(c->store, num[i].id, err);
			if (rc == -ENOENT)
				rc = 0;
			break;
		case CTL_NUM_RULE_ID_PUT:
			rc = ctl_store_rule_id_put(c->store, num[i].id, num[i].text, err);
			break;
		}
	}
	if (rc || !n)
		return rc;
	ctl_compiler_counters(c->comp, &next_id, &next_rule);
	if ((rc = ctl_store_counter_raise(c->store, CTL_COUNTER_IDENTITY, next_id, err)) == 0)
		rc = ctl_store_counter_raise(c->store, CTL_COUNTER_RULE_ID, next_rule, err);
	return rc;
}

struct outcome {
	uint64_t revision;
	struct strv nodes_affected;
	Bulkhead__NodeDiff **diffs;
	size_t n_diffs;
	struct strv lines; /* owns every diff line */
};

static void outcome_free(struct outcome *o)
{
	for (size_t i = 0; i < o->n_diffs; i++) {
		free(o->diffs[i]->added);
		free(o->diffs[i]->removed);
		free(o->diffs[i]);
	}
	free(o->diffs);
	strv_free(&o->nodes_affected);
	strv_free(&o->lines);
}

/* Renders a node's change as lines; the lines go to o->lines, the pointers into a NodeDiff. */
static int render_diff(struct ctl *c, const char *node, const struct ctl_node_out *before,
		       const struct ctl_node_out *after, struct outcome *o)
{
	static const struct ctl_node_out none = {0};
	struct ctl_node_delta d;
	Bulkhead__NodeDiff *nd, **nv;
	size_t first = o->lines.n, n_add, n_del = 0;
	char buf[600];
	int rc;

	rc = ctl_node_out_diff(before ? before : &none, after ? after : &none, &d);
	if (rc)
		return rc;
	/* removed first, then added, each: endpoints, ipcache, rules */
	for (int pass = 0; pass < 2; pass++) {
		size_t ne = pass ? d.n_eps_add : d.n_eps_del, ni = pass ? d.n_ipc_add : d.n_ipc_del,
		       nr = pass ? d.n_rules_add : d.n_rules_del;
		const struct ctl_cep *e = pass ? d.eps_add : d.eps_del;
		const struct ctl_cipc *ip = pass ? d.ipc_add : d.ipc_del;
		const struct ctl_crule *r = pass ? d.rules_add : d.rules_del;
		size_t lines = 0;

		for (size_t i = 0; i < ne && !rc && lines++ < DIFF_LINES_MAX; i++) {
			ep_line(c->comp, &e[i], buf, sizeof(buf));
			rc = strv_add(&o->lines, "%s", buf);
		}
		for (size_t i = 0; i < ni && !rc && lines++ < DIFF_LINES_MAX; i++) {
			ipc_line(c->comp, &ip[i], buf, sizeof(buf));
			rc = strv_add(&o->lines, "%s", buf);
		}
		for (size_t i = 0; i < nr && !rc && lines++ < DIFF_LINES_MAX; i++) {
			rule_line(c->comp, &r[i], buf, sizeof(buf));
			rc = strv_add(&o->lines, "%s", buf);
		}
		if (!rc && lines > DIFF_LINES_MAX)
			rc = strv_add(&o->lines, "... %zu more", ne + ni + nr - DIFF_LINES_MAX);
		if (pass == 0)
			n_del = o->lines.n - first;
	}
	ctl_node_delta_free(&d);
	if (rc)
		return rc;
	n_add = o->lines.n - first - n_del;
	nd = calloc(1, sizeof(*nd));
	nv = realloc(o->diffs, (o->n_diffs + 1) * sizeof(*nv));
	if (!nd || !nv) {
		free(nd);
		free(nv == o->diffs ? NULL : nv);
		return -ENOMEM;
	}
	o->diffs = nv;
	bulkhead__node_diff__init(nd);
	nd->node = (char *)node;
	nd->removed = malloc((n_del ? n_del : 1) * sizeof(char *));
	nd->added = malloc((n_add ? n_add : 1) * sizeof(char *));
	if (!nd->removed || !nd->added) {
		free(nd->removed);
		free(nd->added);
		free(nd);
		return -ENOMEM;
	}
	/* lines may still move (realloc): the pointers are taken from the strings, not the vector */
	for (size_t i = 0; i < n_del; i++)
		nd->removed[i] = o->lines.v[first + i];
	for (size_t i = 0; i < n_add; i++)
		nd->added[i] = o->lines.v[first + n_del + i];
	nd->n_removed = n_del;
	nd->n_added = n_add;
	o->diffs[o->n_diffs++] = nd;
	return 0;
}

struct snapshot {
	char **names;
	struct ctl_node_out *outs;
	size_t n, cap;
};

static int snap_one(const char *node, const struct ctl_node_out *out, void *arg)
{
	struct snapshot *s = arg;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **nn = realloc(s->names, cap * sizeof(*nn));
		struct ctl_node_out *no;

		if (!nn)
			return -ENOMEM;
		s->names = nn;
		no = realloc(s->outs, cap * sizeof(*no));
		if (!no)
			return -ENOMEM;
		s->outs = no;
		s->cap = cap;
	}
	s->names[s->n] = strdup(node);
	if (!s->names[s->n] || ctl_node_out_copy(&s->outs[s->n], out)) {
		free(s->names[s->n]);
		return -ENOMEM;
	}
	s->n++;
	return 0;
}

static void snap_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->names[i]);
		ctl_node_out_free(&s->outs[i]);
	}
	free(s->names);
	free(s->outs);
	memset(s, 0, sizeof(*s));
}

static const struct ctl_node_out *snap_get(const struct snapshot *s, const char *node)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], node))
			return &s->outs[i];
	return NULL;
}

/*
 * Runs a plan: enact, update, diff, and either undo (dry run) or persist as a new revision.
 * On failure everything is as before and err says why.
 */
static int plan_run(struct ctl *c, struct plan *p, bool dry_run, bool want_diff,
		    const char *author, const char *verb, struct outcome *o, struct bh_error *err)
{
	struct snapshot snap = {0};
	struct ctl_object_change *oc = NULL;
	struct ctl_numbering_change *num;
	const char **changed = NULL;
	size_t n_changed = 0, n_num = 0, n_oc = 0;
	char summary[256];
	size_t at = 0;
	bool in_tx = false;
	int rc;

	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].action, "unchanged"))
			n_oc++;
	if (!n_oc)
		return 0;
	if ((want_diff || dry_run) &&
	    (rc = ctl_compiler_each_node(c->comp, snap_one, &snap))) {
		snap_free(&snap);
		return bh_error_set(err, rc, "out of memory");
	}
	rc = plan_enact(c, p, err);
	if (rc)
		goto undo;
	rc = ctl_compiler_update(c->comp, time(NULL), &changed, &n_changed, &num, &n_num, err);
	if (rc)
		goto undo;
	for (size_t i = 0; i < n_changed && !rc; i++) {
		rc = strv_add(&o->nodes_affected, "%s", changed[i]);
		if (!rc && (want_diff || dry_run))
			rc = render_diff(c, o->nodes_affected.v[o->nodes_affected.n - 1],
					 snap_get(&snap, changed[i]),
					 ctl_compiler_node(c->comp, changed[i]), o);
	}
	if (rc) {
		bh_error_set(err, rc, "out of memory");
		goto undo;
	}
	/* the durable part: one transaction for the revision and the numbering */
	rc = ctl_store_begin(c->store, err);
	if (rc)
		goto undo;
	in_tx = true;
	rc = numbering_save(c, num, n_num, err);
	if (rc)
		goto undo;
	if (dry_run) {
		rc = ctl_store_commit(c->store, err);
		in_tx = false;
		if (rc)
			goto undo;
		rc = 0;
		goto undo; /* a dry run always goes back; only its numbering stays */
	}
	oc = calloc(n_oc, sizeof(*oc));
	if (!oc) {
		rc = bh_error_set(err, -ENOMEM, "out of memory");
		goto undo;
	}
	n_oc = 0;
	at = (size_t)snprintf(summary, sizeof(summary), "%s:", verb);
	for (size_t i = 0; i < p->n; i++) {
		const struct change *ch = &p->v[i];

		if (!strcmp(ch->action, "unchanged"))
			continue;
		oc[n_oc].kind = ctl_kind_name(ch->kind);
		oc[n_oc].name = ch->name;
		oc[n_oc].body = ch->del ? NULL : ch->json;
		n_oc++;
		if (at < sizeof(summary))
			at += (size_t)snprintf(summary + at, sizeof(summary) - at, " %s/%s %s",
					       ctl_kind_name(ch->kind), ch->name, ch->action);
	}
	if (at >= sizeof(summary))
		memcpy(summary + sizeof(summary) - 4, "...", 4);
	rc = ctl_store_revision_commit(c->store, oc, n_oc, author, summary, time(NULL),
				       &o->revision, err);
	if (rc)
		goto undo;
	rc = ctl_store_commit(c->store, err);
	in_tx = false;
	if (rc) {
		o->revision = 0;
		goto undo;
	}
	if (o->revision) {
		c->revision = o->revision;
		ctl_rollout_changed(c, changed, n_changed, o->revision);
	}
	bh_log(LOG_NOTICE, "revision %llu by %s: %s (%zu node%s affected)",
	       (unsigned long long)o->revision, author, summary, n_changed,
	       n_changed == 1 ? "" : "s");
	goto out;
undo:
	if (in_tx)
		ctl_store_rollback(c->store);
	plan_undo(c, p);
	{
		struct bh_error e2 = {0};

		if (ctl_compiler_update(c->comp, time(NULL), NULL, NULL, NULL, NULL, &e2))
			bh_log(LOG_ERR, "recompiling after an undo: %s", e2.msg);
	}
out:
	free(changed);
	free(oc);
	snap_free(&snap);
	return rc;
}

/* ---- replies -------------------------------------------------------------------------------- */

static void author_of(struct bh_rpc_call *call, char *buf, size_t len)
{
	const struct bh_identity *peer = bh_rpc_call_peer(call);

	snprintf(buf, len, "%s %s", bh_role_name(peer->role), peer->name[0] ? peer->name : "?");
}

static void reply_outcome(struct ctl *c, struct bh_rpc_call *call, const struct plan *p,
			  struct outcome *o, bool dry_run, uint32_t wait_ms)
{
	Bulkhead__ApplyResponse resp = BULKHEAD__APPLY_RESPONSE__INIT;
	Bulkhead__ObjectChange *ch = calloc(p->n ? p->n : 1, sizeof(*ch));
	Bulkhead__ObjectChange **chp = calloc(p->n ? p->n : 1, sizeof(*chp));

	if (!ch || !chp) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->n; i++) {
		bulkhead__object_change__init(&ch[i]);
		ch[i].kind = (char *)ctl_kind_name(p->v[i].kind);
		ch[i].name = (char *)p->v[i].name;
		ch[i].action = (char *)p->v[i].action;
		chp[i] = &ch[i];
	}
	resp.revision = dry_run ? 0 : o->revision;
	resp.n_changes = p->n;
	resp.changes = chp;
	resp.n_nodes = o->n_diffs;
	resp.nodes = o->diffs;
	resp.n_nodes_affected = o->nodes_affected.n;
	resp.nodes_affected = o->nodes_affected.v;
	/* --wait: answered once every affected node acknowledged the revision */
	if (wait_ms && !dry_run && o->revision && o->nodes_affected.n &&
	    ctl_rollout_wait(c, call, &resp.base, o->revision,
			     (const char *const *)o->nodes_affected.v, o->nodes_affected.n,
			     wait_ms) == 0)
		goto out;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
out:
	free(ch);
	free(chp);
}

static int status_of(int rc)
{
	switch (rc) {
	case -ENOENT:
		return ST(NOT_FOUND);
	case -EEXIST:
		return ST(ALREADY_EXISTS);
	case -ENOMEM:
	case -EIO:
		return ST(INTERNAL);
	case -EBUSY:
		return ST(UNAVAILABLE);
	case -EPERM:
		return ST(PERMISSION_DENIED);
	}
	return ST(INVALID_ARGUMENT);
}

/*
 * The end every change takes: unless planning it failed already (rc), runs the plan as the
 * caller (the certificate's role and name are the revision's author) and answers the call with
 * what changed, or why not. Returns the outcome (0 or a negative errno; err says why).
 */
static int change_answer(struct ctl *c, struct bh_rpc_call *call, struct plan *p, int rc,
			 struct bh_error *err, const char *verb, bool dry_run, bool diff,
			 uint32_t wait_ms)
{
	struct outcome o = {0};
	char author[128];

	author_of(call, author, sizeof(author));
	if (!rc)
		rc = plan_run(c, p, dry_run, diff, author, verb, &o, err);
	if (rc)
		bh_rpc_reply(call, status_of(rc), NULL, "%s",
			     err->msg[0] ? err->msg : bh_strerror(rc));
	else
		reply_outcome(c, call, p, &o, dry_run, wait_ms);
	outcome_free(&o);
	return rc;
}

/* Parses every file into docs; the first error stops and is returned. */
static int parse_files(Bulkhead__SourceFile **files, size_t n, struct ctl_docset *all,
		       struct bh_error *err)
{
	for (size_t i = 0; i < n; i++) {
		struct ctl_docset ds = {0};
		struct ctl_doc *nv;
		int rc;

		if (!files[i]->name[0])
			return bh_error_set(err, -EINVAL, "a file without a name");
		rc = ctl_yaml_load(files[i]->name, (const char *)files[i]->text.data,
				   files[i]->text.len, &ds, err);
		if (rc)
			return rc;
		nv = realloc(all->v, (all->n + ds.n) * sizeof(*nv));
		if (!nv) {
			ctl_docset_free(&ds);
			return bh_error_set(err, -ENOMEM, "out of memory");
		}
		all->v = nv;
		if (ds.n)
			memcpy(all->v + all->n, ds.v, ds.n * sizeof(*ds.v));
		all->n += ds.n;
		free(ds.v);
	}
	return 0;
}

static void h_apply(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__ApplyRequest *r = (const void *)req;
	struct ctl *c = arg;
	struct ctl_docset ds = {0};
	struct plan p = {0};
	struct bh_error err = {0};
	int rc;

	if (!r->n_files) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "no files to apply");
		return;
	}
	rc = parse_files(r->files, r->n_files, &ds, &err);
	for (size_t i = 0; i < ds.n && !rc; i++)
		rc = plan_put(c, &p, &ds.v[i], "apply", &err);
	change_answer(c, call, &p, rc, &err, "apply", r->dry_run, r->diff, r->wait_ms);
	plan_free(&p);
	ctl_docset_free(&ds);
}

static void h_delete(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__DeleteRequest *r = (const void *)req;
	struct ctl *c = arg;
	struct ctl_docset ds = {0};
	struct plan p = {0};
	struct bh_error err = {0};
	int rc;

	if (!r->n_files && !r->n_objects) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "nothing to delete");
		return;
	}
	rc = parse_files(r->files, r->n_files, &ds, &err);
	for (size_t i = 0; i < ds.n && !rc; i++)
		rc = plan_del(c, &p, ds.v[i].kind, ctl_doc_name(&ds.v[i]), &err);
	for (size_t i = 0; i < r->n_objects && !rc; i++) {
		int k = ctl_kind_parse(r->objects[i]->kind);

		if (k < 0)
			rc = bh_error_set(&err, -EINVAL,
					  "unknown kind \"%.40s\": want Policy, Workload or Node",
					  r->objects[i]->kind);
		else
			rc = plan_del(c, &p, (enum ctl_kind)k, r->objects[i]->name, &err);
	}
	change_answer(c, call, &p, rc, &err, "delete", r->dry_run, r->diff, r->wait_ms);
	plan_free(&p);
	ctl_docset_free(&ds);
}

struct rollback_ctx {
	struct ctl *c;
	struct plan *p;
	struct bh_error *err;
};

static int rollback_put(const char *kind, const char *name, const char *body, void *arg)
{
	struct rollback_ctx *r = arg;
	struct ctl_doc d;
	int rc = parse_stored(kind, name, body, &d, r->err);

	if (rc)
		return rc;
	rc = plan_put(r->c, r->p, &d, "rollback", r->err);
	ctl_doc_free(&d);
	return rc;
}

static int rollback_del(const struct ctl_doc *d, void *arg)
{
	struct rollback_ctx *r = arg;

	if (plan_find(r->p, d->kind, ctl_doc_name(d)) >= 0)
		return 0;
	return plan_del(r->c, r->p, d->kind, ctl_doc_name(d), r->err);
}

static void h_rollback(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__RollbackRequest *r = (const void *)req;
	struct ctl *c = arg;
	struct plan p = {0};
	struct bh_error err = {0};
	struct rollback_ctx rc_ = {.c = c, .p = &p, .err = &err};
	char verb[64];
	struct ctl_revision rev;
	int rc;

	if (!r->revision || ctl_store_revision_get(c->store, r->revision, &rev)) {
		bh_rpc_reply(call, ST(NOT_FOUND), NULL, "no revision %llu (the newest is %llu)",
			     (unsigned long long)r->revision, (unsigned long long)c->revision);
		return;
	}
	/* what revision R had, put back; what it did not have, deleted */
	rc = ctl_store_objects_at(c->store, r->revision, NULL, rollback_put, &rc_);
	for (int k = 0; k < 3 && !rc; k++)
		rc = ctl_compiler_each(c->comp, (enum ctl_kind)k, rollback_del, &rc_);
	snprintf(verb, sizeof(verb), "rollback to %llu", (unsigned long long)r->revision);
	change_answer(c, call, &p, rc, &err, verb, r->dry_run, r->diff, r->wait_ms);
	plan_free(&p);
}

/* ---- what agents report ------------------------------------------------------------------------ */

static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || *s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* One reported endpoint as a Workload document of node (labels kept from the object if any). */
static int reported_doc(struct ctl *c, const char *node, const Bulkhead__ReportedEndpoint *e,
			struct ctl_doc *d, struct bh_error *err)
{
	const struct ctl_doc *cur = ctl_compiler_get(c->comp, CTL_KIND_WORKLOAD, e->name);
	struct ctl_workload *w = &d->workload;
	int rc;

	memset(d, 0, sizeof(*d));
	d->kind = CTL_KIND_WORKLOAD;
	if (!ctl_name_valid(e->name))
		return bh_error_set(err, -EINVAL, "endpoint \"%.70s\": not a valid workload name",
				    e->name);
	if (cur && strcmp(cur->workload.node, node))
		return bh_error_set(err, -EPERM, "workload %s belongs to node %s, not %s", e->name,
				    cur->workload.node, node);
	if (!ifname_ok(e->ifname))
		return bh_error_set(err, -EINVAL, "endpoint %s: interface \"%.40s\" is not a "
						  "valid interface name",
				    e->name, e->ifname);
	if (!e->n_addresses || e->n_addresses > CTL_ADDRS_MAX)
		return bh_error_set(err, -EINVAL, "endpoint %s: %zu addresses (1 to %d)", e->name,
				    e->n_addresses, CTL_ADDRS_MAX);
	w->name = strdup(e->name);
	w->node = strdup(node);
	w->ifname = strdup(e->ifname);
	w->attach_host = e->attach == BULKHEAD__ATTACH__ATTACH_HOST;
	w->addrs = calloc(e->n_addresses, sizeof(*w->addrs));
	if (!w->name || !w->node || !w->ifname || !w->addrs)
		return bh_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < e->n_addresses; i++) {
		struct ctl_prefix *p = &w->addrs[w->n_addrs];

		if (ctl_prefix_parse(e->addresses[i], p, err))
			return -EINVAL;
		if (p->len != (p->family == 4 ? 32 : 128))
			return bh_error_set(err, -EINVAL, "endpoint %s: %s is a prefix, not an "
							  "address",
					    e->name, e->addresses[i]);
		w->n_addrs++;
	}
	if (cur)
		rc = ctl_labels_copy(&w->labels, &cur->workload.labels);
	else
		rc = ctl_labels_parse(e->labels, &w->labels, err);
	return rc ? (err->msg[0] ? rc : bh_error_set(err, rc, "out of memory")) : 0;
}

struct node_wls {
	const char *node;
	struct strv names;
};

static int node_wl_cb(const struct ctl_doc *d, void *arg)
{
	struct node_wls *n = arg;

	if (strcmp(d->workload.node, n->node))
		return 0;
	return strv_add(&n->names, "%s", d->workload.name);
}

/*
 * Agent.ReportEndpoints: the endpoints an agent protects become Workload objects of its node
 * (the node is the caller's certificate, never a field), as one revision authored by the agent.
 */
static void h_report_endpoints(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__EndpointReport *r = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl *c = arg;
	struct plan p = {0};
	struct bh_error err = {0};
	struct node_wls mine = {.node = peer->name};
	int rc = 0;

	if (peer->role != BH_ROLE_AGENT) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL,
			     "not authorised: only an agent reports its node's endpoints");
		return;
	}
	if (r->n_endpoints > 4096) {
		bh_rpc_reply(call, ST(RESOURCE_EXHAUSTED), NULL,
			     "%zu endpoints in one report: at most 4096", r->n_endpoints);
		return;
	}
	for (size_t i = 0; i < r->n_endpoints && !rc; i++) {
		struct ctl_doc d;

		rc = reported_doc(c, peer->name, r->endpoints[i], &d, &err);
		if (!rc)
			rc = plan_put(c, &p, &d, "report", &err);
		ctl_doc_free(&d);
	}
	if (!rc && r->complete) {
		rc = ctl_compiler_each(c->comp, CTL_KIND_WORKLOAD, node_wl_cb, &mine);
		for (size_t i = 0; i < mine.names.n && !rc; i++)
			if (plan_find(&p, CTL_KIND_WORKLOAD, mine.names.v[i]) < 0)
				rc = plan_del(c, &p, CTL_KIND_WORKLOAD, mine.names.v[i], &err);
	}
	if (change_answer(c, call, &p, rc, &err, "report", false, false, 0))
		bh_log(LOG_NOTICE, "endpoint report from %s refused: %s", peer->name,
		       err.msg[0] ? err.msg : bh_strerror(rc));
	plan_free(&p);
	strv_free(&mine.names);
}

/* ---- reading -------------------------------------------------------------------------------- */

/* A rule's hits, from the flow store, by rule id ("%u"). */
struct hit {
	uint64_t packets, flows;
	int64_t last_ms;
};

struct objlist {
	Bulkhead__Object *v;
	size_t n, cap;
	struct strv owned;
	struct bh_smap *hits; /* current revision only: rule id -> struct hit */
	uint32_t hits_window_s;
	void **mem; /* the rule_hits arrays given to objects */
	size_t n_mem;
	const struct ctl_selector *sel;
	const char *name;
	struct ctl *c;
	int rc;
};

/* The policy's rules with what each decided: o->rule_hits. */
static int obj_hits(struct objlist *l, Bulkhead__Object *o, const struct ctl_policy *pp)
{
	static const char *const dirs[2] = {"ingress", "egress"}, *const acts[2] = {"allow", "deny"};
	size_t n = 0, k = 0;
	Bulkhead__RuleHits *v, **pv;
	void **mem;
	char *text;

	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 2; a++)
			n += pp->n_rules[d][a];
	mem = realloc(l->mem, (l->n_mem + 3) * sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	l->mem = mem;
	v = calloc(n + 1, sizeof(*v));
	pv = calloc(n + 1, sizeof(*pv));
	text = calloc(n + 1, 32);
	mem[l->n_mem++] = v;
	mem[l->n_mem++] = pv;
	mem[l->n_mem++] = text;
	if (!v || !pv || !text)
		return -ENOMEM;
	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 2; a++)
			for (size_t q = 0; q < pp->n_rules[d][a]; q++, k++) {
				char key[16];
				const struct hit *h;

				bulkhead__rule_hits__init(&v[k]);
				snprintf(text + 32 * k, 32, "%s %s rule %zu", dirs[d], acts[a], q);
				v[k].rule = text + 32 * k;
				v[k].rule_id = ctl_compiler_policy_rule_id(l->c->comp, pp->name,
									   dirs[d], acts[a], q);
				snprintf(key, sizeof(key), "%u", v[k].rule_id);
				if (v[k].rule_id && (h = bh_smap_get(l->hits, key))) {
					v[k].packets = h->packets;
					v[k].flows = h->flows;
					v[k].last_hit_ms = h->last_ms;
				}
				pv[k] = &v[k];
			}
	o->rule_hits = pv;
	o->n_rule_hits = n;
	o->hits_window_s = l->hits_window_s;
	return 0;
}

static int obj_add(struct objlist *l, const struct ctl_doc *d)
{
	Bulkhead__Object *o;
	char *json, *yaml, *labels = NULL, *summary = NULL;
	const struct ctl_labels *lab = NULL;

	if (l->name && l->name[0] && strcmp(ctl_doc_name(d), l->name))
		return 0;
	if (d->kind == CTL_KIND_WORKLOAD)
		lab = &d->workload.labels;
	else if (d->kind == CTL_KIND_NODE)
		lab = &d->node.labels;
	if (l->sel && (!lab || !ctl_selector_matches(l->sel, lab)))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		Bulkhead__Object *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	o = &l->v[l->n];
	bulkhead__object__init(o);
	json = ctl_doc_to_json(d);
	yaml = ctl_doc_to_yaml(d);
	if (lab)
		labels = ctl_labels_format(lab);
	if (d->kind == CTL_KIND_POLICY) {
		char *sel = ctl_selector_format(&d->policy.sel);
		const struct ctl_policy *pp = &d->policy;

		if (sel && asprintf(&summary, "selector {%s}; ingress %zu allow %zu deny%s; egress %zu allow %zu deny%s",
				    sel, pp->n_rules[0][0], pp->n_rules[0][1],
				    pp->isolates[0] ? " (isolates)" : "", pp->n_rules[1][0],
				    pp->n_rules[1][1], pp->isolates[1] ? " (isolates)" : "") < 0)
			summary = NULL;
		free(sel);
	} else if (d->kind == CTL_KIND_WORKLOAD) {
		size_t at = 0, cap = 64 * (d->workload.n_addrs + 1);

		summary = calloc(1, cap);
		for (size_t i = 0; summary && i < d->workload.n_addrs; i++) {
			char p[64];
			struct ctl_prefix a = d->workload.addrs[i];

			ctl_prefix_format(&a, p, sizeof(p));
			/* a full-length prefix reads as a plain address */
			if (strchr(p, '/'))
				*strchr(p, '/') = '\0';
			at += (size_t)snprintf(summary + at, cap - at, "%s%s", at ? "," : "", p);
		}
		o->node = d->workload.node;
		o->identity = ctl_compiler_workload_identity(l->c->comp, d->workload.name);
	}
	if (!json || !yaml || (lab && !labels) ||
	    (d->kind != CTL_KIND_NODE && !summary) || strv_add(&l->owned, "%s", json) ||
	    strv_add(&l->owned, "%s", yaml) ||
	    (labels && strv_add(&l->owned, "%s", labels)) ||
	    (summary && strv_add(&l->owned, "%s", summary))) {
		free(json);
		free(yaml);
		free(labels);
		free(summary);
		return -ENOMEM;
	}
	{
		size_t k = l->owned.n - 2 - (labels ? 1 : 0) - (summary ? 1 : 0);

		o->json = l->owned.v[k++];
		o->yaml = l->owned.v[k++];
		if (labels)
			o->labels = l->owned.v[k++];
		if (summary)
			o->summary = l->owned.v[k++];
	}
	if (d->kind == CTL_KIND_POLICY && l->hits && obj_hits(l, o, &d->policy))
		return -ENOMEM;
	o->kind = (char *)ctl_kind_name(d->kind);
	o->name = (char *)ctl_doc_name(d); /* lives in the compiler, or in the docset below */
	free(json);
	free(yaml);
	free(labels);
	free(summary);
	l->n++;
	return 0;
}

static int hit_cb(uint32_t rule, uint64_t packets, uint64_t flows, int64_t last_ms, void *ctx)
{
	struct bh_smap *m = ctx;
	struct hit *h = malloc(sizeof(*h));
	char key[16];

	if (!h)
		return -ENOMEM;
	*h = (struct hit){packets, flows, last_ms};
	snprintf(key, sizeof(key), "%u", rule);
	if (bh_smap_put(m, key, h)) {
		free(h);
		return -ENOMEM;
	}
	return 0;
}

static int obj_cb(const struct ctl_doc *d, void *arg)
{
	return obj_add(arg, d);
}

struct at_rev {
	struct objlist *l;
	struct ctl_docset keep;
	struct bh_error *err;
};

static int obj_at_cb(const char *kind, const char *name, const char *body, void *arg)
{
	struct at_rev *a = arg;
	struct ctl_doc d, *nv;
	int rc = parse_stored(kind, name, body, &d, a->err);

	if (rc)
		return rc;
	nv = realloc(a->keep.v, (a->keep.n + 1) * sizeof(*nv));
	if (!nv) {
		ctl_doc_free(&d);
		return -ENOMEM;
	}
	a->keep.v = nv;
	a->keep.v[a->keep.n++] = d;
	return 0;
}

static void h_get(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__GetRequest *r = (const void *)req;
	struct ctl *c = arg;
	struct objlist l = {.name = r->name, .c = c};
	struct bh_smap hits = {0};
	struct ctl_selector sel = {0};
	struct at_rev at = {.l = &l};
	struct bh_error err = {0};
	Bulkhead__ObjectList resp = BULKHEAD__OBJECT_LIST__INIT;
	Bulkhead__Object **ptrs = NULL;
	int k = ctl_kind_parse(r->kind), rc = 0;

	at.err = &err;
	if (k < 0) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL,
			     "unknown kind \"%.40s\": want policies, workloads or nodes", r->kind);
		return;
	}
	if (r->selector[0]) {
		if (ctl_selector_parse(r->selector, &sel, &err)) {
			bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "-l: %s", err.msg);
			return;
		}
		l.sel = &sel;
	}
	if (r->revision && r->revision != c->revision) {
		rc = ctl_store_objects_at(c->store, r->revision, ctl_kind_name((enum ctl_kind)k),
					  obj_at_cb, &at);
		for (size_t i = 0; i < at.keep.n && !rc; i++)
			rc = obj_add(&l, &at.keep.v[i]);
	} else {
		if (k == CTL_KIND_POLICY) {
			/* what each rule decided over the flow retention; without flows, nothing */
			l.hits = &hits;
			l.hits_window_s = ctl_flows_retention(c);
			if (ctl_flows_rule_hits(c, time(NULL) - (time_t)l.hits_window_s, hit_cb,
						&hits, &err)) {
				/* no hits rather than wrong ones: every rule would look unused */
				bh_log(LOG_WARNING, "rule hits unavailable: %s", err.msg);
				l.hits = NULL;
			}
			err.code = 0;
			err.msg[0] = '\0';
		}
		rc = ctl_compiler_each(c->comp, (enum ctl_kind)k, obj_cb, &l);
	}
	if (!rc && r->name[0] && !l.n)
		rc = bh_error_set(&err, -ENOENT, "%s %s does not exist%s", ctl_kind_name(k),
				  r->name, r->revision ? " at that revision" : "");
	if (!rc && !(ptrs = calloc(l.n ? l.n : 1, sizeof(*ptrs))))
		rc = -ENOMEM;
	if (rc) {
		bh_rpc_reply(call, status_of(rc), NULL, "%s",
			     err.msg[0] ? err.msg
					: (rc == -ENOENT ? "no such revision" : bh_strerror(rc)));
		goto out;
	}
	for (size_t i = 0; i < l.n; i++)
		ptrs[i] = &l.v[i];
	resp.revision = r->revision ? r->revision : c->revision;
	resp.n_objects = l.n;
	resp.objects = ptrs;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
out:
	free(ptrs);
	free(l.v);
	strv_free(&l.owned);
	for (size_t i = 0; i < l.n_mem; i++)
		free(l.mem[i]);
	free(l.mem);
	BH_SMAP_EACH(&hits, e)
	free(e->val);
	bh_smap_free(&hits);
	ctl_docset_free(&at.keep);
	ctl_selector_free(&sel);
}

struct idlist {
	Bulkhead__Identity *v;
	size_t n, cap;
};

static int id_cb(uint32_t id, const char *labels, size_t n_wl, time_t unused, void *arg)
{
	struct idlist *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		Bulkhead__Identity *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	bulkhead__identity__init(&l->v[l->n]);
	l->v[l->n].id = id;
	l->v[l->n].labels = (char *)labels;
	l->v[l->n].workloads = (uint32_t)n_wl;
	l->v[l->n].unused_since = unused;
	l->n++;
	return 0;
}

static void h_list_identities(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	struct ctl *c = arg;
	struct idlist l = {0};
	Bulkhead__IdentityList resp = BULKHEAD__IDENTITY_LIST__INIT;
	Bulkhead__Identity **ptrs = NULL;
	int rc;

	(void)req;
	rc = ctl_compiler_each_identity(c->comp, id_cb, &l);
	if (!rc && !(ptrs = calloc(l.n ? l.n : 1, sizeof(*ptrs))))
		rc = -ENOMEM;
	if (rc) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "%s", bh_strerror(rc));
	} else {
		for (size_t i = 0; i < l.n; i++)
			ptrs[i] = &l.v[i];
		resp.n_identities = l.n;
		resp.identities = ptrs;
		bh_rpc_reply(call, ST(OK), &resp.base, NULL);
	}
	free(ptrs);
	free(l.v);
}

struct revlist {
	Bulkhead__Revision *v;
	struct strv owned;
	size_t n, cap;
};

static int rev_cb(const struct ctl_revision *r, void *arg)
{
	struct revlist *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		Bulkhead__Revision *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	if (strv_add(&l->owned, "%s", r->author) || strv_add(&l->owned, "%s", r->summary))
		return -ENOMEM;
	bulkhead__revision__init(&l->v[l->n]);
	l->v[l->n].id = r->id;
	l->v[l->n].created = r->created;
	l->v[l->n].author = l->owned.v[l->owned.n - 2];
	l->v[l->n].summary = l->owned.v[l->owned.n - 1];
	l->v[l->n].changes = r->n_changes;
	l->n++;
	return 0;
}

static void h_list_revisions(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__ListRequest *r = (const void *)req;
	struct ctl *c = arg;
	struct revlist l = {0};
	Bulkhead__RevisionList resp = BULKHEAD__REVISION_LIST__INIT;
	Bulkhead__Revision **ptrs = NULL;
	int rc;

	rc = ctl_store_revision_list(c->store, r->limit ? r->limit : 20, rev_cb, &l);
	if (!rc && !(ptrs = calloc(l.n ? l.n : 1, sizeof(*ptrs))))
		rc = -ENOMEM;
	if (rc) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "listing revisions: %s", bh_strerror(rc));
	} else {
		for (size_t i = 0; i < l.n; i++)
			ptrs[i] = &l.v[i];
		resp.current = c->revision;
		resp.n_revisions = l.n;
		resp.revisions = ptrs;
		bh_rpc_reply(call, ST(OK), &resp.base, NULL);
	}
	free(ptrs);
	free(l.v);
	strv_free(&l.owned);
}

struct pol_match {
	struct strv *out;
	const struct ctl_labels *labels;
	bool observe_only;
};

static int pol_match_cb(const struct ctl_doc *d, void *arg)
{
	struct pol_match *m = arg;

	if (!ctl_selector_matches(&d->policy.sel, m->labels))
		return 0;
	return strv_add(m->out, "%s (%s)", d->policy.name,
			d->policy.mode == CTL_OBSERVE ? "observe" : "enforce");
}

static void h_describe(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__NodeRef *r = (const void *)req;
	struct ctl *c = arg;
	Bulkhead__WorkloadDescription resp = BULKHEAD__WORKLOAD_DESCRIPTION__INIT;
	const struct ctl_doc *d = ctl_compiler_get(c->comp, CTL_KIND_WORKLOAD, r->name);
	const struct ctl_node_out *o;
	const struct ctl_cep *ep = NULL;
	struct strv pols = {0}, in = {0}, eg = {0}, addrs = {0};
	struct ctl_labels labels = {0};
	struct bh_error err = {0};
	char *ltext = NULL, din[200], deg[200], buf[600];
	const char *lt;
	int rc = 0;

	if (!d) {
		bh_rpc_reply(call, ST(NOT_FOUND), NULL, "workload %.64s does not exist", r->name);
		return;
	}
	o = ctl_compiler_node(c->comp, d->workload.node);
	for (size_t i = 0; o && i < o->n_eps; i++)
		if (!strcmp(o->eps[i].name, r->name))
			ep = &o->eps[i];
	resp.name = d->workload.name;
	resp.node = d->workload.node;
	resp.interface = d->workload.ifname ? d->workload.ifname : "";
	resp.identity = ep ? ep->identity : 0;
	lt = ep ? ctl_compiler_identity_labels(c->comp, ep->identity) : NULL;
	ltext = strdup(lt ? lt : "");
	resp.labels = ltext;
	if (ltext && ctl_labels_parse(ltext, &labels, &err))
		rc = -EINVAL;
	resp.mode = ep && ep->observe ? "observe" : "enforce";
	for (size_t i = 0; !rc && i < d->workload.n_addrs; i++) {
		char p[64];

		ctl_prefix_format(&d->workload.addrs[i], p, sizeof(p));
		rc = strv_add(&addrs, "%s", p);
	}
	if (!rc) {
		struct pol_match m = {.out = &pols, .labels = &labels};

		rc = ctl_compiler_each(c->comp, CTL_KIND_POLICY, pol_match_cb, &m);
	}
	for (size_t i = 0; !rc && ep && i < o->n_rules; i++) {
		if (o->rules[i].local != ep->identity)
			continue;
		rule_line(c->comp, &o->rules[i], buf, sizeof(buf));
		rc = strv_add(o->rules[i].dir ? &eg : &in, "%s", buf);
	}
	if (ep) {
		const char *desc;

		desc = ctl_compiler_rule_describe(c->comp, ep->def_rule[0], buf, sizeof(buf), NULL);
		snprintf(din, sizeof(din), "%s (%s)",
			 ep->def_verdict[0] == CTL_VERDICT_DENY ? "deny" : "allow",
			 desc ? desc : "?");
		desc = ctl_compiler_rule_describe(c->comp, ep->def_rule[1], buf, sizeof(buf), NULL);
		snprintf(deg, sizeof(deg), "%s (%s)",
			 ep->def_verdict[1] == CTL_VERDICT_DENY ? "deny" : "allow",
			 desc ? desc : "?");
	} else {
		snprintf(din, sizeof(din), "not compiled");
		snprintf(deg, sizeof(deg), "not compiled");
	}
	resp.ingress_default = din;
	resp.egress_default = deg;
	resp.n_policies = pols.n;
	resp.policies = pols.v;
	resp.n_ingress = in.n;
	resp.ingress = in.v;
	resp.n_egress = eg.n;
	resp.egress = eg.v;
	resp.n_addresses = addrs.n;
	resp.addresses = addrs.v;
	if (rc || !ltext)
		bh_rpc_reply(call, ST(INTERNAL), NULL, "describing %s: %s", r->name,
			     bh_strerror(rc ? rc : -ENOMEM));
	else
		bh_rpc_reply(call, ST(OK), &resp.base, NULL);
	free(ltext);
	ctl_labels_free(&labels);
	strv_free(&pols);
	strv_free(&in);
	strv_free(&eg);
	strv_free(&addrs);
}

static void h_explain(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__ExplainRequest *r = (const void *)req;
	struct ctl *c = arg;
	Bulkhead__ExplainResponse resp = BULKHEAD__EXPLAIN_RESPONSE__INIT;
	struct ctl_prefix fa, ta;
	struct bh_error err = {0};
	const char *from = r->from, *to = r->to;
	bool from_addr = false, to_addr = false, observed = false;
	char why[4096];
	int v;

	if (r->protocol > 255 || r->port > 65535) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "protocol 0-255 and port 0-65535");
		return;
	}
	if (!ctl_compiler_get(c->comp, CTL_KIND_WORKLOAD, from)) {
		if (ctl_prefix_parse(from, &fa, &err)) {
			bh_rpc_reply(call, ST(NOT_FOUND), NULL,
				     "--from %.64s: neither a workload nor an address", from);
			return;
		}
		from_addr = true;
	}
	if (!ctl_compiler_get(c->comp, CTL_KIND_WORKLOAD, to)) {
		if (ctl_prefix_parse(to, &ta, &err)) {
			bh_rpc_reply(call, ST(NOT_FOUND), NULL,
				     "--to %.64s: neither a workload nor an address", to);
			return;
		}
		to_addr = true;
	}
	v = ctl_compiler_explain(c->comp, from_addr ? NULL : from, from_addr ? &fa : NULL,
				 to_addr ? NULL : to, to_addr ? &ta : NULL, (uint8_t)r->protocol,
				 (uint16_t)r->port, &observed, why, sizeof(why));
	if (v < 0) {
		bh_rpc_reply(call, status_of(v), NULL, "%s", why);
		return;
	}
	resp.verdict = v == CTL_VERDICT_DENY ? "deny" : observed ? "observe" : "allow";
	resp.explanation = why;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
}

/* ---- a node's rule set on the wire ------------------------------------------------------------ */

int ctl_node_policy_build(const struct ctl_node_out *o, uint64_t revision,
			  struct ctl_node_policy *out)
{
	Bulkhead__NodePolicy *np = &out->np;
	Bulkhead__Endpoint *ep = calloc(o->n_eps + 1, sizeof(*ep));
	Bulkhead__DirectionDefault *dd = calloc(2 * o->n_eps + 1, sizeof(*dd));
	Bulkhead__IpcacheEntry *ip = calloc(o->n_ipc + 1, sizeof(*ip));
	Bulkhead__Rule *ru = calloc(o->n_rules + 1, sizeof(*ru));
	Bulkhead__Endpoint **epp = calloc(o->n_eps + 1, sizeof(*epp));
	Bulkhead__IpcacheEntry **ipp = calloc(o->n_ipc + 1, sizeof(*ipp));
	Bulkhead__Rule **rup = calloc(o->n_rules + 1, sizeof(*rup));

	bulkhead__node_policy__init(np);
	out->mem[0] = ep;
	out->mem[1] = dd;
	out->mem[2] = ip;
	out->mem[3] = ru;
	out->mem[4] = epp;
	out->mem[5] = ipp;
	out->mem[6] = rup;
	if (!ep || !dd || !ip || !ru || !epp || !ipp || !rup) {
		ctl_node_policy_release(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < o->n_eps; i++) {
		const struct ctl_cep *e = &o->eps[i];

		bulkhead__endpoint__init(&ep[i]);
		ep[i].name = (char *)e->name;
		ep[i].ifname = (char *)(e->ifname ? e->ifname : "");
		ep[i].identity = e->identity;
		ep[i].mode = e->observe ? BULKHEAD__MODE__MODE_OBSERVE : BULKHEAD__MODE__MODE_ENFORCE;
		ep[i].attach = e->attach_host ? BULKHEAD__ATTACH__ATTACH_HOST
					      : BULKHEAD__ATTACH__ATTACH_VETH;
		for (int d = 0; d < 2; d++) {
			Bulkhead__DirectionDefault *x = &dd[2 * i + (size_t)d];

			bulkhead__direction_default__init(x);
			x->verdict = e->def_verdict[d] == CTL_VERDICT_DENY
					     ? BULKHEAD__VERDICT__VERDICT_DENY
					     : BULKHEAD__VERDICT__VERDICT_ALLOW;
			x->rule_id = e->def_rule[d];
		}
		ep[i].ingress = &dd[2 * i];
		ep[i].egress = &dd[2 * i + 1];
		epp[i] = &ep[i];
	}
	for (size_t i = 0; i < o->n_ipc; i++) {
		bulkhead__ipcache_entry__init(&ip[i]);
		ip[i].prefix.data = (uint8_t *)o->ipc[i].prefix.addr;
		ip[i].prefix.len = o->ipc[i].prefix.family == 4 ? 4 : 16;
		ip[i].prefix_len = o->ipc[i].prefix.len;
		ip[i].identity = o->ipc[i].identity;
		ipp[i] = &ip[i];
	}
	for (size_t i = 0; i < o->n_rules; i++) {
		const struct ctl_crule *r = &o->rules[i];

		bulkhead__rule__init(&ru[i]);
		ru[i].local_identity = r->local;
		ru[i].remote_identity = r->remote;
		ru[i].direction = r->dir ? BULKHEAD__DIRECTION__DIRECTION_EGRESS
					 : BULKHEAD__DIRECTION__DIRECTION_INGRESS;
		ru[i].protocol = r->proto;
		ru[i].port = r->port;
		ru[i].end_port = r->end_port;
		ru[i].verdict = r->verdict == CTL_VERDICT_DENY ? BULKHEAD__VERDICT__VERDICT_DENY
							       : BULKHEAD__VERDICT__VERDICT_ALLOW;
		ru[i].rule_id = r->rule_id;
		rup[i] = &ru[i];
	}
	np->revision = revision;
	np->n_endpoints = o->n_eps;
	np->endpoints = epp;
	np->n_ipcache = o->n_ipc;
	np->ipcache = ipp;
	np->n_rules = o->n_rules;
	np->rules = rup;
	return 0;
}

void ctl_node_policy_release(struct ctl_node_policy *p)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(p->mem); i++) {
		free(p->mem[i]);
		p->mem[i] = NULL;
	}
	bulkhead__node_policy__init(&p->np);
}

int ctl_node_policy_delta_build(const struct ctl_node_delta *d, uint64_t from, uint64_t to,
				struct ctl_node_policy_delta *out)
{
	const struct ctl_node_out add = {.eps = d->eps_add, .n_eps = d->n_eps_add,
					 .ipc = d->ipc_add, .n_ipc = d->n_ipc_add,
					 .rules = d->rules_add, .n_rules = d->n_rules_add};
	const struct ctl_node_out del = {.eps = d->eps_del, .n_eps = d->n_eps_del,
					 .ipc = d->ipc_del, .n_ipc = d->n_ipc_del,
					 .rules = d->rules_del, .n_rules = d->n_rules_del};
	Bulkhead__NodePolicyDelta *m = &out->msg;
	int rc;

	memset(out, 0, sizeof(*out));
	bulkhead__node_policy_delta__init(m);
	/* the added and the removed entries, each as a rule set's wire form */
	if ((rc = ctl_node_policy_build(&add, to, &out->add)) ||
	    (rc = ctl_node_policy_build(&del, from, &out->del))) {
		ctl_node_policy_delta_release(out);
		return rc;
	}
	m->from_revision = from;
	m->to_revision = to;
	m->n_endpoints_added = out->add.np.n_endpoints;
	m->endpoints_added = out->add.np.endpoints;
	m->n_ipcache_added = out->add.np.n_ipcache;
	m->ipcache_added = out->add.np.ipcache;
	m->n_rules_added = out->add.np.n_rules;
	m->rules_added = out->add.np.rules;
	m->n_endpoints_removed = out->del.np.n_endpoints;
	m->endpoints_removed = out->del.np.endpoints;
	m->n_ipcache_removed = out->del.np.n_ipcache;
	m->ipcache_removed = out->del.np.ipcache;
	m->n_rules_removed = out->del.np.n_rules;
	m->rules_removed = out->del.np.rules;
	return 0;
}

void ctl_node_policy_delta_release(struct ctl_node_policy_delta *p)
{
	ctl_node_policy_release(&p->add);
	ctl_node_policy_release(&p->del);
	bulkhead__node_policy_delta__init(&p->msg);
}

static void h_get_node_policy(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__NodePolicyRequest *r = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl *c = arg;
	const struct ctl_node_out *o;
	struct ctl_node_policy np;

	if (peer->role == BH_ROLE_AGENT && strcmp(r->node, peer->name) != 0) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL,
			     "not authorised: agent %s may read only its own node's rule set",
			     peer->name);
		return;
	}
	o = ctl_compiler_node(c->comp, r->node);
	if (!o) {
		bh_rpc_reply(call, ST(NOT_FOUND), NULL, "no rule set for node %.64s: no workload "
							"or Node object names it",
			     r->node);
		return;
	}
	if (ctl_node_policy_build(o, c->revision, &np)) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		return;
	}
	bh_rpc_reply(call, ST(OK), &np.np.base, NULL);
	ctl_node_policy_release(&np);
}

/* ---- a node's rule set at an earlier revision, and the delta from it ------------------------------ */

struct scratch_load {
	struct ctl_compiler *comp;
	struct bh_error *err;
};

static int scratch_object(const char *kind, const char *name, const char *body, void *arg)
{
	struct scratch_load *l = arg;
	struct ctl_doc d, old;
	bool had;
	int rc = parse_stored(kind, name, body, &d, l->err);

	if (rc)
		return rc;
	rc = ctl_compiler_put(l->comp, &d, &old, &had, l->err);
	ctl_doc_free(&d);
	if (had)
		ctl_doc_free(&old);
	return rc;
}

static int scratch_node(const struct ctl_node *n, void *arg)
{
	struct scratch_load *l = arg;

	if (!n->revoked)
		ctl_compiler_node_enrolled(l->comp, n->name, n->labels, !strcmp(n->mode, "observe"),
					   l->err);
	return 0;
}

int ctl_policy_node_at(struct ctl *c, const char *node, uint64_t rev, struct ctl_node_out *out,
		       struct bh_error *err)
{
	struct scratch_load l = {.err = err};
	const struct ctl_node_out *o;
	int rc;

	memset(out, 0, sizeof(*out));
	if (rev == c->revision || !rev) {
		o = ctl_compiler_node(c->comp, node);
		return o ? ctl_node_out_copy(out, o) : 0;
	}
	if (rev > c->revision)
		return bh_error_set(err, -ENOENT, "revision %llu is newer than the newest (%llu)",
				    (unsigned long long)rev, (unsigned long long)c->revision);
	/* compile that revision's objects again, numbered as now */
	if ((rc = ctl_compiler_create(&l.comp, IDENTITY_GRACE_S)))
		return bh_error_set(err, rc, "out of memory");
	if ((rc = ctl_compiler_numbering_copy(l.comp, c->comp))) {
		bh_error_set(err, rc, "copying the numbering: %s", bh_strerror(rc));
		goto out;
	}
	if ((rc = ctl_store_node_list(c->store, scratch_node, &l)) ||
	    (rc = ctl_store_objects_at(c->store, rev, NULL, scratch_object, &l))) {
		if (!err->msg[0])
			bh_error_set(err, rc, "revision %llu: %s", (unsigned long long)rev,
				     rc == -ENOENT ? "no such revision" : bh_strerror(rc));
		goto out;
	}
	if ((rc = ctl_compiler_recompile_all(l.comp, time(NULL), NULL, NULL, err)))
		goto out;
	o = ctl_compiler_node(l.comp, node);
	rc = o ? ctl_node_out_copy(out, o) : 0;
out:
	ctl_compiler_destroy(l.comp);
	return rc;
}

static void h_get_node_policy_delta(struct bh_rpc_call *call, const ProtobufCMessage *req,
				    void *arg)
{
	const Bulkhead__NodePolicyRequest *r = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl *c = arg;
	struct ctl_node_policy_delta wire = {0};
	struct ctl_node_out before, after = {0};
	struct ctl_node_delta d = {0};
	struct bh_error err = {0};
	int rc;

	if (peer->role == BH_ROLE_AGENT && strcmp(r->node, peer->name) != 0) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL,
			     "not authorised: agent %s may read only its own node's rule set",
			     peer->name);
		return;
	}
	if (!ctl_compiler_node(c->comp, r->node)) {
		bh_rpc_reply(call, ST(NOT_FOUND), NULL, "no rule set for node %.64s", r->node);
		return;
	}
	rc = ctl_policy_node_at(c, r->node, r->from_revision, &before, &err);
	if (rc) {
		bh_rpc_reply(call, status_of(rc), NULL, "%s", err.msg);
		return;
	}
	rc = ctl_policy_node_at(c, r->node, c->revision, &after, &err);
	if (!rc)
		rc = ctl_node_out_diff(&before, &after, &d);
	if (!rc)
		rc = ctl_node_policy_delta_build(&d, r->from_revision, c->revision, &wire);
	if (rc)
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
	else
		bh_rpc_reply(call, ST(OK), &wire.msg.base, NULL);
	ctl_node_policy_delta_release(&wire);
	ctl_node_delta_free(&d);
	ctl_node_out_free(&before);
	ctl_node_out_free(&after);
}

int ctl_policy_register(struct ctl *c)
{
	const uint32_t op = BH_RPC_ROLES_OPERATOR;
	const ProtobufCServiceDescriptor *s = &bulkhead__operator__descriptor;

	return bh_rpc_server_register(c->rpc, s, "Apply", op, h_apply, c) ||
			       bh_rpc_server_register(c->rpc, s, "Delete", op, h_delete, c) ||
			       bh_rpc_server_register(c->rpc, s, "Rollback", op, h_rollback, c) ||
			       bh_rpc_server_register(c->rpc, s, "Get", op, h_get, c) ||
			       bh_rpc_server_register(c->rpc, s, "ListIdentities", op,
						      h_list_identities, c) ||
			       bh_rpc_server_register(c->rpc, s, "ListRevisions", op,
						      h_list_revisions, c) ||
			       bh_rpc_server_register(c->rpc, s, "DescribeWorkload", op,
						      h_describe, c) ||
			       bh_rpc_server_register(c->rpc, s, "Explain", op, h_explain, c) ||
			       bh_rpc_server_register(c->rpc, s, "GetNodePolicy",
						      op | BH_RPC_ROLES_AGENT, h_get_node_policy, c) ||
			       bh_rpc_server_register(c->rpc, s, "GetNodePolicyDelta",
						      op | BH_RPC_ROLES_AGENT, h_get_node_policy_delta,
						      c) ||
			       bh_rpc_server_register(c->rpc, &bulkhead__agent__descriptor,
						      "ReportEndpoints", BH_RPC_ROLES_AGENT,
						      h_report_endpoints, c)
		       ? -EINVAL
		       : 0;
}
