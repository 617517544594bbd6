// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only)
/*
 * Bulkhead datapath: tc clsact programs for the ingress and egress hooks of a protected interface.
 *
 * Per packet: read the active generation once (state.epoch & 1), find the endpoint by ifindex,
 * parse, then either follow the flow's conntrack entry (decided under the current epoch) or decide
 * by policy: peer identity from the ipcache, rule lookup with wildcard fallbacks, deny first. The
 * verdict is counted per flow, and denies are reported through a rate-limited ring buffer.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bulkhead.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings, fixed by the agent before load. (The event rate is in bh_state: it changes at
 * run time and outlives a reload.) */
const volatile __u64 cfg_ct_tcp_timeout_ns = 21600ull * 1000000000ull;
const volatile __u64 cfg_ct_other_timeout_ns = 120ull * 1000000000ull;

#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&bh_stats, &idx);

	if (c)
		*c += 1;
}

/* ---- flow accounting ----------------------------------------------------------------------- */

static __always_inline void account(const struct bh_decision *d, __u8 proto, __u8 verdict,
				    __u32 bytes, __u64 now)
{
	struct bh_flow_key k = {};
	struct bh_flow_val *v, nv;

	if (d->dir == BH_DIR_INGRESS) {
		k.src_id = d->remote_id;
		k.dst_id = d->local_id;
	} else {
		k.src_id = d->local_id;
		k.dst_id = d->remote_id;
	}
	k.rule_id = d->rule_id;
	k.port = d->port;
	k.proto = proto;
	k.dir = d->dir;
	k.verdict = verdict;
	v = bpf_map_lookup_elem(&bh_flows, &k);
	if (v) {
		/* another CPU may have made the entry: this CPU's copy starts zeroed */
		if (!v->first_seen)
			v->first_seen = now;
		v->packets++;
		v->bytes += bytes;
		v->last_seen = now;
		return;
	}
	nv.packets = 1;
	nv.bytes = bytes;
	nv.first_seen = now;
	nv.last_seen = now;
	/* Keys are shared between CPUs (only values are per CPU): another CPU may insert the
	 * same key between our lookup and this insert. Then count on the entry it made. */
	if (bpf_map_update_elem(&bh_flows, &k, &nv, BPF_NOEXIST) < 0) {
		v = bpf_map_lookup_elem(&bh_flows, &k);
		if (v) {
			if (!v->first_seen)
				v->first_seen = now;
			v->packets++;
			v->bytes += bytes;
			v->last_seen = now;
		} else {
			stat_inc(BH_STAT_FLOWS_FULL);
		}
	}
}

/* ---- events -------------------------------------------------------------------------------- */

static __always_inline bool ratelimit_take(__u64 rate, __u64 now)
{
	__u32 zero = 0;
	struct bh_ratelimit *rl = bpf_map_lookup_elem(&bh_ratelimit, &zero);
	__u64 burst = rate * BH_RL_SCALE, elapsed;

	if (!rl || !rate)
		return false;
	elapsed = now - rl->last_ns;
	rl->last_ns = now;
	/* refill: rate events per second, in 1/BH_RL_SCALE units; cap at one second's worth */
	if (elapsed > 1000000000ull)
		rl->tokens = burst;
	else
		rl->tokens += elapsed * rate / (1000000000ull / BH_RL_SCALE);
	if (rl->tokens > burst)
		rl->tokens = burst;
	if (rl->tokens < BH_RL_SCALE)
		return false;
	rl->tokens -= BH_RL_SCALE;
	return true;
}

static __always_inline void emit_event(struct __sk_buff *skb, const struct bh_pkt *p,
				       const struct bh_decision *d, __u8 verdict, __u64 rate,
				       __u64 now)
{
	struct bh_event *e;

	if (!ratelimit_take(rate, now)) {
		stat_inc(BH_STAT_EVENTS_RATELIMITED);
		return;
	}
	e = bpf_ringbuf_reserve(&bh_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(BH_STAT_EVENTS_RINGBUF_FULL);
		return;
	}
	e->ts = now;
	e->ifindex = skb->ifindex;
	e->local_id = d->local_id;
	e->remote_id = d->remote_id;
	e->rule_id = d->rule_id;
	e->reason = d->reason;
	e->family = p->family;
	e->proto = p->proto;
	e->dir = d->dir;
	e->verdict = verdict;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	e->sport = p->sport;
	e->dport = p->dport;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	stat_inc(BH_STAT_EVENTS_SENT);
}

/* ---- conntrack ----------------------------------------------------------------------------- */

