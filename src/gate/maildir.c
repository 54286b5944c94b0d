/*
 * maildir.c - delivery into a Maildir (https://cr.yp.to/proto/maildir.html).
 *
 * Layer: gate. Owns nothing but a process-wide counter for unique names
 * (atomic: deliveries run in worker threads). The delivery is done only
 * when the file is fsync'd, linked into new/ and new/ is fsync'd; until
 * then nothing appears in new/, so a reader never sees half a message.
 * Never: write outside postoffice_dir/MAILBOX, leave a file in tmp/ after a
 * failure it could remove, or report success before new/ is on disk.
 */
#include "gate/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/mem.h"

#include "gate/addrmap.h"

#define MAILDIR_MODE		0700
#define MAILDIR_FILE_MODE	0600
#define MAILDIR_COPY_BUF	(64 * 1024)
#define MAILDIR_ATTEMPTS	5	/* fresh names tried on EEXIST */
#define MAILDIR_NAME_SIZE	512

static atomic_ulong maildir_counter;

/* Appends the escaped host name to the n bytes already in out. */
static int
append_host(char *out, size_t size, int n, const char *hostname)
{
	size_t pos;

	if (hostname == NULL || *hostname == '\0')
		hostname = "localhost";
	if (n < 0 || (size_t)n >= size)
		goto toolong;
	pos = (size_t)n;
	for (const char *h = hostname; *h; h++) {
		unsigned char c = (unsigned char)*h;
		/* '/' would make a path, ':' starts the info part. */
		if (c == '/' || c == ':' || c < 0x20 || c == 0x7f) {
			if (pos + 4 >= size)
				goto toolong;
			snprintf(out + pos, size - pos, "\\%03o", c);
			pos += 4;
		} else {
			if (pos + 1 >= size)
				goto toolong;
			out[pos++] = (char)c;
		}
	}
	out[pos] = '\0';
	return 0;
toolong:
	if (size > 0)
		out[0] = '\0';
	return -1;
}

int
maildir_unique_name(char *out, size_t size, long long sec, long usec,
    long pid, unsigned long counter, const char *hostname)
{
	return append_host(out, size, snprintf(out, size, "%lld.M%ldP%ldQ%lu.",
	    sec, usec, pid, counter), hostname);
}

int
maildir_queue_name(char *out, size_t size, long long sec, const char *id,
    size_t index, const char *hostname)
{
	return append_host(out, size, snprintf(out, size, "%lld.S%sR%zu.",
	    sec, id, index), hostname);
}

/* Puts "maildir: " before the message a lower layer wrote. */
static int
err_prefix(struct err *e)
{
	char msg[sizeof(e->msg)];

	if (e == NULL)
		return -1;
	memcpy(msg, e->msg, sizeof(msg));
	snprintf(e->msg, sizeof(e->msg), "maildir: %.*s",
	    (int)(sizeof(e->msg) - 10), msg);
	return -1;
}

/*
 * Creates postoffice/MAILBOX/{tmp,new,cur} as needed; newdir gets
 * "dir/new". When any was missing, the mailbox and the postoffice are
 * fsync'd here too: fsio_mkdirs syncs only where it created a directory
 * itself, and a concurrent delivery that lost the race to create it
 * must not go on before the new entries are durable.
 */
static int
make_dirs(const char *postoffice, const char *dir, char *newdir,
    struct err *e)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char path[PATH_MAX];
	struct stat st;
	bool is_fresh = false;

	/* The mailbox itself 0700 too (fsio_mkdirs makes parents 0755). */
	if (stat(dir, &st) == -1 && fsio_mkdirs(dir, MAILDIR_MODE, e) == -1)
		return err_prefix(e);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		int n = snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if (n < 0 || (size_t)n >= sizeof(path))
			return err_set(e, "maildir: path too long: %s", dir);
		if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
			is_fresh = true;
			if (fsio_mkdirs(path, MAILDIR_MODE, e) == -1)
				return err_prefix(e);
		}
		if (i == 1)
			memcpy(newdir, path, (size_t)n + 1);
	}
	if (is_fresh && (fsio_fsync_dir(dir, e) == -1 ||
	    fsio_fsync_dir(postoffice, e) == -1))
		return err_prefix(e);
	return 0;
}

