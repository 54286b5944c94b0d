/*
 * test_smtp_client.c - unit tests for src/gate/smtp_client.c: the engine
 * runs in a real libevent loop against a scripted fake server in the same
 * process, over a socketpair. The fake server follows a script of steps
 * (expect these exact bytes, send this reply, then maybe close, start
 * TLS, flood or stop reading) and refuses a client that sends the next
 * command before the reply it must wait for. STARTTLS uses OpenSSL on
 * both sides with a self-signed certificate made at test time.
 *
 * Every test frees the client inside its failed/closed callback, as the
 * queue manager does, so ASan checks the deferred free on every path.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "gate/smtp_client.h"

#include "t.h"

/* ---- the scripted peer ------------------------------------------------- */

#define DATA_STEP	"\001DATA"	/* expect content up to CRLF.CRLF */

enum peer_act {
	ACT_NONE,
	ACT_CLOSE,		/* close once the reply is flushed */
	ACT_STARTTLS,		/* TLS (server side) after the reply */
	ACT_NOREAD,		/* stop reading */
	ACT_FLOOD_LINE,		/* one endless reply line */
	ACT_FLOOD_CONT,		/* endless continuation lines */
};

struct step {
	const char	*expect;	/* exact bytes, DATA_STEP, or NULL */
	const char	*reply;		/* sent after the match, or NULL */
	enum peer_act	 act;
};

struct peer {
	struct event_base	*base;
	struct bufferevent	*bev;
	const struct step	*steps;
	size_t			 nsteps;
	size_t			 pos;
	SSL_CTX			*tls_ctx;	/* server side */
	bool			 is_closing;
	struct buf		 data;		/* last content, as received */
	struct buf		 seen;		/* every byte received */
	char			 error[512];
};

static void peer_read_cb(struct bufferevent *, void *);
static void peer_write_cb(struct bufferevent *, void *);
static void peer_event_cb(struct bufferevent *, short, void *);

static void
peer_close(struct peer *p)
{
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
}

static void
peer_error(struct peer *p, const char *what, const char *got, size_t len)
{
	if (p->error[0] == '\0')
		snprintf(p->error, sizeof(p->error), "step %zu: %s: \"%.*s\"",
		    p->pos, what, (int)(len > 200 ? 200 : len), got);
	peer_close(p);
}

static void
peer_flood(struct peer *p, bool is_cont)
{
	char line[80];
	int i;

	if (!is_cont) {
		char *big = xmalloc(100000);

		memset(big, 'x', 100000);
		bufferevent_write(p->bev, "250-", 4);
		bufferevent_write(p->bev, big, 100000);
		free(big);
		return;
	}
	memset(line, 'y', sizeof(line));
	memcpy(line, "250-", 4);
	line[78] = '\r';
	line[79] = '\n';
	for (i = 0; i < 2000; i++)
		bufferevent_write(p->bev, line, sizeof(line));
}

static void
peer_start_tls(struct peer *p)
{
	SSL *ssl = SSL_new(p->tls_ctx);
	struct bufferevent *t;

	t = bufferevent_openssl_filter_new(p->base, p->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (t == NULL) {
		p->bev = NULL;
		snprintf(p->error, sizeof(p->error), "peer: TLS filter");
		return;
	}
	p->bev = t;
	bufferevent_openssl_set_allow_dirty_shutdown(t, 1);
	bufferevent_setcb(t, peer_read_cb, peer_write_cb, peer_event_cb, p);
	bufferevent_enable(t, EV_READ | EV_WRITE);
}

static void
peer_act(struct peer *p, const struct step *s)
{
	if (s->reply)
		bufferevent_write(p->bev, s->reply, strlen(s->reply));
	switch (s->act) {
	case ACT_NONE:
		break;
	case ACT_CLOSE:
		p->is_closing = true;
		if (evbuffer_get_length(bufferevent_get_output(p->bev)) == 0)
			peer_close(p);
		break;
	case ACT_STARTTLS:
		peer_start_tls(p);
		break;
	case ACT_NOREAD:
		bufferevent_disable(p->bev, EV_READ);
		break;
	case ACT_FLOOD_LINE:
	case ACT_FLOOD_CONT:
		peer_flood(p, s->act == ACT_FLOOD_CONT);
		break;
	}
}

/* Takes the content up to and including the final ".\r\n"; false when
 * it is not complete yet. */
static bool
peer_take_data(struct peer *p, struct evbuffer *in)
{
	struct evbuffer_ptr ptr;
	size_t n;
	char *d;

	if (evbuffer_get_length(in) >= 3) {
		d = (char *)evbuffer_pullup(in, 3);
		if (memcmp(d, ".\r\n", 3) == 0) {
			n = 3;
			goto take;
		}
	}
	ptr = evbuffer_search(in, "\r\n.\r\n", 5, NULL);
	if (ptr.pos < 0)
		return false;
	n = (size_t)ptr.pos + 5;
take:
	buf_reset(&p->data);
	buf_reserve(&p->data, n);
	evbuffer_remove(in, p->data.data, n);
	p->data.len = n;
	p->data.data[n] = '\0';
	buf_append(&p->seen, p->data.data, n);
	return true;
}

static void
peer_run(struct peer *p)
{
	struct evbuffer *in;
	const struct step *s;
	size_t len;
	char *got;

	while (p->bev && p->pos < p->nsteps) {
		s = &p->steps[p->pos];
		in = bufferevent_get_input(p->bev);
		if (s->expect == NULL) {
			p->pos++;
			peer_act(p, s);
			continue;
		}
		if (strcmp(s->expect, DATA_STEP) == 0) {
			if (!peer_take_data(p, in))
				return;
		} else {
			len = strlen(s->expect);
			if (evbuffer_get_length(in) < len)
				return;
			got = (char *)evbuffer_pullup(in, (ev_ssize_t)len);
			if (memcmp(got, s->expect, len) != 0) {
				peer_error(p, "unexpected input", got,
				    evbuffer_get_length(in));
				return;
			}
			buf_append(&p->seen, got, len);
			evbuffer_drain(in, len);
		}
		if (evbuffer_get_length(in) > 0) {
			got = (char *)evbuffer_pullup(in, -1);
			peer_error(p, "client did not wait for the reply", got,
			    evbuffer_get_length(in));
			return;
		}
		p->pos++;
		peer_act(p, s);
	}
	if (p->bev && evbuffer_get_length(bufferevent_get_input(p->bev))) {
		in = bufferevent_get_input(p->bev);
		got = (char *)evbuffer_pullup(in, -1);
		peer_error(p, "input after the end of the script", got,
		    evbuffer_get_length(in));
	}
}

static void
peer_read_cb(struct bufferevent *bev, void *arg)
{
	peer_run(arg);
}

static void
peer_write_cb(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;

	if (p->is_closing)
		peer_close(p);
}

static void
peer_close_cb(evutil_socket_t fd, short what, void *arg)
{
	peer_close(arg);
}

static void
peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;
	struct timeval tv = { 0, 100000 };

	if (what & BEV_EVENT_ERROR) {
		/* Give a TLS alert the time to reach the client. */
		bufferevent_disable(bev, EV_READ);
		event_base_once(p->base, -1, EV_TIMEOUT, peer_close_cb, p,
		    &tv);
	} else if (what & BEV_EVENT_EOF)
		peer_close(p);
}

