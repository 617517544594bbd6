/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's store: one SQLite database (DIR/bulkhead.db) in WAL mode with foreign keys on
 * and synchronous=FULL, so that a change the controller acknowledged survives kill -9 and power
 * loss. The schema is versioned (PRAGMA user_version) and migrations run at open, in order, each in
 * its own transaction. Every mutating function is one transaction. All functions run on the
 * controller's loop thread (the store is not shared between threads).
 *
 * Schema 1 holds what enrollment needs: join tokens, nodes, issued certificates. Schema 2 holds the
 * policy state: the operator's objects, versioned by revision; the identities of label sets; the
 * ids of compiled rules; and named counters that hand those ids out, never twice.
 */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bulkhead/error.h"

struct ctl_store;

/* Opens (creating if needed) DIR/bulkhead.db, applies pending migrations. */
int ctl_store_open(struct ctl_store **out, const char *dir, struct bh_error *err);
/* Closes; takes NULL. */
void ctl_store_close(struct ctl_store *st);
/* Schema version after migrations. */
int ctl_store_schema_version(struct ctl_store *st);

/* ---- join tokens ---- */

struct ctl_token {
	char id[17];		 /* public token id: 16 lower-case hex */
	time_t created;
	time_t expires;
	int uses_left;		 /* -1: unlimited until expiry */
	bool revoked;
	char labels[512];	 /* "k=v,k2=v2" given to nodes that join with it */
	char mode[16];		 /* "enforce" / "observe" / "" */
};

/* Stores a token: id and the SHA-256 of its secret (hex, 64 chars; the secret itself is never
 * stored). uses: N > 0, or -1 for unlimited. */
int ctl_store_token_add(struct ctl_store *st, const char *id, const char *secret_sha256_hex,
			time_t expires, int uses, const char *labels, const char *mode,
			struct bh_error *err);

/*
 * Checks a presented token against the store and consumes one use, atomically (one IMMEDIATE
 * transaction: two enrollments racing for a single-use token cannot both succeed). The secret is
 * compared by hash in constant time. On success fills tok (as it was before the use) and returns
 * 0. Errors, each with a message that says which: -ENOENT unknown id, -EACCES wrong secret,
 * -EKEYEXPIRED expired, -EKEYREVOKED revoked, -EUSERS used up.
 */
int ctl_store_token_consume(struct ctl_store *st, const char *id, const char *secret_sha256_hex,
			    time_t now, struct ctl_token *tok, struct bh_error *err);

/* Marks a token revoked. -ENOENT if unknown. */
int ctl_store_token_revoke(struct ctl_store *st, const char *id, struct bh_error *err);

/* Calls cb for every token (newest first); cb returning non-zero stops. */
int ctl_store_token_list(struct ctl_store *st, int (*cb)(const struct ctl_token *t, void *ctx),
			 void *ctx);

/* ---- nodes ---- */

struct ctl_node {
	char name[65];
	char key_sha256[72];	/* "sha256:<hex>" of the node's public key (DER SubjectPublicKeyInfo) */
	char labels[512];
	char mode[16];
	time_t created;
	bool revoked;
};

/*
 * Records the node, or confirms it: a new name is inserted; an existing name with the same key is
 * fine (enrollment is idempotent for the same node and key); an existing name with another key
 * is -EEXIST ("node NAME is enrolled with another key"); a revoked node is -EKEYREVOKED.
 * Runs inside the caller's transaction if one is open (see ctl_store_begin).
 */
int ctl_store_node_enroll(struct ctl_store *st, const char *name, const char *key_sha256,
			  const char *labels, const char *mode, time_t now, struct bh_error *err);

int ctl_store_node_get(struct ctl_store *st, const char *name, struct ctl_node *out);
int ctl_store_node_list(struct ctl_store *st, int (*cb)(const struct ctl_node *n, void *ctx),
			void *ctx);

/* Marks the node revoked and every agent certificate issued to it (an operator's certificate of
 * the same name is not the node's); -ENOENT if unknown. */
int ctl_store_node_revoke(struct ctl_store *st, const char *name, time_t now,
			  struct bh_error *err);

/* ---- certificates ---- */

struct ctl_cert {
	char serial[41];
	char name[65];
	char role[16];
	time_t not_after;
	bool revoked;
};

/* Records an issued certificate. */
int ctl_store_cert_add(struct ctl_store *st, const char *serial, const char *name,
		       const char *role, time_t not_after, struct bh_error *err);
