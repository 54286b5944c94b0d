/*
 * test_smtp_data.c - unit tests for src/mail/smtp_data.c: dot-unstuffing,
 * the one legal end of data, every SMTP smuggling variant (with a second
 * transaction smuggled after it), BDAT, and the same result for every
 * split of the input into chunks.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_data.h"
#include "t.h"

struct result {
	char		out[4096];
	size_t		out_len;
	size_t		consumed;
	struct smtp_data d;
};

/*
 * Feeds in[0..len) in chunks ending at the given cut points (sorted,
 * ncuts of them), each into an output buffer of exactly the chunk's size
 * so that AddressSanitizer sees any overflow. Stops feeding once a call
 * consumes less than it was given (end of data).
 */
static void
feed_cuts(const char *in, size_t len, bool is_bdat, const size_t *cuts,
    size_t ncuts, struct result *r)
{
	size_t start = 0;

	memset(r, 0, sizeof(*r));
	smtp_data_init(&r->d, is_bdat);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t stop = k < ncuts ? cuts[k] : len;
		size_t n = stop - start, got, outlen = 12345;
		char *chunk = malloc(n ? n : 1), *out = malloc(n ? n : 1);

		memcpy(chunk, in + start, n);
		got = smtp_data_feed(&r->d, chunk, n, out, &outlen);
		CHECK(got <= n);
		CHECK(outlen <= n);
		if (outlen <= n && r->out_len + outlen <= sizeof(r->out)) {
			memcpy(r->out + r->out_len, out, outlen);
			r->out_len += outlen;
		}
		r->consumed += got;
		free(chunk);
		free(out);
		start = stop;
		if (got < n)
			break;
	}
}

static void
feed_all(const char *in, size_t len, bool is_bdat, struct result *r)
{
	feed_cuts(in, len, is_bdat, NULL, 0, r);
}

static bool
same_result(const struct result *a, const struct result *b)
{
	return a->out_len == b->out_len &&
	    memcmp(a->out, b->out, a->out_len) == 0 &&
	    a->consumed == b->consumed &&
	    a->d.state == b->d.state &&
	    a->d.has_bare_cr == b->d.has_bare_cr &&
	    a->d.has_bare_lf == b->d.has_bare_lf &&
	    a->d.in_len == b->d.in_len &&
	    a->d.out_len == b->d.out_len;
}

struct data_case {
	const char	*in;
	const char	*out;		/* message produced */
	long		 consumed;	/* -1: all of it */
	bool		 done;
	bool		 bare_cr;
	bool		 bare_lf;
};

static const struct data_case data_cases[] = {
	/* the end of data, and only it */
	{ ".\r\n", "", -1, true, false, false },
	{ ".\r\nQUIT\r\n", "", 3, true, false, false },
	{ "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n",
	    -1, true, false, false },
	{ "a\r\n.\r\nMAIL FROM:<b@c>\r\n", "a\r\n", 6, true, false, false },
	{ "a\r\n.\r\n.\r\n", "a\r\n", 6, true, false, false },
	{ "a\r\n", "a\r\n", -1, false, false, false },
	{ "a\r\n.", "a\r\n", -1, false, false, false },
	{ "a\r\n.\r", "a\r\n", -1, false, false, false },
	{ "", "", -1, false, false, false },
	{ "a.\r\n", "a.\r\n", -1, false, false, false },
	{ "a\r\n .\r\n", "a\r\n .\r\n", -1, false, false, false },
	{ "a\r\n.x\r\n", "a\r\nx\r\n", -1, false, false, false },
	/* dot-unstuffing */
	{ "..\r\n.\r\n", ".\r\n", -1, true, false, false },
	{ "...\r\n.\r\n", "..\r\n", -1, true, false, false },
	{ "a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", -1, true, false, false },
	{ ".a\r\n.\r\n", "a\r\n", -1, true, false, false },
	{ "a\r\n.. \r\n.\r\n", "a\r\n. \r\n", -1, true, false, false },
	{ "\r\n.\r\n", "\r\n", -1, true, false, false },
	{ "x\r\n\r\n.\r\n", "x\r\n\r\n", -1, true, false, false },
	/* bare LF / bare CR, not ends */
	{ "a\nb\r\n.\r\n", "a\nb\r\n", -1, true, false, true },
	{ "a\rb\r\n.\r\n", "a\rb\r\n", -1, true, true, false },
	{ "\n.\r\n", "\n.\r\n", -1, false, false, true },
	/* a real CRLF.CRLF after a bare CR or LF still ends the data */
	{ "a\r\r\n.\r\n", "a\r\r\n", -1, true, true, false },
	{ "a\n\r\n.\r\n", "a\n\r\n", -1, true, false, true },
	{ "a\r\n\n.\r\n", "a\r\n\n.\r\n", -1, false, false, true },
	{ "a\r\n.\n", "a\r\n\n", -1, false, false, true },
	{ "a\r\n.\rX", "a\r\nX", -1, false, true, false },
	{ "a\r\n.\r\r\n.\r\n", "a\r\n\r\n", -1, true, true, false },
	{ "a\r\n.\r.\r\n", "a\r\n.\r\n", -1, false, true, false },
	{ "a\n.\n", "a\n.\n", -1, false, false, true },
	{ "a\n.\r\n", "a\n.\r\n", -1, false, false, true },
	{ "a\r.\r", "a\r.\r", -1, false, true, false },
	{ "a\r.\r\n", "a\r.\r\n", -1, false, true, false },
	{ "\r", "\r", -1, false, false, false },
	{ "\r\r", "\r\r", -1, false, true, false },
};

