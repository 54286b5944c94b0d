/*
 * smtp_cmd.c - SMTP command line parser (RFC 5321 §4.1.1, §4.1.2; RFC
 * 1870 SIZE, 6152 8BITMIME, 3030 BDAT/BINARYMIME, 6531 SMTPUTF8, 3461 DSN,
 * 4954 AUTH).
 *
 * Layer: mail. Pure: turns one command line (without its CRLF) into a
 * struct smtp_cmd, or into the exact reply for its syntax error. It knows
 * nothing of session state: whether a verb is allowed now, whether a
 * mechanism exists or a size is too big is the server's business.
 *
 * Invariants: the line is borrowed and never kept (everything is copied
 * into the struct, bounded by its field sizes); no byte a client sends is
 * echoed into a reply unless it was first checked to be a printable
 * keyword character, so a reply can never carry CR, LF or NUL.
 */
#include "mail/smtp_cmd.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

const char *const smtp_verb_names[SMTP_VERB_COUNT] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN",
	[SMTP_VERB_HELO] = "HELO",
	[SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_LHLO] = "LHLO",
	[SMTP_VERB_MAIL] = "MAIL",
	[SMTP_VERB_RCPT] = "RCPT",
	[SMTP_VERB_DATA] = "DATA",
	[SMTP_VERB_BDAT] = "BDAT",
	[SMTP_VERB_RSET] = "RSET",
	[SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT",
	[SMTP_VERB_VRFY] = "VRFY",
	[SMTP_VERB_EXPN] = "EXPN",
	[SMTP_VERB_HELP] = "HELP",
	[SMTP_VERB_STARTTLS] = "STARTTLS",
	[SMTP_VERB_AUTH] = "AUTH",
};

#define ENVID_MAX	100	/* RFC 3461 §4.4 */
#define KEYWORD_SHOWN	64	/* longest keyword echoed in a reply */

/* ESMTP parameters, one bit each for the duplicate check. */
enum param {
	PARAM_SIZE,
	PARAM_BODY,
	PARAM_SMTPUTF8,
	PARAM_RET,
	PARAM_ENVID,
	PARAM_AUTH,
	PARAM_NOTIFY,
	PARAM_ORCPT,
};

struct param_rule {
	const char	*name;
	enum param	 param;
	enum smtp_verb	 verb;		/* MAIL or RCPT */
};

static const struct param_rule param_rules[] = {
	{ "SIZE", PARAM_SIZE, SMTP_VERB_MAIL },
	{ "BODY", PARAM_BODY, SMTP_VERB_MAIL },
	{ "SMTPUTF8", PARAM_SMTPUTF8, SMTP_VERB_MAIL },
	{ "RET", PARAM_RET, SMTP_VERB_MAIL },
	{ "ENVID", PARAM_ENVID, SMTP_VERB_MAIL },
	{ "AUTH", PARAM_AUTH, SMTP_VERB_MAIL },
	{ "NOTIFY", PARAM_NOTIFY, SMTP_VERB_RCPT },
	{ "ORCPT", PARAM_ORCPT, SMTP_VERB_RCPT },
};

