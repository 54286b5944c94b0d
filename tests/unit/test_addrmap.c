/*
 * test_addrmap.c - the address map: parsing (good lines and exact error
 * texts), the lookup order, the recipient delimiter, catch-alls, lists,
 * re-resolution of local targets with its limits, postmaster, the
 * identity mapping without a map, and mailbox name safety.
 */
#include "gate/addrmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#include "t.h"

static bool
is_local(void *arg, const char *domain)
{
	(void)arg;
	return strcasecmp(domain, "localhost") == 0 ||
	    strcasecmp(domain, "example.org") == 0;
}

static struct addrmap *
parse(const char *text, struct buf *errors)
{
	return addrmap_parse("map", text, strlen(text), errors);
}

/* Parses text, which must be good; prints the errors when it is not. */
static struct addrmap *
parse_ok(const char *text)
{
	struct buf errors;
	struct addrmap *m;

	buf_init(&errors);
	m = parse(text, &errors);
	CHECK(m != NULL);
	CHECK_INT(errors.len, 0);
	if (errors.len)
		fprintf(stderr, "  unexpected errors:\n%s", errors.data);
	buf_clear(&errors);
	return m;
}

/* The errors text for a map that must not load. */
static char *
parse_errors(const char *text, size_t len)
{
	struct buf errors;
	struct addrmap *m;

	buf_init(&errors);
	buf_puts(&errors, "");
	m = addrmap_parse("map", text, len, &errors);
	CHECK(m == NULL);
	addrmap_free(m);
	return buf_release(&errors);
}

/*
 * Resolves local@domain and renders the result as "m:NAME r:ADDR ..." or
 * "error: MESSAGE". The returned string is static.
 */
static const char *
resolve_delim(const struct addrmap *m, const char *local, const char *domain,
    const char *delim)
{
	static char out[4096];
	struct route_list l = { NULL, 0 };
	struct err e;
	size_t pos = 0;

	err_clear(&e);
	if (addrmap_resolve(m, local, domain, delim, is_local, NULL, &l,
	    &e) == -1) {
		CHECK_INT(l.len, 0);
		snprintf(out, sizeof(out), "error: %s", e.msg);
		return out;
	}
	out[0] = '\0';
	for (size_t i = 0; i < l.len; i++) {
		int n = snprintf(out + pos, sizeof(out) - pos, "%s%s:%s",
		    i ? " " : "", l.v[i].kind == ROUTE_MAILBOX ? "m" : "r",
		    l.v[i].name);
		if (n > 0 && (size_t)n < sizeof(out) - pos)
			pos += (size_t)n;
	}
	route_list_clear(&l);
	return out;
}

static const char *
resolve(const struct addrmap *m, const char *local, const char *domain)
{
	return resolve_delim(m, local, domain, "+");
}

static void
test_parse_good(void)
{
	struct addrmap *m = parse_ok(
	    "# the staff\n"
	    "\n"
	    "   \t\n"
	    "alice@example.org\talice\n"
	    "Bob   BOB-Mailbox\n"
	    "staff alice, bob,carol@remote.example  dave\r\n"
	    "      erin,\n"
	    "  # a comment inside a list\n"
	    "\tfrank  # trailing comment\n"
	    "@example.org catchall\n"
	    "fw Someone@Remote.Example.\n"
	    "utf8 m\xc3\xbcller\n"
	    "lit x@[192.0.2.1]\n"
	    "last z");	/* no final newline */

	CHECK_INT(addrmap_size(m), 8);
	CHECK_STR(resolve(m, "alice", "example.org"), "m:alice");
	CHECK_STR(resolve(m, "bob", "localhost"), "m:bob-mailbox");
	CHECK_STR(resolve(m, "staff", "localhost"),
	    "m:alice m:bob r:carol@remote.example m:dave m:erin m:frank");
	CHECK_STR(resolve(m, "nobody", "example.org"), "m:catchall");
	/* Remote: domain lowercased and its root dot dropped, local kept. */
	CHECK_STR(resolve(m, "fw", "localhost"), "r:Someone@remote.example");
	CHECK_STR(resolve(m, "utf8", "localhost"), "m:m\xc3\xbcller");
	CHECK_STR(resolve(m, "lit", "localhost"), "r:x@[192.0.2.1]");
	CHECK_STR(resolve(m, "last", "localhost"), "m:z");
	addrmap_free(m);

	/* An empty map is a map: nobody but postmaster. */
	m = parse_ok("# nothing\n");
	CHECK_INT(addrmap_size(m), 0);
	CHECK_STR(resolve(m, "alice", "localhost"),
	    "error: not in the address map");
	CHECK_STR(resolve(m, "postmaster", "localhost"), "m:postmaster");
	addrmap_free(m);
	addrmap_free(NULL);
	CHECK_INT(addrmap_size(NULL), 0);
}

