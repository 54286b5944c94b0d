/*
 * smtp_server.c - inbound SMTP sessions. Layer: gate.
 *
 * Owns the listeners, the sessions and their transactions. A session
 * (struct smtp_session: connection, HELO, counters) holds at most one
 * transaction (struct smtp_tx: sender, recipients, spool file), which is
 * all RSET destroys. Commands are dispatched through a verb table that says
 * in which states a verb is legal; every state change goes through
 * enter_state(), which traces it. Replies come only from mail/reply.c's
 * table (or the parser's error, or the EHLO list).
 *
 * Invariants: memory per session is bounded (input is read at most
 * INPUT_MAX ahead, an over-long line is discarded as it arrives, output
 * beyond OUTPUT_MAX stops reading); a 250 after the data is sent only after
 * spool_msg_commit returned 0; nothing a client sends reaches fatal/panic.
 */
#include "gate/smtp_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/err.h"
#include "lib/fdlimit.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/addr.h"
#include "mail/envelope.h"
#include "mail/header.h"
#include "mail/reply.h"
#include "mail/smtp_cmd.h"
#include "mail/smtp_data.h"
#include "net/listen.h"
#include "net/proxy.h"
#include "net/tls.h"
#include "net/worker.h"
#include "gate/addrmap.h"
#include "gate/climit.h"
#include "gate/maildir.h"
#include "gate/config.h"
#include "gate/route.h"
#include "gate/runtime.h"
#include "gate/smtp_auth.h"
#include "gate/spool.h"
#include "gate/stats.h"

#define INPUT_MAX	(256 * 1024)	/* bytes read ahead of processing */
#define OUTPUT_MAX	(64 * 1024)	/* queued replies before we stop reading */
#define SCRATCH_SIZE	(64 * 1024)	/* data automaton output, per call */
#define ERROR_LIMIT	10		/* errors before the client is dropped */
#define AUTH_FAIL_LIMIT	3		/* failed AUTHs before it is dropped */
#define FD_RESERVE	32		/* descriptors that are not sessions' */

enum smtp_state {
	SMTP_STATE_PROXY,	/* waiting for the PROXY protocol header */
	SMTP_STATE_CONNECTED,	/* greeted, no HELO/EHLO yet */
	SMTP_STATE_HELO,	/* HELO/EHLO done, no transaction */
	SMTP_STATE_MAIL,	/* MAIL accepted */
	SMTP_STATE_RCPT,	/* at least one RCPT accepted */
	SMTP_STATE_DATA,	/* reading DATA content */
	SMTP_STATE_BDAT,	/* reading a BDAT chunk */
	SMTP_STATE_AUTH,	/* reading SASL responses */
	SMTP_STATE_WAIT,	/* a password check or AUTH delay is running */
	SMTP_STATE_TLS,		/* TLS handshake after STARTTLS */
	SMTP_STATE_COMMIT,	/* message written, waiting for group commit */
	SMTP_STATE_CLOSING,	/* final reply queued; closing when flushed */
	SMTP_STATE_COUNT
};

static const char *const smtp_state_names[SMTP_STATE_COUNT] = {
	[SMTP_STATE_PROXY] = "PROXY",
	[SMTP_STATE_CONNECTED] = "CONNECTED",
	[SMTP_STATE_HELO] = "HELO",
	[SMTP_STATE_MAIL] = "MAIL",
	[SMTP_STATE_RCPT] = "RCPT",
	[SMTP_STATE_DATA] = "DATA",
	[SMTP_STATE_BDAT] = "BDAT",
	[SMTP_STATE_AUTH] = "AUTH",
	[SMTP_STATE_WAIT] = "WAIT",
	[SMTP_STATE_TLS] = "TLS",
	[SMTP_STATE_COMMIT] = "COMMIT",
	[SMTP_STATE_CLOSING] = "CLOSING",
};

struct smtp_server;

struct smtp_tx {
	struct envelope	  env;
	unsigned	  nrcpt_cmds;	/* RCPT commands accepted */
	bool		  has_rcpt_tries;	/* any RCPT, even refused */
	long long	  size_hint;	/* MAIL SIZE=, -1 if none */
	struct spool_msg *msg;		/* open once DATA/BDAT starts */
	struct smtp_data  data;
	bool		  uses_bdat;
	bool		  is_too_big;
	bool		  has_write_error;
	bool		  is_out_of_space;
	bool		  is_bdat_refused;	/* chunks are read and dropped */
	int		  bdat_refusal;		/* reply_id for the LAST chunk */
	unsigned long long bdat_left;	/* bytes of this chunk still to read */
	unsigned long long bdat_chunk;	/* size of this chunk */
	bool		  bdat_last;
	struct timeval	  started;
};

enum auth_step {
	AUTH_STEP_PLAIN,	/* waiting for the PLAIN response */
	AUTH_STEP_LOGIN_USER,	/* LOGIN: waiting for the user name */
	AUTH_STEP_LOGIN_PASS,	/* LOGIN: waiting for the password */
};

struct smtp_session {
	struct smtp_server	*srv;
	struct runtime		*rt;		/* snapshot, referenced */
	struct bufferevent	*bev;		/* the TLS filter once in TLS */
	struct bufferevent	*raw_bev;	/* the socket under TLS, or NULL */
	struct sockaddr_storage	 peer;
	char			 addr[INET6_ADDRSTRLEN];
	int			 port;
	enum smtp_state		 state;
	bool			 is_submission;
	bool			 is_esmtp;
	bool			 in_relay_networks;
	bool			 is_loopback;
	bool			 is_tls;
	char			 tls_info[160];
	char			*auth_user;	/* authenticated user, or NULL */
	bool			 is_in_commit;	/* in commit_wait or commit_out,
						   whatever its state */
	char			 auth_mech[8];
	char			 auth_login[AUTH_USER_MAX];	/* LOGIN user */
	enum auth_step		 auth_step;
	int			 auth_failures;
	struct auth_check	*auth_check;	/* running password check */
	struct event		*auth_delay;	/* slows failed attempts */
	bool			 is_trace;
	bool			 is_counted_ip;	/* counted in climit */
	enum line_fault {
		LINE_OK,
		LINE_TOO_LONG,		/* discarding to the next CRLF */
		LINE_BARE_LF,		/* a bare LF: the line is refused */
	}			 line_fault;
	bool			 drained_cr;	/* last byte dropped was CR */
	time_t			 line_started;	/* first byte of a partial
						 * command line, 0 if none */
	bool			 is_quitting;	/* 421 after this transaction */
	char			 helo[256];
	int			 errors;
	unsigned		 ncommands, nmessages;
	struct smtp_tx		*tx;
	struct smtp_session	*prev, *next;
};

/* Messages synced together on the commit thread. The batch owns the
 * messages; a session that goes away meanwhile leaves a NULL behind. */
struct commit_batch {
	struct smtp_server	*srv;
	size_t			 n;
	struct smtp_session	**sessions;
	struct spool_msg	**msgs;
	int			*results;
	struct err		*errs;
};

struct listener {
	struct evconnlistener	*evl;
	struct event		*resume_ev;	/* after an accept() error */
	bool			 is_submission;
	struct smtp_server	*srv;
	struct listener		*next;
};

struct smtp_server {
	struct event_base	*base;
	struct spool		*spool;
	struct runtime		*rt;
	smtp_server_queued_fn	 queued;
	void			*queued_arg;
	struct listener		*listeners;
	struct smtp_session	*sessions;
	size_t			 nsessions;
	struct climit		*climit;
	size_t			 fd_sessions;	/* what the open-files limit
						   leaves room for */
	char			*scratch;	/* SCRATCH_SIZE, shared */
	/* group commit: sessions whose message waits for the next sync,
	 * and the batch being synced on the commit thread */
	struct smtp_session	**commit_wait;
	size_t			 ncommit, commit_size;
	struct event		*commit_ev;
	struct commit_batch	*commit_out;
	struct worker		*committer;
	/* shutdown */
	bool			 is_stopping;
	struct event		*grace_ev;
	smtp_server_done_fn	 done;
	void			*done_arg;
};

static void	session_read(struct bufferevent *bev, void *arg);
static void	session_write(struct bufferevent *bev, void *arg);
static void	session_event(struct bufferevent *bev, short what, void *arg);
static void	session_free(struct smtp_session *s);
static void	process_input(struct smtp_session *s);
static void	read_proxy_header(struct smtp_session *s, struct evbuffer *in);

