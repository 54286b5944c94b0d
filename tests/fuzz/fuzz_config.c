/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (config_parse_text, SPEC §2).
 *
 * The input is a configuration file; after a form feed (\f), each line of
 * the rest is one "-o KEY=VALUE" override. Checks, beyond the sanitizers:
 * a refused input yields at least one error, every error is one line
 * naming its place ("fuzz:LINE: ", "fuzz: ", "-o:N: " or "(defaults): "),
 * and an accepted one prints (config_print) into a file that loads into a
 * configuration that prints the same text (the `smtpgate config` promise).
 * config_check_files is not called: it reads the files named.
 */
/* fuzz-sources: src/gate/config.c src/lib/cidr.c src/lib/buf.c src/lib/mem.c src/lib/str.c src/lib/err.c */
/* fuzz-libs: -lssl -lcrypto */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "gate/addrmap.h"
#include "gate/config.h"

/* config.c links against the address map only for config_check_files. */
struct addrmap *
addrmap_load(const char *path, struct buf *errors)
{
	abort();
}

void
addrmap_free(struct addrmap *m)
{
	abort();
}

static bool
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Every line of errors starts with a place; at least one line. */
static void
check_errors(const struct buf *errors)
{
	const char *p = errors->data;

	if (errors->len == 0 || p[errors->len - 1] != '\n')
		abort();
	while (*p) {
		const char *nl = strchr(p, '\n');

		if (!has_prefix(p, "fuzz:") && !has_prefix(p, "-o:") &&
		    !has_prefix(p, "(defaults): "))
			abort();
		p = nl + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *ff = memchr(data, '\f', size);
	size_t flen = ff ? (size_t)(ff - text) : size;
	char **ov = NULL, *ovtext = NULL;
	size_t nov = 0;
	struct buf errors, out1, out2;
	struct config *c, *c2;

	if (ff) {
		/* Overrides are C strings: a NUL ends the list. */
		ovtext = strndup(ff + 1, size - flen - 1);
		ov = calloc(strlen(ovtext) + 1, sizeof(*ov));
		if (ovtext == NULL || ov == NULL)
			abort();
		for (char *s = ovtext, *nl; s; s = nl) {
			if ((nl = strchr(s, '\n')) != NULL)
				*nl++ = '\0';
			ov[nov++] = s;
		}
	}
	buf_init(&errors);
	buf_init(&out1);
	buf_init(&out2);
	c = config_parse_text("fuzz", text, flen, "/fuzz", ov, nov, &errors);
	if (c == NULL) {
		check_errors(&errors);
		goto out;
	}
	if (errors.len != 0)
		abort();
	config_print(c, &out1);
	c2 = config_parse_text("printed", out1.data, out1.len, "/elsewhere",
	    NULL, 0, &errors);
	if (c2 == NULL)
		abort();
	config_print(c2, &out2);
	if (out1.len != out2.len || memcmp(out1.data, out2.data, out1.len))
		abort();
	config_unref(config_ref(c2));
	config_unref(c2);
	config_unref(c);
out:
	buf_clear(&errors);
	buf_clear(&out1);
	buf_clear(&out2);
	free(ov);
	free(ovtext);
	return 0;
}
