/*
 * test_cidr.c - unit tests of src/lib/cidr.c: parsing, formatting and
 * matching of IPv4/IPv6 networks, including IPv4-mapped clients and /0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "t.h"

#include "lib/cidr.h"
#include "lib/err.h"

static struct sockaddr_storage
sa_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
			fprintf(stderr, "  bad test address %s\n", ip);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
			fprintf(stderr, "  bad test address %s\n", ip);
	}
	return ss;
}

/* Parses net and tells whether ip is inside it. */
static bool
in_net(const char *net, const char *ip)
{
	struct cidr c;
	struct err e;
	struct sockaddr_storage ss = sa_of(ip);

	if (cidr_parse(net, &c, &e) == -1) {
		fprintf(stderr, "  cannot parse %s: %s\n", net, e.msg);
		return false;
	}
	return cidr_match_any(&c, 1, (struct sockaddr *)&ss);
}

static const char *
roundtrip(const char *in, char *out, size_t size)
{
	struct cidr c;
	struct err e;

	if (cidr_parse(in, &c, &e) == -1) {
		fprintf(stderr, "  cannot parse %s: %s\n", in, e.msg);
		return "(parse failed)";
	}
	return cidr_format(&c, out, size) ? out : "(format failed)";
}

static void
test_parse_format(void)
{
	char out[64];
	struct cidr c;
	struct err e;

	CHECK_STR(roundtrip("10.0.0.0/8", out, sizeof(out)), "10.0.0.0/8");
	CHECK_STR(roundtrip("127.0.0.1", out, sizeof(out)), "127.0.0.1/32");
	CHECK_STR(roundtrip("::1/128", out, sizeof(out)), "::1/128");
	CHECK_STR(roundtrip("::1", out, sizeof(out)), "::1/128");
	CHECK_STR(roundtrip("2001:DB8::/32", out, sizeof(out)),
	    "2001:db8::/32");
	CHECK_STR(roundtrip("0.0.0.0/0", out, sizeof(out)), "0.0.0.0/0");
	CHECK_STR(roundtrip("::/0", out, sizeof(out)), "::/0");
	CHECK_STR(roundtrip("192.168.1.128/25", out, sizeof(out)),
	    "192.168.1.128/25");
	CHECK(cidr_parse("10.0.0.0/8", &c, &e) == 0);
	CHECK_INT(c.family, AF_INET);
	CHECK_INT(c.prefix, 8);
	CHECK_INT(c.addr[0], 10);
	CHECK(cidr_parse("fe80::/10", &c, &e) == 0);
	CHECK_INT(c.family, AF_INET6);
	CHECK_INT(c.prefix, 10);
	/* Too small an output buffer fails instead of truncating silently. */
	CHECK(cidr_parse("10.0.0.0/8", &c, &e) == 0);
	CHECK(cidr_format(&c, out, 5) == NULL);
}

static void
test_parse_errors(void)
{
	static const char *bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1",
		"10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/+8", "10.0.0/8",
		"256.0.0.0/8", "example.com", "10.0.0.0/0008", " 10.0.0.0",
		"1.2.3.4:25", "[::1]", "::1/12a", "10.0.0.1/8",
		"2001:db8::1/64", "0.0.0.1/0",
	};
	struct cidr c;
	struct err e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (cidr_parse(bad[i], &c, &e) != -1) {
			fprintf(stderr, "  accepted '%s'\n", bad[i]);
			CHECK(0);
		}
		CHECK(e.msg[0] != '\0');
	}
	CHECK(cidr_parse("10.0.0.1/8", &c, &e) == -1);
	CHECK(strstr(e.msg, "host bits") != NULL);
	CHECK(strstr(e.msg, "10.0.0.0/8") != NULL);
	CHECK(cidr_parse("10.0.0.0/33", &c, &e) == -1);
	CHECK(strstr(e.msg, "0-32") != NULL);
	CHECK(cidr_parse("::/129", &c, &e) == -1);
	CHECK(strstr(e.msg, "0-128") != NULL);
}

