// SPDX-License-Identifier: Apache-2.0
/*
 * Prometheus text exposition (format 0.0.4) and the /metrics HTTP server. See metrics.h.
 *
 * Threads and lifetime of the server: NNG calls handle() on its threads with a begun nng_aio;
 * handle() finds its server by id among the live ones, queues the aio and wakes the loop; the
 * loop (wake_cb) takes the whole queue, renders once and finishes every aio with a response.
 * Stopping unregisters the server first, so that a dispatch racing the stop (or, on an address
 * NNG keeps serving for someone else, coming after it) finds no server and fails its request
 * itself; then it fails the waiting ones and stops NNG. The server is freed by the close
 * callback of its uv_async handle.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "bulkhead/log.h"
#include "bulkhead/metrics.h"
#include "bulkhead/tls.h" /* bh_nng_errno() */
#include "bulkhead/util.h"

/* ---------------------------------------------------------------- exposition text */

/* Where an announced family's name sits in the text (offsets survive reallocation). */
struct bh_metrics_family_mark {
	size_t off, len;
	enum bh_metric_type type;
};

static const char *const type_names[] = {
	[BH_METRIC_COUNTER] = "counter",
	[BH_METRIC_GAUGE] = "gauge",
};

void bh_metrics_buf_init(struct bh_metrics_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void bh_metrics_buf_fini(struct bh_metrics_buf *b)
{
	if (!b)
		return;
	free(b->text);
	free(b->families);
	memset(b, 0, sizeof(*b));
}

const char *bh_metrics_buf_text(const struct bh_metrics_buf *b)
{
	return b->text ? b->text : "";
}

static int buf_fail(struct bh_metrics_buf *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int buf_fail(struct bh_metrics_buf *b, int code, const char *fmt, ...)
{
	va_list ap;

	if (b->err.code)
		return b->err.code;
	b->err.code = code;
	va_start(ap, fmt);
	vsnprintf(b->err.msg, sizeof(b->err.msg), fmt, ap);
	va_end(ap);
	return code;
}

static int buf_reserve(struct bh_metrics_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *t;

	if (more > SIZE_MAX / 2 - b->len - 1)
		return buf_fail(b, -ENOMEM, "metrics text too large");
	while (cap < b->len + more + 1)
		cap *= 2;
	if (cap == b->cap)
		return 0;
	t = realloc(b->text, cap);
	if (!t)
		return buf_fail(b, -ENOMEM, "out of memory for %zu bytes of metrics text", cap);
	b->text = t;
	b->cap = cap;
	return 0;
}

/* Appends n bytes (the text stays NUL-terminated). Callers check b->err once at the end. */
static void put(struct bh_metrics_buf *b, const char *s, size_t n)
{
	if (b->err.code || buf_reserve(b, n))
		return;
	memcpy(b->text + b->len, s, n);
	b->len += n;
	b->text[b->len] = '\0';
}

static void puts_(struct bh_metrics_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* Appends s with '\\' and newline escaped, and '"' too when quotes (label values; HELP leaves
 * quotes alone, as the format says). */
static void put_escaped(struct bh_metrics_buf *b, const char *s, bool quotes)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quotes)
			esc = "\\\"";
		if (!esc)
			continue;
		put(b, run, (size_t)(s - run));
		put(b, esc, 2);
		run = s + 1;
	}
	put(b, run, (size_t)(s - run));
}

static bool name_char(char c, bool first, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names (colon), [a-zA-Z_][a-zA-Z0-9_]* for labels. */
static bool name_valid(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++)
		if (!name_char(s[i], i == 0, colon))
			return false;
	return true;
}

static const struct bh_metrics_family_mark *family_find(const struct bh_metrics_buf *b,
							const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < b->n_families; i++) {
		const struct bh_metrics_family_mark *f = &b->families[i];

		if (f->len == len && memcmp(b->text + f->off, name, len) == 0)
			return f;
	}
	return NULL;
}