static void
peer_start(struct peer *p, struct event_base *base, int fd,
    const struct step *steps, size_t nsteps, SSL_CTX *tls_ctx)
{
	memset(p, 0, sizeof(*p));
	p->base = base;
	p->steps = steps;
	p->nsteps = nsteps;
	p->tls_ctx = tls_ctx;
	buf_init(&p->data);
	buf_init(&p->seen);
	evutil_make_socket_nonblocking(fd);
	p->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(p->bev, peer_read_cb, peer_write_cb, peer_event_cb,
	    p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	peer_run(p);
}

static void
peer_clear(struct peer *p)
{
	peer_close(p);
	buf_clear(&p->data);
	buf_clear(&p->seen);
}

/* ---- the driver (the queue manager's part) ----------------------------- */

#define MSG_MAX	3

struct drv {
	struct event_base	*base;
	struct smtp_client	*c;
	struct smtp_client_msg	 msgs[MSG_MAX];
	int			 nmsgs;
	int			 next;
	bool			 free_at_rcpt;	/* free in the 2nd rcpt cb */
	bool			 is_holding;	/* stay idle after ready */
	bool			 is_done;
	struct peer		*peer;		/* cleared by drv_clear */
	struct buf		 log;
	unsigned		 ext;
	unsigned long long	 size_max;
	bool			 is_esmtp;
	char			 tls_info[128];
	bool			 is_verified;
};

static void
drv_finish(struct drv *d)
{
	struct timeval tv = { 0, 50000 };

	d->is_done = true;
	/* Let the peer read what is still in flight. */
	event_base_loopexit(d->base, &tv);
}

static void
log_reply(struct drv *d, const char *what, int index,
    const struct smtp_client_reply *r)
{
	buf_printf(&d->log, "%s %d %s %d %s", what, index,
	    smtp_client_status_name(r->status), r->code, r->enhanced);
	if (r->status != SMTP_CLIENT_OK)
		buf_printf(&d->log, " [%s]", r->text);
	buf_puts(&d->log, "; ");
}

/* The next message, or QUIT. */
static void
drv_next(struct drv *d, struct smtp_client *c)
{
	struct err e;

	if (d->next < d->nmsgs) {
		if (smtp_client_send(c, &d->msgs[d->next++], &e) == 0)
			return;
		buf_printf(&d->log, "send error [%s]; ", e.msg);
	}
	smtp_client_quit(c);
}

static void
cb_ready(struct smtp_client *c, void *arg)
{
	struct drv *d = arg;
	const char *tls = smtp_client_tls_info(c);

	buf_puts(&d->log, "ready; ");
	d->ext = smtp_client_extensions(c);
	d->size_max = smtp_client_size_max(c);
	d->is_esmtp = smtp_client_is_esmtp(c);
	snprintf(d->tls_info, sizeof(d->tls_info), "%s", tls ? tls : "");
	d->is_verified = smtp_client_tls_verified(c);
	if (!d->is_holding)
		drv_next(d, c);
}

static void
cb_rcpt(struct smtp_client *c, void *arg, int index,
    const struct smtp_client_reply *r)
{
	struct drv *d = arg;

	log_reply(d, "rcpt", index, r);
	if (d->free_at_rcpt && index == 1) {
		smtp_client_free(c);
		d->c = NULL;
		buf_puts(&d->log, "freed; ");
		drv_finish(d);
	}
}

static void
cb_data_done(struct smtp_client *c, void *arg, int index,
    const struct smtp_client_reply *r)
{
	log_reply(arg, "data", index, r);
}

static void
cb_tx_done(struct smtp_client *c, void *arg,
    const struct smtp_client_reply *fail)
{
	struct drv *d = arg;

	if (fail)
		buf_printf(&d->log, "tx_fail %s %s %d %s [%s]; ",
		    smtp_client_status_name(fail->status),
		    smtp_client_step_name(fail->step), fail->code,
		    fail->enhanced, fail->text);
	else
		buf_puts(&d->log, "tx_done; ");
	drv_next(d, c);
}

static void
cb_failed(struct smtp_client *c, void *arg,
    const struct smtp_client_reply *r)
{
	struct drv *d = arg;

	buf_printf(&d->log, "failed %s %s %d %s [%s]; ",
	    smtp_client_status_name(r->status), smtp_client_step_name(r->step),
	    r->code, r->enhanced, r->text);
	smtp_client_free(c);
	d->c = NULL;
	drv_finish(d);
}

static void
cb_closed(struct smtp_client *c, void *arg)
{
	struct drv *d = arg;

	buf_puts(&d->log, "closed");
	smtp_client_free(c);
	d->c = NULL;
	drv_finish(d);
}

static const struct smtp_client_cb drv_cb = {
	.ready = cb_ready,
	.rcpt = cb_rcpt,
	.data_done = cb_data_done,
	.tx_done = cb_tx_done,
	.failed = cb_failed,
	.closed = cb_closed,
};

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct drv *d = arg;

	buf_puts(&d->log, "GUARD TIMEOUT");
	event_base_loopbreak(d->base);
}

