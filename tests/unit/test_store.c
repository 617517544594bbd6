// SPDX-License-Identifier: Apache-2.0
/*
 * The controller store against a real SQLite file: schema and migrations (from a version 1 store as
 * the field has them), join tokens (every refusal), nodes, certificates, transactions, a consume
 * race between processes and durability across a process that dies without closing; versioned
 * objects and revisions (history, changes, commits inside a caller's transaction, 20,000 objects,
 * a writer killed mid-stream), identities, rule ids and counters. Each case gets its own directory
 * under one mkdtemp
 * directory, which a supervising parent process removes whatever happens to the cases (a failed
 * assertion, a crash, a sanitizer abort).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bulkhead/log.h"
#include "bulkhead/util.h"
#include "store.h"
#include "tap.h"

static char root[] = "/tmp/bh-test-store-XXXXXX";
static int case_no;

/* secret hashes as the enrollment code would compute them (SHA-256 hex of the secret) */
#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbf9f2b3a5f6a9f"
#define KEY_1  "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_2  "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define TOK_1  "0123456789abcdef"
#define TOK_2  "fedcba9876543210"

/* A fresh directory for one case. */
static const char *case_dir(char *buf, size_t len)
{
	snprintf(buf, len, "%s/case-%d", root, ++case_no);
	if (mkdir(buf, 0700) < 0) {
		fprintf(stderr, "    mkdir %s: %s\n", buf, strerror(errno));
		return NULL;
	}
	return buf;
}

static int open_fresh(char *dir, size_t len, struct ctl_store **st)
{
	struct bh_error err = {0};

	if (!case_dir(dir, len))
		return -EIO;
	if (ctl_store_open(st, dir, &err)) {
		fprintf(stderr, "    open %s: %s\n", dir, err.msg);
		return err.code ? err.code : -EIO;
	}
	return 0;
}

static int raw_int(const char *dir, const char *sql, int *out)
{
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/bulkhead.db", dir);
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* Runs sql (several statements) on the database file of dir, outside the store. */
static int raw_exec(const char *dir, const char *sql)
{
	char path[512];
	sqlite3 *db = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/bulkhead.db", dir);
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "    raw sql: %s\n", db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* ---- list collectors ---- */

struct tokens_seen {
	int n;
	struct ctl_token t[8];
	int stop_after; /* return 7 from the callback after this many, 0: never */
};

static int collect_token(const struct ctl_token *t, void *ctx)
{
	struct tokens_seen *seen = ctx;

	if (seen->n < (int)BH_ARRAY_SIZE(seen->t))
		seen->t[seen->n] = *t;
	seen->n++;
	return seen->stop_after && seen->n >= seen->stop_after ? 7 : 0;
}

static int find_token(struct ctl_store *st, const char *id, struct ctl_token *out)
{
	struct tokens_seen seen = {0};

	if (ctl_store_token_list(st, collect_token, &seen))
		return -EIO;
	for (int i = 0; i < seen.n && i < (int)BH_ARRAY_SIZE(seen.t); i++)
		if (strcmp(seen.t[i].id, id) == 0) {
			*out = seen.t[i];
			return 0;
		}
	return -ENOENT;
}

struct certs_seen {
	int n, revoked;
	struct ctl_cert c[8];
};

static int collect_cert(const struct ctl_cert *c, void *ctx)
{
	struct certs_seen *seen = ctx;

	if (seen->n < (int)BH_ARRAY_SIZE(seen->c))
		seen->c[seen->n] = *c;
	seen->n++;
	seen->revoked += c->revoked;
	return 0;
}

static int count_node(const struct ctl_node *n, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

/* ---- schema ---- */

static int t_open_creates_schema(void)
{
	char dir[256], path[300];
	struct ctl_store *st;
	struct stat sb;
	int v = -1, tables = 0;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_schema_version(st) == 2, "version %d", ctl_store_schema_version(st));
	T_ASSERT(ctl_store_revision_current(st) == 0, "empty store: revision 0");
	snprintf(path, sizeof(path), "%s/bulkhead.db", dir);
	T_ASSERT(stat(path, &sb) == 0, "%s exists", path);
	T_ASSERT((sb.st_mode & 0777) == 0600, "mode %04o", (unsigned)(sb.st_mode & 0777));
	ctl_store_close(st);

	T_ASSERT(raw_int(dir, "PRAGMA user_version", &v) == 0 && v == 2, "user_version %d", v);
	T_ASSERT(raw_int(dir,
			 "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
			 "('tokens', 'nodes', 'certs', 'revisions', 'objects', 'identities', "
			 "'rule_ids', 'meta')",
			 &tables) == 0 &&
			 tables == 8,
		 "%d of 8 tables", tables);
	T_ASSERT(raw_int(dir, "SELECT journal_mode = 'wal' FROM pragma_journal_mode", &v) == 0 &&
			 v == 1,
		 "WAL journal");
	return 0;
}

static int t_reopen_keeps_data(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	struct ctl_node n;
	struct certs_seen certs = {0};
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now + 3600, 3, "env=prod", "observe",
				     &err) == 0,
		 "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "n1", KEY_1, "rack=a", "enforce", now, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_cert_add(st, "0A1B", "n1", "agent", now + 86400, &err) == 0, "%s",
		 err.msg);
	ctl_store_close(st);

	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "reopen: %s", err.msg);
	T_ASSERT(ctl_store_schema_version(st) == 2, "version %d", ctl_store_schema_version(st));
	T_ASSERT(find_token(st, TOK_1, &t) == 0, "token kept");
	T_ASSERT(t.uses_left == 3 && t.expires == now + 3600 && !t.revoked, "token fields");
	T_ASSERT(strcmp(t.labels, "env=prod") == 0 && strcmp(t.mode, "observe") == 0, "%s %s",
		 t.labels, t.mode);
	T_ASSERT(ctl_store_node_get(st, "n1", &n) == 0, "node kept");
	T_ASSERT(strcmp(n.key_sha256, KEY_1) == 0 && strcmp(n.labels, "rack=a") == 0 &&
			 strcmp(n.mode, "enforce") == 0 && n.created == now && !n.revoked,
		 "node fields");
	T_ASSERT(ctl_store_cert_list(st, "n1", collect_cert, &certs) == 0 && certs.n == 1, "cert");
	T_ASSERT(strcmp(certs.c[0].serial, "0A1B") == 0 && strcmp(certs.c[0].role, "agent") == 0 &&
			 certs.c[0].not_after == now + 86400,
		 "cert fields");
	ctl_store_close(st);
	return 0;
}

static int t_newer_schema_refused(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	int ignored;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	ctl_store_close(st);
	T_ASSERT(raw_int(dir, "PRAGMA user_version = 99", &ignored) == 0, "set version");
	T_ASSERT(ctl_store_open(&st, dir, &err) == -ENOTSUP, "code %d: %s", err.code, err.msg);
	T_ASSERT(strstr(err.msg, "schema version 99"), "%s", err.msg);
	return 0;
}

static int t_open_errors(void)
{
	char dir[256], path[300], missing[300];
	struct ctl_store *st;
	struct bh_error err = {0};
	FILE *f = NULL;
	int fd;

	T_ASSERT(case_dir(dir, sizeof(dir)), "dir");
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	T_ASSERT(ctl_store_open(&st, missing, &err) == -ENOENT, "code %d: %s", err.code, err.msg);
	T_ASSERT(strstr(err.msg, missing), "names the path: %s", err.msg);

	bh_error_clear(&err);
	snprintf(path, sizeof(path), "%s/bulkhead.db", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	T_ASSERT(fd >= 0 && (f = fdopen(fd, "w")), "create %s", path);
	for (int i = 0; i < 256; i++)
		fputs("this is not an SQLite database. ", f);
	fclose(f);
	T_ASSERT(ctl_store_open(&st, dir, &err) == -EUCLEAN, "code %d: %s", err.code, err.msg);
	T_ASSERT(strstr(err.msg, "SQLITE_NOTADB"), "names the cause: %s", err.msg);
	return 0;
}

/* ---- join tokens ---- */

static int t_token_uses(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now + 600, 2, "a=b", "", &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == 0, "%s", err.msg);
	T_ASSERT(t.uses_left == 2, "as before the use: %d", t.uses_left);
	T_ASSERT(strcmp(t.id, TOK_1) == 0 && strcmp(t.labels, "a=b") == 0, "fields");
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == 0, "%s", err.msg);
	T_ASSERT(t.uses_left == 1, "second use: %d", t.uses_left);
	T_ASSERT(find_token(st, TOK_1, &t) == 0 && t.uses_left == 0, "stored %d", t.uses_left);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == -EUSERS, "code %d",
		 err.code);
	T_ASSERT(strstr(err.msg, TOK_1) && strstr(err.msg, "used up"), "%s", err.msg);

	/* unlimited: -1 stays -1; the hash may come in upper case */
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_2, HASH_B, now + 600, -1, NULL, NULL, &err) == 0, "%s",
		 err.msg);
	for (int i = 0; i < 5; i++) {
		T_ASSERT(ctl_store_token_consume(st, TOK_2,
						 "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C07"
						 "6DBF9F2B3A5F6A9F",
						 now, &t, &err) == 0,
			 "use %d: %s", i, err.msg);
		T_ASSERT(t.uses_left == -1, "unlimited: %d", t.uses_left);
	}
	ctl_store_close(st);
	return 0;
}

