/* Unit tests: gate/spool.c (doc/QUEUE.md states and recovery), climit,
 * sched_backoff. */
#include "t.h"

#include <dirent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/fsio.h"
#include "mail/envelope.h"
#include "gate/climit.h"
#include "gate/sched.h"
#include "gate/spool.h"

static char dir[64];
static char seen[16][SPOOL_ID_LEN + 1];
static int nseen;

static void
collect(void *arg, const char *id)
{
	if (nseen < 16)
		snprintf(seen[nseen++], sizeof(seen[0]), "%s", id);
}

/*
 * Fault injection: this fsync takes the C library's place in this program.
 * With scan_sp set, the first one (the commit's sync) scans the queue
 * first, as a `queue flush` on the loop can while the commit thread
 * syncs.
 */
static struct spool *scan_sp;
static long scanned = -1;

int
fsync(int fd)
{
	if (scan_sp != NULL) {
		struct spool *sp = scan_sp;
		struct err e;

		scan_sp = NULL;
		nseen = 0;
		scanned = spool_scan(sp, collect, NULL, &e);
	}
	return (int)syscall(SYS_fsync, fd);
}

static void
make_env(struct envelope *env)
{
	envelope_init(env);
	env->arrival = 1.5;
	env->client_addr = strdup("127.0.0.1");
	env->client_name = strdup("[127.0.0.1]");
	env->helo = strdup("h");
	env->proto = strdup("ESMTP");
	env->sender = strdup("a@b.example");
	envelope_add_rcpt(env, RCPT_LOCAL, "bob", "bob@localhost", NULL, NULL);
	envelope_add_rcpt(env, RCPT_LOCAL, "carol", "carol@localhost", NULL,
	    NULL);
}

static bool
exists(const char *sub, const char *id)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s/%s", dir, sub, id);
	return access(p, F_OK) == 0;
}

static void
test_commit_load_remove(void)
{
	struct err e;
	struct spool *sp = spool_open(dir, &e);
	struct envelope env, got;
	struct spool_msg *m;
	char id[SPOOL_ID_LEN + 1], data[32];
	off_t off;
	int fd;

	CHECK(sp != NULL);
	make_env(&env);
	m = spool_msg_new(sp, &env, &e);
	CHECK(m != NULL);
	snprintf(id, sizeof(id), "%s", spool_msg_id(m));
	CHECK(spool_id_valid(id));
	CHECK(exists("tmp", id));
	CHECK(!exists("queue", id));
	CHECK_INT(spool_msg_write(m, "Subject: x\r\n\r\nhi\r\n", 18, &e), 0);
	CHECK_INT(spool_msg_commit(m, &e), 0);
	spool_msg_free(m);
	CHECK(!exists("tmp", id));
	CHECK(exists("queue", id));

	envelope_init(&got);
	CHECK_INT(spool_load(sp, id, &got, &fd, &off, &e), 0);
	CHECK_INT(got.data_len, 18);
	CHECK_INT(got.nrcpts, 2);
	CHECK_INT(pread(fd, data, 18, off), 18);
	CHECK(memcmp(data, "Subject: x\r\n\r\nhi\r\n", 18) == 0);
	close(fd);
	got.rcpts[0].status = RCPT_SENT;
	CHECK_INT(spool_save_state(sp, id, &got, &e), 0);
	envelope_clear(&got);
	envelope_init(&got);
	CHECK_INT(spool_load(sp, id, &got, NULL, NULL, &e), 0);
	CHECK_INT(got.rcpts[0].status, RCPT_SENT);
	CHECK_INT(got.rcpts[1].status, RCPT_PENDING);
	envelope_clear(&got);

	CHECK_INT(spool_remove(sp, id, &e), 0);
	CHECK(!exists("queue", id));
	CHECK(!exists("state", id));
	envelope_clear(&env);
	spool_close(sp);
}

