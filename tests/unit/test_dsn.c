/* Unit tests: mail/dsn.c - bounces and delay warnings (RFC 3464). */
#include "t.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "mail/dsn.h"
#include "mail/envelope.h"

#define HOST	"mx.example.test"
#define QID	"0001A2B3C4D5E0001"
#define NOW	1764571264	/* a day after arrival */

static const char orig_headers[] =
    "Received: from client.example ([192.0.2.1])\r\n"
    "\tby mx.example.test (smtpgate) with ESMTP id 0001A2B3C4D5E0001;\r\n"
    "\tSun, 30 Nov 2025 06:41:04 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@remote.example, carol@remote.example\r\n"
    "Subject: lunch\r\n"
    "Message-ID: <lunch.1@example.org>\r\n"
    "\r\n"
    "This body must not be returned.\r\n";

static void
make_env(struct envelope *env)
{
	size_t i;

	envelope_init(env);
	env->arrival = 1764484864.25;
	env->sender = xstrdup("alice@example.org");
	env->envid = xstrdup("QQ+2B314");
	i = envelope_add_rcpt(env, RCPT_REMOTE, "bob@remote.example",
	    "bob@remote.example", NULL, "rfc822;bob+2Bx@remote.example");
	env->rcpts[i].status = RCPT_BOUNCED;
	env->rcpts[i].attempts = 1;
	env->rcpts[i].last_try = 1764484870;
	env->rcpts[i].reply = xstrdup("550 5.1.1 <bob@remote.example>: "
	    "Recipient address rejected: User unknown");
	i = envelope_add_rcpt(env, RCPT_REMOTE, "carol@remote.example",
	    "carol@local.example", "FAILURE", NULL);
	env->rcpts[i].status = RCPT_BOUNCED;
	env->rcpts[i].last_try = 1764484871;
	env->rcpts[i].reply = xstrdup("554 Transaction failed");
	i = envelope_add_rcpt(env, RCPT_REMOTE, "dave@slow.example",
	    "dave@slow.example", "DELAY,FAILURE", NULL);
	env->rcpts[i].status = RCPT_DEFERRED;
	env->rcpts[i].attempts = 7;
	env->rcpts[i].last_try = 1764571200;
	env->rcpts[i].reply = xstrdup("451 4.3.0 Try again later");
}

static void
params(struct dsn_params *p, const struct envelope *env, enum dsn_kind kind,
    const struct dsn_rcpt *rcpts, size_t n)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->hostname = HOST;
	p->queue_id = QID;
	p->env = env;
	p->rcpts = rcpts;
	p->nrcpts = n;
	p->headers = orig_headers;
	p->headers_len = sizeof(orig_headers) - 1;
	p->now = NOW;
	p->retry_until = 1764916864;
}

/* CRLF only, no line over 998 octets, 7-bit unless allow_8bit. */
static bool
lines_ok(const struct buf *b, bool allow_8bit)
{
	size_t col = 0;

	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		if (c == '\n') {
			if (i == 0 || b->data[i - 1] != '\r')
				return false;
			col = 0;
			continue;
		}
		if (c == '\r' && (i + 1 >= b->len || b->data[i + 1] != '\n'))
			return false;
		if (c == '\0' || (c >= 0x80 && !allow_8bit))
			return false;
		if (c != '\r' && ++col > 998)
			return false;
	}
	return b->len >= 2 && b->data[b->len - 1] == '\n';
}

/* True when "\r\n" line "\r\n" occurs in s (line is a whole line). */
static bool
has_line(const char *s, const char *line)
{
	char *pat = xasprintf("\r\n%s\r\n", line);
	bool found = strstr(s, pat) != NULL;

	free(pat);
	return found;
}

