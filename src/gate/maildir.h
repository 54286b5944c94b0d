/*
 * maildir.h - Maildir delivery (https://cr.yp.to/proto/maildir.html).
 *
 * Writes tmp/UNIQUE, fsyncs it, links it into new/UNIQUE, removes the tmp
 * name and fsyncs new/ - only then is the delivery done. Mailboxes are
 * created on first delivery (MAILBOX/{tmp,new,cur}, mode 0700, parents
 * fsync'd). Blocking file I/O: call it off the event loop's hot path.
 */
#ifndef SMTPGATE_GATE_MAILDIR_H
#define SMTPGATE_GATE_MAILDIR_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct err;

/*
 * Delivers prefix (prefix_len bytes of header lines, e.g. Return-Path and
 * Delivered-To, each ending in CRLF... as given) followed by len bytes of
 * fd starting at offset, into postoffice/mailbox. mailbox must pass
 * mailbox_name_valid (checked again here). Files get mode 0600.
 * On success the new file's name (without directory) is copied to
 * name_out when it is not NULL (name_size bytes). Returns 0 or -1 with e
 * filled ("maildir: write /po/alice/tmp/...: No space left on device").
 */
int	maildir_deliver(const char *postoffice, const char *mailbox,
	    const char *hostname, const char *prefix, size_t prefix_len,
	    int fd, off_t offset, off_t len, char *name_out,
	    size_t name_size, struct err *e);
/*
 * A unique name for recipient index of queued message id:
 * "SECONDS.S<id>R<index>.HOST", escaped as below. Unique because queue
 * ids are, and the same on every attempt: maildir_prepare finds the file
 * of an attempt that crashed before recording it.
 */
int	maildir_queue_name(char *out, size_t size, long long sec,
	    const char *id, size_t index, const char *hostname);
/*
 * Builds a unique file name per the Maildir specification:
 * "SECONDS.M<usec>P<pid>Q<counter>.HOST" where HOST has '/' as "\057" and
 * ':' as "\072". Returns 0, -1 when it does not fit.
 */
int	maildir_unique_name(char *out, size_t size, long long sec, long usec,
	    long pid, unsigned long counter, const char *hostname);

/*
 * Batches: prepare many deliveries (tmp files written, not synced), make
 * them durable with one sync of the file system, then publish each (link
 * into new/) and fsync each new/ directory once. Names come from
 * maildir_queue_name, so a retry after a crash never delivers twice.
 */
enum maildir_state {
	MAILDIR_NONE,
	MAILDIR_PREPARED,	/* tmp written, not yet synced or linked */
	MAILDIR_ALREADY,	/* new/NAME was there: delivered before */
	MAILDIR_PUBLISHED,	/* linked into new/ */
};

struct maildir_delivery {
	enum maildir_state	state;
	char			tmp[PATH_MAX];
	char			final[PATH_MAX];
	char			newdir[PATH_MAX];	/* fsync after publish */
};

/* Creates postoffice/mailbox/{tmp,new,cur} when missing; dir gets the
 * mailbox path, newdir its new/ (PATH_MAX bytes each). 0 or -1. The
 * mailbox found complete last is not looked at again for a second. */
int	maildir_make(const char *postoffice, const char *mailbox, char *dir,
	    char *newdir, struct err *e);
/* Writes tmp/ for mailbox (created on first use). 0 (d->state PREPARED
 * or ALREADY) or -1 with e filled. */
int	maildir_prepare(struct maildir_delivery *d, const char *postoffice,
	    const char *mailbox, const char *name, const char *prefix,
	    size_t prefix_len, int fd, off_t offset, off_t len,
	    struct err *e);
/* After the data is synced: links into new/ (0, or -1 and discarded). */
int	maildir_publish(struct maildir_delivery *d, struct err *e);
/* Takes a published copy back (its new/ could not be synced). */
void	maildir_unpublish(struct maildir_delivery *d);
/* Removes a prepared tmp file that will not be published. */
void	maildir_discard(struct maildir_delivery *d);

#endif
