// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bulkhead/log.h"
#include "dptest.h"
#include "ruleset.h"

#define MAX_OPEN 8
static struct dpt *open_list[MAX_OPEN];

static void cleanup_all(void)
{
	for (int i = 0; i < MAX_OPEN; i++)
		if (open_list[i])
			dpt_close(open_list[i]);
}

static void on_fatal(int sig)
{
	cleanup_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

void dpt_init(const char *test_name)
{
	struct statfs st;

	bh_log_init(test_name, getenv("BH_TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
	bh_log_route_libbpf();
	if (geteuid() != 0) {
		fprintf(stderr, "%s: FAIL: needs root (BPF programs, network namespaces)\n",
			test_name);
		exit(1);
	}
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "%s: FAIL: cannot create a network namespace: %s\n", test_name,
			strerror(errno));
		exit(1);
	}
	if (statfs("/sys/fs/bpf", &st) < 0 || st.f_type != 0xcafe4a11) {
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0) {
			fprintf(stderr, "%s: FAIL: bpffs missing at /sys/fs/bpf and mount failed: %s\n",
				test_name, strerror(errno));
			exit(1);
		}
	}
	atexit(cleanup_all);
	signal(SIGABRT, on_fatal);
	signal(SIGSEGV, on_fatal);
	signal(SIGTERM, on_fatal);
	signal(SIGINT, on_fatal);
}

int dpt_open(struct dpt *t, const char *tag, const struct agent_dp_opts *opts)
{
	struct agent_dp_opts o = {0};
	struct bh_error err = {0};
	int rc;

	if (opts)
		o = *opts;
	memset(t, 0, sizeof(*t));
	snprintf(t->node, sizeof(t->node), "test-%s-%d-%x", tag, getpid(), (unsigned)random());
	o.node = t->node;
	o.load = true;
	rc = agent_dp_open(&t->dp, &o, &err);
	if (rc) {
		fprintf(stderr, "    open datapath: %s\n", err.msg);
		return rc;
	}
	for (int i = 0; i < MAX_OPEN; i++) {
		if (!open_list[i]) {
			open_list[i] = t;
			break;
		}
	}
	return 0;
}

void dpt_close(struct dpt *t)
{
	struct bh_error err = {0};

	for (int i = 0; i < MAX_OPEN; i++)
		if (open_list[i] == t)
			open_list[i] = NULL;
	if (!t->dp)
		return;
	if (agent_dp_detach(t->dp, &err))
		fprintf(stderr, "    detach %s: %s\n", t->node, err.msg);
	agent_dp_close(t->dp);
	t->dp = NULL;
}

int dpt_apply(struct dpt *t, const char *text, struct bh_error *err)
{
	Bulkhead__NodePolicy *np;
	Bulkhead__NodePolicyDelta *d;
	int rc;

	rc = agent_ruleset_parse(text, strlen(text), "test", &np, &d, err);
	if (rc)
		return rc;
	rc = np ? agent_dp_apply_snapshot(t->dp, np, err) : agent_dp_apply_delta(t->dp, d, err);
	if (!rc)
		rc = agent_dp_settle(t->dp, err);
	agent_ruleset_free_policy(np);
	agent_ruleset_free_delta(d);
	return rc;
}

int dpt_run_raw(struct dpt *t, int hook, const void *buf, size_t len)
{
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = (__u32)len,
			    .repeat = 1);

	if (bpf_prog_test_run_opts(agent_dp_prog_fd(t->dp, hook), &o) < 0)
		return -errno;
	return (int)o.retval;
}

int dpt_run(struct dpt *t, int hook, const struct pkt_spec *s)
{
	uint8_t buf[PKT_MAX];
	size_t len = pkt_build(buf, s);

	return len ? dpt_run_raw(t, hook, buf, len) : -EINVAL;
}

struct flow_sum {
	uint32_t rule;
	uint8_t verdict;
	uint64_t packets;
};

static int flow_cb(const struct agent_dp_flow *f, void *ctx)
{
	struct flow_sum *s = ctx;

	if (f->key.rule_id == s->rule && (!s->verdict || f->key.verdict == s->verdict))
		s->packets += f->val.packets;
	return 0;
}

uint64_t dpt_flow_packets(struct dpt *t, uint32_t rule, uint8_t verdict)
{
	struct flow_sum s = {.rule = rule, .verdict = verdict};

	agent_dp_flows_drain(t->dp, flow_cb, &s);
	return s.packets;
}
