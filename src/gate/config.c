/*
 * config.c - the configuration file (SPEC §2): parsing, validation,
 * printing, and the reference-counted snapshot.
 *
 * Layer: gate. Owns struct config snapshots. Reports every problem as a
 * "FILE:LINE: message" line in a caller-supplied buffer and never logs or
 * exits: the caller decides between fatal (start-up), a warning (reload)
 * and exit 78 (check).
 *
 * Every key lives in one table (keys[]) with its type, field and default
 * text. Defaults go through the same parsers as the file, so that a
 * default can never be something the parser would refuse, and
 * config_print writes each value in the syntax the parser reads back.
 *
 * Syntax: "key = value" lines; '#' starts a comment at the start of a line
 * or, after a value, when preceded by a blank; lists are separated by
 * commas and/or blanks; a key given twice: the later wins (like Postfix).
 * Overrides ("-o KEY=VALUE") come last, are named "-o:N" in messages and
 * have the same value syntax as the file.
 */
#include "gate/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "lib/str.h"

#include "gate/addrmap.h"

#define CONFIG_FILE_MAX		(1024 * 1024)	/* config and auth_users */
#define DURATION_MAX		(3650LL * 86400)	/* 10 years */
#define SIZE_MAX_BYTES		(1024ULL * 1024 * 1024 * 1024)	/* 1024G */
#define QUOTE_MAX		120	/* bytes of a value quoted in a message */

enum key_type {
	KEY_HOSTNAME,		/* char *, a domain name */
	KEY_LISTEN,		/* strlist of "host:port" / "[v6]:port" */
	KEY_PATH,		/* char *, absolute, required */
	KEY_PATH_OPT,		/* char *, absolute or "" */
	KEY_DOMAINS,		/* strlist of lowercased domains */
	KEY_DELIMITER,		/* char *, "" allowed */
	KEY_LMTP,		/* char *, "host:port" or "unix:/path" or "" */
	KEY_RELAY,		/* char *, "host[:port]" or "[ip][:port]" or "" */
	KEY_DNS,		/* strlist of "ip[:port]" / "[v6]:port" */
	KEY_CIDRS,		/* cidrlist */
	KEY_SIZE,		/* unsigned long long bytes */
	KEY_COUNT,		/* unsigned */
	KEY_DURATION,		/* long seconds */
	KEY_BOOL,		/* bool */
	KEY_USER,		/* char *, "" allowed */
	KEY_LOG,		/* enum log_target */
};

struct key {
	const char	*name;
	enum key_type	 type;
	size_t		 off;	/* of the field in struct config */
	const char	*def;	/* default text; NULL: computed (hostname) */
	long long	 min;	/* KEY_SIZE, KEY_COUNT, KEY_DURATION */
};

#define F(field)	offsetof(struct config, field)

/* In SPEC §2 order: config_print follows this table. */
static const struct key keys[] = {
	{ "hostname", KEY_HOSTNAME, F(hostname), NULL, 0 },
	{ "listen", KEY_LISTEN, F(listen), "127.0.0.1:2525", 0 },
	{ "submission_listen", KEY_LISTEN, F(submission_listen),
	    "127.0.0.1:2587", 0 },
	{ "spool_dir", KEY_PATH, F(spool_dir), "var/spool", 0 },
	{ "postoffice_dir", KEY_PATH, F(postoffice_dir), "var/postoffice", 0 },
	{ "local_domains", KEY_DOMAINS, F(local_domains), "localhost", 0 },
	{ "address_map", KEY_PATH_OPT, F(address_map), "", 0 },
	{ "recipient_delimiter", KEY_DELIMITER, F(recipient_delimiter), "+",
	    0 },
	{ "lmtp_host", KEY_LMTP, F(lmtp_host), "", 0 },
	{ "relay_host", KEY_RELAY, F(relay_host), "", 0 },
	{ "dns_servers", KEY_DNS, F(dns_servers), "", 0 },
	{ "relay_networks", KEY_CIDRS, F(relay_networks),
	    "127.0.0.0/8, ::1/128", 0 },
	{ "max_message_size", KEY_SIZE, F(max_message_size), "25M", 1024 },
	{ "max_recipients", KEY_COUNT, F(max_recipients), "1000", 1 },
	{ "max_connections", KEY_COUNT, F(max_connections), "10000", 1 },
	{ "max_connections_per_ip", KEY_COUNT, F(max_connections_per_ip), "50",
	    1 },
	{ "command_timeout", KEY_DURATION, F(command_timeout), "5m", 1 },
	{ "data_timeout", KEY_DURATION, F(data_timeout), "10m", 1 },
	{ "tls_cert_file", KEY_PATH_OPT, F(tls_cert_file), "", 0 },
	{ "tls_key_file", KEY_PATH_OPT, F(tls_key_file), "", 0 },
	{ "auth_users", KEY_PATH_OPT, F(auth_users), "", 0 },
	{ "auth_require_tls", KEY_BOOL, F(auth_require_tls), "yes", 0 },
	{ "retry_min", KEY_DURATION, F(retry_min), "5m", 1 },
	{ "retry_max", KEY_DURATION, F(retry_max), "1h", 1 },
	{ "queue_lifetime", KEY_DURATION, F(queue_lifetime), "5d", 1 },
	{ "delay_warning", KEY_DURATION, F(delay_warning), "4h", 0 },
	{ "delivery_concurrency", KEY_COUNT, F(delivery_concurrency), "20", 1 },
	{ "proxy_protocol", KEY_BOOL, F(proxy_protocol), "no", 0 },
	{ "bind_retry", KEY_DURATION, F(bind_retry), "60s", 0 },
	{ "user", KEY_USER, F(user), "smtpgate", 0 },
	{ "log", KEY_LOG, F(log), "stderr", 0 },
	{ "trace_clients", KEY_CIDRS, F(trace_clients), "", 0 },
};

