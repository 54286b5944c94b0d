/* Unit tests: lib/crc32c.c and gate/journal.c (doc/QUEUE.md, "The
 * journal"): what a replay after a crash puts back, and what it leaves. */
#include "t.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/crc32c.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "gate/journal.h"

static char dir[64];

/*
 * Fault injection: these definitions take the place of the C library's
 * syncfs, pwrite and syscall in this test program, so that a checkpoint's
 * sync or a record's write can be made to fail as a disk's error would.
 */
static int fail_syncfs;

/* The C library's own, past the definitions below. */
static long
real_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	static long (*real)(long, ...);

	if (real == NULL)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(nr, a, b, c, d, e, f);
}

int
syncfs(int fd)
{
	if (fail_syncfs > 0) {
		fail_syncfs--;
		errno = EIO;
		return -1;
	}
	return (int)real_syscall6(SYS_syncfs, fd, 0, 0, 0, 0, 0);
}

/*
 * And pwrite: the next fail_pwrite writes of exactly fail_pwrite_len
 * bytes into the ring fail with EIO, after reaching the file when
 * pwrite_lands (a flush that fails after the data went out).
 */
static size_t fail_pwrite_len;
static int fail_pwrite;
static bool pwrite_lands;

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (fail_pwrite > 0 && len == fail_pwrite_len && off >= 8192) {
		fail_pwrite--;
		if (pwrite_lands)
			(void)real_syscall6(SYS_pwrite64, fd, (long)buf,
			    (long)len, (long)off, 0, 0);
		errno = EIO;
		return -1;
	}
	return (ssize_t)real_syscall6(SYS_pwrite64, fd, (long)buf, (long)len,
	    (long)off, 0, 0);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
    __attribute__((alias("pwrite")));

/* And io_setup, through syscall(): without it (no_aio) every record is
 * written by pwrite. */
static bool no_aio;

long
syscall(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_io_setup && no_aio) {
		errno = ENOSYS;
		return -1;
	}
	return real_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static char jpath[128], newdir[128], curdir[128], qdir[128], root[128];

static void
test_crc32c(void)
{
	const char *s = "123456789";
	char big[1000];

	/* the check value of CRC-32C */
	CHECK_INT(crc32c(0, s, 9), 0xE3069283u);
	CHECK_INT(crc32c(0, "", 0), 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	/* in pieces (not multiples of 8) as in one go */
	CHECK_INT(crc32c(crc32c(crc32c(0, big, 13), big + 13, 500),
	    big + 513, sizeof(big) - 513), crc32c(0, big, sizeof(big)));
	big[500] ^= 1;
	CHECK(crc32c(0, big, sizeof(big)) != crc32c(0, big, 500));
}

/* A fresh journal and mailbox for each test. */
static void
fresh(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/j && mkdir -p %s/j/mb/new "
	    "%s/j/mb/cur %s/j/mb/tmp", dir, dir, dir, dir);
	CHECK(system(cmd) == 0);
	snprintf(jpath, sizeof(jpath), "%s/j/journal", dir);
	snprintf(newdir, sizeof(newdir), "%s/j/mb/new", dir);
	snprintf(curdir, sizeof(curdir), "%s/j/mb/cur", dir);
	snprintf(qdir, sizeof(qdir), "%s/j/quarantine", dir);
	snprintf(root, sizeof(root), "%s/j", dir);
	CHECK(mkdir(qdir, 0700) == 0);
}

static struct journal *
open_j(void)
{
	struct err e;
	bool fatal;
	struct journal *j;

	err_clear(&e);
	j = journal_open(jpath, qdir, root, 0, 0, &fatal, &e);
	if (j == NULL)
		fprintf(stderr, "  journal_open: %s\n", e.msg);
	CHECK(j != NULL);
	return j;
}

/* The content of message n: size bytes, different for each n. */
static char *
content(int n, size_t size)
{
	char *p = malloc(size);

	for (size_t i = 0; i < size; i++)
		p[i] = (char)('a' + (i + (size_t)n) % 26);
	snprintf(p, size, "Subject: %d\r\n", n);
	return p;
}

