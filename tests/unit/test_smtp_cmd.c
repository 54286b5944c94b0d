/*
 * test_smtp_cmd.c - unit tests for src/mail/smtp_cmd.c: every verb, every
 * error reply (exact code, enhanced code and text), every ESMTP parameter.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mail/smtp_cmd.h"
#include "t.h"

static int
parse(const char *line, bool utf8_tx, struct smtp_cmd *cmd,
    struct smtp_cmd_error *err)
{
	return smtp_cmd_parse(line, strlen(line), utf8_tx, cmd, err);
}

/* Lines that parse: verb and argument. */
struct ok_case {
	const char	*line;
	enum smtp_verb	 verb;
	const char	*arg;
};

static const struct ok_case ok_cases[] = {
	{ "HELO mx.example.com", SMTP_VERB_HELO, "mx.example.com" },
	{ "helo mx.example.com", SMTP_VERB_HELO, "mx.example.com" },
	{ "EHLO [192.0.2.1]", SMTP_VERB_EHLO, "[192.0.2.1]" },
	{ "eHlO   client.example   ", SMTP_VERB_EHLO, "client.example" },
	{ "EHLO two words", SMTP_VERB_EHLO, "two words" },
	{ "LHLO lmtp.example", SMTP_VERB_LHLO, "lmtp.example" },
	{ "DATA", SMTP_VERB_DATA, "" },
	{ "data  ", SMTP_VERB_DATA, "" },
	{ "RSET", SMTP_VERB_RSET, "" },
	{ "QUIT", SMTP_VERB_QUIT, "" },
	{ "STARTTLS", SMTP_VERB_STARTTLS, "" },
	{ "starttls", SMTP_VERB_STARTTLS, "" },
	{ "NOOP", SMTP_VERB_NOOP, "" },
	{ "NOOP anything at all", SMTP_VERB_NOOP, "anything at all" },
	{ "HELP", SMTP_VERB_HELP, "" },
	{ "HELP MAIL", SMTP_VERB_HELP, "MAIL" },
	{ "VRFY postmaster", SMTP_VERB_VRFY, "postmaster" },
	{ "EXPN staff", SMTP_VERB_EXPN, "staff" },
	{ "AUTH PLAIN", SMTP_VERB_AUTH, "PLAIN" },
	{ "AUTH PLAIN AHVzZXIAcGFzcw==", SMTP_VERB_AUTH,
	    "PLAIN AHVzZXIAcGFzcw==" },
	{ "auth login", SMTP_VERB_AUTH, "login" },
};

/* Lines that do not: the exact reply. */
struct bad_case {
	const char	*line;
	bool		 utf8_tx;
	int		 code;
	const char	*enhanced;
	const char	*text;
};

