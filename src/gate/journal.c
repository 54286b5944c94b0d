/*
 * journal.c - the commit log of direct Maildir deliveries. Layer: gate.
 * Follows doc/QUEUE.md, "The journal".
 *
 * Layout of spool_dir/journal (JOURNAL_SIZE bytes, every block written
 * once when it is made, so a write never allocates):
 *
 *   block 0, block 1   two header slots, written in turn by checkpoints;
 *                      the valid one with the higher generation counts
 *   from block 2       a ring of records, each a whole number of blocks:
 *                      struct jrec, dir, name, content, zeros
 *
 * Records carry consecutive sequence numbers; replay starts at the
 * header's tail (offset and sequence) and follows the ring while each
 * record has the next sequence and a good CRC. A record that would run
 * past the end starts again at block 2, so when the next sequence is not
 * where the previous record ended, replay looks there once. A record is
 * written whole, and its files are linked while it is on its way (native
 * AIO; before it without); its message is acknowledged only once both
 * are done and the write is on stable storage. A torn record ends the
 * replay, and nothing after it was ever acknowledged. A record whose file
 * could not be linked is made void (its first block rewritten with
 * void_magic and no file) before its message is refused: replay steps
 * over it.
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
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/aio_abi.h>

#include <event2/event.h>

#include "lib/crc32c.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "net/worker.h"
#include "gate/addrmap.h"

#define JOURNAL_SIZE	(8 * 1024 * 1024)
#define JBLOCK		4096
#define RING_START	(2 * JBLOCK)
#define RING_SIZE	(JOURNAL_SIZE - RING_START)
#define JOURNAL_MAX_FS	8
#define CHECKPOINT_MS	100	/* records wait at most this for their sync */

static const char head_magic[8] = "SGJHDR01";
static const char rec_magic[8] = "SGJREC01";
static const char void_magic[8] = "SGJVOID1";

struct jhead {
	char		magic[8];
	uint64_t	tail_off;
	uint64_t	tail_seq;
	uint64_t	gen;		/* which slot is newer */
	uint32_t	crc;		/* of the struct with crc = 0 */
	uint32_t	flags;		/* JHEAD_DIRTY */
};

/* A sync failed: at the next start every recorded file is rewritten, even
 * one that reads back whole (its pages may never have reached the disk). */
#define JHEAD_DIRTY	1u

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
	char		*quarantine_dir;	/* for records not put back */
	char		*root;		/* every file is in root/MAILBOX/new */
	int		 fd;		/* writes (O_DIRECT when it can) */
	int		 read_fd;	/* reads; holds the flock */
	bool		 is_direct;	/* O_DIRECT | O_DSYNC writes */
	bool		 has_aio;	/* and aio for them */
	aio_context_t	 aio;
	/* the ring and the file systems; held across a commit's write */
	pthread_mutex_t	 lock;
	uint64_t	 head_off, head_seq;	/* next record */
	uint64_t	 tail_off, tail_seq;	/* oldest record kept */
	uint64_t	 gen;			/* of the last header */
	size_t		 used;		/* ring bytes from tail to head */
	uint64_t	 broken_seq;	/* a failed write lies before it: no
					 * commit until a checkpoint passes
					 * it (UINT64_MAX: never again) */
	struct jfs	 fs[JOURNAL_MAX_FS];
	size_t		 nfs;
	/* one checkpoint at a time */
	pthread_mutex_t	 ck_lock;
	bool		 is_dirty;	/* JHEAD_DIRTY; under ck_lock */
	/* background checkpoints (journal_start) */
	struct event	*timer;
	struct worker	*worker;
	bool		 is_timer_armed;	/* atomic */
	struct err	 ck_err;
	int		 ck_result;
	bool		 ck_did;
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

/*
 * write_durable with link(arg) run while the write is on its way: an
 * asynchronous write past the page cache (O_DSYNC: its completion means
 * stable storage), waited for after link. Without aio, link first.
 */
