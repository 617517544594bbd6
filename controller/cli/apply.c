// SPDX-License-Identifier: Apache-2.0
/* bulkhead apply | delete | diff: policy and inventory files to the controller. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bulkhead/token.h"
#include "bulkhead/util.h"
#include "cli.h"

#define FILE_MAX (16u << 20) /* one file, as the controller's loader takes it */

static const char apply_usage[] =
	"usage: bulkhead apply -f FILE|DIR|- [-f ...] [--dry-run] [--diff] [--wait[=DURATION]]\n"
	"                      [-o table|json]\n"
	"\n"
	"Creates or updates the policies, workloads and nodes that the files declare, all at "
	"once:\n"
	"every accepted change makes one new revision of the policy state, which the controller\n"
	"compiles and rolls out to the nodes it affects. The files are YAML (or JSON), several\n"
	"documents each, separated by '---'; the controller reads them, so an error names the "
	"file,\n"
	"line and column, and nothing is applied. Objects the files do not mention are left alone\n"
	"(see 'bulkhead delete').\n"
	"\n"
	"Prints one line per object (created, configured or unchanged), then the new revision\n"
	"('revision 7') or 'no change'.\n"
	"\n"
	"  -f, --filename PATH  a file; a directory (its *.yaml, *.yml and *.json files, in name\n"
	"                       order, not recursive, dot files skipped); or - for standard "
	"input.\n"
	"                       Repeatable. A file may be at most 16 MiB.\n"
	"  --dry-run            check and compile, report what would change, change nothing\n"
	"  --wait[=DURATION]    return once every node whose rule set changed has acknowledged\n"
	"                       the new revision (default 60s); past DURATION, name the nodes\n"
	"                       that have not and exit 1\n"
	"  --diff               also print each affected node's rule-set change: 'node NAME:'\n"
	"                       then '- RULE' (removed) and '+ RULE' (added) lines\n"
	"  -o, --output FORMAT  table (default: the lines above) or json (one object: revision,\n"
	"                       changes, nodes_affected, nodes)\n"
	"\n"
	"examples:\n"
	"  bulkhead apply -f three-tier.yaml\n"
	"  bulkhead apply -f policies/ -f inventory.yaml --diff\n"
	"  generate-policy | bulkhead apply -f - --dry-run\n"
	"\n"
	"exit status: 0 applied (or nothing to change), 1 refused or failed (the controller's\n"
	"message on stderr says why), 2 usage error.\n";

static const char delete_usage[] =
	"usage: bulkhead delete -f FILE|DIR|- [-f ...] [--dry-run] [--diff] [-o table|json]\n"
	"       bulkhead delete KIND NAME [NAME...] [--dry-run] [--diff] [-o table|json]\n"
	"       bulkhead delete KIND/NAME [KIND/NAME...] [options]\n"
	"\n"
	"Deletes policies, workloads or nodes' operator labels, all in one new revision: either "
	"the\n"
	"objects the files declare (their content otherwise ignored), or the objects named. An\n"
	"object that does not exist makes the whole request fail, and nothing is deleted.\n"
	"Deleting a Node object removes the labels the operator gave it; it does not revoke its\n"
	"certificate (see 'bulkhead node revoke').\n"
	"\n"
	"  KIND                 policy (policies, po, pol), workload (workloads, wl) or node\n"
	"                       (nodes, no); any case\n"
	"  -f, --filename PATH  as for apply: a file, a directory of *.yaml, *.yml, *.json, or -\n"
	"  --dry-run            report what would be deleted and change nothing\n"
	"  --diff               also print each affected node's rule-set change\n"
	"  -o, --output FORMAT  table (default) or json\n"
	"\n"
	"examples:\n"
	"  bulkhead delete policy api-from-web\n"
	"  bulkhead delete workloads db-1 db-2 --dry-run --diff\n"
	"  bulkhead delete -f three-tier.yaml\n"
	"\n"
	"exit status: 0 deleted, 1 refused or failed (the controller's message says why), 2 "
	"usage.\n";

