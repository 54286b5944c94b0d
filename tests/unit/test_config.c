/*
 * test_config.c - unit tests of src/gate/config.c: defaults, every key,
 * units, error texts with FILE:LINE, overrides, relative paths, the round
 * trip through config_print, and config_check_files (auth_users, TLS).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "t.h"

#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/mem.h"
#include "gate/config.h"

#define BASE	"/srv/gate"

static char tmpdir[PATH_MAX];

/* Parses text as the file "t.conf" in BASE; errors go to errs. */
static struct config *
parse(const char *text, struct buf *errs)
{
	buf_reset(errs);
	return config_parse_text("t.conf", text, text ? strlen(text) : 0,
	    BASE, NULL, 0, errs);
}

static struct config *
parse_ov(const char *text, char **ov, size_t n, struct buf *errs)
{
	buf_reset(errs);
	return config_parse_text("t.conf", text, text ? strlen(text) : 0,
	    BASE, ov, n, errs);
}

/* The errors of text, all of them, as one string (caller frees). */
static char *
errors_of(const char *text)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse(text, &errs);
	if (c != NULL) {
		fprintf(stderr, "  accepted: %s", text);
		config_unref(c);
		buf_clear(&errs);
		return xstrdup("(accepted)");
	}
	buf_putc(&errs, '\0');
	return buf_release(&errs);
}

#define CHECK_ERRORS(text, expected) do {				\
	char *t_e = errors_of(text);					\
	CHECK_STR(t_e, expected);					\
	free(t_e);							\
} while (0)

/* True when text loads (a check of acceptance only). */
static bool
accepts(const char *text)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse(text, &errs);
	if (c == NULL)
		fprintf(stderr, "  refused %s  -> %s", text, errs.data);
	config_unref(c);
	buf_clear(&errs);
	return c != NULL;
}

static bool
refuses(const char *text)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse(text, &errs);
	if (c != NULL)
		fprintf(stderr, "  accepted %s", text);
	config_unref(c);
	buf_clear(&errs);
	return c == NULL;
}

static const char *
cidr_at(const struct cidrlist *l, size_t i, char *out, size_t size)
{
	if (i >= l->len)
		return "(none)";
	return cidr_format(&l->v[i], out, size);
}

static void
test_defaults(void)
{
	struct buf errs;
	struct config *c;
	char host[256] = "", s[64];

	buf_init(&errs);
	c = parse(NULL, &errs);
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "  %s", errs.data);
		buf_clear(&errs);
		return;
	}
	CHECK_INT(errs.len, 0);
	CHECK_INT(c->refs, 1);
	CHECK(c->file == NULL);
	CHECK_STR(c->base_dir, BASE);
	CHECK(gethostname(host, sizeof(host)) == 0);
	CHECK_STR(c->hostname, host);
	CHECK_INT(c->listen.len, 1);
	CHECK_STR(c->listen.v[0], "127.0.0.1:2525");
	CHECK_INT(c->submission_listen.len, 1);
	CHECK_STR(c->submission_listen.v[0], "127.0.0.1:2587");
	CHECK_STR(c->spool_dir, BASE "/var/spool");
	CHECK_STR(c->postoffice_dir, BASE "/var/postoffice");
	CHECK_INT(c->local_domains.len, 1);
	CHECK_STR(c->local_domains.v[0], "localhost");
	CHECK_STR(c->address_map, "");
	CHECK_STR(c->recipient_delimiter, "+");
	CHECK_STR(c->lmtp_host, "");
	CHECK_STR(c->relay_host, "");
	CHECK_INT(c->dns_servers.len, 0);
	CHECK_INT(c->relay_networks.len, 2);
	CHECK_STR(cidr_at(&c->relay_networks, 0, s, sizeof(s)),
	    "127.0.0.0/8");
	CHECK_STR(cidr_at(&c->relay_networks, 1, s, sizeof(s)), "::1/128");
	CHECK_INT(c->max_message_size, 25ULL * 1024 * 1024);
	CHECK_INT(c->max_recipients, 1000);
	CHECK_INT(c->max_connections, 10000);
	CHECK_INT(c->max_connections_per_ip, 50);
	CHECK_INT(c->command_timeout, 300);
	CHECK_INT(c->data_timeout, 600);
	CHECK_STR(c->tls_cert_file, "");
	CHECK_STR(c->tls_key_file, "");
	CHECK_STR(c->auth_users, "");
	CHECK(c->auth_require_tls);
	CHECK_INT(c->retry_min, 300);
	CHECK_INT(c->retry_max, 3600);
	CHECK_INT(c->queue_lifetime, 5 * 86400);
	CHECK_INT(c->delay_warning, 4 * 3600);
	CHECK_INT(c->delivery_concurrency, 20);
	CHECK(!c->proxy_protocol);
	CHECK_INT(c->bind_retry, 60);
	CHECK_STR(c->user, "smtpgate");
	CHECK_INT(c->log, LOG_TARGET_STDERR);
	CHECK_INT(c->trace_clients.len, 0);
	config_unref(c);
	buf_clear(&errs);
}

