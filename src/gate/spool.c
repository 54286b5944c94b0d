/*
 * spool.c - the durable queue. Layer: gate. Follows doc/QUEUE.md exactly:
 * a finished file is linked into queue/ (or a Maildir's new/) and the sync
 * that follows is the single commit point; state/ holds per-recipient
 * progress; quarantine/ holds what cannot be parsed. Owns every file
 * operation in spool_dir; must never acknowledge (return 0 from
 * spool_commit_batch) before file and name are on stable storage.
 */
#include "gate/spool.h"
#include "gate/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/fdlimit.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/envelope.h"
#include "net/worker.h"

#define SPOOL_WBUF_SIZE		(128 * 1024)
#define SPOOL_MIN_FREE		(32ULL * 1024 * 1024)
/*
 * spool_has_room asks the file system again only after ROOM_TTL_MS, or
 * at once when the last answer left less than ROOM_SLACK to spare: with
 * that much room no message sent meanwhile can cross the reserve
 * unnoticed by its own write, which fails and is refused (452) anyway.
 */
#define ROOM_TTL_MS		1000
/* How long spool_msg_new_direct trusts its last look at a mailbox. */
#define DIRECT_TTL_MS		1000
#define ROOM_SLACK		(1024ULL * 1024 * 1024)
#define SPOOL_HEADER_MAX	(4 * 1024 * 1024)
/* "data " + 20 digits + "\n": rewritten in place at commit. */
#define DATA_LINE_FMT		"data %020llu\n"
#define DATA_LINE_LEN		26

/*
 * The pool of empty files made ahead of need by a thread of its own, so
 * that the event loop never waits for an inode to be made: on ext4 a
 * create can cost half a millisecond of CPU when many files were deleted
 * recently (it steps over recently freed inodes one by one), more than
 * the sync of the message. The files are unnamed (O_TMPFILE in tmp/): the
 * commit links them by their descriptor, nothing is left to unlink, and
 * making one does not lock tmp/ against the other threads' link and
 * unlink. Refilled by a job per thread when it runs low; while a job
 * runs only its thread touches its made[].
 *
 * A finished queue file is not deleted but renamed to tmp/r.SEQ and
 * reused for the next queued message (overwritten from the start, cut to
 * its new length): relaying then neither makes nor frees an inode per
 * message (freeing one, on the loop, costs a truncate and, with the
 * discard mount option, a discard). Only queue files, which never leave
 * the spool, are reused this way: a Maildir file must never carry
 * another message's blocks.
 */
#define POOL_SIZE	128
#define POOL_THREADS	2	/* creates scale on both cores */
#define POOL_RECYCLE	256

struct pool_job {
	struct spool	*sp;
	struct worker	*worker;
	int		 made[POOL_SIZE / POOL_THREADS];
	size_t		 nmade, want;
	int		 errnum;	/* why it made fewer than want */
	bool		 is_busy;
};

struct spool_pool {
	dev_t		 dev;		/* of tmp/ */
	uint64_t	 mnt_id;	/* of tmp/, 0: unknown */
	bool		 is_direct_ok;	/* links into Maildirs work (atomic:
					   the commit thread clears it) */
	int		 ready[POOL_SIZE];
	size_t		 nready;
	size_t		 size, low;	/* filled up to size when under low */
	struct pool_job	 jobs[POOL_THREADS];
	time_t		 failed_at;	/* no refill again that second */
	/* finished queue files kept for reuse as tmp/r.SEQ */
	unsigned long	 recycled[POOL_RECYCLE];
	size_t		 nrecycled;
	unsigned long	 recycle_seq;
};

struct spool {
	uid_t	 uid;		/* owner of spool_dir: files are made its own */
	gid_t	 gid;
	char	*dir;
	char	*tmp_dir;
	char	*queue_dir;
	char	*state_dir;
	char	*quarantine_dir;
	struct spool_pool *pool;
	struct journal *journal;	/* direct deliveries' commit log */
	/* spool_has_room's last answer from the file system */
	long long	 room_avail;
	long long	 room_at_ms;	/* clock_ms(); 0: never */
	/* spool_msg_new_direct's last answer for a mailbox's new/ */
	char		*direct_dir;
	long long	 direct_at_ms;
	bool		 is_direct_dir_ok;
	/* ids linked into queue/ whose sync has not ended: spool_scan does
	 * not report them (a `queue flush` must not send a message whose
	 * commit may still fail) */
	pthread_mutex_t	 busy_lock;
	char		(*busy)[SPOOL_ID_LEN + 1];
	size_t		 nbusy, busy_size;
};

struct spool_msg {
	struct spool	*sp;
	char		 id[SPOOL_ID_LEN + 1];
	char		 tmp_path[PATH_MAX];
	int		 fd;
	off_t		 data_line_off;	/* where DATA_LINE_FMT sits */
	unsigned long long data_len;
	struct buf	 wbuf;
	bool		 is_committed;
	bool		 is_unnamed;	/* from the pool: no tmp name */
	bool		 is_recycled;	/* a former queue file: cut at finish */
	bool		 is_spilled;	/* wbuf was written out before finish */
	bool		 has_copy;	/* wbuf holds the whole finished file */
	/* direct: committed as final_dir/final_name instead of queue/ID */
	char		*final_dir;
	char		*final_name;
	/* where its journal record is (rec_size 0: none made it durable) */
	struct journal_file jrec;
};

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * A new queue id: 13 hex digits of microseconds since the epoch (strictly
 * increasing within this process) and 4 of a sequence seeded from the pid,
 * so that ids sort by arrival and two processes rarely draw the same one
 * (a clash is caught by O_EXCL and link()).
 */
