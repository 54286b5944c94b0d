/*
 * cmd_sendmail.c - `smtpgate sendmail` (and the binary called as
 * sendmail): sendmail-compatible local submission. Layer: cmd.
 *
 * Reads the message on stdin, routes each recipient as the server would
 * for a trusted local client, and commits it durably into the spool
 * itself, so it works with no server running. A running server is told
 * through the control socket and delivers at once; otherwise the message
 * is picked up at start. Nothing half-written is ever queued: the spool's
 * single commit point guarantees it.
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/addr.h"
#include "mail/envelope.h"
#include "mail/header.h"
#include "gate/addrmap.h"
#include "gate/config.h"
#include "gate/ctl.h"
#include "gate/route.h"
#include "gate/runtime.h"
#include "gate/spool.h"

#define EXIT_NOUSER	67	/* EX_NOUSER */
#define HEADER_MAX	(1024 * 1024)

struct sendmail {
	struct cmd_opts	 opts;
	bool		 extract;	/* -t */
	bool		 ignore_dots;	/* -i, -oi */
	const char	*sender;	/* -f */
	const char	*full_name;	/* -F */
	char		**rcpts;	/* arguments */
	size_t		 nrcpts;
	struct buf	 header;	/* header section, CRLF lines */
	struct buf	 body;		/* first body bytes read with it */
	bool		 is_8bit;
	bool		 at_eof;
};

/* Options of sendmail(1) that take an argument and are ignored. */
static bool
takes_ignored_arg(char c)
{
	return strchr("BNRVXLhCqUO", c) != NULL;
}

static int
parse_args(int argc, char **argv, struct sendmail *sm)
{
	size_t nover = 0;
	int i;

	memset(sm, 0, sizeof(*sm));
	sm->opts.overrides = xcalloc((size_t)argc + 1, sizeof(char *));
	sm->rcpts = xcalloc((size_t)argc + 1, sizeof(char *));
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];
		const char *val = NULL;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		switch (a[1]) {
		case 't':
			sm->extract = true;
			continue;
		case 'i':
			sm->ignore_dots = true;
			continue;
		case 'c': case 'f': case 'F':
			val = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (val == NULL) {
				fprintf(stderr, "sendmail: option -%c needs an "
				    "argument\n", a[1]);
				return -1;
			}
			if (a[1] == 'c')
				sm->opts.conf_file = val;
			else if (a[1] == 'f')
				sm->sender = val;
			else
				sm->full_name = val;
			continue;
		case 'o':
			/* -o KEY=VALUE (smtpgate), -oi, -oem, -odb, ... */
			if (a[2] == '\0' && i + 1 < argc &&
			    strchr(argv[i + 1], '=')) {
				sm->opts.overrides[nover++] = argv[++i];
				sm->opts.noverrides = nover;
			} else if (strcmp(a, "-oi") == 0)
				sm->ignore_dots = true;
			continue;
		case 'b':
			if (strcmp(a, "-bm") == 0 || a[2] == '\0')
				continue;
			fprintf(stderr, "sendmail: mode %s is not supported "
			    "(only -bm; for the queue use mailq)\n", a);
			return -1;
		default:
			if (takes_ignored_arg(a[1]) && a[2] == '\0')
				i++;
			continue;	/* accepted and ignored, as Postfix */
		}
	}
	for (; i < argc; i++)
		sm->rcpts[sm->nrcpts++] = argv[i];
	return 0;
}

/*
 * Reads one line of stdin (without its LF, CR kept out) into line.
 * Returns 1 for a line, 0 at EOF.
 */
static int
read_line(struct buf *line, bool *had_newline)
{
	int c;

	buf_reset(line);
	*had_newline = false;
	while ((c = getchar()) != EOF) {
		if (c == '\n') {
			*had_newline = true;
			break;
		}
		buf_putc(line, (char)c);
	}
	if (c == EOF && line->len == 0)
		return 0;
	if (line->len && line->data[line->len - 1] == '\r')
		line->data[--line->len] = '\0';
	return 1;
}

/* Lines end with CRLF in the spool, whatever the program wrote. */
static void
put_line(struct buf *out, const struct buf *line)
{
	buf_append(out, line->data ? line->data : "", line->len);
	buf_puts(out, "\r\n");
}

static bool
has_8bit(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return true;
	return false;
}