static const char all_keys[] =
    "# every key, none at its default\n"
    "hostname = MX1.Example.ORG\n"
    "listen = 0.0.0.0:25, [::]:25\n"
    "submission_listen = 127.0.0.1:587 [::1]:587,*:10587\n"
    "spool_dir = /var/spool/smtpgate\n"
    "postoffice_dir = mail\n"
    "local_domains = Example.ORG, example.net. localhost\n"
    "address_map = etc/aliases\n"
    "recipient_delimiter = -\n"
    "lmtp_host = unix:/run/dovecot/lmtp\n"
    "relay_host = [192.0.2.1]:2525\n"
    "dns_servers = 127.0.0.1:5353, ::1, [::1]:53 192.0.2.53\n"
    "relay_networks = 10.0.0.0/8 192.168.0.0/16, 2001:db8::/32\n"
    "max_message_size = 10M\n"
    "max_recipients = 100\n"
    "max_connections = 500\n"
    "max_connections_per_ip = 5\n"
    "command_timeout = 2m\n"
    "data_timeout = 900\n"
    "tls_cert_file = tls/cert.pem\n"
    "tls_key_file = /etc/ssl/private/key.pem\n"
    "auth_users = users\n"
    "auth_require_tls = no\n"
    "retry_min = 1m\n"
    "retry_max = 2h\n"
    "queue_lifetime = 3d\n"
    "delay_warning = 0\n"
    "delivery_concurrency = 4\n"
    "proxy_protocol = yes\n"
    "bind_retry = 0\n"
    "user = mail\n"
    "log = syslog\n"
    "trace_clients = 203.0.113.7, 2001:db8::1\n";

static void
test_every_key(void)
{
	struct buf errs;
	struct config *c;
	char s[64];

	buf_init(&errs);
	c = parse(all_keys, &errs);
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "  %s", errs.data);
		buf_clear(&errs);
		return;
	}
	CHECK_STR(c->hostname, "MX1.Example.ORG");
	CHECK_INT(c->listen.len, 2);
	CHECK_STR(c->listen.v[0], "0.0.0.0:25");
	CHECK_STR(c->listen.v[1], "[::]:25");
	CHECK_INT(c->submission_listen.len, 3);
	CHECK_STR(c->submission_listen.v[2], "*:10587");
	CHECK_STR(c->spool_dir, "/var/spool/smtpgate");
	CHECK_STR(c->postoffice_dir, BASE "/mail");
	CHECK_INT(c->local_domains.len, 3);
	CHECK_STR(c->local_domains.v[0], "example.org");
	CHECK_STR(c->local_domains.v[1], "example.net");
	CHECK_STR(c->local_domains.v[2], "localhost");
	CHECK_STR(c->address_map, BASE "/etc/aliases");
	CHECK_STR(c->recipient_delimiter, "-");
	CHECK_STR(c->lmtp_host, "unix:/run/dovecot/lmtp");
	CHECK_STR(c->relay_host, "[192.0.2.1]:2525");
	CHECK_INT(c->dns_servers.len, 4);
	CHECK_STR(c->dns_servers.v[0], "127.0.0.1:5353");
	CHECK_STR(c->dns_servers.v[1], "::1");
	CHECK_STR(c->dns_servers.v[2], "[::1]:53");
	CHECK_STR(c->dns_servers.v[3], "192.0.2.53");
	CHECK_INT(c->relay_networks.len, 3);
	CHECK_STR(cidr_at(&c->relay_networks, 2, s, sizeof(s)),
	    "2001:db8::/32");
	CHECK_INT(c->max_message_size, 10ULL * 1024 * 1024);
	CHECK_INT(c->max_recipients, 100);
	CHECK_INT(c->max_connections, 500);
	CHECK_INT(c->max_connections_per_ip, 5);
	CHECK_INT(c->command_timeout, 120);
	CHECK_INT(c->data_timeout, 900);
	CHECK_STR(c->tls_cert_file, BASE "/tls/cert.pem");
	CHECK_STR(c->tls_key_file, "/etc/ssl/private/key.pem");
	CHECK_STR(c->auth_users, BASE "/users");
	CHECK(!c->auth_require_tls);
	CHECK_INT(c->retry_min, 60);
	CHECK_INT(c->retry_max, 7200);
	CHECK_INT(c->queue_lifetime, 3 * 86400);
	CHECK_INT(c->delay_warning, 0);
	CHECK_INT(c->delivery_concurrency, 4);
	CHECK(c->proxy_protocol);
	CHECK_INT(c->bind_retry, 0);
	CHECK_STR(c->user, "mail");
	CHECK_INT(c->log, LOG_TARGET_SYSLOG);
	CHECK_INT(c->trace_clients.len, 2);
	CHECK_STR(cidr_at(&c->trace_clients, 0, s, sizeof(s)),
	    "203.0.113.7/32");
	CHECK_STR(cidr_at(&c->trace_clients, 1, s, sizeof(s)),
	    "2001:db8::1/128");
	config_unref(c);
	buf_clear(&errs);
}

