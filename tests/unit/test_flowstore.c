// SPDX-License-Identifier: Apache-2.0
/*
 * The flow store (controller/flowstore.c) on a real SQLite file in a temp dir: minute upserts add
 * up, closed minutes roll up to their hour exactly once, late rows for rolled-up minutes reach the
 * hour too, hourly reads see rolled and unrolled minutes without counting twice, rule hits,
 * retention never drops a minute before its hour has it, events and node stats round-trip, a
 * reader connection reads what the writer committed, and a damaged file is a clear error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "flowstore.h"
#include "tap.h"

static char dir[64];
static int64_t now_s, minute; /* this minute's start */

static void dir_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/bh-test-flowstore.XXXXXX");
	if (!mkdtemp(dir))
		abort();
}

static void dir_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "    could not remove %s\n", dir);
}

/* A new temp dir with a store: its writer and a reader connection. */
static int stores_open(struct ctl_flowstore **w, struct ctl_flowstore **r)
{
	struct bh_error err = {0};

	dir_make();
	if (ctl_flowstore_open(dir, false, w, &err) || ctl_flowstore_open(dir, true, r, &err)) {
		fprintf(stderr, "    open: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static void stores_close(struct ctl_flowstore *w, struct ctl_flowstore *r)
{
	ctl_flowstore_close(r);
	ctl_flowstore_close(w);
	dir_remove();
}

static struct ctl_flow_row row(int64_t bucket, uint32_t node, uint32_t src, uint16_t port,
			       uint32_t rule, uint64_t packets)
{
	return (struct ctl_flow_row){
		.k = {.bucket = bucket, .node = node, .src = src, .dst = 300, .rule = rule,
		      .port = port, .proto = 6, .dir = 0, .verdict = 1},
		.v = {.packets = packets, .bytes = packets * 100, .first_ms = bucket * 1000,
		      .last_ms = bucket * 1000 + 500, .revision = 7},
	};
}

static int write_rows(struct ctl_flowstore *st, struct ctl_flow_row *rows, size_t n)
{
	static const struct ctl_flow_node_name names[] = {{1, "node-a"}, {2, "node-b"}};
	struct ctl_flow_batch b = {.rows = rows, .n_rows = n, .names = names, .n_names = 2};
	struct bh_error err = {0};
	int rc = ctl_flowstore_write(st, &b, &err);

	if (rc)
		fprintf(stderr, "    write: %s\n", err.msg);
	return rc;
}

struct sum {
	uint64_t rows, packets;
};

static int sum_cb(const struct ctl_flow_row *r, void *ctx)
{
	struct sum *s = ctx;

	s->rows++;
	s->packets += r->v.packets;
	return 0;
}

static struct sum query(struct ctl_flowstore *st, int64_t since, bool hourly, uint32_t node)
{
	struct ctl_flow_filter f = {.since_s = since, .hourly = hourly, .node = node};
	struct sum s = {0};
	struct bh_error err = {0};

	if (ctl_flowstore_query(st, &f, sum_cb, &s, &err))
		fprintf(stderr, "    query: %s\n", err.msg);
	return s;
}

/* Rows and packets in flows_1h itself, through a connection of the test's own. */
static struct sum hour_table(void)
{
	char path[128];
	struct sum s = {UINT64_MAX, UINT64_MAX};
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;

	snprintf(path, sizeof(path), "%s/flows.db", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(packets), 0) FROM flows_1h", -1,
			       &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW) {
		s.rows = (uint64_t)sqlite3_column_int64(q, 0);
		s.packets = (uint64_t)sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	return s;
}

static int t_upserts_add_up(void)
{
	struct ctl_flowstore *w = NULL, *r = NULL;
	struct ctl_flow_row a[] = {row(minute, 1, 256, 80, 300, 3), row(minute, 1, 257, 80, 300, 4)};
	struct ctl_flow_row b[] = {row(minute, 1, 256, 80, 300, 10), row(minute, 2, 256, 80, 300, 1)};
	struct sum s;
	int rc = 1;

	if (stores_open(&w, &r))
		goto out;
	if (write_rows(w, a, 2) || write_rows(w, b, 2))
		goto out;
	s = query(r, minute - 60, false, 0);
	if (s.rows != 3 || s.packets != 18) {
		fprintf(stderr, "    minute rows %lu packets %lu, want 3 and 18\n", s.rows, s.packets);
		goto out;
	}
	s = query(r, minute - 60, false, 2);
	if (s.rows != 1 || s.packets != 1) {
		fprintf(stderr, "    node 2: rows %lu packets %lu, want 1 and 1\n", s.rows, s.packets);
		goto out;
	}
	/* not rolled up yet: the hourly read takes the minutes, the hour table has nothing */
	s = query(r, minute - 3600, true, 0);
	if (s.rows != 3 || s.packets != 18 || hour_table().rows != 0) {
		fprintf(stderr, "    hourly before rollup: rows %lu packets %lu (hour table %lu)\n",
			s.rows, s.packets, hour_table().rows);
		goto out;
	}
	rc = 0;
out:
	stores_close(w, r);
	return rc;
}

static int t_rollup_once_and_late_rows(void)
{
	struct ctl_flowstore *w = NULL, *r = NULL;
	struct bh_error err = {0};
	int64_t m0 = minute - 600, m1 = minute - 540; /* two closed minutes, ten minutes ago */
	struct ctl_flow_row a[] = {row(m0, 1, 256, 80, 300, 5), row(m1, 1, 256, 80, 300, 7),
				   row(minute, 1, 256, 80, 300, 11)};
	struct ctl_flow_row late[] = {row(m0, 1, 256, 80, 300, 100)};
	struct sum s, h;
	int64_t n;
	int rc = 1;

	if (stores_open(&w, &r))
		goto out;
	/* a new store starts rolled up to now: pretend it began an hour ago by writing first,
	 * then rolling up from a time when those minutes were closed */
	if (write_rows(w, a, 3))
		goto out;
	n = ctl_flowstore_rollup(w, now_s, &err);
	/* the store was created this minute: nothing before it is waiting */
	if (n != 0) {
		fprintf(stderr, "    first rollup rolled %ld rows, want 0 (%s)\n", (long)n, err.msg);
		goto out;
	}
	/* minutes before rolled_upto are "late": written to their hour at once */
	h = hour_table();
	if (h.rows < 1 || h.rows > 2 || h.packets != 12) { /* 2 when an hour starts between them */
		fprintf(stderr, "    hour table after late minutes: %lu rows, %lu packets; want 1, 12\n",
			h.rows, h.packets);
		goto out;
	}
	if (write_rows(w, late, 1))
		goto out;
	h = hour_table();
	s = query(r, minute - 3600 * 2, true, 0);
	/* one hour row (m0, m1 and the late row) + the current minute not rolled up, unless the
	 * current minute is in the same hour: then the read merges them into one key */
	if (h.packets != 112 || s.packets != 123) {
		fprintf(stderr, "    hour table %lu packets (want 112); hourly read %lu (want 123)\n",
			h.packets, s.packets);
		goto out;
	}
	/* the current minute closes: rolled up once, and again is a no-op */
	n = ctl_flowstore_rollup(w, minute + 60 + CTL_FLOWS_ROLLUP_GRACE_S, &err);
	if (n != 1 || ctl_flowstore_rollup(w, minute + 60 + CTL_FLOWS_ROLLUP_GRACE_S, &err) != 0) {
		fprintf(stderr, "    rollup of the closed minute: %ld rows, want 1 (%s)\n", (long)n,
			err.msg);
		goto out;
	}
	h = hour_table();
	s = query(r, minute - 3600 * 2, true, 0);
	if (h.packets != 123 || s.packets != 123) {
		fprintf(stderr, "    after rollup: hour table %lu packets, read %lu (want 123, 123)\n",
			h.packets, s.packets);
		goto out;
	}
	/* the minute table is untouched by the rollup */
	s = query(r, minute - 3600, false, 0);
	if (s.packets != 123) {
		fprintf(stderr, "    minute read %lu packets, want 123\n", s.packets);
		goto out;
	}
	rc = 0;
out:
	stores_close(w, r);
	return rc;
}

struct hits {
	uint64_t packets[4];
	int64_t last[4];
};

static int hit_cb(uint32_t rule, uint64_t packets, uint64_t flows, int64_t last_ms, void *ctx)
{
	struct hits *h = ctx;

	(void)flows;
	if (rule >= 300 && rule < 304) {
		h->packets[rule - 300] = packets;
		h->last[rule - 300] = last_ms;
	}
	return 0;
}

static int t_rule_hits_and_retention(void)
{
	struct ctl_flowstore *w = NULL, *r = NULL;
	struct bh_error err = {0};
	int64_t old = minute - 3 * 86400;
	struct ctl_flow_row a[] = {row(old, 1, 256, 80, 301, 9), row(minute, 1, 256, 80, 300, 2),
				   row(minute, 1, 256, 443, 300, 3), row(minute, 2, 258, 53, 302, 1)};
	struct hits h = {0};
	struct sum s;
	int64_t n;
	int rc = 1;

	if (stores_open(&w, &r))
		goto out;
	if (write_rows(w, a, 4))
		goto out;
	if (ctl_flowstore_rule_hits(r, now_s - 7 * 86400, hit_cb, &h, &err)) {
		fprintf(stderr, "    rule hits: %s\n", err.msg);
		goto out;
	}
	if (h.packets[0] != 5 || h.packets[1] != 9 || h.packets[2] != 1 || h.packets[3] != 0 ||
	    h.last[0] != minute * 1000 + 500) {
		fprintf(stderr, "    hits %lu %lu %lu %lu, want 5 9 1 0\n", h.packets[0], h.packets[1],
			h.packets[2], h.packets[3]);
		goto out;
	}
	/* a window of one day leaves rule 301's hit out */
	memset(&h, 0, sizeof(h));
	ctl_flowstore_rule_hits(r, now_s - 86400, hit_cb, &h, &err);
	if (h.packets[1] != 0 || h.packets[0] != 5) {
		fprintf(stderr, "    one-day window: rule 301 %lu (want 0), 300 %lu\n", h.packets[1],
			h.packets[0]);
		goto out;
	}
	/* retention of one day for hours, one minute for minutes: the three-day-old row goes (it
	 * was late, so it is in its hour too, and both go); this minute's rows stay although
	 * they are past the minute retention then, because they are not rolled up yet */
	n = ctl_flowstore_prune(w, now_s + 600, 60, 86400, &err); /* ten minutes on */
	s = query(r, minute - 60, false, 0);
	if (n != 2 || s.packets != 6) {
		fprintf(stderr, "    prune removed %ld (want 2: the old minute and its hour); %lu "
				"packets left in minutes (want 6)\n",
			(long)n, s.packets);
		goto out;
	}
	rc = 0;
out:
	stores_close(w, r);
	return rc;
}

static int ev_cb(const struct ctl_flow_event *e, void *ctx)
{
	struct ctl_flow_event *out = ctx;

	*out = *e;
	return 1; /* one is enough */
}

static int st_cb(const struct ctl_flow_node_stats *s, void *ctx)
{
	struct ctl_flow_node_stats *out = ctx;

	if (s->node == 1)
		*out = *s;
	return 0;
}

static int t_events_and_stats(void)
{
	struct ctl_flowstore *w = NULL, *r = NULL;
	struct bh_error err = {0};
	struct ctl_flow_event e = {.at_ms = now_s * 1000, .node = 1, .family = 4, .proto = 6,
				   .dir = 1, .verdict = 2, .sport = 40000, .dport = 5432,
				   .rule = 300, .local = 256, .remote = 2, .ifname = "eth0"};
	struct ctl_flow_node_stats st[2] = {
		{.node = 1, .last_report_ms = 1, .reports = 2, .summaries = 10, .rejected = 1,
		 .summaries_dropped = 5, .agent_started_ms = 42},
		{.node = 1, .last_report_ms = 3, .reports = 1, .summaries = 4, .rejected = 0,
		 .summaries_dropped = 7, .agent_started_ms = 42},
	};
	struct ctl_flow_node_name names[] = {{1, "node-a"}};
	struct ctl_flow_event got = {0};
	struct ctl_flow_node_stats gs = {0};
	int rc = 1;

	memcpy(e.saddr, (uint8_t[]){198, 18, 10, 11}, 4);
	memcpy(e.daddr, (uint8_t[]){198, 18, 10, 13}, 4);
	if (stores_open(&w, &r))
		goto out;
	for (int i = 0; i < 2; i++) {
		struct ctl_flow_batch b = {.events = &e, .n_events = 1, .stats = &st[i], .n_stats = 1,
					   .names = names, .n_names = 1};

		if (ctl_flowstore_write(w, &b, &err)) {
			fprintf(stderr, "    write: %s\n", err.msg);
			goto out;
		}
	}
	if (ctl_flowstore_events(r, now_s - 60, 0, ev_cb, &got, &err) < 0 ||
	    ctl_flowstore_stats(r, st_cb, &gs, &err)) {
		fprintf(stderr, "    read: %s\n", err.msg);
		goto out;
	}
	if (got.dport != 5432 || got.daddr[3] != 13 || strcmp(got.ifname, "eth0") || got.remote != 2) {
		fprintf(stderr, "    event did not round-trip\n");
		goto out;
	}
	/* counts add up, the agent's own counters are the latest */
	if (gs.reports != 3 || gs.summaries != 14 || gs.rejected != 1 || gs.summaries_dropped != 7 ||
	    gs.last_report_ms != 3) {
		fprintf(stderr, "    stats: reports %lu summaries %lu dropped %lu\n", gs.reports,
			gs.summaries, gs.summaries_dropped);
		goto out;
	}
	rc = 0;
out:
	stores_close(w, r);
	return rc;
}

static int t_damaged_file(void)
{
	struct ctl_flowstore *w = NULL;
	struct bh_error err = {0};
	char path[128];
	int fd, rc = 1;

	dir_make();
	snprintf(path, sizeof(path), "%s/flows.db", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "this is not a database, it is a text file of 64 bytes..........", 64) !=
			      64) {
		fprintf(stderr, "    could not write %s\n", path);
		goto out;
	}
	close(fd);
	if (ctl_flowstore_open(dir, false, &w, &err) == 0) {
		fprintf(stderr, "    a damaged file opened\n");
		goto out;
	}
	if (!strstr(err.msg, "flows.db") || !strstr(err.msg, "not a database")) {
		fprintf(stderr, "    error does not name the file and the cause: %s\n", err.msg);
		goto out;
	}
	rc = 0;
out:
	ctl_flowstore_close(w);
	dir_remove();
	return rc;
}

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		{"minute upserts add up; hourly reads see minutes not rolled up", t_upserts_add_up},
		{"closed minutes roll up once; late rows reach their hour", t_rollup_once_and_late_rows},
		{"rule hits over a window; retention keeps unrolled minutes", t_rule_hits_and_retention},
		{"deny events and node stats round-trip", t_events_and_stats},
		{"a damaged flows.db is a clear error", t_damaged_file},
	};

	/* one clock for every case: the cases' rows are built from it before they start */
	now_s = time(NULL);
	minute = now_s - now_s % 60;
	return t_run(cases, sizeof(cases) / sizeof(cases[0]), argc > 1 ? argv[1] : NULL);
}
