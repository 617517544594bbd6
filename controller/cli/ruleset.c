// SPDX-License-Identifier: Apache-2.0
/* bulkhead ruleset NODE: a node's compiled rule set, in the agent's text form. */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "bulkhead/util.h"
#include "cli.h"

static const char usage[] =
	"usage: bulkhead ruleset NODE [--since REVISION] [-o text|json]\n"
	"       bulkhead get ruleset NODE [--since REVISION] [-o text|json]\n"
	"\n"
	"Prints the rule set the controller compiled for NODE at the current revision, exactly "
	"what\n"
	"its agent is sent, in the rule-set text form (deploy/ruleset-format.md), which\n"
	"'bulkhead-agent dataplane apply FILE' reads back:\n"
	"\n"
	"  revision N\n"
	"  endpoint NAME if=IFNAME id=IDENTITY mode=enforce|observe attach=host|veth\n"
	"           ingress=allow|deny:RULE_ID egress=allow|deny:RULE_ID\n"
	"  ipcache PREFIX/LEN IDENTITY\n"
	"  rule LOCAL ingress|egress PEER|any PROTO[/PORT[-END]] allow|deny RULE_ID\n"
	"\n"
	"  --since REVISION     print instead the delta from the rule set NODE had at REVISION\n"
	"                       to the current one: 'delta FROM TO', then '-' and '+' entries\n"
	"                       (what its agent applies to go from one to the other)\n"
	"  -o, --output FORMAT  text (default) or json ({revision, endpoints, ipcache, rules})\n"
	"\n"
	"examples:\n"
	"  bulkhead ruleset node-b\n"
	"  bulkhead ruleset node-b > node-b.rules && bulkhead-agent dataplane apply node-b.rules\n"
	"  bulkhead ruleset node-b --since 3\n"
	"\n"
	"exit status: 0 success, 1 failure (no rule set for NODE, no controller: the message says\n"
	"why), 2 usage error.\n";

/* allow / deny; anything else is not a rule set the agent takes, and shows as such */
static const char *verdict_name(Bulkhead__Verdict v, char *buf, size_t len)
{
	if (v == BULKHEAD__VERDICT__VERDICT_ALLOW)
		return "allow";
	if (v == BULKHEAD__VERDICT__VERDICT_DENY)
		return "deny";
	snprintf(buf, len, "verdict-%d", (int)v);
	return buf;
}

static const char *prefix_text(const ProtobufCBinaryData *p, uint32_t len, char *buf, size_t blen)
{
	char a[64];

	if (p->len != 4 && p->len != 16)
		snprintf(buf, blen, "invalid-prefix/%" PRIu32, len);
	else
		snprintf(buf, blen, "%s/%" PRIu32,
			 bh_format_addr(p->data, (int)p->len, a, sizeof(a)), len);
	return buf;
}

static void print_default(const char *key, const Bulkhead__DirectionDefault *d)
{
	char v[32];

	/* left out, the agent reads allow with rule id 0 */
	if (d)
		printf(" %s=%s:%" PRIu32, key, verdict_name(d->verdict, v, sizeof(v)), d->rule_id);
}

/* The entries of np, each line starting with mark ("", "+" or "-"). */
static void print_entries(const Bulkhead__NodePolicy *np, const char *mark)
{
	char buf[80], v[32];

	for (size_t i = 0; i < np->n_endpoints; i++) {
		const Bulkhead__Endpoint *e = np->endpoints[i];

		printf("%sendpoint %s if=%s id=%" PRIu32 " mode=%s attach=%s", mark, e->name, e->ifname,
		       e->identity, e->mode == BULKHEAD__MODE__MODE_OBSERVE ? "observe" : "enforce",
		       e->attach == BULKHEAD__ATTACH__ATTACH_HOST ? "host" : "veth");
		print_default("ingress", e->ingress);
		print_default("egress", e->egress);
		putchar('\n');
	}
	for (size_t i = 0; i < np->n_ipcache; i++) {
		const Bulkhead__IpcacheEntry *e = np->ipcache[i];

		printf("%sipcache %s %" PRIu32 "\n", mark,
		       prefix_text(&e->prefix, e->prefix_len, buf, sizeof(buf)), e->identity);
	}
	for (size_t i = 0; i < np->n_rules; i++) {
		const Bulkhead__Rule *r = np->rules[i];
		char peer[16] = "any", port[24] = "";

		if (r->remote_identity)
			snprintf(peer, sizeof(peer), "%" PRIu32, r->remote_identity);
		if (r->protocol && r->end_port)
			snprintf(port, sizeof(port), "/%" PRIu32 "-%" PRIu32, r->port, r->end_port);
		else if (r->protocol && r->port)
			snprintf(port, sizeof(port), "/%" PRIu32, r->port);
		printf("%srule %" PRIu32 " %s %s %s%s %s %" PRIu32 "\n", mark, r->local_identity,
		       r->direction == BULKHEAD__DIRECTION__DIRECTION_EGRESS ? "egress" : "ingress",
		       peer, bh_ip_proto_name(r->protocol, buf, sizeof(buf)), port,
		       verdict_name(r->verdict, v, sizeof(v)), r->rule_id);
	}
}

static void print_text(const Bulkhead__NodePolicy *np)
{
	printf("revision %" PRIu64 "\n", np->revision);
	print_entries(np, "");
}