static int t_token_wrong_secret(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now + 600, 1, "", "", &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_B, now, &t, &err) == -EACCES, "code %d",
		 err.code);
	T_ASSERT(strstr(err.msg, TOK_1) && strstr(err.msg, "wrong secret"), "%s", err.msg);
	/* a wrong guess costs no use */
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == 0, "%s", err.msg);
	/* a malformed hash is the caller's bug, not a guess */
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, "xyz", now, &t, &err) == -EINVAL, "code %d",
		 err.code);
	ctl_store_close(st);
	return 0;
}

static int t_token_expired(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now - 1, 5, "", "", &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == -EKEYEXPIRED,
		 "code %d", err.code);
	T_ASSERT(strstr(err.msg, TOK_1) && strstr(err.msg, "expired"), "%s", err.msg);
	/* a token is dead at its expiry second, alive the second before */
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now - 1, &t, &err) == -EKEYEXPIRED,
		 "at expiry: %d", err.code);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now - 2, &t, &err) == 0, "%s", err.msg);
	/* the secret is checked first: without it, nothing is learnt about the token */
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_B, now, &t, &err) == -EACCES, "code %d",
		 err.code);
	ctl_store_close(st);
	return 0;
}

static int t_token_revoked(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now + 600, -1, "", "", &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_token_revoke(st, TOK_1, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == -EKEYREVOKED,
		 "code %d", err.code);
	T_ASSERT(strstr(err.msg, TOK_1) && strstr(err.msg, "revoked"), "%s", err.msg);
	T_ASSERT(find_token(st, TOK_1, &t) == 0 && t.revoked, "listed as revoked");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_revoke(st, TOK_2, &err) == -ENOENT, "unknown: %d", err.code);
	ctl_store_close(st);
	return 0;
}

static int t_token_unknown(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_consume(st, TOK_2, HASH_A, time(NULL), &t, &err) == -ENOENT,
		 "code %d", err.code);
	T_ASSERT(strstr(err.msg, TOK_2) && strstr(err.msg, "unknown"), "%s", err.msg);
	/* an id from the network that is not an id: refused, and not echoed */
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, "x' OR 1=1 --\n", HASH_A, time(NULL), &t, &err) ==
			 -ENOENT,
		 "code %d", err.code);
	T_ASSERT(!strstr(err.msg, "OR 1=1"), "%s", err.msg);
	ctl_store_close(st);
	return 0;
}

static int t_token_replay(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now + 600, 1, "", "", &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == -EUSERS, "replay: %d",
		 err.code);
	ctl_store_close(st);
	return 0;
}

static int t_token_bad_input(void)
{
	char dir[256], labels[600];
	struct ctl_store *st;
	struct bh_error err = {0};
	time_t exp = time(NULL) + 60;

	memset(labels, 'a', sizeof(labels) - 1);
	labels[sizeof(labels) - 1] = '\0';
	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, "0123", HASH_A, exp, 1, "", "", &err) == -EINVAL, "id");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, "0123456789ABCDEF", HASH_A, exp, 1, "", "", &err) ==
			 -EINVAL,
		 "upper-case id");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_1, "abc", exp, 1, "", "", &err) == -EINVAL, "hash");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, exp, 0, "", "", &err) == -EINVAL, "uses 0");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, exp, -2, "", "", &err) == -EINVAL,
		 "uses -2");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, exp, 1, "", "bogus", &err) == -EINVAL,
		 "mode");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, exp, 1, labels, "", &err) == -EINVAL,
		 "labels too long");
	T_ASSERT(strstr(err.msg, "too long"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, exp, 1, "", "", &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_B, exp, 1, "", "", &err) == -EEXIST,
		 "duplicate: %d", err.code);
	T_ASSERT(strstr(err.msg, TOK_1), "%s", err.msg);
	ctl_store_close(st);
	return 0;
}

static int t_token_list(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct tokens_seen seen = {0};
	time_t exp = time(NULL) + 60;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, exp, 1, "", "", &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_token_add(st, TOK_2, HASH_A, exp, 1, "", "", &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_token_list(st, collect_token, &seen) == 0 && seen.n == 2, "n %d",
		 seen.n);
	T_ASSERT(strcmp(seen.t[0].id, TOK_2) == 0, "newest first: %s", seen.t[0].id);
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 1;
	T_ASSERT(ctl_store_token_list(st, collect_token, &seen) == 7 && seen.n == 1,
		 "callback stops the walk and its value is returned");
	ctl_store_close(st);
	return 0;
}

/*
 * Separate processes, separate connections to one file, all released at once on one single-use
 * token: exactly one may win, the others must see it used up (not busy, not a second success).
 */
#define RACERS 8
#define ROUNDS 4

static void race_child(const char *dir, const char *id, int gate)
{
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	char c;
	int ret;

	if (ctl_store_open(&st, dir, &err))
		_exit(3);
	/* blocks until the parent closes the write end: everybody starts together */
	if (read(gate, &c, 1) < 0)
		_exit(4);
	ret = ctl_store_token_consume(st, id, HASH_A, time(NULL), &t, &err);
	ctl_store_close(st);
	_exit(ret == 0 ? 0 : ret == -EUSERS ? 1 : 2);
}

static int t_consume_race(void)
{
	char dir[256], id[17];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	for (int r = 0; r < ROUNDS; r++) {
		snprintf(id, sizeof(id), "00000000000000%02x", r);
		T_ASSERT(ctl_store_token_add(st, id, HASH_A, time(NULL) + 600, 1, "", "", &err) ==
				 0,
			 "%s", err.msg);
	}
	/* no connection crosses a fork */
	ctl_store_close(st);

	for (int r = 0; r < ROUNDS; r++) {
		pid_t pids[RACERS];
		int gate[2], wins = 0, used_up = 0, other = 0;

		snprintf(id, sizeof(id), "00000000000000%02x", r);
		T_ASSERT(pipe(gate) == 0, "pipe");
		fflush(NULL);
		for (int i = 0; i < RACERS; i++) {
			pids[i] = fork();
			if (pids[i] == 0) {
				close(gate[1]);
				race_child(dir, id, gate[0]);
			}
			T_ASSERT(pids[i] > 0, "fork");
		}
		close(gate[0]);
		usleep(50 * 1000); /* let them all open and block on the gate */
		close(gate[1]);
		for (int i = 0; i < RACERS; i++) {
			int status;

			T_ASSERT(waitpid(pids[i], &status, 0) == pids[i], "wait");
			if (!WIFEXITED(status))
				other++;
			else if (WEXITSTATUS(status) == 0)
				wins++;
			else if (WEXITSTATUS(status) == 1)
				used_up++;
			else
				other++;
		}
		T_ASSERT(wins == 1 && used_up == RACERS - 1 && other == 0,
			 "round %d: %d won, %d used up, %d other", r, wins, used_up, other);
	}

	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	T_ASSERT(find_token(st, "0000000000000000", &t) == 0 && t.uses_left == 0, "left %d",
		 t.uses_left);
	ctl_store_close(st);
	return 0;
}

/* ---- nodes and certificates ---- */

static int t_node_enroll(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_node n;
	time_t now = time(NULL);
	int count = 0;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_node_enroll(st, "web-1", KEY_1, "app=web", "enforce", now, &err) == 0,
		 "%s", err.msg);
	/* again with the same key: fine, nothing changes */
	T_ASSERT(ctl_store_node_enroll(st, "web-1", KEY_1, "app=other", "observe", now + 5, &err) ==
			 0,
		 "idempotent: %s", err.msg);
	T_ASSERT(ctl_store_node_get(st, "web-1", &n) == 0, "get");
	T_ASSERT(strcmp(n.labels, "app=web") == 0 && n.created == now, "first enrollment kept");
	/* another key for the same name */
	T_ASSERT(ctl_store_node_enroll(st, "web-1", KEY_2, "", "", now, &err) == -EEXIST, "code %d",
		 err.code);
	T_ASSERT(strstr(err.msg, "node web-1 is enrolled with another key"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_node_enroll(st, "db-1", "sha256:nothex", "", "", now, &err) == -EINVAL,
		 "malformed key");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_node_enroll(st, "", KEY_1, "", "", now, &err) == -EINVAL, "empty name");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_node_get(st, "nope", &n) == -ENOENT, "unknown");
	T_ASSERT(ctl_store_node_list(st, count_node, &count) == 0 && count == 1, "list %d", count);

	/* a revoked node cannot come back, not even with its own key */
	T_ASSERT(ctl_store_node_revoke(st, "web-1", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "web-1", KEY_1, "", "", now, &err) == -EKEYREVOKED,
		 "code %d", err.code);
	T_ASSERT(strstr(err.msg, "web-1") && strstr(err.msg, "revoked"), "%s", err.msg);
	T_ASSERT(ctl_store_node_get(st, "web-1", &n) == 0 && n.revoked, "marked revoked");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_node_revoke(st, "nope", now, &err) == -ENOENT, "unknown: %d", err.code);
	ctl_store_close(st);
	return 0;
}

