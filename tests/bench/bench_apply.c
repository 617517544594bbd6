// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench apply: how long a delta takes to enforce. agent_dp_apply_delta() returns at the flip
 * (the new revision enforces); agent_dp_settle() then brings the other generation up to date and
 * is timed on its own. The baseline is iptables-restore of the same rules in a network namespace
 * that run.sh created (--ipt-netns), timed from fork to exit as an operator would see it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "dataplane.h"

#define PORTS_PER_PEER 100

struct ipt_times {
	double full, one, add1, spawn; /* medians, ms */
};

struct bh_times {
	double add_n, settle_n, add1, settle1; /* medians, ms */
	double add_n_unsettled;		       /* the previous delta not settled yet */
};

/* ---- iptables ------------------------------------------------------------------------------ */

static int write_file(const char *path, size_t first, size_t n, bool noflush)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -errno;
	rc = bench_ipt_write(f, first, n, PORTS_PER_PEER, 0, noflush, false, false);
	if (fclose(f) && !rc)
		rc = -errno;
	return rc;
}

/* Runs one restore; on success adds its time (ms) to *ms if ms is given. */
static int restore(int ns_fd, const char *file, bool noflush, double *ms)
{
	char *argv_flush[] = {"iptables-restore", NULL};
	char *argv_noflush[] = {"iptables-restore", "--noflush", NULL};
	uint64_t ns;
	int rc = bench_spawn(ns_fd, file, noflush ? argv_noflush : argv_flush, false, &ns);

	if (rc) {
		bench_log("iptables-restore%s < %s failed (%d)", noflush ? " --noflush" : "", file,
			  rc);
		return rc < 0 ? rc : -EIO;
	}
	if (ms)
		*ms = (double)ns / 1e6;
	return 0;
}

static int ipt_bench(const char *netns, size_t n, int reps, struct ipt_times *t)
{
	char dir[] = "/tmp/bh-bench-ipt-XXXXXX", empty[64], full[64], one[64], add1[64];
	char *argv_true[] = {"true", NULL};
	double *v = calloc((size_t)reps * 4, sizeof(double));
	uint64_t ns;
	int ns_fd = -1, rc;

	if (!v)
		return -ENOMEM;
	if (!mkdtemp(dir)) {
		free(v);
		return -errno;
	}
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	snprintf(full, sizeof(full), "%s/full", dir);
	snprintf(one, sizeof(one), "%s/one", dir);
	snprintf(add1, sizeof(add1), "%s/add1", dir);
	rc = write_file(empty, 0, 0, false);
	rc = rc ?: write_file(full, 0, n, false);
	rc = rc ?: write_file(one, n, 1, false);
	rc = rc ?: write_file(add1, n, 1, true);
	if (rc) {
		bench_log("writing iptables files under %s: %s", dir, strerror(-rc));
		goto out;
	}
	ns_fd = bench_netns_open(netns);
	if (ns_fd < 0) {
		rc = ns_fd;
		goto out;
	}
	/* One untimed round first: loads the modules and warms the caches. */
	rc = restore(ns_fd, full, false, NULL);
	rc = rc ?: restore(ns_fd, empty, false, NULL);
	for (int r = 0; r < reps && !rc; r++) {
		/* empty -> n rules; then one more appended; empty -> 1 rule */
		rc = restore(ns_fd, empty, false, NULL);
		rc = rc ?: restore(ns_fd, full, false, &v[r]);
		rc = rc ?: restore(ns_fd, add1, true, &v[2 * reps + r]);
		rc = rc ?: restore(ns_fd, empty, false, NULL);
		rc = rc ?: restore(ns_fd, one, false, &v[reps + r]);
		if (!rc && bench_spawn(ns_fd, NULL, argv_true, false, &ns) == 0)
			v[3 * reps + r] = (double)ns / 1e6;
	}
	restore(ns_fd, empty, false, NULL);
	if (rc)
		goto out;
	t->full = bench_median(v, (size_t)reps);
	t->one = bench_median(v + reps, (size_t)reps);
	t->add1 = bench_median(v + 2 * reps, (size_t)reps);
	t->spawn = bench_median(v + 3 * reps, (size_t)reps);
	bench_log("iptables-restore: %zu rules %.1f ms, 1 rule %.1f ms, +1 rule onto %zu %.1f ms "
		  "(process start %.2f ms)",
		  n, t->full, t->one, n, t->add1, t->spawn);
out:
	if (ns_fd >= 0)
		close(ns_fd);
	unlink(empty);
	unlink(full);
	unlink(one);
	unlink(add1);
	rmdir(dir);
	free(v);
	return rc;
}

/* ---- Bulkhead ------------------------------------------------------------------------------ */

