// SPDX-License-Identifier: Apache-2.0
/*
 * Rollout: every agent keeps a Watch open ("I enforce revision R"); the controller answers it
 * when the node's rule set differs from what it last sent that node, and otherwise holds it (no
 * thread per agent: a held call is a pointer in the node's list, answered from the loop). After a
 * change the compiler names the nodes whose rule set changed, and only their watches wake. A
 * watch is answered with the delta from what was last sent to that node (the node says it holds
 * that revision), or a full snapshot when the controller does not know what the node holds (its
 * first watch, after a restart of either side, after a failed apply) or when the snapshot is the
 * smaller. Ack records what the node enforces, and releases `bulkhead apply --wait` callers once
 * every node their change affected has acknowledged it.
 *
 * Everything here runs on the loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/log.h"
#include "bulkhead/smap.h"
#include "bulkhead/util.h"
#include "ctl.h"

#define ST(x) BULKHEAD__RPC_STATUS__RPC_##x

#define WATCH_WAIT_DEFAULT_MS 30000
#define WATCH_WAIT_MAX_MS     60000
#define SWEEP_MS	      250
/* Watches one node may have held at once: an agent needs one; a few more cover a restart racing
 * the old connection's. Past that a peer is only pinning the controller's memory. */
#define HELD_PER_NODE_MAX     4

struct held {
	struct bh_rpc_call *call;
	uint64_t revision; /* what the agent said it enforces (a watch asking for a snapshot is
			    * answered at once, never held) */
	uint64_t deadline; /* monotonic ms: answer "nothing new" then */
	struct held *next;
};

struct sync_node {
	char *name;
	uint64_t wanted; /* the newest revision that changed this node's rule set */
	uint64_t sent, acked;
	char last_error[256];
	time_t last_seen;
	bool has_sent;
	struct ctl_node_out sent_out; /* what the last answer gave it (at revision sent) */
	struct held *held;
};

struct waiter {
	struct bh_rpc_call *call;
	ProtobufCMessage *resp; /* the answer to give, an unpacked copy */
	uint64_t revision;
	struct bh_smap pending; /* the nodes that have not acknowledged it yet (values unused) */
	uint64_t deadline;
	struct waiter *next;
};

struct ctl_rollout {
	struct ctl *c;
	struct bh_smap nodes; /* name -> sync_node */
	struct waiter *waiters;
	uv_timer_t sweep;
	size_t n_held;
};

static uint64_t now_ms(void)
{
	return bh_now_mono_ns() / 1000000;
}

static struct sync_node *sync_get(struct ctl_rollout *r, const char *name, bool create)
{
	struct sync_node *n = bh_smap_get(&r->nodes, name);

	if (n || !create)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)) || bh_smap_put(&r->nodes, name, n)) {
		if (n)
			free(n->name);
		free(n);
		return NULL;
	}
	/* not known before: whatever it holds, the current revision is what it should have */
	n->wanted = r->c->revision;
	return n;
}

/* ---- answering a watch ------------------------------------------------------------------------ */

static const struct ctl_node_out no_rules = {0};

/* The node's current rule set; an empty one when the compiler has none for it. */
static const struct ctl_node_out *rules_of(const struct ctl *c, const char *node)
{
	const struct ctl_node_out *o = ctl_compiler_node(c->comp, node);

	return o ? o : &no_rules;
}

static size_t out_size(const struct ctl_node_out *o)
{
	return o->n_eps + o->n_ipc + o->n_rules;
}

static size_t delta_size(const struct ctl_node_delta *d)
{
	return d->n_eps_add + d->n_eps_del + d->n_ipc_add + d->n_ipc_del + d->n_rules_add +
	       d->n_rules_del;
}

/*
 * Whether the node, holding `revision` (and, with snapshot, asking for everything), has anything
 * new to get.
 */
static bool news_for(const struct ctl *c, const struct sync_node *n, uint64_t revision,
		     bool snapshot)
{
	if (snapshot || !n->has_sent || n->sent != revision)
		return true;
	return !ctl_node_out_equal(&n->sent_out, rules_of(c, n->name));
}

