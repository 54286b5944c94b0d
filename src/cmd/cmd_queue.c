/*
 * cmd_queue.c - `smtpgate queue list|show|flush|hold|release|delete`,
 * `mailq`, and `smtpgate status`. Layer: cmd.
 *
 * Reading the queue is done straight from the spool (files are replaced
 * atomically, so a reader never sees half a record). Changing it goes
 * through the running server's control socket, so that the server's
 * schedule stays right; with no server running, hold/release/delete edit
 * the spool directly (nothing else is touching it then).
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/envelope.h"
#include "gate/config.h"
#include "gate/ctl.h"
#include "gate/spool.h"

#define CTL_TIMEOUT	30

struct queue_cmd {
	struct config	*cfg;
	struct spool	*spool;
	char		*ctl_path;
	bool		 is_json;
	bool		 is_first;
	size_t		 count;
	unsigned long long bytes;
};

static char *
fmt_time(long long t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0)
		return str_copy(out, "-", size), out;
	gmtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
	return out;
}

/* A JSON string literal. */
static void
json_str(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;
	    p++) {
		if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			buf_printf(b, "\\u%04x", *p);
		else
			buf_putc(b, (char)*p);
	}
	buf_putc(b, '"');
}

static void
list_json(struct queue_cmd *q, const char *id, const struct envelope *env)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, q->is_first ? "\n  {\"id\": " : ",\n  {\"id\": ");
	json_str(&b, id);
	buf_printf(&b, ", \"size\": %llu, \"arrival\": %.6f, \"sender\": ",
	    env->data_len, env->arrival);
	json_str(&b, env->sender);
	buf_printf(&b, ", \"held\": %s, \"recipients\": [",
	    env->is_held ? "true" : "false");
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];

		buf_puts(&b, i ? ", {\"address\": " : "{\"address\": ");
		json_str(&b, r->kind == RCPT_REMOTE ? r->target : r->orig);
		buf_puts(&b, ", \"original\": ");
		json_str(&b, r->orig);
		buf_printf(&b, ", \"route\": \"%s\", \"target\": ",
		    r->kind == RCPT_LOCAL ? "local" : "remote");
		json_str(&b, r->target);
		buf_printf(&b, ", \"state\": \"%s\", \"attempts\": %u, "
		    "\"last_try\": %lld, \"next_try\": %lld, \"last_error\": ",
		    rcpt_status_names[r->status], r->attempts, r->last_try,
		    r->next_try);
		if (r->reply && r->status != RCPT_SENT)
			json_str(&b, r->reply);
		else
			buf_puts(&b, "null");
		buf_putc(&b, '}');
	}
	buf_puts(&b, "]}");
	fputs(b.data, stdout);
	buf_clear(&b);
}

static void
list_text(struct queue_cmd *q, const char *id, const struct envelope *env)
{
	char when[32];

	if (q->is_first)
		printf("%-17s %10s  %-19s  %s\n", "ID", "SIZE", "ARRIVAL (UTC)",
		    "SENDER");
	printf("%-17s %10llu  %-19s  <%s>%s\n", id, env->data_len,
	    fmt_time((long long)env->arrival, when, sizeof(when)), env->sender,
	    env->is_held ? "  (held)" : "");
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];

		printf("    %-9s <%s>", rcpt_status_names[r->status],
		    r->kind == RCPT_REMOTE ? r->target : r->orig);
		if (r->kind == RCPT_LOCAL)
			printf(" mailbox %s", r->target);
		if (r->status == RCPT_DEFERRED)
			printf(" next try %s",
			    fmt_time(r->next_try, when, sizeof(when)));
		if (r->reply && r->status != RCPT_SENT)
			printf(" (%s)", r->reply);
		putchar('\n');
	}
}

static void
list_one(void *arg, const char *id)
{
	struct queue_cmd *q = arg;
	struct envelope env;
	struct err e;

	envelope_init(&env);
	err_clear(&e);
	if (spool_load(q->spool, id, &env, NULL, NULL, &e) == -1) {
		/* Delivered meanwhile: not an error. */
		if (e.errnum != ENOENT)
			fprintf(stderr, "smtpgate queue: %s\n", e.msg);
		envelope_clear(&env);
		return;
	}
	if (q->is_json)
		list_json(q, id, &env);
	else
		list_text(q, id, &env);
	q->is_first = false;
	q->count++;
	q->bytes += env.data_len;
	envelope_clear(&env);
}

