/*
 * fuzz_proxy.c - libFuzzer target for proxy_parse (PROXY protocol v1/v2).
 *
 * The input is the first bytes of a connection. Checks, beyond the
 * sanitizers (each prefix is parsed from a buffer of exactly its size, so
 * a read past len is caught):
 * - feeding the input byte by byte gives PROXY_NEED_MORE up to some
 *   length, then a decision that stays the same for every longer input
 *   (same *used and info, or same error text);
 * - PROXY_DONE: *used <= len, the header is whole (a v1 line ends with
 *   CRLF and fits in 107 bytes, a v2 header in PROXY_HEADER_MAX), and
 *   the addresses are a TCP4 or TCP6 pair, or zero when is_local;
 * - PROXY_NEED_MORE and PROXY_ERROR leave *used and info untouched, an
 *   error has a text, and no input of PROXY_HEADER_MAX bytes needs more;
 * - the addresses, written again as a v1 line and as a v2 header, parse
 *   back into the same info.
 */
/* fuzz-sources: src/net/proxy.c src/lib/err.c */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "net/proxy.h"

#define USED_UNSET	((size_t)-7)

struct outcome {
	enum proxy_result	r;
	size_t			used;
	struct proxy_info	info;
	struct err		e;
};

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* Parses n bytes from an exact copy; checks what must stay untouched. */
static void
parse(const uint8_t *data, size_t n, struct outcome *o)
{
	struct proxy_info untouched;
	unsigned char *copy = NULL;

	if (n > 0) {
		if ((copy = malloc(n)) == NULL)
			abort();
		memcpy(copy, data, n);
	}
	memset(&o->info, 0xa5, sizeof(o->info));
	untouched = o->info;
	o->used = USED_UNSET;
	err_set(&o->e, "untouched");
	o->r = proxy_parse(copy, n, &o->info, &o->used, &o->e);
	free(copy);

	switch (o->r) {
	case PROXY_NEED_MORE:
		if (n >= PROXY_HEADER_MAX || (n >= PROXY_V1_MAX &&
		    data[0] == 'P'))
			abort();
		if (strcmp(o->e.msg, "untouched") != 0)
			abort();
		/* FALLTHROUGH */
	case PROXY_ERROR:
		if (o->used != USED_UNSET ||
		    memcmp(&o->info, &untouched, sizeof(untouched)) != 0)
			abort();
		if (o->r == PROXY_ERROR && (o->e.msg[0] == '\0' ||
		    strcmp(o->e.msg, "untouched") == 0))
			abort();
		break;
	case PROXY_DONE:
		if (o->used > n || o->used < 15 || o->used > PROXY_HEADER_MAX)
			abort();
		break;
	default:
		abort();
	}
}

static bool
same(const struct outcome *a, const struct outcome *b)
{
	if (a->r != b->r)
		return false;
	if (a->r == PROXY_DONE)
		return a->used == b->used &&
		    memcmp(&a->info, &b->info, sizeof(a->info)) == 0;
	if (a->r == PROXY_ERROR)
		return strcmp(a->e.msg, b->e.msg) == 0;
	return true;
}

static void
check_done(const uint8_t *data, const struct outcome *o)
{
	static const struct sockaddr_storage zero;
	const struct proxy_info *info = &o->info;

	if (data[0] == 'P') {
		if (o->used > PROXY_V1_MAX || data[o->used - 2] != '\r' ||
		    data[o->used - 1] != '\n')
			abort();
	} else if (memcmp(data, v2_sig, sizeof(v2_sig)) != 0 ||
	    o->used != 16 + ((size_t)data[14] << 8 | data[15]))
		abort();
	if (info->is_local) {
		if (memcmp(&info->src, &zero, sizeof(zero)) != 0 ||
		    memcmp(&info->dst, &zero, sizeof(zero)) != 0)
			abort();
	} else if (info->src.ss_family != info->dst.ss_family ||
	    (info->src.ss_family != AF_INET &&
	    info->src.ss_family != AF_INET6))
		abort();
}