static void
test_units(void)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse("command_timeout = 45\ndata_timeout = 45s\n"
	    "retry_min = 0d\n", &errs);
	CHECK(c == NULL);	/* retry_min must be > 0 */
	c = parse("command_timeout = 45\ndata_timeout = 45s\n"
	    "retry_min = 1\nretry_max = 1d\nqueue_lifetime = 36h\n"
	    "delay_warning = 0s\nbind_retry = 3m\n"
	    "max_message_size = 1k\n", &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->command_timeout, 45);
		CHECK_INT(c->data_timeout, 45);
		CHECK_INT(c->retry_min, 1);
		CHECK_INT(c->retry_max, 86400);
		CHECK_INT(c->queue_lifetime, 36 * 3600);
		CHECK_INT(c->delay_warning, 0);
		CHECK_INT(c->bind_retry, 180);
		CHECK_INT(c->max_message_size, 1024);
	}
	config_unref(c);
	c = parse("max_message_size = 123456\n", &errs);
	CHECK(c && c->max_message_size == 123456);
	config_unref(c);
	c = parse("max_message_size = 2G\n", &errs);
	CHECK(c && c->max_message_size == 2ULL * 1024 * 1024 * 1024);
	config_unref(c);
	c = parse("max_message_size = 512K\n", &errs);
	CHECK(c && c->max_message_size == 512 * 1024);
	config_unref(c);
	c = parse("max_message_size = 3m\n", &errs);
	CHECK(c && c->max_message_size == 3 * 1024 * 1024);
	config_unref(c);
	CHECK(refuses("command_timeout = 5x\n"));
	CHECK(refuses("command_timeout = -1\n"));
	CHECK(refuses("command_timeout = 1.5m\n"));
	CHECK(refuses("command_timeout = 5 m\n"));
	CHECK(refuses("command_timeout = m\n"));
	CHECK(refuses("command_timeout = 5mm\n"));
	CHECK(refuses("command_timeout = 0\n"));
	CHECK(refuses("command_timeout =\n"));
	CHECK(refuses("command_timeout = 99999999999999999999999\n"));
	CHECK(refuses("queue_lifetime = 3651d\n"));
	CHECK(refuses("max_message_size = 1023\n"));
	CHECK(refuses("max_message_size = 0\n"));
	CHECK(refuses("max_message_size = 10MB\n"));
	CHECK(refuses("max_message_size = 10T\n"));
	CHECK(refuses("max_message_size = 99999999999G\n"));
	CHECK(refuses("max_recipients = 0\n"));
	CHECK(refuses("max_recipients = 1k\n"));
	CHECK(refuses("max_recipients = 4294967296\n"));
	CHECK(refuses("max_connections = +5\n"));
	CHECK(refuses("max_connections_per_ip = 0\n"));
	CHECK(refuses("delivery_concurrency = 0\n"));
	CHECK(accepts("max_recipients = 4294967295\n"));
	buf_clear(&errs);
}

static void
test_booleans(void)
{
	static const char *yes[] = { "yes", "YES", "true", "on", "1", "On" };
	static const char *no[] = { "no", "No", "false", "off", "0" };
	struct buf errs;
	char line[64];

	buf_init(&errs);
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		struct config *c;

		snprintf(line, sizeof(line), "proxy_protocol = %s\n", yes[i]);
		c = parse(line, &errs);
		CHECK(c && c->proxy_protocol);
		config_unref(c);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		struct config *c;

		snprintf(line, sizeof(line), "auth_require_tls = %s\n", no[i]);
		c = parse(line, &errs);
		CHECK(c && !c->auth_require_tls);
		config_unref(c);
	}
	CHECK_ERRORS("proxy_protocol = maybe\n",
	    "t.conf:1: bad value for proxy_protocol: 'maybe' "
	    "(expected yes or no)\n");
	CHECK(refuses("proxy_protocol = \n"));
	CHECK(refuses("log = file\n"));
	buf_clear(&errs);
}

static void
test_syntax(void)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	/* Comments, blanks, CRLF, spaces around '=', later wins. */
	c = parse("\n   # a comment\n\t\nmax_recipients=7\r\n"
	    "max_recipients = 8   # trailing comment\n"
	    "  max_connections\t=\t9#10\n", &errs);
	CHECK(c == NULL);	/* "9#10" is not a number */
	c = parse("\n   # a comment\n\t\nmax_recipients=7\r\n"
	    "max_connections = 9 # trailing comment\n"
	    "address_map = map#1\n"
	    "max_recipients = 8   # later wins\n"
	    "relay_host = # nothing\n", &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->max_recipients, 8);
		CHECK_INT(c->max_connections, 9);
		CHECK_STR(c->address_map, BASE "/map#1");
		CHECK_STR(c->relay_host, "");
	}
	config_unref(c);
	/* An empty value clears a list: no listener of that kind. */
	c = parse("submission_listen =\nlisten = \nlocal_domains =\n", &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->listen.len, 0);
		CHECK_INT(c->submission_listen.len, 0);
		CHECK_INT(c->local_domains.len, 0);
	}
	config_unref(c);
	/* No final newline. */
	c = parse("max_recipients = 3", &errs);
	CHECK(c && c->max_recipients == 3);
	config_unref(c);
	buf_clear(&errs);
}

