// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench_flows: the controller flow-ingestion benchmark, run on demand by tests/bench/flows.sh
 * (not part of CTest). K simulated agents (each its own enrolled node, certificate and mutual-TLS
 * connection, one thread per call in flight) send Agent.ReportFlows to one real controller on
 * 127.0.0.1 as fast as it answers, and the controller's CPU over the same window says what one
 * stored summary costs it. Cases, in this order:
 *
 *   transport  GetNode round trips (a small method: the RPC and TLS cost of a call), then empty
 *              reports (no summaries: the batch commit's round trip, fsync included)
 *   fresh      reports of B summaries, each a flow key the store has never seen (a new row in
 *              flows_1m and flows_1h): what a fleet of many nodes, each with a few thousand
 *              flows a minute, looks like to the store. The worst case for it.
 *   repeat     the aggregation case: each node's reports slide over a pool of P keys (default
 *              4096: a few thousand flows per node per minute), so after a node's first reports
 *              in a minute every summary updates a row that exists
 *   decode     the baseline: the same packed FlowReport batches (the same generator) unpacked
 *              and freed with protobuf-c in a loop on this thread, then inflated + unpacked as
 *              the RPC server does; summaries per second per core of this thread's CPU
 *   check      the controller's own counts against what the bench was told: summaries and
 *              reports (`bulkhead flows --stats -o json` over the admin socket), and flows.db
 *              itself (sqlite3, when installed): rows in flows_1m / flows_1h and summed packets
 *              against what the bench sent in reports the controller acknowledged
 *
 * Each ingestion case runs warm-up seconds, then a measured window: summaries stored (the sum of
 * FlowReportResponse.stored over the reports answered in it), reports/s, report latency, the
 * latency of a GetNode probe meanwhile (the loop must keep answering while reports flood in), and
 * the controller's CPU (utime + stime of the whole process from /proc/PID/stat, split by thread
 * from /proc/PID/task: the loop thread, NNG's threads, the others, of which the ingestion thread).
 *
 * Summaries look like an agent's: a distinct key per summary within a report (source and
 * destination identity, port from a set of service ports, direction, verdict and rule that go
 * with it), last seen within the current minute, counts of varied magnitude.
 *
 * Prints "ROW|section|case|value|baseline|ratio|target|verdict", "NOTE|text" and one
 * "VERDICT|text" line for flows.sh. Every wait is bounded and an alarm ends a wedged run (exit 4).
 * The run ends without tearing the clients down (_exit), as bh_bench_fanout does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bulkhead.pb-c.h"
#include "bulkhead/log.h"
#include "bulkhead/rpc.h"
#include "enroll.h"

#define S_OK   BULKHEAD__RPC_STATUS__RPC_OK
#define S_BUSY BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED
/* A report's answer waits for its batch's commit: be patient, so that the bench never gives up on
 * a report the store then keeps (the check would count it on one side only). */
#define CALL_TIMEOUT_MS 60000
#define CONNECT_WAIT_S	30
#define TARGET_PER_CORE 200000.0
#define GOFLOW_REF	"Cloudflare's GoFlow reports about 25,000 messages/s on two CPUs"
#define MAX_AGENTS	256
#define MAX_DEPTH	16
#define LAT_CAP		(1u << 16) /* latency samples per worker and case */
#define MAX_MINUTES	64	   /* minute buckets a repeat-case agent can span in one run */
#define SRC_FRESH	100000u	   /* identities of the fresh case's sources */
#define SRC_REPEAT	600000u	   /* and of the repeat case's: never the same key */
#define DST0		200000u
#define SRC_SPREAD	4096u /* sources cycle through this many before the destination moves */

static const uint16_t svc_ports[16] = {443, 80,	  8080, 5432,  3306,  6379, 9092, 53,
				       22,  8443, 9200, 27017, 11211, 2379, 5672, 25};

enum mode { M_GETNODE, M_EMPTY, M_FRESH, M_REPEAT };

static const char *const mode_name[] = {"GetNode", "empty report", "fresh keys", "repeated keys"};

static struct {
	const char *dir, *enroll, *token, *cli, *sqlite3, *perf_out;
	pid_t ctl_pid;
	int agents, depth, batch, pool, metrics_port;
	double warm_s, secs, base_s, decode_s;
	unsigned int alarm_s;
} opt = {
	.agents = 8,
	.depth = 1,
	.batch = 4096,
	.pool = 4096,
	.warm_s = 2,
	.secs = 15,
	.base_s = 3,
	.decode_s = 2,
	.alarm_s = 280,
};

/* A repeat-case node's keys used in one minute, to know how many rows the store must hold. */
struct minute_bits {
	int64_t minute; /* Unix s */
	uint64_t *bits; /* opt.pool bits */
};

struct agent {
	struct bh_rpc_client *c;
	char name[32];
	atomic_uint_fast64_t next_fresh; /* the next fresh key's index */
	atomic_uint_fast64_t next_seq;	 /* the next repeat-case report */
	pthread_mutex_t mu;		 /* mb */
	struct minute_bits mb[MAX_MINUTES];
	int n_mb;
	int64_t started_ms;
};

/* One thread: one call in flight on its agent's connection. */
struct worker {
	struct agent *a;
	pthread_t th;
	Bulkhead__FlowSummary *s, **sp;
	uint64_t *done_ns, *lat_ns; /* completion time and latency of each answered call */
	size_t n_lat;
};

