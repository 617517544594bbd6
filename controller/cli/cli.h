/* SPDX-License-Identifier: Apache-2.0 */
/* The bulkhead CLI: shared connection handling; one file per subcommand. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdbool.h>

#include "bulkhead/rpc.h"

struct cli {
	const char *admin_socket; /* ipc:// URL or path */
	const char *controller;	  /* tls+tcp://HOST:PORT */
	const char *cert, *key, *ca;
	bool json;
	unsigned int timeout_ms;
	struct bh_rpc_client *client;
};

/* Connects as the configuration says (flags, then $BULKHEAD_CONFIG or ~/.config/bulkhead/config,
 * then the local admin socket). Prints why on failure. */
int cli_connect(struct cli *c);

/* Calls an Operator or Agent method; prints the error on failure. Returns 0 or 1. */
int cli_call(struct cli *c, const ProtobufCServiceDescriptor *svc, const char *method,
	     const ProtobufCMessage *req, ProtobufCMessage **resp);

/* Accepts what may follow a list command: nothing, or -o/--output table|json. */
bool cli_list_args(struct cli *c, int argc, char **argv);

/* "2026-11-25 13:04:05" in local time. */
const char *cli_time(long long t, char *buf, size_t len);

int cmd_token(struct cli *c, int argc, char **argv);
int cmd_node(struct cli *c, int argc, char **argv);

#endif
