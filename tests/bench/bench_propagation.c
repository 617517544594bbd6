// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench_propagation: the traffic end of tests/bench/propagation.sh (the propagation benchmark).
 *
 * The question is when each node starts enforcing a change: how long after `bulkhead apply`
 * returns does the first packet see the new verdict. Shelling out to nc per attempt costs
 * milliseconds of its own; this tool sends one fresh TCP connection attempt to every node every
 * --interval-ms (default 2 ms), keeps as many in flight as that takes in one epoll loop, and runs
 * the command that makes the change itself, so that every time it reports is on one clock
 * (CLOCK_MONOTONIC).
 *
 * An attempt is a non-blocking connect() on a new socket (reset on success: no TIME_WAIT), or
 * with --syn a bare SYN from a raw socket, the SYN-ACKs read back from it (this namespace's
 * kernel resets each, which ends the half-open connection on the node): for the datapath the
 * same first packet, at about half the CPU per attempt. --rt runs the tool SCHED_FIFO (the
 * command it starts goes back to the normal policy): with a hundred agents on two CPUs, a normal
 * process' attempts and clock readings wait behind the very work it measures.
 *
 *   bh_bench_propagation serve --port P [--max-seconds S] NETNS...
 *       a listener on 0.0.0.0:P in each namespace (one process for all of them: a socket stays in
 *       the namespace it was made in), accepting and closing every connection. Prints "ready"
 *       once every socket listens; runs until killed, its parent exits, or S seconds (default
 *       3600).
 *
 *   bh_bench_propagation probe --netns NS --port P --to allow|deny --targets FILE
 *                              [--interval-ms MS] [--timeout-ms MS] [--settle-ms MS]
 *                              [--max-ms MS] [--confirm N] [--cmd-log FILE] [--syn] [--rt]
 *                              -- COMMAND [ARG...]
 *       from namespace NS, probes every target (FILE: "NAME ADDRESS" lines, IPv4) for --settle-ms
 *       (default 400), checks that every one shows the old verdict (--to allow: no connection
 *       opens; deny: they all do), runs COMMAND (in the tool's original namespace, output to
 *       --cmd-log), and goes on probing until every target has shown the new verdict --confirm
 *       times in a row (default 3; then that target is no longer probed) and COMMAND exited, or
 *       --max-ms (default 15000) after COMMAND started.
 *
 * Every attempt is a new connection, so an established one never carries a verdict over (the
 * datapath re-decides those on their next packet anyway). An attempt that gets no SYN-ACK within
 * --timeout-ms (default 100; below TCP's 1 s SYN retransmission, so an attempt is one SYN) is
 * "no answer". The moment a target shows the new verdict:
 *   --to allow  the first SYN-ACK received (when the loop saw the connection open)
 *   --to deny   the SYN of the first attempt that got no answer after the last one that did
 *               (a spurious loss before that is counted as an anomaly, not taken as the flip)
 * Resolution: the gap between the last attempt with the old verdict and the first with the new.
 *
 * Output (stdout), times in microseconds:
 *   cmd RETURN_US STATUS                     COMMAND's run time (exec to exit) and exit status
 *   node NAME ADDR FROM_RETURN FROM_EXEC RES ANOMALIES ERRORS ATTEMPTS LAST_OLD
 *                                            FROM_*: the new verdict's first packet, from COMMAND
 *                                            returning and from its start ("-": never seen);
 *                                            RES: the resolution; LAST_OLD: the last attempt
 *                                            with the old verdict (its SYN), from COMMAND
 *                                            returning: the change was not in force before it
 *   probe ATTEMPTS SECONDS CPU               attempts made in all, over how long, and the CPU
 *                                            time (s) this tool used meanwhile
 * exit status: 0 measured (possibly with targets never flipping: "-"), 1 the old verdict did not
 * hold before the change (message on stderr), 2 usage, 3 any other error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OLD_VERDICT 1
#define EXIT_USAGE	 2
#define EXIT_ERROR	 3

enum outcome { PENDING, ANSWERED, NO_ANSWER, FAILED };

struct attempt {
	uint64_t sent, done; /* ns, monotonic */
	int fd;
	uint8_t outcome;
};

struct target {
	char name[64];
	char addr_s[INET_ADDRSTRLEN];
	struct sockaddr_in addr;
	struct attempt *a;
	size_t n, cap;
	size_t oldest;	    /* no attempt before this one is pending */
	unsigned run;	    /* attempts before oldest showing the new verdict, in a row */
	uint64_t next_send; /* ns */
	bool done;	    /* showed the new verdict --confirm times in a row: no more attempts */
	unsigned errors;    /* refused, unreachable, ...: the setup, not the policy */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what)
{
	fprintf(stderr, "bh_bench_propagation: %s: %s\n", what, strerror(errno));
	return EXIT_ERROR;
}

static int netns_enter(const char *name)
{
	char path[300];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---- serve --------------------------------------------------------------------------------- */

static int cmd_serve(int argc, char **argv)
{
	static const struct option lo[] = {{"port", required_argument, NULL, 'p'},
					   {"max-seconds", required_argument, NULL, 'm'},
					   {NULL, 0, NULL, 0}};
	int port = 0, max_s = 3600, ep, self, c, i;
	struct epoll_event ev, evs[64];
	uint64_t end;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'p')
			port = atoi(optarg);
		else if (c == 'm')
			max_s = atoi(optarg);
		else
			return EXIT_USAGE;
	}
	if (port <= 0 || port > 65535 || optind >= argc || max_s <= 0) {
		fprintf(stderr, "usage: bh_bench_propagation serve --port P [--max-seconds S] "
				"NETNS...\n");
		return EXIT_USAGE;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	raise_nofile();
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (self < 0 || ep < 0)
		return fail("namespace or epoll");
	for (i = optind; i < argc; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int one = 1, fd;

		if (netns_enter(argv[i]) < 0) {
			fprintf(stderr, "bh_bench_propagation: namespace %s: %s\n", argv[i],
				strerror(errno));
			return EXIT_ERROR;
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0)
			return fail(argv[i]);
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			return fail("epoll_ctl");
		if (setns(self, CLONE_NEWNET) < 0)
			return fail("back to the original namespace");
	}
	printf("ready\n");
	fflush(stdout);
	end = now_ns() + (uint64_t)max_s * 1000000000ull;
	while (now_ns() < end) {
		int n = epoll_wait(ep, evs, 64, 1000);

		for (i = 0; i < n; i++) {
			int fd;

			/* a FIN: the prober's reset then ends the connection, with no TIME_WAIT on
			 * either side (a reset from here could reach the prober before it saw the
			 * connection open) */
			while ((fd = accept4(evs[i].data.fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
				close(fd);
		}
	}
	return 0;
}

/* ---- probe --------------------------------------------------------------------------------- */

struct probe {
	struct target *t;
	size_t n_t;
	bool to_allow;
	uint64_t interval, timeout; /* ns */
	uint64_t tick;		    /* the shortest sleep, ns: an eighth of the interval */
	unsigned confirm;
	int ep;
	uint64_t attempts;
	bool syn;	    /* --syn: bare SYNs on a raw socket instead of connects */
	int raw;	    /* --syn: the raw socket, sending SYNs and receiving SYN-ACKs */
	struct in_addr src; /* --syn: this namespace's address towards the targets */
	uint16_t sport;	    /* --syn: the next source port */
};

#define RAW_EVENT (UINT64_MAX - 1) /* the raw socket's epoll data */

/* Whether an attempt's outcome is the new verdict. */
static bool is_new(const struct probe *p, uint8_t o)
{
	return p->to_allow ? o == ANSWERED : o == NO_ANSWER;
}
static bool is_old(const struct probe *p, uint8_t o)
{
	return p->to_allow ? o == NO_ANSWER : o == ANSWERED;
}

static void finish(struct target *t, size_t i, uint8_t outcome, uint64_t now)
{
	struct attempt *a = &t->a[i];

	if (outcome == FAILED)
		t->errors++;
	a->outcome = outcome;
	a->done = now;
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* --syn: one bare SYN (what a connect sends first, without options) from a fresh source port.
 * Its sequence number names the attempt: target index << 20 | attempt index. The SYN-ACK comes
 * back to the raw socket; this namespace's kernel, knowing no such connection, answers it with a
 * reset, which ends the half-open connection on the node. */
static int send_syn(struct probe *p, size_t ti, struct attempt *a, size_t ai)
{
	struct target *t = &p->t[ti];
	uint8_t h[20] = {0};
	uint32_t seq = (uint32_t)(ti << 20 | (ai & 0xfffff)), sum = 0;
	uint16_t sport;
	size_t i;

	p->sport = p->sport < 20000 || p->sport >= 60000 ? 20000 : p->sport + 1;
	sport = htons(p->sport);
	memcpy(h, &sport, 2);
	memcpy(h + 2, &t->addr.sin_port, 2);
	seq = htonl(seq);
	memcpy(h + 4, &seq, 4);
	h[12] = 5 << 4;		    /* data offset: 20 bytes */
	h[13] = 0x02;		    /* SYN */
	h[14] = 0xfa, h[15] = 0xf0; /* window 64240 */
	/* pseudo header: source, destination, protocol, TCP length */
	sum += ntohs((uint16_t)(p->src.s_addr & 0xffff)) + ntohs((uint16_t)(p->src.s_addr >> 16));
	sum += ntohs((uint16_t)(t->addr.sin_addr.s_addr & 0xffff)) +
	       ntohs((uint16_t)(t->addr.sin_addr.s_addr >> 16));
	sum += IPPROTO_TCP + sizeof(h);
	for (i = 0; i < sizeof(h); i += 2)
		sum += (uint32_t)(h[i] << 8 | h[i + 1]);
	sum = htons(csum_fold(sum));
	memcpy(h + 16, &sum, 2);
	a->sent = now_ns();
	if (sendto(p->raw, h, sizeof(h), 0, (struct sockaddr *)&t->addr, sizeof(t->addr)) < 0) {
		if (!t->errors)
			fprintf(stderr, "bh_bench_propagation: SYN to %s (%s): %s\n", t->name,
				t->addr_s, strerror(errno));
		finish(t, ai, FAILED, now_ns());
	}
	return 0;
}

/* --syn: every SYN-ACK (or reset) waiting on the raw socket. */
static void read_raw(struct probe *p, uint64_t now)
{
	uint8_t b[256];
	ssize_t n;

	while ((n = recv(p->raw, b, sizeof(b), MSG_DONTWAIT)) > 0) {
		size_t ihl = (size_t)(b[0] & 0x0f) * 4, ti, ai;
		uint32_t ack, src;
		uint8_t *h = b + ihl;
		struct target *t;

		if (n < (ssize_t)(ihl + 20) || (b[0] >> 4) != 4)
			continue;
		memcpy(&ack, h + 8, 4);
		ack = ntohl(ack) - 1;
		ti = ack >> 20;
		ai = ack & 0xfffff;
		if (ti >= p->n_t || !(h[13] & 0x10)) /* ACK set: an answer to one of ours */
			continue;
		t = &p->t[ti];
		memcpy(&src, b + 12, 4);
		if (src != t->addr.sin_addr.s_addr || memcmp(h, &t->addr.sin_port, 2) ||
		    ai >= t->n || t->a[ai].outcome != PENDING)
			continue;
		if ((h[13] & 0x12) == 0x12) {
			finish(t, ai, ANSWERED, now);
		} else if (h[13] & 0x04) {
			if (!t->errors)
				fprintf(stderr,
					"bh_bench_propagation: %s (%s): reset (no listener?)\n",
					t->name, t->addr_s);
			finish(t, ai, FAILED, now);
		}
	}
}

static int send_attempt(struct probe *p, size_t ti, uint64_t now)
{
	struct target *t = &p->t[ti];
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct epoll_event ev;
	struct attempt *a;
	int fd;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct attempt *na = realloc(t->a, cap * sizeof(*na));

		if (!na)
			return -1;
		t->a = na;
		t->cap = cap;
	}
	a = &t->a[t->n];
	*a = (struct attempt){.fd = -1, .outcome = PENDING};
	if (p->syn) {
		p->attempts++;
		t->n++;
		return send_syn(p, ti, a, t->n - 1);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	a->fd = fd;
	a->sent = now_ns();
	p->attempts++;
	if (connect(fd, (struct sockaddr *)&t->addr, sizeof(t->addr)) == 0) {
		finish(t, t->n++, ANSWERED, now_ns());
		return 0;
	}
	if (errno != EINPROGRESS) {
		if (!t->errors)
			fprintf(stderr, "bh_bench_propagation: connect %s (%s): %s\n", t->name,
				t->addr_s, strerror(errno));
		finish(t, t->n++, FAILED, now_ns());
		return 0;
	}
	ev.events = EPOLLOUT;
	ev.data.u64 = (uint64_t)ti << 32 | (uint64_t)t->n;
	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	t->n++;
	(void)now;
	return 0;
}

/* One pass of the loop: timeouts, due attempts, then waits for answers until the next thing is
 * due (at most 50 ms). 0, or EXIT_ERROR (message printed). */
static int step(struct probe *p)
{
	struct epoll_event evs[256];
	struct timespec ts;
	uint64_t now = now_ns(), wake = now + 50000000ull;
	size_t i;
	int n, k;

	for (i = 0; i < p->n_t; i++) {
		struct target *t = &p->t[i];

		/* timeouts, oldest first (every attempt has the same timeout); done once the last
		 * --confirm attempts of the resolved prefix all showed the new verdict */
		while (t->oldest < t->n) {
			struct attempt *a = &t->a[t->oldest];

			if (a->outcome == PENDING) {
				if (now < a->sent + p->timeout) {
					if (a->sent + p->timeout < wake)
						wake = a->sent + p->timeout;
					break;
				}
				finish(t, t->oldest, NO_ANSWER, now);
			}
			t->run = is_new(p, a->outcome) ? t->run + 1 : 0;
			if (t->run >= p->confirm)
				t->done = true;
			t->oldest++;
		}
		if (t->done)
			continue;
		if (now >= t->next_send) {
			if (send_attempt(p, i, now) < 0)
				return fail("connect attempt");
			/* a late loop does not burst: the next attempt is an interval from now */
			t->next_send += p->interval;
			if (t->next_send <= now)
				t->next_send = now + p->interval;
		}
		if (t->next_send < wake)
			wake = t->next_send;
	}
	/* a sleep shorter than a tick costs more than it measures: attempts go in small batches */
	now = now_ns();
	wake = wake > now + p->tick ? wake - now : p->tick;
	ts.tv_sec = (time_t)(wake / 1000000000ull);
	ts.tv_nsec = (long)(wake % 1000000000ull);
	n = epoll_pwait2(p->ep, evs, 256, &ts, NULL);
	if (n < 0 && errno != EINTR)
		return fail("epoll_pwait2");
	now = now_ns();
	for (k = 0; k < n; k++) {
		size_t ti = (size_t)(evs[k].data.u64 >> 32),
		       ai = (size_t)(evs[k].data.u64 & 0xffffffffu);
		struct target *t;
		int err = 0;
		socklen_t len = sizeof(err);

		if (evs[k].data.u64 == UINT64_MAX)
			continue; /* the command exited */
		if (evs[k].data.u64 == RAW_EVENT) {
			read_raw(p, now);
			continue;
		}
		t = &p->t[ti];

		if (t->a[ai].outcome != PENDING)
			continue;
		if (getsockopt(t->a[ai].fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err && err != ECONNRESET && !t->errors)
			fprintf(stderr, "bh_bench_propagation: %s (%s): %s\n", t->name, t->addr_s,
				strerror(err));
		/* reset: it opened (a refused SYN is ECONNREFUSED), then the server went away */
		finish(t, ai, err == 0 || err == ECONNRESET ? ANSWERED : FAILED, now);
	}
	return 0;
}

static int read_targets(struct probe *p, const char *file, int port)
{
	char line[256], name[64], addr[64];
	FILE *f = fopen(file, "r");
	size_t cap = 0;

	if (!f)
		return fail(file);
	while (fgets(line, sizeof(line), f)) {
		struct target *t;

		if (sscanf(line, "%63s %63s", name, addr) != 2 || name[0] == '#')
			continue;
		if (p->n_t == cap) {
			cap = cap ? cap * 2 : 64;
			p->t = realloc(p->t, cap * sizeof(*p->t));
			if (!p->t)
				return fail("memory");
		}
		t = &p->t[p->n_t];
		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", name);
		snprintf(t->addr_s, sizeof(t->addr_s), "%s", addr);
		t->addr.sin_family = AF_INET;
		t->addr.sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, addr, &t->addr.sin_addr) != 1) {
			fprintf(stderr, "bh_bench_propagation: %s: \"%s\" is not an IPv4 address\n",
				file, addr);
			fclose(f);
			return EXIT_USAGE;
		}
		p->n_t++;
	}
	fclose(f);
	if (!p->n_t) {
		fprintf(stderr, "bh_bench_propagation: %s: no targets\n", file);
		return EXIT_USAGE;
	}
	return 0;
}

static void usage_probe(void)
{
	fprintf(stderr,
		"usage: bh_bench_propagation probe --netns NS --port P --to allow|deny "
		"--targets FILE\n"
		"         [--interval-ms MS] [--timeout-ms MS] [--settle-ms MS] [--max-ms MS]"
		" [--confirm N]\n"
		"         [--cmd-log FILE] [--syn] [--rt] -- COMMAND [ARG...]\n");
}

/* Prints the result line of target t. */
static void report(const struct probe *p, const struct target *t, uint64_t t_exec, uint64_t t_ret)
{
	size_t i, first = SIZE_MAX, last_old = SIZE_MAX;
	unsigned anomalies = 0;
	uint64_t at;

	if (p->to_allow) {
		for (i = 0; i < t->n && first == SIZE_MAX; i++)
			if (t->a[i].outcome == ANSWERED)
				first = i;
		for (i = first == SIZE_MAX ? 0 : first + 1; i < t->n; i++)
			if (t->a[i].outcome == NO_ANSWER)
				anomalies++; /* a drop after the first pass */
	} else {
		size_t last_ok = SIZE_MAX;

		for (i = 0; i < t->n; i++)
			if (t->a[i].outcome == ANSWERED)
				last_ok = i;
		for (i = last_ok == SIZE_MAX ? 0 : last_ok + 1; i < t->n && first == SIZE_MAX; i++)
			if (t->a[i].outcome == NO_ANSWER)
				first = i;
		for (i = 0; last_ok != SIZE_MAX && i < last_ok; i++)
			if (t->a[i].outcome == NO_ANSWER)
				anomalies++; /* a loss while connections still opened */
	}
	for (i = first; first != SIZE_MAX && i-- > 0;)
		if (is_old(p, t->a[i].outcome)) {
			last_old = i;
			break;
		}
	if (first == SIZE_MAX || !t->done) {
		printf("node %s %s - - - %u %u %zu -\n", t->name, t->addr_s, anomalies, t->errors,
		       t->n);
		return;
	}
	at = p->to_allow ? t->a[first].done : t->a[first].sent;
	printf("node %s %s %.1f %.1f %.1f %u %u %zu %.1f\n", t->name, t->addr_s,
	       ((double)at - (double)t_ret) / 1e3, ((double)at - (double)t_exec) / 1e3,
	       last_old == SIZE_MAX
		       ? -1.0
		       : ((double)t->a[first].sent - (double)t->a[last_old].sent) / 1e3,
	       anomalies, t->errors, t->n,
	       last_old == SIZE_MAX ? -1e9 : ((double)t->a[last_old].sent - (double)t_ret) / 1e3);
}

static int cmd_probe(int argc, char **argv)
{
	static const struct option lo[] = {{"netns", required_argument, NULL, 'n'},
					   {"port", required_argument, NULL, 'p'},
					   {"to", required_argument, NULL, 't'},
					   {"targets", required_argument, NULL, 'f'},
					   {"interval-ms", required_argument, NULL, 'i'},
					   {"timeout-ms", required_argument, NULL, 'o'},
					   {"settle-ms", required_argument, NULL, 's'},
					   {"max-ms", required_argument, NULL, 'm'},
					   {"confirm", required_argument, NULL, 'c'},
					   {"cmd-log", required_argument, NULL, 'l'},
					   {"syn", no_argument, NULL, 'y'},
					   {"rt", no_argument, NULL, 'r'},
					   {NULL, 0, NULL, 0}};
	const char *netns = NULL, *to = NULL, *targets = NULL, *cmd_log = "/dev/null";
	double interval_ms = 2, timeout_ms = 100, settle_ms = 400, max_ms = 15000;
	struct probe p = {.confirm = 3};
	uint64_t t0, t_exec, t_ret = 0, t_end, deadline;
	int port = 0, self, pidfd, c, rc, status = -1;
	bool rt = false;
	struct epoll_event ev;
	size_t i;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			netns = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 't':
			to = optarg;
			break;
		case 'f':
			targets = optarg;
			break;
		case 'i':
			interval_ms = atof(optarg);
			break;
		case 'o':
			timeout_ms = atof(optarg);
			break;
		case 's':
			settle_ms = atof(optarg);
			break;
		case 'm':
			max_ms = atof(optarg);
			break;
		case 'c':
			p.confirm = (unsigned)atoi(optarg);
			break;
		case 'l':
			cmd_log = optarg;
			break;
		case 'y':
			p.syn = true;
			break;
		case 'r':
			rt = true;
			break;
		default:
			usage_probe();
			return EXIT_USAGE;
		}
	}
	if (!netns || !to || !targets || port <= 0 || port > 65535 || optind >= argc ||
	    (strcmp(to, "allow") && strcmp(to, "deny")) || interval_ms < 0.1 || timeout_ms < 1 ||
	    timeout_ms > 900 || settle_ms < timeout_ms || max_ms < 100 || p.confirm < 1) {
		usage_probe();
		return EXIT_USAGE;
	}
	p.to_allow = !strcmp(to, "allow");
	p.interval = (uint64_t)(interval_ms * 1e6);
	p.timeout = (uint64_t)(timeout_ms * 1e6);
	p.tick = p.interval / 8;
	p.tick = p.tick < 20000 ? 20000 : p.tick > 500000 ? 500000 : p.tick;
	rc = read_targets(&p, targets, port);
	if (rc)
		return rc;
	if (p.syn && p.n_t >= 4096) {
		fprintf(stderr, "bh_bench_propagation: --syn takes at most 4095 targets\n");
		return EXIT_USAGE;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	raise_nofile();
	if (rt) {
		/* the processes it measures must not delay its attempts, or its clock readings; the
		 * command it runs goes back to the normal policy */
		struct sched_param sp = {.sched_priority = 1};

		if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
			return fail("SCHED_FIFO");
	}
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || netns_enter(netns) < 0)
		return fail(netns);
	p.ep = epoll_create1(EPOLL_CLOEXEC);
	if (p.ep < 0)
		return fail("epoll_create1");
	if (p.syn) {
		struct sockaddr_in me;
		socklen_t len = sizeof(me);
		int rcv = 8 << 20, u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		/* the source address the kernel would pick towards the first target */
		if (u < 0 || connect(u, (struct sockaddr *)&p.t[0].addr, sizeof(p.t[0].addr)) < 0 ||
		    getsockname(u, (struct sockaddr *)&me, &len) < 0)
			return fail("source address");
		close(u);
		p.src = me.sin_addr;
		p.raw = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
		if (p.raw < 0)
			return fail("raw socket");
		setsockopt(p.raw, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
		ev.events = EPOLLIN;
		ev.data.u64 = RAW_EVENT;
		if (epoll_ctl(p.ep, EPOLL_CTL_ADD, p.raw, &ev) < 0)
			return fail("epoll_ctl raw");
		p.sport = (uint16_t)(20000 + getpid() % 40000);
	}

	/* before the change: attempts spread evenly over one interval */
	t0 = now_ns();
	for (i = 0; i < p.n_t; i++)
		p.t[i].next_send = t0 + p.interval * i / p.n_t;
	while (now_ns() < t0 + (uint64_t)(settle_ms * 1e6))
		if (step(&p))
			return EXIT_ERROR;
	for (i = 0; i < p.n_t; i++) {
		struct target *t = &p.t[i];
		size_t j, old = 0, new = 0;

		for (j = 0; j < t->n; j++) {
			old += is_old(&p, t->a[j].outcome);
			new += is_new(&p, t->a[j].outcome);
		}
		if (!old || new || t->errors) {
			fprintf(stderr,
				"bh_bench_propagation: before the change, %s (%s) showed the old "
				"verdict %zu times, the new one %zu times, errors %u\n",
				t->name, t->addr_s, old, new, t->errors);
			return EXIT_OLD_VERDICT;
		}
	}

	/* the change */
	fflush(NULL);
	t_exec = now_ns();
	pid = fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0) {
		int fd = open(cmd_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd < 0 || setns(self, CLONE_NEWNET) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execvp(argv[optind], argv + optind);
		_exit(127);
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return fail("pidfd_open");
	/* the command's exit wakes the loop like an answer (step() skips this event) */
	ev.events = EPOLLIN;
	ev.data.u64 = UINT64_MAX;
	if (epoll_ctl(p.ep, EPOLL_CTL_ADD, pidfd, &ev) < 0)
		return fail("epoll_ctl pidfd");
	deadline = t_exec + (uint64_t)(max_ms * 1e6);
	for (;;) {
		bool all_done = true;

		if (!t_ret) {
			siginfo_t si = {0};

			if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) == 0 &&
			    si.si_pid == pid) {
				t_ret = now_ns();
				status = si.si_code == CLD_EXITED ? si.si_status
								  : 128 + si.si_status;
				epoll_ctl(p.ep, EPOLL_CTL_DEL, pidfd, NULL);
			}
		}
		for (i = 0; i < p.n_t; i++)
			all_done &= p.t[i].done;
		if ((all_done && t_ret) || now_ns() >= deadline)
			break;
		if (step(&p))
			return EXIT_ERROR;
	}
	t_end = now_ns();
	if (!t_ret) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fprintf(stderr, "bh_bench_propagation: the command did not exit within %.0f ms\n",
			max_ms);
		t_ret = t_end;
		status = -1;
	}
	close(pidfd);
	printf("cmd %.1f %d\n", ((double)t_ret - (double)t_exec) / 1e3, status);
	for (i = 0; i < p.n_t; i++)
		report(&p, &p.t[i], t_exec, t_ret);
	{
		struct rusage ru;
		double cpu = 0;

		if (getrusage(RUSAGE_SELF, &ru) == 0)
			cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		printf("probe %" PRIu64 " %.3f %.3f\n", p.attempts,
		       ((double)t_end - (double)t0) / 1e9, cpu);
	}
	for (i = 0; i < p.n_t; i++) {
		size_t j;

		for (j = 0; j < p.t[i].n; j++)
			if (p.t[i].a[j].fd >= 0)
				close(p.t[i].a[j].fd);
		free(p.t[i].a);
	}
	free(p.t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "probe"))
		return cmd_probe(argc - 1, argv + 1);
	fprintf(stderr, "usage: bh_bench_propagation serve|probe ... (see the top of "
			"tests/bench/bench_propagation.c)\n");
	return EXIT_USAGE;
}