static int
fail(struct smtp_cmd_error *err, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct smtp_cmd_error *err, int code, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	err->enhanced = enhanced;
	va_start(ap, fmt);
	(void)vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return -1;
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static char
ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* True when the n bytes at s are word (NUL-terminated or not), any case. */
static bool
word_equal_ci(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (word[i] == '\0' || ascii_upper(s[i]) != word[i])
			return false;
	return word[i] == '\0';
}

/* Copies n bytes and a NUL into dst of dst_size, upper-cased if asked. */
static void
copy_text(char *dst, size_t dst_size, const char *s, size_t n, bool upper)
{
	if (n >= dst_size)
		n = dst_size - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = upper ? ascii_upper(s[i]) : s[i];
	dst[n] = '\0';
}

/* Length of a well-formed UTF-8 sequence at s (of at most n bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool
is_keyword(const char *s, size_t n)
{
	if (n == 0 || !is_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126 / UTF8-non-ascii) (RFC 6531 §3.3) */
static bool
is_value(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, len;

	if (n == 0)
		return false;
	while (i < n) {
		if (u[i] >= 0x80) {
			if ((len = utf8_len(u + i, n - i)) == 0)
				return false;
			i += len;
		} else if (u[i] >= 33 && u[i] <= 126 && u[i] != '=')
			i++;
		else
			return false;
	}
	return true;
}

/*
 * xtext = *( xchar / hexchar ), xchar = %d33-42 / %d44-60 / %d62-126,
 * hexchar = "+" 2HEX (RFC 3461 §4). Lower-case hex digits are tolerated.
 * With allow_utf8, UTF-8 characters too (utf-8-addr-xtext, RFC 6533).
 */
static bool
is_xtext(const char *s, size_t n, bool allow_utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, len;

	while (i < n) {
		if (u[i] == '+') {
			if (n - i < 3 || !is_hex(u[i + 1]) || !is_hex(u[i + 2]))
				return false;
			i += 3;
		} else if (u[i] >= 0x80) {
			if (!allow_utf8 || (len = utf8_len(u + i, n - i)) == 0)
				return false;
			i += len;
		} else if (u[i] >= 33 && u[i] <= 126 && u[i] != '=')
			i++;
		else
			return false;
	}
	return true;
}

static int
param_size(struct smtp_cmd *cmd, const char *v, size_t n,
    struct smtp_cmd_error *err)
{
	long long size = 0;

	/* size-value ::= 1*20DIGIT (RFC 1870 §3). A declared size beyond
	 * what fits is kept as LLONG_MAX: the server refuses it as too big. */
	if (n == 0 || n > 20)
		return fail(err, 501, "5.5.4", "Syntax: SIZE needs 1 to 20 "
		    "digits");
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)v[i]))
			return fail(err, 501, "5.5.4", "Syntax: SIZE value "
			    "must be digits");
		if (size > (LLONG_MAX - (v[i] - '0')) / 10)
			size = LLONG_MAX;
		else
			size = size * 10 + (v[i] - '0');
	}
	cmd->size = size;
	return 0;
}

static int
param_body(struct smtp_cmd *cmd, const char *v, size_t n,
    struct smtp_cmd_error *err)
{
	if (word_equal_ci(v, n, "7BIT"))
		cmd->body = SMTP_BODY_7BIT;
	else if (word_equal_ci(v, n, "8BITMIME"))
		cmd->body = SMTP_BODY_8BITMIME;
	else if (word_equal_ci(v, n, "BINARYMIME"))
		cmd->body = SMTP_BODY_BINARYMIME;
	else
		return fail(err, 501, "5.5.4", "Syntax: BODY must be 7BIT, "
		    "8BITMIME or BINARYMIME");
	return 0;
}

static int
param_ret(struct smtp_cmd *cmd, const char *v, size_t n,
    struct smtp_cmd_error *err)
{
	if (!word_equal_ci(v, n, "FULL") && !word_equal_ci(v, n, "HDRS"))
		return fail(err, 501, "5.5.4", "Syntax: RET must be FULL or "
		    "HDRS");
	copy_text(cmd->ret, sizeof(cmd->ret), v, n, true);
	return 0;
}

static int
param_xtext(char *dst, size_t dst_size, size_t max, const char *name,
    const char *v, size_t n, struct smtp_cmd_error *err)
{
	if (n == 0 || !is_xtext(v, n, false))
		return fail(err, 501, "5.5.4", "Syntax: %s is not valid "
		    "xtext", name);
	if (n > max)
		return fail(err, 501, "5.5.4", "Syntax: %s longer than %zu "
		    "characters", name, max);
	copy_text(dst, dst_size, v, n, false);
	return 0;
}

/* NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) (RFC 3461 §4.1) */
static int
param_notify(struct smtp_cmd *cmd, const char *v, size_t n,
    struct smtp_cmd_error *err)
{
	static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };
	unsigned seen = 0;
	size_t i = 0, j, w;

	if (word_equal_ci(v, n, "NEVER")) {
		copy_text(cmd->notify, sizeof(cmd->notify), v, n, true);
		return 0;
	}
	for (;;) {
		for (j = i; j < n && v[j] != ','; j++)
			;
		for (w = 0; w < 3; w++)
			if (word_equal_ci(v + i, j - i, words[w]))
				break;
		if (w == 3 || (seen & (1u << w)))
			return fail(err, 501, "5.5.4", "Syntax: NOTIFY must "
			    "be NEVER or a list of SUCCESS, FAILURE, DELAY");
		seen |= 1u << w;
		if (j == n)
			break;
		i = j + 1;
	}
	copy_text(cmd->notify, sizeof(cmd->notify), v, n, true);
	return 0;
}

/* ORCPT=addr-type ";" xtext (RFC 3461 §4.2), kept as sent. */
static int
param_orcpt(struct smtp_cmd *cmd, const char *v, size_t n,
    struct smtp_cmd_error *err)
{
	const char *semi = memchr(v, ';', n);
	size_t type_len;

	if (semi == NULL || semi == v)
		return fail(err, 501, "5.5.4", "Syntax: ORCPT must be "
		    "addr-type;xtext");
	type_len = (size_t)(semi - v);
	if (!is_keyword(v, type_len))
		return fail(err, 501, "5.5.4", "Syntax: bad ORCPT address "
		    "type");
	if (semi + 1 == v + n || !is_xtext(semi + 1, n - type_len - 1,
	    word_equal_ci(v, type_len, "UTF-8")))
		return fail(err, 501, "5.5.4", "Syntax: ORCPT is not valid "
		    "xtext");
	if (n > SMTP_XTEXT_MAX)
		return fail(err, 501, "5.5.4", "Syntax: ORCPT longer than %d "
		    "characters", SMTP_XTEXT_MAX);
	copy_text(cmd->orcpt, sizeof(cmd->orcpt), v, n, false);
	return 0;
}

/* Decodes one known parameter; v is NULL when it had no "=value". */
static int
param_apply(struct smtp_cmd *cmd, const struct param_rule *rule,
    const char *v, size_t n, struct smtp_cmd_error *err)
{
	if (rule->param == PARAM_SMTPUTF8) {
		if (v != NULL)
			return fail(err, 501, "5.5.4", "Syntax: SMTPUTF8 "
			    "takes no value");
		cmd->smtputf8 = true;
		return 0;
	}
	if (v == NULL)
		return fail(err, 501, "5.5.4", "Syntax: %s needs a value",
		    rule->name);
	switch (rule->param) {
	case PARAM_SIZE:
		return param_size(cmd, v, n, err);
	case PARAM_BODY:
		return param_body(cmd, v, n, err);
	case PARAM_RET:
		return param_ret(cmd, v, n, err);
	case PARAM_ENVID:
		return param_xtext(cmd->envid, sizeof(cmd->envid), ENVID_MAX,
		    "ENVID", v, n, err);
	case PARAM_AUTH:
		return param_xtext(cmd->auth, sizeof(cmd->auth),
		    SMTP_XTEXT_MAX, "AUTH", v, n, err);
	case PARAM_NOTIFY:
		return param_notify(cmd, v, n, err);
	case PARAM_ORCPT:
		return param_orcpt(cmd, v, n, err);
	default:
		return fail(err, 501, "5.5.4", "Syntax: bad parameter");
	}
}

/*
 * Mail-parameters = esmtp-param *(SP esmtp-param), esmtp-param =
 * esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2). Several spaces
 * between parameters and trailing spaces are tolerated.
 */
