// SPDX-License-Identifier: Apache-2.0
/*
 * Atomicity of apply: packets are evaluated continuously from other threads while the rule set
 * flips between two revisions that differ in all three generational maps at once (endpoint
 * identity, ipcache identity of the peer, and the rule). Each revision allows the packet; every
 * mix of old and new entries denies it. So one denied packet is a packet that saw a mixed state.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bulkhead/util.h"
#include "dptest.h"
#include "ruleset.h"
#include "tap.h"

#define FLIPS	 300
#define NTHREADS 2

static struct dpt T;
static atomic_int stop;
static atomic_ulong runs, denied, errors;

/* Revision A: endpoint identity 1001, peer 2001, rule 50. Revision B: 1002, 2002, rule 60.
 * Rule 70 (tcp/81) is allowed in A and denied in B, rule 71 the other way round: the two rules
 * of the issue, changed together. */
static const char rev_a[] = "revision 1\n"
			    "endpoint lo if=lo id=1001 ingress=deny:100 egress=deny:101\n"
			    "ipcache 198.18.1.7/32 2001\n"
			    "rule 1001 ingress 2001 tcp/80 allow 50\n"
			    "rule 1001 ingress 2001 tcp/81 allow 70\n";

static void delta_text(char *buf, size_t len, unsigned long from, bool to_b)
{
	const char *o = to_b ? "1001" : "1002", *n = to_b ? "1002" : "1001";
	const char *op = to_b ? "2001" : "2002", *np = to_b ? "2002" : "2001";
	const char *orule = to_b ? "50" : "60", *nrule = to_b ? "60" : "50";

	snprintf(buf, len,
		 "delta %lu %lu\n"
		 "-endpoint lo if=lo id=%s ingress=deny:100 egress=deny:101\n"
		 "+endpoint lo if=lo id=%s ingress=deny:100 egress=deny:101\n"
		 "-ipcache 198.18.1.7/32 %s\n"
		 "+ipcache 198.18.1.7/32 %s\n"
		 "-rule %s ingress %s tcp/80 allow %s\n"
		 "+rule %s ingress %s tcp/80 allow %s\n"
		 "-rule %s ingress %s tcp/%s allow %s\n"
		 "+rule %s ingress %s tcp/%s allow %s\n",
		 from, from + 1, o, n, op, np, o, op, orule, n, np, nrule,
		 /* the A-allowed tcp/81 rule goes, the B-allowed tcp/82 rule comes (and back) */
		 o, op, to_b ? "81" : "82", to_b ? "70" : "71", n, np, to_b ? "82" : "81",
		 to_b ? "71" : "70");
}

struct worker {
	uint8_t pkt[2][PKT_MAX];
	size_t len[2];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int fd = agent_dp_prog_fd(T.dp, BH_DIR_INGRESS);
	unsigned long i = 0;

	while (!atomic_load(&stop)) {
		/* alternate a bare SYN (policy every time) and an ACK (conntrack, re-decided on
		 * every flip) */
		int k = (int)(i++ & 1);
		DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = w->pkt[k],
				    .data_size_in = (__u32)w->len[k], .repeat = 1);

		if (bpf_prog_test_run_opts(fd, &o) < 0)
			atomic_fetch_add(&errors, 1);
		else if (o.retval != TC_ACT_OK_)
			atomic_fetch_add(&denied, 1);
		atomic_fetch_add(&runs, 1);
	}
	return NULL;
}

static int count_rules(const struct agent_dp_flow *f, void *ctx)
{
	unsigned long *bad = ctx;

	if (f->key.rule_id != 50 && f->key.rule_id != 60)
		(*bad) += f->val.packets;
	return 0;
}

