/*
 * cmd_serve.c - `smtpgate serve`: the gateway in the foreground.
 * Layer: cmd. Owns the event loop, the listeners being (re)tried, the
 * signal handlers and the runtime snapshot in force.
 *
 * Start-up order (SPEC §4): configuration, spool opened and recovered
 * (queued mail scheduled), then listeners: systemd sockets as they are,
 * the rest bound with SO_REUSEADDR, a busy address retried once a second
 * for bind_retry while the others already serve. Only then privileges
 * are dropped.
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fts.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/fdlimit.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "net/listen.h"
#include "gate/config.h"
#include "gate/ctl.h"
#include "gate/runtime.h"
#include "gate/sched.h"
#include "gate/smtp_server.h"
#include "gate/spool.h"
#include "gate/stats.h"

#define SHUTDOWN_GRACE	10	/* seconds for transactions to finish */

struct pending_bind {
	char			*addr;
	bool			 is_submission;
	time_t			 deadline;
	struct pending_bind	*next;
};

struct serve {
	struct event_base	*base;
	struct cmd_opts		 opts;
	struct runtime		*rt;
	struct spool		*spool;
	struct sched		*sched;
	struct smtp_server	*server;
	struct ctl		*ctl;
	struct pending_bind	*pending;
	struct event		*bind_ev;
	bool			 is_privileged;	/* still root, to drop */
};

static void
queued(void *arg, const char *id)
{
	struct serve *sv = arg;

	stats.queue_size++;
	sched_enqueue(sv->sched, id);
}

/* The control socket's verbs (gate/ctl.h). */
static int
control(void *arg, const char *verb, const char *param, struct buf *out)
{
	struct serve *sv = arg;
	struct err e;

	err_clear(&e);
	if (strcmp(verb, "status") == 0) {
		stats_format(out);
		return 0;
	}
	if (strcmp(verb, "flush") == 0) {
		sched_flush(sv->sched);
		return 0;
	}
	if (param == NULL || !spool_id_valid(param)) {
		buf_printf(out, "%s needs a queue id", verb);
		return -1;
	}
	if (strcmp(verb, "enqueue") == 0) {
		queued(sv, param);
		return 0;
	}
	if ((strcmp(verb, "hold") == 0 &&
	    sched_hold(sv->sched, param, true, &e) == 0) ||
	    (strcmp(verb, "release") == 0 &&
	    sched_hold(sv->sched, param, false, &e) == 0) ||
	    (strcmp(verb, "delete") == 0 &&
	    sched_delete(sv->sched, param, &e) == 0))
		return 0;
	buf_puts(out, e.msg[0] ? (e.errnum == ENOENT ? "no such message in "
	    "the queue" : e.msg) : "unknown command");
	return -1;
}

static void
recovered(void *arg, const char *id)
{
	sched_enqueue(((struct serve *)arg)->sched, id);
}

/* Makes dir and everything below it owned by uid:gid if it is not yet. */
static void
chown_tree(const char *dir, uid_t uid, gid_t gid)
{
	char *paths[] = { (char *)dir, NULL };
	struct stat st;
	FTS *fts;
	FTSENT *ent;

	if (stat(dir, &st) == -1 || (st.st_uid == uid && st.st_gid == gid))
		return;
	fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
	if (fts == NULL)
		return;
	while ((ent = fts_read(fts)) != NULL) {
		if (ent->fts_info == FTS_DP)
			continue;
		if (lchown(ent->fts_accpath, uid, gid) == -1)
			log_warn("chown %s", ent->fts_path);
	}
	fts_close(fts);
}

