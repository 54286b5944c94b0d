/*
 * test_addr.c - unit tests for src/mail/addr.c: RFC 5321 paths, relay
 * tricks, length limits, UTF-8, formatting and domain comparison.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "mail/addr.h"
#include "t.h"

#define N	ADDR_ALLOW_NULL
#define U	ADDR_ALLOW_UTF8
#define P	ADDR_ALLOW_NO_DOMAIN

/* Flags in a row of the table: quoted, literal, utf8, null. */
#define Q	1
#define L	2
#define X	4
#define Z	8

struct ok_case {
	const char	*in;
	int		 flags;
	const char	*local;
	const char	*domain;
	int		 kind;
	const char	*rest;		/* text left after '>' */
};

static const struct ok_case ok_cases[] = {
	{ "<user@example.com>", 0, "user", "example.com", 0, "" },
	{ "<User.Name+tag@Example.COM>", 0, "User.Name+tag", "Example.COM",
	    0, "" },
	{ "<a@b> SIZE=10", 0, "a", "b", 0, " SIZE=10" },
	{ "<!#$%&'*+-/=?^_`{|}~@x.y>", 0, "!#$%&'*+-/=?^_`{|}~", "x.y", 0,
	    "" },
	{ "<\"john doe\"@example.com>", 0, "\"john doe\"", "example.com", Q,
	    "" },
	{ "<\"a\\\"b\\\\c\"@example.com>", 0, "\"a\\\"b\\\\c\"",
	    "example.com", Q, "" },
	{ "<\"\"@example.com>", 0, "\"\"", "example.com", Q, "" },
	{ "<\"a..b.\"@example.com>", 0, "\"a..b.\"", "example.com", Q, "" },
	{ "<\"@\"@example.com>", 0, "\"@\"", "example.com", Q, "" },
	{ "<user@[192.0.2.1]>", 0, "user", "[192.0.2.1]", L, "" },
	{ "<user@[IPv6:2001:db8::1]>", 0, "user", "[IPv6:2001:db8::1]", L,
	    "" },
	{ "<user@[ipv6:::1]>", 0, "user", "[ipv6:::1]", L, "" },
	{ "<user@example.com.>", 0, "user", "example.com.", 0, "" },
	{ "<user@a-b.c-d.example>", 0, "user", "a-b.c-d.example", 0, "" },
	{ "<user@123.example>", 0, "user", "123.example", 0, "" },
	{ "<user@localhost>", 0, "user", "localhost", 0, "" },
	/* source routes: accepted and discarded */
	{ "<@a.example,@b.example:user@c.example>", 0, "user", "c.example", 0,
	    "" },
	{ "<@a:b@c>", 0, "b", "c", 0, "" },
	/* relay tricks parse into what they really are */
	{ "<user%remote@local>", 0, "user%remote", "local", 0, "" },
	{ "<bob!remote@local>", 0, "bob!remote", "local", 0, "" },
	{ "<user%remote.example@local.example>", 0, "user%remote.example",
	    "local.example", 0, "" },
	/* null path and postmaster */
	{ "<>", N, "", "", Z, "" },
	{ "<> BODY=8BITMIME", N | U, "", "", Z, " BODY=8BITMIME" },
	{ "<postmaster>", P, "postmaster", "", 0, "" },
	{ "<PostMaster>", P, "PostMaster", "", 0, "" },
	/* UTF-8 (RFC 6531) */
	{ "<j\xc3\xb6rg@ex\xc3\xa4mple.de>", U, "j\xc3\xb6rg",
	    "ex\xc3\xa4mple.de", X, "" },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf"
	    "\xe5\x91\x8a>", U, "\xe7\x94\xa8\xe6\x88\xb7",
	    "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", X, "" },
	{ "<\"j\xc3\xb6 rg\"@x.de>", U, "\"j\xc3\xb6 rg\"", "x.de", Q | X,
	    "" },
	{ "<\xf0\x9f\x98\x80@x.de>", U, "\xf0\x9f\x98\x80", "x.de", X, "" },
};

struct bad_case {
	const char	*in;
	int		 flags;
	const char	*reason;	/* substring of e.msg */
};

