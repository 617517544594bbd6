// SPDX-License-Identifier: Apache-2.0
/* bulkhead get policies|workloads|nodes|identities|revisions|ruleset */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bulkhead/util.h"
#include "cli.h"

static const char usage[] =
	"usage: bulkhead get policies|workloads|nodes [NAME] [-l SELECTOR] [--revision N]\n"
	"                    [-o table|json|yaml]\n"
	"       bulkhead get policies [NAME] --hits [-o table|json]\n"
	"       bulkhead get identities [ID] [-o table|json]\n"
	"       bulkhead get revisions [--limit N] [-o table|json]\n"
	"       bulkhead get ruleset NODE [-o text|json]\n"
	"\n"
	"Lists what the controller holds, or one object of it by NAME.\n"
	"\n"
	"  policies (policy, pol, po)  NAME MODE HITS LAST-HIT UNUSED SUMMARY: packets its rules\n"
	"                              decided and when last, over the flow retention (7 days by\n"
	"                              default); UNUSED: its rules that decided nothing in that\n"
	"                              window (N/M); the workloads it selects, its rules\n"
	"  workloads (workload, wl)    NAME NODE IDENTITY LABELS ADDRESSES\n"
	"  nodes (node, no)            NAME LABELS MODE CONNECTED WANTED SENT ACKED CERT-EXPIRES\n"
	"                              STATE LAST-ERROR: the Node objects (LABELS: the operator's,\n"
	"                              what policies select on) together with the enrolled nodes\n"
	"                              (MODE, CONNECTED, the revision its rule set last changed\n"
	"                              at, the last sent to its agent, the last it acknowledged,\n"
	"                              the newest certificate's expiry; STATE in sync, error,\n"
	"                              enrolled, revoked, or 'not enrolled' for a Node object no\n"
	"                              agent has enrolled as; LAST-ERROR its last failed apply)\n"
	"  identities (identity, id)   ID LABELS WORKLOADS STATE: the numeric identity of each\n"
	"                              label set, how many workloads carry it, in use or since\n"
	"                              when unused (numbers are kept a while before reuse)\n"
	"  revisions (revision, rev)   as 'bulkhead revisions'\n"
	"  ruleset NODE                as 'bulkhead ruleset NODE'\n"
	"\n"
	"  -l, --selector SELECTOR  workloads or nodes whose labels match, kubectl syntax:\n"
	"                           'app=web,env!=dev,tier in (a,b),tier notin (c),key,!key'\n"
	"  --revision N             policies, workloads, nodes as they were at revision N (the\n"
	"                           nodes' enrollment columns are still today's)\n"
	"  --limit N                revisions: the newest N (default 20)\n"
	"  --hits                   policies: one row per rule: RULE, its ID, PACKETS and FLOWS\n"
	"                           it decided, LAST-HIT, or 'unused' when it decided nothing\n"
	"                           over the window (from the agents' flow reports; see\n"
	"                           'bulkhead flows --policy NAME' for the flows themselves)\n"
	"  -o, --output FORMAT      table (default); json: an array of objects (policies,\n"
	"                           workloads: the canonical JSON of each; nodes: {name, spec,\n"
	"                           enrollment}); yaml: the documents, separated by '---', as\n"
	"                           'bulkhead apply' takes them (nodes: the Node objects only)\n"
	"\n"
	"examples:\n"
	"  bulkhead get workloads -l app=db\n"
	"  bulkhead get policy api-from-web -o yaml > api-from-web.yaml\n"
	"  bulkhead get policies --revision 6 -o yaml   # what rollback 6 would restore\n"
	"  bulkhead get nodes\n"
	"  bulkhead get policies --hits                 # which rules are never used\n"
	"\n"
	"exit status: 0 success (also when nothing matches), 1 failure (no such object or\n"
	"revision, no controller: the message says why), 2 usage error.\n";

static const struct {
	const char *kind;
	const char *names[4];
} kind_names[] = {
	{"Policy", {"policy", "policies", "po", "pol"}},
	{"Workload", {"workload", "workloads", "wl", NULL}},
	{"Node", {"node", "nodes", "no", NULL}},
};

