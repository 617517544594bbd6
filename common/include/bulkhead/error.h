/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BULKHEAD_ERROR_H
#define BULKHEAD_ERROR_H

#include <stddef.h>

/*
 * Errors are negative errno values (0 is success). Where a caller needs to tell a person what went
 * wrong, the failing function also fills a struct bh_error with a message that names the cause and
 * the bad value ("policy map is full (4096 entries): raise --policy-max").
 */
struct bh_error {
	int code;	/* negative errno, 0 when nothing failed */
	char msg[512];	/* human-readable cause, "" when nothing failed */
};

/* Records code and message in err (which may be NULL) and returns code, so that callers can write
 * `return bh_error_set(err, -EINVAL, "...")`. If err already holds an error it is kept: the first
 * cause is the one worth reading. */
int bh_error_set(struct bh_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clears err (which may be NULL). */
void bh_error_clear(struct bh_error *err);

/* strerror() for a negative errno. Never fails; the string is static. */
const char *bh_strerror(int code);

#endif