static size_t
count(const char *s, const char *what)
{
	size_t n = 0;

	for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

/* The text with folding undone (RFC 5322 §2.2.3: CRLF before a blank). */
static char *
unfold(const char *s)
{
	struct buf b;

	buf_init(&b);
	for (; *s; s++) {
		if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' ||
		    s[2] == '\t')) {
			s++;
			continue;
		}
		buf_putc(&b, *s);
	}
	return buf_release(&b);
}

/* The boundary="..." value of the top-level Content-Type, or NULL. */
static char *
boundary_of(const char *msg)
{
	const char *b = strstr(msg, "boundary=\""), *e;

	if (b == NULL)
		return NULL;
	b += strlen("boundary=\"");
	e = strchr(b, '"');
	return e ? xstrndup(b, (size_t)(e - b)) : NULL;
}

/*
 * Splits a multipart body into its parts (each "headers\r\n\r\ncontent"),
 * checking the delimiter lines. Returns the number of parts, up to max.
 */
static size_t
split_parts(const char *msg, const char *boundary, char **parts, size_t max)
{
	char *delim = xasprintf("\r\n--%s\r\n", boundary);
	char *close = xasprintf("\r\n--%s--\r\n", boundary);
	const char *p = strstr(msg, delim), *end = strstr(msg, close);
	size_t n = 0;

	CHECK(p != NULL && end != NULL && p < end);
	while (p && end && p < end && n < max) {
		const char *start = p + strlen(delim);
		const char *next = strstr(start, delim);

		if (next == NULL || next > end)
			next = end;
		parts[n++] = xstrndup(start, (size_t)(next - start));
		p = next == end ? NULL : next;
	}
	if (end)
		CHECK_STR(end + strlen(close), "");	/* nothing after it */
	free(delim);
	free(close);
	return n;
}

static void
free_parts(char **parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(parts[i]);
}

/* The blank-line separated groups of a delivery-status content. */
static size_t
split_groups(const char *part, char **groups, size_t max)
{
	const char *p = strstr(part, "\r\n\r\n"), *e;
	size_t n = 0;

	if (p == NULL)
		return 0;
	p += 4;		/* past the part's own header */
	while (*p && n < max) {
		e = strstr(p, "\r\n\r\n");
		if (e == NULL) {
			groups[n++] = xstrdup(p);
			break;
		}
		groups[n++] = xstrndup(p, (size_t)(e - p + 2));
		p = e + 4;
	}
	return n;
}

