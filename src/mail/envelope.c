/*
 * envelope.c - queue file header and state file records (doc/QUEUE.md).
 * Layer: mail (pure: memory in, memory out). Owns the strings of the
 * envelopes it fills; never touches the disk.
 */
#include "mail/envelope.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

const char *const rcpt_status_names[] = {
	[RCPT_PENDING] = "pending",
	[RCPT_DEFERRED] = "deferred",
	[RCPT_SENT] = "sent",
	[RCPT_BOUNCED] = "bounced",
};

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
}

static void
rcpt_clear(struct rcpt *r)
{
	free(r->target);
	free(r->orig);
	free(r->notify);
	free(r->orcpt);
	free(r->reply);
	free(r->relay);
	memset(r, 0, sizeof(*r));
}

void
envelope_clear(struct envelope *env)
{
	free(env->client_addr);
	free(env->client_name);
	free(env->helo);
	free(env->proto);
	free(env->auth_user);
	free(env->sender);
	free(env->body);
	free(env->ret);
	free(env->envid);
	for (size_t i = 0; i < env->nrcpts; i++)
		rcpt_clear(&env->rcpts[i]);
	free(env->rcpts);
	envelope_init(env);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

size_t
envelope_add_rcpt(struct envelope *env, enum rcpt_kind kind,
    const char *target, const char *orig, const char *notify,
    const char *orcpt)
{
	struct rcpt *r;

	env->rcpts = xreallocarray(env->rcpts, env->nrcpts + 1,
	    sizeof(*env->rcpts));
	r = &env->rcpts[env->nrcpts];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->target = xstrdup(target);
	r->orig = xstrdup(orig);
	r->notify = dup_or_null(notify);
	r->orcpt = dup_or_null(orcpt);
	r->status = RCPT_PENDING;
	return env->nrcpts++;
}

long
envelope_find_rcpt(const struct envelope *env, enum rcpt_kind kind,
    const char *target)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].kind == kind &&
		    strcmp(env->rcpts[i].target, target) == 0)
			return (long)i;
	return -1;
}

bool
envelope_is_final(const struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].status != RCPT_SENT &&
		    env->rcpts[i].status != RCPT_BOUNCED)
			return false;
	return true;
}

void
xtext_encode(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	if (s == NULL || *s == '\0') {
		buf_putc(out, '-');
		return;
	}
	/* A lone "-" means "absent"; encode a real "-" value as +2D. */
	if (strcmp(s, "-") == 0) {
		buf_puts(out, "+2D");
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < '!' || *p > '~' || *p == '+' || *p == '=') {
			buf_putc(out, '+');
			buf_putc(out, hex[*p >> 4]);
			buf_putc(out, hex[*p & 15]);
		} else
			buf_putc(out, (char)*p);
	}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
xtext_decode(const char *s)
{
	struct buf b;

	buf_init(&b);
	if (strcmp(s, "-") == 0)
		return buf_release(&b);
	for (const char *p = s; *p; p++) {
		if (*p == '+') {
			int hi = hexval((unsigned char)p[1]);
			int lo = hi < 0 ? -1 : hexval((unsigned char)p[2]);
			if (lo < 0 || (hi == 0 && lo == 0)) {
				buf_clear(&b);
				return NULL;
			}
			buf_putc(&b, (char)(hi * 16 + lo));
			p += 2;
		} else if (*p < '!' || *p > '~' || *p == '=') {
			buf_clear(&b);
			return NULL;
		} else
			buf_putc(&b, *p);
	}
	return buf_release(&b);
}

static void
put_field(struct buf *out, const char *key, const char *value)
{
	buf_puts(out, key);
	buf_putc(out, ' ');
	xtext_encode(out, value);
	buf_putc(out, '\n');
}

void
envelope_format(const struct envelope *env, struct buf *out)
{
	buf_printf(out, "SMTPGATE-QUEUE %d\n", ENVELOPE_VERSION);
	buf_printf(out, "arrival %.6f\n", env->arrival);
	buf_puts(out, "client ");
	xtext_encode(out, env->client_addr);
	buf_putc(out, ' ');
	xtext_encode(out, env->client_name);
	buf_putc(out, '\n');
	put_field(out, "helo", env->helo);
	put_field(out, "proto", env->proto);
	put_field(out, "auth", env->auth_user);
	put_field(out, "sender", env->sender);
	put_field(out, "body", env->body);
	buf_printf(out, "smtputf8 %d\n", env->smtputf8 ? 1 : 0);
	put_field(out, "ret", env->ret);
	put_field(out, "envid", env->envid);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];

		buf_puts(out, r->kind == RCPT_LOCAL ? "rcpt local " :
		    "rcpt remote ");
		xtext_encode(out, r->target);
		buf_putc(out, ' ');
		xtext_encode(out, r->orig);
		buf_putc(out, ' ');
		xtext_encode(out, r->notify);
		buf_putc(out, ' ');
		xtext_encode(out, r->orcpt);
		buf_putc(out, '\n');
	}
	buf_printf(out, "data %llu\n", env->data_len);
}

