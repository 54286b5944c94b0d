/*
 * smtp_auth.c - the auth_users table, SASL decoding and password checks.
 * Layer: gate. Owns the users table it loads and one worker thread (started
 * on first use) that runs crypt(3) for the event loop. Never logs
 * passwords; wipes every copy it makes.
 */
#include "gate/smtp_auth.h"

#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/mem.h"

#define AUTH_FILE_MAX	(64 * 1024 * 1024)

struct auth_user {
	char	*name;
	char	*hash;
};

struct auth_users {
	struct auth_user	*v;
	size_t			 len;
};

static int
cmp_user(const void *a, const void *b)
{
	return strcmp(((const struct auth_user *)a)->name,
	    ((const struct auth_user *)b)->name);
}

void
auth_users_free(struct auth_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->len; i++) {
		free(u->v[i].name);
		mem_wipe(u->v[i].hash, strlen(u->v[i].hash));
		free(u->v[i].hash);
	}
	free(u->v);
	free(u);
}

struct auth_users *
auth_users_parse(const char *name, const char *text, size_t len,
    struct buf *errors)
{
	struct auth_users *u = xcalloc(1, sizeof(*u));
	size_t pos = 0, nerrors = 0;
	int lineno = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *line, *colon;

		lineno++;
		if (memchr(text + pos, '\0', n) != NULL) {
			buf_printf(errors, "%s:%d: NUL byte in the line\n", name,
			    lineno);
			nerrors++;
			pos += n + 1;
			continue;
		}
		line = xstrndup(text + pos, n);
		pos += n + 1;
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		if (line[0] == '\0' || line[0] == '#') {
			free(line);
			continue;
		}
		colon = strchr(line, ':');
		if (colon == NULL || colon == line) {
			buf_printf(errors, "%s:%d: expected user:hash\n", name,
			    lineno);
			nerrors++;
		} else if (colon[1] != '$' || strpbrk(colon + 1, " \t:")) {
			*colon = '\0';
			buf_printf(errors, "%s:%d: user '%s': the hash must be "
			    "a crypt(3) hash starting with '$' (use smtpgate "
			    "passwd)\n", name, lineno, line);
			nerrors++;
		} else if (strpbrk(line, " \t") != NULL) {
			buf_printf(errors, "%s:%d: user name contains blanks\n",
			    name, lineno);
			nerrors++;
		} else {
			*colon = '\0';
			u->v = xreallocarray(u->v, u->len + 1, sizeof(*u->v));
			u->v[u->len].name = xstrdup(line);
			u->v[u->len].hash = xstrdup(colon + 1);
			u->len++;
		}
		mem_wipe(line, strlen(line));
		free(line);
	}
	if (u->len)
		qsort(u->v, u->len, sizeof(*u->v), cmp_user);
	for (size_t i = 1; i < u->len; i++)
		if (strcmp(u->v[i - 1].name, u->v[i].name) == 0) {
			buf_printf(errors, "%s: user '%s' is listed twice\n",
			    name, u->v[i].name);
			nerrors++;
		}
	if (nerrors) {
		auth_users_free(u);
		return NULL;
	}
	return u;
}

struct auth_users *
auth_users_load(const char *path, struct buf *errors)
{
	struct auth_users *u;
	struct err e;
	size_t len;
	char *text;

	err_clear(&e);
	text = fsio_read_file(path, AUTH_FILE_MAX, &len, &e);
	if (text == NULL) {
		buf_printf(errors, "%s: cannot read auth_users: %s\n", path,
		    e.msg);
		return NULL;
	}
	u = auth_users_parse(path, text, len, errors);
	mem_wipe(text, len);
	free(text);
	return u;
}

const char *
auth_users_hash(const struct auth_users *u, const char *user)
{
	struct auth_user key = { (char *)user, NULL }, *found;

	if (u == NULL || u->len == 0)
		return NULL;
	found = bsearch(&key, u->v, u->len, sizeof(*u->v), cmp_user);
	return found ? found->hash : NULL;
}

long
auth_b64_decode(const char *in, char *out, size_t size)
{
	size_t len = strlen(in);
	unsigned char *tmp;
	int n, pad = 0;

	if (len % 4 != 0 || len / 4 * 3 + 1 > size + 2)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (!ok || pad)
			return -1;
	}
	tmp = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)(n - pad) >= size) {
		mem_wipe(tmp, len / 4 * 3 + 1);
		free(tmp);
		return -1;
	}
	n -= pad;
	memcpy(out, tmp, (size_t)n);
	out[n] = '\0';
	mem_wipe(tmp, len / 4 * 3 + 1);
	free(tmp);
	return n;
}

