// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench: the datapath benchmark, run on demand by tests/bench/run.sh (not part of CTest).
 * One subcommand per measurement, dispatched from a table.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bulkhead/log.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
} cmds[] = {
	{"pkt", bench_cmd_pkt, "ns per packet (BPF_PROG_TEST_RUN), snapshot apply time, memory"},
	{"apply", bench_cmd_apply, "delta apply time against iptables-restore"},
	{"guard", bench_cmd_guard, "run a command while Bulkhead protects an interface"},
	{"ipt-rules", bench_cmd_ipt_rules, "print the guard rule set as an iptables-restore file"},
};

static void usage(void)
{
	fprintf(stderr, "usage: bh_bench COMMAND [OPTIONS]  (as root)\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "  %-10s %s\n", cmds[i].name, cmds[i].what);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	/* The datapath logs every apply at info level: keep the output to results and problems. */
	bh_log_init("bh_bench", LOG_WARNING);
	bh_log_route_libbpf();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	usage();
	return 2;
}