static int
new_name(char *name, const char *hostname, struct err *e)
{
	struct timespec ts;
	unsigned long q = atomic_fetch_add(&maildir_counter, 1);

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return err_sys(e, "maildir: clock_gettime");
	if (maildir_unique_name(name, MAILDIR_NAME_SIZE, (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, (long)getpid(), q, hostname) == -1)
		return err_set(e, "maildir: unique name too long for host "
		    "name %.64s", hostname ? hostname : "");
	return 0;
}

static int
path_of(char *out, const char *dir, const char *sub, const char *name,
    struct err *e)
{
	int n = snprintf(out, PATH_MAX, "%s/%s/%s", dir, sub, name);

	if (n < 0 || n >= PATH_MAX)
		return err_set(e, "maildir: path too long: %s/%s", dir, sub);
	return 0;
}

/* Creates tmp/NAME exclusively; fills name and tmp. Returns the fd. */
static int
create_tmp(const char *dir, const char *hostname, char *name, char *tmp,
    struct err *e)
{
	for (int i = 0; i < MAILDIR_ATTEMPTS; i++) {
		int fd;

		if (new_name(name, hostname, e) == -1 ||
		    path_of(tmp, dir, "tmp", name, e) == -1)
			return -1;
		fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		    MAILDIR_FILE_MODE);
		if (fd != -1)
			return fd;
		if (errno != EEXIST)
			break;
	}
	return err_sys(e, "maildir: create %s", tmp);
}

/* Copies exactly len bytes of in from offset into out (path for errors). */
static int
copy_range(int out, const char *path, int in, off_t offset, off_t len,
    struct err *e)
{
	char *b = xmalloc(MAILDIR_COPY_BUF);
	off_t done = 0;
	int rc = -1;

	while (done < len) {
		size_t want = MAILDIR_COPY_BUF;
		ssize_t n;

		if (len - done < (off_t)want)
			want = (size_t)(len - done);
		n = pread(in, b, want, offset + done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_sys(e, "maildir: read spool file at offset %lld",
			    (long long)(offset + done));
			goto out;
		}
		if (n == 0) {
			err_set(e, "maildir: spool file shorter than expected "
			    "(%lld of %lld bytes from offset %lld)",
			    (long long)done, (long long)len,
			    (long long)offset);
			goto out;
		}
		if (fsio_write_all(out, b, (size_t)n) == -1) {
			err_sys(e, "maildir: write %s", path);
			goto out;
		}
		done += n;
	}
	rc = 0;
out:
	free(b);
	return rc;
}

/* Writes, fsyncs (with do_sync) and closes tmp; fd is closed whatever
 * happens. */
static int
write_tmp(int fd, const char *tmp, const char *prefix, size_t prefix_len,
    int src, off_t offset, off_t len, bool do_sync, struct err *e)
{
	if (prefix_len > 0 && fsio_write_all(fd, prefix, prefix_len) == -1) {
		err_sys(e, "maildir: write %s", tmp);
		goto fail;
	}
	if (copy_range(fd, tmp, src, offset, len, e) == -1)
		goto fail;
	if (do_sync && fsync(fd) == -1) {
		err_sys(e, "maildir: fsync %s", tmp);
		goto fail;
	}
	if (close(fd) == -1)
		return err_sys(e, "maildir: close %s", tmp);
	return 0;
fail:
	(void)close(fd);	/* the error that matters is already in e */
	return -1;
}

/*
 * Links tmp into new/ under name, or under a fresh name when that one is
 * taken (another host or process that got the same name).
 */
