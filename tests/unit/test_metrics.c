// SPDX-License-Identifier: Apache-2.0
/*
 * The metrics module (runs under ASan/UBSan/LSan): the exposition text byte for byte, the
 * builder's refusals, and the /metrics server over real HTTP on loopback, with the uv loop on
 * this thread (where every render must run) and plain-socket clients on others: 404/405/HEAD,
 * concurrent scrapes on a busy loop, stop with a scrape waiting, scrapes racing a stop, the
 * listen address policy. All traffic stays on 127.0.0.1 and ::1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <uv.h>

#include "bulkhead/log.h"
#include "bulkhead/metrics.h"
#include "bulkhead/util.h"
#include "tap.h"

/* ---------------------------------------------------------------- exposition text */

/* What render_fixture() writes; the HTTP cases expect exactly this body. */
static const char fixture_text[] =
	"# HELP bulkhead_agent_packets_total Packets seen by the datapath, by verdict.\n"
	"# TYPE bulkhead_agent_packets_total counter\n"
	"bulkhead_agent_packets_total{verdict=\"allow\"} 18446744073709551615\n"
	"bulkhead_agent_packets_total{verdict=\"drop\",proto=\"tcp\"} 0\n"
	"# HELP bulkhead_agent_rules Rules in the datapath.\n"
	"# TYPE bulkhead_agent_rules gauge\n"
	"bulkhead_agent_rules 4096\n";

static void write_fixture(struct bh_metrics_buf *b)
{
	bh_metrics_family(b, "bulkhead_agent_packets_total", BH_METRIC_COUNTER,
			  "Packets seen by the datapath, by verdict.");
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "allow"}), UINT64_MAX);
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "drop"}, {"proto", "tcp"}), 0);
	bh_metrics_family(b, "bulkhead_agent_rules", BH_METRIC_GAUGE, "Rules in the datapath.");
	bh_metrics_sample_i64(b, NULL, 0, 4096);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static int t_format_golden(void)
{
	static const char want[] =
		"# HELP bulkhead_agent_packets_total Packets seen by the datapath, by verdict.\n"
		"# TYPE bulkhead_agent_packets_total counter\n"
		"bulkhead_agent_packets_total{verdict=\"allow\"} 18446744073709551615\n"
		"bulkhead_agent_packets_total{verdict=\"drop\",proto=\"tcp\"} 0\n"
		"# HELP bulkhead_agent_rules Rules in the datapath.\n"
		"# TYPE bulkhead_agent_rules gauge\n"
		"bulkhead_agent_rules 4096\n"
		"# HELP x:rate_total Help with \\\\ a backslash,\\na newline and \"quotes\" kept.\n"
		"# TYPE x:rate_total counter\n"
		"x:rate_total{path=\"C:\\\\dir\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\",_u=\"\"} 1.5\n"
		"# HELP g Doubles.\n"
		"# TYPE g gauge\n"
		"g{v=\"nan\"} NaN\n"
		"g{v=\"+inf\"} +Inf\n"
		"g{v=\"-inf\"} -Inf\n"
		"g{v=\"tenth\"} 0.1\n"
		"g{v=\"third\"} 0.3333333333333333\n"
		"g{v=\"sum\"} 0.30000000000000004\n"
		"g{v=\"million\"} 1000000\n"
		"g{v=\"big\"} 1.5e+300\n"
		"g{v=\"tiny\"} 5e-324\n"
		"g{v=\"negzero\"} -0\n"
		"g{v=\"min\"} -9223372036854775808\n"
		"# HELP empty A family with no samples yet.\n"
		"# TYPE empty gauge\n";
	struct bh_metrics_buf b;
	int r = 1;

	bh_metrics_buf_init(&b);
	T_ASSERT(strcmp(bh_metrics_buf_text(&b), "") == 0, "empty buffer reads as \"\"");
	write_fixture(&b);
	bh_metrics_family(&b, "x:rate_total", BH_METRIC_COUNTER,
			  "Help with \\ a backslash,\na newline and \"quotes\" kept.");
	bh_metrics_sample_double(&b,
				 BH_METRIC_LABELS({"path", "C:\\dir"}, {"q", "say \"hi\""},
						  {"nl", "a\nb"}, {"_u", ""}),
				 1.5);
	bh_metrics_family(&b, "g", BH_METRIC_GAUGE, "Doubles.");
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "nan"}), NAN);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "+inf"}), INFINITY);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "-inf"}), -INFINITY);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "tenth"}), 0.1);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "third"}), 1.0 / 3.0);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "sum"}), 0.1 + 0.2);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "million"}), 1e6);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "big"}), 1.5e300);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "tiny"}), 4.9406564584124654e-324);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"v", "negzero"}), -0.0);
	bh_metrics_sample_i64(&b, BH_METRIC_LABELS({"v", "min"}), INT64_MIN);
	bh_metrics_family(&b, "empty", BH_METRIC_GAUGE, "A family with no samples yet.");
	if (b.err.code) {
		fprintf(stderr, "    unexpected error: %s\n", b.err.msg);
		goto out;
	}
	if (strcmp(bh_metrics_buf_text(&b), want) != 0) {
		fprintf(stderr, "    got:\n%s\n    want:\n%s\n", bh_metrics_buf_text(&b), want);
		goto out;
	}
	if (b.len != strlen(want)) {
		fprintf(stderr, "    len %zu, want %zu\n", b.len, strlen(want));
		goto out;
	}
	if (count(b.text, "# TYPE g ") != 1 || count(b.text, "# HELP g ") != 1) {
		fprintf(stderr, "    HELP/TYPE of g not exactly once\n");
		goto out;
	}
	r = 0;