void
auth_b64_encode(const void *in, size_t len, char *out, size_t size)
{
	if (size < (len + 2) / 3 * 4 + 1) {
		if (size)
			out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

int
auth_plain_split(const char *msg, size_t len, char *user, size_t usize,
    char *pass, size_t psize, struct err *e)
{
	const char *authz = msg, *authc, *pw, *end = msg + len;
	size_t zlen, clen, plen;

	authc = memchr(authz, '\0', len);
	if (authc == NULL)
		return err_set(e, "PLAIN response without NUL separators");
	authc++;
	pw = memchr(authc, '\0', (size_t)(end - authc));
	if (pw == NULL)
		return err_set(e, "PLAIN response without password");
	pw++;
	zlen = strlen(authz);
	clen = (size_t)(pw - 1 - authc);
	plen = (size_t)(end - pw);
	if (memchr(pw, '\0', plen) != NULL)
		return err_set(e, "PLAIN password contains NUL");
	if (clen == 0 || clen >= usize || plen >= psize)
		return err_set(e, "PLAIN user or password empty or too long");
	if (zlen && (zlen != clen || memcmp(authz, authc, clen) != 0))
		return err_set(e, "PLAIN authorization identity differs from "
		    "the user");
	memcpy(user, authc, clen);
	user[clen] = '\0';
	memcpy(pass, pw, plen);
	pass[plen] = '\0';
	return 0;
}

int
auth_hash_password(const char *password, char *out, size_t size,
    struct err *e)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	int rc = 0;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL)
		return err_sys(e, "crypt_gensalt");
	cd = xcalloc(1, sizeof(*cd));
	if (crypt_rn(password, salt, cd, sizeof(*cd)) == NULL ||
	    cd->output[0] == '*')
		rc = err_sys(e, "crypt");
	else if (snprintf(out, size, "%s", cd->output) >= (int)size)
		rc = err_set(e, "hash too long");
	mem_wipe(cd, sizeof(*cd));
	free(cd);
	return rc;
}

/* Checked for unknown users, so that they take as long as known ones. */
static char dummy_hash[CRYPT_OUTPUT_SIZE];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void
make_dummy_hash(void)
{
	if (auth_hash_password("smtpgate unknown user", dummy_hash,
	    sizeof(dummy_hash), NULL) == -1)
		dummy_hash[0] = '\0';
}

bool
auth_check_password(const char *hash, const char *password)
{
	struct crypt_data *cd;
	const char *h;
	bool ok = false;

	pthread_once(&dummy_once, make_dummy_hash);
	h = hash ? hash : dummy_hash;
	if (h[0] == '\0')
		return false;
	cd = xcalloc(1, sizeof(*cd));

	if (crypt_rn(password, h, cd, sizeof(*cd)) != NULL &&
	    cd->output[0] != '*' && strlen(cd->output) == strlen(h))
		ok = CRYPTO_memcmp(cd->output, h, strlen(h)) == 0;
	mem_wipe(cd, sizeof(*cd));
	free(cd);
	return ok && hash != NULL;
}

/* ---- the worker thread ----------------------------------------------- */

struct auth_check {
	char			*hash;		/* NULL: unknown user */
	char			*password;
	bool			 ok;
	bool			 is_cancelled;	/* under worker_lock */
	auth_check_fn		 fn;
	void			*arg;
	struct event		*done_ev;
	struct auth_check	*next;
};

static pthread_mutex_t worker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cond = PTHREAD_COND_INITIALIZER;
static struct auth_check *worker_head, *worker_tail;
static bool worker_started;

static void
check_free(struct auth_check *c)
{
	if (c->password) {
		mem_wipe(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->hash);
	event_free(c->done_ev);
	free(c);
}

static void *
worker_main(void *unused)
{
	for (;;) {
		struct auth_check *c;

		pthread_mutex_lock(&worker_lock);
		while (worker_head == NULL)
			pthread_cond_wait(&worker_cond, &worker_lock);
		c = worker_head;
		worker_head = c->next;
		if (worker_head == NULL)
			worker_tail = NULL;
		pthread_mutex_unlock(&worker_lock);
		c->ok = auth_check_password(c->hash, c->password);
		mem_wipe(c->password, strlen(c->password));
		/* Hands the result to the loop (libevent is thread-aware). */
		event_active(c->done_ev, 0, 0);
	}
	return NULL;
}

static void
check_done(evutil_socket_t fd, short what, void *arg)
{
	struct auth_check *c = arg;
	bool cancelled;

	pthread_mutex_lock(&worker_lock);
	cancelled = c->is_cancelled;
	pthread_mutex_unlock(&worker_lock);
	if (!cancelled)
		c->fn(c->arg, c->ok);
	check_free(c);
}

struct auth_check *
auth_check_start(struct event_base *base, const char *hash,
    const char *password, auth_check_fn fn, void *arg)
{
	struct auth_check *c = xcalloc(1, sizeof(*c));

	c->hash = hash ? xstrdup(hash) : NULL;
	c->password = xstrdup(password);
	c->fn = fn;
	c->arg = arg;
	c->done_ev = event_new(base, -1, 0, check_done, c);
	pthread_mutex_lock(&worker_lock);
	if (!worker_started) {
		pthread_t t;
		pthread_attr_t attr;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, worker_main, NULL) != 0)
			abort();	/* no thread: out of resources */
		pthread_attr_destroy(&attr);
		worker_started = true;
	}
	if (worker_tail)
		worker_tail->next = c;
	else
		worker_head = c;
	worker_tail = c;
	pthread_cond_signal(&worker_cond);
	pthread_mutex_unlock(&worker_lock);
	return c;
}

void
auth_check_cancel(struct auth_check *c)
{
	pthread_mutex_lock(&worker_lock);
	c->is_cancelled = true;
	pthread_mutex_unlock(&worker_lock);
}
