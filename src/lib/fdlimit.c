/*
 * fdlimit.c - the open-files limit. Layer: lib.
 */
#include "lib/fdlimit.h"

#include <sys/resource.h>

static unsigned long
capped(rlim_t v)
{
	return v == RLIM_INFINITY || v > FDLIMIT_CAP ? FDLIMIT_CAP :
	    (unsigned long)v;
}

unsigned long
fdlimit_current(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return FDLIMIT_CAP;
	return capped(rl.rlim_cur);
}

unsigned long
fdlimit_raise(unsigned long *was)
{
	struct rlimit rl;
	unsigned long want;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return *was = FDLIMIT_CAP;
	*was = capped(rl.rlim_cur);
	want = capped(rl.rlim_max);
	if (want <= *was)
		return *was;
	rl.rlim_cur = (rlim_t)want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		return *was;
	return want;
}