static const struct bad_case bad_cases[] = {
	/* verbs */
	{ "", 0, 500, "5.5.2", "Error: command not recognized" },
	{ "FOO", 0, 500, "5.5.2", "Error: command not recognized" },
	{ "HELOX foo", 0, 500, "5.5.2", "Error: command not recognized" },
	{ " HELO foo", 0, 500, "5.5.2", "Error: command not recognized" },
	{ "MAIL:FROM:<a@b>", 0, 500, "5.5.2",
	    "Error: command not recognized" },
	{ "STARTTLSX", 0, 500, "5.5.2", "Error: command not recognized" },
	{ "UNKNOWN", 0, 500, "5.5.2", "Error: command not recognized" },
	{ "HEL", 0, 500, "5.5.2", "Error: command not recognized" },
	{ "GET / HTTP/1.0", 0, 500, "5.5.2",
	    "Error: command not recognized" },
	/* control characters */
	{ "HELO a\rb", 0, 500, "5.5.2",
	    "Error: invalid character in command" },
	{ "HELO a\nb", 0, 500, "5.5.2",
	    "Error: invalid character in command" },
	{ "HELO\tfoo", 0, 500, "5.5.2",
	    "Error: invalid character in command" },
	{ "NOOP \x7f", 0, 500, "5.5.2",
	    "Error: invalid character in command" },
	{ "FOO \x1b[0m", 0, 500, "5.5.2",
	    "Error: invalid character in command" },
	{ "RCPT TO:<a@b>\r", 0, 500, "5.5.2",
	    "Error: invalid character in command" },
	/* HELO family */
	{ "HELO", 0, 501, "5.5.4", "Syntax: HELO hostname" },
	{ "EHLO", 0, 501, "5.5.4", "Syntax: EHLO hostname" },
	{ "ehlo   ", 0, 501, "5.5.4", "Syntax: EHLO hostname" },
	{ "LHLO", 0, 501, "5.5.4", "Syntax: LHLO hostname" },
	{ "VRFY", 0, 501, "5.5.4", "Syntax: VRFY address" },
	{ "EXPN", 0, 501, "5.5.4", "Syntax: EXPN address" },
	{ "AUTH", 0, 501, "5.5.4", "Syntax: AUTH mechanism "
	    "[initial-response]" },
	/* no argument allowed */
	{ "DATA x", 0, 501, "5.5.4", "Syntax: DATA takes no argument" },
	{ "RSET now", 0, 501, "5.5.4", "Syntax: RSET takes no argument" },
	{ "QUIT please", 0, 501, "5.5.4", "Syntax: QUIT takes no argument" },
	{ "STARTTLS x", 0, 501, "5.5.4",
	    "Syntax: STARTTLS takes no argument" },
	/* MAIL / RCPT form */
	{ "MAIL", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	{ "MAIL <a@b>", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	{ "MAIL FROM", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	{ "MAIL FROM:", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	{ "MAIL FROM: ", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	{ "MAIL TO:<a@b>", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	{ "MAIL FROM :<a@b>", 0, 501, "5.5.4",
	    "Syntax: MAIL FROM:<address>" },
	{ "RCPT", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>" },
	{ "RCPT FROM:<a@b>", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>" },
	{ "RCPT TO", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>" },
	{ "RCPT TO:", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>" },
	/* bad paths */
	{ "MAIL FROM:a@b", 0, 501, "5.1.7",
	    "Bad sender address syntax: address not in angle brackets" },
	{ "MAIL FROM:  <a@b>", 0, 501, "5.1.7",
	    "Bad sender address syntax: address not in angle brackets" },
	{ "MAIL FROM:<a@b", 0, 501, "5.1.7",
	    "Bad sender address syntax: missing '>' at end of address" },
	{ "MAIL FROM:<user@remote@local>", 0, 501, "5.1.7",
	    "Bad sender address syntax: unexpected '@' in domain" },
	{ "MAIL FROM:<a..b@c>", 0, 501, "5.1.7",
	    "Bad sender address syntax: '..' in local part" },
	{ "MAIL FROM:<postmaster>", 0, 501, "5.1.7",
	    "Bad sender address syntax: missing domain" },
	{ "MAIL FROM:<a@b>x", 0, 501, "5.1.7",
	    "Bad sender address syntax: unexpected text after '>'" },
	{ "MAIL FROM:<a@b>>", 0, 501, "5.1.7",
	    "Bad sender address syntax: unexpected text after '>'" },
	{ "RCPT TO:<>", 0, 501, "5.1.3",
	    "Bad recipient address syntax: null address not allowed here" },
	{ "RCPT TO:<a b@c>", 0, 501, "5.1.3",
	    "Bad recipient address syntax: space in address" },
	{ "RCPT TO:<user@remote@local>", 0, 501, "5.1.3",
	    "Bad recipient address syntax: unexpected '@' in domain" },
	{ "RCPT TO:<a@b>NOTIFY=NEVER", 0, 501, "5.1.3",
	    "Bad recipient address syntax: unexpected text after '>'" },
	{ "RCPT TO:<j\xc3@b>", 1, 501, "5.1.3",
	    "Bad recipient address syntax: invalid UTF-8 in local part" },
	/* SMTPUTF8 */
	{ "MAIL FROM:<j\xc3\xb6rg@example.de>", 0, 553, "5.6.7",
	    "Error: SMTPUTF8 address without SMTPUTF8 (RFC 6531)" },
	{ "MAIL FROM:<jorg@ex\xc3\xa4mple.de> BODY=8BITMIME", 0, 553, "5.6.7",
	    "Error: SMTPUTF8 address without SMTPUTF8 (RFC 6531)" },
	{ "RCPT TO:<j\xc3\xb6rg@example.de>", 0, 553, "5.6.7",
	    "Error: SMTPUTF8 address without SMTPUTF8 (RFC 6531)" },
	/* BDAT */
	{ "BDAT", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT x", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT -1", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT +1", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 1x", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 0x10", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 10 FIRST", 0, 501, "5.5.4",
	    "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 10 LASTX", 0, 501, "5.5.4",
	    "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 10 LAST LAST", 0, 501, "5.5.4",
	    "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT LAST", 0, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 18446744073709551616", 0, 501, "5.5.4",
	    "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 99999999999999999999", 0, 501, "5.5.4",
	    "Syntax: BDAT chunk-size [LAST]" },
	{ "BDAT 000000000000000000001", 0, 501, "5.5.4",
	    "Syntax: BDAT chunk-size [LAST]" },
	/* parameters */
	{ "MAIL FROM:<a@b> FOO=bar", 0, 555, "5.5.4",
	    "Error: unsupported parameter FOO" },
	{ "MAIL FROM:<a@b> X-Thing", 0, 555, "5.5.4",
	    "Error: unsupported parameter X-Thing" },
	{ "MAIL FROM:<a@b> NOTIFY=NEVER", 0, 555, "5.5.4",
	    "Error: unsupported parameter NOTIFY" },
	{ "RCPT TO:<a@b> SIZE=10", 0, 555, "5.5.4",
	    "Error: unsupported parameter SIZE" },
	{ "RCPT TO:<a@b> BODY=7BIT", 0, 555, "5.5.4",
	    "Error: unsupported parameter BODY" },
	{ "MAIL FROM:<a@b> -SIZE=1", 0, 501, "5.5.4",
	    "Syntax: bad parameter keyword" },
	{ "MAIL FROM:<a@b> SI_ZE=1", 0, 501, "5.5.4",
	    "Syntax: bad parameter keyword" },
	{ "MAIL FROM:<a@b> =1", 0, 501, "5.5.4",
	    "Syntax: bad parameter keyword" },
	{ "MAIL FROM:<a@b> SIZE=", 0, 501, "5.5.4",
	    "Syntax: bad value for parameter SIZE" },
	{ "MAIL FROM:<a@b> SIZE=1=2", 0, 501, "5.5.4",
	    "Syntax: bad value for parameter SIZE" },
	{ "MAIL FROM:<a@b> SIZE", 0, 501, "5.5.4",
	    "Syntax: SIZE needs a value" },
	{ "MAIL FROM:<a@b> SIZE=12k", 0, 501, "5.5.4",
	    "Syntax: SIZE value must be digits" },
	{ "MAIL FROM:<a@b> SIZE=-1", 0, 501, "5.5.4",
	    "Syntax: SIZE value must be digits" },
	{ "MAIL FROM:<a@b> SIZE=123456789012345678901", 0, 501, "5.5.4",
	    "Syntax: SIZE needs 1 to 20 digits" },
	{ "MAIL FROM:<a@b> SIZE=1 SIZE=2", 0, 501, "5.5.4",
	    "Syntax: duplicate parameter SIZE" },
	{ "MAIL FROM:<a@b> SIZE=1 size=1", 0, 501, "5.5.4",
	    "Syntax: duplicate parameter SIZE" },
	{ "MAIL FROM:<a@b> BODY=8BIT", 0, 501, "5.5.4",
	    "Syntax: BODY must be 7BIT, 8BITMIME or BINARYMIME" },
	{ "MAIL FROM:<a@b> BODY", 0, 501, "5.5.4",
	    "Syntax: BODY needs a value" },
	{ "MAIL FROM:<a@b> SMTPUTF8=yes", 0, 501, "5.5.4",
	    "Syntax: SMTPUTF8 takes no value" },
	{ "MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8", 0, 501, "5.5.4",
	    "Syntax: duplicate parameter SMTPUTF8" },
	{ "MAIL FROM:<a@b> RET=ALL", 0, 501, "5.5.4",
	    "Syntax: RET must be FULL or HDRS" },
	{ "MAIL FROM:<a@b> RET=FULLX", 0, 501, "5.5.4",
	    "Syntax: RET must be FULL or HDRS" },
	{ "MAIL FROM:<a@b> ENVID=a+2", 0, 501, "5.5.4",
	    "Syntax: ENVID is not valid xtext" },
	{ "MAIL FROM:<a@b> ENVID=a+GG", 0, 501, "5.5.4",
	    "Syntax: ENVID is not valid xtext" },
	{ "MAIL FROM:<a@b> ENVID=a+", 0, 501, "5.5.4",
	    "Syntax: ENVID is not valid xtext" },
	{ "MAIL FROM:<a@b> ENVID=\xc3\xa9", 0, 501, "5.5.4",
	    "Syntax: ENVID is not valid xtext" },
	{ "MAIL FROM:<a@b> AUTH=a+zz", 0, 501, "5.5.4",
	    "Syntax: AUTH is not valid xtext" },
	{ "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS", 0, 501, "5.5.4",
	    "Syntax: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, "
	    "DELAY" },
	{ "RCPT TO:<a@b> NOTIFY=SUCCESS,SUCCESS", 0, 501, "5.5.4",
	    "Syntax: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, "
	    "DELAY" },
	{ "RCPT TO:<a@b> NOTIFY=SUCCESS,", 0, 501, "5.5.4",
	    "Syntax: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, "
	    "DELAY" },
	{ "RCPT TO:<a@b> NOTIFY=,DELAY", 0, 501, "5.5.4",
	    "Syntax: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, "
	    "DELAY" },
	{ "RCPT TO:<a@b> NOTIFY=ALWAYS", 0, 501, "5.5.4",
	    "Syntax: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, "
	    "DELAY" },
	{ "RCPT TO:<a@b> ORCPT=a@b", 0, 501, "5.5.4",
	    "Syntax: ORCPT must be addr-type;xtext" },
	{ "RCPT TO:<a@b> ORCPT=;a@b", 0, 501, "5.5.4",
	    "Syntax: ORCPT must be addr-type;xtext" },
	{ "RCPT TO:<a@b> ORCPT=rfc822;", 0, 501, "5.5.4",
	    "Syntax: ORCPT is not valid xtext" },
	{ "RCPT TO:<a@b> ORCPT=rfc822;a+4", 0, 501, "5.5.4",
	    "Syntax: ORCPT is not valid xtext" },
	{ "RCPT TO:<a@b> ORCPT=rfc.822;a@b", 0, 501, "5.5.4",
	    "Syntax: bad ORCPT address type" },
	{ "RCPT TO:<a@b> ORCPT=rfc822;\xc3\xa9@b", 0, 501, "5.5.4",
	    "Syntax: ORCPT is not valid xtext" },
	{ "RCPT TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", 0, 501, "5.5.4",
	    "Syntax: duplicate parameter ORCPT" },
	{ "MAIL FROM:<a@b> SIZE=1\xc3", 0, 501, "5.5.4",
	    "Syntax: bad value for parameter SIZE" },
};

static void
test_ok_cases(void)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		struct smtp_cmd cmd;
		struct smtp_cmd_error err;
		int rc = parse(c->line, false, &cmd, &err);

		if (rc != 0)
			fprintf(stderr, "  \"%s\": %d %s %s\n", c->line,
			    err.code, err.enhanced, err.text);
		CHECK_INT(rc, 0);
		CHECK_INT(cmd.verb, c->verb);
		CHECK_STR(cmd.arg, c->arg);
		CHECK_INT(cmd.size, -1);
	}
}

static void
test_bad_cases(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]);
	    i++) {
		const struct bad_case *c = &bad_cases[i];
		struct smtp_cmd cmd;
		struct smtp_cmd_error err;
		int rc = parse(c->line, c->utf8_tx, &cmd, &err);

		if (rc != -1 || err.code != c->code ||
		    strcmp(err.text, c->text) != 0)
			fprintf(stderr, "  case %zu \"%s\": %d %d %s %s\n", i,
			    c->line, rc, err.code, rc ? err.enhanced : "",
			    err.text);
		CHECK_INT(rc, -1);
		CHECK_INT(err.code, c->code);
		CHECK_STR(err.enhanced, c->enhanced);
		CHECK_STR(err.text, c->text);
	}
}

static void
test_nul_byte(void)
{
	static const char line[] = "HELO a\0b";
	static const char mail[] = "MAIL FROM:<a@b>\0 SIZE=1";
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;

	CHECK_INT(smtp_cmd_parse(line, sizeof(line) - 1, false, &cmd, &err),
	    -1);
	CHECK_INT(err.code, 500);
	CHECK_STR(err.enhanced, "5.5.2");
	CHECK_STR(err.text, "Error: invalid character in command");
	CHECK_INT(smtp_cmd_parse(mail, sizeof(mail) - 1, false, &cmd, &err),
	    -1);
	CHECK_STR(err.text, "Error: invalid character in command");
	/* Only len bytes count: the NUL after them is not looked at. */
	CHECK_INT(smtp_cmd_parse(line, 6, false, &cmd, &err), 0);
	CHECK_STR(cmd.arg, "a");
	/* The line need not be NUL-terminated at len. */
	CHECK_INT(smtp_cmd_parse("QUITXYZ", 4, false, &cmd, &err), 0);
	CHECK_INT(cmd.verb, SMTP_VERB_QUIT);
}

static void
test_mail(void)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;

	CHECK_INT(parse("MAIL FROM:<alice@example.com>", false, &cmd, &err),
	    0);
	CHECK_INT(cmd.verb, SMTP_VERB_MAIL);
	CHECK_STR(cmd.addr.local, "alice");
	CHECK_STR(cmd.addr.domain, "example.com");
	CHECK_INT(cmd.size, -1);
	CHECK_INT(cmd.body, SMTP_BODY_DEFAULT);
	CHECK(!cmd.smtputf8);
	CHECK_STR(cmd.ret, "");
	CHECK_STR(cmd.envid, "");
	CHECK_STR(cmd.auth, "");

	CHECK_INT(parse("mail from:<>", false, &cmd, &err), 0);
	CHECK(cmd.addr.is_null);
	CHECK_INT(parse("MAIL FROM: <a@b>", false, &cmd, &err), 0);
	CHECK_STR(cmd.addr.local, "a");
	CHECK_INT(parse("MAIL   FROM:<a@b>", false, &cmd, &err), 0);
	CHECK_INT(parse("MAIL FROM:<a@b>   ", false, &cmd, &err), 0);
	CHECK_INT(parse("MAIL From:<@relay.example:a@b>", false, &cmd, &err),
	    0);
	CHECK_STR(cmd.addr.local, "a");
	CHECK_STR(cmd.addr.domain, "b");
	CHECK_INT(parse("MAIL FROM:<user%remote@local>", false, &cmd, &err),
	    0);
	CHECK_STR(cmd.addr.local, "user%remote");
	CHECK_STR(cmd.addr.domain, "local");

	CHECK_INT(parse("MAIL FROM:<a@b> SIZE=12345 BODY=8BITMIME "
	    "RET=hdrs ENVID=QQ+2B12 AUTH=<>", false, &cmd, &err), 0);
	CHECK_INT(cmd.size, 12345);
	CHECK_INT(cmd.body, SMTP_BODY_8BITMIME);
	CHECK_STR(cmd.ret, "HDRS");
	CHECK_STR(cmd.envid, "QQ+2B12");
	CHECK_STR(cmd.auth, "<>");

	/* several spaces between and after parameters */
	CHECK_INT(parse("MAIL FROM:<a@b>  size=0   body=7bit  ", false, &cmd,
	    &err), 0);
	CHECK_INT(cmd.size, 0);
	CHECK_INT(cmd.body, SMTP_BODY_7BIT);
	CHECK_INT(parse("MAIL FROM:<a@b> BODY=BinaryMIME RET=FULL", false,
	    &cmd, &err), 0);
	CHECK_INT(cmd.body, SMTP_BODY_BINARYMIME);
	CHECK_STR(cmd.ret, "FULL");

	/* 20 digits is legal; too big to count is kept as "too big" */
	CHECK_INT(parse("MAIL FROM:<a@b> SIZE=99999999999999999999", false,
	    &cmd, &err), 0);
	CHECK(cmd.size == 9223372036854775807LL);
	CHECK_INT(parse("MAIL FROM:<a@b> SIZE=9223372036854775807", false,
	    &cmd, &err), 0);
	CHECK(cmd.size == 9223372036854775807LL);
	CHECK_INT(parse("MAIL FROM:<a@b> SIZE=00000000000000000001", false,
	    &cmd, &err), 0);
	CHECK_INT(cmd.size, 1);

	/* AUTH= keeps the xtext as sent */
	CHECK_INT(parse("MAIL FROM:<a@b> AUTH=e+3Dmc2@example.com", false,
	    &cmd, &err), 0);
	CHECK_STR(cmd.auth, "e+3Dmc2@example.com");
}

static void
test_smtputf8(void)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;

	CHECK_INT(parse("MAIL FROM:<j\xc3\xb6rg@ex\xc3\xa4mple.de> SMTPUTF8",
	    false, &cmd, &err), 0);
	CHECK(cmd.smtputf8);
	CHECK(cmd.addr.has_utf8);
	CHECK_STR(cmd.addr.local, "j\xc3\xb6rg");
	CHECK_INT(parse("MAIL FROM:<a@b> smtputf8", false, &cmd, &err), 0);
	CHECK(cmd.smtputf8);
	CHECK(!cmd.addr.has_utf8);
	CHECK_INT(parse("RCPT TO:<j\xc3\xb6rg@example.de>", true, &cmd, &err),
	    0);
	CHECK(cmd.addr.has_utf8);
	/* the RCPT line has no SMTPUTF8 of its own */
	CHECK_INT(parse("RCPT TO:<a@b> SMTPUTF8", true, &cmd, &err), -1);
	CHECK_INT(err.code, 555);
}

static void
test_rcpt(void)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;

	CHECK_INT(parse("RCPT TO:<bob@example.org>", false, &cmd, &err), 0);
	CHECK_INT(cmd.verb, SMTP_VERB_RCPT);
	CHECK_STR(cmd.addr.local, "bob");
	CHECK_STR(cmd.notify, "");
	CHECK_STR(cmd.orcpt, "");
	CHECK_INT(parse("rcpt to: <Postmaster>", false, &cmd, &err), 0);
	CHECK_STR(cmd.addr.local, "Postmaster");
	CHECK_STR(cmd.addr.domain, "");
	CHECK_INT(parse("RCPT TO:<bob!remote@local>", false, &cmd, &err), 0);
	CHECK_STR(cmd.addr.local, "bob!remote");
	CHECK_STR(cmd.addr.domain, "local");
	CHECK_INT(parse("RCPT TO:<@a.example,@b.example:user@c.example>",
	    false, &cmd, &err), 0);
	CHECK_STR(cmd.addr.local, "user");
	CHECK_STR(cmd.addr.domain, "c.example");

	CHECK_INT(parse("RCPT TO:<a@b> NOTIFY=never", false, &cmd, &err), 0);
	CHECK_STR(cmd.notify, "NEVER");
	CHECK_INT(parse("RCPT TO:<a@b> NOTIFY=success,Failure,DELAY "
	    "ORCPT=rfc822;a+2Bb@example.com", false, &cmd, &err), 0);
	CHECK_STR(cmd.notify, "SUCCESS,FAILURE,DELAY");
	CHECK_STR(cmd.orcpt, "rfc822;a+2Bb@example.com");
	CHECK_INT(parse("RCPT TO:<a@b> NOTIFY=DELAY", false, &cmd, &err), 0);
	CHECK_STR(cmd.notify, "DELAY");
	CHECK_INT(parse("RCPT TO:<a@b> ORCPT=utf-8;j\xc3\xb6rg@example.de",
	    false, &cmd, &err), 0);
	CHECK_STR(cmd.orcpt, "utf-8;j\xc3\xb6rg@example.de");
}

static void
test_bdat(void)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;

	CHECK_INT(parse("BDAT 1000", false, &cmd, &err), 0);
	CHECK_INT(cmd.verb, SMTP_VERB_BDAT);
	CHECK_INT(cmd.chunk_size, 1000);
	CHECK(!cmd.is_last);
	CHECK_INT(parse("bdat 0 last", false, &cmd, &err), 0);
	CHECK_INT(cmd.chunk_size, 0);
	CHECK(cmd.is_last);
	CHECK_INT(parse("BDAT  42  LAST  ", false, &cmd, &err), 0);
	CHECK_INT(cmd.chunk_size, 42);
	CHECK(cmd.is_last);
	CHECK_INT(parse("BDAT 18446744073709551615 LAST", false, &cmd, &err),
	    0);
	CHECK(cmd.chunk_size == 18446744073709551615ULL);
	CHECK_INT(parse("BDAT 00000000000000000007", false, &cmd, &err), 0);
	CHECK_INT(cmd.chunk_size, 7);
}

static void
test_lengths(void)
{
	char line[SMTP_CMD_LINE_MAX + 10];
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;
	size_t n;

	/* longest argument kept */
	memcpy(line, "EHLO ", 5);
	memset(line + 5, 'h', SMTP_CMD_ARG_MAX);
	n = 5 + SMTP_CMD_ARG_MAX;
	CHECK_INT(smtp_cmd_parse(line, n, false, &cmd, &err), 0);
	CHECK_INT(strlen(cmd.arg), SMTP_CMD_ARG_MAX);
	line[n++] = 'h';
	CHECK_INT(smtp_cmd_parse(line, n, false, &cmd, &err), -1);
	CHECK_INT(err.code, 501);
	CHECK_STR(err.text, "Syntax: argument too long");
	memcpy(line, "NOOP ", 5);
	CHECK_INT(smtp_cmd_parse(line, n, false, &cmd, &err), 0);
	CHECK_INT(strlen(cmd.arg), SMTP_CMD_ARG_MAX);
	memcpy(line, "AUTH ", 5);
	CHECK_INT(smtp_cmd_parse(line, n, false, &cmd, &err), -1);
	CHECK_INT(err.code, 500);
	CHECK_STR(err.enhanced, "5.5.6");

	/* longest line */
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', sizeof(line) - 5);
	CHECK_INT(smtp_cmd_parse(line, SMTP_CMD_LINE_MAX, false, &cmd, &err),
	    0);
	CHECK_INT(smtp_cmd_parse(line, SMTP_CMD_LINE_MAX + 1, false, &cmd,
	    &err), -1);
	CHECK_INT(err.code, 500);
	CHECK_STR(err.text, "Error: line too long");

	/* ENVID: at most 100 characters (RFC 3461 §4.4) */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@b> ENVID=");
	memset(line + n, 'e', 100);
	CHECK_INT(smtp_cmd_parse(line, n + 100, false, &cmd, &err), 0);
	CHECK_INT(strlen(cmd.envid), 100);
	line[n + 100] = 'e';
	CHECK_INT(smtp_cmd_parse(line, n + 101, false, &cmd, &err), -1);
	CHECK_STR(err.text, "Syntax: ENVID longer than 100 characters");

	/* ORCPT and AUTH: at most SMTP_XTEXT_MAX */
	n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<a@b> ORCPT=r;");
	memset(line + n, 'o', SMTP_XTEXT_MAX - 2);
	CHECK_INT(smtp_cmd_parse(line, n + SMTP_XTEXT_MAX - 2, false, &cmd,
	    &err), 0);
	CHECK_INT(strlen(cmd.orcpt), SMTP_XTEXT_MAX);
	CHECK_INT(smtp_cmd_parse(line, n + SMTP_XTEXT_MAX - 1, false, &cmd,
	    &err), -1);
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@b> AUTH=");
	memset(line + n, 'a', SMTP_XTEXT_MAX + 1);
	CHECK_INT(smtp_cmd_parse(line, n + SMTP_XTEXT_MAX, false, &cmd, &err),
	    0);
	CHECK_INT(smtp_cmd_parse(line, n + SMTP_XTEXT_MAX + 1, false, &cmd,
	    &err), -1);

	/* a long unknown keyword is echoed shortened */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@b> ");
	memset(line + n, 'K', 300);
	CHECK_INT(smtp_cmd_parse(line, n + 300, false, &cmd, &err), -1);
	CHECK_INT(err.code, 555);
	CHECK(strlen(err.text) < 100);
}

/* A failed parse leaves no half-filled fields behind. */
static void
test_reset(void)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;

	CHECK_INT(parse("MAIL FROM:<a@b> SIZE=10 BOGUS", false, &cmd, &err),
	    -1);
	CHECK_INT(cmd.verb, SMTP_VERB_MAIL);
	CHECK_INT(cmd.size, -1);
	CHECK_STR(cmd.addr.local, "");
	CHECK_INT(parse("NOOP", false, &cmd, &err), 0);
	CHECK_INT(err.code, 0);
}

