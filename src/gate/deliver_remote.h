/*
 * deliver_remote.h - outbound delivery: to the mail routing host
 * (relay_host), to the MX hosts of the recipient's domain (RFC 5321 §5.1,
 * null MX RFC 7505), or over LMTP to the mailbox server (lmtp_host).
 *
 * The queue manager submits jobs (one message, several recipients of one
 * destination); this module finds the hosts, connects, and runs the SMTP /
 * LMTP client engine, keeping at most delivery_concurrency connections per
 * destination and reusing an idle connection for the next message. It
 * reports one result per recipient and never decides defer or bounce.
 */
#ifndef SMTPGATE_GATE_DELIVER_REMOTE_H
#define SMTPGATE_GATE_DELIVER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct dns;
struct event_base;
struct runtime;

/* Where a job goes. */
enum deliver_kind {
	DELIVER_MX,		/* MX hosts of a domain (or its address) */
	DELIVER_RELAY,		/* relay_host */
	DELIVER_LMTP,		/* lmtp_host */
};

enum deliver_status {
	DELIVER_SENT,
	DELIVER_TEMPFAIL,	/* defer */
	DELIVER_PERMFAIL,	/* bounce */
};

extern const char *const deliver_status_names[];

/* One recipient's outcome. Strings borrowed for the callback only. */
struct deliver_result {
	size_t			 index;		/* envelope index, as given */
	enum deliver_status	 status;
	const char		*reply;		/* "250 2.0.0 Ok" / a sentence */
	const char		*relay;		/* "mx.example[192.0.2.1]:25" */
	const char		*enhanced;	/* "5.1.1" or "" */
};

/*
 * A job. Everything is copied by deliver_submit, and fd is dup'ed (the
 * caller closes its own).
 * domain: for DELIVER_MX, the recipients' domain (an IP literal like
 * "[192.0.2.1]" is connected directly).
 */
struct deliver_job {
	const char		*id;		/* queue id, for the callback */
	enum deliver_kind	 kind;
	const char		*domain;
	const char		*sender;	/* "" for <> */
	const char *const	*rcpts;		/* addresses */
	const size_t		*indexes;	/* envelope index of each */
	size_t			 nrcpts;
	int			 fd;
	off_t			 offset;
	off_t			 length;
	bool			 is_8bit;
	bool			 needs_smtputf8;
};

/* Called once per job with a result for every recipient. */
typedef void (*deliver_done_fn)(void *arg, const char *id,
    const struct deliver_result *results, size_t n);

struct deliver;

/* rt is referenced; dns is borrowed (the caller frees it after). */
struct deliver	*deliver_new(struct event_base *base, struct dns *dns,
		    struct runtime *rt, deliver_done_fn done, void *arg);
/* Pending jobs are dropped without callbacks; connections closed. */
void		 deliver_free(struct deliver *d);
void		 deliver_set_runtime(struct deliver *d, struct runtime *rt);
void		 deliver_submit(struct deliver *d, const struct deliver_job *j);
/* Forgets that destinations were unreachable (`queue flush`): the next
 * job tries them again at once. */
void		 deliver_retry_now(struct deliver *d);
/* Jobs submitted and not yet done. */
size_t		 deliver_pending(const struct deliver *d);

#endif