static int
parse_params(const char *p, struct smtp_cmd *cmd, struct smtp_cmd_error *err)
{
	const struct param_rule *rule;
	const char *tok, *eq, *v;
	size_t klen, vlen, i;
	unsigned seen = 0;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		for (tok = p; *p != '\0' && *p != ' '; p++)
			;
		eq = memchr(tok, '=', (size_t)(p - tok));
		klen = (size_t)((eq ? eq : p) - tok);
		v = eq ? eq + 1 : NULL;
		vlen = eq ? (size_t)(p - v) : 0;
		if (!is_keyword(tok, klen))
			return fail(err, 501, "5.5.4", "Syntax: bad parameter "
			    "keyword");
		rule = NULL;
		for (i = 0; i < sizeof(param_rules) / sizeof(param_rules[0]);
		    i++)
			if (param_rules[i].verb == cmd->verb &&
			    word_equal_ci(tok, klen, param_rules[i].name))
				rule = &param_rules[i];
		if (rule == NULL)
			return fail(err, 555, "5.5.4", "Error: unsupported "
			    "parameter %.*s", klen > KEYWORD_SHOWN ?
			    KEYWORD_SHOWN : (int)klen, tok);
		if (v != NULL && !is_value(v, vlen))
			return fail(err, 501, "5.5.4", "Syntax: bad value for "
			    "parameter %s", rule->name);
		if (seen & (1u << rule->param))
			return fail(err, 501, "5.5.4", "Syntax: duplicate "
			    "parameter %s", rule->name);
		seen |= 1u << rule->param;
		if (param_apply(cmd, rule, v, vlen, err) == -1)
			return -1;
	}
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static int
parse_path_cmd(const char *rest, bool in_utf8_tx, struct smtp_cmd *cmd,
    struct smtp_cmd_error *err)
{
	bool is_mail = cmd->verb == SMTP_VERB_MAIL;
	const char *prefix = is_mail ? "FROM:" : "TO:";
	const char *syntax = is_mail ? "Syntax: MAIL FROM:<address>" :
	    "Syntax: RCPT TO:<address>";
	const char *enhanced = is_mail ? "5.1.7" : "5.1.3";
	const char *what = is_mail ? "sender" : "recipient";
	int flags = ADDR_ALLOW_UTF8 |
	    (is_mail ? ADDR_ALLOW_NULL : ADDR_ALLOW_NO_DOMAIN);
	size_t plen = strlen(prefix);
	const char *p, *end;
	struct err e;

	if (!word_equal_ci(rest, strnlen(rest, plen), prefix))
		return fail(err, 501, "5.5.4", "%s", syntax);
	p = rest + plen;
	if (*p == ' ')		/* "MAIL FROM: <a@b>", as Postfix allows */
		p++;
	if (*p == '\0')
		return fail(err, 501, "5.5.4", "%s", syntax);
	err_clear(&e);
	if (addr_parse_path(p, &end, flags, &cmd->addr, &e) == -1)
		return fail(err, 501, enhanced, "Bad %s address syntax: %s",
		    what, e.msg);
	if (*end != '\0' && *end != ' ')
		return fail(err, 501, enhanced, "Bad %s address syntax: "
		    "unexpected text after '>'", what);
	if (parse_params(end, cmd, err) == -1)
		return -1;
	if (cmd->addr.has_utf8 && !(is_mail ? cmd->smtputf8 : in_utf8_tx))
		return fail(err, 553, "5.6.7", "Error: SMTPUTF8 address "
		    "without SMTPUTF8 (RFC 6531)");
	return 0;
}

