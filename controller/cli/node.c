// SPDX-License-Identifier: Apache-2.0
/* bulkhead node list|revoke */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
	"usage: bulkhead node list [-o table|json]\n"
	"       bulkhead node revoke NAME\n"
	"\n"
	"list shows the enrolled nodes: connected now or not, when their newest certificate\n"
	"expires, revoked or not. revoke adds every certificate of NAME to the CRL, refuses its\n"
	"handshakes from now on and closes its live connections; the node must enroll again (under\n"
	"another name, or after the operator removes it) to come back.\n";

static int node_list(struct cli *c)
{
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	Bulkhead__NodeList *l = NULL;
	char t[64];

	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "ListNodes", &e.base,
				      (ProtobufCMessage **)&l))
		return 1;
	if (!c->json)
		printf("%-24s  %-9s  %-19s  %-8s  %-7s  %s\n", "NAME", "CONNECTED", "CERT-EXPIRES",
		       "STATE", "MODE", "LABELS");
	for (size_t i = 0; i < l->n_nodes; i++) {
		const Bulkhead__Node *n = l->nodes[i];

		if (c->json)
			printf("{\"name\":\"%s\",\"connected\":%s,\"cert_serial\":\"%s\","
			       "\"cert_not_after\":%" PRId64 ",\"revoked\":%s,\"mode\":\"%s\","
			       "\"labels\":\"%s\",\"created\":%" PRId64 "}\n",
			       n->name, n->connected ? "true" : "false", n->cert_serial,
			       n->cert_not_after, n->revoked ? "true" : "false", n->mode, n->labels,
			       n->created);
		else
			printf("%-24s  %-9s  %-19s  %-8s  %-7s  %s\n", n->name,
			       n->connected ? "yes" : "no", cli_time(n->cert_not_after, t, sizeof(t)),
			       n->revoked ? "revoked" : "enrolled", n->mode[0] ? n->mode : "-",
			       n->labels[0] ? n->labels : "-");
	}
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return 0;
}

static int node_revoke(struct cli *c, const char *name)
{
	Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
	ProtobufCMessage *resp = NULL;

	r.name = (char *)name;
	if (cli_connect(c) ||
	    cli_call(c, &bulkhead__operator__descriptor, "RevokeNode", &r.base, &resp))
		return 1;
	protobuf_c_message_free_unpacked(resp, NULL);
	printf("node %s revoked\n", name);
	return 0;
}

int cmd_node(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "list") && cli_list_args(c, argc, argv))
		return node_list(c);
	if (!strcmp(argv[1], "revoke") && argc == 3)
		return node_revoke(c, argv[2]);
	fprintf(stderr, "bulkhead node: unknown or incomplete command\n%s", usage);
	return 2;
}
