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
 *   bh_fake_agent STATE_DIR flows N [KEY=VALUE...]
 *       sends one ReportFlows of N summaries (destination ports 1..N, TCP, ingress, allowed),
 *       with node=NAME (the report's node field), packets=P, bytes=B, rule=R, src=ID, dst=ID,
 *       verdict=V (wire number), age=S (last seen S seconds ago), future=S (S seconds ahead),
 *       events=E (deny events), same=1 (every summary the same flow key);
 *       prints "stored S clamped C rejected R"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bulkhead.pb-c.h"
#include "enroll.h"

static long long opt(int argc, char **argv, const char *key, long long def)
{
	size_t kl = strlen(key);

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], key, kl) && argv[i][kl] == '=')
			return strtoll(argv[i] + kl + 1, NULL, 10);
	return def;
}

static int flows(struct bh_rpc_client *c, int argc, char **argv, char *msg, size_t len)
{
	Bulkhead__FlowReport r = BULKHEAD__FLOW_REPORT__INIT;
	Bulkhead__FlowReportResponse *resp = NULL;
	size_t n = argc > 0 ? strtoul(argv[0], NULL, 10) : 1;
	size_t ne = (size_t)opt(argc, argv, "events", 0);
	Bulkhead__FlowSummary *s = calloc(n + 1, sizeof(*s));
	Bulkhead__FlowSummary **sp = calloc(n + 1, sizeof(*sp));
	Bulkhead__DenyEvent *e = calloc(ne + 1, sizeof(*e));
	Bulkhead__DenyEvent **ep = calloc(ne + 1, sizeof(*ep));
	uint8_t a[4] = {198, 18, 10, 10}, b[4] = {198, 18, 10, 11};
	struct timeval tv;
	long long now;
	int st;

	gettimeofday(&tv, NULL);
	now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	now += opt(argc, argv, "future", 0) * 1000 - opt(argc, argv, "age", 0) * 1000;
	for (size_t i = 0; i < n; i++) {
		bulkhead__flow_summary__init(&s[i]);
		s[i].src_identity = (uint32_t)opt(argc, argv, "src", 2);
		s[i].dst_identity = (uint32_t)opt(argc, argv, "dst", 1);
		s[i].protocol = 6;
		s[i].port = opt(argc, argv, "same", 0) ? 1 : (uint32_t)(i % 65535 + 1);
		s[i].direction = BULKHEAD__DIRECTION__DIRECTION_INGRESS;
		s[i].verdict = (Bulkhead__FlowVerdict)opt(argc, argv, "verdict", 1);
		s[i].rule_id = (uint32_t)opt(argc, argv, "rule", 5);
		s[i].packets = (uint64_t)opt(argc, argv, "packets", 1);
		s[i].bytes = (uint64_t)opt(argc, argv, "bytes", 100);
		s[i].first_seen_ms = now - 1000;
		s[i].last_seen_ms = now;
		sp[i] = &s[i];
	}
	for (size_t i = 0; i < ne; i++) {
		bulkhead__deny_event__init(&e[i]);
		e[i].at_ms = now;
		e[i].src_address = (ProtobufCBinaryData){4, a};
		e[i].dst_address = (ProtobufCBinaryData){4, b};
		e[i].src_port = 40000;
		e[i].dst_port = (uint32_t)(i % 65535 + 1);
		e[i].protocol = 6;
		e[i].verdict = BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_DENIED;
		e[i].rule_id = (uint32_t)opt(argc, argv, "rule", 5);
		e[i].ifname = "eth0";
		ep[i] = &e[i];
	}
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "node=", 5))
			r.node = argv[i] + 5;
	r.flows = sp;
	r.n_flows = n;
	r.events = ep;
	r.n_events = ne;
	r.agent_started_ms = now;
	r.summaries_dropped = (uint64_t)opt(argc, argv, "dropped", 0);
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "ReportFlows", &r.base,
			 (ProtobufCMessage **)&resp, 30000, msg, len);
	if (st == BULKHEAD__RPC_STATUS__RPC_OK) {
		printf("stored %u clamped %u rejected %u\n", resp->stored, resp->clamped,
		       resp->rejected);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		printf("%s\n", bh_rpc_status_name(st));
	}
	free(s);
	free(sp);
	free(e);
	free(ep);
	return st;
}

int main(int argc, char **argv)
{
	struct bh_rpc_client *c = NULL;
	struct bh_error err = {0};
	char msg[1024];
	int st;

	if (argc < 3 || (strcmp(argv[2], "watch") && strcmp(argv[2], "ack") &&
			 strcmp(argv[2], "flows"))) {
		fprintf(stderr, "usage: bh_fake_agent STATE_DIR watch [REVISION [WAIT_MS [snapshot]]]\n"
				"       bh_fake_agent STATE_DIR ack REVISION [ERROR ENFORCING]\n"
				"       bh_fake_agent STATE_DIR flows N [KEY=VALUE...]\n");
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
	} else if (!strcmp(argv[2], "flows")) {
		st = flows(c, argc - 3, argv + 3, msg, sizeof(msg));
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