static const char diff_usage[] =
	"usage: bulkhead diff -f FILE|DIR|- [-f ...] [-o table|json]\n"
	"\n"
	"Shows what 'bulkhead apply' with the same files would change, changing nothing: the\n"
	"objects that would be created or configured, then each affected node's rule set as\n"
	"'node NAME:' followed by '- RULE' (would be removed) and '+ RULE' (would be added).\n"
	"\n"
	"  -f, --filename PATH  as for apply: a file, a directory of *.yaml, *.yml, *.json, or -\n"
	"  -o, --output FORMAT  table (default) or json\n"
	"\n"
	"examples:\n"
	"  bulkhead diff -f three-tier.yaml\n"
	"  bulkhead diff -f policies/ && echo 'nothing to apply'\n"
	"\n"
	"exit status (as diff(1)): 0 no differences, 1 differences, 2 trouble (a usage error, a\n"
	"file the controller refuses, or no controller to ask).\n";

/* ---- reading the files ----------------------------------------------------------------------- */

struct sources {
	const char *cmd;
	Bulkhead__SourceFile *v;
	size_t n, cap;
};

static void sources_free(struct sources *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].text.data);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Reads path (named name in messages) into a new SourceFile. 0, or 1 after saying why. */
static int sources_read(struct sources *s, const char *path, const char *name)
{
	Bulkhead__SourceFile *f;
	char *text = NULL;
	size_t len;
	int rc;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		Bulkhead__SourceFile *nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv)
			goto nomem;
		s->v = nv;
		s->cap = cap;
	}
	/* one byte more than the limit, so that a file of exactly 16 MiB is read */
	rc = bh_read_file(path, FILE_MAX + 1, &text, &len);
	if (rc == -EFBIG || (!rc && len > FILE_MAX)) {
		fprintf(stderr,
			"bulkhead %s: %s: larger than 16 MiB, the most one file may be; "
			"split it into several files\n",
			s->cmd, name);
		free(text);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "bulkhead %s: %s: %s\n", s->cmd, name, strerror(-rc));
		return 1;
	}
	f = &s->v[s->n];
	bulkhead__source_file__init(f);
	f->name = strdup(name);
	if (!f->name) {
		free(text);
		goto nomem;
	}
	f->text.data = (uint8_t *)text;
	f->text.len = len;
	s->n++;
	return 0;
nomem:
	fprintf(stderr, "bulkhead %s: out of memory\n", s->cmd);
	return 1;
}

/* scandir() filter: *.yaml, *.yml, *.json, as a shell glob would (no dot files). */
static int policy_file_name(const struct dirent *d)
{
	static const char *const exts[] = {".yaml", ".yml", ".json"};
	size_t n = strlen(d->d_name);

	if (d->d_name[0] == '.')
		return 0;
	for (size_t i = 0; i < BH_ARRAY_SIZE(exts); i++) {
		size_t k = strlen(exts[i]);

		if (n > k && strcmp(d->d_name + n - k, exts[i]) == 0)
			return 1;
	}
	return 0;
}

