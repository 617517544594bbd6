/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/*
 * Map layouts shared by the BPF programs (bpf/bulkhead.bpf.c) and the agent (agent/dataplane.c).
 * Every key and value is built from fixed-width kernel types with explicit padding, and its size is
 * checked below: the two sides must agree byte for byte.
 */
#ifndef BULKHEAD_BPF_H
#define BULKHEAD_BPF_H

#include <linux/types.h>

/* ---- identities ---------------------------------------------------------------------------- */

#define BH_ID_ANY	 0   /* in a rule key: any peer. Never a real identity. */
#define BH_ID_HOST	 1   /* the node itself */
#define BH_ID_WORLD	 2   /* an address the ipcache does not know */
#define BH_ID_CONTROLLER 3   /* the Bulkhead controller */
#define BH_ID_USER_MIN	 256 /* first identity the controller allocates to a label set */

/* ---- reserved rule ids: what decided a packet when no policy rule did ----------------------- */

#define BH_RULE_NONE	     0 /* no decision recorded */
#define BH_RULE_BUILTIN_ND   1 /* ICMPv6 neighbour discovery and MLD always pass */
#define BH_RULE_MALFORMED    2 /* truncated or malformed IP packet: dropped */
#define BH_RULE_FRAG_UNKNOWN 3 /* non-first fragment of a flow we never saw: default verdict */
#define BH_RULE_RESERVED_MAX 15 /* ids up to this are reserved for the datapath */

/* ---- verdicts, directions, modes ----------------------------------------------------------- */

enum bh_dir {
	BH_DIR_INGRESS = 0, /* towards the endpoint */
	BH_DIR_EGRESS = 1,  /* leaving the endpoint */
};

enum bh_verdict {
	BH_VERDICT_NONE = 0,
	BH_VERDICT_ALLOW = 1,
	BH_VERDICT_DENY = 2,
	BH_VERDICT_WOULD_DENY = 3, /* denied by policy, passed because the endpoint observes */
};

enum bh_mode {
	BH_MODE_ENFORCE = 0,
	BH_MODE_OBSERVE = 1,
};

/* Drop reasons, as named negative codes (Cilium style), carried in events. */
enum bh_reason {
	BH_REASON_POLICY = -130,	  /* a rule (or the default) denied it */
	BH_REASON_MALFORMED = -131,	  /* could not parse the IP or L4 header */
	BH_REASON_FRAG_UNKNOWN = -132,	  /* later fragment, first fragment never seen */
	BH_REASON_REVOKED = -133,	  /* established flow, policy changed and now denies it */
};

/* ---- generations (map-in-map) -------------------------------------------------------------- */

#define BH_GENERATIONS 2

/*
 * The active generation is (epoch & 1). The agent increments epoch once per successful apply;
 * BPF programs read it once per packet. Conntrack entries remember the epoch they were decided
 * under, so any flip makes established flows re-evaluate on their next packet.
 */
struct bh_state {
	__u64 epoch;
	__u32 events_per_sec; /* deny events per second per CPU (0: none) */
	__u32 pad;
};
_Static_assert(sizeof(struct bh_state) == 16, "bh_state layout");

/* L4 match: protocol in bits 23..16 and port (or ICMP type) in bits 15..0, matched on its top
 * plen bits. plen 0 = any protocol, 8 = any port of one protocol, 24 = one port. A port range is
 * stored as the set of port prefixes that cover it exactly (at most 30 entries for any range). */
#define BH_L4_PLEN_MAX	24
#define BH_L4_PLEN_PROTO 8

static inline __u32 bh_l4_mask(__u32 plen)
{
	return plen == 0 ? 0 : (0xffffffu << (BH_L4_PLEN_MAX - plen)) & 0xffffffu;
}

/* Per generation configuration, written by the agent before it flips to that generation. */
struct bh_gen_config {
	__u64 revision;	    /* rule-set revision this generation holds */
	__u64 stamp;	    /* epoch at which this content became active: the standby equals the
			     * active generation exactly when their stamps match and it is clean */
	__u32 plen_mask[2][2]; /* [dir][deny]: bit p set if any policy key has l4 plen p */
	__u32 dirty;	    /* agent was writing this generation and did not finish */
	__u32 n_policy;	    /* entries in this generation's inner maps */
	__u32 n_ipcache;
	__u32 n_endpoints;
	/* Agent-only bookkeeping: how many policy keys use each plen, per [dir][deny]. */
	__u32 plen_count[2][2][BH_L4_PLEN_MAX + 1];
};
_Static_assert(sizeof(struct bh_gen_config) == 16 + 16 + 16 + 400, "bh_gen_config layout");

/* ipcache: LPM trie. Data is family (1 byte), 3 zero bytes, then the address (16 bytes, IPv4 in
 * the first 4), so prefixlen = 32 + address prefix length and v4 and v6 share one trie. */
struct bh_ipcache_key {
	__u32 prefixlen;
	__u8 family; /* AF_INET (2) or AF_INET6 (10) */
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct bh_ipcache_key) == 24, "bh_ipcache_key layout");

struct bh_ipcache_val {
	__u32 identity;
	__u32 flags;
};
_Static_assert(sizeof(struct bh_ipcache_val) == 8, "bh_ipcache_val layout");

/* endpoints: ifindex -> the endpoint protected on that interface. */
#define BH_EP_F_VETH 0x1 /* host side of the endpoint's veth: tc ingress is endpoint egress */

