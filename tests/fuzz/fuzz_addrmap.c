/*
 * fuzz_addrmap.c - libFuzzer target for the address map parser and the
 * resolver.
 *
 * The input is a map file. Whatever it holds, parsing must not crash and
 * must either give a map or at least one "map:LINE: " error line. When it
 * gives a map, the first word of every line (and a few fixed addresses)
 * is resolved, with and without the map, and every result must be safe:
 * a mailbox name that passes mailbox_name_valid, a remote address with
 * an '@', no duplicates, an error message when resolving fails, and
 * postmaster always resolving.
 */
/* fuzz-sources: src/gate/addrmap.c src/lib/mem.c src/lib/buf.c src/lib/str.c src/lib/err.c src/lib/fsio.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gate/addrmap.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#define MAX_PROBES	32

static bool
is_local(void *arg, const char *domain)
{
	(void)arg;
	return strcasecmp(domain, "localhost") == 0 ||
	    strcasecmp(domain, "example.org") == 0;
}

static void
check_routes(const struct route_list *l)
{
	for (size_t i = 0; i < l->len; i++) {
		const struct route *r = &l->v[i];
		if (r->kind == ROUTE_MAILBOX && !mailbox_name_valid(r->name))
			abort();
		if (r->kind == ROUTE_REMOTE && strchr(r->name, '@') == NULL)
			abort();
		for (size_t j = 0; j < i; j++)
			if (l->v[j].kind == r->kind &&
			    strcmp(l->v[j].name, r->name) == 0)
				abort();
	}
}

static void
probe(const struct addrmap *m, const char *addr)
{
	struct route_list l = { NULL, 0 };
	char *local = xstrdup(addr), *at = strrchr(local, '@');
	const char *domain = "localhost";
	struct err e;

	if (at) {
		*at = '\0';
		domain = at + 1;
	}
	err_clear(&e);
	if (addrmap_resolve(m, local, domain, "+-", is_local, NULL, &l,
	    &e) == 0) {
		if (l.len == 0)
			abort();
		check_routes(&l);
	} else if (e.msg[0] == '\0' || l.len != 0 ||
	    (strncasecmp(local, "postmaster", 10) == 0 &&
	    (local[10] == '\0' || local[10] == '+' || local[10] == '-'))) {
		abort();
	}
	route_list_clear(&l);
	free(local);
}

/* The first word of each line, as an address to resolve. */
static void
probe_lines(const struct addrmap *m, const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size;
	int n = 0;

	while (s < end && n < MAX_PROBES) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *eol = nl ? nl : end, *w = s;
		char *word;

		while (w < eol && *w != ' ' && *w != '\t')
			w++;
		word = xstrndup(s, (size_t)(w - s));
		probe(m, word);
		probe(NULL, word);
		free(word);
		n++;
		s = nl ? nl + 1 : end;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addrmap *m;
	struct buf errors;

	buf_init(&errors);
	m = addrmap_parse("map", (const char *)data, size, &errors);
	if (m == NULL) {
		/* Only whole "map:LINE: ..." lines. */
		if (errors.len == 0 || errors.data[errors.len - 1] != '\n')
			abort();
		for (const char *l = errors.data; *l;
		    l = strchr(l, '\n') + 1)
			if (strncmp(l, "map:", 4) != 0 || l[4] < '1' ||
			    l[4] > '9')
				abort();
	} else {
		if (errors.len != 0)
			abort();
		probe(m, "postmaster@localhost");
		probe(m, "nobody+x@example.org");
		probe(m, "\"quoted\"@example.org");
		probe_lines(m, data, size);
		addrmap_free(m);
	}
	buf_clear(&errors);
	return 0;
}