out:
	bh_metrics_buf_fini(&b);
	return r;
}

/* A buffer grown well past its first allocation keeps every byte in place. */
static int t_format_large(void)
{
	struct bh_metrics_buf b;
	char name[32], want[64];
	int r = 1;

	bh_metrics_buf_init(&b);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "family_%d", i);
		bh_metrics_family(&b, name, BH_METRIC_GAUGE, "h");
		bh_metrics_sample_u64(&b, BH_METRIC_LABELS({"i", name}), (uint64_t)i);
	}
	if (b.err.code || b.len < 100000) {
		fprintf(stderr, "    err %d (%s), len %zu\n", b.err.code, b.err.msg, b.len);
		goto out;
	}
	snprintf(want, sizeof(want), "family_1999{i=\"family_1999\"} 1999\n");
	if (strcmp(b.text + b.len - strlen(want), want) != 0 || strlen(b.text) != b.len) {
		fprintf(stderr, "    tail is wrong\n");
		goto out;
	}
	r = 0;
out:
	bh_metrics_buf_fini(&b);
	return r;
}

/* Each misuse: set up with `prep`, then the bad call, which must fail with -EINVAL, leave the
 * text as it was, and make every later call a no-op returning the same error. */
enum misuse {
	M_SAMPLE_FIRST,
	M_FAMILY_TWICE,
	M_NAME_EMPTY,
	M_NAME_DIGIT,
	M_NAME_DASH,
	M_NAME_NULL,
	M_NO_HELP,
	M_BAD_TYPE,
	M_LABEL_COLON,
	M_LABEL_RESERVED,
	M_LABEL_DIGIT,
	M_LABEL_TWICE,
	M_LABEL_NULL_VALUE,
	M_LABELS_NULL,
	M_COUNTER_NEG_I64,
	M_COUNTER_NEG_DOUBLE,
	M_COUNTER_NEG_INF,
};

static const struct {
	enum misuse m;
	const char *what;
	const char *msg; /* a part of the message */
} misuses[] = {
	{M_SAMPLE_FIRST, "sample before any family", "before any family"},
	{M_FAMILY_TWICE, "family announced twice", "announced twice"},
	{M_NAME_EMPTY, "empty metric name", "\"\""},
	{M_NAME_DIGIT, "metric name starting with a digit", "\"9lives\""},
	{M_NAME_DASH, "metric name with a dash", "\"bad-name\""},
	{M_NAME_NULL, "NULL metric name", "(null)"},
	{M_NO_HELP, "empty help", "no help"},
	{M_BAD_TYPE, "unknown type", "unknown type"},
	{M_LABEL_COLON, "label name with a colon", "\"a:b\""},
	{M_LABEL_RESERVED, "reserved label name", "\"__name__\""},
	{M_LABEL_DIGIT, "label name starting with a digit", "\"1x\""},
	{M_LABEL_TWICE, "label given twice", "given twice"},
	{M_LABEL_NULL_VALUE, "label without value", "no value"},
	{M_LABELS_NULL, "labels counted but NULL", "no array"},
	{M_COUNTER_NEG_I64, "negative counter (i64)", "negative"},
	{M_COUNTER_NEG_DOUBLE, "negative counter (double)", "negative"},
	{M_COUNTER_NEG_INF, "counter at -Inf", "negative"},
};

static int misuse_call(struct bh_metrics_buf *b, enum misuse m)
{
	switch (m) {
	case M_SAMPLE_FIRST:
		return bh_metrics_sample_u64(b, NULL, 0, 1);
	case M_FAMILY_TWICE:
		return bh_metrics_family(b, "c_total", BH_METRIC_GAUGE, "again");
	case M_NAME_EMPTY:
		return bh_metrics_family(b, "", BH_METRIC_GAUGE, "h");
	case M_NAME_DIGIT:
		return bh_metrics_family(b, "9lives", BH_METRIC_GAUGE, "h");
	case M_NAME_DASH:
		return bh_metrics_family(b, "bad-name", BH_METRIC_GAUGE, "h");
	case M_NAME_NULL:
		return bh_metrics_family(b, NULL, BH_METRIC_GAUGE, "h");
	case M_NO_HELP:
		return bh_metrics_family(b, "nohelp", BH_METRIC_GAUGE, "");
	case M_BAD_TYPE:
		return bh_metrics_family(b, "t", (enum bh_metric_type)7, "h");
	case M_LABEL_COLON:
		return bh_metrics_sample_u64(b, BH_METRIC_LABELS({"a:b", "v"}), 1);
	case M_LABEL_RESERVED:
		return bh_metrics_sample_u64(b, BH_METRIC_LABELS({"__name__", "v"}), 1);
	case M_LABEL_DIGIT:
		return bh_metrics_sample_u64(b, BH_METRIC_LABELS({"1x", "v"}), 1);
	case M_LABEL_TWICE:
		return bh_metrics_sample_u64(
			b, BH_METRIC_LABELS({"a", "1"}, {"b", "2"}, {"a", "3"}), 1);
	case M_LABEL_NULL_VALUE:
		return bh_metrics_sample_u64(b, BH_METRIC_LABELS({"a", NULL}), 1);
	case M_LABELS_NULL:
		return bh_metrics_sample_u64(b, NULL, 2, 1);
	case M_COUNTER_NEG_I64:
		return bh_metrics_sample_i64(b, NULL, 0, -1);
	case M_COUNTER_NEG_DOUBLE:
		return bh_metrics_sample_double(b, NULL, 0, -0.5);
	case M_COUNTER_NEG_INF:
		return bh_metrics_sample_double(b, NULL, 0, -INFINITY);
	}
	return 0;
}