static const struct config *
cfg_of(const struct smtp_session *s)
{
	return s->rt->cfg;
}

static void
enter_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	log_debug("[%s]:%d state %s -> %s", s->addr, s->port,
	    smtp_state_names[s->state], smtp_state_names[state]);
	s->state = state;
}

/*
 * A reply to a plain session with nothing queued before it goes straight
 * to the socket: one send() instead of arming EV_WRITE, waking for it,
 * writing and disarming it again (four system calls and a loop pass per
 * reply, the most of any round trip). Returns how much the socket took;
 * the rest, and everything on an error (which the bufferevent then
 * reports as before), goes through the output buffer.
 */
static size_t
send_now(struct smtp_session *s, const char *line, size_t n)
{
	ssize_t w;

	if (bufferevent_get_underlying(s->bev) != NULL ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return 0;
	w = send(bufferevent_getfd(s->bev), line, n, MSG_NOSIGNAL |
	    MSG_DONTWAIT);
	return w > 0 ? (size_t)w : 0;
}

/* Writes one reply line (or the last line of a multi-line reply). */
static void
reply_line(struct smtp_session *s, int code, bool more, const char *enhanced,
    const char *text)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	char line[1024];
	size_t sent;
	int n;

	n = snprintf(line, sizeof(line), "%d%c%s%s%s\r\n", code,
	    more ? '-' : ' ', enhanced ? enhanced : "", enhanced ? " " : "",
	    text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 2] = '\r';
		line[n - 1] = '\n';
	}
	sent = more ? 0 : send_now(s, line, (size_t)n);
	if (sent < (size_t)n)
		evbuffer_add(out, line + sent, (size_t)n - sent);
	if (s->is_trace)
		log_info("[%s]:%d > %.*s", s->addr, s->port, n - 2, line);
}

static void
reply(struct smtp_session *s, enum reply_id id, ...)
{
	const struct reply_text *r = &reply_texts[id];
	char text[900];
	va_list ap;

	va_start(ap, id);
	vsnprintf(text, sizeof(text), r->fmt, ap);
	va_end(ap);
	reply_line(s, r->code, false, r->enhanced, text);
	/* RFC 5321 §4.2.4-ish: count client errors, drop abusive clients. */
	if (r->code >= 500 && r->code != 502 && id != REPLY_DATA_BARE_EOL)
		s->errors++;
}

static void
close_after_reply(struct smtp_session *s)
{
	/* Freed by the write callback once the reply is out (or by the
	 * write timeout), never here: callers still hold s. */
	enter_state(s, SMTP_STATE_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){ 10, 0 });
	bufferevent_enable(s->bev, EV_WRITE);
	/* Already sent (send_now): nothing will drain, so the write
	 * callback that frees is run from the loop instead. */
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		bufferevent_trigger(s->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Returns true when the session was told to go (too many errors). */
static bool
check_errors(struct smtp_session *s)
{
	if (s->errors < ERROR_LIMIT)
		return false;
	log_warnx("[%s]:%d too many errors (%d), dropping the client",
	    s->addr, s->port, s->errors);
	reply(s, REPLY_TOO_MANY_ERRORS, cfg_of(s)->hostname);
	close_after_reply(s);
	return true;
}

static void
tx_free(struct smtp_tx *tx)
{
	if (tx == NULL)
		return;
	spool_msg_free(tx->msg);
	envelope_clear(&tx->env);
	free(tx);
}

static void
tx_reset(struct smtp_session *s)
{
	tx_free(s->tx);
	s->tx = NULL;
	/* back to where the client was before MAIL: a BDAT LAST refused
	 * before any HELO must not count as one */
	if (s->state != SMTP_STATE_CONNECTED && s->state != SMTP_STATE_CLOSING)
		enter_state(s, s->helo[0] ? SMTP_STATE_HELO :
		    SMTP_STATE_CONNECTED);
}

static const char *
proto_name(const struct smtp_session *s)
{
	if (!s->is_esmtp)
		return "SMTP";
	if (s->is_tls)
		return s->auth_user ? "ESMTPSA" : "ESMTPS";
	return s->auth_user ? "ESMTPA" : "ESMTP";
}

/* Relaying: authenticated users anywhere; relay_networks except on the
 * submission port, where relaying needs AUTH (RFC 6409). */
static bool
may_relay(const struct smtp_session *s)
{
	return s->auth_user != NULL ||
	    (!s->is_submission && s->in_relay_networks);
}

/* auth_require_tls: loopback clients in relay_networks are exempt. */
static bool
auth_offered(const struct smtp_session *s)
{
	const struct config *c = cfg_of(s);

	if (s->rt->users == NULL || s->auth_user != NULL)
		return false;
	return s->is_tls || !c->auth_require_tls ||
	    (s->is_loopback && s->in_relay_networks);
}

/* ---- verbs ---------------------------------------------------------- */

static void
do_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const struct config *c = cfg_of(s);

	tx_reset(s);
	str_copy(s->helo, cmd->arg, sizeof(s->helo));
	s->is_esmtp = cmd->verb == SMTP_VERB_EHLO;
	enter_state(s, SMTP_STATE_HELO);
	if (!s->is_esmtp) {
		reply_line(s, 250, false, NULL, c->hostname);
		return;
	}
	{
		char size[64];

		reply_line(s, 250, true, NULL, c->hostname);
		reply_line(s, 250, true, NULL, "PIPELINING");
		snprintf(size, sizeof(size), "SIZE %llu", c->max_message_size);
		reply_line(s, 250, true, NULL, size);
		reply_line(s, 250, true, NULL, "8BITMIME");
		reply_line(s, 250, true, NULL, "ENHANCEDSTATUSCODES");
		reply_line(s, 250, true, NULL, "SMTPUTF8");
		if (s->rt->tls_server && !s->is_tls)
			reply_line(s, 250, true, NULL, "STARTTLS");
		if (auth_offered(s))
			reply_line(s, 250, true, NULL, "AUTH PLAIN LOGIN");
		reply_line(s, 250, false, NULL, "CHUNKING");
	}
}

static void
do_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const struct config *c = cfg_of(s);
	struct smtp_tx *tx;
	char sender[ADDR_MAX + 1];
	unsigned long long need;

	if (cmd->size >= 0 &&
	    (unsigned long long)cmd->size > c->max_message_size) {
		reply(s, REPLY_SIZE_EXCEEDED);
		return;
	}
	if (s->is_submission && s->auth_user == NULL) {
		reply_line(s, 530, false, "5.7.0",
		    "Authentication required (submission port)");
		return;
	}
	need = cmd->size > 0 ? (unsigned long long)cmd->size : 0;
	if (!spool_has_room(s->srv->spool, need)) {
		log_warnx("[%s]:%d MAIL refused: spool %s is (nearly) full",
		    s->addr, s->port, spool_path(s->srv->spool));
		reply(s, REPLY_NO_STORAGE);
		return;
	}
	tx = xcalloc(1, sizeof(*tx));
	envelope_init(&tx->env);
	gettimeofday(&tx->started, NULL);
	tx->size_hint = cmd->size;
	tx->env.arrival = (double)tx->started.tv_sec +
	    tx->started.tv_usec / 1e6;
	tx->env.client_addr = xstrdup(s->addr);
	tx->env.client_name = xasprintf("[%s]", s->addr);
	tx->env.helo = xstrdup(s->helo);
	tx->env.proto = xstrdup(proto_name(s));
	tx->env.auth_user = s->auth_user ? xstrdup(s->auth_user) : NULL;
	tx->env.sender = xstrdup(addr_format(&cmd->addr, sender,
	    sizeof(sender)));
	tx->env.body = cmd->body == SMTP_BODY_8BITMIME ? xstrdup("8BITMIME") :
	    cmd->body == SMTP_BODY_7BIT ? xstrdup("7BIT") :
	    cmd->body == SMTP_BODY_BINARYMIME ? xstrdup("BINARYMIME") : NULL;
	tx->env.smtputf8 = cmd->smtputf8;
	tx->env.ret = cmd->ret[0] ? xstrdup(cmd->ret) : NULL;
	tx->env.envid = cmd->envid[0] ? xstrdup(cmd->envid) : NULL;
	s->tx = tx;
	enter_state(s, SMTP_STATE_MAIL);
	reply(s, REPLY_MAIL_OK);
}