static struct {
	struct agent *a;
	struct worker *w;
	int n_w;
	enum mode mode;
	atomic_bool stop;
	/* answered calls, for the whole run (the check) and for windows (snapshots) */
	atomic_uint_fast64_t calls, reports, stored, packets, clamped, rejected, busy, errors;
	atomic_uint_fast64_t fresh_stored, repeat_stored, short_reports;
	pthread_mutex_t lock;
	char first_error[300];
} G = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void note_error(const struct agent *a, const char *what, const char *msg)
{
	pthread_mutex_lock(&G.lock);
	if (!G.first_error[0])
		snprintf(G.first_error, sizeof(G.first_error), "%s, %s: %s", what, a->name, msg);
	pthread_mutex_unlock(&G.lock);
	atomic_fetch_add(&G.errors, 1);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t real_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* "1,234,567" */
static const char *grp(double v)
{
	char raw[32], out[48];
	size_t n, o = 0;

	snprintf(raw, sizeof(raw), "%.0f", v < 0 ? 0 : v);
	n = strlen(raw);
	for (size_t i = 0; i < n; i++) {
		if (i && (n - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = raw[i];
	}
	out[o] = '\0';
	return bench_fmt("%s", out);
}

/* ---- CPU: the controller's threads, this process, the machine ------------------------------ */

/* utime + stime (ms) and comm from a /proc stat file; -1 if unreadable. */
static double stat_cpu_ms(const char *path, char *comm, size_t len)
{
	char buf[1024], *p, *q;
	unsigned long ut, st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	q = strchr(buf, '(');
	if (!p || !q ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	if (comm)
		snprintf(comm, len, "%.*s", (int)(p - q - 1), q + 1);
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

struct cpu_snap {
	double ctl_ms;			  /* the whole controller process (threads gone included) */
	double loop_ms, nng_ms, other_ms; /* by thread: the loop (main), nng:*, the rest */
	double self_ms;			  /* this process */
	double busy_ms, all_ms;		  /* the machine (/proc/stat): busy and all CPU time */
};

static void machine_cpu(double *busy, double *all)
{
	unsigned long long v[8] = {0}, sum = 0;
	FILE *f = fopen("/proc/stat", "r");

	*busy = *all = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			sum += v[i];
		*all = (double)sum * 1000.0 / (double)sysconf(_SC_CLK_TCK);
		*busy = (double)(sum - v[3] - v[4]) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
	}
	fclose(f);
}

static void cpu_snap(struct cpu_snap *s)
{
	char path[96], comm[64];
	struct rusage ru;
	struct dirent *de;
	DIR *d;

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)opt.ctl_pid);
	s->ctl_ms = stat_cpu_ms(path, NULL, 0);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)opt.ctl_pid);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		double ms;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)opt.ctl_pid, de->d_name);
		ms = stat_cpu_ms(path, comm, sizeof(comm));
		if (ms < 0)
			continue;
		if (atoi(de->d_name) == (int)opt.ctl_pid)
			s->loop_ms += ms;
		else if (!strncmp(comm, "nng", 3))
			s->nng_ms += ms;
		else
			s->other_ms += ms;
	}
	if (d)
		closedir(d);
	getrusage(RUSAGE_SELF, &ru);
	s->self_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	machine_cpu(&s->busy_ms, &s->all_ms);
}

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the controller's metrics (batches committed) ------------------------------------------ */

/* The value of an unlabelled metric in the controller's /metrics, or -1. */
static double metric(const char *name)
{
	static char buf[256 * 1024];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(opt.metrics_port)};
	struct timeval tv = {5, 0};
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	size_t n = 0, nl = strlen(name);
	double v = -1;
	ssize_t r;
	char *p;
	int fd;

	if (opt.metrics_port <= 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
		close(fd);
		return -1;
	}
	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	for (p = buf; (p = strstr(p, name)); p += nl)
		if ((p == buf || p[-1] == '\n') && p[nl] == ' ') {
			v = strtod(p + nl + 1, NULL);
			break;
		}
	return v;
}

/* ---- summaries ------------------------------------------------------------------------------- */

/*
 * Fills s with the summary of key index c (distinct c: distinct keys). The port is one of 16
 * service ports, the direction alternates, the source cycles through SRC_SPREAD identities and
 * the destination moves on after each cycle. last_ms is within the minute of now_ms.
 */
static void summary_fill(Bulkhead__FlowSummary *s, uint32_t src0, uint64_t c, int64_t now_ms)
{
	uint64_t q = c / 32, h = c * 0x9e3779b97f4a7c15ull;
	int64_t minute0 = now_ms - now_ms % 60000, last = now_ms - (int64_t)(h >> 54);
	uint16_t port = svc_ports[c % 16];

	bulkhead__flow_summary__init(s);
	s->src_identity = src0 + (uint32_t)(q % SRC_SPREAD);
	s->dst_identity = DST0 + (uint32_t)(q / SRC_SPREAD);
	s->protocol = port == 53 ? 17 : 6;
	s->port = port;
	s->direction = (c / 16) % 2 ? BULKHEAD__DIRECTION__DIRECTION_EGRESS
				    : BULKHEAD__DIRECTION__DIRECTION_INGRESS;
	/* mostly allowed; a few denied, a few would-deny (observe mode) */
	s->verdict = (h >> 40) % 20 == 0   ? BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_DENIED
		     : (h >> 40) % 20 == 1 ? BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_WOULD_DENY
					   : BULKHEAD__FLOW_VERDICT__FLOW_VERDICT_ALLOWED;
	s->rule_id = 1000 + (uint32_t)(c % 16) * 4 + (uint32_t)s->verdict;
	s->revision = 42;
	s->packets = 1 + (h >> 20) % 5000;
	s->bytes = s->packets * (60 + (h >> 8) % 1400);
	s->last_seen_ms = last < minute0 ? minute0 : last;
	s->first_seen_ms = s->last_seen_ms - (int64_t)((h >> 12) % 10000);
}

/* Fills the report of worker w for mode. *minute gets the report's minute (Unix s), *first its
 * first repeat-pool index. Returns the packets it carries. */
static uint64_t report_fill(struct worker *w, enum mode m, Bulkhead__FlowReport *r, int64_t *minute,
			    uint64_t *first)
{
	struct agent *a = w->a;
	int64_t now = real_ms();
	uint64_t c0, packets = 0;
	size_t n = (size_t)opt.batch;

	bulkhead__flow_report__init(r);
	r->agent_started_ms = a->started_ms;
	*minute = now / 1000 - (now / 1000) % 60;
	*first = 0;
	if (m == M_EMPTY)
		return 0;
	if (m == M_FRESH) {
		c0 = atomic_fetch_add(&a->next_fresh, n);
		for (size_t i = 0; i < n; i++)
			summary_fill(&w->s[i], SRC_FRESH, c0 + i, now);
	} else {
		c0 = atomic_fetch_add(&a->next_seq, 1) * n % (uint64_t)opt.pool;
		*first = c0;
		for (size_t i = 0; i < n; i++)
			summary_fill(&w->s[i], SRC_REPEAT, (c0 + i) % (uint64_t)opt.pool, now);
	}
	for (size_t i = 0; i < n; i++)
		packets += w->s[i].packets;
	r->flows = w->sp;
	r->n_flows = n;
	return packets;
}

