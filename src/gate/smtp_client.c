/*
 * smtp_client.c - the outbound SMTP/LMTP client engine. Layer: gate.
 *
 * Owns one connection (a bufferevent over the caller's socket, later a
 * bufferevent_openssl filter over it after STARTTLS), the queue of
 * commands waiting for their replies, the reply being read, and the
 * transaction in progress (copied addresses; the spool fd is borrowed).
 *
 * The send side and the receive side advance separately: advance_send()
 * writes whatever the protocol allows next (everything up to DATA at once
 * with PIPELINING, RFC 2920 §3.1; one command per reply without it) and
 * records each command in the pending queue; handle_reply() pops the
 * oldest pending command and acts on its reply. The message content is
 * pulled from the spool file with pread as the socket drains (write
 * low-water mark), dot-stuffed on the way (RFC 5321 §4.5.2), so the
 * memory per client stays bounded whatever the message size.
 *
 * Invariants: every callback into the caller is made from a libevent
 * entry point wrapped in enter()/leave(), so smtp_client_free inside a
 * callback only marks the client dead and leave() releases it; after any
 * callback, code checks alive() before touching state. Nothing a peer
 * sends can grow memory beyond REPLY_MAX per reply, nor reach fatal/panic.
 * Never logs except log_debug of the dialogue; never decides defer versus
 * bounce (sched.c does).
 */
#include "gate/smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define REPLY_LINE_MAX	4096		/* bytes of one reply line */
#define REPLY_MAX	(64 * 1024)	/* bytes of one (multi-line) reply */
#define CHUNK_SIZE	(16 * 1024)	/* pread size for the content */
#define OUT_HIGH	(128 * 1024)	/* refill the output below this */
#define OUT_LOW		(64 * 1024)	/* write callback threshold */
#define TLS_OUT_HIGH	(64 * 1024)	/* ciphertext queued under TLS */

enum client_state {
	CLIENT_STATE_GREETING,	/* waiting for the greeting */
	CLIENT_STATE_HELO,	/* EHLO/HELO/LHLO/STARTTLS exchange */
	CLIENT_STATE_TLS,	/* TLS handshake */
	CLIENT_STATE_READY,	/* idle, between transactions */
	CLIENT_STATE_TX,	/* a transaction in progress */
	CLIENT_STATE_QUIT,	/* QUIT sent */
	CLIENT_STATE_CLOSED,	/* ended by smtp_client_quit */
	CLIENT_STATE_FAILED,	/* ended by a failure */
	CLIENT_STATE_COUNT
};

static const char *const client_state_names[CLIENT_STATE_COUNT] = {
	[CLIENT_STATE_GREETING] = "GREETING",
	[CLIENT_STATE_HELO] = "HELO",
	[CLIENT_STATE_TLS] = "TLS",
	[CLIENT_STATE_READY] = "READY",
	[CLIENT_STATE_TX] = "TX",
	[CLIENT_STATE_QUIT] = "QUIT",
	[CLIENT_STATE_CLOSED] = "CLOSED",
	[CLIENT_STATE_FAILED] = "FAILED",
};

/* What the send side of a transaction does next. */
enum send_phase {
	SEND_RSET,
	SEND_MAIL,
	SEND_RCPT,
	SEND_DATA,
	SEND_WAIT_354,		/* DATA sent, content waits for 354 */
	SEND_CONTENT,		/* pumping the content */
	SEND_DONE,		/* nothing more to send */
};

/* What a deferred (loop-driven) event has to report. */
enum local_event {
	LOCAL_NONE,
	LOCAL_TX_FAIL,		/* tx refused before sending: tx_done */
	LOCAL_CLOSED,		/* abortive quit: closed */
};

static const char *const status_names[SMTP_CLIENT_STATUS_COUNT] = {
	[SMTP_CLIENT_OK] = "ok",
	[SMTP_CLIENT_TEMPFAIL] = "tempfail",
	[SMTP_CLIENT_PERMFAIL] = "permfail",
	[SMTP_CLIENT_CONNFAIL] = "connfail",
};

static const char *const step_names[SMTP_CLIENT_STEP_COUNT] = {
	[SMTP_CLIENT_STEP_GREETING] = "greeting",
	[SMTP_CLIENT_STEP_EHLO] = "EHLO",
	[SMTP_CLIENT_STEP_HELO] = "HELO",
	[SMTP_CLIENT_STEP_LHLO] = "LHLO",
	[SMTP_CLIENT_STEP_STARTTLS] = "STARTTLS",
	[SMTP_CLIENT_STEP_TLS] = "TLS handshake",
	[SMTP_CLIENT_STEP_IDLE] = "idle",
	[SMTP_CLIENT_STEP_RSET] = "RSET",
	[SMTP_CLIENT_STEP_MAIL] = "MAIL FROM",
	[SMTP_CLIENT_STEP_RCPT] = "RCPT TO",
	[SMTP_CLIENT_STEP_DATA] = "DATA",
	[SMTP_CLIENT_STEP_CONTENT] = "message content",
	[SMTP_CLIENT_STEP_DATA_END] = "end of data",
	[SMTP_CLIENT_STEP_QUIT] = "QUIT",
};

/* A command waiting for its reply. */
struct pending {
	enum smtp_client_step	 step;
	int			 index;		/* recipient, or -1 */
	bool			 is_ignored;	/* swallow the reply */
};

/* A reply kept for later (the failure of a transaction as a whole). */
struct saved_reply {
	enum smtp_client_status	 status;
	enum smtp_client_step	 step;
	int			 code;
	char			 enhanced[16];
	struct buf		 text;
};

struct client_tx {
	char		*sender;
	char		**rcpts;
	int		 rcpt_count;
	int		 fd;		/* borrowed */
	off_t		 offset;
	off_t		 length;
	off_t		 pos;		/* content bytes read so far */
	bool		 is_8bit;
	bool		 needs_smtputf8;
	enum send_phase	 phase;
	int		 next_rcpt;	/* next RCPT to send */
	int		*accepted;	/* recipients accepted, in order */
	int		 accepted_count;
	bool		 is_failed;	/* c->fail says why */
	bool		 is_bol;	/* content: at the start of a line */
	char		 tail[2];	/* content: last two bytes sent */
	char		*chunk;		/* content: pread buffer */
};

struct smtp_client {
	struct event_base	*base;
	struct bufferevent	*bev;
	struct event		*timer;
	struct event		*local_ev;
	SSL_CTX			*tls_ctx;
	char			*helo_name;
	char			*server_name;
	bool			 is_lmtp;
	struct smtp_client_timeouts to;
	struct smtp_client_cb	 cb;
	void			*arg;