/* A spool file with 7 bytes before the message, to exercise offset. */
static void
msg_set(struct smtp_client_msg *m, const char *sender,
    const char *const *rcpts, size_t n, const char *content, size_t len)
{
	char path[] = "/tmp/test_smtp_client.XXXXXX";
	int fd = mkstemp(path);

	CHECK(fd != -1);
	(void)unlink(path);
	CHECK(write(fd, "ENVELOP", 7) == 7);
	CHECK(len == 0 || write(fd, content, len) == (ssize_t)len);
	memset(m, 0, sizeof(*m));
	m->sender = sender;
	m->rcpts = rcpts;
	m->rcpt_count = n;
	m->fd = fd;
	m->offset = 7;
	m->length = (off_t)len;
}

static void
drv_init(struct drv *d)
{
	memset(d, 0, sizeof(*d));
	buf_init(&d->log);
}

static void
drv_clear(struct drv *d)
{
	for (int i = 0; i < d->nmsgs; i++)
		close(d->msgs[i].fd);
	buf_clear(&d->log);
	if (d->peer)
		peer_clear(d->peer);
}

static struct smtp_client_params
params_default(void)
{
	struct smtp_client_params p;

	memset(&p, 0, sizeof(p));
	p.helo_name = "client.test";
	p.server_name = "mx.test";
	p.timeouts.greeting_ms = 3000;
	p.timeouts.helo_ms = 3000;
	p.timeouts.mail_ms = 3000;
	p.timeouts.rcpt_ms = 3000;
	p.timeouts.data_ms = 3000;
	p.timeouts.block_ms = 3000;
	p.timeouts.data_end_ms = 3000;
	p.timeouts.quit_ms = 3000;
	return p;
}

/* Runs the client against the script until the client ends. */
static void
run_with(struct drv *d, struct peer *p, const struct step *steps,
    size_t nsteps, const struct smtp_client_params *params,
    SSL_CTX *server_ctx)
{
	struct timeval guard = { 15, 0 };
	struct event *ev;
	struct err e;
	int sv[2];

	d->base = event_base_new();
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	peer_start(p, d->base, sv[1], steps, nsteps, server_ctx);
	d->c = smtp_client_new(d->base, sv[0], params, &drv_cb, d, &e);
	CHECK(d->c != NULL);
	ev = evtimer_new(d->base, guard_cb, d);
	evtimer_add(ev, &guard);
	if (d->c)
		event_base_dispatch(d->base);
	event_free(ev);
	smtp_client_free(d->c);
	d->c = NULL;
	if (p->error[0])
		fprintf(stderr, "  peer: %s\n", p->error);
	CHECK(p->error[0] == '\0');
	if (p->pos != p->nsteps)
		fprintf(stderr, "  peer stopped at step %zu of %zu\n", p->pos,
		    p->nsteps);
	CHECK_INT(p->pos, p->nsteps);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  log: %s\n", d->log.data);
	peer_close(p);
	d->peer = p;
	event_base_free(d->base);
	d->base = NULL;
}

#define RUN_SCRIPT(d, p, steps, params) \
	run_with((d), (p), (steps), sizeof(steps) / sizeof((steps)[0]), \
	    (params), NULL)

/* ---- scripts ----------------------------------------------------------- */

#define GREET	{ NULL, "220 mx.test ESMTP\r\n", ACT_NONE }
#define EHLO_PIPE { "EHLO client.test\r\n", "250-mx.test\r\n" \
	"250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n" \
	"250 ENHANCEDSTATUSCODES\r\n", ACT_NONE }
#define EHLO_PLAIN { "EHLO client.test\r\n", "250-mx.test\r\n" \
	"250 8BITMIME\r\n", ACT_NONE }
#define QUIT	{ "QUIT\r\n", "221 2.0.0 bye\r\n", ACT_CLOSE }

static const char *const rcpt1[] = { "b@y.test" };
static const char *const rcpt2[] = { "b@y.test", "c@y.test" };
static const char *const rcpt3[] = { "b@y.test", "c@y.test", "d@y.test" };
static const char body[] = "Subject: hi\r\n\r\nhello\r\n";