static int
link_new(const char *dir, const char *hostname, const char *tmp, char *name,
    char *final, struct err *e)
{
	for (int i = 0; i < MAILDIR_ATTEMPTS; i++) {
		if (i > 0 && new_name(name, hostname, e) == -1)
			return -1;
		if (path_of(final, dir, "new", name, e) == -1)
			return -1;
		if (link(tmp, final) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	return err_sys(e, "maildir: link %s -> %s", tmp, final);
}

static int
check_args(const char *postoffice, const char *mailbox, off_t offset,
    off_t len, char *dir, struct err *e)
{
	/* Checked again here: this is the last line before the disk. */
	if (!mailbox_name_valid(mailbox))
		return err_set(e, "maildir: bad mailbox name '%.300s'",
		    mailbox ? mailbox : "(null)");
	if (offset < 0 || len < 0 || offset > INT64_MAX - len)
		return err_set(e, "maildir: bad spool file range %lld+%lld",
		    (long long)offset, (long long)len);
	if (fsio_join(dir, PATH_MAX, postoffice, mailbox) == -1)
		return err_set(e, "maildir: path too long: %s/%s", postoffice,
		    mailbox);
	return 0;
}

int
maildir_deliver(const char *postoffice, const char *mailbox,
    const char *hostname, const char *prefix, size_t prefix_len, int fd,
    off_t offset, off_t len, char *name_out, size_t name_size,
    struct err *e)
{
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX], newdir[PATH_MAX];
	char name[MAILDIR_NAME_SIZE];
	int out;

	if (check_args(postoffice, mailbox, offset, len, dir, e) == -1 ||
	    make_dirs(postoffice, dir, newdir, e) == -1)
		return -1;
	if ((out = create_tmp(dir, hostname, name, tmp, e)) == -1)
		return -1;
	if (write_tmp(out, tmp, prefix, prefix_len, fd, offset, len, true,
	    e) == -1 ||
	    link_new(dir, hostname, tmp, name, final, e) == -1) {
		(void)unlink(tmp);	/* nothing was delivered */
		return -1;
	}
	/* Delivered once linked: a stale tmp/ file is only litter. */
	if (unlink(tmp) == -1)
		log_warn("maildir: unlink %s", tmp);
	if (fsio_fsync_dir(newdir, e) == -1) {
		/*
		 * Not durable, so the caller will retry: take the copy back,
		 * or the retry would deliver the message twice.
		 */
		(void)unlink(final);
		return err_prefix(e);
	}
	if (name_out != NULL && name_size > 0)
		snprintf(name_out, name_size, "%s", name);
	return 0;
}

/*
 * The mailbox maildir_make last found complete, and when (per thread):
 * a session's messages mostly go to the same mailbox, and looking again
 * costs four stat calls. Trusted for MADE_TTL_MS; a mailbox removed in
 * that moment makes the delivery's link fail, which refuses the message.
 */
#define MADE_TTL_MS	1000

static _Thread_local char made_dir[PATH_MAX];
static _Thread_local long long made_at_ms;

int
maildir_make(const char *postoffice, const char *mailbox, char *dir,
    char *newdir, struct err *e)
{
	long long now = clock_ms();

	if (check_args(postoffice, mailbox, 0, 0, dir, e) == -1)
		return -1;
	if (made_dir[0] != '\0' && now - made_at_ms < MADE_TTL_MS &&
	    strcmp(made_dir, dir) == 0 &&
	    snprintf(newdir, PATH_MAX, "%s/new", dir) < PATH_MAX)
		return 0;
	made_dir[0] = '\0';
	if (make_dirs(postoffice, dir, newdir, e) == -1)
		return -1;
	memcpy(made_dir, dir, strlen(dir) + 1);
	made_at_ms = now;
	return 0;
}

/* ---- batches: many deliveries, one sync ------------------------------ */

int
maildir_prepare(struct maildir_delivery *d, const char *postoffice,
    const char *mailbox, const char *name, const char *prefix,
    size_t prefix_len, int fd, off_t offset, off_t len, struct err *e)
{
	char dir[PATH_MAX], tmpname[MAILDIR_NAME_SIZE];
	int out;

	d->state = MAILDIR_NONE;
	if (check_args(postoffice, mailbox, offset, len, dir, e) == -1 ||
	    make_dirs(postoffice, dir, d->newdir, e) == -1)
		return -1;
	if (strchr(name, '/') || path_of(d->final, dir, "new", name, e) == -1)
		return err_set(e, "maildir: bad file name %.64s", name);
	if (access(d->final, F_OK) == 0) {
		/* Delivered by an attempt that crashed before recording it. */
		d->state = MAILDIR_ALREADY;
		return 0;
	}
	if ((out = create_tmp(dir, NULL, tmpname, d->tmp, e)) == -1)
		return -1;
	if (write_tmp(out, d->tmp, prefix, prefix_len, fd, offset, len, false,
	    e) == -1) {
		(void)unlink(d->tmp);
		return -1;
	}
	d->state = MAILDIR_PREPARED;
	return 0;
}

int
maildir_publish(struct maildir_delivery *d, struct err *e)
{
	if (d->state != MAILDIR_PREPARED)
		return d->state == MAILDIR_ALREADY ? 0 :
		    err_set(e, "maildir: nothing prepared");
	if (link(d->tmp, d->final) == -1 && errno != EEXIST) {
		err_sys(e, "maildir: link %s -> %s", d->tmp, d->final);
		maildir_discard(d);
		return -1;
	}
	if (unlink(d->tmp) == -1)
		log_warn("maildir: unlink %s", d->tmp);
	d->state = MAILDIR_PUBLISHED;
	return 0;
}

void
maildir_unpublish(struct maildir_delivery *d)
{
	if (d->state == MAILDIR_PUBLISHED)
		(void)unlink(d->final);
	d->state = MAILDIR_NONE;
}

void
maildir_discard(struct maildir_delivery *d)
{
	if (d->state == MAILDIR_PREPARED)
		(void)unlink(d->tmp);
	d->state = MAILDIR_NONE;
}
