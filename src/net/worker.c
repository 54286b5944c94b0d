/*
 * worker.c - a job queue served by one thread. Layer: net. Owns the
 * thread, the queues and the event that brings results back to the loop.
 * Jobs run one at a time, in order; their done callbacks run on the loop
 * in the same order.
 */
#include "net/worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/mem.h"

struct job {
	worker_fn	 work;
	worker_fn	 done;
	void		*arg;
	struct job	*next;
};

struct worker {
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct job	*todo, *todo_tail;	/* for the thread */
	struct job	*done, *done_tail;	/* for the loop */
	bool		 is_idle;	/* the thread waits on cond */
	bool		 is_stopping;
	struct event	*done_ev;
};

static void
push(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *
run(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct job *j;

		while (w->todo == NULL && !w->is_stopping) {
			w->is_idle = true;
			pthread_cond_wait(&w->cond, &w->lock);
			w->is_idle = false;
		}
		if (w->todo == NULL)
			break;		/* stopping, and nothing left to do */
		j = w->todo;
		w->todo = j->next;
		if (w->todo == NULL)
			w->todo_tail = NULL;
		pthread_mutex_unlock(&w->lock);
		j->work(j->arg);
		pthread_mutex_lock(&w->lock);
		push(&w->done, &w->done_tail, j);
		event_active(w->done_ev, 0, 0);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void
deliver_done(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct job *j;

	pthread_mutex_lock(&w->lock);
	j = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (j) {
		struct job *next = j->next;

		j->done(j->arg);
		free(j);
		j = next;
	}
}

struct worker *
worker_new(struct event_base *base)
{
	struct worker *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done_ev = event_new(base, -1, 0, deliver_done, w);
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		log_warn("worker: pthread_create");
		event_free(w->done_ev);
		free(w);
		return NULL;
	}
	return w;
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->is_stopping = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	/* The queue was drained: report what is done, here on the loop. */
	deliver_done(-1, 0, w);
	event_free(w->done_ev);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

void
worker_submit(struct worker *w, worker_fn work, worker_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	bool is_idle;

	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	push(&w->todo, &w->todo_tail, j);
	is_idle = w->is_idle;
	pthread_mutex_unlock(&w->lock);
	/*
	 * Woken after the unlock, so that it does not wake only to wait for
	 * the lock still held here (two more futex calls a job); and only
	 * when it sleeps: a busy thread finds the job before it waits.
	 */
	if (is_idle)
		pthread_cond_signal(&w->cond);
}
