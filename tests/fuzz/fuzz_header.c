/*
 * fuzz_header.c - libFuzzer target for src/mail/header.c: the header
 * fields smtpgate writes into every message from the client's HELO
 * argument and addresses (untrusted), and header_date.
 *
 * Input: bytes 0-7 a time_t, byte 8 flags (bit 0 TLS info, bit 1 a for
 * clause), then NUL-separated helo, recipient, sender.
 * Checks, beyond the sanitizers:
 * - header_date, for any time_t, is "Www, DD Mmm YYYY HH:MM:SS +0000"
 *   (time 0 when gmtime cannot represent it) and, for years 1970-9999,
 *   reads back with strptime/timegm to the same time;
 * - Received: is "Received: from HELO ([ADDR])" then lines that start
 *   with a TAB ("by ...", "(using ...)", "for <RCPT>; DATE"), CRLF line
 *   ends only, no other control character, no NUL; HELO and RCPT are
 *   the input with every byte below '!', DEL and parentheses replaced
 *   by '_', cut at 255 and 512 bytes (so that no comment or field can
 *   be forged); without a for clause the date ends the "by" line;
 * - Return-Path:/Delivered-To: are exactly two lines with the sender and
 *   recipient cleaned the same way.
 */
/* fuzz-sources: src/mail/header.c src/lib/buf.c src/lib/mem.c src/lib/log.c src/lib/err.c */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "mail/header.h"

static const char *const days[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
};
static const char *const months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
	"Nov", "Dec",
};

static bool
in_list(const char *s, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(s, v[i], 3) == 0)
			return true;
	return false;
}

static bool
digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void
check_date(time_t t, const char *d)
{
	const char *y, *rest;
	size_t n = strlen(d);

	/* "Www, DD Mmm " YEAR " HH:MM:SS +0000" */
	if (n < 12 + 1 + 15 || !in_list(d, days, 7) || d[3] != ',' ||
	    d[4] != ' ' || !digits(d + 5, 2) || d[7] != ' ' ||
	    !in_list(d + 8, months, 12) || d[11] != ' ')
		abort();
	y = d + 12;
	rest = d + n - 15;
	if (*y == '-')
		y++;
	if (rest <= y || !digits(y, (size_t)(rest - y)) || rest[0] != ' ' ||
	    !digits(rest + 1, 2) || rest[3] != ':' || !digits(rest + 4, 2) ||
	    rest[6] != ':' || !digits(rest + 7, 2) ||
	    strcmp(rest + 9, " +0000") != 0)
		abort();
	if (t >= 0 && t <= 253402300799LL) {
		struct tm tm;
		const char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(d, "%a, %d %b %Y %H:%M:%S +0000", &tm);
		if (end == NULL || *end != '\0' || timegm(&tm) != t)
			abort();
	}
}

/* What put_clean makes of s. */
static void
clean(struct buf *b, const char *s, size_t max)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && n < max;
	    p++, n++)
		buf_putc(b, (*p < 0x21 || *p == 0x7f || *p == '(' ||
		    *p == ')') ? '_' : (char)*p);
}

static char *
next_field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul;
	char *s;

	if (*p >= end)
		return strdup("");
	nul = memchr(*p, '\0', (size_t)(end - *p));
	if (nul == NULL)
		nul = end;
	s = strndup((const char *)*p, (size_t)(nul - *p));
	if (s == NULL)
		abort();
	*p = nul < end ? nul + 1 : end;
	return s;
}

static void
check_controls(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		if (c == '\r' && i + 1 < b->len && b->data[i + 1] == '\n')
			continue;
		if (c == '\n' && i > 0 && b->data[i - 1] == '\r')
			continue;
		if (c == '\t' && i > 0 && b->data[i - 1] == '\n')
			continue;
		if (c < 0x20 || c == 0x7f)
			abort();
	}
	if (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 9, *end = data + size;
	char date[64], *helo, *rcpt, *sender;
	struct buf out, want;
	uint64_t u = 0;
	time_t t;
	bool tls, has_for;

	if (size < 9)
		return 0;
	for (int k = 0; k < 8; k++)
		u = u << 8 | data[k];
	t = (time_t)u;
	tls = data[8] & 1;
	has_for = data[8] & 2;
	helo = next_field(&p, end);
	rcpt = next_field(&p, end);
	sender = next_field(&p, end);

	memset(date, 'x', sizeof(date));
	if (header_date(t, date, sizeof(date)) != date)
		abort();
	check_date(t, date);

	buf_init(&out);
	buf_init(&want);
	header_received(&out, helo, "192.0.2.7", "mx.example.org", "ESMTPS",
	    tls ? "TLSv1.3 TLS_AES_256_GCM_SHA384" : NULL, "4ZkQ2m7Xb3p9",
	    has_for ? rcpt : NULL, t);
	check_controls(&out);
	buf_puts(&want, "Received: from ");
	clean(&want, *helo ? helo : "unknown", 255);
	buf_puts(&want, " ([192.0.2.7])\r\n\tby mx.example.org (smtpgate) "
	    "with ESMTPS");
	if (tls)
		buf_puts(&want, "\r\n\t(using TLSv1.3 "
		    "TLS_AES_256_GCM_SHA384)");
	buf_puts(&want, " id 4ZkQ2m7Xb3p9");
	if (has_for) {
		buf_puts(&want, "\r\n\tfor <");
		clean(&want, rcpt, 512);
		buf_putc(&want, '>');
	}
	buf_printf(&want, "; %s\r\n", date);
	if (out.len != want.len || memcmp(out.data, want.data, out.len) != 0)
		abort();

	buf_reset(&out);
	buf_reset(&want);
	header_local_prefix(&out, sender, rcpt);
	check_controls(&out);
	buf_puts(&want, "Return-Path: <");
	clean(&want, sender, 512);
	buf_puts(&want, ">\r\nDelivered-To: ");
	clean(&want, rcpt, 512);
	buf_puts(&want, "\r\n");
	if (out.len != want.len || memcmp(out.data, want.data, out.len) != 0)
		abort();

	buf_clear(&out);
	buf_clear(&want);
	free(helo);
	free(rcpt);
	free(sender);
	return 0;
}
