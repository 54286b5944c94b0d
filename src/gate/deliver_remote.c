/*
 * deliver_remote.c - destinations, connections and jobs for outbound
 * delivery. Layer: gate.
 *
 * Owns one struct dest per destination (an MX domain, the relay_host, the
 * lmtp_host), its queue of jobs and its connections. A connection walks
 * its host list (MX hosts by preference, each host's addresses, IPv6 and
 * IPv4) until one greets it, then serves jobs from its destination's
 * queue one after the other (connection reuse) and quits after a short
 * idle time. A connection that cannot be set up fails the jobs waiting
 * for it with the last error seen, which the queue manager turns into a
 * deferral or a bounce. Must never block: DNS through dns.c, connect(2)
 * non-blocking, the SMTP dialogue through smtp_client.c.
 */
#include "gate/deliver_remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "net/dns.h"
#include "net/tls.h"
#include "gate/config.h"
#include "gate/runtime.h"
#include "gate/smtp_client.h"

#define CONNECT_TIMEOUT	30	/* seconds per address */
#define IDLE_TIMEOUT	5	/* seconds a reusable connection waits */
#define MAX_HOSTS	10	/* MX hosts tried per connection */
#define DEAD_TIME	10	/* seconds without new connections after one
				 * could not be set up */

const char *const deliver_status_names[] = {
	[DELIVER_SENT] = "sent",
	[DELIVER_TEMPFAIL] = "deferred",
	[DELIVER_PERMFAIL] = "bounced",
};

struct job {
	char			 id[32];
	char			*sender;
	char			**rcpts;
	size_t			*indexes;
	size_t			 n;
	int			 fd;
	off_t			 offset;
	off_t			 length;
	bool			 is_8bit;
	bool			 needs_smtputf8;
	/* results, filled as replies arrive */
	enum deliver_status	*status;
	char			**reply;
	char			**enhanced;
	bool			*has_result;
	bool			*accepted;
	TAILQ_ENTRY(job)	 entry;
};

TAILQ_HEAD(jobq, job);

struct host {
	char	*name;		/* MX host, relay host, or address literal */
	bool	 is_literal;
};

struct conn;

struct dest {
	struct deliver		*d;
	char			*key;
	enum deliver_kind	 kind;
	char			*name;		/* domain or host */
	int			 port;
	char			*unix_path;	/* LMTP over a unix socket */
	struct jobq		 jobs;
	struct conn		*conns;
	size_t			 nconns;
	size_t			 nstarting;	/* conns not yet ready */
	time_t			 dead_until;	/* no new conns before */
	bool			 dead_is_perm;
	char			*dead_error;	/* why the last conn failed */
	char			 dead_enhanced[16];
	struct dest		*next;
};

enum conn_state {
	CONN_RESOLVING,
	CONN_CONNECTING,
	CONN_GREETING,		/* client running, not ready yet */
	CONN_IDLE,
	CONN_BUSY,
	CONN_QUITTING,
};

struct conn {
	struct dest		*dest;
	enum conn_state		 state;
	struct host		*hosts;
	size_t			 nhosts, host_i;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs, addr_i;
	struct dns_query	*query;
	int			 fd;
	struct event		*ev;		/* connect or idle timer */
	struct smtp_client	*client;
	struct job		*job;
	bool			 no_tls;
	bool			 is_perm;	/* last error is permanent */
	char			 relay[320];
	char			 error[512];
	char			 enhanced[16];
	struct conn		*next;
};

struct deliver {
	struct event_base	*base;
	struct dns		*dns;
	struct runtime		*rt;
	SSL_CTX			*tls;
	deliver_done_fn		 done;
	void			*arg;
	struct dest		*dests;
	size_t			 pending;
};

static void	conn_next_host(struct conn *c);
static void	conn_try_addr(struct conn *c);
static void	dest_kick(struct dest *dst);
static void	conn_free(struct conn *c);

/* ---- jobs ----------------------------------------------------------- */

