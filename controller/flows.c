// SPDX-License-Identifier: Apache-2.0
/* Flow summaries: ingestion, the ingestion thread, queries and follow (flows.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bulkhead/log.h"
#include "bulkhead/smap.h"
#include "bulkhead/util.h"
#include "ctl.h"
#include "flows.h"
#include "flowstore.h"
#include "model.h"

#define ST(x) BULKHEAD__RPC_STATUS__RPC_##x

#define REPORT_FLOWS_MAX   65536   /* summaries in one report */
#define REPORT_EVENTS_MAX  4096    /* deny events in one report */
#define PENDING_ROWS_MAX   1000000 /* aggregated rows waiting: past this, reports are refused */
#define PENDING_EVENTS_MAX 200000
#define PACKETS_MAX	   1000000000000ull /* in one summary: 1e12 (a 10-second drain at 100 Gpps) */
#define BYTES_PER_PACKET   (1u << 20) /* a GSO/BIG TCP super-packet is at most 512 KiB */
#define BYTES_MAX	   (1ull << 44) /* in one summary: 16 TiB (10 s at 14 Tbit/s) */
#define COUNT_CAP	   (1ull << 53) /* a stored count saturates here (flowstore.c's CAP) */
#define FUTURE_SLACK_MS	   (5 * 60 * 1000) /* an agent's clock ahead of ours by more is clamped */
#define QUERY_LIMIT_DEF	   1000
#define QUERY_LIMIT_MAX	   100000
#define FOLLOW_WAIT_MAX	   60000
#define FOLLOW_CHECK_MS	   500
#define PRUNE_EVERY_MS	   60000
#define IDLE_WAKE_MS	   10000 /* the ingestion thread looks for closed minutes to roll up */
#define RING		   8192 /* committed rows kept for follow */

/* ---- the pending aggregate ------------------------------------------------------------------ */

/* Open addressing over rows keyed by ctl_flow_key; a slot with packets == 0 is empty (summaries
 * of no packets are rejected before they get here). */
struct agg {
	struct ctl_flow_row *slot;
	size_t cap, n;
};

static uint64_t key_hash(const struct ctl_flow_key *k)
{
	uint64_t w[4], h = 0x9e3779b97f4a7c15ull;

	_Static_assert(sizeof(*k) == sizeof(w), "ctl_flow_key is four words");
	memcpy(w, k, sizeof(w));
	for (int i = 0; i < 4; i++) {
		h ^= w[i] * 0xbf58476d1ce4e5b9ull;
		h = (h << 31 | h >> 33) * 0x94d049bb133111ebull;
	}
	return h ^ h >> 29;
}

static struct ctl_flow_row *agg_slot(struct agg *a, const struct ctl_flow_key *k)
{
	size_t i = key_hash(k) & (a->cap - 1);

	while (a->slot[i].v.packets && memcmp(&a->slot[i].k, k, sizeof(*k)))
		i = (i + 1) & (a->cap - 1);
	return &a->slot[i];
}

static int agg_add(struct agg *a, const struct ctl_flow_row *r)
{
	struct ctl_flow_row *s;

	if ((a->n + 1) * 4 > a->cap * 3) { /* keep it at most 3/4 full */
		struct agg b = {.cap = a->cap ? a->cap * 2 : 1024};

		b.slot = calloc(b.cap, sizeof(*b.slot));
		if (!b.slot)
			return -ENOMEM;
		for (size_t i = 0; i < a->cap; i++)
			if (a->slot[i].v.packets)
				*agg_slot(&b, &a->slot[i].k) = a->slot[i];
		b.n = a->n;
		free(a->slot);
		*a = b;
	}
	s = agg_slot(a, &r->k);
	if (!s->v.packets) {
		*s = *r;
		a->n++;
		return 0;
	}
	/* saturating: a hostile agent repeating a key cannot wrap a count (the store caps too) */
	s->v.packets = s->v.packets + r->v.packets < COUNT_CAP ? s->v.packets + r->v.packets
							       : COUNT_CAP;
	s->v.bytes = s->v.bytes + r->v.bytes < COUNT_CAP ? s->v.bytes + r->v.bytes : COUNT_CAP;
	if (r->v.first_ms < s->v.first_ms)
		s->v.first_ms = r->v.first_ms;
	if (r->v.last_ms > s->v.last_ms)
		s->v.last_ms = r->v.last_ms;
	if (r->v.revision > s->v.revision)
		s->v.revision = r->v.revision;
	return 0;
}

/* ---- batches -------------------------------------------------------------------------------- */

/* A report waiting for its batch to be committed. */
struct held_report {
	struct bh_rpc_call *call;
	uint32_t stored, clamped, rejected;
	struct held_report *next;
};

struct batch {
	struct agg agg;
	struct ctl_flow_event *events;
	size_t n_events, cap_events;
	struct ctl_flow_node_stats *stats; /* one per node */
	size_t n_stats, cap_stats;
	struct ctl_flow_node_name *names;
	size_t n_names, cap_names;
	struct held_report *held, **held_tail;
	/* results (ingestion thread) */
	int rc;
	char err[512];
};

static struct batch *batch_new(void)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (b)
		b->held_tail = &b->held;
	return b;
}

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	while (b->held) {
		struct held_report *h = b->held;

		b->held = h->next;
		free(h);
	}
	free(b->agg.slot);
	free(b->events);
	free(b->stats);
	free(b->names);
	free(b);
}

static bool batch_empty(const struct batch *b)
{
	return !b->agg.n && !b->n_events && !b->n_stats && !b->n_names && !b->held;
}

/* ---- the module ----------------------------------------------------------------------------- */

struct ring_ent {
	uint64_t seq;
	struct ctl_flow_row r;
};

struct follower;

struct ctl_flows {
	struct ctl *c;
	struct ctl_flows_opts o;
	struct ctl_flowstore *reader, *writer;

	/* node numbers: name -> number (as a pointer) and number -> name (names[number - 1]) */
	struct bh_smap node_ids;
	char **names;
	size_t n_names, cap_names;

	/* the batch filling (loop), the one being written and the one written (under mu) */
	struct batch *pending;
	uv_mutex_t mu;
	uv_cond_t cv;
	struct batch *writing, *written;
	bool stop;
	uv_thread_t thread;
	bool thread_started;
	uv_async_t wake;
	unsigned int open_handles; /* wake and follow_timer, closed by ctl_flows_fini */

