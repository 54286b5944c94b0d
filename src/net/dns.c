/*
 * dns.c - asynchronous MX and address look-ups for outbound delivery
 * through c-ares, driven by the libevent loop (SPEC §3: MX look-up with
 * the A/AAAA fallback of RFC 5321 §5.1 and the null MX of RFC 7505).
 *
 * Layer: net. Owns one c-ares channel per struct dns, one struct event per
 * socket c-ares opens (ARES_OPT_SOCK_STATE_CB) and one timer armed from
 * ares_timeout() for retransmissions and timeouts. It decides nothing
 * about delivery: it maps answers to enum dns_status and the caller
 * (deliver_remote) chooses between the next MX, deferral and a bounce.
 *
 * It must never run a caller's callback from inside c-ares: c-ares may
 * answer synchronously (IP literals, /etc/hosts, bad names) and a callback
 * that calls dns_free would destroy the channel under ares_process_fd.
 * Every result is therefore stored in its query and delivered from a
 * separate event (done_ev) that the loop runs later.
 *
 * A query lives in c-ares until c-ares calls back (even after dns_cancel,
 * since c-ares 1.18 cannot cancel a single query: the cancelled query just
 * forgets its caller), then in the loop until done_ev runs. It is on the
 * resolver's list during both, so that dns_free can find it.
 */
#include "net/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define DNS_TIMEOUT_MS	5000
#define DNS_TRIES	2
#define DNS_PORT	53

const char *const dns_status_names[DNS_STATUS_MAX] = {
	[DNS_OK] = "ok",
	[DNS_NOTFOUND] = "notfound",
	[DNS_NODATA] = "nodata",
	[DNS_NULLMX] = "nullmx",
	[DNS_TEMPFAIL] = "tempfail",
};

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_ADDR,
};

struct dns_query {
	TAILQ_ENTRY(dns_query) entry;
	struct dns		*d;
	enum dns_kind		 kind;
	dns_mx_fn		 mx_cb;
	dns_addr_fn		 addr_cb;
	void			*arg;
	bool			 in_ares;	/* c-ares has not called back */
	bool			 is_cancelled;	/* caller gone: free silently */
	struct event		*done_ev;	/* delivers the result */
	enum dns_status		 status;
	const char		*reason;	/* static text */
	struct dns_mx		*mx;		/* hosts owned here */
	size_t			 nmx;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
};

TAILQ_HEAD(dns_queries, dns_query);

struct dns_sock {
	ares_socket_t	 fd;
	struct event	*ev;
};

struct dns {
	struct event_base		*base;
	ares_channel			 channel;
	bool				 has_channel;
	struct ares_addr_port_node	*servers;	/* array, linked */
	size_t				 nservers;
	unsigned			 timeout_ms;
	unsigned			 tries;
	struct event			*timer;
	struct dns_sock			*socks;
	size_t				 nsocks;
	struct dns_queries		 queries;
};

static void	rearm_timer(struct dns *d);

/* Accepts "ip", "ip:port", "v6", "[v6]", "[v6]:port". */
static int
parse_server(const char *s, struct ares_addr_port_node *n, struct err *e)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h = s, *port = NULL, *end;
	bool is_bracketed = s[0] == '[';
	size_t len;
	long v;
	char *ep;

	memset(n, 0, sizeof(*n));
	n->udp_port = n->tcp_port = DNS_PORT;
	if (inet_pton(AF_INET6, s, &n->addr.addr6) == 1) {
		n->family = AF_INET6;
		return 0;
	}
	if (is_bracketed) {
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL)
			return err_set(e, "dns server \"%s\": missing ]", s);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return err_set(e, "dns server \"%s\": junk after ]", s);
	} else if ((end = strchr(h, ':')) != NULL)
		port = end + 1;
	else
		end = h + strlen(h);
	len = (size_t)(end - h);
	if (len == 0 || len >= sizeof(host))
		return err_set(e, "dns server \"%s\": expected ip[:port] or "
		    "[ipv6]:port", s);
	memcpy(host, h, len);
	host[len] = '\0';
	if (is_bracketed && inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else if (!is_bracketed &&
	    inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else
		return err_set(e, "dns server \"%s\": expected ip[:port] or "
		    "[ipv6]:port", s);
	if (port != NULL) {
		errno = 0;
		v = strtol(port, &ep, 10);
		if (*port < '0' || *port > '9' || *ep != '\0' || errno != 0 ||
		    v < 1 || v > 65535)
			return err_set(e, "dns server \"%s\": port must be a "
			    "number 1-65535", s);
		n->udp_port = n->tcp_port = (int)v;
	}
	return 0;
}

static struct dns_sock *
find_sock(struct dns *d, ares_socket_t fd)
{
	for (size_t i = 0; i < d->nsocks; i++)
		if (d->socks[i].fd == fd)
			return &d->socks[i];
	return NULL;
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel,
	    (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	rearm_timer(d);
}

/*
 * c-ares opens, watches and closes sockets itself and tells us here which
 * events it wants on each; neither readable nor writable means closed.
 */
static void
on_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = arg;
	struct dns_sock *s = find_sock(d, fd);
	short what = (short)((readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0));

	if (s != NULL) {
		/* Freeing a running event from its own callback is fine. */
		event_free(s->ev);
		s->ev = NULL;
	}
	if (what == 0) {
		if (s != NULL)
			*s = d->socks[--d->nsocks];
		return;
	}
	if (s == NULL) {
		d->socks = xreallocarray(d->socks, d->nsocks + 1,
		    sizeof(*d->socks));
		s = &d->socks[d->nsocks++];
		s->fd = fd;
	}
	s->ev = event_new(d->base, fd, (short)(what | EV_PERSIST), on_sock, d);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1)
		panic("dns: cannot watch resolver socket %d", (int)fd);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(d);
}

