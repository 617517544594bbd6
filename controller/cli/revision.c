// SPDX-License-Identifier: Apache-2.0
/* bulkhead revisions | rollback: the history of the policy state. */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "bulkhead/util.h"
#include "cli.h"

static const char revisions_usage[] =
	"usage: bulkhead revisions [--limit N] [-o table|json]\n"
	"\n"
	"Lists the newest revisions of the policy state, newest first: every accepted apply,\n"
	"delete or rollback made one. Columns: REVISION (the current one marked '(current)'),\n"
	"CREATED, AUTHOR (the caller, as the controller authenticated it), CHANGES (objects\n"
	"changed) and SUMMARY. Same as 'bulkhead get revisions'.\n"
	"\n"
	"  --limit N            the newest N (default 20; 1-1000000)\n"
	"  -o, --output FORMAT  table (default) or json (an array of {revision, created, author,\n"
	"                       changes, summary, current})\n"
	"\n"
	"examples:\n"
	"  bulkhead revisions --limit 5\n"
	"  bulkhead get policies --revision 6    # the policies as they were then\n"
	"\n"
	"exit status: 0 success, 1 failure (the message says why), 2 usage error.\n";

static const char rollback_usage[] =
	"usage: bulkhead rollback REVISION [--dry-run] [--diff] [-o table|json]\n"
	"\n"
	"Makes the policies, workloads and Node objects what they were at REVISION, as a new\n"
	"revision (history is kept: rolling back a rollback is another rollback). Objects created\n"
	"since are deleted, changed ones restored, deleted ones recreated. Prints what changes as\n"
	"'bulkhead apply' does: a line per object, then 'revision N' or 'no change'.\n"
	"\n"
	"  REVISION             a revision number from 'bulkhead revisions'\n"
	"  --dry-run            report what would change, change nothing\n"
	"  --diff               also print each affected node's rule-set change ('node NAME:',\n"
	"                       then '- RULE' removed and '+ RULE' added)\n"
	"  -o, --output FORMAT  table (default) or json\n"
	"\n"
	"examples:\n"
	"  bulkhead rollback 6 --dry-run --diff\n"
	"  bulkhead rollback 6\n"
	"\n"
	"exit status: 0 rolled back (or nothing to change), 1 refused or failed (no such "
	"revision,\n"
	"no controller: the message says why), 2 usage error.\n";

int cli_revisions_print(struct cli *c, uint32_t limit)
{
	static const char *const head[] = {"REVISION", "CREATED", "AUTHOR", "CHANGES", "SUMMARY"};
	Bulkhead__ListRequest r = BULKHEAD__LIST_REQUEST__INIT;
	Bulkhead__RevisionList *l = NULL;
	struct cli_table *t;
	int rc = 1;

	r.limit = limit;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "ListRevisions", &r.base,
				       (ProtobufCMessage **)&l))
		return 1;
	if (c->format == CLI_FORMAT_JSON) {
		printf("[");
		for (size_t i = 0; i < l->n_revisions; i++) {
			const Bulkhead__Revision *v = l->revisions[i];

			printf("%s\n  {\"revision\":%" PRIu64 ",\"created\":%" PRId64
			       ",\"author\":",
			       i ? "," : "", v->id, v->created);
			cli_json_str(stdout, v->author);
			printf(",\"changes\":%" PRIu32 ",\"summary\":", v->changes);
			cli_json_str(stdout, v->summary);
			printf(",\"current\":%s}", v->id == l->current ? "true" : "false");
		}
		printf("%s]\n", l->n_revisions ? "\n" : "");
		rc = 0;
		goto out;
	}
	t = cli_table_create(5, head);
	for (size_t i = 0; t && i < l->n_revisions; i++) {
		const Bulkhead__Revision *v = l->revisions[i];
		char id[40], when[48], n[16];
		const char *row[5] = {id, cli_time(v->created, when, sizeof(when)), v->author, n,
				      v->summary};

		snprintf(id, sizeof(id), "%" PRIu64 "%s", v->id,
			 v->id == l->current ? " (current)" : "");
		snprintf(n, sizeof(n), "%" PRIu32, v->changes);
		if (cli_table_add(t, row)) {
			cli_table_destroy(t);
			t = NULL;
		}
	}
	if (!t) {
		fprintf(stderr, "bulkhead: out of memory\n");
		goto out;
	}
	if (l->n_revisions)
		cli_table_print(t, stdout);
	else
		fprintf(stderr, "no revisions yet: nothing was applied\n");
	cli_table_destroy(t);
	rc = 0;
out:
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return rc;
}

enum { OPT_LIMIT = 256, OPT_DRY_RUN, OPT_DIFF };

int cmd_revisions(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	uint64_t limit = 20;
	int opt;

	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LIMIT:
			if (bh_parse_u64(optarg, 1000000, &limit) || limit == 0) {
				fprintf(stderr,
					"bulkhead revisions: --limit \"%s\": want a number "
					"from 1 to 1000000\n",
					optarg);
				return 2;
			}
			break;
		case 'o':
			if (cli_format_set(c, "revisions", optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(revisions_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead revisions --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bulkhead revisions: unexpected \"%s\"\n", argv[optind]);
		return 2;
	}
	return cli_revisions_print(c, (uint32_t)limit);
}

int cmd_rollback(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, OPT_DRY_RUN},
		{"diff", no_argument, NULL, OPT_DIFF},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	Bulkhead__RollbackRequest r = BULKHEAD__ROLLBACK_REQUEST__INIT;
	Bulkhead__ApplyResponse *resp = NULL;
	uint64_t rev;
	int opt, rc;

	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_DRY_RUN:
			r.dry_run = true;
			break;
		case OPT_DIFF:
			r.diff = true;
			break;
		case 'o':
			if (cli_format_set(c, "rollback", optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(rollback_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead rollback --help'.\n");
			return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "bulkhead rollback: %s\nTry 'bulkhead rollback --help'.\n",
			optind < argc ? "one REVISION only" : "to which revision? give REVISION");
		return 2;
	}
	if (bh_parse_u64(argv[optind], UINT64_MAX, &rev) || rev == 0) {
		fprintf(stderr,
			"bulkhead rollback: \"%s\": want a revision number (see 'bulkhead "
			"revisions')\n",
			argv[optind]);
		return 2;
	}
	r.revision = rev;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "Rollback", &r.base,
				       (ProtobufCMessage **)&resp))
		return 1;
	rc = cli_print_apply(c, resp, r.dry_run, r.diff);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return rc;
}
