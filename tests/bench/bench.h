/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The datapath benchmark (bh_bench): what its subcommands share. Rule sets are generated here, so
 * that Bulkhead and the iptables baselines are given the same rules; results are printed as
 * "ROW|..." lines that tests/bench/run.sh gathers into one table.
 *
 * Every address is from 198.18.0.0/15:
 *   198.18.0.1           the client: the one peer the rule set lets in (BENCH_CLIENT_ID)
 *   198.18.0.2           the protected server endpoint
 *   198.18.0.16 ...      ipcache filler prefixes (/32, every 16th a /28)
 *   198.19.240.0 + k     peer k of the generated rules (identity BENCH_PEER_ID0 + k)
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bulkhead.pb-c.h"

#define BENCH_CLIENT_ADDR 0xc6120001u /* 198.18.0.1 */
#define BENCH_SERVER_ADDR 0xc6120002u /* 198.18.0.2 */
#define BENCH_FILL_ADDR0  0xc6120010u /* 198.18.0.16 */
#define BENCH_PEER_ADDR0  0xc613f000u /* 198.19.240.0 */
#define BENCH_MAX_FILL	  120000u     /* filler stays below the peers' addresses */
#define BENCH_MAX_PEERS	  4096u	      /* 198.19.240.0/20 */

#define BENCH_LOCAL_ID	 1000  /* the protected endpoint */
#define BENCH_CLIENT_ID	 1500  /* the client */
#define BENCH_COVER_ID	 1600  /* 198.18.0.0/15, under everything else */
#define BENCH_PEER_ID0	 10000 /* generated peers */
#define BENCH_FILL_ID0	 50000 /* filler prefixes, 1000 identities round robin */
#define BENCH_DENY_RULE	 100   /* default ingress verdict (deny) */
#define BENCH_ALLOW_RULE 101   /* default egress verdict (allow) */
#define BENCH_MATCH_RULE 999   /* the rule that lets the client in */
#define BENCH_RULE_ID0	 1000  /* generated rule i has id BENCH_RULE_ID0 + i */
#define BENCH_PORT0	 1024  /* generated rule i allows port BENCH_PORT0 + i % ports_per_peer */

/* A generated rule set for one endpoint. */
struct bench_gen {
	const char *ifname;	 /* the endpoint's interface */
	size_t n_rules;		 /* generated rules, one policy entry each (single tcp port) */
	uint32_t ports_per_peer; /* rule i: peer i / ports_per_peer, port i % ports_per_peer */
	uint32_t match_port;	 /* > 0: one more rule, last: BENCH_CLIENT_ID to tcp/match_port */
	size_t n_peers;		 /* ipcache /32s for peers 0..n_peers-1 (at least the rules') */
	size_t n_fill;		 /* ipcache filler prefixes (at most BENCH_MAX_FILL) */
	bool cover;		 /* add 198.18.0.0/15 -> BENCH_COVER_ID */
};

/* A NodePolicy and the memory behind it (one allocation per array, not per message). */
struct bench_policy {
	Bulkhead__NodePolicy np;
	Bulkhead__Endpoint ep, *ep_v[1];
	Bulkhead__DirectionDefault def_in, def_eg;
	Bulkhead__IpcacheEntry *ipc, **ipc_v;
	uint8_t (*ipc_addr)[4];
	Bulkhead__Rule *rules, **rules_v;
};

/* Rules first .. first+n-1 of the generated family (see struct bench_gen). */
struct bench_rules {
	Bulkhead__Rule *v, **ptrs;
	size_t n;
};

/* ---- rule sets (bench_rules.c) ------------------------------------------------------------- */

/* Builds the rule set g describes, at revision. On success *out is set (free it with
 * bench_policy_free()) and 0 returned; -EINVAL for a generator out of range, -ENOMEM. */
int bench_policy_build(struct bench_policy **out, const struct bench_gen *g, uint64_t revision);
void bench_policy_free(struct bench_policy *p);