static void
test_parse_errors(void)
{
	static const char text[] =
	    "# errors, one per line\n"			/* 1 */
	    "alice\n"					/* 2 */
	    "bob ../etc\n"				/* 3 */
	    "bob carol\n"				/* 4 */
	    "x@ y\n"					/* 5 */
	    "@ y\n"					/* 6 */
	    "a@b@c y\n"					/* 7 */
	    "carol: dave\n"				/* 8 */
	    "dave bad@ ok good@\n"			/* 9 */
	    "erin \x01x, .hidden, a/b, ., ..\n"		/* 10 */
	    "BOB other\n"				/* 11 */
	    "frank x@y..z\n"				/* 12 */
	    "<g@h> x\n"					/* 13 */
	    "a..b x\n"					/* 14 */
	    "nul a\0b\n"				/* 15 */
	    "sp \"a b\"@x\n"				/* 16: '"a' is a name */
	    "last   # only a comment\n";		/* 17 */
	char *got = parse_errors(text, sizeof(text) - 1);

	CHECK_STR(got,
	    "map:2: 'alice' has no targets\n"
	    "map:3: bad mailbox name '../etc'\n"
	    "map:4: duplicate key 'bob'\n"
	    "map:5: bad address 'x@'\n"
	    "map:6: bad address '@'\n"
	    "map:7: bad address 'a@b@c'\n"
	    "map:8: bad address 'carol:' (write ADDRESS TARGET, without ':')\n"
	    "map:9: bad address 'bad@'\n"
	    "map:9: bad address 'good@'\n"
	    "map:10: bad mailbox name '\\x01x'\n"
	    "map:10: bad mailbox name '.hidden'\n"
	    "map:10: bad mailbox name 'a/b'\n"
	    "map:10: bad mailbox name '.'\n"
	    "map:10: bad mailbox name '..'\n"
	    "map:11: duplicate key 'BOB'\n"
	    "map:12: bad address 'x@y..z'\n"
	    "map:13: bad address '<g@h>'\n"
	    "map:14: bad address 'a..b'\n"
	    "map:15: bad mailbox name 'a\\x00b'\n"
	    "map:16: bad address 'b\"@x'\n"
	    "map:17: 'last' has no targets\n");
	free(got);

	got = parse_errors("  alice\nbob x\n", 14);
	CHECK_STR(got, "map:1: continuation line without an address "
	    "before it\n");
	free(got);

	/* A bad key's continuation lines are checked but not reported twice. */
	got = parse_errors("a@ x\n  y\n  ../z\n", 16);
	CHECK_STR(got, "map:1: bad address 'a@'\nmap:3: bad mailbox name "
	    "'../z'\n");
	free(got);

	/* Names: 255 bytes are fine, 256 are not. */
	{
		char line[600];
		struct addrmap *m;
		memset(line, 0, sizeof(line));
		memcpy(line, "k ", 2);
		memset(line + 2, 'n', 255);
		m = parse_ok(line);
		addrmap_free(m);
		line[2 + 255] = 'n';
		got = parse_errors(line, strlen(line));
		CHECK(strncmp(got, "map:1: bad mailbox name 'nnn", 28) == 0);
		free(got);
	}
	/* Local parts: 64 octets at most (RFC 5321 §4.5.3.1.1). */
	{
		char line[200];
		snprintf(line, sizeof(line), "%064d x\n", 0);
		addrmap_free(parse_ok(line));
		snprintf(line, sizeof(line), "%065d x\n", 0);
		got = parse_errors(line, strlen(line));
		CHECK(strncmp(got, "map:1: bad address '000", 23) == 0);
		free(got);
	}

	/* No error buffer: still refused, nothing crashes. */
	CHECK(addrmap_parse("map", "alice\n", 6, NULL) == NULL);
}

