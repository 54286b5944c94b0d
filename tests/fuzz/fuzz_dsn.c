/*
 * fuzz_dsn.c - libFuzzer target for src/mail/dsn.c: delivery status
 * notifications built from untrusted bytes (the envelope sender and
 * recipients, NOTIFY, ORCPT and ENVID as the client sent them, remote
 * replies, the original header section) and dsn_status_from_reply, the
 * parser of a reply's enhanced status code.
 *
 * Input: byte 0 flags (bit 0 SMTPUTF8, bit 1 DSN_DELAYED, bit 2 a given
 * Message-ID, bit 3 with headers, bits 4-6 each recipient value repeated
 * 2^n times, bit 7 null sender), bytes 1-8 last_try, bytes 9-10 the
 * length of the original header section taken from the end of the input;
 * in between NUL-separated values: sender, ENVID, then per recipient
 * target, orig, NOTIFY, ORCPT, the stored reply, a status override, the
 * remote MTA and a reply override (empty: NULL).
 *
 * Checks, beyond the sanitizers:
 * - dsn_status_from_reply gives class "." 1-3 digits "." 1-3 digits, of
 *   the reply code's class for a 4xx/5xx reply, within an exact-size
 *   buffer, and a truncated NUL-terminated prefix of it in a small one;
 * - dsn_should_send is never true for the null sender or NOTIFY=NEVER and
 *   agrees with the list of NOTIFY words;
 * - the notification: no NUL, CR and LF only as CRLF, no line over 998
 *   octets, 7-bit unless SMTPUTF8; its header has each of the nine
 *   fields once and nothing else (other lines are continuations); the
 *   boundary occurs only in the 2 or 3 delimiter lines and the closing
 *   one, which ends the message; the delivery-status part holds only
 *   RFC 3464 fields (and smtpgate's X- ones), one Final-Recipient,
 *   Action and well-formed Status per reported recipient (no field
 *   forged from a reply or address); and the same input gives the same
 *   bytes.
 */
/* fuzz-sources: src/mail/dsn.c src/mail/envelope.c src/mail/header.c src/lib/buf.c src/lib/err.c src/lib/mem.c src/lib/str.c src/lib/log.c */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "mail/dsn.h"
#include "mail/envelope.h"
#include "fuzz_util.h"

#define MAX_RCPTS	16

static void
check_status_from_reply(const char *reply)
{
	char *out = malloc(12), small[4];
	bool perm;

	if (out == NULL)
		abort();
	for (int k = 0; k < 2; k++) {
		perm = k == 1;
		if (dsn_status_from_reply(reply, perm, out, 12) != out ||
		    !fuzz_is_status(out, 0))
			abort();
		if (reply && (reply[0] == '4' || reply[0] == '5') &&
		    reply[1] >= '0' && reply[1] <= '9' && reply[2] >= '0' &&
		    reply[2] <= '9' && (reply[3] == ' ' || reply[3] == '-' ||
		    reply[3] == '\0') && out[0] != reply[0])
			abort();
		if (reply == NULL && out[0] != (perm ? '5' : '4'))
			abort();
		memset(small, 'x', sizeof(small));
		dsn_status_from_reply(reply, perm, small, sizeof(small));
		if (small[3] != '\0' || strncmp(small, out, 3) != 0)
			abort();
	}
	free(out);
}

static void
check_should_send(const struct envelope *env, size_t i)
{
	const char *notify = env->rcpts[i].notify;

	for (int kind = DSN_FAILED; kind <= DSN_DELAYED; kind++) {
		const char *want = kind == DSN_FAILED ? "FAILURE" : "DELAY";
		bool got = dsn_should_send(env, i, (enum dsn_kind)kind);
		bool listed = false;

		if (notify && *notify) {
			char *copy = strdup(notify), *save = NULL;

			for (char *w = strtok_r(copy, ",", &save); w;
			    w = strtok_r(NULL, ",", &save))
				if (strcasecmp(w, want) == 0)
					listed = true;
			free(copy);
		} else
			listed = true;
		if (got != (listed && env->sender[0] != '\0'))
			abort();
		if (got && notify && strcasecmp(notify, "NEVER") == 0)
			abort();
	}
	if (dsn_should_send(env, env->nrcpts, DSN_FAILED))
		abort();
}

/* NULL for an empty value (freeing it). */
static char *
or_null(char *s)
{
	if (s && *s == '\0') {
		free(s);
		return NULL;
	}
	return s;
}

struct line {
	const char	*s;
	size_t		 len;
};