/* Reads the header section (up to the empty line) into sm->header. */
static int
read_header(struct sendmail *sm)
{
	struct buf line;
	bool nl;

	buf_init(&line);
	while (read_line(&line, &nl) == 1) {
		if (!sm->ignore_dots && line.len == 1 && line.data[0] == '.') {
			sm->at_eof = true;
			break;
		}
		if (line.len == 0) {
			buf_puts(&sm->body, "\r\n");
			break;
		}
		/* A first line that is no header starts the body. */
		if (!(line.data[0] == ' ' || line.data[0] == '\t') &&
		    strchr(line.data, ':') == NULL) {
			buf_puts(&sm->body, "\r\n");
			put_line(&sm->body, &line);
			break;
		}
		put_line(&sm->header, &line);
		if (sm->header.len > HEADER_MAX) {
			buf_clear(&line);
			fprintf(stderr, "sendmail: header section larger than "
			    "%d bytes\n", HEADER_MAX);
			return -1;
		}
	}
	if (feof(stdin))
		sm->at_eof = true;
	sm->is_8bit = has_8bit(&sm->header) || has_8bit(&sm->body);
	buf_clear(&line);
	return 0;
}

/* True when the header section h has a field called name. */
static bool
has_field(const struct buf *h, const char *name)
{
	size_t n = strlen(name);
	const char *p = h->data;

	while (p && *p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
			return true;
		p = strstr(p, "\r\n");
		p = p ? p + 2 : NULL;
	}
	return false;
}

/*
 * Calls fn for each address in the To/Cc/Bcc fields of h and removes the
 * Bcc fields (they must not be sent). Addresses are taken from "<...>"
 * or from the bare word list; group names and comments are skipped.
 */
static void
extract_rcpts(struct buf *h, void (*fn)(void *, const char *), void *arg)
{
	struct buf kept, field;
	const char *p = h->data ? h->data : "";

	buf_init(&kept);
	buf_init(&field);
	while (*p) {
		const char *end = p;
		bool is_to, is_bcc;

		/* One field with its continuation lines. */
		do {
			end = strstr(end, "\r\n");
			end = end ? end + 2 : p + strlen(p);
		} while (*end == ' ' || *end == '\t');
		is_bcc = strncasecmp(p, "bcc:", 4) == 0;
		is_to = is_bcc || strncasecmp(p, "to:", 3) == 0 ||
		    strncasecmp(p, "cc:", 3) == 0;
		if (!is_bcc)
			buf_append(&kept, p, (size_t)(end - p));
		if (is_to) {
			const char *v = strchr(p, ':') + 1;
			bool in_quote = false;
			int depth = 0;

			buf_reset(&field);
			/* Unfold, drop comments and quoted display names. */
			for (; v < end; v++) {
				if (*v == '"' && depth == 0)
					in_quote = !in_quote;
				else if (!in_quote && *v == '(')
					depth++;
				else if (!in_quote && *v == ')' && depth)
					depth--;
				else if (!in_quote && depth == 0 &&
				    *v != '\r' && *v != '\n')
					buf_putc(&field, *v);
			}
			for (char *save = NULL, *item = strtok_r(field.data ?
			    field.data : (char *)"", ",;", &save); item;
			    item = strtok_r(NULL, ",;", &save)) {
				char *lt = strchr(item, '<'), *gt, *colon;

				if (lt && (gt = strchr(lt, '>'))) {
					*gt = '\0';
					item = lt + 1;
				} else if ((colon = strchr(item, ':')))
					item = colon + 1;	/* group */
				str_trim(item);
				if (*item)
					fn(arg, item);
			}
		}
		p = end;
	}
	buf_clear(&field);
	buf_clear(h);
	*h = kept;
}

struct rcpt_ctx {
	struct sendmail		*sm;
	const struct runtime	*rt;
	struct envelope		*env;
	int			 rc;
};

static void
add_rcpt(void *arg, const char *text)
{
	struct rcpt_ctx *rc = arg;
	const struct config *c = rc->rt->cfg;
	char full[ADDR_MAX + 2], rcpt[ADDR_MAX + 1];
	struct addr a;
	struct err e;

	if (rc->rc != 0)
		return;
	/* A bare local part is a local user (first local domain). */
	if (strchr(text, '@') == NULL)
		snprintf(full, sizeof(full), "%s@%s", text,
		    c->local_domains.v[0]);
	else
		str_copy(full, text, sizeof(full));
	err_clear(&e);
	if (addr_parse_mailbox(full, ADDR_ALLOW_UTF8, &a, &e) == -1) {
		fprintf(stderr, "sendmail: bad recipient address '%s': %s\n",
		    text, e.msg);
		rc->rc = EXIT_DATAERR;
		return;
	}
	if (a.has_utf8)
		rc->env->smtputf8 = true;
	if (route_rcpt(rc->rt, &a, true, NULL, NULL, rc->env, rcpt, &e) !=
	    ROUTE_ACCEPTED) {
		fprintf(stderr, "sendmail: <%s>: no such local user (%s)\n",
		    rcpt, e.msg);
		rc->rc = EXIT_NOUSER;
	}
}

