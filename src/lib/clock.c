/*
 * clock.c - a cheap monotonic clock. Layer: lib.
 */
#include "lib/clock.h"

#include <time.h>

long long
clock_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}