/* Revokes one certificate by serial; -ENOENT if unknown. */
int ctl_store_cert_revoke(struct ctl_store *st, const char *serial, time_t now,
			  struct bh_error *err);
/* Calls cb for every revoked certificate that has not expired by now (the CRL's content). */
int ctl_store_cert_revoked(struct ctl_store *st, time_t now,
			   int (*cb)(const struct ctl_cert *c, void *ctx), void *ctx);
/* Calls cb for every certificate of a name. */
int ctl_store_cert_list(struct ctl_store *st, const char *name,
			int (*cb)(const struct ctl_cert *c, void *ctx), void *ctx);

/* ---- objects and revisions ---- */

/*
 * The operator's documents (kinds "Policy", "Workload", "Node"), each stored as the canonical JSON
 * text the caller made: the store compares bodies byte for byte and never parses them. Every change
 * that is accepted makes a new revision of the whole set; revision ids are 1, 2, 3... with no gap,
 * and the state at any past revision can be read back.
 */

#define CTL_OBJECT_KIND_MAX 31	/* characters in a kind */
#define CTL_OBJECT_NAME_MAX 253 /* characters in a name */

/* One change of a commit: body is the new text, or NULL to delete the object. */
struct ctl_object_change {
	const char *kind;
	const char *name;
	const char *body;
};

struct ctl_revision {
	uint64_t id;
	time_t created;
	char author[65];
	char summary[256];
	unsigned n_changes; /* objects created, changed or deleted (no-ops not counted) */
};

/*
 * Applies n changes as one new revision. A change whose body equals the live body is a no-op; if
 * every change is one, no revision is made (*rev = 0, return 0). Otherwise the new revision is the
 * current one + 1, it is written to *rev, and its n_changes counts the changes that were not
 * no-ops. All or nothing: a delete of an object that does not exist is -ENOENT ("Policy x does not
 * exist") and nothing is applied; the same (kind, name) twice in one call is -EINVAL; an empty
 * kind, name or body ("" is not a delete: use NULL) or one too long, or an author or summary that
 * does not fit struct ctl_revision, is -EINVAL.
 *
 * Runs inside the caller's transaction if one is open (see ctl_store_begin): then *rev is the
 * revision the caller's COMMIT will make, and nothing is durable before it; a failure takes back
 * this call's writes only (the caller's transaction stays open, as it was before the call). The
 * store keeps no pointer to ch or its strings. rev may be NULL.
 */
int ctl_store_revision_commit(struct ctl_store *st, const struct ctl_object_change *ch, size_t n,
			      const char *author, const char *summary, time_t now, uint64_t *rev,
			      struct bh_error *err);

/* The newest revision, 0 on an empty store. A read error is logged and also gives 0. */
uint64_t ctl_store_revision_current(struct ctl_store *st);

/* Calls cb for the newest limit revisions (all if limit is 0), newest first; cb returning non-zero
 * stops the walk and its value is returned. */
int ctl_store_revision_list(struct ctl_store *st, unsigned limit,
			    int (*cb)(const struct ctl_revision *r, void *ctx), void *ctx);

/* Fills out with revision id. -ENOENT if there is no such revision. */
int ctl_store_revision_get(struct ctl_store *st, uint64_t id, struct ctl_revision *out);

/*
 * Calls cb for every object live at revision rev (0: the current one), of one kind (NULL: all
 * kinds), in (kind, name) order. The strings are valid during the call only. cb returning non-zero
 * stops the walk and its value is returned. -ENOENT if rev is not 0 and no such revision exists
 * (an empty store has no objects at revision 0, and that is not an error).
 */
int ctl_store_objects_at(struct ctl_store *st, uint64_t rev, const char *kind,
			 int (*cb)(const char *kind, const char *name, const char *body, void *ctx),
			 void *ctx);

/*
 * The body of one object at revision rev (0: the current one). On success *body is a malloc'd
 * copy the caller frees. -ENOENT (with a message) if the object did not exist at rev, or rev does
 * not exist; *body is then untouched.
 */
int ctl_store_object_get(struct ctl_store *st, const char *kind, const char *name, uint64_t rev,
			 char **body, struct bh_error *err);

/*
 * What revision rev changed relative to rev - 1: cb gets, in (kind, name) order, each object rev
 * touched with its body before (NULL: it was created) and after (NULL: it was deleted). The
 * strings are valid during the call only; cb returning non-zero stops the walk and its value is
 * returned. -ENOENT if no such revision exists.
 */