#define MAX_WORDS 8
/* Latest arrival time a queue file may give (year 36812). */
#define ARRIVAL_MAX	1099511627776.0

/* Splits line (modified) into at most MAX_WORDS space-separated words. */
static int
split_words(char *line, char **w)
{
	char *save = NULL;
	int n = 0;

	for (char *p = strtok_r(line, " ", &save); p;
	    p = strtok_r(NULL, " ", &save)) {
		if (n == MAX_WORDS)
			return -1;
		w[n++] = p;
	}
	return n;
}

/* Decodes word into *dst (freeing what was there); "-" gives NULL. */
static int
take(char **dst, const char *word)
{
	free(*dst);
	*dst = NULL;
	if (strcmp(word, "-") == 0)
		return 0;
	*dst = xtext_decode(word);
	return *dst ? 0 : -1;
}

static int
parse_ull(const char *s, unsigned long long *v)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

static int
parse_header_line(struct envelope *env, char **w, int n)
{
	unsigned long long v;
	char *target = NULL, *orig = NULL, *notify = NULL, *orcpt = NULL;
	int rc = -1;

	if (strcmp(w[0], "arrival") == 0 && n == 2) {
		char *end;

		/* A time_t the rest of the program can convert it to. */
		env->arrival = strtod(w[1], &end);
		return (*end || !isfinite(env->arrival) || env->arrival < 0 ||
		    env->arrival >= ARRIVAL_MAX) ? -1 : 0;
	}
	if (strcmp(w[0], "client") == 0 && n == 3)
		return take(&env->client_addr, w[1]) | take(&env->client_name,
		    w[2]);
	if (n == 2 && strcmp(w[0], "helo") == 0)
		return take(&env->helo, w[1]);
	if (n == 2 && strcmp(w[0], "proto") == 0)
		return take(&env->proto, w[1]);
	if (n == 2 && strcmp(w[0], "auth") == 0)
		return take(&env->auth_user, w[1]);
	if (n == 2 && strcmp(w[0], "sender") == 0) {
		if (take(&env->sender, w[1]) == -1)
			return -1;
		if (env->sender == NULL)
			env->sender = xstrdup("");
		return 0;
	}
	if (n == 2 && strcmp(w[0], "body") == 0)
		return take(&env->body, w[1]);
	if (n == 2 && strcmp(w[0], "smtputf8") == 0) {
		if (parse_ull(w[1], &v) == -1 || v > 1)
			return -1;
		env->smtputf8 = v == 1;
		return 0;
	}
	if (n == 2 && strcmp(w[0], "ret") == 0)
		return take(&env->ret, w[1]);
	if (n == 2 && strcmp(w[0], "envid") == 0)
		return take(&env->envid, w[1]);
	if (n == 6 && strcmp(w[0], "rcpt") == 0) {
		enum rcpt_kind kind;

		if (strcmp(w[1], "local") == 0)
			kind = RCPT_LOCAL;
		else if (strcmp(w[1], "remote") == 0)
			kind = RCPT_REMOTE;
		else
			return -1;
		if (take(&target, w[2]) == 0 && take(&orig, w[3]) == 0 &&
		    take(&notify, w[4]) == 0 && take(&orcpt, w[5]) == 0 &&
		    target && orig) {
			envelope_add_rcpt(env, kind, target, orig, notify,
			    orcpt);
			rc = 0;
		}
		free(target);
		free(orig);
		free(notify);
		free(orcpt);
		return rc;
	}
	return -1;
}

/* Checks line 1, "SMTPGATE-QUEUE VERSION". */
static int
check_magic(const char *line, struct err *e)
{
	static const char magic[] = "SMTPGATE-QUEUE ";
	unsigned long long version;

	if (strncmp(line, magic, sizeof(magic) - 1) != 0 ||
	    parse_ull(line + sizeof(magic) - 1, &version) == -1)
		return err_set(e, "line 1: not a smtpgate queue file");
	if (version != ENVELOPE_VERSION)
		return err_set(e, "line 1: unsupported version %llu", version);
	return 0;
}

/*
 * One line of a queue file header (NUL-terminated, without its newline).
 * Returns 1 for the "data" line, 0 for another good line, -1 (e set) on
 * error.
 */
static int
parse_line(struct envelope *env, char *line, int lineno, struct err *e)
{
	char *w[MAX_WORDS];
	int nw;

	if (lineno == 1)
		return check_magic(line, e);
	nw = split_words(line, w);
	if (nw < 1)
		return err_set(e, "line %d: malformed", lineno);
	if (strcmp(w[0], "data") == 0 && nw == 2) {
		if (parse_ull(w[1], &env->data_len) == -1)
			return err_set(e, "line %d: bad data length", lineno);
		if (env->sender == NULL || env->nrcpts == 0)
			return err_set(e, "line %d: no sender or no recipient "
			    "before data", lineno);
		return 1;
	}
	if (parse_header_line(env, w, nw) == -1)
		return err_set(e, "line %d: malformed '%s' record", lineno,
		    w[0]);
	return 0;
}