static int timed_delta(struct agent_dp *dp, Bulkhead__NodePolicyDelta *d, double *ms,
		       const char *what)
{
	struct bh_error err = {0};
	uint64_t t0;
	int rc;

	d->from_revision = agent_dp_revision(dp);
	d->to_revision = d->from_revision + 1;
	t0 = bench_now_ns();
	rc = agent_dp_apply_delta(dp, d, &err);
	if (ms)
		*ms = (double)(bench_now_ns() - t0) / 1e6;
	if (rc)
		bench_log("%s: %s", what, err.msg);
	return rc;
}

static int timed_settle(struct agent_dp *dp, double *ms)
{
	struct bh_error err = {0};
	uint64_t t0 = bench_now_ns();
	int rc = agent_dp_settle(dp, &err);

	if (ms)
		*ms = (double)(bench_now_ns() - t0) / 1e6;
	if (rc)
		bench_log("settle: %s", err.msg);
	return rc;
}

static int bh_bench_deltas(const char *run_id, size_t n, int reps, struct bh_times *t)
{
	struct bench_gen g = {
		.ifname = "lo",
		.ports_per_peer = PORTS_PER_PEER,
		.n_peers = n / PORTS_PER_PEER + 1, /* the peers of every rule the deltas add */
	};
	struct agent_dp_opts o = {
		.load = true,
		.policy_max = (uint32_t)(2 * n + 64),
		.ct_max = 4096,
		.flows_max = 4096,
	};
	Bulkhead__NodePolicyDelta add_n, add1, del, del_n;
	struct bench_policy *bp = NULL;
	struct bench_rules rules = {0};
	struct agent_dp *dp = NULL;
	struct agent_dp_info info;
	struct bh_error err = {0};
	double *v = calloc((size_t)reps * 5, sizeof(double));
	char node[64];
	int rc;

	if (!v)
		return -ENOMEM;
	o.node = bench_node(node, sizeof(node), run_id, "apply");
	rc = bench_policy_build(&bp, &g, 1);
	rc = rc ?: bench_rules_make(&rules, 0, n + 1, PORTS_PER_PEER);
	if (rc) {
		bench_log("building the rule sets: %s", strerror(-rc));
		goto out;
	}
	bulkhead__node_policy_delta__init(&add_n);
	add_n.n_rules_added = n;
	add_n.rules_added = rules.ptrs;
	bulkhead__node_policy_delta__init(&add1);
	add1.n_rules_added = 1;
	add1.rules_added = rules.ptrs + n;
	bulkhead__node_policy_delta__init(&del);
	del.n_rules_removed = n + 1;
	del.rules_removed = rules.ptrs;
	bulkhead__node_policy_delta__init(&del_n);
	del_n.n_rules_removed = n;
	del_n.rules_removed = rules.ptrs;

	rc = agent_dp_open(&dp, &o, &err);
	if (rc) {
		bench_log("opening the datapath: %s", err.msg);
		goto out;
	}
	/* Base: the endpoint and the ipcache, no rules yet (as iptables starts from an empty
	 * table). */
	rc = agent_dp_apply_snapshot(dp, &bp->np, &err);
	if (rc) {
		bench_log("applying the base snapshot: %s", err.msg);
		goto out;
	}
	for (int r = -1; r < reps && !rc; r++) {
		/* r = -1 is an untimed warm-up round. Each delta starts with both generations
		 * equal, so agent_dp_apply_delta() has no pending settle to do first. */
		bool timed = r >= 0;

		rc = timed_settle(dp, NULL);
		rc = rc ?: timed_delta(dp, &add_n, timed ? &v[r] : NULL, "delta +n");
		rc = rc ?: timed_settle(dp, timed ? &v[reps + r] : NULL);
		if (!rc && agent_dp_info(dp, &info) == 0 && info.maps[AGENT_DP_POLICY].used != n) {
			bench_log("after the delta the policy map holds %u entries, want %zu",
				  info.maps[AGENT_DP_POLICY].used, n);
			rc = -EPROTO;
		}
		rc = rc ?: timed_delta(dp, &add1, timed ? &v[2 * reps + r] : NULL, "delta +1");
		rc = rc ?: timed_settle(dp, timed ? &v[3 * reps + r] : NULL);
		rc = rc ?: timed_delta(dp, &del, NULL, "delta -all");
	}
	/* Back to back: an agent that gets deltas faster than it idles pays the previous delta's
	 * settle (barrier and replay, here of the removal above) inside the next apply. */
	for (int r = 0; r < reps && !rc; r++) {
		rc = timed_delta(dp, &add_n, &v[4 * reps + r], "delta +n, unsettled");
		rc = rc ?: timed_settle(dp, NULL);
		rc = rc ?: timed_delta(dp, &del_n, NULL, "delta -n");
	}
	if (rc)
		goto out;
	t->add_n = bench_median(v, (size_t)reps);
	t->settle_n = bench_median(v + reps, (size_t)reps);
	t->add1 = bench_median(v + 2 * reps, (size_t)reps);
	t->settle1 = bench_median(v + 3 * reps, (size_t)reps);
	t->add_n_unsettled = bench_median(v + 4 * reps, (size_t)reps);
	bench_log(
		"Bulkhead: delta +%zu %.2f ms (settle %.2f ms), delta +1 %.3f ms (settle %.2f ms), "
		"delta +%zu unsettled %.2f ms",
		n, t->add_n, t->settle_n, t->add1, t->settle1, n, t->add_n_unsettled);
out:
	if (dp) {
		struct bh_error e2 = {0};

		if (agent_dp_detach(dp, &e2))
			bench_log("detaching: %s", e2.msg);
		agent_dp_close(dp);
	}
	bench_rules_free(&rules);
	bench_policy_free(bp);
	free(v);
	return rc;
}

