// SPDX-License-Identifier: Apache-2.0
/* The flow store (flowstore.h): flow summaries in minute and hour buckets, in flows.db. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bulkhead/util.h"
#include "flowstore.h"

#define FLOWS_BUSY_MS 10000

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
	/* the key first: an upsert finds its row by it; queries scan a bucket range */
	"CREATE TABLE IF NOT EXISTS flows_1m (bucket INTEGER NOT NULL, node INTEGER NOT NULL,"
	" src INTEGER NOT NULL, dst INTEGER NOT NULL, proto INTEGER NOT NULL,"
	" port INTEGER NOT NULL, dir INTEGER NOT NULL, verdict INTEGER NOT NULL,"
	" rule INTEGER NOT NULL, packets INTEGER NOT NULL, bytes INTEGER NOT NULL,"
	" first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, revision INTEGER NOT NULL,"
	" PRIMARY KEY (bucket, node, src, dst, proto, port, dir, verdict, rule)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS flows_1h (bucket INTEGER NOT NULL, node INTEGER NOT NULL,"
	" src INTEGER NOT NULL, dst INTEGER NOT NULL, proto INTEGER NOT NULL,"
	" port INTEGER NOT NULL, dir INTEGER NOT NULL, verdict INTEGER NOT NULL,"
	" rule INTEGER NOT NULL, packets INTEGER NOT NULL, bytes INTEGER NOT NULL,"
	" first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, revision INTEGER NOT NULL,"
	" PRIMARY KEY (bucket, node, src, dst, proto, port, dir, verdict, rule)) WITHOUT ROWID;"
	/* rule hits scan the window and group by rule: an index by rule would cost every rollup
	 * more than it saves those scans */
	"DROP INDEX IF EXISTS flows_1h_rule;"
	"CREATE TABLE IF NOT EXISTS events (at_ms INTEGER NOT NULL, node INTEGER NOT NULL,"
	" family INTEGER NOT NULL, saddr BLOB NOT NULL, daddr BLOB NOT NULL,"
	" sport INTEGER NOT NULL, dport INTEGER NOT NULL, proto INTEGER NOT NULL,"
	" dir INTEGER NOT NULL, verdict INTEGER NOT NULL, rule INTEGER NOT NULL,"
	" local INTEGER NOT NULL, remote INTEGER NOT NULL, ifname TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS events_at ON events (at_ms);"
	"CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS node_stats (node INTEGER PRIMARY KEY,"
	" last_report_ms INTEGER NOT NULL, reports INTEGER NOT NULL, summaries INTEGER NOT NULL,"
	" rejected INTEGER NOT NULL, summaries_dropped INTEGER NOT NULL,"
	" events_dropped INTEGER NOT NULL, kernel_events_not_sent INTEGER NOT NULL,"
	" kernel_flows_not_counted INTEGER NOT NULL, agent_started_ms INTEGER NOT NULL);";

/* The statements a writer runs for every batch. */
enum {
	S_UPSERT_1M,
	S_UPSERT_1H,
	S_EVENT,
	S_STATS,
	S_NODE,
	S_ROLLUP,
	S_META_SET,
	S_NR,
};

/* A row's counts saturate at 2^53: sums of rows can then not overflow SQLite's 64-bit integers
 * (reads use total() besides), whatever agents send. */
#define CAP "9007199254740992"

#define UPSERT(T)                                                                                 \
	"INSERT INTO " T " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"   \
	" ON CONFLICT DO UPDATE SET packets = min(packets + excluded.packets, " CAP "),"          \
	" bytes = min(bytes + excluded.bytes, " CAP "),"                                          \
	" first_ms = min(first_ms, excluded.first_ms),"                                           \
	" last_ms = max(last_ms, excluded.last_ms), revision = max(revision, excluded.revision)"

