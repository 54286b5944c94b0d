/*
 * cmd_check.c - `smtpgate check [-c FILE] [-o KEY=VALUE]...`: validates the
 * configuration and the files it names (SPEC §1). Layer: cmd.
 *
 * Every problem goes to stderr as one "FILE:LINE: message" line; the exit
 * status is 0 (all well, with "FILE: configuration OK" on stdout), 78 on
 * any problem, 64 on a usage error. It never starts anything, binds nothing
 * and writes no file: safe to run next to a live server.
 */
#include "cmd/cmd.h"

#include <stdio.h>

#include "lib/buf.h"
#include "gate/config.h"

static int
usage(void)
{
	fputs("usage: smtpgate check [-c FILE] [-o KEY=VALUE]...\n", stderr);
	return EXIT_USAGE;
}

int
cmd_check(int argc, char **argv)
{
	struct cmd_opts o;
	struct buf errors;
	struct config *c;
	int rc = EXIT_CONFIG;

	if (cmd_opts_parse(argc, argv, &o) == -1)
		return usage();
	if (o.nargs > 0) {
		fprintf(stderr, "smtpgate check: unexpected argument '%s'\n",
		    o.args[0]);
		cmd_opts_clear(&o);
		return usage();
	}
	buf_init(&errors);
	c = config_load(o.conf_file, o.overrides, o.noverrides, &errors);
	/* The files are checked only when their names could be read. */
	if (c != NULL && config_check_files(c, &errors) == 0 &&
	    errors.len == 0) {
		printf("%s: configuration OK\n",
		    o.conf_file ? o.conf_file : "(defaults)");
		rc = 0;
	} else
		fputs(errors.len ? errors.data
		    : "smtpgate check: configuration error\n", stderr);
	if (fflush(stdout) == EOF)
		rc = EXIT_IOERR;
	config_unref(c);
	buf_clear(&errors);
	cmd_opts_clear(&o);
	return rc;
}
