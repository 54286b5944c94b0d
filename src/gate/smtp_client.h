/*
 * smtp_client.h - the outbound SMTP/LMTP client engine (RFC 5321, RFC 2033)
 * with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152),
 * SMTPUTF8 (RFC 6531) and opportunistic STARTTLS (RFC 3207).
 *
 * The caller (the queue manager) connects a socket, hands it over with
 * smtp_client_new and from then on only supplies transactions and reacts
 * to callbacks, in the manner of OpenSMTPD's smtp_client.c. The engine
 * never logs (except log_debug of the dialogue) and never decides defer
 * versus bounce: every outcome is a struct smtp_client_reply whose status
 * says whether it is temporary or permanent.
 *
 * Life of a client:
 *
 *   smtp_client_new -> greeting, EHLO (HELO when EHLO gets 5xx; LHLO for
 *   LMTP), STARTTLS + EHLO again when offered and a TLS context is given
 *   -> ready()
 *   smtp_client_send -> rcpt() for each recipient, data_done() for the
 *   end of the data (once for SMTP, once per accepted recipient for LMTP)
 *   -> tx_done(); then smtp_client_send again (connection reuse) or
 *   smtp_client_quit -> closed().
 *   failed() may come at any time instead: the session is over.
 *
 * The final result of one recipient of a transaction is the first of:
 *   - its rcpt() reply, when that is not SMTP_CLIENT_OK (refused);
 *   - its data_done() reply (LMTP), or the data_done() reply (SMTP);
 *   - the reply passed to tx_done() when that is not NULL (the
 *     transaction failed as a whole: MAIL refused, DATA refused, message
 *     larger than the peer's SIZE, SMTPUTF8 needed but not offered);
 *   - the reply passed to failed() (the session ended: connection lost,
 *     timeout, protocol error, TLS failure, 421).
 * Replies to RCPT commands pipelined after a refused MAIL are swallowed,
 * never reported, so a "503 need MAIL" cannot bounce anybody.
 *
 * Callbacks are never called from inside smtp_client_new, smtp_client_send
 * or smtp_client_quit; they come from the event loop. Any callback may
 * call smtp_client_send (from ready or tx_done), smtp_client_quit, or
 * smtp_client_free: freeing inside a callback is safe (the engine marks
 * itself dead and releases its memory when the callback chain unwinds; no
 * further callback comes).
 *
 * The process must ignore SIGPIPE (cmd_serve does): a peer that closes
 * while the content is being sent would otherwise kill it.
 */
#ifndef SMTPGATE_GATE_SMTP_CLIENT_H
#define SMTPGATE_GATE_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct err;
struct event_base;
struct smtp_client;
struct ssl_ctx_st;		/* OpenSSL's SSL_CTX */

/* How a reply (or a local failure) counts for the caller. */
enum smtp_client_status {
	SMTP_CLIENT_OK,		/* 2xx (220/354 where expected) */
	SMTP_CLIENT_TEMPFAIL,	/* 4xx reply: defer */
	SMTP_CLIENT_PERMFAIL,	/* 5xx reply, or a permanent local refusal
				 * (5.3.4 size, 5.6.7 SMTPUTF8): bounce */
	SMTP_CLIENT_CONNFAIL,	/* connection closed, timeout, malformed or
				 * unexpected reply, TLS failure, local read
				 * error of the message: temporary */
	SMTP_CLIENT_STATUS_COUNT
};

/* The command a reply answers, or where a failure happened. */
enum smtp_client_step {
	SMTP_CLIENT_STEP_GREETING,
	SMTP_CLIENT_STEP_EHLO,
	SMTP_CLIENT_STEP_HELO,
	SMTP_CLIENT_STEP_LHLO,
	SMTP_CLIENT_STEP_STARTTLS,
	SMTP_CLIENT_STEP_TLS,		/* the TLS handshake */
	SMTP_CLIENT_STEP_IDLE,		/* between transactions */
	SMTP_CLIENT_STEP_RSET,
	SMTP_CLIENT_STEP_MAIL,
	SMTP_CLIENT_STEP_RCPT,
	SMTP_CLIENT_STEP_DATA,
	SMTP_CLIENT_STEP_CONTENT,	/* sending the message content */
	SMTP_CLIENT_STEP_DATA_END,	/* reply to the final "." */
	SMTP_CLIENT_STEP_QUIT,
	SMTP_CLIENT_STEP_COUNT
};