	/* follow */
	struct ring_ent *ring;
	uint64_t seq; /* of the newest row in the ring */
	struct follower *followers;
	uv_timer_t follow_timer;

	struct ctl_flows_counters n;
};

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const char *node_name(const struct ctl_flows *f, uint32_t id)
{
	return id && id <= f->n_names && f->names[id - 1] ? f->names[id - 1] : "?";
}

static uint32_t node_id(const struct ctl_flows *f, const char *name)
{
	return (uint32_t)(uintptr_t)bh_smap_get(&f->node_ids, name);
}

/* names[id - 1] = name; numbers between the last known and id stay holes (NULL). */
static int node_remember(struct ctl_flows *f, uint32_t id, const char *name)
{
	char *dup = strdup(name);

	if (!dup || !id || id > UINT32_MAX / 2)
		goto fail;
	while (f->n_names < id)
		if (BH_PUSH(f->names, f->n_names, f->cap_names, NULL))
			goto fail;
	if (f->names[id - 1] || bh_smap_put(&f->node_ids, dup, (void *)(uintptr_t)id))
		goto fail;
	f->names[id - 1] = dup;
	return 0;
fail:
	free(dup);
	return -ENOMEM;
}

static int node_loaded(uint32_t id, const char *name, void *ctx)
{
	/* a number whose name was never committed is a hole: the next new node gets a number
	 * above every known one, never a hole, so no history changes hands */
	return node_remember(ctx, id, name);
}

/* The node's number, made (and queued for the store) on first sight. */
static uint32_t node_number(struct ctl_flows *f, const char *name)
{
	uint32_t id = node_id(f, name);

	if (id)
		return id;
	id = (uint32_t)f->n_names + 1; /* above every known number, holes included */
	if (bh_grow((void **)&f->pending->names, &f->pending->cap_names, f->pending->n_names + 1,
		    sizeof(*f->pending->names)) ||
	    node_remember(f, id, name))
		return 0;
	f->pending->names[f->pending->n_names++] =
		(struct ctl_flow_node_name){.node = id, .name = f->names[id - 1]};
	return id;
}

/* ---- the ingestion thread ------------------------------------------------------------------- */

/* Ingestion thread: commits one batch. */
static void batch_write(struct ctl_flows *f, struct batch *b)
{
	/* the aggregate's live slots, packed (the write sorts them) */
	struct ctl_flow_row *rows = malloc((b->agg.n + 1) * sizeof(*rows));
	struct ctl_flow_batch fb = {
		.rows = rows,
		.events = b->events,
		.n_events = b->n_events,
		.stats = b->stats,
		.n_stats = b->n_stats,
		.names = b->names,
		.n_names = b->n_names,
	};
	struct bh_error err = {0};

	if (!rows) {
		b->rc = -ENOMEM;
		snprintf(b->err, sizeof(b->err), "flow store: out of memory");
		return;
	}
	for (size_t i = 0; i < b->agg.cap; i++)
		if (b->agg.slot[i].v.packets)
			rows[fb.n_rows++] = b->agg.slot[i];
	b->rc = ctl_flowstore_write(f->writer, &fb, &err);
	if (b->rc)
		snprintf(b->err, sizeof(b->err), "%s", err.msg);
	free(rows);
}

/* Ingestion thread, between batches: closed minutes to their hour; retention now and then. */
static void housekeeping(struct ctl_flows *f, uint64_t *last_prune)
{
	struct bh_error err = {0};
	int64_t n;

	if ((n = ctl_flowstore_rollup(f->writer, now_ms() / 1000, &err)) < 0)
		bh_log(LOG_WARNING, "%s", err.msg);
	if (uv_hrtime() / 1000000 - *last_prune < PRUNE_EVERY_MS)
		return;
	n = ctl_flowstore_prune(f->writer, now_ms() / 1000, f->o.minute_keep_s, f->o.keep_s, &err);
	if (n < 0)
		bh_log(LOG_WARNING, "%s", err.msg);
	else if (n)
		bh_log(LOG_INFO, "flows: pruned %" PRId64 " rows past retention", n);
	*last_prune = uv_hrtime() / 1000000;
}

static void ingest_thread(void *arg)
{
	struct ctl_flows *f = arg;
	uint64_t last_prune = 0;

	uv_mutex_lock(&f->mu);
	for (;;) {
		struct batch *b;

		while (!f->writing && !f->stop) {
			uv_mutex_unlock(&f->mu);
			housekeeping(f, &last_prune);
			uv_mutex_lock(&f->mu);
			if (!f->writing && !f->stop)
				uv_cond_timedwait(&f->cv, &f->mu, (uint64_t)IDLE_WAKE_MS * 1000000);
		}
		if (!(b = f->writing))
			break; /* stopping, nothing left */
		uv_mutex_unlock(&f->mu);
		batch_write(f, b);
		uv_mutex_lock(&f->mu);
		f->written = b;
		f->writing = NULL;
		uv_async_send(&f->wake);
		/* the loop answers the batch's reports meanwhile */
		uv_mutex_unlock(&f->mu);
		housekeeping(f, &last_prune);
		uv_mutex_lock(&f->mu);
	}
	uv_mutex_unlock(&f->mu);
}

/* Loop: hands the pending batch to the thread when it is free. */
static void handoff(struct ctl_flows *f)
{
	struct batch *next;

	if (batch_empty(f->pending))
		return;
	uv_mutex_lock(&f->mu);
	if (!f->writing && !f->written && (next = batch_new())) {
		f->writing = f->pending;
		f->pending = next;
		f->n.batches++;
		uv_cond_signal(&f->cv);
	}
	uv_mutex_unlock(&f->mu);
}

static void follow_wake(struct ctl_flows *f);