/* Writes info as a v1 line into out; returns its length. */
static size_t
write_v1(const struct proxy_info *info, char *out, size_t size)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	unsigned sport, dport;
	int n;

	if (info->src.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&info->src;
		const struct sockaddr_in *d = (const void *)&info->dst;

		inet_ntop(AF_INET, &s->sin_addr, src, sizeof(src));
		inet_ntop(AF_INET, &d->sin_addr, dst, sizeof(dst));
		sport = ntohs(s->sin_port);
		dport = ntohs(d->sin_port);
	} else {
		const struct sockaddr_in6 *s = (const void *)&info->src;
		const struct sockaddr_in6 *d = (const void *)&info->dst;

		inet_ntop(AF_INET6, &s->sin6_addr, src, sizeof(src));
		inet_ntop(AF_INET6, &d->sin6_addr, dst, sizeof(dst));
		sport = ntohs(s->sin6_port);
		dport = ntohs(d->sin6_port);
	}
	n = snprintf(out, size, "PROXY %s %s %s %u %u\r\n",
	    info->src.ss_family == AF_INET ? "TCP4" : "TCP6", src, dst,
	    sport, dport);
	if (n < 0 || (size_t)n >= size)
		abort();
	return (size_t)n;
}

/* Writes info as a v2 PROXY header (no TLVs); returns its length. */
static size_t
write_v2(const struct proxy_info *info, unsigned char *out)
{
	size_t alen;

	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = 0x21;
	if (info->src.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&info->src;
		const struct sockaddr_in *d = (const void *)&info->dst;

		out[13] = 0x11;
		memcpy(out + 16, &s->sin_addr, 4);
		memcpy(out + 20, &d->sin_addr, 4);
		memcpy(out + 24, &s->sin_port, 2);
		memcpy(out + 26, &d->sin_port, 2);
		alen = 12;
	} else {
		const struct sockaddr_in6 *s = (const void *)&info->src;
		const struct sockaddr_in6 *d = (const void *)&info->dst;

		out[13] = 0x21;
		memcpy(out + 16, &s->sin6_addr, 16);
		memcpy(out + 32, &d->sin6_addr, 16);
		memcpy(out + 48, &s->sin6_port, 2);
		memcpy(out + 50, &d->sin6_port, 2);
		alen = 36;
	}
	out[14] = 0;
	out[15] = (unsigned char)alen;
	return 16 + alen;
}

static void
round_trip(const struct outcome *o)
{
	unsigned char buf[128];
	struct outcome again;
	size_t n;

	n = write_v1(&o->info, (char *)buf, sizeof(buf));
	parse(buf, n, &again);
	if (again.r != PROXY_DONE || again.used != n ||
	    memcmp(&again.info, &o->info, sizeof(o->info)) != 0)
		abort();
	n = write_v2(&o->info, buf);
	parse(buf, n, &again);
	if (again.r != PROXY_DONE || again.used != n ||
	    memcmp(&again.info, &o->info, sizeof(o->info)) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome first, o, full;
	size_t k;

	/* The shortest prefix that is decided, and every one before it. */
	for (k = 0; k <= size; k++) {
		parse(data, k, &first);
		if (first.r != PROXY_NEED_MORE)
			break;
	}
	if (k > size)
		return 0;	/* undecided: parse() checked size is small */
	if (first.r == PROXY_DONE) {
		/* *used <= len for any input, and decided at the last byte. */
		if (first.used != k)
			abort();
		check_done(data, &first);
		if (!first.info.is_local)
			round_trip(&first);
	}
	/* Longer inputs give the same answer. */
	if (k < size) {
		parse(data, k + 1, &o);
		if (!same(&first, &o))
			abort();
	}
	parse(data, size, &full);
	if (!same(&first, &full))
		abort();
	return 0;
}
