/*
 * cidr.h - IPv4/IPv6 networks in CIDR notation, and membership tests.
 */
#ifndef SMTPGATE_LIB_CIDR_H
#define SMTPGATE_LIB_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct err;

struct cidr {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];	/* network, host bits cleared */
	int		prefix;		/* 0..32 or 0..128 */
};

/* Parses "10.0.0.0/8", "::1/128", or a bare address (full prefix).
 * Host bits set beyond the prefix are an error (a likely typo). */
int	cidr_parse(const char *s, struct cidr *c, struct err *e);
/* Writes "a.b.c.d/n" or "x::y/n" into out. */
char	*cidr_format(const struct cidr *c, char *out, size_t size);
/* True when sa is inside any of the n networks. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is matched as IPv4. */
bool	cidr_match_any(const struct cidr *v, size_t n,
	    const struct sockaddr *sa);

#endif