/* A repeat-case report was stored: remember which pool keys its node used in that minute. */
static void repeat_mark(struct agent *a, int64_t minute, uint64_t first)
{
	struct minute_bits *mb = NULL;
	size_t words = ((size_t)opt.pool + 63) / 64;

	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < a->n_mb && !mb; i++)
		if (a->mb[i].minute == minute)
			mb = &a->mb[i];
	if (!mb && a->n_mb < MAX_MINUTES) {
		mb = &a->mb[a->n_mb];
		mb->bits = calloc(words, sizeof(uint64_t));
		if (mb->bits) {
			mb->minute = minute;
			a->n_mb++;
		} else {
			mb = NULL;
		}
	}
	if (mb)
		for (size_t i = 0; i < (size_t)opt.batch; i++) {
			size_t k = (first + i) % (size_t)opt.pool;

			mb->bits[k / 64] |= 1ull << (k % 64);
		}
	pthread_mutex_unlock(&a->mu);
}

/* ---- the simulated agents ------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct agent *a = w->a;
	enum mode m = G.mode;
	char msg[256];

	while (!atomic_load(&G.stop)) {
		uint64_t t0, t1, packets = 0, first = 0;
		int64_t minute = 0;
		int st;

		t0 = bench_now_ns();
		if (m == M_GETNODE) {
			Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
			ProtobufCMessage *resp = NULL;

			r.name = a->name;
			st = bh_rpc_call(a->c, &bulkhead__agent__descriptor, "GetNode", &r.base,
					 &resp, CALL_TIMEOUT_MS, msg, sizeof(msg));
			if (resp)
				protobuf_c_message_free_unpacked(resp, NULL);
			t1 = bench_now_ns();
			if (st != S_OK) {
				note_error(a, "GetNode", msg);
				sleep_s(0.1);
				continue;
			}
		} else {
			Bulkhead__FlowReport r;
			Bulkhead__FlowReportResponse *resp = NULL;

			packets = report_fill(w, m, &r, &minute, &first);
			t0 = bench_now_ns();
			st = bh_rpc_call(a->c, &bulkhead__agent__descriptor, "ReportFlows", &r.base,
					 (ProtobufCMessage **)&resp, CALL_TIMEOUT_MS, msg,
					 sizeof(msg));
			t1 = bench_now_ns();
			if (st == S_BUSY) {
				/* the store is behind: an agent keeps the report and sends later */
				atomic_fetch_add(&G.busy, 1);
				sleep_s(0.05);
				continue;
			}
			if (st != S_OK) {
				note_error(a, "ReportFlows", msg);
				sleep_s(0.1);
				continue;
			}
			atomic_fetch_add(&G.reports, 1);
			atomic_fetch_add(&G.stored, resp->stored);
			atomic_fetch_add(&G.clamped, resp->clamped);
			atomic_fetch_add(&G.rejected, resp->rejected);
			if (resp->stored != r.n_flows || resp->clamped)
				atomic_fetch_add(&G.short_reports, 1);
			else
				atomic_fetch_add(&G.packets, packets);
			if (m == M_FRESH)
				atomic_fetch_add(&G.fresh_stored, resp->stored);
			if (m == M_REPEAT) {
				atomic_fetch_add(&G.repeat_stored, resp->stored);
				repeat_mark(a, minute, first);
			}
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		atomic_fetch_add(&G.calls, 1);
		if (w->n_lat < LAT_CAP) {
			w->done_ns[w->n_lat] = t1;
			w->lat_ns[w->n_lat++] = t1 - t0;
		}
	}
	return NULL;
}

/* ---- a case: warm-up, window, figures -------------------------------------------------------- */

struct counts {
	uint64_t calls, reports, stored, busy, errors;
};

static void counts_snap(struct counts *c)
{
	c->calls = atomic_load(&G.calls);
	c->reports = atomic_load(&G.reports);
	c->stored = atomic_load(&G.stored);
	c->busy = atomic_load(&G.busy);
	c->errors = atomic_load(&G.errors);
}

struct result {
	enum mode mode;
	double secs;		     /* the window */
	struct counts n;	     /* answered in it */
	double p50, p99, max;	     /* latency of the calls answered in it, ms */
	struct cpu_snap cpu;	     /* spent in it */
	double batches;		     /* committed in it (-1: no metrics) */
	double rate;		     /* stored summaries (or calls) per second */
	double per_core;	     /* the same per core of controller CPU */
	double probe_p50, probe_p99; /* GetNode meanwhile, ms */
	size_t probe_n;
};

/*
 * While reports flood in, is the loop still answering other calls (policy distribution runs
 * there)? A GetNode every PROBE_MS on the first agent's connection, beside its reports. Its own
 * cost is about 1% of the controller CPU the case measures.
 */
#define PROBE_MS 100

struct probe {
	pthread_t th;
	atomic_bool stop;
	double lat[4096];
	size_t n;
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	char msg[256];

	while (!atomic_load(&p->stop) && p->n < sizeof(p->lat) / sizeof(p->lat[0])) {
		Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
		ProtobufCMessage *resp = NULL;
		uint64_t t0 = bench_now_ns();
		int st;

		r.name = G.a[0].name;
		st = bh_rpc_call(G.a[0].c, &bulkhead__agent__descriptor, "GetNode", &r.base, &resp,
				 CALL_TIMEOUT_MS, msg, sizeof(msg));
		if (resp)
			protobuf_c_message_free_unpacked(resp, NULL);
		if (st == S_OK)
			p->lat[p->n++] = (double)(bench_now_ns() - t0) / 1e6;
		else
			note_error(&G.a[0], "GetNode probe", msg);
		sleep_s(PROBE_MS / 1e3);
	}
	return NULL;
}

