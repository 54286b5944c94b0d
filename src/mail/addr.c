/*
 * addr.c - SMTP paths and mailbox addresses (RFC 5321 §4.1.2, RFC 6531).
 *
 * Layer: mail. Pure functions over caller-owned memory: no sockets, disk,
 * clock, allocation or locale. Owns nothing.
 *
 * The parser follows the RFC 5321 grammar strictly and fills a fixed-size
 * struct addr, so it must never write past ADDR_LOCAL_MAX / ADDR_DOMAIN_MAX
 * whatever it is fed: lengths are checked before anything is copied. It
 * must also parse relay tricks into what they really are ("user%remote@
 * local" is a local part "user%remote" at "local"; "user@remote@local" is
 * an error), because routing decisions are taken on its result.
 */
#include "mail/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

#define LABEL_MAX	63	/* RFC 1035 §2.3.4 */

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* atext, RFC 5322 §3.2.3 (ASCII part). */
static bool
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || (c != 0 &&
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* qtextSMTP, RFC 5321 §4.1.2 (ASCII part): %d32-33 / %d35-91 / %d93-126. */
static bool
is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* strncasecmp that never depends on the locale. */
static bool
ascii_equal_ci(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)a[i]) !=
		    ascii_lower((unsigned char)b[i]))
			return false;
	return true;
}

/*
 * Returns the length of the well-formed UTF-8 sequence (RFC 3629 §4) for a
 * non-ASCII character at p, or 0 when it is not one: no overlong forms, no
 * surrogates, nothing above U+10FFFF. Reads no further than a NUL.
 */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Handles an octet >= 0x80 at p: with ADDR_ALLOW_UTF8 returns the length
 * of its UTF-8 sequence, otherwise (or when it is not UTF-8) sets e and
 * returns 0.
 */
static size_t
take_utf8(const unsigned char *p, int flags, const char *where,
    struct err *e)
{
	size_t n;

	if (!(flags & ADDR_ALLOW_UTF8)) {
		err_set(e, "non-ASCII character in %s", where);
		return 0;
	}
	if ((n = utf8_len(p)) == 0)
		err_set(e, "invalid UTF-8 in %s", where);
	return n;
}

/* Sets e for an octet that may not appear at this place. Returns -1. */
static int
bad_char(struct err *e, unsigned char c, const char *where)
{
	if (c == '\0')
		return err_set(e, "unexpected end of address");
	if (is_ctl(c))
		return err_set(e, "control character in address");
	if (c == ' ')
		return err_set(e, "space in address");
	if (c == '@')
		return err_set(e, "unexpected '@' in %s", where);
	if (c >= 0x80)
		return err_set(e, "non-ASCII character in %s", where);
	return err_set(e, "invalid character '%c' in %s", c, where);
}

/*
 * Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 §4.1.2), extended
 * with UTF-8 by RFC 6531 §3.3. *pp points at the opening quote; on success
 * it is moved past the closing one.
 */
static int
scan_quoted(const unsigned char **pp, int flags, bool *has_utf8,
    struct err *e)
{
	const unsigned char *p = *pp + 1;
	size_t n;

	for (;;) {
		if (*p == '"') {
			if (p + 1 - *pp > ADDR_LOCAL_MAX)
				return err_set(e, "local part longer than %d "
				    "octets", ADDR_LOCAL_MAX);
			break;
		}
		if (*p == '\0')
			return err_set(e, "unterminated quoted string");
		if (*p == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			p++;
			if (*p == '\0')
				return err_set(e,
				    "unterminated quoted string");
			if (*p < 32 || *p > 126)
				return bad_char(e, *p, "quoted string");
			p++;
		} else if (is_qtext(*p))
			p++;
		else if (*p >= 0x80) {
			if ((n = take_utf8(p, flags, "local part", e)) == 0)
				return -1;
			*has_utf8 = true;
			p += n;
		} else
			return bad_char(e, *p, "quoted string");
		if (p - *pp > ADDR_LOCAL_MAX)
			return err_set(e, "local part longer than %d octets",
			    ADDR_LOCAL_MAX);
	}
	*pp = p + 1;
	return 0;
}

/* Dot-string = Atom *("." Atom), extended with UTF-8 by RFC 6531. */
static int
scan_dot_string(const unsigned char **pp, int flags, bool *has_utf8,
    struct err *e)
{
	const unsigned char *start = *pp, *p = *pp;
	size_t n;

