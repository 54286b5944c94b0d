/*
 * main.c - the smtpgate binary: picks the subcommand from argv[0] (a link
 * named sendmail or mailq) or argv[1]. Nothing else lives here, so every
 * other file links into the tests.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

static const struct {
	const char	*name;
	int		(*run)(int, char **);
} commands[] = {
	{ "serve",	cmd_serve },
	{ "check",	cmd_check },
	{ "config",	cmd_config },
	{ "passwd",	cmd_passwd },
	{ "queue",	cmd_queue },
	{ "status",	cmd_status },
	{ "sendmail",	cmd_sendmail },
};

static int
usage(void)
{
	fprintf(stderr,
	    "usage: smtpgate serve [-c FILE] [-o KEY=VALUE]...\n"
	    "       smtpgate check [-c FILE] [-o KEY=VALUE]...\n"
	    "       smtpgate config [-c FILE] [-o KEY=VALUE]...\n"
	    "       smtpgate passwd [-c FILE] USER   (password on stdin)\n"
	    "       smtpgate queue [-c FILE] list [--json] | show ID | flush |"
	    " hold ID | release ID | delete ID\n"
	    "       smtpgate status [-c FILE]\n"
	    "       smtpgate sendmail [-t] [-i] [-f SENDER] [-F NAME] "
	    "[RCPT...]\n");
	return EXIT_USAGE;
}

int
main(int argc, char **argv)
{
	const char *self = basename(argv[0]);

	if (strcmp(self, "mailq") == 0) {
		/* mailq [-c FILE] [-o K=V]... is `queue list` */
		char **args = calloc((size_t)argc + 2, sizeof(char *));
		int rc;

		if (args == NULL)
			return EXIT_OSERR;
		args[0] = "queue";
		for (int i = 1; i < argc; i++)
			args[i] = argv[i];
		args[argc] = "list";
		rc = cmd_queue(argc + 1, args);
		free(args);
		return rc;
	}

	if (strcmp(self, "sendmail") == 0)
		return cmd_sendmail(argc, argv);
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "smtpgate: unknown command '%s'\n", argv[1]);
	return usage();
}