void
spool_new_id(char *out)
{
	static unsigned long long last_usec;
	static unsigned seq;
	static bool seeded;
	struct timeval tv;
	unsigned long long usec;

	gettimeofday(&tv, NULL);
	usec = (unsigned long long)tv.tv_sec * 1000000ULL +
	    (unsigned long long)tv.tv_usec;
	pthread_mutex_lock(&id_lock);
	if (!seeded) {
		seq = (unsigned)getpid() * 2654435761u;
		seeded = true;
	}
	if (usec <= last_usec)
		usec = last_usec + 1;
	last_usec = usec;
	seq++;
	snprintf(out, SPOOL_ID_LEN + 1, "%013llX%04X",
	    usec & 0xFFFFFFFFFFFFFULL, seq & 0xFFFFu);
	pthread_mutex_unlock(&id_lock);
}

bool
spool_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n != SPOOL_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'A' && id[i] <= 'F')))
			return false;
	return true;
}

struct spool *
spool_open(const char *dir, struct err *e)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));

	pthread_mutex_init(&sp->busy_lock, NULL);
	sp->dir = xstrdup(dir);
	sp->tmp_dir = xasprintf("%s/tmp", dir);
	sp->queue_dir = xasprintf("%s/queue", dir);
	sp->state_dir = xasprintf("%s/state", dir);
	sp->quarantine_dir = xasprintf("%s/quarantine", dir);
	if (fsio_mkdirs(sp->dir, 0700, e) == -1 ||
	    fsio_mkdirs(sp->tmp_dir, 0700, e) == -1 ||
	    fsio_mkdirs(sp->queue_dir, 0700, e) == -1 ||
	    fsio_mkdirs(sp->state_dir, 0700, e) == -1 ||
	    fsio_mkdirs(sp->quarantine_dir, 0700, e) == -1) {
		spool_close(sp);
		return NULL;
	}
	{
		struct stat st;

		if (stat(dir, &st) == -1) {
			err_sys(e, "spool: stat %s", dir);
			spool_close(sp);
			return NULL;
		}
		sp->uid = st.st_uid;
		sp->gid = st.st_gid;
	}
	return sp;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	spool_pool_stop(sp);
	journal_close(sp->journal, true);
	free(sp->dir);
	free(sp->tmp_dir);
	free(sp->queue_dir);
	free(sp->state_dir);
	free(sp->quarantine_dir);
	free(sp->direct_dir);
	free(sp->busy);
	pthread_mutex_destroy(&sp->busy_lock);
	free(sp);
}

const char *
spool_path(const struct spool *sp)
{
	return sp->dir;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Root writing into a spool that belongs to the server's user (sendmail,
 * queue hold without a server) gives the file to that user, or the server
 * could not read it.
 */
static bool
must_chown(const struct spool *sp)
{
	return geteuid() == 0 && sp->uid != 0;
}

static int	link_final(struct spool_msg *m, struct err *e);
static int	remove_in(const char *dir, const char *name, struct err *e);

