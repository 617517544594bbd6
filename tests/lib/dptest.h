/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Datapath test harness: a private network namespace (so BPF_PROG_TEST_RUN packets arrive on lo,
 * ifindex 1), a uniquely named pinned datapath, text rule sets, and packet runs.
 */
#ifndef BH_TESTS_DPTEST_H
#define BH_TESTS_DPTEST_H

#include <stdint.h>

#include "dataplane.h"
#include "pkt.h"

#define TC_ACT_OK_   0
#define TC_ACT_SHOT_ 2

struct dpt {
	struct agent_dp *dp;
	char node[64];
};

/* Checks root, bpffs and BPF, enters a private network namespace. Exits the process with a message
 * naming what is missing on failure: these tests never skip. Call once, first. */
void dpt_init(const char *test_name);

/* Opens a fresh datapath named after tag (unique per process). opts may be NULL. */
int dpt_open(struct dpt *t, const char *tag, const struct agent_dp_opts *opts);

/* Detaches and closes; takes a never-opened t. */
void dpt_close(struct dpt *t);

/* Parses text as a rule set or delta and applies it (then settles). Returns 0 or the error,
 * with err filled. */
int dpt_apply(struct dpt *t, const char *text, struct bh_error *err);

/* Runs one packet through the ingress (hook 0) or egress (hook 1) program; returns the tc
 * action (TC_ACT_OK_ / TC_ACT_SHOT_) or a negative errno. */
int dpt_run(struct dpt *t, int hook, const struct pkt_spec *s);

/* Runs raw bytes through a program; same return as dpt_run(). */
int dpt_run_raw(struct dpt *t, int hook, const void *buf, size_t len);

/* Drains flows and sums packets of flows matching rule id and verdict (verdict 0: any). */
uint64_t dpt_flow_packets(struct dpt *t, uint32_t rule, uint8_t verdict);

#endif