#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* Where a key got its value, for messages about combinations of keys. */
struct origin {
	const char	*file;		/* NULL: an override or a default */
	unsigned	 line;
	size_t		 override;	/* 1..: position of -o; 0: none */
	unsigned long	 seq;		/* order of setting; 0: default */
};

struct loader {
	struct config	*c;
	struct buf	*errors;
	unsigned	 nerrors;
	unsigned long	 seq;
	struct origin	 set[NKEYS];
};

/* Field accessors: the table's offsets into struct config. */
#define FIELD(c, k, type)	((type *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, type)	\
	((const type *)(const void *)((const char *)(c) + (k)->off))

/*
 * Small helpers: lists, characters, quoting.
 */

static void
strlist_add(struct strlist *l, char *s)
{
	l->v = xreallocarray(l->v, l->len + 1, sizeof(*l->v));
	l->v[l->len++] = s;
}

static void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->len; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->len = 0;
}

static void
cidrlist_add(struct cidrlist *l, const struct cidr *c)
{
	l->v = xreallocarray(l->v, l->len + 1, sizeof(*l->v));
	l->v[l->len++] = *c;
}

static void
cidrlist_free(struct cidrlist *l)
{
	free(l->v);
	l->v = NULL;
	l->len = 0;
}

static bool
is_blank(int ch)
{
	return ch == ' ' || ch == '\t';
}

static bool
is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_alnum(int ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z');
}

/*
 * Copies s into out for a message: bytes that are not printable ASCII
 * become '?', and a long value is cut with "...". size is at least 8.
 */
static const char *
quote(const char *s, char *out, size_t size)
{
	size_t n = 0, max = size - 4;	/* room for "..." and NUL */

	if (max > QUOTE_MAX)
		max = QUOTE_MAX;
	for (; *s && n < max; s++) {
		unsigned char ch = (unsigned char)*s;

		out[n++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
	}
	if (*s) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* Splits a list on commas and blanks; empty items are skipped. */
static void
split_list(const char *value, struct strlist *out)
{
	const char *p = value;

	for (;;) {
		size_t n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		strlist_add(out, xstrndup(p, n));
		p += n;
	}
}

static int
bad_item(struct err *e, const char *item, const char *why)
{
	char q[QUOTE_MAX + 8];

	return err_set(e, "'%s' (%s)", quote(item, q, sizeof(q)), why);
}

/*
 * Syntax checks for the kinds of values.
 */

/* RFC 1035 §2.3.1 letters, digits, hyphen; labels 1-63; at most 253. */
static bool
domain_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(ch) && ch != '-')
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

static bool
ip4_valid(const char *s)
{
	struct in_addr a;

	return inet_pton(AF_INET, s, &a) == 1;
}

static bool
ip6_valid(const char *s)
{
	struct in6_addr a;

	return inet_pton(AF_INET6, s, &a) == 1;
}

static bool
port_valid(const char *s)
{
	long n = 0;

	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (; *s; s++) {
		if (!is_digit(*s))
			return false;
		n = n * 10 + (*s - '0');
	}
	return n >= 1 && n <= 65535;
}

/*
 * Splits "host:port", "[host]:port", "host" or "[host]" into host (without
 * brackets) and port (NULL when there is none). Returns -1 with a reason
 * when the shape is wrong; the caller judges host and port.
 */
static int
split_hostport(const char *s, char *host, size_t hsize, bool *bracketed,
    const char **port, struct err *e)
{
	const char *colon, *end, *item = s;
	size_t n;

	*bracketed = false;
	*port = NULL;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return bad_item(e, s, "missing ']'");
		*bracketed = true;
		n = (size_t)(end - s - 1);
		s++;
		if (end[1] == ':')
			*port = end + 2;
		else if (end[1] != '\0')
			return bad_item(e, item, "expected ':' and a port "
			    "after ']'");
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return bad_item(e, s, "an IPv6 address needs brackets: "
			    "[address]:port");
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (colon)
			*port = colon + 1;
	}
	if (n == 0)
		return bad_item(e, item, "expected a host before the port");
	if (n >= hsize)
		return bad_item(e, item, "host name too long");
	memcpy(host, s, n);
	host[n] = '\0';
	return 0;
}