static void
test_load(void)
{
	char dir[] = "/tmp/test_addrmap.XXXXXX", path[256];
	struct buf errors;
	struct addrmap *m;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/aliases", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("alice a\nbob\n", f);
	CHECK(fclose(f) == 0);
	buf_init(&errors);
	m = addrmap_load(path, &errors);
	CHECK(m == NULL);
	{
		char want[512];
		snprintf(want, sizeof(want), "%s:2: 'bob' has no targets\n",
		    path);
		CHECK_STR(errors.data, want);
	}
	buf_reset(&errors);

	f = fopen(path, "w");
	fputs("alice a\n", f);
	CHECK(fclose(f) == 0);
	m = addrmap_load(path, &errors);
	CHECK(m != NULL);
	CHECK_INT(addrmap_size(m), 1);
	addrmap_free(m);

	CHECK(unlink(path) == 0);
	m = addrmap_load(path, &errors);
	CHECK(m == NULL);
	{
		char want[512];
		snprintf(want, sizeof(want), "%s: No such file or directory\n",
		    path);
		CHECK_STR(errors.data, want);
	}
	buf_clear(&errors);
	CHECK(rmdir(dir) == 0);
}

/* Each step of the lookup order, by removing the keys that win before. */
static void
test_lookup_order(void)
{
	static const char *const keys[] = {
		"alice+x@example.org m1\n", "alice@example.org m2\n",
		"alice+x m3\n", "alice m4\n", "@example.org m5\n",
	};
	static const char *const want[] = { "m:m1", "m:m2", "m:m3", "m:m4",
	    "m:m5" };

	for (size_t first = 0; first < 5; first++) {
		struct buf text;
		struct addrmap *m;

		buf_init(&text);
		for (size_t i = first; i < 5; i++)
			buf_puts(&text, keys[i]);
		m = parse_ok(text.data);
		CHECK_STR(resolve(m, "alice+x", "example.org"), want[first]);
		/* Keys compare case-insensitively, both ways. */
		CHECK_STR(resolve(m, "ALICE+X", "Example.ORG"), want[first]);
		addrmap_free(m);
		buf_clear(&text);
	}

	{
		struct addrmap *m = parse_ok(
		    "alice+x@example.org m1\nalice@example.org m2\n"
		    "alice+x m3\nalice m4\n@example.org m5\n"
		    "Carol@Example.Org. m6\n");
		/* Another local domain: only bare keys apply. */
		CHECK_STR(resolve(m, "alice+x", "localhost"), "m:m3");
		CHECK_STR(resolve(m, "alice+y", "localhost"), "m:m4");
		CHECK_STR(resolve(m, "alice", "localhost"), "m:m4");
		CHECK_STR(resolve(m, "alice+y", "example.org"), "m:m2");
		CHECK_STR(resolve(m, "bob", "localhost"),
		    "error: not in the address map");
		CHECK_STR(resolve(m, "bob", "example.org"), "m:m5");
		/* The root dot is ignored on both sides. */
		CHECK_STR(resolve(m, "carol", "example.org."), "m:m6");
		CHECK_STR(resolve(m, "carol", "example.org"), "m:m6");
		CHECK_STR(resolve(m, "bob", "example.org."), "m:m5");
		addrmap_free(m);
	}
}

static void
test_delimiter(void)
{
	struct addrmap *m = parse_ok("alice a\nbob-x bx\n+tag t\n");

	CHECK_STR(resolve_delim(m, "alice+tag", "localhost", "+"), "m:a");
	CHECK_STR(resolve_delim(m, "alice+", "localhost", "+"), "m:a");
	/* A set of characters; the first one found splits. */
	CHECK_STR(resolve_delim(m, "alice-tag", "localhost", "+-"), "m:a");
	CHECK_STR(resolve_delim(m, "alice+a-b", "localhost", "-+"), "m:a");
	CHECK_STR(resolve_delim(m, "alice-tag", "localhost", "+"),
	    "error: not in the address map");
	/* The whole local part is tried before the split one. */
	CHECK_STR(resolve_delim(m, "bob-x", "localhost", "-"), "m:bx");
	CHECK_STR(resolve_delim(m, "bob-y", "localhost", "-"),
	    "error: not in the address map");
	/* No delimiter. */
	CHECK_STR(resolve_delim(m, "alice+tag", "localhost", ""),
	    "error: not in the address map");
	CHECK_STR(resolve_delim(m, "alice+tag", "localhost", NULL),
	    "error: not in the address map");
	/* A leading delimiter is part of the name. */
	CHECK_STR(resolve_delim(m, "+tag", "localhost", "+"), "m:t");
	addrmap_free(m);

	/* Without a map. */
	CHECK_STR(resolve_delim(NULL, "Alice+Tag", "localhost", "+"),
	    "m:alice");
	CHECK_STR(resolve_delim(NULL, "alice-x+y", "localhost", "+-"),
	    "m:alice");
	CHECK_STR(resolve_delim(NULL, "alice+tag", "localhost", ""),
	    "m:alice+tag");
	CHECK_STR(resolve_delim(NULL, "+tag", "localhost", "+"), "m:+tag");
}

