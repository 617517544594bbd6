// SPDX-License-Identifier: Apache-2.0
/*
 * bh_probe: the traffic end of the namespaced integration tests (netns_test.sh).
 *
 * nc and ping say "something happened"; the tests need to know exactly what got through: whether
 * a datagram came back byte for byte, whether a line sent on a connection that was opened before
 * a policy change still arrives, how many datagrams were sent. Every client mode answers with its
 * exit status, so the script can tell a policy drop (no answer: 1) from a broken test setup (an
 * error such as a refused connection: 3).
 *
 *   bh_probe serve SPEC...       listen on [::] (IPv4 too) until killed; prints "ready" once
 *                                every socket is bound. SPEC is tcp:PORT (echo every byte),
 *                                udp:PORT (echo every datagram) or sink:PORT (UDP, no reply).
 *   bh_probe tcp  [OPTS] HOST PORT          connect, send a line, expect it echoed
 *   bh_probe udp  [OPTS] HOST PORT          send a datagram (-z SIZE bytes; up to 3 tries), expect
 *                                           it echoed whole
 *   bh_probe send [OPTS] HOST PORT          send -n N datagrams, expect nothing
 *   bh_probe hold [OPTS] HOST PORT GOFILE   connect and echo one line, print "established", wait
 *                                           until GOFILE exists, send a second line: prints
 *                                           "delivered" (exit 0) or "cut" (exit 1)
 * OPTS: -s SRC (source address), -t MS (answer timeout, default 2000), -z SIZE, -n N.
 *
 * exit status: 0 answered, 1 no answer within the timeout, 2 usage, 3 any other error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_ANSWERED 0
#define EXIT_NO_ANSWER 1
#define EXIT_USAGE 2
#define EXIT_ERROR 3

#define MAX_FDS	 512
#define MAX_DGRAM 65535

struct opts {
	const char *src;
	int timeout_ms;
	size_t size;
	long count;
};

static int error_exit(const char *what)
{
	fprintf(stderr, "bh_probe: %s: %s\n", what, strerror(errno));
	return EXIT_ERROR;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills ss from a literal IPv4 or IPv6 address and port. Returns 0 or -1. */
static int make_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
	fprintf(stderr, "bh_probe: \"%s\" is not an IPv4 or IPv6 address\n", host);
	return -1;
}

/* A socket of type for host, bound to o->src when given. Returns the fd or -1 (message
 * printed). */
static int client_socket(const struct opts *o, const char *host, int port, int type,
			 struct sockaddr_storage *dst, socklen_t *dlen)
{
	struct sockaddr_storage src;
	socklen_t slen;
	int fd;