static void
test_failed_structure(void)
{
	struct envelope env;
	struct dsn_rcpt r[2] = {
		{ .index = 0, .remote_mta = "mx1.remote.example" },
		{ .index = 1, .remote_mta = "mx1.remote.example" },
	};
	struct dsn_params p;
	struct buf out;
	char *bnd, *parts[5], *groups[6], *hdr;
	size_t n, g;

	make_env(&env);
	params(&p, &env, DSN_FAILED, r, 2);
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));

	/* the message header */
	hdr = xstrndup(out.data, (size_t)(strstr(out.data, "\r\n\r\n") -
	    out.data) + 2);
	CHECK(strncmp(hdr, "From: MAILER-DAEMON@" HOST
	    " (Mail Delivery System)\r\n", 50) == 0);
	CHECK(has_line(hdr, "To: <alice@example.org>"));
	CHECK(has_line(hdr, "Subject: Undelivered Mail Returned to Sender"));
	CHECK(has_line(hdr, "Date: Mon, 01 Dec 2025 06:41:04 +0000"));
	CHECK(has_line(hdr, "Message-ID: <1764571264." QID ".b0@" HOST ">"));
	CHECK(has_line(hdr, "Auto-Submitted: auto-replied"));
	CHECK(has_line(hdr, "MIME-Version: 1.0"));
	CHECK(strstr(hdr, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"") != NULL);
	free(hdr);

	bnd = boundary_of(out.data);
	CHECK(bnd != NULL);
	if (bnd == NULL)
		goto done;
	CHECK_STR(bnd, "=_smtpgate_" QID "_0");
	n = split_parts(out.data, bnd, parts, 5);
	CHECK_INT(n, 3);
	if (n != 3)
		goto parts_done;
	CHECK(strstr(parts[0], "Content-Type: text/plain; "
	    "charset=us-ascii\r\n") != NULL);
	CHECK(strstr(parts[0], "\r\n<bob@remote.example>: host "
	    "mx1.remote.example said: 550 5.1.1\r\n    <bob@remote.example>: "
	    "Recipient address rejected: User unknown\r\n") != NULL);
	CHECK(strstr(parts[0], "\r\n<carol@remote.example> (expanded from "
	    "<carol@local.example>): host\r\n    mx1.remote.example said: 554 "
	    "Transaction failed\r\n") != NULL);
	CHECK(strstr(parts[0], "dave@") == NULL);
	CHECK(strstr(parts[0], "has given up on them") != NULL);

	CHECK(strncmp(parts[1], "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", 79) == 0);
	g = split_groups(parts[1], groups, 6);
	CHECK_INT(g, 3);
	if (g == 3) {
		CHECK(strncmp(groups[0], "Original-Envelope-Id: QQ+314\r\n",
		    30) == 0);
		CHECK(has_line(groups[0], "Reporting-MTA: dns; " HOST));
		CHECK(has_line(groups[0], "X-Smtpgate-Queue-ID: " QID));
		CHECK(has_line(groups[0], "Arrival-Date: Sun, 30 Nov 2025 "
		    "06:41:04 +0000"));
		CHECK(strncmp(groups[1], "Original-Recipient: "
		    "rfc822;bob+x@remote.example\r\n", 48) == 0);
		CHECK(has_line(groups[1], "Final-Recipient: rfc822; "
		    "bob@remote.example"));
		CHECK(has_line(groups[1], "Action: failed"));
		CHECK(has_line(groups[1], "Status: 5.1.1"));
		CHECK(has_line(groups[1], "Remote-MTA: dns; mx1.remote.example"));
		CHECK(has_line(groups[1], "Diagnostic-Code: smtp; 550 5.1.1 "
		    "<bob@remote.example>: Recipient address"));
		CHECK(has_line(groups[1], " rejected: User unknown"));
		CHECK(has_line(groups[1], "Last-Attempt-Date: Sun, 30 Nov 2025 "
		    "06:41:10 +0000"));
		CHECK(strstr(groups[1], "Will-Retry-Until") == NULL);
		CHECK(strncmp(groups[2], "Final-Recipient: rfc822; "
		    "carol@remote.example\r\n", 47) == 0);
		CHECK(strstr(groups[2], "Original-Recipient") == NULL);
		CHECK(has_line(groups[2], "Status: 5.0.0"));
		CHECK(has_line(groups[2], "Diagnostic-Code: smtp; 554 "
		    "Transaction failed"));
	}
	free_parts(groups, g);

	CHECK(strstr(parts[2], "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from client.example") != NULL);
	CHECK(strstr(parts[2], "Message-ID: <lunch.1@example.org>\r\n") !=
	    NULL);
	CHECK(strstr(out.data, "This body must not be returned") == NULL);
parts_done:
	free_parts(parts, n);
done:
	free(bnd);
	buf_clear(&out);
	envelope_clear(&env);
}