/* Loop: a batch was written; answer its reports, show its rows to followers. */
static void on_written(uv_async_t *a)
{
	struct ctl_flows *f = a->data;
	struct batch *b;

	uv_mutex_lock(&f->mu);
	b = f->written;
	f->written = NULL;
	uv_mutex_unlock(&f->mu);
	if (!b)
		return;
	if (b->rc) {
		size_t n = 0;

		/* the names this batch introduced go with the next one: their rows will */
		for (size_t i = 0; i < b->n_names; i++)
			(void)BH_PUSH(f->pending->names, f->pending->n_names,
				      f->pending->cap_names, b->names[i]);
		for (struct held_report *h = b->held; h; h = h->next)
			n++;
		f->n.batch_failures++;
		bh_log(LOG_ERR, "flows: %s; %zu reports not stored (their agents keep them)",
		       b->err, n);
	} else {
		for (size_t i = 0; i < b->agg.cap; i++)
			if (b->agg.slot[i].v.packets) {
				struct ring_ent *e = &f->ring[++f->seq % RING];

				e->seq = f->seq;
				e->r = b->agg.slot[i];
			}
	}
	for (struct held_report *h = b->held; h; h = h->next) {
		Bulkhead__FlowReportResponse r = BULKHEAD__FLOW_REPORT_RESPONSE__INIT;

		if (b->rc) {
			bh_rpc_reply(h->call, ST(INTERNAL), NULL, "%s", b->err);
			continue;
		}
		r.stored = h->stored;
		r.clamped = h->clamped;
		r.rejected = h->rejected;
		bh_rpc_reply(h->call, ST(OK), &r.base, NULL);
	}
	batch_free(b);
	if (f->followers)
		follow_wake(f);
	handoff(f);
}

/* ---- ReportFlows ---------------------------------------------------------------------------- */

static uint8_t verdict_from_wire(Bulkhead__FlowVerdict v)
{
	switch (v) {
	case BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_ALLOWED:
	case BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_DENIED:
	case BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_WOULD_DENY:
		return (uint8_t)v;
	default:
		return 0;
	}
}

/* Why summaries were clamped or rejected, for the report's one log line. */
struct report_notes {
	uint32_t clamped, rejected;
	const char *first_clamp, *first_reject;
};

static void note(const char **first, uint32_t *count, const char *why)
{
	if (!*first)
		*first = why;
	(*count)++;
}

/* Checks one summary; fills r. false: rejected (notes say why). */
static bool summary_check(const Bulkhead__FlowSummary *s, uint32_t node, int64_t now,
			  int64_t oldest_ms, struct ctl_flow_row *r, struct report_notes *nt)
{
	bool clamped = false;
	int64_t first = s->first_seen_ms, last = s->last_seen_ms;
	uint64_t packets = s->packets, bytes = s->bytes;

	if (!verdict_from_wire(s->verdict)) {
		note(&nt->first_reject, &nt->rejected, "unknown verdict");
		return false;
	}
	if (s->direction != BULKHEAD__DIRECTION__DIRECTION_INGRESS &&
	    s->direction != BULKHEAD__DIRECTION__DIRECTION_EGRESS) {
		note(&nt->first_reject, &nt->rejected, "unknown direction");
		return false;
	}
	if (s->protocol > 255 || s->port > 65535) {
		note(&nt->first_reject, &nt->rejected, "protocol or port out of range");
		return false;
	}
	if (!packets) {
		note(&nt->first_reject, &nt->rejected, "no packets");
		return false;
	}
	if (last <= 0 || last < oldest_ms) {
		note(&nt->first_reject, &nt->rejected, "last seen before the retention window");
		return false;
	}
	if (packets > PACKETS_MAX) {
		packets = PACKETS_MAX;
		note(&nt->first_clamp, &nt->clamped, "packet count over 1e12");
		clamped = true;
	}
	if (bytes / BYTES_PER_PACKET > packets || bytes > BYTES_MAX) {
		bytes = packets * BYTES_PER_PACKET < BYTES_MAX ? packets * BYTES_PER_PACKET
							       : BYTES_MAX;
		if (!clamped)
			note(&nt->first_clamp, &nt->clamped, "over 1 MiB per packet or 16 TiB");
		clamped = true;
	}
	if (last > now + FUTURE_SLACK_MS) {
		last = now;
		if (!clamped)
			note(&nt->first_clamp, &nt->clamped, "last seen in the future");
		clamped = true;
	}
	if (first <= 0 || first > last) {
		first = last;
		if (!clamped)
			note(&nt->first_clamp, &nt->clamped, "first seen after last seen");
	} else if (first < oldest_ms) {
		first = oldest_ms;
	}
	*r = (struct ctl_flow_row){
		.k = {.bucket = last / 1000 - (last / 1000) % 60,
		      .node = node,
		      .src = s->src_identity,
		      .dst = s->dst_identity,
		      .rule = s->rule_id,
		      .port = (uint16_t)s->port,
		      .proto = (uint8_t)s->protocol,
		      .dir = (uint8_t)s->direction,
		      .verdict = verdict_from_wire(s->verdict)},
		.v = {.packets = packets,
		      .bytes = bytes,
		      .first_ms = first,
		      .last_ms = last,
		      .revision = s->revision},
	};
	return true;
}

static bool event_check(const Bulkhead__DenyEvent *e, uint32_t node, int64_t now,
			int64_t oldest_ms, struct ctl_flow_event *out)
{
	size_t alen = e->src_address.len;

	if ((alen != 4 && alen != 16) || e->dst_address.len != alen || e->src_port > 65535 ||
	    e->dst_port > 65535 || e->protocol > 255 || !verdict_from_wire(e->verdict) ||
	    (e->direction != BULKHEAD__DIRECTION__DIRECTION_INGRESS &&
	     e->direction != BULKHEAD__DIRECTION__DIRECTION_EGRESS) ||
	    e->at_ms < oldest_ms || e->at_ms > now + FUTURE_SLACK_MS)
		return false;
	*out = (struct ctl_flow_event){
		.at_ms = e->at_ms,
		.node = node,
		.family = alen == 4 ? 4 : 6,
		.proto = (uint8_t)e->protocol,
		.dir = (uint8_t)e->direction,
		.verdict = verdict_from_wire(e->verdict),
		.sport = (uint16_t)e->src_port,
		.dport = (uint16_t)e->dst_port,
		.rule = e->rule_id,
		.local = e->local_identity,
		.remote = e->remote_identity,
	};
	memcpy(out->saddr, e->src_address.data, alen);
	memcpy(out->daddr, e->dst_address.data, alen);
	snprintf(out->ifname, sizeof(out->ifname), "%s", e->ifname);
	return true;
}

static struct ctl_flow_node_stats *stats_of(struct batch *b, uint32_t node)
{
	for (size_t i = 0; i < b->n_stats; i++)
		if (b->stats[i].node == node)
			return &b->stats[i];
	if (BH_PUSH(b->stats, b->n_stats, b->cap_stats, ((struct ctl_flow_node_stats){.node = node})))
		return NULL;
	return &b->stats[b->n_stats - 1];
}