static int t_no_mixed_state(void)
{
	struct pkt_spec syn = {.src = "198.18.1.7", .dst = "198.18.0.1", .proto = 6,
			       .sport = 40000, .dport = 80, .tcp_flags = TCPF_SYN};
	struct pkt_spec ack = syn;
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	struct bh_error err = {0};
	unsigned long bad_rules = 0, flips = 0, runs_at_start;
	char delta[1024];
	int rc = 0;

	ack.tcp_flags = TCPF_ACK;
	if (dpt_open(&T, "atomic", NULL))
		return 1;
	if (dpt_apply(&T, rev_a, &err)) {
		dpt_close(&T);
		T_FAIL("apply: %s", err.msg);
	}
	for (int i = 0; i < NTHREADS; i++) {
		/* each thread its own client port, so each has its own conntrack entry */
		syn.sport = ack.sport = (uint16_t)(40000 + i);
		w[i].len[0] = pkt_build(w[i].pkt[0], &syn);
		w[i].len[1] = pkt_build(w[i].pkt[1], &ack);
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	/* wait until packets flow, then flip back and forth */
	while (atomic_load(&runs) < 1000)
		;
	runs_at_start = atomic_load(&runs);
	for (unsigned long rev = 1; flips < FLIPS; rev++, flips++) {
		delta_text(delta, sizeof(delta), rev, rev % 2 == 1);
		rc = dpt_apply(&T, delta, &err);
		if (rc)
			break;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	agent_dp_flows_drain(T.dp, count_rules, &bad_rules);
	dpt_close(&T);

	printf("    %lu flips, %lu packets evaluated during them, %lu denied, %lu errors\n", flips,
	       atomic_load(&runs) - runs_at_start, atomic_load(&denied), atomic_load(&errors));
	T_ASSERT(rc == 0, "apply #%lu failed: %s", flips, err.msg);
	T_ASSERT(atomic_load(&errors) == 0, "test-run errors");
	T_ASSERT(atomic_load(&runs) - runs_at_start > FLIPS, "too few packets during the flips");
	T_ASSERT(atomic_load(&denied) == 0, "%lu packets saw a mixed state",
		 atomic_load(&denied));
	T_ASSERT(bad_rules == 0, "%lu packets were decided by a rule other than 50/60", bad_rules);
	return 0;
}

/* The second rule pair: tcp/81 is allowed only in A, tcp/82 only in B. Sampled right after each
 * flip from this thread, the verdicts must always match the revision that apply reported. */
static int t_two_rules_change_together(void)
{
	struct pkt_spec p81 = {.src = "198.18.1.7", .dst = "198.18.0.1", .proto = 6,
			       .sport = 41000, .dport = 81, .tcp_flags = TCPF_SYN};
	struct pkt_spec p82 = p81;
	struct bh_error err = {0};
	char delta[1024];

	p82.dport = 82;
	if (dpt_open(&T, "atomic2", NULL))
		return 1;
	if (dpt_apply(&T, rev_a, &err)) {
		dpt_close(&T);
		T_FAIL("apply: %s", err.msg);
	}
	for (unsigned long rev = 1; rev <= 50; rev++) {
		bool now_b = rev % 2 == 1;
		int r81, r82;

		delta_text(delta, sizeof(delta), rev, now_b);
		if (dpt_apply(&T, delta, &err)) {
			dpt_close(&T);
			T_FAIL("apply: %s", err.msg);
		}
		r81 = dpt_run(&T, BH_DIR_INGRESS, &p81);
		r82 = dpt_run(&T, BH_DIR_INGRESS, &p82);
		if (r81 != (now_b ? TC_ACT_SHOT_ : TC_ACT_OK_) ||
		    r82 != (now_b ? TC_ACT_OK_ : TC_ACT_SHOT_)) {
			dpt_close(&T);
			T_FAIL("revision %lu: tcp/81 -> %d, tcp/82 -> %d", rev + 1, r81, r82);
		}
	}
	dpt_close(&T);
	return 0;
}

static const struct t_case cases[] = {
	{"no packet sees a mix of two revisions", t_no_mixed_state},
	{"two rules change together (allow->deny, deny->allow)", t_two_rules_change_together},
};

int main(int argc, char **argv)
{
	dpt_init("test_atomic");
	return t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
}