static int t_node_revoke_certs(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct certs_seen mine = {0}, other = {0}, crl = {0};
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_node_enroll(st, "a", KEY_1, "", "", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "b", KEY_2, "", "", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "01", "a", "agent", now + 100, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "02", "a", "agent", now + 200, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "03", "b", "agent", now + 200, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_revoke(st, "a", now, &err) == 0, "%s", err.msg);

	T_ASSERT(ctl_store_cert_list(st, "a", collect_cert, &mine) == 0, "list a");
	T_ASSERT(mine.n == 2 && mine.revoked == 2, "a: %d certs, %d revoked", mine.n, mine.revoked);
	T_ASSERT(ctl_store_cert_list(st, "b", collect_cert, &other) == 0, "list b");
	T_ASSERT(other.n == 1 && other.revoked == 0, "b untouched");
	T_ASSERT(ctl_store_cert_revoked(st, now, collect_cert, &crl) == 0 && crl.n == 2, "crl %d",
		 crl.n);
	ctl_store_close(st);
	return 0;
}

static int t_certs(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct certs_seen crl = {0};
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_cert_add(st, "0abc", "op", "operator", now + 100, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_cert_add(st, "0abd", "n", "agent", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "0abe", "n", "agent", now - 1, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "0abf", "n", "agent", now + 100, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "0abc", "x", "agent", now, &err) == -EEXIST, "duplicate");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_cert_add(st, "not hex", "x", "agent", now, &err) == -EINVAL, "serial");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_cert_add(st, "0ac0", "x", "", now, &err) == -EINVAL, "empty role");
	bh_error_clear(&err);

	T_ASSERT(ctl_store_cert_revoke(st, "0abc", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_revoke(st, "0abc", now + 9, &err) == 0, "twice: %s", err.msg);
	T_ASSERT(ctl_store_cert_revoke(st, "0abd", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_revoke(st, "0abe", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_revoke(st, "ffff", now, &err) == -ENOENT, "unknown: %d", err.code);
	T_ASSERT(strstr(err.msg, "ffff"), "%s", err.msg);

	/* 0abe expired before now: a CRL need not carry it; 0abd is valid through now */
	T_ASSERT(ctl_store_cert_revoked(st, now, collect_cert, &crl) == 0, "crl");
	T_ASSERT(crl.n == 2, "%d listed", crl.n);
	T_ASSERT(strcmp(crl.c[0].serial, "0abd") == 0 && strcmp(crl.c[1].serial, "0abc") == 0,
		 "%s %s", crl.c[0].serial, crl.c[1].serial);
	T_ASSERT(crl.c[1].revoked && strcmp(crl.c[1].role, "operator") == 0, "fields");
	memset(&crl, 0, sizeof(crl));
	T_ASSERT(ctl_store_cert_revoked(st, now + 101, collect_cert, &crl) == 0 && crl.n == 0,
		 "all expired: %d", crl.n);
	ctl_store_close(st);
	return 0;
}

/* ---- transactions and durability ---- */

static int t_rollback_leaves_nothing(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	struct ctl_node n;
	struct certs_seen certs = {0};
	time_t now = time(NULL);

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_token_add(st, TOK_1, HASH_A, now + 600, 1, "", "", &err) == 0, "%s",
		 err.msg);

	/* one enrollment: consume + enroll + record the certificate, then thrown away */
	T_ASSERT(ctl_store_begin(st, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_begin(st, &err) == -EALREADY, "nested begin: %d", err.code);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "n1", KEY_1, "", "", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "aa", "n1", "agent", now + 60, &err) == 0, "%s", err.msg);
	/* a failing call inside the transaction does not end it */
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == -EUSERS, "in tx");
	bh_error_clear(&err);
	ctl_store_rollback(st);

	T_ASSERT(find_token(st, TOK_1, &t) == 0 && t.uses_left == 1, "use given back: %d",
		 t.uses_left);
	T_ASSERT(ctl_store_node_get(st, "n1", &n) == -ENOENT, "no node");
	T_ASSERT(ctl_store_cert_list(st, "n1", collect_cert, &certs) == 0 && certs.n == 0,
		 "no cert");
	T_ASSERT(ctl_store_commit(st, &err) == -EINVAL, "commit without begin");
	bh_error_clear(&err);

	/* the same, committed, survives a reopen */
	T_ASSERT(ctl_store_begin(st, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, now, &t, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "n1", KEY_1, "", "", now, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_cert_add(st, "aa", "n1", "agent", now + 60, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_commit(st, &err) == 0, "%s", err.msg);
	ctl_store_close(st);
	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	T_ASSERT(find_token(st, TOK_1, &t) == 0 && t.uses_left == 0, "used: %d", t.uses_left);
	T_ASSERT(ctl_store_node_get(st, "n1", &n) == 0, "node");
	T_ASSERT(ctl_store_cert_list(st, "n1", collect_cert, &certs) == 0 && certs.n == 1, "cert");
	ctl_store_close(st);
	return 0;
}

static int t_durable_without_close(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	pid_t pid;
	int status;

	T_ASSERT(case_dir(dir, sizeof(dir)), "dir");
	fflush(NULL);
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		if (ctl_store_open(&st, dir, &err) ||
		    ctl_store_token_add(st, TOK_1, HASH_A, time(NULL) + 600, 1, "", "", &err))
			_exit(1);
		/* acknowledged, then gone: no close, no exit handlers, no checkpoint */
		_exit(0);
	}
	T_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "child status %d", status);
	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	T_ASSERT(find_token(st, TOK_1, &t) == 0, "token survived");
	T_ASSERT(ctl_store_token_consume(st, TOK_1, HASH_A, time(NULL), &t, &err) == 0, "%s",
		 err.msg);
	ctl_store_close(st);
	return 0;
}

/* ---- migration from schema 1 ---- */

/* Migration 1 as the field ran it (frozen here on purpose: a store made by the first controller
 * must keep opening, whatever later edits do to store.c). */
static const char v1_schema[] =
	"PRAGMA journal_mode = WAL;"
	"BEGIN;"
	"CREATE TABLE tokens (id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, created INTEGER,"
	" expires INTEGER, uses_left INTEGER, revoked INTEGER, labels TEXT, mode TEXT);"
	"CREATE TABLE nodes (name TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL, labels TEXT,"
	" mode TEXT, created INTEGER, revoked INTEGER);"
	"CREATE TABLE certs (serial TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
	" not_after INTEGER, revoked INTEGER, revoked_at INTEGER);"
	"CREATE INDEX certs_by_name ON certs(name);"
	"CREATE INDEX certs_revoked ON certs(not_after) WHERE revoked = 1;"
	"INSERT INTO tokens VALUES ('" TOK_1 "', '" HASH_A
	"', 1, 4102444800, 2, 0, 'env=prod', '');"
	"INSERT INTO nodes VALUES ('n1', '" KEY_1 "', 'rack=a', 'enforce', 1700000000, 0);"
	"INSERT INTO certs VALUES ('0a1b', 'n1', 'agent', 4102444800, 0, NULL);"
	"PRAGMA user_version = 1;"
	"COMMIT;";

static int t_migrate_from_v1(void)
{
	char dir[256], path[300];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_token t;
	struct ctl_node n;
	struct certs_seen certs = {0};
	const struct ctl_object_change put = {"Policy", "p", "{\"v\":1}"};
	uint64_t rev = 0, id = 0;
	char *body = NULL;
	int v = -1, fd;

	T_ASSERT(case_dir(dir, sizeof(dir)), "dir");
	snprintf(path, sizeof(path), "%s/bulkhead.db", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	T_ASSERT(fd >= 0, "create %s", path);
	close(fd);
	T_ASSERT(raw_exec(dir, v1_schema) == 0, "a version 1 store");

	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "open: %s", err.msg);
	T_ASSERT(ctl_store_schema_version(st) == 2, "version %d", ctl_store_schema_version(st));
	T_ASSERT(find_token(st, TOK_1, &t) == 0 && t.uses_left == 2, "token kept");
	T_ASSERT(ctl_store_node_get(st, "n1", &n) == 0 && strcmp(n.labels, "rack=a") == 0,
		 "node kept");
	T_ASSERT(ctl_store_cert_list(st, "n1", collect_cert, &certs) == 0 && certs.n == 1, "cert");
	T_ASSERT(ctl_store_revision_current(st) == 0, "no revision yet");
	T_ASSERT(ctl_store_revision_commit(st, &put, 1, "op", "first", 10, &rev, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(rev == 1, "rev %" PRIu64, rev);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST, &id, &err) ==
			 0,
		 "%s", err.msg);
	T_ASSERT(ctl_store_identity_put(st, (uint32_t)id, "app=web", 0, &err) == 0, "%s", err.msg);
	ctl_store_close(st);

	/* reopened: nothing to migrate, everything kept */
	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "reopen: %s", err.msg);
	T_ASSERT(ctl_store_schema_version(st) == 2, "version %d", ctl_store_schema_version(st));
	T_ASSERT(find_token(st, TOK_1, &t) == 0 && ctl_store_node_get(st, "n1", &n) == 0,
		 "v1 data");
	T_ASSERT(ctl_store_revision_current(st) == 1, "revision kept");
	T_ASSERT(ctl_store_object_get(st, "Policy", "p", 0, &body, &err) == 0, "%s", err.msg);
	T_ASSERT(strcmp(body, "{\"v\":1}") == 0, "body %s", body);
	free(body);
	ctl_store_close(st);
	T_ASSERT(raw_int(dir, "PRAGMA user_version", &v) == 0 && v == 2, "user_version %d", v);
	T_ASSERT(raw_int(dir, "SELECT count(*) FROM identities WHERE id = 256", &v) == 0 && v == 1,
		 "identity kept");
	return 0;
}

/* ---- objects and revisions ---- */