static void
test_delayed(void)
{
	struct envelope env;
	struct dsn_rcpt r = { .index = 2, .remote_mta = "mx.slow.example" };
	struct dsn_params p;
	struct buf out;
	char *bnd, *parts[5];
	size_t n;

	make_env(&env);
	params(&p, &env, DSN_DELAYED, &r, 1);
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(has_line(out.data, "Subject: Delayed Mail (still being "
	    "retried)"));
	CHECK(has_line(out.data, "Message-ID: <1764571264." QID ".d2@" HOST
	    ">"));
	CHECK(has_line(out.data, "Action: delayed"));
	CHECK(has_line(out.data, "Status: 4.3.0"));
	CHECK(has_line(out.data, "Will-Retry-Until: Fri, 05 Dec 2025 06:41:04 "
	    "+0000"));
	CHECK(has_line(out.data, "Last-Attempt-Date: Mon, 01 Dec 2025 "
	    "06:40:00 +0000"));
	CHECK(strstr(out.data, "THIS IS A WARNING ONLY") != NULL);
	/* the sentence is folded; look for its pieces */
	CHECK(strstr(out.data, "keep trying until Fri, 05 Dec 2025") != NULL);
	CHECK(strstr(out.data, "<bob@") == NULL);
	bnd = boundary_of(out.data);
	if (bnd) {
		n = split_parts(out.data, bnd, parts, 5);
		CHECK_INT(n, 3);
		if (n == 3)
			CHECK(strstr(parts[2], "Content-Description: Delayed "
			    "Message Headers\r\n") != NULL);
		free_parts(parts, n);
	}
	free(bnd);

	/* an explicit status and Message-ID win; no headers: two parts */
	r.status = "4.4.1";
	r.reply = "connect to mx.slow.example[192.0.2.9]:25: Connection "
	    "refused";
	r.remote_mta = NULL;
	p.message_id = "<given@" HOST ">";
	p.headers = NULL;
	p.headers_len = 0;
	buf_reset(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(has_line(out.data, "Message-ID: <given@" HOST ">"));
	CHECK(has_line(out.data, "Status: 4.4.1"));
	CHECK(strstr(out.data, "Remote-MTA") == NULL);
	CHECK(strstr(out.data, "\r\nDiagnostic-Code: X-Smtpgate; connect to "
	    "mx.slow.example[192.0.2.9]:25:") != NULL);
	CHECK(strstr(out.data, "rfc822-headers") == NULL);
	bnd = boundary_of(out.data);
	if (bnd) {
		n = split_parts(out.data, bnd, parts, 5);
		CHECK_INT(n, 2);
		free_parts(parts, n);
	}
	free(bnd);
	buf_clear(&out);
	envelope_clear(&env);
}

/* Replies longer than a line: folded at blanks, split where there are none. */
static void
test_long_lines(void)
{
	struct envelope env;
	struct dsn_rcpt r[2] = { { .index = 0 }, { .index = 1 } };
	struct dsn_params p;
	struct buf out, reply, word;
	char *flat;

	make_env(&env);
	buf_init(&reply);
	buf_puts(&reply, "550 5.7.1 ");
	for (int i = 0; i < 300; i++)
		buf_printf(&reply, "word%d ", i);
	free(env.rcpts[0].reply);
	env.rcpts[0].reply = buf_release(&reply);
	buf_init(&word);
	buf_puts(&word, "550-5.2.2 ");
	for (int i = 0; i < 1500; i++)
		buf_putc(&word, (char)('a' + i % 26));
	buf_puts(&word, "\r\n550 5.2.2 mailbox full");
	free(env.rcpts[1].reply);
	env.rcpts[1].reply = buf_release(&word);

	params(&p, &env, DSN_FAILED, r, 2);
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(has_line(out.data, "Status: 5.7.1"));
	CHECK(has_line(out.data, "Status: 5.2.2"));
	flat = unfold(out.data);
	CHECK(strstr(flat, "\r\nDiagnostic-Code: smtp; 550 5.7.1 word0 word1 "
	    "word2 ") != NULL);
	/* the reply is cut at DSN_DIAG_MAX, so not every word comes through */
	CHECK(strstr(flat, "word299") == NULL);
	CHECK(strstr(flat, "word200") != NULL);
	/* the multi-line reply's CRLF became a blank, not a new field */
	CHECK(strstr(out.data, "\r\n550 5.2.2 mailbox full") == NULL);
	CHECK(strstr(flat, "qr 550 5.2.2 mailbox full\r\n") != NULL);
	free(flat);
	buf_clear(&out);
	envelope_clear(&env);
}

/* Texts from outside cannot add header fields or DSN fields. */
static void
test_injection(void)
{
	struct envelope env;
	struct dsn_rcpt r = { .index = 0,
	    .remote_mta = "evil.example\r\nX-Injected: 1" };
	struct dsn_params p;
	struct buf out;

	make_env(&env);
	free(env.rcpts[0].reply);
	env.rcpts[0].reply = xstrdup("550 no\r\nAction: delivered\r\n\r\n"
	    "X-Injected: 2");
	free(env.sender);
	env.sender = xstrdup("alice@example.org>\r\nBcc: <victim@x");
	free(env.envid);
	env.envid = xstrdup("a+0D+0AX-Injected:+203");	/* decodes to CRLF */
	params(&p, &env, DSN_FAILED, &r, 1);
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(strstr(out.data, "\r\nX-Injected") == NULL);
	CHECK(strstr(out.data, "\r\nAction: delivered") == NULL);
	CHECK(strstr(out.data, "\r\nBcc:") == NULL);
	CHECK(has_line(out.data, "Original-Envelope-Id: "
	    "a+0D+0AX-Injected:+203"));
	CHECK_INT(count(out.data, "\r\nAction: "), 1);
	buf_clear(&out);
	envelope_clear(&env);
}

/* The boundary is never a string found in the original header. */
static void
test_boundary_clash(void)
{
	static const char trap[] =
	    "Subject: =_smtpgate_" QID "_0\n"
	    "X-Trap: --=_smtpgate_" QID "_1--\n"
	    "\n";
	struct envelope env;
	struct dsn_rcpt r = { .index = 0 };
	struct dsn_params p;
	struct buf out;
	char *bnd, *parts[5];
	size_t n;

	make_env(&env);
	params(&p, &env, DSN_FAILED, &r, 1);
	p.headers = trap;
	p.headers_len = sizeof(trap) - 1;
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	bnd = boundary_of(out.data);
	CHECK_STR(bnd, "=_smtpgate_" QID "_2");
	if (bnd) {
		n = split_parts(out.data, bnd, parts, 5);
		CHECK_INT(n, 3);
		if (n == 3) {
			/* bare LF became CRLF */
			CHECK(strstr(parts[2], "\r\n\r\nSubject: =_smtpgate_"
			    QID "_0\r\nX-Trap: --=_smtpgate_" QID "_1--\r\n")
			    != NULL);
		}
		free_parts(parts, n);
	}
	free(bnd);
	buf_clear(&out);
	envelope_clear(&env);
}

/* NUL, bare CR, 8-bit and over-long lines in the original header. */
static void
test_header_section(void)
{
	struct envelope env;
	struct dsn_rcpt r = { .index = 0 };
	struct dsn_params p;
	struct buf out, h;
	const char *s;

	make_env(&env);
	buf_init(&h);
	buf_puts(&h, "Subject: caf\xc3\xa9 a\rb\r\n");
	buf_append(&h, "X-Nul: a\0b\r\n", 12);
	buf_puts(&h, "X-Long: ");
	for (int i = 0; i < 2500; i++)
		buf_putc(&h, 'x');
	buf_puts(&h, "\r\nX-Last: 1");	/* no line end: still copied */
	params(&p, &env, DSN_FAILED, &r, 1);
	p.headers = h.data;
	p.headers_len = h.len;
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(strstr(out.data, "\r\nSubject: caf?? a?b\r\n") != NULL);
	CHECK(strstr(out.data, "\r\nX-Nul: a?b\r\n") != NULL);
	s = strstr(out.data, "\r\nX-Long: xxx");
	CHECK(s != NULL);
	if (s)
		CHECK(strncmp(strstr(s + 2, "\r\n"), "\r\n xxx", 6) == 0);
	CHECK(strstr(out.data, "\r\nX-Last: 1\r\n") != NULL);
	buf_clear(&out);

	/* the copy stops at DSN_HEADERS_MAX */
	buf_reset(&h);
	for (int i = 0; buf_printf(&h, "X-Many-%d: %0100d\r\n", i, 0),
	    h.len < 2 * DSN_HEADERS_MAX; i++)
		;
	p.headers = h.data;
	p.headers_len = h.len;
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(out.len < DSN_HEADERS_MAX + 8192);
	CHECK(strstr(out.data, "X-Many-0:") != NULL);
	buf_clear(&out);
	buf_clear(&h);
	envelope_clear(&env);
}

/* An SMTPUTF8 envelope: RFC 6533 types and raw UTF-8. */
static void
test_utf8(void)
{
	static const char hdr[] = "Subject: caf\xc3\xa9\r\n\r\n";
	struct envelope env;
	struct dsn_rcpt r = { .index = 0 };
	struct dsn_params p;
	struct buf out;
	size_t i;

	envelope_init(&env);
	env.arrival = 1764484864;
	env.smtputf8 = true;
	env.sender = xstrdup("j\xc3\xb6rg@example.org");
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "\xe7\x94\xa8\xe6\x88\xb7@"
	    "example.cn", "\xe7\x94\xa8\xe6\x88\xb7@example.cn", NULL, NULL);
	env.rcpts[i].reply = xstrdup("550 5.1.1 unknown \xff user");
	params(&p, &env, DSN_FAILED, &r, 1);
	p.headers = hdr;
	p.headers_len = sizeof(hdr) - 1;
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, true));
	CHECK(has_line(out.data, "To: <j\xc3\xb6rg@example.org>"));
	CHECK(has_line(out.data, "Content-Type: text/plain; charset=utf-8"));
	CHECK(has_line(out.data, "Content-Type: "
	    "message/global-delivery-status"));
	CHECK(has_line(out.data, "Content-Type: message/global-headers"));
	CHECK(has_line(out.data, "Final-Recipient: utf-8; "
	    "\xe7\x94\xa8\xe6\x88\xb7@example.cn"));
	CHECK(has_line(out.data, "Subject: caf\xc3\xa9"));
	/* malformed UTF-8 is still replaced */
	CHECK(has_line(out.data, "Diagnostic-Code: smtp; 550 5.1.1 unknown ? "
	    "user"));
	buf_clear(&out);
	envelope_clear(&env);
}