static void
do_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const struct config *c = cfg_of(s);
	struct smtp_tx *tx = s->tx;
	char rcpt[ADDR_MAX + 1];
	struct err e;

	/* The first chunk chose where the message goes (the one mailbox or
	 * the spool, whose envelope is written then): a recipient now would
	 * be told 250 and get nothing. */
	if (tx->uses_bdat) {
		reply(s, REPLY_RCPT_AFTER_BDAT);
		return;
	}
	tx->has_rcpt_tries = true;
	if (tx->nrcpt_cmds >= c->max_recipients) {
		reply(s, REPLY_TOO_MANY_RCPTS);
		return;
	}
	err_clear(&e);
	switch (route_rcpt(s->rt, &cmd->addr, may_relay(s),
	    cmd->notify[0] ? cmd->notify : NULL,
	    cmd->orcpt[0] ? cmd->orcpt : NULL, &tx->env, rcpt, &e)) {
	case ROUTE_UNKNOWN_USER:
		log_info("[%s]:%d reject RCPT <%s>: %s", s->addr, s->port,
		    rcpt, e.msg);
		reply(s, REPLY_USER_UNKNOWN, rcpt,
		    "User unknown in local recipient table");
		return;
	case ROUTE_RELAY_DENIED:
		/* Never an open relay (SPEC §3). */
		log_info("[%s]:%d reject RCPT <%s>: relay access denied",
		    s->addr, s->port, rcpt);
		reply(s, REPLY_RELAY_DENIED, rcpt);
		return;
	case ROUTE_ACCEPTED:
		break;
	}
	tx->nrcpt_cmds++;
	enter_state(s, SMTP_STATE_RCPT);
	reply(s, REPLY_RCPT_OK);
}

/*
 * A message for exactly one local mailbox needs no queue: it is written
 * straight into the mailbox's tmp/ and the group commit links it into
 * new/ before the 250 (local delivery and acknowledgement in one). Any
 * other message, or a mailbox that cannot be prepared, goes through the
 * spool. Appends Return-Path and Delivered-To to hdr. NULL when not
 * direct.
 */
static struct spool_msg *
open_direct(struct smtp_session *s, struct buf *hdr)
{
	const struct config *c = cfg_of(s);
	const struct rcpt *r = &s->tx->env.rcpts[0];
	char dir[PATH_MAX], newdir[PATH_MAX], tmp[PATH_MAX], id[SPOOL_ID_LEN + 1];
	char name[512];
	struct spool_msg *m;
	struct err e;

	if (c->lmtp_host[0] != '\0' || s->tx->env.nrcpts != 1 ||
	    r->kind != RCPT_LOCAL)
		return NULL;
	err_clear(&e);
	if (maildir_make(c->postoffice_dir, r->target, dir, newdir, &e) == -1 ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp", dir) >= (int)sizeof(tmp)) {
		log_info("[%s]:%d mailbox %s not ready (%s): queueing", s->addr,
		    s->port, r->target, e.msg);
		return NULL;
	}
	spool_new_id(id);
	if (maildir_queue_name(name, sizeof(name), (long long)
	    s->tx->env.arrival, id, 0, c->hostname) == -1 ||
	    (m = spool_msg_new_direct(s->srv->spool, id, tmp, newdir, name,
	    &e)) == NULL) {
		log_info("[%s]:%d direct delivery to %s not possible (%s): "
		    "queueing", s->addr, s->port, r->target, e.msg);
		return NULL;
	}
	header_local_prefix(hdr, s->tx->env.sender, r->orig);
	return m;
}

/* Opens the spool file and writes the Received: header. */
static int
start_message(struct smtp_session *s, bool is_bdat)
{
	struct smtp_tx *tx = s->tx;
	const struct config *c = cfg_of(s);
	struct buf hdr;
	struct err e;

	err_clear(&e);
	smtp_data_init(&tx->data, is_bdat);
	buf_init(&hdr);
	tx->msg = open_direct(s, &hdr);
	if (tx->msg == NULL)
		tx->msg = spool_msg_new(s->srv->spool, &tx->env, &e);
	if (tx->msg == NULL) {
		buf_clear(&hdr);
		log_warnx("[%s]:%d cannot queue: %s", s->addr, s->port, e.msg);
		tx->has_write_error = true;
		tx->is_out_of_space = e.errnum == ENOSPC || e.errnum == EDQUOT;
		return -1;
	}
	header_received(&hdr, s->helo, s->addr, c->hostname, proto_name(s),
	    s->is_tls ? s->tls_info : NULL, spool_msg_id(tx->msg),
	    tx->nrcpt_cmds == 1 ? tx->env.rcpts[0].orig : NULL,
	    time(NULL));
	if (spool_msg_write(tx->msg, hdr.data, hdr.len, &e) == -1) {
		log_warnx("[%s]:%d cannot queue: %s", s->addr, s->port, e.msg);
		tx->has_write_error = true;
		tx->is_out_of_space = e.errnum == ENOSPC || e.errnum == EDQUOT;
	}
	buf_clear(&hdr);
	return 0;
}

static void
do_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_tx *tx = s->tx;

	if (tx->uses_bdat) {
		reply(s, REPLY_BDAT_MIXED);
		return;
	}
	if (tx->env.nrcpts == 0) {
		/* RFC 5321 §3.3: 554 when every RCPT was refused, 503 when
		 * there was none. */
		reply(s, tx->has_rcpt_tries ? REPLY_NO_VALID_RCPT :
		    REPLY_NEED_RCPT);
		return;
	}
	if (start_message(s, false) == -1) {
		reply(s, tx->is_out_of_space ? REPLY_NO_STORAGE :
		    REPLY_QUEUE_ERROR);
		tx_reset(s);
		return;
	}
	s->nmessages++;
	enter_state(s, SMTP_STATE_DATA);
	bufferevent_set_timeouts(s->bev, &(struct timeval){
	    cfg_of(s)->data_timeout, 0 }, NULL);
	reply(s, REPLY_DATA_GO);
}

static void
do_bdat(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_tx *tx = s->tx;

	/*
	 * The chunk's bytes follow the command whatever we answer: read them
	 * all (RFC 3030 §2), or they would be taken as commands - an easy
	 * way to smuggle a transaction.
	 */
	if (tx == NULL || s->state == SMTP_STATE_CONNECTED) {
		tx = s->tx = xcalloc(1, sizeof(*tx));
		envelope_init(&tx->env);
		tx->is_bdat_refused = true;
		tx->bdat_refusal = s->state == SMTP_STATE_CONNECTED ?
		    REPLY_NEED_HELO : REPLY_NEED_MAIL;
	} else if (!tx->uses_bdat && !tx->is_bdat_refused) {
		if (tx->env.nrcpts == 0) {
			tx->is_bdat_refused = true;
			tx->bdat_refusal = tx->has_rcpt_tries ?
			    REPLY_NO_VALID_RCPT : REPLY_NEED_RCPT;
		} else if (start_message(s, true) == -1)
			tx->is_bdat_refused = true;
		else
			s->nmessages++;
	}
	tx->uses_bdat = true;
	tx->bdat_chunk = tx->bdat_left = cmd->chunk_size;
	tx->bdat_last = cmd->is_last;
	enter_state(s, SMTP_STATE_BDAT);
	bufferevent_set_timeouts(s->bev, &(struct timeval){
	    cfg_of(s)->data_timeout, 0 }, NULL);
}

static void
do_rset(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	tx_reset(s);
	reply(s, REPLY_OK);
}

static void
do_noop(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	reply(s, REPLY_OK);
}

static void
do_quit(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	reply(s, REPLY_BYE);
	close_after_reply(s);
}

static void
do_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	reply(s, REPLY_VRFY);
}

static void
do_expn(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	reply(s, REPLY_EXPN);
}

static void
do_help(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	reply(s, REPLY_HELP);
}

/* ---- STARTTLS (RFC 3207) --------------------------------------------- */