static void
test_match_v4(void)
{
	CHECK(in_net("10.0.0.0/8", "10.1.2.3"));
	CHECK(in_net("10.0.0.0/8", "10.255.255.255"));
	CHECK(!in_net("10.0.0.0/8", "11.0.0.0"));
	CHECK(!in_net("10.0.0.0/8", "9.255.255.255"));
	CHECK(in_net("192.168.1.128/25", "192.168.1.200"));
	CHECK(!in_net("192.168.1.128/25", "192.168.1.127"));
	CHECK(in_net("192.168.1.7", "192.168.1.7"));
	CHECK(!in_net("192.168.1.7", "192.168.1.6"));
	CHECK(in_net("172.16.0.0/12", "172.31.255.255"));
	CHECK(!in_net("172.16.0.0/12", "172.32.0.0"));
	/* /0 is everything of its family, and nothing of the other. */
	CHECK(in_net("0.0.0.0/0", "1.2.3.4"));
	CHECK(in_net("0.0.0.0/0", "255.255.255.255"));
	CHECK(!in_net("0.0.0.0/0", "2001:db8::1"));
	/* An IPv4 network never matches a plain IPv6 client. */
	CHECK(!in_net("127.0.0.0/8", "::1"));
}

static void
test_match_v6(void)
{
	CHECK(in_net("::1/128", "::1"));
	CHECK(!in_net("::1/128", "::2"));
	CHECK(in_net("2001:db8::/32", "2001:db8:ffff::1"));
	CHECK(!in_net("2001:db8::/32", "2001:db9::1"));
	CHECK(in_net("fe80::/10", "febf::1"));
	CHECK(!in_net("fe80::/10", "fec0::1"));
	CHECK(in_net("::/0", "2001:db8::1"));
	CHECK(in_net("::/0", "::1"));
	CHECK(!in_net("::/0", "10.0.0.1"));
	CHECK(!in_net("::1/128", "127.0.0.1"));
}

static void
test_match_mapped(void)
{
	/* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d. */
	CHECK(in_net("127.0.0.0/8", "::ffff:127.0.0.1"));
	CHECK(in_net("10.0.0.0/8", "::ffff:10.9.8.7"));
	CHECK(!in_net("10.0.0.0/8", "::ffff:11.9.8.7"));
	CHECK(in_net("0.0.0.0/0", "::ffff:1.2.3.4"));
	CHECK(in_net("203.0.113.5", "::ffff:203.0.113.5"));
	/* Still an IPv6 address for IPv6 networks that contain it. */
	CHECK(in_net("::ffff:0:0/96", "::ffff:10.0.0.1"));
	CHECK(in_net("::/0", "::ffff:10.0.0.1"));
	/* Not mapped: ::a.b.c.d (deprecated compatible form), 64:ff9b::. */
	CHECK(!in_net("10.0.0.0/8", "::10.0.0.1"));
	CHECK(!in_net("10.0.0.0/8", "64:ff9b::10.0.0.1"));
}

static void
test_match_any(void)
{
	struct cidr v[3];
	struct err e;
	struct sockaddr_storage ss;
	struct sockaddr sa;

	CHECK(cidr_parse("127.0.0.0/8", &v[0], &e) == 0);
	CHECK(cidr_parse("::1/128", &v[1], &e) == 0);
	CHECK(cidr_parse("192.0.2.0/24", &v[2], &e) == 0);
	ss = sa_of("192.0.2.77");
	CHECK(cidr_match_any(v, 3, (struct sockaddr *)&ss));
	CHECK(!cidr_match_any(v, 2, (struct sockaddr *)&ss));
	ss = sa_of("::1");
	CHECK(cidr_match_any(v, 3, (struct sockaddr *)&ss));
	ss = sa_of("198.51.100.1");
	CHECK(!cidr_match_any(v, 3, (struct sockaddr *)&ss));
	CHECK(!cidr_match_any(v, 0, (struct sockaddr *)&ss));
	CHECK(!cidr_match_any(NULL, 0, (struct sockaddr *)&ss));
	CHECK(!cidr_match_any(v, 3, NULL));
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	CHECK(!cidr_match_any(v, 3, &sa));
}

int
main(void)
{
	RUN(test_parse_format);
	RUN(test_parse_errors);
	RUN(test_match_v4);
	RUN(test_match_v6);
	RUN(test_match_mapped);
	RUN(test_match_any);
	T_EXIT();
}