static const char *const stmt_sql[S_NR] = {
	[S_UPSERT_1M] = UPSERT("flows_1m"),
	[S_UPSERT_1H] = UPSERT("flows_1h"),
	[S_EVENT] = "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
		    " ?13, ?14)",
	[S_STATS] = "INSERT INTO node_stats VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
		    " ON CONFLICT DO UPDATE SET last_report_ms = max(last_report_ms,"
		    " excluded.last_report_ms), reports = reports + excluded.reports,"
		    " summaries = summaries + excluded.summaries,"
		    " rejected = rejected + excluded.rejected,"
		    " summaries_dropped = excluded.summaries_dropped,"
		    " events_dropped = excluded.events_dropped,"
		    " kernel_events_not_sent = excluded.kernel_events_not_sent,"
		    " kernel_flows_not_counted = excluded.kernel_flows_not_counted,"
		    " agent_started_ms = excluded.agent_started_ms",
	[S_NODE] = "INSERT OR IGNORE INTO nodes VALUES (?1, ?2)",
	/* WHERE true: SQLite's upsert after a SELECT needs a WHERE to parse */
	/* one minute at a time: its rows are one per key, read in key order, so they go into the
	 * hour in order and need no grouping (WHERE true: SQLite's upsert after a SELECT needs a
	 * WHERE to parse) */
	[S_ROLLUP] = "INSERT INTO flows_1h SELECT ?2, node, src, dst, proto, port, dir, verdict, rule,"
		     " packets, bytes, first_ms, last_ms, revision FROM flows_1m WHERE bucket = ?1"
		     " AND true ORDER BY node, src, dst, proto, port, dir, verdict, rule"
		     " ON CONFLICT DO UPDATE SET packets = min(packets + excluded.packets, " CAP "),"
		     " bytes = min(bytes + excluded.bytes, " CAP "),"
		     " first_ms = min(first_ms, excluded.first_ms),"
		     " last_ms = max(last_ms, excluded.last_ms),"
		     " revision = max(revision, excluded.revision)",
	[S_META_SET] = "INSERT INTO meta VALUES (?1, ?2) ON CONFLICT DO UPDATE SET v = excluded.v",
};

struct ctl_flowstore {
	sqlite3 *db;
	char path[4096];
	sqlite3_stmt *stmt[S_NR];
	int64_t rolled_upto; /* writer: minutes before this are in flows_1h */
};

/* The columns a flow row is read with, from either table. */
#define COLS "bucket, node, src, dst, proto, port, dir, verdict, rule, packets, bytes, first_ms, last_ms, revision"