static void
test_data_cases(void)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]);
	    i++) {
		const struct data_case *c = &data_cases[i];
		size_t len = strlen(c->in), out_len = strlen(c->out);
		struct result r;

		feed_all(c->in, len, false, &r);
		if (r.out_len != out_len ||
		    memcmp(r.out, c->out, out_len) != 0 ||
		    (r.d.state == SMTP_DATA_DONE) != c->done)
			fprintf(stderr, "  case %zu: out %zu bytes, state %s\n",
			    i, r.out_len, smtp_data_state_names[r.d.state]);
		CHECK_INT(r.out_len, out_len);
		CHECK(memcmp(r.out, c->out, out_len) == 0);
		CHECK_INT(r.consumed, c->consumed < 0 ? (long)len :
		    c->consumed);
		CHECK_INT(r.d.state == SMTP_DATA_DONE, c->done);
		CHECK_INT(r.d.has_bare_cr, c->bare_cr);
		CHECK_INT(r.d.has_bare_lf, c->bare_lf);
		CHECK_INT(r.d.in_len, r.consumed);
		CHECK_INT(r.d.out_len, r.out_len);
	}
}

/* NUL is just a byte in DATA: the session's line rules do not apply. */
static void
test_nul(void)
{
	static const char in[] = "a\0b\r\n.\0\r\n.\r\n";
	struct result r;

	feed_all(in, sizeof(in) - 1, false, &r);
	CHECK_INT(r.d.state, SMTP_DATA_DONE);
	CHECK_INT(r.consumed, sizeof(in) - 1);
	CHECK_INT(r.out_len, 8);
	CHECK(memcmp(r.out, "a\0b\r\n\0\r\n", 8) == 0);
	CHECK(!r.d.has_bare_cr && !r.d.has_bare_lf);
}

/*
 * Each smuggling variant between a first message and a second, smuggled
 * transaction. The data must not end at the variant: the smuggled MAIL,
 * RCPT and DATA lines are message content, the data ends only at the last
 * CRLF.CRLF, and the message is flagged so the server refuses it whole.
 */