const char *cli_kind_parse(const char *text)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(kind_names); i++)
		for (size_t k = 0; k < 4 && kind_names[i].names[k]; k++)
			if (strcasecmp(text, kind_names[i].names[k]) == 0)
				return kind_names[i].kind;
	return NULL;
}

enum what { W_IDENTITIES, W_REVISIONS, W_RULESET, W_OBJECTS };

static int what_parse(const char *text, const char **kind)
{
	static const struct {
		const char *name;
		enum what w;
	} others[] = {
		{"identities", W_IDENTITIES}, {"identity", W_IDENTITIES}, {"id", W_IDENTITIES},
		{"revisions", W_REVISIONS},   {"revision", W_REVISIONS},  {"rev", W_REVISIONS},
		{"ruleset", W_RULESET},	      {"rulesets", W_RULESET},
	};

	*kind = cli_kind_parse(text);
	if (*kind)
		return W_OBJECTS;
	for (size_t i = 0; i < BH_ARRAY_SIZE(others); i++)
		if (strcasecmp(text, others[i].name) == 0)
			return (int)others[i].w;
	return -1;
}

/* ---- policies, workloads, nodes -------------------------------------------------------------- */

static int call_get(struct cli *c, const char *kind, const char *name, const char *selector,
		    uint64_t revision, Bulkhead__ObjectList **out)
{
	Bulkhead__GetRequest r = BULKHEAD__GET_REQUEST__INIT;

	r.kind = (char *)kind;
	r.name = (char *)(name ? name : "");
	r.selector = (char *)(selector ? selector : "");
	r.revision = revision;
	return cli_call(c, &bulkhead__operator__descriptor, "Get", &r.base,
			(ProtobufCMessage **)out);
}

/* -o json: the canonical JSON of each object; -o yaml: the YAML documents. */
static void print_objects(struct cli *c, const Bulkhead__ObjectList *l)
{
	if (c->format == CLI_FORMAT_JSON) {
		printf("[");
		for (size_t i = 0; i < l->n_objects; i++)
			printf("%s\n  %s", i ? "," : "", l->objects[i]->json);
		printf("%s]\n", l->n_objects ? "\n" : "");
		return;
	}
	for (size_t i = 0; i < l->n_objects; i++) {
		if (i)
			printf("---\n");
		cli_print_text(l->objects[i]->yaml);
	}
}

static const char *hit_time(int64_t ms, char *buf, size_t len)
{
	if (ms)
		return cli_time(ms / 1000, buf, len);
	snprintf(buf, len, "never");
	return buf;
}

static int get_policies(struct cli *c, const Bulkhead__ObjectList *l)
{
	static const char *const head[] = {"NAME", "MODE", "HITS", "LAST-HIT", "UNUSED", "SUMMARY"};
	struct cli_table *t = cli_table_create(6, head);

	for (size_t i = 0; t && i < l->n_objects; i++) {
		const Bulkhead__Object *o = l->objects[i];
		char mode[32], hits[24], last[48], unused[24];
		const char *row[6] = {o->name, mode, hits, last, unused, o->summary};
		uint64_t packets = 0;
		int64_t last_ms = 0;
		size_t n_unused = 0;

		for (size_t k = 0; k < o->n_rule_hits; k++) {
			packets += o->rule_hits[k]->packets;
			if (o->rule_hits[k]->last_hit_ms > last_ms)
				last_ms = o->rule_hits[k]->last_hit_ms;
			n_unused += !o->rule_hits[k]->last_hit_ms;
		}
		snprintf(hits, sizeof(hits), "%" PRIu64, packets);
		hit_time(last_ms, last, sizeof(last));
		snprintf(unused, sizeof(unused), "%zu/%zu", n_unused, o->n_rule_hits);
		if (!o->hits_window_s) { /* the controller could not read them: not "unused" */
			snprintf(hits, sizeof(hits), "-");
			snprintf(last, sizeof(last), "-");
			snprintf(unused, sizeof(unused), "-");
		}
		if (cli_json_get_str(o->json, "mode", mode, sizeof(mode)))
			snprintf(mode, sizeof(mode), "?");
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
	}
	return cli_table_finish(t, l->n_objects, "no policies");
}