static const struct bad_case bad_cases[] = {
	{ "user@example.com", 0, "angle brackets" },
	{ "", 0, "angle brackets" },
	{ "<user@example.com", 0, "missing '>'" },
	{ "<", 0, "unexpected end" },
	{ "<>", 0, "null address" },
	{ "<>", U | P, "null address" },
	{ "<user>", 0, "missing domain" },
	{ "<postmaster>", 0, "missing domain" },
	{ "<postmaster>", N | U, "missing domain" },
	{ "<postmistress>", P, "missing domain" },
	{ "<\"postmaster\">", P, "missing domain" },
	{ "<@a:postmaster>", P, "missing domain" },
	{ "<user@>", 0, "empty domain" },
	{ "<@example.com>", 0, "" },
	{ "<@a.example:@b.example>", 0, "empty local part" },
	{ "<@a.example>", 0, "missing ':'" },
	{ "<@a.example,b.example:u@c>", 0, "source route" },
	{ "<@[1.2.3.4]:u@c>", 0, "source route" },
	{ "<@a..b:u@c>", 0, "empty domain label" },
	{ "<user@remote@local>", 0, "'@'" },
	{ "<a..b@example.com>", 0, "'..'" },
	{ "<.a@example.com>", 0, "starts with '.'" },
	{ "<a.@example.com>", 0, "ends with '.'" },
	{ "<a b@example.com>", 0, "space" },
	{ "<a@exa mple.com>", 0, "space" },
	{ "< a@example.com>", 0, "space" },
	{ "<a@example.com >", 0, "space" },
	{ "<a\x01@example.com>", 0, "control character" },
	{ "<a@exam\x7fple.com>", 0, "control character" },
	{ "<a\t@example.com>", 0, "control character" },
	{ "<\"a\x01\"@example.com>", 0, "control character" },
	{ "<\"a\\\x01\"@example.com>", 0, "control character" },
	{ "<\"abc@example.com>", 0, "unterminated" },
	{ "<\"abc\\\">", 0, "unterminated" },
	{ "<a(b)@example.com>", 0, "invalid character '('" },
	{ "<a@exa_mple.com>", 0, "invalid character '_'" },
	{ "<a@example..com>", 0, "empty domain label" },
	{ "<a@.example.com>", 0, "empty domain label" },
	{ "<a@.>", 0, "empty domain label" },
	{ "<a@example.com..>", 0, "empty domain label" },
	{ "<a@-example.com>", 0, "'-'" },
	{ "<a@example-.com>", 0, "'-'" },
	{ "<a@example.com->", 0, "'-'" },
	{ "<a@[1.2.3]>", 0, "IPv4" },
	{ "<a@[1.2.3.256]>", 0, "IPv4" },
	{ "<a@[IPv6:1.2.3.4]>", 0, "IPv6" },
	{ "<a@[IPv6:2001:db8:::1]>", 0, "IPv6" },
	{ "<a@[x400:foo]>", 0, "unsupported" },
	{ "<a@[1.2.3.4>", 0, "unterminated" },
	{ "<a@[1.2.3.4]x>", 0, "invalid character 'x'" },
	{ "<a@[1.2.3.4 ]>", 0, "space" },
	{ "<j\xc3\xb6rg@example.de>", 0, "non-ASCII" },
	{ "<jorg@ex\xc3\xa4mple.de>", 0, "non-ASCII" },
	{ "<\"j\xc3\xb6rg\"@example.de>", 0, "non-ASCII" },
	{ "<j\xc3@example.de>", U, "invalid UTF-8" },
	{ "<j\xc0\xaf@example.de>", U, "invalid UTF-8" },	/* overlong */
	{ "<j\xed\xa0\x80@example.de>", U, "invalid UTF-8" },	/* surrogate */
	{ "<j\xf4\x90\x80\x80@example.de>", U, "invalid UTF-8" },
	{ "<j@ex\xff.de>", U, "invalid UTF-8" },
	{ "<a@b>>", 0, NULL },		/* ok as a path: the rest is ">" */
};

static void
test_ok_cases(void)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		struct addr a;
		struct err e;
		const char *end = NULL;
		int rc;

		err_clear(&e);
		rc = addr_parse_path(c->in, &end, c->flags, &a, &e);
		if (rc != 0)
			fprintf(stderr, "  case %zu \"%s\": %s\n", i, c->in,
			    e.msg);
		CHECK_INT(rc, 0);
		if (rc != 0)
			continue;
		CHECK_STR(a.local, c->local);
		CHECK_STR(a.domain, c->domain);
		CHECK_STR(end, c->rest);
		CHECK_INT(a.is_quoted, (c->kind & Q) != 0);
		CHECK_INT(a.is_ip_literal, (c->kind & L) != 0);
		CHECK_INT(a.has_utf8, (c->kind & X) != 0);
		CHECK_INT(a.is_null, (c->kind & Z) != 0);
	}
}

