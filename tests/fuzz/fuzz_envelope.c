/*
 * fuzz_envelope.c - libFuzzer target for the spool records of
 * src/mail/envelope.c: the queue file header (envelope_parse), the state
 * file (envelope_parse_state) and xtext.
 *
 * A spool file left corrupted by a crash must give an error, never a
 * crash; a file the spool wrote must read back as it was written. Byte 0
 * picks the mode, the rest is the input (always parsed from a buffer of
 * exactly its size, so a read past len is caught):
 * 0 - the rest is a queue file. Checks: an error has a text; a success
 *     gives header_len <= len ending right after a "data" line, a sender
 *     and >= 1 recipient with target and orig; exactly header_len bytes
 *     parse to the same envelope and one byte fewer fails; the envelope
 *     formatted again parses back to itself with header_len = the
 *     formatted length (the format is a fixed point after one pass).
 * 1 - the rest is a state file applied to a valid envelope of 1-4
 *     recipients (count from the first byte). Checks: an error has a
 *     text; a success leaves valid statuses, and the state formatted
 *     again and applied to a fresh envelope gives the same state text.
 * 2 - a flags byte (bits 2-4: each value repeated 2^n times, so that
 *     long fields are reached), then NUL-separated field values (helo,
 *     sender, ..., then groups of target/orig/notify/orcpt/relay/reply):
 *     an envelope built from them, as the server and the scheduler
 *     would (target and orig never empty), is formatted, parsed, and
 *     must give the same envelope and data_len; the same for its state
 *     file (statuses, counters, times, hold flag, relay and reply). Every field also
 *     goes through xtext: decode(encode(s)) == s, and the encoding is
 *     printable ASCII without '=' or blank.
 */
/* fuzz-sources: src/mail/envelope.c src/lib/buf.c src/lib/err.c src/lib/mem.c src/lib/str.c src/lib/log.c */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "mail/envelope.h"
#include "fuzz_util.h"

static char *
copy_exact(const uint8_t *data, size_t n)
{
	char *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	if (n)
		memcpy(p, data, n);
	return p;
}

/* envelope_parse from an exact copy; checks the error text. */
/* rc as a parser returns it: 0, or -1 with a text. */
static int
checked(int rc, const struct err *e)
{
	if ((rc != 0 && rc != -1) || (rc == -1 && e->msg[0] == '\0'))
		abort();
	return rc;
}

static int
parse(const uint8_t *data, size_t n, struct envelope *env,
    size_t *header_len)
{
	char *copy = copy_exact(data, n);
	struct err e;
	int rc;

	envelope_init(env);
	err_clear(&e);
	*header_len = (size_t)-3;
	rc = envelope_parse(copy, n, env, header_len, &e);
	free(copy);
	return checked(rc, &e);
}

static int
parse_state(const uint8_t *data, size_t n, struct envelope *env)
{
	char *copy = copy_exact(data, n);
	struct err e;
	int rc;

	err_clear(&e);
	rc = envelope_parse_state(copy, n, env, &e);
	free(copy);
	return checked(rc, &e);
}

static void
format(const struct envelope *env, struct buf *b)
{
	buf_init(b);
	envelope_format(env, b);
}

static void
format_state(const struct envelope *env, struct buf *b)
{
	buf_init(b);
	envelope_format_state(env, b);
}

static bool
same_buf(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* The envelope of a successful parse of n bytes of text. */
static void
check_parsed(const uint8_t *text, size_t n, const struct envelope *env,
    size_t header_len)
{
	size_t i;

	if (header_len == 0 || header_len > n || text[header_len - 1] != '\n')
		abort();
	/* The last line is "data ..." */
	for (i = header_len - 1; i > 0 && text[i - 1] != '\n'; i--)
		;
	if (header_len - i < 6 || memcmp(text + i, "data ", 5) != 0)
		abort();
	if (env->sender == NULL || env->nrcpts == 0)
		abort();
	for (i = 0; i < env->nrcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];

		if (r->target == NULL || r->orig == NULL ||
		    (r->kind != RCPT_LOCAL && r->kind != RCPT_REMOTE) ||
		    r->status != RCPT_PENDING)
			abort();
	}
}