/* Objects or changes as one string, "Kind/name=body;..." or "Kind/name:old>new;..." (- for
 * NULL), in the order the store gave them. */
struct text_seen {
	char buf[2048];
	int n;
	int stop_after; /* return 9 from the callback after this many, 0: never */
};

static void seen_add(struct text_seen *seen, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void seen_add(struct text_seen *seen, const char *fmt, ...)
{
	size_t len = strlen(seen->buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(seen->buf + len, sizeof(seen->buf) - len, fmt, ap);
	va_end(ap);
	seen->n++;
}

static int collect_object(const char *kind, const char *name, const char *body, void *ctx)
{
	struct text_seen *seen = ctx;

	seen_add(seen, "%s/%s=%s;", kind, name, body);
	return seen->stop_after && seen->n >= seen->stop_after ? 9 : 0;
}

static int collect_change(const char *kind, const char *name, const char *old_body,
			  const char *new_body, void *ctx)
{
	struct text_seen *seen = ctx;

	seen_add(seen, "%s/%s:%s>%s;", kind, name, old_body ? old_body : "-",
		 new_body ? new_body : "-");
	return 0;
}

/* objects_at as a string; "ERR n" when it fails. */
static const char *objects_text(struct ctl_store *st, uint64_t rev, const char *kind,
				struct text_seen *seen)
{
	int ret;

	memset(seen, 0, sizeof(*seen));
	ret = ctl_store_objects_at(st, rev, kind, collect_object, seen);
	if (ret)
		snprintf(seen->buf, sizeof(seen->buf), "ERR %d", ret);
	return seen->buf;
}

static const char *changes_text(struct ctl_store *st, uint64_t rev, struct text_seen *seen)
{
	int ret;

	memset(seen, 0, sizeof(*seen));
	ret = ctl_store_revision_changes(st, rev, collect_change, seen);
	if (ret)
		snprintf(seen->buf, sizeof(seen->buf), "ERR %d", ret);
	return seen->buf;
}

static int t_revision_commit(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_revision r;
	struct text_seen seen;
	const struct ctl_object_change first[] = {
		{"Policy", "api", "{\"a\":1}"},
		{"Workload", "web-1", "{\"w\":1}"},
		/* names are data, never SQL */
		{"Policy", "x'); DROP TABLE objects; --", "{\"q\":\"it's\"}"},
	};
	const struct ctl_object_change same[] = {{"Policy", "api", "{\"a\":1}"}};
	const struct ctl_object_change edit[] = {
		{"Policy", "api", "{\"a\":2}"},
		{"Workload", "web-1", "{\"w\":1}"}, /* unchanged: not counted */
	};
	const struct ctl_object_change bad_delete[] = {
		{"Policy", "api", "{\"a\":3}"},
		{"Node", "n1", "{\"n\":1}"},
		{"Policy", "ghost", NULL},
	};
	const struct ctl_object_change twice[] = {
		{"Policy", "api", "{\"a\":4}"},
		{"Policy", "api", NULL},
	};
	const struct ctl_object_change empty_body[] = {{"Policy", "api", ""}};
	const struct ctl_object_change no_name[] = {{"Policy", "", "{}"}};
	const struct ctl_object_change del[] = {{"Policy", "api", NULL}};
	char long_author[80];
	uint64_t rev = 99;
	char *body = NULL;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_revision_commit(st, first, 3, "alice", "create", 100, &rev, &err) == 0,
		 "%s", err.msg);
	T_ASSERT(rev == 1 && ctl_store_revision_current(st) == 1, "rev %" PRIu64, rev);
	T_ASSERT(ctl_store_revision_get(st, 1, &r) == 0 && r.n_changes == 3, "n_changes %u",
		 r.n_changes);

	/* nothing changes: no revision */
	rev = 99;
	T_ASSERT(ctl_store_revision_commit(st, same, 1, "alice", "again", 101, &rev, &err) == 0,
		 "%s", err.msg);
	T_ASSERT(rev == 0 && ctl_store_revision_current(st) == 1, "no-op made %" PRIu64, rev);
	T_ASSERT(ctl_store_revision_commit(st, NULL, 0, "alice", "nothing", 101, &rev, &err) == 0 &&
			 rev == 0,
		 "empty commit");

	/* one real change, one no-op */
	T_ASSERT(ctl_store_revision_commit(st, edit, 2, "bob", "edit", 102, &rev, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(rev == 2, "rev %" PRIu64, rev);
	T_ASSERT(ctl_store_revision_get(st, 2, &r) == 0 && r.n_changes == 1, "n_changes %u",
		 r.n_changes);
	T_ASSERT(strcmp(changes_text(st, 2, &seen), "Policy/api:{\"a\":1}>{\"a\":2};") == 0, "%s",
		 seen.buf);

	/* a delete of what does not exist aborts the whole commit */
	rev = 99;
	T_ASSERT(ctl_store_revision_commit(st, bad_delete, 3, "bob", "bad", 103, &rev, &err) ==
			 -ENOENT,
		 "code %d", err.code);
	T_ASSERT(strcmp(err.msg, "Policy ghost does not exist") == 0, "%s", err.msg);
	T_ASSERT(rev == 0 && ctl_store_revision_current(st) == 2, "no revision");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_object_get(st, "Policy", "api", 0, &body, &err) == 0, "%s", err.msg);
	T_ASSERT(strcmp(body, "{\"a\":2}") == 0, "api untouched: %s", body);
	free(body);
	body = NULL;
	T_ASSERT(ctl_store_object_get(st, "Node", "n1", 0, &body, &err) == -ENOENT, "n1 not made");
	T_ASSERT(strstr(err.msg, "Node n1 does not exist"), "%s", err.msg);
	bh_error_clear(&err);

	/* refused before anything is read */
	T_ASSERT(ctl_store_revision_commit(st, twice, 2, "", "", 104, &rev, &err) == -EINVAL,
		 "twice: %d", err.code);
	T_ASSERT(strstr(err.msg, "Policy api") && strstr(err.msg, "twice"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_revision_commit(st, empty_body, 1, "", "", 104, &rev, &err) == -EINVAL,
		 "empty body: %d", err.code);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_revision_commit(st, no_name, 1, "", "", 104, &rev, &err) == -EINVAL,
		 "empty name: %d", err.code);
	bh_error_clear(&err);
	memset(long_author, 'a', sizeof(long_author) - 1);
	long_author[sizeof(long_author) - 1] = '\0';
	T_ASSERT(ctl_store_revision_commit(st, del, 1, long_author, "", 104, &rev, &err) == -EINVAL,
		 "author too long: %d", err.code);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_revision_current(st) == 2, "still 2");

	/* a delete */
	T_ASSERT(ctl_store_revision_commit(st, del, 1, NULL, NULL, 105, &rev, &err) == 0, "%s",
		 err.msg);
	T_ASSERT(rev == 3, "rev %" PRIu64, rev);
	T_ASSERT(ctl_store_object_get(st, "Policy", "api", 0, &body, &err) == -ENOENT, "deleted");
	T_ASSERT(strcmp(err.msg, "Policy api does not exist") == 0, "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_object_get(st, "Policy", "api", 2, &body, &err) == 0, "%s", err.msg);
	T_ASSERT(strcmp(body, "{\"a\":2}") == 0, "at 2: %s", body);
	free(body);
	body = NULL;
	T_ASSERT(ctl_store_object_get(st, "Policy", "api", 9, &body, &err) == -ENOENT, "rev 9");
	T_ASSERT(strstr(err.msg, "revision 9 does not exist"), "%s", err.msg);
	bh_error_clear(&err);
	/* deleting it again: gone */
	T_ASSERT(ctl_store_revision_commit(st, del, 1, NULL, NULL, 106, &rev, &err) == -ENOENT,
		 "second delete: %d", err.code);
	bh_error_clear(&err);

	T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen),
			"Policy/x'); DROP TABLE objects; --={\"q\":\"it's\"};"
			"Workload/web-1={\"w\":1};") == 0,
		 "%s", seen.buf);
	T_ASSERT(ctl_store_revision_get(st, 3, &r) == 0 && r.n_changes == 1 && r.created == 105 &&
			 !r.author[0] && !r.summary[0],
		 "revision 3 fields");
	ctl_store_close(st);
	return 0;
}

/*
 * One history, with deletes and a name deleted then created again; every revision read back whole,
 * by kind, and as changes.
 */
