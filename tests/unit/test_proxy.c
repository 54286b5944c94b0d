/*
 * test_proxy.c - unit tests for src/net/proxy.c: tables of good and bad
 * PROXY v1 and v2 headers, each fed at every split point (every prefix is
 * copied into a buffer of exactly its size, so that AddressSanitizer
 * catches a read past len), with SMTP bytes after the header that must
 * stay untouched, TLVs skipped, IPv4 and IPv6, and the length limits.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "net/proxy.h"

#include "t.h"

/* A literal with its length, NUL bytes included. */
#define B(s)	(const unsigned char *)(s), sizeof(s) - 1

#define SIG	"\r\n\r\n\0\r\nQUIT\n"
#define SMTP	"EHLO client.example\r\n"
#define USED_UNSET	((size_t)-7)

struct good {
	const char		*name;
	const unsigned char	*in;
	size_t			 len;
	const char		*want;	/* as fmt_info writes it */
};

struct bad {
	const char		*name;
	const unsigned char	*in;
	size_t			 len;
	size_t			 err_at; /* shortest prefix refused */
	const char		*msg;
};

static const struct good goods[] = {
	{ "v1 tcp4", B("PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n"),
	    "192.0.2.1:56324 -> 198.51.100.7:25" },
	{ "v1 tcp4 port 0 and 65535",
	    B("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
	    "0.0.0.0:0 -> 255.255.255.255:65535" },
	{ "v1 tcp6", B("PROXY TCP6 2001:db8::1 2001:db8::25 40000 587\r\n"),
	    "[2001:db8::1]:40000 -> [2001:db8::25]:587" },
	{ "v1 tcp6 upper case and v4-mapped",
	    B("PROXY TCP6 2001:DB8::A ::ffff:192.0.2.9 1 2\r\n"),
	    "[2001:db8::a]:1 -> [::ffff:192.0.2.9]:2" },
	{ "v1 tcp6 exactly 107 bytes",
	    B("PROXY TCP6 1111:2222:3333:4444:5555:6666:255.255.255.255 "
	    "1111:2222:3333:4444:5555:6666:7777:8888 65535 10\r\n"),
	    "[1111:2222:3333:4444:5555:6666:ffff:ffff]:65535 -> "
	    "[1111:2222:3333:4444:5555:6666:7777:8888]:10" },
	{ "v1 unknown", B("PROXY UNKNOWN\r\n"), "local" },
	{ "v1 unknown with addresses",
	    B("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
	    "local" },
	{ "v1 unknown with anything",
	    B("PROXY UNKNOWN \x01\r\x7f\n\xff\r\n"), "local" },
	{ "v1 unknown 107 bytes",
	    B("PROXY UNKNOWN 4567890123456789012345678901234567890123456789"
	    "012345678901234567890123456789012345678901234\r\n"),
	    "local" },
	{ "v2 proxy tcp4", B(SIG "\x21\x11\x00\x0c"
	    "\xc0\x00\x02\x01" "\xc6\x33\x64\x07" "\xdc\x04" "\x00\x19"),
	    "192.0.2.1:56324 -> 198.51.100.7:25" },
	{ "v2 proxy tcp6", B(SIG "\x21\x21\x00\x24"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25"
	    "\x9c\x40" "\x02\x4b"),
	    "[2001:db8::1]:40000 -> [2001:db8::25]:587" },
	{ "v2 proxy tcp4 with TLVs", B(SIG "\x21\x11\x00\x1b"
	    "\x7f\x00\x00\x01" "\x7f\x00\x00\x02" "\x04\xd2" "\x00\x19"
	    "\x01\x00\x02" "h2"			/* PP2_TYPE_ALPN */
	    "\x04\x00\x04" "\0\0\0\0"		/* PP2_TYPE_NOOP */
	    "\x20\x00\x00"),			/* PP2_TYPE_SSL, empty */
	    "127.0.0.1:1234 -> 127.0.0.2:25" },
	{ "v2 proxy tcp6 with TLVs", B(SIG "\x21\x21\x00\x2b"
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\xff\xff" "\x00\x00"
	    "\x02\x00\x04" "mx.a"),		/* PP2_TYPE_AUTHORITY */
	    "[::1]:65535 -> [::1]:0" },
	{ "v2 local unspec", B(SIG "\x20\x00\x00\x00"), "local" },
	{ "v2 local ignores the family", B(SIG "\x20\x31\x00\x04" "abcd"),
	    "local" },
	{ "v2 local with tcp4 addresses", B(SIG "\x20\x11\x00\x0c"
	    "\xc0\x00\x02\x01" "\xc6\x33\x64\x07" "\xdc\x04" "\x00\x19"),
	    "local" },
	{ "v2 proxy unspec", B(SIG "\x21\x00\x00\x00"), "local" },
	{ "v2 proxy unspec with TLV", B(SIG "\x21\x00\x00\x03"
	    "\x04\x00\x00"), "local" },
};

static const struct bad bads[] = {
	{ "http", B("GET / HTTP/1.1\r\n"), 1, "not a PROXY protocol header" },
	{ "smtp", B("EHLO x\r\n"), 1, "not a PROXY protocol header" },
	{ "tls hello", B("\x16\x03\x01\x02\x00"), 1,
	    "not a PROXY protocol header" },
	{ "P then not PROXY", B("POST / HTTP/1.0\r\n"), 2,
	    "not a PROXY protocol header" },
	{ "lower case proxy", B("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 1,
	    "not a PROXY protocol header" },
	{ "PROXY without space", B("PROXY\r\n"), 6,
	    "not a PROXY protocol header" },
	{ "v2 signature, wrong byte", B("\r\n\r\n\0\r\nQUIX\n\x21\x11"), 11,
	    "not a PROXY protocol header" },
	{ "v2 signature, CRLF only", B("\r\n\r\nEHLO"), 5,
	    "not a PROXY protocol header" },

	{ "v1 two spaces", B("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 7,
	    "PROXY v1: unexpected byte 0x20 at offset 6 in the protocol" },
	{ "v1 tcp5", B("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), 10,
	    "PROXY v1: unexpected byte 0x35 at offset 9 in the protocol" },
	{ "v1 lower case tcp4", B("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), 7,
	    "PROXY v1: unexpected byte 0x74 at offset 6 in the protocol" },
	{ "v1 TCP44", B("PROXY TCP44 1.2.3.4 5.6.7.8 1 2\r\n"), 11,
	    "PROXY v1: unexpected byte 0x34 at offset 10 in the protocol" },
	{ "v1 tcp4 then CRLF", B("PROXY TCP4\r\n"), 11,
	    "PROXY v1: unexpected byte 0x0d at offset 10 in the protocol" },
	{ "v1 UNKNOWNX", B("PROXY UNKNOWNX\r\n"), 14,
	    "PROXY v1: unexpected byte 0x58 at offset 13 in the protocol" },
	{ "v1 unknown bare CR", B("PROXY UNKNOWN\rX\n"), 15,
	    "PROXY v1: unexpected byte 0x58 at offset 14 in the line end" },
	{ "v1 two spaces after protocol",
	    B("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), 12,
	    "PROXY v1: unexpected byte 0x20 at offset 11 in source address" },
	{ "v1 two spaces after source",
	    B("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), 20,
	    "PROXY v1: unexpected byte 0x20 at offset 19 in destination "
	    "address" },
	{ "v1 tab", B("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"), 11,
	    "PROXY v1: unexpected byte 0x09 at offset 10 in the protocol" },
	{ "v1 bad tcp4 address", B("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
	    21, "PROXY v1: bad source address 1.2.3.256" },
	{ "v1 tcp4 address with leading zero",
	    B("PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n"), 28,
	    "PROXY v1: bad destination address 5.6.7.08" },
	{ "v1 tcp4 address, three parts", B("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
	    17, "PROXY v1: bad source address 1.2.3" },
	{ "v1 tcp4 with a v6 address",
	    B("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), 12,
	    "PROXY v1: unexpected byte 0x3a at offset 11 in source address" },
	{ "v1 tcp6 with a v4 address",
	    B("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), 19,
	    "PROXY v1: bad source address 1.2.3.4" },
	{ "v1 tcp6 zone id", B("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), 19,
	    "PROXY v1: unexpected byte 0x25 at offset 18 in source address" },
	{ "v1 tcp4 address too long",
	    B("PROXY TCP4 1.2.3.4.5.6.7.8.9 5.6.7.8 1 2\r\n"), 27,
	    "PROXY v1: source address longer than 15 bytes" },
	{ "v1 port too big", B("PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n"), 32,
	    "PROXY v1: source port out of range" },
	{ "v1 port huge", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999999999999999"
	    "9999999999\r\n"), 34,
	    "PROXY v1: destination port out of range" },
	{ "v1 port leading zero", B("PROXY TCP4 1.2.3.4 5.6.7.8 025 25\r\n"),
	    29, "PROXY v1: unexpected byte 0x32 at offset 28 in source port" },
	{ "v1 port 00", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"), 31,
	    "PROXY v1: unexpected byte 0x30 at offset 30 in destination "
	    "port" },
	{ "v1 port sign", B("PROXY TCP4 1.2.3.4 5.6.7.8 +1 25\r\n"), 28,
	    "PROXY v1: unexpected byte 0x2b at offset 27 in source port" },
	{ "v1 port missing", B("PROXY TCP4 1.2.3.4 5.6.7.8  25\r\n"), 28,
	    "PROXY v1: unexpected byte 0x20 at offset 27 in source port" },
	{ "v1 one port", B("PROXY TCP4 1.2.3.4 5.6.7.8 25\r\n"), 30,
	    "PROXY v1: unexpected byte 0x0d at offset 29 in source port" },
	{ "v1 three ports", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), 31,
	    "PROXY v1: unexpected byte 0x20 at offset 30 in destination "
	    "port" },
	{ "v1 space before CRLF", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), 31,
	    "PROXY v1: unexpected byte 0x20 at offset 30 in destination "
	    "port" },
	{ "v1 LF only", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), 31,
	    "PROXY v1: unexpected byte 0x0a at offset 30 in destination "
	    "port" },
	{ "v1 CR only", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rEHLO\r\n"), 32,
	    "PROXY v1: unexpected byte 0x45 at offset 31 in the line end" },
	{ "v1 NUL", B("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), 19,
	    "PROXY v1: unexpected byte 0x00 at offset 18 in source address" },
	{ "v1 tcp6 108 bytes",
	    B("PROXY TCP6 1111:2222:3333:4444:5555:6666:255.255.255.255 "
	    "1111:2222:3333:4444:5555:6666:7777:8888 65535 100\r\n"), 107,
	    "PROXY v1 line longer than 107 bytes" },
	{ "v1 unknown 108 bytes",
	    B("PROXY UNKNOWN 4567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345\r\n"),
	    107, "PROXY v1 line longer than 107 bytes" },

	{ "v2 version 1", B(SIG "\x11\x11\x00\x0c"), 13,
	    "PROXY v2: unsupported version 1" },
	{ "v2 version 3", B(SIG "\x31\x11\x00\x0c"), 13,
	    "PROXY v2: unsupported version 3" },
	{ "v2 command 2", B(SIG "\x22\x11\x00\x0c"), 13,
	    "PROXY v2: unknown command 0x2" },
	{ "v2 command f", B(SIG "\x2f\x00\x00\x00"), 13,
	    "PROXY v2: unknown command 0xf" },
	{ "v2 udp4", B(SIG "\x21\x12\x00\x0c"), 14, "UDP is not supported" },
	{ "v2 udp6", B(SIG "\x21\x22\x00\x24"), 14, "UDP is not supported" },
	{ "v2 unix stream", B(SIG "\x21\x31\x00\xd8"), 14,
	    "unsupported address family 0x31" },
	{ "v2 unix dgram", B(SIG "\x21\x32\x00\xd8"), 14,
	    "unsupported address family 0x32" },
	{ "v2 inet unspec transport", B(SIG "\x21\x10\x00\x0c"), 14,
	    "unsupported address family 0x10" },
	{ "v2 unspec stream", B(SIG "\x21\x01\x00\x00"), 14,
	    "unsupported address family 0x01" },
	{ "v2 family 4", B(SIG "\x21\x41\x00\x00"), 14,
	    "unsupported address family 0x41" },
	{ "v2 tcp4 short", B(SIG "\x21\x11\x00\x08" "\x7f\0\0\x01\x7f\0\0\x01"),
	    16, "PROXY v2: address block too short (8 bytes for TCP4, "
	    "12 needed)" },
	{ "v2 tcp6 with tcp4 length", B(SIG "\x21\x21\x00\x0c"
	    "\x7f\0\0\x01\x7f\0\0\x01\x04\xd2\x00\x19"), 16,
	    "PROXY v2: address block too short (12 bytes for TCP6, "
	    "36 needed)" },
	{ "v2 tcp4 empty", B(SIG "\x21\x11\x00\x00"), 16,
	    "PROXY v2: address block too short (0 bytes for TCP4, "
	    "12 needed)" },
	{ "v2 4097 bytes", B(SIG "\x21\x11\x0f\xf1"), 16,
	    "PROXY v2 header too long (4097 bytes, at most 4096)" },
	{ "v2 largest", B(SIG "\x20\x00\xff\xff"), 16,
	    "PROXY v2 header too long (65551 bytes, at most 4096)" },
};

/* "ADDR:PORT -> ADDR:PORT" ("[v6]:port"), or "local". */
static const char *
fmt_info(const struct proxy_info *info, char *out, size_t size)
{
	const struct sockaddr_storage *ss[2] = { &info->src, &info->dst };
	char host[2][INET6_ADDRSTRLEN];
	unsigned port[2];

	if (info->is_local) {
		snprintf(out, size, "local");
		return out;
	}
	for (int i = 0; i < 2; i++) {
		if (ss[i]->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ss[i];

			inet_ntop(AF_INET, &sin->sin_addr, host[i],
			    sizeof(host[i]));
			port[i] = ntohs(sin->sin_port);
		} else if (ss[i]->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ss[i];

			inet_ntop(AF_INET6, &sin6->sin6_addr, host[i],
			    sizeof(host[i]));
			port[i] = ntohs(sin6->sin6_port);
		} else
			return "bad family";
	}
	if (ss[0]->ss_family == AF_INET)
		snprintf(out, size, "%s:%u -> %s:%u", host[0], port[0],
		    host[1], port[1]);
	else
		snprintf(out, size, "[%s]:%u -> [%s]:%u", host[0], port[0],
		    host[1], port[1]);
	return out;
}

/*
 * Parses the first n bytes of in from a buffer of exactly n bytes, so
 * that a read past n is an ASan error.
 */
static enum proxy_result
parse_exact(const unsigned char *in, size_t n, struct proxy_info *info,
    size_t *used, struct err *e)
{
	unsigned char *copy = NULL;
	enum proxy_result r;

	if (n > 0) {
		copy = malloc(n);
		if (copy == NULL)
			abort();
		memcpy(copy, in, n);
	}
	r = proxy_parse(copy, n, info, used, e);
	free(copy);
	return r;
}

/* Every strict prefix needs more and leaves *used, *info and *e alone. */
static void
check_prefixes(const char *name, const unsigned char *in, size_t upto)
{
	struct proxy_info info, untouched;
	struct err e;
	size_t used;

	for (size_t k = 0; k < upto; k++) {
		memset(&info, 0xa5, sizeof(info));
		untouched = info;
		used = USED_UNSET;
		err_set(&e, "untouched");
		if (parse_exact(in, k, &info, &used, &e) != PROXY_NEED_MORE) {
			fprintf(stderr, "  %s: prefix %zu: not NEED_MORE "
			    "(%s)\n", name, k, e.msg);
			CHECK(0);
			return;
		}
		CHECK_INT(used, USED_UNSET);
		CHECK(memcmp(&info, &untouched, sizeof(info)) == 0);
		CHECK_STR(e.msg, "untouched");
	}
}

static void
test_good(void)
{
	struct proxy_info info;
	char text[256];
	struct err e;
	size_t used;

	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];

		err_clear(&e);
		used = USED_UNSET;
		if (parse_exact(g->in, g->len, &info, &used, &e) !=
		    PROXY_DONE) {
			fprintf(stderr, "  %s: %s\n", g->name, e.msg);
			CHECK(0);
			continue;
		}
		CHECK_INT(used, g->len);
		CHECK_STR(fmt_info(&info, text, sizeof(text)), g->want);
		check_prefixes(g->name, g->in, g->len);
	}
}

/* The same header followed by SMTP bytes: same answer, same *used. */
static void
test_good_trailing(void)
{
	static const char *tails[] = {
		SMTP, "\r\n", "PROXY TCP4 6.6.6.6 6.6.6.6 6 6\r\n",
		SIG "\x21\x11\x00\x0c", "\0", "\xff\xff\xff\xff",
	};
	struct proxy_info info;
	unsigned char buf[512];
	char text[256];
	struct err e;
	size_t used, tlen;

	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];

		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			/* SIG and "\0" hold NUL bytes: strlen is wrong. */
			tlen = t == 3 ? sizeof(SIG "\x21\x11\x00\x0c") - 1 :
			    t == 4 ? 1 : strlen(tails[t]);
			memcpy(buf, g->in, g->len);
			memcpy(buf + g->len, tails[t], tlen);
			err_clear(&e);
			used = USED_UNSET;
			if (parse_exact(buf, g->len + tlen, &info, &used,
			    &e) != PROXY_DONE) {
				fprintf(stderr, "  %s + tail %zu: %s\n",
				    g->name, t, e.msg);
				CHECK(0);
				continue;
			}
			CHECK_INT(used, g->len);
			CHECK_STR(fmt_info(&info, text, sizeof(text)),
			    g->want);
			CHECK(memcmp(buf + used, tails[t], tlen) == 0);
		}
	}
}

/*
 * Refused from exactly err_at bytes on, with the same text for every
 * longer input, and never before.
 */
static void
test_bad(void)
{
	struct proxy_info info, untouched;
	struct err e;
	size_t used;

	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];

		if (b->err_at > b->len) {
			fprintf(stderr, "  %s: err_at past the input\n",
			    b->name);
			CHECK(0);
			continue;
		}
		check_prefixes(b->name, b->in, b->err_at);
		for (size_t k = b->err_at; k <= b->len; k++) {
			memset(&info, 0x5a, sizeof(info));
			untouched = info;
			used = USED_UNSET;
			err_clear(&e);
			if (parse_exact(b->in, k, &info, &used, &e) !=
			    PROXY_ERROR) {
				fprintf(stderr, "  %s: prefix %zu: not "
				    "PROXY_ERROR\n", b->name, k);
				CHECK(0);
				break;
			}
			CHECK_STR(e.msg, b->msg);
			CHECK_INT(used, USED_UNSET);
			CHECK(memcmp(&info, &untouched, sizeof(info)) == 0);
		}
	}
}

static void
test_empty(void)
{
	struct proxy_info info;
	struct err e;
	size_t used = USED_UNSET;

	err_clear(&e);
	CHECK_INT(proxy_parse(NULL, 0, &info, &used, &e), PROXY_NEED_MORE);
	CHECK_INT(used, USED_UNSET);
}

/* The sockaddrs are whole: family, port in network order, zero padding. */
static void
test_sockaddr(void)
{
	static const unsigned char v1[] =
	    "PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n";
	static const unsigned char v2[] = SIG "\x21\x21\x00\x24"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25"
	    "\x9c\x40" "\x02\x4b";
	struct sockaddr_storage want;
	struct sockaddr_in *sin = (struct sockaddr_in *)&want;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&want;
	struct proxy_info info;
	struct err e;
	size_t used;

	CHECK_INT(proxy_parse(v1, sizeof(v1) - 1, &info, &used, &e),
	    PROXY_DONE);
	CHECK(!info.is_local);
	memset(&want, 0, sizeof(want));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(56324);
	sin->sin_addr.s_addr = htonl(0xc0000201);
	CHECK(memcmp(&info.src, &want, sizeof(want)) == 0);
	sin->sin_port = htons(25);
	sin->sin_addr.s_addr = htonl(0xc6336407);
	CHECK(memcmp(&info.dst, &want, sizeof(want)) == 0);

	CHECK_INT(proxy_parse(v2, sizeof(v2) - 1, &info, &used, &e),
	    PROXY_DONE);
	CHECK(!info.is_local);
	memset(&want, 0, sizeof(want));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(40000);
	inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr);
	CHECK(memcmp(&info.src, &want, sizeof(want)) == 0);
	sin6->sin6_port = htons(587);
	inet_pton(AF_INET6, "2001:db8::25", &sin6->sin6_addr);
	CHECK(memcmp(&info.dst, &want, sizeof(want)) == 0);

	/* is_local: both zeroed. */
	memset(&info, 0xff, sizeof(info));
	CHECK_INT(proxy_parse((const unsigned char *)"PROXY UNKNOWN\r\n", 15,
	    &info, &used, &e), PROXY_DONE);
	CHECK(info.is_local);
	memset(&want, 0, sizeof(want));
	CHECK(memcmp(&info.src, &want, sizeof(want)) == 0);
	CHECK(memcmp(&info.dst, &want, sizeof(want)) == 0);
	memset(&info, 0xff, sizeof(info));
	CHECK_INT(proxy_parse((const unsigned char *)SIG "\x20\x00\x00\x00", 16,
	    &info, &used, &e), PROXY_DONE);
	CHECK(info.is_local);
	CHECK(memcmp(&info.src, &want, sizeof(want)) == 0);
	CHECK(memcmp(&info.dst, &want, sizeof(want)) == 0);
}

/*
 * The v2 size limit: a 4096-byte header (TLVs up to the end) is taken,
 * every prefix of it needs more; one more byte of length is refused.
 */
static void
test_v2_limit(void)
{
	static const unsigned char head[] = SIG "\x21\x11\x0f\xf0"
	    "\x0a\x00\x00\x01" "\x0a\x00\x00\x02" "\x30\x39" "\x00\x19";
	unsigned char *buf;
	struct proxy_info info;
	char text[256];
	struct err e;
	size_t used, n = PROXY_HEADER_MAX + sizeof(SMTP) - 1;

	if ((buf = malloc(n)) == NULL)
		abort();
	memset(buf, 0, n);
	memcpy(buf, head, sizeof(head) - 1);
	/* One NOOP TLV covering the rest of the header. */
	buf[28] = 0x04;
	buf[29] = (PROXY_HEADER_MAX - 31) >> 8;
	buf[30] = (PROXY_HEADER_MAX - 31) & 0xff;
	memcpy(buf + PROXY_HEADER_MAX, SMTP, sizeof(SMTP) - 1);
	CHECK_INT(parse_exact(buf, PROXY_HEADER_MAX - 1, &info, &used, &e),
	    PROXY_NEED_MORE);
	CHECK_INT(parse_exact(buf, PROXY_HEADER_MAX, &info, &used, &e),
	    PROXY_DONE);
	CHECK_INT(used, PROXY_HEADER_MAX);
	CHECK_STR(fmt_info(&info, text, sizeof(text)),
	    "10.0.0.1:12345 -> 10.0.0.2:25");
	used = 0;
	CHECK_INT(parse_exact(buf, n, &info, &used, &e), PROXY_DONE);
	CHECK_INT(used, PROXY_HEADER_MAX);
	buf[15]++;
	CHECK_INT(parse_exact(buf, n, &info, &used, &e), PROXY_ERROR);
	CHECK_STR(e.msg, "PROXY v2 header too long (4097 bytes, at most 4096)");
	free(buf);
}

/*
 * Every TCP4 and TCP6 v2 header with any address bytes parses; the
 * addresses and ports come out as sent (a walk over byte values).
 */
static void
test_v2_addresses(void)
{
	unsigned char buf[16 + 36];
	struct proxy_info info;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&info.src;
	struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&info.dst;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&info.src;
	struct sockaddr_in *d4 = (struct sockaddr_in *)&info.dst;
	struct err e;
	size_t used;

	for (unsigned v = 0; v < 256; v += 17) {
		memcpy(buf, SIG "\x21\x21\x00\x24", 16);
		for (size_t i = 16; i < sizeof(buf); i++)
			buf[i] = (unsigned char)(v + i);
		CHECK_INT(proxy_parse(buf, sizeof(buf), &info, &used, &e),
		    PROXY_DONE);
		CHECK(memcmp(&s6->sin6_addr, buf + 16, 16) == 0);
		CHECK(memcmp(&d6->sin6_addr, buf + 32, 16) == 0);
		CHECK(memcmp(&s6->sin6_port, buf + 48, 2) == 0);
		CHECK(memcmp(&d6->sin6_port, buf + 50, 2) == 0);

		buf[13] = 0x11;
		buf[15] = 0x0c;
		CHECK_INT(proxy_parse(buf, 28, &info, &used, &e), PROXY_DONE);
		CHECK_INT(used, 28);
		CHECK(memcmp(&s4->sin_addr, buf + 16, 4) == 0);
		CHECK(memcmp(&d4->sin_addr, buf + 20, 4) == 0);
		CHECK(memcmp(&s4->sin_port, buf + 24, 2) == 0);
		CHECK(memcmp(&d4->sin_port, buf + 26, 2) == 0);
	}
}

int
main(void)
{
	RUN(test_good);
	RUN(test_good_trailing);
	RUN(test_bad);
	RUN(test_empty);
	RUN(test_sockaddr);
	RUN(test_v2_limit);
	RUN(test_v2_addresses);
	T_EXIT();
}
