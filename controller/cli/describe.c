// SPDX-License-Identifier: Apache-2.0
/* bulkhead describe workload NAME */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char usage[] =
	"usage: bulkhead describe workload|wl NAME [-o text|json]\n"
	"\n"
	"Shows one workload as the controller sees it now: where it runs (node, interface,\n"
	"addresses), its labels and the numeric identity they got, its enforcement mode, the\n"
	"policies that select it, and for each direction the default verdict (with what decides\n"
	"it) and the compiled rules that protect it, one per line.\n"
	"\n"
	"  -o, --output FORMAT  text (default) or json (one object with the same fields)\n"
	"\n"
	"examples:\n"
	"  bulkhead describe workload db-1\n"
	"  bulkhead describe wl db-1 -o json\n"
	"\n"
	"exit status: 0 success, 1 failure (no such workload, no controller: the message says\n"
	"why), 2 usage error.\n";

#define LABEL_W 14 /* "Interface:" and the rest, padded to one column */

/* "Key:" padded, then the first of values; the others below it, one per line. */
static void field_list(const char *key, char *const *v, size_t n)
{
	printf("%s:%*s%s\n", key, (int)(LABEL_W - strlen(key) - 1), "", n ? v[0] : "<none>");
	for (size_t i = 1; i < n; i++)
		printf("%*s%s\n", LABEL_W, "", v[i]);
}

static void field(const char *key, const char *value)
{
	char *v = (char *)(value && *value ? value : "<none>");

	field_list(key, &v, 1);
}

/* "k=v,k2=v2": one label per line, as kubectl describe prints them. */
static void field_labels(const char *labels)
{
	const char *s = labels ? labels : "";
	bool first = true;

	if (!*s) {
		field("Labels", NULL);
		return;
	}
	while (*s) {
		size_t n = strcspn(s, ",");

		if (first)
			printf("Labels:%*s%.*s\n", LABEL_W - 7, "", (int)n, s);
		else
			printf("%*s%.*s\n", LABEL_W, "", (int)n, s);
		first = false;
		s += n;
		if (*s == ',')
			s++;
	}
}

static void direction(const char *name, const char *def, char *const *rules, size_t n)
{
	printf("%s:\n  Default:%*s%s\n  Rules:", name, LABEL_W - 10, "", def && *def ? def : "?");
	if (!n) {
		printf("%*s<none>\n", LABEL_W - 8, "");
		return;
	}
	putchar('\n');
	for (size_t i = 0; i < n; i++)
		printf("    %s\n", rules[i]);
}

static void json_strv(char *const *v, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			putchar(',');
		cli_json_str(stdout, v[i]);
	}
	putchar(']');
}

static void print_json(const Bulkhead__WorkloadDescription *d)
{
	fputs("{\"name\":", stdout);
	cli_json_str(stdout, d->name);
	fputs(",\"node\":", stdout);
	cli_json_str(stdout, d->node);
	fputs(",\"interface\":", stdout);
	cli_json_str(stdout, d->interface);
	fputs(",\"addresses\":", stdout);
	json_strv(d->addresses, d->n_addresses);
	fputs(",\"labels\":", stdout);
	cli_json_str(stdout, d->labels);
	printf(",\"identity\":%" PRIu32 ",\"mode\":", d->identity);
	cli_json_str(stdout, d->mode);
	fputs(",\"policies\":", stdout);
	json_strv(d->policies, d->n_policies);
	fputs(",\"ingress\":{\"default\":", stdout);
	cli_json_str(stdout, d->ingress_default);
	fputs(",\"rules\":", stdout);
	json_strv(d->ingress, d->n_ingress);
	fputs("},\"egress\":{\"default\":", stdout);
	cli_json_str(stdout, d->egress_default);
	fputs(",\"rules\":", stdout);
	json_strv(d->egress, d->n_egress);
	fputs("}}\n", stdout);
}

static void print_text(const Bulkhead__WorkloadDescription *d)
{
	char id[16] = "";

	if (d->identity)
		snprintf(id, sizeof(id), "%" PRIu32, d->identity);
	field("Name", d->name);
	field("Node", d->node);
	field("Interface", d->interface);
	field_list("Addresses", d->addresses, d->n_addresses);
	field_labels(d->labels);
	field("Identity", id);
	field("Mode", d->mode);
	field_list("Policies", d->policies, d->n_policies);
	direction("Ingress", d->ingress_default, d->ingress, d->n_ingress);
	direction("Egress", d->egress_default, d->egress, d->n_egress);
}

int cmd_describe(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
	Bulkhead__WorkloadDescription *d = NULL;
	const char *kind, *name;
	int opt;

	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (cli_format_set(c, "describe", optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead describe --help'.\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "bulkhead describe: describe what? give workload NAME\n"
				"Try 'bulkhead describe --help'.\n");
		return 2;
	}
	kind = argv[optind];
	/* workload/NAME, as kubectl takes it */
	if (argc - optind == 1 && strchr(kind, '/')) {
		name = strchr(kind, '/') + 1;
		if (strncasecmp(kind, "workload/", 9) && strncasecmp(kind, "wl/", 3)) {
			fprintf(stderr,
				"bulkhead describe: \"%s\": only workloads can be described\n",
				kind);
			return 2;
		}
	} else {
		if (!(cli_kind_parse(kind) && !strcmp(cli_kind_parse(kind), "Workload"))) {
			fprintf(stderr,
				"bulkhead describe: \"%s\": only workloads can be described "
				"(workload NAME)\n",
				kind);
			return 2;
		}
		if (argc - optind != 2) {
			fprintf(stderr, "bulkhead describe: %s\n",
				argc - optind < 2 ? "which workload? give NAME" : "one NAME only");
			return 2;
		}
		name = argv[optind + 1];
	}
	if (!*name) {
		fprintf(stderr, "bulkhead describe: the workload's NAME is empty\n");
		return 2;
	}
	r.name = (char *)name;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "DescribeWorkload",
				       &r.base, (ProtobufCMessage **)&d))
		return 1;
	if (c->format == CLI_FORMAT_JSON)
		print_json(d);
	else
		print_text(d);
	protobuf_c_message_free_unpacked(&d->base, NULL);
	return 0;
}
