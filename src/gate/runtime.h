/*
 * runtime.h - the rules in force: a configuration snapshot and the
 * address map loaded from it, reference-counted together. A session takes
 * a reference when it starts and keeps it to the end, so a SIGHUP reload
 * never changes the rules in the middle of a transaction.
 */
#ifndef SMTPGATE_GATE_RUNTIME_H
#define SMTPGATE_GATE_RUNTIME_H

#include <stddef.h>

#include <openssl/ssl.h>

struct buf;
struct config;
struct addrmap;
struct auth_users;

struct runtime {
	int			 refs;
	struct config		*cfg;
	struct addrmap		*map;		/* NULL: no address_map */
	struct auth_users	*users;		/* NULL: no auth_users */
	SSL_CTX			*tls_server;	/* NULL: no STARTTLS offered */
};

/*
 * Loads configuration, address map, auth_users and the TLS certificate
 * and key (so SIGHUP reloads them all); problems go to errors as
 * "FILE:LINE: message" lines. Returns a runtime with one reference, or
 * NULL on any error.
 */
struct runtime	*runtime_load(const char *file, char *const *overrides,
		    size_t noverrides, struct buf *errors);
struct runtime	*runtime_ref(struct runtime *rt);
void		 runtime_unref(struct runtime *rt);

#endif