static int
queue_list(struct queue_cmd *q)
{
	struct err e;

	q->is_first = true;
	err_clear(&e);
	if (q->is_json)
		fputs("[", stdout);
	if (spool_scan(q->spool, list_one, q, &e) == -1) {
		fprintf(stderr, "smtpgate queue: %s\n", e.msg);
		return EXIT_IOERR;
	}
	if (q->is_json)
		fputs(q->count ? "\n]\n" : "]\n", stdout);
	else if (q->count == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %zu message(s), %llu bytes\n", q->count, q->bytes);
	return 0;
}

/* Prints the header section of the message (up to 64 KiB). */
static void
show_headers(int fd, off_t off, unsigned long long len)
{
	char buf[65536];
	ssize_t n = pread(fd, buf, len < sizeof(buf) - 1 ? (size_t)len :
	    sizeof(buf) - 1, off);
	char *end;

	if (n <= 0)
		return;
	buf[n] = '\0';
	end = strstr(buf, "\r\n\r\n");
	if (end)
		end[2] = '\0';
	printf("\nHeaders:\n");
	for (char *p = buf; *p; p++)
		if (*p != '\r')
			putchar(*p);
}

static void
show_route(const struct config *c, const struct rcpt *r)
{
	const char *at;

	if (r->kind == RCPT_LOCAL) {
		if (c->lmtp_host[0])
			printf("      route: local mailbox %s, by LMTP to %s\n",
			    r->target, c->lmtp_host);
		else
			printf("      route: local mailbox %s, Maildir %s/%s "
			    "(local domain%s)\n", r->target, c->postoffice_dir,
			    r->target, c->address_map[0] ?
			    ", through address_map" : "");
		return;
	}
	at = strrchr(r->target, '@');
	if (c->relay_host[0])
		printf("      route: remote, to the mail routing host %s "
		    "(relay_host)\n", c->relay_host);
	else
		printf("      route: remote, to the MX hosts of %s (no "
		    "relay_host)\n", at ? at + 1 : r->target);
}

static int
queue_show(struct queue_cmd *q, const char *id)
{
	const struct config *c = q->cfg;
	struct envelope env;
	struct err e;
	char when[32];
	off_t off;
	int fd;
	long long arrival;

	if (!spool_id_valid(id)) {
		fprintf(stderr, "smtpgate queue show: '%s' is not a queue id\n",
		    id);
		return EXIT_USAGE;
	}
	envelope_init(&env);
	err_clear(&e);
	if (spool_load(q->spool, id, &env, &fd, &off, &e) == -1) {
		fprintf(stderr, "smtpgate queue show: %s\n", e.errnum == ENOENT
		    ? "no such message in the queue" : e.msg);
		envelope_clear(&env);
		return EXIT_DATAERR;
	}
	arrival = (long long)env.arrival;
	printf("Queue id:   %s%s\n", id, env.is_held ? " (held)" : "");
	printf("Arrival:    %s UTC\n", fmt_time(arrival, when, sizeof(when)));
	printf("Size:       %llu bytes\n", env.data_len);
	printf("Sender:     <%s>\n", env.sender);
	printf("Client:     %s (helo %s, %s%s%s)\n", env.client_name ?
	    env.client_name : "local", env.helo ? env.helo : "-",
	    env.proto ? env.proto : "-", env.auth_user ? ", user " : "",
	    env.auth_user ? env.auth_user : "");
	if (env.body || env.smtputf8)
		printf("Body:       %s%s\n", env.body ? env.body : "",
		    env.smtputf8 ? " SMTPUTF8" : "");
	if (c->delay_warning > 0)
		printf("Warn at:    %s UTC (delay_warning)\n", fmt_time(arrival +
		    c->delay_warning, when, sizeof(when)));
	printf("Bounce at:  %s UTC (queue_lifetime)\n", fmt_time(arrival +
	    c->queue_lifetime, when, sizeof(when)));
	printf("\nRecipients:\n");
	for (size_t i = 0; i < env.nrcpts; i++) {
		const struct rcpt *r = &env.rcpts[i];

		printf("  <%s>%s%s%s: %s\n", r->kind == RCPT_REMOTE ?
		    r->target : r->orig, r->kind == RCPT_REMOTE &&
		    strcmp(r->orig, r->target) ? " (for <" : "",
		    r->kind == RCPT_REMOTE && strcmp(r->orig, r->target) ?
		    r->orig : "", r->kind == RCPT_REMOTE &&
		    strcmp(r->orig, r->target) ? ">)" : "",
		    rcpt_status_names[r->status]);
		show_route(c, r);
		printf("      attempts: %u", r->attempts);
		if (r->last_try)
			printf(", last %s UTC", fmt_time(r->last_try, when,
			    sizeof(when)));
		putchar('\n');
		if (r->reply)
			printf("      last reply: %s\n", r->reply);
		if (r->status == RCPT_DEFERRED)
			printf("      next retry: %s UTC\n", fmt_time(r->next_try,
			    when, sizeof(when)));
		else if (r->status == RCPT_PENDING)
			printf("      next retry: %s\n", env.is_held ?
			    "never while held" : "as soon as possible");
	}
	show_headers(fd, off, env.data_len);
	(void)close(fd);
	envelope_clear(&env);
	return 0;
}

/* hold/release/delete/flush: through the server, else on the spool. */
static int
queue_change(struct queue_cmd *q, const char *verb, const char *id)
{
	struct envelope env;
	struct buf out;
	struct err e;
	int rc;

	if (id && !spool_id_valid(id)) {
		fprintf(stderr, "smtpgate queue %s: '%s' is not a queue id\n",
		    verb, id);
		return EXIT_USAGE;
	}
	buf_init(&out);
	err_clear(&e);
	rc = ctl_request(q->ctl_path, verb, id, CTL_TIMEOUT, &out, &e);
	buf_clear(&out);
	if (rc == 0)
		return 0;
	if (rc == -1) {
		fprintf(stderr, "smtpgate queue %s: %s\n", verb, e.msg);
		return EXIT_DATAERR;
	}
	if (id == NULL) {
		fprintf(stderr, "smtpgate queue %s: %s; queued mail is tried "
		    "when the server starts\n", verb, e.msg);
		return EXIT_TEMPFAIL;
	}
	/* No server: nothing else touches the spool, change it here. */
	envelope_init(&env);
	err_clear(&e);
	rc = spool_load(q->spool, id, &env, NULL, NULL, &e);
	if (rc == 0 && strcmp(verb, "delete") == 0)
		rc = spool_remove(q->spool, id, &e);
	else if (rc == 0) {
		env.is_held = strcmp(verb, "hold") == 0;
		rc = spool_save_state(q->spool, id, &env, &e);
	}
	envelope_clear(&env);
	if (rc == -1) {
		fprintf(stderr, "smtpgate queue %s: %s\n", verb,
		    e.errnum == ENOENT ? "no such message in the queue" : e.msg);
		return EXIT_DATAERR;
	}
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: smtpgate queue [-c FILE] list [--json] | "
	    "show ID | flush | hold ID | release ID | delete ID\n");
	return EXIT_USAGE;
}

