/*
 * journal.c - the commit log of direct Maildir deliveries. Layer: gate.
 * Follows doc/QUEUE.md, "The journal".
 *
 * Layout of spool_dir/journal (JOURNAL_SIZE bytes, every block written
 * once when it is made, so a write never allocates):
 *
 *   block 0, block 1   two header slots, written in turn by checkpoints;
 *                      the valid one with the higher tail_seq counts
 *   from block 2       a ring of records, each a whole number of blocks:
 *                      struct jrec, dir, name, content, zeros
 *
 * Records carry consecutive sequence numbers; replay starts at the
 * header's tail (offset and sequence) and follows the ring while each
 * record has the next sequence and a good CRC. A record that would run
 * past the end starts again at block 2, so when the next sequence is not
 * where the previous record ended, replay looks there once. A record is
 * written whole, with its files already linked, and is acknowledged only
 * once the write is on stable storage; a torn one ends the replay, and
 * nothing after it was ever acknowledged.
 *
 * Locking: one mutex covers the ring (head, tail, used) and the table of
 * file systems; journal_commit holds it across its write so that a
 * checkpoint's snapshot of the head covers only records already written.
 */
#include "gate/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/crc32c.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "net/worker.h"

#define JOURNAL_SIZE	(8 * 1024 * 1024)
#define JBLOCK		4096
#define RING_START	(2 * JBLOCK)
#define RING_SIZE	(JOURNAL_SIZE - RING_START)
#define JOURNAL_MAX_FS	8
#define CHECKPOINT_MS	100	/* records wait at most this for their sync */

static const char head_magic[8] = "SGJHDR01";
static const char rec_magic[8] = "SGJREC01";

struct jhead {
	char		magic[8];
	uint64_t	tail_off;
	uint64_t	tail_seq;
	uint64_t	gen;		/* which slot is newer */
	uint32_t	crc;		/* of the struct with crc = 0 */
	uint32_t	pad;
};

struct jrec {
	char		magic[8];
	uint64_t	seq;
	uint64_t	data_len;
	uint32_t	size;		/* whole record, a multiple of JBLOCK */
	uint32_t	dir_len;
	uint32_t	name_len;
	uint32_t	crc;		/* of the record up to its data's end,
					 * with crc = 0 */
};

struct jfs {
	dev_t	dev;
	int	fd;		/* a directory there, for syncfs */
	char	*dir;		/* its path, for messages */
};

struct journal {
	char		*path;
	int		 fd;
	int		 lock_fd;	/* holds the flock, when not fd */
	bool		 is_direct;	/* O_DIRECT | O_DSYNC writes */
	pthread_mutex_t	 lock;
	uint64_t	 head_off, head_seq;	/* next record */
	uint64_t	 tail_off, tail_seq;	/* oldest record kept */
	uint64_t	 gen;			/* of the last header */
	size_t		 used;		/* ring bytes from tail to head */
	uint64_t	 broken_seq;	/* a failed write lies before it: no
					 * commit until a checkpoint passes */
	struct jfs	 fs[JOURNAL_MAX_FS];
	size_t		 nfs;
	/* background checkpoints (with an event base) */
	struct event	*timer;
	struct worker	*worker;
	bool		 is_timer_armed;	/* under lock */
	bool		 is_busy;		/* loop only */
	struct err	 ck_err;
	int		 ck_result;
	time_t		 ck_logged;
};

static size_t
rec_size(size_t dir_len, size_t name_len, size_t data_len)
{
	size_t n = sizeof(struct jrec) + dir_len + name_len + data_len;

	return (n + JBLOCK - 1) / JBLOCK * JBLOCK;
}

static uint32_t
rec_crc(const struct jrec *r, const void *rest, size_t rest_len)
{
	struct jrec copy = *r;

	copy.crc = 0;
	return crc32c(crc32c(0, &copy, sizeof(copy)), rest, rest_len);
}