static void
test_smuggling(void)
{
	static const struct {
		const char	*seq;
		bool		 bare_cr, bare_lf;
	} variants[] = {
		{ "\n.\n", false, true },
		{ "\n.\r\n", false, true },
		{ "\r.\r", true, false },
		{ "\r.\r\n", true, false },
		{ "\r\n.\r", true, false },
		{ "\r\n.\n", false, true },
		{ "\r\n.\rX", true, false },
		{ "\r\n.\r\r\n", true, false },
		{ "\r\n\n.\r\n", false, true },
		{ "\r\n.\n\r\n", false, true },
		{ "\r\n\x00.\r\n", false, false },
	};
	static const char head[] = "From: a@example.com\r\n\r\nhello";
	static const char smuggled[] = "MAIL FROM:<admin@bank.example>\r\n"
	    "RCPT TO:<victim@example.org>\r\nDATA\r\n"
	    "From: admin@bank.example\r\n\r\nsend money\r\n";
	static const char tail[] = ".\r\nQUIT\r\n";

	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		char in[1024];
		size_t n = 0, seq_len = strlen(variants[i].seq);
		struct result r, r2;

		if (i == sizeof(variants) / sizeof(variants[0]) - 1)
			seq_len = 6;	/* the one with a NUL */
		memcpy(in + n, head, sizeof(head) - 1);
		n += sizeof(head) - 1;
		memcpy(in + n, variants[i].seq, seq_len);
		n += seq_len;
		memcpy(in + n, smuggled, sizeof(smuggled) - 1);
		n += sizeof(smuggled) - 1;
		memcpy(in + n, tail, sizeof(tail) - 1);
		n += sizeof(tail) - 1;

		feed_all(in, n, false, &r);
		if (r.consumed != n - strlen("QUIT\r\n"))
			fprintf(stderr, "  variant %zu: consumed %zu of %zu\n",
			    i, r.consumed, n);
		/* ends at the last CRLF.CRLF, not at the variant */
		CHECK_INT(r.d.state, SMTP_DATA_DONE);
		CHECK_INT(r.consumed, n - strlen("QUIT\r\n"));
		CHECK_INT(r.d.has_bare_cr, variants[i].bare_cr);
		CHECK_INT(r.d.has_bare_lf, variants[i].bare_lf);
		/* the smuggled lines are content of the first message */
		CHECK(r.out_len > sizeof(smuggled) - 1);
		if (r.out_len > sizeof(smuggled) - 1)
			CHECK(memcmp(r.out + r.out_len - (sizeof(smuggled) - 1),
			    smuggled, sizeof(smuggled) - 1) == 0);

		/* and byte by byte, the same */
		{
			size_t cuts[1024];

			for (size_t k = 0; k + 1 < n; k++)
				cuts[k] = k + 1;
			feed_cuts(in, n, false, cuts, n - 1, &r2);
			CHECK(same_result(&r, &r2));
		}
	}
}

static const char *const split_inputs[] = {
	".\r\n",
	"..\r\n.\r\n",
	"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
	"a\r\n..\r\n.b\r\n.\r\n",
	"a\n.\nb\r\n.\r\n",
	"a\r\n.\rX\r\n.\r\n",
	"a\r\n.\r\r\n.\r\nQ",
	"\r\r\n\n\r.\r\n.\r\n",
	"x\r\n.\n.\r\n.\r\n",
	"\r\n.\r\n\r\n",
	"\n.\r\n\r\n.\r\n",
	"ab\rcd\r\n.\r",
	"Subject: t\r\n\r\n..dot\r\n...\r\n. \r\n.\r\nRSET\r\n",
};

/*
 * Every split point, and every pair of split points, gives the same
 * output, consumed count, state and flags as one feed (DATA and BDAT).
 */
static void
test_split_points(void)
{
	for (int bdat = 0; bdat < 2; bdat++) {
		for (size_t i = 0; i < sizeof(split_inputs) /
		    sizeof(split_inputs[0]); i++) {
			const char *in = split_inputs[i];
			size_t n = strlen(in), cuts[2];
			struct result whole, part;
			int bad = 0;

			feed_all(in, n, bdat, &whole);
			for (size_t a = 0; a <= n; a++) {
				cuts[0] = a;
				feed_cuts(in, n, bdat, cuts, 1, &part);
				bad += !same_result(&whole, &part);
				for (size_t b = a; b <= n; b++) {
					cuts[1] = b;
					feed_cuts(in, n, bdat, cuts, 2, &part);
					bad += !same_result(&whole, &part);
				}
			}
			if (bad)
				fprintf(stderr, "  input %zu (bdat %d): %d "
				    "splits differ\n", i, bdat, bad);
			CHECK_INT(bad, 0);
		}
	}
}

static void
test_done_stops(void)
{
	struct smtp_data d;
	char out[16];
	size_t outlen = 99;

	smtp_data_init(&d, false);
	CHECK_INT(smtp_data_feed(&d, "x\r\n.\r\nRSET\r\n", 12, out, &outlen),
	    6);
	CHECK_INT(outlen, 3);
	CHECK_INT(d.state, SMTP_DATA_DONE);
	CHECK(smtp_data_bdat_end_ok(&d));
	outlen = 99;
	CHECK_INT(smtp_data_feed(&d, "more", 4, out, &outlen), 0);
	CHECK_INT(outlen, 0);
	CHECK_INT(d.in_len, 6);
	CHECK_INT(d.out_len, 3);
	/* zero-length feed */
	smtp_data_init(&d, false);
	CHECK_INT(smtp_data_feed(&d, "", 0, out, &outlen), 0);
	CHECK_INT(outlen, 0);
	CHECK_INT(d.state, SMTP_DATA_BOL);
	CHECK(!smtp_data_bdat_end_ok(&d));
}

