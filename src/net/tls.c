/*
 * tls.c - OpenSSL contexts and descriptions. Layer: net. Owns nothing
 * beyond the contexts it returns; never logs (errors go to struct err).
 */
#include "net/tls.h"

#include <stdio.h>

#include <openssl/err.h>

#include "lib/err.h"

char *
tls_error_text(char *out, size_t size)
{
	unsigned long code = ERR_get_error();

	if (code == 0)
		snprintf(out, size, "unknown TLS error");
	else
		ERR_error_string_n(code, out, size);
	ERR_clear_error();
	return out;
}

static SSL_CTX *
ctx_new(const SSL_METHOD *method, struct err *e)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	char text[256];

	if (ctx == NULL) {
		err_set(e, "TLS: cannot create context: %s",
		    tls_error_text(text, sizeof(text)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file,
    struct err *e)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), e);
	char text[256];

	if (ctx == NULL)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		err_set(e, "tls_cert_file %s: %s", cert_file,
		    tls_error_text(text, sizeof(text)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) !=
	    1) {
		err_set(e, "tls_key_file %s: %s", key_file,
		    tls_error_text(text, sizeof(text)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err_set(e, "tls_key_file %s does not match tls_cert_file %s",
		    key_file, cert_file);
		ERR_clear_error();
		goto fail;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"smtpgate",
	    8);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx_new(struct err *e)
{
	SSL_CTX *ctx = ctx_new(TLS_client_method(), e);

	if (ctx == NULL)
		return NULL;
	/* Opportunistic TLS (RFC 7435): encrypt, do not authenticate. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

char *
tls_describe(const SSL *ssl, char *out, size_t size)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;

	snprintf(out, size, "%s with cipher %s (%d/%d bits)",
	    SSL_get_version(ssl), c ? SSL_CIPHER_get_name(c) : "none", bits,
	    alg);
	return out;
}