static void
drop_privileges(struct serve *sv)
{
	const struct config *c = sv->rt->cfg;
	struct passwd *pw;

	if (!sv->is_privileged)
		return;
	sv->is_privileged = false;
	pw = getpwnam(c->user);
	if (pw == NULL)
		fatalx(EXIT_CONFIG, "user '%s' (config key user) does not "
		    "exist: create it (scripts/setup.sh does) or set user = "
		    "root", c->user);
	chown_tree(c->spool_dir, pw->pw_uid, pw->pw_gid);
	if (fsio_mkdirs(c->postoffice_dir, 0700, NULL) == 0)
		chown_tree(c->postoffice_dir, pw->pw_uid, pw->pw_gid);
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		fatal(EXIT_OSERR, "cannot drop privileges to user %s",
		    c->user);
	if (setuid(0) != -1)
		fatalx(EXIT_OSERR, "privileges were not dropped");
	if (access(c->spool_dir, R_OK | W_OK | X_OK) == -1)
		fatal(EXIT_CONFIG, "user %s cannot use spool_dir %s (is every "
		    "parent directory searchable by it?)", c->user,
		    c->spool_dir);
	if (access(c->postoffice_dir, R_OK | W_OK | X_OK) == -1)
		fatal(EXIT_CONFIG, "user %s cannot use postoffice_dir %s (is "
		    "every parent directory searchable by it?)", c->user,
		    c->postoffice_dir);
	log_info("running as user %s (uid %d)", c->user, (int)pw->pw_uid);
}

static void
serve_fd(struct serve *sv, int fd, bool is_submission)
{
	char name[128];
	struct err e;

	err_clear(&e);
	if (listen_fd_name(fd, name, sizeof(name)) == NULL)
		snprintf(name, sizeof(name), "fd %d", fd);
	if (smtp_server_listen(sv->server, fd, is_submission, &e) == -1)
		fatalx(EXIT_TEMPFAIL, "cannot serve %s: %s", name, e.msg);
	log_info("listening on %s%s", name, is_submission ?
	    " (submission)" : "");
}

/* One bind attempt for every pending address; fatal past the deadline. */
static void
try_pending(struct serve *sv)
{
	struct pending_bind **pp = &sv->pending, *p;
	time_t now = time(NULL);

	while ((p = *pp) != NULL) {
		struct err e;
		int fd;

		err_clear(&e);
		fd = listen_try_bind(p->addr, &e);
		if (fd != -1) {
			serve_fd(sv, fd, p->is_submission);
			*pp = p->next;
			free(p->addr);
			free(p);
			continue;
		}
		if (e.errnum == EADDRINUSE) {
			struct sockaddr_storage ss;
			socklen_t len;
			char who[200], holder[256] = "";

			if (listen_parse_addr(p->addr, &ss, &len, NULL) == 0 &&
			    listen_port_holder((struct sockaddr *)&ss, who,
			    sizeof(who)) == 0)
				snprintf(holder, sizeof(holder),
				    " (held by %s)", who);
			if (now >= p->deadline)
				fatalx(EXIT_TEMPFAIL, "fatal: cannot listen on "
				    "%s%s after retrying for bind_retry",
				    e.msg, holder);
			log_warnx("listen %s%s; retrying for %llds more",
			    e.msg, holder, (long long)(p->deadline - now));
			pp = &p->next;
			continue;
		}
		fatalx(EXIT_TEMPFAIL, "fatal: cannot listen on %s", e.msg);
	}
	if (sv->pending == NULL) {
		struct err pe;

		if (sv->bind_ev)
			event_del(sv->bind_ev);
		drop_privileges(sv);
		/* After the drop: its files are made as the user that links
		 * them (protected_hardlinks refuses another's). */
		err_clear(&pe);
		if (spool_pool_start(sv->spool, sv->base, &pe) == -1)
			log_warnx("%s: files are made on demand", pe.msg);
		err_clear(&pe);
		if (spool_journal_start(sv->spool, sv->base, &pe) == -1)
			log_warnx("%s: direct deliveries sync their own "
			    "files", pe.msg);
	}
}

static void
bind_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	try_pending((struct serve *)arg);
}

/* True when the bound socket fd has the address spec (parsed). */
static bool
fd_is_addr(int fd, const char *spec)
{
	struct sockaddr_storage a, b;
	socklen_t alen = sizeof(a), blen;

	if (getsockname(fd, (struct sockaddr *)&a, &alen) == -1 ||
	    listen_parse_addr(spec, &b, &blen, NULL) == -1)
		return false;
	return alen == blen && memcmp(&a, &b, alen) == 0;
}

static void
add_pending(struct serve *sv, const struct strlist *addrs, bool is_sub,
    int nfds)
{
	time_t deadline = time(NULL) + sv->rt->cfg->bind_retry;

	for (size_t i = 0; i < addrs->len; i++) {
		struct pending_bind *p;
		bool taken = false;

		/* An address systemd handed over is served as it is. */
		for (int fd = 3; fd < 3 + nfds; fd++)
			taken |= fd_is_addr(fd, addrs->v[i]);
		if (taken)
			continue;
		p = xcalloc(1, sizeof(*p));
		p->addr = xstrdup(addrs->v[i]);
		p->is_submission = is_sub;
		p->deadline = deadline;
		p->next = sv->pending;
		sv->pending = p;
	}
}