struct bh_endpoint_val {
	__u32 identity;
	__u8 mode;		   /* enum bh_mode */
	__u8 flags;		   /* BH_EP_F_* */
	__u8 default_verdict[2];   /* [dir]: BH_VERDICT_ALLOW or BH_VERDICT_DENY */
	__u32 default_rule[2];	   /* [dir]: rule id reported for the default verdict */
};
_Static_assert(sizeof(struct bh_endpoint_val) == 16, "bh_endpoint_val layout");

/* policy: hash. Lookups go from the exact peer to BH_ID_ANY and, within each, from the longest
 * l4 prefix in use to the shortest. Deny keys are looked up first: an explicit deny wins. */
struct bh_policy_key {
	__u32 local_id;
	__u32 remote_id; /* BH_ID_ANY: any peer */
	__u32 l4;	 /* (proto << 16 | port) & bh_l4_mask(plen) */
	__u8 plen;	 /* 0..24 */
	__u8 dir;	 /* enum bh_dir */
	__u8 deny;	 /* 1 for deny rules, 0 for allow rules */
	__u8 pad;
};
_Static_assert(sizeof(struct bh_policy_key) == 16, "bh_policy_key layout");

struct bh_policy_val {
	__u32 rule_id;
	__u32 flags;
};
_Static_assert(sizeof(struct bh_policy_val) == 8, "bh_policy_val layout");

/* ---- conntrack ----------------------------------------------------------------------------- */

/* The key is the packet's tuple in canonical order (lower address/port first), so both directions
 * of a flow find the same entry with one lookup; the value says which side opened the flow. */
struct bh_ct_key {
	__u32 ifindex;
	__u8 family;
	__u8 proto;
	__u16 pad;
	__u8 addr_a[16];
	__u8 addr_b[16];
	__u16 port_a;
	__u16 port_b;
};
_Static_assert(sizeof(struct bh_ct_key) == 44, "bh_ct_key layout");

struct bh_ct_val {
	__u64 epoch;	 /* state epoch the verdict was decided under */
	__u64 last_seen; /* CLOCK_MONOTONIC_COARSE ns */
	__u32 local_id;
	__u32 remote_id;
	__u32 rule_id;
	__u16 port;	 /* destination port (ICMP type) of the opening packet */
	__u8 dir;	 /* direction of the opening packet */
	__u8 verdict;	 /* BH_VERDICT_ALLOW or BH_VERDICT_WOULD_DENY */
	__u8 opener_is_a; /* 1 if the opening packet came from (addr_a, port_a) */
	__u8 pad[7];
};
_Static_assert(sizeof(struct bh_ct_val) == 40, "bh_ct_val layout");

/* Non-first fragments follow the verdict of their first fragment. */
struct bh_frag_key {
	__u32 ifindex;
	__u32 id;
	__u8 family;
	__u8 proto;
	__u16 pad;
	__u8 saddr[16];
	__u8 daddr[16];
};
_Static_assert(sizeof(struct bh_frag_key) == 44, "bh_frag_key layout");

struct bh_frag_val {
	__u32 local_id;
	__u32 remote_id;
	__u32 rule_id;
	__u16 port;
	__u8 dir;
	__u8 verdict;
};
_Static_assert(sizeof(struct bh_frag_val) == 16, "bh_frag_val layout");

/* ---- flow accounting ----------------------------------------------------------------------- */

/* One counter per {src, dst, proto, port, direction, verdict, rule}. Replies are counted on the
 * flow they belong to. src/dst follow the flow's opening direction. */
struct bh_flow_key {
	__u32 src_id;
	__u32 dst_id;
	__u32 rule_id;
	__u16 port;
	__u8 proto;
	__u8 dir;
	__u8 verdict;
	__u8 pad[3];
};
_Static_assert(sizeof(struct bh_flow_key) == 20, "bh_flow_key layout");

struct bh_flow_val {
	__u64 packets;
	__u64 bytes;
	__u64 first_seen; /* CLOCK_MONOTONIC_COARSE ns */
	__u64 last_seen;
};
_Static_assert(sizeof(struct bh_flow_val) == 32, "bh_flow_val layout");

/* A deny (or would-deny) event, sent through the ring buffer with a per-CPU rate limit. */
struct bh_event {
	__u64 ts; /* CLOCK_MONOTONIC_COARSE ns */
	__u32 ifindex;
	__u32 local_id;
	__u32 remote_id;
	__u32 rule_id;
	__s32 reason; /* enum bh_reason */
	__u8 family;
	__u8 proto;
	__u8 dir;
	__u8 verdict;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 pad;
};
_Static_assert(sizeof(struct bh_event) == 72, "bh_event layout");

/* bh_attached values: what the agent did to an interface when it attached. */
#define BH_ATT_F_OWN_CLSACT 0x1 /* the agent created the clsact qdisc */

/* Per-CPU token bucket for events. */
struct bh_ratelimit {
	__u64 tokens; /* in units of 1/BH_RL_SCALE event */
	__u64 last_ns;
};
#define BH_RL_SCALE 1000000ull

/* Per-CPU counters (array index). */
enum bh_stat {
	BH_STAT_EVENTS_SENT = 0,
	BH_STAT_EVENTS_RATELIMITED, /* not sent: over the rate limit */
	BH_STAT_EVENTS_RINGBUF_FULL, /* not sent: ring buffer full (agent too slow) */
	BH_STAT_FLOWS_FULL,	      /* a new flow could not be counted: flows map full */
	BH_STAT_MALFORMED,	      /* malformed IP packets seen */
	BH_STAT_UNMANAGED,	      /* packets on an interface with no endpoint in this generation */
	BH_STAT_CT_CREATE_FAILED,    /* conntrack entry could not be created */
	BH_STAT_NR,
};

#endif