static int run_case(enum mode m, double warm_s, double secs, struct result *res)
{
	struct cpu_snap c0, c1;
	struct counts n0, n1;
	uint64_t t0, t1;
	double b0, b1, *lat;
	size_t nl = 0;
	pid_t perf = 0;
	struct probe *probe = NULL;

	memset(res, 0, sizeof(*res));
	res->mode = m;
	G.mode = m;
	atomic_store(&G.stop, false);
	for (int i = 0; i < G.n_w; i++) {
		G.w[i].n_lat = 0;
		if (pthread_create(&G.w[i].th, NULL, worker_main, &G.w[i])) {
			printf("NOTE|%s: a worker thread could not start\n", mode_name[m]);
			atomic_store(&G.stop, true);
			for (int k = 0; k < i; k++)
				pthread_join(G.w[k].th, NULL);
			return -1;
		}
	}
	sleep_s(warm_s);
	b0 = metric("bulkhead_controller_flow_batches_total");
	counts_snap(&n0);
	cpu_snap(&c0);
	t0 = bench_now_ns();
	if (m >= M_FRESH && (probe = calloc(1, sizeof(*probe))) &&
	    pthread_create(&probe->th, NULL, probe_main, probe)) {
		free(probe);
		probe = NULL;
	}
	if (opt.perf_out && m == M_FRESH) {
		/* a flat profile of the controller over the fresh case's window */
		char pid[16], dur[32];
		char *argv[] = {
			"perf", "record", "-q", "-F", "999", "-p", pid, "-o", (char *)opt.perf_out,
			"--",	"sleep",  dur,	NULL};

		snprintf(pid, sizeof(pid), "%d", (int)opt.ctl_pid);
		snprintf(dur, sizeof(dur), "%.1f", secs);
		if (posix_spawnp(&perf, "perf", NULL, NULL, argv, NULL))
			perf = 0;
	}
	sleep_s(secs);
	if (probe) {
		atomic_store(&probe->stop, true);
		pthread_join(probe->th, NULL);
		bench_sort(probe->lat, probe->n);
		res->probe_n = probe->n;
		res->probe_p50 = bench_pct(probe->lat, probe->n, 0.5);
		res->probe_p99 = bench_pct(probe->lat, probe->n, 0.99);
		free(probe);
	}
	t1 = bench_now_ns();
	cpu_snap(&c1);
	counts_snap(&n1);
	b1 = metric("bulkhead_controller_flow_batches_total");
	atomic_store(&G.stop, true);
	for (int i = 0; i < G.n_w; i++)
		pthread_join(G.w[i].th, NULL);
	if (perf > 0)
		waitpid(perf, NULL, 0);

	res->secs = (double)(t1 - t0) / 1e9;
	res->n = (struct counts){n1.calls - n0.calls, n1.reports - n0.reports,
				 n1.stored - n0.stored, n1.busy - n0.busy, n1.errors - n0.errors};
	res->cpu = (struct cpu_snap){
		c1.ctl_ms - c0.ctl_ms,	   c1.loop_ms - c0.loop_ms, c1.nng_ms - c0.nng_ms,
		c1.other_ms - c0.other_ms, c1.self_ms - c0.self_ms, c1.busy_ms - c0.busy_ms,
		c1.all_ms - c0.all_ms,
	};
	res->batches = b0 >= 0 && b1 >= 0 ? b1 - b0 : -1;
	lat = calloc((size_t)G.n_w * LAT_CAP, sizeof(double));
	for (int i = 0; lat && i < G.n_w; i++)
		for (size_t k = 0; k < G.w[i].n_lat; k++)
			if (G.w[i].done_ns[k] >= t0 && G.w[i].done_ns[k] <= t1)
				lat[nl++] = (double)G.w[i].lat_ns[k] / 1e6;
	if (lat) {
		bench_sort(lat, nl);
		res->p50 = bench_pct(lat, nl, 0.5);
		res->p99 = bench_pct(lat, nl, 0.99);
		res->max = nl ? lat[nl - 1] : 0;
	}
	free(lat);
	res->rate = (double)(m >= M_FRESH ? res->n.stored : res->n.calls) / res->secs;
	res->per_core = res->cpu.ctl_ms > 0
				? (double)(m >= M_FRESH ? res->n.stored : res->n.calls) /
					  (res->cpu.ctl_ms / 1e3)
				: 0;
	return 0;
}

static const char *cpu_split(const struct result *r)
{
	double s = r->secs;

	return bench_fmt("loop %.2f, nng %.2f, other threads (ingestion) %.2f cores",
			 r->cpu.loop_ms / 1e3 / s, r->cpu.nng_ms / 1e3 / s,
			 r->cpu.other_ms / 1e3 / s);
}

static void rows_transport(const struct result *g, const struct result *e)
{
	const char *sec = "transport";

	bench_row(sec,
		  bench_fmt("GetNode round trips, %d agents x %d in flight", opt.agents, opt.depth),
		  bench_fmt("%s calls/s", grp(g->rate)),
		  bench_fmt("p50 %.2f / p99 %.2f ms; controller %.0f us CPU per call", g->p50,
			    g->p99, g->n.calls ? g->cpu.ctl_ms * 1e3 / (double)g->n.calls : 0),
		  "-", "-", "-");
	bench_row(sec, "  controller CPU (GetNode)",
		  bench_fmt("%.2f cores", g->cpu.ctl_ms / 1e3 / g->secs), cpu_split(g), "-", "-",
		  "-");
	bench_row(sec, "empty ReportFlows (0 summaries): a batch commit's round trip",
		  bench_fmt("%s reports/s", grp(e->rate)),
		  bench_fmt("p50 %.2f / p99 %.2f ms; controller %.0f us CPU per report", e->p50,
			    e->p99, e->n.calls ? e->cpu.ctl_ms * 1e3 / (double)e->n.calls : 0),
		  g->p50 > 0 ? bench_fmt("%.1fx GetNode p50", e->p50 / g->p50) : "-", "-", "-");
	if (e->batches > 0)
		bench_row(sec, "  commits (empty reports)",
			  bench_fmt("%s batches/s", grp(e->batches / e->secs)),
			  bench_fmt("%.1f reports per commit", (double)e->n.calls / e->batches),
			  "-", "-", "-");
}

