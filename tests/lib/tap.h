/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A table-of-cases test runner. Each case is a function returning 0 (pass) or non-zero (fail),
 * printing its own diagnostics with T_FAIL(). The runner prints "ok - NAME" / "not ok - NAME" per
 * case and closes with the plain "N passed, M failed" line CI reads. Exit status 1 if any failed.
 */
#ifndef BH_TESTS_TAP_H
#define BH_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

struct t_case {
	const char *name;
	int (*fn)(void);
};

#define T_FAIL(...)                                                                                \
	do {                                                                                       \
		fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                                \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fprintf(stderr, "\n");                                                             \
		return 1;                                                                          \
	} while (0)

#define T_ASSERT(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "    %s:%d: assertion failed: %s: ", __FILE__, __LINE__,       \
				#cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* Runs the cases whose name contains filter (all if NULL). */
static inline int t_run(const struct t_case *cases, size_t n, const char *filter)
{
	int passed = 0, failed = 0;

	for (size_t i = 0; i < n; i++) {
		if (filter && !strstr(cases[i].name, filter))
			continue;
		fflush(stdout);
		if (cases[i].fn() == 0) {
			printf("ok - %s\n", cases[i].name);
			passed++;
		} else {
			printf("not ok - %s\n", cases[i].name);
			failed++;
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif
