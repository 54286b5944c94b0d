/*
 * log.h - one line per event, to stderr or syslog.
 *
 * Severity ladder (STYLE §3): log_info for events, log_warn/log_warnx for what
 * a peer or the environment caused, fatal/fatalx only at start-up or reload
 * (exits with a sysexits code), panic for a broken invariant of our own.
 * log_warn and fatal append strerror(errno); the -x forms do not.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef SMTPGATE_LIB_LOG_H
#define SMTPGATE_LIB_LOG_H

#include <stdbool.h>

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
};

void	log_init(enum log_target target, const char *ident);
void	log_set_debug(bool on);
/* This thread's lines from log_hold to log_release go out in one write
 * (stderr only): the lines of one event together, one system call. */
void	log_hold(void);
void	log_release(void);
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	fatal(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));
void	fatalx(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));
void	panic(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