/* What deliver's link callback does: writes the message as new/m<n>,
 * or (fail) writes nothing and reports it as not linked. */
struct linking {
	struct journal_file	*f;
	bool			 fail;
	int			 calls;
};

static void
link_one(void *arg)
{
	struct linking *l = arg;
	struct err e;

	l->calls++;
	if (l->fail)
		l->f->is_void = true;
	else
		CHECK(fsio_write_atomic(l->f->dir, l->f->name, l->f->data,
		    l->f->len, 0600, &e) == 0);
}

/* Delivers message n as new/m<n>, written while its record is being
 * committed to the journal, or (fail) a link that fails. */
static int
deliver_rec(struct journal *j, int n, size_t size, bool fail,
    struct journal_file *out)
{
	char name[32];
	char *data = content(n, size);
	struct journal_file f;
	struct linking l = { .f = &f, .fail = fail };
	struct stat st;
	struct err e;
	int rc;

	snprintf(name, sizeof(name), "m%d", n);
	CHECK(stat(newdir, &st) == 0);
	f.dir = newdir;
	f.name = name;
	f.data = data;
	f.len = size;
	f.dev = st.st_dev;
	f.is_void = true;	/* journal_commit clears it */
	err_clear(&e);
	rc = journal_commit(j, &f, 1, link_one, &l, &e);
	CHECK_INT(l.calls, 1);
	CHECK(rc != 0 || f.is_void == fail);
	free(data);
	if (out != NULL)
		*out = f;
	return rc;
}

static int
deliver_as(struct journal *j, int n, size_t size, bool fail)
{
	return deliver_rec(j, n, size, fail, NULL);
}

static int
deliver(struct journal *j, int n, size_t size)
{
	return deliver_as(j, n, size, false);
}

/* True when path holds message n of size bytes exactly. */
static bool
holds(const char *path, int n, size_t size)
{
	char *want = content(n, size);
	size_t len;
	struct err e;
	char *have = fsio_read_file(path, size + 1, &len, &e);
	bool ok = have != NULL && len == size && memcmp(have, want, size) == 0;

	free(want);
	free(have);
	return ok;
}

static const char *
msg_path(int n)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/m%d", newdir, n);
	return path;
}

static void
test_replay_restores(void)
{
	struct journal *j;
	char cur[256];
	int fd;

	fresh();
	j = open_j();
	CHECK_INT(deliver(j, 1, 5000), 0);
	CHECK_INT(deliver(j, 2, 5000), 0);
	CHECK_INT(deliver(j, 3, 70000), 0);
	CHECK_INT(deliver(j, 4, 10), 0);
	CHECK(journal_used(j) > 0);
	journal_close(j, false);	/* a crash: no checkpoint */
	/* as a power cut could leave them: 1 gone, 2 cut short, 3 zeroed;
	 * 4 read and moved to cur/ with a flag by a mail reader */
	CHECK(unlink(msg_path(1)) == 0);
	CHECK(truncate(msg_path(2), 100) == 0);
	fd = open(msg_path(3), O_WRONLY | O_TRUNC);
	CHECK(fd != -1 && ftruncate(fd, 70000) == 0);
	close(fd);
	snprintf(cur, sizeof(cur), "%s/m4:2,S", curdir);
	CHECK(rename(msg_path(4), cur) == 0);

	j = open_j();
	CHECK(holds(msg_path(1), 1, 5000));
	CHECK(holds(msg_path(2), 2, 5000));
	CHECK(holds(msg_path(3), 3, 70000));
	CHECK(access(msg_path(4), F_OK) == -1);	/* not delivered twice */
	CHECK(holds(cur, 4, 10));
	CHECK_INT(journal_used(j), 0);		/* checkpointed */
	journal_close(j, false);
	/* replayed once: what the reader deletes now stays deleted */
	CHECK(unlink(msg_path(1)) == 0);
	j = open_j();
	CHECK(access(msg_path(1), F_OK) == -1);
	journal_close(j, true);
}

/* A record whose file could not be linked (its message refused) is void:
 * replay puts nothing back for it and goes on past it. */