static void
test_greeting_554(void)
{
	static const struct step s[] = {
		{ NULL, "554 5.7.1 go away\r\n", ACT_NONE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "failed permfail greeting 554 5.7.1 "
	    "[554 5.7.1 go away]; ");
	drv_clear(&d);
}

static void
test_helo_fallback(void)
{
	static const struct step s[] = {
		GREET,
		{ "EHLO client.test\r\n", "502 5.5.2 what?\r\n", ACT_NONE },
		{ "HELO client.test\r\n", "250 mx.test\r\n", ACT_NONE },
		{ "MAIL FROM:<a@x.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<b@y.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "DATA\r\n", "354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 queued\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	d.msgs[0].is_8bit = true;	/* no 8BITMIME: sent anyway */
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 ; "
	    "tx_done; closed");
	CHECK(!d.is_esmtp);
	CHECK_INT(d.ext, 0);
	drv_clear(&d);
}

static void
test_pipelining(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22 BODY=8BITMIME\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
		  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n",
		  ACT_NONE },
		{ DATA_STEP, "250 2.0.0 queued as X\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt2, 2, body, strlen(body));
	d.msgs[0].is_8bit = true;
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 2.1.5; rcpt 1 ok 250 "
	    "2.1.5; data -1 ok 250 2.0.0; tx_done; closed");
	CHECK(d.is_esmtp);
	CHECK_INT(d.ext, SMTP_CLIENT_EXT_PIPELINING | SMTP_CLIENT_EXT_SIZE |
	    SMTP_CLIENT_EXT_8BITMIME | SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES);
	CHECK_INT(d.size_max, 10000000);
	drv_clear(&d);
}

static void
test_no_pipelining(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<b@y.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<c@y.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "DATA\r\n", "354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 queued\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "", rcpt2, 2, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; rcpt 1 ok 250 ; "
	    "data -1 ok 250 ; tx_done; closed");
	CHECK_STR(p.data.data, "Subject: hi\r\n\r\nhello\r\n.\r\n");
	drv_clear(&d);
}

static void
test_size_too_big(void)
{
	static const struct step s[] = {
		GREET,
		{ "EHLO client.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n"
		  "250 SIZE 10\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; tx_fail permfail MAIL FROM 0 5.3.4 "
	    "[message size 22 exceeds the size limit 10 of mx.test]; closed");
	drv_clear(&d);
}

static void
test_mixed_rcpt(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
		  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
		  "550-5.1.1 <c@y.test>: no such user\r\n"
		  "550 5.1.1 see you\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 2.0.0 queued\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt2, 2, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 2.1.5; rcpt 1 permfail "
	    "550 5.1.1 [550 5.1.1 <c@y.test>: no such user see you]; "
	    "data -1 ok 250 2.0.0; tx_done; closed");
	drv_clear(&d);
}

static void
test_all_refused_pipelined(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
		  "250 2.1.0 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n"
		  "554 5.5.1 no valid recipients\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt2, 2, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 permfail 550 5.1.1 "
	    "[550 5.1.1 no]; rcpt 1 tempfail 450 4.2.1 [450 4.2.1 later]; "
	    "tx_done; closed");
	CHECK(p.seen.data == NULL || strstr(p.seen.data, "Subject") == NULL);
	drv_clear(&d);
}

/* A broken server says 354 with no valid recipient: an empty content. */
static void
test_all_refused_354(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 2.1.0 ok\r\n550 5.1.1 no\r\n354 go\r\n", ACT_NONE },
		{ ".\r\n", "554 5.5.1 nobody\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 permfail 550 5.1.1 "
	    "[550 5.1.1 no]; tx_done; closed");
	CHECK(p.seen.data == NULL || strstr(p.seen.data, "Subject") == NULL);
	drv_clear(&d);
}

/* Without PIPELINING no DATA goes out; the next transaction starts with
 * RSET, on the same connection. */
static void
test_all_refused_then_reuse(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<a@x.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<b@y.test>\r\n", "550 5.1.1 no\r\n", ACT_NONE },
		{ "RSET\r\n", "250 ok\r\n", ACT_NONE },
		{ "MAIL FROM:<a@x.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<c@y.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "DATA\r\n", "354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 queued\r\n", ACT_NONE },
		QUIT,
	};
	static const char *const r2[] = { "c@y.test" };
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", r2, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 permfail 550 5.1.1 "
	    "[550 5.1.1 no]; tx_done; rcpt 0 ok 250 ; data -1 ok 250 ; "
	    "tx_done; closed");
	drv_clear(&d);
}

static void
run_data_end(const char *reply, const char *expect_log)
{
	struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, reply, ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, expect_log);
	CHECK_STR(p.data.data, "Subject: hi\r\n\r\nhello\r\n.\r\n");
	drv_clear(&d);
}

static void
test_data_end_replies(void)
{
	run_data_end("250 2.0.0 ok\r\n", "ready; rcpt 0 ok 250 2.1.5; "
	    "data -1 ok 250 2.0.0; tx_done; closed");
	run_data_end("451 4.3.0 try later\r\n", "ready; rcpt 0 ok 250 2.1.5; "
	    "data -1 tempfail 451 4.3.0 [451 4.3.0 try later]; tx_done; "
	    "closed");
	run_data_end("554 5.6.0 rejected\r\n", "ready; rcpt 0 ok 250 2.1.5; "
	    "data -1 permfail 554 5.6.0 [554 5.6.0 rejected]; tx_done; "
	    "closed");
}

