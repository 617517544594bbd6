/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow export: the datapath's flow counters and deny events, spooled in memory until the
 * controller has them (Agent.ReportFlows).
 *
 * The spool is a FIFO of at most `spool` summaries and `events` deny events. Reports take from its
 * head, oldest first; a summary leaves the spool only when the controller said it stored it. When
 * the spool is full, new summaries are dropped and counted (the oldest, already waiting, are
 * kept): the count goes to the controller with every report. The spool lives in this process's
 * memory: what it holds is lost if the agent stops; what the kernel counted since the last drain
 * stays in the pinned flow map for the next start.
 *
 * One owner (the agent's loop thread); a report built from it is a copy, so a worker thread can
 * send it while the loop goes on draining.
 */
#ifndef AGENT_FLOWEXPORT_H
#define AGENT_FLOWEXPORT_H

#include <stdint.h>

#include "bulkhead.pb-c.h"
#include "dataplane.h"

#define AGENT_FLOWX_BATCH 8192 /* summaries in one report */

struct agent_flowx;

struct agent_flowx_counters {
	uint64_t drained;	 /* summaries read from the kernel */
	uint64_t sent;		 /* stored by the controller */
	uint64_t dropped;	 /* dropped: spool full, or refused by the controller */
	uint64_t spooled;	 /* waiting now */
	uint64_t events_sent;
	uint64_t events_dropped;
	uint64_t reports;	 /* reports the controller took */
	int64_t started_ms;	 /* Unix ms this process started exporting */
	/* what the drained summaries counted, by verdict (BH_VERDICT_*; 0 unused) */
	uint64_t packets[4], bytes[4];
};

/* A report being sent: the message and the copies it points into. */
struct agent_flowx_report {
	Bulkhead__FlowReport msg;
	Bulkhead__FlowSummary *sums;
	Bulkhead__FlowSummary **sump;
	Bulkhead__DenyEvent *evs;
	Bulkhead__DenyEvent **evp;
	uint8_t (*addrs)[2][16];
	char (*ifnames)[16];
};

/* spool: summaries kept at most (> 0); events: deny events kept at most. */
int agent_flowx_create(struct agent_flowx **out, uint32_t spool, uint32_t events);
/* Takes NULL. */
void agent_flowx_destroy(struct agent_flowx *x);

/* Drains the datapath's flow counters into the spool, tagging them with revision (the one
 * enforcing). Returns the number drained or a negative errno. */
int agent_flowx_drain(struct agent_flowx *x, struct agent_dp *dp, uint64_t revision);
/* Keeps a deny event for the next report (dropped and counted when the event spool is full). */
void agent_flowx_event(struct agent_flowx *x, const struct bh_event *e);

/*
 * Fills r with the oldest summaries (at most AGENT_FLOWX_BATCH) and events, and the counters
 * (kstats: the datapath's, for what it could not send or count). Returns the number of
 * summaries and events in it (0: nothing to send; r is then empty) or -ENOMEM. Free r with
 * agent_flowx_report_release().
 */
int agent_flowx_report(struct agent_flowx *x, struct agent_flowx_report *r,
		       const uint64_t kstats[BH_STAT_NR]);
/* The controller stored r: its summaries and events leave the spool. drop: it refused r for
 * good (they leave too, counted dropped). */
void agent_flowx_done(struct agent_flowx *x, const struct agent_flowx_report *r, bool drop);
void agent_flowx_report_release(struct agent_flowx_report *r);

void agent_flowx_counters(const struct agent_flowx *x, struct agent_flowx_counters *out);

#endif