	for (;;) {
		if (is_atext(*p))
			p++;
		else if (*p == '.') {
			if (p == start)
				return err_set(e, "local part starts with '.'");
			if (p[-1] == '.')
				return err_set(e, "'..' in local part");
			p++;
		} else if (*p >= 0x80) {
			if ((n = take_utf8(p, flags, "local part", e)) == 0)
				return -1;
			*has_utf8 = true;
			p += n;
		} else
			break;
		if (p - start > ADDR_LOCAL_MAX)
			return err_set(e, "local part longer than %d octets",
			    ADDR_LOCAL_MAX);
	}
	if (p == start)
		return *p == '@' || *p == '>' ?
		    err_set(e, "empty local part") :
		    bad_char(e, *p, "local part");
	if (p[-1] == '.')
		return err_set(e, "local part ends with '.'");
	*pp = p;
	return 0;
}

/* address-literal: "[" IPv4 / "IPv6:" IPv6 "]" (RFC 5321 §4.1.3). */
static int
scan_literal(const unsigned char **pp, struct err *e)
{
	const unsigned char *p = *pp + 1, *close;
	char text[ADDR_DOMAIN_MAX + 1];
	struct in6_addr in6;
	struct in_addr in4;
	size_t len;

	for (close = p; *close != ']'; close++) {
		if (*close == '\0' || *close == '>')
			return err_set(e, "unterminated address literal");
		if (is_ctl(*close) || *close == ' ' || *close >= 0x80)
			return bad_char(e, *close, "address literal");
		if (close - *pp + 2 > ADDR_DOMAIN_MAX)
			return err_set(e, "domain longer than %d octets",
			    ADDR_DOMAIN_MAX);
	}
	len = (size_t)(close - p);
	memcpy(text, p, len);
	text[len] = '\0';
	if (len >= 5 && ascii_equal_ci(text, "IPv6:", 5)) {
		if (inet_pton(AF_INET6, text + 5, &in6) != 1)
			return err_set(e, "invalid IPv6 address literal");
	} else if (inet_pton(AF_INET, text, &in4) != 1) {
		if (strchr(text, ':') != NULL)
			return err_set(e, "unsupported address literal");
		return err_set(e, "invalid IPv4 address literal");
	}
	*pp = close + 1;
	return 0;
}

/*
 * Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (RFC 5321 §4.1.2), labels extended with UTF-8 (RFC 6531 §3.3). One
 * trailing dot is accepted and kept. Stops at the first octet that cannot
 * continue the domain; the caller decides whether it may follow.
 */
static int
scan_domain_name(const unsigned char **pp, int flags, bool *has_utf8,
    struct err *e)
{
	const unsigned char *start = *pp, *p = *pp, *label = *pp;
	size_t n;

	for (;;) {
		if (is_alpha(*p) || is_digit(*p) || *p == '-')
			p++;
		else if (*p >= 0x80) {
			if ((n = take_utf8(p, flags, "domain", e)) == 0)
				return -1;
			*has_utf8 = true;
			p += n;
		} else if (*p == '.') {
			if (p == label)
				return err_set(e, "empty domain label");
			if (label[0] == '-' || p[-1] == '-')
				return err_set(e, "domain label starts or "
				    "ends with '-'");
			label = ++p;
		} else
			break;
		if (p - label > LABEL_MAX)
			return err_set(e, "domain label longer than %d octets",
			    LABEL_MAX);
		if (p - start > ADDR_DOMAIN_MAX)
			return err_set(e, "domain longer than %d octets",
			    ADDR_DOMAIN_MAX);
	}
	if (p == start)
		return *p == '\0' || *p == '>' ?
		    err_set(e, "empty domain") : bad_char(e, *p, "domain");
	if (p == label) {
		/* Ends with a dot: fine once ("example.com."), not alone. */
		if (p - start == 1)
			return err_set(e, "empty domain label");
	} else if (label[0] == '-' || p[-1] == '-')
		return err_set(e, "domain label starts or ends with '-'");
	*pp = p;
	return 0;
}

static int
scan_domain(const unsigned char **pp, int flags, bool allow_literal,
    bool *is_literal, bool *has_utf8, struct err *e)
{
	*is_literal = false;
	if (**pp == '[') {
		if (!allow_literal)
			return err_set(e, "address literal in source route");
		*is_literal = true;
		return scan_literal(pp, e);
	}
	return scan_domain_name(pp, flags, has_utf8, e);
}

/*
 * A-d-l = At-domain *( "," At-domain ) ":" (RFC 5321 §4.1.2): checked and
 * discarded. *pp points at the first '@'.
 */
