/*
 * smtp_data.h - the DATA / BDAT byte automaton (RFC 5321 §4.1.1.4, §4.5.2;
 * RFC 3030).
 *
 * Pure and incremental: fed the bytes as they arrive, in any split, it
 * removes dot-stuffing, finds the one legal end of data (<CR><LF>.<CR><LF>)
 * and flags every bare CR or bare LF (SMTP smuggling defence: a message
 * containing one is refused whole). States are named after the input
 * already seen.
 */
#ifndef SMTPGATE_MAIL_SMTP_DATA_H
#define SMTPGATE_MAIL_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>

enum smtp_data_state {
	SMTP_DATA_BOL,		/* at the beginning of a line (after CRLF) */
	SMTP_DATA_TEXT,		/* inside a line */
	SMTP_DATA_CR,		/* inside a line, after CR */
	SMTP_DATA_BOL_DOT,	/* after CRLF "." */
	SMTP_DATA_BOL_DOT_CR,	/* after CRLF "." CR */
	SMTP_DATA_DONE,		/* after CRLF "." CRLF: end of data */
};

extern const char *const smtp_data_state_names[];

struct smtp_data {
	enum smtp_data_state	state;
	bool			is_bdat;	/* no dots, no end marker */
	bool			has_bare_cr;
	bool			has_bare_lf;
	unsigned long long	in_len;		/* bytes fed */
	unsigned long long	out_len;	/* message bytes produced */
};

/* Starts a message; is_bdat for BDAT chunks (raw, count-delimited). */
void	smtp_data_init(struct smtp_data *d, bool is_bdat);
/*
 * Feeds len input bytes. The message bytes (dot-unstuffed; the final
 * ".CRLF" is not part of the message, the CRLF before it is) are written to
 * out, which has room for len bytes; *outlen gets their count. Returns the
 * number of input bytes consumed: all of them, except that DATA stops right
 * after the end marker (state DONE), leaving pipelined commands unread.
 * A bare CR or LF sets has_bare_cr/has_bare_lf; scanning goes on so that
 * the session stays in step, and the caller refuses the message at the end.
 * For BDAT, the state carries across chunks; feeding never reaches DONE.
 */
size_t	smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
	    char *out, size_t *outlen);
/* For BDAT after the LAST chunk: false when the message ends with a bare
 * CR (a CR that no LF can follow any more), which is also refused. */
bool	smtp_data_bdat_end_ok(const struct smtp_data *d);

#endif