/* An agent's text, safe for a log line: at most 63 bytes, control characters as '?'. */
static const char *printable(const char *in, char *out, size_t len)
{
	size_t i = 0;

	for (; in[i] && i + 1 < len && i < 63; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
	return out;
}

static void h_report_flows(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__FlowReport *rq = (const void *)req;
	const char *peer = bh_rpc_call_peer(call)->name;
	struct ctl_flows *f = arg;
	struct report_notes nt = {0};
	struct ctl_flow_node_stats *st;
	struct held_report *h;
	int64_t now = now_ms(), oldest = now - (int64_t)f->o.keep_s * 1000;
	uint32_t node, stored = 0, events_bad = 0;

	f->n.reports++;
	if (rq->node[0] && strcmp(rq->node, peer)) {
		char claim[64];

		bh_log(LOG_WARNING,
		       "flows: node %s sent a report for node %s: refused, nothing stored", peer,
		       printable(rq->node, claim, sizeof(claim)));
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL,
			     "this certificate is node %s's; it may not report for node %s", peer,
			     rq->node);
		return;
	}
	if (rq->n_flows > REPORT_FLOWS_MAX || rq->n_events > REPORT_EVENTS_MAX) {
		bh_log(LOG_WARNING,
		       "flows: node %s sent %zu summaries and %zu events in one report (at most %d "
		       "and %d): refused, nothing stored",
		       peer, rq->n_flows, rq->n_events, REPORT_FLOWS_MAX, REPORT_EVENTS_MAX);
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL,
			     "a report carries at most %d summaries and %d events (this one %zu "
			     "and %zu): split it",
			     REPORT_FLOWS_MAX, REPORT_EVENTS_MAX, rq->n_flows, rq->n_events);
		return;
	}
	if (f->pending->agg.n + rq->n_flows > PENDING_ROWS_MAX ||
	    f->pending->n_events + rq->n_events > PENDING_EVENTS_MAX) {
		f->n.refused_busy++;
		bh_rpc_reply(call, ST(RESOURCE_EXHAUSTED), NULL,
			     "the flow store is behind (%zu rows waiting): keep the report and "
			     "send it again later",
			     f->pending->agg.n);
		return;
	}
	node = node_number(f, peer);
	h = calloc(1, sizeof(*h));
	st = node ? stats_of(f->pending, node) : NULL;
	if (!st || !h) {
		free(h);
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < rq->n_flows; i++) {
		struct ctl_flow_row r;

		if (!summary_check(rq->flows[i], node, now, oldest, &r, &nt))
			continue;
		if (agg_add(&f->pending->agg, &r)) {
			/* what was merged stays; the agent sends the report again and the rows
			 * count twice: better than losing them (and it needs memory to fail) */
			free(h);
			bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
			return;
		}
		stored++;
	}
	for (size_t i = 0; i < rq->n_events; i++) {
		struct ctl_flow_event e;

		if (!event_check(rq->events[i], node, now, oldest, &e)) {
			events_bad++;
			continue;
		}
		if (BH_PUSH(f->pending->events, f->pending->n_events, f->pending->cap_events, e))
			events_bad++;
	}
	st->last_report_ms = now;
	st->reports++;
	st->summaries += stored;
	st->rejected += nt.rejected;
	st->summaries_dropped = rq->summaries_dropped;
	st->events_dropped = rq->events_dropped;
	st->kernel_events_not_sent = rq->kernel_events_not_sent;
	st->kernel_flows_not_counted = rq->kernel_flows_not_counted;
	st->agent_started_ms = rq->agent_started_ms;
	f->n.summaries += stored;
	f->n.clamped += nt.clamped;
	f->n.rejected += nt.rejected;
	if (nt.clamped || nt.rejected || events_bad)
		bh_log(LOG_WARNING,
		       "flows: node %s: report of %zu summaries: %u stored, %u of them clamped%s%s%s"
		       ", %u rejected%s%s%s; %u of %zu events rejected",
		       peer, rq->n_flows, stored, nt.clamped, nt.first_clamp ? " (first: " : "",
		       nt.first_clamp ? nt.first_clamp : "", nt.first_clamp ? ")" : "", nt.rejected,
		       nt.first_reject ? " (first: " : "", nt.first_reject ? nt.first_reject : "",
		       nt.first_reject ? ")" : "", events_bad, rq->n_events);
	if (rq->summaries_dropped || rq->kernel_events_not_sent || rq->kernel_flows_not_counted)
		bh_log(LOG_DEBUG,
		       "flows: node %s says: %" PRIu64 " summaries dropped by its spool, %" PRIu64
		       " deny events not sent by its datapath, %" PRIu64 " flows not counted",
		       peer, rq->summaries_dropped, rq->kernel_events_not_sent,
		       rq->kernel_flows_not_counted);
	h->call = call;
	h->stored = stored;
	h->clamped = nt.clamped;
	h->rejected = nt.rejected;
	*f->pending->held_tail = h;
	f->pending->held_tail = &h->next;
	handoff(f);
}

/* ---- naming --------------------------------------------------------------------------------- */

/* What an identity stands for, seen from node: a workload (the only one with it on that node, or
 * in the fleet), a CIDR, a label set, or a reserved name. */
struct namer {
	const struct ctl_compiler *comp;
	struct bh_smap unique; /* identity (text) -> the fleet's only workload with it, or "" */
};

static int namer_wl(const struct ctl_doc *d, void *ctx)
{
	struct namer *nm = ctx;
	const char *name = ctl_doc_name(d);
	uint32_t id = ctl_compiler_workload_identity(nm->comp, name);
	char key[16];
	const char *had;

	if (!id)
		return 0;
	snprintf(key, sizeof(key), "%u", id);
	had = bh_smap_get(&nm->unique, key);
	return bh_smap_put(&nm->unique, key, (void *)(had ? "" : name)) ? -ENOMEM : 0;
}

static void namer_init(struct namer *nm, const struct ctl_compiler *comp)
{
	memset(nm, 0, sizeof(*nm));
	nm->comp = comp;
	if (comp)
		ctl_compiler_each(comp, CTL_KIND_WORKLOAD, namer_wl, nm);
}

static void namer_fini(struct namer *nm)
{
	bh_smap_free(&nm->unique);
}