int bh_metrics_family(struct bh_metrics_buf *b, const char *name, enum bh_metric_type type,
		      const char *help)
{
	struct bh_metrics_family_mark *f;
	size_t off;

	if (b->err.code)
		return b->err.code;
	if (!name_valid(name, true))
		return buf_fail(b, -EINVAL,
				"metric name \"%s\" does not match [a-zA-Z_:][a-zA-Z0-9_:]*",
				name ? name : "(null)");
	if ((unsigned int)type >= BH_ARRAY_SIZE(type_names))
		return buf_fail(b, -EINVAL, "metric %s: unknown type %d", name, (int)type);
	if (!help || !*help)
		return buf_fail(b, -EINVAL, "metric %s has no help text", name);
	if (family_find(b, name))
		return buf_fail(b, -EINVAL, "metric %s announced twice", name);
	if (b->n_families == b->cap_families) {
		size_t cap = b->cap_families ? b->cap_families * 2 : 16;

		f = realloc(b->families, cap * sizeof(*f));
		if (!f)
			return buf_fail(b, -ENOMEM, "out of memory for metric families");
		b->families = f;
		b->cap_families = cap;
	}
	puts_(b, "# HELP ");
	off = b->len;
	puts_(b, name);
	put(b, " ", 1);
	put_escaped(b, help, false);
	puts_(b, "\n# TYPE ");
	puts_(b, name);
	put(b, " ", 1);
	puts_(b, type_names[type]);
	put(b, "\n", 1);
	if (b->err.code)
		return b->err.code;
	b->families[b->n_families++] = (struct bh_metrics_family_mark){
		.off = off,
		.len = strlen(name),
		.type = type,
	};
	return 0;
}

/* Checks and writes "name{labels} " of the current family; value and newline follow. */
static int sample_start(struct bh_metrics_buf *b, const struct bh_metric_label *labels, size_t n,
			bool negative)
{
	const struct bh_metrics_family_mark *f;

	if (b->err.code)
		return b->err.code;
	if (b->n_families == 0)
		return buf_fail(b, -EINVAL, "metric sample before any family was announced");
	f = &b->families[b->n_families - 1];
	if (negative && f->type == BH_METRIC_COUNTER)
		return buf_fail(b, -EINVAL, "counter %.*s given a negative value", (int)f->len,
				b->text + f->off);
	if (n && !labels)
		return buf_fail(b, -EINVAL, "metric %.*s: %zu labels but no array", (int)f->len,
				b->text + f->off, n);
	for (size_t i = 0; i < n; i++) {
		const char *ln = labels[i].name;

		if (!name_valid(ln, false) || (ln[0] == '_' && ln[1] == '_'))
			return buf_fail(b, -EINVAL,
					"metric %.*s: label name \"%s\" does not match "
					"[a-zA-Z_][a-zA-Z0-9_]* or is reserved (__)",
					(int)f->len, b->text + f->off, ln ? ln : "(null)");
		if (!labels[i].value)
			return buf_fail(b, -EINVAL, "metric %.*s: label %s has no value",
					(int)f->len, b->text + f->off, ln);
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[j].name, ln) == 0)
				return buf_fail(b, -EINVAL, "metric %.*s: label %s given twice",
						(int)f->len, b->text + f->off, ln);
	}
	/* the name is copied from the text itself: make room first, so that put() cannot move
	 * the text out from under its own source */
	if (buf_reserve(b, f->len))
		return b->err.code;
	put(b, b->text + f->off, f->len);
	if (n) {
		put(b, "{", 1);
		for (size_t i = 0; i < n; i++) {
			if (i)
				put(b, ",", 1);
			puts_(b, labels[i].name);
			put(b, "=\"", 2);
			put_escaped(b, labels[i].value, true);
			put(b, "\"", 1);
		}
		put(b, "}", 1);
	}
	put(b, " ", 1);
	return b->err.code;
}

static int sample_end(struct bh_metrics_buf *b, const char *value)
{
	puts_(b, value);
	put(b, "\n", 1);
	return b->err.code;
}

int bh_metrics_sample_u64(struct bh_metrics_buf *b, const struct bh_metric_label *labels, size_t n,
			  uint64_t value)
{
	char v[24];

	if (sample_start(b, labels, n, false))
		return b->err.code;
	snprintf(v, sizeof(v), "%" PRIu64, value);
	return sample_end(b, v);
}