/* A listener: "IP:port", "[v6]:port", "*:port", "localhost:port". */
static int
check_listen_addr(const char *s, struct err *e)
{
	char host[256];
	const char *port;
	bool br;

	if (split_hostport(s, host, sizeof(host), &br, &port, e) == -1)
		return -1;
	if (port == NULL)
		return bad_item(e, s, "expected host:port or [ipv6]:port");
	if (!port_valid(port))
		return bad_item(e, s, "port must be a number 1-65535");
	if (br && !ip6_valid(host))
		return bad_item(e, s, "expected an IPv6 address inside [ ]");
	if (!br && strcmp(host, "*") != 0 && strcmp(host, "localhost") != 0 &&
	    !ip4_valid(host))
		return bad_item(e, s, "expected an IP address, '*' or "
		    "'localhost' before the port");
	return 0;
}

/* A remote host: "name[:port]", "ip[:port]", "[ip][:port]". */
static int
check_remote_host(const char *s, bool need_port, struct err *e)
{
	char host[256];
	const char *port;
	bool br;

	if (split_hostport(s, host, sizeof(host), &br, &port, e) == -1)
		return -1;
	if (port == NULL && need_port)
		return bad_item(e, s, "expected host:port, [ip]:port or "
		    "unix:/path");
	if (port && !port_valid(port))
		return bad_item(e, s, "port must be a number 1-65535");
	if (br && !ip4_valid(host) && !ip6_valid(host))
		return bad_item(e, s, "expected an IP address inside [ ]");
	if (!br && !domain_valid(host))
		return bad_item(e, s, "expected a host name or IP address");
	return 0;
}

static int
check_lmtp_host(const char *s, struct err *e)
{
	struct sockaddr_un sun;

	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/')
			return bad_item(e, s, "expected unix:/absolute/path");
		if (strlen(s + 5) >= sizeof(sun.sun_path))
			return bad_item(e, s, "socket path too long");
		return 0;
	}
	return check_remote_host(s, true, e);
}

/* A resolver: "ip", "ip:port", "v6", "[v6]", "[v6]:port". */
static int
check_dns_server(const char *s, struct err *e)
{
	char host[256];
	const char *port;
	bool br;

	if (ip6_valid(s))
		return 0;
	if (split_hostport(s, host, sizeof(host), &br, &port, e) == -1)
		return -1;
	if (port && !port_valid(port))
		return bad_item(e, s, "port must be a number 1-65535");
	if (br ? !ip6_valid(host) : !ip4_valid(host))
		return bad_item(e, s, "expected ip[:port] or [ipv6]:port");
	return 0;
}

/*
 * Numbers with units. Durations: s m h d (bare: seconds). Sizes: k M G,
 * powers of 1024 (bare: bytes).
 */
