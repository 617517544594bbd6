// SPDX-License-Identifier: Apache-2.0
/* bulkhead-agent run: the node daemon (daemon.c), or with --check only its configuration. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulkhead/log.h"
#include "cmd.h"
#include "config.h"
#include "daemon.h"
#include "dataplane.h"

static const char run_usage[] =
	"usage: bulkhead-agent run [--config FILE] [--check] [--log-level LEVEL]\n"
	"\n"
	"Runs the node agent: opens this node's eBPF datapath (or re-opens it: what is pinned\n"
	"keeps enforcing across restarts), reports the configured endpoints to the controller,\n"
	"and keeps a Watch open on it: each new rule set is applied atomically and acknowledged.\n"
	"With the controller unreachable it keeps enforcing what it has and retries (0.5 s\n"
	"doubling to 30 s, with jitter). Before the controller's first rule set, endpoints are in\n"
	"the configured first-start state (observe, or enforce: fail closed).\n"
	"\n"
	"  --config FILE      the configuration (default " AGENT_CONFIG_DEFAULT "; see\n"
	"                     deploy/agent.yaml for every key)\n"
	"  --check            check the configuration and the enrollment, print a summary and\n"
	"                     exit: 0 valid, 1 not\n"
	"  -v, --log-level L  err, warning, notice (default), info or debug; overrides the\n"
	"                     file's log-level\n"
	"  -h, --help         this text\n"
	"\n"
	"Signals: SIGTERM or SIGINT stop it, leaving the datapath attached and enforcing (exit\n"
	"status 0); SIGHUP reloads the configuration and reports the endpoints again (state-dir,\n"
	"netns, status-socket and maps take effect at the next start). `bulkhead-agent status`\n"
	"asks the running daemon how it is doing.\n"
	"\n"
	"It logs to stderr; \"ready: enforcing revision N; status on PATH\" says the datapath is\n"
	"enforcing and status answers, \"connected to HOST:PORT as NODE\" that the controller\n"
	"answered. Under systemd (Type=notify) it also reports READY=1 and its state.\n"
	"\n"
	"exit status: 0 stopped by a signal or --check passed, 1 could not start or invalid\n"
	"configuration, 2 usage error\n";

/* --check: the file, then what the daemon would find at start. */
static int check(struct agent_config *c)
{
	struct agent_identity id;
	struct bh_error err = {0};
	char ns[PATH_MAX];
	struct stat st;
	int rc = 0;

	printf("%s: valid\n", c->path);
	printf("  state-dir      %s\n", c->state_dir);
	if (agent_identity_load(c->state_dir, &id, &err) == 0) {
		printf("  node           %s (datapath %s/%s)\n", id.node, AGENT_DP_PIN_ROOT,
		       id.node);
		printf("  controller     %s\n", id.controller);
	} else {
		printf("  node           ? (%s)\n", err.msg);
		rc = 1;
	}
	if (c->netns[0]) {
		snprintf(ns, sizeof(ns), "/run/netns/%s", c->netns);
		printf("  netns          %s%s\n", c->netns,
		       stat(ns, &st) == 0 ? "" : " (does not exist now)");
	}
	printf("  first-start    %s\n",
	       c->first_enforce ? "enforce (fail closed)" : "observe (traffic passes)");
	printf("  status-socket  %s\n", c->status_socket);
	if (c->flow_export_off)
		printf("  flow-export    off\n");
	else
		printf("  flow-export    every %u s, spool %u summaries and %u events (in memory)\n",
		       c->flow_interval_s ? c->flow_interval_s : AGENT_FLOW_INTERVAL_DEFAULT,
		       c->flow_spool ? c->flow_spool : AGENT_FLOW_SPOOL_DEFAULT,
		       c->flow_events_set ? c->flow_events : AGENT_FLOW_EVENTS_DEFAULT);
	printf("  metrics        %s%s\n", c->metrics ? c->metrics : AGENT_METRICS_DEFAULT,
	       c->metrics ? "" : " (default: served if free)");
	printf("  endpoints      %zu\n", c->n_eps);
	for (size_t i = 0; i < c->n_eps; i++) {
		const struct agent_endpoint_cfg *e = &c->eps[i];

		printf("    %-20s %-15s %-4s", e->name, e->ifname, e->host ? "host" : "veth");
		for (size_t k = 0; k < e->n_addrs; k++)
			printf("%s%s", k ? "," : " ", e->addrs[k]);
		if (e->labels[0])
			printf(" {%s}", e->labels);
		printf("\n");
	}
	if (rc)
		fprintf(stderr,
			"bulkhead-agent run: the configuration is valid, but the daemon "
			"would not start: %s\n",
			err.msg);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'k'},
		{"log-level", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *path = AGENT_CONFIG_DEFAULT;
	struct agent_config *c = NULL;
	struct bh_error err = {0};
	bool only_check = false;
	int opt, level = -1, rc;

	while ((opt = getopt_long(argc, argv, "c:v:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			only_check = true;
			break;
		case 'v':
			level = bh_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr,
					"bulkhead-agent run: --log-level \"%s\": want err, "
					"warning, notice, info or debug\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fputs("Try 'bulkhead-agent run --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"bulkhead-agent run: unexpected argument \"%s\"\n"
			"Try 'bulkhead-agent run --help'.\n",
			argv[optind]);
		return 2;
	}
	if (agent_config_load(path, &c, &err)) {
		fprintf(stderr, "bulkhead-agent run: %s\n", err.msg);
		return 1;
	}
	if (only_check) {
		rc = check(c);
		agent_config_free(c);
		return rc;
	}
	return agent_daemon_run(c, level);
}
