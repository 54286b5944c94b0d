/*
 * sched.c - the queue manager. Layer: gate.
 *
 * Owns the list of messages ready for an attempt and the retry timers. For
 * each message it loads the envelope and state, delivers the local
 * recipients that are due into the postoffice (maildir.c), records each
 * outcome in the state file, and removes the message once every recipient
 * is final. Remote recipients wait in the queue for the outbound
 * deliverer. Blocking file I/O runs here, on the loop, one message per
 * turn at a priority below the sessions'.
 */
#include "gate/sched.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/envelope.h"
#include "mail/header.h"
#include "gate/config.h"
#include "gate/maildir.h"
#include "gate/runtime.h"
#include "gate/spool.h"
#include "gate/stats.h"

struct retry {
	char		 id[SPOOL_ID_LEN + 1];
	struct event	*ev;
	struct sched	*sc;
	struct retry	*prev, *next;
};

struct sched {
	struct event_base	*base;
	struct spool		*sp;
	struct runtime		*rt;
	char			(*ready)[SPOOL_ID_LEN + 1];	/* ring */
	size_t			 ready_head, ready_len, ready_size;
	struct event		*run_ev;
	struct retry		*retries;
	long long		 flush_time;	/* last `queue flush` */
};

static void	run_one(evutil_socket_t fd, short what, void *arg);