static int
open_queue(struct queue_cmd *q, const struct cmd_opts *o)
{
	struct err e;

	memset(q, 0, sizeof(*q));
	if ((q->cfg = cmd_load_config(o)) == NULL)
		return EXIT_CONFIG;
	err_clear(&e);
	q->spool = spool_open(q->cfg->spool_dir, &e);
	if (q->spool == NULL) {
		fprintf(stderr, "smtpgate: %s\n", e.msg);
		config_unref(q->cfg);
		return EXIT_IOERR;
	}
	q->ctl_path = xasprintf("%s/ctl.sock", q->cfg->spool_dir);
	return 0;
}

static void
close_queue(struct queue_cmd *q)
{
	spool_close(q->spool);
	config_unref(q->cfg);
	free(q->ctl_path);
}

int
cmd_queue(int argc, char **argv)
{
	struct cmd_opts o;
	struct queue_cmd q;
	const char *verb;
	int rc;

	if (cmd_opts_parse(argc, argv, &o) == -1)
		return EXIT_USAGE;
	verb = o.nargs ? o.args[0] : "list";
	if ((strcmp(verb, "list") == 0 && o.nargs <= 2 && (o.nargs < 2 ||
	    strcmp(o.args[1], "--json") == 0)) ||
	    (strcmp(verb, "flush") == 0 && o.nargs == 1) ||
	    ((strcmp(verb, "show") == 0 || strcmp(verb, "hold") == 0 ||
	    strcmp(verb, "release") == 0 || strcmp(verb, "delete") == 0) &&
	    o.nargs == 2))
		rc = open_queue(&q, &o);
	else {
		cmd_opts_clear(&o);
		return usage();
	}
	if (rc != 0) {
		cmd_opts_clear(&o);
		return rc;
	}
	q.is_json = o.nargs == 2 && strcmp(o.args[1], "--json") == 0;
	if (strcmp(verb, "list") == 0)
		rc = queue_list(&q);
	else if (strcmp(verb, "show") == 0)
		rc = queue_show(&q, o.args[1]);
	else
		rc = queue_change(&q, verb, o.nargs == 2 ? o.args[1] : NULL);
	close_queue(&q);
	cmd_opts_clear(&o);
	return rc;
}

int
cmd_status(int argc, char **argv)
{
	struct cmd_opts o;
	struct queue_cmd q;
	struct buf out;
	struct err e;
	int rc;

	if (cmd_opts_parse(argc, argv, &o) == -1)
		return EXIT_USAGE;
	if (o.nargs != 0) {
		cmd_opts_clear(&o);
		fprintf(stderr, "usage: smtpgate status [-c FILE]\n");
		return EXIT_USAGE;
	}
	if ((rc = open_queue(&q, &o)) != 0) {
		cmd_opts_clear(&o);
		return rc;
	}
	buf_init(&out);
	err_clear(&e);
	rc = ctl_request(q.ctl_path, "status", NULL, CTL_TIMEOUT, &out, &e);
	if (rc == 0)
		fputs(out.data ? out.data : "", stdout);
	else
		fprintf(stderr, "smtpgate status: %s\n", e.msg);
	buf_clear(&out);
	close_queue(&q);
	cmd_opts_clear(&o);
	return rc == 0 ? 0 : EXIT_TEMPFAIL;
}
