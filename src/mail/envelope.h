/*
 * envelope.h - the envelope of a queued message and its on-disk records
 * (doc/QUEUE.md): the queue file header and the state file.
 *
 * Pure: formats into and parses from memory; spool.c does the I/O.
 */
#ifndef SMTPGATE_MAIL_ENVELOPE_H
#define SMTPGATE_MAIL_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct err;

#define ENVELOPE_VERSION	1

enum rcpt_kind {
	RCPT_LOCAL,		/* target is a mailbox name */
	RCPT_REMOTE,		/* target is an address to relay to */
};

enum rcpt_status {
	RCPT_PENDING,
	RCPT_DEFERRED,
	RCPT_SENT,
	RCPT_BOUNCED,
};

extern const char *const rcpt_status_names[];

struct rcpt {
	enum rcpt_kind	 kind;
	char		*target;	/* mailbox or address */
	char		*orig;		/* address as the client gave it */
	char		*notify;	/* NOTIFY= or NULL */
	char		*orcpt;		/* ORCPT= or NULL */
	/* delivery state (state file) */
	enum rcpt_status status;
	unsigned	 attempts;
	long long	 last_try;	/* epoch seconds, 0 = never */
	long long	 next_try;
	bool		 is_warned;	/* a "delayed" DSN went out */
	char		 dsn_status[16];	/* enhanced code of the last
						 * outcome ("5.1.10"); not kept
						 * in the state file */
	char		*relay;		/* last host tried, or NULL */
	char		*reply;		/* last reply / reason, or NULL */
};

struct envelope {
	double		 arrival;	/* epoch seconds with microseconds */
	char		*client_addr;	/* "127.0.0.1" or "local" */
	char		*client_name;	/* "[127.0.0.1]" */
	char		*helo;
	char		*proto;		/* SMTP, ESMTP, ESMTPS, ESMTPA... */
	char		*auth_user;	/* NULL if none */
	char		*sender;	/* "" for the null sender */
	char		*body;		/* "7BIT", "8BITMIME", ... or NULL */
	bool		 smtputf8;
	char		*ret;
	char		*envid;
	struct rcpt	*rcpts;
	size_t		 nrcpts;
	bool		 is_held;
	unsigned long long data_len;	/* message bytes after the header */
};

void	envelope_init(struct envelope *env);
/* Frees everything the envelope owns; it is empty afterwards. */
void	envelope_clear(struct envelope *env);
/* Adds a recipient (strings copied; NULL notify/orcpt allowed).
 * Returns its index. */
size_t	envelope_add_rcpt(struct envelope *env, enum rcpt_kind kind,
	    const char *target, const char *orig, const char *notify,
	    const char *orcpt);
/* Index of a recipient with the same kind and target, or -1. */
long	envelope_find_rcpt(const struct envelope *env, enum rcpt_kind kind,
	    const char *target);

/* Appends the queue file header, up to and including "data N\n". */
void	envelope_format(const struct envelope *env, struct buf *out);
/*
 * Parses a queue file header from text (len bytes; the message data may
 * follow). *header_len gets the offset of the first message byte. Returns
 * 0, or -1 with e->msg naming the line and the problem.
 */
int	envelope_parse(const char *text, size_t len, struct envelope *env,
	    size_t *header_len, struct err *e);
/* Appends the state file for env's recipients and hold flag. */
void	envelope_format_state(const struct envelope *env, struct buf *out);
/* Applies a state file to env (recipient count must match). */
int	envelope_parse_state(const char *text, size_t len,
	    struct envelope *env, struct err *e);
/* True when every recipient is sent or bounced. */
bool	envelope_is_final(const struct envelope *env);

/* RFC 3461 xtext: bytes outside '!'..'~', '+' and '=' as +HH. */
void	xtext_encode(struct buf *out, const char *s);
/* Decodes into a new string (caller frees); NULL when malformed. */
char	*xtext_decode(const char *s);

#endif