static void
test_unlinked_is_void(void)
{
	struct journal *j;

	fresh();
	j = open_j();
	CHECK_INT(deliver(j, 1, 5000), 0);
	CHECK_INT(deliver_as(j, 2, 5000, true), 0);
	CHECK_INT(deliver(j, 3, 5000), 0);
	CHECK(access(msg_path(2), F_OK) == -1);
	journal_close(j, false);	/* a crash: no checkpoint */
	CHECK(unlink(msg_path(1)) == 0);
	CHECK(unlink(msg_path(3)) == 0);
	j = open_j();
	CHECK(holds(msg_path(1), 1, 5000));
	CHECK(access(msg_path(2), F_OK) == -1);	/* refused: not delivered */
	CHECK(holds(msg_path(3), 3, 5000));
	CHECK_INT(journal_used(j), 0);
	journal_close(j, true);
}

static void
test_checkpoint_retires(void)
{
	struct journal *j;
	struct err e;

	fresh();
	j = open_j();
	CHECK_INT(deliver(j, 1, 3000), 0);
	err_clear(&e);
	CHECK_INT(journal_checkpoint(j, &e), 0);
	CHECK_INT(journal_used(j), 0);
	CHECK_INT(deliver(j, 2, 3000), 0);
	journal_close(j, false);
	/* 1 was checkpointed, then expunged: it must stay gone */
	CHECK(unlink(msg_path(1)) == 0);
	CHECK(unlink(msg_path(2)) == 0);
	j = open_j();
	CHECK(access(msg_path(1), F_OK) == -1);
	CHECK(holds(msg_path(2), 2, 3000));
	journal_close(j, true);
}

/* Offset of the record of the k-th message committed (from 0) into a
 * fresh journal, all of size bytes, named m<n> in newdir. */
static off_t
rec_off(int k, size_t size)
{
	size_t head = 40 + strlen(newdir) + 2 + size;	/* struct jrec: 40 */
	size_t blocks = (head + 4095) / 4096;

	return (off_t)(8192 + (size_t)k * blocks * 4096);
}

/* Changes the journal's byte at off, as a write torn by a crash would. */
static void
tear(off_t off)
{
	char byte;
	int fd = open(jpath, O_RDWR);

	CHECK(fd != -1);
	CHECK(pread(fd, &byte, 1, off) == 1);
	byte ^= 0x55;
	CHECK(pwrite(fd, &byte, 1, off) == 1);
	close(fd);
}

static void
test_torn_record_ends_replay(void)
{
	struct journal *j;

	fresh();
	j = open_j();
	CHECK_INT(deliver(j, 1, 5000), 0);
	CHECK_INT(deliver(j, 2, 5000), 0);
	CHECK_INT(deliver(j, 3, 5000), 0);
	journal_close(j, false);
	/* the second record torn by the crash (one byte of its content) */
	tear(rec_off(1, 5000) + 3000);
	for (int n = 1; n <= 3; n++)
		CHECK(unlink(msg_path(n)) == 0);
	j = open_j();
	CHECK(holds(msg_path(1), 1, 5000));
	/* nothing from the torn record on (never acknowledged) */
	CHECK(access(msg_path(2), F_OK) == -1);
	CHECK(access(msg_path(3), F_OK) == -1);
	journal_close(j, true);
}

/* Delivers messages first..last of size bytes, with a checkpoint after
 * every every-th (0: none). */
static void
deliver_range(struct journal *j, int first, int last, size_t size,
    int every)
{
	struct err e;

	for (int n = first; n <= last; n++) {
		CHECK_INT(deliver(j, n, size), 0);
		if (every > 0 && n % every == 0) {
			err_clear(&e);
			CHECK_INT(journal_checkpoint(j, &e), 0);
		}
	}
}