	enum client_state	 state;
	int			 busy;		/* nested entry points */
	bool			 is_dead;	/* freed by the caller */
	enum local_event	 local;

	unsigned		 ext;
	unsigned long long	 size_max;
	bool			 is_esmtp;
	bool			 has_tried_tls;
	bool			 is_tls;
	bool			 is_verified;
	char			 tls_info[128];
	bool			 need_rset;

	enum smtp_client_step	 timer_step;
	long			 timer_ms;

	struct pending		*pend;
	size_t			 pend_head;
	size_t			 pend_len;	/* one past the last */
	size_t			 pend_size;

	/* The reply being read. */
	bool			 in_reply;
	int			 rcode;
	char			 renhanced[16];
	struct buf		 rtext;		/* "250 text text", one line */
	struct buf		 rlines;	/* texts, '\n' after each */

	struct client_tx	 tx;
	struct saved_reply	 fail;		/* tx failure as a whole */
	struct buf		 note;		/* text of a local failure */
	struct buf		 line;		/* command being formatted */
};

static void	advance_send(struct smtp_client *);
static void	fill_content(struct smtp_client *);
static void	event_cb(struct bufferevent *, short, void *);
static void	read_cb(struct bufferevent *, void *);
static void	write_cb(struct bufferevent *, void *);

const char *
smtp_client_status_name(enum smtp_client_status s)
{
	if ((unsigned)s >= SMTP_CLIENT_STATUS_COUNT)
		return "?";
	return status_names[s];
}

const char *
smtp_client_step_name(enum smtp_client_step s)
{
	if ((unsigned)s >= SMTP_CLIENT_STEP_COUNT)
		return "?";
	return step_names[s];
}

/* The step as an object in a sentence: "the reply to the end of data". */
static const char *
step_object(enum smtp_client_step s)
{
	switch (s) {
	case SMTP_CLIENT_STEP_GREETING:
		return "the greeting";
	case SMTP_CLIENT_STEP_CONTENT:
		return "the message content";
	case SMTP_CLIENT_STEP_DATA_END:
		return "the end of data";
	case SMTP_CLIENT_STEP_TLS:
		return "the TLS handshake";
	default:
		return smtp_client_step_name(s);
	}
}

static const char *
peer_name(const struct smtp_client *c)
{
	return c->server_name ? c->server_name : "peer";
}

/* "300s", or "250ms" for the short timeouts of tests. */
static const char *
format_ms(long ms, char *out, size_t size)
{
	if (ms % 1000 == 0)
		snprintf(out, size, "%lds", ms / 1000);
	else
		snprintf(out, size, "%ldms", ms);
	return out;
}

static long
step_timeout(const struct smtp_client *c, enum smtp_client_step s)
{
	switch (s) {
	case SMTP_CLIENT_STEP_GREETING:
		return c->to.greeting_ms;
	case SMTP_CLIENT_STEP_EHLO:
	case SMTP_CLIENT_STEP_HELO:
	case SMTP_CLIENT_STEP_LHLO:
	case SMTP_CLIENT_STEP_STARTTLS:
	case SMTP_CLIENT_STEP_TLS:
		return c->to.helo_ms;
	case SMTP_CLIENT_STEP_RSET:
	case SMTP_CLIENT_STEP_MAIL:
		return c->to.mail_ms;
	case SMTP_CLIENT_STEP_RCPT:
		return c->to.rcpt_ms;
	case SMTP_CLIENT_STEP_DATA:
		return c->to.data_ms;
	case SMTP_CLIENT_STEP_CONTENT:
		return c->to.block_ms;
	case SMTP_CLIENT_STEP_DATA_END:
		return c->to.data_end_ms;
	case SMTP_CLIENT_STEP_QUIT:
	default:
		return c->to.quit_ms;
	}
}

static void
arm_timer(struct smtp_client *c, enum smtp_client_step s)
{
	struct timeval tv;
	long ms = step_timeout(c, s);

	c->timer_step = s;
	c->timer_ms = ms;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

static bool
alive(const struct smtp_client *c)
{
	return !c->is_dead && c->state != CLIENT_STATE_FAILED &&
	    c->state != CLIENT_STATE_CLOSED;
}

/* ---- lifetime ---------------------------------------------------------- */

static void
tx_clear(struct client_tx *tx)
{
	int i;

	free(tx->sender);
	for (i = 0; i < tx->rcpt_count; i++)
		free(tx->rcpts[i]);
	free(tx->rcpts);
	free(tx->accepted);
	free(tx->chunk);
	memset(tx, 0, sizeof(*tx));
	tx->fd = -1;
}

/* Closes the connection; the client object stays. */
static void
close_conn(struct smtp_client *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->timer)
		evtimer_del(c->timer);
	c->pend_head = c->pend_len = 0;
}

static void
destroy(struct smtp_client *c)
{
	close_conn(c);
	if (c->timer)
		event_free(c->timer);
	if (c->local_ev)
		event_free(c->local_ev);
	if (c->tls_ctx)
		SSL_CTX_free(c->tls_ctx);
	tx_clear(&c->tx);
	free(c->helo_name);
	free(c->server_name);
	free(c->pend);
	buf_clear(&c->rtext);
	buf_clear(&c->rlines);
	buf_clear(&c->fail.text);
	buf_clear(&c->note);
	buf_clear(&c->line);
	free(c);
}

static void
enter(struct smtp_client *c)
{
	c->busy++;
}

/* Ends an entry point; c may be gone afterwards. */
static void
leave(struct smtp_client *c)
{
	if (--c->busy == 0 && c->is_dead)
		destroy(c);
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->busy > 0) {
		/* Inside our own callback chain: leave() reaps it. */
		c->is_dead = true;
		close_conn(c);
		event_del(c->local_ev);
		return;
	}
	destroy(c);
}

/* ---- callbacks into the caller ----------------------------------------- */

static void
notify_failed(struct smtp_client *c, enum smtp_client_status status,
    enum smtp_client_step step, int code, const char *enhanced,
    const char *text)
{
	struct smtp_client_reply r;
	bool is_quit = c->state == CLIENT_STATE_QUIT;

	if (!alive(c))
		return;
	close_conn(c);
	if (is_quit) {
		/* After QUIT, any end is a clean end. */
		c->state = CLIENT_STATE_CLOSED;
		if (c->cb.closed)
			c->cb.closed(c, c->arg);
		return;
	}
	c->state = CLIENT_STATE_FAILED;
	memset(&r, 0, sizeof(r));
	r.status = status;
	r.step = step;
	r.code = code;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enhanced ? enhanced : "");
	r.text = text;
	log_debug("smtp_client %s: failed (%s): %s", peer_name(c),
	    smtp_client_status_name(status), text);
	if (c->cb.failed)
		c->cb.failed(c, c->arg, &r);
}

