/*
 * proxy.h - HAProxy's PROXY protocol, versions 1 and 2, as a pure
 * incremental parser: a listener with `proxy_protocol = yes` (SPEC §2, §6)
 * learns the real client address behind a load balancer from the header
 * the balancer sends before the first SMTP byte.
 * Reference: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
 */
#ifndef SMTPGATE_NET_PROXY_H
#define SMTPGATE_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct err;

/* The longest v1 line, CRLF included (proxy-protocol.txt §2.1). */
#define PROXY_V1_MAX		107
/*
 * The longest header we accept, v1 or v2. The protocol allows a v2 header
 * of 16 + 65535 bytes; we refuse more than this to bound what a session
 * buffers before it knows who the client is. proxy_parse never answers
 * PROXY_NEED_MORE once len >= PROXY_HEADER_MAX, so a caller that buffers
 * up to PROXY_HEADER_MAX bytes always gets a decision.
 */
#define PROXY_HEADER_MAX	4096

enum proxy_result {
	PROXY_NEED_MORE,
	PROXY_DONE,
	PROXY_ERROR,
};

struct proxy_info {
	/* v2 LOCAL or v1 UNKNOWN: keep the connection's own addresses */
	bool			is_local;
	struct sockaddr_storage	src, dst;	/* with ports, when !is_local */
};

/*
 * Looks at the first len bytes of a connection (buf may be NULL when len
 * is 0) and never at a byte past the end of the header, so the SMTP bytes
 * that follow it stay in the caller's buffer.
 *
 * PROXY_NEED_MORE: the bytes so far are a valid beginning of a header but
 * not a whole one; *used, *info and *e are untouched. Never returned when
 * len >= PROXY_HEADER_MAX.
 *
 * PROXY_DONE: *used is the length of the header, to drain (<= len), and
 * *info is filled. When info->is_local is false, src and dst hold a
 * struct sockaddr_in (TCP4) or sockaddr_in6 (TCP6) with the port in
 * network order; when it is true (v1 UNKNOWN, v2 LOCAL with any family,
 * v2 PROXY with family UNSPEC), both are zeroed (AF_UNSPEC) and the caller
 * keeps the connection's own addresses.
 *
 * PROXY_ERROR: not a valid PROXY header; *used and *info are untouched and
 * e->msg says what (quoting the peer's bytes only when they are all
 * digits, dots, colons or hex letters, so the text is safe to log), e.g.
 * "not a PROXY protocol header", "PROXY v1 line longer than 107 bytes",
 * "PROXY v1: unexpected byte 0x09 at offset 10 in the protocol",
 * "PROXY v1: bad source address 1.2.3.256", "PROXY v1: source port out
 * of range", "PROXY v2: unsupported version 3", "PROXY v2: unknown command
 * 0x2", "unsupported address family 0x31", "UDP is not supported",
 * "PROXY v2 header too long (5000 bytes, at most 4096)", "PROXY v2:
 * address block too short (8 bytes for TCP4, 12 needed)".
 * An error is reported as soon as the bytes seen rule out a valid header
 * (one byte that fits neither signature is enough), and once reported it
 * is reported again, identically, for any longer input.
 *
 * v1 is parsed strictly: "PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT\r\n"
 * with single spaces, addresses that inet_pton accepts for the family,
 * decimal ports 0-65535 without leading zeros (except "0"), or
 * "PROXY UNKNOWN" followed by CRLF or by a space and anything up to the
 * first CRLF. v2 TLVs are skipped, not checked.
 */
enum proxy_result	proxy_parse(const unsigned char *buf, size_t len,
			    struct proxy_info *info, size_t *used,
			    struct err *e);

#endif
