/*
 * header.c - header fields written by smtpgate. Layer: mail (pure; the
 * caller passes the time).
 */
#include "mail/header.h"

#include <string.h>

#include "lib/buf.h"

char *
header_date(time_t t, char *out, size_t size)
{
	struct tm tm;

	/* A time gmtime cannot represent (a corrupted state file's) gives
	 * the epoch rather than whatever was in tm. */
	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	if (strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0 &&
	    size)
		out[0] = '\0';
	return out;
}

/* Appends s with anything that could break the header made harmless. */
static void
put_clean(struct buf *out, const char *s, size_t max)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && n < max;
	    p++, n++)
		buf_putc(out, (*p < 0x21 || *p == 0x7f || *p == '(' ||
		    *p == ')') ? '_' : (char)*p);
}

void
header_received(struct buf *out, const char *helo, const char *client_addr,
    const char *hostname, const char *proto, const char *tls_info,
    const char *id, const char *for_rcpt, time_t now)
{
	char date[64];

	buf_puts(out, "Received: from ");
	put_clean(out, helo && *helo ? helo : "unknown", 255);
	buf_printf(out, " ([%s])\r\n\tby %s (smtpgate) with %s", client_addr,
	    hostname, proto);
	if (tls_info && *tls_info)
		buf_printf(out, "\r\n\t(using %s)", tls_info);
	buf_printf(out, " id %s", id);
	if (for_rcpt) {
		buf_puts(out, "\r\n\tfor <");
		put_clean(out, for_rcpt, 512);
		buf_putc(out, '>');
	}
	buf_printf(out, "; %s\r\n", header_date(now, date, sizeof(date)));
}

void
header_local_prefix(struct buf *out, const char *sender, const char *rcpt)
{
	buf_puts(out, "Return-Path: <");
	put_clean(out, sender, 512);
	buf_puts(out, ">\r\nDelivered-To: ");
	put_clean(out, rcpt, 512);
	buf_puts(out, "\r\n");
}
