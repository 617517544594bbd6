// SPDX-License-Identifier: Apache-2.0
/*
 * bh_bench_flowgen: the traffic end of tests/bench/agent_cpu.sh (the agent CPU benchmark).
 *
 * Sends UDP packets at a steady rate, every one of them opening a new flow for the node's
 * datapath: a 5-tuple it has not seen for a long while, so each is a conntrack miss, a policy
 * decision, a conntrack insert and a count on the flow counter of its key. Which keys those are
 * is the point of the two ways the benchmark runs it:
 *
 *   new connections   a few sources and destination ports (--src, --ports): new 5-tuples by the
 *                     source port, all counted on a handful of flow keys (the key has no source
 *                     port), so the agent drains a handful of summaries per interval
 *   new flow keys     sources that map to distinct identities times a range of destination ports,
 *                     each key visited once per sweep: every packet counts on a key the agent
 *                     drained since (or never saw), so it drains rate x interval summaries
 *
 * Packet i goes to combination c = i mod (sources x ports) (the port varies fastest), from source
 * port --sport LO + (i / combinations) mod the --sport range: with S x P combinations and N source
 * ports a 5-tuple comes back after S x P x N packets (4 x 4 x 64512: 103 s at 10,000/s).
 *
 * The packets are built whole (IPv4 + UDP, 16 bytes of payload, no UDP checksum) and sent through
 * a raw socket with sendmmsg(): the source port of a UDP socket is fixed, and a socket per flow
 * would cost the generator more than the datapath it drives. Pacing: every --tick-us (default
 * 1000) it sends what the rate owes since the start, so it catches up after a late wake-up; more
 * than a second behind, it drops the debt (counted as "behind") rather than send a burst.
 *
 *   bh_bench_flowgen --dst ADDR --src ADDR[,ADDR...] --ports LO[-HI] [--sport LO-HI]
 *                    [--rate N] [--seconds S] [--tick-us US]
 *
 * Run it inside the client's namespace (ip netns exec). SIGINT or SIGTERM end the run early, with
 * the figures. Output (stdout), one "key value" a line:
 *   sent N, seconds T (first to last send), rate N/T, min_1s (fewest packets in a whole second
 *   of the run), max_1s, behind (seconds in which the pacer fell over a second behind), errors
 *   (failed sends), combinations, cpu (this process's user + system seconds: the packets' trip
 *   through the veth, the bridge and the node's datapath runs mostly in its context)
 * exit status: 0 done, 1 nothing could be sent, 2 usage, 3 any other error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SRC	    64	 /* source addresses */
#define MAX_BATCH   256	 /* packets in one sendmmsg() */
#define MAX_SECONDS 3600 /* a run is bounded, and so is the per-second table */
#define PAYLOAD	    16	 /* bytes of UDP payload */

struct pkt {
	uint8_t ver_ihl, tos;
	uint16_t tot_len, id, frag_off;
	uint8_t ttl, proto;
	uint16_t check;
	uint32_t saddr, daddr;
	uint16_t sport, dport, ulen, ucheck;
	uint8_t payload[PAYLOAD];
} __attribute__((packed));
_Static_assert(sizeof(struct pkt) == 20 + 8 + PAYLOAD, "pkt layout");

struct gen {
	struct in_addr dst, src[MAX_SRC];
	unsigned int nsrc;
	unsigned int port_lo, nports, sport_lo, nsports;
	uint64_t rate, seconds, tick_ns;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char usage_text[] =
	"usage: bh_bench_flowgen --dst ADDR --src ADDR[,ADDR...] --ports LO[-HI] [--sport LO-HI]\n"
	"                        [--rate N] [--seconds S] [--tick-us US]\n"
	"\n"
	"Sends UDP packets to ADDR at N a second (default 10000) for S seconds (default 30), each\n"
	"a new 5-tuple: sources x destination ports rotate (the port fastest), the source port\n"
	"(default 1024-65535) advances once per sweep. Run it inside the client's namespace.\n"
	"Prints sent, seconds, rate, min_1s, max_1s, behind, errors, combinations and cpu.\n"
	"exit status: 0 done, 1 nothing could be sent, 2 usage error, 3 any other error.\n";

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Says what is wrong (fmt, if not NULL) and how to call: the exit status of a usage error. */
static int usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fprintf(stderr, "bh_bench_flowgen: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
	}
	fputs(usage_text, stderr);
	return 2;
}

