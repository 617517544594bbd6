// SPDX-License-Identifier: Apache-2.0
/*
 * The compiler benchmark (tests/bench/compile.sh runs it; no root, no network):
 *
 *   1  a full compile of a generated fleet (default 10,000 workloads on 100 nodes, 1,000
 *      policies): time to every node's rule set, peak memory, rule set sizes;
 *   2  one label change on one workload: the incremental update to every affected node's rule
 *      set, against the baseline of a full recompile for the same change, and the size of the
 *      deltas the nodes would be sent.
 *
 * The fleet: 200 apps x 3 environments (600 label sets, so 600 identities), workloads spread
 * round-robin over the nodes. Each policy selects one app in one environment and allows ingress
 * from another app (a port, or a range every fifth policy) and, every third policy, egress to a
 * team (udp/53); every tenth adds a CIDR peer with an except, every twentieth a deny.
 * Addresses: 198.18.0.0/15 and fd00:b1::/64 only (never sent anywhere).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "compile.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long maxrss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static const char *const envs[] = {"prod", "staging", "dev"};

static void die(const char *what, const struct bh_error *err)
{
	fprintf(stderr, "bh_bench_compile: %s: %s\n", what, err ? err->msg : strerror(errno));
	exit(1);
}

static void put(struct ctl_compiler *c, struct ctl_doc *d)
{
	struct ctl_doc old;
	struct bh_error err = {0};
	bool had;

	if (ctl_compiler_put(c, d, &old, &had, &err))
		die("put", &err);
	ctl_doc_free(d);
	if (had)
		ctl_doc_free(&old);
}

static struct ctl_doc workload(unsigned int i, unsigned int nodes, unsigned int app,
			       const char *env)
{
	struct ctl_doc d = {.kind = CTL_KIND_WORKLOAD};
	struct bh_error err = {0};
	char buf[128];

	snprintf(buf, sizeof(buf), "wl-%05u", i);
	d.workload.name = strdup(buf);
	snprintf(buf, sizeof(buf), "node-%03u", i % nodes);
	d.workload.node = strdup(buf);
	snprintf(buf, sizeof(buf), "bh%05u", i);
	d.workload.ifname = strdup(buf);
	snprintf(buf, sizeof(buf), "app=app-%u,env=%s,team=team-%u", app, env, app % 20);
	if (ctl_labels_parse(buf, &d.workload.labels, &err))
		die("labels", &err);
	d.workload.addrs = calloc(2, sizeof(*d.workload.addrs));
	snprintf(buf, sizeof(buf), "198.18.%u.%u", i / 250, i % 250 + 1);
	ctl_prefix_parse(buf, &d.workload.addrs[0], &err);
	snprintf(buf, sizeof(buf), "fd00:b1::%x:%x", i / 250, i % 250 + 1);
	ctl_prefix_parse(buf, &d.workload.addrs[1], &err);
	d.workload.n_addrs = 2;
	return d;
}

static struct ctl_rule *rule_add(struct ctl_policy *p, int dir, int action)
{
	struct ctl_rule *r;

	p->rules[dir][action] =
		realloc(p->rules[dir][action], (p->n_rules[dir][action] + 1) * sizeof(*r));
	r = &p->rules[dir][action][p->n_rules[dir][action]++];
	memset(r, 0, sizeof(*r));
	return r;
}

static void peer_sel(struct ctl_rule *r, const char *sel)
{
	struct bh_error err = {0};

	r->peers = realloc(r->peers, (r->n_peers + 1) * sizeof(*r->peers));
	memset(&r->peers[r->n_peers], 0, sizeof(r->peers[0]));
	r->peers[r->n_peers].kind = CTL_PEER_SELECTOR;
	if (ctl_selector_parse(sel, &r->peers[r->n_peers].sel, &err))
		die("selector", &err);
	r->n_peers++;
}

static void port(struct ctl_rule *r, uint8_t proto, uint16_t lo, uint16_t hi)
{
	r->ports = realloc(r->ports, (r->n_ports + 1) * sizeof(*r->ports));
	memset(&r->ports[r->n_ports], 0, sizeof(r->ports[0]));
	r->ports[r->n_ports].proto = proto;
	r->ports[r->n_ports].port = lo;
	r->ports[r->n_ports].end_port = hi;
	r->n_ports++;
}

static struct ctl_doc policy(unsigned int j, unsigned int apps)
{
	struct ctl_doc d = {.kind = CTL_KIND_POLICY};
	struct ctl_policy *p = &d.policy;
	struct bh_error err = {0};
	struct ctl_rule *r;
	char buf[128];
	unsigned int app = j % apps;

	snprintf(buf, sizeof(buf), "pol-%04u", j);
	p->name = strdup(buf);
	snprintf(buf, sizeof(buf), "app=app-%u,env=%s", app, envs[(j / apps) % 3]);
	if (ctl_selector_parse(buf, &p->sel, &err))
		die("selector", &err);
	p->isolates[CTL_INGRESS] = true;
	r = rule_add(p, CTL_INGRESS, CTL_ALLOW);
	snprintf(buf, sizeof(buf), "app=app-%u", (app + 1) % apps);
	peer_sel(r, buf);
	if (j % 5 == 0)
		port(r, 6, 9000, (uint16_t)(9000 + j % 200));
	else
		port(r, 6, (uint16_t)(8000 + j % 100), 0);
	if (j % 10 == 0) {
		r->peers = realloc(r->peers, (r->n_peers + 1) * sizeof(*r->peers));
		memset(&r->peers[r->n_peers], 0, sizeof(r->peers[0]));
		r->peers[r->n_peers].kind = CTL_PEER_CIDR;
		ctl_prefix_parse("198.19.0.0/16", &r->peers[r->n_peers].cidr, &err);
		r->peers[r->n_peers].except = calloc(1, sizeof(struct ctl_prefix));
		ctl_prefix_parse("198.19.7.0/24", &r->peers[r->n_peers].except[0], &err);
		r->peers[r->n_peers].n_except = 1;
		r->n_peers++;
	}
	if (j % 3 == 0) {
		p->isolates[CTL_EGRESS] = true;
		r = rule_add(p, CTL_EGRESS, CTL_ALLOW);
		snprintf(buf, sizeof(buf), "team=team-%u", j % 20);
		peer_sel(r, buf);
		port(r, 17, 53, 0);
	}
	if (j % 20 == 0) {
		r = rule_add(p, CTL_INGRESS, CTL_DENY);
		peer_sel(r, "env=dev");
	}
	return d;
}

struct totals {
	size_t nodes, rules, ipc, eps, max_rules;
};

static int count(const char *node, const struct ctl_node_out *o, void *arg)
{
	struct totals *t = arg;

	(void)node;
	t->nodes++;
	t->rules += o->n_rules;
	t->ipc += o->n_ipc;
	t->eps += o->n_eps;
	if (o->n_rules > t->max_rules)
		t->max_rules = o->n_rules;
	return 0;
}

struct snap {
	char **names;
	struct ctl_node_out *outs;
	size_t n;
};

static int snap_cb(const char *node, const struct ctl_node_out *o, void *arg)
{
	struct snap *s = arg;

	s->names[s->n] = strdup(node);
	ctl_node_out_copy(&s->outs[s->n], o);
	s->n++;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int n_wl = 10000, n_nodes = 100, n_pol = 1000, apps = 200, reps = 5;
	struct ctl_compiler *c;
	struct bh_error err = {0};
	struct totals t = {0};
	struct snap s = {0};
	const char **changed;
	size_t n_changed;
	double t0, full_ms, inc_ms = 1e9, base_ms = 1e9;
	long rss0, rss1;
	int opt;

	while ((opt = getopt(argc, argv, "w:n:p:r:h")) != -1) {
		switch (opt) {
		case 'w':
			n_wl = (unsigned int)atoi(optarg);
			break;
		case 'n':
			n_nodes = (unsigned int)atoi(optarg);
			break;
		case 'p':
			n_pol = (unsigned int)atoi(optarg);
			break;
		case 'r':
			reps = (unsigned int)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bh_bench_compile [-w WORKLOADS] [-n NODES] "
					"[-p POLICIES] [-r REPEATS]\n");
			return 2;
		}
	}
	if (!n_wl || !n_nodes || !n_pol || !reps || n_wl > 60000) {
		fprintf(stderr, "bh_bench_compile: bad sizes\n");
		return 2;
	}
	rss0 = maxrss_kib();
	/* 1: the full compile, from documents to every node's rule set */
	t0 = now_ms();
	if (ctl_compiler_create(&c, 3600))
		die("create", NULL);
	for (unsigned int i = 0; i < n_wl; i++) {
		struct ctl_doc d = workload(i, n_nodes, i % apps, envs[(i / apps) % 3]);

		put(c, &d);
	}
	for (unsigned int j = 0; j < n_pol; j++) {
		struct ctl_doc d = policy(j, apps);

		put(c, &d);
	}
	if (ctl_compiler_update(c, 1000, &changed, &n_changed, NULL, NULL, &err))
		die("update", &err);
	full_ms = now_ms() - t0;
	free(changed);
	rss1 = maxrss_kib();
	ctl_compiler_each_node(c, count, &t);
	printf("full compile: %u workloads, %u nodes, %u policies, %zu identities in use\n", n_wl,
	       n_nodes, n_pol, (size_t)apps * 3);
	printf("  time            %10.1f ms   (target <= 1000 ms)\n", full_ms);
	printf("  peak memory     %10.1f MiB  (process peak RSS grew by this much)\n",
	       (double)(rss1 - rss0) / 1024.0);
	printf("  rules           %10zu total, %zu per node on average, %zu at most\n", t.rules,
	       t.rules / (t.nodes ? t.nodes : 1), t.max_rules);
	printf("  ipcache entries %10zu total, %zu per node on average\n", t.ipc,
	       t.ipc / (t.nodes ? t.nodes : 1));

	/* 2: one label change on one workload, incremental against a full recompile */
	s.names = calloc(t.nodes, sizeof(char *));
	s.outs = calloc(t.nodes, sizeof(*s.outs));
	for (unsigned int r = 0; r < reps; r++) {
		unsigned int i = (n_wl / 2 + r * 37) % n_wl;
		/* move it to another app: its identity changes, and so do the peers that
		 * named its old and new app */
		struct ctl_doc d = workload(i, n_nodes, (i % apps + 7) % apps, envs[(i / apps) % 3]);
		struct ctl_doc back = workload(i, n_nodes, i % apps, envs[(i / apps) % 3]);
		size_t add = 0, del = 0, nodes_changed;
		double a;

		for (size_t k = 0; k < s.n; k++) {
			free(s.names[k]);
			ctl_node_out_free(&s.outs[k]);
		}
		s.n = 0;
		ctl_compiler_each_node(c, snap_cb, &s);
		put(c, &d);
		a = now_ms();
		if (ctl_compiler_update(c, 1000, &changed, &n_changed, NULL, NULL, &err))
			die("update", &err);
		a = now_ms() - a;
		if (a < inc_ms)
			inc_ms = a;
		nodes_changed = n_changed;
		for (size_t k = 0; k < n_changed; k++) {
			struct ctl_node_delta dl;

			for (size_t q = 0; q < s.n; q++) {
				if (strcmp(s.names[q], changed[k]))
					continue;
				ctl_node_out_diff(&s.outs[q], ctl_compiler_node(c, changed[k]),
						  &dl);
				add += dl.n_rules_add + dl.n_ipc_add + dl.n_eps_add;
				del += dl.n_rules_del + dl.n_ipc_del + dl.n_eps_del;
				ctl_node_delta_free(&dl);
			}
		}
		free(changed);
		/* the baseline: the same state compiled from scratch */
		a = now_ms();
		if (ctl_compiler_recompile_all(c, 1000, NULL, NULL, &err))
			die("recompile", &err);
		a = now_ms() - a;
		if (a < base_ms)
			base_ms = a;
		if (r == 0)
			printf("one label change (workload %u to another app):\n"
			       "  nodes whose rule set changed %zu of %zu; delta entries: %zu "
			       "added, %zu removed (%.1f per changed node)\n",
			       i, nodes_changed, t.nodes, add, del,
			       nodes_changed ? (double)(add + del) / (double)nodes_changed : 0.0);
		put(c, &back);
		if (ctl_compiler_update(c, 1000, NULL, NULL, NULL, NULL, &err))
			die("update", &err);
	}
	printf("  incremental     %10.2f ms   (target <= 10 ms; best of %u)\n", inc_ms, reps);
	printf("  full recompile  %10.2f ms   (baseline, same change; best of %u)\n", base_ms,
	       reps);
	printf("  ratio           %10.1fx faster than the full recompile\n",
	       inc_ms > 0 ? base_ms / inc_ms : 0.0);
	for (size_t k = 0; k < s.n; k++) {
		free(s.names[k]);
		ctl_node_out_free(&s.outs[k]);
	}
	free(s.names);
	free(s.outs);
	ctl_compiler_destroy(c);
	return 0;
}