static void
do_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_server *srv = s->srv;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tls;
	size_t junk;
	SSL *ssl;

	if (s->rt->tls_server == NULL) {
		reply(s, REPLY_NOT_IMPLEMENTED);
		return;
	}
	if (s->is_tls) {
		reply_line(s, 503, false, "5.5.1", "Error: TLS already active");
		s->errors++;
		return;
	}
	if (s->tx != NULL) {
		reply_line(s, 503, false, "5.5.1",
		    "Error: STARTTLS not allowed during a mail transaction");
		s->errors++;
		return;
	}
	reply_line(s, 220, false, "2.0.0", "Ready to start TLS");
	/*
	 * RFC 3207 §4.2 / CVE-2011-0411: whatever the client pipelined after
	 * STARTTLS came in plaintext and must never be executed.
	 */
	junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_warnx("[%s]:%d discarding %zu bytes pipelined after "
		    "STARTTLS", s->addr, s->port, junk);
		evbuffer_drain(in, junk);
	}
	ssl = SSL_new(s->rt->tls_server);
	if (ssl == NULL) {
		log_warnx("[%s]:%d cannot start TLS: out of memory", s->addr,
		    s->port);
		close_after_reply(s);
		return;
	}
	/* Without CLOSE_ON_FREE: session_free closes TLS gracefully. */
	tls = bufferevent_openssl_filter_new(srv->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, 0);
	if (tls == NULL) {
		SSL_free(ssl);
		log_warnx("[%s]:%d cannot start TLS", s->addr, s->port);
		close_after_reply(s);
		return;
	}
	/* The plaintext 220 above is already sent or queued ahead of the
	 * TLS bytes. */
	s->raw_bev = s->bev;
	s->bev = tls;
	bufferevent_setcb(tls, session_read, session_write, session_event, s);
	bufferevent_setwatermark(tls, EV_READ, 0, INPUT_MAX);
	bufferevent_set_timeouts(tls, &(struct timeval){
	    cfg_of(s)->command_timeout, 0 }, NULL);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	enter_state(s, SMTP_STATE_TLS);
}

/* After the handshake: the session starts over (RFC 3207 §4.2). */
static void
tls_established(struct smtp_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	s->is_tls = true;
	tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
	log_info("[%s]:%d TLS established: %s", s->addr, s->port,
	    s->tls_info);
	s->helo[0] = '\0';
	s->is_esmtp = false;
	/* and so does what a plaintext AUTH gave */
	free(s->auth_user);
	s->auth_user = NULL;
	mem_wipe(s->auth_login, sizeof(s->auth_login));
	tx_reset(s);
	enter_state(s, SMTP_STATE_CONNECTED);
}

/* ---- AUTH (RFC 4954) -------------------------------------------------- */

static void	auth_finish(struct smtp_session *s, const char *user,
		    char *pass);

static void
auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	event_free(s->auth_delay);
	s->auth_delay = NULL;
	reply_line(s, 535, false, "5.7.8",
	    "Error: authentication credentials invalid");
	if (s->auth_failures >= AUTH_FAIL_LIMIT) {
		log_warnx("[%s]:%d too many failed AUTH attempts (%d), "
		    "dropping the client", s->addr, s->port, s->auth_failures);
		reply_line(s, 421, false, "4.7.0",
		    "Error: too many failed authentication attempts");
		close_after_reply(s);
		return;
	}
	enter_state(s, SMTP_STATE_HELO);
	bufferevent_enable(s->bev, EV_READ);
	process_input(s);
}

static void
auth_checked(void *arg, bool ok)
{
	struct smtp_session *s = arg;

	s->auth_check = NULL;
	if (ok) {
		s->auth_user = xstrdup(s->auth_login);
		log_info("[%s]:%d authenticated as %s (%s)", s->addr, s->port,
		    s->auth_user, s->auth_mech);
		reply_line(s, 235, false, "2.7.0",
		    "Authentication successful");
		enter_state(s, SMTP_STATE_HELO);
		bufferevent_enable(s->bev, EV_READ);
		process_input(s);
		return;
	}
	s->auth_failures++;
	log_warnx("[%s]:%d AUTH %s failed for user %s (attempt %d)", s->addr,
	    s->port, s->auth_mech, s->auth_login, s->auth_failures);
	/* Each failure waits longer before its reply: 1 s, 2 s, 4 s... */
	{
		struct timeval tv = { 1 << (s->auth_failures - 1), 0 };

		s->auth_delay = evtimer_new(s->srv->base, auth_delay_done, s);
		evtimer_add(s->auth_delay, &tv);
	}
}

/* Starts the password check; the session waits without reading. */
static void
auth_finish(struct smtp_session *s, const char *user, char *pass)
{
	str_copy(s->auth_login, user, sizeof(s->auth_login));
	enter_state(s, SMTP_STATE_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	s->auth_check = auth_check_start(s->srv->base,
	    auth_users_hash(s->rt->users, user), pass, auth_checked, s);
	mem_wipe(pass, strlen(pass));
}

static void
auth_decode_error(struct smtp_session *s)
{
	reply_line(s, 501, false, "5.5.2", "Error: cannot decode response");
	s->errors++;
	enter_state(s, SMTP_STATE_HELO);
}

/* One SASL response (a base64 line, or the initial response). */
static void
auth_response(struct smtp_session *s, const char *line)
{
	char dec[AUTH_PASS_MAX + AUTH_USER_MAX * 2 + 4];
	char user[AUTH_USER_MAX], pass[AUTH_PASS_MAX];
	long n;
	struct err e;

	if (strcmp(line, "*") == 0) {
		reply_line(s, 501, false, "5.0.0",
		    "Error: authentication cancelled");
		enter_state(s, SMTP_STATE_HELO);
		return;
	}
	n = strcmp(line, "=") == 0 ? 0 :
	    auth_b64_decode(line, dec, sizeof(dec));
	if (n < 0) {
		auth_decode_error(s);
		return;
	}
	if (n == 0)
		dec[0] = '\0';
	switch (s->auth_step) {
	case AUTH_STEP_PLAIN:
		if (auth_plain_split(dec, (size_t)n, user, sizeof(user), pass,
		    sizeof(pass), &e) == -1) {
			log_info("[%s]:%d AUTH PLAIN: %s", s->addr, s->port,
			    e.msg);
			auth_decode_error(s);
			break;
		}
		auth_finish(s, user, pass);
		break;
	case AUTH_STEP_LOGIN_USER:
		if (n == 0 || (size_t)n >= sizeof(s->auth_login) ||
		    memchr(dec, '\0', (size_t)n)) {
			auth_decode_error(s);
			break;
		}
		str_copy(s->auth_login, dec, sizeof(s->auth_login));
		s->auth_step = AUTH_STEP_LOGIN_PASS;
		reply_line(s, 334, false, NULL, "UGFzc3dvcmQ6");
		break;
	case AUTH_STEP_LOGIN_PASS:
		if ((size_t)n >= sizeof(pass) || memchr(dec, '\0', (size_t)n)) {
			auth_decode_error(s);
			break;
		}
		memcpy(pass, dec, (size_t)n + 1);
		str_copy(user, s->auth_login, sizeof(user));
		auth_finish(s, user, pass);
		break;
	}
	mem_wipe(dec, sizeof(dec));
	mem_wipe(pass, sizeof(pass));
}

static void
do_auth(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	char mech[16], initial[SMTP_CMD_ARG_MAX + 1] = "";
	const char *sp;

	if (s->rt->users == NULL) {
		reply(s, REPLY_NOT_IMPLEMENTED);
		return;
	}
	if (s->state == SMTP_STATE_CONNECTED) {
		reply(s, REPLY_NEED_HELO);
		return;
	}
	if (s->auth_user != NULL) {
		reply_line(s, 503, false, "5.5.1", "Error: already "
		    "authenticated");
		s->errors++;
		return;
	}
	if (s->tx != NULL) {
		reply_line(s, 503, false, "5.5.1", "Error: AUTH not allowed "
		    "during a mail transaction");
		s->errors++;
		return;
	}
	if (!auth_offered(s)) {
		reply_line(s, 538, false, "5.7.11", "Error: encryption "
		    "required for authentication (use STARTTLS first)");
		s->errors++;
		return;
	}
	sp = strchr(cmd->arg, ' ');
	str_copy(mech, cmd->arg, sp && (size_t)(sp - cmd->arg) < sizeof(mech)
	    ? (size_t)(sp - cmd->arg) + 1 : sizeof(mech));
	if (sp)
		str_copy(initial, sp + 1, sizeof(initial));
	str_lower(mech);
	if (strcmp(mech, "plain") == 0) {
		str_copy(s->auth_mech, "PLAIN", sizeof(s->auth_mech));
		s->auth_step = AUTH_STEP_PLAIN;
	} else if (strcmp(mech, "login") == 0) {
		str_copy(s->auth_mech, "LOGIN", sizeof(s->auth_mech));
		s->auth_step = AUTH_STEP_LOGIN_USER;
	} else {
		reply_line(s, 504, false, "5.5.4", "Error: unsupported "
		    "authentication mechanism");
		s->errors++;
		return;
	}
	enter_state(s, SMTP_STATE_AUTH);
	if (initial[0] != '\0') {
		auth_response(s, initial);
		mem_wipe(initial, sizeof(initial));
		return;
	}
	reply_line(s, 334, false, NULL, s->auth_step == AUTH_STEP_PLAIN ? "" :
	    "VXNlcm5hbWU6");
}

#define ST(x)	(1u << SMTP_STATE_##x)
#define ST_ANY	(ST(CONNECTED) | ST(HELO) | ST(MAIL) | ST(RCPT))

/* The verb table: which states a verb is legal in, and its handler. */
static const struct verb {
	enum smtp_verb	 verb;
	unsigned	 states;
	void		(*proceed)(struct smtp_session *,
			    const struct smtp_cmd *);
} verbs[] = {
	{ SMTP_VERB_HELO,	ST_ANY,			do_helo },
	{ SMTP_VERB_EHLO,	ST_ANY,			do_helo },
	{ SMTP_VERB_MAIL,	ST(HELO),		do_mail },
	{ SMTP_VERB_RCPT,	ST(MAIL) | ST(RCPT),	do_rcpt },
	{ SMTP_VERB_DATA,	ST(MAIL) | ST(RCPT),	do_data },
	{ SMTP_VERB_BDAT,	ST_ANY,			do_bdat },
	{ SMTP_VERB_RSET,	ST_ANY,			do_rset },
	{ SMTP_VERB_NOOP,	ST_ANY,			do_noop },
	{ SMTP_VERB_QUIT,	ST_ANY,			do_quit },
	{ SMTP_VERB_VRFY,	ST_ANY,			do_vrfy },
	{ SMTP_VERB_EXPN,	ST_ANY,			do_expn },
	{ SMTP_VERB_HELP,	ST_ANY,			do_help },
	{ SMTP_VERB_STARTTLS,	ST_ANY,			do_starttls },
	{ SMTP_VERB_AUTH,	ST_ANY,			do_auth },
	{ SMTP_VERB_LHLO,	0,			NULL },
};

/* The 503 for a verb given in the wrong state. */
static enum reply_id
sequence_error(const struct smtp_session *s, enum smtp_verb verb)
{
	if (s->state == SMTP_STATE_CONNECTED)
		return REPLY_NEED_HELO;
	switch (verb) {
	case SMTP_VERB_MAIL:
		return REPLY_NESTED_MAIL;
	case SMTP_VERB_RCPT:
		return REPLY_NEED_MAIL;
	case SMTP_VERB_DATA:
		return s->state == SMTP_STATE_MAIL ? REPLY_NEED_RCPT :
		    REPLY_NEED_MAIL;
	default:
		return REPLY_NEED_HELO;
	}
}

static void
handle_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd *cmd;
	struct smtp_cmd_error cerr;
	const struct verb *v = NULL;

	s->ncommands++;
	cmd = xmalloc(sizeof(*cmd));
	if (smtp_cmd_parse(line, len, s->tx && s->tx->env.smtputf8, cmd,
	    &cerr) == -1) {
		reply_line(s, cerr.code, false, cerr.enhanced, cerr.text);
		s->errors++;
		free(cmd);
		return;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == cmd->verb)
			v = &verbs[i];
	if (v == NULL || v->proceed == NULL) {
		reply_line(s, 500, false, "5.5.2",
		    "Error: command not recognized");
		s->errors++;
	} else if ((v->states & (1u << s->state)) == 0)
		reply(s, sequence_error(s, cmd->verb));
	else
		v->proceed(s, cmd);
	free(cmd);
}

