/*
 * dsn.c - delivery status notifications (RFC 3464 multipart/report): the
 * bounce and the delay warning sent to a message's envelope sender.
 * Layer: mail (pure: envelope and header bytes in, message text out; the
 * caller passes the clock). Owns nothing beyond the call.
 *
 * Everything copied into the notification comes from outside (addresses,
 * remote replies, the original header), so every byte goes through one of
 * the put_* helpers below, which drop CR/LF and controls (no header
 * injection), keep the output 7-bit unless the envelope had SMTPUTF8,
 * and fold so that no line exceeds 998 octets (RFC 5322 §2.1.1).
 * It must never decide whether to send: that is dsn_should_send() and the
 * scheduler.
 */
#include "mail/dsn.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "mail/envelope.h"
#include "mail/header.h"

const char *const dsn_kind_names[] = {
	[DSN_FAILED] = "failed",
	[DSN_DELAYED] = "delayed",
};

#define FOLD_WIDTH	78	/* RFC 5322 §2.1.1 "SHOULD" */
#define LINE_MAX_OCTETS	998	/* RFC 5322 §2.1.1 "MUST" */
#define HARD_BREAK	980	/* split point when there is no blank */
#define TEXT_WIDTH	72	/* the explanation for a person */
#define ADDR_OUT_MAX	512

_Static_assert(HARD_BREAK + 3 <= LINE_MAX_OCTETS,
    "a split line with its continuation blank and CRLF fits");

/* Length of the UTF-8 sequence a byte starts (1 for anything odd). */
static size_t
utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c < 0xf8)
		return 4;
	if (c >= 0xe0)
		return c < 0xf0 ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

/* True when the k bytes at p are one well-formed UTF-8 sequence. */
static bool
is_utf8_seq(const unsigned char *p, size_t k)
{
	if (k < 2)
		return false;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return false;
	return true;
}

/*
 * Appends at most max bytes of s on one line: controls (CR, LF, TAB, ...)
 * become blanks, runs of blanks one blank, leading blanks are dropped (so
 * that folding never makes a blank line), 8-bit bytes become '?' unless
 * is_utf8 and well-formed. A UTF-8 sequence is never cut in the middle.
 */
static void
put_clean(struct buf *out, const char *s, size_t max, bool is_utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	bool was_blank = true;
	size_t n = 0;

	while (*p && n < max) {
		size_t k = 1;

		if (*p <= 0x20 || *p == 0x7f) {
			if (!was_blank)
				buf_putc(out, ' ');
			was_blank = true;
		} else if (*p < 0x80) {
			buf_putc(out, (char)*p);
			was_blank = false;
		} else if (is_utf8 && is_utf8_seq(p, utf8_len(*p))) {
			k = utf8_len(*p);
			if (n + k > max)
				break;
			buf_append(out, p, k);
			was_blank = false;
		} else {
			buf_putc(out, '?');
			was_blank = false;
		}
		p += k;
		n += k;
	}
}

static bool
has_8bit(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p >= 0x80)
			return true;
	return false;
}

/* Backs a split point off the middle of a UTF-8 sequence. */
static size_t
char_start(const char *s, size_t i)
{
	while (i > 1 && ((unsigned char)s[i] & 0xc0) == 0x80)
		i--;
	return i;
}

/*
 * Appends one logical line (no CR or LF in it) followed by CRLF, folded
 * before a blank when longer than FOLD_WIDTH. A run without blanks longer
 * than HARD_BREAK is split with CRLF SP, which unfolds to an extra space:
 * a small price for a line every relay accepts.
 */
static void
put_folded(struct buf *out, const char *s, size_t len)
{
	while (len > FOLD_WIDTH) {
		size_t start = 0, cut, i;

		/* The last blank within the width after the first word. */
		while (start < len && (s[start] == ' ' || s[start] == '\t'))
			start++;
		for (i = FOLD_WIDTH; i > start; i--)
			if (s[i] == ' ' || s[i] == '\t')
				break;
		if (i > start)
			cut = i;
		else {
			/* else the first blank, if the word is not too long */
			for (i = FOLD_WIDTH + 1; i < len && i <= HARD_BREAK; i++)
				if (s[i] == ' ' || s[i] == '\t')
					break;
			if (i >= len)
				break;
			cut = i <= HARD_BREAK ? i : char_start(s, HARD_BREAK);
		}
		buf_append(out, s, cut);
		buf_puts(out, "\r\n");
		s += cut;
		len -= cut;
		if (*s != ' ' && *s != '\t') {
			/* hard break: the continuation needs its blank */
			buf_putc(out, ' ');
		}
	}
	buf_append(out, s, len);
	buf_puts(out, "\r\n");
}

