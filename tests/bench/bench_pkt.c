// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench pkt: nanoseconds per packet of the ingress program through BPF_PROG_TEST_RUN, against
 * the empty tc program, for rule sets from 10 to 1M policy entries and for large ipcaches; also
 * how long a snapshot of that size takes to apply, and the kernel memory each entry costs.
 *
 * Each case runs in a private network namespace: BPF_PROG_TEST_RUN gives the skb that namespace's
 * lo (ifindex 1), so the endpoint is "lo", and attaching to it touches nothing outside.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench.h"
#include "bench_parts.skel.h"
#include "bh_empty.skel.h"
#include "dataplane.h"

#define MATCH_PORT 8443
#define DENY_PORT  7 /* no rule for the client on this port: default deny */
#define PKT_LEN	   54

struct pkt_case {
	const char *what;  /* node name suffix */
	const char *title; /* row label */
	size_t policy;	   /* policy entries, the matching rule included */
	size_t fill;	   /* ipcache filler prefixes */
	bool flat;	   /* part of the 10 .. 1M flatness series */
};

static const struct pkt_case cases[] = {
	{"p10", "10 policy entries", 10, 0, true},
	{"p1k", "1k policy entries", 1000, 0, true},
	{"p100k", "100k policy entries", 100000, 0, true},
	{"p1m", "1M policy entries", 1000000, 0, true},
	{"c1k", "1k entries + 1k CIDRs in ipcache", 1000, 1000, false},
	{"c100k", "1k entries + 100k CIDRs in ipcache", 1000, 100000, false},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct pkt_result {
	bool done;
	double syn, syn_empty, ack, ack_empty; /* medians, ns */
	double apply_ms, settle_ms, raw_ms;
	uint64_t pol_mem0, pol_mem1, ipc_mem0, ipc_mem1;
	int64_t slab; /* memcg-charged slab bytes the apply added (0: not known) */
	uint32_t n_policy, n_ipcache, policy_max;
};

/* ---- packets ------------------------------------------------------------------------------- */

static uint16_t csum16(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* Ethernet + IPv4 + TCP (no options), client -> server. */
static void tcp4_pkt(uint8_t *b, uint16_t sport, uint16_t dport, uint8_t flags)
{
	uint8_t *ip = b + 14, *tcp = ip + 20;

	memset(b, 0, PKT_LEN);
	memcpy(b, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
	ip[0] = 0x45;
	put16(ip + 2, 40);
	put16(ip + 4, 1);
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, BENCH_CLIENT_ADDR);
	put32(ip + 16, BENCH_SERVER_ADDR);
	put16(ip + 10, csum16(ip, 20));
	put16(tcp, sport);
	put16(tcp + 2, dport);
	put32(tcp + 4, 1000);
	put32(tcp + 8, flags & 0x10 ? 2000 : 0);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	put16(tcp + 14, 65535);
}

static int test_run(int prog_fd, const uint8_t *pkt, uint32_t repeat, uint32_t *retval, double *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = PKT_LEN,
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(prog_fd, &o) < 0) {
		bench_log("BPF_PROG_TEST_RUN: %s", strerror(errno));
		return -errno;
	}
	*retval = o.retval;
	if (ns)
		*ns = o.duration; /* the kernel's average per run, in ns */
	return 0;
}

/* ---- checks -------------------------------------------------------------------------------- */

struct flow_check {
	uint64_t allowed; /* packets allowed by the client's rule */
	uint64_t denied;  /* packets denied by the default */
};

static int flow_cb(const struct agent_dp_flow *f, void *ctx)
{
	struct flow_check *c = ctx;

	if (f->key.rule_id == BENCH_MATCH_RULE && f->key.verdict == BH_VERDICT_ALLOW)
		c->allowed += f->val.packets;
	if (f->key.rule_id == BENCH_DENY_RULE && f->key.verdict == BH_VERDICT_DENY)
		c->denied += f->val.packets;
	return 0;
}

/* The raw cost floor of writing n policy keys: one bpf_map_update_elem() each into a fresh hash
 * map of the same kind as a generation. Returns ms or a negative value on failure. */
static double raw_write_ms(const Bulkhead__NodePolicy *np, uint32_t max)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_NO_PREALLOC);
	struct bh_policy_key k;
	struct bh_policy_val v = {0};
	uint64_t t0;
	double ms;
	int fd;

	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_raw", sizeof(k), sizeof(v), max, &mo);
	if (fd < 0)
		return -1;
	t0 = bench_now_ns();
	for (size_t i = 0; i < np->n_rules; i++) {
		bench_rule_key(np->rules[i], &k);
		v.rule_id = np->rules[i]->rule_id;
		if (bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST) < 0) {
			close(fd);
			return -1;
		}
	}
	ms = (double)(bench_now_ns() - t0) / 1e6;
	close(fd);
	return ms;
}

