/*
 * ctl.h - the local control socket (spool_dir/ctl.sock) through which
 * `smtpgate queue`, `status` and `sendmail` talk to the running server.
 *
 * Protocol: the client sends one line "VERB [ARG]\n"; the server answers
 * with text lines and a last line "ok" or "error: REASON", then closes.
 */
#ifndef SMTPGATE_GATE_CTL_H
#define SMTPGATE_GATE_CTL_H

struct buf;
struct err;
struct event_base;

/* Runs verb with arg (may be NULL), appends the answer text to out and
 * returns 0, or -1 with the reason in out. */
typedef int (*ctl_handler_fn)(void *arg, const char *verb, const char *param,
    struct buf *out);

struct ctl;

/* Listens on path (an old socket file is replaced), mode 0600. */
struct ctl	*ctl_new(struct event_base *base, const char *path,
		    ctl_handler_fn fn, void *arg, struct err *e);
void		 ctl_free(struct ctl *c);

/*
 * Client side: sends "verb param" to the server at path, waits at most
 * timeout seconds, and puts the answer (without the final ok/error line)
 * in out. Returns 0 (ok), -1 (server said error: out has the reason), or
 * -2 when no server is running there (e->msg says why).
 */
int		 ctl_request(const char *path, const char *verb,
		    const char *param, int timeout, struct buf *out,
		    struct err *e);

#endif