static void
job_free(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->rcpts[i]);
		free(j->reply[i]);
		free(j->enhanced[i]);
	}
	free(j->rcpts);
	free(j->indexes);
	free(j->status);
	free(j->reply);
	free(j->enhanced);
	free(j->has_result);
	free(j->accepted);
	free(j->sender);
	if (j->fd != -1)
		(void)close(j->fd);
	free(j);
}

static void
job_set(struct job *j, size_t i, enum deliver_status st, const char *reply,
    const char *enhanced)
{
	if (j->has_result[i])
		return;
	j->has_result[i] = true;
	j->status[i] = st;
	j->reply[i] = xstrdup(reply);
	j->enhanced[i] = xstrdup(enhanced ? enhanced : "");
}

static enum deliver_status
status_of(const struct smtp_client_reply *r)
{
	switch (r->status) {
	case SMTP_CLIENT_OK:
		return DELIVER_SENT;
	case SMTP_CLIENT_PERMFAIL:
		return DELIVER_PERMFAIL;
	default:
		return DELIVER_TEMPFAIL;
	}
}

/* Every recipient without a result gets st/reply; the job is reported. */
static void
job_finish(struct deliver *d, struct job *j, enum deliver_status st,
    const char *reply, const char *enhanced, const char *relay)
{
	struct deliver_result *res = xcalloc(j->n, sizeof(*res));

	for (size_t i = 0; i < j->n; i++) {
		job_set(j, i, st, reply, enhanced);
		res[i].index = j->indexes[i];
		res[i].status = j->status[i];
		res[i].reply = j->reply[i];
		res[i].enhanced = j->enhanced[i];
		res[i].relay = relay;
	}
	d->pending--;
	d->done(d->arg, j->id, res, j->n);
	free(res);
	job_free(j);
}

/* Fails every job waiting in dst with the last connection error. */
static void
dest_fail_jobs(struct dest *dst)
{
	struct job *j;

	while ((j = TAILQ_FIRST(&dst->jobs)) != NULL) {
		TAILQ_REMOVE(&dst->jobs, j, entry);
		job_finish(dst->d, j, dst->dead_is_perm ? DELIVER_PERMFAIL :
		    DELIVER_TEMPFAIL, dst->dead_error ? dst->dead_error :
		    "destination unreachable", dst->dead_enhanced, dst->name);
	}
}

/* ---- connections ---------------------------------------------------- */

static void
conn_error(struct conn *c, bool is_perm, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
conn_error(struct conn *c, bool is_perm, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	c->is_perm = is_perm;
	str_copy(c->enhanced, enhanced ? enhanced : "", sizeof(c->enhanced));
}

/* The connection could not be set up at all: report and go. */
static void
conn_give_up(struct conn *c)
{
	struct dest *dst = c->dest;

	log_info("delivery to %s failed: %s", dst->name, c->error);
	/* No new connection for a while: retrying at once would only hammer
	 * a dead host. Connections that work may still serve the queue. */
	free(dst->dead_error);
	dst->dead_error = xstrdup(c->error);
	dst->dead_is_perm = c->is_perm;
	str_copy(dst->dead_enhanced, c->enhanced, sizeof(dst->dead_enhanced));
	dst->dead_until = time(NULL) + DEAD_TIME;
	if (dst->nconns == 1 || c->is_perm)
		dest_fail_jobs(dst);
	conn_free(c);
	dest_kick(dst);
}

static void
sockaddr_name(const struct sockaddr_storage *ss, char *out, size_t size,
    int *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)size);
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
	}
}

static void
client_ready(struct smtp_client *cl, void *arg)
{
	struct conn *c = arg;
	struct dest *dst = c->dest;

	if (c->state == CONN_GREETING) {
		dst->nstarting--;
		log_debug("connected to %s%s%s", c->relay,
		    smtp_client_tls_info(cl) ? " with " : "",
		    smtp_client_tls_info(cl) ? smtp_client_tls_info(cl) : "");
	}
	c->state = CONN_IDLE;
	dest_kick(dst);
}

