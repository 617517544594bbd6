// SPDX-License-Identifier: Apache-2.0
/* bulkhead flows: the fleet's flow history, with the policy and rule that decided each flow. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/token.h"
#include "bulkhead/util.h"
#include "cli.h"

static const char flows_usage[] =
	"usage: bulkhead flows [--from PEER | -l SELECTOR] [--to PEER] [--port [PROTO/]PORT]\n"
	"                      [--proto PROTO] [--verdict allowed|denied|would-deny]\n"
	"                      [--since D] [--policy NAME] [--node NAME] [--limit N]\n"
	"                      [--events] [--stats] [--follow] [-o table|json]\n"
	"\n"
	"Shows the flows the fleet's agents reported: who talked to whom, on which protocol and\n"
	"port, whether it was allowed, denied or (observe mode) would have been denied, and the\n"
	"policy and rule that decided it. Rows are summed over the window, newest first. A flow\n"
	"between two workloads on two nodes shows twice: as the source node saw it (egress) and\n"
	"as the destination node did (ingress); each decides on its own.\n"
	"\n"
	"Columns: LAST-SEEN, NODE (that reported it), DIR (at that node's endpoint), SRC and DST\n"
	"(the side that opened the flow first: a workload, a label set {k=v}, a CIDR, world, or\n"
	"host:NODE), PROTO/PORT (ICMP: the message type), VERDICT, PACKETS and BYTES (both\n"
	"directions of the flow), POLICY and RULE.\n"
	"\n"
	"  --from PEER          flows opened by PEER: a workload name, a label selector\n"
	"                       ('app=web,env in (prod)'), an identity number, a CIDR a policy\n"
	"                       names, world, host\n"
	"  -l, --selector SEL   the same as --from SEL\n"
	"  --to PEER            flows to PEER (as --from)\n"
	"  --port [PROTO/]PORT  destination port (tcp/443, 53); ICMP: the message type (icmp/8)\n"
	"  --proto PROTO        tcp, udp, icmp, icmp6, sctp, udplite or a number\n"
	"  --verdict V          allowed, denied or would-deny\n"
	"  --since D            how far back: 30s, 15m, 12h, 7d (default 1h). Within the\n"
	"                       controller's minute retention (default 6h) the window is exact to\n"
	"                       the minute, beyond it to the hour\n"
	"  --policy NAME        only flows a rule of policy NAME decided\n"
	"  --node NAME          only what node NAME reported\n"
	"  --limit N            at most N rows (default 1000; 1-100000); a note says when more\n"
	"                       matched\n"
	"  --events             also list deny events: time, addresses and ports of denied and\n"
	"                       would-deny packets (rate-limited by each agent)\n"
	"  --stats              also list each node's reporting: reports, summaries stored,\n"
	"                       rejected, and what the agent says it had to drop\n"
	"  -f, --follow         after the history, print flows as reports arrive, until ^C\n"
	"  -o, --output FORMAT  table (default) or json: one object {flows, events, nodes};\n"
	"                       with --follow, one object per line per flow\n"
	"\n"
	"Agents report every 10 s (their flow-export interval), so a flow shows up that long\n"
	"after it happened.\n"
	"\n"
	"examples:\n"
	"  bulkhead flows --verdict denied --since 15m\n"
	"  bulkhead flows --from web-1 --to db-1 --port tcp/5432\n"
	"  bulkhead flows -l app=web --policy web-to-db -o json\n"
	"  bulkhead flows --follow --verdict would-deny\n"
	"\n"
	"exit status: 0 success, 1 failure (the message says why), 2 usage error.\n";

static const char *const verdict_names[] = {"-", "allowed", "denied", "would-deny"};

static const char *verdict_name(unsigned int v)
{
	return v < BH_ARRAY_SIZE(verdict_names) ? verdict_names[v] : "?";
}

static const char *dir_name(unsigned int d)
{
	return d == 0 ? "ingress" : d == 1 ? "egress" : "?";
}

static const char *proto_port(unsigned int proto, unsigned int port, char *buf, size_t len)
{
	char n[16];
	const char *p = bh_ip_proto_name(proto, n, sizeof(n));

	if (bh_ip_proto_has_ports(proto) || bh_ip_proto_is_icmp(proto))
		snprintf(buf, len, "%s/%u", p, port);
	else
		snprintf(buf, len, "%s", p);
	return buf;
}

static const char *time_ms(int64_t ms, char *buf, size_t len)
{
	return cli_time(ms / 1000, buf, len);
}

static void json_flow(const Bulkhead__FlowRecord *r)
{
	char pp[32];

	printf("{\"last_seen_ms\":%" PRId64 ",\"first_seen_ms\":%" PRId64 ",\"node\":",
	       r->last_seen_ms, r->first_seen_ms);
	cli_json_str(stdout, r->node);
	printf(",\"direction\":\"%s\",\"src\":", dir_name(r->direction));
	cli_json_str(stdout, r->src);
	printf(",\"src_identity\":%u,\"dst\":", r->src_identity);
	cli_json_str(stdout, r->dst);
	printf(",\"dst_identity\":%u,\"protocol\":\"%s\",\"port\":%u,\"verdict\":\"%s\","
	       "\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"policy\":",
	       r->dst_identity, bh_ip_proto_name(r->protocol, pp, sizeof(pp)), r->port,
	       verdict_name(r->verdict), r->packets, r->bytes);
	cli_json_str(stdout, r->policy);
	printf(",\"rule_id\":%u,\"rule\":", r->rule_id);
	cli_json_str(stdout, r->rule);
	printf("}");
}

static void json_event(const Bulkhead__FlowEvent *e)
{
	const Bulkhead__DenyEvent *d = e->event;
	char s[64], t[64], pp[32];
	int alen = (int)d->src_address.len;

	printf("{\"at_ms\":%" PRId64 ",\"node\":", d->at_ms);
	cli_json_str(stdout, e->node);
	printf(",\"interface\":");
	cli_json_str(stdout, d->ifname);
	printf(",\"direction\":\"%s\",\"verdict\":\"%s\",\"protocol\":\"%s\",\"src_address\":\"%s\","
	       "\"src_port\":%u,\"dst_address\":\"%s\",\"dst_port\":%u,\"local\":",
	       dir_name(d->direction), verdict_name(d->verdict),
	       bh_ip_proto_name(d->protocol, pp, sizeof(pp)),
	       bh_format_addr(d->src_address.data, alen, s, sizeof(s)), d->src_port,
	       bh_format_addr(d->dst_address.data, alen, t, sizeof(t)), d->dst_port);
	cli_json_str(stdout, e->local);
	printf(",\"remote\":");
	cli_json_str(stdout, e->remote);
	printf(",\"policy\":");
	cli_json_str(stdout, e->policy);
	printf(",\"rule_id\":%u,\"rule\":", d->rule_id);
	cli_json_str(stdout, e->rule);
	printf("}");
}

static void json_stats(const Bulkhead__NodeFlowStats *n)
{
	printf("{\"node\":");
	cli_json_str(stdout, n->node);
	printf(",\"last_report_ms\":%" PRId64 ",\"reports\":%" PRIu64 ",\"summaries\":%" PRIu64
	       ",\"rejected\":%" PRIu64 ",\"summaries_dropped\":%" PRIu64
	       ",\"events_dropped\":%" PRIu64 ",\"kernel_events_not_sent\":%" PRIu64
	       ",\"kernel_flows_not_counted\":%" PRIu64 ",\"agent_started_ms\":%" PRId64 "}",
	       n->last_report_ms, n->reports, n->summaries, n->rejected, n->summaries_dropped,
	       n->events_dropped, n->kernel_events_not_sent, n->kernel_flows_not_counted,
	       n->agent_started_ms);
}

static int print_json(const Bulkhead__FlowList *l, bool events, bool stats)
{
	printf("{\"flows\":[");
	for (size_t i = 0; i < l->n_flows; i++) {
		printf("%s\n  ", i ? "," : "");
		json_flow(l->flows[i]);
	}
	printf("%s]", l->n_flows ? "\n" : "");
	if (events) {
		printf(",\"events\":[");
		for (size_t i = 0; i < l->n_events; i++) {
			printf("%s\n  ", i ? "," : "");
			json_event(l->events[i]);
		}
		printf("%s]", l->n_events ? "\n" : "");
	}
	if (stats) {
		printf(",\"nodes\":[");
		for (size_t i = 0; i < l->n_nodes; i++) {
			printf("%s\n  ", i ? "," : "");
			json_stats(l->nodes[i]);
		}
		printf("%s]", l->n_nodes ? "\n" : "");
	}
	printf(",\"truncated\":%s}\n", l->truncated ? "true" : "false");
	return 0;
}

static int print_flows_table(const Bulkhead__FlowList *l, bool header)
{
	static const char *const head[] = {"LAST-SEEN", "NODE",	   "DIR",     "SRC",
					   "DST",	"PROTO/PORT", "VERDICT", "PACKETS",
					   "BYTES",	"POLICY",     "RULE"};
	struct cli_table *t = cli_table_create(BH_ARRAY_SIZE(head), head);

	for (size_t i = 0; t && i < l->n_flows; i++) {
		const Bulkhead__FlowRecord *r = l->flows[i];
		char when[48], pp[32], pk[24], by[24];
		const char *row[] = {time_ms(r->last_seen_ms, when, sizeof(when)),
				     r->node,
				     dir_name(r->direction),
				     r->src,
				     r->dst,
				     proto_port(r->protocol, r->port, pp, sizeof(pp)),
				     verdict_name(r->verdict),
				     pk,
				     by,
				     r->policy[0] ? r->policy : "-",
				     r->rule};

		snprintf(pk, sizeof(pk), "%" PRIu64, r->packets);
		snprintf(by, sizeof(by), "%" PRIu64, r->bytes);
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
	}
	if (!t) {
		fprintf(stderr, "bulkhead: out of memory\n");
		return 1;
	}
	if (l->n_flows) {
		if (header) {
			cli_table_print(t, stdout);
		} else {
			/* follow: the rows without the header again (widths may differ) */
			char *buf = NULL;
			size_t len = 0;
			FILE *m = open_memstream(&buf, &len);
			char *nl;

			if (m) {
				cli_table_print(t, m);
				fclose(m);
				nl = buf ? strchr(buf, '\n') : NULL;
				fputs(nl ? nl + 1 : "", stdout);
				free(buf);
			}
		}
	}
	cli_table_destroy(t);
	return 0;
}

