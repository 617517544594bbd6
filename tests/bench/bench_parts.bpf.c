// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only)
/*
 * Pieces of the per-packet work of bpf/bulkhead.bpf.c, one tc program each, so that bh_bench can
 * say where the nanoseconds of the real program go (each is measured against bh_empty). Keys are
 * plain byte arrays of the real sizes: hashing cost depends on the size, not the layout.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct ct_key {
	__u8 b[44]; /* sizeof(struct bh_ct_key) */
};
struct ct_val {
	__u8 b[40]; /* sizeof(struct bh_ct_val) */
};
struct policy_key {
	__u8 b[16]; /* sizeof(struct bh_policy_key) */
};

/* Like bh_ct: an LRU hash. User space puts the all-zero key in. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
} part_ct SEC(".maps");

/* Like one policy generation: a hash without preallocation. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, __u64);
} part_policy SEC(".maps");

/* The one clock read per packet. */
SEC("tc")
int part_clock(struct __sk_buff *skb)
{
	(void)skb;
	return bpf_ktime_get_boot_ns() ? TC_ACT_OK : TC_ACT_UNSPEC;
}

/* Ethernet, IPv4 and TCP headers read with bpf_skb_load_bytes(), as bh_parse() does. */
SEC("tc")
int part_load(struct __sk_buff *skb)
{
	__u8 eth[14], ip[20], tcp[14];

	if (bpf_skb_load_bytes(skb, 0, eth, sizeof(eth)) < 0 ||
	    bpf_skb_load_bytes(skb, 14, ip, sizeof(ip)) < 0 ||
	    bpf_skb_load_bytes(skb, 34, tcp, sizeof(tcp)) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* A conntrack lookup that hits. */
SEC("tc")
int part_ct_lookup(struct __sk_buff *skb)
{
	struct ct_key k = {};

	(void)skb;
	return bpf_map_lookup_elem(&part_ct, &k) ? TC_ACT_OK : TC_ACT_SHOT;
}

/* A conntrack entry written over (what every allowed SYN does). */
SEC("tc")
int part_ct_update(struct __sk_buff *skb)
{
	struct ct_key k = {};
	struct ct_val v = {};

	(void)skb;
	return bpf_map_update_elem(&part_ct, &k, &v, BPF_ANY) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* A policy lookup that hits. */
SEC("tc")
int part_policy_lookup(struct __sk_buff *skb)
{
	struct policy_key k = {};

	(void)skb;
	return bpf_map_lookup_elem(&part_policy, &k) ? TC_ACT_OK : TC_ACT_SHOT;
}
