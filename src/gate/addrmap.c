/*
 * addrmap.c - the address map (SPEC §2 address_map, recipient_delimiter)
 * and the rule for mailbox names.
 *
 * Layer: gate. Owns a loaded map: a hash table of lowercased keys, each
 * with its list of targets. A map is read-only once built, so one map can
 * be shared by every session and worker thread; a reload builds a new one.
 * The parser works on bytes (the file may hold anything, NUL included)
 * and reports every problem as "FILE:LINE: message"; resolving is pure.
 * Never: touch the disk other than reading the one map file, log, or let
 * a name that could leave postoffice_dir become a ROUTE_MAILBOX.
 *
 * File format, as in Postfix's lookup tables:
 *	# comment
 *	alice@example.org	alice
 *	staff			alice, bob, carol@elsewhere.example
 *				dave		(continues the line above)
 *	@example.org		catchall
 * A line that starts with whitespace continues the previous entry's list;
 * a '#' at the start of a line, or at the start of a target, begins a
 * comment that runs to the end of the line.
 */
#include "gate/addrmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/fsio.h"
#include "lib/mem.h"
#include "lib/str.h"

#define ADDRMAP_DEPTH_MAX	8		/* levels of re-resolution */
#define ADDRMAP_WORK_MAX	1000000		/* targets per resolve */
#define ADDRMAP_FILE_MAX	(512UL * 1024 * 1024)
#define LOCAL_MAX		64		/* RFC 5321 §4.5.3.1.1 */
#define DOMAIN_MAX		255		/* RFC 5321 §4.5.3.1.2 */

/*
 * An open-addressing hash table from borrowed strings (plus a small tag
 * that is part of the identity) to a size_t. Grows at half load, so
 * building it for n keys costs O(n) amortized.
 */
struct hslot {
	const char	*key;		/* NULL: empty slot */
	uint32_t	 hash;
	int		 tag;
	size_t		 val;
};

struct htab {
	struct hslot	*v;
	size_t		 cap;		/* 0 or a power of two */
	size_t		 len;
};

struct entry {
	char		*key;		/* lowercased */
	size_t		 first;		/* index of the first target */
	size_t		 count;
};

struct addrmap {
	struct entry	*entries;
	size_t		 len;
	size_t		 size;
	struct route	*targets;
	size_t		 ntargets;
	size_t		 targets_size;
	struct htab	 index;		/* key -> index in entries */
};

static uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static struct hslot *
htab_slot(const struct htab *t, const char *key, uint32_t h, int tag)
{
	size_t mask = t->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct hslot *s = &t->v[i];
		if (s->key == NULL || (s->hash == h && s->tag == tag &&
		    strcmp(s->key, key) == 0))
			return s;
	}
}

static struct hslot *
htab_find(const struct htab *t, const char *key, int tag)
{
	struct hslot *s;

	if (t->cap == 0)
		return NULL;
	s = htab_slot(t, key, hash_str(key), tag);
	return s->key ? s : NULL;
}

static void
htab_grow(struct htab *t)
{
	struct htab n;

	n.cap = t->cap ? t->cap * 2 : 16;
	n.len = t->len;
	n.v = xreallocarray(NULL, n.cap, sizeof(*n.v));
	memset(n.v, 0, n.cap * sizeof(*n.v));
	for (size_t i = 0; i < t->cap; i++)
		if (t->v[i].key)
			*htab_slot(&n, t->v[i].key, t->v[i].hash,
			    t->v[i].tag) = t->v[i];
	free(t->v);
	*t = n;
}

/* Adds key -> val unless key is there; returns the slot and whether new. */
static struct hslot *
htab_add(struct htab *t, const char *key, int tag, size_t val, bool *is_new)
{
	uint32_t h = hash_str(key);
	struct hslot *s;

	if ((t->len + 1) * 2 > t->cap)
		htab_grow(t);
	s = htab_slot(t, key, h, tag);
	*is_new = s->key == NULL;
	if (*is_new) {
		s->key = key;
		s->hash = h;
		s->tag = tag;
		s->val = val;
		t->len++;
	}
	return s;
}