static int
write_durable_linking(struct journal *j, const void *data, size_t len,
    off_t off, journal_link_fn link, void *arg, struct err *e)
{
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	long n;

	memset(&cb, 0, sizeof(cb));
	cb.aio_fildes = (uint32_t)j->fd;
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_buf = (uint64_t)(uintptr_t)data;
	cb.aio_nbytes = len;
	cb.aio_offset = off;
	if (!j->has_aio || syscall(SYS_io_submit, j->aio, 1L, cbs) != 1) {
		link(arg);
		return write_durable(j, data, len, off, e);
	}
	link(arg);
	while ((n = syscall(SYS_io_getevents, j->aio, 1L, 1L, &ev, NULL)) ==
	    -1 && errno == EINTR)
		;
	if (n != 1) {
		/* Not seen to happen; io_destroy waits for the write, which
		 * must not outlive data. */
		err_sys(e, "journal: wait for a write to %s", j->path);
		(void)syscall(SYS_io_destroy, j->aio);
		j->has_aio = false;
		return -1;
	}
	if (ev.res < 0) {
		errno = (int)-ev.res;
		return err_sys(e, "journal: write %s", j->path);
	}
	if ((size_t)ev.res < len)	/* short: the rest the plain way */
		return write_durable(j, (const char *)data + ev.res,
		    len - (size_t)ev.res, off + (off_t)ev.res, e);
	return 0;
}

static void
fill_head(struct jhead *h, uint64_t tail_off, uint64_t tail_seq,
    uint64_t gen, uint32_t flags)
{
	memcpy(h->magic, head_magic, sizeof(h->magic));
	h->tail_off = tail_off;
	h->tail_seq = tail_seq;
	h->gen = gen;
	h->flags = flags;
	h->crc = head_crc(h);
}

/* Writes the header slot after the last one with the given tail; under
 * lock. */
static int
write_head(struct journal *j, uint64_t tail_off, uint64_t tail_seq,
    uint32_t flags, struct err *e)
{
	struct jhead *h = block_alloc(JBLOCK);
	uint64_t gen = j->gen + 1;
	int rc;

	fill_head(h, tail_off, tail_seq, gen, flags);
	rc = write_durable(j, h, JBLOCK, (off_t)(gen % 2) * JBLOCK, e);
	free(h);
	if (rc == 0)
		j->gen = gen;
	return rc;
}

/* Makes a new journal at path: zeros under a temporary name, a header,
 * synced, then renamed into place; uid's when made by root. */
static int
create(const char *path, uid_t uid, gid_t gid, struct err *e)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	char *zeros = xcalloc(1, 1024 * 1024);
	struct jhead h;
	int fd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp) ||
	    str_copy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		err_set(e, "journal: path too long: %s", path);
		goto out;
	}
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		err_sys(e, "journal: create %s", tmp);
		goto out;
	}
	if (geteuid() == 0 && uid != 0 && fchown(fd, uid, gid) == -1) {
		err_sys(e, "journal: chown %s", tmp);
		goto fail;
	}
	for (size_t off = 0; off < JOURNAL_SIZE; off += 1024 * 1024)
		if (fsio_write_all(fd, zeros, 1024 * 1024) == -1) {
			err_sys(e, "journal: write %s", tmp);
			goto fail;
		}
	memset(&h, 0, sizeof(h));
	fill_head(&h, RING_START, 1, 2 /* slot 0 */, 0);
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

/* For dir, a Maildir's new/: its sibling sub (cur or tmp) in out; -1
 * when dir is not a new/ (or the path does not fit). */
