// SPDX-License-Identifier: Apache-2.0
/*
 * The policy compiler: Kubernetes NetworkPolicy semantics (as a table of cases, each checked with
 * ctl_compiler_explain on the compiled rule sets the agents get), the shape of a compiled rule set
 * (disjoint port ranges, ipcache only for what the rules name, CIDR except), and a randomised
 * check that the incremental path always agrees with a full recompile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/util.h"
#include "compile.h"
#include "tap.h"

/* ---- building documents --------------------------------------------------------------------- */

static struct ctl_doc wl_doc(const char *name, const char *node, const char *labels,
			     const char *addrs, bool host)
{
	struct ctl_doc d = {.kind = CTL_KIND_WORKLOAD};
	struct bh_error err = {0};
	char buf[256], *save = NULL, *tok;

	d.workload.name = strdup(name);
	d.workload.node = strdup(node);
	snprintf(buf, sizeof(buf), "v-%s", name);
	buf[15] = '\0';
	d.workload.ifname = strdup(buf);
	d.workload.attach_host = host;
	if (ctl_labels_parse(labels, &d.workload.labels, &err))
		fprintf(stderr, "labels %s: %s\n", labels, err.msg);
	snprintf(buf, sizeof(buf), "%s", addrs);
	d.workload.addrs = calloc(CTL_ADDRS_MAX, sizeof(*d.workload.addrs));
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (ctl_prefix_parse(tok, &d.workload.addrs[d.workload.n_addrs++], &err))
			fprintf(stderr, "addr %s: %s\n", tok, err.msg);
	return d;
}

/*
 * A compact rule notation for tests:
 *   "sel:app=web" | "cidr:198.18.0.0/16-198.18.5.0/24" | "*"   peers, joined by ';'
 *   "tcp/80" "tcp/9000-9100" "udp/53" "icmp/8" "any"            ports, joined by ','
 */
static void add_rule(struct ctl_policy *p, int dir, int action, const char *peers,
		     const char *ports)
{
	struct ctl_rule *r;
	struct bh_error err = {0};
	char buf[512], *save = NULL, *tok;

	p->rules[dir][action] =
		realloc(p->rules[dir][action], (p->n_rules[dir][action] + 1) * sizeof(*r));
	r = &p->rules[dir][action][p->n_rules[dir][action]++];
	memset(r, 0, sizeof(*r));
	r->peers = calloc(16, sizeof(*r->peers));
	r->ports = calloc(16, sizeof(*r->ports));
	snprintf(buf, sizeof(buf), "%s", peers);
	for (tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		struct ctl_peer *pe;

		if (!strcmp(tok, "*"))
			continue;
		pe = &r->peers[r->n_peers++];
		if (!strncmp(tok, "sel:", 4)) {
			pe->kind = CTL_PEER_SELECTOR;
			if (ctl_selector_parse(tok + 4, &pe->sel, &err))
				fprintf(stderr, "selector %s: %s\n", tok, err.msg);
		} else {
			char *ex = strchr(tok + 5, '-');

			pe->kind = CTL_PEER_CIDR;
			if (ex)
				*ex++ = '\0';
			ctl_prefix_parse(tok + 5, &pe->cidr, &err);
			if (ex) {
				pe->except = calloc(1, sizeof(*pe->except));
				ctl_prefix_parse(ex, &pe->except[0], &err);
				pe->n_except = 1;
			}
		}
	}
	snprintf(buf, sizeof(buf), "%s", ports);
	save = NULL;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct ctl_port *pt;
		unsigned int lo = 0, hi = 0;
		char proto[16];

		if (!strcmp(tok, "any"))
			continue;
		pt = &r->ports[r->n_ports++];
		if (sscanf(tok, "%15[a-z]/%u-%u", proto, &lo, &hi) < 1)
			continue;
		pt->proto = !strcmp(proto, "tcp")    ? 6
			    : !strcmp(proto, "udp")  ? 17
			    : !strcmp(proto, "icmp") ? 1
						     : 132;
		pt->port = (uint16_t)lo;
		pt->end_port = (uint16_t)hi;
	}
}

