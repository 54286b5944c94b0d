/*
 * smtp_data.c - the DATA / BDAT byte automaton (RFC 5321 §4.1.1.4,
 * §4.5.2; RFC 3030).
 *
 * Layer: mail. Pure and incremental: one byte at a time, in any split of
 * the input into chunks, with the same result. Owns nothing; the caller
 * owns the struct and both buffers.
 *
 * The one rule that must never break (SMTP smuggling, CVE-2023-51764 and
 * friends): DATA ends only on CR LF "." CR LF, the first CR LF being the
 * one that ended the previous line (or the DATA command itself: the
 * automaton starts at BOL). A bare LF or bare CR never starts or ends a
 * line here, so "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r\n.\rX" are all
 * message content - flagged, so that the caller refuses the message, but
 * never an end of data after which pipelined text would be read as a new
 * transaction.
 *
 * Output: the dot-unstuffed message, always at most as many bytes as the
 * input of the same call (the caller's buffer has room for len bytes).
 * The only held-back bytes are the "." and CR after CR LF, which produce
 * nothing until the next byte says what they were.
 */
#include "mail/smtp_data.h"

const char *const smtp_data_state_names[] = {
	[SMTP_DATA_BOL] = "BOL",
	[SMTP_DATA_TEXT] = "TEXT",
	[SMTP_DATA_CR] = "CR",
	[SMTP_DATA_BOL_DOT] = "BOL_DOT",
	[SMTP_DATA_BOL_DOT_CR] = "BOL_DOT_CR",
	[SMTP_DATA_DONE] = "DONE",
};

void
smtp_data_init(struct smtp_data *d, bool is_bdat)
{
	d->state = SMTP_DATA_BOL;
	d->is_bdat = is_bdat;
	d->has_bare_cr = false;
	d->has_bare_lf = false;
	d->in_len = 0;
	d->out_len = 0;
}

/*
 * One byte inside a line (or, for BDAT, anywhere): the states TEXT and CR,
 * shared by both modes. Flags what c reveals and returns the next state;
 * the caller copies c to the output.
 */
static enum smtp_data_state
step_text(struct smtp_data *d, enum smtp_data_state state, unsigned char c)
{
	if (state == SMTP_DATA_CR) {
		if (c == '\n')
			return SMTP_DATA_BOL;
		d->has_bare_cr = true;	/* the CR before c */
	}
	if (c == '\r')
		return SMTP_DATA_CR;
	if (c == '\n')
		d->has_bare_lf = true;	/* not after CR: never a line end */
	return SMTP_DATA_TEXT;
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
    size_t *outlen)
{
	enum smtp_data_state state = d->state;
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < len && state != SMTP_DATA_DONE; i++) {
		c = (unsigned char)in[i];
		if (d->is_bdat) {
			/* Raw chunk: no dots, no end; BOL is just "not
			 * after CR". */
			state = step_text(d, state, c);
			out[o++] = (char)c;
			continue;
		}
		switch (state) {
		case SMTP_DATA_BOL:
			if (c == '.') {
				/* Stuffing or the end: held back. */
				state = SMTP_DATA_BOL_DOT;
				break;
			}
			state = step_text(d, SMTP_DATA_TEXT, c);
			out[o++] = (char)c;
			break;
		case SMTP_DATA_BOL_DOT:
			if (c == '\r') {
				state = SMTP_DATA_BOL_DOT_CR;
				break;
			}
			/* The line started with a stuffed dot: drop it
			 * (RFC 5321 §4.5.2) and take c as line text. */
			state = step_text(d, SMTP_DATA_TEXT, c);
			out[o++] = (char)c;
			break;
		case SMTP_DATA_BOL_DOT_CR:
			if (c == '\n') {
				state = SMTP_DATA_DONE;
				break;
			}
			/*
			 * CR LF "." CR then not LF: a smuggling attempt. The
			 * held CR is bare; it is dropped rather than copied,
			 * so that the output never outgrows the input of
			 * this call. The message is refused anyway.
			 */
			d->has_bare_cr = true;
			state = step_text(d, SMTP_DATA_TEXT, c);
			out[o++] = (char)c;
			break;
		case SMTP_DATA_TEXT:
		case SMTP_DATA_CR:
			state = step_text(d, state, c);
			out[o++] = (char)c;
			break;
		case SMTP_DATA_DONE:
			break;
		}
	}
	d->state = state;
	d->in_len += i;
	d->out_len += o;
	*outlen = o;
	return i;
}

bool
smtp_data_bdat_end_ok(const struct smtp_data *d)
{
	if (!d->is_bdat)
		return d->state == SMTP_DATA_DONE;
	/* A last chunk ending in CR ends the message with a bare CR. */
	return d->state != SMTP_DATA_CR;
}
