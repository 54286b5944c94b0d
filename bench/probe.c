/*
 * probe.c - the machine's own durable-write limit, for bench/run.sh.
 *
 * Measures three patterns that bound a mail server's throughput, each for
 * a fixed time, first serially (1 thread) and then with N threads (20 by
 * default), in a scratch directory that must be on the same file system as
 * the spools under test:
 *
 *   create    open(O_CREAT) + write 5 KB + fdatasync + close
 *   rename    the same in tmp/, then rename into new/ and fsync(new/)
 *   append    append 5 KB + fdatasync to one file kept open (shared by all
 *             threads)
 *   overwrite pwrite 5 KB + fdatasync into a file written in full and
 *             synced beforehand (16 MB, slots reused round robin): no
 *             metadata changes
 *   direct    the same past the page cache: O_DIRECT | O_DSYNC pwrite of
 *             8 KB (5 KB in whole 4 KB blocks, as smtpgate's journal
 *             writes it), one write and one cache flush; the cheapest
 *             durable write there is (falls back to overwrite's way where
 *             O_DIRECT is refused)
 *
 * Output: one line per measurement, "PATTERN THREADS OPS_PER_SECOND", so
 * the harness can parse it. Created files are moved aside afterwards (not
 * timed), not deleted: see probe_clean().
 *
 * Build: cc -O2 -pthread -o probe probe.c
 * Usage: probe DIR [SECONDS [THREADS [PATTERN]]]
 *   THREADS 1 measures serially only; PATTERN (create, rename, append,
 *   overwrite or direct) measures that pattern only.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PROBE_SIZE 5120
#define PROBE_MAX_THREADS 256

enum probe_kind { PROBE_CREATE, PROBE_RENAME, PROBE_APPEND,
	PROBE_OVERWRITE, PROBE_DIRECT };

#define PROBE_OVERWRITE_SLOTS	3200	/* x 5 KB = 16 MB */
#define PROBE_BLOCKS		8192	/* 5 KB in whole 4 KB blocks */
#define PROBE_DIRECT_SLOTS	2048	/* x 8 KB = 16 MB */

struct probe_ctx {
	const char	*dir;
	enum probe_kind	 kind;
	int		 id;
	int		 nthreads;
	int		 appendfd;
	int		 newfd;
	double		 deadline;
	long		 ops;
	int		 failed;
};

static char probe_buf[PROBE_SIZE];
static char probe_blocks[PROBE_BLOCKS] __attribute__((aligned(4096)));

static double
probe_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
probe_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
probe_one(struct probe_ctx *c, long seq)
{
	char tmp[4096], dst[4096];
	int fd;

	if (c->kind == PROBE_APPEND) {
		if (probe_write_all(c->appendfd, probe_buf, PROBE_SIZE) == -1 ||
		    fdatasync(c->appendfd) == -1)
			return -1;
		return 0;
	}
	if (c->kind == PROBE_OVERWRITE || c->kind == PROBE_DIRECT) {
		int is_direct = c->kind == PROBE_DIRECT;
		size_t size = is_direct ? PROBE_BLOCKS : PROBE_SIZE;
		off_t slot = (off_t)((seq * c->nthreads + c->id) %
		    (is_direct ? PROBE_DIRECT_SLOTS : PROBE_OVERWRITE_SLOTS));

		/* direct: O_DSYNC, durable when pwrite returns */
		if (pwrite(c->appendfd, is_direct ? probe_blocks : probe_buf,
		    size, slot * (off_t)size) != (ssize_t)size ||
		    (!is_direct && fdatasync(c->appendfd) == -1))
			return -1;
		return 0;
	}
	if (c->kind == PROBE_CREATE)
		snprintf(tmp, sizeof(tmp), "%s/c/%d.%ld", c->dir, c->id, seq);
	else
		snprintf(tmp, sizeof(tmp), "%s/tmp/%d.%ld", c->dir, c->id,
		    seq);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (probe_write_all(fd, probe_buf, PROBE_SIZE) == -1 ||
	    fdatasync(fd) == -1) {
		close(fd);
		return -1;
	}
	if (close(fd) == -1)
		return -1;
	if (c->kind == PROBE_RENAME) {
		snprintf(dst, sizeof(dst), "%s/new/%d.%ld", c->dir, c->id,
		    seq);
		if (rename(tmp, dst) == -1 || fsync(c->newfd) == -1)
			return -1;
	}
	return 0;
}

static void *
probe_thread(void *arg)
{
	struct probe_ctx *c = arg;
	long seq = 0;

	while (probe_now() < c->deadline) {
		if (probe_one(c, seq++) == -1) {
			fprintf(stderr, "probe: %s\n", strerror(errno));
			c->failed = 1;
			break;
		}
		c->ops++;
	}
	return NULL;
}

static void
probe_clean(const char *dir, const char *sub)
{
	static int n;
	char path[4096], aside[4096];

	/*
	 * Not timed. The files are moved aside with their directory, not
	 * deleted: on ext4 without a journal a create steps over every
	 * recently freed inode of its group, so deleting them would slow the
	 * next measurement (the harness deletes it all at the end).
	 */
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	snprintf(aside, sizeof(aside), "%s/aside.%s.%d", dir, sub, n++);
	if (rename(path, aside) == -1 || mkdir(path, 0700) == -1)
		fprintf(stderr, "probe: could not set %s aside\n", path);
}