static void
split_args(void *arg, const char *list)
{
	char *copy = xstrdup(list);

	for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t;
	    t = strtok_r(NULL, ", ", &save))
		add_rcpt(arg, t);
	free(copy);
}

static const char *
login_name(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw ? pw->pw_name : "nobody";
}

/* Adds From:, Date: and Message-ID: when the program left them out. */
static void
complete_header(struct sendmail *sm, const struct config *c,
    const struct envelope *env, const char *id, struct buf *out)
{
	char date[64];
	struct timeval tv;

	gettimeofday(&tv, NULL);
	if (!has_field(&sm->header, "From")) {
		if (sm->full_name)
			buf_printf(out, "From: \"%s\" <%s>\r\n", sm->full_name,
			    env->sender);
		else
			buf_printf(out, "From: <%s>\r\n", env->sender);
	}
	if (!has_field(&sm->header, "Date"))
		buf_printf(out, "Date: %s\r\n", header_date(tv.tv_sec, date,
		    sizeof(date)));
	if (!has_field(&sm->header, "Message-ID"))
		buf_printf(out, "Message-ID: <%s.%ld@%s>\r\n", id,
		    (long)tv.tv_usec, c->hostname);
}

/* Streams the rest of stdin into the spool message. */
static int
copy_body(struct sendmail *sm, struct spool_msg *m, unsigned long long max,
    struct err *e)
{
	struct buf line, chunk;
	bool nl;
	int rc = 0;

	buf_init(&line);
	buf_init(&chunk);
	buf_append(&chunk, sm->body.data ? sm->body.data : "", sm->body.len);
	while (!sm->at_eof && read_line(&line, &nl) == 1) {
		if (!sm->ignore_dots && line.len == 1 && line.data[0] == '.')
			break;
		put_line(&chunk, &line);
		if (chunk.len >= 65536) {
			if (spool_msg_write(m, chunk.data, chunk.len, e) == -1) {
				rc = -1;
				break;
			}
			buf_reset(&chunk);
		}
		if (spool_msg_len(m) + chunk.len > max) {
			rc = err_set(e, "message larger than max_message_size "
			    "(%llu bytes)", max);
			break;
		}
	}
	if (rc == 0 && chunk.len && spool_msg_write(m, chunk.data, chunk.len,
	    e) == -1)
		rc = -1;
	buf_clear(&line);
	buf_clear(&chunk);
	return rc;
}

static struct runtime *
load_runtime(const struct cmd_opts *o)
{
	struct runtime *rt;
	struct buf errors;

	/* Only what routing needs: no TLS keys or password file here. */
	buf_init(&errors);
	rt = xcalloc(1, sizeof(*rt));
	rt->refs = 1;
	rt->cfg = config_load(o->conf_file, o->overrides, o->noverrides,
	    &errors);
	if (rt->cfg && rt->cfg->address_map[0])
		rt->map = addrmap_load(rt->cfg->address_map, &errors);
	if (errors.len) {
		fputs(errors.data, stderr);
		runtime_unref(rt);
		rt = NULL;
	}
	buf_clear(&errors);
	return rt;
}