static int
parse_scaled(const char *s, const char *units, const unsigned long long *mul,
    unsigned long long *out)
{
	unsigned long long n = 0, m = 1;
	const char *u;

	if (!is_digit(*s))
		return -1;
	for (; is_digit(*s); s++) {
		if (n > (ULLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (unsigned long long)(*s - '0');
	}
	if (*s) {
		if (s[1] != '\0' || (u = strchr(units, *s)) == NULL)
			return -1;
		m = mul[u - units];
	}
	if (n > ULLONG_MAX / m)
		return -1;
	*out = n * m;
	return 0;
}

static int
parse_duration(const char *s, long long min, long *out, struct err *e)
{
	static const unsigned long long mul[] = { 1, 60, 3600, 86400 };
	unsigned long long v;

	if (parse_scaled(s, "smhd", mul, &v) == -1)
		return bad_item(e, s, "expected a duration like 30s, 5m, 1h "
		    "or 5d");
	if (v > (unsigned long long)DURATION_MAX)
		return bad_item(e, s, "must be at most 3650d");
	if ((long long)v < min)
		return bad_item(e, s, "must be more than 0");
	*out = (long)v;
	return 0;
}

static int
parse_size(const char *s, long long min, unsigned long long *out,
    struct err *e)
{
	static const unsigned long long mul[] = {
		1024, 1024, 1024 * 1024, 1024 * 1024, 1024 * 1024 * 1024,
		1024 * 1024 * 1024
	};
	unsigned long long v;

	if (parse_scaled(s, "kKMmGg", mul, &v) == -1)
		return bad_item(e, s, "expected a size like 512k, 25M or 1G");
	if (v > SIZE_MAX_BYTES)
		return bad_item(e, s, "must be at most 1024G");
	if (v < (unsigned long long)min)
		return bad_item(e, s, "must be at least 1k");
	*out = v;
	return 0;
}

static int
parse_count(const char *s, long long min, unsigned *out, struct err *e)
{
	static const unsigned long long one[] = { 1 };
	unsigned long long v;

	if (parse_scaled(s, "", one, &v) == -1)
		return bad_item(e, s, "expected a number");
	if (v > UINT_MAX)
		return bad_item(e, s, "expected a number up to 4294967295");
	if (v < (unsigned long long)min)
		return bad_item(e, s, "expected a number >= 1");
	*out = (unsigned)v;
	return 0;
}

static int
parse_bool(const char *s, bool *out, struct err *e)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return bad_item(e, s, "expected yes or no");
}

/*
 * Paths: relative ones resolve against base (absolute). Empty components
 * and "." are removed; ".." is kept (it means something else under a
 * symbolic link). Caller frees.
 */
static char *
path_resolve(const char *base, const char *value)
{
	struct buf b;
	const char *r;
	char *s, *w;

	buf_init(&b);
	if (value[0] != '/')
		buf_puts(&b, base);
	buf_putc(&b, '/');
	buf_puts(&b, value);
	s = buf_release(&b);
	/* Rewrite in place: w never passes r. */
	for (w = s, r = s; *r;) {
		size_t n;

		if (*r == '/') {
			r++;
			continue;
		}
		n = strcspn(r, "/");
		if (n == 1 && r[0] == '.') {
			r++;
			continue;
		}
		*w++ = '/';
		memmove(w, r, n);
		w += n;
		r += n;
	}
	if (w == s)
		*w++ = '/';
	*w = '\0';
	return s;
}

/*
 * Parsing one value into its field. On failure the field keeps its
 * previous value and e holds "'ITEM' (REASON)".
 */

static int
parse_list(const struct key *k, const char *value, struct strlist *out,
    struct err *e)
{
	struct strlist l = { NULL, 0 };

	split_list(value, &l);
	for (size_t i = 0; i < l.len; i++) {
		int rc = 0;

		switch (k->type) {
		case KEY_LISTEN:
			rc = check_listen_addr(l.v[i], e);
			break;
		case KEY_DNS:
			rc = check_dns_server(l.v[i], e);
			break;
		case KEY_DOMAINS: {
			size_t n = strlen(l.v[i]);

			/* One trailing dot is the root: same domain. */
			if (n > 1 && l.v[i][n - 1] == '.')
				l.v[i][n - 1] = '\0';
			if (!domain_valid(l.v[i]))
				rc = bad_item(e, l.v[i], "expected a domain "
				    "name");
			str_lower(l.v[i]);
			break;
		}
		default:
			rc = -1;
			break;
		}
		if (rc == -1) {
			strlist_free(&l);
			return -1;
		}
	}
	strlist_free(out);
	*out = l;
	return 0;
}

static int
parse_cidrs(const char *value, struct cidrlist *out, struct err *e)
{
	struct strlist l = { NULL, 0 };
	struct cidrlist cl = { NULL, 0 };
	struct err ce;

	split_list(value, &l);
	for (size_t i = 0; i < l.len; i++) {
		struct cidr c;

		if (cidr_parse(l.v[i], &c, &ce) == -1) {
			bad_item(e, l.v[i], ce.msg);
			strlist_free(&l);
			cidrlist_free(&cl);
			return -1;
		}
		cidrlist_add(&cl, &c);
	}
	strlist_free(&l);
	cidrlist_free(out);
	*out = cl;
	return 0;
}

static void
set_string(char **field, char *s)
{
	free(*field);
	*field = s;
}

static int
parse_string_key(const struct key *k, const char *value, const char *base,
    char **field, struct err *e)
{
	switch (k->type) {
	case KEY_HOSTNAME:
		if (!domain_valid(value))
			return bad_item(e, value, "expected a domain name");
		break;
	case KEY_PATH:
		if (*value == '\0')
			return bad_item(e, value, "expected a path");
		set_string(field, path_resolve(base, value));
		return 0;
	case KEY_PATH_OPT:
		set_string(field, *value ? path_resolve(base, value)
		    : xstrdup(""));
		return 0;
	case KEY_DELIMITER:
		for (const char *p = value; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f ||
			    strchr("@#,\"<>", *p))
				return bad_item(e, value, "expected characters "
				    "such as + or -, no blanks, '@' or '#'");
		break;
	case KEY_LMTP:
		if (*value && check_lmtp_host(value, e) == -1)
			return -1;
		break;
	case KEY_RELAY:
		if (*value && check_remote_host(value, false, e) == -1)
			return -1;
		break;
	case KEY_USER:
		for (const char *p = value; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f ||
			    strchr(":/#,", *p))
				return bad_item(e, value, "expected a user "
				    "name");
		break;
	default:
		return bad_item(e, value, "internal error: not a string");
	}
	set_string(field, xstrdup(value));
	return 0;
}

static int
parse_value(struct config *c, const struct key *k, const char *value,
    struct err *e)
{
	switch (k->type) {
	case KEY_LISTEN:
	case KEY_DOMAINS:
	case KEY_DNS:
		return parse_list(k, value, FIELD(c, k, struct strlist), e);
	case KEY_CIDRS:
		return parse_cidrs(value, FIELD(c, k, struct cidrlist), e);
	case KEY_SIZE:
		return parse_size(value, k->min,
		    FIELD(c, k, unsigned long long), e);
	case KEY_COUNT:
		return parse_count(value, k->min, FIELD(c, k, unsigned), e);
	case KEY_DURATION:
		return parse_duration(value, k->min, FIELD(c, k, long), e);
	case KEY_BOOL:
		return parse_bool(value, FIELD(c, k, bool), e);
	case KEY_LOG:
		if (strcasecmp(value, "stderr") == 0)
			*FIELD(c, k, enum log_target) = LOG_TARGET_STDERR;
		else if (strcasecmp(value, "syslog") == 0)
			*FIELD(c, k, enum log_target) = LOG_TARGET_SYSLOG;
		else
			return bad_item(e, value, "expected stderr or syslog");
		return 0;
	default:
		return parse_string_key(k, value, c->base_dir,
		    FIELD(c, k, char *), e);
	}
}

/*
 * The loader: messages with their origin, setting keys.
 */

static void
origin_prefix(struct buf *b, const struct origin *o)
{
	if (o->file)
		buf_printf(b, "%s:%u: ", o->file, o->line);
	else if (o->override)
		buf_printf(b, "-o:%zu: ", o->override);
	else
		buf_puts(b, "(defaults): ");
}

static void
loader_error(struct loader *ld, const struct origin *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
loader_error(struct loader *ld, const struct origin *o, const char *fmt, ...)
{
	va_list ap;

	origin_prefix(ld->errors, o);
	va_start(ap, fmt);
	buf_vprintf(ld->errors, fmt, ap);
	va_end(ap);
	buf_putc(ld->errors, '\n');
	ld->nerrors++;
}

static const struct key *
key_find(const char *name, size_t *index)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*index = i;
			return &keys[i];
		}
	}
	return NULL;
}