static void
test_ring_wraps(void)
{
	/* 18,000 bytes: five blocks a record, and 2,046 ring blocks are
	 * not a multiple of five, so the ring wraps with a gap */
	const size_t size = 18000;
	struct journal *j;
	int n;

	fresh();
	j = open_j();
	deliver_range(j, 1, 400, size, 50);
	/* 401..420 cross the end of the ring; no checkpoint after them */
	deliver_range(j, 401, 420, size, 0);
	journal_close(j, false);
	for (n = 390; n <= 420; n++)
		CHECK(unlink(msg_path(n)) == 0);
	j = open_j();
	for (n = 390; n <= 400; n++)
		CHECK(access(msg_path(n), F_OK) == -1);
	for (n = 401; n <= 420; n++)
		CHECK(holds(msg_path(n), n, size));
	CHECK_INT(journal_used(j), 0);
	journal_close(j, true);
}

static void
test_full_then_checkpoint(void)
{
	struct journal *j;
	struct err e;
	int n, ok = 0;

	fresh();
	j = open_j();
	for (n = 1; n <= 2000; n++) {
		if (deliver(j, n, 5000) != 0)
			break;
		ok++;
	}
	/* full before it would overwrite a record it still needs */
	CHECK(ok > 900 && ok < 1100);
	err_clear(&e);
	CHECK_INT(journal_checkpoint(j, &e), 0);
	CHECK_INT(deliver(j, 5000, 5000), 0);
	journal_close(j, false);
	for (int k = 1; k <= ok; k++)
		CHECK(unlink(msg_path(k)) == 0);
	CHECK(unlink(msg_path(5000)) == 0);
	j = open_j();
	CHECK(access(msg_path(1), F_OK) == -1);
	CHECK(holds(msg_path(5000), 5000, 5000));
	journal_close(j, true);
}

static ino_t
inode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* A group torn by a crash can leave a later record whole after the one
 * where replay stops; the next run must never have it pass for its own. */
static void
test_stale_record_after_torn_one(void)
{
	const size_t size = 18000;	/* five blocks */
	struct journal *j;

	fresh();
	j = open_j();
	/* 405 records, checkpointed: the head is 21 blocks from the end */
	deliver_range(j, 1, 405, size, 45);
	/* a group of three; the crash tears the middle one */
	CHECK_INT(deliver(j, 1001, size), 0);
	CHECK_INT(deliver(j, 1002, size), 0);
	CHECK_INT(deliver(j, 1003, size), 0);
	journal_close(j, false);
	tear(rec_off(406, size) + 9000);
	CHECK(unlink(msg_path(1002)) == 0);
	CHECK(unlink(msg_path(1003)) == 0);
	j = open_j();
	CHECK(access(msg_path(1002), F_OK) == -1);
	CHECK(access(msg_path(1003), F_OK) == -1);
	/* next run: one record where the torn one was, then one too large
	 * for what is left before the end: it goes to the ring's start,
	 * while the old third record still lies whole after the first */
	CHECK_INT(deliver(j, 2001, size), 0);
	CHECK_INT(deliver(j, 2002, 120000), 0);
	journal_close(j, false);
	CHECK(unlink(msg_path(2001)) == 0);
	CHECK(unlink(msg_path(2002)) == 0);
	j = open_j();
	CHECK(holds(msg_path(2001), 2001, size));
	CHECK(holds(msg_path(2002), 2002, 120000));
	CHECK(access(msg_path(1003), F_OK) == -1);	/* never acked */
	journal_close(j, true);
}

/* A checkpoint whose sync fails writes each file again on its own; when
 * that fails too, the records stay and the next start rewrites them. */