static int misuse_one(size_t i)
{
	struct bh_metrics_buf b;
	char *before = NULL;
	int rv, r = 1;

	bh_metrics_buf_init(&b);
	if (misuses[i].m != M_SAMPLE_FIRST) {
		bh_metrics_family(&b, "c_total", BH_METRIC_COUNTER, "A counter.");
		bh_metrics_sample_u64(&b, NULL, 0, 7);
	}
	if (b.err.code || !(before = strdup(bh_metrics_buf_text(&b)))) {
		fprintf(stderr, "    %s: setup failed\n", misuses[i].what);
		goto out;
	}
	rv = misuse_call(&b, misuses[i].m);
	if (rv != -EINVAL || b.err.code != -EINVAL || !strstr(b.err.msg, misuses[i].msg)) {
		fprintf(stderr, "    %s: got %d, err %d \"%s\"; want -EINVAL with \"%s\"\n",
			misuses[i].what, rv, b.err.code, b.err.msg, misuses[i].msg);
		goto out;
	}
	/* sticky: a good call after it does nothing and reports the first error */
	if (bh_metrics_family(&b, "fine", BH_METRIC_GAUGE, "h") != -EINVAL ||
	    bh_metrics_sample_u64(&b, NULL, 0, 1) != -EINVAL ||
	    strcmp(bh_metrics_buf_text(&b), before) != 0 || !strstr(b.err.msg, misuses[i].msg)) {
		fprintf(stderr, "    %s: not sticky, or the text changed:\n%s\n", misuses[i].what,
			bh_metrics_buf_text(&b));
		goto out;
	}
	r = 0;
out:
	free(before);
	bh_metrics_buf_fini(&b);
	return r;
}

static int t_format_misuse(void)
{
	int failed = 0;

	for (size_t i = 0; i < BH_ARRAY_SIZE(misuses); i++)
		failed |= misuse_one(i);
	return failed;
}

/* A counter may be 0 and +Inf; a gauge may be negative. */
static int t_format_allowed_edges(void)
{
	struct bh_metrics_buf b;
	int r = 1;

	bh_metrics_buf_init(&b);
	bh_metrics_family(&b, "c_total", BH_METRIC_COUNTER, "h");
	bh_metrics_sample_i64(&b, NULL, 0, 0);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"a", "x"}), INFINITY);
	bh_metrics_family(&b, "g", BH_METRIC_GAUGE, "h");
	bh_metrics_sample_i64(&b, NULL, 0, -3);
	bh_metrics_sample_double(&b, BH_METRIC_LABELS({"a", "x"}), -2.5);
	if (b.err.code || strcmp(b.text, "# HELP c_total h\n# TYPE c_total counter\nc_total 0\n"
					 "c_total{a=\"x\"} +Inf\n# HELP g h\n# TYPE g gauge\ng -3\n"
					 "g{a=\"x\"} -2.5\n") != 0) {
		fprintf(stderr, "    err \"%s\", text:\n%s\n", b.err.msg, bh_metrics_buf_text(&b));
		goto out;
	}
	r = 0;
out:
	bh_metrics_buf_fini(&b);
	return r;
}

/* ---------------------------------------------------------------- HTTP client (plain sockets) */

struct http_resp {
	int status;	/* 0: no status line */
	int sys_err;	/* errno of connect/send/recv, 0 if none */
	bool timed_out; /* recv hit its timeout: the server never closed */
	char content_type[128], allow[64], connection[32];
	long content_length; /* -1 if absent */
	char raw[32768];
	size_t raw_len;
	const char *body; /* into raw */
	size_t body_len;
};

static int http_connect(bool v6, int port)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 10};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	int e;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin6.sin6_addr = in6addr_loopback;
	if (v6 ? connect(fd, (struct sockaddr *)&sin6, sizeof(sin6))
	       : connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void header_copy(const char *line, size_t n, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);

	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	line += nl + 1;
	n -= nl + 1;
	while (n && *line == ' ')
		line++, n--;
	snprintf(out, len, "%.*s", (int)n, line);
}

static void http_parse(struct http_resp *r)
{
	char *end = memmem(r->raw, r->raw_len, "\r\n\r\n", 4), *line, *eol;
	char cl[32] = "";

	r->content_length = -1;
	if (!end || sscanf(r->raw, "HTTP/1.%*c %d ", &r->status) != 1) {
		r->status = 0;
		return;
	}
	r->body = end + 4;
	r->body_len = r->raw_len - (size_t)(r->body - r->raw);
	for (line = strstr(r->raw, "\r\n") + 2; line < end; line = eol + 2) {
		eol = strstr(line, "\r\n");
		header_copy(line, (size_t)(eol - line), "Content-Type", r->content_type,
			    sizeof(r->content_type));
		header_copy(line, (size_t)(eol - line), "Allow", r->allow, sizeof(r->allow));
		header_copy(line, (size_t)(eol - line), "Connection", r->connection,
			    sizeof(r->connection));
		header_copy(line, (size_t)(eol - line), "Content-Length", cl, sizeof(cl));
	}
	if (cl[0])
		r->content_length = strtol(cl, NULL, 10);
}

