/*
 * journal.h - the commit log for messages delivered straight into a
 * Maildir (doc/QUEUE.md, "The journal").
 *
 * A message delivered at the commit point is linked into new/ and its
 * whole content is written to spool_dir/journal, a file of fixed size
 * whose blocks are all allocated: one write of data already in place,
 * made durable by one flush. That write is the commit; the 250 follows
 * it. The Maildir files themselves are made durable together, in the
 * background, by a checkpoint (syncfs of their file systems), after
 * which their records are no longer needed and their space is reused.
 * After a crash, journal_open puts back every file whose record is newer
 * than the last checkpoint and which is missing or not what was
 * recorded.
 */
#ifndef SMTPGATE_GATE_JOURNAL_H
#define SMTPGATE_GATE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct err;
struct event_base;
struct journal;

/* Largest file content a record carries; bigger files are synced. */
#define JOURNAL_FILE_MAX	(128 * 1024)

/* A file a record makes durable: dir/name holds exactly data. */
struct journal_file {
	const char	*dir;
	const char	*name;
	const void	*data;
	size_t		 len;
	dev_t		 dev;		/* of dir's file system */
};

/*
 * Opens path (making it when missing) and replays it: every recorded
 * file newer than the last checkpoint is put back, then made durable
 * with the rest. With base, a timer and a thread of its own checkpoint
 * in the background; without (tests), only journal_checkpoint does.
 * NULL with e set on error; *is_fatal then tells a journal that exists
 * and could not be replayed (acknowledged mail may depend on it) from
 * one that could not be made.
 */
struct journal	*journal_open(const char *path, struct event_base *base,
		    bool *is_fatal, struct err *e);
/* With checkpoint, makes everything durable first so that the next start
 * has nothing to replay; without (tests: a crash), just lets go. */
void		 journal_close(struct journal *j, bool checkpoint);
/*
 * Appends one record for each file and returns once they are on stable
 * storage. The files must already be linked under their names. -1 (e
 * set) when the journal cannot take them now (full, or a write failed):
 * the caller makes the files durable itself. Any thread.
 */
int		 journal_commit(struct journal *j,
		    const struct journal_file *files, size_t n, struct err *e);
/* Makes every recorded file durable and frees its record; -1 (e set) if
 * a sync failed (the records stay). Any thread. */
int		 journal_checkpoint(struct journal *j, struct err *e);
/* Bytes held by records not yet checkpointed. */
size_t		 journal_used(struct journal *j);

#endif
