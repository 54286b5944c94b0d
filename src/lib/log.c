/*
 * log.c - the log sink. Layer: lib. Owns the log target chosen at start-up
 * (one of the few globals, set once before threads start). Never allocates
 * on the heap, so it can report out-of-memory and run in any thread.
 */
#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_target log_target = LOG_TARGET_STDERR;
static const char *log_ident = "smtpgate";
static bool log_debug_on;
static pid_t log_pid;	/* set by log_init: one getpid, not one a line */
/* log_hold: this thread's lines gathered for one write(2) */
static __thread bool log_is_held;
static __thread char log_held[8192];
static __thread size_t log_nheld;

static void
flush_held(void)
{
	if (log_nheld > 0)
		(void)!write(STDERR_FILENO, log_held, log_nheld);
	log_nheld = 0;
}

void
log_init(enum log_target target, const char *ident)
{
	log_target = target;
	log_pid = getpid();
	if (ident)
		log_ident = ident;
	if (target == LOG_TARGET_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(bool on)
{
	log_debug_on = on;
}

static void
log_vemit(int prio, const char *fmt, va_list ap, int errnum)
{
	char line[4096];
	size_t n = 0;
	int r;

	if (log_target == LOG_TARGET_STDERR) {
		struct timeval tv;
		struct tm tm;

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof(line) - n, ".%03dZ %s[%d]: ",
		    (int)(tv.tv_usec / 1000), log_ident,
		    (int)(log_pid ? log_pid : getpid()));
		if (r > 0)
			n += (size_t)r;
	}
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n = n + (size_t)r < sizeof(line) ? n + (size_t)r : sizeof(line) - 1;
	if (errnum && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(errnum));
		if (r > 0)
			n = n + (size_t)r < sizeof(line) ? n + (size_t)r
			    : sizeof(line) - 1;
	}
	/* Escape control characters a peer may have smuggled into the text. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	if (log_target == LOG_TARGET_SYSLOG) {
		line[n] = '\0';
		syslog(prio, "%s", line);
		return;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* what ends the process goes out at once, after what came before */
	if (log_is_held && (log_nheld + n > sizeof(log_held) ||
	    prio <= LOG_ERR))
		flush_held();
	if (log_is_held && prio > LOG_ERR) {
		memcpy(log_held + log_nheld, line, n);
		log_nheld += n;
		return;
	}
	(void)!write(STDERR_FILENO, line, n);
}

void
log_hold(void)
{
	log_is_held = true;
}

void
log_release(void)
{
	flush_held();
	log_is_held = false;
}

#define LOG_BODY(prio, errnum) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vemit(prio, fmt, ap, errnum);	\
	va_end(ap);				\
} while (0)

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	LOG_BODY(LOG_DEBUG, 0);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;

	LOG_BODY(LOG_WARNING, saved);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, 0);
}

void
fatal(int code, const char *fmt, ...)
{
	int saved = errno;

	LOG_BODY(LOG_CRIT, saved);
	exit(code);
}

void
fatalx(int code, const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	exit(code);
}

void
panic(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	abort();
}