static void
test_catchall(void)
{
	struct addrmap *m = parse_ok(
	    "alice a\n"
	    "@example.org catch, copy@remote.example\n"
	    "@self.example x\n"
	    "@localhost catch@localhost\n");

	CHECK_STR(resolve(m, "alice", "example.org"), "m:a");
	CHECK_STR(resolve(m, "whoever+x", "example.org"),
	    "m:catch r:copy@remote.example");
	/* Quoted local parts only reach the catch-all. */
	CHECK_STR(resolve(m, "\"john doe\"", "example.org"),
	    "m:catch r:copy@remote.example");
	CHECK_STR(resolve(m, "\"alice\"", "example.org"),
	    "m:catch r:copy@remote.example");
	/* A catch-all pointing into its own domain: itself is a mailbox. */
	CHECK_STR(resolve(m, "anyone", "localhost"), "m:catch");
	addrmap_free(m);

	m = parse_ok("alice a\n");
	CHECK_STR(resolve(m, "\"john doe\"", "localhost"),
	    "error: not in the address map");
	addrmap_free(m);
}

static void
test_lists_and_recursion(void)
{
	struct addrmap *m = parse_ok(
	    "staff alice@localhost, bob@example.org, out@remote.example\n"
	    "alice a\n"
	    "bob@example.org b, a\n"
	    "all staff@localhost alice@localhost bob@example.org "
	    "OUT@remote.example\n"
	    "me me@localhost, me@remote.example\n"
	    "loop1 loop2@localhost\n"
	    "loop2 loop3@example.org\n"
	    "loop3 loop1@localhost\n"
	    "hole nobody@localhost\n"
	    "ext alice+x@localhost\n"
	    "x/y x/y@localhost\n");

	CHECK_STR(resolve(m, "staff", "localhost"),
	    "m:a m:b r:out@remote.example");
	/* Duplicates go; remote local parts keep their case. */
	CHECK_STR(resolve(m, "all", "localhost"),
	    "m:a m:b r:out@remote.example r:OUT@remote.example");
	CHECK_STR(resolve(m, "me", "localhost"), "m:me r:me@remote.example");
	CHECK_STR(resolve(m, "loop1", "localhost"),
	    "error: alias loop at loop1@localhost");
	CHECK_STR(resolve(m, "loop2", "localhost"),
	    "error: alias loop at loop2@localhost");
	CHECK_STR(resolve(m, "hole", "localhost"),
	    "error: alias target nobody@localhost is not in the address map");
	CHECK_STR(resolve(m, "ext", "localhost"), "m:a");
	/* A self-reference is a mailbox name, checked like any other. */
	CHECK_STR(resolve(m, "x/y", "localhost"),
	    "error: 'x/y' is not a valid mailbox name");
	addrmap_free(m);

	/* No is_local callback: every address target is remote. */
	m = parse_ok("x y@localhost\n");
	{
		struct route_list l = { NULL, 0 };
		struct err e;
		CHECK_INT(addrmap_resolve(m, "x", "localhost", "+", NULL,
		    NULL, &l, &e), 0);
		CHECK_INT(l.len, 1);
		CHECK_INT(l.v[0].kind, ROUTE_REMOTE);
		CHECK_STR(l.v[0].name, "y@localhost");
		route_list_clear(&l);
		CHECK(l.v == NULL && l.len == 0);
		route_list_clear(&l);
		route_list_clear(NULL);
	}
	addrmap_free(m);
}

static void
test_depth_limit(void)
{
	struct buf text;
	struct addrmap *m;

	/* l0 -> l1 -> ... -> l8: eight levels below the recipient, fine. */
	buf_init(&text);
	for (int i = 0; i < 8; i++)
		buf_printf(&text, "l%d l%d@localhost\n", i, i + 1);
	buf_puts(&text, "l8 box\n");
	m = parse_ok(text.data);
	CHECK_STR(resolve(m, "l0", "localhost"), "m:box");
	addrmap_free(m);

	/* One more is too deep. */
	buf_reset(&text);
	for (int i = 0; i < 9; i++)
		buf_printf(&text, "l%d l%d@localhost\n", i, i + 1);
	buf_puts(&text, "l9 box\n");
	m = parse_ok(text.data);
	CHECK_STR(resolve(m, "l0", "localhost"),
	    "error: aliases nested deeper than 8 levels at l9@localhost");
	CHECK_STR(resolve(m, "l1", "localhost"), "m:box");
	addrmap_free(m);
	buf_clear(&text);
}