static struct ctl_doc pol_doc(const char *name, const char *selector, bool observe, bool iso_in,
			      bool iso_out)
{
	struct ctl_doc d = {.kind = CTL_KIND_POLICY};
	struct bh_error err = {0};

	d.policy.name = strdup(name);
	if (ctl_selector_parse(selector, &d.policy.sel, &err))
		fprintf(stderr, "selector %s: %s\n", selector, err.msg);
	d.policy.mode = observe ? CTL_OBSERVE : CTL_ENFORCE;
	d.policy.isolates[0] = iso_in;
	d.policy.isolates[1] = iso_out;
	return d;
}

static int put(struct ctl_compiler *c, struct ctl_doc d)
{
	struct ctl_doc old;
	bool had = false;
	struct bh_error err = {0};
	int rc = ctl_compiler_put(c, &d, &old, &had, &err);

	if (rc)
		fprintf(stderr, "put: %s\n", err.msg);
	ctl_doc_free(&d);
	if (had)
		ctl_doc_free(&old);
	return rc;
}

static int del(struct ctl_compiler *c, enum ctl_kind k, const char *name)
{
	struct ctl_doc old;
	struct bh_error err = {0};
	int rc = ctl_compiler_delete(c, k, name, &old, &err);

	if (!rc)
		ctl_doc_free(&old);
	return rc;
}

static int update(struct ctl_compiler *c)
{
	struct bh_error err = {0};
	int rc = ctl_compiler_update(c, time(NULL), NULL, NULL, NULL, NULL, &err);

	if (rc)
		fprintf(stderr, "update: %s\n", err.msg);
	return rc;
}

/* "allow" / "deny" / "observe" (denied, passes in observe mode) */
static const char *verdict(struct ctl_compiler *c, const char *from, const char *to,
			   uint8_t proto, uint16_t port, char *why, size_t len)
{
	bool observed;
	int v = ctl_compiler_explain(c, from, NULL, to, NULL, proto, port, &observed, why, len);

	if (v < 0)
		return "error";
	if (v == CTL_VERDICT_DENY)
		return "deny";
	return observed ? "observe" : "allow";
}

/* ---- semantics ----------------------------------------------------------------------------- */

/* Three tiers on three nodes plus an outsider; each case adds policies and checks flows. */
static struct ctl_compiler *three_tier(void)
{
	struct ctl_compiler *c;

	ctl_compiler_create(&c, 3600);
	put(c, wl_doc("web-1", "node-a", "app=web,env=prod", "198.18.1.10 fd00:b1::1:10", false));
	put(c, wl_doc("web-2", "node-b", "app=web,env=prod", "198.18.1.11", false));
	put(c, wl_doc("api-1", "node-b", "app=api,env=prod", "198.18.2.10 fd00:b1::2:10", false));
	put(c, wl_doc("db-1", "node-c", "app=db,env=prod", "198.18.3.10", false));
	put(c, wl_doc("dev-1", "node-c", "app=web,env=dev", "198.18.4.10", false));
	return c;
}

struct flow {
	const char *from, *to;
	uint8_t proto;
	uint16_t port;
	const char *want;
};

static int check_flows(struct ctl_compiler *c, const struct flow *f, size_t n, const char *what)
{
	char why[1024];

	if (update(c))
		return 1;
	for (size_t i = 0; i < n; i++) {
		const char *got = verdict(c, f[i].from, f[i].to, f[i].proto, f[i].port, why,
					  sizeof(why));

		T_ASSERT(!strcmp(got, f[i].want), "%s: %s -> %s %u/%u: want %s, got %s\n%s",
			 what, f[i].from, f[i].to, f[i].proto, f[i].port, f[i].want, got, why);
	}
	return 0;
}

static int t_no_policy_allows_everything(void)
{
	struct ctl_compiler *c = three_tier();
	const struct flow f[] = {
		{"web-1", "db-1", 6, 5432, "allow"},
		{"dev-1", "api-1", 17, 53, "allow"},
	};
	int rc = check_flows(c, f, BH_ARRAY_SIZE(f), "no policy");

	ctl_compiler_destroy(c);
	return rc;
}

