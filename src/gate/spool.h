/*
 * spool.h - the durable queue (doc/QUEUE.md is the table this code
 * follows: directories, states, the single commit point, recovery).
 *
 * Blocking file I/O. Nothing else in smtpgate creates, renames or removes
 * files in the spool.
 */
#ifndef SMTPGATE_GATE_SPOOL_H
#define SMTPGATE_GATE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct envelope;
struct err;
struct event_base;

#define SPOOL_ID_LEN	17	/* 13 hex digits of usec + 4 of sequence */

struct spool;
struct spool_msg;

/* Opens (creating, mode 0700) spool_dir and its subdirectories. Caller
 * frees with spool_close. */
struct spool	*spool_open(const char *dir, struct err *e);
void		 spool_close(struct spool *sp);
/*
 * The server's pool of files: empty unnamed files made ahead of need in
 * tmp/ by two threads of their own (completions on base's loop), and
 * finished queue files kept for reuse (doc/QUEUE.md). spool_msg_new and
 * spool_msg_new_direct take their file from it; without it they make the
 * file themselves. Once started, every spool function must be called from
 * the loop's thread only, except spool_commit_batch (any one thread at a
 * time). Start it as the user that will link the files; stop it (or
 * spool_close) on the loop's thread: the files it holds are removed.
 */
int		 spool_pool_start(struct spool *sp, struct event_base *base,
		    struct err *e);
void		 spool_pool_stop(struct spool *sp);
/*
 * The server's journal (journal.h, doc/QUEUE.md): spool_journal_open
 * replays spool_dir/journal (made when missing) before any connection is
 * accepted (its records may only name Maildirs in postoffice); from
 * then on direct deliveries whose whole file fits in
 * memory are committed with one record instead of syncing the file and
 * its directory. spool_journal_start, on the loop once the privileges
 * are dropped, checkpoints it in the background. spool_close (on the
 * loop's thread) checkpoints and closes it. -1 (e set)
 * without it: *is_fatal tells a journal that exists but could not be
 * replayed (acknowledged mail may be in it) from one that could not be
 * made or is in another server's use.
 */
int		 spool_journal_open(struct spool *sp, const char *postoffice,
		    bool *is_fatal, struct err *e);
int		 spool_journal_start(struct spool *sp, struct event_base *base,
		    struct err *e);
const char	*spool_path(const struct spool *sp);

typedef void (*spool_id_fn)(void *arg, const char *id);
/*
 * Crash recovery (doc/QUEUE.md): removes tmp files and orphan state files,
 * then calls fn for every queued id in id (= arrival) order. Returns the
 * number of queued messages, or -1.
 */
long		 spool_recover(struct spool *sp, spool_id_fn fn, void *arg,
		    struct err *e);
/* Calls fn for every id in queue/, in order. Returns the count or -1. */
long		 spool_scan(struct spool *sp, spool_id_fn fn, void *arg,
		    struct err *e);

/*
 * Starts a message: takes a file (a reused queue file, a pooled one, or
 * tmp/ID made exclusively) and writes env's header (env->data_len is
 * filled in at finish). Caller finishes with spool_msg_commit, or
 * spool_msg_finish and spool_commit_batch, or spool_msg_abort; then
 * spool_msg_free.
 */
struct spool_msg *spool_msg_new(struct spool *sp, const struct envelope *env,
		    struct err *e);
/*
 * A message that needs no queue: written in tmp_dir and, at the group
 * commit, linked as final_dir/final_name (e.g. a Maildir new/ file: local
 * delivery done at the commit point). tmp_dir and final_dir must be on
 * one file system. No envelope header is written. id names it in logs
 * (from spool_new_id).
 */
struct spool_msg *spool_msg_new_direct(struct spool *sp, const char *id,
		    const char *tmp_dir, const char *final_dir,
		    const char *final_name, struct err *e);
bool		 spool_msg_is_direct(const struct spool_msg *m);
/* Takes a committed message back (its client left before the 250). */
void		 spool_msg_uncommit(struct spool_msg *m);
/* A new queue id (unique, sorted by time). */
void		 spool_new_id(char *out);
const char	*spool_msg_id(const struct spool_msg *m);
/* Bytes of message data written so far. */
unsigned long long spool_msg_len(const struct spool_msg *m);
/* Appends message bytes (buffered). */
int		 spool_msg_write(struct spool_msg *m, const void *data,
		    size_t len, struct err *e);
/*
 * The commit point of a lone message: spool_msg_finish, then
 * spool_commit_batch of one. Only after it returns 0 may the message be
 * acknowledged. On -1 the message is not queued (its file removed).
 */
int		 spool_msg_commit(struct spool_msg *m, struct err *e);
/* Flushes and records the data length, without any sync: the message is
 * ready for spool_commit_batch. On -1 the tmp file is removed. */
int		 spool_msg_finish(struct spool_msg *m, struct err *e);
/*
 * Group commit of n finished messages: a link each into queue/ (or its
 * final_dir), then one sync of each file system for all their data and
 * names (doc/QUEUE.md). results[i] is 0 (committed: may be acknowledged)
 * or -1 with errs[i] filled (file removed).
 */
void		 spool_commit_batch(struct spool *sp, struct spool_msg **msgs,
		    size_t n, int *results, struct err *errs);
/* Removes the tmp file of an uncommitted message. */
void		 spool_msg_abort(struct spool_msg *m);
void		 spool_msg_free(struct spool_msg *m);

/*
 * Loads queue/ID's envelope and state file into env (initialised by the
 * caller). When fdp is not NULL, the open file is returned there (caller
 * closes) and *data_off gets the offset of the message data.
 */
int		 spool_load(struct spool *sp, const char *id,
		    struct envelope *env, int *fdp, off_t *data_off,
		    struct err *e);
/* Writes state/ID atomically from env's recipients and hold flag. */
int		 spool_save_state(struct spool *sp, const char *id,
		    const struct envelope *env, struct err *e);
/* Removes a finished message: queue/ID, state/ID, fsync(queue/). */
int		 spool_remove(struct spool *sp, const char *id, struct err *e);
/* The same without the fsync; spool_sync_queue() then makes a batch of
 * removals durable at once. */
int		 spool_remove_nosync(struct spool *sp, const char *id,
		    struct err *e);
int		 spool_sync_queue(struct spool *sp, struct err *e);
/* spool_remove for a message whose file a delivery may still be reading
 * (`queue delete`): the file is never reused for another message. */
int		 spool_delete(struct spool *sp, const char *id, struct err *e);
/* Moves queue/ID (and state/ID) to quarantine/ with ID.reason. */
int		 spool_quarantine(struct spool *sp, const char *id,
		    const char *reason, struct err *e);
/* True when a message of size bytes fits with room to spare. Asks the
 * file system at most once a second while there is plenty. */
bool		 spool_has_room(struct spool *sp,
		    unsigned long long size);
/* True when id has the form of a queue id (for commands taking one). */
bool		 spool_id_valid(const char *id);

#endif