/* EHLO keywords understood (smtp_client_extensions). */
#define SMTP_CLIENT_EXT_PIPELINING		0x01u
#define SMTP_CLIENT_EXT_SIZE			0x02u
#define SMTP_CLIENT_EXT_8BITMIME		0x04u
#define SMTP_CLIENT_EXT_SMTPUTF8		0x08u
#define SMTP_CLIENT_EXT_STARTTLS		0x10u
#define SMTP_CLIENT_EXT_CHUNKING		0x20u
#define SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES	0x40u

/*
 * A reply as the caller sees it. Borrowed: valid only during the callback.
 * code is 0 when nothing was received (connection failure, timeout, local
 * refusal); then text is a sentence such as "connection closed by peer
 * after RCPT TO" or "timeout waiting for the reply to DATA (120s)".
 * Otherwise text is the reply on one line, "550 5.1.1 No such user" (the
 * lines of a multi-line reply joined by a space, control characters
 * replaced by '?'). enhanced is the RFC 3463 code ("5.1.1") when the reply
 * (or the local refusal) carries one, else "".
 */
struct smtp_client_reply {
	enum smtp_client_status	 status;
	enum smtp_client_step	 step;
	int			 code;
	char			 enhanced[16];
	const char		*text;
};

/* Timeouts in milliseconds; 0 takes the default (RFC 5321 §4.5.3.2). */
struct smtp_client_timeouts {
	long	greeting_ms;	/* 5 min */
	long	helo_ms;	/* 5 min: EHLO/HELO/LHLO, STARTTLS, handshake */
	long	mail_ms;	/* 5 min: MAIL and RSET */
	long	rcpt_ms;	/* 5 min */
	long	data_ms;	/* 2 min: DATA initiation */
	long	block_ms;	/* 3 min: without progress sending content */
	long	data_end_ms;	/* 10 min: reply to the final "." */
	long	quit_ms;	/* 30 s: reply to QUIT */
};

/*
 * Session parameters; the strings are copied by smtp_client_new.
 * helo_name:   our name in EHLO/HELO/LHLO (required).
 * server_name: the peer's host name, sent as SNI when it is not an IP
 *              literal; may be NULL.
 * tls_ctx:     a client SSL_CTX for opportunistic STARTTLS (used when the
 *              peer offers it), or NULL never to use TLS. Referenced with
 *              SSL_CTX_up_ref for the client's lifetime. The certificate is
 *              checked (chain and server_name) only to record the result
 *              (smtp_client_tls_verified): a bad certificate never stops
 *              delivery, since opportunistic TLS only protects against
 *              passive eavesdroppers.
 * is_lmtp:     speak LMTP (RFC 2033): LHLO, one end-of-data reply per
 *              accepted recipient.
 */
struct smtp_client_params {
	const char			*helo_name;
	const char			*server_name;
	struct ssl_ctx_st		*tls_ctx;
	bool				 is_lmtp;
	struct smtp_client_timeouts	 timeouts;
};

/*
 * One message. Borrowed by smtp_client_send, which copies the addresses;
 * the fd must stay open (and the file unchanged) until tx_done or failed.
 * sender:      the envelope sender without angle brackets, "" for the null
 *              sender.
 * rcpts:       rcpt_count recipients (at least 1), without angle brackets;
 *              the callbacks name them by their index in this array.
 * fd, offset, length: the message content in the spool file, with CRLF
 *              line ends, not dot-stuffed. Read with pread in chunks as
 *              the socket drains; at most ~256 KiB are buffered.
 * is_8bit:     the content has 8-bit bytes: BODY=8BITMIME when the peer
 *              offers 8BITMIME. When it does not, the message is sent
 *              anyway, unchanged (as Postfix does by default, without
 *              MIME down-conversion).
 * needs_smtputf8: the message (headers or addresses) needs SMTPUTF8. Set
 *              automatically when an address has a non-ASCII byte. When
 *              the peer does not offer SMTPUTF8 the transaction fails with
 *              SMTP_CLIENT_PERMFAIL 5.6.7 without sending anything
 *              (RFC 6531 §3.2): the caller bounces.
 * SIZE=length is sent when the peer offers SIZE; when length exceeds the
 * peer's announced limit, the transaction fails with SMTP_CLIENT_PERMFAIL
 * 5.3.4 without sending anything (RFC 1870).
 */
struct smtp_client_msg {
	const char		*sender;
	const char *const	*rcpts;
	size_t			 rcpt_count;
	int			 fd;
	off_t			 offset;
	off_t			 length;
	bool			 is_8bit;
	bool			 needs_smtputf8;
};