/* Bytes in use in the memcg-charged kmalloc caches (kmalloc-cg-*), where BPF hash and LPM trie
 * elements live; 0 if /proc/slabinfo cannot be read. Machine-wide, so others' allocations are
 * noise here: small against the hundreds of MB a large rule set takes. */
static int64_t slab_cg_bytes(void)
{
	FILE *f = fopen("/proc/slabinfo", "r");
	char line[512], name[64];
	long long active, total, size, sum = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lld %lld %lld", name, &active, &total, &size) == 4 &&
		    strncmp(name, "kmalloc-cg-", 11) == 0)
			sum += active * size;
	fclose(f);
	return sum;
}

/* The raw-writes baseline of a case's snapshot apply: the same policy keys written one by one
 * into a fresh hash map of the same kind and size as a generation. */
static int raw_measure(const struct pkt_case *c, struct pkt_result *res)
{
	struct bench_gen g = {
		.ifname = "lo",
		.n_rules = c->policy - 1,
		.ports_per_peer = 50000,
		.match_port = MATCH_PORT,
	};
	struct bench_policy *bp = NULL;
	int rc = bench_policy_build(&bp, &g, 1);

	if (rc)
		return rc;
	res->raw_ms = raw_write_ms(&bp->np, (uint32_t)c->policy + 16);
	bench_policy_free(bp);
	if (res->raw_ms < 0) {
		bench_log("%s: raw map writes failed", c->title);
		return -EIO;
	}
	return 0;
}

/* ---- one case ------------------------------------------------------------------------------ */

/* A case's datapath, open and enforcing its rule set while the measurements run. */
struct pkt_live {
	struct agent_dp *dp;
	int fd;	   /* its ingress program */
	int ns_fd; /* its private network namespace, where its lo attachment lives */
};

/* Opens the case's datapath, applies its rule set (timed, with memory before and after) and
 * checks that the program decides as the rule set says. l->dp is set as soon as it exists, for
 * case_teardown(), even on failure. */
static int case_setup(const struct pkt_case *c, const char *run_id, struct pkt_live *l,
		      struct pkt_result *res)
{
	struct bench_gen g = {
		.ifname = "lo",
		.n_rules = c->policy - 1,
		.ports_per_peer = 50000,
		.match_port = MATCH_PORT,
		.n_fill = c->fill,
		.cover = c->fill > 0,
	};
	struct agent_dp_opts o = {
		.load = true,
		.policy_max = (uint32_t)c->policy + 16,
		.ipcache_max = (uint32_t)c->fill + 64,
		.ct_max = 4096,
		.flows_max = 4096,
	};
	struct bench_policy *bp = NULL;
	struct agent_dp_info info;
	struct bh_error err = {0};
	struct flow_check fc = {0};
	uint8_t syn[PKT_LEN], ack[PKT_LEN], deny[PKT_LEN];
	char node[64];
	uint32_t ret = 0;
	uint64_t t0;
	int64_t slab0;
	int rc;

