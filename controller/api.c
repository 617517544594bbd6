// SPDX-License-Identifier: Apache-2.0
/* Operator methods (tokens, nodes), an agent's view of its own node, and revocation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/log.h"
#include "bulkhead/pki.h"
#include "bulkhead/token.h"
#include "bulkhead/util.h"
#include "ctl.h"

#define ST(x) BULKHEAD__RPC_STATUS__RPC_##x

/* ---- revocation ---------------------------------------------------------------------------- */

struct serials {
	char **v;
	size_t n;
};

static int collect_serial(const struct ctl_cert *cert, void *arg)
{
	struct serials *s = arg;
	char **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->v[s->n] = strdup(cert->serial);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

int ctl_revocations_refresh(struct ctl *c, struct bh_error *err)
{
	struct serials s = {0};
	char *crl = NULL, path[PATH_MAX];
	int rc;

	rc = ctl_store_cert_revoked(c->store, time(NULL), collect_serial, &s);
	if (rc) {
		bh_error_set(err, rc, "listing revoked certificates: %s", bh_strerror(rc));
		goto out;
	}
	rc = bh_tls_set_revoked((const char *const *)s.v, s.n);
	if (rc) {
		bh_error_set(err, rc, "installing the revocation list: %s", bh_strerror(rc));
		goto out;
	}
	rc = bh_pki_crl_create(c->ca_pem, c->ca_key_pem, (const char *const *)s.v, s.n, 30, &crl,
			       err);
	if (rc)
		goto out;
	snprintf(path, sizeof(path), "%s/%s", c->dir, CTL_CRL);
	rc = bh_file_write_secret(path, crl, strlen(crl), true, err);
out:
	for (size_t i = 0; i < s.n; i++)
		free(s.v[i]);
	free(s.v);
	free(crl);
	return rc;
}

/* ---- tokens -------------------------------------------------------------------------------- */

static void h_create_token(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__TokenCreateRequest *r = (const void *)req;
	struct ctl *c = arg;
	Bulkhead__TokenCreateResponse resp = BULKHEAD__TOKEN_CREATE_RESPONSE__INIT;
	struct bh_error err = {0};
	struct bh_token tok;
	char hash[65], text[160];
	time_t expires = time(NULL) + (r->ttl_s ? r->ttl_s : 3600);

	if (r->uses == 0 || r->uses < -1) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL,
			     "uses must be a positive number, or -1 for unlimited");
		return;
	}
	if (r->ttl_s > 366u * 86400u) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "ttl longer than a year");
		return;
	}
	if (bh_token_generate(&tok, c->ca_fp, &err) ||
	    ctl_store_token_add(c->store, tok.id, (bh_token_secret_hash(tok.secret, hash), hash),
				expires, r->uses, r->labels, r->mode, &err)) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "%s", err.msg);
		return;
	}
	bh_token_format(&tok, text, sizeof(text));
	bh_log(LOG_NOTICE, "%s %s created join token %s (%d use%s, expires in %us)",
	       bh_role_name(bh_rpc_call_peer(call)->role), bh_rpc_call_peer(call)->name, tok.id,
	       r->uses, r->uses == 1 ? "" : "s", r->ttl_s ? r->ttl_s : 3600);
	resp.token = text;
	resp.id = tok.id;
	resp.expires = expires;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
}

struct token_list {
	Bulkhead__Token *items;
	Bulkhead__Token **ptrs;
	size_t n, cap;
	char (*strs)[3][512];
};

static int collect_token(const struct ctl_token *t, void *arg)
{
	struct token_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		Bulkhead__Token *ni = realloc(l->items, cap * sizeof(*ni));
		char(*ns)[3][512];

		if (!ni)
			return -ENOMEM;
		l->items = ni;
		ns = realloc(l->strs, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		l->strs = ns;
		l->cap = cap;
	}
	bulkhead__token__init(&l->items[l->n]);
	snprintf(l->strs[l->n][0], 512, "%s", t->id);
	snprintf(l->strs[l->n][1], 512, "%s", t->labels);
	snprintf(l->strs[l->n][2], 512, "%s", t->mode);
	l->items[l->n].created = t->created;
	l->items[l->n].expires = t->expires;
	l->items[l->n].uses_left = t->uses_left;
	l->items[l->n].revoked = t->revoked;
	l->n++;
	return 0;
}

static void h_list_tokens(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	struct ctl *c = arg;
	struct token_list l = {0};
	Bulkhead__TokenList resp = BULKHEAD__TOKEN_LIST__INIT;
	int rc;

	(void)req;
	rc = ctl_store_token_list(c->store, collect_token, &l);
	if (rc) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "listing tokens: %s", bh_strerror(rc));
		goto out;
	}
	l.ptrs = calloc(l.n ? l.n : 1, sizeof(*l.ptrs));
	if (!l.ptrs) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		goto out;
	}
	/* pointers into the arrays only once they stop moving */
	for (size_t i = 0; i < l.n; i++) {
		l.items[i].id = l.strs[i][0];
		l.items[i].labels = l.strs[i][1];
		l.items[i].mode = l.strs[i][2];
		l.ptrs[i] = &l.items[i];
	}
	resp.n_tokens = l.n;
	resp.tokens = l.ptrs;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
out:
	free(l.items);
	free(l.ptrs);
	free(l.strs);
}

static void h_revoke_token(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__TokenRef *r = (const void *)req;
	struct ctl *c = arg;
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	struct bh_error err = {0};
	int rc = ctl_store_token_revoke(c->store, r->id, &err);

	if (rc) {
		bh_rpc_reply(call, rc == -ENOENT ? ST(NOT_FOUND) : ST(INVALID_ARGUMENT), NULL, "%s",
			     err.msg);
		return;
	}
	bh_log(LOG_NOTICE, "join token %s revoked", r->id);
	bh_rpc_reply(call, ST(OK), &e.base, NULL);
}

