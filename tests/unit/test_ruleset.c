// SPDX-License-Identifier: Apache-2.0
/* The text rule-set parser (untrusted input: runs under ASan/UBSan) and port-range expansion. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/util.h"
#include "dataplane.h"
#include "ruleset.h"
#include "tap.h"

static int parse(const char *text, Bulkhead__NodePolicy **np, Bulkhead__NodePolicyDelta **d,
		 struct bh_error *err)
{
	return agent_ruleset_parse(text, strlen(text), "f.rules", np, d, err);
}

static int t_full_rule_set(void)
{
	Bulkhead__NodePolicy *np;
	Bulkhead__NodePolicyDelta *d;
	struct bh_error err = {0};
	const Bulkhead__Rule *r;

	T_ASSERT(parse("# a node\n"
		       "revision 42\n"
		       "endpoint db if=veth-db id=1003 mode=observe attach=veth ingress=deny:100\n"
		       "ipcache 198.18.0.0/15 1001   # comment after\n"
		       "ipcache fd00:b1::5 1002\n"
		       "rule 1003 ingress 1001 tcp/5432 allow 17\n"
		       "rule 1003 egress any udp/1000-2000 deny 18\n"
		       "rule 1003 ingress any any allow 19\n"
		       "rule 1003 ingress 5 132/9 allow 20\n",
		       &np, &d, &err) == 0,
		 "%s", err.msg);
	T_ASSERT(np && !d, "a rule set");
	T_ASSERT(np->revision == 42, "revision %llu", (unsigned long long)np->revision);
	T_ASSERT(np->n_endpoints == 1 && np->n_ipcache == 2 && np->n_rules == 4, "counts");
	T_ASSERT(strcmp(np->endpoints[0]->ifname, "veth-db") == 0, "ifname");
	T_ASSERT(np->endpoints[0]->mode == BULKHEAD__MODE__MODE_OBSERVE, "mode");
	T_ASSERT(np->endpoints[0]->attach == BULKHEAD__ATTACH__ATTACH_VETH, "attach");
	T_ASSERT(np->endpoints[0]->ingress->verdict == BULKHEAD__VERDICT__VERDICT_DENY &&
			 np->endpoints[0]->ingress->rule_id == 100,
		 "ingress default");
	T_ASSERT(np->endpoints[0]->egress->verdict == BULKHEAD__VERDICT__VERDICT_ALLOW,
		 "egress default left out = allow");
	T_ASSERT(np->ipcache[0]->prefix.len == 4 && np->ipcache[0]->prefix_len == 15, "v4 prefix");
	T_ASSERT(np->ipcache[1]->prefix.len == 16 && np->ipcache[1]->prefix_len == 128,
		 "v6 host");
	r = np->rules[1];
	T_ASSERT(r->direction == BULKHEAD__DIRECTION__DIRECTION_EGRESS && r->remote_identity == 0 &&
			 r->protocol == 17 && r->port == 1000 && r->end_port == 2000 &&
			 r->verdict == BULKHEAD__VERDICT__VERDICT_DENY && r->rule_id == 18,
		 "range rule");
	T_ASSERT(np->rules[2]->protocol == 0 && np->rules[3]->protocol == 132, "protocols");
	agent_ruleset_free_policy(np);
	return 0;
}

static int t_delta(void)
{
	Bulkhead__NodePolicy *np;
	Bulkhead__NodePolicyDelta *d;
	struct bh_error err = {0};

	T_ASSERT(parse("delta 3 5\n"
		       "+rule 1 ingress 2 tcp/80 allow 20\n"
		       "-rule 1 ingress 2 tcp/81 allow 21\n"
		       "+ipcache 198.18.0.1 7\n"
		       "-endpoint e if=eth0 id=9\n",
		       &np, &d, &err) == 0,
		 "%s", err.msg);
	T_ASSERT(d && !np, "a delta");
	T_ASSERT(d->from_revision == 3 && d->to_revision == 5, "revisions");
	T_ASSERT(d->n_rules_added == 1 && d->n_rules_removed == 1 && d->n_ipcache_added == 1 &&
			 d->n_endpoints_removed == 1,
		 "counts");
	agent_ruleset_free_delta(d);
	return 0;
}

static const struct {
	const char *text;
	const char *want; /* substring of the message */
} bad[] = {
	{"", "empty"},
	{"# only a comment\n", "empty"},
	{"rule 1 ingress 2 tcp/80 allow 20\n", ":1: the first line"},
	{"revision\n", "revision wants one number"},
	{"revision x\n", "not a number"},
	{"revision 1\nrevision 2\n", ":2: \"revision\" again"},
	{"revision 1\nrule 1 ingress 2 tcp/80 allow\n", ":2: rule wants 6 fields"},
	{"revision 1\nrule 1 sideways 2 tcp/80 allow 20\n", "direction \"sideways\""},
	{"revision 1\nrule 1 ingress 2 tcp/70000 allow 20\n", "port 70000 out of range"},
	{"revision 1\nrule 1 ingress 2 tcp/90-80 allow 20\n", "start > end"},
	{"revision 1\nrule 1 ingress 2 tcp/0 allow 20\n", "port 0"},
	{"revision 1\nrule 1 ingress 2 any/80 allow 20\n", "needs a protocol"},
	{"revision 1\nrule 1 ingress 2 foo allow 20\n", "protocol \"foo\""},
	{"revision 1\nrule 1 ingress 2 300 allow 20\n", "out of range"},
	{"revision 1\nrule 1 ingress 2 tcp/80 maybe 20\n", "verdict \"maybe\""},
	{"revision 1\nrule 1 ingress 2 tcp/80 allow 3\n", "reserved"},
	{"revision 1\nrule 0 ingress 2 tcp/80 allow 20\n", "local identity must not be 0"},
	{"revision 1\nrule 1 ingress 0 tcp/80 allow 20\n", "write \"any\""},
	{"revision 1\nipcache 198.18.0.0/33 5\n", "not an address"},
	{"revision 1\nipcache 10.0.0.256 5\n", "not an address"},
	{"revision 1\nipcache fd00::/64\n", "ipcache wants 2 fields"},
	{"revision 1\nendpoint a id=5\n", "endpoint wants"},
	{"revision 1\nendpoint a if=e0 foo=1 id=5\n", "unknown key \"foo\""},
	{"revision 1\nendpoint a if=e0 id=5 mode=strict\n", "mode \"strict\""},
	{"revision 1\nendpoint a if=abcdefghijklmnopq id=5\n", "1-15 characters"},
	{"revision 1\nendpoint a if=e0 mode=enforce\n", "id=IDENTITY is required"},
	{"revision 1\nendpoint a if=e0 id=5 ingress=deny:x\n", "not a number"},
	{"revision 1\n+rule 1 ingress 2 tcp/80 allow 20\n", "belong in a delta"},
	{"delta 1 2\nrule 1 ingress 2 tcp/80 allow 20\n", "starts with + (add) or -"},
	{"delta 2 2\n", "the second must be greater"},
	{"revision 1\nwidget 1\n", "unknown keyword \"widget\""},
	{"revision 1\nrule 1 ingress 2 tcp/80 allow 20 \x01\n", "byte 0x01"},
	{"revision 1\nrule 1 ingress 2 tcp/80 allow 20 \xff\n", "byte 0xff"},
	{"revision 1\na b c d e f g h i j k l m n o p q\n", "more than 16 fields"},
};