	/* A namespace of its own, so that each case attaches to its own lo and detaches only
	 * that. BPF_PROG_TEST_RUN uses the lo of whichever namespace is current: ifindex 1 in each,
	 * so every case's endpoint matches it. */
	rc = bench_private_netns();
	if (rc)
		return rc;
	l->ns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (l->ns_fd < 0)
		return -errno;
	o.node = bench_node(node, sizeof(node), run_id, c->what);
	res->policy_max = o.policy_max;
	rc = bench_policy_build(&bp, &g, 1);
	if (rc) {
		bench_log("%s: building the rule set: %s", c->title, strerror(-rc));
		goto out;
	}
	rc = agent_dp_open(&l->dp, &o, &err);
	if (rc) {
		bench_log("%s: opening the datapath: %s", c->title, err.msg);
		goto out;
	}
	l->fd = agent_dp_prog_fd(l->dp, BH_DIR_INGRESS);
	agent_dp_info(l->dp, &info);
	res->pol_mem0 = info.maps[AGENT_DP_POLICY].memlock;
	res->ipc_mem0 = info.maps[AGENT_DP_IPCACHE].memlock;

	slab0 = slab_cg_bytes();
	t0 = bench_now_ns();
	rc = agent_dp_apply_snapshot(l->dp, &bp->np, &err);
	res->apply_ms = (double)(bench_now_ns() - t0) / 1e6;
	if (rc) {
		bench_log("%s: applying the snapshot: %s", c->title, err.msg);
		goto out;
	}
	t0 = bench_now_ns();
	rc = agent_dp_settle(l->dp, &err);
	res->settle_ms = (double)(bench_now_ns() - t0) / 1e6;
	if (rc) {
		bench_log("%s: settling: %s", c->title, err.msg);
		goto out;
	}
	res->slab = slab0 ? slab_cg_bytes() - slab0 : 0;
	agent_dp_info(l->dp, &info);
	res->pol_mem1 = info.maps[AGENT_DP_POLICY].memlock;
	res->ipc_mem1 = info.maps[AGENT_DP_IPCACHE].memlock;
	res->n_policy = info.maps[AGENT_DP_POLICY].used;
	res->n_ipcache = info.maps[AGENT_DP_IPCACHE].used;
	bench_log("%s: snapshot applied in %.1f ms, settled in %.1f ms; %u policy entries, "
		  "%u prefixes",
		  c->title, res->apply_ms, res->settle_ms, res->n_policy, res->n_ipcache);
	if (res->n_policy != c->policy) {
		bench_log("%s: the policy map holds %u entries, want %zu", c->title, res->n_policy,
			  c->policy);
		rc = -EPROTO;
		goto out;
	}

	/* Sanity: the rule set enforces (a denied port drops), the client's SYN is allowed by its
	 * rule, and the flow counters say which rule decided. */
	tcp4_pkt(syn, 40000, MATCH_PORT, 0x02);
	tcp4_pkt(ack, 40000, MATCH_PORT, 0x10);
	tcp4_pkt(deny, 40001, DENY_PORT, 0x02);
	agent_dp_flows_drain(l->dp, NULL, NULL);
	rc = test_run(l->fd, deny, 1, &ret, NULL);
	if (!rc && ret != 2 /* TC_ACT_SHOT */) {
		bench_log("%s: a SYN to a port without a rule got verdict %u, want drop", c->title,
			  ret);
		rc = -EPROTO;
	}
	rc = rc ?: test_run(l->fd, syn, 1, &ret, NULL);
	if (!rc && ret != 0 /* TC_ACT_OK */) {
		bench_log("%s: the allowed SYN got verdict %u, want pass", c->title, ret);
		rc = -EPROTO;
	}
	rc = rc ?: test_run(l->fd, ack, 1, &ret, NULL);
	if (!rc && ret != 0) {
		bench_log("%s: the established ACK got verdict %u, want pass", c->title, ret);
		rc = -EPROTO;
	}
	if (rc)
		goto out;
	agent_dp_flows_drain(l->dp, flow_cb, &fc);
	if (fc.allowed != 2 || fc.denied != 1) {
		bench_log("%s: flow counters: %llu packets allowed by the client's rule (want 2), "
			  "%llu denied by default (want 1)",
			  c->title, (unsigned long long)fc.allowed, (unsigned long long)fc.denied);
		rc = -EPROTO;
	}
out:
	bench_policy_free(bp);
	return rc;
}

