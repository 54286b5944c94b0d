/*
 * cmd_common.c - option handling shared by every subcommand. Layer: cmd.
 */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "gate/config.h"

int
cmd_opts_parse(int argc, char **argv, struct cmd_opts *o)
{
	bool after_dashes = false;

	memset(o, 0, sizeof(*o));
	o->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
	o->args = xcalloc((size_t)argc + 1, sizeof(char *));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!after_dashes && strcmp(a, "--") == 0) {
			after_dashes = true;
			continue;
		}
		if (!after_dashes && (strcmp(a, "-c") == 0 ||
		    strcmp(a, "-o") == 0)) {
			if (i + 1 >= argc) {
				fprintf(stderr, "smtpgate %s: option %s needs "
				    "an argument\n", argv[0], a);
				cmd_opts_clear(o);
				return -1;
			}
			if (a[1] == 'c')
				o->conf_file = argv[++i];
			else
				o->overrides[o->noverrides++] = argv[++i];
			continue;
		}
		o->args[o->nargs++] = argv[i];
	}
	return 0;
}

void
cmd_opts_clear(struct cmd_opts *o)
{
	free(o->overrides);
	free(o->args);
	memset(o, 0, sizeof(*o));
}

struct config *
cmd_load_config(const struct cmd_opts *o)
{
	struct buf errors;
	struct config *c;

	buf_init(&errors);
	c = config_load(o->conf_file, o->overrides, o->noverrides, &errors);
	if (c == NULL)
		fputs(errors.len ? errors.data
		    : "smtpgate: configuration error\n", stderr);
	buf_clear(&errors);
	return c;
}
