/*
 * addrmap.h - the address map (SPEC §2 address_map) and mailbox names.
 *
 * Resolves a recipient in a local domain to mailboxes of the postoffice
 * and/or remote addresses: aliases, lists, "@domain" catch-alls and the
 * recipient delimiter. Pure once loaded (the loader reads one file).
 */
#ifndef SMTPGATE_GATE_ADDRMAP_H
#define SMTPGATE_GATE_ADDRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct err;

#define MAILBOX_NAME_MAX	255

enum route_kind {
	ROUTE_MAILBOX,		/* deliver into postoffice_dir/NAME */
	ROUTE_REMOTE,		/* relay to the address NAME (local@domain) */
};

struct route {
	enum route_kind	 kind;
	char		*name;	/* owned by the route_list */
};

struct route_list {
	struct route	*v;
	size_t		 len;
};

struct addrmap;

typedef bool (*addrmap_is_local_fn)(void *arg, const char *domain);

/*
 * Loads the map file: "ADDRESS  TARGET[, TARGET...]" lines, '#' comments,
 * blank lines. ADDRESS is "local@domain", a bare "local" (any local
 * domain) or "@domain" (catch-all). A TARGET without '@' is a mailbox name
 * (must pass mailbox_name_valid); with '@' it is an address. Problems are
 * appended to errors as "FILE:LINE: message\n". Returns NULL on any error;
 * caller frees with addrmap_free.
 */
struct addrmap	*addrmap_load(const char *path, struct buf *errors);
/*
 * The parser behind addrmap_load, on text of len bytes (any content, NUL
 * included); name stands for FILE in the error lines. Also accepted, as in
 * Postfix's tables: a line starting with whitespace continues the previous
 * entry's target list, and a '#' at the start of a target starts a
 * comment. Messages: "'KEY' has no targets", "bad address 'X'",
 * "bad mailbox name 'X'", "duplicate key 'KEY'" (control bytes shown as
 * \xNN). errors may be NULL. Returns NULL on any error; caller frees the
 * map with addrmap_free.
 */
struct addrmap	*addrmap_parse(const char *name, const char *text, size_t len,
		    struct buf *errors);
void		 addrmap_free(struct addrmap *m);
/* Number of entries (for the log after a reload). */
size_t		 addrmap_size(const struct addrmap *m);

/*
 * Resolves local@domain (domain is local) into out (appended, duplicates
 * removed). Lookup order: "local+ext@domain", "local@domain", "local",
 * "@domain", with the part from the first delimiter character removed for
 * the second round; keys compare case-insensitively. Targets in a local
 * domain are resolved again (at most 8 levels deep: deeper is an error).
 * m == NULL means no map: the local part (delimiter part removed,
 * lowercased) is the mailbox. "postmaster" always resolves (RFC 5321
 * §4.5.1): to the map's entry if any, else the mailbox "postmaster".
 * Returns 0, or -1 when the address has no mailbox (e->msg says why: the
 * caller answers 550 5.1.1).
 * Precisely: the keys tried are "local+ext@domain", "local@domain",
 * "local+ext", "local", "@domain" (Postfix's virtual(5) order); delimiter
 * is a set of characters, NULL or "" for none, and a local part that
 * starts with one keeps it. A quoted local part (starting with '"') only
 * matches "@domain" and is never a mailbox itself. A target address that
 * is the address being resolved means its own mailbox (as in Postfix);
 * any other way back to an address being resolved is an "alias loop".
 * is_local may be NULL (no target is local). On -1, out is unchanged.
 * The map is only read: concurrent calls on one map are safe.
 */
int		 addrmap_resolve(const struct addrmap *m, const char *local,
		    const char *domain, const char *delimiter,
		    addrmap_is_local_fn is_local, void *arg,
		    struct route_list *out, struct err *e);
void		 route_list_clear(struct route_list *l);

/*
 * True when name is safe as a directory name under postoffice_dir: 1 to
 * MAILBOX_NAME_MAX bytes, not starting with '.', no '/', no byte below 0x20
 * or 0x7f, and not "." or "..".
 */
bool		 mailbox_name_valid(const char *name);

#endif
