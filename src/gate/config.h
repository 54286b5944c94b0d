/*
 * config.h - the configuration snapshot (SPEC §2).
 *
 * A struct config is read-only once loaded and reference-counted: a session
 * keeps the snapshot it started with, so SIGHUP never changes the rules in
 * the middle of a transaction (STYLE §4).
 */
#ifndef SMTPGATE_GATE_CONFIG_H
#define SMTPGATE_GATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/log.h"

struct strlist {
	char	**v;
	size_t	  len;
};

struct cidrlist {
	struct cidr	*v;
	size_t		 len;
};

struct config {
	int		refs;
	char		*file;		/* absolute path of -c FILE, NULL if none */
	char		*base_dir;	/* where relative paths resolve */

	char		*hostname;
	struct strlist	 listen;		/* "host:port" / "[v6]:port" */
	struct strlist	 submission_listen;
	char		*spool_dir;		/* absolute */
	char		*postoffice_dir;	/* absolute */
	struct strlist	 local_domains;		/* lowercased */
	char		*address_map;		/* absolute path, "" if none */
	char		*recipient_delimiter;	/* "" if none */
	char		*lmtp_host;		/* "" if none */
	char		*relay_host;		/* "" if none */
	struct strlist	 dns_servers;		/* empty: /etc/resolv.conf */
	struct cidrlist	 relay_networks;
	unsigned long long max_message_size;	/* bytes */
	unsigned	 max_recipients;
	unsigned	 max_connections;
	unsigned	 max_connections_per_ip;
	long		 command_timeout;	/* seconds */
	long		 data_timeout;		/* seconds */
	char		*tls_cert_file;		/* absolute path, "" if none */
	char		*tls_key_file;
	char		*auth_users;		/* absolute path, "" if none */
	bool		 auth_require_tls;
	long		 retry_min;		/* seconds */
	long		 retry_max;
	long		 queue_lifetime;
	long		 delay_warning;		/* 0: off */
	unsigned	 delivery_concurrency;
	bool		 proxy_protocol;
	long		 bind_retry;		/* seconds */
	char		*user;			/* "" or "root": no drop */
	enum log_target	 log;
	struct cidrlist	 trace_clients;
};

/*
 * Loads the configuration: embedded defaults, then FILE (NULL: none), then
 * each "KEY=VALUE" override in order. Every problem is appended to errors
 * as one line "FILE:LINE: message\n" (overrides are named "-o:N" with N
 * their position from 1), naming the key. Returns a snapshot with one
 * reference (caller drops it with config_unref), or NULL when any error was
 * found.
 */
struct config	*config_load(const char *file, char *const *overrides,
		    size_t noverrides, struct buf *errors);
/*
 * Same as config_load, with the file's content given as text (len bytes,
 * NUL bytes allowed: they are errors) instead of read from disk: name is
 * the file name used in messages ("(text)" when NULL), relative paths
 * resolve against base_dir (the current directory when NULL), c->file is
 * NULL. text == NULL: no file. For tests and fuzzing.
 */
struct config	*config_parse_text(const char *name, const char *text,
		    size_t len, const char *base_dir, char *const *overrides,
		    size_t noverrides, struct buf *errors);
/*
 * Validates the files the configuration names (address_map syntax,
 * auth_users syntax, TLS certificate and key readable and matching) and
 * writes problems as "FILE:LINE: message\n" lines. 0 when all is well.
 */
int		 config_check_files(const struct config *c, struct buf *errors);
struct config	*config_ref(struct config *c);
void		 config_unref(struct config *c);
/* Writes "key = value\n" for every key, in SPEC order, defaults included. */
void		 config_print(const struct config *c, struct buf *out);
/* True when domain (any case, one trailing dot ignored) is local. */
bool		 config_is_local_domain(const struct config *c,
		    const char *domain);

#endif