static void
test_error_texts(void)
{
	CHECK_ERRORS("foo = 1\n", "t.conf:1: unknown key 'foo'\n");
	CHECK_ERRORS("# c\n\nmax_recipients = abc\n",
	    "t.conf:3: bad value for max_recipients: 'abc' "
	    "(expected a number)\n");
	CHECK_ERRORS("max_recipients = 0\n",
	    "t.conf:1: bad value for max_recipients: '0' "
	    "(expected a number >= 1)\n");
	CHECK_ERRORS("listen 127.0.0.1:25\n",
	    "t.conf:1: expected 'key = value', got 'listen 127.0.0.1:25'\n");
	CHECK_ERRORS(" = 5\n", "t.conf:1: missing key before '='\n");
	CHECK_ERRORS("Hostname = x\n", "t.conf:1: unknown key 'Hostname'\n");
	CHECK_ERRORS("data_timeout = 10 minutes\n",
	    "t.conf:1: bad value for data_timeout: '10 minutes' (expected a "
	    "duration like 30s, 5m, 1h or 5d)\n");
	CHECK_ERRORS("max_message_size = 1.5M\n",
	    "t.conf:1: bad value for max_message_size: '1.5M' (expected a "
	    "size like 512k, 25M or 1G)\n");
	CHECK_ERRORS("max_message_size = 100\n",
	    "t.conf:1: bad value for max_message_size: '100' (must be at "
	    "least 1k)\n");
	CHECK_ERRORS("relay_networks = 10.0.0.0/8, 10.0.0.1/8\n",
	    "t.conf:1: bad value for relay_networks: '10.0.0.1/8' (host bits "
	    "set beyond the prefix length; did you mean 10.0.0.0/8?)\n");
	CHECK_ERRORS("listen = 127.0.0.1:0\n",
	    "t.conf:1: bad value for listen: '127.0.0.1:0' (port must be a "
	    "number 1-65535)\n");
	CHECK_ERRORS("hostname = mx_1.example.org\n",
	    "t.conf:1: bad value for hostname: 'mx_1.example.org' (expected "
	    "a domain name)\n");
	CHECK_ERRORS("log = file\n",
	    "t.conf:1: bad value for log: 'file' (expected stderr or "
	    "syslog)\n");
	/* Every error is reported, not only the first. */
	CHECK_ERRORS("foo = 1\nmax_recipients = x\nbar\n"
	    "max_connections = 10\nretry_min = soon\n",
	    "t.conf:1: unknown key 'foo'\n"
	    "t.conf:2: bad value for max_recipients: 'x' (expected a number)\n"
	    "t.conf:3: expected 'key = value', got 'bar'\n"
	    "t.conf:5: bad value for retry_min: 'soon' (expected a duration "
	    "like 30s, 5m, 1h or 5d)\n");
	/* Control characters and NUL bytes are named, not echoed. */
	CHECK_ERRORS("user = a\001b\n", "t.conf:1: control character in line\n");
	CHECK_ERRORS("foo\377 = 1\n", "t.conf:1: unknown key 'foo?'\n");
}

static void
test_nul_byte(void)
{
	static const char text[] = "max_recipients = 5\nuser = a\0b\n";
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = config_parse_text("t.conf", text, sizeof(text) - 1, BASE, NULL, 0,
	    &errs);
	CHECK(c == NULL);
	CHECK_STR(errs.data, "t.conf:2: NUL byte in line\n");
	buf_clear(&errs);
}

static void
test_cross_checks(void)
{
	CHECK_ERRORS("retry_min = 2h\n",
	    "t.conf:1: retry_min (2h) is greater than retry_max (1h)\n");
	CHECK_ERRORS("retry_max = 2h\nretry_min = 3h\nretry_max = 90s\n",
	    "t.conf:3: retry_min (3h) is greater than retry_max (90s)\n");
	CHECK(accepts("retry_min = 1h\nretry_max = 60m\n"));
	CHECK(refuses("retry_max = 0\n"));
	CHECK_ERRORS("\ntls_cert_file = cert.pem\n",
	    "t.conf:2: tls_cert_file is set but tls_key_file is not: "
	    "STARTTLS needs both\n");
	CHECK_ERRORS("tls_key_file = key.pem\n",
	    "t.conf:1: tls_key_file is set but tls_cert_file is not: "
	    "STARTTLS needs both\n");
	CHECK(accepts("tls_key_file = key.pem\ntls_cert_file = c.pem\n"));
	CHECK_ERRORS("listen = 127.0.0.1:25\nsubmission_listen = "
	    "127.0.0.1:25\n", "t.conf:2: listen address '127.0.0.1:25' is "
	    "given twice\n");
	CHECK_ERRORS("listen = 127.0.0.1:25 127.0.0.1:25\n",
	    "t.conf:1: listen address '127.0.0.1:25' is given twice\n");
}