/* Sends request (which asks for Connection: close) on fd and reads until the server closes. */
static void http_exchange(int fd, const char *request, struct http_resp *r)
{
	size_t off = 0, len = strlen(request);
	ssize_t n;

	while (off < len) {
		n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r->sys_err = errno;
			return;
		}
		off += (size_t)n;
	}
	for (;;) {
		if (r->raw_len == sizeof(r->raw) - 1)
			break;
		n = recv(fd, r->raw + r->raw_len, sizeof(r->raw) - 1 - r->raw_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			r->timed_out = true;
			break;
		}
		if (n < 0) {
			r->sys_err = errno;
			break;
		}
		if (n == 0)
			break;
		r->raw_len += (size_t)n;
	}
	r->raw[r->raw_len] = '\0';
	http_parse(r);
}

static void http_get(bool v6, int port, const char *request, struct http_resp *r)
{
	int fd = http_connect(v6, port);

	memset(r, 0, sizeof(*r));
	if (fd < 0) {
		r->sys_err = -fd;
		r->content_length = -1;
		return;
	}
	http_exchange(fd, request, r);
	close(fd);
}

#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

/* ---------------------------------------------------------------- server fixture */

enum client_kind {
	C_ONCE,	  /* one request */
	C_IDLE,	  /* connect, send nothing, wait for the server to close */
	C_REPEAT, /* scrape until the server refuses connections */
};

struct fx;

struct client {
	struct fx *fx;
	enum client_kind kind;
	const char *request;
	bool v6;
	pthread_t thread;
	bool started;
	struct http_resp resp;
	/* C_REPEAT */
	int n_ok, n_refused, n_closed, n_bad;
	char bad[160];
	/* C_IDLE */
	ssize_t idle_read;
	int idle_errno;
};

struct fx {
	uv_loop_t loop;
	uv_async_t done; /* a client finished */
	uv_timer_t timer;
	bool timer_on;
	struct bh_metrics_server *srv;
	int port;
	pthread_t loop_thread;
	atomic_int renders, off_loop_renders;
	atomic_int n_done;
	int n_clients;
	struct client c[8];
	bool bad_render;
	/* the timer's job, at 0 ms: keep the loop busy until this many scrapes wait (and the idle
	 * clients are connected), then stop the server if busy_then_stop */
	unsigned int busy_until_waiting;
	bool busy_then_stop;
	bool busy_gave_up;
	unsigned int stop_after_ms; /* or: stop the server this long after the loop starts */
	atomic_int idle_connected;
	bool start_twice; /* start a second server on the first one's address */
	int second_rv;
	char second_msg[512];
};

static void render_fixture(struct bh_metrics_buf *b, void *ctx)
{
	struct fx *fx = ctx;

	atomic_fetch_add(&fx->renders, 1);
	if (!pthread_equal(pthread_self(), fx->loop_thread))
		atomic_fetch_add(&fx->off_loop_renders, 1);
	if (fx->bad_render) {
		bh_metrics_family(b, "ok_total", BH_METRIC_COUNTER, "h");
		bh_metrics_sample_i64(b, NULL, 0, -1);
		return;
	}
	write_fixture(b);
}

static void fx_stop_server(struct fx *fx)
{
	bh_metrics_server_stop(fx->srv);
	fx->srv = NULL;
}

static void client_finished(struct fx *fx)
{
	atomic_fetch_add(&fx->n_done, 1);
	uv_async_send(&fx->done);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct fx *fx = c->fx;
	uint64_t deadline = bh_now_mono_ns() + 20000000000ull;
	char buf[64];
	int fd;

	switch (c->kind) {
	case C_ONCE:
		http_get(c->v6, fx->port, c->request, &c->resp);
		break;
	case C_IDLE:
		fd = http_connect(c->v6, fx->port);
		if (fd < 0) {
			c->idle_errno = -fd;
			c->idle_read = -1;
			atomic_fetch_add(&fx->idle_connected, 1);
			break;
		}
		atomic_fetch_add(&fx->idle_connected, 1);
		do
			c->idle_read = recv(fd, buf, sizeof(buf), 0);
		while (c->idle_read < 0 && errno == EINTR);
		c->idle_errno = c->idle_read < 0 ? errno : 0;
		close(fd);
		break;
	case C_REPEAT:
		while (bh_now_mono_ns() < deadline) {
			struct http_resp *r = &c->resp;

			http_get(c->v6, fx->port, c->request, r);
			if (r->sys_err == ECONNREFUSED)
				break;
			if (r->status == 200 && r->body_len == strlen(fixture_text) &&
			    memcmp(r->body, fixture_text, r->body_len) == 0)
				c->n_ok++;
			else if (r->status == 503 || r->status == 404)
				c->n_refused++; /* too many waiting; between handler off and stop */
			else if (r->status == 0 && r->raw_len == 0 && !r->timed_out)
				c->n_closed++; /* closed (or reset) by the stop before an answer */
			else if (c->n_bad++ == 0)
				snprintf(c->bad, sizeof(c->bad),
					 "status %d, %zu bytes, errno %d, timed out %d", r->status,
					 r->raw_len, r->sys_err, r->timed_out);
		}
		break;
	}
	client_finished(fx);
	return NULL;
}

