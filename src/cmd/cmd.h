/*
 * cmd.h - the subcommands of the smtpgate binary and their shared option
 * handling. main.c dispatches on argv; each cmd_X returns a sysexits code.
 */
#ifndef SMTPGATE_CMD_CMD_H
#define SMTPGATE_CMD_CMD_H

#include <stddef.h>

struct config;

#define EXIT_USAGE	64	/* EX_USAGE */
#define EXIT_DATAERR	65	/* EX_DATAERR */
#define EXIT_NOINPUT	66	/* EX_NOINPUT */
#define EXIT_SOFTWARE	70	/* EX_SOFTWARE */
#define EXIT_OSERR	71	/* EX_OSERR */
#define EXIT_CANTCREAT	73	/* EX_CANTCREAT */
#define EXIT_IOERR	74	/* EX_IOERR */
#define EXIT_TEMPFAIL	75	/* EX_TEMPFAIL */
#define EXIT_NOPERM	77	/* EX_NOPERM */
#define EXIT_CONFIG	78	/* EX_CONFIG */

/* The options every subcommand accepts. */
struct cmd_opts {
	const char	 *conf_file;	/* -c FILE, NULL if not given */
	char		**overrides;	/* -o KEY=VALUE, in order */
	size_t		  noverrides;
	char		**args;		/* the remaining arguments */
	size_t		  nargs;
};

/*
 * Parses argv (argv[0] is the subcommand name) for -c FILE and -o K=V
 * anywhere before a "--"; other arguments (and options listed in
 * extra_flags, e.g. "--json", kept as arguments) go to args. Unknown
 * options starting with '-' are a usage error when strict. Returns 0 or -1
 * (message printed to stderr). Caller frees with cmd_opts_clear.
 */
int	cmd_opts_parse(int argc, char **argv, struct cmd_opts *o);
void	cmd_opts_clear(struct cmd_opts *o);
/*
 * Loads the configuration for a command; on error prints each
 * "FILE:LINE: message" line to stderr and returns NULL (exit 78).
 */
struct config *cmd_load_config(const struct cmd_opts *o);

int	cmd_serve(int argc, char **argv);
int	cmd_check(int argc, char **argv);
int	cmd_config(int argc, char **argv);
int	cmd_passwd(int argc, char **argv);
int	cmd_queue(int argc, char **argv);
int	cmd_status(int argc, char **argv);
int	cmd_sendmail(int argc, char **argv);

#endif