static void
htab_clear(struct htab *t)
{
	free(t->v);
	t->v = NULL;
	t->cap = t->len = 0;
}

static bool
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* RFC 5322 §3.2.3 specials: never in an unquoted local part. */
static bool
is_special(unsigned char c)
{
	return c != '\0' && strchr("()<>[]:;@\\,\"", c) != NULL;
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Appends s with control bytes as \xNN: an error stays one line. */
static void
put_escaped(struct buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_ctl(c) || c == '\\')
			buf_printf(b, "\\x%02x", c);
		else
			buf_putc(b, (char)c);
	}
}

/* A dot-string local part (RFC 5321 §4.1.2), UTF-8 allowed (RFC 6531). */
static bool
local_valid(const char *s, size_t len)
{
	if (len == 0 || len > LOCAL_MAX || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || is_ctl(c) || is_special(c))
			return false;
		if (c == '.' && i + 1 < len && s[i + 1] == '.')
			return false;
	}
	return true;
}

/* A host name (letters, digits, '-', '_', UTF-8) or an address literal. */
static bool
domain_valid(const char *s, size_t len)
{
	if (len == 0 || len > DOMAIN_MAX)
		return false;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return false;
		for (size_t i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c <= ' ' || c == 0x7f || c == '[' || c == ']' ||
			    c == '\\')
				return false;
		}
		return true;
	}
	if (s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (i + 1 < len && s[i + 1] == '.')
				return false;
		} else if (!(c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return false;
	}
	return true;
}