/* Fan-out 10 at each of 8 levels: each address is expanded only once. */
static void
test_fanout(void)
{
	struct buf text;
	struct addrmap *m;
	clock_t t0;

	buf_init(&text);
	for (int lvl = 0; lvl < 8; lvl++) {
		buf_printf(&text, "g%d", lvl);
		for (int j = 0; j < 10; j++)
			buf_printf(&text, " g%d@localhost", lvl + 1);
		for (int j = 0; j < 10; j++)
			buf_printf(&text, " g%d@example.org", lvl + 1);
		buf_puts(&text, "\n");
	}
	buf_puts(&text, "g8 leaf\n");
	m = parse_ok(text.data);
	t0 = clock();
	CHECK_STR(resolve(m, "g0", "localhost"), "m:leaf");
	CHECK((clock() - t0) / CLOCKS_PER_SEC < 2);
	addrmap_free(m);
	buf_clear(&text);
}

static void
test_postmaster(void)
{
	struct addrmap *m = parse_ok("alice a\n");

	CHECK_STR(resolve(m, "postmaster", "localhost"), "m:postmaster");
	CHECK_STR(resolve(m, "PostMaster", "example.org"), "m:postmaster");
	CHECK_STR(resolve(m, "postmaster+x", "localhost"), "m:postmaster");
	CHECK_STR(resolve(m, "postmasterx", "localhost"),
	    "error: not in the address map");
	addrmap_free(m);

	m = parse_ok("postmaster alice@localhost\nalice a\n");
	CHECK_STR(resolve(m, "Postmaster", "localhost"), "m:a");
	addrmap_free(m);

	m = parse_ok("postmaster@example.org pm-example\n@localhost all\n");
	CHECK_STR(resolve(m, "postmaster", "example.org"), "m:pm-example");
	CHECK_STR(resolve(m, "postmaster", "localhost"), "m:all");
	addrmap_free(m);

	/* A broken entry still lets postmaster through. */
	m = parse_ok("postmaster nobody@localhost\n");
	CHECK_STR(resolve(m, "postmaster", "localhost"), "m:postmaster");
	addrmap_free(m);

	CHECK_STR(resolve(NULL, "POSTMASTER", "localhost"), "m:postmaster");
}

static void
test_identity(void)
{
	char name[300];

	CHECK_STR(resolve(NULL, "Alice", "localhost"), "m:alice");
	CHECK_STR(resolve(NULL, "a.b_c-d", "localhost"), "m:a.b_c-d");
	CHECK_STR(resolve(NULL, "../x", "localhost"),
	    "error: '../x' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "..", "localhost"),
	    "error: '..' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, ".", "localhost"),
	    "error: '.' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, ".hidden", "localhost"),
	    "error: '.hidden' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "a/b", "localhost"),
	    "error: 'a/b' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "/etc", "localhost"),
	    "error: '/etc' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "a\x01", "localhost"),
	    "error: 'a\\x01' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "a\x7f", "localhost"),
	    "error: 'a\\x7f' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "a\nb", "localhost"),
	    "error: 'a\\x0ab' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "", "localhost"),
	    "error: '' is not a valid mailbox name");
	CHECK_STR(resolve(NULL, "\"alice\"", "localhost"),
	    "error: quoted local part is not a mailbox");
	CHECK_STR(resolve(NULL, "\"../x\"", "localhost"),
	    "error: quoted local part is not a mailbox");
	/* The delimiter part goes first: "../+x" is still "..". */
	CHECK_STR(resolve(NULL, "..+x", "localhost"),
	    "error: '..' is not a valid mailbox name");

	memset(name, 'a', 255);
	name[255] = '\0';
	CHECK(strncmp(resolve(NULL, name, "localhost"), "m:aaa", 5) == 0);
	name[255] = 'a';
	name[256] = '\0';
	CHECK(strncmp(resolve(NULL, name, "localhost"), "error: 'aaa",
	    11) == 0);
}