/* ---- end of a message ----------------------------------------------- */

static void
finish_message(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const struct config *c = cfg_of(s);
	struct err e;

	bufferevent_set_timeouts(s->bev, &(struct timeval){
	    c->command_timeout, 0 }, NULL);
	err_clear(&e);
	if (tx->is_bdat_refused)
		reply(s, (enum reply_id)tx->bdat_refusal ? (enum reply_id)
		    tx->bdat_refusal : REPLY_QUEUE_ERROR);
	else if (tx->data.has_bare_cr || tx->data.has_bare_lf ||
	    (tx->uses_bdat && !smtp_data_bdat_end_ok(&tx->data))) {
		log_warnx("[%s]:%d message refused: bare %s in data", s->addr,
		    s->port, tx->data.has_bare_lf ? "LF" : "CR");
		reply(s, REPLY_DATA_BARE_EOL);
	} else if (tx->is_too_big) {
		log_warnx("[%s]:%d message refused: larger than "
		    "max_message_size (%llu bytes)", s->addr, s->port,
		    c->max_message_size);
		reply(s, REPLY_SIZE_EXCEEDED);
	} else if (tx->has_write_error) {
		reply(s, tx->is_out_of_space ? REPLY_NO_STORAGE :
		    REPLY_QUEUE_ERROR);
	} else if (spool_msg_finish(tx->msg, &e) == -1) {
		log_warnx("[%s]:%d cannot queue: %s", s->addr, s->port, e.msg);
		reply(s, (e.errnum == ENOSPC || e.errnum == EDQUOT) ?
		    REPLY_NO_STORAGE : REPLY_QUEUE_ERROR);
	} else {
		/*
		 * Written: the 250 waits for the group commit, which runs
		 * once every session with input ready has had its turn, so
		 * one sync covers them all.
		 */
		struct smtp_server *srv = s->srv;

		if (srv->ncommit == srv->commit_size) {
			srv->commit_size = srv->commit_size ?
			    srv->commit_size * 2 : 64;
			srv->commit_wait = xreallocarray(srv->commit_wait,
			    srv->commit_size, sizeof(*srv->commit_wait));
		}
		srv->commit_wait[srv->ncommit++] = s;
		s->is_in_commit = true;
		/* Reading goes on (process_input waits for the commit; the
		 * read watermark bounds what gathers): no epoll change to
		 * stop and start it again for every message. */
		enter_state(s, SMTP_STATE_COMMIT);
		event_active(srv->commit_ev, 0, 0);
		return;
	}
	stats.rejected++;
	tx_reset(s);
}

/* After the group commit: the reply, then the pipelined input. */
static void
commit_done(struct smtp_session *s, struct spool_msg *m, int result,
    const struct err *e)
{
	char id[SPOOL_ID_LEN + 1];

	s->is_in_commit = false;
	if (result == 0) {
		/*
		 * Committed: the message is on stable storage. The reply
		 * goes first: the client waits for it, not for the log, whose
		 * write cost W4 a tenth of its rate when it came before
		 * (bench/FINDINGS.md, 13). The message's lines follow in the
		 * same turn of the loop, together.
		 */
		str_copy(id, spool_msg_id(m), sizeof(id));
		reply(s, REPLY_QUEUED, id);
		log_hold();
		log_info("%s: client=[%s]:%d helo=<%s> proto=%s%s%s", id,
		    s->addr, s->port, s->helo, proto_name(s), s->auth_user ?
		    " sasl_username=" : "", s->auth_user ? s->auth_user : "");
		log_info("%s: from=<%s> size=%llu nrcpt=%zu", id,
		    s->tx->env.sender, spool_msg_len(m), s->tx->env.nrcpts);
		stats.accepted++;
		if (spool_msg_is_direct(m)) {
			/* Delivered at the commit point: nothing queued. */
			const struct rcpt *r = &s->tx->env.rcpts[0];
			struct timeval now;

			gettimeofday(&now, NULL);
			log_info("%s: to=<%s> relay=local mailbox=%s delay=%.2f "
			    "status=sent (delivered to maildir)", id, r->orig,
			    r->target, (double)now.tv_sec + now.tv_usec / 1e6 -
			    s->tx->env.arrival);
			log_info("%s: removed", id);
			log_release();
			stats.delivered++;
			tx_reset(s);
		} else {
			log_release();
			tx_reset(s);
			s->srv->queued(s->srv->queued_arg, id);
		}
	} else {
		log_warnx("[%s]:%d cannot queue: %s", s->addr, s->port, e->msg);
		reply(s, (e->errnum == ENOSPC || e->errnum == EDQUOT) ?
		    REPLY_NO_STORAGE : REPLY_QUEUE_ERROR);
		stats.rejected++;
		tx_reset(s);
	}
	/* Commands pipelined behind the data (QUIT...). A session they
	 * close is freed by the write callback, never here: after its reply
	 * drains, or at once (deferred) when it went straight out. */
	bufferevent_enable(s->bev, EV_READ);
	process_input(s);
}