static void
test_bad_cases(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]);
	    i++) {
		const struct bad_case *c = &bad_cases[i];
		struct addr a;
		struct err e;
		const char *end = NULL;
		int rc;

		err_clear(&e);
		rc = addr_parse_path(c->in, &end, c->flags, &a, &e);
		if (c->reason == NULL) {
			CHECK_INT(rc, 0);
			continue;
		}
		if (rc != -1 || strstr(e.msg, c->reason) == NULL)
			fprintf(stderr, "  case %zu \"%s\": rc %d, \"%s\"\n",
			    i, c->in, rc, e.msg);
		CHECK_INT(rc, -1);
		CHECK(strstr(e.msg, c->reason) != NULL);
		CHECK(e.msg[0] != '\0');
		/* Nothing half-parsed is left behind. */
		CHECK_STR(a.local, "");
		CHECK_STR(a.domain, "");
	}
}

/* "<" + local part of n octets + "@" + domain + ">" */
static void
make_path(char *out, size_t size, size_t local_len, const char *domain)
{
	char local[300];

	memset(local, 'a', local_len);
	local[local_len] = '\0';
	snprintf(out, size, "<%s@%s>", local, domain);
}

/* A domain of exactly n octets made of 49-octet labels. */
static void
make_domain(char *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = (i % 50 == 49) ? '.' : 'b';
	if (out[n - 1] == '.')
		out[n - 1] = 'c';
	out[n] = '\0';
}

static void
test_limits(void)
{
	char path[700], domain[300], label[80];
	const char *end;
	struct addr a;
	struct err e;

	make_path(path, sizeof(path), 64, "example.com");
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), 0);
	CHECK_INT(strlen(a.local), 64);
	make_path(path, sizeof(path), 65, "example.com");
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);
	CHECK(strstr(e.msg, "longer than 64") != NULL);
	make_path(path, sizeof(path), 200, "example.com");
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);

	/* Quoted: 64 octets including both quotes is the limit. */
	memset(label, 'q', 62);
	label[62] = '\0';
	snprintf(path, sizeof(path), "<\"%s\"@x>", label);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), 0);
	CHECK_INT(strlen(a.local), 64);
	snprintf(path, sizeof(path), "<\"%sq\"@x>", label);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);
	CHECK(strstr(e.msg, "longer than 64") != NULL);

	/* UTF-8 counts octets: 32 two-octet characters fit, 33 do not. */
	path[0] = '<';
	for (int i = 0; i < 33; i++)
		memcpy(path + 1 + 2 * i, "\xc3\xa9", 2);
	snprintf(path + 1 + 64, 8, "@x>");
	CHECK_INT(addr_parse_path(path, &end, U, &a, &e), 0);
	CHECK_INT(strlen(a.local), 64);
	path[0] = '<';
	for (int i = 0; i < 33; i++)
		memcpy(path + 1 + 2 * i, "\xc3\xa9", 2);
	snprintf(path + 1 + 66, 8, "@x>");
	CHECK_INT(addr_parse_path(path, &end, U, &a, &e), -1);

	make_domain(domain, 255);
	make_path(path, sizeof(path), 1, domain);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), 0);
	CHECK_INT(strlen(a.domain), 255);
	make_domain(domain, 256);
	make_path(path, sizeof(path), 1, domain);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);
	CHECK(strstr(e.msg, "longer than 255") != NULL);
	/* 255 octets and a trailing dot: 256 as written. */
	make_domain(domain, 255);
	domain[255] = '.';
	domain[256] = '\0';
	make_path(path, sizeof(path), 1, domain);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);

	memset(label, 'l', 63);
	label[63] = '\0';
	snprintf(domain, sizeof(domain), "%s.example", label);
	make_path(path, sizeof(path), 1, domain);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), 0);
	snprintf(domain, sizeof(domain), "%sl.example", label);
	make_path(path, sizeof(path), 1, domain);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);
	CHECK(strstr(e.msg, "label longer than 63") != NULL);
	snprintf(domain, sizeof(domain), "example.%sl", label);
	make_path(path, sizeof(path), 1, domain);
	CHECK_INT(addr_parse_path(path, &end, 0, &a, &e), -1);
	CHECK(strstr(e.msg, "label longer than 63") != NULL);
}