static void
client_rcpt(struct smtp_client *cl, void *arg, int index,
    const struct smtp_client_reply *r)
{
	struct conn *c = arg;

	if (c->job == NULL || index < 0 || (size_t)index >= c->job->n)
		return;
	if (r->status == SMTP_CLIENT_OK)
		c->job->accepted[index] = true;
	else
		job_set(c->job, (size_t)index, status_of(r), r->text,
		    r->enhanced);
}

static void
client_data_done(struct smtp_client *cl, void *arg, int index,
    const struct smtp_client_reply *r)
{
	struct conn *c = arg;
	struct job *j = c->job;

	if (j == NULL)
		return;
	if (index >= 0 && (size_t)index < j->n) {
		job_set(j, (size_t)index, status_of(r), r->text, r->enhanced);
		return;
	}
	for (size_t i = 0; i < j->n; i++)
		if (j->accepted[i])
			job_set(j, i, status_of(r), r->text, r->enhanced);
}

static void
client_tx_done(struct smtp_client *cl, void *arg,
    const struct smtp_client_reply *fail)
{
	struct conn *c = arg;
	struct job *j = c->job;

	c->job = NULL;
	c->state = CONN_IDLE;
	if (j != NULL)
		job_finish(c->dest->d, j, fail ? status_of(fail) :
		    DELIVER_TEMPFAIL, fail ? fail->text :
		    "no reply for this recipient", fail ? fail->enhanced : "",
		    c->relay);
	dest_kick(c->dest);
}

static void
client_failed(struct smtp_client *cl, void *arg,
    const struct smtp_client_reply *r)
{
	struct conn *c = arg;
	struct dest *dst = c->dest;
	struct job *j = c->job;

	smtp_client_free(c->client);
	c->client = NULL;
	if (j != NULL) {
		/* In a transaction: the open recipients get this reply. */
		c->job = NULL;
		job_finish(dst->d, j, status_of(r), r->text, r->enhanced,
		    c->relay);
		conn_free(c);
		dest_kick(dst);
		return;
	}
	if (c->state == CONN_GREETING) {
		if (r->step == SMTP_CLIENT_STEP_TLS && !c->no_tls) {
			/* Opportunistic TLS failed: the same host in clear. */
			log_info("TLS with %s failed (%s), trying again "
			    "without TLS", c->relay, r->text);
			c->no_tls = true;
			c->state = CONN_CONNECTING;
			conn_try_addr(c);
			return;
		}
		/* The next address or MX host may do better. */
		conn_error(c, false, r->enhanced, "%s said: %s", c->relay,
		    r->text);
		c->addr_i++;
		c->state = CONN_CONNECTING;
		conn_try_addr(c);
		return;
	}
	conn_free(c);
	dest_kick(dst);
}

static void
client_closed(struct smtp_client *cl, void *arg)
{
	struct conn *c = arg;
	struct dest *dst = c->dest;

	conn_free(c);
	dest_kick(dst);
}

static const struct smtp_client_cb client_cb = {
	client_ready, client_rcpt, client_data_done, client_tx_done,
	client_failed, client_closed,
};

static void
start_client(struct conn *c)
{
	struct deliver *d = c->dest->d;
	struct smtp_client_params p;
	struct err e;

	memset(&p, 0, sizeof(p));
	p.helo_name = d->rt->cfg->hostname;
	p.server_name = c->nhosts ? c->hosts[c->host_i].name : NULL;
	p.tls_ctx = c->no_tls ? NULL : d->tls;
	p.is_lmtp = c->dest->kind == DELIVER_LMTP;
	err_clear(&e);
	c->client = smtp_client_new(d->base, c->fd, &p, &client_cb, c, &e);
	c->fd = -1;	/* owned by the client now, even on failure */
	if (c->client == NULL) {
		conn_error(c, false, NULL, "%s: %s", c->relay, e.msg);
		c->addr_i++;
		conn_try_addr(c);
		return;
	}
	c->state = CONN_GREETING;
}