static void
test_bdat(void)
{
	struct result r;
	size_t cut;

	/* no dots, no end: everything is data */
	feed_all("a\r\n.\r\n..\r\nb", 11, true, &r);
	CHECK_INT(r.consumed, 11);
	CHECK_INT(r.out_len, 11);
	CHECK(memcmp(r.out, "a\r\n.\r\n..\r\nb", 11) == 0);
	CHECK(!r.d.has_bare_cr && !r.d.has_bare_lf);
	CHECK(r.d.state != SMTP_DATA_DONE);
	CHECK(smtp_data_bdat_end_ok(&r.d));

	/* CRLF split across chunks is not bare */
	cut = 4;
	feed_cuts("abc\r\ndef", 8, true, &cut, 1, &r);
	CHECK(!r.d.has_bare_cr && !r.d.has_bare_lf);
	/* CR at a chunk end, then not LF: bare CR */
	feed_cuts("abc\rdef", 7, true, &cut, 1, &r);
	CHECK(r.d.has_bare_cr && !r.d.has_bare_lf);
	/* LF at a chunk start after no CR: bare LF */
	cut = 3;
	feed_cuts("abc\ndef", 7, true, &cut, 1, &r);
	CHECK(!r.d.has_bare_cr && r.d.has_bare_lf);
	feed_all("\nabc", 4, true, &r);
	CHECK(r.d.has_bare_lf);
	feed_all("a\r\r\n", 4, true, &r);
	CHECK(r.d.has_bare_cr && !r.d.has_bare_lf);

	/* a message ending in CR ends with a bare CR */
	feed_all("abc\r", 4, true, &r);
	CHECK(!r.d.has_bare_cr);
	CHECK(!smtp_data_bdat_end_ok(&r.d));
	feed_all("abc\r\n", 5, true, &r);
	CHECK(smtp_data_bdat_end_ok(&r.d));
	feed_all("", 0, true, &r);
	CHECK(smtp_data_bdat_end_ok(&r.d));
	CHECK_INT(r.d.out_len, 0);
}

static void
test_state_names(void)
{
	CHECK_STR(smtp_data_state_names[SMTP_DATA_BOL], "BOL");
	CHECK_STR(smtp_data_state_names[SMTP_DATA_TEXT], "TEXT");
	CHECK_STR(smtp_data_state_names[SMTP_DATA_CR], "CR");
	CHECK_STR(smtp_data_state_names[SMTP_DATA_BOL_DOT], "BOL_DOT");
	CHECK_STR(smtp_data_state_names[SMTP_DATA_BOL_DOT_CR], "BOL_DOT_CR");
	CHECK_STR(smtp_data_state_names[SMTP_DATA_DONE], "DONE");
}

/* A large message fed in odd chunk sizes keeps its counters right. */
static void
test_large(void)
{
	enum { LINES = 5000 };
	static char in[LINES * 8 + 8], out[sizeof(in)];
	struct smtp_data d;
	size_t n = 0, pos = 0, o = 0, step = 1, outlen, got;

	for (int i = 0; i < LINES; i++) {
		memcpy(in + n, i % 7 ? "line.\r\n" : "..dot\r\n", 7);
		n += 7;
	}
	memcpy(in + n, ".\r\n", 3);
	n += 3;
	smtp_data_init(&d, false);
	while (pos < n) {
		size_t len = step < n - pos ? step : n - pos;

		got = smtp_data_feed(&d, in + pos, len, out + o, &outlen);
		pos += got;
		o += outlen;
		step = step * 3 % 1021 + 1;
		if (got < len)
			break;
	}
	CHECK_INT(pos, n);
	CHECK_INT(d.state, SMTP_DATA_DONE);
	CHECK_INT(o, (size_t)LINES * 7 - (LINES + 6) / 7);
	CHECK_INT(d.out_len, o);
	CHECK_INT(d.in_len, n);
}

int
main(void)
{
	RUN(test_data_cases);
	RUN(test_nul);
	RUN(test_smuggling);
	RUN(test_split_points);
	RUN(test_done_stops);
	RUN(test_bdat);
	RUN(test_state_names);
	RUN(test_large);
	T_EXIT();
}