/*
 * Lines have no length limit of their own: every field is xtext, which
 * triples 8-bit bytes, and a line the spool wrote must read back (the
 * caller bounds the whole header).
 */
int
envelope_parse(const char *text, size_t len, struct envelope *env,
    size_t *header_len, struct err *e)
{
	size_t pos = 0;
	int lineno = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n;
		char *line;
		int rc;

		lineno++;
		if (nl == NULL)
			return err_set(e, "line %d: unterminated (file "
			    "truncated?)", lineno);
		n = (size_t)(nl - (text + pos));
		if (memchr(text + pos, '\0', n))
			return err_set(e, "line %d: NUL byte", lineno);
		line = xstrndup(text + pos, n);
		pos += n + 1;
		rc = parse_line(env, line, lineno, e);
		free(line);
		if (rc == -1)
			return -1;
		if (rc == 1) {
			*header_len = pos;
			return 0;
		}
	}
	return err_set(e, "no 'data' line (file truncated?)");
}

void
envelope_format_state(const struct envelope *env, struct buf *out)
{
	buf_puts(out, "SMTPGATE-STATE 1\n");
	buf_printf(out, "hold %d\n", env->is_held ? 1 : 0);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];

		buf_printf(out, "rcpt %zu %s %u %lld %lld %s ", i,
		    rcpt_status_names[r->status], r->attempts, r->last_try,
		    r->next_try, r->is_warned ? "w" : "-");
		xtext_encode(out, r->relay);
		buf_putc(out, ' ');
		xtext_encode(out, r->reply);
		buf_putc(out, '\n');
	}
}

static int
parse_ll(const char *s, long long *v)
{
	char *end;

	if (!isdigit((unsigned char)*s) && !(*s == '-' &&
	    isdigit((unsigned char)s[1])))
		return -1;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

/*
 * One state line, "hold N" or
 * "rcpt INDEX STATUS ATTEMPTS LAST NEXT FLAGS RELAY REPLY" (split into
 * words in place). The relay and reply words have no length limit: a
 * remote reply may be long, and xtext triples its blanks.
 */
static int
parse_state_line(struct envelope *env, char *line, int lineno,
    struct err *e)
{
	unsigned long long idx, attempts, hold;
	long long last, next;
	struct rcpt *r;
	char *w[MAX_WORDS + 1];
	int n = 0, s;

	for (char *save = NULL, *p = strtok_r(line, " ", &save); p;
	    p = strtok_r(NULL, " ", &save)) {
		if (n == MAX_WORDS + 1)
			return err_set(e, "state line %d: malformed", lineno);
		w[n++] = p;
	}
	if (n == 2 && strcmp(w[0], "hold") == 0 &&
	    parse_ull(w[1], &hold) == 0) {
		env->is_held = hold != 0;
		return 0;
	}
	if (n != 9 || strcmp(w[0], "rcpt") != 0 ||
	    parse_ull(w[1], &idx) == -1 || idx >= env->nrcpts ||
	    parse_ull(w[3], &attempts) == -1 || attempts > UINT_MAX ||
	    parse_ll(w[4], &last) == -1 || parse_ll(w[5], &next) == -1)
		return err_set(e, "state line %d: malformed", lineno);
	for (s = 0; s <= RCPT_BOUNCED; s++)
		if (strcmp(w[2], rcpt_status_names[s]) == 0)
			break;
	if (s > RCPT_BOUNCED)
		return err_set(e, "state line %d: unknown status '%.15s'",
		    lineno, w[2]);
	r = &env->rcpts[idx];
	r->status = (enum rcpt_status)s;
	r->attempts = (unsigned)attempts;
	r->last_try = last;
	r->next_try = next;
	r->is_warned = strchr(w[6], 'w') != NULL;
	if (take(&r->reply, w[8]) == -1 || take(&r->relay, w[7]) == -1)
		return err_set(e, "state line %d: bad reply text", lineno);
	return 0;
}

int
envelope_parse_state(const char *text, size_t len, struct envelope *env,
    struct err *e)
{
	char *copy = xstrndup(text, len), *save = NULL;
	int lineno = 0, rc = 0;

	for (char *line = strtok_r(copy, "\n", &save); line && rc == 0;
	    line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (lineno == 1) {
			if (strcmp(line, "SMTPGATE-STATE 1") != 0)
				rc = err_set(e, "state line 1: not a smtpgate "
				    "state file");
			continue;
		}
		rc = parse_state_line(env, line, lineno, e);
	}
	free(copy);
	return rc;
}
