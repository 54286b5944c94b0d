/*
 * fuzz_addr.c - libFuzzer target for addr_parse_path / addr_parse_mailbox.
 *
 * The first input byte picks the flags, the rest is the text. Checks,
 * beyond the sanitizers: a parsed address respects the length limits, a
 * failure leaves a reason and an empty struct, and a parsed path formats
 * and parses again into exactly the same struct (no source route, no
 * surprise: what routing sees is what was written).
 */
/* fuzz-sources: src/mail/addr.c src/lib/err.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "mail/addr.h"

static void
check(const struct addr *a, int flags)
{
	if (strlen(a->local) > ADDR_LOCAL_MAX ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	if (a->is_null && (!(flags & ADDR_ALLOW_NULL) || a->local[0] != '\0'))
		abort();
	if (a->has_utf8 && !(flags & ADDR_ALLOW_UTF8))
		abort();
	if (!a->is_null && a->local[0] == '\0')
		abort();
	if (!a->is_null && a->domain[0] == '\0' &&
	    !(flags & ADDR_ALLOW_NO_DOMAIN))
		abort();
	for (const char *p = a->local; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
	for (const char *p = a->domain; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ' ' ||
		    *p == '@' || *p == '>')
			abort();
}

/* Formats a and parses "<formatted>" again: it must give the same. */
static void
round_trip(const struct addr *a, int flags)
{
	char text[ADDR_MAX + 1], path[ADDR_MAX + 4];
	const char *end;
	struct addr b;
	struct err e;

	addr_format(a, text, sizeof(text));
	path[0] = '<';
	memcpy(path + 1, text, strlen(text));
	memcpy(path + 1 + strlen(text), ">", 2);
	if (addr_parse_path(path, &end, flags, &b, &e) != 0)
		abort();
	if (*end != '\0' || memcmp(a, &b, sizeof(b)) != 0)
		abort();
	if (a->domain[0] && !addr_domain_equal(a->domain, b.domain))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr a;
	struct err e;
	const char *end;
	char *s;
	int flags;

	if (size == 0)
		return 0;
	flags = data[0] & (ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8 |
	    ADDR_ALLOW_NO_DOMAIN);
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	err_clear(&e);
	if (addr_parse_path(s, &end, flags, &a, &e) == 0) {
		if (end <= s || end > s + strlen(s) || end[-1] != '>')
			abort();
		check(&a, flags);
		round_trip(&a, flags);
	} else if (e.msg[0] == '\0' || a.local[0] || a.domain[0])
		abort();

	err_clear(&e);
	if (addr_parse_mailbox(s, flags, &a, &e) == 0) {
		check(&a, flags);
		round_trip(&a, flags);
	} else if (e.msg[0] == '\0' || a.local[0] || a.domain[0])
		abort();
	free(s);
	return 0;
}
