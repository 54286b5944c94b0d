/*
 * smtp_auth.h - SMTP AUTH (RFC 4954) support: the auth_users table
 * ("user:crypt-hash" lines, hashes by libcrypt: yescrypt, SHA-512-crypt,
 * bcrypt), SASL PLAIN (RFC 4616) and LOGIN decoding, and password checks
 * that run on a worker thread so a slow hash never stalls the event loop.
 */
#ifndef SMTPGATE_GATE_SMTP_AUTH_H
#define SMTPGATE_GATE_SMTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct err;
struct event_base;

#define AUTH_USER_MAX	256
#define AUTH_PASS_MAX	1024

struct auth_users;

/* Loads path; problems appended to errors as "FILE:LINE: message\n".
 * NULL on any error. Caller frees with auth_users_free. */
struct auth_users *auth_users_load(const char *path, struct buf *errors);
/* The same from text (name used in messages), for tests and fuzzing. */
struct auth_users *auth_users_parse(const char *name, const char *text,
		    size_t len, struct buf *errors);
void		 auth_users_free(struct auth_users *u);
/* The stored hash of user, or NULL. Borrowed, valid until free. */
const char	*auth_users_hash(const struct auth_users *u, const char *user);

/* Decodes base64 (RFC 4648, padding required) into out (NUL-terminated,
 * at most size-1 bytes). Returns the decoded length or -1. */
long		 auth_b64_decode(const char *in, char *out, size_t size);
/* Encodes len bytes as base64 into out (NUL-terminated). */
void		 auth_b64_encode(const void *in, size_t len, char *out,
		    size_t size);
/*
 * Decodes a PLAIN response "authzid NUL authcid NUL passwd" (already
 * base64-decoded, len bytes). authzid must be empty or equal to authcid.
 * Returns 0 or -1 with e->msg.
 */
int		 auth_plain_split(const char *msg, size_t len, char *user,
		    size_t usize, char *pass, size_t psize, struct err *e);

/* Hashes password with a new yescrypt salt into out. 0 or -1. */
int		 auth_hash_password(const char *password, char *out,
		    size_t size, struct err *e);
/* Synchronous check (for tests and the passwd command). hash may be NULL:
 * a dummy hash is checked so that timing does not reveal the user. */
bool		 auth_check_password(const char *hash, const char *password);

struct auth_check;
typedef void (*auth_check_fn)(void *arg, bool ok);
/*
 * Checks password against hash (NULL: unknown user) on the worker thread
 * and calls fn on base's loop with the result. The password is copied and
 * wiped after use. auth_check_cancel() before the callback: fn is not
 * called (the request frees itself).
 */
struct auth_check *auth_check_start(struct event_base *base,
		    const char *hash, const char *password, auth_check_fn fn,
		    void *arg);
void		 auth_check_cancel(struct auth_check *c);

#endif
