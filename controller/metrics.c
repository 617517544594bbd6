// SPDX-License-Identifier: Apache-2.0
/* The controller's Prometheus metrics: fleet sync, flow ingestion, stores, connections. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bulkhead/log.h"
#include "bulkhead/metrics.h"
#include "ctl.h"
#include "flows.h"
#include "flowstore.h"

static bool is_agent(const struct bh_identity *id, void *arg)
{
	(void)arg;
	return id->role == BH_ROLE_AGENT;
}

/* A database file with its write-ahead log. */
static int64_t db_bytes(const struct ctl *c, const char *file)
{
	char path[PATH_MAX + 16];
	struct stat st;
	int64_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", c->dir, file);
	if (!stat(path, &st))
		n += st.st_size;
	snprintf(path, sizeof(path), "%s/%s-wal", c->dir, file);
	if (!stat(path, &st))
		n += st.st_size;
	return n;
}

static void family(struct bh_metrics_buf *b, const char *name, enum bh_metric_type t,
		   const char *help, uint64_t v)
{
	bh_metrics_family(b, name, t, help);
	bh_metrics_sample_u64(b, NULL, 0, v);
}

static void render(struct bh_metrics_buf *b, void *ctx)
{
	struct ctl *c = ctx;
	struct ctl_flows_counters f;
	size_t nodes, behind, watching;

	ctl_rollout_summary(c, &nodes, &behind, &watching);
	ctl_flows_counters(c, &f);
	family(b, "bulkhead_controller_revision", BH_METRIC_GAUGE,
	       "The newest revision of the policy state.", c->revision);
	family(b, "bulkhead_controller_nodes", BH_METRIC_GAUGE,
	       "Nodes that have talked to the controller since it started.", nodes);
	family(b, "bulkhead_controller_nodes_connected", BH_METRIC_GAUGE,
	       "Agent connections open now.",
	       (uint64_t)bh_rpc_server_count(c->rpc, is_agent, NULL));
	family(b, "bulkhead_controller_nodes_watching", BH_METRIC_GAUGE,
	       "Nodes with a policy watch held now.", watching);
	family(b, "bulkhead_controller_nodes_behind", BH_METRIC_GAUGE,
	       "Nodes that have not acknowledged the newest revision of their rule set: "
	       "revisions pending.",
	       behind);
	family(b, "bulkhead_controller_connections", BH_METRIC_GAUGE,
	       "Open RPC connections (agents and operators).", bh_rpc_server_connections(c->rpc));
	family(b, "bulkhead_controller_flow_reports_total", BH_METRIC_COUNTER,
	       "Flow reports received from agents.", f.reports);
	bh_metrics_family(b, "bulkhead_controller_flow_summaries_total", BH_METRIC_COUNTER,
			  "Flow summaries received, by outcome: stored (clamped ones included; counted "
			  "when accepted, so a report resent after a failed commit counts again), "
			  "clamped, rejected.");
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"outcome", "stored"}), f.summaries);
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"outcome", "clamped"}), f.clamped);
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"outcome", "rejected"}), f.rejected);
	family(b, "bulkhead_controller_flow_reports_refused_busy_total", BH_METRIC_COUNTER,
	       "Flow reports refused because the flow store was behind (agents keep and resend "
	       "them).",
	       f.refused_busy);
	family(b, "bulkhead_controller_flow_pending_rows", BH_METRIC_GAUGE,
	       "Aggregated flow rows waiting for the ingestion thread.", f.pending_rows);
	family(b, "bulkhead_controller_flow_batches_total", BH_METRIC_COUNTER,
	       "Batches handed to the flow store's ingestion thread.", f.batches);
	family(b, "bulkhead_controller_flow_batch_failures_total", BH_METRIC_COUNTER,
	       "Batches the flow store failed to commit (their reports were answered with an "
	       "error and are resent).",
	       f.batch_failures);
	bh_metrics_family(b, "bulkhead_controller_store_bytes", BH_METRIC_GAUGE,
			  "Size of the controller's databases on disk, write-ahead log included.");
	bh_metrics_sample_i64(b, BH_METRIC_LABELS({"db", "policy"}), db_bytes(c, "bulkhead.db"));
	bh_metrics_sample_i64(b, BH_METRIC_LABELS({"db", "flows"}), db_bytes(c, CTL_FLOWS_FILE));
}

int ctl_metrics_start(struct ctl *c, const char *listen, bool allow_public, bool required,
		      struct bh_error *err)
{
	struct bh_error e = {0};
	int rc;

	if (!listen || !strcmp(listen, "none"))
		return 0;
	rc = bh_metrics_server_start(c->loop, listen, allow_public ? BH_METRICS_ALLOW_PUBLIC : 0,
				     render, c, &c->metrics, &e);
	if (rc && required)
		return bh_error_set(err, rc, "metrics: %s", e.msg);
	if (rc) {
		/* the default address: another controller on this host may have it */
		bh_log(LOG_WARNING, "metrics: %s; serving no metrics (give --metrics ADDRESS)",
		       e.msg);
		return 0;
	}
	bh_log(LOG_INFO, "metrics on http://%s/metrics", listen);
	return 0;
}

void ctl_metrics_stop(struct ctl *c)
{
	bh_metrics_server_stop(c->metrics);
	c->metrics = NULL;
}
