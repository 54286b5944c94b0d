/*
 * reply.c - the table of SMTP reply texts. Layer: mail (pure data).
 * Codes follow RFC 5321 §4.2-4.3 and §4.5.3.1.10; enhanced codes RFC 3463.
 */
#include "mail/reply.h"

#include <stddef.h>

const struct reply_text reply_texts[REPLY_COUNT] = {
	[REPLY_OK] = { 250, "2.0.0", "Ok" },
	[REPLY_MAIL_OK] = { 250, "2.1.0", "Ok" },
	[REPLY_RCPT_OK] = { 250, "2.1.5", "Ok" },
	[REPLY_DATA_GO] = { 354, NULL, "End data with <CR><LF>.<CR><LF>" },
	[REPLY_QUEUED] = { 250, "2.0.0", "Ok: queued as %s" },
	[REPLY_BDAT_OK] = { 250, "2.0.0", "Ok: %llu bytes received" },
	[REPLY_BYE] = { 221, "2.0.0", "Bye" },
	[REPLY_VRFY] = { 252, "2.0.0",
	    "Cannot VRFY user, but will accept message and attempt delivery" },
	[REPLY_EXPN] = { 502, "5.5.1", "Error: EXPN is not available" },
	[REPLY_HELP] = { 214, "2.0.0",
	    "See RFC 5321; commands: HELO EHLO MAIL RCPT DATA BDAT RSET "
	    "NOOP QUIT VRFY" },
	[REPLY_NOT_IMPLEMENTED] = { 502, "5.5.1",
	    "Error: command not implemented" },
	[REPLY_NEED_HELO] = { 503, "5.5.1", "Error: send HELO/EHLO first" },
	[REPLY_NEED_MAIL] = { 503, "5.5.1", "Error: need MAIL command" },
	[REPLY_NEED_RCPT] = { 503, "5.5.1", "Error: need RCPT command" },
	[REPLY_NESTED_MAIL] = { 503, "5.5.1", "Error: nested MAIL command" },
	[REPLY_BDAT_MIXED] = { 503, "5.5.1",
	    "Error: DATA and BDAT cannot be mixed in one transaction" },
	[REPLY_RCPT_AFTER_BDAT] = { 503, "5.5.1",
	    "Error: RCPT after BDAT (every RCPT goes before the first chunk)" },
	[REPLY_NO_VALID_RCPT] = { 554, "5.5.1", "Error: no valid recipients" },
	[REPLY_LINE_TOO_LONG] = { 500, "5.5.2", "Error: line too long" },
	[REPLY_BARE_LF] = { 500, "5.5.2",
	    "Error: bare <LF> received (lines must end with <CR><LF>)" },
	[REPLY_BARE_CR] = { 500, "5.5.2",
	    "Error: bare <CR> received (lines must end with <CR><LF>)" },
	[REPLY_DATA_BARE_EOL] = { 554, "5.6.0",
	    "Message refused: bare <CR> or <LF> in message data "
	    "(RFC 5321 section 2.3.8)" },
	[REPLY_SIZE_EXCEEDED] = { 552, "5.3.4",
	    "Message size exceeds fixed maximum message size" },
	[REPLY_TOO_MANY_RCPTS] = { 452, "4.5.3", "Error: too many recipients" },
	[REPLY_USER_UNKNOWN] = { 550, "5.1.1",
	    "<%s>: Recipient address rejected: %s" },
	[REPLY_RELAY_DENIED] = { 554, "5.7.1", "<%s>: Relay access denied" },
	[REPLY_NO_STORAGE] = { 452, "4.3.1", "Insufficient system storage" },
	[REPLY_QUEUE_ERROR] = { 451, "4.3.0",
	    "Error: queue file write error, try again later" },
	[REPLY_TOO_MANY_ERRORS] = { 421, "4.7.0", "%s Error: too many errors" },
	[REPLY_TIMEOUT] = { 421, "4.4.2", "%s Error: timeout exceeded" },
	[REPLY_TOO_MANY_CONN] = { 421, "4.7.0",
	    "%s Error: too many connections" },
	[REPLY_TOO_MANY_CONN_IP] = { 421, "4.7.0",
	    "%s Error: too many connections from %s" },
	[REPLY_SHUTDOWN] = { 421, "4.3.2", "%s Service shutting down" },
};