static void
test_addresses(void)
{
	/* Listeners. */
	CHECK(accepts("listen = 127.0.0.1:25, [::1]:25, *:25, "
	    "localhost:2525, [::]:65535\n"));
	CHECK(refuses("listen = 127.0.0.1\n"));
	CHECK(refuses("listen = 127.0.0.1:65536\n"));
	CHECK(refuses("listen = 127.0.0.1:\n"));
	CHECK(refuses("listen = :25\n"));
	CHECK(refuses("listen = ::1:25\n"));
	CHECK(refuses("listen = [::1:25\n"));
	CHECK(refuses("listen = [::1]25\n"));
	CHECK(refuses("listen = [127.0.0.1]:25\n"));
	CHECK(refuses("listen = mail.example.org:25\n"));
	CHECK(refuses("listen = 127.0.0.1:smtp\n"));
	CHECK(refuses("submission_listen = 1.2.3:587\n"));
	/* relay_host: port optional, brackets for IP literals. */
	CHECK(accepts("relay_host = smtp.example.org\n"));
	CHECK(accepts("relay_host = smtp.example.org:587\n"));
	CHECK(accepts("relay_host = [192.0.2.1]\n"));
	CHECK(accepts("relay_host = [2001:db8::1]:25\n"));
	CHECK(accepts("relay_host = 192.0.2.1:25\n"));
	CHECK(refuses("relay_host = 2001:db8::1\n"));
	CHECK(refuses("relay_host = [smtp.example.org]\n"));
	CHECK(refuses("relay_host = smtp.example.org:0\n"));
	CHECK(refuses("relay_host = smtp..example.org\n"));
	CHECK(refuses("relay_host = a b\n"));
	/* lmtp_host: host:port (port needed) or unix:/path. */
	CHECK(accepts("lmtp_host = 127.0.0.1:24\n"));
	CHECK(accepts("lmtp_host = dovecot.internal:24\n"));
	CHECK(accepts("lmtp_host = [::1]:24\n"));
	CHECK(accepts("lmtp_host = unix:/var/run/lmtp\n"));
	CHECK(refuses("lmtp_host = dovecot.internal\n"));
	CHECK(refuses("lmtp_host = unix:lmtp\n"));
	CHECK(refuses("lmtp_host = unix:\n"));
	/* dns_servers. */
	CHECK(accepts("dns_servers = 127.0.0.1 127.0.0.1:5353 ::1 [::1] "
	    "[::1]:53 2001:db8::53\n"));
	CHECK(refuses("dns_servers = ns1.example.org\n"));
	CHECK(refuses("dns_servers = 127.0.0.1:0\n"));
	CHECK(refuses("dns_servers = [127.0.0.1]:53\n"));
	/* Domains. */
	CHECK(accepts("hostname = localhost\n"));
	CHECK(accepts("hostname = a-1.b2.example\n"));
	CHECK(refuses("hostname =\n"));
	CHECK(refuses("hostname = -a.example\n"));
	CHECK(refuses("hostname = a-.example\n"));
	CHECK(refuses("hostname = example.org.\n"));
	CHECK(refuses("hostname = a..b\n"));
	CHECK(refuses("local_domains = example.org, bad_domain\n"));
	CHECK(refuses("local_domains = .\n"));
	/* Delimiter and user. */
	CHECK(accepts("recipient_delimiter =\n"));
	CHECK(accepts("recipient_delimiter = +-\n"));
	CHECK(refuses("recipient_delimiter = @\n"));
	CHECK(refuses("recipient_delimiter = + -\n"));
	CHECK(accepts("user =\n"));
	CHECK(accepts("user = root\n"));
	CHECK(refuses("user = a:b\n"));
	CHECK(refuses("user = a b\n"));
	/* CIDR lists. */
	CHECK(accepts("relay_networks =\n"));
	CHECK(accepts("trace_clients = 0.0.0.0/0 ::/0\n"));
	CHECK(refuses("trace_clients = 10.0.0.0/33\n"));
	CHECK(refuses("relay_networks = localhost\n"));
	/* Paths. */
	CHECK(refuses("spool_dir =\n"));
	CHECK(refuses("postoffice_dir = \n"));
}

static void
test_overrides(void)
{
	char *ov[] = {
		"max_recipients=12", " data_timeout = 1h ", "relay_host=",
		"proxy_protocol=yes",
	};
	char *bad[] = {
		"max_recipients=12", "nonsense", "foo=bar",
		"max_connections=lots", "listen=[::1]:26 # a comment",
		"user=a\tb", "user=a\rb", "", " = 1",
	};
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse_ov("max_recipients = 3\nrelay_host = smtp.example.org\n", ov,
	    4, &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->max_recipients, 12);
		CHECK_INT(c->data_timeout, 3600);
		CHECK_STR(c->relay_host, "");
		CHECK(c->proxy_protocol);
	}
	config_unref(c);
	c = parse_ov("retry_min = 2h\n", bad, 9, &errs);
	CHECK(c == NULL);
	CHECK_STR(errs.data,
	    "-o:2: expected KEY=VALUE, got 'nonsense'\n"
	    "-o:3: unknown key 'foo'\n"
	    "-o:4: bad value for max_connections: 'lots' (expected a "
	    "number)\n"
	    "-o:6: bad value for user: 'a?b' (expected a user name)\n"
	    "-o:7: control character in override\n"
	    "-o:8: expected KEY=VALUE, got ''\n"
	    "-o:9: missing key before '='\n"
	    "t.conf:1: retry_min (2h) is greater than retry_max (1h)\n");
	/* The same value syntax as the file: a trailing comment goes. */
	{
		char *o3[] = { "listen=[::1]:26 # a comment" };

		c = parse_ov(NULL, o3, 1, &errs);
		CHECK(c && c->listen.len == 1 &&
		    strcmp(c->listen.v[0], "[::1]:26") == 0);
		config_unref(c);
	}
	/* An override that breaks a rule is named as the place. */
	{
		char *o1[] = { "retry_max=1m" };

		c = parse_ov(NULL, o1, 1, &errs);
		CHECK(c == NULL);
		CHECK_STR(errs.data, "-o:1: retry_min (5m) is greater than "
		    "retry_max (60s)\n");
	}
	/* Relative paths in overrides resolve like the file's. */
	{
		char *o2[] = { "spool_dir=q" };

		c = parse_ov(NULL, o2, 1, &errs);
		CHECK(c && strcmp(c->spool_dir, BASE "/q") == 0);
		config_unref(c);
	}
	buf_clear(&errs);
}

