// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench_fanout: the fan-out benchmark, run on demand by tests/bench/fanout.sh (not part of
 * CTest). N simulated agents speak the real agent protocol to one real controller over real
 * mutual TLS on 127.0.0.1, without a datapath:
 *
 *   enroll    agent_enroll() for nodes fake-00001 ... with one join token (a pool of threads)
 *   connect   one bh_rpc_client per node (agent_client() on its state dir), in batches
 *   report    each reports one endpoint (Agent.ReportEndpoints, complete; labels app=fake,
 *             tier=tX with X = i % 10; a 198.18.x.y address of its own), then the first policy
 *             is applied (in that order: see the report phase)
 *   watch     each agent loops Watch{revision held} -> Ack{revision} -> Watch
 *
 * and measures: the controller's RSS per connected, watching agent; the time from `bulkhead
 * apply` to the last Ack of a change that affects every agent (plain, then with --wait), and of
 * one that affects a tenth of them (tier=t3: exactly those watches must wake); against N
 * sequential Watch round trips answered at once on the same clients (the RPC cost alone),
 * measured in the same run. The policies name CIDR peers only, so that every node's rule set is
 * the same small size whatever N is.
 *
 * Every agent re-arms its Watch when a change wakes it, so 30 s (wait_ms) after a change to all
 * of them every watch expires at once: N "nothing new" answers and N new Watches. Each
 * measurement waits until that herd has passed and the controller is quiet (quiesce()), and the
 * first such wait reports what the herd costs.
 *
 * bh_rpc_call() is synchronous, so every outstanding Watch is one blocked thread: N agent
 * threads with small stacks (--stack-kib). The set-up phases use a small pool instead.
 *
 * Prints "ROW|section|case|value|baseline|ratio|target|verdict" and "NOTE|text" lines for
 * fanout.sh. Every wait has a deadline and an alarm ends a wedged run. The run ends without
 * tearing the clients down (_exit): N blocked threads and N NNG sockets would be closed at once,
 * which is where NNG 1.5.2's reaper can hang (see rpc.sh); the process's exit closes them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bulkhead.pb-c.h"
#include "bulkhead/log.h"
#include "bulkhead/rpc.h"
#include "enroll.h"

#define S_OK		BULKHEAD__RPC_STATUS__RPC_OK
#define CALL_TIMEOUT_MS 15000 /* Report, Ack, a baseline Watch */
#define CONNECT_WAIT_S	30    /* a batch of clients not all connected by then: the run ends */
#define READY_WAIT_S	90    /* a batch of agents not all watching by then: the run ends */
#define ACK_WAIT_S	90    /* a change not acknowledged by every affected agent by then */
#define BASELINE_MAX_S	60    /* the sequential baseline stops there, whatever N */
#define SETTLE_MS	2000  /* after the last agent is watching, before RSS is read */
#define EXTRA_WAKE_MS	500   /* after a change, how long to watch for wakes beyond it */
#define QUIET_MAX_S	90    /* quiesce() gives up after this */
#define APPLY_WAIT_OPT	"--wait=120s"
#define PROBE_REPORTS	10   /* reports timed one at a time, before and after the policy */
#define PORT_ALL	8000 /* policy fanout-all: app=fake ingress tcp/PORT_ALL + k */
#define PORT_T3		9000 /* policy fanout-t3: tier=t3 ingress tcp/PORT_T3 + k */

static struct {
	const char *dir;    /* state dirs and policy files go here */
	const char *enroll; /* HOST:PORT of the enrollment listener */
	const char *token;  /* a join token with at least `agents` uses */
	const char *cli;    /* the bulkhead CLI (BULKHEAD_ADMIN_SOCKET from the environment) */
	pid_t ctl_pid;	    /* the controller, for RSS and CPU */
	int agents;
	int threads;	  /* the set-up pool */
	int batch;	  /* clients connected, then agents started, this many at a time */
	uint32_t wait_ms; /* each Watch's wait */
	size_t stack_kib; /* agent thread stacks */
	unsigned int alarm_s;
} opt = {
	.threads = 8,
	.batch = 250,
	.wait_ms = 30000,
	.stack_kib = 64,
	.alarm_s = 600,
};

/* One simulated agent. Its thread writes the times before `acked` (sequentially consistent),
 * so that whoever reads `acked` first sees the times that go with it. */
struct fake {
	struct bh_rpc_client *c;
	pthread_t th;
	atomic_bool ready;	    /* its first rule set is acknowledged; it watches */
	atomic_bool failed;	    /* its first report failed: it never watches */
	atomic_uint_fast64_t acked; /* the revision it last acknowledged */
	uint64_t woke_ns, acked_ns; /* when that revision's Watch answered, and its Ack */
	uint64_t enroll_ns;	    /* how long its enrollment took */
	uint64_t report_ns;	    /* how long its first endpoint report took */
};

static struct {
	struct fake *a;
	int n;		   /* agents with a thread (may stop short of opt.agents) */
	atomic_bool stop;  /* the run is over: no new calls */
	atomic_int acks;   /* acknowledgements since the last reset */
	atomic_int ready;  /* agents watching */
	atomic_int failed; /* agents whose first report failed: they never watch */
	atomic_int idle;   /* watches answered "nothing new" at the end of their wait */
	atomic_int errors; /* calls that failed (an agent tries again) */
	pthread_mutex_t lock;
	char first_error[300];
} G = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void note_error(const char *what, int i, const char *msg)
{
	pthread_mutex_lock(&G.lock);
	if (!G.first_error[0])
		snprintf(G.first_error, sizeof(G.first_error), "%s, fake-%05d: %s", what, i + 1,
			 msg);
	pthread_mutex_unlock(&G.lock);
	atomic_fetch_add(&G.errors, 1);
}

static void sleep_ms(unsigned int ms)
{
	usleep(ms * 1000u);
}

static double ms_of(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* ---- /proc ----------------------------------------------------------------------------------- */

/* A "Key:   N kB" field of /proc/PID/status (pid 0: ourselves), or -1. */
static long proc_status(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = atol(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

/* User + system CPU of pid in ms (clock ticks, so 10 ms steps), or -1. */
static double proc_cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* after the command's ")": state is field 3, utime 14, stime 15 */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* This process's user + system CPU in ms. */
static double self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static bool ctl_alive(void)
{
	return kill(opt.ctl_pid, 0) == 0;
}

/* ---- a pool for the set-up phases ------------------------------------------------------------ */

struct pool {
	void (*fn)(int i);
	int to;
	atomic_int next;
};

static void *pool_main(void *arg)
{
	struct pool *p = arg;
	int i;

	while ((i = atomic_fetch_add(&p->next, 1)) < p->to)
		p->fn(i);
	return NULL;
}

/* Runs fn(i) for i in [from, to) on opt.threads threads (or this one if none can start). */
static void pool_run(int from, int to, void (*fn)(int i))
{
	struct pool p = {.fn = fn, .to = to};
	pthread_t th[64];
	int nth = opt.threads < 64 ? opt.threads : 64;

	atomic_store(&p.next, from);
	for (int k = 0; k < nth; k++)
		if (pthread_create(&th[k], NULL, pool_main, &p)) {
			nth = k;
			break;
		}
	if (nth == 0)
		pool_main(&p);
	for (int k = 0; k < nth; k++)
		pthread_join(th[k], NULL);
}

/* ---- the agent's calls ----------------------------------------------------------------------- */

static void fake_dir(int i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/fake-%05d", opt.dir, i + 1);
}

/*
 * The agent's endpoint report, complete: its own endpoint (fake-NNNNN-ep, 198.18.x.y, labels
 * app=fake,tier=tX with X = i % 10) and, with second, one more (fake-NNNNN-ep2, 198.19.1.x) of
 * the same labels: a new workload while the policy is in place.
 */
static int call_report(struct bh_rpc_client *c, int i, bool second, char *msg, size_t len)
{
	Bulkhead__EndpointReport r = BULKHEAD__ENDPOINT_REPORT__INIT;
	Bulkhead__ReportedEndpoint e[2], *ep[2] = {&e[0], &e[1]};
	Bulkhead__ApplyResponse *resp = NULL;
	char name[2][32], ifname[2][16], addr[2][20], labels[32], *addrs[2][1];
	int st;

	snprintf(labels, sizeof(labels), "app=fake,tier=t%d", i % 10);
	for (int k = 0; k < 2; k++) {
		bulkhead__reported_endpoint__init(&e[k]);
		snprintf(name[k], sizeof(name[k]), "fake-%05d-ep%s", i + 1, k ? "2" : "");
		snprintf(ifname[k], sizeof(ifname[k]), "vf%05d%s", i + 1, k ? "b" : "");
		/* 198.18.1.1 onwards: 250 per /24, never .0 or .255 */
		if (k == 0)
			snprintf(addr[k], sizeof(addr[k]), "198.18.%d.%d", 1 + i / 250,
				 1 + i % 250);
		else
			snprintf(addr[k], sizeof(addr[k]), "198.19.1.%d", 1 + i % 250);
		addrs[k][0] = addr[k];
		e[k].name = name[k];
		e[k].ifname = ifname[k];
		e[k].attach = BULKHEAD__ATTACH__ATTACH_VETH;
		e[k].n_addresses = 1;
		e[k].addresses = addrs[k];
		e[k].labels = labels;
	}
	r.n_endpoints = second ? 2 : 1;
	r.endpoints = ep;
	r.complete = true;
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "ReportEndpoints", &r.base,
			 (ProtobufCMessage **)&resp, CALL_TIMEOUT_MS, msg, len);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	return st;
}

/* A Watch: *news says whether a rule set (snapshot or delta) came, *rev its revision. */
static int call_watch(struct bh_rpc_client *c, uint64_t held, bool snapshot, uint32_t wait_ms,
		      uint32_t timeout_ms, uint64_t *rev, bool *news, char *msg, size_t len)
{
	Bulkhead__WatchRequest r = BULKHEAD__WATCH_REQUEST__INIT;
	Bulkhead__WatchResponse *w = NULL;
	int st;

	r.revision = held;
	r.wait_ms = wait_ms;
	r.snapshot = snapshot;
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "Watch", &r.base, (ProtobufCMessage **)&w,
			 timeout_ms, msg, len);
	if (st == S_OK) {
		*rev = w->revision;
		*news = w->snapshot || w->delta;
		protobuf_c_message_free_unpacked(&w->base, NULL);
	}
	return st;
}

static int call_ack(struct bh_rpc_client *c, uint64_t rev, char *msg, size_t len)
{
	Bulkhead__AckRequest r = BULKHEAD__ACK_REQUEST__INIT;
	ProtobufCMessage *e = NULL;
	int st;

	r.revision = rev;
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "Ack", &r.base, &e, CALL_TIMEOUT_MS, msg,
			 len);
	if (e)
		protobuf_c_message_free_unpacked(e, NULL);
	return st;
}

/* An agent (its endpoint reported): Watch -> Ack -> Watch until the run ends (a held Watch is
 * not waited for: the process exits under it). A failed call is counted and tried again, as an
 * agent would. */
static void *agent_main(void *arg)
{
	struct fake *a = arg;
	int i = (int)(a - G.a);
	uint64_t held = 0;
	char msg[256];

	while (!atomic_load(&G.stop)) {
		uint64_t rev = 0, woke;
		bool news = false;

		if (call_watch(a->c, held, false, opt.wait_ms, opt.wait_ms + 10000, &rev, &news,
			       msg, sizeof(msg)) != S_OK) {
			note_error("Watch", i, msg);
			sleep_ms(200);
			continue;
		}
		if (!news) {
			atomic_fetch_add(&G.idle, 1);
			continue;
		}
		woke = bench_now_ns();
		/* a failed Ack leaves held as it was: the next Watch gets a snapshot */
		if (call_ack(a->c, rev, msg, sizeof(msg)) != S_OK) {
			note_error("Ack", i, msg);
			sleep_ms(200);
			continue;
		}
		held = rev;
		a->woke_ns = woke;
		a->acked_ns = bench_now_ns();
		atomic_store(&a->acked, rev);
		atomic_fetch_add(&G.acks, 1);
		if (!atomic_exchange(&a->ready, true))
			atomic_fetch_add(&G.ready, 1);
	}
	return NULL;
}

/* ---- phases ---------------------------------------------------------------------------------- */

static atomic_int enroll_failed, enroll_done;

static void enroll_one(int i)
{
	char dir[4096], name[32];
	struct agent_enroll_opts o = {
		.controller = opt.enroll, .token = opt.token, .name = name, .state_dir = dir};
	struct bh_error err = {0};
	uint64_t t0 = bench_now_ns();
	bool already;

	fake_dir(i, dir, sizeof(dir));
	snprintf(name, sizeof(name), "fake-%05d", i + 1);
	if (agent_enroll(&o, &already, &err)) {
		note_error("enroll", i, err.msg);
		atomic_fetch_add(&enroll_failed, 1);
	}
	G.a[i].enroll_ns = bench_now_ns() - t0;
	if ((atomic_fetch_add(&enroll_done, 1) + 1) % 1000 == 0)
		bench_log("%d enrolled", atomic_load(&enroll_done));
}

static void report_one(int i)
{
	char msg[256];
	uint64_t t0 = bench_now_ns();

	if (call_report(G.a[i].c, i, false, msg, sizeof(msg)) != S_OK) {
		note_error("ReportEndpoints", i, msg);
		atomic_store(&G.a[i].failed, true);
		atomic_fetch_add(&G.failed, 1);
	}
	G.a[i].report_ns = bench_now_ns() - t0;
}

static atomic_int client_failed;

static void client_one(int i)
{
	char dir[4096];
	struct bh_error err = {0};

	fake_dir(i, dir, sizeof(dir));
	if (agent_client(dir, &G.a[i].c, &err)) {
		note_error("client", i, err.msg);
		atomic_fetch_add(&client_failed, 1);
	}
}

static int connected(int from, int to)
{
	int up = 0;

	for (int i = from; i < to; i++)
		up += G.a[i].c && bh_rpc_client_connected(G.a[i].c);
	return up;
}

static int ready_in(int from, int to)
{
	int up = 0;

	for (int i = from; i < to; i++)
		up += atomic_load(&G.a[i].ready) || atomic_load(&G.a[i].failed);
	return up;
}

/*
 * Agents from .. from+count-1 each report a second endpoint (a new workload), one at a time:
 * the controller's cost of one report at this many workloads, without queueing. Returns how
 * many went through; *p50 and *max in ms.
 */
static int report_probe(int from, int count, double *p50, double *max)
{
	double v[16];
	char msg[256];
	int k = 0;

	for (; k < count && k < 16 && from + k < opt.agents; k++) {
		uint64_t c0 = bench_now_ns();

		if (call_report(G.a[from + k].c, from + k, true, msg, sizeof(msg)) != S_OK) {
			note_error("ReportEndpoints (probe)", from + k, msg);
			break;
		}
		v[k] = ms_of(bench_now_ns() - c0);
	}
	if (k) {
		bench_sort(v, (size_t)k);
		*p50 = bench_pct(v, (size_t)k, 0.5);
		*max = v[k - 1];
	}
	return k;
}

enum apply_kind {
	APPLY_PLAIN, /* -o json: the revision and the nodes affected */
	APPLY_WAIT,  /* --wait (table output: JSON does not name the nodes pending) */
};

/* Runs the CLI's apply of file with its stdout in out_path; *t0 and *t1 get the times just
 * before the spawn and just after the exit. Returns its exit status, or a negative errno if it
 * did not run. posix_spawn: a fork of this process (N threads, N sockets) would cost more than
 * the command itself. The CLI's own deadline is raised from its default 10 s: at 10,000 nodes
 * an apply takes longer, and the time it takes is what is measured. */
static int apply_run(const char *file, enum apply_kind kind, const char *out_path, uint64_t *t0,
		     uint64_t *t1)
{
	extern char **environ;
	char *argv[12] = {(char *)opt.cli, "--timeout", "300", "apply", "-f", (char *)file, "-o"};
	int argc = 7;
	posix_spawn_file_actions_t fa;
	int status, rc;
	pid_t pid;

	argv[argc++] = kind == APPLY_WAIT ? "table" : "json";
	if (kind == APPLY_WAIT)
		argv[argc++] = APPLY_WAIT_OPT;
	argv[argc] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	*t0 = bench_now_ns();
	rc = posix_spawn(&pid, opt.cli, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return -rc;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*t1 = bench_now_ns();
	return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

/* From the apply's output: the revision ("revision":N in JSON, "revision N" in the table) and,
 * in JSON, how many nodes it affected (-1 if not there). */
static void apply_parse(const char *path, uint64_t *rev, int *affected)
{
	char *text = NULL, *p;
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	*rev = 0;
	*affected = -1;
	if (!f)
		return;
	if (getdelim(&text, &cap, '\0', f) < 0) {
		fclose(f);
		free(text);
		return;
	}
	fclose(f);
	if ((p = strstr(text, "\"revision\":"))) {
		*rev = strtoull(p + 11, NULL, 10);
		if ((p = strstr(text, "\"nodes_affected\":["))) {
			p += 18;
			*affected = *p == ']' ? 0 : 1;
			for (; *p && *p != ']'; p++)
				*affected += *p == ',';
		}
	} else {
		char *save = NULL;

		for (p = strtok_r(text, "\n", &save); p; p = strtok_r(NULL, "\n", &save))
			if (strncmp(p, "revision ", 9) == 0)
				*rev = strtoull(p + 9, NULL, 10);
	}
	free(text);
}

static void policy_write(const char *name, int port_all, int port_t3)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", opt.dir, name);
	f = fopen(path, "w");
	if (!f) {
		bench_log("%s: %s", path, strerror(errno));
		exit(1);
	}
	/* CIDR peers only: each node's rule set stays the same size whatever N is */
	fprintf(f,
		"kind: Policy\n"
		"name: fanout-all\n"
		"selector: {matchLabels: {app: fake}}\n"
		"ingress:\n"
		"  - from: [{cidr: 198.19.255.0/24}]\n"
		"    ports: [{protocol: TCP, port: %d}]\n"
		"---\n"
		"kind: Policy\n"
		"name: fanout-t3\n"
		"selector: {matchLabels: {tier: t3}}\n"
		"ingress:\n"
		"  - from: [{cidr: 198.19.254.0/24}]\n"
		"    ports: [{protocol: TCP, port: %d}]\n",
		port_all, port_t3);
	fclose(f);
}

struct change {
	const char *what;
	int rc; /* the apply's exit status */
	uint64_t rev;
	int affected;	      /* nodes the apply says it affected (-1: not said) */
	int expected;	      /* agents that should acknowledge */
	int acked;	      /* agents that acknowledged rev */
	int acked_other;      /* of which not among the expected (tier change: not tier t3) */
	int extra;	      /* acknowledgements beyond those, within EXTRA_WAKE_MS */
	double apply_ms;      /* the command, spawn to exit */
	double p50, p99, max; /* per agent, apply spawn -> its Ack answered, ms */
	double woke_max;      /* apply spawn -> the last Watch answered, ms */
	double after_return;  /* last Ack answered - apply exited, ms */
	double ctl_cpu_ms;    /* the controller's, from the apply to the last Ack and after */
	double me_cpu_ms;     /* this process's (the agents' side), the same span */
	int errors;	      /* agents' calls that failed (and were retried) meanwhile */
};

/* Agents that have acknowledged rev. */
static int acked_count(uint64_t rev)
{
	int k = 0;

	for (int i = 0; i < G.n; i++)
		k += atomic_load(&G.a[i].acked) == rev;
	return k;
}

/*
 * Waits until most agents' current watches have expired once (G.idle up by 95% of the agents:
 * after a change to all of them, that is the herd of expiries wait_ms later), then until the
 * controller has used less than a tenth of a CPU for a whole second; QUIET_MAX_S at most.
 * Returns the controller's CPU meanwhile, in ms.
 */
static double quiesce(void)
{
	uint64_t dl = bench_now_ns() + QUIET_MAX_S * 1000000000ull;
	int target = atomic_load(&G.idle) + G.n * 95 / 100;
	double c0 = proc_cpu_ms(opt.ctl_pid);

	bench_phase("waiting for the watches to expire and the controller to be quiet");
	while (atomic_load(&G.idle) < target && bench_now_ns() < dl && ctl_alive())
		sleep_ms(50);
	while (bench_now_ns() < dl && ctl_alive()) {
		double a = proc_cpu_ms(opt.ctl_pid);

		sleep_ms(1000);
		if (proc_cpu_ms(opt.ctl_pid) - a < 100)
			break;
	}
	if (bench_now_ns() >= dl)
		printf("NOTE|the controller was not quiet %d s after a change; the next figures "
		       "share it with what it was doing\n",
		       QUIET_MAX_S);
	return proc_cpu_ms(opt.ctl_pid) - c0;
}

/* Applies file and waits until `expected` agents have acknowledged the new revision. only_t3:
 * the agents expected are those of tier t3. */
static int change_run(struct change *ch, const char *file, bool wait, bool only_t3)
{
	char path[4096], out[4096];
	uint64_t t0, t1, deadline, last = 0;
	double cpu0, me0, *lat;
	int err0;
	int n = G.n, k = 0;

	snprintf(path, sizeof(path), "%s/%s", opt.dir, file);
	snprintf(out, sizeof(out), "%s/%s.out", opt.dir, file);
	cpu0 = proc_cpu_ms(opt.ctl_pid);
	me0 = self_cpu_ms();
	err0 = atomic_load(&G.errors);
	ch->expected = 0;
	for (int i = 0; i < n; i++)
		ch->expected += !atomic_load(&G.a[i].failed) && (!only_t3 || i % 10 == 3);
	atomic_store(&G.acks, 0);
	ch->rc = apply_run(path, wait ? APPLY_WAIT : APPLY_PLAIN, out, &t0, &t1);
	apply_parse(out, &ch->rev, &ch->affected);
	ch->apply_ms = ms_of(t1 - t0);
	if (ch->rc != 0 || !ch->rev) {
		bench_log("%s: apply exited with %d, revision %llu (see %s)", ch->what, ch->rc,
			  (unsigned long long)ch->rev, out);
		if (!ch->rev)
			return -1;
	}
	deadline = bench_now_ns() + ACK_WAIT_S * 1000000000ull;
	while (bench_now_ns() < deadline && ctl_alive() &&
	       (atomic_load(&G.acks) < ch->expected || acked_count(ch->rev) < ch->expected))
		sleep_ms(1);
	sleep_ms(EXTRA_WAKE_MS);
	ch->ctl_cpu_ms = proc_cpu_ms(opt.ctl_pid) - cpu0;
	ch->me_cpu_ms = self_cpu_ms() - me0;
	ch->errors = atomic_load(&G.errors) - err0;
	ch->extra = atomic_load(&G.acks) - ch->expected;
	if (ch->extra < 0)
		ch->extra = 0;
	lat = calloc((size_t)n + 1, sizeof(double));
	if (!lat)
		return -1;
	ch->acked = ch->acked_other = 0;
	ch->woke_max = 0;
	for (int i = 0; i < n; i++) {
		struct fake *a = &G.a[i];

		if (atomic_load(&a->acked) != ch->rev)
			continue;
		ch->acked++;
		ch->acked_other += only_t3 && i % 10 != 3;
		lat[k++] = ms_of(a->acked_ns - t0);
		if (a->acked_ns > last)
			last = a->acked_ns;
		if (ms_of(a->woke_ns - t0) > ch->woke_max)
			ch->woke_max = ms_of(a->woke_ns - t0);
	}
	if (k) {
		bench_sort(lat, (size_t)k);
		ch->p50 = bench_pct(lat, (size_t)k, 0.5);
		ch->p99 = bench_pct(lat, (size_t)k, 0.99);
		ch->max = lat[k - 1];
		ch->after_return = last > t1 ? ms_of(last - t1) : -ms_of(t1 - last);
	}
	free(lat);
	bench_log("%s: revision %llu, %d of %d acknowledged, last %.0f ms after the apply began "
		  "(the apply took %.0f ms)",
		  ch->what, (unsigned long long)ch->rev, ch->acked, ch->expected, ch->max,
		  ch->apply_ms);
	return ch->acked == ch->expected ? 0 : -1;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: bh_bench_fanout --dir DIR --agents N --enroll HOST:PORT --token TOKEN\n"
		"                       --cli PATH --ctl-pid PID [--threads N] [--batch N]\n"
		"                       [--wait-ms MS] [--stack-kib K] [--alarm S]\n");
}

static const char *pf(double v, const char *unit)
{
	return bench_fmt("%.0f %s", v, unit);
}

static void change_rows(const char *sec, const struct change *ch, double base_ms, int n)
{
	bench_row(sec, bench_fmt("%s: apply start -> last Ack (%d agents)", ch->what, ch->acked),
		  pf(ch->max, "ms"), bench_fmt("%d sequential Watch RTTs %.0f ms", n, base_ms),
		  bench_fmt("%.2fx", ch->max / base_ms), "-",
		  ch->acked == ch->expected ? "ok" : "MISS");
	bench_row(sec, "  per agent, apply start -> its Ack",
		  bench_fmt("p50 %.0f / p99 %.0f / max %.0f ms", ch->p50, ch->p99, ch->max),
		  bench_fmt("last Watch answered at %.0f ms", ch->woke_max), "-", "-", "-");
	bench_row(sec, "  the apply command returned (spawn -> exit)", pf(ch->apply_ms, "ms"),
		  bench_fmt("last Ack %+d ms after it",
			    (int)(ch->after_return + (ch->after_return < 0 ? -0.5 : 0.5))),
		  "-", "-", "-");
	bench_row(sec, "  controller CPU for the change", pf(ch->ctl_cpu_ms, "ms"),
		  bench_fmt("%.0f us/agent woken; bench CPU %.0f ms; %d calls retried",
			    ch->acked ? ch->ctl_cpu_ms * 1e3 / ch->acked : 0, ch->me_cpu_ms,
			    ch->errors),
		  "-", "-", "-");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"dir", required_argument, NULL, 'd'},
		{"agents", required_argument, NULL, 'n'},
		{"enroll", required_argument, NULL, 'e'},
		{"token", required_argument, NULL, 't'},
		{"cli", required_argument, NULL, 'c'},
		{"ctl-pid", required_argument, NULL, 'p'},
		{"threads", required_argument, NULL, 'T'},
		{"batch", required_argument, NULL, 'b'},
		{"wait-ms", required_argument, NULL, 'w'},
		{"stack-kib", required_argument, NULL, 's'},
		{"alarm", required_argument, NULL, 'A'},
		{NULL, 0, NULL, 0},
	};
	struct rlimit rl = {0};
	pthread_attr_t attr;
	struct change all = {.what = "change to every agent"},
		      waited = {.what = "the same with apply " APPLY_WAIT_OPT},
		      t3 = {.what = "change to tier=t3 only"};
	char sec[32];
	double *lat = NULL, enroll_s, connect_s, report_s, report_p50, ready_s, base_ms = 0;
	double late_p50 = 0, late_max = 0, pre_p50 = 0, pre_max = 0, cpu0, herd_cpu = 0;
	long rss0, rss1, rss2, me0, me1, drops0;
	uint64_t t0;
	int o, n, done, base_n = 0, late_n = 0, pre_n = 0, rc = 1;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'd':
			opt.dir = optarg;
			break;
		case 'n':
			opt.agents = atoi(optarg);
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
		case 'T':
			opt.threads = atoi(optarg);
			break;
		case 'b':
			opt.batch = atoi(optarg);
			break;
		case 'w':
			opt.wait_ms = (uint32_t)atoi(optarg);
			break;
		case 's':
			opt.stack_kib = (size_t)atoi(optarg);
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
	    opt.agents < 10 || opt.threads < 1 || opt.batch < 1 || opt.wait_ms < 1000 ||
	    opt.stack_kib < 16) {
		usage();
		return 2;
	}
	n = opt.agents;
	snprintf(sec, sizeof(sec), "%d agents", n);
	/* whatever happens, the run ends */
	bench_alarm(opt.alarm_s);
	signal(SIGPIPE, SIG_IGN);
	bench_phase("starting");
	bh_log_init("bh_bench_fanout", LOG_WARNING);
	/* every agent is one socket here (and one at the controller), plus what enrollment holds */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)n + 512) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)n + 512) {
			bench_log("%d agents need %d file descriptors; the limit is %ld", n,
				  n + 512, (long)rl.rlim_cur);
			return 1;
		}
	}
	G.a = calloc((size_t)n, sizeof(*G.a));
	lat = calloc((size_t)n, sizeof(double));
	if (!G.a || !lat)
		return 1;

	/* ---- enrollment ---- */
	bench_phase(bench_fmt("enrolling %d nodes (%d threads)", n, opt.threads));
	t0 = bench_now_ns();
	cpu0 = proc_cpu_ms(opt.ctl_pid);
	pool_run(0, n, enroll_one);
	enroll_s = (double)(bench_now_ns() - t0) / 1e9;
	cpu0 = proc_cpu_ms(opt.ctl_pid) - cpu0;
	if (atomic_load(&enroll_failed)) {
		printf("NOTE|%d of %d enrollments failed; the first: %s\n",
		       atomic_load(&enroll_failed), n, G.first_error);
		goto out;
	}
	for (int i = 0; i < n; i++)
		lat[i] = ms_of(G.a[i].enroll_ns);
	bench_sort(lat, (size_t)n);
	bench_row(sec, bench_fmt("enroll: agent_enroll() x %d, %d threads", n, opt.threads),
		  bench_fmt("%.1f s, %.0f /s", enroll_s, n / enroll_s),
		  bench_fmt("each p50 %.0f / p99 %.0f ms; controller CPU %.1f s",
			    bench_pct(lat, (size_t)n, 0.5), bench_pct(lat, (size_t)n, 0.99), cpu0 / 1e3),
		  "-", "-", "-");

	policy_write("p0.yaml", PORT_ALL, PORT_T3);
	policy_write("p1.yaml", PORT_ALL + 1, PORT_T3);
	policy_write("p2.yaml", PORT_ALL + 2, PORT_T3);
	policy_write("p3.yaml", PORT_ALL + 2, PORT_T3 + 1);
	sleep_ms(SETTLE_MS);
	rss0 = proc_status(opt.ctl_pid, "VmRSS");
	me0 = proc_status(0, "VmRSS");

	/* ---- connections, in batches: NNG 1.5.2 listens with a backlog of 128 ---- */
	bench_phase(bench_fmt("connecting %d agents in batches of %d", n, opt.batch));
	drops0 = bench_listen_drops();
	t0 = bench_now_ns();
	for (int from = 0; from < n; from += opt.batch) {
		int to = from + opt.batch < n ? from + opt.batch : n;
		uint64_t dl = bench_now_ns() + CONNECT_WAIT_S * 1000000000ull;

		pool_run(from, to, client_one);
		if (atomic_load(&client_failed)) {
			printf("NOTE|clients could not be made: %s\n", G.first_error);
			goto out;
		}
		while (connected(from, to) < to - from && bench_now_ns() < dl)
			sleep_ms(5);
		if ((to / opt.batch) % 8 == 0 || to == n)
			bench_log("%d agents connected, %.1f s", to,
				  (double)(bench_now_ns() - t0) / 1e9);
		if (connected(from, to) < to - from) {
			printf("NOTE|STALLED: %d of agents %d-%d connected %d s after their batch "
			       "began; %d connected before (controller %s)\n",
			       connected(from, to), from + 1, to, CONNECT_WAIT_S, from,
			       ctl_alive() ? "running" : "GONE");
			fflush(stdout);
			_exit(3);
		}
	}
	connect_s = (double)(bench_now_ns() - t0) / 1e9;
	bench_row(sec, bench_fmt("connect: %d mTLS clients, batches of %d", n, opt.batch),
		  bench_fmt("%.1f s, %.0f /s", connect_s, n / connect_s),
		  bench_fmt("listen queue drops %ld", drops0 >= 0 ? bench_listen_drops() - drops0 : -1),
		  "-", "-", "-");
	sleep_ms(SETTLE_MS);
	rss1 = proc_status(opt.ctl_pid, "VmRSS");

	/*
	 * ---- endpoint reports, then the policy ----
	 * In this order on purpose: with a policy naming a CIDR already in place, a report costs
	 * the controller O(workloads x nodes of the same identity) (see the late reports below),
	 * which makes starting 10,000 agents take longer than the run may.
	 */
	bench_phase(bench_fmt("%d endpoint reports (%d threads)", n, opt.threads));
	t0 = bench_now_ns();
	cpu0 = proc_cpu_ms(opt.ctl_pid);
	pool_run(0, n, report_one);
	report_s = (double)(bench_now_ns() - t0) / 1e9;
	cpu0 = proc_cpu_ms(opt.ctl_pid) - cpu0;
	if (atomic_load(&G.failed)) {
		printf("NOTE|%d of %d reports failed; the first error: %s\n",
		       atomic_load(&G.failed), n, G.first_error);
		goto out;
	}
	for (int i = 0; i < n; i++)
		lat[i] = ms_of(G.a[i].report_ns);
	bench_sort(lat, (size_t)n);
	report_p50 = bench_pct(lat, (size_t)n, 0.5);
	bench_row(
		sec,
		bench_fmt("report: %d ReportEndpoints, no policy yet, %d threads", n, opt.threads),
		bench_fmt("%.1f s, %.0f /s", report_s, n / report_s),
		bench_fmt("each p50 %.1f / p99 %.1f ms; controller CPU %.1f s", report_p50,
			  bench_pct(lat, (size_t)n, 0.99), cpu0 / 1e3),
		"-", "-", "-");
	pre_n = report_probe(PROBE_REPORTS, PROBE_REPORTS, &pre_p50, &pre_max);
	bench_phase("the first policy");
	{
		char path[4096], out[4096];
		uint64_t a0, a1;
		int st;

		snprintf(path, sizeof(path), "%s/p0.yaml", opt.dir);
		snprintf(out, sizeof(out), "%s/p0.yaml.out", opt.dir);
		st = apply_run(path, APPLY_PLAIN, out, &a0, &a1);
		if (st != 0) {
			printf("NOTE|the first apply failed (exit %d)\n", st);
			goto out;
		}
		bench_row(sec,
			  bench_fmt("first policy over %d nodes (compile + store, no Watch)", n),
			  pf(ms_of(a1 - a0), "ms"), "-", "-", "-", "-");
	}

	/* ---- agents: first rule set (a snapshot), Ack, then a held Watch each ---- */
	bench_phase(bench_fmt("starting %d agents (Watch, Ack, Watch)", n));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, opt.stack_kib * 1024);
	t0 = bench_now_ns();
	for (int from = 0; from < n && G.n == from; from += opt.batch) {
		int to = from + opt.batch < n ? from + opt.batch : n;
		uint64_t dl = bench_now_ns() + READY_WAIT_S * 1000000000ull;

		for (int i = from; i < to; i++) {
			int e = pthread_create(&G.a[i].th, &attr, agent_main, &G.a[i]);

			if (e) {
				printf("NOTE|agent thread %d could not start (%s): the run goes on "
				       "with %d agents watching; the others stay connected, idle\n",
				       i + 1, strerror(e), i);
				break;
			}
			G.n = i + 1;
		}
		while (ready_in(from, G.n) < G.n - from && bench_now_ns() < dl && ctl_alive())
			sleep_ms(5);
		if ((to / opt.batch) % 8 == 0 || to == n)
			bench_log("%d agents watching, %.1f s; controller CPU %.1f s", G.n,
				  (double)(bench_now_ns() - t0) / 1e9,
				  proc_cpu_ms(opt.ctl_pid) / 1e3);
		if (ready_in(from, G.n) < G.n - from) {
			printf("NOTE|STALLED: %d of agents %d-%d watching %d s after they started "
			       "(controller %s); first error: %s\n",
			       ready_in(from, G.n), from + 1, G.n, READY_WAIT_S,
			       ctl_alive() ? "running" : "GONE", G.first_error);
			fflush(stdout);
			_exit(3);
		}
	}
	pthread_attr_destroy(&attr);
	ready_s = (double)(bench_now_ns() - t0) / 1e9;
	done = atomic_load(&G.ready);
	bench_row(sec, bench_fmt("start: %d agents Watch (snapshot), Ack, Watch again", done),
		  bench_fmt("%.1f s, %.0f /s", ready_s, done / ready_s), "-", "-", "-", "-");
	sleep_ms(SETTLE_MS);
	rss2 = proc_status(opt.ctl_pid, "VmRSS");
	me1 = proc_status(0, "VmRSS");
	{
		double per = (double)(rss2 - rss0) / done;

		bench_row(sec, "controller RSS per agent: connected, reported, Watch held",
			  bench_fmt("%.1f KiB", per),
			  bench_fmt("RSS %.1f -> %.1f MiB", rss0 / 1024.0, rss2 / 1024.0), "-",
			  "<= 50 KiB", per <= 50 ? "ok" : "MISS");
		bench_row(sec, "  of which the connection alone (before any call)",
			  bench_fmt("%.1f KiB", (double)(rss1 - rss0) / n), "-", "-", "-", "-");
		bench_row(sec, "  of which workload, rule set, sync state, held Watch",
			  bench_fmt("%.1f KiB", (double)(rss2 - rss1) / done), "-", "-", "-", "-");
		bench_row(sec, "bench process per simulated agent (client side)",
			  bench_fmt("%.1f KiB", (double)(me1 - me0) / n),
			  bench_fmt("%ld threads, stacks %zu KiB", proc_status(0, "Threads"),
				    opt.stack_kib),
			  "-", "-", "-");
	}
	if (done < n)
		printf("NOTE|only %d of %d agents watched: the figures below are for them\n", done,
		       n);

	/* ---- the changes, each once the controller is quiet ---- */
	quiesce();
	bench_phase("a change to every agent");
	if (change_run(&all, "p1.yaml", false, false))
		printf("NOTE|%s: %d of %d agents acknowledged within %d s\n", all.what, all.acked,
		       all.expected, ACK_WAIT_S);
	herd_cpu = quiesce();
	bench_phase("a change to every agent, apply --wait");
	if (change_run(&waited, "p2.yaml", true, false))
		printf("NOTE|%s: %d of %d agents acknowledged within %d s (apply exit %d)\n",
		       waited.what, waited.acked, waited.expected, ACK_WAIT_S, waited.rc);
	quiesce();
	bench_phase("a change to tier=t3");
	if (change_run(&t3, "p3.yaml", false, true))
		printf("NOTE|%s: %d of %d agents acknowledged within %d s\n", t3.what, t3.acked,
		       t3.expected, ACK_WAIT_S);

	/* ---- the baseline: the same clients, one Watch at a time, answered at once ---- */
	quiesce();
	bench_phase("baseline: sequential Watch round trips");
	{
		uint64_t dl = bench_now_ns() + BASELINE_MAX_S * 1000000000ull, b0 = bench_now_ns();
		char msg[256];

		for (int i = 0; i < G.n && bench_now_ns() < dl; i++) {
			uint64_t c0 = bench_now_ns(), rev;
			bool news;

			if (atomic_load(&G.a[i].failed))
				continue;
			/* snapshot=true: answered now with the node's whole (small) rule set */
			if (call_watch(G.a[i].c, atomic_load(&G.a[i].acked), true, 1000,
				       CALL_TIMEOUT_MS, &rev, &news, msg, sizeof(msg)) != S_OK) {
				note_error("baseline Watch", i, msg);
				break;
			}
			lat[base_n++] = ms_of(bench_now_ns() - c0);
		}
		base_ms = ms_of(bench_now_ns() - b0);
		if (base_n) {
			/* scaled to every agent, if the time limit stopped it short */
			base_ms = base_ms * done / base_n;
			bench_sort(lat, (size_t)base_n);
			bench_row(sec,
				  bench_fmt("baseline: %d sequential Watch round trips%s", done,
					    base_n < done ? " (scaled)" : ""),
				  pf(base_ms, "ms"),
				  bench_fmt("each p50 %.3f / p99 %.3f ms",
					    bench_pct(lat, (size_t)base_n, 0.5),
					    bench_pct(lat, (size_t)base_n, 0.99)),
				  "1.00x", "-", "-");
		}
	}
	if (!base_n)
		base_ms = 1;

	/* ---- reports with the policy in place: one new workload each, one at a time ---- */
	bench_phase("reports with the policy in place");
	late_n = report_probe(0, PROBE_REPORTS, &late_p50, &late_max);
	if (all.rev)
		change_rows(sec, &all, base_ms, done);
	if (waited.rev) {
		bench_row(sec, bench_fmt("apply %s, every agent: the command took", APPLY_WAIT_OPT),
			  pf(waited.apply_ms, "ms"),
			  bench_fmt("its last Ack at %.0f ms", waited.max),
			  bench_fmt("%.2fx", waited.apply_ms / (waited.max > 0 ? waited.max : 1)),
			  "-", waited.rc == 0 && waited.acked == waited.expected ? "ok" : "MISS");
		change_rows(sec, &waited, base_ms, done);
	}
	if (all.rev)
		bench_row(sec,
			  bench_fmt("%s's watches expiring together %u s later", all.what,
				    opt.wait_ms / 1000),
			  bench_fmt("controller CPU %.0f ms", herd_cpu),
			  bench_fmt("%.0f us per agent", herd_cpu * 1e3 / done), "-", "-", "-");
	if (t3.rev) {
		bench_row(sec, "tier=t3 change: watches woken",
			  bench_fmt("%d (%d outside t3, %d extra)", t3.acked, t3.acked_other,
				    t3.extra),
			  bench_fmt("expected %d, apply says %d", t3.expected, t3.affected), "-",
			  "exactly t3",
			  t3.acked == t3.expected && !t3.acked_other && !t3.extra ? "ok" : "MISS");
		change_rows(sec, &t3, base_ms, done);
	}
	if (late_n && pre_n)
		bench_row(sec,
			  bench_fmt("report of 1 new workload, policy in place (%d, one at a time)",
				    late_n),
			  bench_fmt("p50 %.1f / max %.1f ms", late_p50, late_max),
			  bench_fmt("the same before the policy p50 %.1f ms", pre_p50),
			  bench_fmt("%.1fx", late_p50 / pre_p50), "-", "-");
	printf("NOTE|%d watches answered 'nothing new' (%u ms wait) and %d calls failed and were "
	       "retried during the run%s%s\n",
	       atomic_load(&G.idle), opt.wait_ms, atomic_load(&G.errors),
	       G.first_error[0] ? "; the first: " : "", G.first_error);
	if (all.affected >= 0 && all.affected != done)
		printf("NOTE|the change to every agent affected %d nodes by the apply's count, %d "
		       "agents were watching\n",
		       all.affected, done);
	printf("NOTE|controller RSS %.1f MiB at the end (VmHWM %.1f MiB)\n",
	       proc_status(opt.ctl_pid, "VmRSS") / 1024.0,
	       proc_status(opt.ctl_pid, "VmHWM") / 1024.0);
	rc = all.acked == all.expected && waited.acked == waited.expected &&
			     t3.acked == t3.expected && !t3.acked_other
		     ? 0
		     : 1;
out:
	/* no teardown: see the top of the file */
	atomic_store(&G.stop, true);
	fflush(stdout);
	fflush(stderr);
	_exit(rc);
}
