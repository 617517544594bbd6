/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/* Every map the programs use. All are pinned by name under the node's pin directory
 * (/sys/fs/bpf/bulkhead/<node>/), so a reloaded program or a restarted agent finds the same maps. */
#ifndef BULKHEAD_LIB_MAPS_H
#define BULKHEAD_LIB_MAPS_H

/* Active generation: epoch & 1. Mmapable so the agent flips it with a single atomic store. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bh_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_state SEC(".maps");

/* Per generation configuration (revision, l4 prefix lengths in use). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BH_GENERATIONS);
	__type(key, __u32);
	__type(value, struct bh_gen_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_gen_config SEC(".maps");

/* Inner map templates: the agent creates the real inner maps with the configured sizes. Sizes,
 * not __type(): clang 14 emits only forward declarations for types named nowhere else in BTF. */
struct bh_policy_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct bh_policy_key));
	__uint(value_size, sizeof(struct bh_policy_val));
};

struct bh_ipcache_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct bh_ipcache_key));
	__uint(value_size, sizeof(struct bh_ipcache_val));
};

struct bh_endpoints_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct bh_endpoint_val));
};

/* policy: rule key -> rule id, one inner hash per generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, BH_GENERATIONS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct bh_policy_inner);
} bh_policy SEC(".maps");

/* ipcache: address prefix -> identity, one inner LPM trie per generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, BH_GENERATIONS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct bh_ipcache_inner);
} bh_ipcache SEC(".maps");

/* endpoints: ifindex -> endpoint, one inner hash per generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, BH_GENERATIONS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct bh_endpoints_inner);
} bh_endpoints SEC(".maps");

/* conntrack: LRU, sized by the agent before load. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct bh_ct_key);
	__type(value, struct bh_ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_ct SEC(".maps");

/* first-fragment verdicts for later fragments. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct bh_frag_key);
	__type(value, struct bh_frag_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_frag SEC(".maps");

/* flow counters, drained by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct bh_flow_key);
	__type(value, struct bh_flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_flows SEC(".maps");

/* deny events. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bh_ratelimit);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_ratelimit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BH_STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_stats SEC(".maps");

/* Interfaces the agent attached to: ifindex -> BH_ATT_F_*. Read by the agent only, so that
 * detach removes exactly what it created. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bh_attached SEC(".maps");

#endif