/* Sends content through a plain session and returns what arrived. */
static void
run_content(const char *content, size_t len, const char *expect)
{
	struct step s[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<a@x.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<b@y.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "DATA\r\n", "354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 queued\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, content, len);
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 ; "
	    "tx_done; closed");
	CHECK_STR(p.data.data, expect);
	drv_clear(&d);
}

static void
test_dot_stuffing(void)
{
	static const char in[] = ".hello\r\n..two\r\nnot.dot\r\n.\r\nend\r\n";

	run_content(in, strlen(in),
	    "..hello\r\n...two\r\nnot.dot\r\n..\r\nend\r\n.\r\n");
}

static void
test_no_final_crlf(void)
{
	static const char in[] = "Subject: x\r\n\r\nbody without end";

	run_content(in, strlen(in),
	    "Subject: x\r\n\r\nbody without end\r\n.\r\n");
	run_content("", 0, ".\r\n");
	run_content("a\r\n.", 4, "a\r\n..\r\n.\r\n");
	run_content("a\r", 2, "a\r\n.\r\n");
}

/* The reference: what the wire must carry for content. */
static char *
stuffed(const char *in, size_t len, size_t *outlen)
{
	struct buf b;
	bool bol = true;

	buf_init(&b);
	for (size_t i = 0; i < len; i++) {
		if (bol && in[i] == '.')
			buf_putc(&b, '.');
		buf_putc(&b, in[i]);
		bol = in[i] == '\n';
	}
	if (len > 0 && !(len >= 2 && in[len - 2] == '\r' &&
	    in[len - 1] == '\n'))
		buf_puts(&b, "\r\n");
	buf_puts(&b, ".\r\n");
	*outlen = b.len;
	return buf_release(&b);
}

/* ~1 MB with dots at the start of lines, also right at chunk edges. */
static char *
big_content(size_t size)
{
	char *s = xmalloc(size);
	size_t i = 0, n = 0;

	while (i < size) {
		size_t len = 1 + (n * 37) % 150;

		for (size_t k = 0; k < len && i < size; k++)
			s[i++] = (k == 0 && n % 5 == 0) ? '.' :
			    (char)('a' + (n + k) % 26);
		if (i < size)
			s[i++] = '\r';
		if (i < size)
			s[i++] = '\n';
		n++;
	}
	for (size_t edge = 16384; edge + 1 < size; edge += 16384) {
		s[edge - 2] = '\r';
		s[edge - 1] = '\n';
		s[edge] = '.';
	}
	s[size - 2] = '\r';
	s[size - 1] = '\n';
	return s;
}

static void
test_large_message(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=1048576\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 queued\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	size_t size = 1024 * 1024, elen;
	char *content = big_content(size);
	char *expect = stuffed(content, size, &elen);
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, content, size);
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 ; "
	    "tx_done; closed");
	CHECK_INT(p.data.len, elen);
	CHECK(p.data.len == elen && memcmp(p.data.data, expect, elen) == 0);
	free(content);
	free(expect);
	drv_clear(&d);
}

static void
test_lmtp(void)
{
	static const struct step s[] = {
		GREET,
		{ "LHLO client.test\r\n", "250-lmtp.test\r\n250-PIPELINING\r\n"
		  "250 ENHANCEDSTATUSCODES\r\n", ACT_NONE },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
		  "RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n",
		  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n"
		  "250 2.1.5 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 2.0.0 <b@y.test> saved\r\n"
		  "452 4.2.2 <d@y.test> over quota\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	prm.is_lmtp = true;
	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt3, 3, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 2.1.5; rcpt 1 permfail "
	    "550 5.1.1 [550 5.1.1 unknown]; rcpt 2 ok 250 2.1.5; "
	    "data 0 ok 250 2.0.0; data 2 tempfail 452 4.2.2 "
	    "[452 4.2.2 <d@y.test> over quota]; tx_done; closed");
	drv_clear(&d);
}

static void
test_reuse(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 2.0.0 first\r\n", ACT_NONE },
		{ "MAIL FROM:<e@x.test> SIZE=5\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 2.0.0 second\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	msg_set(&d.msgs[d.nmsgs++], "e@x.test", rcpt2, 2, "two\r\n", 5);
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 2.0.0; "
	    "tx_done; rcpt 0 ok 250 ; rcpt 1 ok 250 ; data -1 ok 250 2.0.0; "
	    "tx_done; closed");
	CHECK_STR(p.data.data, "two\r\n.\r\n");
	drv_clear(&d);
}

/* MAIL refused under PIPELINING: the "503 need MAIL" replies to the
 * pipelined RCPTs are not reported; the next transaction starts with
 * RSET. */
static void
test_mail_refused_then_reuse(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
		  "452 4.3.1 busy\r\n503 5.5.1 need MAIL\r\n"
		  "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n", ACT_NONE },
		{ "RSET\r\nMAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 2.0.0 ok\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt2, 2, body, strlen(body));
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; tx_fail tempfail MAIL FROM 452 4.3.1 "
	    "[452 4.3.1 busy]; rcpt 0 ok 250 ; data -1 ok 250 2.0.0; "
	    "tx_done; closed");
	drv_clear(&d);
}

static void
test_data_refused(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<a@x.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<b@y.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "DATA\r\n", "451 4.3.0 not now\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; tx_fail tempfail DATA "
	    "451 4.3.0 [451 4.3.0 not now]; closed");
	drv_clear(&d);
}

