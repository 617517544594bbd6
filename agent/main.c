// SPDX-License-Identifier: Apache-2.0
/* bulkhead-agent: the node daemon. main() only picks the subcommand. */
#include <stdio.h>
#include <string.h>

#include "bulkhead/log.h"
#include "cmd.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"run", cmd_run, "run the node daemon: enforce the controller's policy on this node"},
	{"status", cmd_status, "ask the running daemon how it is doing"},
	{"enroll", cmd_enroll, "join this node to a controller with a join token"},
	{"renew", cmd_renew, "renew this node's certificate"},
	{"check", cmd_check, "connect to the controller with this node's certificate"},
	{"report", cmd_report, "report the endpoints this node protects to the controller"},
	{"dataplane", cmd_dataplane, "apply, inspect and remove the eBPF datapath of this node"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bulkhead-agent COMMAND [ARGS...]\n\n"
		   "The Bulkhead node agent.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-12s %s\n", "version", "print the version");
	fprintf(f, "\nRun 'bulkhead-agent COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	bh_log_init("bulkhead-agent", LOG_NOTICE);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("bulkhead-agent %s\n", BULKHEAD_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "bulkhead-agent: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 2;
}
