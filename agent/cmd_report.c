// SPDX-License-Identifier: Apache-2.0
/* bulkhead-agent report: tell the controller which endpoints this node protects. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead.pb-c.h"
#include "cmd.h"
#include "enroll.h"

#define MAX_ENDPOINTS 256
#define MAX_ADDRS     16

static const char report_usage[] =
	"usage: bulkhead-agent report [--state-dir DIR] [--complete] [--labels k=v,...]\n"
	"                             ENDPOINT...\n"
	"\n"
	"Reports the endpoints this node protects to the controller, over mutual TLS with this\n"
	"node's certificate: each becomes a workload of this node (the node is the certificate's,\n"
	"never a parameter), in one new revision. An endpoint is\n"
	"\n"
	"  NAME=IFNAME,ADDRESS[,ADDRESS...][,host]\n"
	"\n"
	"IFNAME is the interface it is enforced on (the host side of its veth, or with ',host'\n"
	"the node's own interface, for the node's host itself). Examples:\n"
	"\n"
	"  bulkhead-agent report web-1=veth-web1,198.18.1.10,fd00:b1::1:10\n"
	"  bulkhead-agent report --complete node-a=eth0,198.18.0.2,host db-1=veth-db1,198.18.2.10\n"
	"\n"
	"  --state-dir DIR   where enrollment left the key and certificate (/var/lib/bulkhead)\n"
	"  --complete        these are all of this node's endpoints: the controller removes the\n"
	"                    node's workloads not listed\n"
	"  --labels k=v,...  labels for endpoints the controller does not know yet (the\n"
	"                    operator's labels count once a Workload object exists)\n"
	"\n"
	"Prints what changed (created, configured, unchanged, deleted) and the revision. Exit\n"
	"status: 0 accepted, 1 refused or unreachable (the controller's message says why), 2 usage.\n";

/* Parses NAME=IFNAME,ADDR[,ADDR...][,host] into e (pointing into s, which it modifies). */
static int parse_endpoint(char *s, Bulkhead__ReportedEndpoint *e, char **addrs)
{
	char *eq = strchr(s, '='), *tok, *save = NULL;

	if (!eq || eq == s)
		return -1;
	*eq = '\0';
	e->name = s;
	e->attach = BULKHEAD__ATTACH__ATTACH_VETH;
	e->addresses = addrs;
	for (tok = strtok_r(eq + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!e->ifname[0])
			e->ifname = tok;
		else if (!strcmp(tok, "host"))
			e->attach = BULKHEAD__ATTACH__ATTACH_HOST;
		else if (e->n_addresses < MAX_ADDRS)
			addrs[e->n_addresses++] = tok;
		else
			return -1;
	}
	return e->ifname[0] && e->n_addresses ? 0 : -1;
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"complete", no_argument, NULL, 'c'},
		{"labels", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static Bulkhead__ReportedEndpoint eps[MAX_ENDPOINTS];
	static Bulkhead__ReportedEndpoint *epp[MAX_ENDPOINTS];
	static char *addrs[MAX_ENDPOINTS][MAX_ADDRS];
	Bulkhead__EndpointReport r = BULKHEAD__ENDPOINT_REPORT__INIT;
	Bulkhead__ApplyResponse *resp = NULL;
	const char *dir = "/var/lib/bulkhead", *labels = "";
	struct bh_rpc_client *c = NULL;
	struct bh_error err = {0};
	char msg[1024];
	int opt, st;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			r.complete = 1;
			break;
		case 'l':
			labels = optarg;
			break;
		case 'h':
			fputs(report_usage, stdout);
			return 0;
		default:
			fputs(report_usage, stderr);
			return 2;
		}
	}
	if (optind == argc && !r.complete) {
		fputs(report_usage, stderr);
		return 2;
	}
	if (argc - optind > MAX_ENDPOINTS) {
		fprintf(stderr, "bulkhead-agent report: at most %d endpoints at once\n",
			MAX_ENDPOINTS);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		Bulkhead__ReportedEndpoint *e = &eps[r.n_endpoints];
		char *copy = argv[i];

		bulkhead__reported_endpoint__init(e);
		e->labels = (char *)labels;
		if (parse_endpoint(copy, e, addrs[r.n_endpoints])) {
			fprintf(stderr, "bulkhead-agent report: \"%s\": want "
					"NAME=IFNAME,ADDRESS[,ADDRESS...][,host]\n",
				argv[i]);
			return 2;
		}
		epp[r.n_endpoints++] = e;
	}
	r.endpoints = epp;
	if (agent_client(dir, &c, &err)) {
		fprintf(stderr, "bulkhead-agent report: %s\n", err.msg);
		return 1;
	}
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "ReportEndpoints", &r.base,
			 (ProtobufCMessage **)&resp, 10000, msg, sizeof(msg));
	bh_rpc_client_destroy(c);
	if (st != BULKHEAD__RPC_STATUS__RPC_OK) {
		fprintf(stderr, "bulkhead-agent report: %s\n", msg);
		return 1;
	}
	for (size_t i = 0; i < resp->n_changes; i++)
		printf("workload/%s %s\n", resp->changes[i]->name, resp->changes[i]->action);
	if (resp->revision)
		printf("revision %llu\n", (unsigned long long)resp->revision);
	else
		printf("no change\n");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}