static void done_cb(uv_async_t *h)
{
	struct fx *fx = h->data;

	if (atomic_load(&fx->n_done) < fx->n_clients)
		return;
	if (fx->srv)
		fx_stop_server(fx);
	uv_close((uv_handle_t *)&fx->done, NULL);
	if (fx->timer_on)
		uv_close((uv_handle_t *)&fx->timer, NULL);
	fx->timer_on = false;
}

static void timer_cb(uv_timer_t *t)
{
	struct fx *fx = t->data;
	uint64_t deadline = bh_now_mono_ns() + 10000000000ull;
	int idle = 0;

	if (fx->stop_after_ms) {
		fx_stop_server(fx);
		return;
	}
	for (int i = 0; i < fx->n_clients; i++)
		idle += fx->c[i].kind == C_IDLE;
	/* the loop is busy here: scrapes must queue up and wait, not be answered elsewhere */
	while (bh_metrics_server_waiting(fx->srv) < fx->busy_until_waiting ||
	       atomic_load(&fx->idle_connected) < idle) {
		if (bh_now_mono_ns() > deadline) {
			fx->busy_gave_up = true;
			break;
		}
		usleep(1000);
	}
	/* a little longer: a scrape past the limit would show up as more waiting */
	usleep(20000);
	if (fx->busy_then_stop)
		fx_stop_server(fx);
}

/* Starts the server on listen, the clients, and runs the loop here until all is closed. */
static int fx_run(struct fx *fx, const char *listen)
{
	struct bh_error err = {0};
	int rv;

	fx->loop_thread = pthread_self();
	T_ASSERT(uv_loop_init(&fx->loop) == 0, "uv_loop_init");
	if (bh_metrics_server_start(&fx->loop, listen, 0, render_fixture, fx, &fx->srv, &err)) {
		uv_loop_close(&fx->loop);
		T_FAIL("start on %s: %s", listen, err.msg);
	}
	fx->port = bh_metrics_server_port(fx->srv);
	if (fx->start_twice) {
		struct bh_metrics_server *second = NULL;
		char where[32];

		bh_error_clear(&err);
		snprintf(where, sizeof(where), "127.0.0.1:%d", fx->port);
		fx->second_rv = bh_metrics_server_start(&fx->loop, where, 0, render_fixture, fx,
							&second, &err);
		snprintf(fx->second_msg, sizeof(fx->second_msg), "%s", err.msg);
		bh_metrics_server_stop(second);
	}
	T_ASSERT(uv_async_init(&fx->loop, &fx->done, done_cb) == 0, "uv_async_init");
	fx->done.data = fx;
	if (fx->busy_until_waiting || fx->busy_then_stop || fx->stop_after_ms) {
		uv_timer_init(&fx->loop, &fx->timer);
		fx->timer.data = fx;
		uv_timer_start(&fx->timer, timer_cb, fx->stop_after_ms, 0);
		fx->timer_on = true;
	}
	for (int i = 0; i < fx->n_clients; i++) {
		fx->c[i].fx = fx;
		if (pthread_create(&fx->c[i].thread, NULL, client_main, &fx->c[i]) != 0) {
			/* let the others finish, then report */
			client_finished(fx);
			continue;
		}
		fx->c[i].started = true;
	}
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < fx->n_clients; i++)
		if (fx->c[i].started)
			pthread_join(fx->c[i].thread, NULL);
	rv = uv_loop_close(&fx->loop);
	T_ASSERT(rv == 0, "uv_loop_close: %s (a handle left open)", uv_strerror(rv));
	T_ASSERT(!fx->srv, "server not stopped");
	for (int i = 0; i < fx->n_clients; i++)
		T_ASSERT(fx->c[i].started, "client %d did not start", i);
	T_ASSERT(atomic_load(&fx->off_loop_renders) == 0, "%d renders off the loop thread",
		 atomic_load(&fx->off_loop_renders));
	T_ASSERT(!fx->busy_gave_up, "the scrapes never queued up (%u waiting wanted)",
		 fx->busy_until_waiting);
	return 0;
}

static int expect_metrics(const struct http_resp *r, const char *who)
{
	T_ASSERT(r->sys_err == 0 && !r->timed_out, "%s: errno %d, timed out %d", who, r->sys_err,
		 r->timed_out);
	T_ASSERT(r->status == 200, "%s: status %d:\n%s", who, r->status, r->raw);
	T_ASSERT(strcmp(r->content_type, BH_METRICS_CONTENT_TYPE) == 0, "%s: Content-Type \"%s\"",
		 who, r->content_type);
	T_ASSERT(r->content_length == (long)strlen(fixture_text), "%s: Content-Length %ld", who,
		 r->content_length);
	T_ASSERT(r->body_len == strlen(fixture_text) &&
			 memcmp(r->body, fixture_text, r->body_len) == 0,
		 "%s: body:\n%.*s", who, (int)r->body_len, r->body);
	return 0;
}

/* ---------------------------------------------------------------- server cases */

static int t_http_get(void)
{
	static struct fx fx;

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 1;
	fx.c[0] = (struct client){.kind = C_ONCE, .request = GET_METRICS};
	if (fx_run(&fx, "127.0.0.1:0"))
		return 1;
	T_ASSERT(fx.port > 0, "port %d", fx.port);
	if (expect_metrics(&fx.c[0].resp, "GET"))
		return 1;
	T_ASSERT(atomic_load(&fx.renders) == 1, "%d renders", atomic_load(&fx.renders));
	return 0;
}