static void rows_ingest(const struct result *r, const struct result *g, double decode_pc)
{
	const char *sec = mode_name[r->mode];
	double cores = r->cpu.ctl_ms / 1e3 / r->secs;

	bench_row(sec,
		  bench_fmt("summaries stored /s, %d agents x %d in flight, %d per report",
			    opt.agents, opt.depth, opt.batch),
		  bench_fmt("%s /s", grp(r->rate)),
		  bench_fmt("%s stored in %.1f s; %.1f reports/s", grp((double)r->n.stored),
			    r->secs, (double)r->n.reports / r->secs),
		  "-", "-", "-");
	bench_row(sec, "  report latency (send -> answered, after its commit)",
		  bench_fmt("p50 %.1f / p99 %.1f ms", r->p50, r->p99),
		  bench_fmt("max %.1f ms; GetNode p50 %.2f ms", r->max, g->p50),
		  g->p50 > 0 ? bench_fmt("%.0fx", r->p50 / g->p50) : "-", "-", "-");
	if (r->probe_n)
		bench_row(
			sec, "  GetNode meanwhile (is the loop answering?)",
			bench_fmt("p50 %.2f / p99 %.2f ms", r->probe_p50, r->probe_p99),
			bench_fmt(
				"%zu calls, one every %d ms; GetNode case p50 %.2f ms (%d callers)",
				r->probe_n, PROBE_MS, g->p50, G.n_w),
			g->p50 > 0 ? bench_fmt("%.1fx", r->probe_p50 / g->p50) : "-", "-", "-");
	bench_row(sec, "  controller CPU", bench_fmt("%.2f cores", cores), cpu_split(r), "-", "-",
		  "-");
	bench_row(sec, "  controller CPU per summary",
		  bench_fmt("%.2f us", r->n.stored ? r->cpu.ctl_ms * 1e3 / (double)r->n.stored : 0),
		  decode_pc > 0 ? bench_fmt("decode alone %.2f us", 1e6 / decode_pc) : "-",
		  decode_pc > 0 && r->per_core > 0
			  ? bench_fmt("%.1fx decode", decode_pc / r->per_core)
			  : "-",
		  "-", "-");
	bench_row(sec, "  summaries /s per core of controller CPU",
		  bench_fmt("%s /s", grp(r->per_core)),
		  decode_pc > 0 ? bench_fmt("decode alone %s /s per core", grp(decode_pc)) : "-",
		  decode_pc > 0 ? bench_fmt("%.3f", r->per_core / decode_pc) : "-",
		  bench_fmt(">= %s", grp(TARGET_PER_CORE)),
		  r->per_core >= TARGET_PER_CORE ? "MET" : "MISS");
	if (r->batches > 0)
		bench_row(sec, "  commits", bench_fmt("%.1f batches/s", r->batches / r->secs),
			  bench_fmt("%.1f reports, %s summaries per commit",
				    (double)r->n.reports / r->batches,
				    grp((double)r->n.stored / r->batches)),
			  "-", "-", "-");
	bench_row(sec, "  bench (simulated agents) and machine",
		  bench_fmt("bench %.2f cores", r->cpu.self_ms / 1e3 / r->secs),
		  bench_fmt("machine busy %.2f of %ld cores (others: %.2f)",
			    r->cpu.busy_ms / 1e3 / r->secs, sysconf(_SC_NPROCESSORS_ONLN),
			    (r->cpu.busy_ms - r->cpu.ctl_ms - r->cpu.self_ms) / 1e3 / r->secs),
		  "-", "-", "-");
	if (r->n.busy || r->n.errors)
		printf("NOTE|%s: %llu reports refused as busy (RESOURCE_EXHAUSTED) and %llu calls "
		       "failed in the window\n",
		       sec, (unsigned long long)r->n.busy, (unsigned long long)r->n.errors);
}

/* ---- the decode baseline --------------------------------------------------------------------- */

struct decoded {
	double plain_pc, zlib_pc; /* summaries /s per core */
	double raw_b, wire_b;	  /* bytes per summary packed, and as the RPC layer sends them */
};

/* Packs n reports of mode m as agents would send them (fresh: new keys each; repeat: the pool
 * sliding), unpacks them in a loop for secs (plain), then inflates + unpacks (zlib). */
static int decode_baseline(enum mode m, int n, double secs, struct decoded *out)
{
	struct worker w = {0};
	struct agent a = {0};
	uint8_t **raw = calloc((size_t)n, sizeof(*raw)), **z = calloc((size_t)n, sizeof(*z));
	size_t *rlen = calloc((size_t)n, sizeof(*rlen)), *zlen = calloc((size_t)n, sizeof(*zlen));
	uint32_t *zfl = calloc((size_t)n, sizeof(*zfl));
	uint64_t summaries = 0, rb = 0, zb = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	w.a = &a;
	w.s = calloc((size_t)opt.batch, sizeof(*w.s));
	w.sp = calloc((size_t)opt.batch, sizeof(*w.sp));
	if (!raw || !z || !rlen || !zlen || !zfl || !w.s || !w.sp)
		goto out;
	for (int i = 0; i < opt.batch; i++)
		w.sp[i] = &w.s[i];
	a.started_ms = real_ms();
	for (int i = 0; i < n; i++) {
		Bulkhead__FlowReport r;
		int64_t minute;
		uint64_t first;

		report_fill(&w, m, &r, &minute, &first);
		rlen[i] = bulkhead__flow_report__get_packed_size(&r);
		raw[i] = malloc(rlen[i]);
		if (!raw[i] || bh_rpc_body_pack(&r.base, &z[i], &zlen[i], &zfl[i]))
			goto out;
		bulkhead__flow_report__pack(&r, raw[i]);
		rb += rlen[i];
		zb += zlen[i];
	}
	out->raw_b = (double)rb / ((double)n * opt.batch);
	out->wire_b = (double)zb / ((double)n * opt.batch);
	for (int pass = 0; pass < 2; pass++) {
		double c0 = thread_cpu_s(), c1;
		uint64_t t_end = bench_now_ns() + (uint64_t)(secs * 1e9);

		summaries = 0;
		do {
			for (int i = 0; i < n; i++) {
				Bulkhead__FlowReport *r = NULL;

				if (pass == 0) {
					r = bulkhead__flow_report__unpack(NULL, rlen[i], raw[i]);
				} else if (bh_rpc_body_unpack(&bulkhead__flow_report__descriptor,
							      z[i], zlen[i], zfl[i],
							      BH_RPC_MAX_MSG_DEFAULT,
							      (ProtobufCMessage **)&r)) {
					r = NULL;
				}
				if (!r)
					goto out;
				summaries += r->n_flows;
				bulkhead__flow_report__free_unpacked(r, NULL);
			}
		} while (bench_now_ns() < t_end);
		c1 = thread_cpu_s();
		if (pass == 0)
			out->plain_pc = (double)summaries / (c1 - c0);
		else
			out->zlib_pc = (double)summaries / (c1 - c0);
	}
	rc = 0;
out:
	for (int i = 0; raw && z && i < n; i++) {
		free(raw[i]);
		free(z[i]);
	}
	free(raw);
	free(z);
	free(rlen);
	free(zlen);
	free(zfl);
	free(w.s);
	free(w.sp);
	return rc;
}

/* ---- the check ------------------------------------------------------------------------------- */

/* Runs argv and captures its stdout (NUL-terminated, at most len - 1 bytes). Returns the exit
 * status or a negative errno. */
