// SPDX-License-Identifier: Apache-2.0
/* bulkhead: the operator CLI. Global options, then a subcommand from the table. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/log.h"
#include "bulkhead/util.h"
#include "cli.h"

static const struct {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	unsigned int formats; /* what a global -o may ask of it */
	const char *summary;
} commands[] = {
	{"apply", cmd_apply, CLI_FMTS_TJ, "create or update policies, workloads, nodes from files"},
	{"delete", cmd_delete, CLI_FMTS_TJ, "delete them, by file or by kind and name"},
	{"diff", cmd_diff, CLI_FMTS_TJ, "show what apply would change, per node"},
	{"get", cmd_get, CLI_FMTS_ALL, "list policies, workloads, nodes, identities, revisions"},
	{"describe", cmd_describe, CLI_FMTS_TJ, "show a workload: identity, policies, rules"},
	{"explain", cmd_explain, CLI_FMTS_TJ, "say whether a packet is allowed, and why"},
	{"ruleset", cmd_ruleset, CLI_FMTS_TJ, "print a node's compiled rule set"},
	{"revisions", cmd_revisions, CLI_FMTS_TJ, "list the revisions of the policy state"},
	{"rollback", cmd_rollback, CLI_FMTS_TJ, "restore the state of an earlier revision"},
	{"flows", cmd_flows, CLI_FMTS_TJ, "show the fleet's flows, with the rule that decided each"},
	{"token", cmd_token, CLI_FMTS_TJ, "create, list and revoke join tokens"},
	{"node", cmd_node, CLI_FMTS_TJ, "list and revoke enrolled nodes"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bulkhead [OPTIONS] COMMAND [ARGS...]\n"
		"\n"
		"The Bulkhead operator CLI. It talks to the controller over its local admin socket\n"
		"(as root on the controller host) or over mutual TLS with an operator certificate.\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
		"\noptions:\n"
		"  --admin-socket PATH   the controller's local socket (default\n"
		"                        /run/bulkhead/controller.sock; env BULKHEAD_ADMIN_SOCKET)\n"
		"  --controller URL      tls+tcp://HOST:PORT of the controller, with:\n"
		"  --cert FILE --key FILE --ca FILE   an operator certificate, its key, the CA\n"
		"  -o, --output FORMAT   table (default), json, or yaml (get); also taken after\n"
		"                        the command\n"
		"  --timeout SECONDS     per call (default 10)\n"
		"  -v, --log-level LEVEL err, warning, notice, info, debug\n"
		"\n"
		"Settings may also come from $BULKHEAD_CONFIG or ~/.config/bulkhead/config, lines of\n"
		"'key = value' with keys admin-socket, controller, cert, key, ca.\n"
		"'bulkhead COMMAND --help' describes each command.\n"
		"Exit status: 0 success, 1 failure (the controller's message says why), 2 usage\n"
		"(diff: 0 no differences, 1 differences, 2 trouble).\n"
		"\n"
		"examples:\n"
		"  bulkhead apply -f three-tier.yaml --diff\n"
		"  bulkhead get workloads -l app=db\n"
		"  bulkhead explain --from api-1 --to db-1 --port tcp/5432\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"admin-socket", required_argument, NULL, 'A'},
		{"controller", required_argument, NULL, 'c'},
		{"cert", required_argument, NULL, 'C'},
		{"key", required_argument, NULL, 'K'},
		{"ca", required_argument, NULL, 'a'},
		{"output", required_argument, NULL, 'o'},
		{"timeout", required_argument, NULL, 't'},
		{"log-level", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct cli c = {.admin_socket = getenv("BULKHEAD_ADMIN_SOCKET")};
	const char *output = NULL;
	int opt, rc = 2;

	bh_log_init("bulkhead", LOG_ERR);
	while ((opt = getopt_long(argc, argv, "+o:v:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'A':
			c.admin_socket = optarg;
			break;
		case 'c':
			c.controller = optarg;
			break;
		case 'C':
			c.cert = optarg;
			break;
		case 'K':
			c.key = optarg;
			break;
		case 'a':
			c.ca = optarg;
			break;
		case 'o':
			output = optarg;
			if (cli_format_set(&c, "", optarg, CLI_FMTS_ALL))
				return 2;
			break;
		case 't': {
			uint64_t secs;

			if (bh_parse_u64(optarg, 3600, &secs) || secs == 0) {
				fprintf(stderr, "bulkhead: --timeout \"%s\": want 1-3600 seconds\n",
					optarg);
				return 2;
			}
			c.timeout_ms = (unsigned int)secs * 1000u;
			break;
		}
		case 'v':
			if (bh_log_level_parse(optarg) < 0) {
				fprintf(stderr, "bulkhead: bad --log-level \"%s\"\n", optarg);
				return 2;
			}
			bh_log_level = bh_log_level_parse(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[optind], "version")) {
		printf("bulkhead %s\n", BULKHEAD_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			char prog[64];

			if (output &&
			    cli_format_set(&c, commands[i].name, output, commands[i].formats))
				return 2;
			/* getopt names argv[0] in its messages: "bulkhead get: unrecognized ..." */
			snprintf(prog, sizeof(prog), "bulkhead %s", commands[i].name);
			argv[optind] = prog;
			/* the command's getopt may permute its part of argv, as main's may */
			rc = commands[i].run(&c, argc - optind, argv + optind);
			bh_rpc_client_destroy(c.client);
			return rc;
		}
	}
	fprintf(stderr, "bulkhead: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	return 2;
}
