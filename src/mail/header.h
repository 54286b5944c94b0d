/*
 * header.h - header fields smtpgate writes: Received: (RFC 5321 §4.4),
 * Return-Path:/Delivered-To: for local delivery, and RFC 5322 dates.
 */
#ifndef SMTPGATE_MAIL_HEADER_H
#define SMTPGATE_MAIL_HEADER_H

#include <stddef.h>
#include <time.h>

struct buf;

/* RFC 5322 date-time ("Mon, 30 Nov 2026 07:41:04 +0000") into out. */
char	*header_date(time_t t, char *out, size_t size);
/*
 * Appends a Received: field, folded, ending in CRLF:
 *   Received: from HELO ([ADDR])
 *   	by HOSTNAME (smtpgate) with PROTO id ID
 *   	for <RCPT>; DATE
 * for_rcpt may be NULL (several recipients: the clause is left out).
 * Control characters in helo are replaced (it comes from the client).
 */
void	header_received(struct buf *out, const char *helo,
	    const char *client_addr, const char *hostname, const char *proto,
	    const char *tls_info, const char *id, const char *for_rcpt,
	    time_t now);
/* Appends "Return-Path: <SENDER>\r\nDelivered-To: RCPT\r\n". */
void	header_local_prefix(struct buf *out, const char *sender,
	    const char *rcpt);

#endif