static void
test_paths(void)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse("spool_dir = ./q//x/.\npostoffice_dir = ../mail/\n"
	    "address_map = /etc//aliases\nauth_users = /\n", &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->spool_dir, BASE "/q/x");
		CHECK_STR(c->postoffice_dir, BASE "/../mail");
		CHECK_STR(c->address_map, "/etc/aliases");
		CHECK_STR(c->auth_users, "/");
	}
	config_unref(c);
	c = config_parse_text("t.conf", "spool_dir = s\n", 14, "/", NULL, 0,
	    &errs);
	CHECK(c && strcmp(c->spool_dir, "/s") == 0);
	config_unref(c);
	buf_clear(&errs);
}

static int
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

static void
test_load_file(void)
{
	char path[PATH_MAX + 32], sub[PATH_MAX + 32], cwd[PATH_MAX], exp[PATH_MAX + 64];
	char *ov[] = { "max_recipients=5" };
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
	CHECK(mkdir(sub, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/etc/smtpgate.conf", tmpdir);
	CHECK(write_file(path, "spool_dir = spool\nmax_recipients = 9\n"
	    "address_map = ../aliases\n") == 0);
	c = config_load(path, ov, 1, &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->file, path);
		CHECK_STR(c->base_dir, sub);
		snprintf(exp, sizeof(exp), "%s/spool", sub);
		CHECK_STR(c->spool_dir, exp);
		snprintf(exp, sizeof(exp), "%s/var/postoffice", sub);
		CHECK_STR(c->postoffice_dir, exp);
		snprintf(exp, sizeof(exp), "%s/../aliases", sub);
		CHECK_STR(c->address_map, exp);
		CHECK_INT(c->max_recipients, 5);
	}
	config_unref(c);

	/* A relative -c FILE is made absolute against the current dir. */
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK(chdir(tmpdir) == 0);
	c = config_load("etc/smtpgate.conf", NULL, 0, &errs);
	CHECK(c && strcmp(c->file, path) == 0);
	config_unref(c);
	/* No file: paths resolve against the current directory. */
	c = config_load(NULL, NULL, 0, &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK(c->file == NULL);
		snprintf(exp, sizeof(exp), "%s/var/spool", tmpdir);
		CHECK_STR(c->spool_dir, exp);
	}
	config_unref(c);
	/* A missing file is named, line-less; overrides still checked. */
	buf_reset(&errs);
	{
		char *o2[] = { "max_recipients=none" };

		c = config_load("missing.conf", o2, 1, &errs);
	}
	CHECK(c == NULL);
	CHECK_STR(errs.data, "missing.conf: cannot open: No such file or "
	    "directory\n-o:1: bad value for max_recipients: 'none' "
	    "(expected a number)\n");
	buf_reset(&errs);
	c = config_load("etc", NULL, 0, &errs);
	CHECK(c == NULL);
	CHECK_STR(errs.data, "etc: cannot read: Is a directory\n");
	/* Errors from a file name the file as given. */
	CHECK(write_file("bad.conf", "\nmax_connections = -\n") == 0);
	buf_reset(&errs);
	c = config_load("bad.conf", NULL, 0, &errs);
	CHECK(c == NULL);
	CHECK_STR(errs.data, "bad.conf:2: bad value for max_connections: "
	    "'-' (expected a number)\n");
	CHECK(chdir(cwd) == 0);
	buf_clear(&errs);
}

/* config_print's output loads into the same configuration. */
static void
roundtrip(const char *text)
{
	struct buf errs, out1, out2;
	struct config *c1, *c2;

	buf_init(&errs);
	buf_init(&out1);
	buf_init(&out2);
	c1 = parse(text, &errs);
	CHECK(c1 != NULL);
	if (c1 == NULL) {
		fprintf(stderr, "  %s", errs.data);
		goto out;
	}
	config_print(c1, &out1);
	/* A different base: every path in the output is absolute. */
	c2 = config_parse_text("printed", out1.data, out1.len, "/elsewhere",
	    NULL, 0, &errs);
	CHECK(c2 != NULL);
	if (c2 == NULL) {
		fprintf(stderr, "  %s", errs.data);
		config_unref(c1);
		goto out;
	}
	config_print(c2, &out2);
	CHECK_STR(out1.data, out2.data);
	CHECK_STR(c1->hostname, c2->hostname);
	CHECK_STR(c1->spool_dir, c2->spool_dir);
	CHECK_INT(c1->max_message_size, c2->max_message_size);
	CHECK_INT(c1->retry_min, c2->retry_min);
	CHECK_INT(c1->relay_networks.len, c2->relay_networks.len);
	CHECK(c1->relay_networks.len == 0 || memcmp(c1->relay_networks.v,
	    c2->relay_networks.v,
	    c1->relay_networks.len * sizeof(struct cidr)) == 0);
	config_unref(c1);
	config_unref(c2);
out:
	buf_clear(&errs);
	buf_clear(&out1);
	buf_clear(&out2);
}

static void
test_print(void)
{
	struct buf errs, out;
	struct config *c;
	char host[256] = "", *expect;

	buf_init(&errs);
	buf_init(&out);
	c = parse(NULL, &errs);
	CHECK(c != NULL);
	CHECK(gethostname(host, sizeof(host)) == 0);
	if (c) {
		config_print(c, &out);
		expect = xasprintf(
		    "hostname = %s\n"
		    "listen = 127.0.0.1:2525\n"
		    "submission_listen = 127.0.0.1:2587\n"
		    "spool_dir = " BASE "/var/spool\n"
		    "postoffice_dir = " BASE "/var/postoffice\n"
		    "local_domains = localhost\n"
		    "address_map = \n"
		    "recipient_delimiter = +\n"
		    "lmtp_host = \n"
		    "relay_host = \n"
		    "dns_servers = \n"
		    "relay_networks = 127.0.0.0/8, ::1/128\n"
		    "max_message_size = 25M\n"
		    "max_recipients = 1000\n"
		    "max_connections = 10000\n"
		    "max_connections_per_ip = 50\n"
		    "command_timeout = 5m\n"
		    "data_timeout = 10m\n"
		    "tls_cert_file = \n"
		    "tls_key_file = \n"
		    "auth_users = \n"
		    "auth_require_tls = yes\n"
		    "retry_min = 5m\n"
		    "retry_max = 1h\n"
		    "queue_lifetime = 5d\n"
		    "delay_warning = 4h\n"
		    "delivery_concurrency = 20\n"
		    "proxy_protocol = no\n"
		    "bind_retry = 60s\n"
		    "user = smtpgate\n"
		    "log = stderr\n"
		    "trace_clients = \n", host);
		CHECK_STR(out.data, expect);
		free(expect);
	}
	config_unref(c);
	/* Units chosen by exact division. */
	buf_reset(&out);
	c = parse("max_message_size = 1536k\nretry_min = 90\nretry_max = 1m\n"
	    "queue_lifetime = 48h\ndelay_warning = 7200s\n"
	    "command_timeout = 120\n", &errs);
	CHECK(c == NULL);	/* retry_min > retry_max */
	c = parse("max_message_size = 1536k\nretry_min = 90\nretry_max = 2m\n"
	    "queue_lifetime = 48h\ndelay_warning = 7200s\n"
	    "command_timeout = 120\ndata_timeout = 61\n"
	    "bind_retry = 1m\n", &errs);
	CHECK(c != NULL);
	if (c) {
		config_print(c, &out);
		CHECK(strstr(out.data, "\nmax_message_size = 1536k\n"));
		CHECK(strstr(out.data, "\nretry_min = 90s\n"));
		CHECK(strstr(out.data, "\nretry_max = 2m\n"));
		CHECK(strstr(out.data, "\nqueue_lifetime = 2d\n"));
		CHECK(strstr(out.data, "\ndelay_warning = 2h\n"));
		CHECK(strstr(out.data, "\ncommand_timeout = 2m\n"));
		CHECK(strstr(out.data, "\ndata_timeout = 61s\n"));
		CHECK(strstr(out.data, "\nbind_retry = 60s\n"));
	}
	config_unref(c);
	c = parse("max_message_size = 1025\n", &errs);
	if (c) {
		buf_reset(&out);
		config_print(c, &out);
		CHECK(strstr(out.data, "\nmax_message_size = 1025\n"));
	}
	config_unref(c);
	buf_clear(&out);
	buf_clear(&errs);
}

static void
test_roundtrip(void)
{
	roundtrip(NULL);
	roundtrip(all_keys);
	roundtrip("listen =\nsubmission_listen =\nlocal_domains =\n"
	    "relay_networks =\nrecipient_delimiter =\nuser =\n"
	    "max_message_size = 1025\nretry_min = 61\nretry_max = 3601\n"
	    "delay_warning = 0\nbind_retry = 0\n");
}

static void
test_local_domain(void)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse("local_domains = Example.ORG, localhost\n", &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK(config_is_local_domain(c, "example.org"));
		CHECK(config_is_local_domain(c, "EXAMPLE.org"));
		CHECK(config_is_local_domain(c, "example.org."));
		CHECK(config_is_local_domain(c, "LOCALHOST"));
		CHECK(!config_is_local_domain(c, "example.org.."));
		CHECK(!config_is_local_domain(c, "mail.example.org"));
		CHECK(!config_is_local_domain(c, "example.or"));
		CHECK(!config_is_local_domain(c, ""));
		CHECK(!config_is_local_domain(c, "."));
	}
	config_unref(c);
	c = parse("local_domains =\n", &errs);
	CHECK(c && !config_is_local_domain(c, "localhost"));
	config_unref(c);
	buf_clear(&errs);
}