long
sched_backoff(long retry_min, long retry_max, unsigned attempts)
{
	long d = retry_min;

	for (unsigned i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	return d < retry_max ? d : retry_max;
}

struct sched *
sched_new(struct event_base *base, struct spool *sp, struct runtime *rt)
{
	struct sched *sc = xcalloc(1, sizeof(*sc));

	sc->base = base;
	sc->sp = sp;
	sc->rt = runtime_ref(rt);
	sc->run_ev = event_new(base, -1, 0, run_one, sc);
	/* Below the sessions (priority 0): delivery never starves them. */
	event_priority_set(sc->run_ev, 1);
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
	while (sc->retries)
		retry_free(sc->retries);
	event_free(sc->run_ev);
	free(sc->ready);
	runtime_unref(sc->rt);
	free(sc);
}

void
sched_set_runtime(struct sched *sc, struct runtime *rt)
{
	struct runtime *old = sc->rt;

	sc->rt = runtime_ref(rt);
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
schedule_retry(struct sched *sc, const char *id, long long when)
{
	struct retry *r = xcalloc(1, sizeof(*r));
	long long now = time(NULL);
	struct timeval tv = { when > now ? (time_t)(when - now) : 0, 0 };

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

/* Delivers recipient i of message id into its mailbox. */
static void
deliver_local_rcpt(struct sched *sc, const char *id, struct envelope *env,
    size_t i, int fd, off_t off)
{
	const struct config *c = sc->rt->cfg;
	struct rcpt *r = &env->rcpts[i];
	struct buf prefix;
	struct err e;
	long long now = time(NULL);
	double delay = now_seconds() - env->arrival;
	char name[512];
	int rc = -1;

	buf_init(&prefix);
	header_local_prefix(&prefix, env->sender, r->orig);
	err_clear(&e);
	r->attempts++;
	r->last_try = now;
	free(r->reply);
	if (maildir_queue_name(name, sizeof(name), (long long)env->arrival, id,
	    i, c->hostname) == -1)
		err_set(&e, "maildir: host name too long for a file name");
	else
		rc = maildir_deliver_once(c->postoffice_dir, r->target, name,
		    prefix.data, prefix.len, fd, off, (off_t)env->data_len,
		    &e);
	if (rc >= 0) {
		r->status = RCPT_SENT;
		stats.delivered++;
		r->reply = xstrdup(rc == 1 ? "delivered to maildir (by an "
		    "earlier attempt)" : "delivered to maildir");
		log_info("%s: to=<%s> relay=local mailbox=%s delay=%.2f "
		    "status=sent (%s)", id, r->orig, r->target, delay,
		    r->reply);
	} else if (now - (long long)env->arrival >= c->queue_lifetime) {
		r->status = RCPT_BOUNCED;
		stats.bounced++;
		r->reply = xstrdup(e.msg);
		log_info("%s: to=<%s> relay=local mailbox=%s delay=%.2f "
		    "status=bounced (%s; queue_lifetime passed)", id, r->orig,
		    r->target, delay, e.msg);
	} else {
		r->status = RCPT_DEFERRED;
		stats.deferred++;
		r->reply = xstrdup(e.msg);
		r->next_try = now + sched_backoff(c->retry_min, c->retry_max,
		    r->attempts);
		log_info("%s: to=<%s> relay=local mailbox=%s delay=%.2f "
		    "status=deferred (%s)", id, r->orig, r->target, delay,
		    e.msg);
	}
	buf_clear(&prefix);
}

static void
process(struct sched *sc, const char *id)
{
	struct envelope env;
	struct err e;
	int fd = -1;
	off_t off = 0;
	long long now = time(NULL), next = 0;
	bool changed = false;

	envelope_init(&env);
	err_clear(&e);
	if (spool_load(sc->sp, id, &env, &fd, &off, &e) == -1) {
		if (e.errnum == ENOENT)
			goto out;	/* deleted meanwhile */
		log_warnx("%s: cannot read queue file, moving it to "
		    "quarantine: %s", id, e.msg);
		if (spool_quarantine(sc->sp, id, e.msg, &e) == -1)
			log_warnx("%s: quarantine failed: %s", id, e.msg);
		goto out;
	}
	if (env.is_held)
		goto out;
	for (size_t i = 0; i < env.nrcpts; i++) {
		struct rcpt *r = &env.rcpts[i];

		if (r->kind != RCPT_LOCAL ||
		    (r->status != RCPT_PENDING && r->status != RCPT_DEFERRED))
			continue;
		if (r->status == RCPT_DEFERRED && r->next_try > now &&
		    r->last_try >= sc->flush_time) {
			if (next == 0 || r->next_try < next)
				next = r->next_try;
			continue;
		}
		deliver_local_rcpt(sc, id, &env, i, fd, off);
		changed = true;
		if (r->status == RCPT_DEFERRED &&
		    (next == 0 || r->next_try < next))
			next = r->next_try;
	}
	if (envelope_is_final(&env)) {
		if (spool_remove(sc->sp, id, &e) == -1)
			log_warnx("%s: cannot remove from the queue: %s", id,
			    e.msg);
		else {
			log_info("%s: removed", id);
			if (stats.queue_size)
				stats.queue_size--;
		}
		goto out;
	}
	if (changed && spool_save_state(sc->sp, id, &env, &e) == -1)
		log_warnx("%s: cannot save delivery state: %s", id, e.msg);
	if (next)
		schedule_retry(sc, id, next);
out:
	if (fd != -1)
		(void)close(fd);
	envelope_clear(&env);
}

static void
run_one(evutil_socket_t fd, short what, void *arg)
{
	struct sched *sc = arg;
	char id[SPOOL_ID_LEN + 1];

	if (sc->ready_len == 0)
		return;
	memcpy(id, sc->ready[sc->ready_head], sizeof(id));
	sc->ready_head = (sc->ready_head + 1) % sc->ready_size;
	sc->ready_len--;
	process(sc, id);
	if (sc->ready_len > 0)
		event_active(sc->run_ev, 0, 0);
}

/* Drops the retry timer of id, if any. */
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

	/* Attempts before this moment no longer delay the next one. */
	sc->flush_time = time(NULL) + 1;
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
	if (spool_remove(sc->sp, id, e) == -1)
		return -1;
	log_info("%s: removed (deleted by the administrator)", id);
	if (stats.queue_size)
		stats.queue_size--;
	return 0;
}