/* ---- nodes --------------------------------------------------------------------------------- */

struct node_out {
	Bulkhead__Node n;
	char name[65], labels[512], mode[16], serial[41], last_error[256];
};

struct newest_cert {
	char serial[41];
	time_t not_after;
};

static int newest(const struct ctl_cert *cert, void *arg)
{
	struct newest_cert *nc = arg;

	if (!cert->revoked && strcmp(cert->role, "agent") == 0 && cert->not_after > nc->not_after) {
		nc->not_after = cert->not_after;
		snprintf(nc->serial, sizeof(nc->serial), "%s", cert->serial);
	}
	return 0;
}

static bool is_agent_named(const struct bh_identity *id, void *arg)
{
	return id->role == BH_ROLE_AGENT && strcmp(id->name, arg) == 0;
}

static void node_fill(struct ctl *c, const struct ctl_node *src, struct node_out *o)
{
	struct newest_cert nc = {0};

	bulkhead__node__init(&o->n);
	snprintf(o->name, sizeof(o->name), "%s", src->name);
	snprintf(o->labels, sizeof(o->labels), "%s", src->labels);
	snprintf(o->mode, sizeof(o->mode), "%s", src->mode);
	ctl_store_cert_list(c->store, src->name, newest, &nc);
	snprintf(o->serial, sizeof(o->serial), "%s", nc.serial);
	o->n.created = src->created;
	o->n.revoked = src->revoked;
	o->n.cert_not_after = nc.not_after;
	o->n.connected = bh_rpc_server_count(c->rpc, is_agent_named, o->name) > 0;
	{
		const char *le;
		time_t seen;

		ctl_rollout_node_state(c, src->name, &o->n.revision_wanted, &o->n.revision_sent,
				       &o->n.revision_acked, &le, &seen);
		snprintf(o->last_error, sizeof(o->last_error), "%s", le);
		o->n.last_seen = seen;
	}
}

static void node_link(struct node_out *o)
{
	o->n.name = o->name;
	o->n.labels = o->labels;
	o->n.mode = o->mode;
	o->n.cert_serial = o->serial;
	o->n.last_error = o->last_error;
}

static void h_get_node(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__NodeRef *r = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl *c = arg;
	struct ctl_node node;
	struct node_out o;

	/* an agent reads only its own node, whatever it asks */
	if (peer->role == BH_ROLE_AGENT && strcmp(r->name, peer->name) != 0) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL,
			     "not authorised: agent %s may read only its own node, not %.64s",
			     peer->name, r->name);
		return;
	}
	if (ctl_store_node_get(c->store, r->name, &node) != 0) {
		bh_rpc_reply(call, ST(NOT_FOUND), NULL, "no node %.64s", r->name);
		return;
	}
	node_fill(c, &node, &o);
	node_link(&o);
	bh_rpc_reply(call, ST(OK), &o.n.base, NULL);
}

struct node_list {
	struct node_out *v;
	size_t n, cap;
	struct ctl *c;
};

static int collect_node(const struct ctl_node *n, void *arg)
{
	struct node_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct node_out *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	node_fill(l->c, n, &l->v[l->n++]);
	return 0;
}

static void h_list_nodes(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	struct ctl *c = arg;
	struct node_list l = {.c = c};
	Bulkhead__NodeList resp = BULKHEAD__NODE_LIST__INIT;
	Bulkhead__Node **ptrs = NULL;
	int rc;

	(void)req;
	rc = ctl_store_node_list(c->store, collect_node, &l);
	if (rc == 0 && !(ptrs = calloc(l.n ? l.n : 1, sizeof(*ptrs))))
		rc = -ENOMEM;
	if (rc) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "listing nodes: %s", bh_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		node_link(&l.v[i]);
		ptrs[i] = &l.v[i].n;
	}
	resp.n_nodes = l.n;
	resp.nodes = ptrs;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
out:
	free(ptrs);
	free(l.v);
}

static void h_revoke_node(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__NodeRef *r = (const void *)req;
	struct ctl *c = arg;
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	struct bh_error err = {0};
	int rc, dropped;

	rc = ctl_store_node_revoke(c->store, r->name, time(NULL), &err);
	if (rc) {
		bh_rpc_reply(call, rc == -ENOENT ? ST(NOT_FOUND) : ST(INTERNAL), NULL, "%s",
			     err.msg);
		return;
	}
	/* new handshakes with its certificates fail from now on; live ones are cut */
	rc = ctl_revocations_refresh(c, &err);
	dropped = bh_rpc_server_drop(c->rpc, is_agent_named, (void *)r->name);
	bh_log(LOG_NOTICE, "node %s revoked: %d connection%s closed", r->name, dropped,
	       dropped == 1 ? "" : "s");
	if (rc) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "node revoked, but: %s", err.msg);
		return;
	}
	bh_rpc_reply(call, ST(OK), &e.base, NULL);
}

int ctl_api_register(struct ctl *c)
{
	const uint32_t op = BH_RPC_ROLES_OPERATOR;

	return bh_rpc_server_register(c->rpc, &bulkhead__operator__descriptor, "CreateToken", op,
				      h_create_token, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__operator__descriptor, "ListTokens", op,
				      h_list_tokens, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__operator__descriptor, "RevokeToken", op,
				      h_revoke_token, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__operator__descriptor, "ListNodes", op,
				      h_list_nodes, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__operator__descriptor, "RevokeNode", op,
				      h_revoke_node, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__agent__descriptor, "GetNode",
				      BH_RPC_ROLES_AGENT | op, h_get_node, c)
		       ? -EINVAL
		       : 0;
}
