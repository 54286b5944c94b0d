/*
 * err.h - an error text filled in by low-level code for its caller.
 *
 * Low-level code that cannot know how the problem should be reported
 * (a log line, an SMTP reply, "FILE:LINE: message") fills a caller-supplied
 * struct err instead of logging (STYLE §3).
 */
#ifndef SMTPGATE_LIB_ERR_H
#define SMTPGATE_LIB_ERR_H

struct err {
	char	msg[512];
	int	errnum;		/* errno of the failure, 0 if none */
};

void	err_clear(struct err *e);
/* Sets the message. Returns -1 so that callers can `return err_set(...)`. */
int	err_set(struct err *e, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Same, with ": strerror(errno)" appended and errnum set from errno. */
int	err_sys(struct err *e, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