/* --hits: a row per rule. */
static int get_hits(struct cli *c, const Bulkhead__ObjectList *l)
{
	static const char *const head[] = {"POLICY", "RULE", "ID", "PACKETS", "FLOWS", "LAST-HIT"};
	struct cli_table *t;
	size_t rows = 0;

	if (c->format == CLI_FORMAT_JSON) {
		printf("[");
		for (size_t i = 0; i < l->n_objects; i++) {
			const Bulkhead__Object *o = l->objects[i];

			printf("%s\n  {\"policy\":", i ? "," : "");
			cli_json_str(stdout, o->name);
			printf(",\"window_s\":%u,\"rules\":[", o->hits_window_s);
			for (size_t k = 0; k < o->n_rule_hits; k++) {
				const Bulkhead__RuleHits *h = o->rule_hits[k];

				printf("%s{\"rule\":", k ? "," : "");
				cli_json_str(stdout, h->rule);
				printf(",\"rule_id\":%u,\"packets\":%" PRIu64 ",\"flows\":%" PRIu64
				       ",\"last_hit_ms\":%" PRId64 ",\"unused\":%s}",
				       h->rule_id, h->packets, h->flows, h->last_hit_ms,
				       h->last_hit_ms ? "false" : "true");
			}
			printf("]}");
		}
		printf("%s]\n", l->n_objects ? "\n" : "");
		return 0;
	}
	t = cli_table_create(6, head);
	for (size_t i = 0; t && i < l->n_objects; i++)
		for (size_t k = 0; t && k < l->objects[i]->n_rule_hits; k++, rows++) {
			const Bulkhead__RuleHits *h = l->objects[i]->rule_hits[k];
			char id[16], p[24], f[24], last[48];
			const char *row[6] = {l->objects[i]->name, h->rule, id, p, f, last};

			snprintf(id, sizeof(id), "%u", h->rule_id);
			snprintf(p, sizeof(p), "%" PRIu64, h->packets);
			snprintf(f, sizeof(f), "%" PRIu64, h->flows);
			if (h->last_hit_ms)
				cli_time(h->last_hit_ms / 1000, last, sizeof(last));
			else
				snprintf(last, sizeof(last), "unused");
			if (cli_table_add(t, row)) {
				cli_table_destroy(t);
				t = NULL;
			}
		}
	return cli_table_finish(t, rows, "no policy rules");
}

static int get_workloads(struct cli *c, const Bulkhead__ObjectList *l)
{
	static const char *const head[] = {"NAME", "NODE", "IDENTITY", "LABELS", "ADDRESSES"};
	struct cli_table *t = cli_table_create(5, head);

	for (size_t i = 0; t && i < l->n_objects; i++) {
		const Bulkhead__Object *o = l->objects[i];
		char id[16] = "";
		const char *row[5] = {o->name, o->node, id, o->labels, o->summary};

		if (o->identity)
			snprintf(id, sizeof(id), "%" PRIu32, o->identity);
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
	}
	return cli_table_finish(t, l->n_objects, "no workloads");
}

static const Bulkhead__Node *find_enrolled(const Bulkhead__NodeList *nl, const char *name)
{
	for (size_t i = 0; nl && i < nl->n_nodes; i++)
		if (strcmp(nl->nodes[i]->name, name) == 0)
			return nl->nodes[i];
	return NULL;
}

static const Bulkhead__Object *find_object(const Bulkhead__ObjectList *l, const char *name)
{
	for (size_t i = 0; i < l->n_objects; i++)
		if (strcmp(l->objects[i]->name, name) == 0)
			return l->objects[i];
	return NULL;
}

static void node_json(const char *name, const Bulkhead__Object *o, const Bulkhead__Node *n)
{
	fputs("{\"name\":", stdout);
	cli_json_str(stdout, name);
	printf(",\"spec\":%s,\"enrollment\":", o ? o->json : "null");
	if (!n) {
		fputs("null}", stdout);
		return;
	}
	printf("{\"connected\":%s,\"revoked\":%s,\"mode\":", n->connected ? "true" : "false",
	       n->revoked ? "true" : "false");
	cli_json_str(stdout, n->mode);
	fputs(",\"labels\":", stdout);
	cli_json_str(stdout, n->labels);
	fputs(",\"cert_serial\":", stdout);
	cli_json_str(stdout, n->cert_serial);
	printf(",\"cert_not_after\":%" PRId64 ",\"created\":%" PRId64, n->cert_not_after,
	       n->created);
	printf(",\"revision_wanted\":%" PRIu64 ",\"revision_sent\":%" PRIu64
	       ",\"revision_acked\":%" PRIu64 ",\"last_seen\":%" PRId64 ",\"last_error\":",
	       n->revision_wanted, n->revision_sent, n->revision_acked, n->last_seen);
	cli_json_str(stdout, n->last_error);
	fputs("}}", stdout);
}