static int capture(char *const argv[], char *buf, size_t len)
{
	int p[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(p[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char junk[4096];

		/* what does not fit is read and dropped, so that the child can exit */
		if (n < len - 1)
			r = read(p[0], buf + n, len - 1 - n);
		else
			r = read(p[0], junk, sizeof(junk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (n < len - 1)
			n += (size_t)r;
	}
	buf[n] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

/* Sums every "key":N in a JSON text. */
static uint64_t json_sum(const char *text, const char *key)
{
	char pat[64];
	uint64_t sum = 0;
	size_t pl;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	pl = strlen(pat);
	for (const char *p = text; (p = strstr(p, pat)); p += pl)
		sum += strtoull(p + pl, NULL, 10);
	return sum;
}

/* Rows the repeat case must have left in flows_1m (distinct node, minute, pool key) and in
 * flows_1h (distinct node, hour, pool key). */
static void repeat_rows(uint64_t *rows_1m, uint64_t *rows_1h)
{
	size_t words = ((size_t)opt.pool + 63) / 64;
	uint64_t *acc = calloc(words, sizeof(uint64_t));

	*rows_1m = *rows_1h = 0;
	for (int i = 0; acc && i < opt.agents; i++) {
		struct agent *a = &G.a[i];
		bool done[MAX_MINUTES] = {0};

		for (int k = 0; k < a->n_mb; k++)
			for (size_t j = 0; j < words; j++)
				*rows_1m += (uint64_t)__builtin_popcountll(a->mb[k].bits[j]);
		for (int k = 0; k < a->n_mb; k++) {
			int64_t hour = a->mb[k].minute - a->mb[k].minute % 3600;

			if (done[k])
				continue;
			memset(acc, 0, words * sizeof(uint64_t));
			for (int l = k; l < a->n_mb; l++)
				if (a->mb[l].minute - a->mb[l].minute % 3600 == hour) {
					done[l] = true;
					for (size_t j = 0; j < words; j++)
						acc[j] |= a->mb[l].bits[j];
				}
			for (size_t j = 0; j < words; j++)
				*rows_1h += (uint64_t)__builtin_popcountll(acc[j]);
		}
	}
	free(acc);
}

/* Returns the number of mismatches (0: the controller stored what it said it stored). */
static int check(void)
{
	static char out[1 << 20];
	const char *sec = "check";
	uint64_t stored = atomic_load(&G.stored), reports = atomic_load(&G.reports);
	uint64_t packets = atomic_load(&G.packets), fresh = atomic_load(&G.fresh_stored);
	uint64_t r1m = 0, r1h = 0, c_sum, c_rep;
	int bad = 0, st;
	char db[4096];
	struct stat sb, sw;

	/* the stats come with any query: ask for flows that cannot exist (SCTP), in the current
	 * minute only, so that the controller does not sum a million rows to print none */
	{
		char *argv[] = {(char *)opt.cli, "flows", "--stats", "-o", "json", "--since", "1s",
				"--proto",	 "sctp",  "--limit", "1",  NULL};

		st = capture(argv, out, sizeof(out));
	}
	if (st != 0 || !strstr(out, "\"nodes\"")) {
		printf("NOTE|check: bulkhead flows --stats failed (exit %d): %.200s\n", st, out);
		bench_row(sec, "bulkhead flows --stats", "failed", "-", "-", "equal", "MISMATCH");
		bad++;
	} else {
		c_sum = json_sum(out, "summaries");
		c_rep = json_sum(out, "reports");
		bench_row(sec, "summaries stored: controller (bulkhead flows --stats) / bench",
			  bench_fmt("%s / %s", grp((double)c_sum), grp((double)stored)),
			  "bench: the sum of FlowReportResponse.stored", "-", "equal",
			  c_sum == stored ? "ok" : "MISMATCH");
		bench_row(sec, "reports stored: controller / bench",
			  bench_fmt("%s / %s", grp((double)c_rep), grp((double)reports)),
			  "bench: ReportFlows answered OK (empty ones included)", "-", "equal",
			  c_rep == reports ? "ok" : "MISMATCH");
		bad += (c_sum != stored) + (c_rep != reports);
	}
	if (atomic_load(&G.short_reports) || atomic_load(&G.rejected) || atomic_load(&G.clamped)) {
		printf("NOTE|check: %llu reports were not stored whole (%llu summaries rejected, "
		       "%llu clamped): the generator should make none\n",
		       (unsigned long long)atomic_load(&G.short_reports),
		       (unsigned long long)atomic_load(&G.rejected),
		       (unsigned long long)atomic_load(&G.clamped));
		bad++;
	}
	snprintf(db, sizeof(db), "%s/ctl/flows.db", opt.dir);
	if (opt.sqlite3) {
		uint64_t n1m = 0, p1m = 0, n1h = 0, p1h = 0;
		char *argv[] = {(char *)opt.sqlite3,
				"-readonly",
				"-separator",
				" ",
				db,
				/* hours: flows_1h and the minutes not rolled up into it yet,
				 * as the controller reads them */
				"SELECT count(*), coalesce(sum(packets), 0) FROM flows_1m;"
				" SELECT count(*), coalesce(sum(p), 0) FROM (SELECT bucket - bucket"
				" % 3600, node, src, dst, proto, port, dir, verdict, rule,"
				" sum(packets) AS p FROM (SELECT * FROM flows_1h UNION ALL SELECT *"
				" FROM flows_1m WHERE bucket >= (SELECT v FROM meta WHERE k ="
				" 'rolled_upto')) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9);",
				NULL};

		repeat_rows(&r1m, &r1h);
		st = capture(argv, out, sizeof(out));
		if (st != 0 || sscanf(out, "%llu %llu %llu %llu", (unsigned long long *)&n1m,
				      (unsigned long long *)&p1m, (unsigned long long *)&n1h,
				      (unsigned long long *)&p1h) != 4) {
			printf("NOTE|check: sqlite3 on flows.db failed (exit %d): %.200s\n", st,
			       out);
			bad++;
		} else {
			bool ok = n1m == fresh + r1m && n1h == fresh + r1h;

			bench_row(sec, "rows in flows_1m / hours (flows_1h + minutes not rolled up)",
				  bench_fmt("%s / %s", grp((double)n1m), grp((double)n1h)),
				  bench_fmt("expected %s / %s (fresh %s + repeat %s / %s)",
					    grp((double)(fresh + r1m)), grp((double)(fresh + r1h)),
					    grp((double)fresh), grp((double)r1m), grp((double)r1h)),
				  "-", "equal", ok ? "ok" : "MISMATCH");
			bench_row(
				sec, "packets summed in flows_1m / hours (sqlite3)",
				bench_fmt("%s / %s", grp((double)p1m), grp((double)p1h)),
				bench_fmt("sent in acknowledged reports %s", grp((double)packets)),
				"-", "equal", p1m == packets && p1h == packets ? "ok" : "MISMATCH");
			bad += !ok + !(p1m == packets && p1h == packets);
		}
	} else {
		printf("NOTE|check: no sqlite3 command: the rows and packets in flows.db were not "
		       "checked (apt-get install sqlite3)\n");
	}
	if (stat(db, &sb) == 0) {
		char wal[4200];
		double rows = 0;

		snprintf(wal, sizeof(wal), "%s-wal", db);
		if (stat(wal, &sw) != 0)
			sw.st_size = 0;
		if (opt.sqlite3)
			rows = (double)(fresh + r1m);
		bench_row(sec, "flows.db at the end",
			  bench_fmt("%.1f MiB (+ WAL %.1f MiB)", (double)sb.st_size / 1048576.0,
				    (double)sw.st_size / 1048576.0),
			  rows > 0 ? bench_fmt("%.0f bytes per minute row (with its hour row)",
					       (double)sb.st_size / rows)
				   : "-",
			  "-", "-", "-");
	}
	return bad;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: bh_bench_flows --dir DIR --enroll HOST:PORT --token TOKEN --cli PATH\n"
		"                      --ctl-pid PID [--agents K] [--depth D] [--batch B] [--pool "
		"P]\n"
		"                      [--warmup S] [--secs S] [--base-secs S] [--decode-secs S]\n"
		"                      [--metrics-port N] [--sqlite3 PATH] [--perf-out FILE]\n"
		"                      [--alarm S]\n"
		"Run by tests/bench/flows.sh, which starts the controller (see there).\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"dir", required_argument, NULL, 'd'},
		{"enroll", required_argument, NULL, 'e'},
		{"token", required_argument, NULL, 't'},
		{"cli", required_argument, NULL, 'c'},
		{"ctl-pid", required_argument, NULL, 'p'},
		{"agents", required_argument, NULL, 'n'},
		{"depth", required_argument, NULL, 'D'},
		{"batch", required_argument, NULL, 'b'},
		{"pool", required_argument, NULL, 'P'},
		{"warmup", required_argument, NULL, 'w'},
		{"secs", required_argument, NULL, 's'},
		{"base-secs", required_argument, NULL, 'B'},
		{"decode-secs", required_argument, NULL, 'X'},
		{"metrics-port", required_argument, NULL, 'm'},
		{"sqlite3", required_argument, NULL, 'q'},
		{"perf-out", required_argument, NULL, 'f'},
		{"alarm", required_argument, NULL, 'A'},
		{NULL, 0, NULL, 0},
	};
	struct result getnode, empty, fresh, repeat;
	struct decoded dec_f, dec_r;
	double enroll_s;
	uint64_t t0;
	int o, rc = 1, bad;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'd':
			opt.dir = optarg;
			break;
		case 'e':
			opt.enroll = optarg;
			break;
		case 't':
			opt.token = optarg;
			break;
		case 'c':
			opt.cli = optarg;
			break;
		case 'p':
			opt.ctl_pid = (pid_t)atoi(optarg);
			break;
		case 'n':
			opt.agents = atoi(optarg);
			break;
		case 'D':
			opt.depth = atoi(optarg);
			break;
		case 'b':
			opt.batch = atoi(optarg);
			break;
		case 'P':
			opt.pool = atoi(optarg);
			break;
		case 'w':
			opt.warm_s = atof(optarg);
			break;
		case 's':
			opt.secs = atof(optarg);
			break;
		case 'B':
			opt.base_s = atof(optarg);
			break;
		case 'X':
			opt.decode_s = atof(optarg);
			break;
		case 'm':
			opt.metrics_port = atoi(optarg);
			break;
		case 'q':
			opt.sqlite3 = optarg[0] ? optarg : NULL;
			break;
		case 'f':
			opt.perf_out = optarg[0] ? optarg : NULL;
			break;
		case 'A':
			opt.alarm_s = (unsigned int)atoi(optarg);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!opt.dir || !opt.enroll || !opt.token || !opt.cli || opt.ctl_pid <= 0 ||
	    opt.agents < 1 || opt.agents > MAX_AGENTS || opt.depth < 1 || opt.depth > MAX_DEPTH ||
	    opt.batch < 1 || opt.batch > 65536 || opt.pool < opt.batch || opt.pool > 1 << 24 ||
	    opt.warm_s < 0 || opt.secs < 0.5 || opt.base_s < 0.5 || opt.decode_s < 0.1) {
		usage();
		return 2;
	}
	bench_alarm(opt.alarm_s);
	signal(SIGPIPE, SIG_IGN);
	bench_phase("starting");
	bh_log_init("bh_bench_flows", LOG_WARNING);
	G.a = calloc((size_t)opt.agents, sizeof(*G.a));
	G.n_w = opt.agents * opt.depth;
	G.w = calloc((size_t)G.n_w, sizeof(*G.w));
	if (!G.a || !G.w)
		return 1;
	for (int i = 0; i < G.n_w; i++) {
		struct worker *w = &G.w[i];

		w->a = &G.a[i % opt.agents];
		w->s = calloc((size_t)opt.batch, sizeof(*w->s));
		w->sp = calloc((size_t)opt.batch, sizeof(*w->sp));
		w->done_ns = calloc(LAT_CAP, sizeof(uint64_t));
		w->lat_ns = calloc(LAT_CAP, sizeof(uint64_t));
		if (!w->s || !w->sp || !w->done_ns || !w->lat_ns)
			return 1;
		for (int k = 0; k < opt.batch; k++)
			w->sp[k] = &w->s[k];
	}

	/* ---- enrollment and connections ---- */
	bench_phase(bench_fmt("enrolling %d nodes", opt.agents));
	t0 = bench_now_ns();
	for (int i = 0; i < opt.agents; i++) {
		struct agent *a = &G.a[i];
		char dir[4096];
		struct agent_enroll_opts eo = {.controller = opt.enroll,
					       .token = opt.token,
					       .name = a->name,
					       .state_dir = dir};
		struct bh_error err = {0};
		bool already;

		snprintf(a->name, sizeof(a->name), "flowbench-%03d", i + 1);
		snprintf(dir, sizeof(dir), "%s/%s", opt.dir, a->name);
		pthread_mutex_init(&a->mu, NULL);
		a->started_ms = real_ms();
		if (agent_enroll(&eo, &already, &err) || agent_client(dir, &a->c, &err)) {
			printf("NOTE|%s: enrollment or client failed: %s\n", a->name, err.msg);
			goto out;
		}
	}
	for (int i = 0; i < opt.agents; i++) {
		uint64_t dl = bench_now_ns() + CONNECT_WAIT_S * 1000000000ull;

		while (!bh_rpc_client_connected(G.a[i].c) && bench_now_ns() < dl)
			sleep_s(0.005);
		if (!bh_rpc_client_connected(G.a[i].c)) {
			printf("NOTE|%s did not connect within %d s\n", G.a[i].name,
			       CONNECT_WAIT_S);
			goto out;
		}
	}
	enroll_s = (double)(bench_now_ns() - t0) / 1e9;
	bench_row("setup", bench_fmt("%d nodes enrolled and connected over mutual TLS", opt.agents),
		  bench_fmt("%.1f s", enroll_s), "-", "-", "-", "-");

	/* ---- transport baselines ---- */
	bench_phase("baseline: GetNode round trips");
	if (run_case(M_GETNODE, opt.warm_s / 2, opt.base_s, &getnode))
		goto out;
	bench_phase("baseline: empty reports");
	if (run_case(M_EMPTY, opt.warm_s / 2, opt.base_s, &empty))
		goto out;

	/* ---- ingestion ---- */
	bench_phase(bench_fmt("fresh keys: %.0f s warm-up, %.0f s measured", opt.warm_s, opt.secs));
	if (run_case(M_FRESH, opt.warm_s, opt.secs, &fresh))
		goto out;
	bench_phase(bench_fmt("repeated keys: %.0f s warm-up, %.0f s measured", opt.warm_s, opt.secs));
	if (run_case(M_REPEAT, opt.warm_s, opt.secs, &repeat))
		goto out;

	/* ---- decode baseline (the controller idle) ---- */
	bench_phase("baseline: decoding the same batches");
	if (decode_baseline(M_FRESH, opt.agents, opt.decode_s, &dec_f) ||
	    decode_baseline(M_REPEAT, opt.agents, opt.decode_s, &dec_r)) {
		printf("NOTE|the decode baseline failed\n");
		goto out;
	}

	rows_transport(&getnode, &empty);
	bench_row(
		"decode baseline",
		bench_fmt("protobuf-c unpack + free, fresh-key reports of %d, 1 thread", opt.batch),
		bench_fmt("%s /s per core", grp(dec_f.plain_pc)),
		bench_fmt("%.1f bytes per summary packed, %.1f on the wire (zlib)", dec_f.raw_b,
			  dec_f.wire_b),
		"1.000", "-", "-");
	bench_row("decode baseline", "  zlib inflate + unpack + free (as the RPC server does)",
		  bench_fmt("%s /s per core", grp(dec_f.zlib_pc)), "-",
		  bench_fmt("%.3f", dec_f.zlib_pc / dec_f.plain_pc), "-", "-");
	bench_row("decode baseline", "protobuf-c unpack + free, repeated-key reports",
		  bench_fmt("%s /s per core", grp(dec_r.plain_pc)),
		  bench_fmt("%.1f bytes per summary packed, %.1f on the wire; inflate + unpack "
			    "%s /s",
			    dec_r.raw_b, dec_r.wire_b, grp(dec_r.zlib_pc)),
		  "1.000", "-", "-");
	rows_ingest(&fresh, &getnode, dec_f.plain_pc);
	rows_ingest(&repeat, &getnode, dec_r.plain_pc);
	printf("NOTE|fresh keys: every summary of the run is a flow key the store has not seen (a "
	       "new "
	       "row in flows_1m and in flows_1h): what a fleet of many nodes, each with a few "
	       "thousand flows a minute, looks like to the store; %d connections stand for them\n",
	       opt.agents);
	printf("NOTE|repeated keys: each node's reports slide over a pool of %d keys per minute "
	       "(the aggregation case: after a node's first reports in a minute every summary "
	       "updates a row that exists)\n",
	       opt.pool);
	printf("NOTE|per core = summaries stored in the window / the controller's utime + stime in "
	       "it (all threads); decode = protobuf-c unpack + free of reports from the same "
	       "generator on one thread of this process\n");

	/* ---- the check: every call is answered now, so every stored report is committed ---- */
	bench_phase("checking the controller's counts and flows.db");
	bad = check();
	printf("NOTE|in the whole run: %llu reports answered OK, %llu refused as busy, %llu calls "
	       "failed%s%s\n",
	       (unsigned long long)atomic_load(&G.reports),
	       (unsigned long long)atomic_load(&G.busy), (unsigned long long)atomic_load(&G.errors),
	       G.first_error[0] ? "; the first: " : "", G.first_error);
	printf("VERDICT|controller ingestion over mutual TLS into flows.db: %s summaries/s per "
	       "core "
	       "of controller CPU with fresh keys (%s), %s with repeated keys (%s); target >= %s: "
	       "%s; %.3fx / %.3fx of protobuf-c decoding alone (%s /s per core); result check %s. "
	       "Context: " GOFLOW_REF " (about 12,500 per CPU; it decodes NetFlow/IPFIX and "
	       "produces to Kafka, it does not commit to a local store).\n",
	       grp(fresh.per_core), fresh.per_core >= TARGET_PER_CORE ? "MET" : "MISS",
	       grp(repeat.per_core), repeat.per_core >= TARGET_PER_CORE ? "MET" : "MISS",
	       grp(TARGET_PER_CORE),
	       fresh.per_core >= TARGET_PER_CORE && repeat.per_core >= TARGET_PER_CORE ? "MET"
										       : "MISS",
	       fresh.per_core / dec_f.plain_pc, repeat.per_core / dec_r.plain_pc,
	       grp(dec_f.plain_pc), bad ? "FAILED" : "passed");
	rc = bad ? 5 : 0;
out:
	/* no teardown: see the top of the file */
	atomic_store(&G.stop, true);
	fflush(stdout);
	fflush(stderr);
	_exit(rc);
}