static int t_objects_history(void)
{
	static const struct ctl_object_change r1[] = {{"Policy", "a", "a1"},
						      {"Policy", "b", "b1"},
						      {"Policy", "c", "c1"},
						      {"Workload", "w", "w1"}};
	static const struct ctl_object_change r2[] = {{"Policy", "a", "a2"}, {"Policy", "b", NULL}};
	static const struct ctl_object_change r3[] = {
		{"Policy", "d", "d1"}, {"Policy", "c", "c2"}, {"Node", "n", "n1"}};
	static const struct ctl_object_change r4[] = {
		{"Policy", "b", "b2"}, {"Policy", "a", NULL}, {"Workload", "w", NULL}};
	static const struct ctl_object_change r5[] = {{"Policy", "b", "b3"},
						      {"Workload", "w", "w2"}};
	static const struct {
		const struct ctl_object_change *ch;
		size_t n;
		const char *all, *policies, *changes;
	} revs[] = {
		{r1, 4, "Policy/a=a1;Policy/b=b1;Policy/c=c1;Workload/w=w1;",
		 "Policy/a=a1;Policy/b=b1;Policy/c=c1;",
		 "Policy/a:->a1;Policy/b:->b1;Policy/c:->c1;Workload/w:->w1;"},
		{r2, 2, "Policy/a=a2;Policy/c=c1;Workload/w=w1;", "Policy/a=a2;Policy/c=c1;",
		 "Policy/a:a1>a2;Policy/b:b1>-;"},
		{r3, 3, "Node/n=n1;Policy/a=a2;Policy/c=c2;Policy/d=d1;Workload/w=w1;",
		 "Policy/a=a2;Policy/c=c2;Policy/d=d1;",
		 "Node/n:->n1;Policy/c:c1>c2;Policy/d:->d1;"},
		{r4, 3, "Node/n=n1;Policy/b=b2;Policy/c=c2;Policy/d=d1;",
		 "Policy/b=b2;Policy/c=c2;Policy/d=d1;",
		 "Policy/a:a2>-;Policy/b:->b2;Workload/w:w1>-;"},
		{r5, 2, "Node/n=n1;Policy/b=b3;Policy/c=c2;Policy/d=d1;Workload/w=w2;",
		 "Policy/b=b3;Policy/c=c2;Policy/d=d1;", "Policy/b:b2>b3;Workload/w:->w2;"},
	};
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct text_seen seen;
	uint64_t rev;
	char *body = NULL;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen), "") == 0, "empty store: %s", seen.buf);
	T_ASSERT(strcmp(objects_text(st, 1, NULL, &seen), "ERR -2") == 0, "no revision 1: %s",
		 seen.buf);
	for (size_t i = 0; i < BH_ARRAY_SIZE(revs); i++) {
		T_ASSERT(ctl_store_revision_commit(st, revs[i].ch, revs[i].n, "t", "", 0, &rev,
						   &err) == 0,
			 "rev %zu: %s", i + 1, err.msg);
		T_ASSERT(rev == i + 1, "rev %" PRIu64, rev);
		T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen), revs[i].all) == 0,
			 "current after %zu: %s", i + 1, seen.buf);
	}
	/* and every revision again once the later ones exist */
	for (size_t i = 0; i < BH_ARRAY_SIZE(revs); i++) {
		T_ASSERT(strcmp(objects_text(st, i + 1, NULL, &seen), revs[i].all) == 0,
			 "at %zu: %s", i + 1, seen.buf);
		T_ASSERT(strcmp(objects_text(st, i + 1, "Policy", &seen), revs[i].policies) == 0,
			 "policies at %zu: %s", i + 1, seen.buf);
		T_ASSERT(strcmp(changes_text(st, i + 1, &seen), revs[i].changes) == 0,
			 "changes of %zu: %s", i + 1, seen.buf);
	}
	T_ASSERT(strcmp(objects_text(st, 0, "Policy", &seen), revs[4].policies) == 0, "%s",
		 seen.buf);
	T_ASSERT(strcmp(objects_text(st, 0, "Nope", &seen), "") == 0, "%s", seen.buf);
	T_ASSERT(strcmp(objects_text(st, 6, NULL, &seen), "ERR -2") == 0, "%s", seen.buf);
	T_ASSERT(strcmp(changes_text(st, 6, &seen), "ERR -2") == 0, "%s", seen.buf);
	T_ASSERT(strcmp(changes_text(st, 0, &seen), "ERR -2") == 0, "%s", seen.buf);

	/* b: b1 at 1, gone at 2 and 3, b2 at 4, b3 at 5 */
	T_ASSERT(ctl_store_object_get(st, "Policy", "b", 1, &body, &err) == 0 &&
			 strcmp(body, "b1") == 0,
		 "b at 1");
	free(body);
	body = NULL;
	T_ASSERT(ctl_store_object_get(st, "Policy", "b", 3, &body, &err) == -ENOENT, "b at 3");
	T_ASSERT(strstr(err.msg, "Policy b does not exist at revision 3"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_object_get(st, "Policy", "b", 4, &body, &err) == 0 &&
			 strcmp(body, "b2") == 0,
		 "b at 4");
	free(body);
	body = NULL;

	/* a callback's non-zero stops the walk and comes back */
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 2;
	T_ASSERT(ctl_store_objects_at(st, 3, NULL, collect_object, &seen) == 9 && seen.n == 2,
		 "stopped after %d", seen.n);
	ctl_store_close(st);
	return 0;
}

struct revs_seen {
	int n;
	struct ctl_revision r[8];
	int stop_after;
};

static int collect_revision(const struct ctl_revision *r, void *ctx)
{
	struct revs_seen *seen = ctx;

	if (seen->n < (int)BH_ARRAY_SIZE(seen->r))
		seen->r[seen->n] = *r;
	seen->n++;
	return seen->stop_after && seen->n >= seen->stop_after ? 5 : 0;
}

static int t_revision_list(void)
{
	char dir[256], name[16], summary[32], author[16];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_revision r;
	struct revs_seen seen = {0};
	uint64_t rev;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_revision_list(st, 0, collect_revision, &seen) == 0 && seen.n == 0,
		 "empty");
	for (int i = 1; i <= 5; i++) {
		const struct ctl_object_change ch[] = {{"Policy", name, summary},
						       {"Policy", "all", summary}};

		snprintf(name, sizeof(name), "p%d", i);
		snprintf(summary, sizeof(summary), "change number %d", i);
		snprintf(author, sizeof(author), "user%d", i);
		T_ASSERT(ctl_store_revision_commit(st, ch, 2, author, summary, 1000 + i, &rev,
						   &err) == 0,
			 "%s", err.msg);
	}
	T_ASSERT(ctl_store_revision_list(st, 0, collect_revision, &seen) == 0 && seen.n == 5,
		 "all: %d", seen.n);
	for (int i = 0; i < 5; i++)
		T_ASSERT(seen.r[i].id == (uint64_t)(5 - i), "newest first: [%d] = %" PRIu64, i,
			 seen.r[i].id);
	memset(&seen, 0, sizeof(seen));
	T_ASSERT(ctl_store_revision_list(st, 2, collect_revision, &seen) == 0 && seen.n == 2,
		 "limit 2: %d", seen.n);
	T_ASSERT(seen.r[0].id == 5 && seen.r[1].id == 4, "the newest two");
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 3;
	T_ASSERT(ctl_store_revision_list(st, 0, collect_revision, &seen) == 5 && seen.n == 3,
		 "callback stops");

	T_ASSERT(ctl_store_revision_get(st, 1, &r) == 0, "get 1");
	T_ASSERT(r.id == 1 && r.created == 1001 && strcmp(r.author, "user1") == 0 &&
			 strcmp(r.summary, "change number 1") == 0 && r.n_changes == 2,
		 "fields: %" PRIu64 " %lld %s %s %u", r.id, (long long)r.created, r.author,
		 r.summary, r.n_changes);
	T_ASSERT(ctl_store_revision_get(st, 4, &r) == 0 && r.n_changes == 2, "get 4");
	T_ASSERT(ctl_store_revision_get(st, 6, &r) == -ENOENT, "no 6");
	T_ASSERT(ctl_store_revision_get(st, 0, &r) == -ENOENT, "no 0");
	T_ASSERT(ctl_store_revision_get(st, UINT64_MAX, &r) == -ENOENT, "no 2^64-1");
	ctl_store_close(st);
	return 0;
}