/* ---- the subcommand ------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: bh_bench apply --ipt-netns NAME [--run-id ID] [--rules N] "
			"[--reps N]\n");
}

int bench_cmd_apply(int argc, char **argv)
{
	static const struct option opts[] = {
		{"run-id", required_argument, NULL, 'i'},
		{"ipt-netns", required_argument, NULL, 'N'},
		{"rules", required_argument, NULL, 'n'},
		{"reps", required_argument, NULL, 'r'},
		{0},
	};
	const char *run_id = NULL, *netns = NULL;
	unsigned long n = 10000, reps = 5;
	struct ipt_times it = {0};
	struct bh_times bt = {0};
	char pid[16];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			run_id = optarg;
			break;
		case 'N':
			netns = optarg;
			break;
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			reps = strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!netns || !n || n > 400000 || !reps || reps > 100) {
		usage();
		return 2;
	}
	if (!run_id) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		run_id = pid;
	}
	/* iptables first: the children enter --ipt-netns themselves; then our own private
	 * namespace for the Bulkhead endpoint on lo. */
	if (ipt_bench(netns, n, (int)reps, &it))
		return 1;
	if (bench_private_netns() || bh_bench_deltas(run_id, n, (int)reps, &bt))
		return 1;

	bench_row("2 apply", bench_fmt("delta +%luk rules: until the flip", n / 1000),
		  bench_fmt("%.2f ms", bt.add_n),
		  bench_fmt("iptables-restore %luk-rule table %.1f ms", n / 1000, it.full),
		  bench_fmt("%.3fx", bt.add_n / it.full), "<= 50 ms",
		  bt.add_n <= 50 ? "ok" : "MISS");
	bench_row("2 apply", bench_fmt("delta +%luk rules: settle afterwards", n / 1000),
		  bench_fmt("%.2f ms", bt.settle_n),
		  bench_fmt("iptables-restore %luk-rule table %.1f ms", n / 1000, it.full),
		  bench_fmt("%.3fx", bt.settle_n / it.full), "-", "-");
	bench_row("2 apply",
		  bench_fmt("delta +%luk rules, previous delta (-%luk) not settled", n / 1000,
			    n / 1000),
		  bench_fmt("%.2f ms", bt.add_n_unsettled),
		  bench_fmt("iptables-restore %luk-rule table %.1f ms", n / 1000, it.full),
		  bench_fmt("%.3fx", bt.add_n_unsettled / it.full), "-", "-");
	bench_row("2 apply", "delta +1 rule (onto 10k): until the flip",
		  bench_fmt("%.3f ms", bt.add1),
		  bench_fmt("iptables-restore 1-rule table %.1f ms", it.one),
		  bench_fmt("%.3fx", bt.add1 / it.one), "<= 1 ms", bt.add1 <= 1 ? "ok" : "MISS");
	bench_row("2 apply", "delta +1 rule (onto 10k): until the flip",
		  bench_fmt("%.3f ms", bt.add1),
		  bench_fmt("iptables-restore --noflush +1 onto %luk %.1f ms", n / 1000, it.add1),
		  bench_fmt("%.3fx", bt.add1 / it.add1), "<= 1 ms", bt.add1 <= 1 ? "ok" : "MISS");
	bench_row("2 apply", "delta +1 rule: settle afterwards", bench_fmt("%.2f ms", bt.settle1),
		  bench_fmt("iptables-restore 1-rule table %.1f ms", it.one),
		  bench_fmt("%.3fx", bt.settle1 / it.one), "-", "-");
	bench_row("2 apply", "(process start inside iptables times)",
		  bench_fmt("%.2f ms", it.spawn),
		  bench_fmt("iptables-restore 1-rule table %.1f ms", it.one),
		  bench_fmt("%.3fx", it.spawn / it.one), "-", "-");
	return 0;
}