/* Answers one watch with a delta or a snapshot of the node's current rule set. */
static void watch_answer(struct ctl_rollout *r, struct sync_node *n, struct bh_rpc_call *call,
			 uint64_t revision, bool snapshot)
{
	struct ctl *c = r->c;
	const struct ctl_node_out *cur = rules_of(c, n->name);
	Bulkhead__WatchResponse resp = BULKHEAD__WATCH_RESPONSE__INIT;
	struct ctl_node_policy_delta delta = {0};
	struct ctl_node_policy full = {0};
	struct ctl_node_delta d = {0};
	struct ctl_node_out copy;
	bool use_delta = false;
	int rc = 0;

	if (!snapshot && n->has_sent && n->sent == revision) {
		rc = ctl_node_out_diff(&n->sent_out, cur, &d);
		use_delta = !rc && delta_size(&d) <= out_size(cur);
	}
	if (!rc && use_delta) {
		rc = ctl_node_policy_delta_build(&d, revision, c->revision, &delta);
		resp.delta = &delta.msg;
	} else if (!rc) {
		rc = ctl_node_policy_build(cur, c->revision, &full);
		resp.snapshot = &full.np;
	}
	if (!rc)
		rc = ctl_node_out_copy(&copy, cur);
	if (rc) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		goto out;
	}
	resp.revision = c->revision;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
	if (n->has_sent)
		ctl_node_out_free(&n->sent_out);
	n->sent_out = copy;
	n->has_sent = true;
	n->sent = c->revision;
	bh_log(LOG_INFO, "node %s: revision %llu sent (%s: %zu entries)", n->name,
	       (unsigned long long)c->revision, use_delta ? "delta" : "snapshot",
	       use_delta ? delta_size(&d) : out_size(cur));
out:
	ctl_node_policy_release(&full);
	ctl_node_policy_delta_release(&delta);
	ctl_node_delta_free(&d);
}

static void h_watch(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__WatchRequest *w = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl_rollout *r = arg;
	struct sync_node *n = sync_get(r, peer->name, true);
	uint32_t wait = w->wait_ms ? w->wait_ms : WATCH_WAIT_DEFAULT_MS;
	uint64_t deadline, call_deadline = bh_rpc_call_deadline(call);
	struct held *h;

	if (!n) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		return;
	}
	n->last_seen = time(NULL);
	if (news_for(r->c, n, w->revision, w->snapshot)) {
		watch_answer(r, n, call, w->revision, w->snapshot);
		return;
	}
	/* nothing new: hold it, and answer before the caller gives up */
	{
		unsigned int k = 0;

		for (h = n->held; h; h = h->next)
			k++;
		if (k >= HELD_PER_NODE_MAX) {
			bh_log(LOG_NOTICE, "node %s: a watch refused, %u already held", n->name, k);
			bh_rpc_reply(call, ST(RESOURCE_EXHAUSTED), NULL,
				     "node %s already has %u watches open", n->name, k);
			return;
		}
	}
	if (wait > WATCH_WAIT_MAX_MS)
		wait = WATCH_WAIT_MAX_MS;
	/* up to a quarter less, at random: watches re-armed together after a change must not all
	 * expire in the same sweep */
	wait -= (uint32_t)(random() % (wait / 4 + 1));
	deadline = now_ms() + wait;
	if (call_deadline && call_deadline < deadline + 500)
		deadline = call_deadline > 500 ? call_deadline - 500 : call_deadline;
	h = calloc(1, sizeof(*h));
	if (!h) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		return;
	}
	h->call = call;
	h->revision = w->revision;
	h->deadline = deadline;
	h->next = n->held;
	n->held = h;
	r->n_held++;
}

/* ---- acknowledgements and --wait -------------------------------------------------------------- */

static void waiter_free(struct waiter *w)
{
	bh_smap_free(&w->pending);
	protobuf_c_message_free_unpacked(w->resp, NULL);
	free(w);
}