static int t_http_404_405_head(void)
{
	static struct fx fx;
	const struct http_resp *r;

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 7;
	fx.c[0] = (struct client){
		.kind = C_ONCE,
		.request = "GET /other HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"};
	fx.c[1] = (struct client){.kind = C_ONCE,
				  .request = "GET /metrics/extra HTTP/1.1\r\nHost: localhost\r\n"
					     "Connection: close\r\n\r\n"};
	fx.c[2] = (struct client){.kind = C_ONCE,
				  .request = "POST /metrics HTTP/1.1\r\nHost: localhost\r\n"
					     "Content-Length: 3\r\nConnection: close\r\n\r\nx=1"};
	fx.c[3] = (struct client){.kind = C_ONCE,
				  .request = "DELETE /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"};
	fx.c[4] = (struct client){
		.kind = C_ONCE,
		.request =
			"HEAD /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"};
	fx.c[5] = (struct client){.kind = C_ONCE,
				  .request = "GET /metrics?name[]=x HTTP/1.0\r\n\r\n"};
	/* a body on a GET is not read: the answer closes the connection */
	fx.c[6] = (struct client){.kind = C_ONCE,
				  .request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n"
					     "Content-Length: 4\r\n\r\nbody"};
	if (fx_run(&fx, "localhost:0"))
		return 1;
	for (int i = 0; i < 2; i++) {
		r = &fx.c[i].resp;
		T_ASSERT(r->status == 404, "client %d: status %d:\n%s", i, r->status, r->raw);
	}
	for (int i = 2; i < 4; i++) {
		r = &fx.c[i].resp;
		T_ASSERT(r->status == 405, "client %d: status %d:\n%s", i, r->status, r->raw);
		T_ASSERT(strcmp(r->allow, "GET, HEAD") == 0, "client %d: Allow \"%s\"", i,
			 r->allow);
		T_ASSERT(strcasecmp(r->connection, "close") == 0 && !r->timed_out,
			 "client %d: Connection \"%s\", timed out %d", i, r->connection,
			 r->timed_out);
	}
	r = &fx.c[4].resp;
	T_ASSERT(r->status == 200 && r->body_len == 0 &&
			 r->content_length == (long)strlen(fixture_text) &&
			 strcmp(r->content_type, BH_METRICS_CONTENT_TYPE) == 0,
		 "HEAD: status %d, body %zu, Content-Length %ld", r->status, r->body_len,
		 r->content_length);
	if (expect_metrics(&fx.c[5].resp, "HTTP/1.0 GET with a query") ||
	    expect_metrics(&fx.c[6].resp, "GET with a body"))
		return 1;
	T_ASSERT(strcasecmp(fx.c[6].resp.connection, "close") == 0,
		 "GET with a body: Connection \"%s\"", fx.c[6].resp.connection);
	return 0;
}

/* Eight scrapes arrive while the loop is busy: they wait, and one render answers them all. */
static int t_http_concurrent(void)
{
	static struct fx fx;
	char who[32];

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 8;
	for (int i = 0; i < 8; i++)
		fx.c[i] = (struct client){.kind = C_ONCE, .request = GET_METRICS};
	fx.busy_until_waiting = 8;
	if (fx_run(&fx, "127.0.0.1:0"))
		return 1;
	for (int i = 0; i < 8; i++) {
		snprintf(who, sizeof(who), "scrape %d", i);
		if (expect_metrics(&fx.c[i].resp, who))
			return 1;
	}
	T_ASSERT(atomic_load(&fx.renders) == 1, "%d renders for 8 waiting scrapes",
		 atomic_load(&fx.renders));
	return 0;
}

/* Stop while scrapes wait on a busy loop (and another connection sits idle): every connection
 * is closed, nothing renders, nothing hangs or leaks. */
static int t_http_stop_while_waiting(void)
{
	static struct fx fx;
	const struct http_resp *r;

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 3;
	fx.c[0] = (struct client){.kind = C_ONCE, .request = GET_METRICS};
	fx.c[1] = (struct client){.kind = C_ONCE, .request = GET_METRICS};
	fx.c[2] = (struct client){.kind = C_IDLE};
	fx.busy_until_waiting = 2;
	fx.busy_then_stop = true;
	if (fx_run(&fx, "127.0.0.1:0"))
		return 1;
	for (int i = 0; i < 2; i++) {
		r = &fx.c[i].resp;
		T_ASSERT(r->raw_len == 0 && !r->timed_out &&
				 (r->sys_err == 0 || r->sys_err == ECONNRESET),
			 "scrape %d: %zu bytes, errno %d, timed out %d (want closed):\n%s", i,
			 r->raw_len, r->sys_err, r->timed_out, r->raw);
	}
	T_ASSERT(fx.c[2].idle_read == 0 ||
			 (fx.c[2].idle_read < 0 && fx.c[2].idle_errno == ECONNRESET),
		 "idle connection: read %zd, errno %d (want closed)", fx.c[2].idle_read,
		 fx.c[2].idle_errno);
	T_ASSERT(atomic_load(&fx.renders) == 0, "%d renders", atomic_load(&fx.renders));
	return 0;
}