static void
mode_queue(const uint8_t *data, size_t size)
{
	struct envelope env, again;
	struct buf f1, f2;
	size_t hl, hl2;

	if (parse(data, size, &env, &hl) == -1) {
		envelope_clear(&env);
		return;
	}
	check_parsed(data, size, &env, hl);
	format(&env, &f1);

	/* Exactly the header: same envelope; one byte fewer: an error. */
	if (parse(data, hl, &again, &hl2) != 0 || hl2 != hl)
		abort();
	format(&again, &f2);
	if (!same_buf(&f1, &f2) || again.data_len != env.data_len)
		abort();
	envelope_clear(&again);
	buf_clear(&f2);
	if (parse(data, hl - 1, &again, &hl2) != -1)
		abort();
	envelope_clear(&again);

	/* Formatted again, it reads back to itself. */
	if (parse((const uint8_t *)f1.data, f1.len, &again, &hl2) != 0 ||
	    hl2 != f1.len)
		abort();
	format(&again, &f2);
	if (!same_buf(&f1, &f2) || again.data_len != env.data_len)
		abort();
	envelope_clear(&again);
	envelope_clear(&env);
	buf_clear(&f1);
	buf_clear(&f2);
}

static void
base_envelope(struct envelope *env, size_t n)
{
	envelope_init(env);
	env->sender = strdup("s@example.org");
	for (size_t i = 0; i < n; i++)
		envelope_add_rcpt(env, i % 2 ? RCPT_LOCAL : RCPT_REMOTE,
		    "t@example.net", "o@example.net", NULL, NULL);
}

/* Is state s of env what a fresh envelope reads back? */
static void
check_state_round_trip(const struct envelope *env)
{
	struct envelope fresh;
	struct buf s1, s2;

	format_state(env, &s1);
	base_envelope(&fresh, env->nrcpts);
	if (parse_state((const uint8_t *)s1.data, s1.len, &fresh) != 0)
		abort();
	format_state(&fresh, &s2);
	if (!same_buf(&s1, &s2) || fresh.is_held != env->is_held)
		abort();
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct rcpt *a = &env->rcpts[i], *b = &fresh.rcpts[i];

		if (a->status != b->status || a->attempts != b->attempts ||
		    a->last_try != b->last_try || a->next_try != b->next_try ||
		    a->is_warned != b->is_warned)
			abort();
	}
	envelope_clear(&fresh);
	buf_clear(&s1);
	buf_clear(&s2);
}

static void
mode_state(const uint8_t *data, size_t size)
{
	struct envelope env;

	if (size == 0)
		return;
	base_envelope(&env, 1 + data[0] % 4);
	if (parse_state(data + 1, size - 1, &env) == 0) {
		for (size_t i = 0; i < env.nrcpts; i++)
			if (env.rcpts[i].status > RCPT_BOUNCED)
				abort();
		check_state_round_trip(&env);
	}
	envelope_clear(&env);
}

static void
check_xtext(const char *s)
{
	struct buf b;
	char *d;

	if (s == NULL)
		return;
	buf_init(&b);
	xtext_encode(&b, s);
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] < '!' || b.data[i] > '~' || b.data[i] == '=')
			abort();
	d = xtext_decode(b.data);
	if (d == NULL || strcmp(d, s) != 0)
		abort();
	free(d);
	buf_clear(&b);
}