static int count_identity(uint32_t id, const char *labels, time_t unused_since, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

/*
 * The compiler's change: a revision, the identities and rule ids it made, in one transaction of
 * the caller's. Rolled back, nothing remains (not even the counters' steps); a failing commit
 * inside it takes back its own writes only.
 */
static int t_commit_in_caller_tx(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct text_seen seen;
	struct ctl_node n;
	const struct ctl_object_change ch[] = {{"Policy", "p", "p1"}, {"Workload", "w", "w1"}};
	const struct ctl_object_change ch2[] = {{"Policy", "q", "q1"}};
	const struct ctl_object_change bad[] = {{"Policy", "p", "p2"}, {"Policy", "ghost", NULL}};
	/* written in (kind, name) order: a and p before poison */
	const struct ctl_object_change poisoned[] = {
		{"Policy", "poison", "x"}, {"Policy", "a", "a1"}, {"Policy", "p", "p3"}};
	uint64_t rev = 0, id = 0, rule = 0;
	int count = 0;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_begin(st, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "n1", KEY_1, "", "", 1, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_revision_commit(st, ch, 2, "c", "", 1, &rev, &err) == 0, "%s", err.msg);
	T_ASSERT(rev == 1 && ctl_store_revision_current(st) == 1, "seen inside: %" PRIu64, rev);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST, &id, &err) ==
				 0 &&
			 id == 256,
		 "id %" PRIu64 ": %s", id, err.msg);
	T_ASSERT(ctl_store_identity_put(st, (uint32_t)id, "app=web", 0, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_RULE_ID, CTL_RULE_ID_FIRST, &rule, &err) ==
			 0,
		 "%s", err.msg);
	T_ASSERT(ctl_store_rule_id_put(st, (uint32_t)rule, "policy/p/ingress/allow/0", &err) == 0,
		 "%s", err.msg);
	ctl_store_rollback(st);

	T_ASSERT(ctl_store_revision_current(st) == 0, "no revision");
	T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen), "") == 0, "no objects: %s", seen.buf);
	T_ASSERT(ctl_store_node_get(st, "n1", &n) == -ENOENT, "no node");
	T_ASSERT(ctl_store_identity_load(st, count_identity, &count) == 0 && count == 0, "no ids");
	T_ASSERT(raw_int(dir, "SELECT count(*) FROM meta", &count) == 0 && count == 0,
		 "counters rolled back too");
	T_ASSERT(raw_int(dir, "SELECT count(*) FROM rule_ids", &count) == 0 && count == 0,
		 "no rule ids");

	/* two revisions in one transaction; a failing third takes back only itself */
	T_ASSERT(ctl_store_begin(st, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_revision_commit(st, ch, 2, "c", "", 2, &rev, &err) == 0 && rev == 1,
		 "%s", err.msg);
	T_ASSERT(ctl_store_revision_commit(st, ch2, 1, "c", "", 2, &rev, &err) == 0 && rev == 2,
		 "%s", err.msg);
	T_ASSERT(ctl_store_revision_commit(st, bad, 2, "c", "", 2, &rev, &err) == -ENOENT,
		 "code %d", err.code);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_revision_current(st) == 2, "the failed one left nothing");
	T_ASSERT(ctl_store_commit(st, &err) == 0, "%s", err.msg);
	ctl_store_close(st);

	/* a failure halfway through the writes (a trigger refuses one row): in the caller's
	 * transaction, the rows already written by that call go; what the caller did stays */
	T_ASSERT(raw_exec(dir,
			  "CREATE TRIGGER poison BEFORE INSERT ON objects"
			  " WHEN NEW.name = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END") ==
			 0,
		 "trigger");
	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_revision_current(st) == 2, "both committed");
	T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen),
			"Policy/p=p1;Policy/q=q1;Workload/w=w1;") == 0,
		 "%s", seen.buf);
	T_ASSERT(strcmp(objects_text(st, 1, NULL, &seen), "Policy/p=p1;Workload/w=w1;") == 0, "%s",
		 seen.buf);
	T_ASSERT(ctl_store_begin(st, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_node_enroll(st, "n2", KEY_2, "", "", 3, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_revision_commit(st, poisoned, 3, "c", "", 3, &rev, &err) < 0 && rev == 0,
		 "poisoned: %d", err.code);
	T_ASSERT(strstr(err.msg, "poisoned"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_commit(st, &err) == 0, "the caller's transaction is still open: %s",
		 err.msg);
	T_ASSERT(ctl_store_node_get(st, "n2", &n) == 0, "the caller's write stays");
	T_ASSERT(ctl_store_revision_current(st) == 2, "no revision 3");
	T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen),
			"Policy/p=p1;Policy/q=q1;Workload/w=w1;") == 0,
		 "half a revision: %s", seen.buf);
	/* and in its own transaction */
	T_ASSERT(ctl_store_revision_commit(st, poisoned, 3, "c", "", 3, &rev, &err) < 0, "own");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_revision_current(st) == 2, "no revision 3");
	T_ASSERT(strcmp(objects_text(st, 0, NULL, &seen),
			"Policy/p=p1;Policy/q=q1;Workload/w=w1;") == 0,
		 "half a revision: %s", seen.buf);
	ctl_store_close(st);
	return 0;
}

/* ---- identities, rule ids, counters ---- */

struct ids_seen {
	char buf[1024];
	int n;
};

static int collect_identity(uint32_t id, const char *labels, time_t unused_since, void *ctx)
{
	struct ids_seen *seen = ctx;
	size_t len = strlen(seen->buf);

	snprintf(seen->buf + len, sizeof(seen->buf) - len, "%" PRIu32 "=%s@%lld;", id, labels,
		 (long long)unused_since);
	seen->n++;
	return 0;
}

static int collect_rule_id(uint32_t id, const char *key, void *ctx)
{
	struct ids_seen *seen = ctx;
	size_t len = strlen(seen->buf);

	snprintf(seen->buf + len, sizeof(seen->buf) - len, "%" PRIu32 "=%s;", id, key);
	seen->n++;
	return 0;
}