static void
test_failed_sync(void)
{
	char tmpdir[160], cmd[400];
	struct journal *j;
	struct err e;
	ino_t ino;

	fresh();
	j = open_j();
	CHECK_INT(deliver(j, 1, 4000), 0);
	CHECK_INT(deliver(j, 2, 4000), 0);
	CHECK(unlink(msg_path(2)) == 0);	/* read and deleted */
	ino = inode_of(msg_path(1));
	fail_syncfs = 1;
	err_clear(&e);
	CHECK_INT(journal_checkpoint(j, &e), 0);
	CHECK(inode_of(msg_path(1)) != ino);	/* written again */
	CHECK(holds(msg_path(1), 1, 4000));
	CHECK(access(msg_path(2), F_OK) == -1);	/* not brought back */
	CHECK_INT(journal_used(j), 0);

	/* now the rewrite fails as well (no tmp/ to write in) */
	CHECK_INT(deliver(j, 3, 4000), 0);
	snprintf(tmpdir, sizeof(tmpdir), "%s/j/mb/tmp", dir);
	CHECK(rmdir(tmpdir) == 0);
	CHECK(close(open(tmpdir, O_WRONLY | O_CREAT, 0600)) == 0);
	fail_syncfs = 1;
	err_clear(&e);
	CHECK_INT(journal_checkpoint(j, &e), -1);
	CHECK(strstr(e.msg, "tmp") != NULL);
	CHECK(journal_used(j) > 0);		/* the record stays */
	CHECK_INT(deliver(j, 4, 4000), -1);	/* no more commits */
	journal_close(j, false);
	snprintf(cmd, sizeof(cmd), "rm -f %s && mkdir %s", tmpdir, tmpdir);
	CHECK(system(cmd) == 0);
	ino = inode_of(msg_path(3));
	j = open_j();
	/* whole in the page cache, but rewritten: it may not be on disk */
	CHECK(inode_of(msg_path(3)) != ino);
	CHECK(holds(msg_path(3), 3, 4000));
	CHECK_INT(deliver(j, 5, 4000), 0);	/* commits again */
	journal_close(j, true);
}

/* A record whose file cannot be put back is kept in the quarantine, and
 * the start goes on. */
static void
test_unrestorable_is_quarantined(void)
{
	char q[200], cmd[700];
	struct journal *j;

	fresh();
	j = open_j();
	CHECK_INT(deliver(j, 1, 3000), 0);
	journal_close(j, false);
	/* the mailbox's new/ became a plain file */
	snprintf(cmd, sizeof(cmd), "rm -rf %s && touch %s", newdir, newdir);
	CHECK(system(cmd) == 0);
	j = open_j();
	CHECK(j != NULL);
	/* named after the record's sequence number: the only file there
	 * besides its reason */
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c . | grep -qx 2 && "
	    "cp %s/journal-[0-9]*[0-9] %s/j/q.msg && "
	    "grep -q 'not a directory' %s/journal-*.reason", qdir, qdir, dir,
	    qdir);
	CHECK(system(cmd) == 0);
	snprintf(q, sizeof(q), "%s/j/q.msg", dir);
	CHECK(holds(q, 1, 3000));
	if (j != NULL)
		journal_close(j, true);
}

/* Files at dir (any directory) for message n, delivered through j. */
static void
deliver_in(struct journal *j, const char *at, int n)
{
	char keep[sizeof(newdir)];

	memcpy(keep, newdir, sizeof(keep));
	snprintf(newdir, sizeof(newdir), "%s", at);
	CHECK_INT(deliver(j, n, 3000), 0);
	memcpy(newdir, keep, sizeof(newdir));
}

/* A record may only put a file back into the new/ of a mailbox under the
 * root: anything else (a journal written by a compromised server user
 * and replayed by root) goes to the quarantine, not onto the disk. */
