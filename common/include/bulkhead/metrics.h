/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus metrics: a builder for the text exposition format 0.0.4, and a small HTTP server
 * (NNG's supplemental HTTP server) that answers GET /metrics with what the daemon renders.
 *
 * Building: a render function announces each family once with bh_metrics_family() (the # HELP
 * and # TYPE lines), then adds that family's samples; a sample always belongs to the family
 * announced last, so samples cannot stray from their family or be interleaved with another's.
 *
 *	bh_metrics_family(b, "bulkhead_agent_packets_total", BH_METRIC_COUNTER,
 *			  "Packets seen by the datapath, by verdict.");
 *	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "allow"}), allowed);
 *	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "drop"}), dropped);
 *
 * Mistakes (a bad name, a family announced twice, a sample before any family, a negative counter)
 * are programming errors: they are recorded in the buffer's err, the first one wins, and every
 * later call does nothing, so a render function may check once at the end (the server does, and
 * answers 500 with the cause in the log).
 *
 * Serving: the daemon's state lives on its libuv loop thread, while NNG calls HTTP handlers on
 * its own threads. The handler therefore only queues the request and wakes the loop
 * (uv_async_send); the loop renders once for every scrape waiting and answers them all. A busy
 * loop makes scrapes wait; nothing is rendered off the loop.
 */
#ifndef BULKHEAD_METRICS_H
#define BULKHEAD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bulkhead/error.h"

/* ---- exposition text ----------------------------------------------------------------------- */

enum bh_metric_type {
	BH_METRIC_COUNTER, /* only goes up (samples must not be negative) */
	BH_METRIC_GAUGE,
};

/* One label of a sample. name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved);
 * value: any UTF-8 text (escaped on output). */
struct bh_metric_label {
	const char *name;
	const char *value;
};

/* The (labels, n) argument pair from a list of {name, value} pairs:
 * bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "drop"}, {"proto", "tcp"}), 3); */
#define BH_METRIC_LABELS(...)                                                                      \
	((const struct bh_metric_label[]){__VA_ARGS__}),                                           \
		(sizeof((const struct bh_metric_label[]){__VA_ARGS__}) /                           \
		 sizeof(struct bh_metric_label))

struct bh_metrics_family_mark; /* private */

/* A growable exposition text. Read text with bh_metrics_buf_text(); the rest is private. */
struct bh_metrics_buf {
	char *text;	     /* NUL-terminated; NULL until something was written */
	size_t len;	     /* bytes in text */
	struct bh_error err; /* the first error (code 0 while none) */
	/* private */
	size_t cap;
	struct bh_metrics_family_mark *families; /* announced so far; the last is the current one */
	size_t n_families, cap_families;
};

/* Makes b empty. Never fails (allocates nothing). */
void bh_metrics_buf_init(struct bh_metrics_buf *b);

/* Frees what b holds (b itself is the caller's). Takes NULL. b may be initialised again. */
void bh_metrics_buf_fini(struct bh_metrics_buf *b);

/* The text so far ("" when empty). Valid until the next call on b. */
const char *bh_metrics_buf_text(const struct bh_metrics_buf *b);

/*
 * Announces a family: "# HELP name help" (help with '\' and newline escaped) and "# TYPE name
 * type". name must match [a-zA-Z_:][a-zA-Z0-9_:]* and not have been announced in b before; help
 * must be non-empty. Samples added next belong to it. Returns 0, or the error recorded in
 * b->err: -EINVAL for the mistakes above, -ENOMEM.
 */
int bh_metrics_family(struct bh_metrics_buf *b, const char *name, enum bh_metric_type type,
		      const char *help);

/*
 * Adds a sample of the family announced last: "name{l1="v1",...} value". labels may be NULL when
 * n is 0; label values are escaped ('\', '"', newline); label names must be valid and distinct.
 * Doubles are written in their shortest round-trip form, NaN as "NaN", infinities as "+Inf" and
 * "-Inf". A counter's value must not be negative. Returns 0, or the error recorded in b->err:
 * -EINVAL (no family announced yet, a bad or repeated label name, a negative counter), -ENOMEM.
 */
int bh_metrics_sample_u64(struct bh_metrics_buf *b, const struct bh_metric_label *labels, size_t n,
			  uint64_t value);
int bh_metrics_sample_i64(struct bh_metrics_buf *b, const struct bh_metric_label *labels, size_t n,
			  int64_t value);
int bh_metrics_sample_double(struct bh_metrics_buf *b, const struct bh_metric_label *labels,
			     size_t n, double value);

/* ---- HTTP server ----------------------------------------------------------------------------- */

#define BH_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Scrapes waiting for the loop at once; more are answered 503 at once. */
#define BH_METRICS_MAX_WAITING 64

/* bh_metrics_server_start() flags. */
#define BH_METRICS_ALLOW_PUBLIC (1u << 0) /* allow a non-loopback listen address */

struct bh_metrics_server;

/* Fills b with the current metrics. Called on the loop thread, once for all the scrapes waiting;
 * must not call bh_metrics_server_stop(). Errors recorded in b make the scrapes get a 500. */
typedef void (*bh_metrics_render_fn)(struct bh_metrics_buf *b, void *ctx);

/*
 * Serves GET (and HEAD) /metrics on listen, "HOST:PORT" with HOST an IPv4 literal, a bracketed
 * IPv6 literal ("[::1]:9464") or "localhost" (which means 127.0.0.1), and PORT 0-65535 (0: any
 * free port, see bh_metrics_server_port()). Other paths get 404, other methods 405.
 *
 * Policy: an address outside 127.0.0.0/8 and ::1 (the wildcards included) is refused with -EPERM
 * unless flags has BH_METRICS_ALLOW_PUBLIC. Bad input is -EINVAL; either way err names the string.
 * A port already in use, or already serving metrics in this process, fails with -EADDRINUSE.
 *
 * Call on the loop thread (or before the loop runs). render(b, ctx) runs on that loop. On success
 * *out is the caller's, to be given to bh_metrics_server_stop(); on failure nothing is left to
 * free and no loop iteration is needed.
 */
int bh_metrics_server_start(uv_loop_t *loop, const char *listen, unsigned int flags,
			    bh_metrics_render_fn render, void *ctx, struct bh_metrics_server **out,
			    struct bh_error *err);

/* The TCP port s listens on (the one the kernel chose when started with port 0). Any thread. */
int bh_metrics_server_port(const struct bh_metrics_server *s);

/* How many scrapes are waiting for the loop right now (any thread; for tests and self-metrics). */
unsigned int bh_metrics_server_waiting(struct bh_metrics_server *s);

/*
 * Stops serving. Loop thread; not from within render. Scrapes still waiting are not answered:
 * NNG closes their connections, like every other open one (its server stop is a hard stop). By
 * return no render will run and NNG holds no request of s.
 * s's last memory is freed by the close callback of its uv_async handle: the caller must let the
 * loop run afterwards (as a daemon does anyway until uv_run() returns, before uv_loop_close()).
 * Takes NULL.
 */
void bh_metrics_server_stop(struct bh_metrics_server *s);

#endif