static uint32_t
head_crc(const struct jhead *h)
{
	struct jhead copy = *h;

	copy.crc = 0;
	return crc32c(0, &copy, sizeof(copy));
}

static void *
block_alloc(size_t len)
{
	void *p;

	if (posix_memalign(&p, JBLOCK, len) != 0)
		fatalx(1, "out of memory");
	memset(p, 0, len);
	return p;
}

/* Writes len bytes at off and returns once they are on stable storage. */
static int
write_durable(struct journal *j, const void *data, size_t len, off_t off,
    struct err *e)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = pwrite(j->fd, p, len, off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_sys(e, "journal: write %s", j->path);
		p += n;
		len -= (size_t)n;
		off += n;
	}
	if (!j->is_direct && fdatasync(j->fd) == -1)
		return err_sys(e, "journal: sync %s", j->path);
	return 0;
}

/* Writes the header slot after the last one with the given tail. */
static int
write_head(struct journal *j, uint64_t tail_off, uint64_t tail_seq,
    struct err *e)
{
	struct jhead *h = block_alloc(JBLOCK);
	uint64_t gen = j->gen + 1;
	int rc;

	memcpy(h->magic, head_magic, sizeof(h->magic));
	h->tail_off = tail_off;
	h->tail_seq = tail_seq;
	h->gen = gen;
	h->crc = head_crc(h);
	rc = write_durable(j, h, JBLOCK, (off_t)(gen % 2) * JBLOCK, e);
	free(h);
	if (rc == 0)
		j->gen = gen;
	return rc;
}

/* Makes a new journal at path: zeros under a temporary name, a header,
 * synced, then renamed into place. */
static int
create(const char *path, struct err *e)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	char *zeros = xcalloc(1, 1024 * 1024);
	struct jhead h;
	int fd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp) ||
	    str_copy(dir, path, sizeof(dir)) >= sizeof(dir))
		goto out;
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		err_sys(e, "journal: create %s", tmp);
		goto out;
	}
	for (size_t off = 0; off < JOURNAL_SIZE; off += 1024 * 1024)
		if (fsio_write_all(fd, zeros, 1024 * 1024) == -1) {
			err_sys(e, "journal: write %s", tmp);
			goto fail;
		}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, head_magic, sizeof(h.magic));
	h.tail_off = RING_START;
	h.tail_seq = 1;
	h.gen = 2;	/* slot 0 */
	h.crc = head_crc(&h);
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    fsync(fd) == -1) {
		err_sys(e, "journal: write %s", tmp);
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		err_sys(e, "journal: write %s", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		err_sys(e, "journal: rename %s", tmp);
		goto fail;
	}
	rc = fsio_fsync_dir(slash ? dir : ".", e);
	goto out;
fail:
	if (fd != -1)
		(void)close(fd);
	(void)unlink(tmp);
out:
	free(zeros);
	return rc;
}

/* The directory fd of dev's file system, opened from dir when new; under
 * lock. -1 when the table is full. */
static int
note_fs(struct journal *j, dev_t dev, const char *dir, struct err *e)
{
	int fd;

	for (size_t i = 0; i < j->nfs; i++)
		if (j->fs[i].dev == dev)
			return 0;
	if (j->nfs == JOURNAL_MAX_FS)
		return err_set(e, "journal: files on more than %d file "
		    "systems", JOURNAL_MAX_FS);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return err_sys(e, "journal: open %s", dir);
	j->fs[j->nfs].dev = dev;
	j->fs[j->nfs].fd = fd;
	j->fs[j->nfs].dir = xstrdup(dir);
	j->nfs++;
	return 0;
}

/* --- replay ------------------------------------------------------------ */

/* True when the file at path holds exactly data. */
static bool
same_content(const char *path, const void *data, size_t len)
{
	struct err e;
	size_t n;
	char *have = fsio_read_file(path, len + 1, &n, &e);
	bool same = have != NULL && n == len && memcmp(have, data, len) == 0;

	free(have);
	return same;
}

