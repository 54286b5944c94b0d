/*
 * sched.c - the queue manager. Layer: gate.
 *
 * Owns the list of messages ready for an attempt, the retry timers, the
 * set of messages with deliveries in flight, and the outbound deliverer.
 * For each message it loads envelope and state, delivers the local
 * recipients that are due into the postoffice (maildir.c) or hands them to
 * the LMTP server, hands the remote ones to deliver_remote.c grouped by
 * destination, and records every outcome in the state file.
 *
 * Defer versus bounce is decided here and nowhere else (record_result):
 * a permanent failure bounces; a temporary one defers with exponential
 * back-off between retry_min and retry_max until queue_lifetime, then
 * bounces. Bounces and delay warnings go out as DSNs (bounce.c); a message
 * from the null sender never earns one (its failures go to the
 * postmaster, and a failure on the way to the postmaster is quarantined,
 * never looped). Blocking Maildir I/O runs on the loop, one message per
 * turn at a priority below the sessions'.
 */
#include "gate/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/dsn.h"
#include "mail/envelope.h"
#include "mail/header.h"
#include "net/dns.h"
#include "net/worker.h"
#include "gate/bounce.h"
#include "gate/config.h"
#include "gate/deliver_remote.h"
#include "gate/maildir.h"
#include "gate/runtime.h"
#include "gate/spool.h"
#include "gate/stats.h"

#define INFLIGHT_BUCKETS	1024
#define RUN_BATCH		128	/* messages looked at per loop turn */
#define LOCAL_BATCH_MAX		1024	/* Maildir deliveries per sync */
#define LOCAL_BATCH_MIN		32	/* below this a batch waits... */
#define LOCAL_BATCH_WAIT_US	20000	/* ...at most this long */

struct retry {
	char		 id[SPOOL_ID_LEN + 1];
	struct event	*ev;
	struct sched	*sc;
	struct retry	*prev, *next;
};

/* A message with jobs out at deliver_remote. */
struct inflight {
	char		 id[SPOOL_ID_LEN + 1];
	unsigned	 njobs;
	bool		 is_rerun;	/* enqueued meanwhile: run again */
	struct inflight	*next;
};

/* One Maildir delivery of a local batch. */
struct local_item {
	char			 id[SPOOL_ID_LEN + 1];
	size_t			 index;		/* recipient */
	char			*mailbox;
	char			 name[512];	/* file name in new/ */
	struct buf		 prefix;	/* Return-Path, Delivered-To */
	int			 fd;		/* the queue file, dup'ed */
	off_t			 off;
	off_t			 len;
	int			 rc;
	struct err		 err;
	struct maildir_delivery	 md;
};

struct local_batch {
	struct sched		*sc;
	char			*postoffice;
	struct local_item	*items;
	size_t			 n, size;
};

struct sched {
	struct event_base	*base;
	struct spool		*sp;
	struct runtime		*rt;
	struct dns		*dns;
	struct deliver		*deliver;
	char			(*ready)[SPOOL_ID_LEN + 1];	/* ring */
	size_t			 ready_head, ready_len, ready_size;
	struct event		*run_ev;
	struct retry		*retries;
	struct inflight		*inflight[INFLIGHT_BUCKETS];
	long long		 flush_time;	/* last `queue flush` */
	struct worker		*worker;	/* Maildir batches */
	/* the worker's descriptor of the postoffice, for syncfs: kept open,
	 * since syncfs reports only the write-back errors that came after
	 * the descriptor was opened (or last reported) */
	int			 po_fd;
	char			*po_path;
	struct local_batch	*collecting;	/* being filled */
	bool			 is_batch_out;	/* one at the worker */
	bool			 is_queue_dirty; /* removals to fsync */
	bool			 is_sync_out;	/* a queue/ fsync at the worker */
	bool			 is_stopping;	/* sched_free: no more jobs */
	struct event		*batch_timer;	/* a small batch's wait */
	bool			 is_batch_timer_due;
};

static void	run_one(evutil_socket_t fd, short what, void *arg);
static void	delivered(void *arg, const char *id,
		    const struct deliver_result *res, size_t n);
static void	local_batch_free(struct local_batch *b);
static void	sync_removals(struct sched *sc);

long
sched_backoff(long retry_min, long retry_max, unsigned attempts)
{
	long d = retry_min;

	for (unsigned i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	return d < retry_max ? d : retry_max;
}

/* ---- in-flight set ---------------------------------------------------- */

static struct inflight **
inflight_slot(struct sched *sc, const char *id)
{
	size_t h = 5381;
	struct inflight **pp;

	for (const char *p = id; *p; p++)
		h = h * 33 + (unsigned char)*p;
	for (pp = &sc->inflight[h % INFLIGHT_BUCKETS]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, id) == 0)
			break;
	return pp;
}

