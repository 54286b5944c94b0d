/*
 * runtime.c - configuration + address map snapshots. Layer: gate.
 * Single-threaded: references are taken and dropped on the event loop.
 */
#include "gate/runtime.h"

#include <stdlib.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/err.h"
#include "net/tls.h"
#include "gate/addrmap.h"
#include "gate/config.h"
#include "gate/smtp_auth.h"

struct runtime *
runtime_load(const char *file, char *const *overrides, size_t noverrides,
    struct buf *errors)
{
	struct runtime *rt;
	struct config *cfg;
	struct err e;
	size_t before;

	cfg = config_load(file, overrides, noverrides, errors);
	if (cfg == NULL)
		return NULL;
	rt = xcalloc(1, sizeof(*rt));
	rt->refs = 1;
	rt->cfg = cfg;
	before = errors->len;
	if (cfg->address_map[0] != '\0')
		rt->map = addrmap_load(cfg->address_map, errors);
	if (cfg->auth_users[0] != '\0')
		rt->users = auth_users_load(cfg->auth_users, errors);
	if (cfg->tls_cert_file[0] != '\0' && cfg->tls_key_file[0] != '\0') {
		err_clear(&e);
		rt->tls_server = tls_server_ctx_new(cfg->tls_cert_file,
		    cfg->tls_key_file, &e);
		if (rt->tls_server == NULL)
			buf_printf(errors, "%s: %s\n", file ? file :
			    "(defaults)", e.msg);
	}
	if (errors->len != before) {
		runtime_unref(rt);
		return NULL;
	}
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
	auth_users_free(rt->users);
	SSL_CTX_free(rt->tls_server);
	config_unref(rt->cfg);
	free(rt);
}