/*
 * Appends text for a person, wrapped at TEXT_WIDTH: a break replaces a
 * blank, continuation lines start with indent blanks, and a word too long
 * for any line is split.
 */
static void
put_wrapped(struct buf *out, const char *s, size_t len, size_t indent)
{
	size_t width = TEXT_WIDTH, i;

	while (len > width) {
		for (i = width; i > 0 && s[i] != ' '; i--)
			;
		if (i > 0) {
			buf_append(out, s, i);
			s += i + 1;
			len -= i + 1;
		} else {
			for (i = width + 1; i < len && s[i] != ' ' &&
			    i < HARD_BREAK - indent; i++)
				;
			if (i >= len)
				break;
			if (s[i] == ' ') {
				buf_append(out, s, i);
				s += i + 1;
				len -= i + 1;
			} else {
				i = char_start(s, i);
				buf_append(out, s, i);
				s += i;
				len -= i;
			}
		}
		buf_puts(out, "\r\n");
		for (i = 0; i < indent; i++)
			buf_putc(out, ' ');
		width = TEXT_WIDTH - indent;
	}
	buf_append(out, s, len);
	buf_puts(out, "\r\n");
}

/* "Name: " + cleaned value, folded. */
static void
put_field(struct buf *out, const char *name, const char *value,
    size_t max, bool is_utf8)
{
	struct buf line;

	buf_init(&line);
	buf_printf(&line, "%s: ", name);
	put_clean(&line, value, max, is_utf8);
	put_folded(out, line.data, line.len);
	buf_clear(&line);
}

/* The envelope's arrival as a time_t (0 when out of range: converting a
 * double that does not fit is undefined). */
static time_t
arrival_time(const struct envelope *env)
{
	if (!(env->arrival > 0 && env->arrival < 1099511627776.0))
		return 0;
	return (time_t)env->arrival;
}

static void
put_date_field(struct buf *out, const char *name, time_t t)
{
	char date[64];

	buf_printf(out, "%s: %s\r\n", name, header_date(t, date, sizeof(date)));
}

/* class "." 1*3digit "." 1*3digit (RFC 3463 §2), n bytes of s. */
static bool
is_status(const char *s, size_t n)
{
	size_t i = 1, part;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
		return false;
	for (part = 0; part < 2; part++) {
		size_t digits = 0;

		if (i >= n || s[i++] != '.')
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4)
			i++, digits++;
		if (digits == 0 || digits > 3)
			return false;
	}
	return i == n;
}

