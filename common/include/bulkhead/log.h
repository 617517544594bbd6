/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BULKHEAD_LOG_H
#define BULKHEAD_LOG_H

#include <stdbool.h>
#include <syslog.h>

/*
 * Logging with syslog levels (LOG_ERR .. LOG_DEBUG). Messages go to stderr, prefixed with the
 * program name and level, or to syslog once bh_log_open_syslog() was called. The level check
 * happens before any formatting, so a disabled debug line costs one comparison.
 */

extern int bh_log_level;

/* Sets the program name used as prefix (and syslog ident). Never fails. */
void bh_log_init(const char *progname, int level);

/* Sends further messages to syslog(3) instead of stderr. Never fails. */
void bh_log_open_syslog(void);

/* Parses "err", "warning", "notice", "info", "debug" (or a digit 0-7). Returns -1 if unknown. */
int bh_log_level_parse(const char *name);

/* Formats and emits one message; use bh_log(), which skips the call when level is filtered. */
void bh_log_emit(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Routes libbpf's own messages into bh_log (warnings as LOG_WARNING, debug as LOG_DEBUG). */
void bh_log_route_libbpf(void);

#define bh_log(level, ...)                                                                         \
	do {                                                                                       \
		if ((level) <= bh_log_level)                                                       \
			bh_log_emit((level), __VA_ARGS__);                                         \
	} while (0)

#endif