/* Clients scrape in a tight loop while the server is stopped under them: each gets the metrics
 * or a closed connection (a 503 if too many waited, a 404 in the instant between the handler
 * coming off and NNG stopping), then connections are refused. */
static int t_http_scrapes_racing_stop(void)
{
	static struct fx fx;
	int ok = 0;

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 4;
	for (int i = 0; i < 4; i++)
		fx.c[i] = (struct client){.kind = C_REPEAT, .request = GET_METRICS};
	fx.stop_after_ms = 300;
	if (fx_run(&fx, "127.0.0.1:0"))
		return 1;
	for (int i = 0; i < 4; i++) {
		T_ASSERT(fx.c[i].n_bad == 0, "client %d: %d bad answers, first: %s", i,
			 fx.c[i].n_bad, fx.c[i].bad);
		T_ASSERT(fx.c[i].resp.sys_err == ECONNREFUSED, "client %d never saw the stop", i);
		ok += fx.c[i].n_ok;
	}
	T_ASSERT(ok > 0, "no scrape succeeded before the stop");
	return 0;
}

/* A render that records an error is answered 500, with the cause in the log. */
static int t_http_render_error(void)
{
	static struct fx fx;
	const struct http_resp *r;

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 1;
	fx.c[0] = (struct client){.kind = C_ONCE, .request = GET_METRICS};
	fx.bad_render = true;
	if (fx_run(&fx, "[::1]:0"))
		return 1;
	r = &fx.c[0].resp;
	T_ASSERT(r->status == 0 || r->sys_err == ECONNREFUSED,
		 "an IPv4 client reached a server on [::1]: status %d", r->status);
	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 1;
	fx.c[0] = (struct client){.kind = C_ONCE, .request = GET_METRICS, .v6 = true};
	fx.bad_render = true;
	if (fx_run(&fx, "[::1]:0"))
		return 1;
	r = &fx.c[0].resp;
	T_ASSERT(r->status == 500, "status %d:\n%s", r->status, r->raw);
	T_ASSERT(!strstr(r->raw, "negative"), "the cause leaked to the client:\n%s", r->raw);
	return 0;
}

/* ---------------------------------------------------------------- listen addresses */

static void render_nothing(struct bh_metrics_buf *b, void *ctx)
{
	(void)b, (void)ctx;
}

static const struct {
	const char *listen;
	unsigned int flags;
	int code;
	const char *msg; /* a part of the message besides the address itself */
} refused[] = {
	{"0.0.0.0:9464", 0, -EPERM, "not a loopback address"},
	{"198.18.0.1:1", 0, -EPERM, "not a loopback address"},
	{"[::]:9464", 0, -EPERM, "not a loopback address"},
	{"10.1.2.3:9464", 0, -EPERM, "not a loopback address"},
	{"[::ffff:127.0.0.1]:9464", 0, -EPERM, "not a loopback address"},
	{"[fe80::1]:9464", 0, -EPERM, "not a loopback address"},
	{"", 0, -EINVAL, "empty"},
	{"127.0.0.1", 0, -EINVAL, "no port"},
	{"127.0.0.1:", 0, -EINVAL, "no port"},
	{"localhost", 0, -EINVAL, "no port"},
	{"[::1]", 0, -EINVAL, "no port"},
	{"127.0.0.1:65536", 0, -EINVAL, "0-65535"},
	{"127.0.0.1:99999999999999999999999", 0, -EINVAL, "0-65535"},
	{"127.0.0.1:-1", 0, -EINVAL, "0-65535"},
	{"127.0.0.1:+80", 0, -EINVAL, "0-65535"},
	{"127.0.0.1:80x", 0, -EINVAL, "0-65535"},
	{"127.0.0.1: 80", 0, -EINVAL, "0-65535"},
	{"example.com:80", 0, -EINVAL, "not an IPv4 address"},
	{"localhost.:80", 0, -EINVAL, "not an IPv4 address"},
	{"127.1:80", 0, -EINVAL, "not an IPv4 address"},
	{":9464", 0, -EINVAL, "not an IPv4 address"},
	{"::1:9464", 0, -EINVAL, "in brackets"},
	{"[::1:9464", 0, -EINVAL, "without ']'"},
	{"[::1]9464", 0, -EINVAL, "junk after"},
	{"[]:9464", 0, -EINVAL, "not an IPv4 address"},
	{"[127.0.0.1]:9464", 0, -EINVAL, "not an IPv4 address"},
	{"[fe80::1%lo]:9464", 0, -EINVAL, "not an IPv4 address"},
	{"garbage", 0, -EINVAL, "no port"},
	{"127.0.0.1:0", 0x80, -EINVAL, "unknown flags"},
};

static int refused_one(uv_loop_t *loop, size_t i)
{
	struct bh_metrics_server *sentinel = (struct bh_metrics_server *)&refused, *s = sentinel;
	struct bh_error err = {0};
	int rv;

	rv = bh_metrics_server_start(loop, refused[i].listen, refused[i].flags, render_nothing,
				     NULL, &s, &err);
	if (rv == 0) {
		bh_metrics_server_stop(s);
		uv_run(loop, UV_RUN_DEFAULT);
		T_FAIL("\"%s\" accepted", refused[i].listen);
	}
	T_ASSERT(rv == refused[i].code && err.code == rv, "\"%s\": %d (%s), want %d",
		 refused[i].listen, rv, err.msg, refused[i].code);
	T_ASSERT(s == sentinel, "\"%s\": *out written on failure", refused[i].listen);
	T_ASSERT(strstr(err.msg, refused[i].msg), "\"%s\": message \"%s\" lacks \"%s\"",
		 refused[i].listen, err.msg, refused[i].msg);
	T_ASSERT(!refused[i].listen[0] || refused[i].flags || strstr(err.msg, refused[i].listen),
		 "message \"%s\" does not name \"%s\"", err.msg, refused[i].listen);
	return 0;
}