int bh_metrics_sample_i64(struct bh_metrics_buf *b, const struct bh_metric_label *labels, size_t n,
			  int64_t value)
{
	char v[24];

	if (sample_start(b, labels, n, value < 0))
		return b->err.code;
	snprintf(v, sizeof(v), "%" PRId64, value);
	return sample_end(b, v);
}

/*
 * The shortest "%.Ng" that reads back as d (what Prometheus' own clients write, up to exponent
 * style); NaN and the infinities as the format spells them. For a normal double, a %.15g that
 * reads back is already the shortest (%g drops trailing zeros); subnormals, with fewer bits,
 * can be shorter still.
 */
static void format_double(double d, char *buf, size_t len)
{
	if (isnan(d)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(d)) {
		snprintf(buf, len, d > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* a daemon never sets LC_NUMERIC, but a decimal comma must not reach a scraper */
	for (char *p = buf; *p; p++)
		if (*p == ',')
			*p = '.';
}

int bh_metrics_sample_double(struct bh_metrics_buf *b, const struct bh_metric_label *labels,
			     size_t n, double value)
{
	char v[40];

	if (sample_start(b, labels, n, value < 0))
		return b->err.code;
	format_double(value, v, sizeof(v));
	return sample_end(b, v);
}

/* ---------------------------------------------------------------- listen address */

/*
 * Turns "HOST:PORT" into NNG's "http://HOST:PORT" (IPv6 in brackets) and checks the policy.
 */
static int listen_parse(const char *listen, unsigned int flags, char *url, size_t ulen,
			struct bh_error *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_s, *end;
	uint8_t addr[16];
	uint64_t port;
	bool v6, loopback;
	size_t n;

	if (!listen || !*listen)
		return bh_error_set(err, -EINVAL,
				    "metrics listen address is empty: want HOST:PORT "
				    "(127.0.0.1:9464, [::1]:9464, localhost:9464)");
	if (listen[0] == '[') {
		end = strchr(listen, ']');
		if (!end)
			return bh_error_set(err, -EINVAL,
					    "metrics listen address \"%s\": '[' without ']'",
					    listen);
		n = (size_t)(end - listen - 1);
		port_s = end[1] == ':' ? end + 2 : NULL;
		v6 = true;
		if (n == 0 || n >= sizeof(host))
			goto bad_host;
		memcpy(host, listen + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			goto bad_host;
		if (end[1] != ':' && end[1] != '\0')
			return bh_error_set(err, -EINVAL,
					    "metrics listen address \"%s\": junk after ']'",
					    listen);
	} else {
		end = strrchr(listen, ':');
		if (!end)
			goto no_port;
		n = (size_t)(end - listen);
		port_s = end + 1;
		v6 = false;
		if (memchr(listen, ':', n))
			return bh_error_set(err, -EINVAL,
					    "metrics listen address \"%s\": write an IPv6 address "
					    "in brackets, as in [::1]:9464",
					    listen);
		if (n == 0 || n >= sizeof(host))
			goto bad_host;
		memcpy(host, listen, n);
		host[n] = '\0';
		/* "localhost" is 127.0.0.1 here, not whatever the resolver says first (NNG
		 * would bind to one of ::1 and 127.0.0.1 only) */
		if (strcmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host, addr) != 1)
			goto bad_host;
	}
	if (!port_s || !*port_s)
		goto no_port;
	if (bh_parse_u64(port_s, 65535, &port))
		return bh_error_set(err, -EINVAL,
				    "metrics listen address \"%s\": port \"%s\" is not a number "
				    "in 0-65535",
				    listen, port_s);
	if (v6) {
		static const uint8_t one[16] = {[15] = 1};

		loopback = memcmp(addr, one, 16) == 0;
	} else {
		loopback = addr[0] == 127;
	}
	if (!loopback && !(flags & BH_METRICS_ALLOW_PUBLIC))
		return bh_error_set(
			err, -EPERM,
			"metrics listen address \"%s\" is not a loopback address "
			"(127.0.0.0/8 or ::1): refusing to serve metrics to the network "
			"unless that is explicitly allowed",
			listen);
	snprintf(url, ulen, "http://%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
		 (unsigned int)port);
	return 0;
no_port:
	return bh_error_set(err, -EINVAL,
			    "metrics listen address \"%s\" has no port: want HOST:PORT", listen);
bad_host:
	return bh_error_set(err, -EINVAL,
			    "metrics listen address \"%s\": host is not an IPv4 address, a "
			    "bracketed IPv6 address or localhost",
			    listen);
}

/* ---------------------------------------------------------------- server */

struct waiter {
	struct waiter *next;
	nng_aio *aio;
	bool close; /* the request carried a body we did not read: close after answering */
};

struct bh_metrics_server {
	uv_async_t wake; /* closed by stop; its close callback frees s */
	bh_metrics_render_fn render;
	void *ctx;
	nng_http_server *http;
	nng_http_handler *handler;
	int port;
	char where[64]; /* the listen address, for messages */
	bool rendering; /* loop thread only */

	/* under live_lock: */
	uintptr_t id;			/* the handler's data: looked up, never dereferenced */
	struct bh_metrics_server *next; /* in live_servers */
	struct waiter *head, **tail;
	unsigned int n_waiting;
	bool ready; /* wake is initialised: handle() may uv_async_send() */
};

/*
 * The servers handle() may queue scrapes for. NNG's handler carries a server's id rather than
 * the server, which is ours alone: a dispatch racing the stop, or coming after it on an address
 * NNG goes on serving for another holder, finds no live server for its id and fails the request.
 * (Hanging the server off the handler's reference count instead would tie it to NNG's handler
 * lifetime, which 1.5.2 gets wrong in a race with stop: see http_teardown().) One lock for all
 * servers and their queues: a process has one or two, and the critical sections are a few
 * pointer moves.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bh_metrics_server *live_servers;
static uintptr_t live_next_id = 1;

/* live_lock held */
static struct bh_metrics_server *live_find(uintptr_t id)
{
	struct bh_metrics_server *s;

	for (s = live_servers; s && s->id != id; s = s->next)
		;
	return s;
}

/* live_lock held. Unlinks s (if linked) and takes its whole queue. */
static struct waiter *live_take(struct bh_metrics_server *s, bool unlink)
{
	struct bh_metrics_server **pp;
	struct waiter *w = s->head;

	if (unlink) {
		for (pp = &live_servers; *pp && *pp != s; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = s->next;
	}
	s->head = NULL;
	s->tail = &s->head;
	s->n_waiting = 0;
	return w;
}

/*
 * Completes a request NNG handed to handle() with a response (any thread); NNG owns the response
 * from there, writes it and frees it. If even the response cannot be made, the aio fails and NNG
 * closes the connection.
 */
static void answer(nng_aio *aio, uint16_t status, const char *ctype, const char *body, size_t len,
		   bool close, const char *allow)
{
	nng_http_res *res = NULL;
	int rv;

	if ((rv = nng_http_res_alloc(&res)) || (rv = nng_http_res_set_status(res, status)) ||
	    (rv = nng_http_res_set_header(res, "Content-Type", ctype)) ||
	    (rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) ||
	    (allow && (rv = nng_http_res_set_header(res, "Allow", allow))) ||
	    (close && (rv = nng_http_res_set_header(res, "Connection", "close"))) ||
	    (rv = nng_http_res_copy_data(res, body, len))) {
		if (res)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void answer_text(nng_aio *aio, uint16_t status, const char *text, bool close,
			const char *allow)
{
	answer(aio, status, "text/plain; charset=utf-8", text, strlen(text), close, allow);
}

static bool request_has_body(nng_http_req *req)
{
	const char *cl = nng_http_req_get_header(req, "Content-Length");

	return nng_http_req_get_header(req, "Transfer-Encoding") || (cl && strcmp(cl, "0") != 0);
}

/*
 * NNG's handler for /metrics, on an NNG thread, with an aio NNG has begun. Registered for every
 * method so that the 405 carries Allow (NNG's own has none).
 *
 * NNG 1.5.2: no nng_aio_defer() here. It registers a cancel function, but on an aio already
 * closed by a server stop it aborts the aio's task and says nothing (it returns void); a later
 * nng_aio_finish() would then run NNG's completion on a connection already reaped. Without a
 * cancel function, NNG's stop simply waits for our finish, which bh_metrics_server_stop() gives
 * to every waiting request before it stops NNG.
 */
static void handle(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	uintptr_t id = (uintptr_t)nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	const char *method = nng_http_req_get_method(req);
	struct bh_metrics_server *s;
	struct waiter *w;
	bool full = false;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		answer_text(aio, 405, "method not allowed\n", true, "GET, HEAD");
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	w->aio = aio;
	w->close = request_has_body(req);
	pthread_mutex_lock(&live_lock);
	s = live_find(id);
	if (s && s->n_waiting < BH_METRICS_MAX_WAITING) {
		*s->tail = w;
		s->tail = &w->next;
		s->n_waiting++;
		if (s->ready)
			uv_async_send(&s->wake);
		w = NULL;
	} else {
		full = s != NULL;
	}
	pthread_mutex_unlock(&live_lock);
	if (w && full)
		answer_text(aio, 503, "too many scrapes waiting\n", true, NULL);
	else if (w)
		nng_aio_finish(aio, NNG_ECLOSED); /* stopping: NNG closes the connection */
	free(w);
}

/* Loop thread: renders once for every scrape waiting (async sends coalesce) and answers them. */
static void wake_cb(uv_async_t *h)
{
	struct bh_metrics_server *s = h->data;
	struct waiter *w, *next;
	struct bh_metrics_buf b;

	pthread_mutex_lock(&live_lock);
	w = live_take(s, false);
	pthread_mutex_unlock(&live_lock);
	if (!w)
		return;
	bh_metrics_buf_init(&b);
	s->rendering = true;
	s->render(&b, s->ctx);
	s->rendering = false;
	if (b.err.code)
		bh_log(LOG_ERR, "metrics on %s: cannot render: %s", s->where, b.err.msg);
	for (; w; w = next) {
		next = w->next;
		if (b.err.code)
			answer_text(w->aio, 500, "cannot render metrics (see the daemon's log)\n",
				    w->close, NULL);
		else
			answer(w->aio, 200, BH_METRICS_CONTENT_TYPE, bh_metrics_buf_text(&b), b.len,
			       w->close, NULL);
		free(w);
	}
	bh_metrics_buf_fini(&b);
}

/*
 * The NNG half of stopping (also start's failure path): unregisters s, so that handle() fails
 * new scrapes, fails those waiting, stops NNG and lets go of the server and handler. added and
 * started say how far start got. On return no NNG thread can reach s.
 */
static void http_teardown(struct bh_metrics_server *s, bool added, bool started)
{
	struct waiter *w, *next;

	pthread_mutex_lock(&live_lock);
	w = live_take(s, true);
	pthread_mutex_unlock(&live_lock);
	/*
	 * Waiting scrapes fail: NNG closes their connections. (A 503 would be no kinder, and no
	 * more reliable: NNG's server stop below is a hard stop that cuts off answers still being
	 * written.)
	 */
	for (; w; w = next) {
		next = w->next;
		nng_aio_finish(w->aio, NNG_ECLOSED);
		free(w);
	}
	/*
	 * Take the handler off, then stop (balancing our start): when no one else holds this
	 * address, NNG closes the listener and every connection and waits for them, which cannot
	 * block on the loop since nothing of ours is left waiting. Not the other way round, though
	 * it would spare a request arriving in between NNG's 404: NNG 1.5.2 leaks a handler
	 * (rxdone counts a dispatch, then fails to begin the callback's aio on a connection the
	 * stop closed, and never uncounts it) whenever a request read just before the stop is
	 * matched to a handler still on the server. Matching and closing both hold the server's
	 * lock, so once off, the handler cannot be caught that way.
	 */
	if (added)
		nng_http_server_del_handler(s->http, s->handler);
	if (started)
		nng_http_server_stop(s->http);
	if (s->http)
		nng_http_server_release(s->http);
	if (s->handler)
		nng_http_handler_free(s->handler);
	s->http = NULL;
	s->handler = NULL;
}

static void wake_closed(uv_handle_t *h)
{
	free(h->data);
}

int bh_metrics_server_start(uv_loop_t *loop, const char *listen, unsigned int flags,
			    bh_metrics_render_fn render, void *ctx, struct bh_metrics_server **out,
			    struct bh_error *err)
{
	struct bh_metrics_server *s;
	bool added = false, started = false;
	nng_url *u = NULL;
	nng_sockaddr sa;
	char url[96];
	int r, rv;

	if (!loop || !render || !out)
		return bh_error_set(err, -EINVAL, "bh_metrics_server_start: missing argument");
	if (flags & ~BH_METRICS_ALLOW_PUBLIC)
		return bh_error_set(err, -EINVAL, "bh_metrics_server_start: unknown flags %#x",
				    flags);
	r = listen_parse(listen, flags, url, sizeof(url), err);
	if (r)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return bh_error_set(err, -ENOMEM, "out of memory");
	s->render = render;
	s->ctx = ctx;
	s->tail = &s->head;
	snprintf(s->where, sizeof(s->where), "%s", listen);
	pthread_mutex_lock(&live_lock);
	s->id = live_next_id++;
	s->next = live_servers;
	live_servers = s;
	pthread_mutex_unlock(&live_lock);

	if ((rv = nng_url_parse(&u, url)) || (rv = nng_http_server_hold(&s->http, u))) {
		s->http = NULL;
		r = bh_error_set(err, bh_nng_errno(rv), "metrics on %s: %s", listen,
				 nng_strerror(rv));
		goto fail;
	}
	/* every method comes to handle(), which answers 405 with Allow; bodies are not read */
	if ((rv = nng_http_handler_alloc(&s->handler, "/metrics", handle)) ||
	    (rv = nng_http_handler_set_data(s->handler, (void *)s->id, NULL)) ||
	    (rv = nng_http_handler_set_method(s->handler, NULL)) ||
	    (rv = nng_http_handler_collect_body(s->handler, false, 0))) {
		r = bh_error_set(err, bh_nng_errno(rv), "metrics on %s: %s", listen,
				 nng_strerror(rv));
		goto fail;
	}
	/* NNG shares one server among holders of the same address: a second /metrics clashes */
	if ((rv = nng_http_server_add_handler(s->http, s->handler))) {
		r = bh_error_set(err, bh_nng_errno(rv), "metrics on %s: %s", listen,
				 rv == NNG_EADDRINUSE ? "already served in this process"
						      : nng_strerror(rv));
		goto fail;
	}
	added = true;
	if ((rv = nng_http_server_start(s->http))) {
		r = bh_error_set(err, bh_nng_errno(rv), "metrics: cannot listen on %s: %s", listen,
				 nng_strerror(rv));
		goto fail;
	}
	started = true;
	if ((rv = nng_http_server_get_addr(s->http, &sa))) {
		r = bh_error_set(err, bh_nng_errno(rv), "metrics on %s: bound address: %s", listen,
				 nng_strerror(rv));
		goto fail;
	}
	s->port = ntohs(sa.s_family == NNG_AF_INET6 ? sa.s_in6.sa_port : sa.s_in.sa_port);
	if ((r = uv_async_init(loop, &s->wake, wake_cb))) {
		r = bh_error_set(err, r, "metrics on %s: uv_async_init: %s", listen,
				 uv_strerror(r));
		goto fail;
	}
	s->wake.data = s;
	/* a scrape may have come in already: it waits in the queue for this first wake-up */
	pthread_mutex_lock(&live_lock);
	s->ready = true;
	if (s->head)
		uv_async_send(&s->wake);
	pthread_mutex_unlock(&live_lock);
	nng_url_free(u);
	bh_log(LOG_INFO, "serving metrics on %s (port %d), path /metrics", s->where, s->port);
	*out = s;
	return 0;
fail:
	if (u)
		nng_url_free(u);
	http_teardown(s, added, started);
	free(s); /* wake was never initialised */
	return r;
}

int bh_metrics_server_port(const struct bh_metrics_server *s)
{
	return s->port;
}

unsigned int bh_metrics_server_waiting(struct bh_metrics_server *s)
{
	unsigned int n;

	pthread_mutex_lock(&live_lock);
	n = s->n_waiting;
	pthread_mutex_unlock(&live_lock);
	return n;
}

void bh_metrics_server_stop(struct bh_metrics_server *s)
{
	if (!s)
		return;
	/* stopping NNG from render would wait for the scrapes render is about to answer */
	assert(!s->rendering);
	http_teardown(s, true, true);
	/* handle() sends on wake only under live_lock while s is live: closing it is safe now */
	uv_close((uv_handle_t *)&s->wake, wake_closed);
}
