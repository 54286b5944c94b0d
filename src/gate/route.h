/*
 * route.h - where a recipient goes, decided once at RCPT time (or by
 * `smtpgate sendmail`): a local domain resolves through the address map
 * into postoffice mailboxes and/or remote addresses; any other domain is
 * relayed, when the client may relay.
 */
#ifndef SMTPGATE_GATE_ROUTE_H
#define SMTPGATE_GATE_ROUTE_H

#include <stdbool.h>

struct addr;
struct envelope;
struct err;
struct runtime;

enum route_result {
	ROUTE_ACCEPTED,
	ROUTE_UNKNOWN_USER,	/* local domain, no mailbox: 550 5.1.1 */
	ROUTE_RELAY_DENIED,	/* not local and no right to relay: 554 5.7.1 */
};

/*
 * Adds the recipient a to env (duplicates of a target are merged).
 * notify/orcpt may be NULL. On ROUTE_UNKNOWN_USER e->msg says why.
 * *rcpt_out (ADDR_MAX+1 bytes) gets the address as recorded, with a
 * local domain added to a bare <postmaster>.
 */
enum route_result route_rcpt(const struct runtime *rt, const struct addr *a,
		    bool may_relay, const char *notify, const char *orcpt,
		    struct envelope *env, char *rcpt_out, struct err *e);

#endif
