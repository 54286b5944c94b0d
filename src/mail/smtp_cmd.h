/*
 * smtp_cmd.h - SMTP command line parser (RFC 5321 §4.1.1, RFC 1870, 6152,
 * 6531, 3030, 3207, 4954).
 *
 * Pure: turns one command line into a verb, its argument and its ESMTP
 * parameters, or into the exact reply a server should give for the error.
 * It knows nothing of session state (sequence errors are the server's).
 */
#ifndef SMTPGATE_MAIL_SMTP_CMD_H
#define SMTPGATE_MAIL_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/addr.h"

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_LHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_COUNT
};

/* Upper-case verb names indexed by enum smtp_verb ("UNKNOWN" for 0). */
extern const char *const smtp_verb_names[SMTP_VERB_COUNT];

enum smtp_body {
	SMTP_BODY_DEFAULT,	/* no BODY= given */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME,
};

#define SMTP_CMD_LINE_MAX	4096	/* longest command line we read */
#define SMTP_CMD_ARG_MAX	512	/* longest HELO/AUTH/... argument kept */
#define SMTP_XTEXT_MAX		500	/* ENVID / ORCPT, RFC 3461 */

struct smtp_cmd {
	enum smtp_verb	verb;
	/* HELO/EHLO/LHLO domain, AUTH mechanism+initial response, VRFY/
	 * EXPN/HELP/NOOP text: the text after the verb and its space,
	 * trimmed. "" when absent. */
	char		arg[SMTP_CMD_ARG_MAX + 1];
	struct addr	addr;		/* MAIL FROM / RCPT TO path */

	/* MAIL parameters */
	long long	size;		/* SIZE=, -1 when absent */
	enum smtp_body	body;		/* BODY= */
	bool		smtputf8;	/* SMTPUTF8 */
	char		ret[5];		/* RET=FULL|HDRS, "" when absent */
	char		envid[SMTP_XTEXT_MAX + 1];	/* ENVID= xtext, as sent */
	char		auth[SMTP_XTEXT_MAX + 1];	/* AUTH= xtext, as sent */

	/* RCPT parameters (RFC 3461) */
	char		notify[64];	/* NOTIFY=, "" when absent */
	char		orcpt[SMTP_XTEXT_MAX + 1];	/* ORCPT=, as sent */

	/* BDAT */
	unsigned long long chunk_size;
	bool		is_last;	/* BDAT n LAST */
};

/* The reply the server should send for a line that does not parse. */
struct smtp_cmd_error {
	int		code;		/* 500, 501, 504, 555 */
	const char	*enhanced;	/* "5.5.2", "5.5.4", "5.1.7", "5.1.3", ... */
	char		text[256];	/* human sentence, no CRLF */
};

/*
 * Parses one command line, without its CRLF (len bytes, may contain NUL,
 * which is an error). Verbs are case-insensitive. MAIL FROM:/RCPT TO: accept
 * no space after the colon and tolerate one (as Postfix does); parameters
 * are validated (esmtp-keyword "=" esmtp-value, RFC 5321 §4.1.2) and the
 * ones listed above are decoded; an unknown parameter is 555 5.5.4. A UTF-8
 * address is only accepted when the MAIL line says SMTPUTF8 (for RCPT the
 * caller passes in_utf8_tx). Returns 0, or -1 with *err filled.
 */
int	smtp_cmd_parse(const char *line, size_t len, bool in_utf8_tx,
	    struct smtp_cmd *cmd, struct smtp_cmd_error *err);

#endif
