// SPDX-License-Identifier: Apache-2.0
/*
 * Generated rule sets, as protobuf-c structs for the agent and as iptables-restore text, so that
 * both sides of every comparison are given the same rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bulkhead.h"

static void addr_bytes(uint8_t out[4], uint32_t a)
{
	out[0] = (uint8_t)(a >> 24);
	out[1] = (uint8_t)(a >> 16);
	out[2] = (uint8_t)(a >> 8);
	out[3] = (uint8_t)a;
}

static const char *addr_str(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
	return buf;
}

void bench_rule_fill(Bulkhead__Rule *r, size_t i, uint32_t ports_per_peer)
{
	bulkhead__rule__init(r);
	r->local_identity = BENCH_LOCAL_ID;
	r->remote_identity = BENCH_PEER_ID0 + (uint32_t)(i / ports_per_peer);
	r->direction = BULKHEAD__DIRECTION__DIRECTION_INGRESS;
	r->protocol = 6;
	r->port = BENCH_PORT0 + (uint32_t)(i % ports_per_peer);
	r->verdict = BULKHEAD__VERDICT__VERDICT_ALLOW;
	r->rule_id = BENCH_RULE_ID0 + (uint32_t)i;
}

void bench_match_rule_fill(Bulkhead__Rule *r, uint32_t port)
{
	bulkhead__rule__init(r);
	r->local_identity = BENCH_LOCAL_ID;
	r->remote_identity = BENCH_CLIENT_ID;
	r->direction = BULKHEAD__DIRECTION__DIRECTION_INGRESS;
	r->protocol = 6;
	r->port = port;
	r->verdict = BULKHEAD__VERDICT__VERDICT_ALLOW;
	r->rule_id = BENCH_MATCH_RULE;
}

void bench_rule_key(const Bulkhead__Rule *r, void *key)
{
	struct bh_policy_key k = {0};

	k.local_id = r->local_identity;
	k.remote_id = r->remote_identity;
	k.l4 = (r->protocol << 16) | r->port;
	k.plen = BH_L4_PLEN_MAX;
	k.dir = (uint8_t)r->direction;
	k.deny = r->verdict == BULKHEAD__VERDICT__VERDICT_DENY;
	memcpy(key, &k, sizeof(k));
}

static size_t peers_of(size_t n_rules, uint32_t ports_per_peer)
{
	return n_rules ? (n_rules - 1) / ports_per_peer + 1 : 0;
}

int bench_rules_make(struct bench_rules *out, size_t first, size_t n, uint32_t ports_per_peer)
{
	memset(out, 0, sizeof(*out));
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	out->ptrs = calloc(n ? n : 1, sizeof(*out->ptrs));
	if (!out->v || !out->ptrs) {
		bench_rules_free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		bench_rule_fill(&out->v[i], first + i, ports_per_peer);
		out->ptrs[i] = &out->v[i];
	}
	out->n = n;
	return 0;
}

void bench_rules_free(struct bench_rules *r)
{
	free(r->v);
	free(r->ptrs);
	memset(r, 0, sizeof(*r));
}

void bench_policy_free(struct bench_policy *p)
{
	if (!p)
		return;
	free(p->ipc);
	free(p->ipc_v);
	free(p->ipc_addr);
	free(p->rules);
	free(p->rules_v);
	free(p);
}

static void ipc_set(struct bench_policy *p, size_t i, uint32_t addr, uint32_t plen, uint32_t id)
{
	Bulkhead__IpcacheEntry *e = &p->ipc[i];

	bulkhead__ipcache_entry__init(e);
	addr_bytes(p->ipc_addr[i], addr);
	e->prefix.data = p->ipc_addr[i];
	e->prefix.len = 4;
	e->prefix_len = plen;
	e->identity = id;
	p->ipc_v[i] = e;
}

int bench_policy_build(struct bench_policy **out, const struct bench_gen *g, uint64_t revision)
{
	size_t peers = peers_of(g->n_rules, g->ports_per_peer ? g->ports_per_peer : 1);
	size_t n_rules = g->n_rules + (g->match_port ? 1 : 0), n_ipc, k = 0;
	struct bench_policy *p;

	if (!g->ports_per_peer || g->ports_per_peer > 65535 - BENCH_PORT0 ||
	    g->n_fill > BENCH_MAX_FILL)
		return -EINVAL;
	if (g->n_peers > peers)
		peers = g->n_peers;
	if (peers > BENCH_MAX_PEERS)
		return -EINVAL;
	n_ipc = peers + g->n_fill + 1 + (g->cover ? 1 : 0);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ipc = calloc(n_ipc, sizeof(*p->ipc));
	p->ipc_v = calloc(n_ipc, sizeof(*p->ipc_v));
	p->ipc_addr = calloc(n_ipc, sizeof(*p->ipc_addr));
	p->rules = calloc(n_rules ? n_rules : 1, sizeof(*p->rules));
	p->rules_v = calloc(n_rules ? n_rules : 1, sizeof(*p->rules_v));
	if (!p->ipc || !p->ipc_v || !p->ipc_addr || !p->rules || !p->rules_v) {
		bench_policy_free(p);
		return -ENOMEM;
	}

	bulkhead__node_policy__init(&p->np);
	bulkhead__endpoint__init(&p->ep);
	bulkhead__direction_default__init(&p->def_in);
	bulkhead__direction_default__init(&p->def_eg);
	p->def_in.verdict = BULKHEAD__VERDICT__VERDICT_DENY;
	p->def_in.rule_id = BENCH_DENY_RULE;
	p->def_eg.verdict = BULKHEAD__VERDICT__VERDICT_ALLOW;
	p->def_eg.rule_id = BENCH_ALLOW_RULE;
	p->ep.name = "bench-server";
	p->ep.ifname = (char *)g->ifname;
	p->ep.identity = BENCH_LOCAL_ID;
	p->ep.mode = BULKHEAD__MODE__MODE_ENFORCE;
	p->ep.attach = BULKHEAD__ATTACH__ATTACH_HOST;
	p->ep.ingress = &p->def_in;
	p->ep.egress = &p->def_eg;
	p->ep_v[0] = &p->ep;

	ipc_set(p, k++, BENCH_CLIENT_ADDR, 32, BENCH_CLIENT_ID);
	if (g->cover)
		ipc_set(p, k++, 0xc6120000u, 15, BENCH_COVER_ID);
	for (size_t i = 0; i < peers; i++)
		ipc_set(p, k++, BENCH_PEER_ADDR0 + (uint32_t)i, 32, BENCH_PEER_ID0 + (uint32_t)i);
	/* Filler: mostly /32 workloads, every 16th a /28 (its block holds no other filler entry's
	 * /28, so keys stay distinct), so that the trie has inner nodes of several lengths. */
	for (size_t i = 0; i < g->n_fill; i++) {
		uint32_t a = BENCH_FILL_ADDR0 + (uint32_t)i;
		bool wide = i % 16 == 15;

		ipc_set(p, k++, wide ? a & ~0xfu : a, wide ? 28 : 32,
			BENCH_FILL_ID0 + (uint32_t)(i % 1000));
	}

	for (size_t i = 0; i < g->n_rules; i++) {
		bench_rule_fill(&p->rules[i], i, g->ports_per_peer);
		p->rules_v[i] = &p->rules[i];
	}
	if (g->match_port) {
		bench_match_rule_fill(&p->rules[g->n_rules], g->match_port);
		p->rules_v[g->n_rules] = &p->rules[g->n_rules];
	}

	p->np.revision = revision;
	p->np.n_endpoints = 1;
	p->np.endpoints = p->ep_v;
	p->np.n_ipcache = k;
	p->np.ipcache = p->ipc_v;
	p->np.n_rules = n_rules;
	p->np.rules = p->rules_v;
	*out = p;
	return 0;
}

int bench_ipt_write(FILE *f, size_t first, size_t n, uint32_t ports_per_peer, uint32_t match_port,
		    bool noflush, bool drop, bool established_first)
{
	char a[16];

	fputs("*filter\n", f);
	if (!noflush)
		fprintf(f, ":INPUT %s [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
			drop ? "DROP" : "ACCEPT");
	if (established_first)
		fputs("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", f);
	for (size_t i = first; i < first + n; i++) {
		Bulkhead__Rule r;

		bench_rule_fill(&r, i, ports_per_peer);
		fprintf(f, "-A INPUT -s %s/32 -p tcp -m tcp --dport %u -j ACCEPT\n",
			addr_str(BENCH_PEER_ADDR0 + (r.remote_identity - BENCH_PEER_ID0), a,
				 sizeof(a)),
			r.port);
	}
	if (match_port)
		fprintf(f, "-A INPUT -s %s/32 -p tcp -m tcp --dport %u -j ACCEPT\n",
			addr_str(BENCH_CLIENT_ADDR, a, sizeof(a)), match_port);
	fputs("COMMIT\n", f);
	return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