static void
test_should_send(void)
{
	struct envelope env;
	size_t i;

	make_env(&env);
	/* 0: no NOTIFY, 1: FAILURE, 2: DELAY,FAILURE */
	CHECK(dsn_should_send(&env, 0, DSN_FAILED));
	CHECK(dsn_should_send(&env, 0, DSN_DELAYED));
	CHECK(dsn_should_send(&env, 1, DSN_FAILED));
	CHECK(!dsn_should_send(&env, 1, DSN_DELAYED));
	CHECK(dsn_should_send(&env, 2, DSN_FAILED));
	CHECK(dsn_should_send(&env, 2, DSN_DELAYED));
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "e@x", "e@x", "NEVER", NULL);
	CHECK(!dsn_should_send(&env, i, DSN_FAILED));
	CHECK(!dsn_should_send(&env, i, DSN_DELAYED));
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "f@x", "f@x", "SUCCESS",
	    NULL);
	CHECK(!dsn_should_send(&env, i, DSN_FAILED));
	CHECK(!dsn_should_send(&env, i, DSN_DELAYED));
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "g@x", "g@x",
	    "success,delay", NULL);
	CHECK(!dsn_should_send(&env, i, DSN_FAILED));
	CHECK(dsn_should_send(&env, i, DSN_DELAYED));
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "h@x", "h@x", "DELAYED",
	    NULL);	/* not the word DELAY */
	CHECK(!dsn_should_send(&env, i, DSN_DELAYED));
	CHECK(!dsn_should_send(&env, 99, DSN_FAILED));
	/* the null sender never gets one: no bounce of a bounce */
	free(env.sender);
	env.sender = xstrdup("");
	CHECK(!dsn_should_send(&env, 0, DSN_FAILED));
	CHECK(!dsn_should_send(&env, 2, DSN_DELAYED));
	free(env.sender);
	env.sender = NULL;
	CHECK(!dsn_should_send(&env, 0, DSN_FAILED));
	envelope_clear(&env);
}