int ctl_store_revision_changes(struct ctl_store *st, uint64_t rev,
			       int (*cb)(const char *kind, const char *name, const char *old_body,
					 const char *new_body, void *ctx),
			       void *ctx);

/* ---- counters, identities, rule ids ---- */

/* Counter names and first values: identity ids 1..255 are reserved (as in Cilium). */
#define CTL_COUNTER_IDENTITY "identity"
#define CTL_IDENTITY_FIRST   256
#define CTL_COUNTER_RULE_ID  "rule_id"
#define CTL_RULE_ID_FIRST    256

/*
 * The next value of the named counter: first on its first use, then one more than the last value
 * it gave (and never below first), persisted before it is returned. A value is never given twice,
 * whatever is deleted, across restarts, unless the transaction that took it rolls back: inside the
 * caller's transaction (ctl_store_begin), the value is the caller's only once its COMMIT succeeds.
 * -EINVAL for an empty or too long name (64 characters at most) or first > INT64_MAX;
 * -EOVERFLOW once the counter reached INT64_MAX.
 */
int ctl_store_counter_next(struct ctl_store *st, const char *name, uint64_t first, uint64_t *out,
			   struct bh_error *err);

/*
 * For a caller that numbers in memory (the compiler) and persists its own next value: peek gives
 * the value the counter would give next, ignoring first (one more than the last value given or
 * reserved); -ENOENT if the counter was never used, and a store error is logged. raise reserves
 * every value below next: the counter's next value becomes at least next and never goes down
 * (next 0 reserves nothing). raise runs inside the caller's transaction if one is open; -EINVAL
 * for a bad name or next > INT64_MAX + 1.
 */
int ctl_store_counter_peek(struct ctl_store *st, const char *name, uint64_t *next);
int ctl_store_counter_raise(struct ctl_store *st, const char *name, uint64_t next,
			    struct bh_error *err);

/*
 * Identities: the numeric id of a label set (its canonical text, "app=web,env=prod"; "" is the
 * empty set). Ids come from ctl_store_counter_next(CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST).
 * Calls cb for every identity in id order, with unused_since 0 for one in use; cb returning
 * non-zero stops the walk and its value is returned.
 */
int ctl_store_identity_load(struct ctl_store *st,
			    int (*cb)(uint32_t id, const char *labels, time_t unused_since,
				      void *ctx),
			    void *ctx);

/*
 * Records identity id for labels, or updates its unused_since (0: in use; otherwise when it stopped
 * being used, for garbage collection). An id stands for one label set for ever: an id already
 * recorded with other labels, or labels already recorded under another id, is -EEXIST. id 0 or
 * NULL labels is -EINVAL. Runs inside the caller's transaction if one is open.
 */
int ctl_store_identity_put(struct ctl_store *st, uint32_t id, const char *labels,
			   time_t unused_since, struct bh_error *err);

/* Deletes identity id (its id is never given again). -ENOENT if unknown. Runs inside the
 * caller's transaction if one is open. */
int ctl_store_identity_delete(struct ctl_store *st, uint32_t id, struct bh_error *err);

/*
 * Rule ids: the stable numeric id of a compiled rule, by the key the compiler makes for it
 * ("policy/api-from-web/ingress/allow/0", "default/ingress/300"). Ids come from
 * ctl_store_counter_next(CTL_COUNTER_RULE_ID, CTL_RULE_ID_FIRST). Calls cb for every rule id in id
 * order; cb returning non-zero stops the walk and its value is returned.
 */
int ctl_store_rule_id_load(struct ctl_store *st, int (*cb)(uint32_t id, const char *key, void *ctx),
			   void *ctx);

/*
 * Records rule id for key. Recording the same pair again is fine; an id already recorded with
 * another key, or a key already recorded under another id, is -EEXIST. id 0 or an empty key is
 * -EINVAL. Runs inside the caller's transaction if one is open.
 */
int ctl_store_rule_id_put(struct ctl_store *st, uint32_t id, const char *key, struct bh_error *err);

/* Deletes rule id (its id is never given again). -ENOENT if unknown. Runs inside the caller's
 * transaction if one is open. */
int ctl_store_rule_id_delete(struct ctl_store *st, uint32_t id, struct bh_error *err);

/* ---- transactions ---- */

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK, for callers that group several calls into one change
 * (e.g. consume a token + enroll the node + record the certificate). */
int ctl_store_begin(struct ctl_store *st, struct bh_error *err);
int ctl_store_commit(struct ctl_store *st, struct bh_error *err);
void ctl_store_rollback(struct ctl_store *st);

#endif