static void case_teardown(const struct pkt_case *c, struct pkt_live *l)
{
	struct bh_error err = {0};

	if (l->dp) {
		if (l->ns_fd >= 0 && setns(l->ns_fd, CLONE_NEWNET) < 0)
			bench_log("%s: entering its namespace to detach: %s", c->title,
				  strerror(errno));
		if (agent_dp_detach(l->dp, &err))
			bench_log("%s: detaching: %s", c->title, err.msg);
		agent_dp_close(l->dp);
		l->dp = NULL;
	}
	if (l->ns_fd >= 0)
		close(l->ns_fd);
	l->ns_fd = -1;
}

/*
 * Times every case's SYN and ACK against the empty program. All datapaths are open at once and
 * each round visits every case, so that drift (other load on the machine) spreads over the cases
 * alike instead of landing on whichever ran at the time.
 */
static int measure(const struct pkt_live *live, int empty_fd, int runs, uint32_t repeat,
		   struct pkt_result *res)
{
	uint8_t syn[PKT_LEN], ack[PKT_LEN];
	double *v = calloc(NCASES * 4 * (size_t)runs, sizeof(double));
	uint32_t ret = 0;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	tcp4_pkt(syn, 40000, MATCH_PORT, 0x02);
	tcp4_pkt(ack, 40000, MATCH_PORT, 0x10);
	for (int r = 0; r < runs && !rc; r++) {
		for (size_t i = 0; i < NCASES && !rc; i++) {
			double *cv = v + i * 4 * (size_t)runs;

			if (!live[i].dp)
				continue;
			rc = test_run(empty_fd, syn, repeat, &ret, &cv[r]);
			rc = rc ?: test_run(live[i].fd, syn, repeat, &ret, &cv[runs + r]);
			rc = rc ?: test_run(empty_fd, ack, repeat, &ret, &cv[2 * runs + r]);
			rc = rc ?: test_run(live[i].fd, ack, repeat, &ret, &cv[3 * runs + r]);
		}
	}
	for (size_t i = 0; i < NCASES && !rc; i++) {
		double *cv = v + i * 4 * (size_t)runs;
		struct pkt_result *p = &res[i];

		if (!live[i].dp)
			continue;
		p->syn_empty = bench_median(cv, (size_t)runs);
		p->syn = bench_median(cv + runs, (size_t)runs);
		p->ack_empty = bench_median(cv + 2 * runs, (size_t)runs);
		p->ack = bench_median(cv + 3 * runs, (size_t)runs);
		p->done = true;
		bench_log("%s: SYN %.0f ns (empty %.0f), ACK %.0f ns (empty %.0f)", cases[i].title,
			  p->syn, p->syn_empty, p->ack, p->ack_empty);
	}
	free(v);
	return rc;
}

/* ---- report -------------------------------------------------------------------------------- */