static int print_events_table(const Bulkhead__FlowList *l)
{
	static const char *const head[] = {"TIME",   "NODE",   "INTERFACE", "DIR",
					   "SOURCE", "DEST",   "PROTO",     "VERDICT",
					   "LOCAL",  "REMOTE", "RULE"};
	struct cli_table *t = cli_table_create(BH_ARRAY_SIZE(head), head);

	for (size_t i = 0; t && i < l->n_events; i++) {
		const Bulkhead__FlowEvent *e = l->events[i];
		const Bulkhead__DenyEvent *d = e->event;
		char when[48], s[80], a[64], dst[80], b[64], pp[16];
		int alen = (int)d->src_address.len;
		const char *row[] = {time_ms(d->at_ms, when, sizeof(when)),
				     e->node,
				     d->ifname,
				     dir_name(d->direction),
				     s,
				     dst,
				     bh_ip_proto_name(d->protocol, pp, sizeof(pp)),
				     verdict_name(d->verdict),
				     e->local,
				     e->remote,
				     e->rule};

		bh_format_addr(d->src_address.data, alen, a, sizeof(a));
		bh_format_addr(d->dst_address.data, alen, b, sizeof(b));
		snprintf(s, sizeof(s), alen == 16 ? "[%s]:%u" : "%s:%u", a, d->src_port);
		snprintf(dst, sizeof(dst), alen == 16 ? "[%s]:%u" : "%s:%u", b, d->dst_port);
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
	}
	printf("\ndeny events:\n");
	return cli_table_finish(t, l->n_events, "no deny event in the window");
}