static void
test_record_outside_mailboxes_is_quarantined(void)
{
	char other[200], cmd[700];
	struct journal *j;

	fresh();
	snprintf(other, sizeof(other), "%s/elsewhere/new", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", other);
	CHECK(system(cmd) == 0);
	j = open_j();
	deliver_in(j, curdir, 1);		/* root/mb/cur */
	deliver_in(j, other, 2);		/* outside the root */
	CHECK_INT(deliver(j, 3, 3000), 0);	/* root/mb/new */
	journal_close(j, false);
	snprintf(cmd, sizeof(cmd), "rm -f %s/m1 %s/m2 %s/m3", curdir, other,
	    newdir);
	CHECK(system(cmd) == 0);
	j = open_j();
	snprintf(cmd, sizeof(cmd), "test ! -e %s/m1 && test ! -e %s/m2 && "
	    "test $(grep -l 'not the new/ of a mailbox in %s' "
	    "%s/journal-*.reason | wc -l) = 2", curdir, other, root, qdir);
	CHECK(system(cmd) == 0);
	CHECK(holds(msg_path(3), 3, 3000));
	journal_close(j, true);
}

/* Root replays with the file access of the server's user: a record for a
 * mailbox that user cannot write is quarantined, and what is put back
 * belongs to the user. */
static void
test_replay_as_user(void)
{
	char root_box[200], cmd[700];
	struct journal *j;
	struct stat st;
	struct err e;
	bool fatal;

	if (geteuid() != 0)
		return;		/* nothing to drop */
	fresh();
	snprintf(root_box, sizeof(root_box), "%s/j/rootbox/new", dir);
	/* the user can reach its mailboxes, as the server's user must */
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && chmod 700 %s/j/rootbox && "
	    "chmod 755 %s %s/j && chown -R 65534:65534 %s/j/mb %s", root_box,
	    dir, dir, dir, dir, qdir);
	CHECK(system(cmd) == 0);
	j = open_j();
	CHECK_INT(deliver(j, 1, 3000), 0);
	deliver_in(j, root_box, 2);
	journal_close(j, false);
	snprintf(cmd, sizeof(cmd), "rm -f %s/m1 %s/m2", newdir, root_box);
	CHECK(system(cmd) == 0);
	err_clear(&e);
	j = journal_open(jpath, qdir, root, 65534, 65534, &fatal, &e);
	if (j == NULL)
		fprintf(stderr, "  journal_open: %s\n", e.msg);
	CHECK(j != NULL);
	CHECK(holds(msg_path(1), 1, 3000));
	CHECK(stat(msg_path(1), &st) == 0 && st.st_uid == 65534);
	snprintf(cmd, sizeof(cmd), "test ! -e %s/m2 && "
	    "grep -q 'Permission denied' %s/journal-*.reason", root_box, qdir);
	CHECK(system(cmd) == 0);
	/* and the process is root again for its own files */
	CHECK(setfsuid((uid_t)-1) == 0);
	if (j != NULL)
		journal_close(j, true);
}

/* The write that makes a refused message's record void fails once: it is
 * tried again, and the message stays refused after a crash. */
static void
test_void_write_retried(void)
{
	struct journal *j;

	fresh();
	j = open_j();
	fail_pwrite_len = 4096;
	fail_pwrite = 1;
	CHECK_INT(deliver_as(j, 1, 5000, true), 0);
	CHECK_INT(fail_pwrite, 0);
	journal_close(j, false);
	j = open_j();
	CHECK(access(msg_path(1), F_OK) == -1);
	journal_close(j, true);
}

/* A record write that fails after its data reached the disk: the caller
 * syncs (or refuses) the message itself, so the record is made void and
 * a replay does not put back a file its reader has since deleted. */
static void
test_failed_write_voids_records(void)
{
	struct journal *j;

	fresh();
	no_aio = true;
	j = open_j();
	fail_pwrite_len = 8192;
	fail_pwrite = 1;
	pwrite_lands = true;
	CHECK_INT(deliver(j, 1, 5000), -1);
	pwrite_lands = false;
	CHECK_INT(fail_pwrite, 0);
	CHECK(holds(msg_path(1), 1, 5000));	/* linked: the caller syncs */
	CHECK(unlink(msg_path(1)) == 0);	/* read and deleted */
	journal_close(j, false);
	no_aio = false;
	j = open_j();
	CHECK(access(msg_path(1), F_OK) == -1);
	journal_close(j, true);
}

static void
stop_loop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* After a failed record write commits stop until a checkpoint has passed
 * it: the failure itself must schedule that checkpoint. */
static void
test_failed_write_schedules_checkpoint(void)
{
	struct event_base *base = event_base_new();
	struct event *tick = evtimer_new(base, stop_loop, base);
	struct timeval ms200 = { 0, 200000 };
	struct journal *j;
	struct err e;
	int rc = -1;

	fresh();
	no_aio = true;
	j = open_j();
	err_clear(&e);
	CHECK_INT(journal_start(j, base, &e), 0);
	fail_pwrite_len = 8192;
	fail_pwrite = 1;
	CHECK_INT(deliver(j, 1, 5000), -1);
	/* no other commit comes to arm anything: only the loop runs */
	for (int i = 0; i < 50 && journal_used(j) > 0; i++) {
		evtimer_add(tick, &ms200);
		event_base_dispatch(base);
	}
	CHECK_INT(journal_used(j), 0);
	rc = deliver(j, 2, 5000);
	CHECK_INT(rc, 0);
	no_aio = false;
	journal_close(j, true);
	event_free(tick);
	event_base_free(base);
}