static int t_identities_rule_ids(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ids_seen ids = {0}, rules = {0};
	const char *want_ids = "256=app=web,env=prod@0;257=app=db@1234;258=@0;";
	const char *want_rules = "256=policy/api/ingress/allow/0;300=default/ingress/300;";

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	T_ASSERT(ctl_store_identity_put(st, 256, "app=web,env=prod", 0, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_identity_put(st, 257, "app=db", 0, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_identity_put(st, 258, "", 0, &err) == 0, "empty set: %s", err.msg);
	T_ASSERT(ctl_store_identity_put(st, 259, "gone=1", 0, &err) == 0, "%s", err.msg);
	/* upsert: unused, then in use again, then unused */
	T_ASSERT(ctl_store_identity_put(st, 257, "app=db", 99, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_identity_put(st, 256, "app=web,env=prod", 0, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_identity_put(st, 257, "app=db", 1234, &err) == 0, "%s", err.msg);
	/* an id stands for one label set; a label set has one id */
	T_ASSERT(ctl_store_identity_put(st, 256, "app=other", 0, &err) == -EEXIST, "relabel: %d",
		 err.code);
	T_ASSERT(strstr(err.msg, "identity 256") && strstr(err.msg, "app=web,env=prod"), "%s",
		 err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_identity_put(st, 300, "app=db", 0, &err) == -EEXIST, "same labels: %d",
		 err.code);
	T_ASSERT(strstr(err.msg, "app=db") && strstr(err.msg, "257"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_identity_put(st, 0, "x=y", 0, &err) == -EINVAL, "id 0");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_identity_put(st, 301, NULL, 0, &err) == -EINVAL, "NULL labels");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_identity_delete(st, 259, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_identity_delete(st, 259, &err) == -ENOENT, "twice: %d", err.code);
	T_ASSERT(strstr(err.msg, "identity 259"), "%s", err.msg);
	bh_error_clear(&err);

	T_ASSERT(ctl_store_rule_id_put(st, 300, "default/ingress/300", &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_rule_id_put(st, 256, "policy/api/ingress/allow/0", &err) == 0, "%s",
		 err.msg);
	T_ASSERT(ctl_store_rule_id_put(st, 256, "policy/api/ingress/allow/0", &err) == 0,
		 "same pair again: %s", err.msg);
	T_ASSERT(ctl_store_rule_id_put(st, 256, "policy/api/egress/allow/0", &err) == -EEXIST,
		 "id taken: %d", err.code);
	T_ASSERT(strstr(err.msg, "rule id 256") && strstr(err.msg, "policy/api/ingress/allow/0"),
		 "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_rule_id_put(st, 257, "default/ingress/300", &err) == -EEXIST,
		 "key taken: %d", err.code);
	T_ASSERT(strstr(err.msg, "default/ingress/300") && strstr(err.msg, "300"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(ctl_store_rule_id_put(st, 257, "", &err) == -EINVAL, "empty key");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_rule_id_put(st, 400, "tmp", &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_rule_id_delete(st, 400, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_rule_id_delete(st, 400, &err) == -ENOENT, "twice");
	bh_error_clear(&err);

	T_ASSERT(ctl_store_identity_load(st, collect_identity, &ids) == 0, "load");
	T_ASSERT(strcmp(ids.buf, want_ids) == 0, "%s", ids.buf);
	T_ASSERT(ctl_store_rule_id_load(st, collect_rule_id, &rules) == 0, "load");
	T_ASSERT(strcmp(rules.buf, want_rules) == 0, "%s", rules.buf);
	ctl_store_close(st);

	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	memset(&ids, 0, sizeof(ids));
	memset(&rules, 0, sizeof(rules));
	T_ASSERT(ctl_store_identity_load(st, collect_identity, &ids) == 0, "load");
	T_ASSERT(strcmp(ids.buf, want_ids) == 0, "after reopen: %s", ids.buf);
	T_ASSERT(ctl_store_rule_id_load(st, collect_rule_id, &rules) == 0, "load");
	T_ASSERT(strcmp(rules.buf, want_rules) == 0, "after reopen: %s", rules.buf);
	ctl_store_close(st);
	return 0;
}

static int t_counters(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	uint64_t v = 0, last = 0;
	char name[80];

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	for (int i = 0; i < 3; i++) {
		T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST, &v,
						&err) == 0,
			 "%s", err.msg);
		T_ASSERT(v == (uint64_t)(256 + i), "identity %d: %" PRIu64, i, v);
		T_ASSERT(ctl_store_identity_put(st, (uint32_t)v,
						i == 0	 ? "a=1"
						: i == 1 ? "a=2"
							 : "a=3",
						0, &err) == 0,
			 "%s", err.msg);
	}
	/* each counter on its own */
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_RULE_ID, CTL_RULE_ID_FIRST, &v, &err) ==
				 0 &&
			 v == 256,
		 "rule id %" PRIu64, v);
	/* the newest identity goes away: its id does not come back */
	T_ASSERT(ctl_store_identity_delete(st, 258, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST, &v, &err) ==
				 0 &&
			 v == 259,
		 "after delete: %" PRIu64, v);
	ctl_store_close(st);

	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST, &v, &err) ==
				 0 &&
			 v == 260,
		 "after reopen: %" PRIu64, v);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_RULE_ID, CTL_RULE_ID_FIRST, &v, &err) ==
				 0 &&
			 v == 257,
		 "rule id after reopen: %" PRIu64, v);
	/* first is a floor: raising it skips ahead, lowering it goes on from the last value */
	T_ASSERT(ctl_store_counter_next(st, "x", 5, &v, &err) == 0 && v == 5, "%" PRIu64, v);
	T_ASSERT(ctl_store_counter_next(st, "x", 100, &v, &err) == 0 && v == 100, "%" PRIu64, v);
	T_ASSERT(ctl_store_counter_next(st, "x", 1, &v, &err) == 0 && v == 101, "%" PRIu64, v);
	/* many in a row, one transaction each: strictly increasing */
	last = 0;
	for (int i = 0; i < 200; i++) {
		T_ASSERT(ctl_store_counter_next(st, "y", 1, &v, &err) == 0, "%s", err.msg);
		T_ASSERT(v > last, "%" PRIu64 " after %" PRIu64, v, last);
		last = v;
	}

	/* the compiler's way: peek at load, raise to its own next value in its transaction */
	T_ASSERT(ctl_store_counter_peek(st, "fresh", &v) == -ENOENT, "never used");
	T_ASSERT(ctl_store_counter_peek(st, CTL_COUNTER_IDENTITY, &v) == 0 && v == 261,
		 "peek %" PRIu64, v);
	T_ASSERT(ctl_store_counter_peek(st, CTL_COUNTER_IDENTITY, &v) == 0 && v == 261,
		 "a peek takes nothing: %" PRIu64, v);
	T_ASSERT(ctl_store_counter_raise(st, CTL_COUNTER_IDENTITY, 1000, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_raise(st, CTL_COUNTER_IDENTITY, 500, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_peek(st, CTL_COUNTER_IDENTITY, &v) == 0 && v == 1000,
		 "never down: %" PRIu64, v);
	T_ASSERT(ctl_store_counter_next(st, CTL_COUNTER_IDENTITY, CTL_IDENTITY_FIRST, &v, &err) ==
				 0 &&
			 v == 1000,
		 "next after a raise: %" PRIu64, v);
	T_ASSERT(ctl_store_counter_raise(st, "fresh", 0, &err) == 0 &&
			 ctl_store_counter_peek(st, "fresh", &v) == -ENOENT,
		 "raising to 0 reserves nothing");
	T_ASSERT(ctl_store_counter_raise(st, "fresh", 300, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_next(st, "fresh", 1, &v, &err) == 0 && v == 300, "%" PRIu64, v);
	T_ASSERT(ctl_store_begin(st, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_raise(st, CTL_COUNTER_IDENTITY, 5000, &err) == 0, "%s", err.msg);
	ctl_store_rollback(st);
	T_ASSERT(ctl_store_counter_peek(st, CTL_COUNTER_IDENTITY, &v) == 0 && v == 1001,
		 "a rolled back raise: %" PRIu64, v);
	T_ASSERT(ctl_store_counter_raise(st, "", 1, &err) == -EINVAL, "empty name");
	bh_error_clear(&err);

	T_ASSERT(ctl_store_counter_next(st, "", 1, &v, &err) == -EINVAL, "empty name");
	bh_error_clear(&err);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	T_ASSERT(ctl_store_counter_next(st, name, 1, &v, &err) == -EINVAL, "long name");
	bh_error_clear(&err);
	T_ASSERT(ctl_store_counter_next(st, "z", (uint64_t)INT64_MAX + 1, &v, &err) == -EINVAL,
		 "first too large");
	bh_error_clear(&err);
	ctl_store_close(st);

	/* at the top it stops rather than wrap or turn into a float */
	T_ASSERT(raw_exec(dir, "UPDATE meta SET value = 9223372036854775806 WHERE key = 'x'") == 0,
		 "raw");
	T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "%s", err.msg);
	T_ASSERT(ctl_store_counter_peek(st, CTL_COUNTER_IDENTITY, &v) == 0 && v == 1001,
		 "after reopen: %" PRIu64, v);
	T_ASSERT(ctl_store_counter_next(st, "x", 1, &v, &err) == 0 && v == INT64_MAX,
		 "last value: %" PRIu64, v);
	v = 7;
	T_ASSERT(ctl_store_counter_next(st, "x", 1, &v, &err) == -EOVERFLOW, "code %d", err.code);
	T_ASSERT(strstr(err.msg, "counter x") && v == 7, "%s", err.msg);
	ctl_store_close(st);
	return 0;
}

/* ---- size ---- */

#define MANY 20000

struct many_seen {
	int n;
	char last[64];
	bool ordered;
};

static int collect_many(const char *kind, const char *name, const char *body, void *ctx)
{
	struct many_seen *seen = ctx;
	char key[64];

	snprintf(key, sizeof(key), "%s/%s", kind, name);
	if (seen->n && strcmp(seen->last, key) >= 0)
		seen->ordered = false;
	snprintf(seen->last, sizeof(seen->last), "%s", key);
	seen->n++;
	return 0;
}

static int count_change(const char *kind, const char *name, const char *old_body,
			const char *new_body, void *ctx)
{
	(*(int *)ctx) += old_body && new_body;
	return 0;
}

static double since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int t_many_objects(void)
{
	static const char *const kinds[] = {"Node", "Policy", "Workload"};
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	struct ctl_object_change *ch;
	struct many_seen seen = {.ordered = true};
	struct timespec t0;
	double t_commit, t_read, t_edit, t_old;
	char(*names)[32], (*bodies)[96];
	uint64_t rev = 0;
	int n_edits = 0, ret = 1;

	ch = calloc(MANY, sizeof(*ch));
	names = calloc(MANY, sizeof(*names));
	bodies = calloc(MANY, sizeof(*bodies));
	if (!ch || !names || !bodies) {
		fprintf(stderr, "    out of memory\n");
		goto out;
	}
	for (int i = 0; i < MANY; i++) {
		/* not in (kind, name) order: the store sorts */
		snprintf(names[i], sizeof(names[i]), "obj-%05d", (i * 7919) % MANY);
		snprintf(bodies[i], sizeof(bodies[i]),
			 "{\"kind\":\"%s\",\"spec\":{\"labels\":{\"app\":\"a%d\"},\"rev\":1}}",
			 kinds[i % 3], i);
		ch[i] = (struct ctl_object_change){kinds[i % 3], names[i], bodies[i]};
	}
	if (open_fresh(dir, sizeof(dir), &st))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ctl_store_revision_commit(st, ch, MANY, "bulk", "20000 objects", 1, &rev, &err) ||
	    rev != 1) {
		fprintf(stderr, "    commit: %s (rev %" PRIu64 ")\n", err.msg, rev);
		goto close;
	}
	t_commit = since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ctl_store_objects_at(st, 0, NULL, collect_many, &seen) || seen.n != MANY ||
	    !seen.ordered) {
		fprintf(stderr, "    current: %d objects, ordered %d\n", seen.n, seen.ordered);
		goto close;
	}
	t_read = since(&t0);

	/* a tenth of them edited, then the first revision read back */
	for (int i = 0; i < MANY; i += 10) {
		snprintf(bodies[i], sizeof(bodies[i]), "{\"kind\":\"%s\",\"rev\":2}", kinds[i % 3]);
		ch[i / 10] = (struct ctl_object_change){kinds[i % 3], names[i], bodies[i]};
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ctl_store_revision_commit(st, ch, MANY / 10, "bulk", "edit", 2, &rev, &err) ||
	    rev != 2) {
		fprintf(stderr, "    edit: %s\n", err.msg);
		goto close;
	}
	t_edit = since(&t0);
	if (ctl_store_revision_changes(st, 2, count_change, &n_edits) || n_edits != MANY / 10) {
		fprintf(stderr, "    changes: %d\n", n_edits);
		goto close;
	}
	memset(&seen, 0, sizeof(seen));
	seen.ordered = true;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ctl_store_objects_at(st, 1, "Policy", collect_many, &seen) ||
	    seen.n != (MANY + 1) / 3 || !seen.ordered) {
		fprintf(stderr, "    policies at 1: %d, ordered %d\n", seen.n, seen.ordered);
		goto close;
	}
	t_old = since(&t0);
	fprintf(stderr,
		"    %d objects: commit %.3f s, read current %.3f s, edit %d %.3f s, policies at "
		"revision 1 %.3f s\n",
		MANY, t_commit, t_read, MANY / 10, t_edit, t_old);
	ret = 0;
close:
	ctl_store_close(st);
out:
	free(ch);
	free(names);
	free(bodies);
	return ret;
}

/* ---- a writer killed mid-stream ---- */

#define CRASH_OBJECTS 20 /* workloads of one revision; the next revision replaces them */
#define CRASH_ROUNDS  8

/* Revision r: Policy/counter = r, Workload/w-r-i for each i, the workloads of r - 1 deleted. */
static int crash_changes(uint64_t r, struct ctl_object_change *ch, char names[][32],
			 char bodies[][48])
{
	int n = 0;

	snprintf(bodies[n], sizeof(bodies[n]), "{\"rev\":%" PRIu64 "}", r);
	ch[n] = (struct ctl_object_change){"Policy", "counter", bodies[n]};
	n++;
	for (int i = 0; i < CRASH_OBJECTS; i++) {
		snprintf(names[n], sizeof(names[n]), "w-%" PRIu64 "-%02d", r, i);
		snprintf(bodies[n], sizeof(bodies[n]), "{\"rev\":%" PRIu64 ",\"i\":%d}", r, i);
		ch[n] = (struct ctl_object_change){"Workload", names[n], bodies[n]};
		n++;
		if (r > 1) {
			snprintf(names[n], sizeof(names[n]), "w-%" PRIu64 "-%02d", r - 1, i);
			ch[n] = (struct ctl_object_change){"Workload", names[n], NULL};
			n++;
		}
	}
	return n;
}

