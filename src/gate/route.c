/*
 * route.c - recipient routing. Layer: gate. Pure given the runtime
 * snapshot: no I/O. Never an open relay: a non-local domain is only
 * accepted when the caller says the client may relay.
 */
#include "gate/route.h"

#include <stdio.h>

#include "lib/err.h"
#include "mail/addr.h"
#include "mail/envelope.h"
#include "gate/addrmap.h"
#include "gate/config.h"
#include "gate/runtime.h"

static bool
is_local(void *arg, const char *domain)
{
	return config_is_local_domain(arg, domain);
}

enum route_result
route_rcpt(const struct runtime *rt, const struct addr *a, bool may_relay,
    const char *notify, const char *orcpt, struct envelope *env,
    char *rcpt_out, struct err *e)
{
	const struct config *c = rt->cfg;
	struct route_list routes = { NULL, 0 };
	const char *domain = a->domain[0] ? a->domain : c->local_domains.v[0];

	addr_format(a, rcpt_out, ADDR_MAX + 1);
	if (a->domain[0] != '\0' && !config_is_local_domain(c, a->domain)) {
		if (!may_relay)
			return ROUTE_RELAY_DENIED;
		if (envelope_find_rcpt(env, RCPT_REMOTE, rcpt_out) == -1)
			envelope_add_rcpt(env, RCPT_REMOTE, rcpt_out, rcpt_out,
			    notify, orcpt);
		return ROUTE_ACCEPTED;
	}
	if (a->is_quoted) {
		err_set(e, "quoted local part is never a mailbox");
		return ROUTE_UNKNOWN_USER;
	}
	if (addrmap_resolve(rt->map, a->local, domain, c->recipient_delimiter,
	    is_local, (void *)c, &routes, e) == -1) {
		route_list_clear(&routes);
		return ROUTE_UNKNOWN_USER;
	}
	/* <postmaster> without a domain is recorded in a local domain. */
	if (a->domain[0] == '\0')
		snprintf(rcpt_out, ADDR_MAX + 1, "%s@%s", a->local, domain);
	for (size_t i = 0; i < routes.len; i++) {
		enum rcpt_kind kind = routes.v[i].kind == ROUTE_MAILBOX ?
		    RCPT_LOCAL : RCPT_REMOTE;

		if (envelope_find_rcpt(env, kind, routes.v[i].name) == -1)
			envelope_add_rcpt(env, kind, routes.v[i].name,
			    rcpt_out, notify, orcpt);
	}
	route_list_clear(&routes);
	return ROUTE_ACCEPTED;
}