static void
loader_set(struct loader *ld, const struct origin *o, const char *name,
    const char *value)
{
	const struct key *k;
	struct err e;
	char q[QUOTE_MAX + 8];
	size_t i;

	if (*name == '\0') {
		loader_error(ld, o, "missing key before '='");
		return;
	}
	if ((k = key_find(name, &i)) == NULL) {
		loader_error(ld, o, "unknown key '%s'",
		    quote(name, q, sizeof(q)));
		return;
	}
	err_clear(&e);
	if (parse_value(ld->c, k, value, &e) == -1) {
		loader_error(ld, o, "bad value for %s: %s", k->name, e.msg);
		return;
	}
	ld->set[i] = *o;
	ld->set[i].seq = ++ld->seq;
}

/* Removes a trailing comment: '#' at the start or after a blank. */
static void
strip_comment(char *value)
{
	for (char *p = value; *p; p++) {
		if (*p == '#' && (p == value || is_blank(p[-1]))) {
			*p = '\0';
			break;
		}
	}
	str_trim(value);
}

static bool
has_control(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

/*
 * One "key = value" line of the file, or one "KEY=VALUE" override: the
 * value has the same syntax in both (a trailing comment included), so that
 * whatever an override sets, config_print writes back loadably.
 */
static void
loader_line(struct loader *ld, const struct origin *o, char *line)
{
	char *eq, *key, *value, q[QUOTE_MAX + 8];
	size_t n = strlen(line);

	/* CRLF files are fine; any other control character is a mistake. */
	if (o->file && n && line[n - 1] == '\r')
		line[n - 1] = '\0';
	if (has_control(line)) {
		loader_error(ld, o, "control character in %s",
		    o->file ? "line" : "override");
		return;
	}
	str_trim(line);
	if (o->file && (*line == '\0' || *line == '#'))
		return;
	if ((eq = strchr(line, '=')) == NULL) {
		if (o->file)
			loader_error(ld, o, "expected 'key = value', got '%s'",
			    quote(line, q, sizeof(q)));
		else
			loader_error(ld, o, "expected KEY=VALUE, got '%s'",
			    quote(line, q, sizeof(q)));
		return;
	}
	*eq = '\0';
	key = str_trim(line);
	value = eq + 1;
	strip_comment(value);
	value = str_trim(value);
	loader_set(ld, o, key, value);
}

static void
loader_text(struct loader *ld, const char *name, const char *text,
    size_t len)
{
	struct origin o = { name, 0, 0, 0 };
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *line;

		o.line++;
		if (memchr(text + pos, '\0', n)) {
			loader_error(ld, &o, "NUL byte in line");
		} else {
			line = xstrndup(text + pos, n);
			loader_line(ld, &o, line);
			free(line);
		}
		pos += n + 1;
	}
}

static void
loader_overrides(struct loader *ld, char *const *ov, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct origin o = { NULL, 0, i + 1, 0 };
		char *s = xstrdup(ov[i]);

		loader_line(ld, &o, s);
		free(s);
	}
}

static void
loader_defaults(struct loader *ld)
{
	struct origin o = { NULL, 0, 0, 0 };
	char host[256];

	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].def)
			loader_set(ld, &o, keys[i].name, keys[i].def);
		ld->set[i].seq = 0;
	}
	/* Checked in loader_final, unless the file or -o sets hostname. */
	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		str_copy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	ld->c->hostname = xstrdup(host);
}

static size_t
key_index(const char *name)
{
	size_t i;

	if (key_find(name, &i) == NULL)
		abort();	/* our own table: a broken invariant */
	return i;
}

/* The origin of whichever of two keys was set last. */
static const struct origin *
later_origin(const struct loader *ld, const char *a, const char *b)
{
	const struct origin *oa = &ld->set[key_index(a)];
	const struct origin *ob = &ld->set[key_index(b)];

	return oa->seq >= ob->seq ? oa : ob;
}

static void format_duration(struct buf *b, long v);