static int t_bad_input(void)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(bad); i++) {
		Bulkhead__NodePolicy *np = (void *)1;
		Bulkhead__NodePolicyDelta *d = (void *)1;
		struct bh_error err = {0};
		int rc = parse(bad[i].text, &np, &d, &err);

		T_ASSERT(rc == -EINVAL, "case %zu accepted: %s", i, bad[i].text);
		T_ASSERT(!np && !d, "case %zu: outputs not cleared", i);
		T_ASSERT(strstr(err.msg, bad[i].want), "case %zu: message \"%s\" lacks \"%s\"", i,
			 err.msg, bad[i].want);
		T_ASSERT(strncmp(err.msg, "f.rules", 7) == 0, "case %zu: message names no file: %s",
			 i, err.msg);
	}
	return 0;
}

static int t_long_line(void)
{
	size_t n = 10000;
	char *text = malloc(n + 32);
	Bulkhead__NodePolicy *np;
	Bulkhead__NodePolicyDelta *d;
	struct bh_error err = {0};
	int rc;

	strcpy(text, "revision 1\nrule ");
	memset(text + strlen(text), '1', n);
	strcpy(text + 16 + n, "\n");
	rc = parse(text, &np, &d, &err);
	free(text);
	T_ASSERT(rc == -EINVAL && strstr(err.msg, "line longer"), "%s", err.msg);
	return 0;
}