static int
skip_source_route(const unsigned char **pp, int flags, struct err *e)
{
	const unsigned char *p = *pp;
	bool literal, utf8 = false;

	for (;;) {
		if (*p != '@')
			return bad_char(e, *p, "source route");
		p++;
		if (scan_domain(&p, flags, false, &literal, &utf8, e) == -1)
			return -1;
		if (*p == ':')
			break;
		if (*p != ',')
			return *p == '\0' || *p == '>' ?
			    err_set(e, "missing ':' after source route") :
			    bad_char(e, *p, "source route");
		p++;
	}
	*pp = p + 1;
	return 0;
}

static void
copy_part(char *dst, const unsigned char *from, const unsigned char *to)
{
	size_t len = (size_t)(to - from);

	memcpy(dst, from, len);
	dst[len] = '\0';
}

/*
 * Mailbox = Local-part "@" ( Domain / address-literal ), or the bare
 * "postmaster" with ADDR_ALLOW_NO_DOMAIN. Stops after the domain; *pp is
 * moved there. Fills a completely.
 */
static int
scan_mailbox(const unsigned char **pp, int flags, struct addr *a,
    struct err *e)
{
	const unsigned char *p = *pp, *local = *pp, *domain;

	a->is_quoted = *p == '"';
	if (a->is_quoted) {
		if (scan_quoted(&p, flags, &a->has_utf8, e) == -1)
			return -1;
	} else if (scan_dot_string(&p, flags, &a->has_utf8, e) == -1)
		return -1;
	copy_part(a->local, local, p);

	if (*p != '@') {
		if (*p != '\0' && *p != '>')
			return bad_char(e, *p, "local part");
		if ((flags & ADDR_ALLOW_NO_DOMAIN) &&
		    strlen(a->local) == 10 &&
		    ascii_equal_ci(a->local, "postmaster", 10)) {
			*pp = p;
			return 0;
		}
		return err_set(e, "missing domain");
	}
	domain = ++p;
	if (scan_domain(&p, flags, true, &a->is_ip_literal, &a->has_utf8,
	    e) == -1)
		return -1;
	copy_part(a->domain, domain, p);
	*pp = p;
	return 0;
}

static void
addr_reset(struct addr *a)
{
	memset(a, 0, sizeof(*a));
}

int
addr_parse_path(const char *s, const char **end, int flags, struct addr *a,
    struct err *e)
{
	const unsigned char *p = (const unsigned char *)s;

	addr_reset(a);
	if (*p != '<')
		return err_set(e, "address not in angle brackets");
	p++;
	if (*p == '>') {
		if (!(flags & ADDR_ALLOW_NULL))
			return err_set(e, "null address not allowed here");
		a->is_null = true;
		*end = (const char *)p + 1;
		return 0;
	}
	if (*p == '@') {
		if (skip_source_route(&p, flags, e) == -1)
			goto fail;
		/* "<@a:postmaster>" is not the bare <postmaster>. */
		flags &= ~ADDR_ALLOW_NO_DOMAIN;
	}
	if (scan_mailbox(&p, flags, a, e) == -1)
		goto fail;
	if (*p != '>') {
		if (*p == '\0')
			err_set(e, "missing '>' at end of address");
		else
			bad_char(e, *p, a->domain[0] ? "domain" :
			    "local part");
		goto fail;
	}
	*end = (const char *)p + 1;
	return 0;
fail:
	addr_reset(a);
	return -1;
}

int
addr_parse_mailbox(const char *s, int flags, struct addr *a, struct err *e)
{
	const unsigned char *p = (const unsigned char *)s;

	addr_reset(a);
	if (*p == '\0') {
		if (!(flags & ADDR_ALLOW_NULL))
			return err_set(e, "empty address");
		a->is_null = true;
		return 0;
	}
	if (scan_mailbox(&p, flags, a, e) == -1)
		goto fail;
	if (*p != '\0') {
		bad_char(e, *p, a->domain[0] ? "domain" : "local part");
		goto fail;
	}
	return 0;
fail:
	addr_reset(a);
	return -1;
}

char *
addr_format(const struct addr *a, char *out, size_t size)
{
	if (size == 0)
		return out;
	if (a->is_null)
		out[0] = '\0';
	else if (a->domain[0] == '\0')
		(void)snprintf(out, size, "%s", a->local);
	else
		(void)snprintf(out, size, "%s@%s", a->local, a->domain);
	return out;
}

static size_t
domain_len(const char *d)
{
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		n--;
	return n;
}

bool
addr_domain_equal(const char *a, const char *b)
{
	size_t la = domain_len(a), lb = domain_len(b);

	return la == lb && ascii_equal_ci(a, b, la);
}