/* On the commit thread. */
static void
commit_work(void *arg)
{
	struct commit_batch *b = arg;

	spool_commit_batch(b->srv->spool, b->msgs, b->n, b->results, b->errs);
}

static void	submit_commit(struct smtp_server *srv);

/* Back on the loop. */
static void
commit_batch_done(void *arg)
{
	struct commit_batch *b = arg;
	struct smtp_server *srv = b->srv;

	srv->commit_out = NULL;
	for (size_t i = 0; i < b->n; i++) {
		if (b->sessions[i])
			commit_done(b->sessions[i], b->msgs[i], b->results[i],
			    &b->errs[i]);
		else if (b->results[i] == 0)
			/* The client left before its 250: never acknowledged,
			 * so not delivered (it will send again). */
			spool_msg_uncommit(b->msgs[i]);
		spool_msg_free(b->msgs[i]);
	}
	free(b->sessions);
	free(b->msgs);
	free(b->results);
	free(b->errs);
	free(b);
	submit_commit(srv);
}

/*
 * Hands the waiting messages to the commit thread, one batch at a time:
 * while it syncs, the next batch gathers (group commit), and the loop
 * keeps serving every other session.
 */
static void
submit_commit(struct smtp_server *srv)
{
	struct commit_batch *b;
	size_t n = srv->ncommit;

	if (srv->commit_out != NULL || n == 0)
		return;
	b = xcalloc(1, sizeof(*b));
	b->srv = srv;
	b->n = n;
	b->sessions = srv->commit_wait;
	b->msgs = xcalloc(n, sizeof(*b->msgs));
	b->results = xcalloc(n, sizeof(*b->results));
	b->errs = xcalloc(n, sizeof(*b->errs));
	for (size_t i = 0; i < n; i++) {
		b->msgs[i] = b->sessions[i]->tx->msg;
		b->sessions[i]->tx->msg = NULL;
	}
	srv->commit_wait = NULL;
	srv->ncommit = srv->commit_size = 0;
	srv->commit_out = b;
	worker_submit(srv->committer, commit_work, commit_batch_done, b);
}

static void
group_commit(evutil_socket_t fd, short what, void *arg)
{
	submit_commit(arg);
}

/* Appends automaton output to the spool, enforcing max_message_size. */
static void
store_data(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *tx = s->tx;
	struct err e;

	if (tx->msg == NULL || tx->is_too_big || tx->has_write_error ||
	    len == 0)
		return;
	if (tx->data.out_len > cfg_of(s)->max_message_size) {
		tx->is_too_big = true;
		return;
	}
	err_clear(&e);
	if (spool_msg_write(tx->msg, data, len, &e) == -1) {
		log_warnx("[%s]:%d cannot queue: %s", s->addr, s->port, e.msg);
		tx->has_write_error = true;
		tx->is_out_of_space = e.errnum == ENOSPC || e.errnum == EDQUOT;
	}
}

/* Feeds DATA bytes; returns true when the end of data was reached. */
static bool
read_data(struct smtp_session *s, struct evbuffer *in)
{
	struct smtp_tx *tx = s->tx;

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t n, used, outlen;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < SCRATCH_SIZE ? v.iov_len : SCRATCH_SIZE;
		used = smtp_data_feed(&tx->data, v.iov_base, n,
		    s->srv->scratch, &outlen);
		store_data(s, s->srv->scratch, outlen);
		evbuffer_drain(in, used);
		if (tx->data.state == SMTP_DATA_DONE)
			return true;
	}
	return false;
}

/* Reads BDAT chunk bytes; returns true when the chunk is complete. */
static bool
read_bdat(struct smtp_session *s, struct evbuffer *in)
{
	struct smtp_tx *tx = s->tx;

	while (tx->bdat_left > 0 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t n, outlen;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < SCRATCH_SIZE ? v.iov_len : SCRATCH_SIZE;
		if (n > tx->bdat_left)
			n = (size_t)tx->bdat_left;
		if (!tx->is_bdat_refused) {
			smtp_data_feed(&tx->data, v.iov_base, n,
			    s->srv->scratch, &outlen);
			store_data(s, s->srv->scratch, outlen);
		}
		evbuffer_drain(in, n);
		tx->bdat_left -= n;
	}
	return tx->bdat_left == 0;
}

static void
end_bdat_chunk(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx->bdat_last) {
		finish_message(s);
		return;
	}
	enter_state(s, SMTP_STATE_RCPT);
	if (tx->is_bdat_refused) {
		reply(s, (enum reply_id)tx->bdat_refusal ? (enum reply_id)
		    tx->bdat_refusal : REPLY_QUEUE_ERROR);
		/* A refused first chunk leaves no transaction behind. */
		if (tx->bdat_refusal == REPLY_NEED_HELO ||
		    tx->bdat_refusal == REPLY_NEED_MAIL) {
			tx_free(tx);
			s->tx = NULL;
			enter_state(s, s->helo[0] ? SMTP_STATE_HELO :
			    SMTP_STATE_CONNECTED);
		}
		return;
	}
	reply(s, REPLY_BDAT_OK, tx->bdat_chunk);
}

/* ---- input ---------------------------------------------------------- */

/* Handles one line that ended with LF at offset eol (exclusive of LF). */
static void
read_command_line(struct smtp_session *s, struct evbuffer *in, size_t eol)
{
	char line[SMTP_CMD_LINE_MAX + 2];
	size_t len = eol;

	evbuffer_remove(in, line, eol + 1);
	if (s->is_trace) {
		/* Never log credentials: SASL responses and AUTH arguments. */
		if (s->state == SMTP_STATE_AUTH)
			log_info("[%s]:%d < (SASL response)", s->addr, s->port);
		else if (len >= 5 && strncasecmp(line, "AUTH ", 5) == 0)
			log_info("[%s]:%d < AUTH (arguments hidden)", s->addr,
			    s->port);
		else
			log_info("[%s]:%d < %.*s", s->addr, s->port,
			    (int)(len && line[len - 1] == '\r' ? len - 1 :
			    len), line);
	}
	if (len == 0 || line[len - 1] != '\r') {
		reply(s, REPLY_BARE_LF);
		return;
	}
	len--;
	if (memchr(line, '\r', len) != NULL) {
		reply(s, REPLY_BARE_CR);
		return;
	}
	if (s->state == SMTP_STATE_AUTH) {
		line[len] = '\0';
		auth_response(s, line);
		mem_wipe(line, len);
		return;
	}
	handle_command(s, line, len);
}

/*
 * Only CRLF ends a command line (RFC 5321 §2.3.8). A line with a bare LF
 * in it is refused whole, up to its CRLF, with one reply: the text after
 * a bare LF is never run as a command of its own. An over-long line is
 * dropped as it arrives, so it never takes more than INPUT_MAX.
 */
static void
read_commands(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr p, q;
	size_t avail = evbuffer_get_length(in);
	char before = '\0';
	bool has_cr;

	p = evbuffer_search(in, "\n", 1, NULL);
	if (p.pos == -1) {
		/*
		 * command_timeout bounds a whole command, not each byte: a
		 * client trickling a byte now and then cannot hold the
		 * session (RFC 5321 §4.5.3.2.7).
		 */
		time_t now = time(NULL);

		if (s->line_started == 0)
			s->line_started = now;
		else if (now - s->line_started >= cfg_of(s)->command_timeout) {
			log_info("[%s]:%d timeout: command line not finished "
			    "within %lds", s->addr, s->port,
			    cfg_of(s)->command_timeout);
			evbuffer_drain(in, avail);
			reply(s, REPLY_TIMEOUT, cfg_of(s)->hostname);
			close_after_reply(s);
			return;
		}
		if (avail > SMTP_CMD_LINE_MAX + 1) {
			evbuffer_ptr_set(in, &q, avail - 1, EVBUFFER_PTR_SET);
			evbuffer_copyout_from(in, &q, &before, 1);
			s->drained_cr = before == '\r';
			evbuffer_drain(in, avail);
			if (s->line_fault == LINE_OK)
				s->line_fault = LINE_TOO_LONG;
		}
		return;
	}
	s->line_started = 0;
	if (p.pos > 0) {
		evbuffer_ptr_set(in, &q, (size_t)p.pos - 1, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &q, &before, 1);
		has_cr = before == '\r';
	} else
		has_cr = s->drained_cr;
	s->drained_cr = false;
	if (!has_cr) {
		evbuffer_drain(in, (size_t)p.pos + 1);
		if (s->line_fault == LINE_OK)
			log_warnx("[%s]:%d bare LF in a command line", s->addr,
			    s->port);
		s->line_fault = LINE_BARE_LF;
		return;
	}
	if (s->line_fault != LINE_OK || (size_t)p.pos > SMTP_CMD_LINE_MAX + 1) {
		evbuffer_drain(in, (size_t)p.pos + 1);
		if (s->line_fault == LINE_BARE_LF)
			reply(s, REPLY_BARE_LF);
		else {
			log_warnx("[%s]:%d command line too long", s->addr,
			    s->port);
			reply(s, REPLY_LINE_TOO_LONG);
		}
		s->line_fault = LINE_OK;
		return;
	}
	read_command_line(s, in, (size_t)p.pos);
}