/* Expands [lo, hi] and checks the prefixes cover exactly that range, without overlap. */
static int check_range(uint16_t lo, uint16_t hi)
{
	static uint8_t hit[65536];
	uint32_t v[40];
	uint8_t pl[40];
	int n = agent_dp_range_prefixes(6, lo, hi, v, pl, 40);

	T_ASSERT(n >= 1 && n <= 30, "[%u, %u]: %d prefixes", lo, hi, n);
	memset(hit, 0, sizeof(hit));
	for (int i = 0; i < n; i++) {
		uint32_t bits = (uint32_t)(BH_L4_PLEN_MAX - pl[i]), base = v[i] & 0xffff;

		T_ASSERT((v[i] >> 16) == 6, "protocol kept");
		T_ASSERT(pl[i] >= BH_L4_PLEN_PROTO && pl[i] <= BH_L4_PLEN_MAX, "plen %u", pl[i]);
		T_ASSERT((base & ((1u << bits) - 1)) == 0, "prefix %u/%u not aligned", base, pl[i]);
		for (uint32_t p = base; p < base + (1u << bits); p++) {
			T_ASSERT(p >= lo && p <= hi, "[%u, %u]: port %u outside", lo, hi, p);
			T_ASSERT(!hit[p], "[%u, %u]: port %u covered twice", lo, hi, p);
			hit[p] = 1;
		}
	}
	for (uint32_t p = lo; p <= hi; p++)
		T_ASSERT(hit[p], "[%u, %u]: port %u not covered", lo, hi, p);
	return 0;
}

static int t_range_prefixes(void)
{
	static const uint16_t edges[][2] = {
		{1, 65535}, {0, 65535}, {80, 80}, {8000, 8099}, {1024, 2047}, {1, 1},
		{65535, 65535}, {1023, 1024}, {32767, 32768},
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(edges); i++)
		if (check_range(edges[i][0], edges[i][1]))
			return 1;
	srandom(7);
	for (int i = 0; i < 300; i++) {
		uint16_t a = (uint16_t)random(), b = (uint16_t)random();

		if (check_range(a < b ? a : b, a < b ? b : a))
			return 1;
	}
	/* the worst case is 2*16-2 prefixes */
	{
		uint32_t v[40];
		uint8_t pl[40];

		T_ASSERT(agent_dp_range_prefixes(6, 1, 65534, v, pl, 40) == 30, "worst case");
	}
	return 0;
}

static const struct t_case cases[] = {
	{"rule set parses completely", t_full_rule_set},
	{"delta parses", t_delta},
	{"bad input: clear error naming file and line, nothing returned", t_bad_input},
	{"over-long line rejected", t_long_line},
	{"port ranges expand to exact, disjoint prefixes (<= 30)", t_range_prefixes},
};

int main(int argc, char **argv)
{
	return t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
}
