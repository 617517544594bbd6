/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's datapath: loads the BPF programs, pins them and their maps under
 * <pin_root>/<node>/, attaches them to protected interfaces, and applies rule sets atomically.
 *
 * Policy, ipcache and endpoints live in two generations of inner maps. An apply writes the standby
 * generation and flips the active index with one atomic store: a packet sees the old revision or
 * the new one, never a mix. After a flip the old generation is brought up to date by replaying the
 * same changes (agent_dp_settle()), after an RCU barrier guarantees no program still reads it, so
 * an apply costs O(size of the change), not O(rule set).
 *
 * Everything pinned outlives the process: a new process re-opens the pins and carries on with the
 * revision that is enforcing.
 */
#ifndef AGENT_DATAPLANE_H
#define AGENT_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>

#include "bulkhead/error.h"
#include "bulkhead.h"
#include "bulkhead.pb-c.h"

#define AGENT_DP_PIN_ROOT "/sys/fs/bpf/bulkhead"

struct agent_dp;

struct agent_dp_opts {
	const char *node;	  /* required; names the pin directory */
	const char *pin_root;	  /* default AGENT_DP_PIN_ROOT */
	bool load;		  /* load programs (needed to apply or attach); false: inspect pins */
	/* Map sizes for a first load (0 = default). An existing pinned map keeps its size. */
	uint32_t policy_max;	  /* rule keys per generation (default 65536) */
	uint32_t ipcache_max;	  /* prefixes per generation (default 65536) */
	uint32_t endpoints_max;	  /* endpoints per generation (default 1024) */
	uint32_t ct_max;	  /* conntrack entries (default 262144) */
	uint32_t flows_max;	  /* flow counters between drains (default 65536) */
	uint32_t events_per_sec;  /* deny events per second per CPU (0: keep; first use 100) */
};

enum agent_dp_map {
	AGENT_DP_POLICY = 0,
	AGENT_DP_IPCACHE,
	AGENT_DP_ENDPOINTS,
	AGENT_DP_CT,
	AGENT_DP_FLOWS,
	AGENT_DP_NMAPS,
};

struct agent_dp_info {
	uint64_t revision;	/* revision enforcing now */
	uint64_t epoch;		/* flips so far */
	unsigned int active_gen;
	bool standby_synced;	/* standby generation already equals the active one */
	struct {
		const char *name;
		uint32_t used;	/* entries (active generation for the generational maps) */
		uint32_t max;
		uint64_t memlock; /* kernel memory charged for the map (both generations) */
	} maps[AGENT_DP_NMAPS];
	uint64_t stats[BH_STAT_NR]; /* summed over CPUs */
};

/* One drained flow counter, summed over CPUs. */
struct agent_dp_flow {
	struct bh_flow_key key;
	struct bh_flow_val val;
};

/*
 * Opens the datapath of opts->node: re-opens existing pins, or (with opts->load) creates and pins
 * everything on first use. With opts->load the programs are (re)loaded and every interface that was
 * attached is switched to them. Mounts bpffs at /sys/fs/bpf when missing. On success *out is set
 * and 0 returned; on failure a negative errno is returned, err says why and nothing is left
 * half-created that a later open could not use.
 */
int agent_dp_open(struct agent_dp **out, const struct agent_dp_opts *opts, struct bh_error *err);

/* Closes the handle. Programs, maps and attachments stay: the datapath keeps enforcing. Takes
 * NULL. */
void agent_dp_close(struct agent_dp *dp);

/*
 * Makes np the enforcing rule set. Attaches to interfaces of new endpoints before the flip and
 * detaches from removed ones after it. On failure (bad entry, overlap, map full, missing interface,
 * syscall error) nothing flips, the previous revision keeps enforcing, err names the cause and a
 * negative errno is returned. The caller keeps ownership of np.
 */
int agent_dp_apply_snapshot(struct agent_dp *dp, const Bulkhead__NodePolicy *np,
			    struct bh_error *err);

/*
 * Applies a delta. delta->from_revision must be the enforcing revision (-ESTALE otherwise: the
 * caller needs a snapshot). Entries to remove must be present, entries to add absent. Same failure
 * guarantees as agent_dp_apply_snapshot(). The caller keeps ownership of delta.
 */
int agent_dp_apply_delta(struct agent_dp *dp, const Bulkhead__NodePolicyDelta *delta,
			 struct bh_error *err);

/*
 * Brings the standby generation up to the active one (RCU barrier, then replay of the last change,
 * or a full resync after a crash mid-write). Applies call it first when needed; call it when idle
 * to take the cost off the next apply. Returns 0 or a negative errno.
 */
int agent_dp_settle(struct agent_dp *dp, struct bh_error *err);

/* Revision enforcing now (0 before the first apply). */
uint64_t agent_dp_revision(const struct agent_dp *dp);

/* Fills info (map fill, counters). Counting conntrack and flow entries walks those maps. */
int agent_dp_info(struct agent_dp *dp, struct agent_dp_info *info);

/* The datapath's own counters (enum bh_stat), summed over CPUs: cheap, no map walk. */
int agent_dp_stats(struct agent_dp *dp, uint64_t stats[BH_STAT_NR]);

/* Drains the flow counters: calls cb for every flow counted since the last drain, then forgets
 * it (batched lookup-and-delete, up to 4096 flows a batch). cb returning non-zero stops the drain
 * after the current batch, every flow of which is still delivered (the rest stays for the next
 * drain). Returns the number of flows drained or a negative errno (flows delivered before an
 * error are gone from the map). */
int agent_dp_flows_drain(struct agent_dp *dp, int (*cb)(const struct agent_dp_flow *f, void *ctx),
			 void *ctx);

/* Waits up to timeout_ms for deny events and calls cb for each. Returns the number handled or a
 * negative errno. agent_dp_events_fd() is the fd to poll from an event loop. */
int agent_dp_events_poll(struct agent_dp *dp, int timeout_ms,
			 int (*cb)(const struct bh_event *e, void *ctx), void *ctx);
int agent_dp_events_fd(struct agent_dp *dp);

/*
 * Removes everything this datapath created: tc filters (and the clsact qdiscs it added), pinned
 * programs and maps, the pin directory. Traffic on the interfaces is no longer filtered. The handle
 * must still be closed.
 */
int agent_dp_detach(struct agent_dp *dp, struct bh_error *err);

/* File descriptors for tests and benchmarks: the loaded programs (-1 without opts->load). */
int agent_dp_prog_fd(const struct agent_dp *dp, int hook /* BH_DIR_INGRESS or BH_DIR_EGRESS */);

/* Expands a port range [lo, hi] of proto into l4 prefixes (as stored in the policy map). Writes at
 * most max (value, plen) pairs; returns how many a complete cover needs (<= 30 for 16-bit ports). */
int agent_dp_range_prefixes(uint8_t proto, uint16_t lo, uint16_t hi, uint32_t *values,
			    uint8_t *plens, int max);

#endif
