/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flow store: the fleet's flow summaries in time buckets, in their own SQLite file
 * (STATE_DIR/flows.db), apart from the policy store so that a flood of flow writes never holds a
 * policy change back, and pruning never bloats it.
 *
 * Tables: flows_1m (one row per minute and flow key), flows_1h (the same rolled up to the hour),
 * events (deny events with addresses and ports), node_stats (what each node's reports said about
 * themselves), nodes (node name <-> number) and meta. Writes go to flows_1m only; once a minute is
 * closed (CTL_FLOWS_ROLLUP_GRACE_S after its end) ctl_flowstore_rollup() adds it to flows_1h in one
 * sorted pass, and meta's rolled_upto says up to where. A late row, for a minute already rolled up,
 * is written to both. Reads that want hours take flows_1h and the minutes not rolled up yet, so
 * nothing is counted twice or missed. Retention: minute rows (never before they are rolled up),
 * hour rows and events each have their own age limit (ctl_flowstore_prune).
 *
 * A flow store connection belongs to one thread. The daemon has two: a writer (its ingestion
 * thread) and a reader (the loop thread, for queries); SQLite's WAL lets the reader read while the
 * writer writes.
 */
#ifndef CTL_FLOWSTORE_H
#define CTL_FLOWSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulkhead/error.h"

#define CTL_FLOWS_FILE "flows.db"
/* A minute is rolled up to its hour this long after it ended: reports of it arriving later (an
 * agent's 10 s export, a slow commit) are still cheap minute upserts. */
#define CTL_FLOWS_ROLLUP_GRACE_S 120

/* One flow counter key: what a FlowSummary says, in a minute (bucket: Unix seconds, a multiple of
 * 60), as seen by one node (its number in the store). */
struct ctl_flow_key {
	int64_t bucket;
	uint32_t node;
	uint32_t src, dst;
	uint32_t rule;
	uint16_t port;
	uint8_t proto, dir, verdict;
	uint8_t pad[3]; /* zero: keys are hashed and compared as bytes */
};

struct ctl_flow_val {
	uint64_t packets, bytes;
	int64_t first_ms, last_ms; /* Unix time, ms */
	uint64_t revision;	   /* the newest revision the counts were read under */
};

struct ctl_flow_row {
	struct ctl_flow_key k;
	struct ctl_flow_val v;
};

/* One deny event as stored. */
struct ctl_flow_event {
	int64_t at_ms;
	uint32_t node;
	uint8_t family; /* 4 or 6 */
	uint8_t proto, dir, verdict;
	uint8_t saddr[16], daddr[16];
	uint16_t sport, dport;
	uint32_t rule, local, remote;
	char ifname[16];
};

/* What a node's reports said about themselves: counts to add, and the agent's own cumulative
 * counters (since agent_started_ms) to replace. */
struct ctl_flow_node_stats {
	uint32_t node;
	int64_t last_report_ms;
	uint64_t reports, summaries, rejected;		    /* added */
	uint64_t summaries_dropped, events_dropped;	    /* replaced */
	uint64_t kernel_events_not_sent, kernel_flows_not_counted; /* replaced */
	int64_t agent_started_ms;
};

/* A new node number the batch uses. */
struct ctl_flow_node_name {
	uint32_t node;
	const char *name;
};

/* Everything one write commits, all or nothing. */
struct ctl_flow_batch {
	struct ctl_flow_row *rows; /* any order: the write sorts them (in place) by table key */
	size_t n_rows;
	const struct ctl_flow_event *events;
	size_t n_events;
	const struct ctl_flow_node_stats *stats;
	size_t n_stats;
	const struct ctl_flow_node_name *names;
	size_t n_names;
};

struct ctl_flowstore;

/* Opens (creating, mode 0600) STATE_DIR/flows.db. readonly: a reader connection of a store the
 * writer has already created. On failure err says why and *out is untouched. */
int ctl_flowstore_open(const char *dir, bool readonly, struct ctl_flowstore **out,
		       struct bh_error *err);
/* Takes NULL. */
void ctl_flowstore_close(struct ctl_flowstore *st);

/* Commits a batch in one transaction: each row is added to its minute (and to its hour when that
 * minute was rolled up already). */
int ctl_flowstore_write(struct ctl_flowstore *st, const struct ctl_flow_batch *b,
			struct bh_error *err);

/* Rolls every closed minute (ended CTL_FLOWS_ROLLUP_GRACE_S before now_s) not rolled up yet into
 * flows_1h. Returns the number of minute rows rolled up, or a negative errno. */
int64_t ctl_flowstore_rollup(struct ctl_flowstore *st, int64_t now_s, struct bh_error *err);

/* Removes minute rows older than now - minute_keep_s, hour rows and events older than
 * now - keep_s. Returns the number of rows removed, or a negative errno. */
int64_t ctl_flowstore_prune(struct ctl_flowstore *st, int64_t now_s, uint32_t minute_keep_s,
			    uint32_t keep_s, struct bh_error *err);

/* Every node number and name. */
int ctl_flowstore_nodes(struct ctl_flowstore *st, int (*cb)(uint32_t node, const char *name,
							     void *ctx),
			void *ctx, struct bh_error *err);

/* A query: rows from since_s on (Unix seconds), summed over the time buckets; 0 fields match
 * anything (verdict 0: any; node 0: any). hourly: read the hour table. */
struct ctl_flow_filter {
	int64_t since_s;
	bool hourly;
	uint32_t node;
	uint32_t port;
	uint8_t proto, verdict;
};

/* Calls cb for every matching flow key (bucket 0), newest last_seen first; cb returning non-zero
 * stops (and is returned). */
int ctl_flowstore_query(struct ctl_flowstore *st, const struct ctl_flow_filter *f,
			int (*cb)(const struct ctl_flow_row *r, void *ctx), void *ctx,
			struct bh_error *err);

/* Deny events from since_s on, newest first (node 0: any node). */
int ctl_flowstore_events(struct ctl_flowstore *st, int64_t since_s, uint32_t node,
			 int (*cb)(const struct ctl_flow_event *e, void *ctx), void *ctx,
			 struct bh_error *err);

/* Every node's report counters. */
int ctl_flowstore_stats(struct ctl_flowstore *st,
			int (*cb)(const struct ctl_flow_node_stats *s, void *ctx), void *ctx,
			struct bh_error *err);

/* Per rule id: packets and the last time it decided a flow, from since_s on (hour table). */
int ctl_flowstore_rule_hits(struct ctl_flowstore *st, int64_t since_s,
			    int (*cb)(uint32_t rule, uint64_t packets, uint64_t flows,
				      int64_t last_ms, void *ctx),
			    void *ctx, struct bh_error *err);

#endif
