/*
 * cidr.c - IPv4/IPv6 networks in CIDR notation and membership tests.
 * Layer: lib. Pure functions: owns no state, never logs, never allocates.
 *
 * Messages left in a struct err are reason phrases ("prefix length must be
 * 0-32") without the input text: the caller names the input and the place
 * it came from (config.c writes "bad value for KEY: 'X' (REASON)").
 */
#include "lib/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/str.h"

/* Longest text form: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
#define CIDR_ADDR_MAX	INET6_ADDRSTRLEN

static int
parse_prefix(const char *s, int max, int *prefix)
{
	int n = 0;

	if (*s == '\0' || strlen(s) > 3)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
	}
	if (n > max)
		return -1;
	*prefix = n;
	return 0;
}

/* True when bits of addr (len bytes) past prefix are all zero. */
static bool
host_bits_clear(const unsigned char *addr, int len, int prefix)
{
	for (int i = 0; i < len; i++) {
		int keep = prefix - i * 8;
		unsigned char mask;

		if (keep >= 8)
			continue;
		mask = keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
		if (addr[i] & (unsigned char)~mask)
			return false;
	}
	return true;
}

static void
clear_host_bits(unsigned char *addr, int len, int prefix)
{
	for (int i = 0; i < len; i++) {
		int keep = prefix - i * 8;

		if (keep >= 8)
			continue;
		addr[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
}

int
cidr_parse(const char *s, struct cidr *c, struct err *e)
{
	char addr[CIDR_ADDR_MAX + 1], fixed[CIDR_ADDR_MAX + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int len, max;

	memset(c, 0, sizeof(*c));
	if (alen == 0 || alen > CIDR_ADDR_MAX)
		return err_set(e, "expected an IP address or network like "
		    "10.0.0.0/8 or ::1/128");
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		len = 4;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		len = 16;
		max = 128;
	} else
		return err_set(e, "expected an IP address or network like "
		    "10.0.0.0/8 or ::1/128");
	c->prefix = max;
	if (slash && parse_prefix(slash + 1, max, &c->prefix) == -1)
		return err_set(e, "prefix length must be a number 0-%d", max);
	if (!host_bits_clear(c->addr, len, c->prefix)) {
		/* Probably a typo: say what the network would be. */
		clear_host_bits(c->addr, len, c->prefix);
		if (cidr_format(c, fixed, sizeof(fixed)) == NULL)
			str_copy(fixed, "?", sizeof(fixed));
		return err_set(e, "host bits set beyond the prefix length; "
		    "did you mean %s?", fixed);
	}
	return 0;
}

char *
cidr_format(const struct cidr *c, char *out, size_t size)
{
	char addr[CIDR_ADDR_MAX];
	int n;

	if (size == 0)
		return NULL;
	if (inet_ntop(c->family, c->addr, addr, sizeof(addr)) == NULL) {
		out[0] = '\0';
		return NULL;
	}
	n = snprintf(out, size, "%s/%d", addr, c->prefix);
	if (n < 0 || (size_t)n >= size)
		return NULL;
	return out;
}

/* True when the first prefix bits of a and b are equal. */
static bool
prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - bits));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool
match_one(const struct cidr *c, int family, const unsigned char *addr)
{
	return c->family == family && prefix_equal(c->addr, addr, c->prefix);
}

bool
cidr_match_any(const struct cidr *v, size_t n, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	unsigned char a4[4], a6[16];
	bool has4 = false, has6 = false;

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		memcpy(a4, &sin->sin_addr, 4);
		has4 = true;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		memcpy(a6, &sin6->sin6_addr, 16);
		has6 = true;
		/* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket. */
		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(a4, a6 + 12, 4);
			has4 = true;
		}
	} else
		return false;
	for (size_t i = 0; i < n; i++) {
		if (has4 && match_one(&v[i], AF_INET, a4))
			return true;
		if (has6 && match_one(&v[i], AF_INET6, a6))
			return true;
	}
	return false;
}