static int sources_dir(struct sources *s, const char *dir)
{
	struct dirent **names = NULL;
	size_t found = 0;
	int n, rc = 0;

	/* alphasort compares with strcoll; the CLI never sets a locale, so this is byte order */
	n = scandir(dir, &names, policy_file_name, alphasort);
	if (n < 0) {
		fprintf(stderr, "bulkhead %s: %s: %s\n", s->cmd, dir, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		size_t dl = strlen(dir);
		char *path = NULL;
		struct stat st;

		if (!rc && asprintf(&path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/",
				    names[i]->d_name) < 0) {
			fprintf(stderr, "bulkhead %s: out of memory\n", s->cmd);
			path = NULL;
			rc = 1;
		}
		/* not recursive: a directory named x.yaml is skipped */
		if (!rc && stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
			rc = sources_read(s, path, path);
			found++;
		}
		free(path);
		free(names[i]);
	}
	free(names);
	if (!rc && !found) {
		fprintf(stderr, "bulkhead %s: %s: no *.yaml, *.yml or *.json file in it\n", s->cmd,
			dir);
		rc = 1;
	}
	return rc;
}

/* One -f argument: "-", a directory or a file. 0, or 1 after saying why. */
static int sources_add(struct sources *s, const char *arg)
{
	struct stat st;

	if (strcmp(arg, "-") == 0)
		return sources_read(s, "-", "<stdin>");
	if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
		return sources_dir(s, arg);
	return sources_read(s, arg, arg);
}

/* The request body must inflate within what the controller takes in one call. */
static int check_size(const char *cmd, size_t packed)
{
	if (packed <= BH_RPC_MAX_MSG_DEFAULT)
		return 0;
	fprintf(stderr,
		"bulkhead %s: the files make a request of %zu bytes, more than the %u MiB "
		"one call may carry; give fewer files at a time\n",
		cmd, packed, BH_RPC_MAX_MSG_DEFAULT >> 20);
	return 1;
}

/* ---- printing the answer --------------------------------------------------------------------- */

static void print_lower(FILE *f, const char *s)
{
	for (; s && *s; s++)
		fputc(tolower((unsigned char)*s), f);
}

static void json_strv(FILE *f, char **v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		cli_json_str(f, v[i]);
	}
	fputc(']', f);
}

static void print_apply_json(const Bulkhead__ApplyResponse *r, bool dry_run)
{
	printf("{\"revision\":%" PRIu64 ",\"dry_run\":%s,\"changes\":[", r->revision,
	       dry_run ? "true" : "false");
	for (size_t i = 0; i < r->n_changes; i++) {
		const Bulkhead__ObjectChange *ch = r->changes[i];

		printf("%s{\"kind\":", i ? "," : "");
		cli_json_str(stdout, ch->kind);
		fputs(",\"name\":", stdout);
		cli_json_str(stdout, ch->name);
		fputs(",\"action\":", stdout);
		cli_json_str(stdout, ch->action);
		putchar('}');
	}
	fputs("],\"nodes_affected\":", stdout);
	json_strv(stdout, r->nodes_affected, r->n_nodes_affected);
	fputs(",\"nodes\":[", stdout);
	for (size_t i = 0; i < r->n_nodes; i++) {
		const Bulkhead__NodeDiff *d = r->nodes[i];

		printf("%s{\"node\":", i ? "," : "");
		cli_json_str(stdout, d->node);
		fputs(",\"added\":", stdout);
		json_strv(stdout, d->added, d->n_added);
		fputs(",\"removed\":", stdout);
		json_strv(stdout, d->removed, d->n_removed);
		putchar('}');
	}
	fputs("]}\n", stdout);
}

/* The rule-set lines of each node that has any: "node NAME:", then "- ..." and "+ ...". */
static void print_node_diffs(const Bulkhead__ApplyResponse *r)
{
	for (size_t i = 0; i < r->n_nodes; i++) {
		const Bulkhead__NodeDiff *d = r->nodes[i];

		if (!d->n_added && !d->n_removed)
			continue;
		printf("node %s:\n", d->node);
		for (size_t k = 0; k < d->n_removed; k++)
			printf("- %s\n", d->removed[k]);
		for (size_t k = 0; k < d->n_added; k++)
			printf("+ %s\n", d->added[k]);
	}
}

static void print_change(const Bulkhead__ObjectChange *ch, bool dry_run)
{
	print_lower(stdout, ch->kind);
	printf("/%s %s%s\n", ch->name, ch->action, dry_run ? " (dry run)" : "");
}

