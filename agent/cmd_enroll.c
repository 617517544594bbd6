// SPDX-License-Identifier: Apache-2.0
/* bulkhead-agent enroll | renew */
#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "bulkhead/log.h"
#include "cmd.h"
#include "enroll.h"

static const char enroll_usage[] =
	"usage: bulkhead-agent enroll --controller HOST[:PORT] --token TOKEN --name NODE\n"
	"                             [--state-dir DIR]\n"
	"\n"
	"Joins this node to a controller. Makes the node's key in DIR (it never leaves it), pins\n"
	"the controller's CA by the fingerprint in the token, and gets a certificate for NODE.\n"
	"Running it again for the same node and key is harmless.\n"
	"\n"
	"  --controller HOST[:PORT]  the controller's enrollment address (default port 7444)\n"
	"  --token TOKEN             from 'bulkhead token create'\n"
	"  --name NODE               this node's name: 1-64 of [a-z0-9.-]\n"
	"  --state-dir DIR           default /var/lib/bulkhead\n";

static const char renew_usage[] =
	"usage: bulkhead-agent renew [--state-dir DIR] [--force]\n"
	"\n"
	"Renews the node's certificate over mutual TLS if two thirds of its lifetime have passed\n"
	"(or always, with --force). The agent daemon does this by itself.\n";

int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{"controller", required_argument, NULL, 'c'}, {"token", required_argument, NULL, 't'},
		{"name", required_argument, NULL, 'n'},	      {"state-dir", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},	      {0},
	};
	struct agent_enroll_opts o = {.state_dir = "/var/lib/bulkhead"};
	struct bh_error err = {0};
	bool already;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o.controller = optarg;
			break;
		case 't':
			o.token = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'd':
			o.state_dir = optarg;
			break;
		case 'h':
			fputs(enroll_usage, stdout);
			return 0;
		default:
			fputs(enroll_usage, stderr);
			return 2;
		}
	}
	if (!o.controller || !o.token || !o.name || optind != argc) {
		fputs(enroll_usage, stderr);
		return 2;
	}
	if (agent_enroll(&o, &already, &err)) {
		fprintf(stderr, "bulkhead-agent enroll: %s\n", err.msg);
		return 1;
	}
	printf(already ? "node %s is already enrolled (state in %s)\n"
		       : "node %s enrolled; key, certificate and CA in %s\n",
	       o.name, o.state_dir);
	return 0;
}

int cmd_renew(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *dir = "/var/lib/bulkhead";
	struct bh_error err = {0};
	bool force = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			fputs(renew_usage, stdout);
			return 0;
		default:
			fputs(renew_usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs(renew_usage, stderr);
		return 2;
	}
	if (!force && !agent_renew_due(dir)) {
		printf("certificate is not due for renewal yet\n");
		return 0;
	}
	if (agent_renew(dir, NULL, &err)) {
		fprintf(stderr, "bulkhead-agent renew: %s\n", err.msg);
		return 1;
	}
	printf("certificate renewed\n");
	return 0;
}

static const char check_usage[] =
	"usage: bulkhead-agent check [--state-dir DIR] [--repeat N] [--interval-ms MS]\n"
	"\n"
	"Connects to the controller with this node's certificate (mutual TLS) and reads the\n"
	"node's record: proves enrollment, certificate and network path. With --repeat it keeps\n"
	"the one connection and asks N times, MS apart (default 1000), stopping at the first\n"
	"failure (for example when the node is revoked). Exit status 0 if every check passed.\n";

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"repeat", required_argument, NULL, 'r'},
		{"interval-ms", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *dir = "/var/lib/bulkhead";
	struct bh_rpc_client *c = NULL;
	struct bh_error err = {0};
	long repeat = 1, interval = 1000;
	char name[80] = "", line[256], msg[512], path[4096];
	int opt, rc = 0;
	FILE *f;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'r':
			repeat = atol(optarg);
			break;
		case 'i':
			interval = atol(optarg);
			break;
		case 'h':
			fputs(check_usage, stdout);
			return 0;
		default:
			fputs(check_usage, stderr);
			return 2;
		}
	}
	if (optind != argc || repeat < 1 || interval < 0) {
		fputs(check_usage, stderr);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_CONF);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "name %79s", name) == 1)
			break;
	if (f)
		fclose(f);
	if (!name[0]) {
		fprintf(stderr, "bulkhead-agent check: %s: not enrolled\n", path);
		return 1;
	}
	if (agent_client(dir, &c, &err)) {
		fprintf(stderr, "bulkhead-agent check: %s\n", err.msg);
		return 1;
	}
	for (long i = 0; i < repeat; i++) {
		Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
		Bulkhead__Node *n = NULL;
		int st;

		r.name = name;
		st = bh_rpc_call(c, &bulkhead__agent__descriptor, "GetNode", &r.base,
				 (ProtobufCMessage **)&n, 5000, msg, sizeof(msg));
		if (st != BULKHEAD__RPC_STATUS__RPC_OK) {
			fprintf(stderr, "bulkhead-agent check: %s\n", msg);
			rc = 1;
			break;
		}
		printf("ok: connected to the controller as node %s (%s)\n", n->name,
		       n->revoked ? "revoked" : "enrolled");
		fflush(stdout);
		protobuf_c_message_free_unpacked(&n->base, NULL);
		if (i + 1 < repeat)
			usleep((useconds_t)interval * 1000);
	}
	bh_rpc_client_destroy(c);
	return rc;
}