/* "LO" or "LO-HI" within 1..65535: *lo and the count of ports. */
static int parse_range(const char *s, unsigned int *lo, unsigned int *n)
{
	unsigned long a, b;
	char *end;

	errno = 0;
	a = strtoul(s, &end, 10);
	b = a;
	if (*end == '-')
		b = strtoul(end + 1, &end, 10);
	if (errno || *end || end == s || a < 1 || b > 65535 || b < a)
		return -EINVAL;
	*lo = (unsigned int)a;
	*n = (unsigned int)(b - a + 1);
	return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_sources(struct gen *g, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (g->nsrc == MAX_SRC || inet_pton(AF_INET, tok, &g->src[g->nsrc]) != 1) {
			rc = -EINVAL;
			break;
		}
		g->nsrc++;
	}
	free(copy);
	return rc ? rc : g->nsrc ? 0 : -EINVAL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* Writes packet number i of the sequence (see the top) into p. */
static void pkt_fill(const struct gen *g, uint64_t i, struct pkt *p)
{
	uint64_t comb = (uint64_t)g->nsrc * g->nports, c = i % comb;

	p->saddr = g->src[c / g->nports].s_addr;
	p->dport = htons((uint16_t)(g->port_lo + c % g->nports));
	p->sport = htons((uint16_t)(g->sport_lo + (i / comb) % g->nsports));
	memcpy(p->payload, &i, sizeof(i));
}

static int run(const struct gen *g)
{
	static struct pkt pkts[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	static uint64_t per_s[MAX_SECONDS + 1];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = g->dst};
	uint64_t sent = 0, errors = 0, behind = 0, owed_base = 0, t0, t_end, t_last = 0, next;
	uint64_t min_1s = UINT64_MAX, max_1s = 0, full_s;
	double cpu0;
	int fd, rc = 0;

	/* IPPROTO_RAW: the header is ours (IP_HDRINCL); the kernel fills the IP id and checksum */
	fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0) {
		fprintf(stderr, "bh_bench_flowgen: raw socket: %s\n", strerror(errno));
		return 3;
	}
	for (int k = 0; k < MAX_BATCH; k++) {
		pkts[k] = (struct pkt){
			.ver_ihl = 0x45,
			.tot_len = htons(sizeof(struct pkt)),
			.ttl = 64,
			.proto = IPPROTO_UDP,
			.daddr = g->dst.s_addr,
			.ulen = htons(8 + PAYLOAD),
		};
		iov[k] = (struct iovec){.iov_base = &pkts[k], .iov_len = sizeof(pkts[k])};
		msgs[k].msg_hdr = (struct msghdr){.msg_name = &to,
						  .msg_namelen = sizeof(to),
						  .msg_iov = &iov[k],
						  .msg_iovlen = 1};
	}
	cpu0 = cpu_seconds();
	t0 = now_ns();
	t_end = t0 + g->seconds * 1000000000ull;
	next = t0;
	while (!stop) {
		uint64_t now = now_ns(), due;

		if (now >= t_end)
			break;
		/* what the rate owes since the start (less any debt given up) */
		due = (uint64_t)((double)(now - t0) * (double)g->rate / 1e9) - owed_base;
		if (due > sent + errors + g->rate) {
			behind++;
			owed_base += due - (sent + errors);
			due = sent + errors;
		}
		/* a failed send uses up its packet: the pacing counts attempts */
		while (due > sent + errors && !stop) {
			uint64_t left = due - (sent + errors);
			unsigned int n = left > MAX_BATCH ? MAX_BATCH : (unsigned int)left;
			int k;

			for (unsigned int j = 0; j < n; j++)
				pkt_fill(g, sent + errors + j, &pkts[j]);
			k = sendmmsg(fd, msgs, n, 0);
			if (k < 0) {
				if (errno == EINTR)
					continue;
				/* ENOBUFS and the like: this packet is lost, not the next */
				errors++;
				if (errors > 1000 && !sent) {
					fprintf(stderr, "bh_bench_flowgen: sendmmsg: %s\n",
						strerror(errno));
					rc = 1;
					goto out;
				}
				continue;
			}
			sent += (uint64_t)k;
			t_last = now_ns();
			per_s[(t_last - t0) / 1000000000ull > MAX_SECONDS
				      ? MAX_SECONDS
				      : (t_last - t0) / 1000000000ull] += (uint64_t)k;
		}
		next += g->tick_ns;
		if (next < now)
			next = now + g->tick_ns;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
				&(struct timespec){.tv_sec = (time_t)(next / 1000000000ull),
						   .tv_nsec = (long)(next % 1000000000ull)},
				NULL);
	}
	/* whole seconds of the run only: the last one is cut short */
	full_s = t_last > t0 ? (t_last - t0) / 1000000000ull : 0;
	for (uint64_t s = 0; s < full_s && s < MAX_SECONDS; s++) {
		if (per_s[s] < min_1s)
			min_1s = per_s[s];
		if (per_s[s] > max_1s)
			max_1s = per_s[s];
	}
	{
		double secs = t_last > t0 ? (double)(t_last - t0) / 1e9 : 0;

		printf("sent %" PRIu64 "\nseconds %.3f\nrate %.0f\nmin_1s %" PRIu64
		       "\nmax_1s %" PRIu64 "\nbehind %" PRIu64 "\nerrors %" PRIu64
		       "\ncombinations %" PRIu64 "\ncpu %.3f\n",
		       sent, secs, secs > 0 ? (double)sent / secs : 0.0,
		       min_1s == UINT64_MAX ? 0 : min_1s, max_1s, behind, errors,
		       (uint64_t)g->nsrc * g->nports, cpu_seconds() - cpu0);
	}
	if (!sent)
		rc = 1;
