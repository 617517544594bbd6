/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy compiler: from the model (policies, workloads, node labels) to one rule set per node,
 * the rule set the agents enforce (bulkhead.proto NodePolicy).
 *
 * Identities: every distinct label set in use gets a numeric identity (>= 256), stable for as long
 * as the compiler knows it; one that falls out of use is kept (so that it comes back with the same
 * number) until it has been unused for the grace period, then released. Numbers are never reused:
 * they come from a counter that only grows. Each CIDR prefix a policy names also gets an identity
 * ("cidr:PREFIX"), so that the datapath's ipcache can map it.
 *
 * Rule ids: each (policy, direction, action, rule index) and each identity's default deny in a
 * direction gets a stable id (>= 256) under a text key; ctl_compiler_rule_describe maps one back.
 *
 * Incremental: put/delete only record what changed; ctl_compiler_update recompiles only the
 * identities whose rules the changes can affect, recomposes only the nodes that hold them or whose
 * ipcache depends on what changed, and reports those nodes. ctl_compiler_recompile_all throws every
 * cache away and recomputes from the model: the reference the incremental path is tested against.
 *
 * Not thread-safe: one owner (the controller's loop thread).
 */
#ifndef CTL_COMPILE_H
#define CTL_COMPILE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "model.h"

#define CTL_ID_USER_MIN	  256 /* first identity allocated to a label set (bpf/bulkhead.h) */
#define CTL_RULE_ID_MIN	  256 /* first rule id (0-15 are the datapath's) */
#define CTL_RULE_UNSELECTED_INGRESS 16 /* default allow of a workload no policy isolates */
#define CTL_RULE_UNSELECTED_EGRESS  17

/* Verdicts as in bulkhead.proto */
#define CTL_VERDICT_ALLOW 1
#define CTL_VERDICT_DENY  2

/* One compiled rule: bulkhead.proto Rule. Sorted by (local, remote, dir, proto, verdict, port). */
struct ctl_crule {
	uint32_t local;
	uint32_t remote; /* 0: any peer */
	uint8_t dir;	 /* enum ctl_dir */
	uint8_t proto;	 /* 0: any protocol */
	uint8_t verdict; /* CTL_VERDICT_* */
	uint8_t pad;
	uint16_t port;	   /* 0: any */
	uint16_t end_port; /* 0: single port */
	uint32_t rule_id;
};

/* One ipcache entry: prefix -> identity. Sorted by prefix. */
struct ctl_cipc {
	struct ctl_prefix prefix;
	uint32_t identity;
};

/* One endpoint of a node. Sorted by name. The strings belong to the rule set holding it. */
struct ctl_cep {
	const char *name;
	const char *ifname;
	uint32_t identity;
	bool observe;
	bool attach_host;
	uint8_t def_verdict[2]; /* [enum ctl_dir] */
	uint32_t def_rule[2];
};

/* A node's compiled rule set. */
struct ctl_node_out {
	struct ctl_cep *eps;
	size_t n_eps;
	struct ctl_cipc *ipc;
	size_t n_ipc;
	struct ctl_crule *rules;
	size_t n_rules;
};

/* A difference between two rule sets of one node (a changed entry is removed and added). */
struct ctl_node_delta {
	struct ctl_cep *eps_add, *eps_del;
	size_t n_eps_add, n_eps_del;
	struct ctl_cipc *ipc_add, *ipc_del;
	size_t n_ipc_add, n_ipc_del;
	struct ctl_crule *rules_add, *rules_del;
	size_t n_rules_add, n_rules_del;
};

struct ctl_compiler;

/* Creates an empty compiler. grace_s: how long an unused identity keeps its number. */
int ctl_compiler_create(struct ctl_compiler **out, unsigned long grace_s);
void ctl_compiler_destroy(struct ctl_compiler *c);

/* ---- persistent numbering (loaded from the store before the first update) ---- */

/* Known identity: labels is the canonical label text (or "cidr:PREFIX"); unused_since 0 = in use. */
int ctl_compiler_identity_load(struct ctl_compiler *c, uint32_t id, const char *labels,
			       time_t unused_since);
int ctl_compiler_rule_id_load(struct ctl_compiler *c, uint32_t id, const char *key);
/* The next numbers to hand out (at least what the loaded ids imply). */
void ctl_compiler_counters(struct ctl_compiler *c, uint32_t *next_identity, uint32_t *next_rule);
void ctl_compiler_counters_set(struct ctl_compiler *c, uint32_t next_identity, uint32_t next_rule);

/*
 * Gives dst (a new, empty compiler) every identity and rule id src knows, with the same numbers,
 * so that what dst compiles is comparable with what src did (the rule set a node held at an
 * earlier revision, compiled again).
 */
int ctl_compiler_numbering_copy(struct ctl_compiler *dst, const struct ctl_compiler *src);

/* What an update allocated or released, for the caller to persist in the same transaction. */
struct ctl_numbering_change {
	enum { CTL_NUM_IDENTITY_PUT, CTL_NUM_IDENTITY_DELETE, CTL_NUM_RULE_ID_PUT } what;
	uint32_t id;
	const char *text;     /* labels or rule key; valid until the next update */
	time_t unused_since;  /* IDENTITY_PUT */
};

/* ---- the model ---- */

/*
 * Adds or replaces the object doc names. The compiler takes doc's contents (*doc is zeroed); the
 * object it replaces, if any, moves into *old with *had_old set, so that a caller can undo by
 * putting it back. Returns -EEXIST when a workload claims an address another workload has
 * ("198.18.1.5 is already workload web-1's"), with nothing changed and doc still the caller's.
 */
int ctl_compiler_put(struct ctl_compiler *c, struct ctl_doc *doc, struct ctl_doc *old,
		     bool *had_old, struct bh_error *err);
/* Removes an object; its document moves into *old. -ENOENT if there is none. */
int ctl_compiler_delete(struct ctl_compiler *c, enum ctl_kind kind, const char *name,
			struct ctl_doc *old, struct bh_error *err);
/*
 * What enrollment gave a node: labels (the join token's, "k=v,..."; the node's host workloads
 * carry them under the Node object's labels and their own) and whether its endpoints only
 * observe. Takes effect at the next update.
 */
int ctl_compiler_node_enrolled(struct ctl_compiler *c, const char *name, const char *labels,
			       bool observe, struct bh_error *err);
/* The object of that kind and name, or NULL. */
const struct ctl_doc *ctl_compiler_get(const struct ctl_compiler *c, enum ctl_kind kind,
				       const char *name);
/* Every object of a kind, in name order; cb returning non-zero stops. */
int ctl_compiler_each(const struct ctl_compiler *c, enum ctl_kind kind,
		      int (*cb)(const struct ctl_doc *d, void *ctx), void *ctx);

/* ---- compiling ---- */

/*
 * Brings every node's rule set up to date with the model. nodes_changed (may be NULL) gets the
 * malloc'd list of the names of nodes whose rule set changed (names point into the compiler, valid
 * until the next put/delete), numbering (may be NULL) what was allocated or released. now is used
 * for identity grace periods.
 */
int ctl_compiler_update(struct ctl_compiler *c, time_t now, const char ***nodes_changed,
			size_t *n_nodes_changed, struct ctl_numbering_change **numbering,
			size_t *n_numbering, struct bh_error *err);
/* Recomputes everything from the model (same numbering): the reference for tests, and the
 * first compile after loading. numbering as for ctl_compiler_update (may be NULL). */
int ctl_compiler_recompile_all(struct ctl_compiler *c, time_t now,
			       struct ctl_numbering_change **numbering, size_t *n_numbering,
			       struct bh_error *err);

/* A node's current rule set (after the last update), or NULL if the compiler knows no such node.
 * Valid until the next update. Every node named by a workload or a Node object has one. */
const struct ctl_node_out *ctl_compiler_node(const struct ctl_compiler *c, const char *node);
/* Names of every node with a rule set, in order; cb returning non-zero stops. */
int ctl_compiler_each_node(const struct ctl_compiler *c,
			   int (*cb)(const char *node, const struct ctl_node_out *o, void *ctx),
			   void *ctx);

/* Deep copy of a rule set (endpoint strings are copied too); free with ctl_node_out_free. */
int ctl_node_out_copy(struct ctl_node_out *dst, const struct ctl_node_out *src);
void ctl_node_out_free(struct ctl_node_out *o);
/* What turns a into b. Entries point into a and b's arrays (copied structs); free with
 * ctl_node_delta_free. */
int ctl_node_out_diff(const struct ctl_node_out *a, const struct ctl_node_out *b,
		      struct ctl_node_delta *d);
void ctl_node_delta_free(struct ctl_node_delta *d);
bool ctl_node_out_equal(const struct ctl_node_out *a, const struct ctl_node_out *b);

/* ---- questions ---- */

/* The identity of a label text in use (0 if none), and the label text of an identity (NULL). */
uint32_t ctl_compiler_identity_of(const struct ctl_compiler *c, const char *labels);
const char *ctl_compiler_identity_labels(const struct ctl_compiler *c, uint32_t id);
/* The identity a workload has now (0 if unknown or before the first update). */
uint32_t ctl_compiler_workload_identity(const struct ctl_compiler *c, const char *name);
/* Every identity in use: cb(id, labels, number of workloads). */
int ctl_compiler_each_identity(const struct ctl_compiler *c,
			       int (*cb)(uint32_t id, const char *labels, size_t n_workloads,
					 time_t unused_since, void *ctx),
			       void *ctx);

/* What a rule id stands for: "policy NAME ingress allow rule 2", "default deny of identity 300
 * (ingress)". Writes into buf; returns buf, or NULL for an unknown id. policy (may be NULL) gets
 * the policy name or "". */
const char *ctl_compiler_rule_describe(const struct ctl_compiler *c, uint32_t rule_id, char *buf,
				       size_t len, const char **policy);

/* The workload that has address addr (a full-length prefix), or NULL. */
const char *ctl_compiler_workload_at(const struct ctl_compiler *c, const struct ctl_prefix *addr);

/* The rule id of a policy rule, 0 when it has none yet (not compiled, or the policy selects
 * nothing). dir: "ingress"/"egress"; action: "allow"/"deny". */
uint32_t ctl_compiler_policy_rule_id(const struct ctl_compiler *c, const char *policy,
				     const char *dir, const char *action, size_t index);

/*
 * What the datapath of node `node` decides for a packet from workload `from` (or, when from is
 * NULL, from address from_addr) to workload `to` (or to_addr) with protocol proto and port,
 * computed from the same compiled rule sets the agents get: egress at the source's node when the
 * source is a workload, then ingress at the destination's node. Writes a human explanation into
 * why. Returns CTL_VERDICT_ALLOW or CTL_VERDICT_DENY (and whether observe mode would let it pass
 * in *observed), or a negative errno with why saying what was unknown.
 */
int ctl_compiler_explain(const struct ctl_compiler *c, const char *from,
			 const struct ctl_prefix *from_addr, const char *to,
			 const struct ctl_prefix *to_addr, uint8_t proto, uint16_t port,
			 bool *observed, char *why, size_t len);

#endif
