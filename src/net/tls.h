/*
 * tls.h - OpenSSL 3 contexts for STARTTLS, server and client side.
 *
 * TLS 1.2 and 1.3 only, with OpenSSL's default (modern) cipher lists.
 */
#ifndef SMTPGATE_NET_TLS_H
#define SMTPGATE_NET_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct err;

/* A server context with certificate chain and key (checked to match).
 * Caller frees with SSL_CTX_free. NULL with e filled naming the file. */
SSL_CTX	*tls_server_ctx_new(const char *cert_file, const char *key_file,
	    struct err *e);
/* A client context for opportunistic STARTTLS (no verification). */
SSL_CTX	*tls_client_ctx_new(struct err *e);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)". */
char	*tls_describe(const SSL *ssl, char *out, size_t size);
/* The first queued OpenSSL error as text (or "unknown TLS error"),
 * clearing the queue. */
char	*tls_error_text(char *out, size_t size);

#endif
