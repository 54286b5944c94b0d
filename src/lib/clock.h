/*
 * clock.h - a cheap monotonic clock for answers kept a moment (caches
 * with a time to live).
 */
#ifndef SMTPGATE_LIB_CLOCK_H
#define SMTPGATE_LIB_CLOCK_H

/* Milliseconds of CLOCK_MONOTONIC_COARSE (read without a system call,
 * a few milliseconds coarse); never 0, so that 0 can mean "never". */
long long	clock_ms(void);

#endif