/*
 * The name under which a recorded file lives now: dir/name, or, for a
 * Maildir's new/, the same unique name in cur/ with or without flags
 * (":2,S"), where a mail reader moves what it has seen. Empty: none.
 */
static void
find_current(const char *dir, const char *name, char *out, size_t size)
{
	char cur[PATH_MAX];
	size_t dlen = strlen(dir), nlen = strlen(name);
	struct dirent *de;
	DIR *d;

	out[0] = '\0';
	if (fsio_join(out, size, dir, name) == 0 && access(out, F_OK) == 0)
		return;
	out[0] = '\0';
	if (dlen < 4 || strcmp(dir + dlen - 4, "/new") != 0 ||
	    snprintf(cur, sizeof(cur), "%.*s/cur", (int)(dlen - 4), dir) >=
	    (int)sizeof(cur) || (d = opendir(cur)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, name, nlen) == 0 &&
		    (de->d_name[nlen] == '\0' || de->d_name[nlen] == ':')) {
			if (fsio_join(out, size, cur, de->d_name) == -1)
				out[0] = '\0';
			break;
		}
	closedir(d);
}

/*
 * Puts back one recorded file: written in full under a temporary name
 * next to it, synced, then renamed over a damaged copy or linked where
 * none is left. Returns 1 when it put something back, 0 when the file
 * was already whole.
 */
static int
restore(const char *dir, const char *name, const void *data, size_t len,
    struct err *e)
{
	char now[PATH_MAX], tmp[PATH_MAX];
	const char *was;
	int fd, rc;

