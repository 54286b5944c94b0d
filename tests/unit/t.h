/*
 * t.h - the unit-test harness: each TEST is a function; CHECK records a
 * failure with its file and line and the test goes on. Output is one
 * "ok - name" or "not ok - name" line per test, which tests/run.sh counts.
 */
#ifndef SMTPGATE_TEST_T_H
#define SMTPGATE_TEST_T_H

#include <stdio.h>
#include <string.h>

static int t_failed_checks;
static int t_passed, t_failed;

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",		\
		    __FILE__, __LINE__, #cond);				\
		t_failed_checks++;					\
	}								\
} while (0)

#define CHECK_STR(a, b) do {						\
	const char *t_a = (a), *t_b = (b);				\
	if (t_a == NULL || t_b == NULL || strcmp(t_a, t_b) != 0) {	\
		fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n",		\
		    __FILE__, __LINE__, t_a ? t_a : "(null)",		\
		    t_b ? t_b : "(null)");				\
		t_failed_checks++;					\
	}								\
} while (0)

#define CHECK_INT(a, b) do {						\
	long long t_a = (long long)(a), t_b = (long long)(b);		\
	if (t_a != t_b) {						\
		fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n",	\
		    __FILE__, __LINE__, #a, t_a, t_b);			\
		t_failed_checks++;					\
	}								\
} while (0)

static inline void
t_run(const char *name, void (*fn)(void))
{
	t_failed_checks = 0;
	fn();
	if (t_failed_checks) {
		printf("not ok - %s\n", name);
		t_failed++;
	} else {
		printf("ok - %s\n", name);
		t_passed++;
	}
	fflush(stdout);
}

#define RUN(fn) t_run(#fn, fn)
#define T_EXIT() return t_failed ? 1 : 0

#endif
