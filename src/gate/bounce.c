/*
 * bounce.c - queuing of delivery status notifications. Layer: gate.
 * Owns nothing. A notification is an ordinary queued message from <>, so
 * it can never earn a notification of its own (dsn_should_send), and is
 * delivered by the same machinery as any other mail.
 */
#include "gate/bounce.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "mail/addr.h"
#include "mail/envelope.h"
#include "mail/header.h"
#include "gate/config.h"
#include "gate/route.h"
#include "gate/runtime.h"
#include "gate/spool.h"

int
bounce_queue(struct spool *sp, const struct runtime *rt, const char *id,
    const struct envelope *env, int fd, off_t off, enum dsn_kind kind,
    const struct dsn_rcpt *rr, size_t n, time_t retry_until, char *new_id,
    struct err *e)
{
	const struct config *c = rt->cfg;
	struct envelope b;
	struct dsn_params p;
	struct spool_msg *m = NULL;
	struct buf text, hdr;
	struct timeval tv;
	struct addr to;
	char headers[DSN_HEADERS_MAX], rcpt[ADDR_MAX + 1], postmaster[300];
	ssize_t hlen;
	int rc = -1;

	envelope_init(&b);
	buf_init(&text);
	buf_init(&hdr);
	gettimeofday(&tv, NULL);
	/* The recipient: the sender, or the postmaster for a double bounce. */
	snprintf(postmaster, sizeof(postmaster), "postmaster@%s",
	    c->local_domains.v[0]);
	if (addr_parse_mailbox(env->sender[0] ? env->sender : postmaster,
	    ADDR_ALLOW_UTF8, &to, e) == -1)
		goto out;
	if (route_rcpt(rt, &to, true, "NEVER", NULL, &b, rcpt, e) !=
	    ROUTE_ACCEPTED)
		goto out;
	b.arrival = (double)tv.tv_sec + tv.tv_usec / 1e6;
	b.client_addr = xstrdup("local");
	b.client_name = xstrdup("localhost");
	b.helo = xstrdup("");
	/* A notice to the postmaster is marked: its own failure never
	 * earns another (sched.c), whatever the postmaster maps to. */
	b.proto = xstrdup(env->sender[0] ? "local" : BOUNCE_PROTO_POSTMASTER);
	b.sender = xstrdup("");
	b.smtputf8 = env->smtputf8;
	b.body = env->smtputf8 ? xstrdup("8BITMIME") : NULL;
	if ((m = spool_msg_new(sp, &b, e)) == NULL)
		goto out;
	hlen = pread(fd, headers, sizeof(headers), off);
	memset(&p, 0, sizeof(p));
	p.kind = kind;
	p.hostname = c->hostname;
	p.queue_id = id;
	p.env = env;
	p.rcpts = rr;
	p.nrcpts = n;
	p.headers = hlen > 0 ? headers : NULL;
	p.headers_len = hlen > 0 ? (size_t)hlen : 0;
	p.now = tv.tv_sec;
	p.retry_until = retry_until;
	{
		char date[64];

		buf_printf(&hdr, "Received: by %s (smtpgate)\r\n\tid %s; %s\r\n",
		    c->hostname, spool_msg_id(m), header_date(tv.tv_sec, date,
		    sizeof(date)));
	}
	dsn_format(&text, &p);
	if (spool_msg_write(m, hdr.data, hdr.len, e) == -1 ||
	    spool_msg_write(m, text.data, text.len, e) == -1 ||
	    spool_msg_commit(m, e) == -1)
		goto out;
	str_copy(new_id, spool_msg_id(m), SPOOL_ID_LEN + 1);
	rc = 0;
out:
	spool_msg_free(m);
	envelope_clear(&b);
	buf_clear(&text);
	buf_clear(&hdr);
	return rc;
}