/* After every call into c-ares: its next deadline may have moved. */
static void
rearm_timer(struct dns *d)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp == NULL)
		(void)evtimer_del(d->timer);
	else if (evtimer_add(d->timer, tvp) == -1)
		panic("dns: cannot arm the resolver timer");
}

static int
open_channel(struct dns *d, struct err *e)
{
	struct ares_options o;
	char lookups[] = "fb";
	int rc, mask;

	memset(&o, 0, sizeof(o));
	o.timeout = (int)d->timeout_ms;
	o.tries = (int)d->tries;
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = d;
	/* Mail domains are absolute: no search list (ndomains 0). */
	o.domains = NULL;
	o.ndomains = 0;
	/* Addresses: /etc/hosts, then DNS ("localhost" as relay_host). */
	o.lookups = lookups;
	mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
	if ((rc = ares_init_options(&d->channel, &o, mask)) != ARES_SUCCESS)
		return err_set(e, "dns: cannot start resolver: %s",
		    ares_strerror(rc));
	d->has_channel = true;
	if (d->nservers > 0 &&
	    (rc = ares_set_servers_ports(d->channel, d->servers)) !=
	    ARES_SUCCESS) {
		ares_destroy(d->channel);
		d->has_channel = false;
		return err_set(e, "dns: cannot set servers: %s",
		    ares_strerror(rc));
	}
	return 0;
}

static void
free_query(struct dns_query *q)
{
	for (size_t i = 0; i < q->nmx; i++)
		free((char *)q->mx[i].host);
	free(q->mx);
	free(q->addrs);
	if (q->done_ev != NULL)
		event_free(q->done_ev);
	free(q);
}

struct dns *
dns_new(struct event_base *base, char *const *servers, size_t nservers,
    struct err *e)
{
	struct dns *d;
	int rc;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		err_set(e, "dns: c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->timeout_ms = DNS_TIMEOUT_MS;
	d->tries = DNS_TRIES;
	TAILQ_INIT(&d->queries);
	if (nservers > 0)
		d->servers = xcalloc(nservers, sizeof(*d->servers));
	d->nservers = nservers;
	for (size_t i = 0; i < nservers; i++) {
		if (parse_server(servers[i], &d->servers[i], e) == -1)
			goto fail;
		if (i > 0)
			d->servers[i - 1].next = &d->servers[i];
	}
	if ((d->timer = evtimer_new(base, on_timer, d)) == NULL) {
		err_set(e, "dns: cannot create timer");
		goto fail;
	}
	if (open_channel(d, e) == -1)
		goto fail;
	return d;
fail:
	dns_free(d);
	return NULL;
}

int
dns_set_timeout(struct dns *d, unsigned timeout_ms, unsigned tries,
    struct err *e)
{
	unsigned old_ms = d->timeout_ms, old_tries = d->tries;