/*
 * Sockets handed over by systemd (LISTEN_FDS) are used as they are, in
 * place of `listen`: a socket whose address is in submission_listen is a
 * submission listener, any other an inbound one. Submission addresses
 * systemd did not hand over are still bound here.
 */
static void
open_listeners(struct serve *sv)
{
	const struct config *c = sv->rt->cfg;
	int n = listen_systemd_fds();

	if (n == -1)
		log_warnx("LISTEN_FDS/LISTEN_PID set but unusable: ignoring "
		    "socket activation");
	for (int i = 0; i < n; i++) {
		bool is_sub = false;

		for (size_t j = 0; j < c->submission_listen.len; j++)
			is_sub |= fd_is_addr(3 + i, c->submission_listen.v[j]);
		serve_fd(sv, 3 + i, is_sub);
	}
	if (n <= 0)
		add_pending(sv, &c->listen, false, 0);
	add_pending(sv, &c->submission_listen, true, n > 0 ? n : 0);
	sv->bind_ev = event_new(sv->base, -1, EV_PERSIST, bind_retry_cb, sv);
	try_pending(sv);
	if (sv->pending)
		event_add(sv->bind_ev, &(struct timeval){ 1, 0 });
}

static void
stopped(void *arg)
{
	struct serve *sv = arg;

	log_info("stopped; queue intact in %s", spool_path(sv->spool));
	event_base_loopexit(sv->base, NULL);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct serve *sv = arg;

	log_info("received %s: stopping (grace period %ds)",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT", SHUTDOWN_GRACE);
	if (sv->bind_ev)
		event_del(sv->bind_ev);
	smtp_server_shutdown(sv->server, SHUTDOWN_GRACE, stopped, sv);
}

static bool
strlist_equal(const struct strlist *a, const struct strlist *b)
{
	if (a->len != b->len)
		return false;
	for (size_t i = 0; i < a->len; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct serve *sv = arg;
	struct runtime *rt;
	struct buf errors;

	buf_init(&errors);
	rt = runtime_load(sv->opts.conf_file, sv->opts.overrides,
	    sv->opts.noverrides, &errors);
	if (rt == NULL) {
		char *save = NULL;

		for (char *l = strtok_r(errors.data, "\n", &save); l;
		    l = strtok_r(NULL, "\n", &save))
			log_warnx("reload failed: %s", l);
		log_warnx("reload failed: keeping the previous configuration");
		buf_clear(&errors);
		return;
	}
	buf_clear(&errors);
	if (!strlist_equal(&rt->cfg->listen, &sv->rt->cfg->listen) ||
	    !strlist_equal(&rt->cfg->submission_listen,
	    &sv->rt->cfg->submission_listen) ||
	    strcmp(rt->cfg->spool_dir, sv->rt->cfg->spool_dir) != 0 ||
	    strlist_equal(&rt->cfg->dns_servers, &sv->rt->cfg->dns_servers) ==
	    false || strcmp(rt->cfg->user, sv->rt->cfg->user) != 0 ||
	    rt->cfg->log != sv->rt->cfg->log)
		log_warnx("reload: changes to listen, submission_listen, "
		    "spool_dir, dns_servers, user or log take effect at the "
		    "next restart");
	smtp_server_set_runtime(sv->server, rt);
	sched_set_runtime(sv->sched, rt);
	runtime_unref(sv->rt);
	sv->rt = rt;
	log_info("reload: configuration %s and address map reloaded",
	    sv->opts.conf_file ? sv->opts.conf_file : "(defaults)");
}

int
cmd_serve(int argc, char **argv)
{
	struct serve sv;
	struct buf errors;
	struct event *ev_term, *ev_int, *ev_hup;
	struct event_config *ecfg;
	struct err e;
	long n;

	memset(&sv, 0, sizeof(sv));
	if (cmd_opts_parse(argc, argv, &sv.opts) == -1)
		return EXIT_USAGE;
	if (sv.opts.nargs > 0) {
		fprintf(stderr, "usage: smtpgate serve [-c FILE] "
		    "[-o KEY=VALUE]...\n");
		cmd_opts_clear(&sv.opts);
		return EXIT_USAGE;
	}
	buf_init(&errors);
	sv.rt = runtime_load(sv.opts.conf_file, sv.opts.overrides,
	    sv.opts.noverrides, &errors);
	if (sv.rt == NULL) {
		fputs(errors.data ? errors.data : "configuration error\n",
		    stderr);
		buf_clear(&errors);
		cmd_opts_clear(&sv.opts);
		return EXIT_CONFIG;
	}
	buf_clear(&errors);
	log_init(sv.rt->cfg->log, "smtpgate");
	signal(SIGPIPE, SIG_IGN);
	{
		unsigned long was, now = fdlimit_raise(&was);

		if (now != was)
			log_info("open files limit raised from %lu to %lu",
			    was, now);
	}
	sv.is_privileged = geteuid() == 0 && sv.rt->cfg->user[0] != '\0' &&
	    strcmp(sv.rt->cfg->user, "root") != 0;
	umask(077);

	evthread_use_pthreads();
	ecfg = event_config_new();
	/* epoll changes are gathered and applied once per loop turn */
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	sv.base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (sv.base == NULL || event_base_priority_init(sv.base, 2) == -1)
		fatalx(EXIT_OSERR, "cannot create the event loop");

	/* 1. The spool, recovered before any connection is accepted. */
	err_clear(&e);
	sv.spool = spool_open(sv.rt->cfg->spool_dir, &e);
	if (sv.spool == NULL)
		fatalx(EXIT_TEMPFAIL, "fatal: spool_dir: %s", e.msg);
	if (fsio_mkdirs(sv.rt->cfg->postoffice_dir, 0700, &e) == -1)
		fatalx(EXIT_TEMPFAIL, "fatal: postoffice_dir: %s", e.msg);
	sv.sched = sched_new(sv.base, sv.spool, sv.rt);
	n = spool_recover(sv.spool, recovered, &sv, &e);
	if (n == -1)
		fatalx(EXIT_TEMPFAIL, "fatal: spool recovery: %s", e.msg);
	/* Mailbox files committed by the journal and not yet synced at the
	 * last stop are put back now, before any connection. */
	{
		bool fatal;

		if (spool_journal_open(sv.spool, sv.rt->cfg->postoffice_dir,
		    &fatal, &e) == -1) {
			if (fatal)
				fatalx(EXIT_TEMPFAIL, "fatal: %s", e.msg);
			log_warnx("%s: direct deliveries sync their own "
			    "files", e.msg);
		}
	}
	log_info("spool %s recovered: %ld message(s) queued",
	    sv.rt->cfg->spool_dir, n);
	stats.queue_size = (unsigned long long)n;
	stats.started = time(NULL);

	/* 2. Signals, then listeners. */
	sv.server = smtp_server_new(sv.base, sv.spool, sv.rt, queued, &sv);
	ev_term = evsignal_new(sv.base, SIGTERM, on_stop, &sv);
	ev_int = evsignal_new(sv.base, SIGINT, on_stop, &sv);
	ev_hup = evsignal_new(sv.base, SIGHUP, on_reload, &sv);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	{
		char *path = xasprintf("%s/ctl.sock", sv.rt->cfg->spool_dir);

		sv.ctl = ctl_new(sv.base, path, control, &sv, &e);
		if (sv.ctl == NULL)
			fatalx(EXIT_TEMPFAIL, "fatal: %s", e.msg);
		free(path);
	}
	open_listeners(&sv);
	log_info("smtpgate ready: hostname %s, spool %s, postoffice %s",
	    sv.rt->cfg->hostname, sv.rt->cfg->spool_dir,
	    sv.rt->cfg->postoffice_dir);

	event_base_dispatch(sv.base);

	while (sv.pending) {
		struct pending_bind *p = sv.pending;
		sv.pending = p->next;
		free(p->addr);
		free(p);
	}
	if (sv.bind_ev)
		event_free(sv.bind_ev);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	ctl_free(sv.ctl);
	smtp_server_free(sv.server);
	sched_free(sv.sched);
	spool_close(sv.spool);
	runtime_unref(sv.rt);
	event_base_free(sv.base);
	cmd_opts_clear(&sv.opts);
	return 0;	/* failures exit through fatal() with their code */
}
