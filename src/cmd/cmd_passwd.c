/*
 * cmd_passwd.c - `smtpgate passwd USER`: sets USER's password in the
 * auth_users file. Layer: cmd. Reads the password from standard input (the
 * first line), hashes it with yescrypt, and replaces the file atomically
 * with mode 0600 (owned by the configured user when run as root, so the
 * server can read it after dropping privileges).
 */
#include "cmd/cmd.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "gate/config.h"
#include "gate/smtp_auth.h"

static bool
user_name_ok(const char *u)
{
	if (*u == '\0' || strlen(u) >= AUTH_USER_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		if (*p <= ' ' || *p == ':' || *p == 0x7f)
			return false;
	return true;
}

/* Reads the first line of stdin into pass (without the newline). */
static int
read_password(char *pass, size_t size)
{
	size_t n;

	if (fgets(pass, (int)size, stdin) == NULL)
		return -1;
	n = strlen(pass);
	if (n && pass[n - 1] == '\n')
		pass[--n] = '\0';
	else if (n == size - 1)
		return -1;	/* longer than we accept */
	if (n && pass[n - 1] == '\r')
		pass[--n] = '\0';
	return n ? 0 : -1;
}

/* The file without USER's line, then USER's new line. */
static void
rewrite(struct buf *out, const char *old, size_t len, const char *user,
    const char *hash)
{
	size_t ulen = strlen(user), pos = 0;

	while (pos < len) {
		const char *nl = memchr(old + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (old + pos)) : len - pos;

		if (!(n > ulen && strncmp(old + pos, user, ulen) == 0 &&
		    old[pos + ulen] == ':')) {
			buf_append(out, old + pos, n);
			buf_putc(out, '\n');
		}
		pos += n + 1;
	}
	buf_printf(out, "%s:%s\n", user, hash);
}

int
cmd_passwd(int argc, char **argv)
{
	struct cmd_opts o;
	struct config *c = NULL;
	char pass[AUTH_PASS_MAX], hash[512], dir[PATH_MAX], name[PATH_MAX];
	char *old = NULL;
	size_t oldlen = 0;
	struct buf out;
	struct err e;
	int rc = EXIT_CONFIG;

	if (cmd_opts_parse(argc, argv, &o) == -1)
		return EXIT_USAGE;
	if (o.nargs != 1 || !user_name_ok(o.args[0])) {
		fprintf(stderr, "usage: smtpgate passwd [-c FILE] USER "
		    "(password on standard input; USER without ':' or "
		    "blanks)\n");
		cmd_opts_clear(&o);
		return EXIT_USAGE;
	}
	if ((c = cmd_load_config(&o)) == NULL)
		goto out;
	if (c->auth_users[0] == '\0') {
		fprintf(stderr, "smtpgate passwd: auth_users is not set in "
		    "%s\n", c->file ? c->file : "the configuration");
		goto out;
	}
	if (read_password(pass, sizeof(pass)) == -1) {
		fprintf(stderr, "smtpgate passwd: no password on standard "
		    "input (one line, at most %d bytes)\n", AUTH_PASS_MAX - 2);
		rc = EXIT_DATAERR;
		goto out;
	}
	err_clear(&e);
	if (auth_hash_password(pass, hash, sizeof(hash), &e) == -1) {
		fprintf(stderr, "smtpgate passwd: %s\n", e.msg);
		rc = EXIT_SOFTWARE;
		goto out;
	}
	if (access(c->auth_users, F_OK) == 0 && (old = fsio_read_file(
	    c->auth_users, 64 * 1024 * 1024, &oldlen, &e)) == NULL) {
		fprintf(stderr, "smtpgate passwd: %s\n", e.msg);
		rc = EXIT_IOERR;
		goto out;
	}
	buf_init(&out);
	rewrite(&out, old ? old : "", oldlen, o.args[0], hash);
	str_copy(dir, c->auth_users, sizeof(dir));
	str_copy(name, c->auth_users, sizeof(name));
	if (fsio_write_atomic(dirname(dir), basename(name), out.data, out.len,
	    0600, &e) == -1) {
		fprintf(stderr, "smtpgate passwd: %s\n", e.msg);
		rc = EXIT_CANTCREAT;
	} else {
		struct passwd *pw = NULL;

		if (geteuid() == 0 && c->user[0] && strcmp(c->user, "root"))
			pw = getpwnam(c->user);
		if (pw && chown(c->auth_users, pw->pw_uid, pw->pw_gid) == -1)
			fprintf(stderr, "smtpgate passwd: chown %s: %s\n",
			    c->auth_users, strerror(errno));
		printf("smtpgate: password for %s set in %s\n", o.args[0],
		    c->auth_users);
		rc = 0;
	}
	mem_wipe(out.data, out.len);
	buf_clear(&out);
out:
	mem_wipe(pass, sizeof(pass));
	if (old) {
		mem_wipe(old, oldlen);
		free(old);
	}
	config_unref(c);
	cmd_opts_clear(&o);
	return rc;
}