static const char *identity_name(const struct namer *nm, const char *node, uint32_t id, char *buf,
				 size_t len)
{
	const char *labels, *wl;
	char key[16];

	switch (id) {
	case 0:
		return "any";
	case 1:
		snprintf(buf, len, "host:%s", node);
		return buf;
	case 2:
		return "world";
	case 3:
		return "controller";
	}
	labels = nm->comp ? ctl_compiler_identity_labels(nm->comp, id) : NULL;
	if (!labels) {
		snprintf(buf, len, "identity %u", id);
		return buf;
	}
	if (!strncmp(labels, "cidr:", 5))
		return labels + 5;
	/* the node's only endpoint with it, then the fleet's only workload */
	if (node && nm->comp) {
		const struct ctl_node_out *o = ctl_compiler_node(nm->comp, node);
		const char *only = NULL;
		size_t n = 0;

		for (size_t i = 0; o && i < o->n_eps; i++)
			if (o->eps[i].identity == id) {
				only = o->eps[i].name;
				n++;
			}
		if (n == 1)
			return only;
	}
	snprintf(key, sizeof(key), "%u", id);
	wl = bh_smap_get(&nm->unique, key);
	if (wl && wl[0])
		return wl;
	snprintf(buf, len, "{%s}", labels);
	return buf;
}

/* ---- QueryFlows ----------------------------------------------------------------------------- */

/* One side of a query: nothing (any), or a set of identities. */
struct id_set {
	bool any;
	uint32_t *v;
	size_t n, cap;
};