static struct inflight *
inflight_get(struct sched *sc, const char *id)
{
	return *inflight_slot(sc, id);
}

static void
inflight_add(struct sched *sc, const char *id)
{
	struct inflight **pp = inflight_slot(sc, id), *f = *pp;

	if (f == NULL) {
		f = *pp = xcalloc(1, sizeof(*f));
		str_copy(f->id, id, sizeof(f->id));
	}
	f->njobs++;
}

/* One job of id is done; returns true (and forgets id) on the last. */
static bool
inflight_done(struct sched *sc, const char *id, bool *is_rerun)
{
	struct inflight **pp = inflight_slot(sc, id), *f = *pp;

	*is_rerun = false;
	if (f == NULL)
		return true;
	if (--f->njobs > 0)
		return false;
	*is_rerun = f->is_rerun;
	*pp = f->next;
	free(f);
	return true;
}

/* ---- life cycle --------------------------------------------------------- */

static void	submit_local_batch(struct sched *sc);

static void
batch_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct sched *sc = arg;

	sc->is_batch_timer_due = true;
	submit_local_batch(sc);
}

struct sched *
sched_new(struct event_base *base, struct spool *sp, struct runtime *rt)
{
	struct sched *sc = xcalloc(1, sizeof(*sc));
	const struct config *c = rt->cfg;
	struct err e;

	sc->base = base;
	sc->sp = sp;
	sc->rt = runtime_ref(rt);
	sc->run_ev = event_new(base, -1, 0, run_one, sc);
	/* Below the sessions (priority 0): delivery never starves them. */
	event_priority_set(sc->run_ev, 1);
	err_clear(&e);
	sc->dns = dns_new(base, c->dns_servers.v, c->dns_servers.len, &e);
	if (sc->dns == NULL)
		fatalx(78, "dns_servers: %s", e.msg);
	sc->deliver = deliver_new(base, sc->dns, rt, delivered, sc);
	sc->batch_timer = evtimer_new(base, batch_timer_fired, sc);
	sc->po_fd = -1;
	sc->worker = worker_new(base);
	if (sc->worker == NULL)
		fatalx(71, "cannot start the delivery thread");
	return sc;
}

static void
retry_free(struct retry *r)
{
	struct sched *sc = r->sc;

	if (r->prev)
		r->prev->next = r->next;
	else
		sc->retries = r->next;
	if (r->next)
		r->next->prev = r->prev;
	event_free(r->ev);
	free(r);
}

void
sched_free(struct sched *sc)
{
	if (sc == NULL)
		return;
	/* Batches out at the worker are finished and recorded first. */
	sc->is_stopping = true;
	worker_free(sc->worker);
	sc->worker = NULL;
	sync_removals(sc);
	local_batch_free(sc->collecting);
	event_free(sc->batch_timer);
	deliver_free(sc->deliver);
	dns_free(sc->dns);
	while (sc->retries)
		retry_free(sc->retries);
	for (size_t i = 0; i < INFLIGHT_BUCKETS; i++)
		while (sc->inflight[i]) {
			struct inflight *f = sc->inflight[i];
			sc->inflight[i] = f->next;
			free(f);
		}
	event_free(sc->run_ev);
	free(sc->ready);
	if (sc->po_fd != -1)
		(void)close(sc->po_fd);
	free(sc->po_path);
	runtime_unref(sc->rt);
	free(sc);
}

void
sched_set_runtime(struct sched *sc, struct runtime *rt)
{
	struct runtime *old = sc->rt;

	/* dns_servers keep their start-up value: resolvers in use by
	 * pending look-ups cannot be swapped. */
	sc->rt = runtime_ref(rt);
	deliver_set_runtime(sc->deliver, rt);
	runtime_unref(old);
}

size_t
sched_ready_count(const struct sched *sc)
{
	return sc->ready_len;
}

void
sched_enqueue(struct sched *sc, const char *id)
{
	if (sc->ready_len == sc->ready_size) {
		size_t nsize = sc->ready_size ? sc->ready_size * 2 : 64;
		char (*nv)[SPOOL_ID_LEN + 1] = xcalloc(nsize, sizeof(*nv));

		for (size_t i = 0; i < sc->ready_len; i++)
			memcpy(nv[i], sc->ready[(sc->ready_head + i) %
			    sc->ready_size], sizeof(*nv));
		free(sc->ready);
		sc->ready = nv;
		sc->ready_size = nsize;
		sc->ready_head = 0;
	}
	str_copy(sc->ready[(sc->ready_head + sc->ready_len) % sc->ready_size],
	    id, SPOOL_ID_LEN + 1);
	sc->ready_len++;
	event_active(sc->run_ev, 0, 0);
}