static int
sibling_of_new(const char *dir, const char *sub, char *out, size_t size)
{
	size_t dlen = strlen(dir);
	int n;

	if (dlen < 4 || strcmp(dir + dlen - 4, "/new") != 0)
		return -1;
	n = snprintf(out, size, "%.*s/%s", (int)(dlen - 4), dir, sub);
	return n < 0 || (size_t)n >= size ? -1 : 0;
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
	size_t nlen = strlen(name);
	struct dirent *de;
	DIR *d;

	out[0] = '\0';
	if (fsio_join(out, size, dir, name) == 0 && access(out, F_OK) == 0)
		return;
	out[0] = '\0';
	if (sibling_of_new(dir, "cur", cur, sizeof(cur)) == -1 ||
	    (d = opendir(cur)) == NULL)
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

/* A root process gives the file it made to the owner of its directory
 * (replay as the server's user makes it that user's already). */
static int
give_to_owner(int fd, const struct stat *dir)
{
	struct stat st;

	if (geteuid() != 0 || fstat(fd, &st) == -1)
		return 0;
	if (st.st_uid == dir->st_uid && st.st_gid == dir->st_gid)
		return 0;
	return fchown(fd, dir->st_uid, dir->st_gid);
}

/*
 * Records may only put mail back: dir must be root/MAILBOX/new for a
 * valid mailbox name. Whoever can write the journal (the server's user)
 * cannot aim a record anywhere else.
 */
static bool
is_mailbox_new(const char *root, const char *dir)
{
	size_t n = strlen(root);
	char box[NAME_MAX + 1];
	const char *slash;

	while (n > 0 && root[n - 1] == '/')
		n--;
	if (strncmp(dir, root, n) != 0 || dir[n] != '/')
		return false;
	for (dir += n; *dir == '/'; dir++)
		;
	slash = strchr(dir, '/');
	if (slash == NULL || strcmp(slash, "/new") != 0 ||
	    (size_t)(slash - dir) >= sizeof(box))
		return false;
	memcpy(box, dir, (size_t)(slash - dir));
	box[slash - dir] = '\0';
	return mailbox_name_valid(box);
}

enum restore_mode {
	RESTORE_REPLAY,		/* after a stop: put back what is missing or
				 * not what was recorded */
	RESTORE_FORCE,		/* after a stop that followed a failed sync:
				 * also rewrite what looks whole (its pages
				 * may not be on the disk) */
	RESTORE_REWRITE,	/* running, after a failed sync: rewrite what
				 * is there; what is gone was deleted */
};

/*
 * Puts back one recorded file as mode says (not with fsio_write_atomic:
 * its temporary name next to the file can exceed NAME_MAX for a long
 * Maildir name, and the file may have to be given to the mailbox's
 * owner): written in full under a
 * temporary name, synced, then renamed over the copy found (or into
 * dir/name when none is left and mode allows), and the directory synced.
 * A root process gives the file to dir's owner. *put_back tells whether
 * anything was written.
 */
static int
restore(const char *dir, const char *name, uint64_t seq, const void *data,
    size_t len, enum restore_mode mode, bool *put_back, struct err *e)
{
	char now[PATH_MAX], tmpdir[PATH_MAX], tmp[PATH_MAX];
	const char *was;
	struct stat st;
	int fd;

	*put_back = false;
	find_current(dir, name, now, sizeof(now));
	if (now[0] == '\0' && mode == RESTORE_REWRITE)
		return 0;	/* delivered, then deleted by its reader */
	if (now[0] != '\0' && mode == RESTORE_REPLAY &&
	    same_content(now, data, len))
		return 0;
	was = now[0] == '\0' ? "missing" : mode == RESTORE_REPLAY ?
	    "incomplete" : "not known to be on the disk";
	if (now[0] == '\0' && fsio_join(now, sizeof(now), dir, name) == -1)
		return err_set(e, "journal: bad name %s/%s", dir, name);
	/* temporary files in the Maildir's tmp/, else next to the file */
	if (sibling_of_new(dir, "tmp", tmpdir, sizeof(tmpdir)) == -1 &&
	    str_copy(tmpdir, dir, sizeof(tmpdir)) >= sizeof(tmpdir))
		return err_set(e, "journal: path too long: %s", dir);
	if (fsio_mkdirs(dir, 0700, e) == -1 ||
	    fsio_mkdirs(tmpdir, 0700, e) == -1)
		return -1;
	if (stat(dir, &st) == -1)
		return err_sys(e, "journal: stat %s", dir);
	if (snprintf(tmp, sizeof(tmp), "%s/.journal.%llu.%ld", tmpdir,
	    (unsigned long long)seq, (long)getpid()) >= (int)sizeof(tmp))
		return err_set(e, "journal: path too long in %s", tmpdir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return err_sys(e, "journal: create %s", tmp);
	if (give_to_owner(fd, &st) == -1 ||
	    fsio_write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		err_sys(e, "journal: write %s", tmp);
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, now) == -1) {
		err_sys(e, "journal: put back %s", now);
		(void)unlink(tmp);
		return -1;
	}
	if (fsio_fsync_dir(dir, e) == -1)
		return -1;
	*put_back = true;
	log_warnx("journal: restored %s (%zu bytes): it was %s", now, len,
	    was);
	return 0;
}

/* A record that cannot be put back is kept whole in the quarantine, so
 * that nothing acknowledged is dropped and the next start goes on. */
static int
quarantine(struct journal *j, uint64_t seq, const char *dir,
    const char *name, const void *data, size_t len, const char *why,
    struct err *e)
{
	char qname[64], reason[PATH_MAX + NAME_MAX + 600];

	snprintf(reason, sizeof(reason), "journal record %llu for %s/%s: %s\n",
	    (unsigned long long)seq, dir, name, why);
	snprintf(qname, sizeof(qname), "journal-%llu",
	    (unsigned long long)seq);
	if (fsio_write_atomic(j->quarantine_dir, qname, data, len, 0600,
	    e) == -1)
		return -1;
	snprintf(qname, sizeof(qname), "journal-%llu.reason",
	    (unsigned long long)seq);
	if (fsio_write_atomic(j->quarantine_dir, qname, reason,
	    strlen(reason), 0600, e) == -1)
		return -1;
	log_warnx("journal: cannot put back %s/%s (%s); kept as %s/journal-%llu",
	    dir, name, why, j->quarantine_dir, (unsigned long long)seq);
	return 0;
}

/* Reads the record at off if it is whole and has sequence seq: its
 * header in *r and the rest in a new buffer; NULL otherwise. */
static char *
read_rec(int fd, uint64_t off, uint64_t seq, struct jrec *r)
{
	char *rest;
	size_t rest_len;

	if (off < RING_START || off + JBLOCK > JOURNAL_SIZE ||
	    pread(fd, r, sizeof(*r), (off_t)off) != (ssize_t)sizeof(*r))
		return NULL;
	if (memcmp(r->magic, void_magic, sizeof(r->magic)) == 0) {
		/* a void record: no file, its size as it was written */
		if (r->seq != seq || r->size % JBLOCK != 0 || r->size == 0 ||
		    off + r->size > JOURNAL_SIZE || r->dir_len != 0 ||
		    r->name_len != 0 || r->data_len != 0 ||
		    rec_crc(r, NULL, 0) != r->crc)
			return NULL;
		return xcalloc(1, 1);
	}
	if (memcmp(r->magic, rec_magic, sizeof(r->magic)) != 0 ||
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
		if (pread(j->read_fd, &h[i], sizeof(h[i]), (off_t)i * JBLOCK) !=
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
	j->tail_off = h[best].tail_off;
	j->tail_seq = h[best].tail_seq;
	j->gen = h[best].gen;
	j->is_dirty = (h[best].flags & JHEAD_DIRTY) != 0;
	return 0;
}

/* Where a walk through the records is. */
struct cursor {
	uint64_t	off, seq;	/* the next record */
	size_t		used;		/* ring bytes walked */
	unsigned long	nrec, nput;	/* records, files put back */
};

/* Steps c past the record r. */
static void
advance(struct cursor *c, const struct jrec *r)
{
	c->nrec++;
	c->off += r->size;
	c->seq++;
	c->used += r->size;
	if (c->off == JOURNAL_SIZE)
		c->off = RING_START;
}

/*
 * Follows the records from c while each is whole and has the next
 * sequence number, up to end_seq (not included; UINT64_MAX: as far as
 * they go), putting back their files as mode says.
 */
static int
walk(struct journal *j, struct cursor *c, uint64_t end_seq,
    enum restore_mode mode, struct err *e)
{
	int fd = j->read_fd;

	while (c->seq < end_seq) {
		struct jrec r;
		char *rest = read_rec(fd, c->off, c->seq, &r);
		char dir[PATH_MAX], name[NAME_MAX + 1];
		struct err re;
		struct stat st;
		bool put_back;
		int rc;

		if (rest == NULL && c->off != RING_START) {
			/* the writer started again at the ring's start */
			rest = read_rec(fd, RING_START, c->seq, &r);
			if (rest != NULL) {
				c->used += JOURNAL_SIZE - c->off;
				c->off = RING_START;
			}
		}
		if (rest == NULL) {
			if (end_seq != UINT64_MAX)
				return err_set(e, "journal: record %llu of %s "
				    "cannot be read back",
				    (unsigned long long)c->seq, j->path);
			break;
		}
		if (r.dir_len == 0) {
			/* void: its file was never linked, its message
			 * refused */
			free(rest);
			advance(c, &r);
			continue;
		}
		memcpy(dir, rest, r.dir_len);
		dir[r.dir_len] = '\0';
		memcpy(name, rest + r.dir_len, r.name_len);
		name[r.name_len] = '\0';
		err_clear(&re);
		if (strchr(name, '/') != NULL || name[0] == '.' ||
		    name[0] == '\0')
			err_set(&re, "not a file name");
		else if (!is_mailbox_new(j->root, dir))
			err_set(&re, "not the new/ of a mailbox in %s",
			    j->root);
		else if (restore(dir, name, r.seq, rest + r.dir_len +
		    r.name_len, (size_t)r.data_len, mode, &put_back, &re) == 0)
			c->nput += put_back;
		if (re.msg[0] && (mode == RESTORE_REWRITE ||
		    quarantine(j, r.seq, dir, name, rest + r.dir_len +
		    r.name_len, (size_t)r.data_len, re.msg, e) == -1)) {
			if (mode == RESTORE_REWRITE)
				*e = re;
			free(rest);
			return -1;
		}
		free(rest);
		/* its file system is synced with the others (a quarantined
		 * record was synced where it went) */
		if (!re.msg[0] && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
			pthread_mutex_lock(&j->lock);
			rc = note_fs(j, st.st_dev, dir, e);
			pthread_mutex_unlock(&j->lock);
			if (rc == -1)
				return -1;
		}
		advance(c, &r);
	}
	return 0;
}

/* --- checkpoints ------------------------------------------------------- */

/* Syncs the file systems of the recorded files: syncfs writes every file
 * and directory; on ext4 without a journal it writes inode tables and
 * directories after its cache flush, so the fsync of a directory there
 * flushes once more. */
static int
sync_all(const int *fds, char *const *dirs, size_t nfs, struct err *e)
{
	for (size_t i = 0; i < nfs; i++)
		if (syncfs(fds[i]) == -1 || fsync(fds[i]) == -1)
			return err_sys(e, "journal: sync the file system of %s",
			    dirs[i]);
	return 0;
}

/* The checkpoint; *did tells whether there were records to retire. */
static int
checkpoint(struct journal *j, bool *did, struct err *e)
{
	uint64_t off, seq, tail_off, tail_seq;
	int fds[JOURNAL_MAX_FS];
	char *dirs[JOURNAL_MAX_FS];
	size_t used, nfs;
	int rc;

	*did = false;
	pthread_mutex_lock(&j->ck_lock);
	pthread_mutex_lock(&j->lock);
	off = j->head_off;
	seq = j->head_seq;
	used = j->used;
	tail_off = j->tail_off;
	tail_seq = j->tail_seq;
	nfs = j->nfs;
	for (size_t i = 0; i < nfs; i++) {
		fds[i] = j->fs[i].fd;
		dirs[i] = j->fs[i].dir;
	}
	pthread_mutex_unlock(&j->lock);
	if (seq == tail_seq && !j->is_dirty) {
		pthread_mutex_unlock(&j->ck_lock);
		return 0;
	}
	*did = true;
	rc = sync_all(fds, dirs, nfs, e);
	if (rc == -1) {
		/*
		 * A failed write-back leaves its pages clean: the next sync
		 * would succeed without writing them. Every file since the
		 * tail is written again, on its own, with its own sync. If
		 * that fails too the records stay, the header says so (the
		 * next start rewrites them all), and commits sync their own
		 * files from now on.
		 */
		struct cursor c = { .off = tail_off, .seq = tail_seq };
		struct err re;

		err_clear(&re);
		log_warnx("%s; writing the files of the journal's records "
		    "again", e->msg);
		if (walk(j, &c, seq, RESTORE_REWRITE, &re) == 0)
			rc = 0;
		else {
			*e = re;
			pthread_mutex_lock(&j->lock);
			j->broken_seq = UINT64_MAX;
			(void)write_head(j, tail_off, tail_seq, JHEAD_DIRTY, &re);
			pthread_mutex_unlock(&j->lock);
			j->is_dirty = true;
		}
	}
	if (rc == 0) {
		pthread_mutex_lock(&j->lock);
		if ((rc = write_head(j, off, seq, 0, e)) == 0) {
			j->tail_off = off;
			j->tail_seq = seq;
			j->used -= used;
			j->is_dirty = false;
			if (j->broken_seq != 0 && j->broken_seq <= seq)
				j->broken_seq = 0;
		}
		pthread_mutex_unlock(&j->lock);
	}
	pthread_mutex_unlock(&j->ck_lock);
	return rc;
}

int
journal_checkpoint(struct journal *j, struct err *e)
{
	bool did;

	return checkpoint(j, &did, e);
}

/* On the journal's thread. */
static void
checkpoint_work(void *arg)
{
	struct journal *j = arg;

	err_clear(&j->ck_err);
	j->ck_result = checkpoint(j, &j->ck_did, &j->ck_err);
}

static void	arm_timer(struct journal *j);

/* Back on the loop; takes no lock that a commit holds across its write. */
static void
checkpoint_done(void *arg)
{
	struct journal *j = arg;
	time_t now = time(NULL);

	if (j->ck_result == -1 && now != j->ck_logged) {
		log_warnx("%s; retrying", j->ck_err.msg);
		j->ck_logged = now;
	}
	/* Records left, or ones committed meanwhile: another tick. */
	if (j->ck_did || j->ck_result == -1)
		arm_timer(j);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;

	__atomic_store_n(&j->is_timer_armed, false, __ATOMIC_SEQ_CST);
	worker_submit(j->worker, checkpoint_work, checkpoint_done, j);
}

/* Any thread (libevent is set up for threads). */
static void
arm_timer(struct journal *j)
{
	struct timeval tv = { 0, CHECKPOINT_MS * 1000 };
	struct event *timer = __atomic_load_n(&j->timer, __ATOMIC_ACQUIRE);

	if (timer == NULL ||
	    __atomic_exchange_n(&j->is_timer_armed, true, __ATOMIC_SEQ_CST))
		return;
	if (event_add(timer, &tv) == -1) {
		__atomic_store_n(&j->is_timer_armed, false, __ATOMIC_SEQ_CST);
		log_warnx("journal: cannot arm its timer; records wait for "
		    "the next commit");
	}
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

/* Makes the record whose first block is r void: written again with
 * void_magic and no file, its size kept; tried twice, since a record left
 * valid would put back a message its client is told was refused. Under
 * lock. */
static int
void_record(struct journal *j, struct jrec *r, uint64_t off, struct err *e)
{
	memcpy(r->magic, void_magic, sizeof(r->magic));
	r->data_len = 0;
	r->dir_len = r->name_len = 0;
	r->crc = rec_crc(r, NULL, 0);
	if (write_durable(j, r, JBLOCK, (off_t)off, e) == 0)
		return 0;
	err_clear(e);
	return write_durable(j, r, JBLOCK, (off_t)off, e);
}

/*
 * Makes void the records of the files link could not link (their
 * messages are refused), or (all) every record of the commit: after a
 * failed write they may have reached the disk while the caller syncs or
 * refuses those messages itself. Under lock, after the records' write.
 */
static int
void_unlinked(struct journal *j, char *buf, const struct journal_file *files,
    size_t n, uint64_t off, bool all, struct err *e)
{
	size_t pos = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		struct jrec *r = (struct jrec *)(buf + pos);
		uint32_t size = r->size;

		if ((all || files[i].is_void) &&
		    void_record(j, r, off + pos, e) == -1)
			rc = -1;
		pos += size;
	}
	return rc;
}

int
journal_void(struct journal *j, const struct journal_file *f, struct err *e)
{
	struct jrec *r;
	int rc = 0;

	pthread_mutex_lock(&j->lock);
	/* Not retired by a checkpoint (whose sync made the unlink that
	 * follows as durable as any other), so its space holds it still. */
	if (f->rec_size != 0 && f->rec_seq >= j->tail_seq &&
	    f->rec_seq < j->head_seq) {
		r = block_alloc(JBLOCK);
		memset(r, 0, JBLOCK);
		r->seq = f->rec_seq;
		r->size = f->rec_size;
		rc = void_record(j, r, f->rec_off, e);
		free(r);
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int
journal_commit(struct journal *j, struct journal_file *files, size_t n,
    journal_link_fn link, void *arg, struct err *e)
{
	size_t total = 0, waste = 0, pos = 0;
	uint64_t off, seq;
	char *buf;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (files[i].len > JOURNAL_FILE_MAX) {
			link(arg);
			return err_set(e, "journal: %s/%s is over the %d "
			    "bytes a record of %s holds", files[i].dir,
			    files[i].name, JOURNAL_FILE_MAX, j->path);
		}
		total += rec_size(strlen(files[i].dir), strlen(files[i].name),
		    files[i].len);
	}
	if (total > RING_SIZE / 4) {
		link(arg);
		return err_set(e, "journal: a group of %zu bytes is over a "
		    "quarter of %s", total, j->path);
	}
	buf = block_alloc(total);
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < n; i++)
		if (note_fs(j, files[i].dev, files[i].dir, e) == -1) {
			rc = -1;
			goto refused;
		}
	off = j->head_off;
	if (off + total > JOURNAL_SIZE) {
		waste = JOURNAL_SIZE - off;
		off = RING_START;
	}
	if (j->broken_seq != 0 || j->used + waste + total >= RING_SIZE) {
		rc = err_set(e, "journal: %s is full until the next "
		    "checkpoint", j->path);
		goto refused;
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
		files[i].rec_off = off + pos;
		files[i].rec_seq = r->seq;
		files[i].rec_size = r->size;
		pos += r->size;
		files[i].is_void = false;
	}
	rc = write_durable_linking(j, buf, total, (off_t)off, link, arg, e);
	if (rc == 0) {
		rc = void_unlinked(j, buf, files, n, off, false, e);
		if (rc == -1)
			log_warnx("%s; %s may put back after a crash a file "
			    "whose message is refused now", e->msg, j->path);
	} else {
		struct err ve;

		err_clear(&ve);
		if (void_unlinked(j, buf, files, n, off, true, &ve) == -1)
			log_warnx("%s; %s, not made void, may put back after "
			    "a crash %zu file(s) whose messages are synced "
			    "or refused now", ve.msg, j->path, n);
	}
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
	pthread_mutex_unlock(&j->lock);
	free(buf);
	/* After a failure too: only a checkpoint lets commits in again. */
	arm_timer(j);
	return rc;
refused:
	pthread_mutex_unlock(&j->lock);
	free(buf);
	link(arg);
	arm_timer(j);
	return rc;
}

/* --- open and close ---------------------------------------------------- */

static void
free_journal(struct journal *j)
{
	if (j->worker)
		worker_free(j->worker);
	if (j->has_aio)
		(void)syscall(SYS_io_destroy, j->aio);
	if (j->timer)
		event_free(j->timer);
	for (size_t i = 0; i < j->nfs; i++) {
		(void)close(j->fs[i].fd);
		free(j->fs[i].dir);
	}
	if (j->fd != -1 && j->fd != j->read_fd)
		(void)close(j->fd);
	if (j->read_fd != -1)
		(void)close(j->read_fd);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->ck_lock);
	free(j->path);
	free(j->quarantine_dir);
	free(j->root);
	free(j);
}

/* Replays the records after the last checkpoint, then checkpoints. */
static int
replay(struct journal *j, struct err *e)
{
	struct cursor c = { .off = j->tail_off, .seq = j->tail_seq };

	if (walk(j, &c, UINT64_MAX, j->is_dirty ? RESTORE_FORCE :
	    RESTORE_REPLAY, e) == -1)
		return -1;
	j->head_off = c.off;
	j->head_seq = c.seq;
	j->used = c.used;
	if (c.nrec > 0)
		log_info("journal: %lu record(s) after the last checkpoint in "
		    "%s, %lu file(s) put back", c.nrec, j->path, c.nput);
	/*
	 * Sequence numbers go on well past anything the ring can hold: a
	 * record of a group torn by the crash may lie, whole, after the one
	 * where the replay stopped, and must never pass for a later one.
	 */
	j->head_seq += RING_SIZE / JBLOCK + 1;
	return journal_checkpoint(j, e);
}

struct journal *
journal_open(const char *path, const char *quarantine_dir, const char *root,
    uid_t uid, gid_t gid, bool *is_fatal, struct err *e)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	bool is_as_user = geteuid() == 0 && uid != 0;
	struct stat st;
	int fd, rc;

	*is_fatal = false;
	j->path = xstrdup(path);
	j->quarantine_dir = xstrdup(quarantine_dir);
	j->root = xstrdup(root);
	j->fd = j->read_fd = -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->ck_lock, NULL);
	if (access(path, F_OK) == -1 && create(path, uid, gid, e) == -1)
		goto fail;
	/* From here on it may hold acknowledged mail. */
	*is_fatal = true;
	if ((j->read_fd = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		err_sys(e, "journal: open %s", path);
		goto fail;
	}
	/* Until the direct descriptor below, writes go through this one. */
	j->fd = j->read_fd;
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
	/* Root replays with the file access of uid: a record puts back only
	 * what the server's user could have written itself. */
	if (is_as_user) {
		(void)setfsgid(gid);
		(void)setfsuid(uid);
	}
	if (is_as_user && (uid_t)setfsuid(uid) != uid)
		rc = err_set(e, "journal: cannot take the file access of uid "
		    "%lu to replay %s", (unsigned long)uid, path);
	else
		rc = read_heads(j, e) == -1 || replay(j, e) == -1 ? -1 : 0;
	if (is_as_user) {
		(void)setfsuid(0);
		(void)setfsgid(0);
	}
	if (rc == -1)
		goto fail;
	/* From here on whole blocks are written past the page cache: each
	 * commit is one write and one flush. The first descriptor keeps the
	 * lock (another of ours would conflict with it) and reads records
	 * back after a failed sync. */
	if ((fd = open(path, O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC)) != -1) {
		j->fd = fd;
		j->is_direct = true;
		/* and asynchronous: a commit links its files meanwhile */
		j->has_aio = syscall(SYS_io_setup, 1L, &j->aio) == 0;
	}
	return j;
fail:
	free_journal(j);
	return NULL;
}

int
journal_start(struct journal *j, struct event_base *base, struct err *e)
{
	struct event *timer;
	struct worker *worker;

	if (j->worker != NULL)
		return 0;
	timer = evtimer_new(base, on_timer, j);
	worker = worker_new(base);
	if (timer == NULL || worker == NULL) {
		/* Neither, then: a timer without its thread would fire into
		 * nothing. Commits may be running: j is left as it was, and
		 * its records wait for journal_close. */
		if (timer)
			event_free(timer);
		if (worker)
			worker_free(worker);
		return err_set(e, "journal: cannot start its thread");
	}
	j->worker = worker;
	/* whole before a commit thread's arm_timer can see it */
	__atomic_store_n(&j->timer, timer, __ATOMIC_RELEASE);
	if (journal_used(j) > 0)
		arm_timer(j);
	return 0;
}

void
journal_close(struct journal *j, bool checkpoint_first)
{
	struct err e;

	if (j == NULL)
		return;
	if (j->worker) {
		worker_free(j->worker);
		j->worker = NULL;
	}
	err_clear(&e);
	if (checkpoint_first && journal_checkpoint(j, &e) == -1)
		log_warnx("%s; its records are replayed at the next start",
		    e.msg);
	free_journal(j);
}