	if (make_addr(host, port, dst, dlen))
		return -1;
	fd = socket(dst->ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		error_exit("socket");
		return -1;
	}
	if (o->src) {
		if (make_addr(o->src, 0, &src, &slen) || src.ss_family != dst->ss_family) {
			fprintf(stderr, "bh_probe: source %s does not fit %s\n", o->src, host);
			close(fd);
			return -1;
		}
		if (bind(fd, (struct sockaddr *)&src, slen) < 0) {
			error_exit("bind source");
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* Waits until fd is ready for events or deadline (ms, monotonic) passes. Returns 1 ready,
 * 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		long long left = deadline - now_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* ---- TCP ----------------------------------------------------------------------------------- */

/* Connects within timeout_ms. Returns the fd, -1 on timeout, -2 on error (message printed). */
static int tcp_connect(const struct opts *o, const char *host, int port)
{
	struct sockaddr_storage dst;
	socklen_t dlen, elen = sizeof(int);
	int fd, rc, soerr = 0;

	fd = client_socket(o, host, port, SOCK_STREAM | SOCK_NONBLOCK, &dst, &dlen);
	if (fd < 0)
		return -2;
	if (connect(fd, (struct sockaddr *)&dst, dlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		error_exit("connect");
		close(fd);
		return -2;
	}
	rc = wait_fd(fd, POLLOUT, now_ms() + o->timeout_ms);
	if (rc <= 0) {
		close(fd);
		return rc == 0 ? -1 : -2;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen);
	if (soerr) {
		errno = soerr;
		/* A SYN dropped by policy times out (handled above). A refusal or unreachable
		 * route means the test set-up is wrong, which must not pass for "denied". */
		error_exit("connect");
		close(fd);
		return -2;
	}
	return fd;
}

/* Sends line and reads it back within timeout_ms. Returns EXIT_ANSWERED, EXIT_NO_ANSWER or
 * EXIT_ERROR. */
static int tcp_echo(int fd, const char *line, int timeout_ms)
{
	size_t len = strlen(line), got = 0;
	long long deadline = now_ms() + timeout_ms;
	char buf[256];

	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
		return error_exit("send");
	while (got < len) {
		int rc = wait_fd(fd, POLLIN, deadline);
		ssize_t n;

		if (rc == 0)
			return EXIT_NO_ANSWER;
		if (rc < 0)
			return error_exit("poll");
		n = recv(fd, buf + got, len - got, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return error_exit("recv");
		if (n == 0) {
			fprintf(stderr, "bh_probe: connection closed by the peer\n");
			return EXIT_ERROR;
		}
		got += (size_t)n;
	}
	if (memcmp(buf, line, len) != 0) {
		fprintf(stderr, "bh_probe: echo differs from what was sent\n");
		return EXIT_ERROR;
	}
	return EXIT_ANSWERED;
}

static int run_tcp(const struct opts *o, const char *host, int port)
{
	char line[64];
	int fd, rc;

	fd = tcp_connect(o, host, port);
	if (fd == -1)
		return EXIT_NO_ANSWER;
	if (fd < 0)
		return EXIT_ERROR;
	snprintf(line, sizeof(line), "bh_probe %d %ld\n", (int)getpid(), (long)now_ms());
	rc = tcp_echo(fd, line, o->timeout_ms);
	close(fd);
	return rc;
}

static int run_hold(const struct opts *o, const char *host, int port, const char *gofile)
{
	long long deadline;
	struct stat st;
	int fd, rc;

	fd = tcp_connect(o, host, port);
	if (fd == -1) {
		printf("no-connection\n");
		return EXIT_ERROR;
	}
	if (fd < 0)
		return EXIT_ERROR;
	rc = tcp_echo(fd, "before the change\n", o->timeout_ms);
	if (rc != EXIT_ANSWERED) {
		printf("no-echo\n");
		close(fd);
		return EXIT_ERROR;
	}
	printf("established\n");
	fflush(stdout);
	/* The test applies its change, then creates gofile. Bounded, so a dead test frees us. */
	deadline = now_ms() + 60000;
	while (stat(gofile, &st) < 0) {
		if (now_ms() > deadline) {
			printf("no-go\n");
			close(fd);
			return EXIT_ERROR;
		}
		usleep(20000);
	}
	rc = tcp_echo(fd, "after the change\n", o->timeout_ms);
	close(fd);
	if (rc == EXIT_ANSWERED)
		printf("delivered\n");
	else if (rc == EXIT_NO_ANSWER)
		printf("cut\n");
	return rc;
}

/* ---- UDP ----------------------------------------------------------------------------------- */

static void fill_payload(unsigned char *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(seed + i * 7);
}

static int run_udp(const struct opts *o, const char *host, int port)
{
	static unsigned char out[MAX_DGRAM], in[MAX_DGRAM];
	struct sockaddr_storage dst;
	socklen_t dlen;
	int fd, rc = EXIT_NO_ANSWER;

	fd = client_socket(o, host, port, SOCK_DGRAM | SOCK_NONBLOCK, &dst, &dlen);
	if (fd < 0)
		return EXIT_ERROR;
	if (connect(fd, (struct sockaddr *)&dst, dlen) < 0) {
		close(fd);
		return error_exit("connect");
	}
	/* A datagram may be lost for reasons that are not policy (a neighbour entry still being
	 * resolved): try three times within the timeout, with the same payload, so that a late
	 * echo of any attempt counts as an answer. */
	fill_payload(out, o->size, (unsigned int)getpid());
	for (int attempt = 0; attempt < 3 && rc == EXIT_NO_ANSWER; attempt++) {
		long long deadline = now_ms() + o->timeout_ms / 3;
		ssize_t n;

		if (send(fd, out, o->size, 0) != (ssize_t)o->size) {
			rc = error_exit("send");
			break;
		}
		while (rc == EXIT_NO_ANSWER) {
			int w = wait_fd(fd, POLLIN, deadline);

			if (w == 0)
				break;
			if (w < 0) {
				rc = error_exit("poll");
				break;
			}
			n = recv(fd, in, sizeof(in), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				/* ECONNREFUSED: an ICMP port unreachable came back, so nothing
				 * listens there: a broken set-up, not a policy drop. */
				rc = error_exit("recv");
				break;
			}
			if ((size_t)n == o->size && memcmp(in, out, o->size) == 0)
				rc = EXIT_ANSWERED;
			/* else not our datagram: keep waiting */
		}
	}
	close(fd);
	return rc;
}

static int run_send(const struct opts *o, const char *host, int port)
{
	static unsigned char out[MAX_DGRAM];
	struct sockaddr_storage dst;
	socklen_t dlen;
	int fd;

	fd = client_socket(o, host, port, SOCK_DGRAM, &dst, &dlen);
	if (fd < 0)
		return EXIT_ERROR;
	fill_payload(out, o->size, 1);
	for (long i = 0; i < o->count; i++) {
		if (sendto(fd, out, o->size, 0, (struct sockaddr *)&dst, dlen) !=
		    (ssize_t)o->size) {
			close(fd);
			return error_exit("sendto");
		}
	}
	close(fd);
	return EXIT_ANSWERED;
}

/* ---- server -------------------------------------------------------------------------------- */

enum kind { K_TCP_LISTEN, K_TCP_CONN, K_UDP_ECHO, K_UDP_SINK };

static int listen_on(const char *spec, struct pollfd *pfd, enum kind *kind)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	const char *colon = strchr(spec, ':');
	int zero = 0, one = 1, port, fd, type;
	char *end;

	if (!colon)
		goto bad;
	port = (int)strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		goto bad;
	if (strncmp(spec, "tcp:", 4) == 0) {
		*kind = K_TCP_LISTEN;
		type = SOCK_STREAM;
	} else if (strncmp(spec, "udp:", 4) == 0) {
		*kind = K_UDP_ECHO;
		type = SOCK_DGRAM;
	} else if (strncmp(spec, "sink:", 5) == 0) {
		*kind = K_UDP_SINK;
		type = SOCK_DGRAM;
	} else {
		goto bad;
	}
	fd = socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_exit("socket");
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin6_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "bh_probe: bind %s: %s\n", spec, strerror(errno));
		close(fd);
		return EXIT_ERROR;
	}
	if (type == SOCK_STREAM && listen(fd, 64) < 0) {
		close(fd);
		return error_exit("listen");
	}
	pfd->fd = fd;
	pfd->events = POLLIN;
	return 0;
bad:
	fprintf(stderr, "bh_probe: \"%s\": want tcp:PORT, udp:PORT or sink:PORT\n", spec);
	return EXIT_USAGE;
}

static int run_serve(int nspec, char **spec)
{
	static unsigned char buf[MAX_DGRAM];
	static struct pollfd pfd[MAX_FDS];
	static enum kind kind[MAX_FDS];
	int n = 0, rc;

	if (nspec < 1 || nspec > MAX_FDS / 2) {
		fprintf(stderr, "bh_probe: serve wants 1 to %d SPECs\n", MAX_FDS / 2);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < nspec; i++) {
		rc = listen_on(spec[i], &pfd[n], &kind[n]);
		if (rc)
			return rc;
		n++;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return error_exit("poll");
		}
		for (int i = 0; i < n; i++) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			ssize_t got;
			int c;

			if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			switch (kind[i]) {
			case K_TCP_LISTEN:
				c = accept4(pfd[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (c < 0)
					break;
				if (n == MAX_FDS) {
					close(c);
					break;
				}
				pfd[n].fd = c;
				pfd[n].events = POLLIN;
				pfd[n].revents = 0;
				kind[n++] = K_TCP_CONN;
				break;
			case K_TCP_CONN:
				got = recv(pfd[i].fd, buf, sizeof(buf), 0);
				if (got > 0) {
					/* Small lines on an idle socket: the send buffer has room. */
					send(pfd[i].fd, buf, (size_t)got, MSG_NOSIGNAL);
					break;
				}
				if (got < 0 && (errno == EAGAIN || errno == EINTR))
					break;
				close(pfd[i].fd);
				pfd[i] = pfd[n - 1];
				kind[i] = kind[n - 1];
				n--;
				i--;
				break;
			case K_UDP_ECHO:
			case K_UDP_SINK:
				got = recvfrom(pfd[i].fd, buf, sizeof(buf), 0,
					       (struct sockaddr *)&peer, &plen);
				if (got >= 0 && kind[i] == K_UDP_ECHO)
					sendto(pfd[i].fd, buf, (size_t)got, 0,
					       (struct sockaddr *)&peer, plen);
				break;
			}
		}
	}
}

/* ---- main ---------------------------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr,
		"usage: bh_probe serve tcp:PORT|udp:PORT|sink:PORT...\n"
		"       bh_probe tcp|udp|send [-s SRC] [-t MS] [-z SIZE] [-n N] HOST PORT\n"
		"       bh_probe hold [-s SRC] [-t MS] HOST PORT GOFILE\n");
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct opts o = {.timeout_ms = 2000, .size = 64, .count = 1};
	const char *mode;
	int opt, port;
	char *end;

	if (argc < 2)
		return usage();
	mode = argv[1];
	if (strcmp(mode, "serve") == 0)
		return run_serve(argc - 2, argv + 2);
	optind = 2;
	while ((opt = getopt(argc, argv, "s:t:z:n:")) != -1) {
		switch (opt) {
		case 's':
			o.src = optarg;
			break;
		case 't':
			o.timeout_ms = atoi(optarg);
			if (o.timeout_ms < 1)
				return usage();
			break;
		case 'z':
			o.size = (size_t)atol(optarg);
			if (o.size < 1 || o.size > MAX_DGRAM - 48)
				return usage();
			break;
		case 'n':
			o.count = atol(optarg);
			if (o.count < 1)
				return usage();
			break;
		default:
			return usage();
		}
	}
	if (argc - optind < 2)
		return usage();
	port = (int)strtol(argv[optind + 1], &end, 10);
	if (*end || port < 1 || port > 65535)
		return usage();
	if (strcmp(mode, "tcp") == 0 && argc - optind == 2)
		return run_tcp(&o, argv[optind], port);
	if (strcmp(mode, "udp") == 0 && argc - optind == 2)
		return run_udp(&o, argv[optind], port);
	if (strcmp(mode, "send") == 0 && argc - optind == 2)
		return run_send(&o, argv[optind], port);
	if (strcmp(mode, "hold") == 0 && argc - optind == 3)
		return run_hold(&o, argv[optind], port, argv[optind + 2]);
	return usage();
}
