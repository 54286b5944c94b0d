/*
 * fuzz_smtp_cmd.c - libFuzzer target for smtp_cmd_parse.
 *
 * The first input byte says whether the transaction is SMTPUTF8, the rest
 * is the line, given in a buffer of exactly its length (no NUL after it),
 * so a read past len is caught. Checks, beyond the sanitizers: an error
 * is one of the documented replies and its text is safe to send (no CR,
 * LF, NUL or other control character, not empty); a success fills only
 * valid fields, and a UTF-8 address only comes with SMTPUTF8.
 */
/* fuzz-sources: src/mail/smtp_cmd.c src/mail/addr.c src/lib/err.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_cmd.h"

static void
check_text(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static void
check_error(const struct smtp_cmd_error *err)
{
	static const char *const enhanced[] = {
		"5.5.2", "5.5.4", "5.5.6", "5.1.7", "5.1.3", "5.6.7",
	};
	size_t i;

	if (err->code != 500 && err->code != 501 && err->code != 553 &&
	    err->code != 555)
		abort();
	for (i = 0; i < sizeof(enhanced) / sizeof(enhanced[0]); i++)
		if (err->enhanced != NULL &&
		    strcmp(err->enhanced, enhanced[i]) == 0)
			break;
	if (i == sizeof(enhanced) / sizeof(enhanced[0]))
		abort();
	if (err->text[0] == '\0')
		abort();
	check_text(err->text, sizeof(err->text) - 1);
}

static void
check_cmd(const struct smtp_cmd *cmd, bool utf8_tx)
{
	if (cmd->verb <= SMTP_VERB_UNKNOWN || cmd->verb >= SMTP_VERB_COUNT)
		abort();
	check_text(cmd->arg, SMTP_CMD_ARG_MAX);
	check_text(cmd->envid, SMTP_XTEXT_MAX);
	check_text(cmd->auth, SMTP_XTEXT_MAX);
	check_text(cmd->orcpt, SMTP_XTEXT_MAX);
	check_text(cmd->notify, sizeof(cmd->notify) - 1);
	check_text(cmd->ret, sizeof(cmd->ret) - 1);
	if (cmd->verb == SMTP_VERB_MAIL && cmd->addr.has_utf8 &&
	    !cmd->smtputf8)
		abort();
	if (cmd->verb == SMTP_VERB_RCPT && cmd->addr.has_utf8 && !utf8_tx)
		abort();
	if (cmd->verb == SMTP_VERB_RCPT && cmd->addr.is_null)
		abort();
	if ((cmd->verb == SMTP_VERB_MAIL || cmd->verb == SMTP_VERB_RCPT) &&
	    !cmd->addr.is_null && cmd->addr.local[0] == '\0')
		abort();
	if (cmd->size < -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmd cmd;
	struct smtp_cmd_error err;
	bool utf8_tx;
	char *line;

	if (size == 0)
		return 0;
	utf8_tx = data[0] & 1;
	if ((line = malloc(size - 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(line, data + 1, size - 1);
	if (smtp_cmd_parse(line, size - 1, utf8_tx, &cmd, &err) == 0)
		check_cmd(&cmd, utf8_tx);
	else
		check_error(&err);
	free(line);
	return 0;
}
