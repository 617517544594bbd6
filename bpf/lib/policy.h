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

/* Decides a flow opened in direction dir to port (ICMP type) of proto, from the local endpoint to
 * or from a peer of identity remote. An explicit deny wins over any allow; no match falls back to
 * the endpoint's default for that direction. Fills d; never fails. */
static __always_inline void bh_policy_decide(void *policy, const struct bh_gen_config *cfg,
					     const struct bh_endpoint_val *ep, __u32 remote,
					     __u8 dir, __u8 proto, __u16 port,
					     struct bh_decision *d)
{
	__u32 l4 = ((__u32)proto << 16) | port;
	__u32 rule;

	dir &= 1;
	d->local_id = ep->identity;
	d->remote_id = remote;
	d->dir = dir;
	d->port = port;
	rule = bh_policy_match(policy, cfg->plen_mask[dir][1], ep->identity, remote, dir, 1, l4);
	if (rule) {
		d->verdict = BH_VERDICT_DENY;
		d->rule_id = rule;
		d->reason = BH_REASON_POLICY;
		return;
	}
	rule = bh_policy_match(policy, cfg->plen_mask[dir][0], ep->identity, remote, dir, 0, l4);
	if (rule) {
		d->verdict = BH_VERDICT_ALLOW;
		d->rule_id = rule;
		return;
	}
	d->verdict = ep->default_verdict[dir] == BH_VERDICT_ALLOW ? BH_VERDICT_ALLOW
								   : BH_VERDICT_DENY;
	d->rule_id = ep->default_rule[dir];
	d->reason = BH_REASON_POLICY;
}

#endif
