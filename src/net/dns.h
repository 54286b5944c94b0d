/*
 * dns.h - asynchronous MX and address look-ups for outbound delivery
 * (SPEC §2 dns_servers, §3 "by MX lookup (with the A/AAAA fallback and
 * null MX of RFC 7505)"), through c-ares inside the libevent loop.
 *
 * Single-threaded: every function is called from the loop thread. A
 * callback is never called from inside the dns_* function that started
 * the look-up, always from the loop, so that a caller never sees its own
 * callback before it has stored the query handle. A callback may call any
 * dns_* function, dns_free included.
 */
#ifndef SMTPGATE_NET_DNS_H
#define SMTPGATE_NET_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct err;
struct event_base;
struct dns;
struct dns_query;

enum dns_status {
	DNS_OK,
	DNS_NOTFOUND,	/* NXDOMAIN or a malformed name: permanent */
	DNS_NODATA,	/* the name exists without records of that type */
	DNS_NULLMX,	/* RFC 7505 null MX: the domain accepts no mail */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, timeout, network: retry later */
	DNS_STATUS_MAX
};

/* "ok", "notfound", "nodata", "nullmx", "tempfail". */
extern const char *const dns_status_names[DNS_STATUS_MAX];

struct dns_mx {
	const char	*host;		/* without trailing dot */
	unsigned	 preference;
};

/*
 * Results of dns_lookup_mx. status DNS_OK: nmx >= 1 exchangers sorted by
 * preference, ties in the order of the answer (stable sort). Otherwise
 * mx is NULL and nmx 0. reason is a short text for logs and DSNs ("" on
 * DNS_OK, else e.g. "Timeout while contacting DNS servers"). Everything is
 * borrowed, valid during the call only; the query handle is already freed.
 */
typedef void (*dns_mx_fn)(void *arg, enum dns_status status,
    const struct dns_mx *mx, size_t nmx, const char *reason);
/*
 * Results of dns_lookup_addr. status DNS_OK: naddrs >= 1 addresses
 * (AF_INET6 and AF_INET, in the order of RFC 6724 destination address
 * selection), port 0: the caller sets it. Otherwise addrs is NULL and
 * naddrs 0. Borrowed as for dns_mx_fn.
 */
typedef void (*dns_addr_fn)(void *arg, enum dns_status status,
    const struct sockaddr_storage *addrs, size_t naddrs, const char *reason);

/*
 * A resolver on base. servers: "ip", "ip:port", "v6", "[v6]" or
 * "[v6]:port" strings (port 53 by default); nservers 0 uses the system's
 * /etc/resolv.conf. Names are always absolute: no search domains. Each
 * query waits 5 s for the first answer and is tried twice (c-ares doubles
 * the wait on each round over the servers). Returns the resolver (caller
 * frees with dns_free), or NULL with e->msg ("dns server "x": ...").
 */
struct dns	*dns_new(struct event_base *base, char *const *servers,
		    size_t nservers, struct err *e);
/*
 * Replaces the timeout of the first try (milliseconds, > 0) and the number
 * of tries (> 0). Only while no look-up is pending (tests, start-up).
 * Returns 0, or -1 with e->msg.
 */
int		 dns_set_timeout(struct dns *d, unsigned timeout_ms,
		    unsigned tries, struct err *e);
/*
 * Frees the resolver. Pending look-ups are dropped: their callbacks are
 * NOT called, so a query's owner may already be gone. dns_free(NULL) is
 * fine. base must still exist.
 */
void		 dns_free(struct dns *d);

/*
 * Looks up the MX records of domain (borrowed). The callback gets, besides
 * the statuses of enum dns_status: DNS_NODATA when the domain exists
 * without MX (the caller delivers to the domain's own A/AAAA, RFC 5321
 * §5.1); DNS_NULLMX when its only MX targets the root "." (RFC 7505 §3;
 * null entries among real MX are dropped). Returns the query handle, never
 * NULL: any failure comes through the callback. The handle stays valid
 * until the callback starts or dns_cancel.
 */
struct dns_query *dns_lookup_mx(struct dns *d, const char *domain,
		    dns_mx_fn cb, void *arg);
/*
 * Looks up the AAAA and A records of host (borrowed): /etc/hosts first,
 * then DNS. A bare IP literal ("192.0.2.1", "::1", no brackets) answers
 * itself without the network. DNS_NOTFOUND and DNS_NODATA both mean "no
 * address" (c-ares does not always tell them apart here). Handle as for
 * dns_lookup_mx.
 */
struct dns_query *dns_lookup_addr(struct dns *d, const char *host,
		    dns_addr_fn cb, void *arg);
/*
 * Abandons a look-up whose callback has not started: the callback will not
 * be called and the handle is invalid afterwards. dns_cancel(NULL) is fine.
 */
void		 dns_cancel(struct dns_query *q);

#endif