static int node_row(struct cli_table *t, const char *name, const Bulkhead__Object *o,
		    const Bulkhead__Node *n)
{
	char exp[64] = "", want[24] = "", sent[24] = "", ack[24] = "";
	const char *row[10] = {name,
			       o ? o->labels : NULL,
			       n ? n->mode : NULL,
			       n ? (n->connected ? "yes" : "no") : NULL,
			       want,
			       sent,
			       ack,
			       exp,
			       !n	    ? "not enrolled"
			       : n->revoked ? "revoked"
			       : n->last_error[0] ? "error"
			       : n->revision_acked && n->revision_acked >= n->revision_wanted
				       ? "in sync"
				       : "enrolled",
			       n && n->last_error[0] ? n->last_error : NULL};

	if (n) {
		cli_time(n->cert_not_after, exp, sizeof(exp));
		snprintf(want, sizeof(want), "%" PRIu64, n->revision_wanted);
		snprintf(sent, sizeof(sent), "%" PRIu64, n->revision_sent);
		snprintf(ack, sizeof(ack), "%" PRIu64, n->revision_acked);
	}
	return cli_table_add(t, row);
}

/* Whether row i of l is one get_nodes shows: all of them, or the one named. */
static bool node_wanted(const char *want, const char *name)
{
	return !want || strcmp(want, name) == 0;
}

/*
 * Node objects (operator labels) joined with the enrolled nodes (ListNodes) by name; l holds
 * every Node object (name picks one here). Every enrolled node is listed too, unless a selector
 * or a past revision narrows the list to Node objects.
 */
static int get_nodes(struct cli *c, const Bulkhead__ObjectList *l, const char *name, bool narrow)
{
	static const char *const head[] = {"NAME",   "LABELS", "MODE",	      "CONNECTED",
					   "WANTED", "SENT",   "ACKED",	      "CERT-EXPIRES",
					   "STATE",  "LAST-ERROR"};
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	Bulkhead__NodeList *nl = NULL;
	struct cli_table *t = NULL;
	size_t rows = 0;
	int rc = 1;

	if (cli_call(c, &bulkhead__operator__descriptor, "ListNodes", &e.base,
		     (ProtobufCMessage **)&nl))
		return 1;
	for (size_t i = 0; i < l->n_objects; i++)
		rows += node_wanted(name, l->objects[i]->name);
	for (size_t i = 0; !narrow && i < nl->n_nodes; i++)
		rows += node_wanted(name, nl->nodes[i]->name) &&
			!find_object(l, nl->nodes[i]->name);
	if (name && !rows) {
		fprintf(stderr,
			"bulkhead get: node %s: no Node object%s and no enrolled node of "
			"that name\n",
			name, narrow ? " matches" : "");
		goto out;
	}
	if (c->format == CLI_FORMAT_YAML) {
		size_t k = 0;

		for (size_t i = 0; i < l->n_objects; i++) {
			if (!node_wanted(name, l->objects[i]->name))
				continue;
			if (k++)
				printf("---\n");
			cli_print_text(l->objects[i]->yaml);
		}
		rc = 0;
		goto out;
	}
	if (c->format == CLI_FORMAT_JSON) {
		size_t k = 0;

		printf("[");
		for (size_t i = 0; i < l->n_objects; i++) {
			if (!node_wanted(name, l->objects[i]->name))
				continue;
			printf("%s\n  ", k++ ? "," : "");
			node_json(l->objects[i]->name, l->objects[i],
				  find_enrolled(nl, l->objects[i]->name));
		}
		for (size_t i = 0; !narrow && i < nl->n_nodes; i++) {
			const Bulkhead__Node *n = nl->nodes[i];

			if (find_object(l, n->name) || !node_wanted(name, n->name))
				continue;
			printf("%s\n  ", k++ ? "," : "");
			node_json(n->name, NULL, n);
		}
		printf("%s]\n", k ? "\n" : "");
		rc = 0;
		goto out;
	}
	t = cli_table_create(BH_ARRAY_SIZE(head), head);
	for (size_t i = 0; t && i < l->n_objects; i++) {
		if (node_wanted(name, l->objects[i]->name) &&
		    node_row(t, l->objects[i]->name, l->objects[i],
			     find_enrolled(nl, l->objects[i]->name)))
			goto nomem;
	}
	for (size_t i = 0; t && !narrow && i < nl->n_nodes; i++) {
		const Bulkhead__Node *n = nl->nodes[i];

		if (find_object(l, n->name) || !node_wanted(name, n->name))
			continue;
		if (node_row(t, n->name, NULL, n))
			goto nomem;
	}
	rc = cli_table_finish(t, rows, "no nodes");
	t = NULL;
	goto out;
nomem:
	fprintf(stderr, "bulkhead get: out of memory\n");
out:
	cli_table_destroy(t);
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	return rc;
}