/*
 * Answers the waiters that are done, and those whose deadline passed (naming the nodes that did
 * not acknowledge). acked (may be NULL): a node that just acknowledged, taken off every waiter's
 * pending set first: each Ack costs one lookup per waiter, not a walk of every node.
 */
static void waiters_check(struct ctl_rollout *r, uint64_t now, const struct sync_node *acked)
{
	struct waiter **pp = &r->waiters;

	while (*pp) {
		struct waiter *w = *pp;

		if (acked && acked->acked >= w->revision)
			bh_smap_del(&w->pending, acked->name);
		if (w->pending.n && now < w->deadline) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (w->pending.n) {
			Bulkhead__ApplyResponse *a = (Bulkhead__ApplyResponse *)w->resp;
			struct bh_smap_ent **v = bh_smap_sorted(&w->pending);
			char **pending = calloc(w->pending.n, sizeof(char *));
			size_t np = 0;

			for (size_t i = 0; v && pending && i < w->pending.n; i++)
				pending[np++] = v[i]->key;
			a->n_nodes_pending = np;
			a->nodes_pending = pending;
			bh_rpc_reply(w->call, ST(OK), w->resp, NULL);
			a->n_nodes_pending = 0;
			a->nodes_pending = NULL;
			free(pending);
			free(v);
		} else {
			bh_rpc_reply(w->call, ST(OK), w->resp, NULL);
		}
		waiter_free(w);
	}
}

static void h_ack(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__AckRequest *a = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl_rollout *r = arg;
	struct sync_node *n = sync_get(r, peer->name, true);
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;

	if (!n) {
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		return;
	}
	n->last_seen = time(NULL);
	if (a->error[0]) {
		snprintf(n->last_error, sizeof(n->last_error), "revision %llu: %s",
			 (unsigned long long)a->revision, a->error);
		n->acked = a->enforcing;
		/* what it holds is not what was sent: its next watch gets a snapshot */
		n->has_sent = false;
		bh_log(LOG_WARNING, "node %s could not apply revision %llu: %s; it enforces %llu",
		       n->name, (unsigned long long)a->revision, a->error,
		       (unsigned long long)a->enforcing);
	} else {
		n->last_error[0] = '\0';
		n->acked = a->revision;
		bh_log(LOG_INFO, "node %s enforces revision %llu", n->name,
		       (unsigned long long)a->revision);
	}
	bh_rpc_reply(call, ST(OK), &e.base, NULL);
	waiters_check(r, now_ms(), n);
}

int ctl_rollout_wait(struct ctl *c, struct bh_rpc_call *call, const ProtobufCMessage *resp,
		     uint64_t revision, const char *const *nodes, size_t n_nodes, uint32_t wait_ms)
{
	struct ctl_rollout *r = c->rollout;
	struct waiter *w = calloc(1, sizeof(*w));
	size_t len = protobuf_c_message_get_packed_size(resp);
	uint8_t *buf = malloc(len ? len : 1);

	if (!w || !buf)
		goto nomem;
	protobuf_c_message_pack(resp, buf);
	w->resp = protobuf_c_message_unpack(resp->descriptor, NULL, len, buf);
	free(buf);
	buf = NULL;
	if (!w->resp)
		goto nomem;
	for (size_t i = 0; i < n_nodes; i++) {
		const struct sync_node *n = bh_smap_get(&r->nodes, nodes[i]);

		if ((!n || n->acked < revision) && bh_smap_put(&w->pending, nodes[i], w))
			goto nomem;
	}
	w->call = call;
	w->revision = revision;
	w->deadline = now_ms() + wait_ms;
	w->next = r->waiters;
	r->waiters = w;
	waiters_check(r, now_ms(), NULL); /* already acknowledged (nothing to wait for) */
	return 0;
nomem:
	free(buf);
	if (w) {
		bh_smap_free(&w->pending);
		if (w->resp)
			protobuf_c_message_free_unpacked(w->resp, NULL);
		free(w);
	}
	return -ENOMEM;
}

/* ---- changes, the sweep ---------------------------------------------------------------------- */