/* BDAT SP chunk-size [ SP end-marker ] (RFC 3030 §2) */
static int
parse_bdat(const char *rest, struct smtp_cmd *cmd, struct smtp_cmd_error *err)
{
	const char *p = rest, *word;
	unsigned long long size = 0;
	size_t digits = 0;

	for (; is_digit((unsigned char)*p); p++) {
		if (++digits > 20 || size > (ULLONG_MAX - (unsigned)(*p - '0'))
		    / 10)
			goto bad;
		size = size * 10 + (unsigned)(*p - '0');
	}
	if (digits == 0 || (*p != '\0' && *p != ' '))
		goto bad;
	while (*p == ' ')
		p++;
	if (*p != '\0') {
		for (word = p; *p != '\0' && *p != ' '; p++)
			;
		if (!word_equal_ci(word, (size_t)(p - word), "LAST"))
			goto bad;
		cmd->is_last = true;
		while (*p == ' ')
			p++;
		if (*p != '\0')
			goto bad;
	}
	cmd->chunk_size = size;
	return 0;
bad:
	return fail(err, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
}

/* The verb's argument: rest with trailing spaces removed, into cmd->arg. */
static int
take_arg(const char *rest, struct smtp_cmd *cmd, struct smtp_cmd_error *err)
{
	size_t n = strlen(rest);
	const char *name = smtp_verb_names[cmd->verb];

	while (n > 0 && rest[n - 1] == ' ')
		n--;
	if (n > SMTP_CMD_ARG_MAX) {
		switch (cmd->verb) {
		case SMTP_VERB_NOOP:
		case SMTP_VERB_HELP:
			/* Ignored anyway (RFC 5321 §4.1.1.9). */
			n = SMTP_CMD_ARG_MAX;
			break;
		case SMTP_VERB_AUTH:
			return fail(err, 500, "5.5.6", "Authentication "
			    "Exchange line is too long");
		default:
			return fail(err, 501, "5.5.4", "Syntax: argument too "
			    "long");
		}
	}
	copy_text(cmd->arg, sizeof(cmd->arg), rest, n, false);
	switch (cmd->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
	case SMTP_VERB_LHLO:
		if (n == 0)
			return fail(err, 501, "5.5.4", "Syntax: %s hostname",
			    name);
		break;
	case SMTP_VERB_VRFY:
	case SMTP_VERB_EXPN:
		if (n == 0)
			return fail(err, 501, "5.5.4", "Syntax: %s address",
			    name);
		break;
	case SMTP_VERB_AUTH:
		if (n == 0)
			return fail(err, 501, "5.5.4", "Syntax: AUTH "
			    "mechanism [initial-response]");
		break;
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		if (n != 0)
			return fail(err, 501, "5.5.4", "Syntax: %s takes no "
			    "argument", name);
		break;
	default:
		break;
	}
	return 0;
}

static void
cmd_reset(struct smtp_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->size = -1;
	cmd->body = SMTP_BODY_DEFAULT;
}

int
smtp_cmd_parse(const char *line, size_t len, bool in_utf8_tx,
    struct smtp_cmd *cmd, struct smtp_cmd_error *err)
{
	char copy[SMTP_CMD_LINE_MAX + 1];
	const char *rest;
	size_t vlen;
	int verb, rc;

	cmd_reset(cmd);
	err->code = 0;
	err->enhanced = "";
	err->text[0] = '\0';
	if (len > SMTP_CMD_LINE_MAX)
		return fail(err, 500, "5.5.2", "Error: line too long");
	/* NUL, bare CR or LF, TAB, DEL: refused before anything else. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] == 0x7f)
			return fail(err, 500, "5.5.2", "Error: invalid "
			    "character in command");
	memcpy(copy, line, len);
	copy[len] = '\0';

	for (vlen = 0; copy[vlen] != '\0' && copy[vlen] != ' '; vlen++)
		;
	for (verb = SMTP_VERB_UNKNOWN + 1; verb < SMTP_VERB_COUNT; verb++)
		if (word_equal_ci(copy, vlen, smtp_verb_names[verb]))
			break;
	if (verb == SMTP_VERB_COUNT)
		return fail(err, 500, "5.5.2", "Error: command not "
		    "recognized");
	cmd->verb = (enum smtp_verb)verb;
	for (rest = copy + vlen; *rest == ' '; rest++)
		;

	switch (cmd->verb) {
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT:
		rc = parse_path_cmd(rest, in_utf8_tx, cmd, err);
		break;
	case SMTP_VERB_BDAT:
		rc = parse_bdat(rest, cmd, err);
		break;
	default:
		rc = take_arg(rest, cmd, err);
		break;
	}
	if (rc == -1) {
		cmd_reset(cmd);
		cmd->verb = (enum smtp_verb)verb;
	}
	return rc;
}