static void
test_status_from_reply(void)
{
	char s[16];

	CHECK_STR(dsn_status_from_reply("550 5.1.1 <x>: User unknown", true,
	    s, sizeof(s)), "5.1.1");
	CHECK_STR(dsn_status_from_reply("550-5.7.26 unauthenticated", false,
	    s, sizeof(s)), "5.7.26");
	CHECK_STR(dsn_status_from_reply("452 4.2.2 Mailbox full", true,
	    s, sizeof(s)), "4.2.2");
	CHECK_STR(dsn_status_from_reply("554 Transaction failed", false,
	    s, sizeof(s)), "5.0.0");
	CHECK_STR(dsn_status_from_reply("421 closing", true, s, sizeof(s)),
	    "4.0.0");
	CHECK_STR(dsn_status_from_reply("550", true, s, sizeof(s)), "5.0.0");
	/* class mismatch: the reply code wins (RFC 3463 §2) */
	CHECK_STR(dsn_status_from_reply("550 4.1.1 odd", true, s, sizeof(s)),
	    "5.0.0");
	/* not enhanced codes */
	CHECK_STR(dsn_status_from_reply("550 5.1 short", true, s, sizeof(s)),
	    "5.0.0");
	CHECK_STR(dsn_status_from_reply("550 5.1.1234 long", true, s,
	    sizeof(s)), "5.0.0");
	CHECK_STR(dsn_status_from_reply("451 4.3.0; x", true, s, sizeof(s)),
	    "4.0.0");
	/* no reply code at all */
	CHECK_STR(dsn_status_from_reply("connection refused", true, s,
	    sizeof(s)), "5.0.0");
	CHECK_STR(dsn_status_from_reply("connection refused", false, s,
	    sizeof(s)), "4.0.0");
	CHECK_STR(dsn_status_from_reply(NULL, false, s, sizeof(s)), "4.0.0");
	CHECK_STR(dsn_status_from_reply("5500 5.1.1 x", false, s, sizeof(s)),
	    "4.0.0");
	CHECK_STR(dsn_kind_names[DSN_DELAYED], "delayed");
}