/* A session failure with a sentence of ours (no reply). */
static void
fail_conn(struct smtp_client *c, enum smtp_client_step step,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
fail_conn(struct smtp_client *c, enum smtp_client_step step,
    const char *fmt, ...)
{
	va_list ap;

	buf_reset(&c->note);
	va_start(ap, fmt);
	buf_vprintf(&c->note, fmt, ap);
	va_end(ap);
	notify_failed(c, SMTP_CLIENT_CONNFAIL, step, 0, NULL, c->note.data);
}

/* The reply just read, as the caller sees it. */
static void
current_reply(const struct smtp_client *c, enum smtp_client_step step,
    enum smtp_client_status status, struct smtp_client_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->status = status;
	r->step = step;
	r->code = c->rcode;
	memcpy(r->enhanced, c->renhanced, sizeof(r->enhanced));
	r->text = c->rtext.data;
}

/* A session failure caused by the reply just read. */
static void
fail_reply(struct smtp_client *c, enum smtp_client_status status,
    enum smtp_client_step step)
{
	notify_failed(c, status, step, c->rcode, c->renhanced, c->rtext.data);
}

static void
save_fail(struct smtp_client *c, enum smtp_client_status status,
    enum smtp_client_step step, int code, const char *enhanced,
    const char *text)
{
	c->tx.is_failed = true;
	c->fail.status = status;
	c->fail.step = step;
	c->fail.code = code;
	snprintf(c->fail.enhanced, sizeof(c->fail.enhanced), "%s", enhanced);
	buf_reset(&c->fail.text);
	buf_puts(&c->fail.text, text);
}

/*
 * The transaction is over: the client becomes idle before tx_done is
 * called, so that the callback may start the next one. The failure text
 * moves to c->note, which smtp_client_send does not touch.
 */
static void
finish_tx(struct smtp_client *c)
{
	struct smtp_client_reply r;
	bool is_failed = c->tx.is_failed;

	tx_clear(&c->tx);
	c->state = CLIENT_STATE_READY;
	if (is_failed) {
		memset(&r, 0, sizeof(r));
		r.status = c->fail.status;
		r.step = c->fail.step;
		r.code = c->fail.code;
		memcpy(r.enhanced, c->fail.enhanced, sizeof(r.enhanced));
		buf_reset(&c->note);
		buf_puts(&c->note, c->fail.text.data ? c->fail.text.data : "");
		r.text = c->note.data;
	}
	if (c->cb.tx_done)
		c->cb.tx_done(c, c->arg, is_failed ? &r : NULL);
}

static void
maybe_finish_tx(struct smtp_client *c)
{
	if (alive(c) && c->state == CLIENT_STATE_TX &&
	    c->pend_head == c->pend_len && c->tx.phase == SEND_DONE)
		finish_tx(c);
}

static void
become_ready(struct smtp_client *c)
{
	c->state = CLIENT_STATE_READY;
	if (c->cb.ready)
		c->cb.ready(c, c->arg);
}

/* ---- sending ----------------------------------------------------------- */

static void
pend_push(struct smtp_client *c, enum smtp_client_step step, int index,
    bool is_ignored)
{
	bool was_empty = c->pend_head == c->pend_len;

	if (was_empty)
		c->pend_head = c->pend_len = 0;
	if (c->pend_len == c->pend_size) {
		c->pend_size = c->pend_size ? c->pend_size * 2 : 16;
		c->pend = xreallocarray(c->pend, c->pend_size,
		    sizeof(*c->pend));
	}
	c->pend[c->pend_len].step = step;
	c->pend[c->pend_len].index = index;
	c->pend[c->pend_len].is_ignored = is_ignored;
	c->pend_len++;
	if (was_empty)
		arm_timer(c, step);
}

/* Pops the oldest pending command; the timer follows the next one. */
static struct pending
pend_pop(struct smtp_client *c)
{
	struct pending p = c->pend[c->pend_head++];

	if (c->pend_head == c->pend_len) {
		c->pend_head = c->pend_len = 0;
		evtimer_del(c->timer);
	} else
		arm_timer(c, c->pend[c->pend_head].step);
	return p;
}

/* Writes one command line and records that a reply is due. */
static void
send_cmd(struct smtp_client *c, enum smtp_client_step step, int index,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
send_cmd(struct smtp_client *c, enum smtp_client_step step, int index,
    const char *fmt, ...)
{
	va_list ap;

	buf_reset(&c->line);
	va_start(ap, fmt);
	buf_vprintf(&c->line, fmt, ap);
	va_end(ap);
	log_debug("smtp_client %s: > %s", peer_name(c), c->line.data);
	buf_append(&c->line, "\r\n", 2);
	bufferevent_write(c->bev, c->line.data, c->line.len);
	pend_push(c, step, index, false);
}

static void
send_helo(struct smtp_client *c)
{
	c->state = CLIENT_STATE_HELO;
	if (c->is_lmtp)
		send_cmd(c, SMTP_CLIENT_STEP_LHLO, -1, "LHLO %s", c->helo_name);
	else
		send_cmd(c, SMTP_CLIENT_STEP_EHLO, -1, "EHLO %s", c->helo_name);
}

static void
send_mail(struct smtp_client *c)
{
	struct client_tx *tx = &c->tx;
	struct buf params;

	buf_init(&params);
	if (c->ext & SMTP_CLIENT_EXT_SIZE)
		buf_printf(&params, " SIZE=%lld", (long long)tx->length);
	if (tx->is_8bit && (c->ext & SMTP_CLIENT_EXT_8BITMIME))
		buf_puts(&params, " BODY=8BITMIME");
	if (tx->needs_smtputf8)
		buf_puts(&params, " SMTPUTF8");
	send_cmd(c, SMTP_CLIENT_STEP_MAIL, -1, "MAIL FROM:<%s>%s", tx->sender,
	    params.data ? params.data : "");
	buf_clear(&params);
}

/*
 * The send side of a transaction: sends whatever may go out now. With
 * PIPELINING everything up to DATA goes in one write (RFC 2920 §3.1:
 * DATA is the last command of the group); without it, the next command
 * waits until the pending queue is empty.
 */
static void
advance_send(struct smtp_client *c)
{
	struct client_tx *tx = &c->tx;
	bool is_pipelining = (c->ext & SMTP_CLIENT_EXT_PIPELINING) != 0;

	while (alive(c) && c->state == CLIENT_STATE_TX) {
		if (!is_pipelining && c->pend_head != c->pend_len)
			return;
		switch (tx->phase) {
		case SEND_RSET:
			if (c->need_rset)
				send_cmd(c, SMTP_CLIENT_STEP_RSET, -1, "RSET");
			tx->phase = SEND_MAIL;
			break;
		case SEND_MAIL:
			send_mail(c);
			c->need_rset = true;
			tx->phase = SEND_RCPT;
			break;
		case SEND_RCPT:
			if (tx->is_failed) {
				tx->phase = SEND_DONE;
				break;
			}
			if (tx->next_rcpt < tx->rcpt_count) {
				send_cmd(c, SMTP_CLIENT_STEP_RCPT, tx->next_rcpt,
				    "RCPT TO:<%s>", tx->rcpts[tx->next_rcpt]);
				tx->next_rcpt++;
			} else
				tx->phase = SEND_DATA;
			break;
		case SEND_DATA:
			if (!is_pipelining && tx->accepted_count == 0) {
				/* All refused: no DATA; RSET comes next time. */
				tx->phase = SEND_DONE;
				break;
			}
			send_cmd(c, SMTP_CLIENT_STEP_DATA, -1, "DATA");
			tx->phase = SEND_WAIT_354;
			break;
		case SEND_WAIT_354:
		case SEND_CONTENT:
		case SEND_DONE:
			return;
		}
	}
}

/* Appends content bytes, doubling a dot at the start of a line. */
static void
stuff_content(struct client_tx *tx, struct evbuffer *out, const char *data,
    size_t len)
{
	const char *p = data, *end = data + len, *nl;
	size_t seg;

	while (p < end) {
		if (tx->is_bol && *p == '.')
			evbuffer_add(out, ".", 1);
		nl = memchr(p, '\n', (size_t)(end - p));
		seg = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		evbuffer_add(out, p, seg);
		tx->is_bol = nl != NULL;
		p += seg;
	}
	if (len >= 2) {
		tx->tail[0] = data[len - 2];
		tx->tail[1] = data[len - 1];
	} else if (len == 1) {
		tx->tail[0] = tx->tail[1];
		tx->tail[1] = data[0];
	}
}

/* Sends the final "." (with a CRLF first when the content lacks one) and
 * expects the end-of-data replies: one, or one per accepted recipient. */
static void
end_content(struct smtp_client *c)
{
	struct client_tx *tx = &c->tx;
	const char *term;
	int i;

	if (tx->length == 0 || (tx->tail[0] == '\r' && tx->tail[1] == '\n'))
		term = ".\r\n";
	else if (tx->tail[1] == '\r')
		term = "\n.\r\n";
	else
		term = "\r\n.\r\n";
	bufferevent_write(c->bev, term, strlen(term));
	log_debug("smtp_client %s: > (%lld bytes of content) .", peer_name(c),
	    (long long)tx->length);
	free(tx->chunk);
	tx->chunk = NULL;
	tx->phase = SEND_DONE;
	evtimer_del(c->timer);
	if (!c->is_lmtp) {
		pend_push(c, SMTP_CLIENT_STEP_DATA_END, -1, false);
		return;
	}
	for (i = 0; i < tx->accepted_count; i++)
		pend_push(c, SMTP_CLIENT_STEP_DATA_END, tx->accepted[i], false);
}

/* Tops the output up to OUT_HIGH from the spool file. */
static void
fill_content(struct smtp_client *c)
{
	struct client_tx *tx = &c->tx;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t want;
	ssize_t n;

	while (evbuffer_get_length(out) < OUT_HIGH && tx->pos < tx->length) {
		want = CHUNK_SIZE;
		if ((off_t)want > tx->length - tx->pos)
			want = (size_t)(tx->length - tx->pos);
		n = pread(tx->fd, tx->chunk, want, tx->offset + tx->pos);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fail_conn(c, SMTP_CLIENT_STEP_CONTENT,
			    "cannot read the message at byte %lld: %s",
			    (long long)tx->pos, strerror(errno));
			return;
		}
		if (n == 0) {
			fail_conn(c, SMTP_CLIENT_STEP_CONTENT,
			    "the message file ends at byte %lld of %lld",
			    (long long)tx->pos, (long long)tx->length);
			return;
		}
		stuff_content(tx, out, tx->chunk, (size_t)n);
		tx->pos += n;
	}
	if (tx->pos == tx->length)
		end_content(c);
	else
		arm_timer(c, SMTP_CLIENT_STEP_CONTENT);	/* progress */
}

static void
start_content(struct smtp_client *c)
{
	struct client_tx *tx = &c->tx;

	tx->phase = SEND_CONTENT;
	tx->pos = 0;
	tx->is_bol = true;
	tx->tail[0] = tx->tail[1] = '\0';
	tx->chunk = xmalloc(CHUNK_SIZE);
	fill_content(c);
}

/* ---- STARTTLS ---------------------------------------------------------- */

static bool
is_ip_literal(const char *name)
{
	unsigned char addr[16];

	return name[0] == '[' || inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1;
}

/*
 * The OpenSSL error libevent queued for bev, as text, or NULL. libevent
 * hands them back newest first, mixed with SSL_get_error() codes (library
 * 0), which say nothing: keep the newest real one.
 */
static const char *
tls_error(struct bufferevent *bev, char *out, size_t size)
{
	unsigned long e, found = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (found == 0 && ERR_GET_LIB(e) != 0)
			found = e;
	if (found == 0)
		return NULL;
	ERR_error_string_n(found, out, size);
	return out;
}

/* After the 220 to STARTTLS: the same connection gets a TLS filter. */
static void
start_tls(struct smtp_client *c)
{
	struct bufferevent *tbev;
	SSL *ssl;

	/* Plaintext after the 220 would be read as if it came over TLS
	 * (the STARTTLS injection of CVE-2011-0411). */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		fail_conn(c, SMTP_CLIENT_STEP_STARTTLS,
		    "peer sent data after its 220 reply to STARTTLS");
		return;
	}
	if ((ssl = SSL_new(c->tls_ctx)) == NULL) {
		ERR_clear_error();
		fail_conn(c, SMTP_CLIENT_STEP_TLS, "TLS: SSL_new failed");
		return;
	}
	/* Opportunistic: verify only to record the result. */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (c->server_name && !is_ip_literal(c->server_name)) {
		(void)SSL_set_tlsext_host_name(ssl, c->server_name);
		(void)SSL_set1_host(ssl, c->server_name);
	}
	tbev = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL) {
		/* libevent freed ssl and the underlying bufferevent. */
		c->bev = NULL;
		fail_conn(c, SMTP_CLIENT_STEP_TLS,
		    "TLS: cannot create the TLS filter");
		return;
	}
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, TLS_OUT_HIGH);
	c->bev = tbev;
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	bufferevent_setcb(tbev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(tbev, EV_WRITE, OUT_LOW, 0);
	bufferevent_enable(tbev, EV_READ | EV_WRITE);
	c->state = CLIENT_STATE_TLS;
	arm_timer(c, SMTP_CLIENT_STEP_TLS);
}