static void crash_child(const char *dir, int ack)
{
	struct ctl_object_change ch[1 + 2 * CRASH_OBJECTS];
	char names[1 + 2 * CRASH_OBJECTS][32], bodies[1 + 2 * CRASH_OBJECTS][48];
	struct ctl_store *st;
	struct bh_error err = {0};
	uint64_t r, rev;
	int n;

	if (ctl_store_open(&st, dir, &err))
		_exit(3);
	for (r = ctl_store_revision_current(st) + 1;; r++) {
		n = crash_changes(r, ch, names, bodies);
		if (ctl_store_revision_commit(st, ch, (size_t)n, "crash", "loop", (time_t)r, &rev,
					      &err) ||
		    rev != r)
			_exit(4);
		/* acknowledged: from here on, r must survive */
		if (write(ack, &rev, sizeof(rev)) != sizeof(rev))
			_exit(5);
	}
}

struct crash_check {
	uint64_t rev;
	int n, bad;
	char why[128];
};

static int crash_visit(const char *kind, const char *name, const char *body, void *ctx)
{
	struct crash_check *c = ctx;
	char want[48], want_name[32];
	int i = c->n - 1;

	/* (kind, name) order: Policy/counter, then the workloads w-REV-00... */
	if (c->n == 0) {
		snprintf(want, sizeof(want), "{\"rev\":%" PRIu64 "}", c->rev);
		if (strcmp(kind, "Policy") || strcmp(name, "counter") || strcmp(body, want))
			c->bad++;
	} else {
		snprintf(want_name, sizeof(want_name), "w-%" PRIu64 "-%02d", c->rev, i);
		snprintf(want, sizeof(want), "{\"rev\":%" PRIu64 ",\"i\":%d}", c->rev, i);
		if (strcmp(kind, "Workload") || strcmp(name, want_name) || strcmp(body, want))
			c->bad++;
	}
	if (c->bad && !c->why[0])
		snprintf(c->why, sizeof(c->why), "object %d: %s/%s=%s", c->n, kind, name, body);
	c->n++;
	return 0;
}

static int count_any_change(const char *kind, const char *name, const char *old_body,
			    const char *new_body, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

/* Every revision of the store is whole: its record, its objects and its changes. */
static int crash_verify(struct ctl_store *st, uint64_t acked)
{
	uint64_t current = ctl_store_revision_current(st);
	struct ctl_revision r;

	T_ASSERT(current >= acked, "acknowledged %" PRIu64 ", store has %" PRIu64, acked, current);
	for (uint64_t rev = 1; rev <= current; rev++) {
		struct crash_check c = {.rev = rev};
		unsigned want = rev == 1 ? 1 + CRASH_OBJECTS : 1 + 2 * CRASH_OBJECTS;
		int changes = 0;

		T_ASSERT(ctl_store_revision_get(st, rev, &r) == 0, "revision %" PRIu64, rev);
		T_ASSERT(r.n_changes == want, "revision %" PRIu64 ": %u changes", rev, r.n_changes);
		T_ASSERT(ctl_store_objects_at(st, rev, NULL, crash_visit, &c) == 0, "read");
		T_ASSERT(c.n == 1 + CRASH_OBJECTS && c.bad == 0,
			 "revision %" PRIu64 ": %d objects, %s", rev, c.n, c.why);
		T_ASSERT(ctl_store_revision_changes(st, rev, count_any_change, &changes) == 0 &&
				 changes == (int)want,
			 "revision %" PRIu64 ": %d changes listed", rev, changes);
	}
	return 0;
}

static int t_crash_consistency(void)
{
	char dir[256];
	struct ctl_store *st;
	struct bh_error err = {0};
	uint64_t acked = 0;
	int count = 0;

	T_ASSERT(open_fresh(dir, sizeof(dir), &st) == 0, "open");
	ctl_store_close(st);
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		/* a different moment in each round, within a commit or between two */
		const int kill_after = 5 + 13 * round;
		int ack[2], status, got = 0;
		uint64_t rev, floor = acked;
		pid_t pid;
		ssize_t len;

		T_ASSERT(pipe(ack) == 0, "pipe");
		fflush(NULL);
		pid = fork();
		T_ASSERT(pid >= 0, "fork");
		if (pid == 0) {
			close(ack[0]);
			crash_child(dir, ack[1]);
		}
		close(ack[1]);
		/* the previous round's writer may have committed one revision it could not
		 * acknowledge: the first ack of a round is above the last one, the others follow */
		while (got < kill_after && (len = read(ack[0], &rev, sizeof(rev))) == sizeof(rev)) {
			T_ASSERT(got ? rev == acked + 1 : rev > floor,
				 "ack %" PRIu64 " after %" PRIu64, rev, acked);
			acked = rev;
			got++;
		}
		usleep((useconds_t)(round % 4 * 500));
		kill(pid, SIGKILL);
		/* what it acknowledged before it died counts too */
		while ((len = read(ack[0], &rev, sizeof(rev))) == sizeof(rev)) {
			T_ASSERT(rev == acked + 1, "ack %" PRIu64 " after %" PRIu64, rev, acked);
			acked = rev;
		}
		close(ack[0]);
		T_ASSERT(waitpid(pid, &status, 0) == pid, "wait");
		T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			 "round %d: the writer ended by itself (status %d)", round, status);
		T_ASSERT(got == kill_after, "round %d: %d acks before the kill", round, got);

		T_ASSERT(ctl_store_open(&st, dir, &err) == 0, "reopen: %s", err.msg);
		if (crash_verify(st, acked)) {
			ctl_store_close(st);
			return 1;
		}
		ctl_store_close(st);
	}
	/* no row outside a revision that exists */
	T_ASSERT(raw_int(dir,
			 "SELECT count(*) FROM objects WHERE rev_from > (SELECT max(id) FROM "
			 "revisions) OR rev_to > (SELECT max(id) FROM revisions)",
			 &count) == 0 &&
			 count == 0,
		 "%d stray rows", count);
	return 0;
}

static const struct t_case cases[] = {
	{"open creates schema version 2 (0600, WAL, eight tables)", t_open_creates_schema},
	{"reopen keeps data and version", t_reopen_keeps_data},
	{"a store from a newer controller is refused", t_newer_schema_refused},
	{"open errors name the path and the cause", t_open_errors},
	{"token uses decrement; -1 is unlimited", t_token_uses},
	{"wrong secret: -EACCES, costs no use", t_token_wrong_secret},
	{"expired token: -EKEYEXPIRED", t_token_expired},
	{"revoked token: -EKEYREVOKED", t_token_revoked},
	{"unknown token: -ENOENT", t_token_unknown},
	{"replay of a single-use token fails (-EUSERS)", t_token_replay},
	{"token add validates its input", t_token_bad_input},
	{"token list: newest first, callback stops", t_token_list},
	{"processes racing for a single-use token: exactly one wins", t_consume_race},
	{"node enroll: idempotent, -EEXIST for another key, revoked refused", t_node_enroll},
	{"node revoke revokes its certificates", t_node_revoke_certs},
	{"cert add/revoke; expired revoked certs leave the CRL", t_certs},
	{"a rolled back transaction leaves nothing; a committed one stays",
	 t_rollback_leaves_nothing},
	{"an acknowledged change survives a process that never closed", t_durable_without_close},
	{"a version 1 store migrates to 2 and keeps everything across reopens", t_migrate_from_v1},
	{"revision commit: no-op, n_changes, -ENOENT delete aborts all, bad input",
	 t_revision_commit},
	{"objects at every past revision, by kind; changes; deleted then created again",
	 t_objects_history},
	{"revision list: newest first, limit, callback stops; get", t_revision_list},
	{"commit inside the caller's transaction: rollback leaves nothing, failure only itself",
	 t_commit_in_caller_tx},
	{"identities and rule ids: upsert, one id per set, survive reopen", t_identities_rule_ids},
	{"counters never repeat: deletes, reopen, floor, peek and raise, top", t_counters},
	{"20,000 objects: commit, read current, edit a tenth, read the past", t_many_objects},
	{"a writer killed mid-stream: every acknowledged revision whole, none partial",
	 t_crash_consistency},
};

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	if (remove(path) < 0)
		fprintf(stderr, "test_store: remove %s: %s\n", path, strerror(errno));
	return 0;
}

int main(int argc, char **argv)
{
	pid_t pid;
	int status, ret;

	bh_log_level = LOG_WARNING; /* not the "schema migrated" line of every case */
	if (!mkdtemp(root)) {
		perror("test_store: mkdtemp");
		return 1;
	}
	/* the cases run in a child, so the directory goes away even if they crash */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("test_store: fork");
		ret = 1;
	} else if (pid == 0) {
		exit(t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL));
	} else if (waitpid(pid, &status, 0) != pid) {
		perror("test_store: waitpid");
		ret = 1;
	} else if (WIFSIGNALED(status)) {
		fprintf(stderr, "test_store: cases killed by signal %d\n", WTERMSIG(status));
		ret = 1;
	} else {
		ret = WEXITSTATUS(status);
	}
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