/* Exit status of tests/integration/dsn_check.py on msg, -1 if not run. */
static int
python_check(const struct buf *msg)
{
	char path[] = "/tmp/test_dsn.XXXXXX", *cmd;
	int fd, rc;

	fd = mkstemp(path);
	CHECK(fd != -1);
	if (fd == -1)
		return -1;
	CHECK(write(fd, msg->data, msg->len) == (ssize_t)msg->len);
	CHECK(close(fd) == 0);
	cmd = xasprintf("/usr/bin/python3 tests/integration/dsn_check.py %s "
	    ">/dev/null", path);
	rc = system(cmd);
	free(cmd);
	(void)unlink(path);
	return rc;
}

/*
 * An independent parser, Python's email package, reads each kind of
 * notification as RFC 3464 (multipart/report, report-type delivery-status,
 * a delivery-status part with one group per recipient).
 */
static void
test_python_parses(void)
{
	static const char hdr8[] = "Subject: caf\xc3\xa9\r\n\r\n";
	struct envelope env;
	struct dsn_rcpt r[2] = { { .index = 0, .remote_mta = "mx1.example" },
	    { .index = 1 } }, d = { .index = 2 };
	struct dsn_params p;
	struct buf out, reply;
	size_t i;

	if (access("tests/integration/dsn_check.py", R_OK) != 0 ||
	    access("/usr/bin/python3", X_OK) != 0) {
		printf("# skipped: run from the top of the tree, with python3\n");
		return;
	}
	make_env(&env);
	buf_init(&out);
	params(&p, &env, DSN_FAILED, r, 2);
	dsn_format(&out, &p);
	CHECK_INT(python_check(&out), 0);

	buf_reset(&out);
	params(&p, &env, DSN_DELAYED, &d, 1);
	dsn_format(&out, &p);
	CHECK_INT(python_check(&out), 0);

	/* long folded reply, no header section */
	buf_init(&reply);
	buf_puts(&reply, "550 5.7.1 ");
	for (int k = 0; k < 2000; k++)
		buf_putc(&reply, k % 97 ? 'x' : ' ');
	free(env.rcpts[0].reply);
	env.rcpts[0].reply = buf_release(&reply);
	buf_reset(&out);
	params(&p, &env, DSN_FAILED, r, 1);
	p.headers = NULL;
	dsn_format(&out, &p);
	CHECK_INT(python_check(&out), 0);
	envelope_clear(&env);

	/* SMTPUTF8: global types */
	envelope_init(&env);
	env.arrival = 1764484864;
	env.smtputf8 = true;
	env.sender = xstrdup("j\xc3\xb6rg@example.org");
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "\xe7\x94\xa8@example.cn",
	    "\xe7\x94\xa8@example.cn", NULL, "utf-8;\xe7\x94\xa8@example.cn");
	env.rcpts[i].reply = xstrdup("550 5.1.1 unknown");
	i = envelope_add_rcpt(&env, RCPT_REMOTE, "x@example.cn",
	    "x@example.cn", NULL, NULL);
	env.rcpts[i].reply = xstrdup("550 5.1.1 unknown too");
	buf_reset(&out);
	params(&p, &env, DSN_FAILED, r, 2);
	p.headers = hdr8;
	p.headers_len = sizeof(hdr8) - 1;
	dsn_format(&out, &p);
	CHECK_INT(python_check(&out), 0);

	/* and the checker does fail on something that is no DSN */
	buf_reset(&out);
	buf_puts(&out, "From: a@b\r\nSubject: hi\r\n\r\nhello\r\n");
	CHECK(python_check(&out) != 0);
	buf_clear(&out);
	envelope_clear(&env);
}

