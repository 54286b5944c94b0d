/*
 * climit.c - per-address connection counters. Layer: gate. Owns its table;
 * entries disappear when their count reaches zero, so memory follows the
 * number of distinct clients connected now.
 */
#include "gate/climit.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"

struct centry {
	unsigned char	 key[16];
	unsigned	 count;
	struct centry	*next;
};

#define CLIMIT_BUCKETS	4096

struct climit {
	struct centry	*bucket[CLIMIT_BUCKETS];
};

struct climit *
climit_new(void)
{
	return xcalloc(1, sizeof(struct climit));
}

void
climit_free(struct climit *cl)
{
	if (cl == NULL)
		return;
	for (size_t i = 0; i < CLIMIT_BUCKETS; i++) {
		struct centry *e = cl->bucket[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(cl);
}

static void
make_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		memcpy(key, &in6->sin6_addr, 16);
	}
}

static size_t
hash_key(const unsigned char key[16])
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (int i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h % CLIMIT_BUCKETS);
}

unsigned
climit_add(struct climit *cl, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct centry *e;
	size_t h;

	make_key(sa, key);
	h = hash_key(key);
	for (e = cl->bucket[h]; e; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return ++e->count;
	e = xcalloc(1, sizeof(*e));
	memcpy(e->key, key, 16);
	e->count = 1;
	e->next = cl->bucket[h];
	cl->bucket[h] = e;
	return 1;
}

void
climit_del(struct climit *cl, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct centry **pp, *e;

	make_key(sa, key);
	for (pp = &cl->bucket[hash_key(key)]; (e = *pp); pp = &e->next) {
		if (memcmp(e->key, key, 16) != 0)
			continue;
		if (--e->count == 0) {
			*pp = e->next;
			free(e);
		}
		return;
	}
}