/* Splits the CRLF lines of a message checked by check_bytes. */
static struct line *
split_lines(const struct buf *b, size_t *n)
{
	struct line *v = NULL;
	size_t cap = 0, start = 0;

	*n = 0;
	for (size_t i = 0; i + 1 < b->len; i++) {
		if (b->data[i] != '\r')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((v = realloc(v, cap * sizeof(*v))) == NULL)
				abort();
		}
		v[*n].s = b->data + start;
		v[*n].len = i - start;
		(*n)++;
		start = i + 2;
		i++;
	}
	if (start != b->len)
		abort();
	return v;
}

static void
check_bytes(const struct buf *b, bool is_utf8)
{
	size_t col = 0;

	if (b->len < 2 || b->data[b->len - 2] != '\r' ||
	    b->data[b->len - 1] != '\n')
		abort();
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		if (c == '\0' || (c >= 0x80 && !is_utf8))
			abort();
		if (c == '\r' && (i + 1 == b->len || b->data[i + 1] != '\n'))
			abort();
		if (c == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			abort();
		if (c == '\r' || c == '\n') {
			if (col > 998)
				abort();
			col = 0;
		} else
			col++;
	}
}

static bool
line_is(const struct line *l, const char *s)
{
	return l->len == strlen(s) && memcmp(l->s, s, l->len) == 0;
}

static bool
has_name(const struct line *l, const char *name)
{
	size_t n = strlen(name);

	return l->len > n && memcmp(l->s, name, n) == 0 && l->s[n] == ':';
}

static bool
is_cont(const struct line *l)
{
	return l->len > 0 && (l->s[0] == ' ' || l->s[0] == '\t');
}

static void
check_message(const struct buf *b, const struct dsn_params *p,
    bool has_headers)
{
	static const char *const top[] = {
		"From", "To", "Subject", "Date", "Message-ID",
		"Auto-Submitted", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding",
	};
	static const char *const status_fields[] = {
		"Original-Envelope-Id", "Reporting-MTA", "X-Smtpgate-Queue-ID",
		"X-Smtpgate-Sender", "Arrival-Date", "Original-Recipient",
		"Final-Recipient", "Action", "Status", "Remote-MTA",
		"Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until",
	};
	bool is_utf8 = p->env->smtputf8;
	struct line *l;
	size_t n, i, j, count[sizeof(top) / sizeof(top[0])] = { 0 };
	char boundary[128], delim[132], close[134];
	const char *q, *bq;
	size_t parts[4], nparts = 0, nfinal = 0, naction = 0, nstatus = 0;
	size_t hits = 0;

	check_bytes(b, is_utf8);
	l = split_lines(b, &n);

	/* The header: the nine fields once each, and continuations. */
	for (i = 0; i < n && l[i].len > 0; i++) {
		if (is_cont(&l[i]) && i > 0)
			continue;
		for (j = 0; j < sizeof(top) / sizeof(top[0]); j++)
			if (has_name(&l[i], top[j]))
				break;
		if (j == sizeof(top) / sizeof(top[0]))
			abort();
		count[j]++;
	}
	for (j = 0; j < sizeof(top) / sizeof(top[0]); j++)
		if (count[j] != 1)
			abort();
	if (i == n)
		abort();

	/* The boundary, from the Content-Type field. */
	for (j = 0; j < i && !has_name(&l[j], "Content-Type"); j++)
		;
	q = memmem(l[j].s, (size_t)(l[i].s - l[j].s), "boundary=\"", 10);
	if (q == NULL)
		abort();
	q += 10;
	bq = memchr(q, '"', 80);
	if (bq == NULL || (size_t)(bq - q) >= sizeof(boundary) - 1)
		abort();
	memcpy(boundary, q, (size_t)(bq - q));
	boundary[bq - q] = '\0';
	snprintf(delim, sizeof(delim), "--%s", boundary);
	snprintf(close, sizeof(close), "--%s--", boundary);

	for (j = i; j < n; j++) {
		if (line_is(&l[j], delim)) {
			if (nparts == 3)
				abort();
			parts[nparts++] = j;
		} else if (line_is(&l[j], close)) {
			if (j != n - 1)
				abort();
		}
	}
	if (!line_is(&l[n - 1], close))
		abort();
	for (q = l[i].s; (q = memmem(q, (size_t)(b->data + b->len - q),
	    boundary, strlen(boundary))) != NULL; q++)
		hits++;
	if (hits != nparts + 1)
		abort();
	if (nparts < 2 || (nparts == 3) != has_headers)
		abort();

	/* The delivery-status part: its part header, then its fields. */
	for (j = parts[1] + 1; j < n && l[j].len > 0; j++)
		;
	parts[nparts] = n - 1;
	for (j++; j < parts[2] - 1; j++) {
		size_t k;

		if (l[j].len == 0 || is_cont(&l[j]))
			continue;
		for (k = 0; k < sizeof(status_fields) /
		    sizeof(status_fields[0]); k++)
			if (has_name(&l[j], status_fields[k]))
				break;
		if (k == sizeof(status_fields) / sizeof(status_fields[0]))
			abort();
		nfinal += has_name(&l[j], "Final-Recipient");
		naction += has_name(&l[j], "Action");
		if (has_name(&l[j], "Status")) {
			char v[32];

			if (l[j].len - 8 >= sizeof(v))
				abort();
			memcpy(v, l[j].s + 8, l[j].len - 8);
			v[l[j].len - 8] = '\0';
			if (!fuzz_is_status(v, 0))
				abort();
			nstatus++;
		}
	}
	if (l[parts[2] - 1].len != 0)
		abort();
	if (nfinal != p->nrcpts || naction != p->nrcpts ||
	    nstatus != p->nrcpts)
		abort();
	free(l);
}