static void
test_verb_names(void)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;
	char line[64];

	CHECK_STR(smtp_verb_names[SMTP_VERB_UNKNOWN], "UNKNOWN");
	CHECK_STR(smtp_verb_names[SMTP_VERB_STARTTLS], "STARTTLS");
	for (int v = 1; v < SMTP_VERB_COUNT; v++) {
		const char *arg;

		CHECK(smtp_verb_names[v] != NULL);
		switch (v) {
		case SMTP_VERB_MAIL:
			arg = " FROM:<a@b>";
			break;
		case SMTP_VERB_RCPT:
			arg = " TO:<a@b>";
			break;
		case SMTP_VERB_BDAT:
			arg = " 1";
			break;
		case SMTP_VERB_DATA:
		case SMTP_VERB_RSET:
		case SMTP_VERB_QUIT:
		case SMTP_VERB_STARTTLS:
		case SMTP_VERB_NOOP:
		case SMTP_VERB_HELP:
			arg = "";
			break;
		default:
			arg = " x";
			break;
		}
		snprintf(line, sizeof(line), "%s%s", smtp_verb_names[v], arg);
		CHECK_INT(parse(line, false, &cmd, &err), 0);
		CHECK_INT(cmd.verb, v);
	}
}

int
main(void)
{
	RUN(test_ok_cases);
	RUN(test_bad_cases);
	RUN(test_nul_byte);
	RUN(test_mail);
	RUN(test_smtputf8);
	RUN(test_rcpt);
	RUN(test_bdat);
	RUN(test_lengths);
	RUN(test_reset);
	RUN(test_verb_names);
	T_EXIT();
}