static void
retry_fire(evutil_socket_t fd, short what, void *arg)
{
	struct retry *r = arg;
	struct sched *sc = r->sc;
	char id[SPOOL_ID_LEN + 1];

	str_copy(id, r->id, sizeof(id));
	retry_free(r);
	sched_enqueue(sc, id);
}

static void
cancel_retry(struct sched *sc, const char *id)
{
	for (struct retry *r = sc->retries, *next; r; r = next) {
		next = r->next;
		if (strcmp(r->id, id) == 0)
			retry_free(r);
	}
}

static void
schedule_retry(struct sched *sc, const char *id, long long when)
{
	struct retry *r = xcalloc(1, sizeof(*r));
	long long now = time(NULL);
	struct timeval tv = { when > now ? (time_t)(when - now) : 0, 0 };

	cancel_retry(sc, id);
	str_copy(r->id, id, sizeof(r->id));
	r->sc = sc;
	r->ev = evtimer_new(sc->base, retry_fire, r);
	r->next = sc->retries;
	if (sc->retries)
		sc->retries->prev = r;
	sc->retries = r;
	evtimer_add(r->ev, &tv);
}

static double
now_seconds(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* ---- outcomes: defer or bounce, decided here only ----------------------- */

/*
 * Records one delivery outcome of recipient i and logs it. Returns true
 * when the recipient bounced now (a DSN is due).
 */
static bool
record_result(struct sched *sc, const char *id, struct envelope *env,
    size_t i, enum deliver_status st, const char *enhanced, const char *reply,
    const char *relay)
{
	const struct config *c = sc->rt->cfg;
	struct rcpt *r = &env->rcpts[i];
	long long now = time(NULL);
	double delay = now_seconds() - env->arrival;
	const char *who = r->kind == RCPT_REMOTE ? r->target : r->orig;

	r->attempts++;
	r->last_try = now;
	str_copy(r->dsn_status, enhanced ? enhanced : "",
	    sizeof(r->dsn_status));
	free(r->reply);
	r->reply = xstrdup(reply);
	free(r->relay);
	r->relay = xstrdup(relay);
	if (st == DELIVER_TEMPFAIL &&
	    now - (long long)env->arrival >= c->queue_lifetime) {
		char *why = xasprintf("%s (gave up after queue_lifetime %lds)",
		    reply, c->queue_lifetime);
		free(r->reply);
		r->reply = why;
		/* The DSN keeps the last temporary status, which says why
		 * (as Postfix does); "Action: failed" says it is final. */
		st = DELIVER_PERMFAIL;
	}
	switch (st) {
	case DELIVER_SENT:
		r->status = RCPT_SENT;
		stats.delivered++;
		break;
	case DELIVER_TEMPFAIL:
		r->status = RCPT_DEFERRED;
		r->next_try = now + sched_backoff(c->retry_min, c->retry_max,
		    r->attempts);
		stats.deferred++;
		break;
	case DELIVER_PERMFAIL:
		r->status = RCPT_BOUNCED;
		stats.bounced++;
		break;
	}
	log_info("%s: to=<%s>%s%s%s relay=%s delay=%.2f status=%s (%s)", id,
	    who, strcmp(who, r->orig) ? " orig_to=<" : "",
	    strcmp(who, r->orig) ? r->orig : "", strcmp(who, r->orig) ? ">" :
	    "", relay, delay, rcpt_status_names[r->status], r->reply);
	return r->status == RCPT_BOUNCED;
}

/* ---- local delivery into Maildir, in batches ----------------------------- */

static void	submit_local_batch(struct sched *sc);

static void
local_batch_free(struct local_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].mailbox);
		buf_clear(&b->items[i].prefix);
		if (b->items[i].fd != -1)
			(void)close(b->items[i].fd);
	}
	free(b->items);
	free(b->postoffice);
	free(b);
}

/* Adds recipient i of message id to the batch being collected. */
static void
add_local_item(struct sched *sc, const char *id, const struct envelope *env,
    size_t i, int fd, off_t off)
{
	const struct config *c = sc->rt->cfg;
	struct local_batch *b = sc->collecting;
	struct local_item *it;

	if (b == NULL) {
		b = sc->collecting = xcalloc(1, sizeof(*b));
		b->sc = sc;
		b->postoffice = xstrdup(c->postoffice_dir);
	}
	if (b->n == b->size) {
		b->size = b->size ? b->size * 2 : 64;
		b->items = xreallocarray(b->items, b->size, sizeof(*b->items));
	}
	it = &b->items[b->n++];
	memset(it, 0, sizeof(*it));
	str_copy(it->id, id, sizeof(it->id));
	it->index = i;
	it->mailbox = xstrdup(env->rcpts[i].target);
	buf_init(&it->prefix);
	header_local_prefix(&it->prefix, env->sender, env->rcpts[i].orig);
	it->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	it->off = off;
	it->len = (off_t)env->data_len;
	err_clear(&it->err);
	if (it->fd == -1) {
		it->rc = err_sys(&it->err, "cannot reopen the queue file");
		return;
	}
	if (maildir_queue_name(it->name, sizeof(it->name),
	    (long long)env->arrival, id, i, c->hostname) == -1)
		it->rc = err_set(&it->err, "maildir: host name too long for a "
		    "file name");
}