static void
connect_done(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	event_free(c->ev);
	c->ev = NULL;
	if (what & EV_TIMEOUT)
		soerr = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		conn_error(c, false, "4.4.1", "connect to %s: %s", c->relay,
		    strerror(soerr));
		(void)close(c->fd);
		c->fd = -1;
		c->addr_i++;
		conn_try_addr(c);
		return;
	}
	start_client(c);
}

/* Connects to the unix socket of lmtp_host (synchronous: it is local). */
static void
connect_unix(struct conn *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(c->relay, sizeof(c->relay), "unix:%s", c->dest->unix_path);
	str_copy(sun.sun_path, c->dest->unix_path, sizeof(sun.sun_path));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1 || connect(c->fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1) {
		conn_error(c, false, "4.4.1", "connect to %s: %s", c->relay,
		    strerror(errno));
		if (c->fd != -1)
			(void)close(c->fd);
		c->fd = -1;
		conn_give_up(c);
		return;
	}
	(void)fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	c->state = CONN_CONNECTING;
	start_client(c);
}

/* Tries the current address of the current host, or moves on. */
static void
conn_try_addr(struct conn *c)
{
	struct deliver *d = c->dest->d;
	char ip[INET6_ADDRSTRLEN];
	int port;

	if (c->dest->unix_path) {
		if (c->no_tls || c->addr_i > 0) {
			conn_give_up(c);
			return;
		}
		connect_unix(c);
		return;
	}
	if (c->addr_i >= c->naddrs) {
		c->host_i++;
		conn_next_host(c);
		return;
	}
	((struct sockaddr_in *)&c->addrs[c->addr_i])->sin_port =
	    htons((uint16_t)c->dest->port);
	sockaddr_name(&c->addrs[c->addr_i], ip, sizeof(ip), &port);
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d",
	    c->hosts[c->host_i].name, ip, port);
	c->fd = socket(c->addrs[c->addr_i].ss_family, SOCK_STREAM |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_error(c, false, "4.4.1", "socket for %s: %s", c->relay,
		    strerror(errno));
		c->addr_i++;
		conn_try_addr(c);
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&c->addrs[c->addr_i],
	    c->addrs[c->addr_i].ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) == -1 &&
	    errno != EINPROGRESS) {
		conn_error(c, false, "4.4.1", "connect to %s: %s", c->relay,
		    strerror(errno));
		(void)close(c->fd);
		c->fd = -1;
		c->addr_i++;
		conn_try_addr(c);
		return;
	}
	c->state = CONN_CONNECTING;
	c->ev = event_new(d->base, c->fd, EV_WRITE, connect_done, c);
	event_add(c->ev, &(struct timeval){ CONNECT_TIMEOUT, 0 });
}

static void
addr_resolved(void *arg, enum dns_status status,
    const struct sockaddr_storage *addrs, size_t n, const char *reason)
{
	struct conn *c = arg;

	c->query = NULL;
	free(c->addrs);
	c->addrs = NULL;
	c->naddrs = 0;
	c->addr_i = 0;
	if (status != DNS_OK) {
		conn_error(c, status == DNS_NOTFOUND && c->dest->kind ==
		    DELIVER_MX && c->nhosts == 1 && strcmp(c->hosts[0].name,
		    c->dest->name) == 0, status == DNS_TEMPFAIL ? "4.4.3" :
		    "5.1.2", "host %s: %s", c->hosts[c->host_i].name, reason);
		c->host_i++;
		conn_next_host(c);
		return;
	}
	c->addrs = xcalloc(n, sizeof(*c->addrs));
	memcpy(c->addrs, addrs, n * sizeof(*addrs));
	c->naddrs = n;
	conn_try_addr(c);
}

/* Resolves the current host, or gives up when none is left. */
static void
conn_next_host(struct conn *c)
{
	if (c->host_i >= c->nhosts) {
		conn_give_up(c);
		return;
	}
	c->state = CONN_RESOLVING;
	c->query = dns_lookup_addr(c->dest->d->dns, c->hosts[c->host_i].name,
	    addr_resolved, c);
}