int cli_print_apply(struct cli *c, const Bulkhead__ApplyResponse *r, bool dry_run, bool diff)
{
	bool changed = false;

	if (c->format == CLI_FORMAT_JSON) {
		print_apply_json(r, dry_run);
		return 0;
	}
	for (size_t i = 0; i < r->n_changes; i++) {
		print_change(r->changes[i], dry_run);
		changed |= strcmp(r->changes[i]->action, "unchanged") != 0;
	}
	if (r->revision)
		printf("revision %" PRIu64 "\n", r->revision);
	else if (dry_run && changed)
		printf("dry run: nothing was changed\n");
	else
		printf("no change\n");
	if (diff || dry_run)
		print_node_diffs(r);
	if (r->n_nodes_pending) {
		fprintf(stderr, "not acknowledged in time by %zu of %zu node%s:", r->n_nodes_pending,
			r->n_nodes_affected, r->n_nodes_affected == 1 ? "" : "s");
		for (size_t i = 0; i < r->n_nodes_pending; i++)
			fprintf(stderr, " %s", r->nodes_pending[i]);
		fprintf(stderr, " (see 'bulkhead get nodes')\n");
		return 1;
	}
	return 0;
}

/* ---- the commands ---------------------------------------------------------------------------- */

enum { OPT_DRY_RUN = 256, OPT_DIFF, OPT_WAIT };

struct change_opts {
	struct sources src;
	const char **paths; /* the -f arguments, read by change_load() */
	size_t npaths;
	Bulkhead__SourceFile **files; /* src.v, as the request's repeated field */
	bool dry_run, diff;
	uint32_t wait_ms; /* --wait: 0 none */
	int nargs; /* operands left in argv after the options */
	char **args;
};

/*
 * Options common to apply, delete and diff (diff implies --dry-run and --diff, and takes them
 * too). Returns -1 to go on, or the exit status (help printed: 0; usage error: 2; 1 for out of
 * memory). Reads no file yet, so that every usage error is found first.
 */
