/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow summaries (flows.c): Agent.ReportFlows in, Operator.QueryFlows out.
 *
 * Ingestion: a report is checked on the loop thread (the certificate's node only; absurd values
 * clamped, unusable summaries rejected, each with one log line per report) and merged into the
 * pending batch, an in-memory aggregate by minute and flow key. One ingestion thread commits a
 * batch at a time to the flow store (flowstore.h) while the next one fills, so writes are grouped
 * under load and the loop only ever hashes. A report is answered once its batch is on disk: an
 * agent forgets a summary only after that. When the pending batch is full (the store cannot keep
 * up) reports are refused with RESOURCE_EXHAUSTED and the agents keep them.
 *
 * Queries read the store through a second connection on the loop thread, and name what the ids
 * stand for with the compiler of the moment: workloads, label sets, CIDRs, policies and rules.
 * Follow: the last CTL_FLOWS_RING committed rows stay in memory with a sequence number; a query
 * with after_seq is answered from there, and held until news arrive or its wait ends.
 */
#ifndef CTL_FLOWS_H
#define CTL_FLOWS_H

#include <stdint.h>

#include "bulkhead/error.h"

struct ctl;

struct ctl_flows_opts {
	uint32_t minute_keep_s; /* minute buckets (default 6 h) */
	uint32_t keep_s;	/* hour buckets and deny events (default 7 d) */
};

/* Opens the flow store in the controller's state directory, starts the ingestion thread and
 * registers ReportFlows and QueryFlows. */
int ctl_flows_init(struct ctl *c, const struct ctl_flows_opts *o, struct bh_error *err);
/* After the RPC server is gone: commits what is pending, stops the thread, frees. */
void ctl_flows_fini(struct ctl *c);

/* What the metrics show. */
struct ctl_flows_counters {
	uint64_t reports, summaries, clamped, rejected, refused_busy;
	uint64_t pending_rows, batches, batch_failures;
};
void ctl_flows_counters(const struct ctl *c, struct ctl_flows_counters *out);

/* Hits per rule id from since_s on: cb(rule, packets, flows, last_ms). */
int ctl_flows_rule_hits(const struct ctl *c, int64_t since_s,
			int (*cb)(uint32_t rule, uint64_t packets, uint64_t flows, int64_t last_ms,
				  void *ctx),
			void *ctx, struct bh_error *err);
/* How far back rule hits count (the retention of hour buckets). */
uint32_t ctl_flows_retention(const struct ctl *c);

#endif