/* On the worker thread: sc->po_fd open on postoffice, opened before the
 * batch writes anything so that its syncfs sees their errors. */
static void
postoffice_fd(struct sched *sc, const char *postoffice)
{
	if (sc->po_fd != -1 && strcmp(sc->po_path, postoffice) == 0)
		return;
	if (sc->po_fd != -1)
		(void)close(sc->po_fd);
	free(sc->po_path);
	sc->po_path = xstrdup(postoffice);
	sc->po_fd = open(postoffice, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * On the worker thread: every file written, one sync of the postoffice's
 * file system for all of them, each linked into new/, each new/ synced
 * once. Only then is a delivery counted as done.
 */
static void
local_batch_work(void *arg)
{
	struct local_batch *b = arg;
	struct sched *sc = b->sc;
	struct err e;
	size_t nprepared = 0;
	int rc;

	postoffice_fd(sc, b->postoffice);
	for (size_t i = 0; i < b->n; i++) {
		struct local_item *it = &b->items[i];

		if (it->rc == -1)
			continue;
		it->rc = maildir_prepare(&it->md, b->postoffice, it->mailbox,
		    it->name, it->prefix.data, it->prefix.len, it->fd, it->off,
		    it->len, &it->err);
		if (it->rc == 0 && it->md.state == MAILDIR_PREPARED)
			nprepared++;
	}
	if (nprepared > 0) {
		postoffice_fd(sc, b->postoffice);	/* if made meanwhile */
		rc = sc->po_fd == -1 ? -1 : syncfs(sc->po_fd);
		if (rc == -1)
			err_sys(&e, "maildir: sync %s", b->postoffice);
		for (size_t i = 0; i < b->n; i++) {
			struct local_item *it = &b->items[i];

			if (it->rc == -1 || it->md.state != MAILDIR_PREPARED)
				continue;
			if (rc == -1) {
				maildir_discard(&it->md);
				it->err = e;
				it->rc = -1;
			} else
				it->rc = maildir_publish(&it->md, &it->err);
		}
	}
	/* Each new/ directory once (the same mailbox often repeats). */
	for (size_t i = 0; i < b->n; i++) {
		struct local_item *it = &b->items[i];
		bool seen = false;

		if (it->rc == -1 || it->md.state != MAILDIR_PUBLISHED)
			continue;
		for (size_t k = 0; k < i && !seen; k++)
			seen = b->items[k].rc == 0 &&
			    b->items[k].md.state == MAILDIR_PUBLISHED &&
			    strcmp(b->items[k].md.newdir, it->md.newdir) == 0;
		if (seen || fsio_fsync_dir(it->md.newdir, &e) == 0)
			continue;
		/* Not durable: take back every copy in that directory. */
		for (size_t k = i; k < b->n; k++)
			if (b->items[k].rc == 0 && strcmp(b->items[k].md.newdir,
			    it->md.newdir) == 0 &&
			    b->items[k].md.state == MAILDIR_PUBLISHED) {
				maildir_unpublish(&b->items[k].md);
				b->items[k].err = e;
				b->items[k].rc = -1;
			}
	}
}

static void	finish_round(struct sched *sc, const char *id,
		    struct envelope *env, int fd, off_t off,
		    const bool *bounced_now);
static bool	record_result(struct sched *sc, const char *id,
		    struct envelope *env, size_t i, enum deliver_status st,
		    const char *enhanced, const char *reply, const char *relay);

/* Back on the loop: the outcomes, message by message. */
static void
local_batch_done(void *arg)
{
	struct local_batch *b = arg;
	struct sched *sc = b->sc;

	for (size_t i = 0; i < b->n; ) {
		const char *id = b->items[i].id;
		struct envelope env;
		struct err e;
		bool *bounced = NULL, rerun;
		int fd = -1;
		off_t off = 0;
		size_t end = i;

		while (end < b->n && strcmp(b->items[end].id, id) == 0)
			end++;
		envelope_init(&env);
		err_clear(&e);
		if (spool_load(sc->sp, id, &env, &fd, &off, &e) == -1) {
			if (e.errnum != ENOENT)
				log_warnx("%s: cannot record deliveries: %s",
				    id, e.msg);
			(void)inflight_done(sc, id, &rerun);
			envelope_clear(&env);
			i = end;
			continue;
		}
		bounced = xcalloc(env.nrcpts, sizeof(*bounced));
		for (size_t k = i; k < end; k++) {
			struct local_item *it = &b->items[k];
			char relay[320];

			if (it->index >= env.nrcpts)
				continue;
			snprintf(relay, sizeof(relay), "local mailbox=%s",
			    it->mailbox);
			/* A local disk problem is temporary: never a bounce
			 * before queue_lifetime. */
			bounced[it->index] = record_result(sc, id, &env,
			    it->index, it->rc == 0 ? DELIVER_SENT :
			    DELIVER_TEMPFAIL, it->rc == 0 ? "2.0.0" : "4.3.0",
			    it->rc == 0 ? (it->md.state ==
			    MAILDIR_ALREADY ? "delivered to maildir (by an "
			    "earlier attempt)" : "delivered to maildir") :
			    it->err.msg, relay);
		}
		if (inflight_done(sc, id, &rerun))
			finish_round(sc, id, &env, fd, off, bounced);
		else if (spool_save_state(sc->sp, id, &env, &e) == -1)
			log_warnx("%s: cannot save delivery state: %s", id,
			    e.msg);
		if (rerun)
			sched_enqueue(sc, id);
		if (fd != -1)
			(void)close(fd);
		free(bounced);
		envelope_clear(&env);
		i = end;
	}
	local_batch_free(b);
	sc->is_batch_out = false;
	sync_removals(sc);
	submit_local_batch(sc);
}

/* Hands the collected batch to the worker, one batch at a time: while
 * it syncs, the next one fills up (group commit). */
static void
submit_local_batch(struct sched *sc)
{
	if (sc->is_batch_out || sc->collecting == NULL)
		return;
	/*
	 * A small batch waits a few milliseconds for company: each batch
	 * costs two syncs however small it is, and they compete with the
	 * syncs that acknowledge new mail.
	 */
	if (sc->collecting->n < LOCAL_BATCH_MIN && !sc->is_batch_timer_due) {
		if (!evtimer_pending(sc->batch_timer, NULL))
			event_add(sc->batch_timer, &(struct timeval){ 0,
			    LOCAL_BATCH_WAIT_US });
		return;
	}
	sc->is_batch_timer_due = false;
	evtimer_del(sc->batch_timer);
	sc->is_batch_out = true;
	worker_submit(sc->worker, local_batch_work, local_batch_done,
	    sc->collecting);
	sc->collecting = NULL;
}

/* ---- notifications ---------------------------------------------------- */

/*
 * A notification to the postmaster that failed: it never earns another,
 * or a postmaster mapped anywhere that refuses would start a loop. Marked
 * by its proto; a local "postmaster" recipient also counts (queue files
 * from before the mark).
 */
static bool
is_postmaster_notice(const struct envelope *env, const struct rcpt *r)
{
	return env->sender[0] == '\0' && ((env->proto != NULL &&
	    strcmp(env->proto, BOUNCE_PROTO_POSTMASTER) == 0) ||
	    (r->kind == RCPT_LOCAL && strcasecmp(r->target, "postmaster") ==
	    0));
}

/* Sends DSNs of kind for the recipients flagged in which[]. */
static void
notify(struct sched *sc, const char *id, struct envelope *env, int fd,
    off_t off, enum dsn_kind kind, const bool *which)
{
	const struct config *c = sc->rt->cfg;
	struct dsn_rcpt *rr = xcalloc(env->nrcpts, sizeof(*rr));
	char **mta = xcalloc(env->nrcpts, sizeof(*mta));
	char new_id[SPOOL_ID_LEN + 1];
	size_t n = 0;
	bool to_postmaster = env->sender[0] == '\0';
	struct err e;

	for (size_t i = 0; i < env->nrcpts; i++) {
		if (!which[i])
			continue;
		/* A bounce never earns a bounce; its failure goes to the
		 * postmaster, unless it is the postmaster's copy failing. */
		if (to_postmaster) {
			if (kind != DSN_FAILED || is_postmaster_notice(env,
			    &env->rcpts[i]))
				continue;
		} else if (!dsn_should_send(env, i, kind))
			continue;
		rr[n].index = i;
		/* The status seen now; else derived from the reply text. */
		if (env->rcpts[i].dsn_status[0] != '\0')
			rr[n].status = env->rcpts[i].dsn_status;
		/* Remote-MTA names a host that answered: "host[ip]:port"
		 * gives "host"; no '[' means no host was reached. */
		if (env->rcpts[i].kind == RCPT_REMOTE && env->rcpts[i].relay &&
		    strchr(env->rcpts[i].relay, '[')) {
			mta[n] = xstrndup(env->rcpts[i].relay,
			    strcspn(env->rcpts[i].relay, "["));
			rr[n].remote_mta = mta[n];
		}
		n++;
	}
	if (n > 0) {
		err_clear(&e);
		if (bounce_queue(sc->sp, sc->rt, id, env, fd, off, kind, rr, n,
		    (time_t)env->arrival + c->queue_lifetime, new_id, &e) ==
		    -1)
			log_warnx("%s: cannot queue a %s notification: %s", id,
			    dsn_kind_names[kind], e.msg);
		else {
			log_info("%s: %s notification: %s", id, to_postmaster ?
			    "postmaster" : kind == DSN_FAILED ?
			    "sender non-delivery" : "sender delay", new_id);
			stats.queue_size++;
			sched_enqueue(sc, new_id);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(mta[i]);
	free(mta);
	free(rr);
}

/*
 * After a round of attempts: DSNs for recipients that bounced now, delay
 * warnings, then removal of a finished message or its new state and
 * retry timer. A bounce to the postmaster that itself failed is moved to
 * quarantine for the postmaster to look at, never retried in a loop.
 */
static void
finish_round(struct sched *sc, const char *id, struct envelope *env, int fd,
    off_t off, const bool *bounced_now)
{
	const struct config *c = sc->rt->cfg;
	long long now = time(NULL), next = 0;
	bool *warn = xcalloc(env->nrcpts, sizeof(*warn));
	bool any_bounce = false, any_warn = false, dead_postmaster = false;
	struct err e;

	for (size_t i = 0; i < env->nrcpts; i++) {
		struct rcpt *r = &env->rcpts[i];

		any_bounce |= bounced_now[i];
		if (r->status == RCPT_BOUNCED && is_postmaster_notice(env, r))
			dead_postmaster = true;
		if (r->status != RCPT_DEFERRED)
			continue;
		if (next == 0 || r->next_try < next)
			next = r->next_try;
		if (c->delay_warning > 0 && !r->is_warned &&
		    now - (long long)env->arrival >= c->delay_warning) {
			r->is_warned = true;
			warn[i] = any_warn = true;
		}
	}
	if (any_bounce)
		notify(sc, id, env, fd, off, DSN_FAILED, bounced_now);
	if (any_warn && env->sender[0] != '\0')
		notify(sc, id, env, fd, off, DSN_DELAYED, warn);
	free(warn);
	err_clear(&e);
	/* Only once every recipient has its result: the others of the
	 * message are still delivered, or retried, first. */
	if (dead_postmaster && envelope_is_final(env)) {
		log_warnx("%s: notification to the postmaster failed; moved to "
		    "quarantine", id);
		if (spool_quarantine(sc->sp, id, "undeliverable notification "
		    "to the postmaster", &e) == -1)
			log_warnx("%s: quarantine failed: %s", id, e.msg);
		else if (stats.queue_size)
			stats.queue_size--;
		return;
	}
	if (envelope_is_final(env)) {
		/* Made durable with the others of this turn (sync_removals). */
		if (spool_remove_nosync(sc->sp, id, &e) == -1)
			log_warnx("%s: cannot remove from the queue: %s", id,
			    e.msg);
		else {
			log_info("%s: removed", id);
			sc->is_queue_dirty = true;
			if (stats.queue_size)
				stats.queue_size--;
		}
		return;
	}
	if (spool_save_state(sc->sp, id, env, &e) == -1)
		log_warnx("%s: cannot save delivery state: %s", id, e.msg);
	if (next)
		schedule_retry(sc, id, next);
}

/* ---- one message -------------------------------------------------------- */

static bool
is_due(const struct sched *sc, const struct rcpt *r, long long now)
{
	if (r->status == RCPT_PENDING)
		return true;
	return r->status == RCPT_DEFERRED && (r->next_try <= now ||
	    r->last_try < sc->flush_time);
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

static bool
has_8bit_body(const struct envelope *env)
{
	return env->body && strcasecmp(env->body, "7BIT") != 0;
}

/*
 * Submits one job per destination for the due recipients marked in
 * todo[]: all remote ones to relay_host when set, else grouped by domain;
 * local ones to lmtp_host. Returns the number of jobs.
 */
static unsigned
submit_jobs(struct sched *sc, const char *id, const struct envelope *env,
    int fd, off_t off, bool *todo)
{
	const struct config *c = sc->rt->cfg;
	const char **rcpts = xcalloc(env->nrcpts, sizeof(*rcpts));
	size_t *indexes = xcalloc(env->nrcpts, sizeof(*indexes));
	char **lmtp_addrs = xcalloc(env->nrcpts, sizeof(*lmtp_addrs));
	unsigned njobs = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct rcpt *first = &env->rcpts[i];
		struct deliver_job j;
		size_t n = 0;

		if (!todo[i])
			continue;
		memset(&j, 0, sizeof(j));
		j.kind = first->kind == RCPT_LOCAL ? DELIVER_LMTP :
		    c->relay_host[0] ? DELIVER_RELAY : DELIVER_MX;
		j.domain = domain_of(first->target);
		for (size_t k = i; k < env->nrcpts; k++) {
			const struct rcpt *r = &env->rcpts[k];

			if (!todo[k] || r->kind != first->kind ||
			    (j.kind == DELIVER_MX && strcasecmp(domain_of(
			    r->target), j.domain) != 0))
				continue;
			todo[k] = false;
			if (r->kind == RCPT_LOCAL) {
				/* The mailbox, in the domain it was sent to. */
				lmtp_addrs[k] = xasprintf("%s@%s", r->target,
				    domain_of(r->orig));
				rcpts[n] = lmtp_addrs[k];
			} else
				rcpts[n] = r->target;
			if (strchr(rcpts[n], '@') && (unsigned char)*rcpts[n] >=
			    0x80)
				j.needs_smtputf8 = true;
			indexes[n++] = k;
		}
		j.id = id;
		j.sender = env->sender;
		j.rcpts = rcpts;
		j.indexes = indexes;
		j.nrcpts = n;
		j.fd = fd;
		j.offset = off;
		j.length = (off_t)env->data_len;
		j.is_8bit = has_8bit_body(env);
		j.needs_smtputf8 = j.needs_smtputf8 || env->smtputf8;
		inflight_add(sc, id);
		deliver_submit(sc->deliver, &j);
		njobs++;
	}
	for (size_t i = 0; i < env->nrcpts; i++)
		free(lmtp_addrs[i]);
	free(lmtp_addrs);
	free(rcpts);
	free(indexes);
	return njobs;
}

static void
process(struct sched *sc, const char *id)
{
	const struct config *c = sc->rt->cfg;
	struct envelope env;
	struct inflight *f;
	struct err e;
	int fd = -1;
	off_t off = 0;
	long long now = time(NULL), next = 0;
	bool *bounced = NULL, *todo = NULL, any_job = false, any_local = false;

	if ((f = inflight_get(sc, id)) != NULL) {
		f->is_rerun = true;	/* after the jobs out now */
		return;
	}
	envelope_init(&env);
	err_clear(&e);
	if (spool_load(sc->sp, id, &env, &fd, &off, &e) == -1) {
		if (e.errnum == ENOENT)
			goto out;	/* deleted meanwhile */
		log_warnx("%s: cannot read queue file, moving it to "
		    "quarantine: %s", id, e.msg);
		if (spool_quarantine(sc->sp, id, e.msg, &e) == -1)
			log_warnx("%s: quarantine failed: %s", id, e.msg);
		else if (stats.queue_size)
			stats.queue_size--;
		goto out;
	}
	if (env.is_held)
		goto out;
	bounced = xcalloc(env.nrcpts, sizeof(*bounced));
	todo = xcalloc(env.nrcpts, sizeof(*todo));
	for (size_t i = 0; i < env.nrcpts; i++) {
		struct rcpt *r = &env.rcpts[i];

		if (!is_due(sc, r, now)) {
			if (r->status == RCPT_DEFERRED &&
			    (next == 0 || r->next_try < next))
				next = r->next_try;
			continue;
		}
		if (r->kind == RCPT_LOCAL && c->lmtp_host[0] == '\0') {
			if (!any_local)
				inflight_add(sc, id);
			any_local = true;
			add_local_item(sc, id, &env, i, fd, off);
		} else
			todo[i] = any_job = true;
	}
	if (any_local && !any_job)
		goto out;	/* the batch's outcome finishes the round */
	if (any_job) {
		/* The outcomes come back through delivered(). */
		submit_jobs(sc, id, &env, fd, off, todo);
		goto out;
	}
	finish_round(sc, id, &env, fd, off, bounced);
out:
	if (fd != -1)
		(void)close(fd);
	free(bounced);
	free(todo);
	envelope_clear(&env);
}

/* deliver_remote's report of one job. */
static void
delivered(void *arg, const char *id, const struct deliver_result *res,
    size_t n)
{
	struct sched *sc = arg;
	struct envelope env;
	bool *bounced = NULL, last, rerun;
	struct err e;
	int fd = -1;
	off_t off = 0;

	last = inflight_done(sc, id, &rerun);
	envelope_init(&env);
	err_clear(&e);
	if (spool_load(sc->sp, id, &env, &fd, &off, &e) == -1) {
		/* Deleted by the administrator meanwhile. */
		if (e.errnum != ENOENT)
			log_warnx("%s: cannot record delivery results: %s", id,
			    e.msg);
		goto out;
	}
	bounced = xcalloc(env.nrcpts, sizeof(*bounced));
	for (size_t i = 0; i < n; i++)
		if (res[i].index < env.nrcpts)
			bounced[res[i].index] = record_result(sc, id, &env,
			    res[i].index, res[i].status, res[i].enhanced,
			    res[i].reply, res[i].relay);
	if (last)
		finish_round(sc, id, &env, fd, off, bounced);
	else {
		if (spool_save_state(sc->sp, id, &env, &e) == -1)
			log_warnx("%s: cannot save delivery state: %s", id,
			    e.msg);
		for (size_t i = 0; i < env.nrcpts; i++)
			if (bounced[i]) {
				notify(sc, id, &env, fd, off, DSN_FAILED,
				    bounced);
				break;
			}
	}
	if (last && rerun)
		sched_enqueue(sc, id);
	sync_removals(sc);
out:
	if (fd != -1)
		(void)close(fd);
	free(bounced);
	envelope_clear(&env);
}

/* On the worker thread. */
static void
sync_queue_work(void *arg)
{
	struct sched *sc = arg;
	struct err e;

	if (spool_sync_queue(sc->sp, &e) == -1)
		log_warnx("queue: %s", e.msg);
}

static void
sync_queue_done(void *arg)
{
	struct sched *sc = arg;

	sc->is_sync_out = false;
	sync_removals(sc);
}

/*
 * Removals are made durable by one fsync of queue/ on the worker thread,
 * for all those of the moment: never on the loop, never one per message.
 * (A removal lost in a crash only means an attempt is repeated, and local
 * deliveries are idempotent.)
 */
static void
sync_removals(struct sched *sc)
{
	if (!sc->is_queue_dirty)
		return;
	if (sc->is_stopping) {
		sc->is_queue_dirty = false;
		sync_queue_work(sc);	/* the worker is going: do it here */
		return;
	}
	if (sc->is_sync_out)
		return;
	sc->is_queue_dirty = false;
	sc->is_sync_out = true;
	worker_submit(sc->worker, sync_queue_work, sync_queue_done, sc);
}

static void
run_one(evutil_socket_t fd, short what, void *arg)
{
	struct sched *sc = arg;
	char id[SPOOL_ID_LEN + 1];

	for (int n = 0; n < RUN_BATCH && sc->ready_len > 0; n++) {
		if (sc->collecting && sc->collecting->n >= LOCAL_BATCH_MAX)
			break;	/* the worker is behind: let it catch up */
		memcpy(id, sc->ready[sc->ready_head], sizeof(id));
		sc->ready_head = (sc->ready_head + 1) % sc->ready_size;
		sc->ready_len--;
		process(sc, id);
	}
	submit_local_batch(sc);
	sync_removals(sc);
	if (sc->ready_len > 0 && !(sc->collecting &&
	    sc->collecting->n >= LOCAL_BATCH_MAX))
		event_active(sc->run_ev, 0, 0);
}

/* ---- administration ------------------------------------------------------ */

static void
enqueue_cb(void *arg, const char *id)
{
	struct sched *sc = arg;

	cancel_retry(sc, id);
	sched_enqueue(sc, id);
}

void
sched_flush(struct sched *sc)
{
	struct err e;

	/* Attempts before this moment no longer delay the next one, nor
	 * does a destination that was unreachable a moment ago. */
	sc->flush_time = time(NULL) + 1;
	deliver_retry_now(sc->deliver);
	err_clear(&e);
	if (spool_scan(sc->sp, enqueue_cb, sc, &e) == -1)
		log_warnx("queue flush: %s", e.msg);
	log_info("queue flush: every queued message scheduled now");
}

int
sched_hold(struct sched *sc, const char *id, bool hold, struct err *e)
{
	struct envelope env;
	int rc;

	envelope_init(&env);
	rc = spool_load(sc->sp, id, &env, NULL, NULL, e);
	if (rc == 0 && env.is_held != hold) {
		env.is_held = hold;
		rc = spool_save_state(sc->sp, id, &env, e);
	}
	envelope_clear(&env);
	if (rc == -1)
		return -1;
	log_info("%s: %s", id, hold ? "held" : "released");
	if (hold)
		cancel_retry(sc, id);
	else
		sched_enqueue(sc, id);
	return 0;
}

int
sched_delete(struct sched *sc, const char *id, struct err *e)
{
	struct envelope env;

	envelope_init(&env);
	if (spool_load(sc->sp, id, &env, NULL, NULL, e) == -1 &&
	    e->errnum == ENOENT) {
		envelope_clear(&env);
		return -1;
	}
	envelope_clear(&env);
	cancel_retry(sc, id);
	/* Never recycled: a delivery in flight may still read the file,
	 * and must not read another message written into it. */
	if (spool_delete(sc->sp, id, e) == -1)
		return -1;
	log_info("%s: removed (deleted by the administrator)", id);
	if (stats.queue_size)
		stats.queue_size--;
	return 0;
}
