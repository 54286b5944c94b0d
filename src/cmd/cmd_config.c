/*
 * cmd_config.c - `smtpgate config [-c FILE] [-o KEY=VALUE]...`: prints the
 * effective configuration, defaults included, one "key = value" line per
 * key in SPEC §2 order (SPEC §1). Layer: cmd.
 *
 * The output is itself a configuration file that loads into the same
 * configuration (paths are printed absolute). Exit 0, 78 on a
 * configuration error (each problem on stderr), 64 on a usage error.
 */
#include "cmd/cmd.h"

#include <stdio.h>

#include "lib/buf.h"
#include "gate/config.h"

static int
usage(void)
{
	fputs("usage: smtpgate config [-c FILE] [-o KEY=VALUE]...\n", stderr);
	return EXIT_USAGE;
}

int
cmd_config(int argc, char **argv)
{
	struct cmd_opts o;
	struct buf out;
	struct config *c;
	int rc = 0;

	if (cmd_opts_parse(argc, argv, &o) == -1)
		return usage();
	if (o.nargs > 0) {
		fprintf(stderr, "smtpgate config: unexpected argument '%s'\n",
		    o.args[0]);
		cmd_opts_clear(&o);
		return usage();
	}
	if ((c = cmd_load_config(&o)) == NULL) {
		cmd_opts_clear(&o);
		return EXIT_CONFIG;
	}
	buf_init(&out);
	config_print(c, &out);
	if (fwrite(out.data, 1, out.len, stdout) != out.len ||
	    fflush(stdout) == EOF) {
		perror("smtpgate config: stdout");
		rc = EXIT_IOERR;
	}
	buf_clear(&out);
	config_unref(c);
	cmd_opts_clear(&o);
	return rc;
}