static bool id_set_has(const struct id_set *s, uint32_t id)
{
	if (s->any)
		return true;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

static int id_set_add(struct id_set *s, uint32_t id)
{
	return BH_PUSH(s->v, s->n, s->cap, id);
}

struct sel_ctx {
	struct ctl_selector sel;
	struct id_set *set;
};

static int sel_identity(uint32_t id, const char *labels, size_t n_wls, time_t unused_since,
			void *ctx)
{
	struct sel_ctx *sc = ctx;
	struct ctl_labels l = {0};
	struct bh_error err = {0};
	int rc = 0;

	(void)n_wls;
	(void)unused_since;
	if (!strncmp(labels, "cidr:", 5) || ctl_labels_parse(labels, &l, &err))
		return 0;
	if (ctl_selector_matches(&sc->sel, &l))
		rc = id_set_add(sc->set, id);
	ctl_labels_free(&l);
	return rc;
}

/* "web-1" (a workload), "app=web,tier in (a)" (a selector), "300" (an identity), "world", "host",
 * or a CIDR a policy names ("198.18.0.0/16"). */
static int id_set_parse(const struct ctl_compiler *comp, const char *text, struct id_set *s,
			char *why, size_t len)
{
	uint64_t n;
	char key[80];
	uint32_t id;

	if (!text[0]) {
		s->any = true;
		return 0;
	}
	if (!strcmp(text, "world") || !strcmp(text, "host") || !strcmp(text, "controller"))
		return id_set_add(s, !strcmp(text, "host") ? 1 : !strcmp(text, "world") ? 2 : 3);
	if (!bh_parse_u64(text, UINT32_MAX, &n))
		return id_set_add(s, (uint32_t)n);
	if (strchr(text, '/')) {
		snprintf(key, sizeof(key), "cidr:%s", text);
		if (!(id = ctl_compiler_identity_of(comp, key))) {
			snprintf(why, len, "no policy names the CIDR %s", text);
			return -ENOENT;
		}
		return id_set_add(s, id);
	}
	if (strpbrk(text, "=!( ")) {
		struct sel_ctx sc = {.set = s};
		struct bh_error err = {0};
		int rc;

		if (ctl_selector_parse(text, &sc.sel, &err)) {
			snprintf(why, len, "selector \"%s\": %s", text, err.msg);
			return -EINVAL;
		}
		rc = ctl_compiler_each_identity(comp, sel_identity, &sc);
		ctl_selector_free(&sc.sel);
		return rc;
	}
	if ((id = ctl_compiler_workload_identity(comp, text)))
		return id_set_add(s, id);
	snprintf(why, len,
		 "\"%s\" is no workload; want a workload name, a label selector (app=web), an "
		 "identity number, a CIDR a policy names, world or host",
		 text);
	return -ENOENT;
}

struct query {
	struct ctl_flows *f;
	const Bulkhead__FlowQuery *q;
	struct id_set from, to;
	struct namer nm;
	uint32_t limit;
	uint32_t node; /* 0: any */
	Bulkhead__FlowList out;
	Bulkhead__FlowRecord *recs;
	Bulkhead__FlowRecord **recp;
	char (*text)[4][160];
	Bulkhead__FlowEvent *evs;
	Bulkhead__FlowEvent **evp;
	Bulkhead__DenyEvent *devs;
	char (*etext)[5][160];
	uint8_t (*eaddr)[2][16];
	size_t n_events_cap;
	Bulkhead__NodeFlowStats *sts;
	Bulkhead__NodeFlowStats **stp;
	size_t n_stats_cap;
};

static bool row_matches(const struct query *qq, const struct ctl_flow_row *r)
{
	const Bulkhead__FlowQuery *q = qq->q;
	const char *pol = NULL;
	char buf[256];

	if (qq->node && r->k.node != qq->node)
		return false;
	if (q->port && r->k.port != q->port)
		return false;
	if (q->protocol && r->k.proto != q->protocol)
		return false;
	if (q->verdict && r->k.verdict != q->verdict)
		return false;
	if (!id_set_has(&qq->from, r->k.src) || !id_set_has(&qq->to, r->k.dst))
		return false;
	if (q->policy[0]) {
		if (!qq->f->c->comp ||
		    !ctl_compiler_rule_describe(qq->f->c->comp, r->k.rule, buf, sizeof(buf), &pol) ||
		    strcmp(pol, q->policy))
			return false;
	}
	return true;
}

/* Adds row r to the answer. 1: the limit is reached. */
static int add_row(const struct ctl_flow_row *r, void *ctx)
{
	struct query *qq = ctx;
	Bulkhead__FlowRecord *o;
	char(*t)[160];
	const char *node, *pol = NULL, *desc = NULL;

	if (!row_matches(qq, r))
		return 0;
	if (qq->out.n_flows == qq->limit) {
		qq->out.truncated = true;
		return 1;
	}
	o = &qq->recs[qq->out.n_flows];
	t = qq->text[qq->out.n_flows];
	bulkhead__flow_record__init(o);
	node = node_name(qq->f, r->k.node);
	o->node = (char *)node;
	o->direction = r->k.dir;
	o->src_identity = r->k.src;
	o->dst_identity = r->k.dst;
	/* the local side is the source of an egress flow and the destination of an ingress one */
	o->src = (char *)identity_name(&qq->nm, r->k.dir == 1 ? node : NULL, r->k.src, t[0], 160);
	o->dst = (char *)identity_name(&qq->nm, r->k.dir == 0 ? node : NULL, r->k.dst, t[1], 160);
	o->protocol = r->k.proto;
	o->port = r->k.port;
	o->verdict = r->k.verdict;
	o->rule_id = r->k.rule;
	if (qq->f->c->comp)
		desc = ctl_compiler_rule_describe(qq->f->c->comp, r->k.rule, t[2], 160, &pol);
	snprintf(t[3], 160, "%s", pol ? pol : "");
	o->policy = t[3];
	if (!desc)
		snprintf(t[2], 160, "rule %u (no longer known)", r->k.rule);
	o->rule = t[2];
	o->packets = r->v.packets;
	o->bytes = r->v.bytes;
	o->first_seen_ms = r->v.first_ms;
	o->last_seen_ms = r->v.last_ms;
	qq->recp[qq->out.n_flows++] = o;
	return 0;
}

static int add_event(const struct ctl_flow_event *e, void *ctx)
{
	struct query *qq = ctx;
	size_t i = qq->out.n_events, alen = e->family == 4 ? 4 : 16;
	Bulkhead__FlowEvent *o;
	Bulkhead__DenyEvent *d;
	char(*t)[160];
	const char *node, *pol = NULL;
	uint32_t src = e->dir == 1 ? e->local : e->remote, dst = e->dir == 1 ? e->remote : e->local;

	if (!id_set_has(&qq->from, src) || !id_set_has(&qq->to, dst))
		return 0;
	if (qq->q->port && e->dport != qq->q->port)
		return 0;
	if (qq->q->protocol && e->proto != qq->q->protocol)
		return 0;
	if (qq->q->verdict && e->verdict != qq->q->verdict)
		return 0;
	if (i == qq->n_events_cap)
		return 1;
	o = &qq->evs[i];
	d = &qq->devs[i];
	t = qq->etext[i];
	bulkhead__flow_event__init(o);
	bulkhead__deny_event__init(d);
	node = node_name(qq->f, e->node);
	if (qq->q->policy[0]) {
		char buf[256];

		if (!qq->f->c->comp ||
		    !ctl_compiler_rule_describe(qq->f->c->comp, e->rule, buf, sizeof(buf), &pol) ||
		    strcmp(pol, qq->q->policy))
			return 0;
	}
	o->node = (char *)node;
	o->event = d;
	d->at_ms = e->at_ms;
	memcpy(qq->eaddr[i][0], e->saddr, alen);
	memcpy(qq->eaddr[i][1], e->daddr, alen);
	d->src_address = (ProtobufCBinaryData){alen, qq->eaddr[i][0]};
	d->dst_address = (ProtobufCBinaryData){alen, qq->eaddr[i][1]};
	d->src_port = e->sport;
	d->dst_port = e->dport;
	d->protocol = e->proto;
	d->direction = e->dir;
	d->verdict = e->verdict;
	d->rule_id = e->rule;
	d->local_identity = e->local;
	d->remote_identity = e->remote;
	snprintf(t[3], 160, "%s", e->ifname);
	d->ifname = t[3];
	o->local = (char *)identity_name(&qq->nm, node, e->local, t[0], 160);
	o->remote = (char *)identity_name(&qq->nm, NULL, e->remote, t[1], 160);
	if (e->remote == 2 && qq->f->c->comp) {
		/* world on that node (its rules do not name the peer): the address may still be a
		 * workload's */
		struct ctl_prefix a = {.family = e->family, .len = e->family == 4 ? 32 : 128};
		const char *wl;

		memcpy(a.addr, e->dir == 1 ? e->daddr : e->saddr, alen);
		if ((wl = ctl_compiler_workload_at(qq->f->c->comp, &a))) {
			snprintf(t[1], 160, "%s (world on this node)", wl);
			o->remote = t[1];
		}
	}
	if (!qq->f->c->comp ||
	    !ctl_compiler_rule_describe(qq->f->c->comp, e->rule, t[2], 160, &pol))
		snprintf(t[2], 160, "rule %u (no longer known)", e->rule);
	o->rule = t[2];
	/* pol points at a buffer the next describe overwrites */
	snprintf(t[4], 160, "%s", pol ? pol : "");
	o->policy = t[4];
	qq->evp[qq->out.n_events++] = o;
	return 0;
}

static int add_stats(const struct ctl_flow_node_stats *s, void *ctx)
{
	struct query *qq = ctx;
	Bulkhead__NodeFlowStats *o;

	if (qq->node && s->node != qq->node)
		return 0;
	if (qq->out.n_nodes == qq->n_stats_cap)
		return 1;
	o = &qq->sts[qq->out.n_nodes];
	bulkhead__node_flow_stats__init(o);
	o->node = (char *)node_name(qq->f, s->node);
	o->last_report_ms = s->last_report_ms;
	o->reports = s->reports;
	o->summaries = s->summaries;
	o->rejected = s->rejected;
	o->summaries_dropped = s->summaries_dropped;
	o->events_dropped = s->events_dropped;
	o->kernel_events_not_sent = s->kernel_events_not_sent;
	o->kernel_flows_not_counted = s->kernel_flows_not_counted;
	o->agent_started_ms = s->agent_started_ms;
	qq->stp[qq->out.n_nodes++] = o;
	return 0;
}

static void query_free(struct query *qq)
{
	free(qq->from.v);
	free(qq->to.v);
	namer_fini(&qq->nm);
	free(qq->recs);
	free(qq->recp);
	free(qq->text);
	free(qq->evs);
	free(qq->evp);
	free(qq->devs);
	free(qq->etext);
	free(qq->eaddr);
	free(qq->sts);
	free(qq->stp);
}

/* Sets the query up: the identity sets, the limit, the answer's arrays. On failure the reply is
 * sent (status and message) and non-zero returned. */
static int query_start(struct ctl_flows *f, struct bh_rpc_call *call, const Bulkhead__FlowQuery *q,
		       struct query *qq)
{
	char why[256];
	int rc;

	memset(qq, 0, sizeof(*qq));
	qq->f = f;
	qq->q = q;
	bulkhead__flow_list__init(&qq->out);
	qq->limit = q->limit ? (q->limit < QUERY_LIMIT_MAX ? q->limit : QUERY_LIMIT_MAX)
			     : QUERY_LIMIT_DEF;
	if (q->verdict && !verdict_from_wire(q->verdict)) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "unknown verdict %d", q->verdict);
		return -EINVAL;
	}
	if (q->node[0] && !(qq->node = node_id(f, q->node)))
		qq->node = UINT32_MAX; /* no report from it yet: matches nothing */
	if ((rc = id_set_parse(f->c->comp, q->from, &qq->from, why, sizeof(why))) ||
	    (rc = id_set_parse(f->c->comp, q->to, &qq->to, why, sizeof(why)))) {
		bh_rpc_reply(call, rc == -ENOENT ? ST(NOT_FOUND) : ST(INVALID_ARGUMENT), NULL,
			     "%s", rc == -ENOMEM ? "out of memory" : why);
		return rc;
	}
	if (q->policy[0] && !ctl_compiler_get(f->c->comp, CTL_KIND_POLICY, q->policy)) {
		/* a deleted policy's rules still name it: look, but say so in the log */
		bh_log(LOG_INFO, "flows: query for policy %s, which does not exist now", q->policy);
	}
	namer_init(&qq->nm, f->c->comp);
	qq->recs = calloc(qq->limit, sizeof(*qq->recs));
	qq->recp = calloc(qq->limit, sizeof(*qq->recp));
	qq->text = calloc(qq->limit, sizeof(*qq->text));
	qq->n_events_cap = q->events ? qq->limit : 0;
	qq->evs = calloc(qq->n_events_cap + 1, sizeof(*qq->evs));
	qq->evp = calloc(qq->n_events_cap + 1, sizeof(*qq->evp));
	qq->devs = calloc(qq->n_events_cap + 1, sizeof(*qq->devs));
	qq->etext = calloc(qq->n_events_cap + 1, sizeof(*qq->etext));
	qq->eaddr = calloc(qq->n_events_cap + 1, sizeof(*qq->eaddr));
	qq->n_stats_cap = q->stats ? f->n_names : 0;
	qq->sts = calloc(qq->n_stats_cap + 1, sizeof(*qq->sts));
	qq->stp = calloc(qq->n_stats_cap + 1, sizeof(*qq->stp));
	if (!qq->recs || !qq->recp || !qq->text || !qq->evs || !qq->evp || !qq->devs ||
	    !qq->etext || !qq->eaddr || !qq->sts || !qq->stp) {
		query_free(qq);
		bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
		return -ENOMEM;
	}
	qq->out.flows = qq->recp;
	qq->out.events = qq->evp;
	qq->out.nodes = qq->stp;
	return 0;
}