/* True when text starts with a reply code: [2-5]dd then SP, '-' or end. */
static bool
is_smtp_reply(const char *s)
{
	return s != NULL && s[0] >= '2' && s[0] <= '5' &&
	    s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
	    (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

const char *
dsn_status_from_reply(const char *reply, bool permanent, char *out,
    size_t size)
{
	if (is_smtp_reply(reply)) {
		const char *s = reply + 3, *e;

		while (*s == ' ' || *s == '-')
			s++;
		for (e = s; *e && *e != ' ' && *e != '\t' && *e != '\r' &&
		    *e != '\n'; e++)
			;
		if (is_status(s, (size_t)(e - s)) && s[0] == reply[0]) {
			snprintf(out, size, "%.*s", (int)(e - s), s);
			return out;
		}
		if (reply[0] == '4' || reply[0] == '5') {
			snprintf(out, size, "%c.0.0", reply[0]);
			return out;
		}
	}
	snprintf(out, size, "%s", permanent ? "5.0.0" : "4.0.0");
	return out;
}

bool
dsn_should_send(const struct envelope *env, size_t rcpt_index,
    enum dsn_kind kind)
{
	const char *want = kind == DSN_FAILED ? "FAILURE" : "DELAY";
	const char *s, *e;

	if (env->sender == NULL || env->sender[0] == '\0' ||
	    rcpt_index >= env->nrcpts)
		return false;
	s = env->rcpts[rcpt_index].notify;
	if (s == NULL || *s == '\0')
		return true;	/* RFC 3461 §4.1: FAILURE,DELAY by default */
	for (;; s = e + 1) {
		e = strchr(s, ',');
		if (e == NULL)
			e = s + strlen(s);
		if ((size_t)(e - s) == strlen(want) &&
		    strncasecmp(s, want, (size_t)(e - s)) == 0)
			return true;
		if (*e == '\0')
			return false;	/* NEVER, or the word is not listed */
	}
}

/* Address that was being delivered to: the route target when remote. */
static const char *
final_addr(const struct rcpt *r)
{
	return r->kind == RCPT_REMOTE ? r->target : r->orig;
}

static const char *
rcpt_reply(const struct dsn_params *p, const struct dsn_rcpt *dr)
{
	const char *reply = dr->reply ? dr->reply :
	    p->env->rcpts[dr->index].reply;

	return reply && *reply ? reply : NULL;
}

static const char *
rcpt_status(const struct dsn_params *p, const struct dsn_rcpt *dr,
    char *tmp, size_t size)
{
	if (dr->status && is_status(dr->status, strlen(dr->status)))
		return dr->status;
	return dsn_status_from_reply(rcpt_reply(p, dr), p->kind == DSN_FAILED,
	    tmp, size);
}

/*
 * An xtext value (ENVID, the address of an ORCPT) decoded for display, or
 * NULL when it does not decode to something printable on one line.
 */
static char *
xtext_printable(const char *s, bool is_utf8)
{
	char *d = xtext_decode(s);

	if (d == NULL || *d == '\0') {
		free(d);
		return NULL;
	}
	for (const unsigned char *q = (unsigned char *)d; *q; q++)
		if (*q < 0x20 || *q == 0x7f || (*q >= 0x80 && !is_utf8)) {
			free(d);
			return NULL;
		}
	return d;
}

/* RFC 6533 §3: "utf-8" for an internationalized address. */
static const char *
addr_type(const char *addr, bool is_utf8)
{
	return is_utf8 && has_8bit(addr) ? "utf-8; " : "rfc822; ";
}

/* Original-Recipient from ORCPT "type;xtext" (RFC 3461 §6.3 (d)). */
static void
put_original_rcpt(struct buf *out, const char *orcpt, bool is_utf8)
{
	const char *semi = strchr(orcpt, ';');
	char *addr = NULL;
	struct buf v;

	buf_init(&v);
	if (semi && (size_t)(semi - orcpt) == 6 &&
	    strncasecmp(orcpt, "rfc822", 6) == 0)
		addr = xtext_printable(semi + 1, is_utf8);
	if (addr) {
		buf_puts(&v, "rfc822;");
		buf_puts(&v, addr);
	} else
		buf_puts(&v, orcpt);	/* other types: as the client sent it */
	put_field(out, "Original-Recipient", v.data, ADDR_OUT_MAX + 16,
	    is_utf8);
	free(addr);
	buf_clear(&v);
}

static void
put_rcpt_fields(struct buf *out, const struct dsn_params *p,
    const struct dsn_rcpt *dr, bool is_utf8)
{
	const struct rcpt *r = &p->env->rcpts[dr->index];
	const char *addr = final_addr(r), *reply = rcpt_reply(p, dr);
	char status[16];
	struct buf v;

	buf_init(&v);
	if (r->orcpt && *r->orcpt)
		put_original_rcpt(out, r->orcpt, is_utf8);
	buf_puts(&v, addr_type(addr, is_utf8));
	buf_puts(&v, addr);
	put_field(out, "Final-Recipient", v.data, ADDR_OUT_MAX + 16, is_utf8);
	buf_printf(out, "Action: %s\r\n", dsn_kind_names[p->kind]);
	buf_printf(out, "Status: %s\r\n",
	    rcpt_status(p, dr, status, sizeof(status)));
	if (dr->remote_mta && *dr->remote_mta) {
		buf_reset(&v);
		buf_puts(&v, "dns; ");
		buf_puts(&v, dr->remote_mta);
		put_field(out, "Remote-MTA", v.data, 300, false);
	}
	if (reply) {
		buf_reset(&v);
		/* Postfix's habit: a reason that is no SMTP reply gets an
		 * X- diagnostic type (RFC 3464 §2.3.6). */
		buf_puts(&v, is_smtp_reply(reply) ? "smtp; " : "X-Smtpgate; ");
		buf_puts(&v, reply);
		put_field(out, "Diagnostic-Code", v.data, DSN_DIAG_MAX + 16,
		    is_utf8);
	}
	if (r->last_try > 0)
		put_date_field(out, "Last-Attempt-Date", (time_t)r->last_try);
	if (p->kind == DSN_DELAYED && p->retry_until > 0)
		put_date_field(out, "Will-Retry-Until", p->retry_until);
	buf_clear(&v);
}

/* The message/delivery-status part's content (RFC 3464 §2.1). */
static void
build_status(struct buf *out, const struct dsn_params *p, bool is_utf8)
{
	const struct envelope *env = p->env;
	char *envid;
	struct buf v;

	buf_init(&v);
	if (env->envid && *env->envid) {
		envid = xtext_printable(env->envid, is_utf8);
		put_field(out, "Original-Envelope-Id", envid ? envid :
		    env->envid, 200, is_utf8);
		free(envid);
	}
	buf_puts(&v, "dns; ");
	buf_puts(&v, p->hostname);
	put_field(out, "Reporting-MTA", v.data, 300, false);
	put_field(out, "X-Smtpgate-Queue-ID", p->queue_id, 64, false);
	buf_reset(&v);
	buf_puts(&v, addr_type(env->sender ? env->sender : "", is_utf8));
	buf_puts(&v, env->sender ? env->sender : "");
	put_field(out, "X-Smtpgate-Sender", v.data, ADDR_OUT_MAX + 16,
	    is_utf8);
	if (arrival_time(env) > 0)
		put_date_field(out, "Arrival-Date", arrival_time(env));
	for (size_t i = 0; i < p->nrcpts; i++) {
		buf_puts(out, "\r\n");
		put_rcpt_fields(out, p, &p->rcpts[i], is_utf8);
	}
	buf_clear(&v);
}

/* Appends a paragraph: the words of s, wrapped at TEXT_WIDTH. */
static void
put_text(struct buf *out, const char *s)
{
	put_wrapped(out, s, strlen(s), 0);
}

/* One line per recipient: "<addr> (expanded from <orig>): reason". */
static void
put_rcpt_line(struct buf *out, const struct dsn_params *p,
    const struct dsn_rcpt *dr, bool is_utf8)
{
	const struct rcpt *r = &p->env->rcpts[dr->index];
	const char *addr = final_addr(r), *reply = rcpt_reply(p, dr);
	struct buf line;

	buf_init(&line);
	buf_putc(&line, '<');
	put_clean(&line, addr, ADDR_OUT_MAX, is_utf8);
	buf_putc(&line, '>');
	if (strcmp(addr, r->orig) != 0) {
		buf_puts(&line, " (expanded from <");
		put_clean(&line, r->orig, ADDR_OUT_MAX, is_utf8);
		buf_puts(&line, ">)");
	}
	buf_puts(&line, ": ");
	if (dr->remote_mta && *dr->remote_mta && reply &&
	    is_smtp_reply(reply)) {
		buf_puts(&line, "host ");
		put_clean(&line, dr->remote_mta, 255, false);
		buf_puts(&line, " said: ");
	}
	put_clean(&line, reply ? reply : (p->kind == DSN_FAILED ?
	    "delivery failed" : "delivery temporarily failed"), DSN_DIAG_MAX,
	    is_utf8);
	put_wrapped(out, line.data, line.len, 4);
	buf_clear(&line);
}

/* The text/plain part: what happened, to which recipients, what next. */
static void
build_text(struct buf *out, const struct dsn_params *p, bool is_utf8)
{
	char arrived[64], until[64];
	struct buf line;

	buf_init(&line);
	header_date(arrival_time(p->env), arrived, sizeof(arrived));
	buf_puts(&line, "This is the mail system at host ");
	put_clean(&line, p->hostname, 255, false);
	buf_puts(&line, ".");
	put_wrapped(out, line.data, line.len, 0);
	buf_puts(out, "\r\n");
	if (p->kind == DSN_FAILED) {
		put_text(out, "Your message could not be delivered to one or "
		    "more recipients, listed below with the reason. The mail "
		    "system has given up on them: it will not try again. The "
		    "header of your message is attached.");
	} else {
		header_date(p->retry_until, until, sizeof(until));
		put_text(out, "THIS IS A WARNING ONLY. YOU DO NOT NEED TO "
		    "RESEND YOUR MESSAGE.");
		buf_puts(out, "\r\n");
		buf_reset(&line);
		buf_printf(&line, "Your message could not be delivered yet to "
		    "the recipients listed below. The mail system will keep "
		    "trying until %s; if it still cannot deliver the message "
		    "by then, it will give up and send you a final notice.",
		    p->retry_until > 0 ? until : "the message expires");
		put_wrapped(out, line.data, line.len, 0);
	}
	buf_puts(out, "\r\n");
	buf_reset(&line);
	buf_puts(&line, "Queue ID: ");
	put_clean(&line, p->queue_id, 64, false);
	buf_printf(&line, ", received %s.", arrived);
	put_wrapped(out, line.data, line.len, 0);
	for (size_t i = 0; i < p->nrcpts; i++) {
		buf_puts(out, "\r\n");
		put_rcpt_line(out, p, &p->rcpts[i], is_utf8);
	}
	buf_clear(&line);
}

/*
 * The original header section, one line at a time, CRLF-terminated:
 * stops at the first empty line or after DSN_HEADERS_MAX bytes; NULs and
 * bare CRs become '?', as do 8-bit bytes unless is_utf8; lines over 998
 * octets are split with CRLF SP (a continuation, so no field is forged).
 */
static void
build_headers(struct buf *out, const char *h, size_t len, bool is_utf8)
{
	size_t i = 0;

	if (len > DSN_HEADERS_MAX)
		len = DSN_HEADERS_MAX;
	while (i < len) {
		const char *nl = memchr(h + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - h) : len, next = end + 1;
		size_t col = 0;

		if (end > i && h[end - 1] == '\r' && nl)
			end--;
		if (end == i)
			break;	/* the empty line that ends the header */
		for (size_t j = i; j < end; j++) {
			unsigned char c = (unsigned char)h[j];

			if (col >= HARD_BREAK && (c < 0x80 || c >= 0xc0)) {
				buf_puts(out, "\r\n ");
				col = 1;
			}
			if (c == '\0' || c == '\r' || (c >= 0x80 && !is_utf8))
				c = '?';
			buf_putc(out, (char)c);
			col++;
		}
		buf_puts(out, "\r\n");
		i = next;
	}
}

/* Bytes that may appear in a boundary (RFC 2046 §5.1.1 bcharsnospace). */
static bool
is_bchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("'()+_,-./:=?", c) != NULL;
}

/*
 * A boundary that occurs in none of the parts (RFC 2046 §5.1.1): the queue
 * id and a counter, so that the choice is deterministic for the tests.
 */
static void
choose_boundary(struct buf *b, const struct dsn_params *p,
    const struct buf *parts, size_t nparts)
{
	for (unsigned n = 0;; n++) {
		bool clash = false;

		buf_reset(b);
		buf_puts(b, "=_smtpgate_");
		for (const char *q = p->queue_id; *q && b->len < 40; q++)
			buf_putc(b, is_bchar(*q) ? *q : '_');
		buf_printf(b, "_%u", n);
		for (size_t i = 0; i < nparts && !clash; i++)
			clash = memmem(parts[i].data, parts[i].len, b->data,
			    b->len) != NULL;
		if (!clash)
			return;
	}
}

static void
put_header(struct buf *out, const struct dsn_params *p, const char *boundary,
    bool is_utf8)
{
	char date[64];
	const struct envelope *env = p->env;
	struct buf v;

	buf_init(&v);
	buf_puts(&v, "MAILER-DAEMON@");
	put_clean(&v, p->hostname, 255, false);
	buf_puts(&v, " (Mail Delivery System)");
	put_field(out, "From", v.data, 512, false);
	buf_reset(&v);
	buf_putc(&v, '<');
	put_clean(&v, env->sender ? env->sender : "", ADDR_OUT_MAX, is_utf8);
	buf_putc(&v, '>');
	put_field(out, "To", v.data, ADDR_OUT_MAX + 2, is_utf8);
	buf_printf(out, "Subject: %s\r\n", p->kind == DSN_FAILED ?
	    "Undelivered Mail Returned to Sender" :
	    "Delayed Mail (still being retried)");
	buf_printf(out, "Date: %s\r\n", header_date(p->now, date,
	    sizeof(date)));
	buf_reset(&v);
	if (p->message_id && *p->message_id)
		buf_puts(&v, p->message_id);
	else {
		buf_printf(&v, "<%lld.", (long long)p->now);
		put_clean(&v, p->queue_id, 64, false);
		buf_printf(&v, ".%c%zu@", p->kind == DSN_FAILED ? 'b' : 'd',
		    p->nrcpts ? p->rcpts[0].index : 0);
		put_clean(&v, p->hostname, 255, false);
		buf_putc(&v, '>');
	}
	put_field(out, "Message-ID", v.data, 512, false);
	buf_puts(out, "Auto-Submitted: auto-replied\r\n");	/* RFC 3834 §5 */
	buf_puts(out, "MIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	buf_printf(out, "Content-Transfer-Encoding: %s\r\n",
	    is_utf8 ? "8bit" : "7bit");
	buf_puts(out, "\r\n");
	buf_clear(&v);
}

static void
put_part(struct buf *out, const char *boundary, const char *description,
    const char *type, bool is_utf8, const struct buf *content)
{
	/* The CRLF before "--" belongs to the delimiter (RFC 2046 §5.1.1),
	 * so the content keeps its own last line end. */
	buf_printf(out, "\r\n--%s\r\n", boundary);
	buf_printf(out, "Content-Description: %s\r\n", description);
	buf_printf(out, "Content-Type: %s\r\n", type);
	if (is_utf8)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(out, "\r\n");
	buf_append(out, content->data, content->len);
}

void
dsn_format(struct buf *out, const struct dsn_params *p)
{
	/* RFC 6533: an SMTPUTF8 message gets the global-* types, raw UTF-8. */
	bool is_utf8 = p->env->smtputf8;
	struct buf parts[3], boundary;
	size_t nparts = 2;

	assert(p->nrcpts > 0);
	for (size_t i = 0; i < p->nrcpts; i++)
		assert(p->rcpts[i].index < p->env->nrcpts);
	for (size_t i = 0; i < 3; i++)
		buf_init(&parts[i]);
	buf_init(&boundary);
	build_text(&parts[0], p, is_utf8);
	build_status(&parts[1], p, is_utf8);
	if (p->headers && p->headers_len) {
		build_headers(&parts[2], p->headers, p->headers_len, is_utf8);
		if (parts[2].len)
			nparts = 3;
	}
	choose_boundary(&boundary, p, parts, nparts);

	put_header(out, p, boundary.data, is_utf8);
	buf_puts(out, "This is a MIME-encapsulated message.\r\n");
	put_part(out, boundary.data, "Notification", is_utf8 ?
	    "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
	    is_utf8, &parts[0]);
	put_part(out, boundary.data, "Delivery report", is_utf8 ?
	    "message/global-delivery-status" : "message/delivery-status",
	    is_utf8, &parts[1]);
	if (nparts == 3)
		put_part(out, boundary.data, p->kind == DSN_FAILED ?
		    "Undelivered Message Headers" : "Delayed Message Headers",
		    is_utf8 ? "message/global-headers" : "text/rfc822-headers",
		    is_utf8, &parts[2]);
	buf_printf(out, "\r\n--%s--\r\n", boundary.data);

	for (size_t i = 0; i < 3; i++)
		buf_clear(&parts[i]);
	buf_clear(&boundary);
}