static int t_selected_is_default_deny_allows_add_up(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc p1 = pol_doc("api-from-web", "app=api", false, true, false);
	struct ctl_doc p2 = pol_doc("api-from-dev", "app=api", false, true, false);
	const struct flow f[] = {
		{"web-1", "api-1", 6, 8080, "allow"}, /* p1 */
		{"web-2", "api-1", 6, 8080, "allow"}, /* same node */
		{"web-1", "api-1", 6, 8081, "deny"},  /* port not allowed */
		{"web-1", "api-1", 17, 8080, "deny"}, /* protocol not allowed */
		{"dev-1", "api-1", 6, 9050, "allow"}, /* p2's range */
		{"dev-1", "api-1", 6, 9101, "deny"},
		{"db-1", "api-1", 6, 8080, "deny"}, /* not selected by any peer */
		{"api-1", "db-1", 6, 5432, "allow"}, /* db not selected: open */
		{"api-1", "web-1", 6, 80, "allow"},  /* api's egress not isolated */
	};
	int rc;

	add_rule(&p1.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=web,env=prod", "tcp/8080");
	add_rule(&p2.policy, CTL_INGRESS, CTL_ALLOW, "sel:env=dev", "tcp/9000-9100");
	put(c, p1);
	put(c, p2);
	rc = check_flows(c, f, BH_ARRAY_SIZE(f), "allows add up");
	ctl_compiler_destroy(c);
	return rc;
}

static int t_empty_rules_and_empty_selectors(void)
{
	struct ctl_compiler *c = three_tier();
	/* ingress: [] isolates and allows nothing */
	struct ctl_doc p1 = pol_doc("db-closed", "app=db", false, true, false);
	/* an empty selector selects every workload; a rule with no peers and no ports: all */
	struct ctl_doc p2 = pol_doc("all-egress-open", "", false, false, true);
	const struct flow f[] = {
		{"api-1", "db-1", 6, 5432, "deny"},
		{"web-1", "api-1", 17, 53, "allow"}, /* egress isolated but a rule allows all */
	};
	int rc;

	add_rule(&p2.policy, CTL_EGRESS, CTL_ALLOW, "*", "any");
	put(c, p1);
	put(c, p2);
	rc = check_flows(c, f, BH_ARRAY_SIZE(f), "empty rules");
	ctl_compiler_destroy(c);
	return rc;
}

static int t_deny_wins_and_both_directions(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc in = pol_doc("api-in", "app=api", false, true, false);
	struct ctl_doc deny = pol_doc("no-dev", "", false, false, false);
	struct ctl_doc out = pol_doc("web-out", "app=web", false, false, true);
	const struct flow f[] = {
		{"web-1", "api-1", 6, 8080, "allow"}, /* egress at node-a and ingress at node-b */
		{"web-1", "api-1", 6, 443, "deny"},   /* web's egress does not allow it */
		{"dev-1", "api-1", 6, 8080, "deny"},  /* allowed by api-in, denied explicitly */
		{"web-1", "db-1", 6, 5432, "deny"},   /* web's egress is isolated */
		{"db-1", "web-1", 6, 80, "allow"},    /* web's ingress is not isolated */
	};
	int rc;

	add_rule(&in.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=web", "tcp/8080,tcp/443");
	add_rule(&deny.policy, CTL_INGRESS, CTL_DENY, "sel:env=dev", "any");
	add_rule(&out.policy, CTL_EGRESS, CTL_ALLOW, "sel:app=api", "tcp/8080");
	put(c, in);
	put(c, deny);
	put(c, out);
	rc = check_flows(c, f, BH_ARRAY_SIZE(f), "deny wins");
	ctl_compiler_destroy(c);
	return rc;
}

static int t_cidr_and_except(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc p = pol_doc("db-from-net", "app=db", false, true, false);
	struct ctl_prefix in, ex, wl, out;
	struct bh_error err = {0};
	bool observed;
	char why[1024];
	int v;
	const struct ctl_node_out *o;

	/* 198.18.0.0/15 except 198.18.5.0/24; workloads inside the CIDR are not matched by it */
	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "cidr:198.18.0.0/15-198.18.5.0/24", "tcp/5432");
	put(c, p);
	T_ASSERT(update(c) == 0, "update");
	ctl_prefix_parse("198.18.9.9", &in, &err);
	ctl_prefix_parse("198.18.5.7", &ex, &err);
	ctl_prefix_parse("198.18.2.10", &wl, &err);
	ctl_prefix_parse("198.20.0.1", &out, &err);
	v = ctl_compiler_explain(c, NULL, &in, "db-1", NULL, 6, 5432, &observed, why, sizeof(why));
	T_ASSERT(v == CTL_VERDICT_ALLOW, "inside the CIDR: %s", why);
	v = ctl_compiler_explain(c, NULL, &ex, "db-1", NULL, 6, 5432, &observed, why, sizeof(why));
	T_ASSERT(v == CTL_VERDICT_DENY, "in the except: %s", why);
	v = ctl_compiler_explain(c, NULL, &wl, "db-1", NULL, 6, 5432, &observed, why, sizeof(why));
	T_ASSERT(v == CTL_VERDICT_DENY, "a workload inside the CIDR (api-1): %s", why);
	v = ctl_compiler_explain(c, NULL, &out, "db-1", NULL, 6, 5432, &observed, why, sizeof(why));
	T_ASSERT(v == CTL_VERDICT_DENY, "outside the CIDR: %s", why);
	/* node-c's ipcache: the CIDR, the except, and every workload address inside the CIDR */
	o = ctl_compiler_node(c, "node-c");
	T_ASSERT(o && o->n_ipc == 2 + 5, "node-c ipcache has %zu entries, want 7", o ? o->n_ipc : 0);
	/* node-a holds no rule naming anything: no ipcache at all */
	o = ctl_compiler_node(c, "node-a");
	T_ASSERT(o && o->n_ipc == 0, "node-a ipcache has %zu entries", o ? o->n_ipc : 0);
	ctl_compiler_destroy(c);
	return 0;
}

static int t_observe_mode(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc obs = pol_doc("db-observe", "app=db", true, true, false);
	struct ctl_doc enf = pol_doc("api-enforce", "app=api", false, true, false);
	struct ctl_doc obs2 = pol_doc("api-observe", "app=api", true, true, false);
	const struct flow f[] = {
		{"api-1", "db-1", 6, 5432, "allow"},   /* observe allows it by rule */
		{"web-1", "db-1", 6, 5432, "observe"}, /* would deny, passes */
		{"web-1", "api-1", 6, 80, "deny"},     /* enforced; the observe policy adds nothing */
		{"web-1", "api-1", 6, 8080, "allow"},
	};
	int rc;

	add_rule(&obs.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/5432");
	add_rule(&enf.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=web", "tcp/8080");
	add_rule(&obs2.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=web", "tcp/80");
	put(c, obs);
	put(c, enf);
	put(c, obs2);
	rc = check_flows(c, f, BH_ARRAY_SIZE(f), "observe");
	ctl_compiler_destroy(c);
	return rc;
}

static int t_overlapping_ranges_are_split(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc p = pol_doc("ranges", "app=db", false, true, false);
	const struct ctl_node_out *o;
	uint32_t covered[65536 / 32] = {0};

	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/80-90,tcp/85-100,tcp/95");
	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/88-200");
	put(c, p);
	T_ASSERT(update(c) == 0, "update");
	o = ctl_compiler_node(c, "node-c");
	T_ASSERT(o && o->n_rules > 0, "no rules");
	for (size_t i = 0; i < o->n_rules; i++) {
		const struct ctl_crule *r = &o->rules[i];
		unsigned int hi = r->end_port ? r->end_port : r->port;

		T_ASSERT(r->proto == 6 && r->port >= 80 && hi <= 200, "rule %zu: %u/%u-%u", i,
			 r->proto, r->port, r->end_port);
		for (unsigned int q = r->port; q <= hi; q++) {
			T_ASSERT(!(covered[q / 32] & (1u << (q % 32))), "port %u twice", q);
			covered[q / 32] |= 1u << (q % 32);
		}
	}
	for (unsigned int q = 80; q <= 200; q++)
		T_ASSERT(covered[q / 32] & (1u << (q % 32)), "port %u not covered", q);
	ctl_compiler_destroy(c);
	return 0;
}

static int t_identities_stable_and_released(void)
{
	struct ctl_compiler *c;
	uint32_t id_web, id2;
	struct bh_error err = {0};
	struct ctl_numbering_change *num;
	size_t nnum;
	const char **nodes;
	size_t nn;
	bool deleted = false;

	ctl_compiler_create(&c, 60);
	put(c, wl_doc("a", "n1", "app=web", "198.18.0.1", false));
	put(c, wl_doc("b", "n2", "app=web", "198.18.0.2", false));
	T_ASSERT(update(c) == 0, "update");
	id_web = ctl_compiler_workload_identity(c, "a");
	T_ASSERT(id_web >= CTL_ID_USER_MIN && id_web == ctl_compiler_workload_identity(c, "b"),
		 "one label set, one identity: %u %u", id_web,
		 ctl_compiler_workload_identity(c, "b"));
	/* relabel both away and back within the grace period: the same number */
	put(c, wl_doc("a", "n1", "app=api", "198.18.0.1", false));
	put(c, wl_doc("b", "n2", "app=api", "198.18.0.2", false));
	T_ASSERT(ctl_compiler_update(c, 1000, NULL, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
	put(c, wl_doc("a", "n1", "app=web", "198.18.0.1", false));
	T_ASSERT(ctl_compiler_update(c, 1030, NULL, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_compiler_workload_identity(c, "a") == id_web, "came back as %u, want %u",
		 ctl_compiler_workload_identity(c, "a"), id_web);
	/* unused for longer than the grace period: released, and the number never comes back */
	put(c, wl_doc("a", "n1", "app=db", "198.18.0.1", false));
	put(c, wl_doc("b", "n2", "app=db", "198.18.0.2", false));
	T_ASSERT(ctl_compiler_update(c, 2000, NULL, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_compiler_update(c, 2100, &nodes, &nn, &num, &nnum, &err) == 0, "%s", err.msg);
	free(nodes);
	for (size_t i = 0; i < nnum; i++)
		if (num[i].what == CTL_NUM_IDENTITY_DELETE && num[i].id == id_web)
			deleted = true;
	T_ASSERT(deleted, "identity %u not released after the grace period", id_web);
	put(c, wl_doc("a", "n1", "app=web", "198.18.0.1", false));
	T_ASSERT(update(c) == 0, "update");
	id2 = ctl_compiler_workload_identity(c, "a");
	T_ASSERT(id2 != id_web && id2 > id_web, "released number reused: %u", id2);
	ctl_compiler_destroy(c);
	return 0;
}

static int t_host_workload_takes_node_labels(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc n = {.kind = CTL_KIND_NODE};
	struct ctl_doc p = pol_doc("hosts", "role=gateway", false, true, false);
	struct bh_error err = {0};
	const struct flow f[] = {
		{"web-1", "host-c", 6, 22, "deny"},
		{"api-1", "host-c", 6, 22, "allow"},
	};
	int rc;

	put(c, wl_doc("host-c", "node-c", "", "198.18.3.1", true));
	n.node.name = strdup("node-c");
	ctl_labels_parse("role=gateway", &n.node.labels, &err);
	put(c, n);
	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/22");
	put(c, p);
	rc = check_flows(c, f, BH_ARRAY_SIZE(f), "host labels");
	ctl_compiler_destroy(c);
	return rc;
}

static int t_enrollment_labels_and_mode(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc p = pol_doc("gw", "role=gateway", false, true, false);
	struct bh_error err = {0};
	const struct ctl_node_out *o;
	const struct flow f[] = {
		{"web-1", "host-c", 6, 22, "observe"}, /* node-c enrolled in observe mode */
		{"api-1", "host-c", 6, 22, "allow"},
	};
	int rc;

	/* the token gave node-c role=gateway and observe mode; a Node object may add to it */
	put(c, wl_doc("host-c", "node-c", "", "198.18.3.1", true));
	T_ASSERT(ctl_compiler_node_enrolled(c, "node-c", "role=gateway", true, &err) == 0, "%s",
		 err.msg);
	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/22");
	put(c, p);
	rc = check_flows(c, f, BH_ARRAY_SIZE(f), "enrollment labels");
	o = ctl_compiler_node(c, "node-a");
	T_ASSERT(o && o->n_eps == 1 && !o->eps[0].observe, "node-a is not in observe mode");
	T_ASSERT(ctl_compiler_node_enrolled(c, "node-c", "role=gate,x", false, &err) == -EINVAL,
		 "bad labels accepted");
	ctl_compiler_destroy(c);
	return rc;
}

static int t_address_conflict_refused(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc d = wl_doc("thief", "node-a", "app=x", "198.18.3.10", false), old;
	struct bh_error err = {0};
	bool had;
	int rc = ctl_compiler_put(c, &d, &old, &had, &err);

	T_ASSERT(rc == -EEXIST && strstr(err.msg, "db-1"), "rc %d: %s", rc, err.msg);
	ctl_doc_free(&d);
	ctl_compiler_destroy(c);
	return 0;
}

static int t_deltas_touch_only_affected_nodes(void)
{
	struct ctl_compiler *c = three_tier();
	struct ctl_doc p = pol_doc("db-in", "app=db", false, true, false);
	struct bh_error err = {0};
	const char **nodes;
	size_t nn;

	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/5432");
	put(c, p);
	T_ASSERT(ctl_compiler_update(c, time(NULL), &nodes, &nn, NULL, NULL, &err) == 0, "%s",
		 err.msg);
	free(nodes);
	/* a policy for db changes node-c only */
	p = pol_doc("db-in", "app=db", false, true, false);
	add_rule(&p.policy, CTL_INGRESS, CTL_ALLOW, "sel:app=api", "tcp/5433");
	put(c, p);
	T_ASSERT(ctl_compiler_update(c, time(NULL), &nodes, &nn, NULL, NULL, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(nn == 1 && !strcmp(nodes[0], "node-c"), "%zu nodes changed (%s)", nn,
		 nn ? nodes[0] : "");
	free(nodes);
	/* a new api workload on node-a: node-c's ipcache gains it, node-a gets an endpoint */
	put(c, wl_doc("api-2", "node-a", "app=api,env=prod", "198.18.2.11", false));
	T_ASSERT(ctl_compiler_update(c, time(NULL), &nodes, &nn, NULL, NULL, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(nn == 2 && !strcmp(nodes[0], "node-a") && !strcmp(nodes[1], "node-c"),
		 "%zu nodes changed", nn);
	free(nodes);
	ctl_compiler_destroy(c);
	return 0;
}

/* ---- incremental == full, randomised --------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng_state >> 33) % n;
}

static const char *const label_pool[] = {"app=web", "app=api", "app=db", "env=prod",
					  "env=dev", "tier=a", "tier=b"};
static const char *const sel_pool[] = {"app=web", "app=api", "app=db", "env=prod", "env!=prod",
				       "app in (web,api)", "tier", "!tier", ""};
static const char *const port_pool[] = {"tcp/80", "tcp/8000-8100", "udp/53", "icmp/8", "any",
					"tcp/80,tcp/443", "tcp/70-90"};
static const char *const cidr_pool[] = {"cidr:198.18.0.0/24-198.18.0.16/28",
					"cidr:198.19.0.0/16", "cidr:198.18.0.0/16",
					"cidr:198.18.0.32/27"};

static void random_labels(uint64_t seed, char *buf, size_t len)
{
	uint64_t save = rng_state;
	size_t at = 0;
	bool used_key[3] = {false, false, false};

	rng_state = seed;
	buf[0] = '\0';
	for (int k = 0, n = (int)rnd(3); k < n; k++) {
		uint32_t i = rnd((uint32_t)BH_ARRAY_SIZE(label_pool));
		int key = i < 3 ? 0 : i < 5 ? 1 : 2;

		if (used_key[key])
			continue;
		used_key[key] = true;
		at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "", label_pool[i]);
	}
	rng_state = save;
}

static struct ctl_doc random_workload(uint64_t seed)
{
	uint64_t save = rng_state;
	char name[16], node[16], labels[128], addrs[96];
	uint32_t i;
	bool host;

	random_labels(seed * 7 + 1, labels, sizeof(labels));
	rng_state = seed;
	i = rnd(16);
	snprintf(name, sizeof(name), "w%u", i);
	snprintf(node, sizeof(node), "n%u", rnd(3));
	host = rnd(8) == 0;
	/* a workload's addresses are its own: 198.18.0.i or 198.18.1.i, and maybe fd00:b1::i */
	snprintf(addrs, sizeof(addrs), "198.18.%u.%u%s", rnd(2), i + 1,
		 rnd(2) ? "" : " fd00:b1::99");
	if (strstr(addrs, "fd00"))
		snprintf(addrs + strlen(addrs) - 2, 8, "%x", i + 1);
	rng_state = save;
	return wl_doc(name, node, labels, addrs, host);
}

static struct ctl_doc random_policy(uint64_t seed)
{
	uint64_t save = rng_state;
	char name[16];
	struct ctl_doc d;

	rng_state = seed;
	snprintf(name, sizeof(name), "p%u", rnd(6));
	d = pol_doc(name, sel_pool[rnd((uint32_t)BH_ARRAY_SIZE(sel_pool))], rnd(4) == 0, rnd(4) != 0,
		    rnd(2) == 0);
	for (int dir = 0; dir < 2; dir++)
		for (int a = 0; a < 2; a++)
			for (int k = 0, n = (int)rnd(a ? 2 : 3); k < n; k++) {
				char peers[256] = "";
				size_t at = 0;

				for (int q = 0, m = (int)rnd(3); q < m; q++) {
					bool sel = rnd(3) != 0;
					const char *what =
						sel ? sel_pool[rnd((uint32_t)BH_ARRAY_SIZE(sel_pool))]
						    : cidr_pool[rnd((uint32_t)BH_ARRAY_SIZE(cidr_pool))];

					at += (size_t)snprintf(peers + at, sizeof(peers) - at,
							       "%s%s%s", at ? ";" : "",
							       sel ? "sel:" : "", what);
				}
				/* a selector with nothing after "sel:" is the empty selector */
				if (!at)
					snprintf(peers, sizeof(peers), "*");
				add_rule(&d.policy, dir, a, peers,
					 port_pool[rnd((uint32_t)BH_ARRAY_SIZE(port_pool))]);
			}
	rng_state = save;
	return d;
}

static struct ctl_doc random_node(uint64_t seed)
{
	struct ctl_doc d = {.kind = CTL_KIND_NODE};
	struct bh_error err = {0};
	char name[16], labels[128];
	uint64_t save = rng_state;

	random_labels(seed * 3 + 5, labels, sizeof(labels));
	rng_state = seed;
	snprintf(name, sizeof(name), "n%u", rnd(3));
	rng_state = save;
	d.node.name = strdup(name);
	ctl_labels_parse(labels, &d.node.labels, &err);
	return d;
}

/* One node's rule set as sorted text lines, numbers replaced by what they stand for. */
static int norm_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **normalise(struct ctl_compiler *c, const struct ctl_node_out *o, size_t *n)
{
	char **v = calloc(o->n_eps + o->n_ipc + o->n_rules + 1, sizeof(char *)), buf[512],
	     d1[160], d2[160], p[64];
	size_t k = 0;
#define ID(x) ((x) ? ctl_compiler_identity_labels(c, (x)) : "*")
	for (size_t i = 0; i < o->n_eps; i++) {
		const struct ctl_cep *e = &o->eps[i];

		snprintf(buf, sizeof(buf), "ep %s %s id{%s} obs%d host%d in%u:%s eg%u:%s", e->name,
			 e->ifname, ID(e->identity), e->observe, e->attach_host, e->def_verdict[0],
			 ctl_compiler_rule_describe(c, e->def_rule[0], d1, sizeof(d1), NULL),
			 e->def_verdict[1],
			 ctl_compiler_rule_describe(c, e->def_rule[1], d2, sizeof(d2), NULL));
		v[k++] = strdup(buf);
	}
	for (size_t i = 0; i < o->n_ipc; i++) {
		snprintf(buf, sizeof(buf), "ipc %s {%s}",
			 ctl_prefix_format(&o->ipc[i].prefix, p, sizeof(p)),
			 ID(o->ipc[i].identity));
		v[k++] = strdup(buf);
	}
	for (size_t i = 0; i < o->n_rules; i++) {
		const struct ctl_crule *r = &o->rules[i];

		snprintf(buf, sizeof(buf), "rule {%s} {%s} d%u p%u v%u %u-%u %s", ID(r->local),
			 ID(r->remote), r->dir, r->proto, r->verdict, r->port, r->end_port,
			 ctl_compiler_rule_describe(c, r->rule_id, d1, sizeof(d1), NULL));
		v[k++] = strdup(buf);
	}
#undef ID
	qsort(v, k, sizeof(*v), norm_cmp);
	*n = k;
	return v;
}

static int compare_nodes(struct ctl_compiler *a, struct ctl_compiler *b, int step)
{
	static const char *const nodes[] = {"n0", "n1", "n2"};

	for (size_t i = 0; i < BH_ARRAY_SIZE(nodes); i++) {
		const struct ctl_node_out *oa = ctl_compiler_node(a, nodes[i]);
		const struct ctl_node_out *ob = ctl_compiler_node(b, nodes[i]);
		size_t na = 0, nb = 0;
		char **va, **vb;
		int bad = 0;

		if (!oa || !ob) {
			T_ASSERT(!oa && !ob, "step %d: node %s known to one compiler only", step,
				 nodes[i]);
			continue;
		}
		va = normalise(a, oa, &na);
		vb = normalise(b, ob, &nb);
		for (size_t k = 0; k < na || k < nb; k++) {
			const char *x = k < na ? va[k] : "", *y = k < nb ? vb[k] : "";

			if (strcmp(x, y) && bad++ < 3)
				fprintf(stderr, "step %d node %s line %zu:\n  incremental %s\n  full        %s\n",
					step, nodes[i], k, x, y);
		}
		for (size_t k = 0; k < na; k++)
			free(va[k]);
		for (size_t k = 0; k < nb; k++)
			free(vb[k]);
		free(va);
		free(vb);
		T_ASSERT(!bad && na == nb, "step %d: node %s: incremental and full disagree",
			 step, nodes[i]);
	}
	return 0;
}

static int t_incremental_equals_full(void)
{
	const char *env = getenv("BH_TEST_SEED");
	uint64_t seed0 = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	int sequences = 40, steps = 60;

	for (int s = 0; s < sequences; s++) {
		struct ctl_compiler *a, *b;
		struct bh_error err = {0};

		rng_state = seed0 + (uint64_t)s * 1000003u;
		ctl_compiler_create(&a, 3600);
		ctl_compiler_create(&b, 3600);
		for (int step = 0; step < steps; step++) {
			int ops = 1 + (int)rnd(3);

			for (int k = 0; k < ops; k++) {
				uint64_t ds = rng_state ^ (uint64_t)(step * 131 + k);
				uint32_t what = rnd(10);

				if (what < 4) {
					put(a, random_workload(ds));
					put(b, random_workload(ds));
				} else if (what < 7) {
					put(a, random_policy(ds));
					put(b, random_policy(ds));
				} else if (what < 8) {
					put(a, random_node(ds));
					put(b, random_node(ds));
				} else {
					char name[16];
					int kind = what == 8 ? CTL_KIND_WORKLOAD : CTL_KIND_POLICY;

					snprintf(name, sizeof(name), "%s%u",
						 kind == CTL_KIND_WORKLOAD ? "w" : "p",
						 rnd(kind == CTL_KIND_WORKLOAD ? 16 : 6));
					del(a, kind, name);
					del(b, kind, name);
				}
			}
			T_ASSERT(ctl_compiler_update(a, 1000 + step, NULL, NULL, NULL, NULL, &err) ==
					 0,
				 "%s", err.msg);
			T_ASSERT(ctl_compiler_recompile_all(b, 1000 + step, NULL, NULL, &err) == 0, "%s",
				 err.msg);
			if (compare_nodes(a, b, step)) {
				fprintf(stderr, "seed BH_TEST_SEED=%llu, sequence %d\n",
					(unsigned long long)seed0, s);
				ctl_compiler_destroy(a);
				ctl_compiler_destroy(b);
				return 1;
			}
		}
		ctl_compiler_destroy(a);
		ctl_compiler_destroy(b);
	}
	return 0;
}

static const struct t_case cases[] = {
	{"no policy: everything allowed", t_no_policy_allows_everything},
	{"selected => default deny; allows add up", t_selected_is_default_deny_allows_add_up},
	{"ingress: [] and the empty selector", t_empty_rules_and_empty_selectors},
	{"explicit deny wins; both directions decide", t_deny_wins_and_both_directions},
	{"CIDR peers with except; workloads are not CIDR peers", t_cidr_and_except},
	{"observe mode", t_observe_mode},
	{"overlapping port ranges are split, every port once", t_overlapping_ranges_are_split},
	{"identities: stable, released after the grace period, never reused",
	 t_identities_stable_and_released},
	{"a host workload takes its node's labels", t_host_workload_takes_node_labels},
	{"enrollment gives a node labels and a mode", t_enrollment_labels_and_mode},
	{"two workloads cannot share an address", t_address_conflict_refused},
	{"an update changes only the affected nodes", t_deltas_touch_only_affected_nodes},
	{"incremental and full recompile agree (random edits)", t_incremental_equals_full},
};

int main(int argc, char **argv)
{
	return t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
}
