// SPDX-License-Identifier: Apache-2.0
/* Flow export (flowexport.h): the spool between the datapath's counters and ReportFlows. */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bulkhead/util.h"
#include "flowexport.h"

struct spooled {
	struct bh_flow_key k;
	uint64_t revision, packets, bytes;
	int64_t first_ms, last_ms;
};

struct spooled_event {
	struct bh_event e;
	int64_t at_ms;
	char ifname[16];
};

/* A ring: n items from head; cap fixed, storage grown as it fills. */
struct agent_flowx {
	struct spooled *s;
	size_t cap, alloc, head, n;
	struct spooled_event *ev;
	size_t ev_cap, ev_alloc, ev_head, ev_n;
	struct agent_flowx_counters c;
};

static int64_t real_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int agent_flowx_create(struct agent_flowx **out, uint32_t spool, uint32_t events)
{
	struct agent_flowx *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	x->cap = spool ? spool : 1;
	x->ev_cap = events;
	x->c.started_ms = real_ms();
	*out = x;
	return 0;
}

void agent_flowx_destroy(struct agent_flowx *x)
{
	if (!x)
		return;
	free(x->s);
	free(x->ev);
	free(x);
}

/* Makes room for one more item in a ring of n items from *head in *alloc slots (at most cap):
 * grows the storage, laying the items out from 0 again. */
static int ring_room(void **v, size_t *alloc, size_t cap, size_t n, size_t *head, size_t size)
{
	size_t na;
	char *p;

	if (n < *alloc)
		return 0;
	if (*alloc >= cap)
		return -ENOSPC;
	na = *alloc ? *alloc * 2 : 1024;
	if (na > cap)
		na = cap;
	p = malloc(na * size);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(p + i * size, (char *)*v + ((*head + i) % *alloc) * size, size);
	free(*v);
	*v = p;
	*alloc = na;
	*head = 0;
	return 0;
}

/* The kernel stamps CLOCK_MONOTONIC; reports carry Unix time. */
static int64_t wall_ms(uint64_t mono_ns)
{
	return (int64_t)(bh_mono_ns_to_unix_ns(mono_ns) / 1000000);
}

static int drained(const struct agent_dp_flow *f, void *ctx)
{
	void **a = ctx;
	struct agent_flowx *x = a[0];
	const uint64_t *rev = a[1];
	struct spooled *s;

	if (!f->val.packets) /* nothing to say */
		return 0;
	x->c.drained++;
	if (f->key.verdict < 4) {
		x->c.packets[f->key.verdict] += f->val.packets;
		x->c.bytes[f->key.verdict] += f->val.bytes;
	}
	if (x->n == x->cap ||
	    ring_room((void **)&x->s, &x->alloc, x->cap, x->n, &x->head, sizeof(*x->s))) {
		x->c.dropped++;
		return 0;
	}
	s = &x->s[(x->head + x->n) % x->alloc];
	*s = (struct spooled){
		.k = f->key,
		.revision = *rev,
		.packets = f->val.packets,
		.bytes = f->val.bytes,
		.first_ms = wall_ms(f->val.first_seen),
		.last_ms = wall_ms(f->val.last_seen),
	};
	x->n++;
	return 0;
}

int agent_flowx_drain(struct agent_flowx *x, struct agent_dp *dp, uint64_t revision)
{
	void *a[2] = {x, &revision};

	return agent_dp_flows_drain(dp, drained, a);
}

void agent_flowx_event(struct agent_flowx *x, const struct bh_event *e)
{
	struct spooled_event *s;

	if (x->ev_n == x->ev_cap || ring_room((void **)&x->ev, &x->ev_alloc, x->ev_cap, x->ev_n,
					      &x->ev_head, sizeof(*x->ev))) {
		x->c.events_dropped++;
		return;
	}
	s = &x->ev[(x->ev_head + x->ev_n) % x->ev_alloc];
	s->e = *e;
	s->at_ms = wall_ms(e->ts);
	if (!if_indextoname(e->ifindex, s->ifname))
		s->ifname[0] = '\0';
	x->ev_n++;
}

static Bulkhead__FlowVerdict verdict_wire(uint8_t v)
{
	switch (v) {
	case BH_VERDICT_ALLOW:
		return BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_ALLOWED;
	case BH_VERDICT_DENY:
		return BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_DENIED;
	case BH_VERDICT_WOULD_DENY:
		return BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_WOULD_DENY;
	default:
		return BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_UNSPECIFIED;
	}
}