static void rows_pkt(const struct pkt_result *res)
{
	for (size_t i = 0; i < NCASES; i++) {
		const struct pkt_result *r = &res[i];

		if (!r->done)
			continue;
		bench_row("1 ns/pkt",
			  bench_fmt("new flow (SYN, policy lookup), %s", cases[i].title),
			  bench_fmt("%.0f ns (+%.0f)", r->syn, r->syn - r->syn_empty),
			  bench_fmt("empty prog %.0f ns", r->syn_empty),
			  bench_fmt("%.2fx", r->syn / r->syn_empty), "<= +60 ns over empty",
			  r->syn - r->syn_empty <= 60 ? "ok" : "MISS");
	}
	for (size_t i = 0; i < NCASES; i++) {
		const struct pkt_result *r = &res[i];

		if (!r->done)
			continue;
		bench_row("1 ns/pkt",
			  bench_fmt("established (ACK, conntrack hit), %s", cases[i].title),
			  bench_fmt("%.0f ns (+%.0f)", r->ack, r->ack - r->ack_empty),
			  bench_fmt("empty prog %.0f ns", r->ack_empty),
			  bench_fmt("%.2fx", r->ack / r->ack_empty), "-", "-");
	}
	/* Flatness: every size of the series against the smallest. */
	for (int path = 0; path < 2; path++) {
		double base = 0, lo = 0, hi = 0;
		size_t n = 0, first = 0, last = 0;

		for (size_t i = 0; i < NCASES; i++) {
			double x = path == 0 ? res[i].syn : res[i].ack;

			if (!cases[i].flat || !res[i].done)
				continue;
			if (n++ == 0) {
				base = lo = hi = x;
				first = i;
			}
			lo = x < lo ? x : lo;
			hi = x > hi ? x : hi;
			last = i;
		}
		if (n < 2)
			continue;
		bench_row(
			"1 ns/pkt",
			bench_fmt("%s path, flatness %zu .. %zu entries", path == 0 ? "SYN" : "ACK",
				  cases[first].policy, cases[last].policy),
			bench_fmt("%.0f .. %.0f ns", lo, hi),
			bench_fmt("%zu entries %.0f ns", cases[first].policy, base),
			bench_fmt("%.2fx .. %.2fx", lo / base, hi / base),
			path == 0 ? "within +-15%" : "-",
			path == 0 ? (lo / base >= 0.85 && hi / base <= 1.15 ? "ok" : "MISS") : "-");
	}
	for (size_t i = 0; i < NCASES; i++) {
		const struct pkt_result *r = &res[i];

		if (!r->done || !cases[i].flat)
			continue;
		bench_row("1 snapshot", bench_fmt("apply %s (until the flip)", cases[i].title),
			  bench_fmt("%.2f ms", r->apply_ms),
			  bench_fmt("raw map writes %.2f ms", r->raw_ms),
			  bench_fmt("%.2fx", r->apply_ms / r->raw_ms), "-", "-");
		bench_row("1 snapshot", bench_fmt("settle %s (other generation)", cases[i].title),
			  bench_fmt("%.2f ms", r->settle_ms),
			  bench_fmt("raw map writes %.2f ms", r->raw_ms),
			  bench_fmt("%.2fx", r->settle_ms / r->raw_ms), "-", "-");
	}
	/* Memory: the policy map's memlock with N entries minus with none, both generations. */
	for (size_t i = 0; i < NCASES; i++) {
		const struct pkt_result *r = &res[i];
		double per_rule, per_gen;

		if (!r->done || !cases[i].flat || cases[i].policy < 1000)
			continue;
		per_rule = (double)(r->pol_mem1 - r->pol_mem0) / r->n_policy;
		per_gen = per_rule / 2;
		bench_row("4 memory",
			  bench_fmt("policy, %s: per entry per generation", cases[i].title),
			  bench_fmt("%.1f B", per_gen), "key+value 24 B",
			  bench_fmt("%.2fx", per_gen / 24), "<= 100 B",
			  per_gen <= 100 ? "ok" : "MISS");
		bench_row("4 memory",
			  bench_fmt("policy, %s: per rule (both generations)", cases[i].title),
			  bench_fmt("%.1f B", per_rule), "key+value 24 B",
			  bench_fmt("%.2fx", per_rule / 24), "<= 100 B",
			  per_rule <= 100 ? "ok" : "MISS");
		if (r->slab > 0 && r->n_policy >= 100000)
			bench_row("4 memory",
				  bench_fmt("policy, %s: slab per rule (both generations)",
					    cases[i].title),
				  bench_fmt("%.1f B", (double)r->slab / r->n_policy),
				  bench_fmt("memlock's %.1f B", per_rule),
				  bench_fmt("%.2fx", (double)r->slab / r->n_policy / per_rule),
				  "<= 100 B", (double)r->slab / r->n_policy <= 100 ? "ok" : "MISS");
		bench_row("4 memory",
			  bench_fmt("policy maps empty, sized for %u (both generations)",
				    r->policy_max),
			  bench_fmt("%.2f MiB", (double)r->pol_mem0 / (1 << 20)),
			  bench_fmt("filled %.2f MiB", (double)r->pol_mem1 / (1 << 20)),
			  bench_fmt("%.2fx", (double)r->pol_mem0 / (double)r->pol_mem1), "-", "-");
	}
	for (size_t i = 0; i < NCASES; i++) {
		const struct pkt_result *r = &res[i];
		double per_gen;

		if (!r->done || cases[i].fill < 100000)
			continue;
		per_gen = (double)(r->ipc_mem1 - r->ipc_mem0) / r->n_ipcache / 2;
		bench_row(
			"4 memory",
			bench_fmt("ipcache, %u prefixes: per prefix per generation", r->n_ipcache),
			bench_fmt("%.1f B", per_gen), "key+value 32 B",
			bench_fmt("%.2fx", per_gen / 32), "-", "-");
		/* The trie's slab, from the difference to the small-ipcache case with the same
		 * policy: it includes the trie's inner nodes, which memlock leaves out. */
		for (size_t j = 0; j < NCASES; j++) {
			const struct pkt_result *s = &res[j];
			double slab;

			if (!s->done || cases[j].fill == 0 || cases[j].fill >= cases[i].fill ||
			    cases[j].policy != cases[i].policy || r->slab <= 0 || s->slab <= 0)
				continue;
			slab = (double)(r->slab - s->slab) / (r->n_ipcache - s->n_ipcache) / 2;
			bench_row("4 memory",
				  bench_fmt("ipcache, %u prefixes: slab per prefix per generation",
					    r->n_ipcache),
				  bench_fmt("%.1f B", slab), bench_fmt("memlock's %.1f B", per_gen),
				  bench_fmt("%.2fx", slab / per_gen), "-", "-");
			break;
		}
	}
}