static int change_parse(struct cli *c, const char *cmd, int argc, char **argv, const char *usage,
			struct change_opts *o)
{
	static const struct option opts[] = {
		{"filename", required_argument, NULL, 'f'},
		{"dry-run", no_argument, NULL, OPT_DRY_RUN},
		{"diff", no_argument, NULL, OPT_DIFF},
		{"wait", optional_argument, NULL, OPT_WAIT},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool stdin_given = false;
	int opt;

	o->src.cmd = cmd;
	o->paths = calloc((size_t)argc + 1, sizeof(*o->paths));
	if (!o->paths) {
		fprintf(stderr, "bulkhead %s: out of memory\n", cmd);
		return 1;
	}
	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (strcmp(optarg, "-") == 0) {
				if (stdin_given) {
					fprintf(stderr,
						"bulkhead %s: -f - given twice (standard input "
						"is read once)\n",
						cmd);
					return 2;
				}
				stdin_given = true;
			}
			o->paths[o->npaths++] = optarg;
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_DIFF:
			o->diff = true;
			break;
		case OPT_WAIT: {
			unsigned long s = 60;

			if (optarg && (bh_parse_duration(optarg, &s) || s == 0 || s > 3600)) {
				fprintf(stderr, "bulkhead %s: --wait=\"%s\": want a duration such as "
						"30s or 2m (at most 1h)\n",
					cmd, optarg);
				return 2;
			}
			o->wait_ms = (uint32_t)(s * 1000);
			break;
		}
		case 'o':
			if (cli_format_set(c, cmd, optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead %s --help'.\n", cmd);
			return 2;
		}
	}
	o->nargs = argc - optind;
	o->args = argv + optind;
	return -1;
}

/* Reads the -f files. 0, or 1 after saying why. */
static int change_load(struct change_opts *o)
{
	for (size_t i = 0; i < o->npaths; i++)
		if (sources_add(&o->src, o->paths[i]))
			return 1;
	o->files = calloc(o->src.n + 1, sizeof(*o->files));
	if (!o->files) {
		fprintf(stderr, "bulkhead %s: out of memory\n", o->src.cmd);
		return 1;
	}
	for (size_t i = 0; i < o->src.n; i++)
		o->files[i] = &o->src.v[i];
	return 0;
}

static void change_free(struct change_opts *o)
{
	free(o->files);
	free(o->paths);
	sources_free(&o->src);
}

int cmd_apply(struct cli *c, int argc, char **argv)
{
	struct change_opts o = {0};
	Bulkhead__ApplyRequest req = BULKHEAD__APPLY_REQUEST__INIT;
	Bulkhead__ApplyResponse *resp = NULL;
	int rc = change_parse(c, "apply", argc, argv, apply_usage, &o);

	if (rc >= 0)
		goto out;
	rc = 2;
	if (o.nargs) {
		fprintf(stderr, "bulkhead apply: unexpected \"%s\" (files go after -f)\n",
			o.args[0]);
		goto out;
	}
	if (!o.npaths) {
		fprintf(stderr, "bulkhead apply: no files: give -f FILE, -f DIR or -f -\n");
		goto out;
	}
	rc = 1;
	if (change_load(&o))
		goto out;
	req.n_files = o.src.n;
	req.files = o.files;
	req.dry_run = o.dry_run;
	req.diff = o.diff;
	req.wait_ms = o.wait_ms;
	if (o.wait_ms && (!c->timeout_ms || c->timeout_ms < o.wait_ms + 5000))
		c->timeout_ms = o.wait_ms + 5000; /* the answer comes after the wait */
	if (check_size("apply", bulkhead__apply_request__get_packed_size(&req)) || cli_connect(c) ||
	    cli_call(c, &bulkhead__operator__descriptor, "Apply", &req.base,
		     (ProtobufCMessage **)&resp))
		goto out;
	rc = cli_print_apply(c, resp, o.dry_run, o.diff);
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	change_free(&o);
	return rc;
}

int cmd_diff(struct cli *c, int argc, char **argv)
{
	struct change_opts o = {0};
	Bulkhead__ApplyRequest req = BULKHEAD__APPLY_REQUEST__INIT;
	Bulkhead__ApplyResponse *resp = NULL;
	bool differ = false;
	int rc = change_parse(c, "diff", argc, argv, diff_usage, &o);

	/* diff(1)'s convention: any trouble is 2, since 1 means "differences" */
	if (rc >= 0) {
		rc = rc ? 2 : 0;
		goto out;
	}
	rc = 2;
	if (o.nargs) {
		fprintf(stderr, "bulkhead diff: unexpected \"%s\" (files go after -f)\n",
			o.args[0]);
		goto out;
	}
	if (!o.npaths) {
		fprintf(stderr, "bulkhead diff: no files: give -f FILE, -f DIR or -f -\n");
		goto out;
	}
	if (change_load(&o))
		goto out;
	req.n_files = o.src.n;
	req.files = o.files;
	req.dry_run = true;
	req.diff = true;
	if (check_size("diff", bulkhead__apply_request__get_packed_size(&req)) || cli_connect(c) ||
	    cli_call(c, &bulkhead__operator__descriptor, "Apply", &req.base,
		     (ProtobufCMessage **)&resp))
		goto out;
	for (size_t i = 0; i < resp->n_changes; i++)
		differ |= strcmp(resp->changes[i]->action, "unchanged") != 0;
	for (size_t i = 0; i < resp->n_nodes; i++)
		differ |= resp->nodes[i]->n_added || resp->nodes[i]->n_removed;
	if (c->format == CLI_FORMAT_JSON) {
		print_apply_json(resp, true);
	} else {
		for (size_t i = 0; i < resp->n_changes; i++)
			if (strcmp(resp->changes[i]->action, "unchanged"))
				print_change(resp->changes[i], false);
		print_node_diffs(resp);
	}
	rc = differ ? 1 : 0;
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	change_free(&o);
	return rc;
}

/*
 * The operands of delete: KIND NAME..., or KIND/NAME... Fills refs (nargs entries at most) and
 * *n. 0, or 2 after saying what is wrong.
 */
static int delete_refs(int nargs, char **args, Bulkhead__ObjectRef *refs, size_t *n)
{
	const char *kind = NULL;

	*n = 0;
	for (int i = 0; i < nargs; i++) {
		char *arg = args[i], *slash = strchr(arg, '/');

		if (i == 0 && !slash) {
			kind = cli_kind_parse(arg);
			if (!kind) {
				fprintf(stderr,
					"bulkhead delete: unknown kind \"%s\": want policy, "
					"workload or node\n",
					arg);
				return 2;
			}
			continue;
		}
		bulkhead__object_ref__init(&refs[*n]);
		if (!kind && slash) {
			const char *k;

			*slash = '\0';
			k = cli_kind_parse(arg);
			*slash = '/';
			if (!k || !slash[1]) {
				fprintf(stderr,
					"bulkhead delete: \"%s\": want KIND/NAME, KIND one of "
					"policy, workload, node\n",
					arg);
				return 2;
			}
			refs[*n].kind = (char *)k;
			refs[*n].name = slash + 1;
		} else {
			if (!kind || !arg[0]) {
				fprintf(stderr,
					"bulkhead delete: \"%s\": give KIND NAME... or "
					"KIND/NAME..., not both\n",
					arg);
				return 2;
			}
			refs[*n].kind = (char *)kind;
			refs[*n].name = arg;
		}
		(*n)++;
	}
	if (kind && !*n) {
		fprintf(stderr, "bulkhead delete: %s: which? give one NAME or more\n", args[0]);
		return 2;
	}
	return 0;
}

int cmd_delete(struct cli *c, int argc, char **argv)
{
	struct change_opts o = {0};
	Bulkhead__DeleteRequest req = BULKHEAD__DELETE_REQUEST__INIT;
	Bulkhead__ApplyResponse *resp = NULL;
	Bulkhead__ObjectRef *refs = NULL, **refp = NULL;
	size_t nrefs = 0;
	int rc = change_parse(c, "delete", argc, argv, delete_usage, &o);

	if (rc >= 0)
		goto out;
	rc = 2;
	if (!o.npaths && !o.nargs) {
		fprintf(stderr, "bulkhead delete: what? give -f FILE, or KIND NAME...\n"
				"Try 'bulkhead delete --help'.\n");
		goto out;
	}
	refs = calloc((size_t)o.nargs + 1, sizeof(*refs));
	refp = calloc((size_t)o.nargs + 1, sizeof(*refp));
	if (!refs || !refp) {
		fprintf(stderr, "bulkhead delete: out of memory\n");
		rc = 1;
		goto out;
	}
	if (delete_refs(o.nargs, o.args, refs, &nrefs))
		goto out;
	for (size_t i = 0; i < nrefs; i++)
		refp[i] = &refs[i];
	rc = 1;
	if (change_load(&o))
		goto out;
	req.n_files = o.src.n;
	req.files = o.files;
	req.n_objects = nrefs;
	req.objects = refp;
	req.dry_run = o.dry_run;
	req.diff = o.diff;
	req.wait_ms = o.wait_ms;
	if (o.wait_ms && (!c->timeout_ms || c->timeout_ms < o.wait_ms + 5000))
		c->timeout_ms = o.wait_ms + 5000;
	if (check_size("delete", bulkhead__delete_request__get_packed_size(&req)) ||
	    cli_connect(c) ||
	    cli_call(c, &bulkhead__operator__descriptor, "Delete", &req.base,
		     (ProtobufCMessage **)&resp))
		goto out;
	rc = cli_print_apply(c, resp, o.dry_run, o.diff);
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	free(refs);
	free(refp);
	change_free(&o);
	return rc;
}