bool
mailbox_name_valid(const char *name)
{
	size_t len;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return false;	/* also refuses "." and ".." */
	len = strlen(name);
	if (len > MAILBOX_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || is_ctl((unsigned char)name[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Parsing */

enum entry_state {
	ENTRY_NONE,		/* no entry yet: a continuation is an error */
	ENTRY_OPEN,		/* targets go to the last entry */
	ENTRY_SKIP,		/* bad or duplicate key: check, then drop */
};

struct parser {
	const char	*name;
	struct buf	*errors;
	struct addrmap	*m;
	size_t		 line;
	bool		 failed;
	enum entry_state state;
	size_t		 entry_line;	/* where the open entry's key is */
	bool		 entry_bad;	/* a target of it was refused */
	struct buf	 key_text;	/* the open entry's key, as written */
};

static void
parse_error(struct parser *p, size_t line, const char *fmt, const char *tok,
    size_t len, const char *after)
{
	buf_printf(p->errors, "%s:%zu: ", p->name, line);
	p->entry_bad = true;
	buf_puts(p->errors, fmt);
	put_escaped(p->errors, tok, len);
	buf_puts(p->errors, after);
	buf_putc(p->errors, '\n');
	p->failed = true;
}

/* Copies len bytes, lowercased, with a trailing dot of the domain removed. */
static char *
normalize(const char *s, size_t len, bool lower_local)
{
	char *out = xstrndup(s, len), *at = strrchr(out, '@');
	size_t n = strlen(out);

	if (at && n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
	if (lower_local || at == NULL)
		return lower_local ? str_lower(out) : out;
	str_lower(at);
	return out;
}

/* Strips one trailing dot of a domain part for the checks below. */
static size_t
domain_len(const char *d, size_t len)
{
	if (len > 1 && d[len - 1] == '.')
		len--;
	return len;
}

static bool
key_valid(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);
	size_t llen;

	if (at == NULL)
		return local_valid(s, len);
	llen = (size_t)(at - s);
	if (llen != 0 && !local_valid(s, llen))
		return false;
	return domain_valid(at + 1, domain_len(at + 1, len - llen - 1));
}

static bool
remote_valid(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);
	size_t llen = (size_t)(at - s);

	return llen != 0 && local_valid(s, llen) &&
	    domain_valid(at + 1, domain_len(at + 1, len - llen - 1));
}

static void
add_target(struct addrmap *m, enum route_kind kind, char *name)
{
	struct entry *en = &m->entries[m->len - 1];

	if (m->ntargets == m->targets_size) {
		m->targets_size = m->targets_size ? m->targets_size * 2 : 64;
		m->targets = xreallocarray(m->targets, m->targets_size,
		    sizeof(*m->targets));
	}
	m->targets[m->ntargets].kind = kind;
	m->targets[m->ntargets].name = name;
	m->ntargets++;
	en->count++;
}

static void
parse_target(struct parser *p, const char *tok, size_t len)
{
	enum route_kind kind;
	char *name;

	if (memchr(tok, '@', len)) {
		if (!remote_valid(tok, len)) {
			parse_error(p, p->line, "bad address '", tok, len, "'");
			return;
		}
		kind = ROUTE_REMOTE;
		name = normalize(tok, len, false);
	} else {
		if (memchr(tok, '\0', len) || len > MAILBOX_NAME_MAX) {
			parse_error(p, p->line, "bad mailbox name '", tok, len,
			    "'");
			return;
		}
		name = str_lower(xstrndup(tok, len));
		if (!mailbox_name_valid(name)) {
			parse_error(p, p->line, "bad mailbox name '", tok, len,
			    "'");
			free(name);
			return;
		}
		kind = ROUTE_MAILBOX;
	}
	if (p->state == ENTRY_OPEN)
		add_target(p->m, kind, name);
	else
		free(name);
}

/* Targets separated by commas and/or blanks; '#' starting one ends them. */
static void
parse_targets(struct parser *p, const char *s, const char *end)
{
	while (s < end) {
		const char *tok;

		while (s < end && (is_blank((unsigned char)*s) || *s == ','))
			s++;
		if (s == end || *s == '#')
			return;
		tok = s;
		while (s < end && !is_blank((unsigned char)*s) && *s != ',')
			s++;
		parse_target(p, tok, (size_t)(s - tok));
	}
}

/* An entry is complete when the next key or the end of the file comes. */
static void
close_entry(struct parser *p)
{
	struct addrmap *m = p->m;

	/* Not when its targets were refused: that was said already. */
	if (p->state == ENTRY_OPEN && !p->entry_bad &&
	    m->entries[m->len - 1].count == 0)
		parse_error(p, p->entry_line, "'", p->key_text.data,
		    p->key_text.len, "' has no targets");
	p->state = ENTRY_NONE;
}

static void
open_entry(struct parser *p, const char *key, size_t len)
{
	struct addrmap *m = p->m;
	struct entry *en;
	char *lkey;
	bool is_new;

	p->entry_line = p->line;
	p->entry_bad = false;
	buf_reset(&p->key_text);
	buf_append(&p->key_text, key, len);
	p->state = ENTRY_SKIP;
	if (!key_valid(key, len)) {
		if (len > 1 && key[len - 1] == ':' && key_valid(key, len - 1))
			parse_error(p, p->line, "bad address '", key, len,
			    "' (write ADDRESS TARGET, without ':')");
		else
			parse_error(p, p->line, "bad address '", key, len,
			    "'");
		return;
	}
	lkey = normalize(key, len, true);
	(void)htab_add(&m->index, lkey, 0, m->len, &is_new);
	if (!is_new) {
		parse_error(p, p->line, "duplicate key '", key, len, "'");
		free(lkey);
		return;
	}
	if (m->len == m->size) {
		m->size = m->size ? m->size * 2 : 64;
		m->entries = xreallocarray(m->entries, m->size,
		    sizeof(*m->entries));
	}
	/* The table borrows lkey: the entry owns it until addrmap_free. */
	en = &m->entries[m->len++];
	en->key = lkey;
	en->first = m->ntargets;
	en->count = 0;
	p->state = ENTRY_OPEN;
}

static void
parse_line(struct parser *p, const char *s, const char *end)
{
	const char *key;

	while (end > s && end[-1] == '\r')
		end--;
	key = s;
	while (key < end && is_blank((unsigned char)*key))
		key++;
	if (key == end || *key == '#')
		return;
	if (key != s) {
		/* A continuation line, as in Postfix's tables. */
		if (p->state == ENTRY_NONE) {
			buf_printf(p->errors, "%s:%zu: continuation line "
			    "without an address before it\n", p->name,
			    p->line);
			p->failed = true;
			p->state = ENTRY_SKIP;
		}
		parse_targets(p, key, end);
		return;
	}
	close_entry(p);
	while (s < end && !is_blank((unsigned char)*s))
		s++;
	open_entry(p, key, (size_t)(s - key));
	parse_targets(p, s, end);
}

/*
 * Builds a map from text (len bytes, any content). name is the file name
 * used in error lines. Appends "NAME:LINE: message\n" for every problem to
 * errors (may be NULL). Returns NULL when there was any; caller frees the
 * map with addrmap_free.
 */
struct addrmap *
addrmap_parse(const char *name, const char *text, size_t len,
    struct buf *errors)
{
	struct parser p;
	struct buf scratch;
	const char *s = text, *end = text + len;

	buf_init(&scratch);
	memset(&p, 0, sizeof(p));
	p.name = name;
	p.errors = errors ? errors : &scratch;
	p.m = xcalloc(1, sizeof(*p.m));
	p.state = ENTRY_NONE;
	buf_init(&p.key_text);
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *eol = nl ? nl : end;

		p.line++;
		parse_line(&p, s, eol);
		s = nl ? nl + 1 : end;
	}
	close_entry(&p);
	buf_clear(&p.key_text);
	buf_clear(&scratch);
	if (p.failed) {
		addrmap_free(p.m);
		return NULL;
	}
	return p.m;
}

struct addrmap *
addrmap_load(const char *path, struct buf *errors)
{
	struct addrmap *m;
	struct err e;
	size_t len;
	char *text;

	text = fsio_read_file(path, ADDRMAP_FILE_MAX, &len, &e);
	if (text == NULL) {
		if (errors && e.errnum)
			buf_printf(errors, "%s: %s\n", path,
			    strerror(e.errnum));
		else if (errors)
			buf_printf(errors, "%s\n", e.msg);
		return NULL;
	}
	m = addrmap_parse(path, text, len, errors);
	free(text);
	return m;
}

void
addrmap_free(struct addrmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->len; i++)
		free(m->entries[i].key);
	for (size_t i = 0; i < m->ntargets; i++)
		free(m->targets[i].name);
	free(m->entries);
	free(m->targets);
	htab_clear(&m->index);
	free(m);
}

size_t
addrmap_size(const struct addrmap *m)
{
	return m ? m->len : 0;
}

/* ------------------------------------------------------------------ */
/* Resolving */

enum visit_state {
	VISIT_ACTIVE,		/* being expanded: seeing it again is a loop */
	VISIT_DONE,		/* its routes are already collected */
};

struct resolver {
	const struct addrmap	*m;
	const char		*delimiter;
	addrmap_is_local_fn	 is_local;
	void			*arg;
	struct err		*e;
	struct route		*acc;		/* routes found so far */
	size_t			 acc_len;
	size_t			 acc_size;
	struct htab		 visited;	/* address key -> visit_state */
	char			**keys;		/* owned keys of visited */
	size_t			 nkeys;
	size_t			 keys_size;
	size_t			 work;
};

static void
acc_add(struct resolver *r, enum route_kind kind, char *name)
{
	if (r->acc_len == r->acc_size) {
		r->acc_size = r->acc_size ? r->acc_size * 2 : 8;
		r->acc = xreallocarray(r->acc, r->acc_size, sizeof(*r->acc));
	}
	r->acc[r->acc_len].kind = kind;
	r->acc[r->acc_len].name = name;
	r->acc_len++;
}

/* Sets e->msg from fmt with one string argument, escaped. */
static int
resolve_error(struct resolver *r, const char *fmt, const char *s, size_t len)
{
	struct buf b;

	buf_init(&b);
	put_escaped(&b, s, len);
	err_set(r->e, fmt, b.data ? b.data : "");
	buf_clear(&b);
	return -1;
}

/* Length of the local part without its extension (first delimiter). */
static size_t
base_len(const char *local, size_t len, const char *delimiter)
{
	size_t n;

	if (delimiter == NULL || *delimiter == '\0')
		return len;
	for (n = 0; n < len; n++)
		if (local[n] != '\0' && strchr(delimiter, local[n]))
			break;
	/* "+tag" alone keeps its name: an empty user is no user. */
	return n == 0 ? len : n;
}

static bool
is_postmaster(const char *local, const char *delimiter)
{
	size_t len = strlen(local);

	return base_len(local, len, delimiter) == 10 &&
	    strncasecmp(local, "postmaster", 10) == 0;
}

static const struct entry *
lookup(const struct addrmap *m, struct buf *k)
{
	struct hslot *s = htab_find(&m->index, k->data ? k->data : "", 0);

	return s ? &m->entries[s->val] : NULL;
}

/* Tries the keys in SPEC order; NULL when none is in the map. */
static const struct entry *
lookup_all(const struct addrmap *m, const char *local, size_t len,
    const char *domain, const char *delimiter)
{
	const struct entry *en = NULL;
	size_t blen = base_len(local, len, delimiter);
	struct buf k;

	buf_init(&k);
	/*
	 * Quoted local parts never match a user key; only the catch-all
	 * can take them.
	 */
	if (len > 0 && local[0] != '"') {
		/* "user+ext@domain", "user@domain", "user+ext", "user" */
		size_t lens[2] = { len, blen };
		for (int with_domain = 1; with_domain >= 0 && !en;
		    with_domain--) {
			for (int i = 0; i < 2 && !en; i++) {
				if (i == 1 && blen == len)
					break;
				buf_reset(&k);
				buf_append(&k, local, lens[i]);
				if (with_domain)
					buf_printf(&k, "@%s", domain);
				str_lower(k.data);
				en = lookup(m, &k);
			}
		}
	}
	if (en == NULL) {
		buf_reset(&k);
		buf_printf(&k, "@%s", domain);
		str_lower(k.data);
		en = lookup(m, &k);
	}
	buf_clear(&k);
	return en;
}

/* The mailbox named by the local part itself (no map, or self-reference). */
static int
resolve_identity(struct resolver *r, const char *local, size_t len)
{
	char *name;

	if (len > 0 && local[0] == '"')
		return err_set(r->e, "quoted local part is not a mailbox");
	len = base_len(local, len, r->delimiter);
	if (len > MAILBOX_NAME_MAX)
		return resolve_error(r, "'%s' is not a valid mailbox name",
		    local, len);
	name = str_lower(xstrndup(local, len));
	if (!mailbox_name_valid(name)) {
		free(name);
		return resolve_error(r, "'%s' is not a valid mailbox name",
		    local, len);
	}
	acc_add(r, ROUTE_MAILBOX, name);
	return 0;
}

static char *
address_key(struct resolver *r, const char *local, size_t len,
    const char *domain)
{
	char *k = xmalloc(len + strlen(domain) + 2);

	memcpy(k, local, len);
	k[len] = '@';
	memcpy(k + len + 1, domain, strlen(domain) + 1);
	str_lower(k);
	if (r->nkeys == r->keys_size) {
		r->keys_size = r->keys_size ? r->keys_size * 2 : 8;
		r->keys = xreallocarray(r->keys, r->keys_size,
		    sizeof(*r->keys));
	}
	r->keys[r->nkeys++] = k;
	return k;
}

static int expand(struct resolver *, const char *, size_t, const char *,
    int);

static int
expand_targets(struct resolver *r, const struct entry *en, const char *key,
    int depth)
{
	const struct route *t = &r->m->targets[en->first];

	for (size_t i = 0; i < en->count; i++, t++) {
		const char *at;

		if (++r->work > ADDRMAP_WORK_MAX)
			return err_set(r->e, "address map expansion too large");
		if (t->kind == ROUTE_MAILBOX) {
			acc_add(r, ROUTE_MAILBOX, xstrdup(t->name));
			continue;
		}
		at = strrchr(t->name, '@');
		if (r->is_local == NULL || !r->is_local(r->arg, at + 1)) {
			acc_add(r, ROUTE_REMOTE, xstrdup(t->name));
			continue;
		}
		/*
		 * An address that maps to itself ("alice  alice@here, ...")
		 * means its own mailbox, as in Postfix; any other way back
		 * to an address being expanded is a loop (expand says so).
		 */
		if (strcasecmp(t->name, key) == 0) {
			if (resolve_identity(r, t->name,
			    (size_t)(at - t->name)) == -1)
				return -1;
			continue;
		}
		if (expand(r, t->name, (size_t)(at - t->name), at + 1,
		    depth + 1) == -1)
			return -1;
	}
	return 0;
}

static int
expand(struct resolver *r, const char *local, size_t len, const char *domain,
    int depth)
{
	const struct entry *en;
	struct hslot *slot;
	char *key;
	bool is_new;

	key = address_key(r, local, len, domain);
	if (depth > ADDRMAP_DEPTH_MAX)
		return resolve_error(r, "aliases nested deeper than 8 levels "
		    "at %s", key, strlen(key));
	slot = htab_add(&r->visited, key, 0, VISIT_ACTIVE, &is_new);
	if (!is_new) {
		if (slot->val == VISIT_DONE)
			return 0;	/* its routes are in already */
		return resolve_error(r, "alias loop at %s", key, strlen(key));
	}
	en = r->m ? lookup_all(r->m, local, len, domain, r->delimiter) : NULL;
	if (en == NULL) {
		if (r->m == NULL)
			return resolve_identity(r, local, len);
		if (depth == 0)
			return err_set(r->e, "not in the address map");
		return resolve_error(r, "alias target %s is not in the "
		    "address map", key, strlen(key));
	}
	if (expand_targets(r, en, key, depth) == -1)
		return -1;
	/* Find again: the table may have grown meanwhile. */
	htab_find(&r->visited, key, 0)->val = VISIT_DONE;
	return 0;
}

/* Appends the collected routes to out, dropping those already there. */
static void
merge_routes(struct resolver *r, struct route_list *out)
{
	struct htab seen = { NULL, 0, 0 };
	size_t n = 0;
	bool is_new;

	for (size_t i = 0; i < out->len; i++)
		htab_add(&seen, out->v[i].name, (int)out->v[i].kind, 0,
		    &is_new);
	for (size_t i = 0; i < r->acc_len; i++) {
		htab_add(&seen, r->acc[i].name, (int)r->acc[i].kind, 0,
		    &is_new);
		if (is_new)
			r->acc[n++] = r->acc[i];
		else
			free(r->acc[i].name);
	}
	htab_clear(&seen);
	if (n > 0) {
		out->v = xreallocarray(out->v, out->len + n, sizeof(*out->v));
		memcpy(out->v + out->len, r->acc, n * sizeof(*r->acc));
		out->len += n;
	}
	r->acc_len = 0;
}

static void
discard_routes(struct resolver *r)
{
	for (size_t i = 0; i < r->acc_len; i++)
		free(r->acc[i].name);
	r->acc_len = 0;
}

static void
resolver_clear(struct resolver *r)
{
	discard_routes(r);
	free(r->acc);
	htab_clear(&r->visited);
	for (size_t i = 0; i < r->nkeys; i++)
		free(r->keys[i]);
	free(r->keys);
}

int
addrmap_resolve(const struct addrmap *m, const char *local,
    const char *domain, const char *delimiter, addrmap_is_local_fn is_local,
    void *arg, struct route_list *out, struct err *e)
{
	struct resolver r;
	struct buf dom;
	int rc;

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.delimiter = delimiter;
	r.is_local = is_local;
	r.arg = arg;
	r.e = e;
	/* Keys are stored without the root's trailing dot. */
	buf_init(&dom);
	buf_append(&dom, domain, domain_len(domain, strlen(domain)));
	rc = expand(&r, local, strlen(local), dom.data, 0);
	if (rc == -1 && is_postmaster(local, delimiter)) {
		/* RFC 5321 §4.5.1: postmaster must always be accepted. */
		discard_routes(&r);
		acc_add(&r, ROUTE_MAILBOX, xstrdup("postmaster"));
		rc = 0;
	}
	if (rc == 0)
		merge_routes(&r, out);
	resolver_clear(&r);
	buf_clear(&dom);
	return rc;
}

void
route_list_clear(struct route_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->len; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->len = 0;
}