/* Lexicographic order on (address, port), as 32-bit words: any total order will do. */
static __always_inline int side_cmp(const __u8 *a, __u16 pa, const __u8 *b, __u16 pb)
{
	const __u32 *wa = (const __u32 *)a, *wb = (const __u32 *)b;

	for (int i = 0; i < 4; i++) {
		if (wa[i] != wb[i])
			return wa[i] < wb[i] ? -1 : 1;
	}
	if (pa != pb)
		return pa < pb ? -1 : 1;
	return 0;
}

/* Fills k with the canonical tuple of (saddr, sport) -> (daddr, dport); returns 1 if the source
 * side is side a. */
static __always_inline __u8 ct_key_fill(struct bh_ct_key *k, __u32 ifindex, __u8 family,
					__u8 proto, __u8 icmp_kind, const __u8 *saddr, __u16 sport,
					const __u8 *daddr, __u16 dport)
{
	__u8 src_is_a = side_cmp(saddr, sport, daddr, dport) <= 0;

	k->ifindex = ifindex;
	k->family = family;
	k->proto = proto;
	/* ICMP flows of different kinds never share an entry (an echo with identifier 0 is not
	 * the ICMP message of type 0 to port 0) */
	k->pad = icmp_kind;
	if (src_is_a) {
		__builtin_memcpy(k->addr_a, saddr, 16);
		__builtin_memcpy(k->addr_b, daddr, 16);
		k->port_a = sport;
		k->port_b = dport;
	} else {
		__builtin_memcpy(k->addr_a, daddr, 16);
		__builtin_memcpy(k->addr_b, saddr, 16);
		k->port_a = dport;
		k->port_b = sport;
	}
	return src_is_a;
}

static __always_inline bool ct_expired(const struct bh_ct_val *ct, __u8 proto, __u64 now)
{
	__u64 timeout = proto == IPPROTO_TCP_ ? cfg_ct_tcp_timeout_ns : cfg_ct_other_timeout_ns;

	return now - ct->last_seen > timeout;
}

/* ---- the hook ------------------------------------------------------------------------------ */

/* A first fragment's decision is what its datagram's later fragments follow, whichever path
 * (policy, conntrack, ICMP error) decided it. */
static __always_inline void frag_remember(struct __sk_buff *skb, const struct bh_pkt *p,
					  const struct bh_decision *d)
{
	struct bh_frag_key fk = {};
	struct bh_frag_val fv = {};

	fk.ifindex = skb->ifindex;
	fk.id = p->frag_id;
	fk.family = p->family;
	fk.proto = p->proto;
	__builtin_memcpy(fk.saddr, p->saddr, 16);
	__builtin_memcpy(fk.daddr, p->daddr, 16);
	fv.local_id = d->local_id;
	fv.remote_id = d->remote_id;
	fv.rule_id = d->rule_id;
	fv.port = d->port;
	fv.dir = d->dir;
	fv.verdict = d->verdict;
	bpf_map_update_elem(&bh_frag, &fk, &fv, BPF_ANY);
}

/* Final action for a decision under the endpoint's mode; counts and reports it. */
static __always_inline int finish(struct __sk_buff *skb, const struct bh_pkt *p,
				  const struct bh_endpoint_val *ep, const struct bh_decision *d,
				  const struct bh_state *st, bool report, __u64 now)
{
	__u8 verdict = d->verdict;

	if (verdict == BH_VERDICT_DENY && ep->mode == BH_MODE_OBSERVE)
		verdict = BH_VERDICT_WOULD_DENY;
	if (p->frag == BH_FRAG_FIRST)
		frag_remember(skb, p, d);
	account(d, p->proto, verdict, skb->len, now);
	if (verdict != BH_VERDICT_ALLOW && report)
		emit_event(skb, p, d, verdict, st->events_per_sec, now);
	return verdict == BH_VERDICT_DENY ? TC_ACT_SHOT : TC_ACT_OK;
}

