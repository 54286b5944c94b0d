/*
 * worker.h - one background thread for blocking work (disk syncs) whose
 * completion is reported back on the event loop.
 */
#ifndef SMTPGATE_NET_WORKER_H
#define SMTPGATE_NET_WORKER_H

struct event_base;
struct worker;

typedef void (*worker_fn)(void *arg);

/* Starts the thread. base must have been created after
 * evthread_use_pthreads(). Returns NULL when no thread can be made. */
struct worker	*worker_new(struct event_base *base);
/* Finishes every queued job, calls their done callbacks (on the caller's
 * thread, which must be the loop's), and stops the thread. */
void		 worker_free(struct worker *w);
/* Runs work(arg) on the thread, then done(arg) on the loop, in order. */
void		 worker_submit(struct worker *w, worker_fn work, worker_fn done,
		    void *arg);

#endif