void ctl_rollout_changed(struct ctl *c, const char *const *nodes, size_t n_nodes, uint64_t rev)
{
	struct ctl_rollout *r = c->rollout;

	if (!r)
		return;
	for (size_t i = 0; i < n_nodes; i++) {
		struct sync_node *n = sync_get(r, nodes[i], true);
		struct held *h;

		if (!n)
			continue;
		n->wanted = rev;
		/* wake its watch: exactly the affected nodes, each once */
		if (!n->held || !news_for(c, n, n->held->revision, false))
			continue;
		while ((h = n->held)) {
			n->held = h->next;
			r->n_held--;
			watch_answer(r, n, h->call, h->revision, false);
			free(h);
		}
	}
}

static void sweep(uv_timer_t *t)
{
	struct ctl_rollout *r = t->data;
	uint64_t now = now_ms();

	BH_SMAP_EACH(&r->nodes, e)
	{
		struct sync_node *n = e->val;
		struct held **pp = &n->held;

		while (*pp) {
			struct held *h = *pp;

			if (now < h->deadline) {
				pp = &h->next;
				continue;
			}
			*pp = h->next;
			r->n_held--;
			{
				Bulkhead__WatchResponse resp = BULKHEAD__WATCH_RESPONSE__INIT;

				resp.revision = h->revision; /* nothing new */
				bh_rpc_reply(h->call, ST(OK), &resp.base, NULL);
			}
			free(h);
		}
	}
	waiters_check(r, now, NULL);
}

int ctl_rollout_node_state(const struct ctl *c, const char *name, uint64_t *wanted,
			   uint64_t *sent, uint64_t *acked, const char **last_error,
			   time_t *last_seen)
{
	const struct sync_node *n = c->rollout ? bh_smap_get(&c->rollout->nodes, name) : NULL;

	*wanted = n ? n->wanted : c->revision;
	*sent = n ? n->sent : 0;
	*acked = n ? n->acked : 0;
	*last_error = n ? n->last_error : "";
	*last_seen = n ? n->last_seen : 0;
	return n ? 0 : -ENOENT;
}

void ctl_rollout_summary(const struct ctl *c, size_t *nodes, size_t *behind, size_t *watching)
{
	const struct ctl_rollout *r = c->rollout;

	*nodes = *behind = *watching = 0;
	if (!r)
		return;
	BH_SMAP_EACH(&r->nodes, e)
	{
		const struct sync_node *n = e->val;

		(*nodes)++;
		*behind += n->acked < n->wanted;
		*watching += n->held != NULL;
	}
}

int ctl_rollout_init(struct ctl *c)
{
	struct ctl_rollout *r = calloc(1, sizeof(*r));
	const uint32_t agent = BH_RPC_ROLES_AGENT;

	if (!r)
		return -ENOMEM;
	r->c = c;
	c->rollout = r;
	uv_timer_init(c->loop, &r->sweep);
	r->sweep.data = r;
	uv_timer_start(&r->sweep, sweep, SWEEP_MS, SWEEP_MS);
	return bh_rpc_server_register(c->rpc, &bulkhead__agent__descriptor, "Watch", agent,
				      h_watch, r) ||
			       bh_rpc_server_register(c->rpc, &bulkhead__agent__descriptor, "Ack",
						      agent, h_ack, r)
		       ? -EINVAL
		       : 0;
}

void ctl_rollout_fini(struct ctl *c)
{
	struct ctl_rollout *r = c->rollout;

	if (!r)
		return;
	/* the RPC server is gone: held calls are not answered, only forgotten */
	BH_SMAP_EACH(&r->nodes, e)
	{
		struct sync_node *n = e->val;

		while (n->held) {
			struct held *h = n->held;

			n->held = h->next;
			free(h);
		}
		if (n->has_sent)
			ctl_node_out_free(&n->sent_out);
		free(n->name);
		free(n);
	}
	while (r->waiters) {
		struct waiter *w = r->waiters;

		r->waiters = w->next;
		waiter_free(w);
	}
	bh_smap_free(&r->nodes);
	free(r);
	c->rollout = NULL;
}