static void
check_listen_dups(struct loader *ld)
{
	const struct strlist *l[2] = {
		&ld->c->listen, &ld->c->submission_listen
	};
	const char *names[2] = { "listen", "submission_listen" };
	char q[QUOTE_MAX + 8];

	for (int a = 0; a < 2; a++) {
		for (size_t i = 0; i < l[a]->len; i++) {
			bool dup = false;

			for (int b = 0; b <= a && !dup; b++) {
				size_t end = b == a ? i : l[b]->len;

				for (size_t j = 0; j < end && !dup; j++)
					dup = strcmp(l[a]->v[i],
					    l[b]->v[j]) == 0;
			}
			if (dup)
				loader_error(ld,
				    &ld->set[key_index(names[a])],
				    "listen address '%s' is given twice",
				    quote(l[a]->v[i], q, sizeof(q)));
		}
	}
}

/* Rules about combinations of keys, once everything is read. */
static void
loader_final(struct loader *ld)
{
	struct config *c = ld->c;
	const struct origin *o;
	char q[QUOTE_MAX + 8];

	o = &ld->set[key_index("hostname")];
	if (o->seq == 0 && !domain_valid(c->hostname))
		loader_error(ld, o, "the system host name '%s' is not a valid "
		    "domain name: set hostname", quote(c->hostname, q,
		    sizeof(q)));
	if (c->retry_min > c->retry_max) {
		struct buf a, b;

		buf_init(&a);
		buf_init(&b);
		format_duration(&a, c->retry_min);
		format_duration(&b, c->retry_max);
		loader_error(ld, later_origin(ld, "retry_min", "retry_max"),
		    "retry_min (%s) is greater than retry_max (%s)", a.data,
		    b.data);
		buf_clear(&a);
		buf_clear(&b);
	}
	if ((*c->tls_cert_file == '\0') != (*c->tls_key_file == '\0')) {
		bool cert = *c->tls_cert_file != '\0';

		loader_error(ld, &ld->set[key_index(cert ? "tls_cert_file"
		    : "tls_key_file")], "%s is set but %s is not: STARTTLS "
		    "needs both", cert ? "tls_cert_file" : "tls_key_file",
		    cert ? "tls_key_file" : "tls_cert_file");
	}
	check_listen_dups(ld);
}

static struct config *
config_new(void)
{
	struct config *c = xcalloc(1, sizeof(*c));

	c->refs = 1;
	return c;
}

static void
config_free(struct config *c)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		switch (k->type) {
		case KEY_LISTEN:
		case KEY_DOMAINS:
		case KEY_DNS:
			strlist_free(FIELD(c, k, struct strlist));
			break;
		case KEY_CIDRS:
			cidrlist_free(FIELD(c, k, struct cidrlist));
			break;
		case KEY_HOSTNAME:
		case KEY_PATH:
		case KEY_PATH_OPT:
		case KEY_DELIMITER:
		case KEY_LMTP:
		case KEY_RELAY:
		case KEY_USER:
			free(*FIELD(c, k, char *));
			break;
		default:
			break;
		}
	}
	free(c->file);
	free(c->base_dir);
	free(c);
}

/*
 * The common path of config_load and config_parse_text. text == NULL: no
 * file (or it could not be read: name is then only for messages).
 */
static struct config *
load(struct config *c, const char *name, const char *text, size_t len,
    char *const *overrides, size_t noverrides, struct buf *errors,
    unsigned nerrors)
{
	struct loader ld;

	memset(&ld, 0, sizeof(ld));
	ld.c = c;
	ld.errors = errors;
	ld.nerrors = nerrors;
	loader_defaults(&ld);
	if (text)
		loader_text(&ld, name, text, len);
	loader_overrides(&ld, overrides, noverrides);
	loader_final(&ld);
	if (ld.nerrors) {
		config_free(c);
		return NULL;
	}
	return c;
}

/*
 * Reads a whole small file. NULL with e->msg "cannot open: REASON" (and
 * the like) on failure; caller frees.
 */
static char *
read_small_file(const char *path, size_t *lenp, struct err *e)
{
	struct buf b;
	struct stat st;
	char chunk[8192];
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_sys(e, "cannot open");
		return NULL;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		(void)close(fd);
		errno = EISDIR;
		err_sys(e, "cannot read");
		return NULL;
	}
	buf_init(&b);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_sys(e, "cannot read");
			goto fail;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > CONFIG_FILE_MAX) {
			err_set(e, "too large (more than %d bytes)",
			    CONFIG_FILE_MAX);
			goto fail;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	(void)close(fd);	/* read-only: nothing to lose */
	*lenp = b.len;
	buf_reserve(&b, 0);
	return buf_release(&b);
fail:
	(void)close(fd);
	buf_clear(&b);
	return NULL;
}

static char *
current_dir(struct buf *errors)
{
	char dir[PATH_MAX];

	if (getcwd(dir, sizeof(dir)) == NULL) {
		buf_printf(errors, "(defaults): cannot find the current "
		    "directory: %s\n", strerror(errno));
		return NULL;
	}
	return xstrdup(dir);
}