/* seq: what a follow continues after (the newest committed row, for a history query). */
static void query_answer(struct bh_rpc_call *call, struct query *qq, uint64_t seq)
{
	qq->out.seq = seq;
	bh_rpc_reply(call, ST(OK), &qq->out.base, NULL);
	query_free(qq);
}

/* ---- follow --------------------------------------------------------------------------------- */

struct follower {
	struct bh_rpc_call *call;
	Bulkhead__FlowQuery *q; /* a copy (packed and unpacked) */
	uint64_t deadline;	/* uv_now */
	struct follower *next;
};

/* Rows committed after after_seq that match; 0 rows: nothing to answer yet. */
/* Rows committed after after that match; 0 rows: nothing to answer yet. *last: the sequence
 * number the answer covers up to (the last row taken when the limit cut it short). */
static size_t follow_collect(struct ctl_flows *f, struct query *qq, uint64_t after,
			     uint64_t *last)
{
	uint64_t from = after < f->seq ? after + 1 : f->seq + 1;

	if (f->seq >= RING && from < f->seq - RING + 1)
		from = f->seq - RING + 1; /* older ones were overwritten */
	*last = f->seq;
	for (uint64_t s = from; s <= f->seq; s++) {
		const struct ring_ent *e = &f->ring[s % RING];

		if (e->seq != s)
			continue;
		if (add_row(&e->r, qq)) {
			*last = s - 1; /* s did not fit: the next call starts there */
			break;
		}
	}
	return qq->out.n_flows;
}

static Bulkhead__FlowQuery *query_copy(const Bulkhead__FlowQuery *q)
{
	size_t len = protobuf_c_message_get_packed_size(&q->base);
	uint8_t *buf = malloc(len + 1);
	Bulkhead__FlowQuery *c = NULL;

	if (buf) {
		protobuf_c_message_pack(&q->base, buf);
		c = bulkhead__flow_query__unpack(NULL, len, buf);
	}
	free(buf);
	return c;
}

static void follower_free(struct follower *w)
{
	if (w->q)
		bulkhead__flow_query__free_unpacked(w->q, NULL);
	free(w);
}