/* A message given up after its record was written (its client left
 * before the 250): journal_void keeps a replay from putting it back, and
 * does nothing to a record a checkpoint has retired. */
static void
test_void_after_commit(void)
{
	struct journal_file f1, f2, f3;
	struct journal *j;
	struct err e;

	fresh();
	j = open_j();
	CHECK_INT(deliver_rec(j, 1, 5000, false, &f1), 0);
	err_clear(&e);
	CHECK_INT(journal_checkpoint(j, &e), 0);
	CHECK_INT(deliver_rec(j, 2, 5000, false, &f2), 0);
	CHECK_INT(deliver_rec(j, 3, 5000, false, &f3), 0);
	CHECK_INT(journal_void(j, &f1, &e), 0);	/* retired: nothing */
	CHECK_INT(journal_void(j, &f2, &e), 0);
	CHECK(unlink(msg_path(2)) == 0);	/* what uncommit does next */
	journal_close(j, false);
	CHECK(unlink(msg_path(3)) == 0);
	j = open_j();
	CHECK(access(msg_path(2), F_OK) == -1);
	CHECK(holds(msg_path(3), 3, 5000));
	journal_close(j, true);
}

static void
test_open_errors(void)
{
	struct journal *j, *j2;
	struct err e;
	bool fatal;
	char zero[4096] = { 0 };
	int fd;

	fresh();
	j = open_j();
	/* a second server on the same spool: refused, not fatal */
	err_clear(&e);
	j2 = journal_open(jpath, qdir, root, 0, 0, &fatal, &e);
	CHECK(j2 == NULL);
	CHECK(!fatal);
	CHECK(strstr(e.msg, "lock") != NULL);
	journal_close(j, true);
	/* both header slots unreadable: fatal, with the path */
	fd = open(jpath, O_WRONLY);
	CHECK(fd != -1);
	CHECK(pwrite(fd, zero, sizeof(zero), 0) == sizeof(zero));
	CHECK(pwrite(fd, zero, sizeof(zero), 4096) == sizeof(zero));
	close(fd);
	err_clear(&e);
	j2 = journal_open(jpath, qdir, root, 0, 0, &fatal, &e);
	CHECK(j2 == NULL);
	CHECK(fatal);
	CHECK(strstr(e.msg, jpath) != NULL);
	/* a file of the wrong size */
	CHECK(truncate(jpath, 12345) == 0);
	err_clear(&e);
	CHECK(journal_open(jpath, qdir, root, 0, 0, &fatal, &e) == NULL);
	CHECK(fatal);
	CHECK(strstr(e.msg, "12345") != NULL);
}

int
main(void)
{
	char tmpl[] = "/tmp/smtpgate-journal.XXXXXX";

	snprintf(dir, sizeof(dir), "%s", mkdtemp(tmpl));
	evthread_use_pthreads();
	RUN(test_crc32c);
	RUN(test_replay_restores);
	RUN(test_unlinked_is_void);
	RUN(test_checkpoint_retires);
	RUN(test_torn_record_ends_replay);
	RUN(test_ring_wraps);
	RUN(test_full_then_checkpoint);
	RUN(test_stale_record_after_torn_one);
	RUN(test_failed_sync);
	RUN(test_unrestorable_is_quarantined);
	RUN(test_void_write_retried);
	RUN(test_failed_write_voids_records);
	RUN(test_failed_write_schedules_checkpoint);
	RUN(test_void_after_commit);
	RUN(test_record_outside_mailboxes_is_quarantined);
	RUN(test_replay_as_user);
	RUN(test_open_errors);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	T_EXIT();
}