	find_current(dir, name, now, sizeof(now));
	if (now[0] != '\0' && same_content(now, data, len))
		return 0;
	was = now[0] != '\0' ? "incomplete" : "missing";
	if (fsio_mkdirs(dir, 0700, e) == -1)
		return -1;
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.journal", dir, name) >=
	    (int)sizeof(tmp))
		return err_set(e, "journal: path too long in %s", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return err_sys(e, "journal: create %s", tmp);
	if (fsio_write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		err_sys(e, "journal: write %s", tmp);
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	(void)close(fd);
	if (now[0] == '\0' && fsio_join(now, sizeof(now), dir, name) == -1) {
		(void)unlink(tmp);
		return err_set(e, "journal: bad name %s/%s", dir, name);
	}
	rc = rename(tmp, now);
	if (rc == -1) {
		err_sys(e, "journal: rename %s -> %s", tmp, now);
		(void)unlink(tmp);
		return -1;
	}
	log_warnx("journal: restored %s (%zu bytes): it was %s after the "
	    "last stop", now, len, was);
	return 1;
}

/* Reads the record at off if it is whole and has sequence seq: its
 * header in *r and the rest in a new buffer; NULL otherwise. */
static char *
read_rec(int fd, uint64_t off, uint64_t seq, struct jrec *r)
{
	char *rest;
	size_t rest_len;

	if (off < RING_START || off + JBLOCK > JOURNAL_SIZE ||
	    pread(fd, r, sizeof(*r), (off_t)off) != (ssize_t)sizeof(*r) ||
	    memcmp(r->magic, rec_magic, sizeof(r->magic)) != 0 ||
	    r->seq != seq || r->size % JBLOCK != 0 || r->size == 0 ||
	    off + r->size > JOURNAL_SIZE || r->dir_len == 0 ||
	    r->dir_len >= PATH_MAX || r->name_len == 0 ||
	    r->name_len >= NAME_MAX + 1 || r->data_len > JOURNAL_FILE_MAX ||
	    rec_size(r->dir_len, r->name_len, r->data_len) != r->size)
		return NULL;
	rest_len = r->dir_len + r->name_len + r->data_len;
	rest = xmalloc(rest_len + 1);
	if (pread(fd, rest, rest_len, (off_t)(off + sizeof(*r))) !=
	    (ssize_t)rest_len || rec_crc(r, rest, rest_len) != r->crc) {
		free(rest);
		return NULL;
	}
	return rest;
}

static int
read_heads(struct journal *j, struct err *e)
{
	struct jhead h[2];
	int best = -1;

	for (int i = 0; i < 2; i++) {
		if (pread(j->fd, &h[i], sizeof(h[i]), (off_t)i * JBLOCK) !=
		    (ssize_t)sizeof(h[i]))
			return err_sys(e, "journal: read %s", j->path);
		if (memcmp(h[i].magic, head_magic, sizeof(h[i].magic)) != 0 ||
		    head_crc(&h[i]) != h[i].crc ||
		    h[i].gen % 2 != (uint64_t)i ||
		    h[i].tail_off < RING_START ||
		    h[i].tail_off >= JOURNAL_SIZE ||
		    h[i].tail_off % JBLOCK != 0)
			continue;
		if (best == -1 || h[i].gen > h[best].gen)
			best = i;
	}
	if (best == -1)
		return err_set(e, "journal: %s has no valid header", j->path);
	j->tail_off = j->head_off = h[best].tail_off;
	j->tail_seq = j->head_seq = h[best].tail_seq;
	j->gen = h[best].gen;
	return 0;
}

/* Replays the records after the last checkpoint; leaves the head after
 * the last one. */
static int
replay(struct journal *j, struct err *e)
{
	unsigned long nrec = 0, nrestored = 0;

	for (;;) {
		struct jrec r;
		char *rest = read_rec(j->fd, j->head_off, j->head_seq, &r);
		char dir[PATH_MAX], name[NAME_MAX + 1];
		struct stat st;
		int rc;

		if (rest == NULL && j->head_off != RING_START) {
			/* the writer started again at the ring's start */
			rest = read_rec(j->fd, RING_START, j->head_seq, &r);
			if (rest != NULL) {
				j->used += JOURNAL_SIZE - j->head_off;
				j->head_off = RING_START;
			}
		}
		if (rest == NULL)
			break;
		memcpy(dir, rest, r.dir_len);
		dir[r.dir_len] = '\0';
		memcpy(name, rest + r.dir_len, r.name_len);
		name[r.name_len] = '\0';
		rc = strchr(name, '/') != NULL || dir[0] != '/' ?
		    err_set(e, "journal: bad record %llu in %s",
		    (unsigned long long)r.seq, j->path) :
		    restore(dir, name, rest + r.dir_len + r.name_len,
		    (size_t)r.data_len, e);
		free(rest);
		if (rc == -1)
			return -1;
		nrestored += (unsigned long)rc;
		if (stat(dir, &st) == -1)
			return err_sys(e, "journal: stat %s", dir);
		if (note_fs(j, st.st_dev, dir, e) == -1)
			return -1;
		nrec++;
		j->head_off += r.size;
		j->head_seq++;
		j->used += r.size;
		if (j->head_off == JOURNAL_SIZE)
			j->head_off = RING_START;
	}
	if (nrec > 0)
		log_info("journal: %lu record(s) after the last checkpoint in "
		    "%s, %lu file(s) restored", nrec, j->path, nrestored);
	return 0;
}

/* --- checkpoints ------------------------------------------------------- */

int
journal_checkpoint(struct journal *j, struct err *e)
{
	uint64_t off, seq;
	size_t used;
	int fds[JOURNAL_MAX_FS];
	const char *dirs[JOURNAL_MAX_FS];
	size_t nfs;
	int rc = 0;

	pthread_mutex_lock(&j->lock);
	off = j->head_off;
	seq = j->head_seq;
	used = j->used;
	nfs = j->nfs;
	for (size_t i = 0; i < nfs; i++) {
		fds[i] = j->fs[i].fd;
		dirs[i] = j->fs[i].dir;
	}
	if (seq == j->tail_seq && j->broken_seq == 0) {
		pthread_mutex_unlock(&j->lock);
		return 0;
	}
	pthread_mutex_unlock(&j->lock);
	/*
	 * syncfs writes every file and directory; on ext4 without a journal
	 * it writes inode tables and directories after its cache flush, so
	 * the fsync of a directory there flushes once more. Only then may
	 * the header say the records are no longer needed.
	 */
	for (size_t i = 0; i < nfs && rc == 0; i++)
		if (syncfs(fds[i]) == -1 || fsync(fds[i]) == -1)
			rc = err_sys(e, "journal: sync the file system of %s",
			    dirs[i]);
	pthread_mutex_lock(&j->lock);
	if (rc == 0 && (rc = write_head(j, off, seq, e)) == 0) {
		j->tail_off = off;
		j->tail_seq = seq;
		j->used -= used;
		if (j->broken_seq != 0 && j->broken_seq <= seq)
			j->broken_seq = 0;
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

/* On the journal's thread. */
static void
checkpoint_work(void *arg)
{
	struct journal *j = arg;

	err_clear(&j->ck_err);
	j->ck_result = journal_checkpoint(j, &j->ck_err);
}

static void	arm_timer(struct journal *j);

/* Back on the loop. */
static void
checkpoint_done(void *arg)
{
	struct journal *j = arg;
	time_t now = time(NULL);

	j->is_busy = false;
	if (j->ck_result == -1 && now != j->ck_logged) {
		/* The records stay; new commits sync their files once the
		 * journal is full. Tried again at the next tick. */
		log_warnx("%s; retrying", j->ck_err.msg);
		j->ck_logged = now;
	}
	if (journal_used(j) > 0) {
		pthread_mutex_lock(&j->lock);
		arm_timer(j);
		pthread_mutex_unlock(&j->lock);
	}
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;

	pthread_mutex_lock(&j->lock);
	j->is_timer_armed = false;
	pthread_mutex_unlock(&j->lock);
	if (j->is_busy)
		return;		/* checkpoint_done arms it again */
	j->is_busy = true;
	worker_submit(j->worker, checkpoint_work, checkpoint_done, j);
}

/* Under lock; any thread (libevent is set up for threads). */
static void
arm_timer(struct journal *j)
{
	struct timeval tv = { 0, CHECKPOINT_MS * 1000 };

	if (j->timer == NULL || j->is_timer_armed)
		return;
	j->is_timer_armed = true;
	event_add(j->timer, &tv);
}

size_t
journal_used(struct journal *j)
{
	size_t used;

	pthread_mutex_lock(&j->lock);
	used = j->used;
	pthread_mutex_unlock(&j->lock);
	return used;
}

/* --- commits ----------------------------------------------------------- */

int
journal_commit(struct journal *j, const struct journal_file *files,
    size_t n, struct err *e)
{
	size_t total = 0, waste = 0, pos = 0;
	uint64_t off, seq;
	char *buf;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (files[i].len > JOURNAL_FILE_MAX)
			return err_set(e, "journal: %s/%s is too large for "
			    "it", files[i].dir, files[i].name);
		total += rec_size(strlen(files[i].dir), strlen(files[i].name),
		    files[i].len);
	}
	if (total > RING_SIZE / 4)
		return err_set(e, "journal: a group of %zu bytes is too large "
		    "for it", total);
	buf = block_alloc(total);
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < n; i++)
		if (note_fs(j, files[i].dev, files[i].dir, e) == -1) {
			rc = -1;
			goto out;
		}
	off = j->head_off;
	if (off + total > JOURNAL_SIZE) {
		waste = JOURNAL_SIZE - off;
		off = RING_START;
	}
	if (j->broken_seq != 0 || j->used + waste + total >= RING_SIZE) {
		rc = err_set(e, "journal: %s is full until the next "
		    "checkpoint", j->path);
		goto out;
	}
	seq = j->head_seq;
	for (size_t i = 0; i < n; i++) {
		struct jrec *r = (struct jrec *)(buf + pos);
		char *p = buf + pos + sizeof(*r);

		memcpy(r->magic, rec_magic, sizeof(r->magic));
		r->seq = seq + i;
		r->data_len = files[i].len;
		r->dir_len = (uint32_t)strlen(files[i].dir);
		r->name_len = (uint32_t)strlen(files[i].name);
		r->size = (uint32_t)rec_size(r->dir_len, r->name_len,
		    files[i].len);
		memcpy(p, files[i].dir, r->dir_len);
		memcpy(p + r->dir_len, files[i].name, r->name_len);
		memcpy(p + r->dir_len + r->name_len, files[i].data,
		    files[i].len);
		r->crc = rec_crc(r, p, r->dir_len + r->name_len +
		    files[i].len);
		pos += r->size;
	}
	rc = write_durable(j, buf, total, (off_t)off, e);
	/* Written or not, that space may hold part of these records: the
	 * head moves past it. After a failure, replay would stop there, so
	 * nothing more is committed here until a checkpoint has passed it. */
	j->head_off = off + total;
	j->head_seq = seq + n;
	j->used += waste + total;
	if (j->head_off == JOURNAL_SIZE)
		j->head_off = RING_START;
	if (rc == -1)
		j->broken_seq = j->head_seq;
	arm_timer(j);
out:
	pthread_mutex_unlock(&j->lock);
	free(buf);
	return rc;
}

/* --- open and close ---------------------------------------------------- */

static void
free_journal(struct journal *j)
{
	if (j->worker)
		worker_free(j->worker);
	if (j->timer)
		event_free(j->timer);
	for (size_t i = 0; i < j->nfs; i++) {
		(void)close(j->fs[i].fd);
		free(j->fs[i].dir);
	}
	if (j->fd != -1)
		(void)close(j->fd);
	if (j->lock_fd != -1)
		(void)close(j->lock_fd);
	pthread_mutex_destroy(&j->lock);
	free(j->path);
	free(j);
}

struct journal *
journal_open(const char *path, struct event_base *base, bool *is_fatal,
    struct err *e)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	struct stat st;
	int fd;

	*is_fatal = false;
	j->path = xstrdup(path);
	j->fd = j->lock_fd = -1;
	pthread_mutex_init(&j->lock, NULL);
	if (access(path, F_OK) == -1 && create(path, e) == -1)
		goto fail;
	/* From here on it may hold acknowledged mail. */
	*is_fatal = true;
	if ((j->fd = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		err_sys(e, "journal: open %s", path);
		goto fail;
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB) == -1) {
		/* Another server on this spool replays and uses it. */
		*is_fatal = false;
		err_sys(e, "journal: lock %s", path);
		goto fail;
	}
	if (fstat(j->fd, &st) == -1) {
		err_sys(e, "journal: stat %s", path);
		goto fail;
	}
	if (st.st_size != JOURNAL_SIZE) {
		err_set(e, "journal: %s is %lld bytes, not %d", path,
		    (long long)st.st_size, JOURNAL_SIZE);
		goto fail;
	}
	if (read_heads(j, e) == -1 || replay(j, e) == -1 ||
	    journal_checkpoint(j, e) == -1)
		goto fail;
	/* From here on whole blocks are written past the page cache: each
	 * commit is one write and one flush. The first descriptor keeps the
	 * lock (another descriptor of ours would conflict with it). */
	if ((fd = open(path, O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC)) != -1) {
		j->lock_fd = j->fd;
		j->fd = fd;
		j->is_direct = true;
	}
	if (base != NULL) {
		j->timer = evtimer_new(base, on_timer, j);
		j->worker = worker_new(base);
		if (j->timer == NULL || j->worker == NULL) {
			*is_fatal = false;
			err_set(e, "journal: cannot start its thread");
			goto fail;
		}
	}
	return j;
fail:
	free_journal(j);
	return NULL;
}

void
journal_close(struct journal *j, bool checkpoint)
{
	struct err e;

	if (j == NULL)
		return;
	if (j->worker) {
		worker_free(j->worker);
		j->worker = NULL;
	}
	err_clear(&e);
	if (checkpoint && journal_checkpoint(j, &e) == -1)
		log_warnx("%s; its records are replayed at the next start",
		    e.msg);
	free_journal(j);
}
