/*
 * smtp_server.h - the inbound SMTP server (RFC 5321 with PIPELINING, SIZE,
 * 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING) on libevent.
 *
 * It accepts on the listening sockets it is given, runs one session per
 * connection, writes each message into the spool and acknowledges it only
 * after spool_msg_commit; then it tells its owner through the queued
 * callback. It never delivers anything itself.
 */
#ifndef SMTPGATE_GATE_SMTP_SERVER_H
#define SMTPGATE_GATE_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct err;
struct runtime;
struct spool;

struct smtp_server;

/* Called after a message is committed and acknowledged. id is borrowed. */
typedef void (*smtp_server_queued_fn)(void *arg, const char *id);
typedef void (*smtp_server_done_fn)(void *arg);

/* rt is referenced (not consumed). Caller frees with smtp_server_free. */
struct smtp_server *smtp_server_new(struct event_base *base,
		    struct spool *sp, struct runtime *rt,
		    smtp_server_queued_fn queued, void *arg);
void		 smtp_server_free(struct smtp_server *srv);
/* New sessions use rt from now on; running ones keep theirs. */
void		 smtp_server_set_runtime(struct smtp_server *srv,
		    struct runtime *rt);
/* Serves connections on the listening socket fd (taken over). */
int		 smtp_server_listen(struct smtp_server *srv, int fd,
		    bool is_submission, struct err *e);
/*
 * Stops accepting; idle sessions get 421 4.3.2 and are closed; sessions in
 * a transaction may finish it for grace seconds, then everything is
 * closed. done is called once no session is left.
 */
void		 smtp_server_shutdown(struct smtp_server *srv, int grace,
		    smtp_server_done_fn done, void *arg);
size_t		 smtp_server_session_count(const struct smtp_server *srv);

#endif