static int get_objects(struct cli *c, const char *kind, const char *name, const char *selector,
		       uint64_t revision, bool hits)
{
	Bulkhead__ObjectList *l = NULL;
	bool nodes = strcmp(kind, "Node") == 0;
	int rc;

	if (cli_connect(c))
		return 1;
	/*
	 * A node may be enrolled without a Node object: ask for all of them and pick the name
	 * here, so that "no such Node object" is not an error when the node is enrolled.
	 */
	if (call_get(c, kind, nodes ? NULL : name, selector, revision, &l))
		return 1;
	if (nodes)
		rc = get_nodes(c, l, name, (selector && *selector) || revision);
	else if (hits)
		rc = get_hits(c, l);
	else if (c->format != CLI_FORMAT_TABLE) {
		print_objects(c, l);
		rc = 0;
	} else if (!strcmp(kind, "Policy"))
		rc = get_policies(c, l);
	else
		rc = get_workloads(c, l);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return rc;
}

/* ---- identities ------------------------------------------------------------------------------ */

static int get_identities(struct cli *c, const char *id_text)
{
	static const char *const head[] = {"ID", "LABELS", "WORKLOADS", "STATE"};
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	Bulkhead__IdentityList *l = NULL;
	struct cli_table *t = NULL;
	uint64_t want = 0;
	size_t rows = 0;
	int rc;

	if (id_text && (bh_parse_u64(id_text, UINT32_MAX, &want) || want == 0)) {
		fprintf(stderr, "bulkhead get identities: \"%s\": want an identity number\n",
			id_text);
		return 2;
	}
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "ListIdentities",
				       &e.base, (ProtobufCMessage **)&l))
		return 1;
	if (c->format == CLI_FORMAT_JSON) {
		printf("[");
		for (size_t i = 0; i < l->n_identities; i++) {
			const Bulkhead__Identity *d = l->identities[i];

			if (want && d->id != want)
				continue;
			printf("%s\n  {\"id\":%" PRIu32 ",\"labels\":", rows++ ? "," : "", d->id);
			cli_json_str(stdout, d->labels);
			printf(",\"workloads\":%" PRIu32 ",\"unused_since\":%" PRId64 "}",
			       d->workloads, d->unused_since);
		}
		printf("%s]\n", rows ? "\n" : "");
		rc = 0;
		goto out;
	}
	t = cli_table_create(4, head);
	for (size_t i = 0; t && i < l->n_identities; i++) {
		const Bulkhead__Identity *d = l->identities[i];
		char id[16], n[16], state[64] = "in use", when[48];
		const char *row[4] = {id, d->labels, n, state};

		if (want && d->id != want)
			continue;
		snprintf(id, sizeof(id), "%" PRIu32, d->id);
		snprintf(n, sizeof(n), "%" PRIu32, d->workloads);
		if (d->unused_since)
			snprintf(state, sizeof(state), "unused since %s",
				 cli_time(d->unused_since, when, sizeof(when)));
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
		rows++;
	}
	if (want && !rows && t) {
		fprintf(stderr, "bulkhead get identities: no identity %" PRIu64 "\n", want);
		cli_table_destroy(t);
		rc = 1;
		goto out;
	}
	rc = cli_table_finish(t, rows, "no identities");
