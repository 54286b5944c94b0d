/*
 * bounce.h - queues delivery status notifications (mail/dsn.c builds the
 * text) as new messages from the null sender: bounces, delay warnings,
 * and double bounces to the postmaster.
 */
#ifndef SMTPGATE_GATE_BOUNCE_H
#define SMTPGATE_GATE_BOUNCE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "mail/dsn.h"

struct envelope;
struct err;
struct runtime;
struct spool;

/*
 * Queues a notification of kind about the recipients rr[0..n) of message
 * id (envelope env; its data at fd+off, from which the header section is
 * read). It goes to env->sender, or to the postmaster when env->sender is
 * the null sender (a double bounce). The new message's id is written to
 * new_id (SPOOL_ID_LEN+1 bytes). Returns 0, or -1 with e filled.
 */
int	bounce_queue(struct spool *sp, const struct runtime *rt,
	    const char *id, const struct envelope *env, int fd, off_t off,
	    enum dsn_kind kind, const struct dsn_rcpt *rr, size_t n,
	    time_t retry_until, char *new_id, struct err *e);

/* The proto of a notification to the postmaster (a bounce that failed). */
#define BOUNCE_PROTO_POSTMASTER	"postmaster-notice"

#endif
