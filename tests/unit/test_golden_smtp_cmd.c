/*
 * test_golden_smtp_cmd.c - golden tests for src/mail/smtp_cmd.c.
 *
 * Each tests/golden/smtp_cmd/NAME.in holds one command line per line;
 * "\xHH" stands for any byte (NUL, CR, non-ASCII...), a line starting with
 * "[utf8] " is parsed inside an SMTPUTF8 transaction, lines starting with
 * "#" and empty lines are comments. NAME.out holds, for each command, the
 * line itself after "> " and then the parse result: "ok VERB field=..."
 * or the reply "CODE X.Y.Z text". Run with GOLDEN_UPDATE=1 to rewrite the
 * .out files from the current parser (then review the diff).
 * Run from the top of the tree (tests/run.sh does), or set GOLDEN_DIR.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/smtp_cmd.h"
#include "t.h"

static const char *const body_names[] = {
	[SMTP_BODY_DEFAULT] = "DEFAULT",
	[SMTP_BODY_7BIT] = "7BIT",
	[SMTP_BODY_8BITMIME] = "8BITMIME",
	[SMTP_BODY_BINARYMIME] = "BINARYMIME",
};

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes \xHH escapes of s into out; returns the length. */
static size_t
unescape(const char *s, char *out, size_t size)
{
	size_t n = 0;

	while (*s != '\0' && n < size) {
		if (s[0] == '\\' && s[1] == 'x' && hex_value(s[2]) >= 0 &&
		    hex_value(s[3]) >= 0) {
			out[n++] = (char)(hex_value(s[2]) * 16 +
			    hex_value(s[3]));
			s += 4;
		} else
			out[n++] = *s++;
	}
	return n;
}

/* Writes s with bytes outside printable ASCII as \xHH. */
static void
put_escaped(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_putc(b, (char)c);
	}
}

static void
put_field(struct buf *b, const char *name, const char *value)
{
	if (value[0] == '\0')
		return;
	buf_printf(b, " %s=\"", name);
	put_escaped(b, value);
	buf_putc(b, '"');
}

static void
put_result(struct buf *b, const char *line, size_t len, bool utf8_tx)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;
	const struct addr *a = &cmd.addr;

	if (smtp_cmd_parse(line, len, utf8_tx, &cmd, &err) == -1) {
		buf_printf(b, "%d %s %s\n", err.code, err.enhanced, err.text);
		return;
	}
	buf_printf(b, "ok %s", smtp_verb_names[cmd.verb]);
	put_field(b, "arg", cmd.arg);
	if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) {
		buf_puts(b, " addr=<");
		put_escaped(b, a->local);
		if (a->domain[0] != '\0') {
			buf_putc(b, '@');
			put_escaped(b, a->domain);
		}
		buf_putc(b, '>');
		buf_printf(b, "%s%s%s%s", a->is_null ? " null" : "",
		    a->is_quoted ? " quoted" : "",
		    a->is_ip_literal ? " literal" : "",
		    a->has_utf8 ? " utf8" : "");
	}
	if (cmd.size >= 0)
		buf_printf(b, " size=%lld", cmd.size);
	if (cmd.body != SMTP_BODY_DEFAULT)
		buf_printf(b, " body=%s", body_names[cmd.body]);
	if (cmd.smtputf8)
		buf_puts(b, " smtputf8");
	put_field(b, "ret", cmd.ret);
	put_field(b, "envid", cmd.envid);
	put_field(b, "auth", cmd.auth);
	put_field(b, "notify", cmd.notify);
	put_field(b, "orcpt", cmd.orcpt);
	if (cmd.verb == SMTP_VERB_BDAT)
		buf_printf(b, " chunk=%llu%s", cmd.chunk_size,
		    cmd.is_last ? " last" : "");
	buf_putc(b, '\n');
}

/* The expected output for one .in file. */
static void
run_file(FILE *in, struct buf *b)
{
	char text[SMTP_CMD_LINE_MAX * 4 + 2], line[SMTP_CMD_LINE_MAX * 4];
	size_t n;
	bool utf8_tx;

	while (fgets(text, sizeof(text), in) != NULL) {
		const char *s = text;

		text[strcspn(text, "\n")] = '\0';
		if (text[0] == '\0' || text[0] == '#')
			continue;
		utf8_tx = strncmp(s, "[utf8] ", 7) == 0;
		if (utf8_tx)
			s += 7;
		n = unescape(s, line, sizeof(line));
		buf_printf(b, "> %s\n", text);
		put_result(b, line, n, utf8_tx);
	}
}

static char *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;

	if (f == NULL)
		return NULL;
	buf_init(&b);
	buf_reserve(&b, 0);		/* an empty file is "", not NULL */
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	(void)fclose(f);
	*len = b.len;
	return buf_release(&b);
}

/* Reports the first line where got and want differ. */
static void
show_diff(const char *name, const char *got, const char *want)
{
	int line = 1;

	while (*got != '\0' && *got == *want) {
		if (*got == '\n')
			line++;
		got++;
		want++;
	}
	while (line > 1 && got[-1] != '\n')
		got--, want--;
	fprintf(stderr, "  %s.out line %d:\n    got:  %.*s\n    want: %.*s\n",
	    name, line, (int)strcspn(got, "\n"), got,
	    (int)strcspn(want, "\n"), want);
}

static void
test_golden(void)
{
	const char *dir = getenv("GOLDEN_DIR");
	bool update = getenv("GOLDEN_UPDATE") != NULL;
	struct dirent *de;
	int files = 0;
	DIR *d;

	if (dir == NULL)
		dir = "tests/golden/smtp_cmd";
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "  cannot open %s\n", dir);
		CHECK(0);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t nlen = strlen(de->d_name), want_len;
		char path[1024], name[256];
		char *want;
		struct buf got;
		FILE *in;

		if (nlen < 4 || nlen >= sizeof(name) ||
		    strcmp(de->d_name + nlen - 3, ".in") != 0)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(nlen - 3),
		    de->d_name);
		snprintf(path, sizeof(path), "%s/%s.in", dir, name);
		if ((in = fopen(path, "r")) == NULL) {
			CHECK(0);
			continue;
		}
		files++;
		buf_init(&got);
		buf_reserve(&got, 0);
		run_file(in, &got);
		(void)fclose(in);
		snprintf(path, sizeof(path), "%s/%s.out", dir, name);
		if (update) {
			FILE *out = fopen(path, "w");

			CHECK(out != NULL);
			if (out != NULL) {
				CHECK(fwrite(got.data, 1, got.len, out) ==
				    got.len);
				CHECK(fclose(out) == 0);
			}
		} else if ((want = read_all(path, &want_len)) == NULL) {
			fprintf(stderr, "  missing %s\n", path);
			CHECK(0);
		} else {
			if (want_len != got.len ||
			    memcmp(want, got.data, got.len) != 0) {
				show_diff(name, got.data, want);
				CHECK(0);
			}
			free(want);
		}
		buf_clear(&got);
	}
	(void)closedir(d);
	CHECK(files > 0);
}

int
main(void)
{
	RUN(test_golden);
	T_EXIT();
}