static int fail(struct ctl_flowstore *st, int rc, struct bh_error *err, const char *what)
{
	int e = (rc & 0xff) == SQLITE_FULL ? -ENOSPC : (rc & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;

	return bh_error_set(err, e, "flow store %s: %s: %s", st->path, what,
			    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
}

static int exec(struct ctl_flowstore *st, const char *sql, struct bh_error *err, const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(st, rc, err, what);
}

/* A meta value, -1 when absent or unreadable. */
static int64_t meta_get(struct ctl_flowstore *st, const char *key)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(st->db, "SELECT v FROM meta WHERE k = ?1", -1, &s, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	return v;
}

static int step_reset(sqlite3_stmt *s);

static int meta_set(struct ctl_flowstore *st, const char *key, int64_t v, struct bh_error *err)
{
	int rc;

	sqlite3_bind_text(st->stmt[S_META_SET], 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st->stmt[S_META_SET], 2, v);
	rc = step_reset(st->stmt[S_META_SET]);
	return rc == SQLITE_OK ? 0 : fail(st, rc, err, "writing meta");
}

int ctl_flowstore_open(const char *dir, bool readonly, struct ctl_flowstore **out,
		       struct bh_error *err)
{
	struct ctl_flowstore *st = calloc(1, sizeof(*st));
	int rc, ret = 0, fd;

	if (!st)
		return bh_error_set(err, -ENOMEM, "flow store: out of memory");
	if ((size_t)snprintf(st->path, sizeof(st->path), "%s/%s", dir, CTL_FLOWS_FILE) >=
	    sizeof(st->path)) {
		free(st);
		return bh_error_set(err, -ENAMETOOLONG, "flow store: directory name too long");
	}
	if (!readonly) {
		/* created private before SQLite opens it: flows say who talks to whom */
		fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			ret = bh_error_set(err, -errno, "flow store: %s: %s", st->path,
					   strerror(errno));
			goto out;
		}
		close(fd);
	}
	/* NOMUTEX: one connection, one thread */
	rc = sqlite3_open_v2(st->path, &st->db,
			     (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		ret = fail(st, rc, err, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, FLOWS_BUSY_MS);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (readonly)
		goto out;
	/* FULL: a report is acknowledged only once its rows are on disk */
	if ((ret = exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", err,
			"setting up")) ||
	    (ret = exec(st, "BEGIN IMMEDIATE", err, "creating the schema")))
		goto out;
	if ((ret = exec(st, schema, err, "creating the schema")) ||
	    (ret = exec(st, /* schema version 1; a change adds a migration */ "PRAGMA user_version = 1; COMMIT", err,
			"creating the schema"))) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	for (int i = 0; i < S_NR; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&st->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			ret = fail(st, rc, err, "preparing a statement");
			goto out;
		}
	}
	/* batches of tens of thousands of rows into a table of millions: keep its index pages */
	if ((ret = exec(st, "PRAGMA cache_size = -65536", err, "setting up")))
		goto out;
	/* a new store has nothing to roll up before now */
	if ((st->rolled_upto = meta_get(st, "rolled_upto")) < 0) {
		time_t now = time(NULL);

		st->rolled_upto = (int64_t)now - (int64_t)now % 60;
		if ((ret = meta_set(st, "rolled_upto", st->rolled_upto, err)))
			goto out;
	}
out:
	if (ret) {
		ctl_flowstore_close(st);
		return ret;
	}
	*out = st;
	return 0;
}

void ctl_flowstore_close(struct ctl_flowstore *st)
{
	if (!st)
		return;
	for (int i = 0; i < S_NR; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close_v2(st->db);
	free(st);
}

/* ---- writing -------------------------------------------------------------------------------- */

static int step_reset(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int put_row(sqlite3_stmt *s, const struct ctl_flow_row *r, int64_t bucket)
{
	sqlite3_bind_int64(s, 1, bucket);
	sqlite3_bind_int64(s, 2, r->k.node);
	sqlite3_bind_int64(s, 3, r->k.src);
	sqlite3_bind_int64(s, 4, r->k.dst);
	sqlite3_bind_int(s, 5, r->k.proto);
	sqlite3_bind_int(s, 6, r->k.port);
	sqlite3_bind_int(s, 7, r->k.dir);
	sqlite3_bind_int(s, 8, r->k.verdict);
	sqlite3_bind_int64(s, 9, r->k.rule);
	/* SQLite integers are signed 64-bit: the ingestion clamps counts far below that */
	sqlite3_bind_int64(s, 10, (int64_t)r->v.packets);
	sqlite3_bind_int64(s, 11, (int64_t)r->v.bytes);
	sqlite3_bind_int64(s, 12, r->v.first_ms);
	sqlite3_bind_int64(s, 13, r->v.last_ms);
	sqlite3_bind_int64(s, 14, (int64_t)r->v.revision);
	return step_reset(s);
}

static int put_event(sqlite3_stmt *s, const struct ctl_flow_event *e)
{
	size_t alen = e->family == 4 ? 4 : 16;

	sqlite3_bind_int64(s, 1, e->at_ms);
	sqlite3_bind_int64(s, 2, e->node);
	sqlite3_bind_int(s, 3, e->family);
	sqlite3_bind_blob(s, 4, e->saddr, (int)alen, SQLITE_STATIC);
	sqlite3_bind_blob(s, 5, e->daddr, (int)alen, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, e->sport);
	sqlite3_bind_int(s, 7, e->dport);
	sqlite3_bind_int(s, 8, e->proto);
	sqlite3_bind_int(s, 9, e->dir);
	sqlite3_bind_int(s, 10, e->verdict);
	sqlite3_bind_int64(s, 11, e->rule);
	sqlite3_bind_int64(s, 12, e->local);
	sqlite3_bind_int64(s, 13, e->remote);
	sqlite3_bind_text(s, 14, e->ifname, -1, SQLITE_STATIC);
	return step_reset(s);
}

static int put_stats(sqlite3_stmt *s, const struct ctl_flow_node_stats *n)
{
	sqlite3_bind_int64(s, 1, n->node);
	sqlite3_bind_int64(s, 2, n->last_report_ms);
	sqlite3_bind_int64(s, 3, (int64_t)n->reports);
	sqlite3_bind_int64(s, 4, (int64_t)n->summaries);
	sqlite3_bind_int64(s, 5, (int64_t)n->rejected);
	sqlite3_bind_int64(s, 6, (int64_t)n->summaries_dropped);
	sqlite3_bind_int64(s, 7, (int64_t)n->events_dropped);
	sqlite3_bind_int64(s, 8, (int64_t)n->kernel_events_not_sent);
	sqlite3_bind_int64(s, 9, (int64_t)n->kernel_flows_not_counted);
	sqlite3_bind_int64(s, 10, n->agent_started_ms);
	return step_reset(s);
}

/* The tables' key order, so that a batch's upserts walk the B-tree in order. */
static int row_cmp(const void *a, const void *b)
{
	const struct ctl_flow_key *x = &((const struct ctl_flow_row *)a)->k;
	const struct ctl_flow_key *y = &((const struct ctl_flow_row *)b)->k;

	if (x->bucket != y->bucket)
		return x->bucket < y->bucket ? -1 : 1;
#define CMP(f)                                                                                    \
	if (x->f != y->f)                                                                         \
		return x->f < y->f ? -1 : 1;
	CMP(node)
	CMP(src)
	CMP(dst)
	CMP(proto)
	CMP(port)
	CMP(dir)
	CMP(verdict)
	CMP(rule)
#undef CMP
	return 0;
}

int ctl_flowstore_write(struct ctl_flowstore *st, const struct ctl_flow_batch *b,
			struct bh_error *err)
{
	int rc = SQLITE_OK, ret;

	if (b->n_rows > 1)
		qsort(b->rows, b->n_rows, sizeof(*b->rows), row_cmp);
	if ((ret = exec(st, "BEGIN IMMEDIATE", err, "writing")))
		return ret;
	for (size_t i = 0; i < b->n_names && rc == SQLITE_OK; i++) {
		sqlite3_bind_int64(st->stmt[S_NODE], 1, b->names[i].node);
		sqlite3_bind_text(st->stmt[S_NODE], 2, b->names[i].name, -1, SQLITE_STATIC);
		rc = step_reset(st->stmt[S_NODE]);
	}
	for (size_t i = 0; i < b->n_rows && rc == SQLITE_OK; i++) {
		const struct ctl_flow_row *r = &b->rows[i];

		rc = put_row(st->stmt[S_UPSERT_1M], r, r->k.bucket);
		/* late: its minute was rolled up already */
		if (rc == SQLITE_OK && r->k.bucket < st->rolled_upto)
			rc = put_row(st->stmt[S_UPSERT_1H], r, r->k.bucket - r->k.bucket % 3600);
	}
	for (size_t i = 0; i < b->n_events && rc == SQLITE_OK; i++)
		rc = put_event(st->stmt[S_EVENT], &b->events[i]);
	for (size_t i = 0; i < b->n_stats && rc == SQLITE_OK; i++)
		rc = put_stats(st->stmt[S_STATS], &b->stats[i]);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = fail(st, rc, err, "writing");
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	return 0;
}

int64_t ctl_flowstore_rollup(struct ctl_flowstore *st, int64_t now_s, struct bh_error *err)
{
	int64_t closed = now_s - CTL_FLOWS_ROLLUP_GRACE_S, n;
	int rc, ret;

	closed -= closed % 60;
	if (closed <= st->rolled_upto)
		return 0;
	if ((ret = exec(st, "BEGIN IMMEDIATE", err, "rolling up")))
		return ret;
	/* minutes with no row cost one index probe each; a controller down for days catches up
	 * here once */
	n = 0;
	rc = SQLITE_OK;
	for (int64_t m = st->rolled_upto; m < closed && rc == SQLITE_OK; m += 60) {
		sqlite3_bind_int64(st->stmt[S_ROLLUP], 1, m);
		sqlite3_bind_int64(st->stmt[S_ROLLUP], 2, m - m % 3600);
		rc = step_reset(st->stmt[S_ROLLUP]);
		n += sqlite3_changes(st->db);
	}
	if (rc != SQLITE_OK || (ret = meta_set(st, "rolled_upto", closed, err))) {
		ret = rc != SQLITE_OK ? fail(st, rc, err, "rolling up") : ret;
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	if ((ret = exec(st, "COMMIT", err, "rolling up"))) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	st->rolled_upto = closed;
	return n;
}

int64_t ctl_flowstore_prune(struct ctl_flowstore *st, int64_t now_s, uint32_t minute_keep_s,
			    uint32_t keep_s, struct bh_error *err)
{
	static const char *const sql[] = {
		"DELETE FROM flows_1m WHERE bucket < ?1",
		"DELETE FROM flows_1h WHERE bucket < ?1 - ?1 % 3600",
		"DELETE FROM events WHERE at_ms < ?1 * 1000",
	};
	int64_t removed = 0;
	int ret;

	if ((ret = exec(st, "BEGIN IMMEDIATE", err, "pruning")))
		return ret;
	for (size_t i = 0; i < BH_ARRAY_SIZE(sql); i++) {
		sqlite3_stmt *s = NULL;
		int rc = sqlite3_prepare_v2(st->db, sql[i], -1, &s, NULL);

		if (rc == SQLITE_OK) {
			int64_t cut = now_s - (i == 0 ? minute_keep_s : keep_s);

			/* a minute goes only once it is in its hour */
			if (i == 0 && cut > st->rolled_upto)
				cut = st->rolled_upto;
			sqlite3_bind_int64(s, 1, cut);
			rc = sqlite3_step(s);
		}
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE) {
			ret = fail(st, rc, err, "pruning");
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return ret;
		}
		removed += sqlite3_changes(st->db);
	}
	if ((ret = exec(st, "COMMIT", err, "pruning"))) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	return removed;
}

/* ---- reading -------------------------------------------------------------------------------- */

int ctl_flowstore_nodes(struct ctl_flowstore *st, int (*cb)(uint32_t node, const char *name,
							     void *ctx),
			void *ctx, struct bh_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "SELECT id, name FROM nodes ORDER BY id", -1, &s, NULL);
	int ret = 0;

	while (rc == SQLITE_OK && !ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		ret = cb((uint32_t)sqlite3_column_int64(s, 0),
			 (const char *)sqlite3_column_text(s, 1), ctx);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : fail(st, rc, err, "reading nodes");
}

int ctl_flowstore_query(struct ctl_flowstore *st, const struct ctl_flow_filter *f,
			int (*cb)(const struct ctl_flow_row *r, void *ctx), void *ctx,
			struct bh_error *err)
{
	char sql[1024];
	sqlite3_stmt *s = NULL;
	int rc, ret = 0;

	/* hours: the hour table, and the minutes not rolled up into it yet (?6) */
	snprintf(sql, sizeof(sql),
		 "SELECT node, src, dst, proto, port, dir, verdict, rule, total(packets), total(bytes),"
		 " min(first_ms), max(last_ms), max(revision) FROM (%s)"
		 " WHERE (?2 = 0 OR node = ?2) AND (?3 = 0 OR port = ?3)"
		 " AND (?4 = 0 OR proto = ?4) AND (?5 = 0 OR verdict = ?5)"
		 " GROUP BY node, src, dst, proto, port, dir, verdict, rule"
		 " ORDER BY max(last_ms) DESC",
		 f->hourly ? "SELECT " COLS " FROM flows_1h WHERE bucket >= ?1 UNION ALL SELECT " COLS
			     " FROM flows_1m WHERE bucket >= max(?6, (SELECT v FROM meta WHERE k ="
			     " 'rolled_upto'))"
			   : "SELECT " COLS " FROM flows_1m WHERE bucket >= ?1");
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		int64_t since = f->since_s - f->since_s % (f->hourly ? 3600 : 60);

		sqlite3_bind_int64(s, 1, since);
		sqlite3_bind_int64(s, 2, f->node);
		sqlite3_bind_int64(s, 3, f->port);
		sqlite3_bind_int(s, 4, f->proto);
		sqlite3_bind_int(s, 5, f->verdict);
		/* rolled_upto is read in the statement's own snapshot: a rollup committing
		 * meanwhile cannot make a minute count in both tables */
		if (f->hourly)
			sqlite3_bind_int64(s, 6, since);
	}
	while (rc == SQLITE_OK && !ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ctl_flow_row r = {
			.k = {.node = (uint32_t)sqlite3_column_int64(s, 0),
			      .src = (uint32_t)sqlite3_column_int64(s, 1),
			      .dst = (uint32_t)sqlite3_column_int64(s, 2),
			      .proto = (uint8_t)sqlite3_column_int(s, 3),
			      .port = (uint16_t)sqlite3_column_int(s, 4),
			      .dir = (uint8_t)sqlite3_column_int(s, 5),
			      .verdict = (uint8_t)sqlite3_column_int(s, 6),
			      .rule = (uint32_t)sqlite3_column_int64(s, 7)},
			.v = {.packets = (uint64_t)sqlite3_column_int64(s, 8),
			      .bytes = (uint64_t)sqlite3_column_int64(s, 9),
			      .first_ms = sqlite3_column_int64(s, 10),
			      .last_ms = sqlite3_column_int64(s, 11),
			      .revision = (uint64_t)sqlite3_column_int64(s, 12)},
		};

		ret = cb(&r, ctx);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : fail(st, rc, err, "reading flows");
}

int ctl_flowstore_events(struct ctl_flowstore *st, int64_t since_s, uint32_t node,
			 int (*cb)(const struct ctl_flow_event *e, void *ctx), void *ctx,
			 struct bh_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(st->db,
				"SELECT at_ms, node, family, saddr, daddr, sport, dport, proto, dir,"
				" verdict, rule, local, remote, ifname FROM events"
				" WHERE at_ms >= ?1 * 1000 AND (?2 = 0 OR node = ?2)"
				" ORDER BY at_ms DESC",
				-1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, since_s);
		sqlite3_bind_int64(s, 2, node);
	}
	while (rc == SQLITE_OK && !ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ctl_flow_event e = {
			.at_ms = sqlite3_column_int64(s, 0),
			.node = (uint32_t)sqlite3_column_int64(s, 1),
			.family = (uint8_t)sqlite3_column_int(s, 2),
			.sport = (uint16_t)sqlite3_column_int(s, 5),
			.dport = (uint16_t)sqlite3_column_int(s, 6),
			.proto = (uint8_t)sqlite3_column_int(s, 7),
			.dir = (uint8_t)sqlite3_column_int(s, 8),
			.verdict = (uint8_t)sqlite3_column_int(s, 9),
			.rule = (uint32_t)sqlite3_column_int64(s, 10),
			.local = (uint32_t)sqlite3_column_int64(s, 11),
			.remote = (uint32_t)sqlite3_column_int64(s, 12),
		};
		size_t alen = e.family == 4 ? 4 : 16;
		const char *ifn = (const char *)sqlite3_column_text(s, 13);

		if ((size_t)sqlite3_column_bytes(s, 3) == alen)
			memcpy(e.saddr, sqlite3_column_blob(s, 3), alen);
		if ((size_t)sqlite3_column_bytes(s, 4) == alen)
			memcpy(e.daddr, sqlite3_column_blob(s, 4), alen);
		snprintf(e.ifname, sizeof(e.ifname), "%s", ifn ? ifn : "");
		ret = cb(&e, ctx);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : fail(st, rc, err, "reading events");
}

int ctl_flowstore_stats(struct ctl_flowstore *st,
			int (*cb)(const struct ctl_flow_node_stats *s, void *ctx), void *ctx,
			struct bh_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(st->db, "SELECT * FROM node_stats ORDER BY node", -1, &s, NULL);
	while (rc == SQLITE_OK && !ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ctl_flow_node_stats n = {
			.node = (uint32_t)sqlite3_column_int64(s, 0),
			.last_report_ms = sqlite3_column_int64(s, 1),
			.reports = (uint64_t)sqlite3_column_int64(s, 2),
			.summaries = (uint64_t)sqlite3_column_int64(s, 3),
			.rejected = (uint64_t)sqlite3_column_int64(s, 4),
			.summaries_dropped = (uint64_t)sqlite3_column_int64(s, 5),
			.events_dropped = (uint64_t)sqlite3_column_int64(s, 6),
			.kernel_events_not_sent = (uint64_t)sqlite3_column_int64(s, 7),
			.kernel_flows_not_counted = (uint64_t)sqlite3_column_int64(s, 8),
			.agent_started_ms = sqlite3_column_int64(s, 9),
		};

		ret = cb(&n, ctx);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : fail(st, rc, err, "reading node stats");
}

int ctl_flowstore_rule_hits(struct ctl_flowstore *st, int64_t since_s,
			    int (*cb)(uint32_t rule, uint64_t packets, uint64_t flows,
				      int64_t last_ms, void *ctx),
			    void *ctx, struct bh_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc, ret = 0;

	/* flow records per node and hour: the hour table and the minutes not rolled up yet */
	rc = sqlite3_prepare_v2(
		st->db,
		"SELECT rule, total(p), count(*), max(l) FROM (SELECT bucket - bucket % 3600 AS h,"
		" node, src, dst, proto, port, dir, verdict, rule, total(packets) AS p,"
		" max(last_ms) AS l FROM (SELECT " COLS " FROM flows_1h WHERE bucket >= ?1 UNION ALL"
		" SELECT " COLS " FROM flows_1m WHERE bucket >= max(?2, (SELECT v FROM meta WHERE"
		" k = 'rolled_upto')))"
		" GROUP BY h, node, src, dst, proto, port, dir, verdict, rule) GROUP BY rule",
		-1, &s, NULL);
	if (rc == SQLITE_OK) { /* rolled_upto read in the statement's snapshot, as above */
		sqlite3_bind_int64(s, 1, since_s - since_s % 3600);
		sqlite3_bind_int64(s, 2, since_s);
	}
	while (rc == SQLITE_OK && !ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		ret = cb((uint32_t)sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1),
			 (uint64_t)sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3), ctx);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : fail(st, rc, err, "reading rule hits");
}