static __always_inline int bh_handle(struct __sk_buff *skb, __u8 hook)
{
	struct bh_endpoint_val *ep;
	struct bh_decision d = {};
	struct bh_pkt p = {};
	struct bh_ct_key ck;
	struct bh_ct_val *ct, *reopen = NULL, nct;
	struct bh_state *st;
	void *eps, *ipcache;
	__u32 zero = 0, gen, ifindex = skb->ifindex, remote;
	__u64 epoch, now;
	const __u8 *remote_addr;
	__u8 dir, src_is_a, eval_dir;
	bool bare_syn;
	__u16 eval_port;
	int rc;

	st = bpf_map_lookup_elem(&bh_state, &zero);
	if (!st)
		return TC_ACT_OK;
	/* The one read of the active generation for this packet: everything below uses gen. */
	epoch = READ_ONCE_U64(st->epoch);
	gen = epoch & 1;
	eps = bpf_map_lookup_elem(&bh_endpoints, &gen);
	ipcache = bpf_map_lookup_elem(&bh_ipcache, &gen);
	if (!eps || !ipcache)
		return TC_ACT_OK;
	ep = bpf_map_lookup_elem(eps, &ifindex);
	if (!ep) {
		stat_inc(BH_STAT_UNMANAGED);
		return TC_ACT_OK;
	}
	dir = (hook ^ (ep->flags & BH_EP_F_VETH)) & 1;
	/* The coarse clock (CLOCK_MONOTONIC_COARSE, a tick's resolution) is enough for conntrack
	 * timeouts, the event rate and flow first/last seen, and costs a memory read where the
	 * precise one costs ~30 ns on a paravirtual clock. */
	now = bpf_ktime_get_coarse_ns();

	rc = bh_parse(skb, &p);
	if (rc == BH_PARSE_NOT_IP)
		return TC_ACT_OK;
	d.local_id = ep->identity;
	d.dir = dir;
	d.port = p.port;
	remote_addr = dir == BH_DIR_INGRESS ? p.saddr : p.daddr;
	if (rc == BH_PARSE_MALFORMED) {
		stat_inc(BH_STAT_MALFORMED);
		d.remote_id = p.family ? bh_ipcache_identity(ipcache, p.family, remote_addr)
				       : BH_ID_WORLD;
		d.verdict = BH_VERDICT_DENY;
		d.rule_id = BH_RULE_MALFORMED;
		d.reason = BH_REASON_MALFORMED;
		return finish(skb, &p, ep, &d, st, true, now);
	}
	if (p.icmp_kind == BH_ICMP_ND) {
		d.remote_id = bh_ipcache_identity(ipcache, p.family, remote_addr);
		d.verdict = BH_VERDICT_ALLOW;
		d.rule_id = BH_RULE_BUILTIN_ND;
		return finish(skb, &p, ep, &d, st, false, now);
	}

	/* Later fragments carry no L4 header: they follow their first fragment. */
	if (p.frag == BH_FRAG_LATER) {
		struct bh_frag_key fk = {};
		struct bh_frag_val *fv;

		fk.ifindex = ifindex;
		fk.id = p.frag_id;
		fk.family = p.family;
		fk.proto = p.proto;
		__builtin_memcpy(fk.saddr, p.saddr, 16);
		__builtin_memcpy(fk.daddr, p.daddr, 16);
		fv = bpf_map_lookup_elem(&bh_frag, &fk);
		if (fv) {
			d.remote_id = fv->remote_id;
			d.rule_id = fv->rule_id;
			d.port = fv->port;
			d.dir = fv->dir;
			d.verdict = fv->verdict;
			d.reason = BH_REASON_POLICY;
			return finish(skb, &p, ep, &d, st, false, now);
		}
		d.remote_id = bh_ipcache_identity(ipcache, p.family, remote_addr);
		if (ep->default_verdict[dir] == BH_VERDICT_ALLOW) {
			d.verdict = BH_VERDICT_ALLOW;
			d.rule_id = ep->default_rule[dir];
		} else {
			d.verdict = BH_VERDICT_DENY;
			d.rule_id = BH_RULE_FRAG_UNKNOWN;
			d.reason = BH_REASON_FRAG_UNKNOWN;
		}
		return finish(skb, &p, ep, &d, st, true, now);
	}

	/* An ICMP error about a flow we allowed passes with that flow. The quoted packet must be
	 * one the error's receiver sent, and its flow live and decided under this generation. */
	if (p.icmp_kind == BH_ICMP_ERROR && side_cmp(p.inner.saddr, 0, p.daddr, 0) == 0) {
		ct_key_fill(&ck, ifindex, p.family, p.inner.proto,
			    p.inner.proto == IPPROTO_ICMP_ || p.inner.proto == IPPROTO_ICMPV6_
				    ? BH_ICMP_ECHO
				    : BH_ICMP_NONE,
			    p.inner.saddr, p.inner.sport, p.inner.daddr, p.inner.dport);
		ct = bpf_map_lookup_elem(&bh_ct, &ck);
		if (ct && ct->epoch == epoch && !ct_expired(ct, p.inner.proto, now)) {
			d.remote_id = ct->remote_id;
			d.rule_id = ct->rule_id;
			d.port = ct->port;
			d.dir = ct->dir;
			d.verdict = ct->verdict == BH_VERDICT_WOULD_DENY ? BH_VERDICT_DENY
									 : BH_VERDICT_ALLOW;
			d.reason = BH_REASON_POLICY;
			return finish(skb, &p, ep, &d, st, false, now);
		}
	}

	src_is_a = ct_key_fill(&ck, ifindex, p.family, p.proto, p.icmp_kind, p.saddr, p.sport,
			       p.daddr, p.dport);
	ct = bpf_map_lookup_elem(&bh_ct, &ck);
	/* A bare SYN always goes through policy: a reused tuple does not ride on an old decision. */
	bare_syn = p.proto == IPPROTO_TCP_ &&
		   (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	if (ct && !bare_syn && !ct_expired(ct, p.proto, now)) {
		if (ct->epoch == epoch) {
			ct->last_seen = now;
			d.remote_id = ct->remote_id;
			d.rule_id = ct->rule_id;
			d.port = ct->port;
			d.dir = ct->dir;
			d.verdict = ct->verdict == BH_VERDICT_WOULD_DENY ? BH_VERDICT_DENY
									 : BH_VERDICT_ALLOW;
			d.reason = BH_REASON_POLICY;
			return finish(skb, &p, ep, &d, st, false, now);
		}
		/* Policy changed since this flow was decided: decide it again, as the packet that
		 * opened it (its direction and port), against the new generation. */
		eval_dir = ct->dir;
		eval_port = ct->port;
	} else {
		/* a new flow, or a bare SYN re-opening a tuple: its entry (if any) is rewritten
		 * in place below rather than replaced, which spares an LRU update */
		reopen = ct;
		ct = NULL;
		eval_dir = dir;
		eval_port = p.port;
	}

	/* One call site for the policy walk keeps the verifier's work (and the program) small. */
	remote = bh_ipcache_identity(ipcache, p.family, remote_addr);
	{
		struct bh_decide_args a = {
			.ep = *ep, .gen = gen, .remote = remote, .port = eval_port,
			.dir = eval_dir, .proto = p.proto,
		};

		bh_policy_decide(&a, &d);
	}

	if (ct) {
		if (d.verdict == BH_VERDICT_DENY && ep->mode == BH_MODE_ENFORCE) {
			bpf_map_delete_elem(&bh_ct, &ck);
			d.reason = BH_REASON_REVOKED;
			return finish(skb, &p, ep, &d, st, true, now);
		}
		ct->epoch = epoch;
		ct->last_seen = now;
		ct->remote_id = d.remote_id;
		ct->rule_id = d.rule_id;
		ct->verdict = d.verdict == BH_VERDICT_DENY ? BH_VERDICT_WOULD_DENY : BH_VERDICT_ALLOW;
		return finish(skb, &p, ep, &d, st, d.verdict == BH_VERDICT_DENY, now);
	}

	/* A new flow: remember it when it passes, so that its replies pass too. ICMP errors are
	 * judged one by one and open no flow. */
	if ((d.verdict == BH_VERDICT_ALLOW || ep->mode == BH_MODE_OBSERVE) &&
	    p.icmp_kind != BH_ICMP_ERROR) {
		__builtin_memset(&nct, 0, sizeof(nct));
		nct.epoch = epoch;
		nct.last_seen = now;
		nct.local_id = d.local_id;
		nct.remote_id = d.remote_id;
		nct.rule_id = d.rule_id;
		nct.port = d.port;
		nct.dir = d.dir;
		nct.verdict = d.verdict == BH_VERDICT_DENY ? BH_VERDICT_WOULD_DENY : BH_VERDICT_ALLOW;
		nct.opener_is_a = src_is_a;
		if (reopen)
			__builtin_memcpy(reopen, &nct, sizeof(nct));
		else if (bpf_map_update_elem(&bh_ct, &ck, &nct, BPF_ANY) < 0)
			stat_inc(BH_STAT_CT_CREATE_FAILED);
	} else if (reopen) {
		/* a re-opening SYN that policy now denies: the old flow is over */
		bpf_map_delete_elem(&bh_ct, &ck);
	}
	return finish(skb, &p, ep, &d, st, true, now);
}

SEC("tc")
int bh_tc_ingress(struct __sk_buff *skb)
{
	return bh_handle(skb, BH_DIR_INGRESS);
}

SEC("tc")
int bh_tc_egress(struct __sk_buff *skb)
{
	return bh_handle(skb, BH_DIR_EGRESS);
}