static void
add_host(struct conn *c, const char *name, bool is_literal)
{
	if (c->nhosts >= MAX_HOSTS)
		return;
	c->hosts = xreallocarray(c->hosts, c->nhosts + 1, sizeof(*c->hosts));
	c->hosts[c->nhosts].name = xstrdup(name);
	c->hosts[c->nhosts].is_literal = is_literal;
	c->nhosts++;
}

static void
mx_resolved(void *arg, enum dns_status status, const struct dns_mx *mx,
    size_t n, const char *reason)
{
	struct conn *c = arg;
	const char *domain = c->dest->name;

	c->query = NULL;
	switch (status) {
	case DNS_OK:
		for (size_t i = 0; i < n; i++)
			add_host(c, mx[i].host, false);
		break;
	case DNS_NODATA:
		/* No MX: the domain's own address (RFC 5321 §5.1). */
		add_host(c, domain, false);
		break;
	case DNS_NULLMX:
		conn_error(c, true, "5.1.10", "domain %s accepts no mail "
		    "(null MX, RFC 7505)", domain);
		conn_give_up(c);
		return;
	case DNS_NOTFOUND:
		conn_error(c, true, "5.1.2", "domain %s not found: %s", domain,
		    reason);
		conn_give_up(c);
		return;
	default:
		conn_error(c, false, "4.4.3", "MX lookup of %s failed: %s",
		    domain, reason);
		conn_give_up(c);
		return;
	}
	c->host_i = 0;
	conn_next_host(c);
}

static void
conn_start(struct dest *dst)
{
	struct deliver *d = dst->d;
	struct conn *c = xcalloc(1, sizeof(*c));

	c->dest = dst;
	c->fd = -1;
	c->next = dst->conns;
	dst->conns = c;
	dst->nconns++;
	dst->nstarting++;
	conn_error(c, false, "4.4.1", "no host could be reached for %s",
	    dst->name);
	/* A starting state: counted in nstarting until ready. */
	c->state = CONN_RESOLVING;
	if (dst->unix_path) {
		connect_unix(c);
		return;
	}
	if (dst->kind == DELIVER_MX && dst->name[0] != '[') {
		c->query = dns_lookup_mx(d->dns, dst->name, mx_resolved, c);
		return;
	}
	if (dst->name[0] == '[') {
		/* An address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
		char lit[300];
		const char *p = dst->name + 1;

		if (strncasecmp(p, "IPv6:", 5) == 0)
			p += 5;
		str_copy(lit, p, sizeof(lit));
		lit[strcspn(lit, "]")] = '\0';
		add_host(c, lit, true);
	} else
		add_host(c, dst->name, false);
	conn_next_host(c);
}

static void
conn_free(struct conn *c)
{
	struct dest *dst = c->dest;
	struct conn **pp;

	for (pp = &dst->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	dst->nconns--;
	if (c->state == CONN_RESOLVING || c->state == CONN_CONNECTING ||
	    c->state == CONN_GREETING)
		dst->nstarting--;
	if (c->job) {
		/* Only on deliver_free: no callbacks any more. */
		job_free(c->job);
		dst->d->pending--;
	}
	dns_cancel(c->query);
	if (c->ev)
		event_free(c->ev);
	smtp_client_free(c->client);
	if (c->fd != -1)
		(void)close(c->fd);
	for (size_t i = 0; i < c->nhosts; i++)
		free(c->hosts[i].name);
	free(c->hosts);
	free(c->addrs);
	free(c);
}

static void
idle_expired(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	event_free(c->ev);
	c->ev = NULL;
	if (c->state != CONN_IDLE)
		return;
	c->state = CONN_QUITTING;
	smtp_client_quit(c->client);
}