static int
recycled_path(const struct spool *sp, unsigned long seq, char *out,
    size_t size)
{
	int n = snprintf(out, size, "%s/r.%lu", sp->tmp_dir, seq);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* A former queue file for m (path in m->tmp_path), or -1. */
static int
take_recycled(struct spool *sp, struct spool_msg *m)
{
	struct spool_pool *p = sp->pool;

	while (p != NULL && p->nrecycled > 0) {
		unsigned long seq = p->recycled[--p->nrecycled];
		int fd;

		if (recycled_path(sp, seq, m->tmp_path,
		    sizeof(m->tmp_path)) == -1)
			continue;
		fd = open(m->tmp_path, O_WRONLY | O_CLOEXEC);
		if (fd != -1) {
			m->is_recycled = true;
			return fd;
		}
		(void)unlink(m->tmp_path);
	}
	m->tmp_path[0] = '\0';
	return -1;
}

/* Keeps queue/ID for reuse instead of deleting it; -1: delete it. */
static int
recycle(struct spool *sp, const char *id)
{
	struct spool_pool *p = sp->pool;
	char from[PATH_MAX], to[PATH_MAX];

	if (p == NULL || p->nrecycled == POOL_RECYCLE ||
	    fsio_join(from, sizeof(from), sp->queue_dir, id) == -1 ||
	    recycled_path(sp, p->recycle_seq, to, sizeof(to)) == -1 ||
	    renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == -1)
		return -1;
	p->recycled[p->nrecycled++] = p->recycle_seq++;
	return 0;
}

static int
open_unnamed(const struct spool *sp)
{
	return open(sp->tmp_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
}

/* On a pool thread: makes up to want unnamed files. */
static void
pool_fill(void *arg)
{
	struct pool_job *j = arg;

	j->errnum = 0;
	for (j->nmade = 0; j->nmade < j->want; j->nmade++) {
		int fd = open_unnamed(j->sp);

		if (fd == -1) {
			j->errnum = errno;
			break;
		}
		if (must_chown(j->sp) &&
		    fchown(fd, j->sp->uid, j->sp->gid) == -1) {
			j->errnum = errno;
			(void)close(fd);
			break;
		}
		j->made[j->nmade] = fd;
	}
}

/* Back on the loop. */
static void
pool_filled(void *arg)
{
	struct pool_job *j = arg;
	struct spool_pool *p = j->sp->pool;

	for (size_t i = 0; i < j->nmade; i++)
		p->ready[p->nready++] = j->made[i];
	if (j->nmade < j->want) {
		/* Files are made on demand meanwhile, with their own error. */
		if (p->failed_at == 0)
			log_warnx("spool: cannot make files ahead in %s (%s); "
			    "making them on demand", j->sp->tmp_dir,
			    strerror(j->errnum));
		p->failed_at = time(NULL);
	}
	j->nmade = 0;
	j->is_busy = false;
}

int
spool_pool_start(struct spool *sp, struct event_base *base, struct err *e)
{
	struct spool_msg probe = { .sp = sp, .is_unnamed = true };
	char name[PATH_MAX];
	struct statx stx;
	struct err le;
	int n;

	if (sp->pool != NULL)
		return 0;
	/* Unnamed files need O_TMPFILE, and /proc to be linked: tried. */
	if ((probe.fd = open_unnamed(sp)) == -1)
		return err_sys(e, "spool: unnamed file in %s", sp->tmp_dir);
	n = snprintf(name, sizeof(name), ".probe.%ld", (long)getpid());
	probe.final_dir = sp->tmp_dir;
	probe.final_name = name;
	err_clear(&le);
	if (n < 0 || link_final(&probe, e) == -1) {
		(void)close(probe.fd);
		return -1;
	}
	(void)remove_in(sp->tmp_dir, name, &le);
	if (statx(probe.fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) == -1) {
		err_sys(e, "spool: statx %s", sp->tmp_dir);
		(void)close(probe.fd);
		return -1;
	}
	(void)close(probe.fd);
	sp->pool = xcalloc(1, sizeof(*sp->pool));
	/* Open files all: at most a sixteenth of what the limit allows. */
	sp->pool->size = fdlimit_current() / 16;
	if (sp->pool->size > POOL_SIZE)
		sp->pool->size = POOL_SIZE;
	if (sp->pool->size < 2 * POOL_THREADS)
		sp->pool->size = 2 * POOL_THREADS;
	sp->pool->low = sp->pool->size / 2;
	sp->pool->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	sp->pool->mnt_id = stx.stx_mask & STATX_MNT_ID ? stx.stx_mnt_id : 0;
	sp->pool->is_direct_ok = sp->pool->mnt_id != 0;
	for (int i = 0; i < POOL_THREADS; i++) {
		sp->pool->jobs[i].sp = sp;
		sp->pool->jobs[i].worker = worker_new(base);
		if (sp->pool->jobs[i].worker == NULL) {
			spool_pool_stop(sp);
			return err_set(e, "spool: cannot start the file "
			    "pool's threads");
		}
	}
	return 0;
}

int
spool_journal_open(struct spool *sp, const char *postoffice, bool *is_fatal,
    struct err *e)
{
	char path[PATH_MAX];

	*is_fatal = false;
	if (sp->journal != NULL)
		return 0;
	if (fsio_join(path, sizeof(path), sp->dir, "journal") == -1)
		return err_set(e, "spool: path too long in %s", sp->dir);
	sp->journal = journal_open(path, sp->quarantine_dir, postoffice,
	    sp->uid, sp->gid, is_fatal, e);
	return sp->journal ? 0 : -1;
}

int
spool_journal_start(struct spool *sp, struct event_base *base, struct err *e)
{
	if (sp->journal == NULL || journal_start(sp->journal, base, e) == 0)
		return 0;
	/* Without checkpoints it fills up, and then refuses every commit,
	 * which syncs its own files. It is not closed here: the commit
	 * thread may be using it (listeners open before this). */
	return -1;
}

void
spool_pool_stop(struct spool *sp)
{
	struct spool_pool *p = sp->pool;
	char path[PATH_MAX];

	if (p == NULL)
		return;
	for (int i = 0; i < POOL_THREADS; i++)
		worker_free(p->jobs[i].worker);
	while (p->nready > 0)
		(void)close(p->ready[--p->nready]);
	while (p->nrecycled > 0)
		if (recycled_path(sp, p->recycled[--p->nrecycled], path,
		    sizeof(path)) == 0)
			(void)unlink(path);
	free(p);
	sp->pool = NULL;
}

/*
 * An unnamed file from the pool, or -1: the caller makes its file itself.
 * Asks for a refill when the pool runs low.
 */
static int
pool_take(struct spool *sp)
{
	struct spool_pool *p = sp->pool;

	if (p == NULL)
		return -1;
	for (int i = 0; i < POOL_THREADS && p->nready < p->low &&
	    p->failed_at != time(NULL); i++) {
		struct pool_job *j = &p->jobs[i];
		size_t coming = 0;

		if (j->is_busy)
			continue;
		/* ready[] keeps room for what every busy job may bring. */
		for (int k = 0; k < POOL_THREADS; k++)
			if (p->jobs[k].is_busy)
				coming += p->jobs[k].want;
		if (p->nready + coming >= p->size)
			break;
		j->want = p->size - p->nready - coming;
		if (j->want > p->size / POOL_THREADS)
			j->want = p->size / POOL_THREADS;
		j->is_busy = true;
		worker_submit(j->worker, pool_fill, pool_filled, j);
	}
	return p->nready > 0 ? p->ready[--p->nready] : -1;
}

/* A pooled file goes by this name in messages (it has none on disk): the
 * directory it was made in and the message it carries. */
static void
name_unnamed(struct spool_msg *m)
{
	m->is_unnamed = true;
	snprintf(m->tmp_path, sizeof(m->tmp_path), "%s/(unnamed file of %s)",
	    m->sp->tmp_dir, m->id);
}

/* Names in dir (without "." entries), sorted; caller frees each and v. */
static char **
list_dir(const char *dir, size_t *np, struct err *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;

	if (d == NULL) {
		err_sys(e, "spool: open directory %s", dir);
		return NULL;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = xstrdup(de->d_name);
	}
	if (errno) {
		err_sys(e, "spool: read directory %s", dir);
		closedir(d);
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return NULL;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*np = n;
	return v ? v : xcalloc(1, sizeof(*v));
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
remove_in(const char *dir, const char *name, struct err *e)
{
	char path[PATH_MAX];

	if (fsio_join(path, sizeof(path), dir, name) == -1)
		return err_set(e, "spool: bad name %s/%s", dir, name);
	if (unlink(path) == -1 && errno != ENOENT)
		return err_sys(e, "spool: unlink %s", path);
	return 0;
}

static bool
exists_in(const char *dir, const char *name)
{
	char path[PATH_MAX];

	return fsio_join(path, sizeof(path), dir, name) == 0 &&
	    access(path, F_OK) == 0;
}

static bool
is_busy(struct spool *sp, const char *id)
{
	bool busy = false;

	pthread_mutex_lock(&sp->busy_lock);
	for (size_t i = 0; i < sp->nbusy && !busy; i++)
		busy = strcmp(sp->busy[i], id) == 0;
	pthread_mutex_unlock(&sp->busy_lock);
	return busy;
}

/* Marks (or, on false, unmarks) the queued messages of a commit. */
static void
set_busy(struct spool *sp, struct spool_msg **msgs, size_t n, bool on)
{
	pthread_mutex_lock(&sp->busy_lock);
	for (size_t i = 0; i < n; i++) {
		if (msgs[i]->final_dir != NULL)
			continue;
		if (on) {
			if (sp->nbusy == sp->busy_size) {
				sp->busy_size = sp->busy_size ?
				    2 * sp->busy_size : 64;
				sp->busy = xreallocarray(sp->busy,
				    sp->busy_size, sizeof(*sp->busy));
			}
			memcpy(sp->busy[sp->nbusy++], msgs[i]->id,
			    sizeof(*sp->busy));
			continue;
		}
		for (size_t k = 0; k < sp->nbusy; k++)
			if (strcmp(sp->busy[k], msgs[i]->id) == 0) {
				memcpy(sp->busy[k], sp->busy[--sp->nbusy],
				    sizeof(*sp->busy));
				break;
			}
	}
	pthread_mutex_unlock(&sp->busy_lock);
}

long
spool_scan(struct spool *sp, spool_id_fn fn, void *arg, struct err *e)
{
	size_t n;
	char **v = list_dir(sp->queue_dir, &n, e);
	long count = 0;

	if (v == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!spool_id_valid(v[i]) || is_busy(sp, v[i]))
			continue;
		fn(arg, v[i]);
		count++;
	}
	free_list(v, n);
	return count;
}

long
spool_recover(struct spool *sp, spool_id_fn fn, void *arg, struct err *e)
{
	char **v;
	size_t n;

	/* Never acknowledged: whatever is in tmp/ goes. */
	if ((v = list_dir(sp->tmp_dir, &n, e)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (remove_in(sp->tmp_dir, v[i], e) == -1) {
			free_list(v, n);
			return -1;
		}
	free_list(v, n);
	/* State files whose message is gone were being removed; half-written
	 * state updates (.ID.tmpXXXX) never replaced the old state. */
	if ((v = list_dir(sp->state_dir, &n, e)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (v[i][0] == '.' || !exists_in(sp->queue_dir, v[i]))
			if (remove_in(sp->state_dir, v[i], e) == -1) {
				free_list(v, n);
				return -1;
			}
	free_list(v, n);
	/* Stray names in queue/ are moved aside, never silently dropped. */
	if ((v = list_dir(sp->queue_dir, &n, e)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!spool_id_valid(v[i]) && v[i][0] != '.')
			(void)spool_quarantine(sp, v[i],
			    "not a queue id", NULL);
	free_list(v, n);
	return spool_scan(sp, fn, arg, e);
}

struct spool_msg *
spool_msg_new(struct spool *sp, const struct envelope *env, struct err *e)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));
	struct envelope copy = *env;

	m->sp = sp;
	buf_init(&m->wbuf);
	/* A pooled file's link into queue/ catches an id clash (EEXIST). */
	spool_new_id(m->id);
	if ((m->fd = take_recycled(sp, m)) == -1 &&
	    (m->fd = pool_take(sp)) != -1)
		name_unnamed(m);
	for (int tries = 0; m->fd == -1; tries++) {
		if (tries > 0)
			spool_new_id(m->id);	/* tmp/ID was taken */
		if (fsio_join(m->tmp_path, sizeof(m->tmp_path), sp->tmp_dir,
		    m->id) == -1) {
			err_set(e, "spool: path too long in %s", sp->tmp_dir);
			goto fail;
		}
		m->fd = open(m->tmp_path, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		if (m->fd == -1 && (errno != EEXIST || tries > 8)) {
			err_sys(e, "spool: create %s", m->tmp_path);
			goto fail;
		}
	}
	if (must_chown(sp) && fchown(m->fd, sp->uid, sp->gid) == -1) {
		err_sys(e, "spool: chown %s", m->tmp_path);
		goto fail;
	}
	/* The header ends with a fixed-width data line, patched at commit. */
	copy.data_len = 0;
	envelope_format(&copy, &m->wbuf);
	m->wbuf.len -= strlen("data 0\n");
	m->data_line_off = (off_t)m->wbuf.len;
	buf_printf(&m->wbuf, DATA_LINE_FMT, 0ULL);
	return m;
fail:
	spool_msg_free(m);
	return NULL;
}

/*
 * Whether a pooled file can be linked into final_dir: it must be on
 * tmp/'s file system. The answer for the last directory asked is kept a
 * moment (a session's messages go to the same mailbox): if the mailbox
 * was moved meanwhile, the link fails and the message is refused.
 */
static bool
direct_dir_ok(struct spool *sp, const char *final_dir)
{
	long long now = clock_ms();
	struct statx stx;

	if (sp->direct_dir != NULL && strcmp(sp->direct_dir, final_dir) == 0 &&
	    now - sp->direct_at_ms < DIRECT_TTL_MS)
		return sp->is_direct_dir_ok;
	sp->is_direct_dir_ok = statx(AT_FDCWD, final_dir, 0, STATX_MNT_ID,
	    &stx) == 0 && (stx.stx_mask & STATX_MNT_ID) &&
	    stx.stx_mnt_id == sp->pool->mnt_id &&
	    makedev(stx.stx_dev_major, stx.stx_dev_minor) == sp->pool->dev;
	free(sp->direct_dir);
	sp->direct_dir = xstrdup(final_dir);
	sp->direct_at_ms = now;
	return sp->is_direct_dir_ok;
}

struct spool_msg *
spool_msg_new_direct(struct spool *sp, const char *id, const char *tmp_dir,
    const char *final_dir, const char *final_name, struct err *e)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));
	int n;

	m->sp = sp;
	m->fd = -1;
	m->data_line_off = -1;
	buf_init(&m->wbuf);
	str_copy(m->id, id, sizeof(m->id));
	m->final_dir = xstrdup(final_dir);
	m->final_name = xstrdup(final_name);
	n = snprintf(m->tmp_path, sizeof(m->tmp_path), "%s/%s.%s", tmp_dir,
	    final_name, "direct");
	if (n < 0 || (size_t)n >= sizeof(m->tmp_path)) {
		err_set(e, "spool: path too long in %s", tmp_dir);
		m->tmp_path[0] = '\0';
		spool_msg_free(m);
		return NULL;
	}
	/* A pooled file serves when it is on final_dir's file system: it is
	 * linked into final_dir as it would be from tmp_dir. */
	if (sp->pool != NULL &&
	    __atomic_load_n(&sp->pool->is_direct_ok, __ATOMIC_RELAXED) &&
	    direct_dir_ok(sp, final_dir) && (m->fd = pool_take(sp)) != -1) {
		name_unnamed(m);
		return m;
	}
	m->fd = open(m->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (m->fd == -1) {
		err_sys(e, "create %s", m->tmp_path);
		m->tmp_path[0] = '\0';
		spool_msg_free(m);
		return NULL;
	}
	return m;
}

bool
spool_msg_is_direct(const struct spool_msg *m)
{
	return m->final_dir != NULL;
}

const char *
spool_msg_id(const struct spool_msg *m)
{
	return m->id;
}

unsigned long long
spool_msg_len(const struct spool_msg *m)
{
	return m->data_len;
}

static int
flush_wbuf(struct spool_msg *m, struct err *e)
{
	if (m->wbuf.len == 0)
		return 0;
	if (fsio_write_all(m->fd, m->wbuf.data, m->wbuf.len) == -1)
		return err_sys(e, "spool: write %s", m->tmp_path);
	buf_reset(&m->wbuf);
	return 0;
}

int
spool_msg_write(struct spool_msg *m, const void *data, size_t len,
    struct err *e)
{
	m->data_len += len;
	if (m->wbuf.len + len > SPOOL_WBUF_SIZE) {
		m->is_spilled = true;
		if (flush_wbuf(m, e) == -1)
			return -1;
		if (len > SPOOL_WBUF_SIZE) {
			if (fsio_write_all(m->fd, data, len) == -1)
				return err_sys(e, "spool: write %s",
				    m->tmp_path);
			return 0;
		}
	}
	buf_append(&m->wbuf, data, len);
	return 0;
}

int
spool_msg_finish(struct spool_msg *m, struct err *e)
{
	char line[DATA_LINE_LEN + 1];

	if (m->final_dir && !m->is_spilled && m->sp->journal != NULL) {
		/* direct, all of it in wbuf: kept there for its journal
		 * record, and written out by the commit while that record
		 * is on its way (link_all) */
		m->has_copy = true;
		return 0;
	}
	if (flush_wbuf(m, e) == -1)
		goto fail;
	if (m->final_dir)
		return 0;	/* direct: no envelope header to patch */
	snprintf(line, sizeof(line), DATA_LINE_FMT, m->data_len);
	if (pwrite(m->fd, line, DATA_LINE_LEN, m->data_line_off) !=
	    DATA_LINE_LEN) {
		err_sys(e, "spool: write %s", m->tmp_path);
		goto fail;
	}
	/* A reused file: whatever lies past this message goes. */
	if (m->is_recycled) {
		off_t end = lseek(m->fd, 0, SEEK_CUR);

		if (end == -1 || ftruncate(m->fd, end) == -1) {
			err_sys(e, "spool: truncate %s", m->tmp_path);
			goto fail;
		}
	}
	return 0;
fail:
	spool_msg_abort(m);
	return -1;
}

/* The directory a message is committed into: queue/ or its final_dir. */
static const char *
final_dir(const struct spool_msg *m)
{
	return m->final_dir ? m->final_dir : m->sp->queue_dir;
}

/* Where a message is committed: queue/ID or final_dir/final_name. */
static int
final_path(const struct spool_msg *m, char *out, size_t size)
{
	return fsio_join(out, size, final_dir(m), m->final_dir ?
	    m->final_name : m->id);
}

/* Links the finished file into its final directory (not yet durable). */
static int
link_final(struct spool_msg *m, struct err *e)
{
	char final[PATH_MAX];

	if (final_path(m, final, sizeof(final)) == -1)
		return err_set(e, "spool: path too long in %s", final_dir(m));
	/* link(), unlike rename(), never replaces an existing message. */
	if (m->is_unnamed) {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, final,
		    AT_SYMLINK_FOLLOW) == -1) {
			/* Another mount after all (say a bind mount whose
			 * id statx did not tell apart): direct messages
			 * make their file in the mailbox from now on. */
			if (errno == EXDEV && m->sp->pool != NULL)
				__atomic_store_n(&m->sp->pool->is_direct_ok,
				    false, __ATOMIC_RELAXED);
			return err_sys(e, "spool: link %s -> %s", m->tmp_path,
			    final);
		}
	} else if (link(m->tmp_path, final) == -1)
		return err_sys(e, "spool: link %s -> %s", m->tmp_path, final);
	return 0;
}

static void
unlink_queued(struct spool_msg *m)
{
	char final[PATH_MAX];

	if (final_path(m, final, sizeof(final)) == 0)
		(void)unlink(final);
}

void
spool_msg_uncommit(struct spool_msg *m)
{
	struct err e;

	if (!m->is_committed)
		return;
	/* Its record first: a replay must not put the file back. */
	err_clear(&e);
	if (m->jrec.rec_size != 0 && m->sp->journal != NULL &&
	    journal_void(m->sp->journal, &m->jrec, &e) == -1)
		log_warnx("%s; %s/%s, given up, may come back after a crash",
		    e.msg, m->final_dir, m->final_name);
	m->jrec.rec_size = 0;
	unlink_queued(m);
	if (fsio_fsync_dir(final_dir(m), &e) == -1)
		log_warnx("%s; the message given up may come back after a "
		    "crash", e.msg);
	m->is_committed = false;
}

/*
 * Makes the data and the links of the messages durable, but for those
 * with skip[i] set (not linked, or already durable).
 *
 * A lone message: fsync of its file and of its directory, which writes
 * nothing else. A group: one syncfs per file system writes every file and
 * directory there in one pass. Two things it does not do: it reports
 * only the write errors that happened after its own descriptor was
 * opened, and on ext4 without a
 * journal it writes the inode tables and directory blocks after its cache
 * flush, with no flush behind them. So then, per message, a wait on its
 * own descriptor reports its file's write errors, and one fdatasync per
 * file system (of a file already clean) ends with the cache flush. It
 * also writes what others have dirtied on that file system: spool_dir is
 * best on a file system of its own.
 */
static int
sync_batch(struct spool *sp, struct spool_msg **msgs, size_t n,
    const int *skip, struct err *e)
{
	struct {
		dev_t		 dev;
		struct spool_msg *last;	/* fdatasync'd last, or NULL */
	} fs[8];
	size_t nfs = 0, k;
	struct stat st;
	size_t nlinked = 0, last = 0;
	int dirfd, rc;

	for (size_t i = 0; i < n; i++)
		if (!skip[i]) {
			nlinked++;
			last = i;
		}
	if (nlinked == 1) {
		/* A lone message: its own file (fsync, not fdatasync: the
		 * link count of an unnamed file is metadata) and its name;
		 * nothing else on the file system is written. */
		if (fsync(msgs[last]->fd) == -1)
			return err_sys(e, "spool: sync %s",
			    msgs[last]->tmp_path);
		return fsio_fsync_dir(final_dir(msgs[last]), e);
	}
	dirfd = open(sp->tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = dirfd == -1 || syncfs(dirfd) == -1 || fstat(dirfd, &st) == -1 ?
	    -1 : 0;
	if (dirfd != -1)
		(void)close(dirfd);
	if (rc == -1)
		return err_sys(e, "spool: sync %s", sp->dir);
	fs[nfs].dev = st.st_dev;
	fs[nfs++].last = NULL;
	for (size_t i = 0; i < n; i++) {
		if (skip[i])
			continue;
		if (fstat(msgs[i]->fd, &st) == -1)
			return err_sys(e, "spool: stat %s", msgs[i]->tmp_path);
		for (k = 0; k < nfs && fs[k].dev != st.st_dev; k++)
			;
		if (k == nfs) {
			/* a direct message on another file system */
			if (nfs == sizeof(fs) / sizeof(fs[0]))
				return err_set(e, "spool: messages on more "
				    "than %zu file systems", nfs);
			if (syncfs(msgs[i]->fd) == -1)
				return err_sys(e, "sync %s", msgs[i]->tmp_path);
			fs[nfs].dev = st.st_dev;
			fs[nfs++].last = NULL;
		}
		if (fs[k].last == NULL)
			fs[k].last = msgs[i];
		else if (sync_file_range(msgs[i]->fd, 0, 0,
		    SYNC_FILE_RANGE_WAIT_BEFORE) == -1)
			return err_sys(e, "spool: write %s", msgs[i]->tmp_path);
	}
	for (k = 0; k < nfs; k++)
		if (fs[k].last != NULL && fdatasync(fs[k].last->fd) == -1)
			return err_sys(e, "spool: sync %s",
			    fs[k].last->tmp_path);
	return 0;
}

/* A commit's messages, for link_all. */
struct commit_links {
	struct spool_msg	**msgs;
	size_t			  n;
	int			 *results;
	struct err		 *errs;
	int			 *skip;		/* nothing to sync */
	struct journal_file	 *files;	/* the journaled ones */
	size_t			 *which;	/* files[k] is msgs[which[k]] */
	size_t			  nfiles;
};

/*
 * Writes out the content of each message that kept it in wbuf for its
 * journal record, and links every message under its final name. Called
 * once per commit, while the journal's write is on its way.
 */
static void
link_all(void *arg)
{
	struct commit_links *l = arg;

	for (size_t i = 0; i < l->n; i++) {
		struct spool_msg *m = l->msgs[i];

		err_clear(&l->errs[i]);
		if (m->has_copy && fsio_write_all(m->fd, m->wbuf.data,
		    m->wbuf.len) == -1)
			l->results[i] = err_sys(&l->errs[i], "spool: write %s",
			    m->tmp_path);
		else
			l->results[i] = link_final(m, &l->errs[i]);
		l->skip[i] = l->results[i] != 0;
	}
	for (size_t k = 0; k < l->nfiles; k++)
		l->files[k].is_void = l->results[l->which[k]] != 0;
}

/*
 * The journal's part of a commit: the messages whose whole file is in
 * memory get a record, which is their sync, and every message is linked
 * (link_all) while it is written; skip[i] is set for those it covered.
 * The rest, or all of them when the journal cannot take them now, are
 * synced by the caller.
 */
static void
commit_journal(struct spool *sp, struct commit_links *l)
{
	struct stat st;
	struct err e;

	l->files = xcalloc(l->n, sizeof(*l->files));
	l->which = xcalloc(l->n, sizeof(*l->which));
	for (size_t i = 0; i < l->n; i++) {
		struct spool_msg *m = l->msgs[i];
		struct journal_file *f = &l->files[l->nfiles];

		if (!m->has_copy || fstat(m->fd, &st) == -1)
			continue;
		l->which[l->nfiles++] = i;
		f->dir = m->final_dir;
		f->name = m->final_name;
		f->data = m->wbuf.data;
		f->len = m->wbuf.len;
		f->dev = st.st_dev;
	}
	err_clear(&e);
	if (l->nfiles == 0)
		link_all(l);
	else if (journal_commit(sp->journal, l->files, l->nfiles, link_all, l,
	    &e) == 0)
		for (size_t k = 0; k < l->nfiles; k++) {
			l->skip[l->which[k]] = 1;
			if (!l->files[k].is_void)
				l->msgs[l->which[k]]->jrec = l->files[k];
		}
	else if (e.errnum != 0)
		/* A full journal is routine; a failed write is not. The
		 * messages are synced the usual way either way. */
		log_warnx("%s; syncing the messages instead", e.msg);
	free(l->which);
	free(l->files);
}

/*
 * Group commit. The order halves the syncs of the obvious one (sync each
 * file, link, sync the directories): a finished file is complete before
 * it is linked, so the link can come first and one sync covers data and
 * names together. The file's writeback is started before the link so
 * that, on a journalling file system, its blocks are allocated in the
 * same or an earlier transaction than the link. Until that sync returns
 * the message is visible but not acknowledged: a crash there can leave
 * it queued (spool_load checks its length; a short one is quarantined)
 * or in the mailbox while the client, never having had its 250, sends it
 * again: a duplicate, never a loss (RFC 5321 section 6.1). Direct
 * messages small enough are instead made durable by one record in the
 * journal (journal.h), written while their files are written and linked;
 * the files are synced later, by its checkpoint.
 */
void
spool_commit_batch(struct spool *sp, struct spool_msg **msgs, size_t n,
    int *results, struct err *errs)
{
	struct err e;
	size_t nsync = 0;
	struct commit_links l = {
		.msgs = msgs, .n = n, .results = results, .errs = errs,
		.skip = xcalloc(n, sizeof(int)),
	};

	for (size_t i = 0; i < n; i++)
		if (!msgs[i]->has_copy)
			(void)sync_file_range(msgs[i]->fd, 0, 0,
			    SYNC_FILE_RANGE_WRITE);
	set_busy(sp, msgs, n, true);
	if (sp->journal != NULL)
		commit_journal(sp, &l);
	else
		link_all(&l);
	for (size_t i = 0; i < n; i++)
		nsync += !l.skip[i];
	if (nsync > 0 && sync_batch(sp, msgs, n, l.skip, &e) == -1) {
		/* Not durable: undo; the clients will retry. The undoing is
		 * synced too: the failed sync may have made a link durable
		 * (syncfs commits the names even when a file's pages fail). */
		const char *synced = NULL;

		for (size_t i = 0; i < n; i++)
			if (!l.skip[i]) {
				unlink_queued(msgs[i]);
				errs[i] = e;
				results[i] = -1;
			}
		for (size_t i = 0; i < n; i++) {
			struct err de;

			if (l.skip[i] || (synced != NULL &&
			    strcmp(synced, final_dir(msgs[i])) == 0))
				continue;
			synced = final_dir(msgs[i]);
			if (fsio_fsync_dir(synced, &de) == -1)
				log_warnx("%s; messages refused there may come "
				    "back after a crash", de.msg);
		}
	}
	free(l.skip);
	set_busy(sp, msgs, n, false);
	for (size_t i = 0; i < n; i++) {
		if (results[i] == 0)
			msgs[i]->is_committed = true;
		/* The tmp name's removal need not be durable: recovery
		 * cleans tmp/. */
		spool_msg_abort(msgs[i]);
	}
}

int
spool_msg_commit(struct spool_msg *m, struct err *e)
{
	int result;

	if (spool_msg_finish(m, e) == -1)
		return -1;
	spool_commit_batch(m->sp, &m, 1, &result, e);
	return result;
}

void
spool_msg_abort(struct spool_msg *m)
{
	if (m->fd != -1) {
		(void)close(m->fd);
		m->fd = -1;
	}
	/* Committed or not, the tmp name goes (after a commit it is only a
	 * second link to the queue file). */
	if (m->tmp_path[0] && !m->is_unnamed)
		(void)unlink(m->tmp_path);
	m->tmp_path[0] = '\0';
}

void
spool_msg_free(struct spool_msg *m)
{
	if (m == NULL)
		return;
	spool_msg_abort(m);
	buf_clear(&m->wbuf);
	free(m->final_dir);
	free(m->final_name);
	free(m);
}

/* Reads the header of an open queue file up to and including "data". */
static int
read_header(int fd, const char *path, struct envelope *env, off_t *data_off,
    struct err *e)
{
	struct buf b;
	size_t header_len = 0;
	struct err pe;
	int rc = -1;

	buf_init(&b);
	for (;;) {
		ssize_t n;

		buf_reserve(&b, 65536);
		n = read(fd, b.data + b.len, 65536);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_sys(e, "spool: read %s", path);
			break;
		}
		b.len += (size_t)n;
		b.data[b.len] = '\0';
		envelope_clear(env);
		err_clear(&pe);
		if (envelope_parse(b.data, b.len, env, &header_len, &pe) == 0) {
			rc = 0;
			break;
		}
		if (n == 0 || b.len > SPOOL_HEADER_MAX) {
			err_set(e, "spool: %s: %s", path, pe.msg);
			break;
		}
	}
	buf_clear(&b);
	*data_off = (off_t)header_len;
	return rc;
}

int
spool_load(struct spool *sp, const char *id, struct envelope *env, int *fdp,
    off_t *data_off, struct err *e)
{
	char path[PATH_MAX];
	struct stat st;
	off_t off = 0;
	char *state;
	size_t len;
	int fd;

	if (fsio_join(path, sizeof(path), sp->queue_dir, id) == -1)
		return err_set(e, "spool: bad queue id '%s'", id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return err_sys(e, "spool: open %s", path);
	if (read_header(fd, path, env, &off, e) == -1)
		goto fail;
	if (fstat(fd, &st) == -1) {
		err_sys(e, "spool: stat %s", path);
		goto fail;
	}
	if ((unsigned long long)(st.st_size - off) != env->data_len) {
		err_set(e, "spool: %s: %llu bytes of data, header says %llu",
		    path, (unsigned long long)(st.st_size - off),
		    env->data_len);
		goto fail;
	}
	if (fsio_join(path, sizeof(path), sp->state_dir, id) == 0 &&
	    access(path, F_OK) == 0) {
		state = fsio_read_file(path, SPOOL_HEADER_MAX, &len, e);
		if (state == NULL)
			goto fail;
		if (envelope_parse_state(state, len, env, e) == -1) {
			free(state);
			goto fail;
		}
		free(state);
	}
	if (fdp) {
		*fdp = fd;
		*data_off = off;
	} else
		(void)close(fd);
	return 0;
fail:
	(void)close(fd);
	return -1;
}

int
spool_save_state(struct spool *sp, const char *id, const struct envelope *env,
    struct err *e)
{
	struct buf b;
	int rc;

	buf_init(&b);
	envelope_format_state(env, &b);
	rc = fsio_write_atomic(sp->state_dir, id, b.data, b.len, 0600, e);
	buf_clear(&b);
	if (rc == 0 && must_chown(sp)) {
		char path[PATH_MAX];

		if (fsio_join(path, sizeof(path), sp->state_dir, id) == -1 ||
		    chown(path, sp->uid, sp->gid) == -1)
			return err_sys(e, "spool: chown state of %s", id);
	}
	return rc;
}

/* Removes queue/ID (kept for reuse when may_recycle) and state/ID. */
static int
remove_msg(struct spool *sp, const char *id, bool may_recycle,
    struct err *e)
{
	if (((!may_recycle || recycle(sp, id) == -1) &&
	    remove_in(sp->queue_dir, id, e) == -1) ||
	    remove_in(sp->state_dir, id, e) == -1)
		return -1;
	return 0;
}

int
spool_remove_nosync(struct spool *sp, const char *id, struct err *e)
{
	return remove_msg(sp, id, true, e);
}

int
spool_sync_queue(struct spool *sp, struct err *e)
{
	return fsio_fsync_dir(sp->queue_dir, e);
}

int
spool_remove(struct spool *sp, const char *id, struct err *e)
{
	if (spool_remove_nosync(sp, id, e) == -1)
		return -1;
	return spool_sync_queue(sp, e);
}

int
spool_delete(struct spool *sp, const char *id, struct err *e)
{
	if (remove_msg(sp, id, false, e) == -1)
		return -1;
	return spool_sync_queue(sp, e);
}

int
spool_quarantine(struct spool *sp, const char *id, const char *reason,
    struct err *e)
{
	char from[PATH_MAX], to[PATH_MAX], rname[NAME_MAX + 1];
	int n;

	if (fsio_join(from, sizeof(from), sp->queue_dir, id) == -1 ||
	    fsio_join(to, sizeof(to), sp->quarantine_dir, id) == -1)
		return err_set(e, "spool: bad name '%s'", id);
	n = snprintf(rname, sizeof(rname), "%s.reason", id);
	if (n < 0 || (size_t)n >= sizeof(rname))
		return err_set(e, "spool: name too long '%s'", id);
	if (fsio_write_atomic(sp->quarantine_dir, rname, reason,
	    strlen(reason), 0600, e) == -1)
		return -1;
	if (rename(from, to) == -1)
		return err_sys(e, "spool: rename %s -> %s", from, to);
	(void)remove_in(sp->state_dir, id, NULL);
	if (fsio_fsync_dir(sp->quarantine_dir, e) == -1)
		return -1;
	return fsio_fsync_dir(sp->queue_dir, e);
}

bool
spool_has_room(struct spool *sp, unsigned long long size)
{
	long long now = clock_ms();

	if (sp->room_at_ms == 0 || now - sp->room_at_ms >= ROOM_TTL_MS ||
	    sp->room_avail < 0 ||
	    (unsigned long long)sp->room_avail < size + SPOOL_MIN_FREE +
	    ROOM_SLACK) {
		sp->room_avail = fsio_free_bytes(sp->dir);
		sp->room_at_ms = now;
	}
	if (sp->room_avail < 0)
		return true;	/* cannot tell: let the write decide */
	return (unsigned long long)sp->room_avail >= size + SPOOL_MIN_FREE;
}