struct config *
config_load(const char *file, char *const *overrides, size_t noverrides,
    struct buf *errors)
{
	struct config *c = config_new();
	char *text = NULL, *cwd, *slash;
	size_t len = 0;
	unsigned nerrors = 0;
	struct err e;
	struct config *res;
	struct buf scratch;

	buf_init(&scratch);
	if (errors == NULL)
		errors = &scratch;
	if ((cwd = current_dir(errors)) == NULL) {
		config_free(c);
		buf_clear(&scratch);
		return NULL;
	}
	if (file == NULL) {
		c->base_dir = cwd;
	} else {
		c->file = path_resolve(cwd, file);
		free(cwd);
		c->base_dir = xstrdup(c->file);
		slash = strrchr(c->base_dir, '/');
		slash[slash == c->base_dir ? 1 : 0] = '\0';
		err_clear(&e);
		if ((text = read_small_file(file, &len, &e)) == NULL) {
			buf_printf(errors, "%s: %s\n", file, e.msg);
			nerrors++;
		}
	}
	res = load(c, file, text, len, overrides, noverrides, errors,
	    nerrors);
	free(text);
	buf_clear(&scratch);
	return res;
}

struct config *
config_parse_text(const char *name, const char *text, size_t len,
    const char *base_dir, char *const *overrides, size_t noverrides,
    struct buf *errors)
{
	struct config *c = config_new(), *res;
	struct buf scratch;

	buf_init(&scratch);
	if (errors == NULL)
		errors = &scratch;
	if (base_dir)
		c->base_dir = path_resolve("/", base_dir);
	else if ((c->base_dir = current_dir(errors)) == NULL) {
		config_free(c);
		buf_clear(&scratch);
		return NULL;
	}
	res = load(c, name ? name : "(text)", text, len, overrides,
	    noverrides, errors, 0);
	buf_clear(&scratch);
	return res;
}

/*
 * The snapshot's life. The count is a plain int: snapshots are taken and
 * dropped only from the event-loop thread (sessions, reload), never from
 * a worker, so no atomic is needed. A thread that needs the configuration
 * must be handed its own reference before it starts.
 */
struct config *
config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void
config_unref(struct config *c)
{
	if (c == NULL)
		return;
	if (--c->refs > 0)
		return;
	config_free(c);
}

bool
config_is_local_domain(const struct config *c, const char *domain)
{
	size_t n = strlen(domain);

	if (n > 1 && domain[n - 1] == '.')
		n--;
	for (size_t i = 0; i < c->local_domains.len; i++) {
		const char *d = c->local_domains.v[i];

		if (strlen(d) == n && strncasecmp(d, domain, n) == 0)
			return true;
	}
	return false;
}

/*
 * Printing, in the syntax the parser reads.
 */

/* The largest unit that divides v; minutes from 2m, so 60s stays 60s. */
static void
format_duration(struct buf *b, long v)
{
	if (v == 0)
		buf_puts(b, "0");
	else if (v % 86400 == 0)
		buf_printf(b, "%ldd", v / 86400);
	else if (v % 3600 == 0)
		buf_printf(b, "%ldh", v / 3600);
	else if (v % 60 == 0 && v >= 120)
		buf_printf(b, "%ldm", v / 60);
	else
		buf_printf(b, "%lds", v);
}

static void
format_size(struct buf *b, unsigned long long v)
{
	static const struct {
		unsigned long long	 mul;
		char			 unit;
	} units[] = {
		{ 1024ULL * 1024 * 1024, 'G' }, { 1024 * 1024, 'M' },
		{ 1024, 'k' },
	};

	for (size_t i = 0; v && i < sizeof(units) / sizeof(units[0]); i++) {
		if (v % units[i].mul == 0) {
			buf_printf(b, "%llu%c", v / units[i].mul,
			    units[i].unit);
			return;
		}
	}
	buf_printf(b, "%llu", v);
}

static void
print_value(const struct config *c, const struct key *k, struct buf *out)
{
	switch (k->type) {
	case KEY_LISTEN:
	case KEY_DOMAINS:
	case KEY_DNS: {
		const struct strlist *l = CFIELD(c, k, struct strlist);

		for (size_t i = 0; i < l->len; i++)
			buf_printf(out, "%s%s", i ? ", " : "", l->v[i]);
		break;
	}
	case KEY_CIDRS: {
		const struct cidrlist *l = CFIELD(c, k, struct cidrlist);
		char s[INET6_ADDRSTRLEN + 8];

		for (size_t i = 0; i < l->len; i++)
			buf_printf(out, "%s%s", i ? ", " : "",
			    cidr_format(&l->v[i], s, sizeof(s)) ? s : "?");
		break;
	}
	case KEY_SIZE:
		format_size(out, *CFIELD(c, k, unsigned long long));
		break;
	case KEY_COUNT:
		buf_printf(out, "%u", *CFIELD(c, k, unsigned));
		break;
	case KEY_DURATION:
		format_duration(out, *CFIELD(c, k, long));
		break;
	case KEY_BOOL:
		buf_puts(out, *CFIELD(c, k, bool) ? "yes" : "no");
		break;
	case KEY_LOG:
		buf_puts(out, *CFIELD(c, k, enum log_target) ==
		    LOG_TARGET_SYSLOG ? "syslog" : "stderr");
		break;
	default: {
		const char *s = *CFIELD(c, k, char *);

		buf_puts(out, s ? s : "");
		break;
	}
	}
}