int agent_flowx_report(struct agent_flowx *x, struct agent_flowx_report *r,
		       const uint64_t kstats[BH_STAT_NR])
{
	size_t n = x->n < AGENT_FLOWX_BATCH ? x->n : AGENT_FLOWX_BATCH;
	size_t ne = x->ev_n < 1024 ? x->ev_n : 1024;

	memset(r, 0, sizeof(*r));
	bulkhead__flow_report__init(&r->msg);
	if (!n && !ne)
		return 0;
	r->sums = calloc(n + 1, sizeof(*r->sums));
	r->sump = calloc(n + 1, sizeof(*r->sump));
	r->evs = calloc(ne + 1, sizeof(*r->evs));
	r->evp = calloc(ne + 1, sizeof(*r->evp));
	r->addrs = calloc(ne + 1, sizeof(*r->addrs));
	r->ifnames = calloc(ne + 1, sizeof(*r->ifnames));
	if (!r->sums || !r->sump || !r->evs || !r->evp || !r->addrs || !r->ifnames) {
		agent_flowx_report_release(r);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct spooled *s = &x->s[(x->head + i) % x->alloc];
		Bulkhead__FlowSummary *o = &r->sums[i];

		bulkhead__flow_summary__init(o);
		o->src_identity = s->k.src_id;
		o->dst_identity = s->k.dst_id;
		o->protocol = s->k.proto;
		o->port = s->k.port;
		o->direction = s->k.dir == BH_DIR_EGRESS ? BULKHEAD__DIRECTION__DIRECTION_EGRESS
							  : BULKHEAD__DIRECTION__DIRECTION_INGRESS;
		o->verdict = verdict_wire(s->k.verdict);
		o->rule_id = s->k.rule_id;
		o->revision = s->revision;
		o->packets = s->packets;
		o->bytes = s->bytes;
		o->first_seen_ms = s->first_ms;
		o->last_seen_ms = s->last_ms;
		r->sump[i] = o;
	}
	for (size_t i = 0; i < ne; i++) {
		const struct spooled_event *s = &x->ev[(x->ev_head + i) % x->ev_alloc];
		Bulkhead__DenyEvent *o = &r->evs[i];
		size_t alen = s->e.family == 2 ? 4 : 16; /* AF_INET */

		bulkhead__deny_event__init(o);
		o->at_ms = s->at_ms;
		memcpy(r->addrs[i][0], s->e.saddr, alen);
		memcpy(r->addrs[i][1], s->e.daddr, alen);
		o->src_address = (ProtobufCBinaryData){alen, r->addrs[i][0]};
		o->dst_address = (ProtobufCBinaryData){alen, r->addrs[i][1]};
		o->src_port = s->e.sport;
		o->dst_port = s->e.dport;
		o->protocol = s->e.proto;
		o->direction = s->e.dir == BH_DIR_EGRESS ? BULKHEAD__DIRECTION__DIRECTION_EGRESS
							  : BULKHEAD__DIRECTION__DIRECTION_INGRESS;
		o->verdict = verdict_wire(s->e.verdict);
		o->rule_id = s->e.rule_id;
		o->local_identity = s->e.local_id;
		o->remote_identity = s->e.remote_id;
		memcpy(r->ifnames[i], s->ifname, sizeof(r->ifnames[i]));
		o->ifname = r->ifnames[i];
		r->evp[i] = o;
	}
	r->msg.flows = r->sump;
	r->msg.n_flows = n;
	r->msg.events = r->evp;
	r->msg.n_events = ne;
	r->msg.agent_started_ms = x->c.started_ms;
	r->msg.summaries_dropped = x->c.dropped;
	r->msg.events_dropped = x->c.events_dropped;
	r->msg.kernel_events_not_sent =
		kstats ? kstats[BH_STAT_EVENTS_RATELIMITED] + kstats[BH_STAT_EVENTS_RINGBUF_FULL] : 0;
	r->msg.kernel_flows_not_counted = kstats ? kstats[BH_STAT_FLOWS_FULL] : 0;
	return (int)(n + ne);
}

void agent_flowx_done(struct agent_flowx *x, const struct agent_flowx_report *r, bool drop)
{
	/* the report took the oldest: nothing else leaves the head meanwhile */
	size_t n = r->msg.n_flows <= x->n ? r->msg.n_flows : x->n;
	size_t ne = r->msg.n_events <= x->ev_n ? r->msg.n_events : x->ev_n;

	if (n) {
		x->head = (x->head + n) % x->alloc;
		x->n -= n;
	}
	if (ne) {
		x->ev_head = (x->ev_head + ne) % x->ev_alloc;
		x->ev_n -= ne;
	}
	if (drop) {
		x->c.dropped += n;
		x->c.events_dropped += ne;
	} else {
		x->c.sent += n;
		x->c.events_sent += ne;
		x->c.reports++;
	}
}

void agent_flowx_report_release(struct agent_flowx_report *r)
{
	free(r->sums);
	free(r->sump);
	free(r->evs);
	free(r->evp);
	free(r->addrs);
	free(r->ifnames);
	memset(r, 0, sizeof(*r));
}

void agent_flowx_counters(const struct agent_flowx *x, struct agent_flowx_counters *out)
{
	*out = x->c;
	out->spooled = x->n;
}
