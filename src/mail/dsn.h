/*
 * dsn.h - delivery status notifications: the bounce ("failed") and the
 * delay warning ("delayed") that smtpgate sends to a message's envelope
 * sender (SPEC §3 "Outbound delivery"; RFC 3464 multipart/report, RFC 3461
 * NOTIFY/ORCPT/ENVID, RFC 3463 enhanced status codes, RFC 3834
 * Auto-Submitted, RFC 6533 for SMTPUTF8 messages).
 *
 * Pure: builds the notification in memory from the envelope, the reported
 * recipients and the original header section the caller read; no disk, no
 * clock (the caller passes the times), no sockets.
 *
 * The caller (bounce.c) queues the result as a new message with the null
 * sender <> (so that a notification never earns a notification) and the
 * original envelope sender as its one recipient; when the original envelope
 * had SMTPUTF8, the notification must be sent with SMTPUTF8 and
 * BODY=8BITMIME too (its parts are message/global-*), otherwise it is
 * plain 7-bit text.
 */
#ifndef SMTPGATE_MAIL_DSN_H
#define SMTPGATE_MAIL_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct buf;
struct envelope;

enum dsn_kind {
	DSN_FAILED,		/* Action: failed - the bounce */
	DSN_DELAYED,		/* Action: delayed - the delay warning */
};

extern const char *const dsn_kind_names[];	/* "failed", "delayed" */

/* Longest original header section copied into a notification. */
#define DSN_HEADERS_MAX		(64 * 1024)
/* Longest reply or reason text reported for one recipient. */
#define DSN_DIAG_MAX		2000

/* One recipient reported in a notification. */
struct dsn_rcpt {
	size_t		 index;		/* into env->rcpts[] */
	const char	*status;	/* enhanced code "5.1.1"; NULL: derived
					 * from the reply by
					 * dsn_status_from_reply() */
	const char	*remote_mta;	/* host that gave the reply, or NULL */
	const char	*reply;		/* NULL: env->rcpts[index].reply. A text
					 * that starts with an SMTP reply code is
					 * reported as "Diagnostic-Code: smtp;",
					 * any other reason (connection refused,
					 * expired) as "X-Smtpgate;" */
};

struct dsn_params {
	enum dsn_kind	 kind;
	const char	*hostname;	/* Reporting-MTA, From: MAILER-DAEMON@ */
	const char	*queue_id;	/* of the original message */
	const struct envelope *env;	/* the original envelope */
	const struct dsn_rcpt *rcpts;	/* the recipients reported, >= 1 */
	size_t		 nrcpts;
	/*
	 * The original message's header section: either exactly the header,
	 * or any prefix of the message (copying stops at the first empty
	 * line, after DSN_HEADERS_MAX bytes, or at the end of the bytes;
	 * CRLF or bare LF line ends). NULL/0 (or an empty header): the
	 * notification has no third part (RFC 3462 makes it optional).
	 */
	const char	*headers;
	size_t		 headers_len;
	const char	*message_id;	/* "<...>", or NULL: built from now,
					 * queue_id, kind, the first reported
					 * index and hostname */
	time_t		 now;		/* Date:, Message-ID */
	time_t		 retry_until;	/* DSN_DELAYED: when the message will
					 * bounce (Will-Retry-Until) */
};

/*
 * Appends the whole notification (header and body, CRLF line endings, no
 * line longer than 998 octets) to out:
 *   From: MAILER-DAEMON@HOSTNAME (Mail Delivery System), To: <SENDER>,
 *   Subject, Date, Message-ID, Auto-Submitted: auto-replied, MIME-Version,
 *   Content-Type: multipart/report; report-type=delivery-status, with the
 *   parts text/plain (the explanation for a person),
 *   message/delivery-status (RFC 3464 §2.2/§2.3 fields) and
 *   text/rfc822-headers (the original header section). For an SMTPUTF8
 *   envelope the last two are message/global-delivery-status and
 *   message/global-headers (RFC 6533) and the text is UTF-8; otherwise the
 *   output is 7-bit (8-bit bytes in the original header, which RFC 5322
 *   does not allow there, are replaced with '?').
 * The multipart boundary is checked against every part's content.
 * RET=FULL is treated as RET=HDRS: only the header section is returned
 * (RFC 3461 §4.3 lets the MTA return less; it keeps notifications small
 * and 7-bit). nrcpts must be >= 1 and every reported index
 * < env->nrcpts (assert). Deterministic: the same params give the same
 * bytes.
 */
void	dsn_format(struct buf *out, const struct dsn_params *p);

/*
 * True when recipient rcpt_index's NOTIFY allows a notification of this
 * kind (RFC 3461 §4.1): never for the null sender "" (no bounce of a
 * bounce), never for NOTIFY=NEVER; with NOTIFY given, only when it names
 * FAILURE (DSN_FAILED) or DELAY (DSN_DELAYED); without NOTIFY, always
 * (the "FAILURE,DELAY" default).
 */
bool	dsn_should_send(const struct envelope *env, size_t rcpt_index,
	    enum dsn_kind kind);

/*
 * Writes into out (size bytes, >= 12 is enough) the enhanced status code of
 * a reply text such as "550 5.1.1 <x>: User unknown" (also "550-5.1.1 ...").
 * The enhanced code is used only when its class matches the reply code's
 * first digit (RFC 3463 §2); else "C.0.0" from a 4xx/5xx reply code; else
 * (NULL, no reply code) "5.0.0" when permanent, "4.0.0" when not.
 * Returns out.
 */
const char *dsn_status_from_reply(const char *reply, bool permanent,
	    char *out, size_t size);

#endif