out:
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return rc;
}

/* ---- the command ----------------------------------------------------------------------------- */

enum { OPT_REVISION = 256, OPT_LIMIT, OPT_HITS };

int cmd_get(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"selector", required_argument, NULL, 'l'},
		{"output", required_argument, NULL, 'o'},
		{"revision", required_argument, NULL, OPT_REVISION},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"hits", no_argument, NULL, OPT_HITS},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *selector = NULL, *output = NULL, *kind = NULL, *name = NULL;
	uint64_t revision = 0, limit = 0;
	bool has_limit = false, hits = false;
	int opt, w;

	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "l:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			selector = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case OPT_REVISION:
			if (bh_parse_u64(optarg, UINT64_MAX, &revision) || revision == 0) {
				fprintf(stderr,
					"bulkhead get: --revision \"%s\": want a revision "
					"number (see 'bulkhead revisions')\n",
					optarg);
				return 2;
			}
			break;
		case OPT_LIMIT:
			if (bh_parse_u64(optarg, 1000000, &limit) || limit == 0) {
				fprintf(stderr,
					"bulkhead get: --limit \"%s\": want a number from 1 "
					"to 1000000\n",
					optarg);
				return 2;
			}
			has_limit = true;
			break;
		case OPT_HITS:
			hits = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead get --help'.\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "bulkhead get: get what? policies, workloads, nodes, identities, "
				"revisions or ruleset\nTry 'bulkhead get --help'.\n");
		return 2;
	}
	w = what_parse(argv[optind], &kind);
	if (w < 0) {
		fprintf(stderr,
			"bulkhead get: unknown kind \"%s\": want policies, workloads, nodes, "
			"identities, revisions or ruleset\n",
			argv[optind]);
		return 2;
	}
	if (argc - optind > 2) {
		fprintf(stderr, "bulkhead get: unexpected \"%s\" (one NAME at most)\n",
			argv[optind + 2]);
		return 2;
	}
	name = argc - optind == 2 ? argv[optind + 1] : NULL;
	if (w == W_RULESET && !name) {
		fprintf(stderr, "bulkhead get ruleset: which node? give NODE\n");
		return 2;
	}
	if (w == W_REVISIONS && name) {
		fprintf(stderr, "bulkhead get revisions: unexpected \"%s\" (see --limit)\n", name);
		return 2;
	}
	if (selector && w != W_OBJECTS) {
		fprintf(stderr, "bulkhead get: -l selects workloads and nodes, not %s\n",
			argv[optind]);
		return 2;
	}
	if (selector && !strcmp(kind, "Policy")) {
		fprintf(stderr, "bulkhead get policies: -l: policies carry no labels (-l selects "
				"workloads and nodes)\n");
		return 2;
	}
	if (revision && w != W_OBJECTS) {
		fprintf(stderr,
			"bulkhead get: --revision applies to policies, workloads and "
			"nodes, not %s\n",
			argv[optind]);
		return 2;
	}
	if (has_limit && w != W_REVISIONS) {
		fprintf(stderr, "bulkhead get: --limit applies to revisions, not %s\n",
			argv[optind]);
		return 2;
	}
	if (hits && (w != W_OBJECTS || strcmp(kind, "Policy") || revision)) {
		fprintf(stderr, "bulkhead get: --hits applies to policies, at the current revision\n");
		return 2;
	}
	if (output && cli_format_set(c, "get", output,
				     w == W_OBJECTS && !hits ? CLI_FMTS_ALL : CLI_FMTS_TJ))
		return 2;
	if (c->format == CLI_FORMAT_YAML && w != W_OBJECTS)
		return cli_format_set(c, "get", "yaml", CLI_FMTS_TJ);
	switch (w) {
	case W_IDENTITIES:
		return get_identities(c, name);
	case W_REVISIONS:
		return cli_revisions_print(c, has_limit ? (uint32_t)limit : 20);
	case W_RULESET:
		return cli_ruleset_print(c, name);
	default:
		return get_objects(c, kind, name, selector, revision, hits);
	}
}
