// SPDX-License-Identifier: Apache-2.0
/* Timing, statistics, namespaces, child processes and result rows for bh_bench. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_sort(double *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), dbl_cmp);
}

double bench_pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)((double)n * p);

	return n ? v[k < n ? k : n - 1] : 0;
}

static unsigned int alarm_s;
static char alarm_msg[200];

static void on_alarm(int sig)
{
	ssize_t w;

	(void)sig;
	w = write(1, alarm_msg, strlen(alarm_msg)); /* async-signal-safe */
	(void)w;
	_exit(4);
}

void bench_phase(const char *what)
{
	snprintf(alarm_msg, sizeof(alarm_msg), "NOTE|STOPPED by the %u s time limit during: %s\n",
		 alarm_s, what);
	bench_log("%s", what);
}

void bench_alarm(unsigned int secs)
{
	alarm_s = secs;
	signal(SIGALRM, on_alarm);
	alarm(secs);
}

int bench_netns_open(const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		bench_log("network namespace %s: %s", path, strerror(errno));
		return -errno;
	}
	return fd;
}

int bench_spawn(int ns_fd, const char *in_path, char *const argv[], bool keep_stdout,
		uint64_t *elapsed_ns)
{
	uint64_t t0 = bench_now_ns();
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);

		if (in < 0 || dup2(in, 0) < 0)
			_exit(126);
		if (!keep_stdout)
			dup2(2, 1);
		if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (elapsed_ns)
		*elapsed_ns = bench_now_ns() - t0;
	if (!WIFEXITED(status))
		return -EINTR;
	if (WEXITSTATUS(status) == 127)
		bench_log("could not run %s", argv[0]);
	return WEXITSTATUS(status);
}

int bench_private_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		bench_log("unshare(CLONE_NEWNET): %s", strerror(errno));
		return -errno;
	}
	return 0;
}

const char *bench_node(char *buf, size_t len, const char *run_id, const char *what)
{
	snprintf(buf, len, "bench-%s-%s", run_id, what);
	return buf;
}

void bench_row(const char *sec, const char *name, const char *value, const char *baseline,
	       const char *ratio, const char *target, const char *verdict)
{
	printf("ROW|%s|%s|%s|%s|%s|%s|%s\n", sec, name, value, baseline, ratio, target, verdict);
	fflush(stdout);
}

const char *bench_fmt(const char *fmt, ...)
{
	static char ring[16][160];
	static unsigned int next;
	char *buf = ring[next++ % 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(ring[0]), fmt, ap);
	va_end(ap);
	return buf;
}

void bench_log(const char *fmt, ...)
{
	va_list ap;

	fputs("bh_bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

long bench_listen_drops(void)
{
	FILE *f = fopen("/proc/net/netstat", "r");
	char names[4096], vals[4096];
	long total = -1;

	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) && fgets(vals, sizeof(vals), f)) {
		char *sn, *sv, *n, *v;

		if (strncmp(names, "TcpExt:", 7) != 0)
			continue;
		total = 0;
		n = strtok_r(names, " \n", &sn);
		v = strtok_r(vals, " \n", &sv);
		while (n && v) {
			if (!strcmp(n, "ListenOverflows") || !strcmp(n, "ListenDrops"))
				total += atol(v);
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
	}
	fclose(f);
	return total;
}