/* ---- where the time goes ------------------------------------------------------------------- */

/* Times the pieces of bench_parts.bpf.c against the empty program and prints a row for each. */
static int parts_measure(int empty_fd, int runs, uint32_t repeat)
{
	struct bench_parts *sk = bench_parts__open_and_load();
	uint8_t syn[PKT_LEN], zero[48] = {0};
	double *v = NULL;
	uint32_t ret = 0;
	int rc = 0;

	if (!sk) {
		bench_log("loading bench_parts: %s", strerror(errno));
		return -errno;
	}
	const struct {
		int fd;
		const char *what;
	} parts[] = {
		{bpf_program__fd(sk->progs.part_clock), "clock read (bpf_ktime_get_boot_ns)"},
		{bpf_program__fd(sk->progs.part_load), "3 header reads (bpf_skb_load_bytes)"},
		{bpf_program__fd(sk->progs.part_policy_lookup),
		 "hash lookup, 16-byte key (policy)"},
		{bpf_program__fd(sk->progs.part_ct_lookup),
		 "LRU hash lookup, 44-byte key (conntrack)"},
		{bpf_program__fd(sk->progs.part_ct_update),
		 "LRU hash update, 44-byte key (conntrack create)"},
	};
	size_t np = sizeof(parts) / sizeof(parts[0]);

	tcp4_pkt(syn, 40000, MATCH_PORT, 0x02);
	if (bpf_map_update_elem(bpf_map__fd(sk->maps.part_ct), zero, zero, BPF_ANY) < 0 ||
	    bpf_map_update_elem(bpf_map__fd(sk->maps.part_policy), zero, zero, BPF_ANY) < 0) {
		rc = -errno;
		bench_log("filling the bench_parts maps: %s", strerror(errno));
		goto out;
	}
	v = calloc((np + 1) * (size_t)runs, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (int r = 0; r < runs && !rc; r++) {
		rc = test_run(empty_fd, syn, repeat, &ret, &v[r]);
		for (size_t i = 0; i < np && !rc; i++) {
			rc = test_run(parts[i].fd, syn, repeat, &ret, &v[(i + 1) * runs + r]);
			if (!rc && ret != 0) {
				bench_log("%s: returned %u, want 0", parts[i].what, ret);
				rc = -EPROTO;
			}
		}
	}
	if (rc)
		goto out;
	double empty = bench_median(v, (size_t)runs);

	for (size_t i = 0; i < np; i++) {
		double x = bench_median(v + (i + 1) * runs, (size_t)runs);

		bench_row("1 ns/pkt parts", parts[i].what,
			  bench_fmt("%.0f ns (+%.0f)", x, x - empty),
			  bench_fmt("empty prog %.0f ns", empty), bench_fmt("%.2fx", x / empty),
			  "-", "-");
	}
out:
	free(v);
	bench_parts__destroy(sk);
	return rc;
}

/* ---- the subcommand ------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: bh_bench pkt [--run-id ID] [--runs N] [--repeat N] "
			"[--max-entries N]\n");
}

int bench_cmd_pkt(int argc, char **argv)
{
	static const struct option opts[] = {
		{"run-id", required_argument, NULL, 'i'},
		{"runs", required_argument, NULL, 'n'},
		{"repeat", required_argument, NULL, 'r'},
		{"max-entries", required_argument, NULL, 'm'},
		{0},
	};
	struct pkt_result res[NCASES] = {0};
	struct pkt_live live[NCASES] = {0};
	struct bh_empty *empty = NULL;
	char pid[16];
	const char *run_id = NULL;
	unsigned long runs = 7, repeat = 1000000, max_entries = 1000000;
	int c, rc = 0, empty_fd;
	int64_t slab_base;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			run_id = optarg;
			break;
		case 'n':
			runs = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			repeat = strtoul(optarg, NULL, 10);
			break;
		case 'm':
			max_entries = strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!runs || runs > 1000 || !repeat || repeat > UINT32_MAX) {
		usage();
		return 2;
	}
	if (!run_id) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		run_id = pid;
	}
	for (size_t i = 0; i < NCASES; i++)
		live[i].ns_fd = -1;
	empty = bh_empty__open_and_load();
	if (!empty) {
		bench_log("loading the empty program: %s", strerror(errno));
		return 1;
	}
	empty_fd = bpf_program__fd(empty->progs.bh_tc_empty);
	/* Raw map writes first, then wait until the kernel has freed those scratch maps (a worker
	 * does it after the last fd closes), so that neither the cases' memory readings nor
	 * their timings see that work. */
	slab_base = slab_cg_bytes();
	for (size_t i = 0; i < NCASES && !rc; i++)
		if (cases[i].policy <= max_entries)
			rc = raw_measure(&cases[i], &res[i]);
	for (int waited = 0; !rc && slab_base && waited < 300; waited++) {
		if (slab_cg_bytes() < slab_base + (16 << 20))
			break;
		usleep(100 * 1000);
	}
	for (size_t i = 0; i < NCASES && !rc; i++)
		if (cases[i].policy <= max_entries)
			rc = case_setup(&cases[i], run_id, &live[i], &res[i]);
	rc = rc ?: measure(live, empty_fd, (int)runs, (uint32_t)repeat, res);
	rc = rc ?: parts_measure(empty_fd, (int)runs, (uint32_t)repeat);
	for (size_t i = 0; i < NCASES; i++)
		case_teardown(&cases[i], &live[i]);
	rows_pkt(res);
	bh_empty__destroy(empty);
	return rc ? 1 : 0;
}
