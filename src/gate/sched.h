/*
 * sched.h - the queue manager: decides when each queued recipient is
 * tried, delivers local recipients into the postoffice, and decides defer
 * versus bounce in one place (STYLE §3). Runs on the event loop, one
 * message per loop turn at low priority, so sessions are never starved.
 */
#ifndef SMTPGATE_GATE_SCHED_H
#define SMTPGATE_GATE_SCHED_H

#include <stdbool.h>
#include <stddef.h>

struct err;
struct event_base;
struct runtime;
struct spool;

struct sched;

/* rt is referenced. Caller frees with sched_free. */
struct sched	*sched_new(struct event_base *base, struct spool *sp,
		    struct runtime *rt);
void		 sched_free(struct sched *sc);
void		 sched_set_runtime(struct sched *sc, struct runtime *rt);
/* Schedules queued message id for an attempt as soon as possible. */
void		 sched_enqueue(struct sched *sc, const char *id);
/* Retries every message now, deferred recipients included. */
void		 sched_flush(struct sched *sc);
/* Holds (or releases) message id: a held message is never attempted. */
int		 sched_hold(struct sched *sc, const char *id, bool hold,
		    struct err *e);
/* Removes message id from the queue without delivering it. */
int		 sched_delete(struct sched *sc, const char *id, struct err *e);
/* Messages waiting for their turn now (not counting retry timers). */
size_t		 sched_ready_count(const struct sched *sc);

/* Back-off before attempt number attempts+1: retry_min * 2^(attempts-1),
 * at most retry_max (seconds). Pure, for unit tests. */
long		 sched_backoff(long retry_min, long retry_max,
		    unsigned attempts);

#endif
