// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench guard: runs a command while Bulkhead protects an interface of a network namespace
 * with a generated rule set whose last rule lets the client in; then checks from the flow counters
 * that the programs did see (and allow) the traffic, and removes everything.
 *
 * bh_bench ipt-rules: prints the same rule set as an iptables-restore file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "dataplane.h"

#define PORTS_PER_PEER 100

struct guard_count {
	uint64_t allowed, allowed_bytes, denied;
};

static int guard_cb(const struct agent_dp_flow *f, void *ctx)
{
	struct guard_count *c = ctx;

	if (f->key.rule_id == BENCH_MATCH_RULE && f->key.verdict == BH_VERDICT_ALLOW) {
		c->allowed += f->val.packets;
		c->allowed_bytes += f->val.bytes;
	}
	if (f->key.verdict == BH_VERDICT_DENY)
		c->denied += f->val.packets;
	return 0;
}

static void guard_usage(void)
{
	fprintf(stderr, "usage: bh_bench guard --netns NAME --ifname IF --port PORT [--rules N] "
			"[--run-id ID] -- COMMAND...\n");
}

int bench_cmd_guard(int argc, char **argv)
{
	static const struct option opts[] = {
		{"run-id", required_argument, NULL, 'i'}, {"netns", required_argument, NULL, 'N'},
		{"ifname", required_argument, NULL, 'f'}, {"rules", required_argument, NULL, 'n'},
		{"port", required_argument, NULL, 'p'},	  {0},
	};
	const char *run_id = NULL, *netns = NULL, *ifname = NULL;
	unsigned long n = 10000, port = 0;
	struct bench_policy *bp = NULL;
	struct agent_dp *dp = NULL;
	struct agent_dp_opts o = {.load = true, .ct_max = 16384, .flows_max = 4096};
	struct guard_count cnt = {0};
	struct bh_error err = {0};
	char node[64], pid[16];
	uint64_t t0;
	int c, ns_fd, rc, status = 1;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			run_id = optarg;
			break;
		case 'N':
			netns = optarg;
			break;
		case 'f':
			ifname = optarg;
			break;
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			port = strtoul(optarg, NULL, 10);
			break;
		default:
			guard_usage();
			return 2;
		}
	}
	if (!netns || !ifname || !port || port > 65535 || !n || n > 400000 || optind >= argc) {
		guard_usage();
		return 2;
	}
	if (!run_id) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		run_id = pid;
	}
	/* Only the network namespace changes: the pins stay in this mount namespace's bpffs. */
	ns_fd = bench_netns_open(netns);
	if (ns_fd < 0)
		return 1;
	if (setns(ns_fd, CLONE_NEWNET) < 0) {
		bench_log("entering %s: %s", netns, strerror(errno));
		close(ns_fd);
		return 1;
	}
	close(ns_fd);

	struct bench_gen g = {
		.ifname = ifname,
		.n_rules = n - 1,
		.ports_per_peer = PORTS_PER_PEER,
		.match_port = (uint32_t)port,
	};
	rc = bench_policy_build(&bp, &g, 1);
	if (rc) {
		bench_log("building the rule set: %s", strerror(-rc));
		goto out;
	}
	o.node = bench_node(node, sizeof(node), run_id, "guard");
	o.policy_max = (uint32_t)n + 64;
	o.ipcache_max = (uint32_t)bp->np.n_ipcache + 64;
	rc = agent_dp_open(&dp, &o, &err);
	if (rc) {
		bench_log("opening the datapath: %s", err.msg);
		goto out;
	}
	t0 = bench_now_ns();
	rc = agent_dp_apply_snapshot(dp, &bp->np, &err);
	rc = rc ?: agent_dp_settle(dp, &err);
	if (rc) {
		bench_log("applying the rule set: %s", err.msg);
		goto out;
	}
	bench_log("Bulkhead on %s in %s: %zu rules applied and settled in %.1f ms", ifname, netns,
		  bp->np.n_rules, (double)(bench_now_ns() - t0) / 1e6);
	agent_dp_flows_drain(dp, NULL, NULL);

	rc = bench_spawn(-1, NULL, argv + optind, true, NULL);
	if (rc) {
		bench_log("%s exited with %d", argv[optind], rc);
		goto out;
	}
	rc = agent_dp_flows_drain(dp, guard_cb, &cnt);
	if (rc < 0) {
		bench_log("draining the flow counters: %s", strerror(-rc));
		goto out;
	}
	/* Both hooks count: the client's data on ingress and the server's ACKs on egress. */
	bench_log("Bulkhead counted %llu packets (%.0f bytes on average) allowed by the client's "
		  "rule, %llu denied",
		  (unsigned long long)cnt.allowed,
		  cnt.allowed ? (double)cnt.allowed_bytes / (double)cnt.allowed : 0.0,
		  (unsigned long long)cnt.denied);
	if (cnt.allowed < 1000) {
		bench_log(
			"the traffic did not go through Bulkhead's rule: the measurement is void");
		goto out;
	}
	status = 0;
out:
	if (dp) {
		struct bh_error e2 = {0};

		if (agent_dp_detach(dp, &e2)) {
			bench_log("detaching: %s", e2.msg);
			status = 1;
		}
		agent_dp_close(dp);
	}
	bench_policy_free(bp);
	return status;
}

int bench_cmd_ipt_rules(int argc, char **argv)
{
	static const struct option opts[] = {
		{"rules", required_argument, NULL, 'n'},
		{"port", required_argument, NULL, 'p'},
		{"established-first", no_argument, NULL, 'e'},
		{0},
	};
	unsigned long n = 10000, port = 0;
	bool est = false;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			port = strtoul(optarg, NULL, 10);
			break;
		case 'e':
			est = true;
			break;
		default:
			n = 0;
		}
	}
	if (!n || n > 400000 || !port || port > 65535) {
		fprintf(stderr, "usage: bh_bench ipt-rules --port PORT [--rules N] "
				"[--established-first]\n");
		return 2;
	}
	/* The same n rules as `guard`: n - 1 generated, the client's last; INPUT drops the rest. */
	return bench_ipt_write(stdout, 0, n - 1, PORTS_PER_PEER, (uint32_t)port, false, true, est)
		       ? 1
		       : 0;
}
