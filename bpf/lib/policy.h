/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/* Identity and policy lookups against one generation of the rule set. */
#ifndef BULKHEAD_LIB_POLICY_H
#define BULKHEAD_LIB_POLICY_H

/* What decided a packet, before the endpoint's mode is applied. */
struct bh_decision {
	__u32 local_id;
	__u32 remote_id;
	__u32 rule_id;
	__s32 reason;	/* enum bh_reason when verdict is DENY */
	__u16 port;	/* destination port / ICMP type the decision was made for */
	__u8 dir;	/* enum bh_dir of the flow's opening packet */
	__u8 verdict;	/* BH_VERDICT_ALLOW or BH_VERDICT_DENY */
};

/* The identity of a peer address; BH_ID_WORLD when the ipcache does not know it. */
static __always_inline __u32 bh_ipcache_identity(void *ipcache, __u8 family, const __u8 *addr)
{
	struct bh_ipcache_key k = {};
	struct bh_ipcache_val *v;

	k.family = family;
	if (family == 2) {
		k.prefixlen = 32 + 32;
		__builtin_memcpy(k.addr, addr, 4);
	} else {
		k.prefixlen = 32 + 128;
		__builtin_memcpy(k.addr, addr, 16);
	}
	v = bpf_map_lookup_elem(ipcache, &k);
	return v ? v->identity : BH_ID_WORLD;
}

/* First matching key of one kind (allow or deny), most specific first: exact peer before any
 * peer, and within each the longest l4 prefix in use first. Returns the rule id or 0. */
static __always_inline __u32 bh_policy_match(void *policy, __u32 mask, __u32 local, __u32 remote,
					     __u8 dir, __u8 deny, __u32 l4)
{
	struct bh_policy_key k = {};
	struct bh_policy_val *v;

	if (!mask)
		return 0;
	k.local_id = local;
	k.dir = dir;
	k.deny = deny;
	for (int peer = 0; peer < 2; peer++) {
		k.remote_id = peer == 0 ? remote : BH_ID_ANY;
		for (int plen = BH_L4_PLEN_MAX; plen >= 0; plen--) {
			if (!(mask & (1u << plen)))
				continue;
			k.plen = plen;
			k.l4 = l4 & bh_l4_mask(plen);
			v = bpf_map_lookup_elem(policy, &k);
			if (v)
				return v->rule_id;
		}
	}
	return 0;
}

/* What bh_policy_decide() decides about. */
struct bh_decide_args {
	struct bh_endpoint_val ep; /* the local endpoint (a copy) */
	__u32 gen;		   /* generation read for this packet */
	__u32 remote;		   /* the peer's identity */
	__u16 port;		   /* destination port or ICMP type of the flow's opening packet */
	__u8 dir;		   /* direction of the flow's opening packet */
	__u8 proto;
};

/*
 * Decides a flow opened in direction dir to port (ICMP type) of proto, from the local endpoint to
 * or from a peer of identity remote. An explicit deny wins over any allow; no match falls back to
 * the endpoint's default for that direction. Fills d; returns 0 (or -1 if the generation is
 * missing, with d a default deny).
 *
 * A global (not static) function, on purpose: the verifier checks a global function once, on
 * its own, instead of once for every path that reaches the call. The rule walk is a loop of up
 * to 100 lookups, and inlined it cost two thirds of the verifier's instruction budget. The price
 * is that a global function cannot take map pointers, so it looks the generation up itself.
 */
__noinline int bh_policy_decide(const struct bh_decide_args *a, struct bh_decision *d)
{
	const struct bh_gen_config *cfg;
	__u32 gen, dir, l4, rule;
	void *policy;

	/* a global function's pointer arguments may be NULL as far as the verifier knows */
	if (!a || !d)
		return -1;
	gen = a->gen & 1;
	dir = a->dir & 1;
	l4 = ((__u32)a->proto << 16) | a->port;
	d->local_id = a->ep.identity;
	d->remote_id = a->remote;
	d->dir = dir;
	d->port = a->port;
	d->reason = BH_REASON_POLICY;
	policy = bpf_map_lookup_elem(&bh_policy, &gen);
	cfg = bpf_map_lookup_elem(&bh_gen_config, &gen);
	if (!policy || !cfg) {
		d->verdict = BH_VERDICT_DENY;
		d->rule_id = BH_RULE_NONE;
		return -1;
	}
	rule = bh_policy_match(policy, cfg->plen_mask[dir][1], a->ep.identity, a->remote, dir, 1,
			       l4);
	if (rule) {
		d->verdict = BH_VERDICT_DENY;
		d->rule_id = rule;
		return 0;
	}
	rule = bh_policy_match(policy, cfg->plen_mask[dir][0], a->ep.identity, a->remote, dir, 0,
			       l4);
	if (rule) {
		d->verdict = BH_VERDICT_ALLOW;
		d->rule_id = rule;
		return 0;
	}
	d->verdict = a->ep.default_verdict[dir] == BH_VERDICT_ALLOW ? BH_VERDICT_ALLOW
								    : BH_VERDICT_DENY;
	d->rule_id = a->ep.default_rule[dir];
	return 0;
}

#endif