	if (timeout_ms == 0 || tries == 0 || timeout_ms > 3600000 ||
	    tries > 100)
		return err_set(e, "dns: bad timeout %ums or tries %u",
		    timeout_ms, tries);
	if (!TAILQ_EMPTY(&d->queries))
		return err_set(e, "dns: cannot change the timeout with "
		    "look-ups pending");
	/* c-ares 1.18 has no setter: a new channel with new options. */
	ares_destroy(d->channel);
	d->has_channel = false;
	d->timeout_ms = timeout_ms;
	d->tries = tries;
	if (open_channel(d, e) == 0)
		return 0;
	d->timeout_ms = old_ms;
	d->tries = old_tries;
	if (open_channel(d, e) == -1)
		panic("dns: cannot restore the resolver: %s", e->msg);
	return -1;
}

void
dns_free(struct dns *d)
{
	struct dns_query *q, *next;

	if (d == NULL)
		return;
	/* Queries waiting in the loop: c-ares is done with them. */
	for (q = TAILQ_FIRST(&d->queries); q != NULL; q = next) {
		next = TAILQ_NEXT(q, entry);
		if (!q->in_ares) {
			TAILQ_REMOVE(&d->queries, q, entry);
			free_query(q);
		} else
			q->is_cancelled = true;
	}
	/*
	 * The others: ares_destroy calls their c-ares callbacks with
	 * ARES_EDESTRUCTION (on_mx/on_addr free them) and closes sockets
	 * through on_sock_state.
	 */
	if (d->has_channel)
		ares_destroy(d->channel);
	/* Not expected; the channel is gone, so nothing can call back. */
	while ((q = TAILQ_FIRST(&d->queries)) != NULL) {
		TAILQ_REMOVE(&d->queries, q, entry);
		free_query(q);
	}
	for (size_t i = 0; i < d->nsocks; i++)
		event_free(d->socks[i].ev);
	free(d->socks);
	if (d->timer != NULL)
		event_free(d->timer);
	free(d->servers);
	free(d);
	ares_library_cleanup();
}

/* done_ev: hands the stored result to the caller, then frees the query. */
static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	/* Off the list first: the callback may call dns_free. */
	TAILQ_REMOVE(&q->d->queries, q, entry);
	q->d = NULL;
	if (q->kind == DNS_KIND_MX)
		q->mx_cb(q->arg, q->status, q->status == DNS_OK ? q->mx : NULL,
		    q->status == DNS_OK ? q->nmx : 0, q->reason);
	else
		q->addr_cb(q->arg, q->status,
		    q->status == DNS_OK ? q->addrs : NULL,
		    q->status == DNS_OK ? q->naddrs : 0, q->reason);
	free_query(q);
}

/* Stores the outcome; the loop delivers it (never from inside c-ares). */
static void
finish(struct dns_query *q, enum dns_status status, const char *reason)
{
	q->in_ares = false;
	q->status = status;
	q->reason = reason;
	event_active(q->done_ev, EV_TIMEOUT, 0);
}

/* Leaves a query that c-ares has just released and nobody waits for. */
static bool
drop_if_orphan(struct dns_query *q, int rc)
{
	if (!q->is_cancelled && rc != ARES_EDESTRUCTION)
		return false;
	TAILQ_REMOVE(&q->d->queries, q, entry);
	free_query(q);
	return true;
}

/* c-ares failures other than "no such name/data". */
static enum dns_status
status_of(int rc)
{
	switch (rc) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:	/* cannot exist: permanent */
		return DNS_NOTFOUND;
	case ARES_ENODATA:
		return DNS_NODATA;
	default:		/* SERVFAIL, REFUSED, timeout, network... */
		return DNS_TEMPFAIL;
	}
}

static struct dns_query *
new_query(struct dns *d, enum dns_kind kind, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->kind = kind;
	q->arg = arg;
	q->reason = "";
	if ((q->done_ev = event_new(d->base, -1, 0, on_done, q)) == NULL)
		panic("dns: cannot create event");
	TAILQ_INSERT_TAIL(&d->queries, q, entry);
	return q;
}

/*
 * RFC 7505 §3: a null MX is the domain's only MX. Null entries among real
 * exchangers break that rule; they are dropped and the rest is used.
 * Sorted stably by preference (RFC 5321 §5.1): insertion sort, lists are
 * short.
 */