/*
 * Regression (fuzz_dsn/fuzz_header): times from a corrupted state file
 * or envelope are not converted blindly. A last_try that gmtime cannot
 * represent gave strftime an uninitialized struct tm (header_date), and
 * an arrival of 1e300 was cast to time_t (undefined behaviour).
 */
static void
test_bad_times(void)
{
	struct envelope env;
	struct dsn_rcpt r = { .index = 0 };
	struct dsn_params p;
	struct buf out;

	make_env(&env);
	env.rcpts[0].last_try = 0x7fffffffffffffffLL;
	env.arrival = 1e300;
	params(&p, &env, DSN_FAILED, &r, 1);
	buf_init(&out);
	dsn_format(&out, &p);
	CHECK(lines_ok(&out, false));
	CHECK(has_line(out.data, "Last-Attempt-Date: "
	    "Thu, 01 Jan 1970 00:00:00 +0000"));
	CHECK(strstr(out.data, "Arrival-Date:") == NULL);
	buf_clear(&out);
	envelope_clear(&env);
}

int
main(void)
{
	RUN(test_failed_structure);
	RUN(test_delayed);
	RUN(test_long_lines);
	RUN(test_injection);
	RUN(test_boundary_clash);
	RUN(test_header_section);
	RUN(test_utf8);
	RUN(test_should_send);
	RUN(test_status_from_reply);
	RUN(test_python_parses);
	RUN(test_bad_times);
	T_EXIT();
}