/* A message linked into queue/ whose sync has not ended is not listed:
 * its commit may still fail and take it back. */
static void
test_scan_skips_commit_in_progress(void)
{
	struct err e;
	struct spool *sp = spool_open(dir, &e);
	struct envelope env;
	struct spool_msg *m;
	char id[SPOOL_ID_LEN + 1];
	long before;

	CHECK(sp != NULL);
	nseen = 0;
	before = spool_scan(sp, collect, NULL, &e);
	make_env(&env);
	m = spool_msg_new(sp, &env, &e);
	CHECK(m != NULL);
	snprintf(id, sizeof(id), "%s", spool_msg_id(m));
	CHECK_INT(spool_msg_write(m, "Subject: x\r\n\r\nhi\r\n", 18, &e), 0);
	scan_sp = sp;
	CHECK_INT(spool_msg_commit(m, &e), 0);
	CHECK(scan_sp == NULL);		/* it synced, and scanned meanwhile */
	CHECK_INT(scanned, before);
	spool_msg_free(m);
	nseen = 0;
	CHECK_INT(spool_scan(sp, collect, NULL, &e), before + 1);
	CHECK_INT(spool_remove(sp, id, &e), 0);
	envelope_clear(&env);
	spool_close(sp);
}

static void
test_recovery(void)
{
	struct err e;
	struct spool *sp = spool_open(dir, &e);
	struct envelope env;
	struct spool_msg *half, *done;
	char half_id[SPOOL_ID_LEN + 1], done_id[SPOOL_ID_LEN + 1], p[256];
	int fd;

	make_env(&env);
	/* A message caught mid-receive and one committed. */
	half = spool_msg_new(sp, &env, &e);
	snprintf(half_id, sizeof(half_id), "%s", spool_msg_id(half));
	CHECK_INT(spool_msg_write(half, "partial", 7, &e), 0);
	done = spool_msg_new(sp, &env, &e);
	snprintf(done_id, sizeof(done_id), "%s", spool_msg_id(done));
	CHECK(strcmp(half_id, done_id) < 0);	/* ids sort by time */
	CHECK_INT(spool_msg_write(done, "x\r\n", 3, &e), 0);
	CHECK_INT(spool_msg_commit(done, &e), 0);
	/* Simulate the crash: the half message's file stays in tmp/. */
	snprintf(p, sizeof(p), "%s/tmp/%s", dir, half_id);
	CHECK_INT(link(p, "/tmp/smtpgate-spool-half"), 0);
	spool_msg_free(half);
	CHECK_INT(rename("/tmp/smtpgate-spool-half", p), 0);
	CHECK(exists("tmp", half_id));
	spool_msg_free(done);
	/* An orphan state file and a torn state update. */
	snprintf(p, sizeof(p), "%s/state/00000000000000001", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s/state/.%s.tmpABCDEF", dir, done_id);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	close(fd);
	/* A file with a name that is no queue id. */
	snprintf(p, sizeof(p), "%s/queue/garbage", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	close(fd);

	nseen = 0;
	CHECK_INT(spool_recover(sp, collect, NULL, &e), 1);
	CHECK_INT(nseen, 1);
	CHECK_STR(seen[0], done_id);
	CHECK(!exists("tmp", half_id));
	CHECK(!exists("state", "00000000000000001"));
	CHECK(exists("quarantine", "garbage"));
	CHECK(exists("quarantine", "garbage.reason"));
	snprintf(p, sizeof(p), "%s/state/.%s.tmpABCDEF", dir, done_id);
	CHECK(access(p, F_OK) != 0);
	CHECK_INT(spool_remove(sp, done_id, &e), 0);
	envelope_clear(&env);
	spool_close(sp);
}

static void
test_corrupt_file_fails_to_load(void)
{
	struct err e;
	struct spool *sp = spool_open(dir, &e);
	struct envelope env;
	const char *id = "0000000000000000A";
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/queue/%s", dir, id);
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(write(fd, "SMTPGATE-QUEUE 1\nsender a@b\n", 28) == 28);
	close(fd);
	envelope_init(&env);
	err_clear(&e);
	CHECK_INT(spool_load(sp, id, &env, NULL, NULL, &e), -1);
	CHECK(strstr(e.msg, id) != NULL);
	envelope_clear(&env);
	CHECK_INT(spool_quarantine(sp, id, e.msg, &e), 0);
	CHECK(exists("quarantine", id));
	CHECK(!exists("queue", id));
	spool_close(sp);
}

static void
test_ids_unique(void)
{
	struct err e;
	struct spool *sp = spool_open(dir, &e);
	struct envelope env;
	char prev[SPOOL_ID_LEN + 1] = "";

	make_env(&env);
	for (int i = 0; i < 200; i++) {
		struct spool_msg *m = spool_msg_new(sp, &env, &e);
		CHECK(strcmp(prev, spool_msg_id(m)) < 0);
		snprintf(prev, sizeof(prev), "%s", spool_msg_id(m));
		spool_msg_abort(m);
		spool_msg_free(m);
	}
	envelope_clear(&env);
	spool_close(sp);
}

/* A direct message is linked into its own directory by the group commit,
 * together with queued ones; an uncommitted one leaves nothing. */
static void
test_direct_batch(void)
{
	struct err e, errs[3];
	struct spool *sp = spool_open(dir, &e);
	struct envelope env;
	struct spool_msg *m[3];
	char tmpd[128], newd[128], id[SPOOL_ID_LEN + 1], path[256];
	int results[3];

	snprintf(tmpd, sizeof(tmpd), "%s/mbox/tmp", dir);
	snprintf(newd, sizeof(newd), "%s/mbox/new", dir);
	CHECK_INT(fsio_mkdirs(tmpd, 0700, &e), 0);
	CHECK_INT(fsio_mkdirs(newd, 0700, &e), 0);
	make_env(&env);
	spool_new_id(id);
	m[0] = spool_msg_new_direct(sp, id, tmpd, newd, "direct-1", &e);
	m[1] = spool_msg_new(sp, &env, &e);
	spool_new_id(id);
	m[2] = spool_msg_new_direct(sp, id, tmpd, newd, "direct-2", &e);
	CHECK(m[0] && m[1] && m[2]);
	CHECK(spool_msg_is_direct(m[0]) && !spool_msg_is_direct(m[1]));
	for (int i = 0; i < 3; i++) {
		CHECK_INT(spool_msg_write(m[i], "hello\r\n", 7, &e), 0);
		CHECK_INT(spool_msg_finish(m[i], &e), 0);
	}
	spool_commit_batch(sp, m, 3, results, errs);
	CHECK_INT(results[0], 0);
	CHECK_INT(results[1], 0);
	CHECK_INT(results[2], 0);
	snprintf(path, sizeof(path), "%s/direct-1", newd);
	CHECK(access(path, F_OK) == 0);
	CHECK(exists("queue", spool_msg_id(m[1])));
	/* A client gone before its 250: the delivery is taken back. */
	spool_msg_uncommit(m[2]);
	snprintf(path, sizeof(path), "%s/direct-2", newd);
	CHECK(access(path, F_OK) != 0);
	CHECK_INT(spool_remove(sp, spool_msg_id(m[1]), &e), 0);
	for (int i = 0; i < 3; i++)
		spool_msg_free(m[i]);
	/* tmp/ of the mailbox is empty: no litter after the links. */
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", tmpd);
		CHECK(system(cmd) == 0);
	}
	envelope_clear(&env);
	spool_close(sp);
}

/* True when dir has no entries. */
static bool
is_empty_dir(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	bool empty = true;

	if (dp == NULL)
		return false;
	while (empty && (de = readdir(dp)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0;
	closedir(dp);
	return empty;
}

/* Runs the loop until the pool's refill has come back. */
static void
run_loop_briefly(struct event_base *base)
{
	struct timeval tv = { 0, 200000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
test_pool(void)
{
	struct err e, errs[2];
	struct spool *sp = spool_open(dir, &e);
	struct event_base *base;
	struct envelope env, loaded;
	struct spool_msg *m[2];
	char tmpd[128], newd[128], spool_tmp[128], id[SPOOL_ID_LEN + 1];
	char path[256];
	int results[2], fd;
	off_t off;
	char data[8];

	evthread_use_pthreads();
	base = event_base_new();
	snprintf(tmpd, sizeof(tmpd), "%s/pbox/tmp", dir);
	snprintf(newd, sizeof(newd), "%s/pbox/new", dir);
	snprintf(spool_tmp, sizeof(spool_tmp), "%s/tmp", dir);
	CHECK_INT(fsio_mkdirs(tmpd, 0700, &e), 0);
	CHECK_INT(fsio_mkdirs(newd, 0700, &e), 0);
	CHECK_INT(spool_pool_start(sp, base, &e), 0);
	make_env(&env);
	/* The first message asks for a refill and makes its own file. */
	m[0] = spool_msg_new(sp, &env, &e);
	CHECK(m[0] != NULL);
	spool_msg_abort(m[0]);
	spool_msg_free(m[0]);
	CHECK(is_empty_dir(spool_tmp));
	run_loop_briefly(base);
	/* Now pooled: unnamed files, linked by their descriptor. */
	m[0] = spool_msg_new(sp, &env, &e);
	spool_new_id(id);
	m[1] = spool_msg_new_direct(sp, id, tmpd, newd, "pooled-1", &e);
	CHECK(m[0] && m[1]);
	CHECK(is_empty_dir(spool_tmp) && is_empty_dir(tmpd));
	for (int i = 0; i < 2; i++) {
		CHECK_INT(spool_msg_write(m[i], "pooled\r\n", 8, &e), 0);
		CHECK_INT(spool_msg_finish(m[i], &e), 0);
	}
	spool_commit_batch(sp, m, 2, results, errs);
	CHECK_INT(results[0], 0);
	CHECK_INT(results[1], 0);
	snprintf(path, sizeof(path), "%s/pooled-1", newd);
	fd = open(path, O_RDONLY);
	CHECK(fd != -1 && read(fd, data, 8) == 8 && memcmp(data,
	    "pooled\r\n", 8) == 0);
	if (fd != -1)
		close(fd);
	envelope_init(&loaded);
	CHECK_INT(spool_load(sp, spool_msg_id(m[0]), &loaded, &fd, &off, &e),
	    0);
	CHECK(loaded.data_len == 8 && pread(fd, data, 8, off) == 8 &&
	    memcmp(data, "pooled\r\n", 8) == 0);
	close(fd);
	envelope_clear(&loaded);
	CHECK_INT(spool_remove(sp, spool_msg_id(m[0]), &e), 0);
	/* A finished queue file is kept (tmp/r.N) and reused for the next
	 * queued message, cut to that message's length. */
	CHECK(!is_empty_dir(spool_tmp));
	{
		struct spool_msg *r = spool_msg_new(sp, &env, &e);
		struct err re;
		int rres;

		CHECK(r != NULL && is_empty_dir(spool_tmp) == false);
		CHECK_INT(spool_msg_write(r, "x\r\n", 3, &e), 0);
		CHECK_INT(spool_msg_finish(r, &e), 0);
		spool_commit_batch(sp, &r, 1, &rres, &re);
		CHECK_INT(rres, 0);
		CHECK(is_empty_dir(spool_tmp));
		envelope_init(&loaded);
		CHECK_INT(spool_load(sp, spool_msg_id(r), &loaded, &fd, &off,
		    &e), 0);
		CHECK(loaded.data_len == 3 && pread(fd, data, 8, off) == 3 &&
		    memcmp(data, "x\r\n", 3) == 0);
		close(fd);
		envelope_clear(&loaded);
		CHECK_INT(spool_remove(sp, spool_msg_id(r), &e), 0);
		spool_msg_free(r);
	}
	/* `queue delete` never recycles: a delivery may still read it. */
	{
		struct spool_msg *q = spool_msg_new(sp, &env, &e);
		struct err qe;
		int qres;

		CHECK(q != NULL);
		CHECK_INT(spool_msg_write(q, "y\r\n", 3, &e), 0);
		CHECK_INT(spool_msg_finish(q, &e), 0);
		spool_commit_batch(sp, &q, 1, &qres, &qe);
		CHECK_INT(qres, 0);
		CHECK(is_empty_dir(spool_tmp));	/* it took the recycled one */
		CHECK_INT(spool_delete(sp, spool_msg_id(q), &e), 0);
		CHECK(is_empty_dir(spool_tmp));
		spool_msg_free(q);
	}
	/* An abandoned pooled message leaves nothing behind. */
	for (int i = 0; i < 2; i++)
		spool_msg_free(m[i]);
	m[0] = spool_msg_new(sp, &env, &e);
	CHECK(m[0] != NULL);
	spool_msg_free(m[0]);
	CHECK(is_empty_dir(spool_tmp) && is_empty_dir(tmpd));
	/* Stopping the pool removes the files it keeps for reuse. */
	m[0] = spool_msg_new(sp, &env, &e);
	CHECK(m[0] != NULL && spool_msg_finish(m[0], &e) == 0);
	CHECK_INT(spool_msg_commit(m[0], &e), 0);
	CHECK_INT(spool_remove(sp, spool_msg_id(m[0]), &e), 0);
	spool_msg_free(m[0]);
	CHECK(!is_empty_dir(spool_tmp));
	spool_pool_stop(sp);
	CHECK(is_empty_dir(spool_tmp));
	envelope_clear(&env);
	spool_close(sp);
	event_base_free(base);
}

static void
test_climit(void)
{
	struct climit *cl = climit_new();
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct sockaddr_in6 b = { .sin6_family = AF_INET6 };

	a.sin_addr.s_addr = htonl(0x7f000001);
	b.sin6_addr.s6_addr[15] = 1;
	CHECK_INT(climit_add(cl, (struct sockaddr *)&a), 1);
	CHECK_INT(climit_add(cl, (struct sockaddr *)&a), 2);
	CHECK_INT(climit_add(cl, (struct sockaddr *)&b), 1);
	climit_del(cl, (struct sockaddr *)&a);
	CHECK_INT(climit_add(cl, (struct sockaddr *)&a), 2);
	climit_del(cl, (struct sockaddr *)&a);
	climit_del(cl, (struct sockaddr *)&a);
	CHECK_INT(climit_add(cl, (struct sockaddr *)&a), 1);
	climit_free(cl);
}

static void
test_backoff(void)
{
	CHECK_INT(sched_backoff(300, 3600, 1), 300);
	CHECK_INT(sched_backoff(300, 3600, 2), 600);
	CHECK_INT(sched_backoff(300, 3600, 4), 2400);
	CHECK_INT(sched_backoff(300, 3600, 5), 3600);
	CHECK_INT(sched_backoff(300, 3600, 500), 3600);
	CHECK_INT(sched_backoff(1, 2, 0), 1);
}

int
main(void)
{
	char tmpl[] = "/tmp/smtpgate-spool.XXXXXX";

	snprintf(dir, sizeof(dir), "%s", mkdtemp(tmpl));
	RUN(test_commit_load_remove);
	RUN(test_scan_skips_commit_in_progress);
	RUN(test_recovery);
	RUN(test_corrupt_file_fails_to_load);
	RUN(test_ids_unique);
	RUN(test_direct_batch);
	RUN(test_pool);
	RUN(test_climit);
	RUN(test_backoff);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	T_EXIT();
}