static double
probe_run(const char *dir, enum probe_kind kind, int nthreads,
    double seconds)
{
	static struct probe_ctx ctx[PROBE_MAX_THREADS];
	pthread_t tid[PROBE_MAX_THREADS];
	char path[4096];
	double t0, t1;
	long ops = 0;
	int appendfd = -1, newfd = -1, i;

	snprintf(path, sizeof(path), "%s/append", dir);
	if (kind == PROBE_OVERWRITE || kind == PROBE_DIRECT) {
		/* written in full and synced first (not timed); direct: then
		 * opened past the page cache */
		int is_direct = kind == PROBE_DIRECT;
		int slots = is_direct ? PROBE_DIRECT_SLOTS :
		    PROBE_OVERWRITE_SLOTS;

		appendfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
		for (i = 0; appendfd != -1 && i < slots; i++)
			if (probe_write_all(appendfd, is_direct ? probe_blocks :
			    probe_buf, is_direct ? PROBE_BLOCKS : PROBE_SIZE) ==
			    -1)
				break;
		if (appendfd == -1 || i < slots || fsync(appendfd) == -1) {
			perror(path);
			exit(1);
		}
		if (is_direct) {
			close(appendfd);
			appendfd = open(path, O_WRONLY | O_DIRECT | O_DSYNC |
			    O_CLOEXEC);
			if (appendfd == -1)
				appendfd = open(path, O_WRONLY | O_DSYNC |
				    O_CLOEXEC);
			if (appendfd == -1) {
				perror(path);
				exit(1);
			}
		}
	}
	if (kind == PROBE_APPEND) {
		appendfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
		    O_CLOEXEC, 0600);
		if (appendfd == -1) {
			perror(path);
			exit(1);
		}
	}
	snprintf(path, sizeof(path), "%s/new", dir);
	newfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (newfd == -1) {
		perror(path);
		exit(1);
	}
	t0 = probe_now();
	for (i = 0; i < nthreads; i++) {
		memset(&ctx[i], 0, sizeof(ctx[i]));
		ctx[i].dir = dir;
		ctx[i].kind = kind;
		ctx[i].id = i;
		ctx[i].nthreads = nthreads;
		ctx[i].appendfd = appendfd;
		ctx[i].newfd = newfd;
		ctx[i].deadline = t0 + seconds;
		if (pthread_create(&tid[i], NULL, probe_thread, &ctx[i]) != 0) {
			fprintf(stderr, "probe: pthread_create failed\n");
			exit(1);
		}
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(tid[i], NULL);
		if (ctx[i].failed)
			exit(1);
		ops += ctx[i].ops;
	}
	t1 = probe_now();
	close(newfd);
	if (appendfd != -1) {
		close(appendfd);
		snprintf(path, sizeof(path), "%s/append", dir);
		unlink(path);
	}
	probe_clean(dir, "c");
	probe_clean(dir, "tmp");
	probe_clean(dir, "new");
	return (double)ops / (t1 - t0);
}

int
main(int argc, char **argv)
{
	static const char *names[] = { "create", "rename", "append",
	    "overwrite", "direct" };
	char path[4096];
	const char *dir;
	double seconds = 3.0;
	const char *only = NULL;
	int threads = 20, k, t, s;

	/* An option given by mistake (--help) is not a directory to fill. */
	if (argc < 2 || argc > 5 || argv[1][0] == '-') {
		fprintf(stderr,
		    "usage: probe DIR [SECONDS [THREADS [PATTERN]]]\n");
		return 64;
	}
	dir = argv[1];
	if (argc > 2)
		seconds = atof(argv[2]);
	if (argc > 3)
		threads = atoi(argv[3]);
	if (argc > 4)
		only = argv[4];
	if (only != NULL && strcmp(only, "create") != 0 &&
	    strcmp(only, "rename") != 0 && strcmp(only, "append") != 0 &&
	    strcmp(only, "overwrite") != 0 && strcmp(only, "direct") != 0) {
		fprintf(stderr, "probe: unknown pattern %s\n", only);
		return 64;
	}
	if (seconds <= 0 || threads < 1 || threads > PROBE_MAX_THREADS) {
		fprintf(stderr, "probe: bad SECONDS or THREADS\n");
		return 64;
	}
	memset(probe_buf, 'x', sizeof(probe_buf));
	memset(probe_blocks, 'x', sizeof(probe_blocks));
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		perror(dir);
		return 1;
	}
	for (s = 0; s < 3; s++) {
		static const char *subs[] = { "c", "tmp", "new" };

		snprintf(path, sizeof(path), "%s/%s", dir, subs[s]);
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			perror(path);
			return 1;
		}
	}
	for (k = 0; k < 5; k++) {
		int counts[2] = { 1, threads };

		if (only != NULL && strcmp(only, names[k]) != 0)
			continue;
		for (t = 0; t < (threads > 1 ? 2 : 1); t++) {
			printf("%s %d %.1f\n", names[k], counts[t],
			    probe_run(dir, (enum probe_kind)k, counts[t],
			    seconds));
			fflush(stdout);
		}
	}
	return 0;
}