void
config_print(const struct config *c, struct buf *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		buf_printf(out, "%s = ", keys[i].name);
		print_value(c, &keys[i], out);
		buf_putc(out, '\n');
	}
}

/*
 * config_check_files: the files the configuration names.
 */

/* "user:crypt-hash" lines; blank lines and '#' comments are allowed. */
static int
check_auth_users(const char *path, struct buf *errors)
{
	struct err e;
	struct strlist seen = { NULL, 0 };
	char *text, *line, *next, q[QUOTE_MAX + 8];
	size_t len;
	unsigned lineno = 0, bad = 0;

	err_clear(&e);
	if ((text = read_small_file(path, &len, &e)) == NULL) {
		buf_printf(errors, "%s: %s\n", path, e.msg);
		return -1;
	}
	if (memchr(text, '\0', len)) {
		buf_printf(errors, "%s: NUL byte in file\n", path);
		free(text);
		return -1;
	}
	for (line = text; line; line = next) {
		const char *why = NULL;
		char *colon;

		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL)
			why = "expected user:crypt-hash";
		else if (colon == line)
			why = "empty user name";
		else if (strpbrk(line, " \t") && strpbrk(line, " \t") < colon)
			why = "blank in the user name";
		else if (colon[1] == '\0')
			why = "empty password hash";
		else if (colon[1] != '$')
			why = "password hash must be in crypt(3) form, "
			    "starting with '$'";
		else if (strpbrk(colon + 1, " \t"))
			why = "blank in the password hash";
		if (why) {
			buf_printf(errors, "%s:%u: %s\n", path, lineno, why);
			bad++;
			continue;
		}
		*colon = '\0';
		for (size_t i = 0; i < seen.len; i++) {
			if (strcmp(seen.v[i], line) == 0) {
				buf_printf(errors, "%s:%u: user '%s' is "
				    "given twice\n", path, lineno,
				    quote(line, q, sizeof(q)));
				bad++;
				break;
			}
		}
		strlist_add(&seen, xstrdup(line));
	}
	strlist_free(&seen);
	free(text);
	return bad ? -1 : 0;
}

/* The reason of OpenSSL's last error, and the queue emptied. */
static const char *
ssl_reason(void)
{
	unsigned long code = ERR_peek_last_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;

	ERR_clear_error();
	return r ? r : "unknown OpenSSL error";
}

static bool
file_readable(const char *path, struct buf *errors)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		buf_printf(errors, "%s: cannot open: %s\n", path,
		    strerror(errno));
		return false;
	}
	(void)fclose(f);	/* read-only */
	return true;
}

static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return 0;
}

static void
mismatch(const char *cert, const char *key, struct buf *errors)
{
	buf_printf(errors, "%s: the private key does not match the "
	    "certificate in %s\n", key, cert);
}

static int
check_tls(const char *cert, const char *key, struct buf *errors)
{
	SSL_CTX *ctx;
	int rc = -1;

	bool cert_ok = file_readable(cert, errors);
	bool key_ok = file_readable(key, errors);

	if (!cert_ok || !key_ok)
		return -1;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		buf_printf(errors, "%s: cannot create a TLS context: %s\n",
		    cert, ssl_reason());
		return -1;
	}
	/* An encrypted key must fail here, not prompt on the terminal. */
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		buf_printf(errors, "%s: cannot load the certificate: %s\n",
		    cert, ssl_reason());
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL 3 compares the key with the certificate here. */
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			mismatch(cert, key, errors);
		} else
			buf_printf(errors, "%s: cannot load the private key: "
			    "%s\n", key, ssl_reason());
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		mismatch(cert, key, errors);
	} else
		rc = 0;
	SSL_CTX_free(ctx);
	return rc;
}

int
config_check_files(const struct config *c, struct buf *errors)
{
	struct buf scratch;
	int rc = 0;

	buf_init(&scratch);
	if (errors == NULL)
		errors = &scratch;

	if (*c->address_map) {
		size_t before = errors->len;
		struct addrmap *m = addrmap_load(c->address_map, errors);

		if (m == NULL) {
			if (errors->len == before)
				buf_printf(errors, "%s: cannot load the "
				    "address map\n", c->address_map);
			rc = -1;
		} else
			addrmap_free(m);
	}
	if (*c->auth_users && check_auth_users(c->auth_users, errors) == -1)
		rc = -1;
	if (*c->tls_cert_file && *c->tls_key_file &&
	    check_tls(c->tls_cert_file, c->tls_key_file, errors) == -1)
		rc = -1;
	/* serve drops to this user when started as root. */
	if (*c->user && strcmp(c->user, "root") != 0 &&
	    getpwnam(c->user) == NULL) {
		buf_printf(errors, "%s: user '%s' (key user) does not exist: "
		    "create it (scripts/setup.sh does) or set user = root\n",
		    c->file ? c->file : "(defaults)", c->user);
		rc = -1;
	}
	buf_clear(&scratch);
	return rc;
}
