/*
 * fuzz_smtp_data.c - libFuzzer target for the DATA / BDAT automaton.
 *
 * Input: byte 0 picks the mode (bit 0: BDAT), bytes 1-2 a split point,
 * the rest is the stream. Feeds it whole, then split in two at that point,
 * then byte by byte, each chunk and its output buffer allocated at exactly
 * the chunk's size (so an output longer than the input is caught), and
 * requires the same output, consumed count, state and flags every time.
 * Also checks what DATA may never do: end anywhere but right after
 * CR LF "." CR LF, or at the very start after ".\r\n".
 */
/* fuzz-sources: src/mail/smtp_data.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_data.h"

struct run {
	struct smtp_data d;
	char		*out;
	size_t		 out_len;
	size_t		 consumed;
};

/*
 * Feeds in[start, stop) as one call, from a copy in chunk into out, both
 * of exactly stop - start bytes (heap, so ASan sees a byte too far).
 * Returns false once the data has ended before the chunk did.
 */
static bool
feed_in(struct run *r, const uint8_t *in, size_t start, size_t stop,
    char *chunk, char *out)
{
	size_t n = stop - start, outlen = (size_t)-1, got;

	memcpy(chunk, in + start, n);
	got = smtp_data_feed(&r->d, chunk, n, out, &outlen);
	if (got > n || outlen > n)
		abort();
	memcpy(r->out + r->out_len, out, outlen);
	r->out_len += outlen;
	r->consumed += got;
	return got == n;
}

static bool
feed(struct run *r, const uint8_t *in, size_t start, size_t stop)
{
	size_t n = stop - start;
	char *chunk = malloc(n ? n : 1), *out = malloc(n ? n : 1);
	bool all;

	if (chunk == NULL || out == NULL)
		abort();
	all = feed_in(r, in, start, stop, chunk, out);
	free(chunk);
	free(out);
	return all;
}

static void
start(struct run *r, bool is_bdat, size_t len)
{
	memset(r, 0, sizeof(*r));
	smtp_data_init(&r->d, is_bdat);
	if ((r->out = malloc(len ? len : 1)) == NULL)
		abort();
}

static void
same(const struct run *a, const struct run *b)
{
	if (a->out_len != b->out_len || a->consumed != b->consumed ||
	    memcmp(a->out, b->out, a->out_len) != 0 ||
	    a->d.state != b->d.state || a->d.has_bare_cr != b->d.has_bare_cr ||
	    a->d.has_bare_lf != b->d.has_bare_lf ||
	    a->d.in_len != b->d.in_len || a->d.out_len != b->d.out_len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, two, bytes;
	const uint8_t *in;
	size_t len, cut, i;
	bool is_bdat;

	if (size < 3)
		return 0;
	is_bdat = data[0] & 1;
	in = data + 3;
	len = size - 3;
	cut = ((size_t)data[1] << 8 | data[2]) % (len + 1);

	start(&whole, is_bdat, len);
	feed(&whole, in, 0, len);

	start(&two, is_bdat, len);
	if (feed(&two, in, 0, cut))
		feed(&two, in, cut, len);
	same(&whole, &two);

	start(&bytes, is_bdat, len);
	{
		char *chunk = malloc(1), *out = malloc(1);

		if (chunk == NULL || out == NULL)
			abort();
		for (i = 0; i < len &&
		    feed_in(&bytes, in, i, i + 1, chunk, out); i++)
			;
		free(chunk);
		free(out);
	}
	same(&whole, &bytes);

	if (whole.out_len > whole.consumed || whole.d.in_len != whole.consumed ||
	    whole.d.out_len != whole.out_len)
		abort();
	if (is_bdat) {
		/* raw: everything, unchanged */
		if (whole.consumed != len || whole.d.state == SMTP_DATA_DONE ||
		    memcmp(whole.out, in, len) != 0)
			abort();
	} else if (whole.d.state == SMTP_DATA_DONE) {
		size_t c = whole.consumed;

		/* the end marker, preceded by a CRLF or the start */
		if (c < 3 || memcmp(in + c - 3, ".\r\n", 3) != 0)
			abort();
		if (c != 3 && (c < 5 || memcmp(in + c - 5, "\r\n", 2) != 0))
			abort();
		/* and the message ends with that CRLF (or is empty) */
		if (c != 3 && (whole.out_len < 2 || memcmp(whole.out +
		    whole.out_len - 2, "\r\n", 2) != 0))
			abort();
	} else if (whole.consumed != len)
		abort();
	/* no bare CR or LF flagged: the output has only CRLF pairs */
	if (!whole.d.has_bare_cr && !whole.d.has_bare_lf) {
		for (i = 0; i < whole.out_len; i++) {
			if (whole.out[i] == '\n' &&
			    (i == 0 || whole.out[i - 1] != '\r'))
				abort();
			if (whole.out[i] == '\r' && i + 1 < whole.out_len &&
			    whole.out[i + 1] != '\n')
				abort();
		}
	}
	free(whole.out);
	free(two.out);
	free(bytes.out);
	return 0;
}