static void
test_refcount(void)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = parse(NULL, &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK(config_ref(c) == c);
		CHECK_INT(c->refs, 2);
		config_unref(c);
		CHECK_INT(c->refs, 1);
		config_unref(c);	/* freed: ASan reports a leak if not */
	}
	config_unref(NULL);
	buf_clear(&errs);
}

/*
 * config_check_files.
 */

static struct config *
config_with(const char *text)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	c = config_parse_text("t.conf", text, strlen(text), tmpdir, NULL, 0,
	    &errs);
	if (c == NULL)
		fprintf(stderr, "  %s", errs.data);
	buf_clear(&errs);
	return c;
}

static void
test_check_auth_users(void)
{
	char path[PATH_MAX + 32];
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	CHECK(write_file(path, "# comment\n\nalice:$6$salt$hash\r\n"
	    "bob:$y$j9T$abc$def\n") == 0);
	c = config_with("auth_users = users\n");
	CHECK(c && config_check_files(c, &errs) == 0);
	CHECK_INT(errs.len, 0);
	config_unref(c);

	CHECK(write_file(path, "alice:$6$salt$hash\n"
	    "nocolon\n"
	    ":$6$x\n"
	    "carol:\n"
	    "dave:plain\n"
	    "e ve:$6$x\n"
	    "frank:$6$x y\n"
	    "alice:$6$again\n") == 0);
	c = config_with("auth_users = users\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	{
		char *expect = xasprintf(
		    "%s:2: expected user:crypt-hash\n"
		    "%s:3: empty user name\n"
		    "%s:4: empty password hash\n"
		    "%s:5: password hash must be in crypt(3) form, starting "
		    "with '$'\n"
		    "%s:6: blank in the user name\n"
		    "%s:7: blank in the password hash\n"
		    "%s:8: user 'alice' is given twice\n",
		    path, path, path, path, path, path, path);

		CHECK_STR(errs.data, expect);
		free(expect);
	}
	config_unref(c);

	buf_reset(&errs);
	c = config_with("auth_users = nosuchfile\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	CHECK(strstr(errs.data, "/nosuchfile: cannot open: No such file or "
	    "directory\n") != NULL);
	config_unref(c);
	buf_clear(&errs);
}