/* Gives waiting jobs to idle connections; opens more when allowed. */
static void
dest_kick(struct dest *dst)
{
	struct deliver *d = dst->d;
	unsigned max = d->rt->cfg->delivery_concurrency;
	size_t waiting = 0;
	struct job *j;

	for (struct conn *c = dst->conns; c; c = c->next) {
		struct smtp_client_msg m;
		struct err e;

		if (c->state != CONN_IDLE)
			continue;
		if (c->ev) {
			event_free(c->ev);
			c->ev = NULL;
		}
		if ((j = TAILQ_FIRST(&dst->jobs)) == NULL) {
			c->ev = evtimer_new(d->base, idle_expired, c);
			event_add(c->ev, &(struct timeval){ IDLE_TIMEOUT, 0 });
			continue;
		}
		TAILQ_REMOVE(&dst->jobs, j, entry);
		memset(&m, 0, sizeof(m));
		m.sender = j->sender;
		m.rcpts = (const char *const *)j->rcpts;
		m.rcpt_count = j->n;
		m.fd = j->fd;
		m.offset = j->offset;
		m.length = j->length;
		m.is_8bit = j->is_8bit;
		m.needs_smtputf8 = j->needs_smtputf8;
		err_clear(&e);
		c->job = j;
		c->state = CONN_BUSY;
		if (smtp_client_send(c->client, &m, &e) == -1) {
			c->job = NULL;
			c->state = CONN_IDLE;
			job_finish(d, j, DELIVER_PERMFAIL, e.msg, "5.1.3",
			    c->relay);
		}
	}
	TAILQ_FOREACH(j, &dst->jobs, entry)
		waiting++;
	if (waiting == 0)
		return;
	if (time(NULL) < dst->dead_until) {
		/* Recently unreachable: only open connections serve. */
		if (dst->nconns == 0)
			dest_fail_jobs(dst);
		return;
	}
	/*
	 * One new connection per waiting job, within the concurrency. A
	 * connection can fail at once (a unix socket nobody listens on):
	 * its jobs are failed and the destination marked dead, so count
	 * again each time rather than start connections for ever.
	 */
	while (waiting > dst->nstarting && dst->nconns < max &&
	    time(NULL) >= dst->dead_until) {
		conn_start(dst);
		waiting = 0;
		TAILQ_FOREACH(j, &dst->jobs, entry)
			waiting++;
	}
}

/* ---- destinations and the public API -------------------------------- */

/* Splits "host:port", "[ip]:port" or "unix:/path" of relay/lmtp_host. */
static void
parse_hostport(struct dest *dst, const char *spec, int default_port)
{
	const char *colon;

	dst->port = default_port;
	if (strncmp(spec, "unix:", 5) == 0) {
		dst->unix_path = xstrdup(spec + 5);
		dst->name = xstrdup(spec);
		return;
	}
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		size_t n = close ? (size_t)(close - spec) + 1 : strlen(spec);

		dst->name = xstrndup(spec, n);
		colon = close ? strchr(close, ':') : NULL;
	} else {
		colon = strrchr(spec, ':');
		dst->name = colon ? xstrndup(spec, (size_t)(colon - spec)) :
		    xstrdup(spec);
	}
	if (colon)
		dst->port = atoi(colon + 1);
}

static struct dest *
dest_get(struct deliver *d, enum deliver_kind kind, const char *domain)
{
	const struct config *cfg = d->rt->cfg;
	char key[600];
	struct dest *dst;

	snprintf(key, sizeof(key), "%d:%s", (int)kind,
	    kind == DELIVER_MX ? domain : kind == DELIVER_RELAY ?
	    cfg->relay_host : cfg->lmtp_host);
	str_lower(key);
	for (dst = d->dests; dst; dst = dst->next)
		if (strcmp(dst->key, key) == 0)
			return dst;
	dst = xcalloc(1, sizeof(*dst));
	dst->d = d;
	dst->key = xstrdup(key);
	dst->kind = kind;
	TAILQ_INIT(&dst->jobs);
	if (kind == DELIVER_MX) {
		dst->name = xstrdup(domain);
		str_lower(dst->name);
		dst->port = 25;
	} else
		parse_hostport(dst, kind == DELIVER_RELAY ? cfg->relay_host :
		    cfg->lmtp_host, kind == DELIVER_RELAY ? 25 : 24);
	dst->next = d->dests;
	d->dests = dst;
	return dst;
}

