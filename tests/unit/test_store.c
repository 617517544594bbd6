// SPDX-License-Identifier: Apache-2.0
/*
 * The controller store against a real SQLite file: schema and migrations, join tokens (every
 * refusal), nodes, certificates, transactions, a consume race between processes and durability
 * across a process that dies without closing. Each case gets its own directory under one mkdtemp
 * directory, which a supervising parent process removes whatever happens to the cases (a failed
 * assertion, a crash, a sanitizer abort).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	T_ASSERT(ctl_store_schema_version(st) == 1, "version %d", ctl_store_schema_version(st));
	snprintf(path, sizeof(path), "%s/bulkhead.db", dir);
	T_ASSERT(stat(path, &sb) == 0, "%s exists", path);
	T_ASSERT((sb.st_mode & 0777) == 0600, "mode %04o", (unsigned)(sb.st_mode & 0777));
	ctl_store_close(st);

	T_ASSERT(raw_int(dir, "PRAGMA user_version", &v) == 0 && v == 1, "user_version %d", v);
	T_ASSERT(raw_int(dir,
			 "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
			 "('tokens', 'nodes', 'certs')",
			 &tables) == 0 &&
			 tables == 3,
		 "%d of 3 tables", tables);
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
	T_ASSERT(ctl_store_schema_version(st) == 1, "version %d", ctl_store_schema_version(st));
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

static const struct t_case cases[] = {
	{"open creates schema version 1 (0600, WAL, three tables)", t_open_creates_schema},
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