static void
keep_mx(struct dns_query *q, struct ares_mx_reply *list)
{
	size_t n = 0, nnull = 0;
	struct dns_mx t;

	for (struct ares_mx_reply *m = list; m != NULL; m = m->next)
		n++;
	q->mx = xcalloc(n, sizeof(*q->mx));
	for (struct ares_mx_reply *m = list; m != NULL; m = m->next) {
		/* c-ares writes the root name "." as "". */
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			nnull++;
			continue;
		}
		q->mx[q->nmx].host = xstrdup(m->host);
		q->mx[q->nmx].preference = m->priority;
		q->nmx++;
	}
	if (q->nmx == 0 && nnull > 0) {
		finish(q, DNS_NULLMX, "null MX (RFC 7505)");
		return;
	}
	for (size_t i = 1; i < q->nmx; i++) {
		t = q->mx[i];
		size_t j = i;
		for (; j > 0 && q->mx[j - 1].preference > t.preference; j--)
			q->mx[j] = q->mx[j - 1];
		q->mx[j] = t;
	}
	if (q->nmx == 0)
		finish(q, DNS_NODATA, "no MX records");
	else
		finish(q, DNS_OK, "");
}

static void
on_mx(void *arg, int rc, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct ares_mx_reply *list = NULL;

	if (drop_if_orphan(q, rc))
		return;
	if (rc == ARES_SUCCESS)
		rc = ares_parse_mx_reply(abuf, alen, &list);
	if (rc != ARES_SUCCESS) {
		finish(q, status_of(rc), ares_strerror(rc));
		return;
	}
	keep_mx(q, list);
	ares_free_data(list);
}

struct dns_query *
dns_lookup_mx(struct dns *d, const char *domain, dns_mx_fn cb, void *arg)
{
	struct dns_query *q = new_query(d, DNS_KIND_MX, arg);

	q->mx_cb = cb;
	if (*domain == '\0') {
		finish(q, DNS_NOTFOUND, "empty domain");
		return q;
	}
	q->in_ares = true;
	ares_query(d->channel, domain, ns_c_in, ns_t_mx, on_mx, q);
	rearm_timer(d);
	return q;
}

static void
on_addr(void *arg, int rc, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	struct ares_addrinfo_node *n;
	size_t count = 0;

	if (drop_if_orphan(q, rc)) {
		ares_freeaddrinfo(res);
		return;
	}
	if (rc == ARES_SUCCESS && res != NULL)
		for (n = res->nodes; n != NULL; n = n->ai_next)
			count++;
	if (rc != ARES_SUCCESS || count == 0) {
		if (rc == ARES_SUCCESS)
			rc = ARES_ENODATA;
		finish(q, status_of(rc), ares_strerror(rc));
		ares_freeaddrinfo(res);
		return;
	}
	q->addrs = xcalloc(count, sizeof(*q->addrs));
	for (n = res->nodes; n != NULL; n = n->ai_next) {
		if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
		    n->ai_addrlen > sizeof(*q->addrs))
			continue;
		memcpy(&q->addrs[q->naddrs], n->ai_addr, n->ai_addrlen);
		/* Port 0: the caller sets it. */
		if (n->ai_family == AF_INET)
			((struct sockaddr_in *)&q->addrs[q->naddrs])->sin_port
			    = 0;
		else
			((struct sockaddr_in6 *)&q->addrs[q->naddrs])->
			    sin6_port = 0;
		q->naddrs++;
	}
	ares_freeaddrinfo(res);
	if (q->naddrs == 0)
		finish(q, DNS_NODATA, ares_strerror(ARES_ENODATA));
	else
		finish(q, DNS_OK, "");
}

/* An IP literal answers itself: returns false if host is not one. */
static bool
literal_addr(struct dns_query *q, const char *host)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return false;
	q->addrs = xmalloc(sizeof(*q->addrs));
	q->addrs[0] = ss;
	q->naddrs = 1;
	finish(q, DNS_OK, "");
	return true;
}

struct dns_query *
dns_lookup_addr(struct dns *d, const char *host, dns_addr_fn cb, void *arg)
{
	struct dns_query *q = new_query(d, DNS_KIND_ADDR, arg);
	struct ares_addrinfo_hints hints;

	q->addr_cb = cb;
	if (*host == '\0') {
		finish(q, DNS_NOTFOUND, "empty host name");
		return q;
	}
	if (literal_addr(q, host))
		return q;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	q->in_ares = true;
	ares_getaddrinfo(d->channel, host, NULL, &hints, on_addr, q);
	rearm_timer(d);
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	if (q == NULL)
		return;
	if (q->in_ares) {
		/* c-ares still holds it: on_mx/on_addr free it. */
		q->is_cancelled = true;
		return;
	}
	TAILQ_REMOVE(&q->d->queries, q, entry);
	free_query(q);
}