out:
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dst", required_argument, NULL, 'd'},
		{"src", required_argument, NULL, 's'},
		{"ports", required_argument, NULL, 'p'},
		{"sport", required_argument, NULL, 'P'},
		{"rate", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 't'},
		{"tick-us", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gen g = {.sport_lo = 1024,
			.nsports = 65535 - 1024 + 1,
			.rate = 10000,
			.seconds = 30,
			.tick_ns = 1000000};
	bool have_dst = false;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (inet_pton(AF_INET, optarg, &g.dst) != 1)
				return usage("--dst \"%s\": want an IPv4 address", optarg);
			have_dst = true;
			break;
		case 's':
			if (parse_sources(&g, optarg))
				return usage("--src \"%s\": want 1 to 64 IPv4 addresses, "
					     "comma-separated",
					     optarg);
			break;
		case 'p':
			if (parse_range(optarg, &g.port_lo, &g.nports))
				return usage("--ports \"%s\": want PORT or LO-HI within 1-65535",
					     optarg);
			break;
		case 'P':
			if (parse_range(optarg, &g.sport_lo, &g.nsports))
				return usage("--sport \"%s\": want LO-HI within 1-65535", optarg);
			break;
		case 'r':
			if (parse_u64(optarg, 1, 10000000, &g.rate))
				return usage("--rate \"%s\": want packets a second, 1 to 10000000",
					     optarg);
			break;
		case 't':
			if (parse_u64(optarg, 1, MAX_SECONDS, &g.seconds))
				return usage("--seconds \"%s\": want 1 to 3600", optarg);
			break;
		case 'T':
			if (parse_u64(optarg, 50, 1000000, &v))
				return usage("--tick-us \"%s\": want 50 to 1000000", optarg);
			g.tick_ns = v * 1000;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage(NULL);
		}
	}
	if (optind < argc)
		return usage("unexpected argument \"%s\"", argv[optind]);
	if (!have_dst || !g.nsrc || !g.nports)
		return usage("--dst, --src and --ports are required");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	return run(&g);
}
