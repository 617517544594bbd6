/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's store: one SQLite database (DIR/bulkhead.db) in WAL mode with foreign keys on
 * and synchronous=FULL, so that a change the controller acknowledged survives kill -9 and power
 * loss. The schema is versioned (PRAGMA user_version) and migrations run at open, in order, each in
 * its own transaction. Every mutating function is one transaction. All functions run on the
 * controller's loop thread (the store is not shared between threads).
 *
 * This slice holds what enrollment needs: join tokens, nodes, issued certificates. The controller
 * issue grows the schema (workloads, labels, policies, identities, revisions) with new migrations.
 */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <stdbool.h>
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

/* ---- transactions ---- */

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK, for callers that group several calls into one change
 * (e.g. consume a token + enroll the node + record the certificate). */
int ctl_store_begin(struct ctl_store *st, struct bh_error *err);
int ctl_store_commit(struct ctl_store *st, struct bh_error *err);
void ctl_store_rollback(struct ctl_store *st);

#endif
