// SPDX-License-Identifier: Apache-2.0
/* bulkhead-controller: parses options and starts the part asked for. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/log.h"
#include "bulkhead/token.h"
#include "ctl.h"
#include "serve.h"

static const char usage_init[] =
	"usage: bulkhead-controller init --state-dir DIR [--name DNS]... [--address IP]...\n"
	"                                [--ca-days N] [--cert-days N] [--force]\n"
	"\n"
	"Creates a controller in DIR (mode 0700): a CA (EC P-256), the controller's certificate for\n"
	"the names and addresses agents reach it at, a first operator certificate (admin.crt) for\n"
	"the local admin, an empty CRL and the store. Every file is 0600. An existing controller is\n"
	"never replaced without --force (which makes every enrolled agent enroll again).\n"
	"\n"
	"  --name DNS       a DNS name of the controller (repeatable; default: localhost and the\n"
	"                   host name)\n"
	"  --address IP     an IP address of the controller (repeatable; default 127.0.0.1, ::1)\n"
	"  --ca-days N      CA validity (default 3650)\n"
	"  --cert-days N    controller certificate validity (default 365)\n";

static const char usage_serve[] =
	"usage: bulkhead-controller serve --state-dir DIR [--listen URL] [--enroll-listen URL]\n"
	"                                 [--admin URL] [--cert-lifetime DURATION]\n"
	"                                 [--flow-retention D] [--flow-minute-retention D]\n"
	"                                 [--metrics HOST:PORT] [--metrics-public]\n"
	"                                 [--log-level LEVEL] [--syslog]\n"
	"\n"
	"Runs the controller until SIGTERM or SIGINT.\n"
	"\n"
	"  --listen URL          agents and remote operators, mutual TLS\n"
	"                        (default " CTL_DEFAULT_LISTEN ")\n"
	"  --enroll-listen URL   enrollment with join tokens, TLS authenticating the controller\n"
	"                        (default " CTL_DEFAULT_ENROLL "; none to disable)\n"
	"  --admin URL           local operators, root only (default " CTL_DEFAULT_ADMIN ";\n"
	"                        none to disable)\n"
	"  --cert-lifetime D     lifetime of agent certificates: 30s, 15m, 12h, 7d (default 7d);\n"
	"                        agents renew after two thirds of it\n"
	"  --flow-retention D    how long flow summaries (hourly buckets), rule hit counts and\n"
	"                        deny events are kept in DIR/flows.db (default 7d)\n"
	"  --flow-minute-retention D\n"
	"                        how long the per-minute buckets are kept (default 6h; at most\n"
	"                        the flow retention): `bulkhead flows --since` within it is\n"
	"                        exact to the minute, beyond it to the hour\n"
	"  --metrics HOST:PORT   Prometheus metrics on http://HOST:PORT/metrics (default\n"
	"                        " CTL_DEFAULT_METRICS ", served only if free; none to disable)\n"
	"  --metrics-public      allow a --metrics address other than loopback (the metrics say\n"
	"                        how many nodes there are and how busy they are: put a firewall or\n"
	"                        a proxy in front)\n"
	"  --log-level LEVEL     err, warning, notice (default), info, debug\n"
	"  --syslog              log to syslog instead of stderr\n"
	"\n"
	"Port 0 picks a free port; the ports in use are written to DIR/ports.\n";

static int usage(const char *text, int rc)
{
	fputs(text, rc ? stderr : stdout);
	return rc;
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'}, {"name", required_argument, NULL, 'n'},
		{"address", required_argument, NULL, 'a'},   {"ca-days", required_argument, NULL, 'C'},
		{"cert-days", required_argument, NULL, 'c'}, {"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},	     {0},
	};
	const char *names[33] = {0}, *addrs[33] = {0};
	struct ctl_init_opts o = {0};
	struct bh_error err = {0};
	size_t nn = 0, na = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "d:n:a:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o.dir = optarg;
			break;
		case 'n':
			if (nn == 32)
				return usage("bulkhead-controller init: too many --name\n", 2);
			names[nn++] = optarg;
			break;
		case 'a':
			if (na == 32)
				return usage("bulkhead-controller init: too many --address\n", 2);
			addrs[na++] = optarg;
			break;
		case 'C':
			o.ca_days = (unsigned int)atoi(optarg);
			break;
		case 'c':
			o.server_days = (unsigned int)atoi(optarg);
			break;
		case 'f':
			o.force = true;
			break;
		case 'h':
			return usage(usage_init, 0);
		default:
			return usage(usage_init, 2);
		}
	}
	if (!o.dir || optind != argc)
		return usage(usage_init, 2);
	o.names = nn ? names : NULL;
	o.addresses = na ? addrs : NULL;
	if (ctl_init_state(&o, &err)) {
		fprintf(stderr, "bulkhead-controller init: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"enroll-listen", required_argument, NULL, 'e'},
		{"admin", required_argument, NULL, 'A'},
		{"cert-lifetime", required_argument, NULL, 't'},
		{"flow-retention", required_argument, NULL, 'R'},
		{"flow-minute-retention", required_argument, NULL, 'M'},
		{"metrics", required_argument, NULL, 'm'},
		{"metrics-public", no_argument, NULL, 'P'},
		{"log-level", required_argument, NULL, 'v'},
		{"syslog", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct ctl_serve_opts o = {.listen = CTL_DEFAULT_LISTEN,
				   .enroll_listen = CTL_DEFAULT_ENROLL,
				   .admin = CTL_DEFAULT_ADMIN};
	struct bh_error err = {0};
	int opt, level;

	while ((opt = getopt_long(argc, argv, "d:l:v:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o.dir = optarg;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 'e':
			o.enroll_listen = optarg;
			break;
		case 'A':
			o.admin = optarg;
			break;
		case 't':
			if (bh_parse_duration(optarg, &o.cert_lifetime_s) || o.cert_lifetime_s < 10) {
				fprintf(stderr, "bulkhead-controller serve: --cert-lifetime \"%s\": "
						"want a duration of at least 10s (30s, 15m, 12h, 7d)\n",
					optarg);
				return 2;
			}
			break;
		case 'm':
			o.metrics = optarg;
			break;
		case 'P':
			o.metrics_public = true;
			break;
		case 'R':
		case 'M':
			if (bh_parse_duration(optarg, opt == 'R' ? &o.flow_keep_s
								 : &o.flow_minute_keep_s) ||
			    (opt == 'R' ? o.flow_keep_s : o.flow_minute_keep_s) < 60 ||
			    (opt == 'R' ? o.flow_keep_s : o.flow_minute_keep_s) > 366ul * 86400) {
				fprintf(stderr,
					"bulkhead-controller serve: --%s \"%s\": want a duration "
					"from 1m to 366d (6h, 7d)\n",
					opt == 'R' ? "flow-retention" : "flow-minute-retention",
					optarg);
				return 2;
			}
			break;
		case 'v':
			level = bh_log_level_parse(optarg);
			if (level < 0)
				return usage("bulkhead-controller serve: bad --log-level\n", 2);
			bh_log_level = level;
			break;
		case 's':
			bh_log_open_syslog();
			break;
		case 'h':
			return usage(usage_serve, 0);
		default:
			return usage(usage_serve, 2);
		}
	}
	if (!o.dir || optind != argc)
		return usage(usage_serve, 2);
	if (ctl_serve(&o, &err)) {
		bh_log(LOG_ERR, "%s", err.msg);
		return 1;
	}
	return 0;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"init", cmd_init, "create a controller: CA, certificates, store"},
	{"serve", cmd_serve, "run the controller daemon"},
};

int main(int argc, char **argv)
{
	bh_log_init("bulkhead-controller", LOG_NOTICE);
	if (argc >= 2 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version"))) {
		printf("bulkhead-controller %s\n", BULKHEAD_VERSION);
		return 0;
	}
	for (size_t i = 0; argc >= 2 && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? stderr : stdout,
		"usage: bulkhead-controller COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-8s %s\n", commands[i].name, commands[i].summary);
	printf("  %-8s %s\n\nRun 'bulkhead-controller COMMAND --help' for its options.\n",
	       "version", "print the version");
	return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 2;
}