/* True when the header section's first line is not empty. */
static bool
headers_nonempty(const char *h, size_t len)
{
	return len > 0 && h[0] != '\n' && !(len > 1 && h[0] == '\r' &&
	    h[1] == '\n');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p, *end;
	struct envelope env;
	struct dsn_rcpt rcpts[MAX_RCPTS];
	char *own[MAX_RCPTS][4];
	struct dsn_params params;
	struct buf out, again;
	uint8_t flags;
	size_t hlen, nr = 0, repeat;
	long long last_try = 0;
	char *sender;

	if (size < 11)
		return 0;
	flags = data[0];
	repeat = (size_t)1 << ((flags >> 4) & 7);
	for (int k = 0; k < 8; k++)
		last_try = (long long)((unsigned long long)last_try << 8 |
		    data[1 + k]);
	hlen = (size_t)data[9] << 8 | data[10];
	if (!(flags & 8))
		hlen = 0;
	p = data + 11;
	end = data + size;
	if (hlen > (size_t)(end - p))
		hlen = (size_t)(end - p);
	end -= hlen;

	envelope_init(&env);
	env.smtputf8 = flags & 1;
	env.arrival = 1764484864.5;
	sender = fuzz_next_field(&p, end, 1);
	env.sender = (flags & 128) || sender == NULL ? strdup("") : sender;
	if (env.sender != sender)
		free(sender);
	env.envid = or_null(fuzz_next_field(&p, end, 1));
	memset(own, 0, sizeof(own));
	while (nr < MAX_RCPTS) {
		char *v[8];
		size_t k, idx;

		for (k = 0; k < 8; k++)
			v[k] = fuzz_next_field(&p, end, k >= 4 ? repeat : 1);
		if (v[0] == NULL && nr > 0)
			break;
		for (k = 0; k < 8; k++)
			if (v[k] == NULL)
				v[k] = strdup("");
		idx = envelope_add_rcpt(&env, (v[0][0] & 1) ? RCPT_LOCAL :
		    RCPT_REMOTE, *v[0] ? v[0] : "x@example.net",
		    *v[1] ? v[1] : "y@example.net", *v[2] ? v[2] : NULL,
		    *v[3] ? v[3] : NULL);
		env.rcpts[idx].reply = or_null(v[4]);
		env.rcpts[idx].last_try = nr == 0 ? last_try : (long long)nr;
		check_should_send(&env, idx);
		check_status_from_reply(env.rcpts[idx].reply);
		own[nr][0] = or_null(v[5]);
		own[nr][1] = or_null(v[6]);
		own[nr][2] = or_null(v[7]);
		rcpts[nr].index = idx;
		rcpts[nr].status = own[nr][0];
		rcpts[nr].remote_mta = own[nr][1];
		rcpts[nr].reply = own[nr][2];
		check_status_from_reply(rcpts[nr].reply);
		for (k = 0; k < 4; k++)
			free(v[k]);
		nr++;
	}

	memset(&params, 0, sizeof(params));
	params.kind = (flags & 2) ? DSN_DELAYED : DSN_FAILED;
	params.hostname = "mx.example.org";
	params.queue_id = "4ZkQ2m7Xb3p9";
	params.env = &env;
	params.rcpts = rcpts;
	params.nrcpts = nr;
	params.headers = hlen ? (const char *)end : NULL;
	params.headers_len = hlen;
	params.message_id = (flags & 4) ? "<dsn.1@mx.example.org>" : NULL;
	params.now = 1764488464;
	params.retry_until = (flags & 2) ? 1764830000 : 0;

	buf_init(&out);
	buf_init(&again);
	dsn_format(&out, &params);
	check_message(&out, &params, headers_nonempty(params.headers, hlen));
	dsn_format(&again, &params);
	if (again.len != out.len || memcmp(again.data, out.data, out.len))
		abort();

	buf_clear(&out);
	buf_clear(&again);
	for (size_t i = 0; i < nr; i++)
		for (int k = 0; k < 3; k++)
			free(own[i][k]);
	envelope_clear(&env);
	return 0;
}