/* Fills r with generated rule i. Never fails. */
void bench_rule_fill(Bulkhead__Rule *r, size_t i, uint32_t ports_per_peer);
/* Fills r with the rule that lets BENCH_CLIENT_ID reach tcp/port. Never fails. */
void bench_match_rule_fill(Bulkhead__Rule *r, uint32_t port);

/* Generated rules first .. first+n-1. 0 or -ENOMEM; bench_rules_free() takes a zeroed struct. */
int bench_rules_make(struct bench_rules *out, size_t first, size_t n, uint32_t ports_per_peer);
void bench_rules_free(struct bench_rules *r);

/* The policy key a generated rule becomes (for raw map baselines). key must hold 16 bytes. */
void bench_rule_key(const Bulkhead__Rule *r, void *key);

/*
 * Writes an iptables-restore file with the same rules as filter-table ACCEPT rules in INPUT:
 * generated rules first .. first+n-1, then (match_port > 0) the client's rule last. With noflush
 * the file only appends (for `iptables-restore --noflush`); otherwise it replaces the table and
 * sets INPUT's policy (drop: DROP, like the endpoint's default deny). established_first puts a
 * conntrack ESTABLISHED,RELATED accept in front. Returns 0 or a negative errno.
 */
int bench_ipt_write(FILE *f, size_t first, size_t n, uint32_t ports_per_peer, uint32_t match_port,
		    bool noflush, bool drop, bool established_first);

/* ---- helpers (bench_util.c) ---------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

/* Median of v[0..n-1] (sorts v). n must be > 0. */
double bench_median(double *v, size_t n);
/* Sorts v[0..n-1] ascending. */
void bench_sort(double *v, size_t n);
/* Percentile p (0..1) of sorted v[0..n-1]; 0 for none. */
double bench_pct(const double *v, size_t n, double p);

/* Bounds the run: after secs the process prints "NOTE|STOPPED by the S s time limit during:
 * PHASE" on stdout and exits 4. bench_phase() names (and logs) what it does from then on. Main
 * thread. */
void bench_alarm(unsigned int secs);
void bench_phase(const char *what);

/* Opens /run/netns/NAME (as `ip netns add` makes it). Returns the fd or a negative errno. */
int bench_netns_open(const char *name);

/*
 * Runs argv (PATH search) in network namespace ns_fd (-1: ours) with stdin from in_path (NULL:
 * /dev/null) and stdout sent to stderr unless keep_stdout, and waits for it. *elapsed_ns (may be
 * NULL) gets the wall time from fork to exit. Returns the exit status (0-255), or a negative errno
 * if it could not run or was killed by a signal.
 */
int bench_spawn(int ns_fd, const char *in_path, char *const argv[], bool keep_stdout,
		uint64_t *elapsed_ns);

/* Enters a new private network namespace: its lo (ifindex 1) is what BPF_PROG_TEST_RUN uses. */
int bench_private_netns(void);

/* The node name of this run's datapath `what`: "bench-<run id>-<what>". */
const char *bench_node(char *buf, size_t len, const char *run_id, const char *what);

/* One result row: section, case, value, baseline, ratio (value / baseline, as text), target and
 * verdict ("ok", "MISS" or "-"). Printed as "ROW|..." on stdout. */
void bench_row(const char *sec, const char *name, const char *value, const char *baseline,
	       const char *ratio, const char *target, const char *verdict);

/* snprintf into a static ring of buffers, for building row cells inline. */
const char *bench_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "bh_bench: message" on stderr. */
void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- subcommands --------------------------------------------------------------------------- */

int bench_cmd_pkt(int argc, char **argv);
int bench_cmd_apply(int argc, char **argv);
int bench_cmd_guard(int argc, char **argv);
int bench_cmd_ipt_rules(int argc, char **argv);

/* The kernel's count of connections dropped at full listen queues (TcpExt ListenOverflows +
 * ListenDrops), -1 if /proc/net/netstat is unreadable. */
long bench_listen_drops(void);

#endif
