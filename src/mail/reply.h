/*
 * reply.h - every reply text smtpgate's SMTP server sends, in one place
 * (as qmail-smtpd keeps them), each with its RFC 5321 code and RFC 3463
 * enhanced status code.
 */
#ifndef SMTPGATE_MAIL_REPLY_H
#define SMTPGATE_MAIL_REPLY_H

enum reply_id {
	REPLY_OK,			/* 250 2.0.0 Ok */
	REPLY_MAIL_OK,			/* 250 2.1.0 Ok */
	REPLY_RCPT_OK,			/* 250 2.1.5 Ok */
	REPLY_DATA_GO,			/* 354 */
	REPLY_QUEUED,			/* 250 2.0.0 Ok: queued as %s */
	REPLY_BDAT_OK,			/* 250 2.0.0 Ok: %llu bytes received */
	REPLY_BYE,			/* 221 2.0.0 Bye */
	REPLY_VRFY,			/* 252 */
	REPLY_EXPN,			/* 502 5.5.1 */
	REPLY_HELP,			/* 214 */
	REPLY_NOT_IMPLEMENTED,		/* 502 5.5.1 */
	REPLY_NEED_HELO,		/* 503 5.5.1 */
	REPLY_NEED_MAIL,		/* 503 5.5.1 */
	REPLY_NEED_RCPT,		/* 503 5.5.1 */
	REPLY_NESTED_MAIL,		/* 503 5.5.1 */
	REPLY_BDAT_MIXED,		/* 503 5.5.1 DATA after BDAT */
	REPLY_RCPT_AFTER_BDAT,		/* 503 5.5.1 */
	REPLY_NO_VALID_RCPT,		/* 554 5.5.1 */
	REPLY_LINE_TOO_LONG,		/* 500 5.5.2 */
	REPLY_BARE_LF,			/* 500 5.5.2 */
	REPLY_BARE_CR,			/* 500 5.5.2 */
	REPLY_DATA_BARE_EOL,		/* 554 5.6.0 */
	REPLY_SIZE_EXCEEDED,		/* 552 5.3.4 */
	REPLY_TOO_MANY_RCPTS,		/* 452 4.5.3 */
	REPLY_USER_UNKNOWN,		/* 550 5.1.1 %s */
	REPLY_RELAY_DENIED,		/* 554 5.7.1 %s */
	REPLY_NO_STORAGE,		/* 452 4.3.1 */
	REPLY_QUEUE_ERROR,		/* 451 4.3.0 */
	REPLY_TOO_MANY_ERRORS,		/* 421 4.7.0 %s */
	REPLY_TIMEOUT,			/* 421 4.4.2 %s */
	REPLY_TOO_MANY_CONN,		/* 421 4.7.0 %s */
	REPLY_TOO_MANY_CONN_IP,		/* 421 4.7.0 %s */
	REPLY_SHUTDOWN,			/* 421 4.3.2 %s */
	REPLY_COUNT
};

struct reply_text {
	int		 code;
	const char	*enhanced;	/* NULL: no enhanced code (354, 214) */
	const char	*fmt;		/* printf format of the human part */
};

extern const struct reply_text reply_texts[REPLY_COUNT];

#endif
