/*
 * addr.h - SMTP paths and mailbox addresses (RFC 5321 §4.1.2, RFC 6531).
 *
 * Pure functions: no sockets, disk or clock. Parsing is strict: what the
 * RFC grammar does not allow is refused with a reason in English.
 */
#ifndef SMTPGATE_MAIL_ADDR_H
#define SMTPGATE_MAIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>

struct err;

#define ADDR_LOCAL_MAX	64	/* octets, RFC 5321 §4.5.3.1.1 */
#define ADDR_DOMAIN_MAX	255	/* octets, RFC 5321 §4.5.3.1.2 */
#define ADDR_MAX	(ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)

struct addr {
	char	local[ADDR_LOCAL_MAX + 1];	/* as written, quotes kept */
	char	domain[ADDR_DOMAIN_MAX + 1];	/* as written; "" if none */
	bool	is_null;		/* the null path <> */
	bool	is_quoted;		/* local part is a quoted-string */
	bool	is_ip_literal;		/* domain is [1.2.3.4] / [IPv6:...] */
	bool	has_utf8;		/* non-ASCII octets (needs SMTPUTF8) */
};

enum addr_flags {
	ADDR_ALLOW_NULL		= 1 << 0,	/* <> is acceptable (MAIL FROM) */
	ADDR_ALLOW_UTF8		= 1 << 1,	/* UTF-8 local/domain (SMTPUTF8) */
	ADDR_ALLOW_NO_DOMAIN	= 1 << 2,	/* bare <postmaster> (RCPT TO) */
};

/*
 * Parses a Path starting at s, which must begin with '<' (NUL-terminated;
 * parsing stops at the '>'). An obsolete source route
 * (<@a,@b:user@c>) is checked and discarded (RFC 5321 §4.1.2, Appendix
 * C). A bare local part without domain is only accepted with
 * ADDR_ALLOW_NO_DOMAIN and only for "postmaster" (any case, unquoted, no
 * source route). Relay tricks parse into what they are: "user%remote@
 * local" has local part "user%remote", "user@remote@local" is an error.
 * Non-ASCII octets must be well-formed UTF-8 and need ADDR_ALLOW_UTF8 (a
 * caller that wants to tell "needs SMTPUTF8" apart from bad syntax parses
 * with the flag and looks at has_utf8). Limits are in octets, quotes of a
 * quoted local part included.
 * On success, *end is set to the character after '>' and 0 is returned.
 * On failure, -1 with e->msg saying what is wrong in a few English words
 * (e.g. "local part longer than 64 octets"), *end untouched and *a zeroed.
 */
int	addr_parse_path(const char *s, const char **end, int flags,
	    struct addr *a, struct err *e);
/* Parses a whole string "local@domain" (no angle brackets, nothing after
 * it), same rules; "" is the null path (with ADDR_ALLOW_NULL). */
int	addr_parse_mailbox(const char *s, int flags, struct addr *a,
	    struct err *e);
/* Writes "local@domain" ("" for the null path, the local part alone for
 * <postmaster>) into out, truncated to size; returns out. Parsing
 * "<" out ">" again gives the same struct addr. */
char	*addr_format(const struct addr *a, char *out, size_t size);
/* ASCII case-insensitive domain comparison; one trailing dot ignored. */
bool	addr_domain_equal(const char *a, const char *b);

#endif
