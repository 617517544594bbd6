// SPDX-License-Identifier: Apache-2.0
/*
 * bh_fake_agent: speaks the agent side of policy sync (Watch, Ack) with an enrolled node's
 * certificate, without a datapath, so that tests can drive and observe the controller's rollout
 * one call at a time.
 *
 *   bh_fake_agent STATE_DIR watch [REVISION [WAIT_MS [snapshot]]]
 *       prints "revision N snapshot E I R" (endpoints, ipcache entries, rules), or
 *       "revision N delta FROM +E/-E +I/-I +R/-R", or "revision N none" (nothing new)
 *   bh_fake_agent STATE_DIR ack REVISION [ERROR ENFORCING]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead.pb-c.h"
#include "enroll.h"

int main(int argc, char **argv)
{
	struct bh_rpc_client *c = NULL;
	struct bh_error err = {0};
	char msg[1024];
	int st;

	if (argc < 3 || (strcmp(argv[2], "watch") && strcmp(argv[2], "ack"))) {
		fprintf(stderr, "usage: bh_fake_agent STATE_DIR watch [REVISION [WAIT_MS [snapshot]]]\n"
				"       bh_fake_agent STATE_DIR ack REVISION [ERROR ENFORCING]\n");
		return 2;
	}
	if (agent_client(argv[1], &c, &err)) {
		fprintf(stderr, "bh_fake_agent: %s\n", err.msg);
		return 1;
	}
	if (!strcmp(argv[2], "watch")) {
		Bulkhead__WatchRequest r = BULKHEAD__WATCH_REQUEST__INIT;
		Bulkhead__WatchResponse *w = NULL;

		r.revision = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
		r.wait_ms = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 30000;
		r.snapshot = argc > 5 && !strcmp(argv[5], "snapshot");
		st = bh_rpc_call(c, &bulkhead__agent__descriptor, "Watch", &r.base,
				 (ProtobufCMessage **)&w, r.wait_ms + 10000, msg, sizeof(msg));
		if (st == BULKHEAD__RPC_STATUS__RPC_OK) {
			if (w->snapshot)
				printf("revision %llu snapshot %zu %zu %zu\n",
				       (unsigned long long)w->revision, w->snapshot->n_endpoints,
				       w->snapshot->n_ipcache, w->snapshot->n_rules);
			else if (w->delta)
				printf("revision %llu delta %llu +%zu/-%zu +%zu/-%zu +%zu/-%zu\n",
				       (unsigned long long)w->revision,
				       (unsigned long long)w->delta->from_revision,
				       w->delta->n_endpoints_added, w->delta->n_endpoints_removed,
				       w->delta->n_ipcache_added, w->delta->n_ipcache_removed,
				       w->delta->n_rules_added, w->delta->n_rules_removed);
			else
				printf("revision %llu none\n", (unsigned long long)w->revision);
			protobuf_c_message_free_unpacked(&w->base, NULL);
		}
	} else {
		Bulkhead__AckRequest r = BULKHEAD__ACK_REQUEST__INIT;
		ProtobufCMessage *e = NULL;

		r.revision = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
		if (argc > 5) {
			r.error = argv[4];
			r.enforcing = strtoull(argv[5], NULL, 10);
		}
		st = bh_rpc_call(c, &bulkhead__agent__descriptor, "Ack", &r.base, &e, 10000, msg,
				 sizeof(msg));
		if (st == BULKHEAD__RPC_STATUS__RPC_OK) {
			printf("acknowledged\n");
			protobuf_c_message_free_unpacked(e, NULL);
		}
	}
	bh_rpc_client_destroy(c);
	if (st != BULKHEAD__RPC_STATUS__RPC_OK) {
		fprintf(stderr, "bh_fake_agent: %s\n", msg);
		return 1;
	}
	return 0;
}