static void print_delta(const Bulkhead__NodePolicyDelta *d)
{
	Bulkhead__NodePolicy del = BULKHEAD__NODE_POLICY__INIT, add = BULKHEAD__NODE_POLICY__INIT;

	del.n_endpoints = d->n_endpoints_removed;
	del.endpoints = d->endpoints_removed;
	del.n_ipcache = d->n_ipcache_removed;
	del.ipcache = d->ipcache_removed;
	del.n_rules = d->n_rules_removed;
	del.rules = d->rules_removed;
	add.n_endpoints = d->n_endpoints_added;
	add.endpoints = d->endpoints_added;
	add.n_ipcache = d->n_ipcache_added;
	add.ipcache = d->ipcache_added;
	add.n_rules = d->n_rules_added;
	add.rules = d->rules_added;
	printf("delta %" PRIu64 " %" PRIu64 "\n", d->from_revision, d->to_revision);
	print_entries(&del, "-");
	print_entries(&add, "+");
}

static void json_default(const Bulkhead__DirectionDefault *d)
{
	char v[32];

	if (!d) {
		fputs("null", stdout);
		return;
	}
	printf("{\"verdict\":\"%s\",\"rule_id\":%" PRIu32 "}",
	       verdict_name(d->verdict, v, sizeof(v)), d->rule_id);
}

static void print_json(const Bulkhead__NodePolicy *np)
{
	char buf[80], v[32];

	printf("{\"revision\":%" PRIu64 ",\"endpoints\":[", np->revision);
	for (size_t i = 0; i < np->n_endpoints; i++) {
		const Bulkhead__Endpoint *e = np->endpoints[i];

		printf("%s\n  {\"name\":", i ? "," : "");
		cli_json_str(stdout, e->name);
		fputs(",\"ifname\":", stdout);
		cli_json_str(stdout, e->ifname);
		printf(",\"identity\":%" PRIu32 ",\"mode\":\"%s\",\"attach\":\"%s\",\"ingress\":",
		       e->identity, e->mode == BULKHEAD__MODE__MODE_OBSERVE ? "observe" : "enforce",
		       e->attach == BULKHEAD__ATTACH__ATTACH_HOST ? "host" : "veth");
		json_default(e->ingress);
		fputs(",\"egress\":", stdout);
		json_default(e->egress);
		putchar('}');
	}
	printf("%s],\"ipcache\":[", np->n_endpoints ? "\n" : "");
	for (size_t i = 0; i < np->n_ipcache; i++) {
		const Bulkhead__IpcacheEntry *e = np->ipcache[i];

		printf("%s\n  {\"prefix\":\"%s\",\"identity\":%" PRIu32 "}", i ? "," : "",
		       prefix_text(&e->prefix, e->prefix_len, buf, sizeof(buf)), e->identity);
	}
	printf("%s],\"rules\":[", np->n_ipcache ? "\n" : "");
	for (size_t i = 0; i < np->n_rules; i++) {
		const Bulkhead__Rule *r = np->rules[i];

		printf("%s\n  {\"local_identity\":%" PRIu32 ",\"remote_identity\":%" PRIu32
		       ",\"direction\":\"%s\",\"protocol\":%" PRIu32 ",\"port\":%" PRIu32
		       ",\"end_port\":%" PRIu32 ",\"verdict\":\"%s\",\"rule_id\":%" PRIu32 "}",
		       i ? "," : "", r->local_identity, r->remote_identity,
		       r->direction == BULKHEAD__DIRECTION__DIRECTION_EGRESS ? "egress" : "ingress",
		       r->protocol, r->port, r->end_port, verdict_name(r->verdict, v, sizeof(v)),
		       r->rule_id);
	}
	printf("%s]}\n", np->n_rules ? "\n" : "");
}

int cli_ruleset_print(struct cli *c, const char *node)
{
	Bulkhead__NodePolicyRequest r = BULKHEAD__NODE_POLICY_REQUEST__INIT;
	Bulkhead__NodePolicy *np = NULL;

	r.node = (char *)node;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "GetNodePolicy", &r.base,
				       (ProtobufCMessage **)&np))
		return 1;
	if (c->format == CLI_FORMAT_JSON)
		print_json(np);
	else
		print_text(np);
	protobuf_c_message_free_unpacked(&np->base, NULL);
	return 0;
}

static int delta_print(struct cli *c, const char *node, uint64_t since)
{
	Bulkhead__NodePolicyRequest r = BULKHEAD__NODE_POLICY_REQUEST__INIT;
	Bulkhead__NodePolicyDelta *d = NULL;

	r.node = (char *)node;
	r.from_revision = since;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "GetNodePolicyDelta",
				       &r.base, (ProtobufCMessage **)&d))
		return 1;
	print_delta(d);
	protobuf_c_message_free_unpacked(&d->base, NULL);
	return 0;
}

int cmd_ruleset(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"since", required_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	uint64_t since = 0;
	int opt;

	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (bh_parse_u64(optarg, UINT64_MAX, &since) || !since) {
				fprintf(stderr, "bulkhead ruleset: --since \"%s\": want a revision "
						"number\n",
					optarg);
				return 2;
			}
			break;
		case 'o':
			if (cli_format_set(c, "ruleset", optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead ruleset --help'.\n");
			return 2;
		}
	}
	if (argc - optind != 1 || !*argv[optind]) {
		fprintf(stderr, "bulkhead ruleset: %s\nTry 'bulkhead ruleset --help'.\n",
			optind < argc ? "one NODE only" : "which node? give NODE");
		return 2;
	}
	if (since) {
		if (c->format == CLI_FORMAT_JSON) {
			fprintf(stderr, "bulkhead ruleset: --since prints text only\n");
			return 2;
		}
		return delta_print(c, argv[optind], since);
	}
	return cli_ruleset_print(c, argv[optind]);
}