/*
 * The callbacks; arg is the caller's pointer given to smtp_client_new.
 * ready:     the session is established (greeting, EHLO, STARTTLS done)
 *            and idle: call smtp_client_send or smtp_client_quit.
 * rcpt:      the reply to RCPT TO for recipient index (in the order they
 *            were given). SMTP_CLIENT_OK: accepted, its result comes with
 *            data_done; otherwise this is its final result.
 * data_done: the reply to the end of the data. SMTP: index -1, one reply
 *            for every accepted recipient. LMTP: one call per accepted
 *            recipient, in the order they were accepted (RFC 2033 §4.2).
 * tx_done:   the transaction is over and the client is idle again (send
 *            the next message or quit). fail is NULL when every recipient
 *            got its result from rcpt/data_done (including "all recipients
 *            refused"); otherwise the transaction failed as a whole and
 *            fail is the result of every recipient without one yet.
 * failed:    the session is over (the connection is already closed): the
 *            reply is the result of every recipient of the transaction in
 *            progress that has no result yet. reply->status is TEMPFAIL or
 *            PERMFAIL for a refusing reply (greeting, EHLO/HELO/LHLO, any
 *            421), CONNFAIL otherwise. A TLS handshake failure is CONNFAIL
 *            with step SMTP_CLIENT_STEP_TLS: the caller may connect again
 *            with tls_ctx NULL and deliver without TLS. The caller frees
 *            the client (it may do so inside the callback).
 * closed:    (may be NULL) the QUIT exchange ended (221, close by the peer
 *            or timeout: all count as a clean end). The caller frees the
 *            client.
 */
struct smtp_client_cb {
	void	(*ready)(struct smtp_client *c, void *arg);
	void	(*rcpt)(struct smtp_client *c, void *arg, int index,
		    const struct smtp_client_reply *reply);
	void	(*data_done)(struct smtp_client *c, void *arg, int index,
		    const struct smtp_client_reply *reply);
	void	(*tx_done)(struct smtp_client *c, void *arg,
		    const struct smtp_client_reply *fail);
	void	(*failed)(struct smtp_client *c, void *arg,
		    const struct smtp_client_reply *reply);
	void	(*closed)(struct smtp_client *c, void *arg);
};

/*
 * Starts a session on fd, an already connected stream socket, which the
 * client owns from now on (closed by smtp_client_free, or at once on
 * failure). p and cb are copied. Returns NULL with e filled on failure
 * (bad parameters, libevent failure). Caller frees with smtp_client_free.
 */
struct smtp_client *smtp_client_new(struct event_base *base, int fd,
		    const struct smtp_client_params *p,
		    const struct smtp_client_cb *cb, void *arg, struct err *e);

/*
 * Starts a transaction; only when idle (after ready or tx_done). With
 * PIPELINING, MAIL, every RCPT and DATA go out in one write (preceded by
 * RSET when the previous transaction did not end with the reply to the
 * end of the data); without it, one command per reply. Returns -1 with e
 * filled when the client is not idle or m is unusable (no recipient, an
 * address with a control character, space or angle bracket, more than
 * INT_MAX recipients): nothing was sent and no callback will follow for m.
 */
int		 smtp_client_send(struct smtp_client *c,
		    const struct smtp_client_msg *m, struct err *e);

/*
 * Ends the session. When idle: sends QUIT and waits for the reply or the
 * close, at most timeouts.quit_ms, then closed(). Before ready or in the
 * middle of a transaction: closes at once, and closed() follows from the
 * loop. After failed or closed: does nothing.
 */
void		 smtp_client_quit(struct smtp_client *c);

/* Closes the connection without QUIT if still open, frees everything;
 * NULL is fine. Safe inside the client's own callbacks. */
void		 smtp_client_free(struct smtp_client *c);

/* The EHLO/LHLO keywords the peer announced (SMTP_CLIENT_EXT_*); 0 after
 * a HELO fallback. Meaningful from ready on. */
unsigned	 smtp_client_extensions(const struct smtp_client *c);
/* The limit announced with SIZE, 0 when none. */
unsigned long long smtp_client_size_max(const struct smtp_client *c);
/* True when EHLO (or LHLO) was accepted, false after a HELO fallback. */
bool		 smtp_client_is_esmtp(const struct smtp_client *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, else NULL. Borrowed,
 * valid until smtp_client_free. */
const char	*smtp_client_tls_info(const struct smtp_client *c);
/* True when the peer's certificate chain and name verified against
 * tls_ctx's trust store (recorded for logging only). */
bool		 smtp_client_tls_verified(const struct smtp_client *c);

/* Name tables: "ok", "tempfail", "permfail", "connfail"; "greeting",
 * "EHLO", ..., "RCPT TO", "DATA", "message content", "end of data". */
const char	*smtp_client_status_name(enum smtp_client_status s);
const char	*smtp_client_step_name(enum smtp_client_step s);

#endif
