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
#include <stdint.h>
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
	bool		 is_void;	/* set by link: not linked after all */
	/* where journal_commit put its record, for journal_void */
	uint64_t	 rec_off, rec_seq;
	uint32_t	 rec_size;
};

/* Links the files of a commit (journal_commit's link argument). */
typedef void	(*journal_link_fn)(void *arg);

/*
 * Opens path (making it when missing, uid's when made by root) and
 * replays it: every recorded file newer than the last checkpoint that is
 * missing or not what was recorded is put back, then all of them are made
 * durable. Records can only name root/MAILBOX/new, and a root process
 * replays with the file access of uid (uid 0: its own), so that a journal
 * written by the server's user puts back only what that user could write.
 * A record that cannot be put back is kept in quarantine_dir as
 * journal-SEQ with journal-SEQ.reason. NULL with e set on error; *is_fatal then tells
 * a journal that exists and could not be replayed (acknowledged mail may
 * depend on it) from one that could not be made or that another process
 * holds.
 */
struct journal	*journal_open(const char *path, const char *quarantine_dir,
		    const char *root, uid_t uid, gid_t gid, bool *is_fatal,
		    struct err *e);
/* Checkpoints in the background from now on: a timer on base's loop and
 * a thread of its own. Without it (tests) only journal_checkpoint does. */
int		 journal_start(struct journal *j, struct event_base *base,
		    struct err *e);
/* With checkpoint, makes everything durable first so that the next start
 * has nothing to replay; without (tests: a crash), just lets go. */
void		 journal_close(struct journal *j, bool checkpoint);
/*
 * Appends one record for each file and returns once they are on stable
 * storage. link(arg) is called exactly once: while the records are being
 * written where the kernel can write asynchronously, else before; it
 * links the files under their names and sets is_void on each it could
 * not link, whose record is then made void (replay skips it) before
 * journal_commit returns. -1 (e set) when the journal cannot take them
 * now (full, or a write failed): the caller makes the files durable
 * itself (after a failed write every record of the commit is made void,
 * as far as the disk lets it). Any thread.
 */
int		 journal_commit(struct journal *j, struct journal_file *files,
		    size_t n, journal_link_fn link, void *arg, struct err *e);
/*
 * Makes void the record of f (committed by journal_commit, which filled
 * in rec_*) if no checkpoint has retired it yet: its message is given up
 * after all (its client left before the 250), and a replay must not put
 * its file back. Any thread.
 */
int		 journal_void(struct journal *j, const struct journal_file *f,
		    struct err *e);
/*
 * Makes every recorded file durable and frees its record. When a sync
 * fails, each file is written again on its own (a failed write-back
 * leaves clean pages that a second sync would skip); -1 (e set) if that
 * fails too: the records stay, marked to be rewritten at the next start,
 * and journal_commit refuses from then on. Any thread, one at a time.
 */
int		 journal_checkpoint(struct journal *j, struct err *e);
/* Bytes held by records not yet checkpointed. */
size_t		 journal_used(struct journal *j);

#endif
