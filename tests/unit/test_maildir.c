/*
 * test_maildir.c - Maildir delivery into a temporary directory: content
 * (prefix + the exact byte range of the spool file), modes, tmp/ left
 * empty, distinct names (also from several threads), the unique-name
 * format, and failures that must name the path and leave nothing behind.
 */
#include "gate/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#include "t.h"

static char base[64];

static void
setup(void)
{
	snprintf(base, sizeof(base), "/tmp/test_maildir.XXXXXX");
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "  could not remove %s\n", base);
}

/* A spool file with data; returns an fd open for reading. */
static int
spool_file(const char *name, const void *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	CHECK(fd != -1);
	CHECK(write(fd, data, len) == (ssize_t)len);
	return fd;
}

static int
count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static char *
read_all(const char *path, size_t *lenp)
{
	struct buf b;
	char tmp[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	buf_init(&b);
	buf_puts(&b, "");
	CHECK(fd != -1);
	if (fd == -1)
		return buf_release(&b);
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(&b, tmp, (size_t)n);
	close(fd);
	*lenp = b.len;
	return buf_release(&b);
}

static int
mode_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

static void
test_unique_name(void)
{
	char out[128];

	CHECK_INT(maildir_unique_name(out, sizeof(out), 1700000000, 123456,
	    4242, 7, "mx.example.org"), 0);
	CHECK_STR(out, "1700000000.M123456P4242Q7.mx.example.org");
	CHECK_INT(maildir_unique_name(out, sizeof(out), 1, 0, 1, 0,
	    "a/b:c//"), 0);
	CHECK_STR(out, "1.M0P1Q0.a\\057b\\072c\\057\\057");
	CHECK_INT(maildir_unique_name(out, sizeof(out), 1, 0, 1, 0,
	    "tab\there"), 0);
	CHECK_STR(out, "1.M0P1Q0.tab\\011here");
	CHECK_INT(maildir_unique_name(out, sizeof(out), 1, 0, 1, 0, ""), 0);
	CHECK_STR(out, "1.M0P1Q0.localhost");
	CHECK_INT(maildir_unique_name(out, sizeof(out), 1, 0, 1, 0, NULL), 0);
	CHECK_STR(out, "1.M0P1Q0.localhost");

	/* "1.M0P1Q0.h:" is 14 bytes with the escape, 15 with the NUL. */
	CHECK_INT(maildir_unique_name(out, 15, 1, 0, 1, 0, "h:"), 0);
	CHECK_STR(out, "1.M0P1Q0.h\\072");
	CHECK_INT(maildir_unique_name(out, 14, 1, 0, 1, 0, "h:"), -1);
	CHECK_STR(out, "");
	CHECK_INT(maildir_unique_name(out, 11, 1, 0, 1, 0, "h"), 0);
	CHECK_INT(maildir_unique_name(out, 10, 1, 0, 1, 0, "h"), -1);
	CHECK_INT(maildir_unique_name(out, 5, 1, 0, 1, 0, "h"), -1);
}

static void
test_deliver(void)
{
	static const char spool[] =
	    "HEADERMessage-Id: <1@x>\r\n\r\nbody\r\nTRAIL";
	static const char prefix[] =
	    "Return-Path: <a@b>\r\nDelivered-To: alice@localhost\r\n";
	char po[128], path[512], name[256], name2[256], want[512];
	struct err e;
	size_t len;
	char *got;
	int fd;

	setup();
	snprintf(po, sizeof(po), "%s/po", base);
	fd = spool_file("spool", spool, sizeof(spool) - 1);
	err_clear(&e);
	CHECK_INT(maildir_deliver(po, "alice", "mx.example:25", prefix,
	    strlen(prefix), fd, 6, (off_t)(sizeof(spool) - 1 - 6 - 5), name,
	    sizeof(name), &e), 0);
	CHECK_STR(e.msg, "");

	/* The name: SECONDS.M<usec>P<pid>Q<n>.HOST, ':' escaped. */
	{
		long long sec;
		long usec, pid;
		unsigned long q;
		char host[128];
		CHECK_INT(sscanf(name, "%lld.M%ldP%ldQ%lu.%127s", &sec, &usec,
		    &pid, &q, host), 5);
		CHECK_INT(pid, getpid());
		CHECK(usec >= 0 && usec < 1000000);
		CHECK(sec > 1600000000);
		CHECK_STR(host, "mx.example\\07225");
	}

	snprintf(path, sizeof(path), "%s/alice/new/%s", po, name);
	got = read_all(path, &len);
	snprintf(want, sizeof(want), "%sMessage-Id: <1@x>\r\n\r\nbody\r\n",
	    prefix);
	CHECK_INT(len, strlen(want));
	CHECK_STR(got, want);
	free(got);
	CHECK_INT(mode_of(path), 0600);

	snprintf(path, sizeof(path), "%s/alice", po);
	CHECK_INT(mode_of(path), 0700);
	snprintf(path, sizeof(path), "%s/alice/tmp", po);
	CHECK_INT(mode_of(path), 0700);
	CHECK_INT(count_entries(path), 0);
	snprintf(path, sizeof(path), "%s/alice/cur", po);
	CHECK_INT(mode_of(path), 0700);
	CHECK_INT(count_entries(path), 0);
	snprintf(path, sizeof(path), "%s/alice/new", po);
	CHECK_INT(mode_of(path), 0700);
	CHECK_INT(count_entries(path), 1);

	/* A second delivery: another name, both there. */
	CHECK_INT(maildir_deliver(po, "alice", "mx.example", prefix,
	    strlen(prefix), fd, 0, 6, name2, sizeof(name2), &e), 0);
	CHECK(strcmp(name, name2) != 0);
	CHECK_INT(count_entries(path), 2);
	snprintf(path, sizeof(path), "%s/alice/new/%s", po, name2);
	got = read_all(path, &len);
	snprintf(want, sizeof(want), "%sHEADER", prefix);
	CHECK_STR(got, want);
	free(got);

	/* No prefix, nothing from the file, no name wanted. */
	CHECK_INT(maildir_deliver(po, "bob", "h", NULL, 0, fd, 0, 0, NULL, 0,
	    &e), 0);
	snprintf(path, sizeof(path), "%s/bob/new", po);
	CHECK_INT(count_entries(path), 1);

	/* A short name buffer gets a truncated, terminated copy. */
	CHECK_INT(maildir_deliver(po, "bob", "h", "x", 1, fd, 0, 1, name, 4,
	    &e), 0);
	CHECK_INT(strlen(name), 3);
	CHECK(close(fd) == 0);
	teardown();
}

/* Bigger than the copy buffer, not a multiple of it, from an offset. */
static void
test_deliver_large(void)
{
	size_t size = 3 * 65536 + 12345, off = 777;
	char po[128], path[512], name[256];
	char *data = xmalloc(size), *got;
	struct err e;
	size_t len;
	int fd;

	setup();
	for (size_t i = 0; i < size; i++)
		data[i] = (char)(i * 7 + i / 251);
	fd = spool_file("big", data, size);
	snprintf(po, sizeof(po), "%s/po", base);
	CHECK_INT(maildir_deliver(po, "big", "h", "P:\r\n", 4, fd, (off_t)off,
	    (off_t)(size - off - 3), name, sizeof(name), &e), 0);
	snprintf(path, sizeof(path), "%s/big/new/%s", po, name);
	got = read_all(path, &len);
	CHECK_INT(len, 4 + size - off - 3);
	CHECK(memcmp(got, "P:\r\n", 4) == 0);
	CHECK(memcmp(got + 4, data + off, size - off - 3) == 0);
	free(got);
	free(data);
	CHECK(close(fd) == 0);
	teardown();
}

static void
test_failures(void)
{
	char po[128], path[512], name[256];
	struct err e;
	int fd;

	setup();
	fd = spool_file("spool", "0123456789", 10);

	/* The postoffice is a regular file. */
	snprintf(po, sizeof(po), "%s/spool", base);
	CHECK_INT(maildir_deliver(po, "alice", "h", "", 0, fd, 0, 10, name,
	    sizeof(name), &e), -1);
	{
		char want[512];
		snprintf(want, sizeof(want), "maildir: mkdir %s: exists and "
		    "is not a directory", po);
		CHECK_STR(e.msg, want);
	}

	/* Mailbox names that would leave the postoffice. */
	snprintf(po, sizeof(po), "%s/po", base);
	CHECK_INT(maildir_deliver(po, "../escape", "h", "", 0, fd, 0, 10,
	    name, sizeof(name), &e), -1);
	CHECK_STR(e.msg, "maildir: bad mailbox name '../escape'");
	CHECK_INT(maildir_deliver(po, "..", "h", "", 0, fd, 0, 10, name,
	    sizeof(name), &e), -1);
	CHECK_INT(maildir_deliver(po, ".x", "h", "", 0, fd, 0, 10, name,
	    sizeof(name), &e), -1);
	CHECK_INT(maildir_deliver(po, "a/b", "h", "", 0, fd, 0, 10, name,
	    sizeof(name), &e), -1);
	CHECK_INT(maildir_deliver(po, "a\x01", "h", "", 0, fd, 0, 10, name,
	    sizeof(name), &e), -1);
	CHECK_INT(maildir_deliver(po, "", "h", "", 0, fd, 0, 10, name,
	    sizeof(name), &e), -1);
	CHECK(access(po, F_OK) == -1);	/* nothing was created */
	snprintf(path, sizeof(path), "%s/escape", base);
	CHECK(access(path, F_OK) == -1);

	/* The spool file is shorter than the envelope says. */
	CHECK_INT(maildir_deliver(po, "alice", "h", "pre", 3, fd, 4, 10, name,
	    sizeof(name), &e), -1);
	CHECK_STR(e.msg, "maildir: spool file shorter than expected "
	    "(6 of 10 bytes from offset 4)");
	snprintf(path, sizeof(path), "%s/alice/tmp", po);
	CHECK_INT(count_entries(path), 0);
	snprintf(path, sizeof(path), "%s/alice/new", po);
	CHECK_INT(count_entries(path), 0);

	/* An unreadable spool descriptor. */
	CHECK_INT(maildir_deliver(po, "alice", "h", "pre", 3, -1, 0, 10, name,
	    sizeof(name), &e), -1);
	CHECK(strncmp(e.msg, "maildir: read spool file at offset 0: ",
	    38) == 0);
	CHECK_INT(e.errnum, EBADF);
	snprintf(path, sizeof(path), "%s/alice/tmp", po);
	CHECK_INT(count_entries(path), 0);

	/* A nonsense range. */
	CHECK_INT(maildir_deliver(po, "alice", "h", "", 0, fd, -1, 10, name,
	    sizeof(name), &e), -1);
	CHECK_STR(e.msg, "maildir: bad spool file range -1+10");

	/* new/ not writable (not meaningful as root). */
	if (geteuid() != 0) {
		snprintf(path, sizeof(path), "%s/alice/new", po);
		CHECK(chmod(path, 0500) == 0);
		CHECK_INT(maildir_deliver(po, "alice", "h", "", 0, fd, 0, 10,
		    name, sizeof(name), &e), -1);
		CHECK(strncmp(e.msg, "maildir: link ", 14) == 0);
		CHECK(strstr(e.msg, "Permission denied") != NULL);
		CHECK(chmod(path, 0700) == 0);
		snprintf(path, sizeof(path), "%s/alice/tmp", po);
		CHECK_INT(count_entries(path), 0);
	}
	CHECK(close(fd) == 0);
	teardown();
}

struct worker {
	const char	*po;
	int		 fd;
	int		 failures;
};

static void *
deliver_many(void *arg)
{
	struct worker *w = arg;
	struct err e;

	for (int i = 0; i < 50; i++)
		if (maildir_deliver(w->po, "shared", "h", "x", 1, w->fd, 0, 4,
		    NULL, 0, &e) == -1) {
			fprintf(stderr, "  %s\n", e.msg);
			w->failures++;
		}
	return NULL;
}

/* Threads delivering at once into a new mailbox: all distinct. */
static void
test_threads(void)
{
	pthread_t t[4];
	struct worker w[4];
	char po[128], path[512];
	int fd;

	setup();
	fd = spool_file("spool", "abcd", 4);
	snprintf(po, sizeof(po), "%s/po", base);
	for (int i = 0; i < 4; i++) {
		w[i].po = po;
		w[i].fd = fd;
		w[i].failures = 0;
		CHECK(pthread_create(&t[i], NULL, deliver_many, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		CHECK(pthread_join(t[i], NULL) == 0);
		CHECK_INT(w[i].failures, 0);
	}
	snprintf(path, sizeof(path), "%s/shared/new", po);
	CHECK_INT(count_entries(path), 200);
	snprintf(path, sizeof(path), "%s/shared/tmp", po);
	CHECK_INT(count_entries(path), 0);
	CHECK(close(fd) == 0);
	teardown();
}

/* The batch API: prepare, publish; a retried delivery (crash before it
 * was recorded) finds its own file and is not done twice. */
static void
test_deliver_once(void)
{
	struct maildir_delivery *md = xcalloc(1, sizeof(*md));
	char po[128], name[256], path[512];
	struct err e;
	int fd;

	setup();
	snprintf(po, sizeof(po), "%s/po", base);
	fd = spool_file("spool", "hello\r\n", 7);
	CHECK_INT(maildir_queue_name(name, sizeof(name), 1700000000,
	    "0123456789ABCDEF0", 2, "mx/a:b"), 0);
	CHECK_STR(name, "1700000000.S0123456789ABCDEF0R2.mx\\057a\\072b");
	err_clear(&e);
	CHECK_INT(maildir_prepare(md, po, "carol", name, "P: 1\r\n", 6, fd, 0,
	    7, &e), 0);
	CHECK_INT(md->state, MAILDIR_PREPARED);
	snprintf(path, sizeof(path), "%s/carol/new", po);
	CHECK_INT(count_entries(path), 0);	/* not visible before publish */
	CHECK_INT(maildir_publish(md, &e), 0);
	CHECK_INT(md->state, MAILDIR_PUBLISHED);
	/* The retry. */
	CHECK_INT(maildir_prepare(md, po, "carol", name, "P: 1\r\n", 6, fd, 0,
	    7, &e), 0);
	CHECK_INT(md->state, MAILDIR_ALREADY);
	CHECK_INT(maildir_publish(md, &e), 0);
	CHECK_INT(count_entries(path), 1);
	snprintf(path, sizeof(path), "%s/carol/tmp", po);
	CHECK_INT(count_entries(path), 0);
	/* A discarded delivery leaves nothing in tmp/. */
	CHECK_INT(maildir_prepare(md, po, "carol", "other", "", 0, fd, 0, 7,
	    &e), 0);
	maildir_discard(md);
	CHECK_INT(count_entries(path), 0);
	CHECK_INT(maildir_prepare(md, po, "carol", "a/b", "", 0, fd, 0, 7, &e),
	    -1);
	close(fd);
	free(md);
	teardown();
}

int
main(void)
{
	umask(022);
	RUN(test_unique_name);
	RUN(test_deliver);
	RUN(test_deliver_large);
	RUN(test_failures);
	RUN(test_threads);
	RUN(test_deliver_once);
	T_EXIT();
}