/* Two optional strings, "" and NULL being the same (both give "-"). */
static bool
same_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void
compare(const struct envelope *a, const struct envelope *b)
{
	if (!same_str(a->client_addr, b->client_addr) ||
	    !same_str(a->client_name, b->client_name) ||
	    !same_str(a->helo, b->helo) || !same_str(a->proto, b->proto) ||
	    !same_str(a->auth_user, b->auth_user) ||
	    !same_str(a->sender, b->sender) || b->sender == NULL ||
	    !same_str(a->body, b->body) || a->smtputf8 != b->smtputf8 ||
	    !same_str(a->ret, b->ret) || !same_str(a->envid, b->envid) ||
	    a->nrcpts != b->nrcpts || a->data_len != b->data_len)
		abort();
	for (size_t i = 0; i < a->nrcpts; i++) {
		const struct rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];

		if (x->kind != y->kind || strcmp(x->target, y->target) != 0 ||
		    strcmp(x->orig, y->orig) != 0 ||
		    !same_str(x->notify, y->notify) ||
		    !same_str(x->orcpt, y->orcpt))
			abort();
	}
}

static void
mode_fields(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct envelope env, back;
	struct buf f;
	size_t hl;
	char **slots[] = {
		&env.client_addr, &env.client_name, &env.helo, &env.proto,
		&env.auth_user, &env.sender, &env.body, &env.ret, &env.envid,
	};
	uint8_t flags = size ? data[0] : 0;
	size_t repeat = (size_t)1 << ((flags >> 2) & 7);

	if (size == 0)
		return;
	p++;
	envelope_init(&env);
	env.smtputf8 = flags & 1;
	env.is_held = flags & 2;
	env.data_len = (unsigned long long)flags * 0x0101010101010101ULL;
	env.arrival = 1700000000.25;
	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		*slots[i] = fuzz_next_field(&p, end, repeat);
		check_xtext(*slots[i]);
	}
	if (env.sender == NULL)
		env.sender = strdup("");
	while (env.nrcpts < 64) {
		char *v[6];
		size_t k;
		struct rcpt *r;

		for (k = 0; k < 6; k++)
			v[k] = fuzz_next_field(&p, end, repeat);
		if (v[0] == NULL)
			break;
		for (k = 0; k < 6; k++)
			check_xtext(v[k]);
		k = envelope_add_rcpt(&env, (v[0][0] & 1) ? RCPT_LOCAL :
		    RCPT_REMOTE, v[0][0] ? v[0] : "x", v[1] && *v[1] ? v[1] :
		    "y", v[2], v[3]);
		r = &env.rcpts[k];
		r->status = (enum rcpt_status)(k % 4);
		r->attempts = (unsigned)(k * 977);
		r->last_try = (long long)k * 1000003 - 7;
		r->next_try = -(long long)k * 31;
		r->is_warned = k % 3 == 1;
		r->relay = v[4];
		r->reply = v[5];
		v[4] = v[5] = NULL;
		for (k = 0; k < 6; k++)
			free(v[k]);
	}
	if (env.nrcpts == 0)
		envelope_add_rcpt(&env, RCPT_REMOTE, "a@b", "a@b", NULL, NULL);

	format(&env, &f);
	if (parse((const uint8_t *)f.data, f.len, &back, &hl) != 0 ||
	    hl != f.len)
		abort();
	compare(&env, &back);
	if (parse_state(NULL, 0, &back) == -1)	/* empty: nothing to apply */
		abort();
	check_state_round_trip(&env);
	{
		struct buf s;

		format_state(&env, &s);
		if (parse_state((const uint8_t *)s.data, s.len, &back) != 0)
			abort();
		for (size_t i = 0; i < env.nrcpts; i++)
			if (!same_str(env.rcpts[i].relay,
			    back.rcpts[i].relay) ||
			    !same_str(env.rcpts[i].reply,
			    back.rcpts[i].reply))
				abort();
		if (back.is_held != env.is_held)
			abort();
		buf_clear(&s);
	}
	envelope_clear(&back);
	envelope_clear(&env);
	buf_clear(&f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		mode_queue(data + 1, size - 1);
		break;
	case 1:
		mode_state(data + 1, size - 1);
		break;
	default:
		mode_fields(data + 1, size - 1);
		break;
	}
	return 0;
}