static void
process_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (s->state != SMTP_STATE_CLOSING) {
		size_t before = evbuffer_get_length(in);
		enum line_fault fault = s->line_fault;

		/* BDAT 0 has no bytes to wait for. */
		if (s->state == SMTP_STATE_BDAT && s->tx->bdat_left == 0) {
			end_bdat_chunk(s);
			continue;
		}
		if (before == 0 || s->state == SMTP_STATE_WAIT ||
		    s->state == SMTP_STATE_TLS || s->state == SMTP_STATE_COMMIT)
			break;
		if (s->state == SMTP_STATE_PROXY) {
			read_proxy_header(s, in);
			if (s->state == SMTP_STATE_PROXY)
				break;		/* need more input */
		} else if (s->state == SMTP_STATE_DATA) {
			if (!read_data(s, in))
				break;
			finish_message(s);
		} else if (s->state == SMTP_STATE_BDAT) {
			if (!read_bdat(s, in))
				break;
			end_bdat_chunk(s);
		} else {
			read_commands(s, in);
			if (evbuffer_get_length(in) == before &&
			    s->line_fault == fault)
				break;		/* need more input */
		}
		if (s->state != SMTP_STATE_CLOSING && check_errors(s))
			return;
		if (s->is_quitting && s->tx == NULL &&
		    s->state != SMTP_STATE_CLOSING) {
			reply(s, REPLY_SHUTDOWN, cfg_of(s)->hostname);
			close_after_reply(s);
			return;
		}
	}
	/* A client that does not read its replies stops being read. */
	if (s->state != SMTP_STATE_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_MAX)
		bufferevent_disable(s->bev, EV_READ);
}

static void
session_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	process_input(s);
	/* A session is only ever freed here, after the last use. */
	if (s->state == SMTP_STATE_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_free(s);
}

static void
session_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == SMTP_STATE_CLOSING) {
		session_free(s);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		process_input(s);
		if (s->state == SMTP_STATE_CLOSING &&
		    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_free(s);
	}
}

static void
session_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SMTP_STATE_TLS)
			tls_established(s);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && s->state == SMTP_STATE_TLS) {
		unsigned long code = bufferevent_get_openssl_error(bev);
		char text[256] = "connection closed";

		if (code)
			ERR_error_string_n(code, text, sizeof(text));
		log_warnx("[%s]:%d TLS handshake failed: %s", s->addr, s->port,
		    text);
		session_free(s);
		return;
	}

	if ((what & BEV_EVENT_TIMEOUT) && s->state == SMTP_STATE_COMMIT) {
		/* The wait is ours (a slow disk), not the client's: reading
		 * goes on, its timeout started again. */
		bufferevent_enable(s->bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("[%s]:%d timeout in state %s", s->addr, s->port,
		    smtp_state_names[s->state]);
		if (s->state == SMTP_STATE_CLOSING) {
			session_free(s);
			return;
		}
		reply(s, REPLY_TIMEOUT, cfg_of(s)->hostname);
		close_after_reply(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->tx && s->tx->msg)
			log_info("[%s]:%d lost connection in state %s, message "
			    "not accepted", s->addr, s->port,
			    smtp_state_names[s->state]);
		session_free(s);
	}
}

/* ---- sessions and listeners ----------------------------------------- */

static void
linger_done(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev);
}

static void
linger_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

/*
 * Ends TLS with a close_notify (RFC 8446 §6.1) and lets the socket drain
 * it for a bounded time on its own, detached from the session.
 */
static void
close_tls(struct bufferevent *tls, struct bufferevent *raw)
{
	SSL *ssl = bufferevent_openssl_get_ssl(tls);

	if (ssl)
		(void)SSL_shutdown(ssl);
	bufferevent_free(tls);
	SSL_free(ssl);
	ERR_clear_error();
	bufferevent_setcb(raw, NULL, linger_done, linger_event, NULL);
	bufferevent_disable(raw, EV_READ);
	bufferevent_set_timeouts(raw, NULL, &(struct timeval){ 5, 0 });
	bufferevent_enable(raw, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(raw)) == 0)
		bufferevent_free(raw);
}

static void
server_maybe_done(struct smtp_server *srv)
{
	smtp_server_done_fn done = srv->done;

	if (!srv->is_stopping || srv->nsessions > 0 || done == NULL)
		return;
	srv->done = NULL;
	if (srv->grace_ev) {
		event_free(srv->grace_ev);
		srv->grace_ev = NULL;
	}
	done(srv->done_arg);
}

static void
session_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	log_info("disconnect from [%s]:%d commands=%u messages=%u", s->addr,
	    s->port, s->ncommands, s->nmessages);
	if (s->is_in_commit) {
		/* Gone before its 250: the message is dropped, not queued. */
		for (size_t i = 0; i < srv->ncommit; i++)
			if (srv->commit_wait[i] == s) {
				srv->commit_wait[i] =
				    srv->commit_wait[--srv->ncommit];
				break;
			}
		for (size_t i = 0; srv->commit_out &&
		    i < srv->commit_out->n; i++)
			if (srv->commit_out->sessions[i] == s)
				srv->commit_out->sessions[i] = NULL;
	}
	tx_free(s->tx);
	s->tx = NULL;
	if (s->auth_check)
		auth_check_cancel(s->auth_check);
	if (s->auth_delay)
		event_free(s->auth_delay);
	free(s->auth_user);
	if (s->is_counted_ip)
		climit_del(srv->climit, (struct sockaddr *)&s->peer);
	if (s->raw_bev)
		close_tls(s->bev, s->raw_bev);
	else
		bufferevent_free(s->bev);
	runtime_unref(s->rt);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	stats.sessions--;
	free(s);
	server_maybe_done(srv);
}

static void
sockaddr_text(const struct sockaddr *sa, char *addr, size_t size, int *port)
{
	addr[0] = '\0';
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)size);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
		/* Show IPv4-mapped clients as IPv4. */
		if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr, '.'))
			memmove(addr, addr + 7, strlen(addr + 7) + 1);
	} else
		str_copy(addr, "local", size);
}

/*
 * The client's address is known (the socket's, or the one a PROXY header
 * carried): the policies that depend on it, the limits, the greeting.
 */
