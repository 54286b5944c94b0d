/*
 * fuzz_smtp_auth.c - libFuzzer target for the pure parts of
 * src/gate/smtp_auth.c: base64 of SASL responses (a client's bytes),
 * the PLAIN response split, and the auth_users table.
 *
 * Input: byte 0 picks the mode, byte 1 a buffer size, the rest is the
 * subject. Every output buffer is a heap block of exactly the size
 * given, so a write past it is caught. Checks, beyond the sanitizers:
 * 0 - auth_b64_decode of the rest as a line: -1, or n < size with
 *     out[n] == NUL, only for a line of 4k characters from the base64
 *     alphabet with at most two trailing '=', n = 3k - padding, and
 *     encoding the n bytes again gives the line back except for the
 *     unused bits of its last character; a size one byte too small for
 *     n fails.
 * 1 - the rest as bytes (NULs too): encoded, then decoded with an
 *     exact-size buffer, gives them back; encoding into a buffer one
 *     byte too small gives "".
 * 2 - auth_plain_split of the rest: success exactly when the response
 *     is authzid NUL authcid NUL passwd with a non-empty authcid and no
 *     further NUL, authzid empty or equal to authcid, and both fitting
 *     their buffers (sizes from byte 1); user and pass are then those
 *     parts. An error has a text.
 * 3 - auth_users_parse of the rest: NULL exactly when an error was
 *     appended; otherwise every "user:hash" line (CR LF or LF) is found
 *     by auth_users_hash with its hash, and a name not in the file is
 *     not; a line with a NUL byte is an error (it once made
 *     auth_users_parse read and write past its copy of the line).
 */
/* fuzz-sources: src/gate/smtp_auth.c src/lib/buf.c src/lib/err.c src/lib/mem.c src/lib/fsio.c src/lib/log.c src/lib/str.c */
/* fuzz-libs: -levent -lcrypto -lcrypt -lpthread */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gate/smtp_auth.h"
#include "lib/buf.h"
#include "lib/err.h"

static char *
xalloc(size_t n)
{
	char *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static void
mode_decode(const char *line, size_t size)
{
	size_t len = strlen(line), pad = 0, need;
	char *out = xalloc(size), *enc, *small;
	long n;

	n = auth_b64_decode(line, out, size);
	if (n == -1) {
		free(out);
		return;
	}
	if (n < 0 || (size_t)n >= size || out[n] != '\0' || len % 4 != 0)
		abort();
	while (pad < len && line[len - 1 - pad] == '=')
		pad++;
	if (pad > 2)
		abort();
	for (size_t i = 0; i < len - pad; i++)
		if (b64val(line[i]) < 0)
			abort();
	if ((size_t)n != len / 4 * 3 - pad)
		abort();
	need = ((size_t)n + 2) / 3 * 4 + 1;
	enc = xalloc(need);
	auth_b64_encode(out, (size_t)n, enc, need);
	if (strlen(enc) != len)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (enc[i] == line[i])
			continue;
		/* only the last data character, in its unused low bits */
		if (i != len - pad - 1 || pad == 0 || b64val(line[i]) < 0 ||
		    (b64val(enc[i]) & ~(pad == 1 ? 3 : 15)) !=
		    (b64val(line[i]) & ~(pad == 1 ? 3 : 15)))
			abort();
	}
	small = xalloc((size_t)n);
	if (auth_b64_decode(line, small, (size_t)n) != -1)
		abort();
	free(small);
	free(enc);
	free(out);
}

static void
mode_encode(const uint8_t *data, size_t len)
{
	size_t need = (len + 2) / 3 * 4 + 1;
	char *enc = xalloc(need), *dec = xalloc(len + 1), *small;

	auth_b64_encode(data, len, enc, need);
	if (strlen(enc) != need - 1)
		abort();
	if (auth_b64_decode(enc, dec, len + 1) != (long)len ||
	    memcmp(dec, data, len) != 0 || dec[len] != '\0')
		abort();
	small = xalloc(need - 1);
	small[0] = 'x';
	auth_b64_encode(data, len, small, need - 1);
	if (len > 0 && small[0] != '\0')
		abort();
	free(small);
	free(enc);
	free(dec);
}

static void
mode_plain(const uint8_t *data, size_t len, size_t usize, size_t psize)
{
	char *msg = xalloc(len), *user = xalloc(usize), *pass = xalloc(psize);
	const char *z, *c, *pw, *end;
	size_t zlen, clen, plen;
	bool ok = false;
	struct err e;
	int rc;

	memcpy(msg, data, len);
	err_clear(&e);
	rc = auth_plain_split(msg, len, user, usize, pass, psize, &e);

	/* The oracle. */
	z = msg;
	end = msg + len;
	c = memchr(z, '\0', len);
	pw = c ? memchr(c + 1, '\0', (size_t)(end - c - 1)) : NULL;
	if (c && pw) {
		zlen = (size_t)(c - z);
		clen = (size_t)(pw - c - 1);
		plen = (size_t)(end - pw - 1);
		ok = clen > 0 && clen < usize && plen < psize &&
		    memchr(pw + 1, '\0', plen) == NULL &&
		    (zlen == 0 || (zlen == clen && memcmp(z, c + 1, clen) ==
		    0));
	}
	if (rc != (ok ? 0 : -1))
		abort();
	if (rc == -1 && e.msg[0] == '\0')
		abort();
	if (rc == 0 && (strlen(user) != clen || memcmp(user, c + 1, clen) ||
	    strlen(pass) != plen || memcmp(pass, pw + 1, plen)))
		abort();
	free(msg);
	free(user);
	free(pass);
}

static void
mode_users(const uint8_t *data, size_t len)
{
	struct auth_users *u;
	struct buf errors;
	char *text = xalloc(len);
	size_t pos = 0;

	memcpy(text, data, len);
	buf_init(&errors);
	u = auth_users_parse("fuzz", text, len, &errors);
	if ((u == NULL) != (errors.len > 0))
		abort();
	if (u && auth_users_hash(u, "no such user\n") != NULL)
		abort();
	while (u && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *line = strndup(text + pos, n), *colon;
		const char *h;

		if (line == NULL)
			abort();
		pos += n + 1;
		n = strlen(line);
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		if (line[0] != '\0' && line[0] != '#') {
			if ((colon = strchr(line, ':')) == NULL)
				abort();
			*colon = '\0';
			h = auth_users_hash(u, line);
			if (h == NULL || strcmp(h, colon + 1) != 0 ||
			    h[0] != '$')
				abort();
		}
		free(line);
	}
	auth_users_free(u);
	buf_clear(&errors);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;

	if (size < 2)
		return 0;
	switch (data[0] % 4) {
	case 0:
		line = strndup((const char *)data + 2, size - 2);
		if (line == NULL)
			abort();
		mode_decode(line, 1 + (size_t)data[1] * 8);
		free(line);
		break;
	case 1:
		mode_encode(data + 2, size - 2);
		break;
	case 2:
		mode_plain(data + 2, size - 2, 1 + data[1] % 16,
		    1 + data[1] / 16 * 4);
		break;
	default:
		mode_users(data + 2, size - 2);
		break;
	}
	return 0;
}