static void
dest_free(struct dest *dst)
{
	struct job *j;

	while (dst->conns)
		conn_free(dst->conns);
	while ((j = TAILQ_FIRST(&dst->jobs)) != NULL) {
		TAILQ_REMOVE(&dst->jobs, j, entry);
		job_free(j);
	}
	free(dst->key);
	free(dst->name);
	free(dst->unix_path);
	free(dst->dead_error);
	free(dst);
}

struct deliver *
deliver_new(struct event_base *base, struct dns *dns, struct runtime *rt,
    deliver_done_fn done, void *arg)
{
	struct deliver *d = xcalloc(1, sizeof(*d));
	struct err e;

	d->base = base;
	d->dns = dns;
	d->rt = runtime_ref(rt);
	d->done = done;
	d->arg = arg;
	err_clear(&e);
	d->tls = tls_client_ctx_new(&e);
	if (d->tls == NULL)
		log_warnx("outbound STARTTLS disabled: %s", e.msg);
	return d;
}

void
deliver_free(struct deliver *d)
{
	if (d == NULL)
		return;
	while (d->dests) {
		struct dest *next = d->dests->next;
		dest_free(d->dests);
		d->dests = next;
	}
	SSL_CTX_free(d->tls);
	runtime_unref(d->rt);
	free(d);
}

void
deliver_set_runtime(struct deliver *d, struct runtime *rt)
{
	struct runtime *old = d->rt;

	/* relay_host or lmtp_host may have changed: idle connections of
	 * the old destinations quit on their idle timer. */
	d->rt = runtime_ref(rt);
	runtime_unref(old);
}

void
deliver_retry_now(struct deliver *d)
{
	for (struct dest *dst = d->dests; dst; dst = dst->next)
		dst->dead_until = 0;
}

size_t
deliver_pending(const struct deliver *d)
{
	return d->pending;
}

void
deliver_submit(struct deliver *d, const struct deliver_job *jd)
{
	struct dest *dst = dest_get(d, jd->kind, jd->domain ? jd->domain : "");
	struct job *j = xcalloc(1, sizeof(*j));

	str_copy(j->id, jd->id, sizeof(j->id));
	j->sender = xstrdup(jd->sender);
	j->n = jd->nrcpts;
	j->rcpts = xcalloc(j->n, sizeof(*j->rcpts));
	j->indexes = xcalloc(j->n, sizeof(*j->indexes));
	j->status = xcalloc(j->n, sizeof(*j->status));
	j->reply = xcalloc(j->n, sizeof(*j->reply));
	j->enhanced = xcalloc(j->n, sizeof(*j->enhanced));
	j->has_result = xcalloc(j->n, sizeof(*j->has_result));
	j->accepted = xcalloc(j->n, sizeof(*j->accepted));
	for (size_t i = 0; i < j->n; i++) {
		j->rcpts[i] = xstrdup(jd->rcpts[i]);
		j->indexes[i] = jd->indexes[i];
	}
	j->fd = fcntl(jd->fd, F_DUPFD_CLOEXEC, 0);
	j->offset = jd->offset;
	j->length = jd->length;
	j->is_8bit = jd->is_8bit;
	j->needs_smtputf8 = jd->needs_smtputf8;
	d->pending++;
	if (j->fd == -1) {
		char text[128];

		snprintf(text, sizeof(text), "cannot reopen the queue file: "
		    "%s", strerror(errno));
		job_finish(d, j, DELIVER_TEMPFAIL, text, "4.3.0", "none");
		return;
	}
	TAILQ_INSERT_TAIL(&dst->jobs, j, entry);
	dest_kick(dst);
}