static int print_stats_table(const Bulkhead__FlowList *l)
{
	static const char *const head[] = {"NODE",	   "LAST-REPORT",	    "REPORTS",
					   "SUMMARIES",	   "REJECTED",		    "SPOOL-DROPPED",
					   "EVENTS-DROPPED", "KERNEL-EVENTS-NOT-SENT", "KERNEL-FLOWS-NOT-COUNTED"};
	struct cli_table *t = cli_table_create(BH_ARRAY_SIZE(head), head);

	for (size_t i = 0; t && i < l->n_nodes; i++) {
		const Bulkhead__NodeFlowStats *n = l->nodes[i];
		const uint64_t x[] = {n->reports,	     n->summaries,
				      n->rejected,	     n->summaries_dropped,
				      n->events_dropped,     n->kernel_events_not_sent,
				      n->kernel_flows_not_counted};
		char when[48], v[BH_ARRAY_SIZE(x)][24];
		const char *row[BH_ARRAY_SIZE(head)] = {n->node,
							time_ms(n->last_report_ms, when, sizeof(when))};

		for (size_t k = 0; k < BH_ARRAY_SIZE(x); k++) {
			snprintf(v[k], sizeof(v[k]), "%" PRIu64, x[k]);
			row[2 + k] = v[k];
		}
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
	}
	printf("\nreporting nodes:\n");
	return cli_table_finish(t, l->n_nodes, "no node has reported flows yet");
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* --follow: asks again and again for what arrived since the last answer. */
static int follow(struct cli *c, Bulkhead__FlowQuery *q, uint64_t seq)
{
	struct sigaction sa = {.sa_handler = on_interrupt};

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	c->timeout_ms = 40000;
	q->wait_ms = 25000;
	while (!interrupted) {
		Bulkhead__FlowList *l = NULL;

		q->follow = true;
		q->after_seq = seq;
		if (cli_call(c, &bulkhead__operator__descriptor, "QueryFlows", &q->base,
			     (ProtobufCMessage **)&l))
			return interrupted ? 0 : 1;
		if (c->format == CLI_FORMAT_JSON) {
			for (size_t i = 0; i < l->n_flows; i++) {
				json_flow(l->flows[i]);
				printf("\n");
			}
		} else {
			print_flows_table(l, false);
		}
		fflush(stdout);
		seq = l->seq;
		protobuf_c_message_free_unpacked(&l->base, NULL);
	}
	return 0;
}

enum {
	OPT_FROM = 256,
	OPT_TO,
	OPT_PORT,
	OPT_PROTO,
	OPT_VERDICT,
	OPT_SINCE,
	OPT_POLICY,
	OPT_NODE,
	OPT_LIMIT,
	OPT_EVENTS,
	OPT_STATS,
};

static int bad(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "bulkhead flows: %s \"%s\": %s\n", opt, val, want);
	return 2;
}