/* Writes a self-signed certificate and its key, and a second key. */
static int
make_tls_files(const char *cert, const char *key, const char *key2)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;
	int rc = -1;

	if (k == NULL || k2 == NULL || x == NULL)
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx.example.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, k, EVP_sha256()) == 0)
		goto out;
	if ((f = fopen(cert, "w")) == NULL)
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	if ((f = fopen(key, "w")) == NULL)
		goto out;
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	if ((f = fopen(key2, "w")) == NULL)
		goto out;
	PEM_write_PrivateKey(f, k2, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	return rc;
}

static void
test_check_tls(void)
{
	char cert[PATH_MAX + 32], key[PATH_MAX + 32], key2[PATH_MAX + 32];
	char junk[PATH_MAX + 32], *expect;
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	snprintf(key2, sizeof(key2), "%s/key2.pem", tmpdir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", tmpdir);
	CHECK(make_tls_files(cert, key, key2) == 0);
	CHECK(write_file(junk, "not a certificate\n") == 0);

	c = config_with("tls_cert_file = cert.pem\ntls_key_file = key.pem\n");
	CHECK(c && config_check_files(c, &errs) == 0);
	CHECK_INT(errs.len, 0);
	config_unref(c);

	c = config_with("tls_cert_file = cert.pem\ntls_key_file = key2.pem\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	expect = xasprintf("%s: the private key does not match the "
	    "certificate in %s\n", key2, cert);
	CHECK_STR(errs.data, expect);
	free(expect);
	config_unref(c);

	buf_reset(&errs);
	c = config_with("tls_cert_file = junk.pem\ntls_key_file = key.pem\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	expect = xasprintf("%s: cannot load the certificate: ", junk);
	CHECK(strncmp(errs.data ? errs.data : "", expect, strlen(expect)) == 0);
	free(expect);
	config_unref(c);

	buf_reset(&errs);
	c = config_with("tls_cert_file = cert.pem\ntls_key_file = junk.pem\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	expect = xasprintf("%s: cannot load the private key: ", junk);
	CHECK(strncmp(errs.data ? errs.data : "", expect, strlen(expect)) == 0);
	free(expect);
	config_unref(c);

	buf_reset(&errs);
	c = config_with("tls_cert_file = none1.pem\ntls_key_file = none2.pem\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	expect = xasprintf("%s/none1.pem: cannot open: No such file or "
	    "directory\n%s/none2.pem: cannot open: No such file or "
	    "directory\n", tmpdir, tmpdir);
	CHECK_STR(errs.data, expect);
	free(expect);
	config_unref(c);
	buf_clear(&errs);
}

static void
test_check_address_map(void)
{
	struct buf errs;
	struct config *c;

	buf_init(&errs);
	/* Nothing named: nothing to check. */
	c = config_with("max_recipients = 1\n");
	CHECK(c && config_check_files(c, &errs) == 0);
	CHECK_INT(errs.len, 0);
	config_unref(c);
	/* The map's own loader reports; a missing one is an error. */
	c = config_with("address_map = no-such-map\n");
	CHECK(c && config_check_files(c, &errs) == -1);
	CHECK(errs.len > 0 && strstr(errs.data, "no-such-map") != NULL);
	config_unref(c);
	buf_clear(&errs);
}

static void
remove_tmpdir(void)
{
	static const char *names[] = {
		"etc/smtpgate.conf", "etc", "bad.conf", "users", "cert.pem",
		"key.pem", "key2.pem", "junk.pem",
	};
	char p[PATH_MAX + 64];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
		if (unlink(p) == -1)
			(void)rmdir(p);
	}
	(void)rmdir(tmpdir);
}

int
main(void)
{
	char made[] = "/tmp/test_config.XXXXXX";

	if (mkdtemp(made) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	/* Canonical, so that expected paths compare equal. */
	if (realpath(made, tmpdir) == NULL) {
		perror("realpath");
		return 1;
	}
	RUN(test_defaults);
	RUN(test_every_key);
	RUN(test_units);
	RUN(test_booleans);
	RUN(test_syntax);
	RUN(test_error_texts);
	RUN(test_nul_byte);
	RUN(test_cross_checks);
	RUN(test_addresses);
	RUN(test_overrides);
	RUN(test_paths);
	RUN(test_load_file);
	RUN(test_print);
	RUN(test_roundtrip);
	RUN(test_local_domain);
	RUN(test_refcount);
	RUN(test_check_auth_users);
	RUN(test_check_tls);
	RUN(test_check_address_map);
	remove_tmpdir();
	T_EXIT();
}