static void
test_out_list(void)
{
	struct route_list l = { NULL, 0 };
	struct addrmap *m = parse_ok("list a, b\nother b, c\n");
	struct err e;

	CHECK_INT(addrmap_resolve(m, "list", "localhost", "+", is_local, NULL,
	    &l, &e), 0);
	CHECK_INT(l.len, 2);
	/* Appended, duplicates of what is there already dropped. */
	CHECK_INT(addrmap_resolve(m, "other", "localhost", "+", is_local,
	    NULL, &l, &e), 0);
	CHECK_INT(l.len, 3);
	CHECK_STR(l.v[2].name, "c");
	/* A failure leaves the list as it was. */
	CHECK_INT(addrmap_resolve(m, "nobody", "localhost", "+", is_local,
	    NULL, &l, &e), -1);
	CHECK_STR(e.msg, "not in the address map");
	CHECK_INT(l.len, 3);
	/* A mailbox and an address with the same text are different. */
	route_list_clear(&l);
	addrmap_free(m);

	m = parse_ok("x a@b.example\ny a@b.example\n");
	CHECK_INT(addrmap_resolve(m, "x", "localhost", "+", is_local, NULL,
	    &l, &e), 0);
	CHECK_INT(addrmap_resolve(NULL, "a@b.example", "localhost", "+",
	    is_local, NULL, &l, &e), 0);
	CHECK_INT(l.len, 2);
	CHECK_INT(l.v[0].kind, ROUTE_REMOTE);
	CHECK_INT(l.v[1].kind, ROUTE_MAILBOX);
	route_list_clear(&l);
	addrmap_free(m);
}

static void
test_mailbox_name_valid(void)
{
	char name[300];

	CHECK(mailbox_name_valid("alice"));
	CHECK(mailbox_name_valid("a.b"));
	CHECK(mailbox_name_valid("a..b"));	/* no path meaning */
	CHECK(mailbox_name_valid("x@y"));
	CHECK(mailbox_name_valid("m\xc3\xbcller"));
	CHECK(!mailbox_name_valid(NULL));
	CHECK(!mailbox_name_valid(""));
	CHECK(!mailbox_name_valid("."));
	CHECK(!mailbox_name_valid(".."));
	CHECK(!mailbox_name_valid("../etc"));
	CHECK(!mailbox_name_valid(".hidden"));
	CHECK(!mailbox_name_valid("a/b"));
	CHECK(!mailbox_name_valid("/"));
	CHECK(!mailbox_name_valid("a/"));
	CHECK(!mailbox_name_valid("\x01"));
	CHECK(!mailbox_name_valid("a\x1f"));
	CHECK(!mailbox_name_valid("a\x7f"));
	CHECK(!mailbox_name_valid("a\tb"));
	memset(name, 'a', sizeof(name));
	name[MAILBOX_NAME_MAX] = '\0';
	CHECK(mailbox_name_valid(name));
	name[MAILBOX_NAME_MAX] = 'a';
	name[MAILBOX_NAME_MAX + 1] = '\0';
	CHECK(!mailbox_name_valid(name));
}

/* 100k entries load quickly and every one is found. */
static void
test_large_map(void)
{
	struct buf text;
	struct addrmap *m;
	char local[32], want[32];
	clock_t t0;

	buf_init(&text);
	for (int i = 0; i < 100000; i++)
		buf_printf(&text, "user%d@example.org box%d\n", i, i);
	t0 = clock();
	m = parse_ok(text.data);
	CHECK_INT(addrmap_size(m), 100000);
	for (int i = 0; i < 100000; i += 997) {
		snprintf(local, sizeof(local), "User%d", i);
		snprintf(want, sizeof(want), "m:box%d", i);
		CHECK_STR(resolve(m, local, "example.org"), want);
	}
	CHECK((clock() - t0) / CLOCKS_PER_SEC < 10);
	addrmap_free(m);
	buf_clear(&text);
}

int
main(void)
{
	RUN(test_parse_good);
	RUN(test_parse_errors);
	RUN(test_load);
	RUN(test_lookup_order);
	RUN(test_delimiter);
	RUN(test_catchall);
	RUN(test_lists_and_recursion);
	RUN(test_depth_limit);
	RUN(test_fanout);
	RUN(test_postmaster);
	RUN(test_identity);
	RUN(test_out_list);
	RUN(test_mailbox_name_valid);
	RUN(test_large_map);
	T_EXIT();
}