static int parse_proto(const char *s, uint32_t *out)
{
	uint64_t n;
	int p = bh_ip_proto_number(s, true);

	if (p >= 0) {
		*out = (uint32_t)p;
		return 0;
	}
	if (bh_parse_u64(s, 255, &n) || n == 0)
		return -EINVAL;
	*out = (uint32_t)n;
	return 0;
}

int cmd_flows(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, OPT_FROM},
		{"selector", required_argument, NULL, 'l'},
		{"to", required_argument, NULL, OPT_TO},
		{"port", required_argument, NULL, OPT_PORT},
		{"proto", required_argument, NULL, OPT_PROTO},
		{"verdict", required_argument, NULL, OPT_VERDICT},
		{"since", required_argument, NULL, OPT_SINCE},
		{"policy", required_argument, NULL, OPT_POLICY},
		{"node", required_argument, NULL, OPT_NODE},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"events", no_argument, NULL, OPT_EVENTS},
		{"stats", no_argument, NULL, OPT_STATS},
		{"follow", no_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	Bulkhead__FlowQuery q = BULKHEAD__FLOW_QUERY__INIT;
	Bulkhead__FlowList *l = NULL;
	bool follow_on = false;
	unsigned long since;
	uint64_t n;
	char *slash;
	int opt, rc = 0;

	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "l:fo:h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_FROM:
		case 'l':
			if (q.from[0])
				return bad(opt == 'l' ? "-l" : "--from", optarg,
					   "give --from or -l once");
			q.from = optarg;
			break;
		case OPT_TO:
			q.to = optarg;
			break;
		case OPT_PORT:
			slash = strchr(optarg, '/');
			if (slash) {
				*slash = '\0';
				if (parse_proto(optarg, &q.protocol)) {
					*slash = '/';
					return bad("--port", optarg,
						   "want [PROTO/]PORT: tcp/443, udp/53, icmp/8, 80");
				}
				*slash = '/';
			}
			if (bh_parse_u64(slash ? slash + 1 : optarg, 65535, &n) || n == 0)
				return bad("--port", optarg,
					   "want [PROTO/]PORT: tcp/443, udp/53, icmp/8, 80 (1-65535)");
			q.port = (uint32_t)n;
			break;
		case OPT_PROTO:
			if (parse_proto(optarg, &q.protocol))
				return bad("--proto", optarg,
					   "want tcp, udp, icmp, icmp6, sctp, udplite or 1-255");
			break;
		case OPT_VERDICT:
			if (!strcmp(optarg, "allowed") || !strcmp(optarg, "allow"))
				q.verdict = BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_ALLOWED;
			else if (!strcmp(optarg, "denied") || !strcmp(optarg, "deny"))
				q.verdict = BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_DENIED;
			else if (!strcmp(optarg, "would-deny"))
				q.verdict = BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_WOULD_DENY;
			else
				return bad("--verdict", optarg, "want allowed, denied or would-deny");
			break;
		case OPT_SINCE:
			if (bh_parse_duration(optarg, &since) || since == 0 || since > 366ul * 86400)
				return bad("--since", optarg,
					   "want a duration from 1s to 366d: 30s, 15m, 12h, 7d");
			q.since_s = (uint32_t)since;
			break;
		case OPT_POLICY:
			q.policy = optarg;
			break;
		case OPT_NODE:
			q.node = optarg;
			break;
		case OPT_LIMIT:
			if (bh_parse_u64(optarg, 100000, &n) || n == 0)
				return bad("--limit", optarg, "want a number from 1 to 100000");
			q.limit = (uint32_t)n;
			break;
		case OPT_EVENTS:
			q.events = true;
			break;
		case OPT_STATS:
			q.stats = true;
			break;
		case 'f':
			follow_on = true;
			break;
		case 'o':
			if (cli_format_set(c, "flows", optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(flows_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead flows --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bulkhead flows: unexpected \"%s\"\nTry 'bulkhead flows --help'.\n",
			argv[optind]);
		return 2;
	}
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "QueryFlows", &q.base,
				       (ProtobufCMessage **)&l))
		return 1;
	if (c->format == CLI_FORMAT_JSON && !follow_on) {
		rc = print_json(l, q.events, q.stats);
	} else if (c->format == CLI_FORMAT_JSON) {
		for (size_t i = 0; i < l->n_flows; i++) {
			json_flow(l->flows[i]);
			printf("\n");
		}
	} else {
		if (!l->n_flows && !follow_on)
			fprintf(stderr, "no flows match in the window\n");
		rc = print_flows_table(l, true);
		if (l->truncated)
			fprintf(stderr, "(more flows matched: showing the newest %zu; narrow the "
					"query or raise --limit)\n",
				l->n_flows);
		if (!rc && q.events)
			rc = print_events_table(l);
		if (!rc && q.stats)
			rc = print_stats_table(l);
	}
	fflush(stdout);
	if (!rc && follow_on) {
		uint64_t seq = l->seq;

		protobuf_c_message_free_unpacked(&l->base, NULL);
		q.events = q.stats = false;
		q.limit = 0;
		return follow(c, &q, seq);
	}
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return rc;
}