static void
test_mailbox(void)
{
	struct addr a;
	struct err e;

	CHECK_INT(addr_parse_mailbox("user@example.com", 0, &a, &e), 0);
	CHECK_STR(a.local, "user");
	CHECK_STR(a.domain, "example.com");
	CHECK_INT(addr_parse_mailbox("\"x y\"@[10.0.0.1]", 0, &a, &e), 0);
	CHECK_STR(a.local, "\"x y\"");
	CHECK(a.is_quoted && a.is_ip_literal);
	CHECK_INT(addr_parse_mailbox("", N, &a, &e), 0);
	CHECK(a.is_null);
	CHECK_INT(addr_parse_mailbox("", 0, &a, &e), -1);
	CHECK_INT(addr_parse_mailbox("Postmaster", P, &a, &e), 0);
	CHECK_STR(a.domain, "");
	CHECK_INT(addr_parse_mailbox("postmaster", 0, &a, &e), -1);
	CHECK_INT(addr_parse_mailbox("<user@example.com>", 0, &a, &e), -1);
	CHECK_INT(addr_parse_mailbox("user@example.com ", 0, &a, &e), -1);
	CHECK(strstr(e.msg, "space") != NULL);
	CHECK_INT(addr_parse_mailbox("user@example.com>", 0, &a, &e), -1);
	CHECK_INT(addr_parse_mailbox("a@b@c", 0, &a, &e), -1);
	CHECK_INT(addr_parse_mailbox("user%remote@local", 0, &a, &e), 0);
	CHECK_STR(a.local, "user%remote");
	CHECK_STR(a.domain, "local");
}

static void
test_format(void)
{
	struct addr a;
	struct err e;
	const char *end;
	char out[ADDR_MAX + 1], small[6];

	CHECK_INT(addr_parse_path("<\"a b\"@Example.COM.>", &end, 0, &a, &e),
	    0);
	CHECK_STR(addr_format(&a, out, sizeof(out)), "\"a b\"@Example.COM.");
	CHECK_INT(addr_parse_path("<>", &end, N, &a, &e), 0);
	CHECK_STR(addr_format(&a, out, sizeof(out)), "");
	CHECK_INT(addr_parse_path("<postmaster>", &end, P, &a, &e), 0);
	CHECK_STR(addr_format(&a, out, sizeof(out)), "postmaster");
	CHECK_INT(addr_parse_path("<user@example.com>", &end, 0, &a, &e), 0);
	CHECK_STR(addr_format(&a, small, sizeof(small)), "user@");
}

static void
test_domain_equal(void)
{
	CHECK(addr_domain_equal("example.com", "EXAMPLE.com"));
	CHECK(addr_domain_equal("example.com.", "example.com"));
	CHECK(addr_domain_equal("example.com", "Example.Com."));
	CHECK(addr_domain_equal("example.com.", "example.com."));
	CHECK(!addr_domain_equal("example.com..", "example.com"));
	CHECK(!addr_domain_equal("example.co", "example.com"));
	CHECK(!addr_domain_equal("xexample.com", "example.com"));
	CHECK(addr_domain_equal("", ""));
	CHECK(addr_domain_equal(".", ""));
	/* Only ASCII folds: UTF-8 octets compare as they are. */
	CHECK(!addr_domain_equal("\xc3\xa4.de", "\xc3\x84.de"));
	CHECK(addr_domain_equal("[IPv6:::1]", "[ipv6:::1]"));
}

/* A failure leaves the struct zeroed even after an earlier success. */
static void
test_reset_on_error(void)
{
	struct addr a;
	struct err e;
	const char *end;

	CHECK_INT(addr_parse_path("<x@y>", &end, 0, &a, &e), 0);
	CHECK_INT(addr_parse_path("<user@remote@local>", &end, 0, &a, &e),
	    -1);
	CHECK_STR(a.local, "");
	CHECK_STR(a.domain, "");
	CHECK(!a.is_null && !a.has_utf8);
}

int
main(void)
{
	RUN(test_ok_cases);
	RUN(test_bad_cases);
	RUN(test_limits);
	RUN(test_mailbox);
	RUN(test_format);
	RUN(test_domain_equal);
	RUN(test_reset_on_error);
	T_EXIT();
}