static void
test_peer_closes_after_rcpt(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<a@x.test>\r\n", "250 ok\r\n", ACT_NONE },
		{ "RCPT TO:<b@y.test>\r\n", NULL, ACT_CLOSE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; failed connfail RCPT TO 0  "
	    "[connection closed by peer after RCPT TO]; ");
	drv_clear(&d);
}

static void
test_peer_closes_during_content(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=4194304\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_CLOSE },
	};
	struct smtp_client_params prm = params_default();
	const char *pfx = "ready; rcpt 0 ok 250 ; failed connfail "
	    "message content 0  [connection ";
	size_t size = 4 * 1024 * 1024;
	char *content = big_content(size);
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, content, size);
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK(strncmp(d.log.data, pfx, strlen(pfx)) == 0);
	CHECK(strstr(d.log.data, "while sending the message content") != NULL);
	free(content);
	drv_clear(&d);
}

static void
test_421_mid_transaction(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n",
		  ACT_CLOSE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt2, 2, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; failed tempfail RCPT TO "
	    "421 4.3.2 [421 4.3.2 shutting down]; ");
	drv_clear(&d);
}

static void
test_timeouts(void)
{
	static const struct step s1[] = {
		GREET,
		{ "EHLO client.test\r\n", NULL, ACT_NONE },
	};
	static const struct step s2[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, NULL, ACT_NONE },
	};
	static const struct step s3[] = {
		{ NULL, NULL, ACT_NONE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	prm.timeouts.helo_ms = 200;
	drv_init(&d);
	RUN_SCRIPT(&d, &p, s1, &prm);
	CHECK_STR(d.log.data, "failed connfail EHLO 0  "
	    "[timeout waiting for the reply to EHLO (200ms)]; ");
	drv_clear(&d);

	prm = params_default();
	prm.timeouts.data_end_ms = 1000;
	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s2, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; failed connfail "
	    "end of data 0  [timeout waiting for the reply to the end of "
	    "data (1s)]; ");
	drv_clear(&d);

	prm = params_default();
	prm.timeouts.greeting_ms = 150;
	drv_init(&d);
	RUN_SCRIPT(&d, &p, s3, &prm);
	CHECK_STR(d.log.data, "failed connfail greeting 0  "
	    "[timeout waiting for the greeting (150ms)]; ");
	drv_clear(&d);
}

/* The peer stops reading: no progress sending the content. */
static void
test_timeout_content(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=4194304\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NOREAD },
	};
	struct smtp_client_params prm = params_default();
	size_t size = 4 * 1024 * 1024;
	char *content = big_content(size);
	struct drv d;
	struct peer p;

	prm.timeouts.block_ms = 300;
	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, content, size);
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; failed connfail "
	    "message content 0  [timeout sending the message content "
	    "(300ms)]; ");
	free(content);
	drv_clear(&d);
}

static void
test_bad_replies(void)
{
	static const struct step s1[] = {
		GREET,
		{ "EHLO client.test\r\n", NULL, ACT_FLOOD_LINE },
	};
	static const struct step s2[] = {
		GREET,
		{ "EHLO client.test\r\n", NULL, ACT_FLOOD_CONT },
	};
	static const struct step s3[] = {
		{ NULL, "hello there\r\n", ACT_NONE },
	};
	static const struct step s4[] = {
		GREET,
		{ "EHLO client.test\r\n", "250-mx.test\r\n251 odd\r\n",
		  ACT_NONE },
	};
	static const struct step s6[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<a@x.test>\r\n", "354 what\r\n", ACT_NONE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	RUN_SCRIPT(&d, &p, s1, &prm);
	CHECK_STR(d.log.data, "failed connfail EHLO 0  "
	    "[reply line from peer longer than 4096 bytes]; ");
	drv_clear(&d);

	drv_init(&d);
	RUN_SCRIPT(&d, &p, s2, &prm);
	CHECK_STR(d.log.data, "failed connfail EHLO 0  "
	    "[reply from peer longer than 65536 bytes]; ");
	drv_clear(&d);

	drv_init(&d);
	RUN_SCRIPT(&d, &p, s3, &prm);
	CHECK_STR(d.log.data, "failed connfail greeting 0  "
	    "[malformed reply from peer: \"hello there\"]; ");
	drv_clear(&d);

	drv_init(&d);
	RUN_SCRIPT(&d, &p, s4, &prm);
	CHECK_STR(d.log.data, "failed connfail EHLO 0  [malformed reply "
	    "from peer: code 251 inside a multi-line reply of code 250]; ");
	drv_clear(&d);

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s6, &prm);
	CHECK_STR(d.log.data, "ready; failed connfail MAIL FROM 354  "
	    "[unexpected reply from peer to MAIL FROM: 354 what]; ");
	drv_clear(&d);
}

static void
test_smtputf8(void)
{
	static const struct step s1[] = {
		GREET,
		EHLO_PIPE,
		QUIT,
	};
	static const struct step s2[] = {
		GREET,
		{ "EHLO client.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n"
		  "250 SMTPUTF8\r\n", ACT_NONE },
		{ "MAIL FROM:<\xce\xb4@x.test> SMTPUTF8\r\n"
		  "RCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 ok\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "\xce\xb4@x.test", rcpt1, 1, body,
	    strlen(body));
	RUN_SCRIPT(&d, &p, s1, &prm);
	CHECK_STR(d.log.data, "ready; tx_fail permfail MAIL FROM 0 5.6.7 "
	    "[the message needs SMTPUTF8, which mx.test does not support]; "
	    "closed");
	drv_clear(&d);

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "\xce\xb4@x.test", rcpt1, 1, body,
	    strlen(body));
	RUN_SCRIPT(&d, &p, s2, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 ; "
	    "tx_done; closed");
	drv_clear(&d);
}

