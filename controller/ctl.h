/* SPDX-License-Identifier: Apache-2.0 */
/* The controller daemon's shared state and the entry points of its parts. */
#ifndef CTL_CTL_H
#define CTL_CTL_H

#include <limits.h>
#include <stdbool.h>
#include <time.h>

#include <uv.h>

#include "bulkhead/error.h"
#include "bulkhead/rpc.h"
#include "bulkhead.pb-c.h"
#include "compile.h"
#include "store.h"

/* Files of a state directory. */
#define CTL_CA_KEY	"ca.key"
#define CTL_CA_CERT	"ca.crt"
#define CTL_SERVER_KEY	"controller.key"
#define CTL_SERVER_CERT "controller.crt"
#define CTL_ADMIN_KEY	"admin.key"
#define CTL_ADMIN_CERT	"admin.crt"
#define CTL_CRL		"crl.pem"
#define CTL_PORTS	"ports" /* "agent PORT\nenroll PORT\nmetrics PORT\n" once serving */

#define CTL_DEFAULT_LISTEN	 "tls+tcp://0.0.0.0:7443"
#define CTL_DEFAULT_ENROLL	 "tls+tcp://0.0.0.0:7444"
#define CTL_DEFAULT_ADMIN	 "ipc:///run/bulkhead/controller.sock"
#define CTL_DEFAULT_METRICS	 "127.0.0.1:9464"
#define CTL_DEFAULT_CERT_LIFE	 (7ul * 86400)

/* The controller. Owned by the loop thread. */
struct ctl {
	char dir[PATH_MAX];
	uv_loop_t *loop;
	struct ctl_store *store;
	struct bh_rpc_server *rpc;
	char *ca_pem, *ca_key_pem;
	char ca_fp[72];
	unsigned long cert_lifetime_s;
	int agent_port;
	struct ctl_compiler *comp; /* the policy state (policy.c) */
	struct ctl_rollout *rollout; /* agents' watches and acknowledgements (rollout.c) */
	struct ctl_flows *flows;     /* flow summaries (flows.c) */
	struct bh_metrics_server *metrics;
	uint64_t revision;	   /* the newest revision in the store */
};

struct ctl_init_opts {
	const char *dir;
	const char *const *names;     /* DNS names for the controller's certificate (NULL-ended) */
	const char *const *addresses; /* IP addresses for it */
	unsigned int ca_days;	      /* CA validity (default 3650) */
	unsigned int server_days;     /* controller certificate validity (default 365) */
	bool force;		      /* replace existing files */
};

/* bulkhead-controller init: CA, controller certificate, first operator certificate, store, CRL.
 * Files 0600 in a 0700 directory; refuses to overwrite without force. */
int ctl_init_state(const struct ctl_init_opts *o, struct bh_error *err);

/* Reads a state-directory file into a malloc'd string. */
int ctl_read(const struct ctl *c, const char *name, char **out, struct bh_error *err);

/* Rewrites the CRL from the store and hands the revoked serials to the TLS engine. */
int ctl_revocations_refresh(struct ctl *c, struct bh_error *err);

/* Registers the RPC handlers of each part. */
int ctl_enroll_register(struct ctl *c);
int ctl_api_register(struct ctl *c);
int ctl_policy_register(struct ctl *c);

/* Loads the policy state from the store into a new compiler and compiles every node (start). */
int ctl_policy_load(struct ctl *c, struct bh_error *err);
void ctl_policy_unload(struct ctl *c);
/* Gives the compiler what enrollment recorded for a node (the token's labels and mode) and
 * recompiles. Failures are logged: enrollment itself has succeeded. */
void ctl_policy_node_enrolled(struct ctl *c, const char *name);

/* Rollout (rollout.c): serves Agent.Watch and Agent.Ack; started after the policy state. */
int ctl_rollout_init(struct ctl *c);
/* After the RPC server and the loop are gone: forgets held calls, frees. */
void ctl_rollout_fini(struct ctl *c);
/* The rule sets of these nodes changed at revision rev: wakes exactly their watches. */
void ctl_rollout_changed(struct ctl *c, const char *const *nodes, size_t n_nodes, uint64_t rev);
/* Holds the answer resp (copied) to call until every node has acknowledged revision, or wait_ms
 * passed (then resp names the nodes that had not, in nodes_pending). resp is an ApplyResponse. */
int ctl_rollout_wait(struct ctl *c, struct bh_rpc_call *call, const ProtobufCMessage *resp,
		     uint64_t revision, const char *const *nodes, size_t n_nodes, uint32_t wait_ms);
/* What rollout knows of a node (-ENOENT, with defaults filled, if nothing yet). */
int ctl_rollout_node_state(const struct ctl *c, const char *name, uint64_t *wanted,
			   uint64_t *sent, uint64_t *acked, const char **last_error,
			   time_t *last_seen);

/* Nodes rollout knows, how many have not acknowledged the newest revision that changed their
 * rule set, and how many have a Watch held right now. */
void ctl_rollout_summary(const struct ctl *c, size_t *nodes, size_t *behind, size_t *watching);

/* Metrics (metrics.c): Prometheus text on http://LISTEN/metrics; "none" serves nothing. A
 * non-loopback address needs allow_public. */
int ctl_metrics_start(struct ctl *c, const char *listen, bool allow_public, bool required,
		      struct bh_error *err);
void ctl_metrics_stop(struct ctl *c);

/* A node's rule set as the wire message (pointing into o, which must outlive it). */
struct ctl_node_policy {
	Bulkhead__NodePolicy np;
	void *mem[7];
};

/*
 * The rule set node had at revision rev (0 or the newest: the current one), compiled again from
 * that revision's objects with today's numbering; out is the caller's (ctl_node_out_free), empty
 * if the node had none. -ENOENT for a revision that does not exist.
 */
int ctl_policy_node_at(struct ctl *c, const char *node, uint64_t rev, struct ctl_node_out *out,
		       struct bh_error *err);

int ctl_node_policy_build(const struct ctl_node_out *o, uint64_t revision,
			  struct ctl_node_policy *out);
void ctl_node_policy_release(struct ctl_node_policy *p);

/* A difference between two rule sets as the wire message (pointing into d, which must outlive
 * it): what an agent holding `from` applies to reach `to`. */
struct ctl_node_policy_delta {
	Bulkhead__NodePolicyDelta msg;
	struct ctl_node_policy add, del;
};

int ctl_node_policy_delta_build(const struct ctl_node_delta *d, uint64_t from, uint64_t to,
				struct ctl_node_policy_delta *out);
void ctl_node_policy_delta_release(struct ctl_node_policy_delta *p);

#endif