static int t_listen_refused(void)
{
	uv_loop_t loop;
	int failed = 0, rv;

	T_ASSERT(uv_loop_init(&loop) == 0, "uv_loop_init");
	for (size_t i = 0; i < BH_ARRAY_SIZE(refused); i++)
		failed |= refused_one(&loop, i);
	/* nothing was left on the loop: no handle, no pending close */
	rv = uv_loop_close(&loop);
	T_ASSERT(rv == 0, "uv_loop_close: %s", uv_strerror(rv));
	return failed;
}

/* BH_METRICS_ALLOW_PUBLIC lifts the policy; binding 198.18.0.1 (not ours) then fails on its own,
 * as a listen error (a bind sends nothing). */
static int t_listen_allow_public(void)
{
	struct bh_metrics_server *s = NULL;
	struct bh_error err = {0};
	uv_loop_t loop;
	int rv;

	T_ASSERT(uv_loop_init(&loop) == 0, "uv_loop_init");
	rv = bh_metrics_server_start(&loop, "198.18.0.1:1", BH_METRICS_ALLOW_PUBLIC, render_nothing,
				     NULL, &s, &err);
	if (rv == 0) /* this machine owns 198.18.0.1 after all: the policy passed anyway */
		bh_metrics_server_stop(s);
	else
		T_ASSERT(rv != -EPERM && strstr(err.msg, "cannot listen on 198.18.0.1:1"), "%d: %s",
			 rv, err.msg);
	uv_run(&loop, UV_RUN_DEFAULT);
	rv = uv_loop_close(&loop);
	T_ASSERT(rv == 0, "uv_loop_close: %s", uv_strerror(rv));
	return 0;
}

/* A port taken by another socket fails cleanly, leaving nothing on the loop. */
static int t_listen_port_taken(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	struct bh_metrics_server *s = NULL;
	struct bh_error err = {0};
	char listen_on[32];
	uv_loop_t loop;
	int fd, rv;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_ASSERT(fd >= 0, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl)) {
		close(fd);
		T_FAIL("foreign socket: %s", strerror(errno));
	}
	snprintf(listen_on, sizeof(listen_on), "127.0.0.1:%d", ntohs(sin.sin_port));
	T_ASSERT(uv_loop_init(&loop) == 0, "uv_loop_init");
	rv = bh_metrics_server_start(&loop, listen_on, 0, render_nothing, NULL, &s, &err);
	if (rv == 0)
		bh_metrics_server_stop(s);
	uv_run(&loop, UV_RUN_DEFAULT);
	close(fd);
	T_ASSERT(rv == -EADDRINUSE && strstr(err.msg, listen_on), "%s: %d %s", listen_on, rv,
		 err.msg);
	rv = uv_loop_close(&loop);
	T_ASSERT(rv == 0, "uv_loop_close: %s", uv_strerror(rv));
	return 0;
}

/* NNG shares one HTTP server per address: a second /metrics on the address of a running one
 * fails cleanly, and the running one goes on serving. */
static int t_listen_twice(void)
{
	static struct fx fx;

	memset(&fx, 0, sizeof(fx));
	fx.n_clients = 1;
	fx.c[0] = (struct client){.kind = C_ONCE, .request = GET_METRICS};
	fx.start_twice = true;
	if (fx_run(&fx, "127.0.0.1:0"))
		return 1;
	T_ASSERT(fx.second_rv == -EADDRINUSE && strstr(fx.second_msg, "already served"),
		 "second start: %d %s", fx.second_rv, fx.second_msg);
	return expect_metrics(&fx.c[0].resp, "GET after the second start failed");
}

/* ---------------------------------------------------------------- runner */

static const struct t_case cases[] = {
	{"format: golden text, escaping, special doubles", t_format_golden},
	{"format: large text", t_format_large},
	{"format: misuse is refused and sticky", t_format_misuse},
	{"format: counter 0 and +Inf, negative gauge", t_format_allowed_edges},
	{"http: GET /metrics over 127.0.0.1", t_http_get},
	{"http: 404, 405, HEAD, HTTP/1.0, GET with a body", t_http_404_405_head},
	{"http: 8 scrapes on a busy loop, one render", t_http_concurrent},
	{"http: stop while scrapes wait on a busy loop", t_http_stop_while_waiting},
	{"http: scrapes racing a stop", t_http_scrapes_racing_stop},
	{"http: render error is a 500, on [::1]", t_http_render_error},
	{"listen: policy and bad input refused", t_listen_refused},
	{"listen: BH_METRICS_ALLOW_PUBLIC", t_listen_allow_public},
	{"listen: port taken by another socket", t_listen_port_taken},
	{"listen: /metrics twice on one address", t_listen_twice},
};

int main(int argc, char **argv)
{
	int r;

	bh_log_init(argv[0], LOG_WARNING);
	r = t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
	nng_fini();
	return r;
}