static int
submit(struct sendmail *sm, struct runtime *rt)
{
	const struct config *c = rt->cfg;
	struct envelope env;
	struct rcpt_ctx rc = { sm, rt, &env, 0 };
	struct spool *sp = NULL;
	struct spool_msg *m = NULL;
	struct timeval tv;
	struct buf hdr, out;
	struct err e;
	char sender[ADDR_MAX + 1];
	int exit_code = 0;

	envelope_init(&env);
	buf_init(&hdr);
	buf_init(&out);
	err_clear(&e);
	if (sm->sender && (strcmp(sm->sender, "<>") == 0 || !*sm->sender))
		sender[0] = '\0';
	else if (sm->sender) {
		struct addr a;
		char full[ADDR_MAX + 2];

		if (strchr(sm->sender, '@') == NULL)
			snprintf(full, sizeof(full), "%s@%s", sm->sender,
			    c->hostname);
		else
			str_copy(full, sm->sender, sizeof(full));
		if (addr_parse_mailbox(full, ADDR_ALLOW_UTF8, &a, &e) == -1) {
			fprintf(stderr, "sendmail: bad sender address '%s': "
			    "%s\n", sm->sender, e.msg);
			exit_code = EXIT_DATAERR;
			goto out;
		}
		addr_format(&a, sender, sizeof(sender));
	} else
		snprintf(sender, sizeof(sender), "%s@%s", login_name(),
		    c->hostname);
	if (read_header(sm) == -1) {
		exit_code = EXIT_DATAERR;
		goto out;
	}
	for (size_t i = 0; i < sm->nrcpts && rc.rc == 0; i++)
		split_args(&rc, sm->rcpts[i]);
	if (sm->extract)
		extract_rcpts(&sm->header, add_rcpt, &rc);
	if (rc.rc != 0) {
		exit_code = rc.rc;
		goto out;
	}
	if (env.nrcpts == 0) {
		fprintf(stderr, "sendmail: no recipients (give them as "
		    "arguments, or use -t)\n");
		exit_code = EXIT_USAGE;
		goto out;
	}
	gettimeofday(&tv, NULL);
	env.arrival = (double)tv.tv_sec + tv.tv_usec / 1e6;
	env.client_addr = xstrdup("local");
	env.client_name = xstrdup("localhost");
	env.helo = xstrdup("");
	env.proto = xstrdup("local");
	env.auth_user = xstrdup(login_name());
	env.sender = xstrdup(sender);
	env.body = sm->is_8bit ? xstrdup("8BITMIME") : NULL;

	sp = spool_open(c->spool_dir, &e);
	if (sp == NULL || (m = spool_msg_new(sp, &env, &e)) == NULL) {
		fprintf(stderr, "sendmail: cannot queue the message: %s%s\n",
		    e.msg, e.errnum == EACCES ? " (submit as root or as the "
		    "server's user, or over SMTP)" : "");
		exit_code = e.errnum == EACCES ? EXIT_NOPERM : EXIT_TEMPFAIL;
		goto out;
	}
	buf_printf(&hdr, "Received: by %s (smtpgate sendmail, from userid "
	    "%u)\r\n\tid %s; ", c->hostname, (unsigned)getuid(),
	    spool_msg_id(m));
	{
		char date[64];
		buf_printf(&hdr, "%s\r\n", header_date(tv.tv_sec, date,
		    sizeof(date)));
	}
	complete_header(sm, c, &env, spool_msg_id(m), &hdr);
	buf_append(&hdr, sm->header.data ? sm->header.data : "",
	    sm->header.len);
	if (spool_msg_write(m, hdr.data, hdr.len, &e) == -1 ||
	    copy_body(sm, m, c->max_message_size, &e) == -1 ||
	    spool_msg_commit(m, &e) == -1) {
		fprintf(stderr, "sendmail: cannot queue the message: %s\n",
		    e.msg);
		exit_code = strstr(e.msg, "max_message_size") ? EXIT_DATAERR :
		    EXIT_TEMPFAIL;
		goto out;
	}
	/* Tell a running server; without one, it is picked up at start. */
	{
		char *path = xasprintf("%s/ctl.sock", c->spool_dir);

		(void)ctl_request(path, "enqueue", spool_msg_id(m), 10, &out,
		    &e);
		free(path);
	}
out:
	spool_msg_free(m);
	spool_close(sp);
	envelope_clear(&env);
	buf_clear(&hdr);
	buf_clear(&out);
	return exit_code;
}

int
cmd_sendmail(int argc, char **argv)
{
	struct sendmail sm;
	struct runtime *rt;
	int rc;

	if (parse_args(argc, argv, &sm) == -1) {
		rc = EXIT_USAGE;
		goto out;
	}
	if ((rt = load_runtime(&sm.opts)) == NULL) {
		rc = EXIT_CONFIG;
		goto out;
	}
	rc = submit(&sm, rt);
	runtime_unref(rt);
out:
	free(sm.opts.overrides);
	free(sm.rcpts);
	buf_clear(&sm.header);
	buf_clear(&sm.body);
	return rc;
}