static void
session_start(struct smtp_session *s, const struct sockaddr *sa,
    socklen_t salen)
{
	struct smtp_server *srv = s->srv;
	const struct config *c = s->rt->cfg;
	unsigned per_ip = 0;
	char greeting[300];

	memcpy(&s->peer, sa, (size_t)salen < sizeof(s->peer) ?
	    (size_t)salen : sizeof(s->peer));
	sockaddr_text(sa, s->addr, sizeof(s->addr), &s->port);
	s->in_relay_networks = cidr_match_any(c->relay_networks.v,
	    c->relay_networks.len, sa);
	s->is_loopback = strcmp(s->addr, "::1") == 0 ||
	    strncmp(s->addr, "127.", 4) == 0;
	s->is_trace = cidr_match_any(c->trace_clients.v, c->trace_clients.len,
	    sa);
	log_info("connect from [%s]:%d%s", s->addr, s->port,
	    s->is_submission ? " (submission)" : "");
	if (!s->in_relay_networks) {
		per_ip = climit_add(srv->climit, sa);
		s->is_counted_ip = true;
	}
	if (srv->nsessions > c->max_connections) {
		log_warnx("[%s]:%d refused: too many connections (%zu, "
		    "max_connections %u)", s->addr, s->port, srv->nsessions,
		    c->max_connections);
		reply(s, REPLY_TOO_MANY_CONN, c->hostname);
		close_after_reply(s);
		return;
	}
	if (srv->nsessions > srv->fd_sessions) {
		log_warnx("[%s]:%d refused: too many connections (%zu, the "
		    "open files limit %lu leaves room for %zu)", s->addr,
		    s->port, srv->nsessions, fdlimit_current(),
		    srv->fd_sessions);
		reply(s, REPLY_TOO_MANY_CONN, c->hostname);
		close_after_reply(s);
		return;
	}
	if (per_ip > c->max_connections_per_ip) {
		log_warnx("[%s]:%d refused: too many connections from this "
		    "address (%u, max_connections_per_ip %u)", s->addr,
		    s->port, per_ip, c->max_connections_per_ip);
		reply(s, REPLY_TOO_MANY_CONN_IP, c->hostname, s->addr);
		close_after_reply(s);
		return;
	}
	if (srv->is_stopping) {
		reply(s, REPLY_SHUTDOWN, c->hostname);
		close_after_reply(s);
		return;
	}
	enter_state(s, SMTP_STATE_CONNECTED);
	snprintf(greeting, sizeof(greeting), "%s ESMTP smtpgate", c->hostname);
	reply_line(s, 220, false, NULL, greeting);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/*
 * proxy_protocol = yes: the first bytes are HAProxy's PROXY header (v1 or
 * v2), and the client is the address it names. Anything else closes the
 * connection without a word: the peer is a load balancer, not a client.
 */
static void
read_proxy_header(struct smtp_session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in), used = 0;
	size_t n = avail < PROXY_HEADER_MAX ? avail : PROXY_HEADER_MAX;
	const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
	struct proxy_info info;
	struct err e;

	err_clear(&e);
	switch (proxy_parse(p, n, &info, &used, &e)) {
	case PROXY_NEED_MORE:
		return;
	case PROXY_ERROR:
		log_warnx("[%s]:%d PROXY protocol: %s; closing", s->addr,
		    s->port, e.msg);
		evbuffer_drain(in, avail);
		enter_state(s, SMTP_STATE_CLOSING);
		bufferevent_disable(s->bev, EV_READ);
		return;
	case PROXY_DONE:
		break;
	}
	evbuffer_drain(in, used);
	if (info.is_local)
		session_start(s, (struct sockaddr *)&s->peer, sizeof(s->peer));
	else
		session_start(s, (struct sockaddr *)&info.src,
		    info.src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
		    : sizeof(struct sockaddr_in6));
}

static void
on_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct smtp_server *srv = l->srv;
	const struct config *c = srv->rt->cfg;
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->srv = srv;
	s->rt = runtime_ref(srv->rt);
	s->is_submission = l->is_submission;
	memcpy(&s->peer, sa, (size_t)salen < sizeof(s->peer) ?
	    (size_t)salen : sizeof(s->peer));
	sockaddr_text(sa, s->addr, sizeof(s->addr), &s->port);
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warnx("[%s]:%d cannot set up connection", s->addr, s->port);
		(void)close(fd);
		runtime_unref(s->rt);
		free(s);
		return;
	}
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	stats.sessions++;
	stats.connections++;
	bufferevent_setcb(s->bev, session_read, session_write, session_event,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_MAX);
	bufferevent_set_timeouts(s->bev, &(struct timeval){
	    c->command_timeout, 0 }, NULL);
	if (c->proxy_protocol) {
		s->state = SMTP_STATE_PROXY;
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	session_start(s, sa, (socklen_t)salen);
}

/* Out of descriptors or memory: this listener pauses (listen_pause);
 * the sessions being served go on. */
static void
on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	char detail[96];

	snprintf(detail, sizeof(detail), " (%zu sessions, open files limit "
	    "%lu)", l->srv->nsessions, fdlimit_current());
	listen_pause(evl, l->resume_ev, l->is_submission ?
	    "submission listener" : "listener", detail);
}

/*
 * Each session holds a socket, and one in a transaction a spool file as
 * well; deliveries hold a socket and a file or two, the spool's files made
 * ahead up to a sixteenth of the limit, and the loop, the journal, DNS and
 * the listeners a few more. Sessions beyond what the open-files limit
 * leaves after that (a quarter and some) are told 421 at once rather than
 * left unanswered in the listen queue.
 */
static void
size_to_fd_limit(struct smtp_server *srv, const struct config *c)
{
	unsigned long limit = fdlimit_current();
	unsigned long reserve = FD_RESERVE + 3UL * c->delivery_concurrency +
	    limit / 4;

	if (reserve > limit / 2)
		reserve = limit / 2;
	srv->fd_sessions = limit - reserve;
	if (srv->fd_sessions < c->max_connections)
		log_warnx("the open files limit %lu leaves room for %zu "
		    "sessions, fewer than max_connections %u: the rest are "
		    "refused with 421 (raise LimitNOFILE= or ulimit -n)",
		    limit, srv->fd_sessions, c->max_connections);
}

struct smtp_server *
smtp_server_new(struct event_base *base, struct spool *sp, struct runtime *rt,
    smtp_server_queued_fn queued, void *arg)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->spool = sp;
	srv->rt = runtime_ref(rt);
	srv->queued = queued;
	srv->queued_arg = arg;
	srv->climit = climit_new();
	size_to_fd_limit(srv, rt->cfg);
	srv->scratch = xmalloc(SCRATCH_SIZE);
	srv->commit_ev = event_new(base, -1, 0, group_commit, srv);
	srv->committer = worker_new(base);
	if (srv->committer == NULL)
		fatalx(71, "cannot start the commit thread");
	return srv;
}

static void
close_listeners(struct smtp_server *srv)
{
	struct listener *l, *next;

	for (l = srv->listeners; l; l = next) {
		next = l->next;
		evconnlistener_free(l->evl);
		event_free(l->resume_ev);
		free(l);
	}
	srv->listeners = NULL;
}

void
smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	srv->done = NULL;
	close_listeners(srv);
	while (srv->sessions)
		session_free(srv->sessions);
	if (srv->grace_ev)
		event_free(srv->grace_ev);
	climit_free(srv->climit);
	runtime_unref(srv->rt);
	free(srv->scratch);
	/* Sessions are gone: a batch still syncing is finished and its
	 * messages, acknowledged to nobody, removed. */
	worker_free(srv->committer);
	free(srv->commit_wait);
	event_free(srv->commit_ev);
	free(srv);
}

void
smtp_server_set_runtime(struct smtp_server *srv, struct runtime *rt)
{
	struct runtime *old = srv->rt;

	srv->rt = runtime_ref(rt);
	runtime_unref(old);
	size_to_fd_limit(srv, rt->cfg);
}

int
smtp_server_listen(struct smtp_server *srv, int fd, bool is_submission,
    struct err *e)
{
	struct listener *l = xcalloc(1, sizeof(*l));

	l->srv = srv;
	l->is_submission = is_submission;
	l->evl = evconnlistener_new(srv->base, on_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, fd);
	if (l->evl == NULL) {
		free(l);
		return err_set(e, "cannot listen on fd %d", fd);
	}
	evconnlistener_set_error_cb(l->evl, on_accept_error);
	l->resume_ev = listen_resume_new(srv->base, l->evl);
	l->next = srv->listeners;
	srv->listeners = l;
	return 0;
}

static void
grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	log_info("shutdown: grace period over, closing %zu session(s)",
	    srv->nsessions);
	while (srv->sessions)
		session_free(srv->sessions);
}

void
smtp_server_shutdown(struct smtp_server *srv, int grace,
    smtp_server_done_fn done, void *arg)
{
	struct smtp_session *s, *next;

	srv->is_stopping = true;
	srv->done = done;
	srv->done_arg = arg;
	close_listeners(srv);
	for (s = srv->sessions; s; s = next) {
		next = s->next;
		if (s->state == SMTP_STATE_CLOSING)
			continue;
		if (s->tx != NULL) {
			/* In a transaction: let it finish, then say 421. */
			s->is_quitting = true;
			continue;
		}
		reply(s, REPLY_SHUTDOWN, cfg_of(s)->hostname);
		close_after_reply(s);
	}
	if (srv->nsessions > 0) {
		struct timeval tv = { grace, 0 };

		srv->grace_ev = evtimer_new(srv->base, grace_expired, srv);
		evtimer_add(srv->grace_ev, &tv);
	}
	server_maybe_done(srv);
}

size_t
smtp_server_session_count(const struct smtp_server *srv)
{
	return srv->nsessions;
}