/* The caller frees the client inside a callback with replies still
 * buffered: no further callback, no use after free. */
static void
test_free_in_callback(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<a@x.test> SIZE=22\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
		  "RCPT TO:<d@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
		  ACT_NONE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	d.free_at_rcpt = true;
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt3, 3, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; rcpt 1 ok 250 ; "
	    "freed; ");
	drv_clear(&d);
}

static void
test_send_errors(void)
{
	static const char *const bad[] = { "b@y.test\r\nDATA" };
	static const struct step s[] = {
		GREET,
		EHLO_PIPE,
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;
	struct err e;

	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", bad, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s, &prm);
	CHECK_STR(d.log.data, "ready; send error [smtp_client: unusable "
	    "recipient address (#0)]; closed");
	drv_clear(&d);

	/* Not idle: before the greeting. */
	{
		struct event_base *base = event_base_new();
		int sv[2];
		struct smtp_client *c;
		struct smtp_client_msg m;

		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		c = smtp_client_new(base, sv[0], &prm, &drv_cb, NULL, &e);
		memset(&m, 0, sizeof(m));
		m.sender = "";
		m.rcpts = rcpt1;
		m.rcpt_count = 1;
		CHECK_INT(smtp_client_send(c, &m, &e), -1);
		CHECK_STR(e.msg, "smtp_client: cannot start a transaction in "
		    "state GREETING");
		smtp_client_free(c);
		close(sv[1]);
		event_base_free(base);
	}
}

/* The peer ends an idle session: closing, or 421 then closing. */
static void
test_idle_close(void)
{
	static const struct step s1[] = {
		GREET,
		{ "EHLO client.test\r\n", "250 mx.test\r\n", ACT_CLOSE },
	};
	static const struct step s2[] = {
		GREET,
		{ "EHLO client.test\r\n", "250 mx.test\r\n"
		  "421 4.4.2 idle too long\r\n", ACT_CLOSE },
	};
	struct smtp_client_params prm = params_default();
	struct drv d;
	struct peer p;

	drv_init(&d);
	d.is_holding = true;
	RUN_SCRIPT(&d, &p, s1, &prm);
	CHECK_STR(d.log.data, "ready; failed connfail idle 0  "
	    "[connection closed by peer while idle]; ");
	drv_clear(&d);

	drv_init(&d);
	d.is_holding = true;
	RUN_SCRIPT(&d, &p, s2, &prm);
	CHECK_STR(d.log.data, "ready; failed tempfail idle 421 4.4.2 "
	    "[421 4.4.2 idle too long]; ");
	drv_clear(&d);
}

/* smtp_client_quit before the session is ready: closed() from the loop,
 * never from inside the call. */
static void
test_quit_early(void)
{
	struct smtp_client_params prm = params_default();
	struct timeval guard = { 5, 0 };
	struct event *ev;
	struct drv d;
	struct err e;
	int sv[2];

	drv_init(&d);
	d.base = event_base_new();
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	d.c = smtp_client_new(d.base, sv[0], &prm, &drv_cb, &d, &e);
	smtp_client_quit(d.c);
	CHECK(d.log.data == NULL);
	ev = evtimer_new(d.base, guard_cb, &d);
	evtimer_add(ev, &guard);
	event_base_dispatch(d.base);
	CHECK_STR(d.log.data, "closed");
	CHECK(d.c == NULL);
	event_free(ev);
	close(sv[1]);
	event_base_free(d.base);
	drv_clear(&d);
}

/* ---- STARTTLS ---------------------------------------------------------- */

static char tls_dir[64];
static char cert_path[128], key_path[128];

static bool
make_cert(void)
{
	char cmd[512];

	snprintf(tls_dir, sizeof(tls_dir), "/tmp/test_smtp_client.XXXXXX");
	if (mkdtemp(tls_dir) == NULL)
		return false;
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tls_dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", tls_dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 "
	    "-nodes -subj /CN=localhost -days 1 -keyout %s -out %s "
	    ">/dev/null 2>&1", key_path, cert_path);
	return system(cmd) == 0;
}

static void
remove_cert(void)
{
	(void)unlink(cert_path);
	(void)unlink(key_path);
	(void)rmdir(tls_dir);
}

static SSL_CTX *
server_ctx(int min_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	CHECK(SSL_CTX_use_certificate_chain_file(ctx, cert_path) == 1);
	CHECK(SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM)
	    == 1);
	if (min_version)
		SSL_CTX_set_min_proto_version(ctx, min_version);
	return ctx;
}

#define EHLO_TLS { "EHLO client.test\r\n", "250-mx.test\r\n" \
	"250-PIPELINING\r\n250 STARTTLS\r\n", ACT_NONE }