static void
tls_established(struct smtp_client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	evtimer_del(c->timer);
	c->is_tls = true;
	snprintf(c->tls_info, sizeof(c->tls_info), "%s %s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	c->is_verified = SSL_get0_peer_certificate(ssl) != NULL &&
	    SSL_get_verify_result(ssl) == X509_V_OK;
	log_debug("smtp_client %s: TLS established: %s (%sverified)",
	    peer_name(c), c->tls_info, c->is_verified ? "" : "not ");
	/* RFC 3207 §4.2: forget what the peer said before TLS. */
	c->ext = 0;
	c->size_max = 0;
	send_helo(c);
}

/* ---- replies ----------------------------------------------------------- */

static bool
is_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/*
 * Length of an RFC 3463 enhanced status code of class cls at the start of
 * s[0..len), followed by a space or the end, or 0.
 */
static size_t
enhanced_len(const char *s, size_t len, char cls)
{
	size_t i = 2, n;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		for (n = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			n++;
		if (n < 1 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

/* Appends text, control characters (a peer's) replaced by '?'. */
static void
append_clean(struct buf *b, const char *s, size_t len)
{
	size_t start = b->len;

	buf_append(b, s, len);
	for (size_t i = start; i < b->len; i++)
		if ((unsigned char)b->data[i] < 0x20 ||
		    (unsigned char)b->data[i] == 0x7f)
			b->data[i] = '?';
}

/*
 * Takes one reply line (without its line end). Returns 1 when it ends a
 * reply, 0 when a continuation line follows, -1 when malformed (c->note
 * says why).
 */
static int
take_line(struct smtp_client *c, const char *p, size_t len)
{
	const char *text;
	size_t tlen, elen;
	int code;
	char sep;

	if (len < 3 || !is_digits(p, 3) || p[0] < '2' || p[0] > '5' ||
	    (len > 3 && p[3] != ' ' && p[3] != '-')) {
		buf_reset(&c->note);
		buf_puts(&c->note, "malformed reply from peer: \"");
		append_clean(&c->note, p, len > 80 ? 80 : len);
		buf_puts(&c->note, "\"");
		return -1;
	}
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	sep = len > 3 ? p[3] : ' ';
	text = len > 4 ? p + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	if (c->in_reply && code != c->rcode) {
		buf_reset(&c->note);
		buf_printf(&c->note, "malformed reply from peer: code %d "
		    "inside a multi-line reply of code %d", code, c->rcode);
		return -1;
	}
	elen = enhanced_len(text, tlen, p[0]);
	if (!c->in_reply) {
		c->rcode = code;
		c->renhanced[0] = '\0';
		if (elen > 0)
			snprintf(c->renhanced, sizeof(c->renhanced), "%.*s",
			    (int)elen, text);
		buf_reset(&c->rtext);
		buf_reset(&c->rlines);
		buf_printf(&c->rtext, "%d", code);
	} else if (elen > 0 && strlen(c->renhanced) == elen &&
	    memcmp(text, c->renhanced, elen) == 0) {
		/* Do not repeat the enhanced code of every line. */
		text += elen;
		tlen -= elen;
		while (tlen > 0 && *text == ' ') {
			text++;
			tlen--;
		}
	}
	if (c->rtext.len + c->rlines.len + tlen + 2 > REPLY_MAX) {
		buf_reset(&c->note);
		buf_printf(&c->note, "reply from peer longer than %d bytes",
		    REPLY_MAX);
		return -1;
	}
	if (tlen > 0) {
		buf_putc(&c->rtext, ' ');
		append_clean(&c->rtext, text, tlen);
	}
	append_clean(&c->rlines, text, tlen);
	buf_putc(&c->rlines, '\n');
	c->in_reply = sep == '-';
	return c->in_reply ? 0 : 1;
}

/*
 * Reads from in until a whole reply is complete. Returns 1 when it is
 * (in c->rcode, c->rtext...), 0 when more input is needed, -1 on a
 * protocol error (c->note says why).
 */
static int
read_reply(struct smtp_client *c, struct evbuffer *in)
{
	struct evbuffer_ptr ptr;
	size_t eol_len, len;
	const char *line;
	int r;

	for (;;) {
		eol_len = 0;
		ptr = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_CRLF);
		if (ptr.pos < 0) {
			if (evbuffer_get_length(in) <= REPLY_LINE_MAX)
				return 0;
			len = REPLY_LINE_MAX + 1;
		} else
			len = (size_t)ptr.pos;
		if (len > REPLY_LINE_MAX) {
			buf_reset(&c->note);
			buf_printf(&c->note, "reply line from peer longer "
			    "than %d bytes", REPLY_LINE_MAX);
			return -1;
		}
		line = (const char *)evbuffer_pullup(in,
		    (ev_ssize_t)(len + eol_len));
		r = take_line(c, line, len);
		evbuffer_drain(in, len + eol_len);
		if (r != 0)
			return r;
	}
}

/* What a reply code means for the command it answers; COUNT: the reply
 * makes no sense there (a protocol error). */
static enum smtp_client_status
reply_status(int code, enum smtp_client_step step)
{
	int cls = code / 100;

	if (cls == 4)
		return SMTP_CLIENT_TEMPFAIL;
	if (cls == 5)
		return SMTP_CLIENT_PERMFAIL;
	switch (step) {
	case SMTP_CLIENT_STEP_GREETING:
	case SMTP_CLIENT_STEP_STARTTLS:
		return code == 220 ? SMTP_CLIENT_OK : SMTP_CLIENT_STATUS_COUNT;
	case SMTP_CLIENT_STEP_DATA:
		return code == 354 ? SMTP_CLIENT_OK : SMTP_CLIENT_STATUS_COUNT;
	case SMTP_CLIENT_STEP_QUIT:
		return SMTP_CLIENT_OK;
	default:
		return cls == 2 ? SMTP_CLIENT_OK : SMTP_CLIENT_STATUS_COUNT;
	}
}

static bool
is_keyword(const char *line, size_t klen, const char *k)
{
	return klen == strlen(k) && strncasecmp(line, k, klen) == 0;
}

/* Records the EHLO/LHLO keywords (the lines after the first). */
static void
parse_ehlo(struct smtp_client *c)
{
	static const struct {
		const char	*keyword;
		unsigned	 bit;
	} keywords[] = {
		{ "PIPELINING", SMTP_CLIENT_EXT_PIPELINING },
		{ "SIZE", SMTP_CLIENT_EXT_SIZE },
		{ "8BITMIME", SMTP_CLIENT_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_CLIENT_EXT_SMTPUTF8 },
		{ "STARTTLS", SMTP_CLIENT_EXT_STARTTLS },
		{ "CHUNKING", SMTP_CLIENT_EXT_CHUNKING },
		{ "ENHANCEDSTATUSCODES", SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES },
	};
	char *line, *next, *arg;
	size_t klen, i;

	c->ext = 0;
	c->size_max = 0;
	line = strchr(c->rlines.data, '\n');
	for (line = line ? line + 1 : NULL; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		klen = strcspn(line, " ");
		arg = line + klen;
		while (*arg == ' ')
			arg++;
		for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
			if (is_keyword(line, klen, keywords[i].keyword))
				c->ext |= keywords[i].bit;
		/* "SIZE" alone or "SIZE 0": no fixed limit (RFC 1870). */
		if (is_keyword(line, klen, "SIZE") && arg[0] >= '0' &&
		    arg[0] <= '9' && strlen(arg) <= 19)
			c->size_max = strtoull(arg, NULL, 10);
	}
}

/* EHLO/HELO/LHLO accepted: STARTTLS when possible, else ready. */
static void
after_helo(struct smtp_client *c)
{
	if (c->tls_ctx && !c->is_tls && !c->has_tried_tls &&
	    (c->ext & SMTP_CLIENT_EXT_STARTTLS)) {
		c->has_tried_tls = true;
		send_cmd(c, SMTP_CLIENT_STEP_STARTTLS, -1, "STARTTLS");
		return;
	}
	become_ready(c);
}

static void
on_session_reply(struct smtp_client *c, struct pending p,
    enum smtp_client_status st)
{
	switch (p.step) {
	case SMTP_CLIENT_STEP_GREETING:
		if (st != SMTP_CLIENT_OK)
			break;
		send_helo(c);
		return;
	case SMTP_CLIENT_STEP_EHLO:
		if (st == SMTP_CLIENT_PERMFAIL) {
			/* RFC 5321 §3.2: fall back to HELO. */
			send_cmd(c, SMTP_CLIENT_STEP_HELO, -1, "HELO %s",
			    c->helo_name);
			return;
		}
		/* FALLTHROUGH */
	case SMTP_CLIENT_STEP_LHLO:
		if (st != SMTP_CLIENT_OK)
			break;
		c->is_esmtp = true;
		parse_ehlo(c);
		after_helo(c);
		return;
	case SMTP_CLIENT_STEP_HELO:
		if (st != SMTP_CLIENT_OK)
			break;
		c->is_esmtp = false;
		c->ext = 0;
		c->size_max = 0;
		after_helo(c);
		return;
	case SMTP_CLIENT_STEP_STARTTLS:
		if (st == SMTP_CLIENT_OK)
			start_tls(c);
		else
			become_ready(c);	/* refused: stay in plaintext */
		return;
	default:
		break;
	}
	fail_reply(c, st, p.step);
}

static void
on_data_reply(struct smtp_client *c, enum smtp_client_status st)
{
	struct client_tx *tx = &c->tx;

	if (tx->is_failed || tx->accepted_count == 0) {
		/* Pipelined DATA after a refused MAIL or with every RCPT
		 * refused: a broken server may still say 354; end an empty
		 * content at once and swallow its reply. */
		if (st == SMTP_CLIENT_OK) {
			log_debug("smtp_client %s: > . (no recipient)",
			    peer_name(c));
			bufferevent_write(c->bev, ".\r\n", 3);
			pend_push(c, SMTP_CLIENT_STEP_DATA_END, -1, true);
		}
		tx->phase = SEND_DONE;
		return;
	}
	if (st == SMTP_CLIENT_OK) {
		start_content(c);
		return;
	}
	save_fail(c, st, SMTP_CLIENT_STEP_DATA, c->rcode, c->renhanced,
	    c->rtext.data);
	tx->phase = SEND_DONE;
}

static void
on_tx_reply(struct smtp_client *c, struct pending p,
    enum smtp_client_status st)
{
	struct client_tx *tx = &c->tx;
	struct smtp_client_reply r;

	switch (p.step) {
	case SMTP_CLIENT_STEP_RSET:
		if (st != SMTP_CLIENT_OK) {
			/* Not the message's fault: temporary. */
			notify_failed(c, SMTP_CLIENT_CONNFAIL, p.step,
			    c->rcode, c->renhanced, c->rtext.data);
			return;
		}
		c->need_rset = false;
		break;
	case SMTP_CLIENT_STEP_MAIL:
		if (st != SMTP_CLIENT_OK)
			save_fail(c, st, p.step, c->rcode, c->renhanced,
			    c->rtext.data);
		break;
	case SMTP_CLIENT_STEP_RCPT:
		if (tx->is_failed)
			break;		/* after a refused MAIL: meaningless */
		if (st == SMTP_CLIENT_OK)
			tx->accepted[tx->accepted_count++] = p.index;
		current_reply(c, p.step, st, &r);
		if (c->cb.rcpt)
			c->cb.rcpt(c, c->arg, p.index, &r);
		break;
	case SMTP_CLIENT_STEP_DATA:
		on_data_reply(c, st);
		break;
	case SMTP_CLIENT_STEP_DATA_END:
		if (p.is_ignored)
			break;
		/* The end-of-data reply ends the server's transaction. */
		if (c->pend_head == c->pend_len)
			c->need_rset = false;
		current_reply(c, p.step, st, &r);
		if (c->cb.data_done)
			c->cb.data_done(c, c->arg, p.index, &r);
		break;
	default:
		fail_conn(c, p.step, "internal error: reply to %s in a "
		    "transaction", smtp_client_step_name(p.step));
		return;
	}
	if (!alive(c))
		return;
	advance_send(c);
	maybe_finish_tx(c);
}

/* A reply with no command waiting for it. */
static void
on_unsolicited(struct smtp_client *c)
{
	enum smtp_client_step step = SMTP_CLIENT_STEP_IDLE;

	if (c->state == CLIENT_STATE_TX && c->tx.phase == SEND_CONTENT)
		step = SMTP_CLIENT_STEP_CONTENT;
	if (c->rcode == 421) {
		fail_reply(c, SMTP_CLIENT_TEMPFAIL, step);
		return;
	}
	buf_reset(&c->note);
	buf_printf(&c->note, "unexpected reply from peer %s %s: %s",
	    step == SMTP_CLIENT_STEP_IDLE ? "while" : "while sending",
	    step_object(step), c->rtext.data);
	notify_failed(c, SMTP_CLIENT_CONNFAIL, step, c->rcode, c->renhanced,
	    c->note.data);
}

static void
handle_reply(struct smtp_client *c)
{
	enum smtp_client_status st;
	struct pending p;

	log_debug("smtp_client %s: < %s", peer_name(c), c->rtext.data);
	if (c->pend_head == c->pend_len) {
		on_unsolicited(c);
		return;
	}
	p = pend_pop(c);
	st = reply_status(c->rcode, p.step);
	if (p.step == SMTP_CLIENT_STEP_QUIT) {
		close_conn(c);
		c->state = CLIENT_STATE_CLOSED;
		if (c->cb.closed)
			c->cb.closed(c, c->arg);
		return;
	}
	if (c->rcode == 421) {
		/* RFC 5321 §3.8: the server is closing the session. */
		fail_reply(c, SMTP_CLIENT_TEMPFAIL, p.step);
		return;
	}
	if (st == SMTP_CLIENT_STATUS_COUNT) {
		buf_reset(&c->note);
		buf_printf(&c->note, "unexpected reply from peer to %s: %s",
		    step_object(p.step), c->rtext.data);
		notify_failed(c, SMTP_CLIENT_CONNFAIL, p.step, c->rcode,
		    c->renhanced, c->note.data);
		return;
	}
	if (c->state == CLIENT_STATE_TX)
		on_tx_reply(c, p, st);
	else
		on_session_reply(c, p, st);
}

/* Handles every complete reply buffered. */
static void
process_input(struct smtp_client *c)
{
	int r;

	while (alive(c) && c->bev && c->state != CLIENT_STATE_TLS) {
		r = read_reply(c, bufferevent_get_input(c->bev));
		if (r == 0)
			return;
		if (r == -1) {
			c->in_reply = false;
			notify_failed(c, SMTP_CLIENT_CONNFAIL,
			    c->pend_head != c->pend_len ?
			    c->pend[c->pend_head].step : SMTP_CLIENT_STEP_IDLE,
			    0, NULL, c->note.data);
			return;
		}
		handle_reply(c);
	}
}

/* ---- libevent entry points --------------------------------------------- */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	enter(c);
	process_input(c);
	leave(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	enter(c);
	if (alive(c) && c->state == CLIENT_STATE_TX &&
	    c->tx.phase == SEND_CONTENT)
		fill_content(c);
	leave(c);
}

/* Where we were when the connection ended: "after RCPT TO". */
static void
describe_where(struct smtp_client *c, struct buf *b,
    enum smtp_client_step *step)
{
	if (c->pend_head != c->pend_len) {
		*step = c->pend[c->pend_head].step;
		if (*step == SMTP_CLIENT_STEP_GREETING)
			buf_puts(b, "before the greeting");
		else
			buf_printf(b, "after %s", step_object(*step));
	} else if (c->state == CLIENT_STATE_TX &&
	    c->tx.phase == SEND_CONTENT) {
		*step = SMTP_CLIENT_STEP_CONTENT;
		buf_puts(b, "while sending the message content");
	} else {
		*step = SMTP_CLIENT_STEP_IDLE;
		buf_puts(b, "while idle");
	}
}

static void
on_conn_event(struct smtp_client *c, short what)
{
	enum smtp_client_step step;
	char ssl_err[256];
	const char *tls_err;
	int saved = EVUTIL_SOCKET_ERROR();

	tls_err = c->is_tls || c->state == CLIENT_STATE_TLS ?
	    tls_error(c->bev, ssl_err, sizeof(ssl_err)) : NULL;
	buf_reset(&c->note);
	if (c->state == CLIENT_STATE_TLS) {
		step = SMTP_CLIENT_STEP_TLS;
		if (tls_err)
			buf_printf(&c->note, "TLS handshake failed: %s",
			    tls_err);
		else if (what & BEV_EVENT_EOF || saved == 0)
			buf_puts(&c->note, "connection closed by peer during "
			    "the TLS handshake");
		else
			buf_printf(&c->note, "TLS handshake failed: %s",
			    evutil_socket_error_to_string(saved));
	} else {
		if (tls_err)
			buf_puts(&c->note, "TLS error ");
		else if (what & BEV_EVENT_EOF || saved == 0)
			buf_puts(&c->note, "connection closed by peer ");
		else
			buf_puts(&c->note, "connection error ");
		describe_where(c, &c->note, &step);
		if (tls_err)
			buf_printf(&c->note, ": %s", tls_err);
		else if (!(what & BEV_EVENT_EOF) && saved != 0)
			buf_printf(&c->note, ": %s",
			    evutil_socket_error_to_string(saved));
	}
	notify_failed(c, SMTP_CLIENT_CONNFAIL, step, 0, NULL, c->note.data);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;

	enter(c);
	if (!alive(c))
		goto out;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CLIENT_STATE_TLS)
			tls_established(c);
		goto out;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* Replies that arrived with the close come first. */
		process_input(c);
		if (alive(c))
			on_conn_event(c, what);
	}
out:
	leave(c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	char t[32];

	enter(c);
	if (!alive(c))
		goto out;
	format_ms(c->timer_ms, t, sizeof(t));
	switch (c->timer_step) {
	case SMTP_CLIENT_STEP_GREETING:
		fail_conn(c, c->timer_step, "timeout waiting for the "
		    "greeting (%s)", t);
		break;
	case SMTP_CLIENT_STEP_CONTENT:
		fail_conn(c, c->timer_step, "timeout sending the message "
		    "content (%s)", t);
		break;
	case SMTP_CLIENT_STEP_TLS:
		fail_conn(c, c->timer_step, "timeout in the TLS handshake "
		    "(%s)", t);
		break;
	default:
		fail_conn(c, c->timer_step, "timeout waiting for the reply "
		    "to %s (%s)", step_object(c->timer_step), t);
		break;
	}
out:
	leave(c);
}

static void
local_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	enum local_event ev = c->local;

	enter(c);
	c->local = LOCAL_NONE;
	if (c->is_dead)
		goto out;
	if (ev == LOCAL_TX_FAIL && c->state == CLIENT_STATE_TX)
		finish_tx(c);
	else if (ev == LOCAL_CLOSED && c->cb.closed)
		c->cb.closed(c, c->arg);
out:
	leave(c);
}

static void
post_local(struct smtp_client *c, enum local_event ev)
{
	c->local = ev;
	event_active(c->local_ev, EV_TIMEOUT, 0);
}

/* ---- public API -------------------------------------------------------- */

static void
apply_default(long *v, long def)
{
	if (*v <= 0)
		*v = def;
}

struct smtp_client *
smtp_client_new(struct event_base *base, int fd,
    const struct smtp_client_params *p, const struct smtp_client_cb *cb,
    void *arg, struct err *e)
{
	struct smtp_client *c;

	if (p == NULL || p->helo_name == NULL || p->helo_name[0] == '\0' ||
	    strpbrk(p->helo_name, " \r\n") != NULL) {
		(void)close(fd);
		err_set(e, "smtp_client: a HELO name without spaces is "
		    "required");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->helo_name = xstrdup(p->helo_name);
	c->server_name = p->server_name && p->server_name[0] ?
	    xstrdup(p->server_name) : NULL;
	c->is_lmtp = p->is_lmtp;
	c->to = p->timeouts;
	apply_default(&c->to.greeting_ms, 300000);
	apply_default(&c->to.helo_ms, 300000);
	apply_default(&c->to.mail_ms, 300000);
	apply_default(&c->to.rcpt_ms, 300000);
	apply_default(&c->to.data_ms, 120000);
	apply_default(&c->to.block_ms, 180000);
	apply_default(&c->to.data_end_ms, 600000);
	apply_default(&c->to.quit_ms, 30000);
	if (cb)
		c->cb = *cb;
	c->arg = arg;
	c->tx.fd = -1;
	buf_init(&c->rtext);
	buf_init(&c->rlines);
	buf_init(&c->fail.text);
	buf_init(&c->note);
	buf_init(&c->line);
	if (p->tls_ctx) {
		SSL_CTX_up_ref(p->tls_ctx);
		c->tls_ctx = p->tls_ctx;
	}
	c->timer = evtimer_new(base, timer_cb, c);
	c->local_ev = event_new(base, -1, 0, local_cb, c);
	if (c->timer == NULL || c->local_ev == NULL) {
		(void)close(fd);
		err_set(e, "smtp_client: cannot create events");
		destroy(c);
		return NULL;
	}
	if (evutil_make_socket_nonblocking(fd) == -1) {
		err_sys(e, "smtp_client: making socket %d non-blocking", fd);
		(void)close(fd);
		destroy(c);
		return NULL;
	}
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		(void)close(fd);
		err_set(e, "smtp_client: cannot create a bufferevent");
		destroy(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = CLIENT_STATE_GREETING;
	pend_push(c, SMTP_CLIENT_STEP_GREETING, -1, false);
	return c;
}

/* An address goes between angle brackets on a command line. */
static bool
is_usable_addr(const char *a, bool *has_8bit)
{
	for (; *a; a++) {
		unsigned char ch = (unsigned char)*a;

		if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>')
			return false;
		if (ch >= 0x80)
			*has_8bit = true;
	}
	return true;
}

static int
check_msg(const struct smtp_client_msg *m, bool *has_8bit, struct err *e)
{
	size_t i;

	if (m->sender == NULL || !is_usable_addr(m->sender, has_8bit))
		return err_set(e, "smtp_client: unusable sender address");
	if (m->rcpt_count == 0 || m->rcpts == NULL)
		return err_set(e, "smtp_client: no recipient");
	if (m->rcpt_count > INT_MAX)
		return err_set(e, "smtp_client: too many recipients");
	for (i = 0; i < m->rcpt_count; i++)
		if (m->rcpts[i] == NULL || m->rcpts[i][0] == '\0' ||
		    !is_usable_addr(m->rcpts[i], has_8bit))
			return err_set(e, "smtp_client: unusable recipient "
			    "address (#%zu)", i);
	if (m->fd < 0 || m->offset < 0 || m->length < 0)
		return err_set(e, "smtp_client: bad message file, offset or "
		    "length");
	return 0;
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m,
    struct err *e)
{
	struct client_tx *tx = &c->tx;
	bool has_8bit = false;
	char text[256];
	size_t i;

	if (!alive(c) || c->state != CLIENT_STATE_READY)
		return err_set(e, "smtp_client: cannot start a transaction "
		    "in state %s", client_state_names[c->state]);
	if (check_msg(m, &has_8bit, e) == -1)
		return -1;
	tx_clear(tx);
	tx->sender = xstrdup(m->sender);
	tx->rcpt_count = (int)m->rcpt_count;
	tx->rcpts = xreallocarray(NULL, m->rcpt_count, sizeof(*tx->rcpts));
	for (i = 0; i < m->rcpt_count; i++)
		tx->rcpts[i] = xstrdup(m->rcpts[i]);
	tx->accepted = xreallocarray(NULL, m->rcpt_count,
	    sizeof(*tx->accepted));
	tx->fd = m->fd;
	tx->offset = m->offset;
	tx->length = m->length;
	tx->is_8bit = m->is_8bit;
	tx->needs_smtputf8 = m->needs_smtputf8 || has_8bit;
	tx->phase = SEND_RSET;
	c->state = CLIENT_STATE_TX;

	/* Refusals decided here are reported from the loop, never from
	 * inside this call. */
	if (tx->needs_smtputf8 && !(c->ext & SMTP_CLIENT_EXT_SMTPUTF8)) {
		snprintf(text, sizeof(text), "the message needs SMTPUTF8, "
		    "which %s does not support", peer_name(c));
		save_fail(c, SMTP_CLIENT_PERMFAIL, SMTP_CLIENT_STEP_MAIL, 0,
		    "5.6.7", text);
	} else if ((c->ext & SMTP_CLIENT_EXT_SIZE) && c->size_max > 0 &&
	    (unsigned long long)tx->length > c->size_max) {
		snprintf(text, sizeof(text), "message size %lld exceeds the "
		    "size limit %llu of %s", (long long)tx->length,
		    c->size_max, peer_name(c));
		save_fail(c, SMTP_CLIENT_PERMFAIL, SMTP_CLIENT_STEP_MAIL, 0,
		    "5.3.4", text);
	}
	if (tx->is_failed) {
		tx->phase = SEND_DONE;
		post_local(c, LOCAL_TX_FAIL);
		return 0;
	}
	advance_send(c);
	return 0;
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (!alive(c) || c->state == CLIENT_STATE_QUIT)
		return;
	if (c->state == CLIENT_STATE_READY) {
		c->state = CLIENT_STATE_QUIT;
		send_cmd(c, SMTP_CLIENT_STEP_QUIT, -1, "QUIT");
		return;
	}
	/* Not idle: nothing sensible to say to the peer. */
	close_conn(c);
	c->state = CLIENT_STATE_CLOSED;
	post_local(c, LOCAL_CLOSED);
}

unsigned
smtp_client_extensions(const struct smtp_client *c)
{
	return c->ext;
}

unsigned long long
smtp_client_size_max(const struct smtp_client *c)
{
	return c->size_max;
}

bool
smtp_client_is_esmtp(const struct smtp_client *c)
{
	return c->is_esmtp;
}

const char *
smtp_client_tls_info(const struct smtp_client *c)
{
	return c->is_tls ? c->tls_info : NULL;
}

bool
smtp_client_tls_verified(const struct smtp_client *c)
{
	return c->is_tls && c->is_verified;
}
