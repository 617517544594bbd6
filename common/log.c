// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

#include "bulkhead/log.h"

int bh_log_level = LOG_INFO;
static const char *log_progname = "bulkhead";
static bool log_syslog;

static const char *const level_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

void bh_log_init(const char *progname, int level)
{
	const char *slash = strrchr(progname, '/');

	log_progname = slash ? slash + 1 : progname;
	bh_log_level = level;
}

void bh_log_open_syslog(void)
{
	openlog(log_progname, LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

int bh_log_level_parse(const char *name)
{
	if (name[0] >= '0' && name[0] <= '7' && name[1] == '\0')
		return name[0] - '0';
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcmp(name, "error") == 0)
		return LOG_ERR;
	if (strcmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

static void log_vemit(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_vemit(int level, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* Callers and libbpf may or may not end with a newline: normalise to none. */
	while (n > 0 && (size_t)n < sizeof(line) && line[n - 1] == '\n')
		line[--n] = '\0';
	if (log_syslog) {
		syslog(level, "%s", line);
		return;
	}
	fprintf(stderr, "%s: %s: %s\n", log_progname, level_names[level & 7], line);
}

void bh_log_emit(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level lvl, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static int libbpf_print(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
	int level = lvl == LIBBPF_WARN ? LOG_WARNING : LOG_DEBUG;
	char line[2048];

	/* libbpf's info lines are chatter at our level of abstraction: they show with debug. */
	if (level > bh_log_level)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* bpf_tc_hook_create() on an interface that already has clsact says so through netlink;
	 * the caller gets -EEXIST and expects it. */
	if (strstr(line, "Exclusivity flag on"))
		level = LOG_DEBUG;
	bh_log(level, "%s", line);
	return 0;
}

void bh_log_route_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