static void
run_starttls_ok(bool trust, const char *server_name, bool expect_verified)
{
	static const struct step s[] = {
		GREET,
		EHLO_TLS,
		{ "STARTTLS\r\n", "220 2.0.0 go ahead\r\n", ACT_STARTTLS },
		{ "EHLO client.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n"
		  "250 8BITMIME\r\n", ACT_NONE },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 2.0.0 ok\r\n", ACT_NONE },
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	size_t size = 600 * 1024, elen;
	char *content = big_content(size);
	char *expect = stuffed(content, size, &elen);
	SSL_CTX *sctx = server_ctx(0);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct peer p;

	if (trust)
		CHECK(SSL_CTX_load_verify_locations(cctx, cert_path, NULL)
		    == 1);
	prm.tls_ctx = cctx;
	prm.server_name = server_name;
	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, content, size);
	run_with(&d, &p, s, sizeof(s) / sizeof(s[0]), &prm, sctx);
	CHECK(p.data.len == elen && memcmp(p.data.data, expect, elen) == 0);
	free(content);
	free(expect);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 2.0.0; "
	    "tx_done; closed");
	CHECK_STR(d.tls_info, "TLSv1.3 TLS_AES_256_GCM_SHA384");
	CHECK(d.is_verified == expect_verified);
	CHECK_INT(d.ext, SMTP_CLIENT_EXT_PIPELINING | SMTP_CLIENT_EXT_8BITMIME);
	drv_clear(&d);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void
test_starttls(void)
{
	run_starttls_ok(false, "mx.test", false);
	run_starttls_ok(true, "localhost", true);
	run_starttls_ok(true, "other.test", false);
}

static void
test_starttls_handshake_failure(void)
{
	static const struct step s[] = {
		GREET,
		EHLO_TLS,
		{ "STARTTLS\r\n", "220 2.0.0 go ahead\r\n", ACT_STARTTLS },
	};
	const char *pfx = "failed connfail TLS handshake 0  "
	    "[TLS handshake failed: error:";
	struct smtp_client_params prm = params_default();
	SSL_CTX *sctx = server_ctx(TLS1_3_VERSION);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct peer p;

	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	prm.tls_ctx = cctx;
	drv_init(&d);
	run_with(&d, &p, s, sizeof(s) / sizeof(s[0]), &prm, sctx);
	CHECK(strncmp(d.log.data, pfx, strlen(pfx)) == 0);
	if (strncmp(d.log.data, pfx, strlen(pfx)) != 0)
		fprintf(stderr, "  log: %s\n", d.log.data);
	drv_clear(&d);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

/* Offered but refused (454), or offered with no TLS context: plaintext. */
static void
test_starttls_skipped(void)
{
	static const struct step s1[] = {
		GREET,
		EHLO_TLS,
		{ "STARTTLS\r\n", "454 4.7.0 TLS not available\r\n",
		  ACT_NONE },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 ok\r\n250 ok\r\n354 go\r\n", ACT_NONE },
		{ DATA_STEP, "250 ok\r\n", ACT_NONE },
		QUIT,
	};
	static const struct step s2[] = {
		GREET,
		EHLO_TLS,
		QUIT,
	};
	struct smtp_client_params prm = params_default();
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct peer p;

	prm.tls_ctx = cctx;
	drv_init(&d);
	msg_set(&d.msgs[d.nmsgs++], "a@x.test", rcpt1, 1, body, strlen(body));
	RUN_SCRIPT(&d, &p, s1, &prm);
	CHECK_STR(d.log.data, "ready; rcpt 0 ok 250 ; data -1 ok 250 ; "
	    "tx_done; closed");
	CHECK_STR(d.tls_info, "");
	drv_clear(&d);

	prm.tls_ctx = NULL;
	drv_init(&d);
	RUN_SCRIPT(&d, &p, s2, &prm);
	CHECK_STR(d.log.data, "ready; closed");
	drv_clear(&d);
	SSL_CTX_free(cctx);
}

static void
test_names(void)
{
	CHECK_STR(smtp_client_status_name(SMTP_CLIENT_TEMPFAIL), "tempfail");
	CHECK_STR(smtp_client_status_name(SMTP_CLIENT_STATUS_COUNT), "?");
	CHECK_STR(smtp_client_step_name(SMTP_CLIENT_STEP_DATA_END),
	    "end of data");
	for (int i = 0; i < SMTP_CLIENT_STEP_COUNT; i++)
		CHECK(smtp_client_step_name(i) != NULL);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_names);
	RUN(test_greeting_554);
	RUN(test_helo_fallback);
	RUN(test_pipelining);
	RUN(test_no_pipelining);
	RUN(test_size_too_big);
	RUN(test_mixed_rcpt);
	RUN(test_all_refused_pipelined);
	RUN(test_all_refused_354);
	RUN(test_all_refused_then_reuse);
	RUN(test_data_end_replies);
	RUN(test_data_refused);
	RUN(test_dot_stuffing);
	RUN(test_no_final_crlf);
	RUN(test_large_message);
	RUN(test_lmtp);
	RUN(test_reuse);
	RUN(test_mail_refused_then_reuse);
	RUN(test_peer_closes_after_rcpt);
	RUN(test_peer_closes_during_content);
	RUN(test_421_mid_transaction);
	RUN(test_timeouts);
	RUN(test_timeout_content);
	RUN(test_bad_replies);
	RUN(test_smtputf8);
	RUN(test_free_in_callback);
	RUN(test_send_errors);
	RUN(test_idle_close);
	RUN(test_quit_early);
	if (make_cert()) {
		RUN(test_starttls);
		RUN(test_starttls_handshake_failure);
		RUN(test_starttls_skipped);
	} else {
		printf("not ok - test_starttls (cannot make a certificate "
		    "with openssl req)\n");
		t_failed++;
	}
	remove_cert();
	T_EXIT();
}
