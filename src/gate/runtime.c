/*
 * runtime.c - configuration + address map snapshots. Layer: gate.
 * Single-threaded: references are taken and dropped on the event loop.
 */
#include "gate/runtime.h"

#include <stdlib.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "gate/addrmap.h"
#include "gate/config.h"

struct runtime *
runtime_load(const char *file, char *const *overrides, size_t noverrides,
    struct buf *errors)
{
	struct config *cfg;
	struct addrmap *map = NULL;
	struct runtime *rt;

	cfg = config_load(file, overrides, noverrides, errors);
	if (cfg == NULL)
		return NULL;
	if (cfg->address_map[0] != '\0') {
		map = addrmap_load(cfg->address_map, errors);
		if (map == NULL) {
			config_unref(cfg);
			return NULL;
		}
	}
	rt = xcalloc(1, sizeof(*rt));
	rt->refs = 1;
	rt->cfg = cfg;
	rt->map = map;
	return rt;
}

struct runtime *
runtime_ref(struct runtime *rt)
{
	rt->refs++;
	return rt;
}

void
runtime_unref(struct runtime *rt)
{
	if (rt == NULL || --rt->refs > 0)
		return;
	addrmap_free(rt->map);
	config_unref(rt->cfg);
	free(rt);
}