/* Answers every follower that has news (or whose wait is over: then with none). */
static void follow_check(struct ctl_flows *f, bool timeouts_only)
{
	struct follower **pp = &f->followers;
	uint64_t now = uv_now(f->c->loop);

	while (*pp) {
		struct follower *w = *pp;
		struct query qq;
		uint64_t last;
		bool expired = now >= w->deadline;

		if (timeouts_only && !expired) {
			pp = &w->next;
			continue;
		}
		if (query_start(f, w->call, w->q, &qq)) {
			*pp = w->next; /* answered with the error */
			follower_free(w);
			continue;
		}
		if (!follow_collect(f, &qq, w->q->after_seq, &last) && !expired) {
			query_free(&qq);
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		query_answer(w->call, &qq, last);
		follower_free(w);
	}
}

static void follow_wake(struct ctl_flows *f)
{
	follow_check(f, false);
}

static void on_follow_timer(uv_timer_t *t)
{
	follow_check(t->data, true);
}

/* ---- QueryFlows ----------------------------------------------------------------------------- */

static void h_query_flows(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__FlowQuery *q = (const void *)req;
	struct ctl_flows *f = arg;
	struct query qq;
	struct bh_error err = {0};
	int64_t now_s = now_ms() / 1000;
	uint32_t since = q->since_s ? q->since_s : 3600;
	int rc;

	if (query_start(f, call, q, &qq))
		return;
	if (q->follow) {
		struct follower *w;
		uint64_t last;

		if (follow_collect(f, &qq, q->after_seq, &last) || !q->wait_ms) {
			query_answer(call, &qq, last);
			return;
		}
		query_free(&qq);
		w = calloc(1, sizeof(*w));
		if (!w || !(w->q = query_copy(q))) {
			free(w);
			bh_rpc_reply(call, ST(INTERNAL), NULL, "out of memory");
			return;
		}
		w->call = call;
		w->deadline = uv_now(f->c->loop) +
			      (q->wait_ms < FOLLOW_WAIT_MAX ? q->wait_ms : FOLLOW_WAIT_MAX);
		w->next = f->followers;
		f->followers = w;
		return;
	}
	{
		struct ctl_flow_filter ff = {
			.since_s = now_s - since,
			.hourly = since > f->o.minute_keep_s,
			.node = qq.node,
			.port = q->port,
			.proto = (uint8_t)q->protocol,
			.verdict = (uint8_t)q->verdict,
		};

		rc = ctl_flowstore_query(f->reader, &ff, add_row, &qq, &err);
		if (rc >= 0 && q->events)
			rc = ctl_flowstore_events(f->reader, now_s - since,
						  qq.node == UINT32_MAX ? UINT32_MAX : qq.node,
						  add_event, &qq, &err);
		if (rc >= 0 && q->stats)
			rc = ctl_flowstore_stats(f->reader, add_stats, &qq, &err);
	}
	if (rc < 0) {
		bh_log(LOG_ERR, "flows: %s", err.msg);
		bh_rpc_reply(call, ST(INTERNAL), NULL, "%s", err.msg);
		query_free(&qq);
		return;
	}
	query_answer(call, &qq, f->seq);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int ctl_flows_init(struct ctl *c, const struct ctl_flows_opts *o, struct bh_error *err)
{
	struct ctl_flows *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return bh_error_set(err, -ENOMEM, "flows: out of memory");
	c->flows = f;
	f->c = c;
	f->o.minute_keep_s = o && o->minute_keep_s ? o->minute_keep_s : 6 * 3600;
	f->o.keep_s = o && o->keep_s ? o->keep_s : 7 * 86400;
	if (f->o.minute_keep_s > f->o.keep_s)
		f->o.minute_keep_s = f->o.keep_s;
	uv_mutex_init(&f->mu);
	uv_cond_init(&f->cv);
	f->ring = calloc(RING, sizeof(*f->ring));
	f->pending = batch_new();
	if (!f->ring || !f->pending)
		return bh_error_set(err, -ENOMEM, "flows: out of memory");
	if ((rc = ctl_flowstore_open(c->dir, false, &f->writer, err)) ||
	    (rc = ctl_flowstore_open(c->dir, true, &f->reader, err)))
		return rc;
	if ((rc = ctl_flowstore_nodes(f->reader, node_loaded, f, err)))
		return bh_error_set(err, rc, "flow store: loading nodes");
	if ((rc = uv_async_init(c->loop, &f->wake, on_written)))
		return bh_error_set(err, -ENOMEM, "flows: %s", uv_strerror(rc));
	uv_timer_init(c->loop, &f->follow_timer);
	f->wake.data = f->follow_timer.data = f;
	f->open_handles = 2;
	uv_timer_start(&f->follow_timer, on_follow_timer, FOLLOW_CHECK_MS, FOLLOW_CHECK_MS);
	if ((rc = uv_thread_create(&f->thread, ingest_thread, f)))
		return bh_error_set(err, -EAGAIN, "flows: starting the ingestion thread: %s",
				    uv_strerror(rc));
	f->thread_started = true;
	if (bh_rpc_server_register(c->rpc, &bulkhead__agent__descriptor, "ReportFlows",
				   BH_RPC_ROLES_AGENT, h_report_flows, f) ||
	    bh_rpc_server_register(c->rpc, &bulkhead__operator__descriptor, "QueryFlows",
				   BH_RPC_ROLES_OPERATOR, h_query_flows, f))
		return bh_error_set(err, -EINVAL, "flows: registering the methods");
	bh_log(LOG_INFO, "flows: store %s/%s, minute buckets kept %u s, hour buckets and events %u s",
	       c->dir, CTL_FLOWS_FILE, f->o.minute_keep_s, f->o.keep_s);
	return 0;
}

/* The handles live in f: the last one closed frees it. */
static void closed_handle(uv_handle_t *h)
{
	struct ctl_flows *f = h->data;

	if (--f->open_handles == 0)
		free(f);
}

void ctl_flows_fini(struct ctl *c)
{
	struct ctl_flows *f = c->flows;

	if (!f)
		return;
	if (f->thread_started) {
		/* what is pending is committed before the thread ends; its calls are forgotten
		 * (the RPC server is gone), so agents send those summaries again: counted twice
		 * rather than lost */
		uv_mutex_lock(&f->mu);
		while (f->writing) {
			uv_mutex_unlock(&f->mu);
			uv_sleep(5);
			uv_mutex_lock(&f->mu);
		}
		batch_free(f->written);
		f->written = NULL;
		if (!batch_empty(f->pending)) {
			f->writing = f->pending;
			f->pending = NULL;
		}
		f->stop = true;
		uv_cond_signal(&f->cv);
		uv_mutex_unlock(&f->mu);
		uv_thread_join(&f->thread);
	}
	while (f->followers) {
		struct follower *w = f->followers;

		f->followers = w->next;
		follower_free(w);
	}
	batch_free(f->pending);
	batch_free(f->written);
	ctl_flowstore_close(f->writer);
	ctl_flowstore_close(f->reader);
	for (size_t i = 0; i < f->n_names; i++)
		free(f->names[i]);
	free(f->names);
	bh_smap_free(&f->node_ids);
	free(f->ring);
	uv_cond_destroy(&f->cv);
	uv_mutex_destroy(&f->mu);
	c->flows = NULL;
	if (!f->open_handles) {
		free(f);
		return;
	}
	uv_close((uv_handle_t *)&f->wake, closed_handle);
	uv_close((uv_handle_t *)&f->follow_timer, closed_handle);
}

void ctl_flows_counters(const struct ctl *c, struct ctl_flows_counters *out)
{
	const struct ctl_flows *f = c->flows;

	memset(out, 0, sizeof(*out));
	if (!f)
		return;
	*out = f->n;
	out->pending_rows = f->pending->agg.n;
}

int ctl_flows_rule_hits(const struct ctl *c, int64_t since_s,
			int (*cb)(uint32_t rule, uint64_t packets, uint64_t flows, int64_t last_ms,
				  void *ctx),
			void *ctx, struct bh_error *err)
{
	if (!c->flows)
		return 0;
	return ctl_flowstore_rule_hits(c->flows->reader, since_s, cb, ctx, err);
}

uint32_t ctl_flows_retention(const struct ctl *c)
{
	return c->flows ? c->flows->o.keep_s : 0;
}
