/*
 * ctl.c - the control socket, server and client side. Layer: gate.
 * Owns its listener and the connections on it; each request is one short
 * line, answered at once (bounded input, no state kept).
 */
#include "gate/ctl.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/str.h"
#include "net/listen.h"

#define CTL_LINE_MAX	512

struct ctl {
	struct evconnlistener	*evl;
	struct event		*resume_ev;
	char			*path;
	ctl_handler_fn		 fn;
	void			*arg;
};

static void
conn_done(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct ctl *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	struct buf out;
	char *param;

	if (line == NULL) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	buf_init(&out);
	param = strchr(line, ' ');
	if (param)
		*param++ = '\0';
	if (c->fn(c->arg, line, param, &out) == 0)
		buf_puts(&out, "ok\n");
	else {
		char *reason = buf_release(&out);

		buf_printf(&out, "error: %s\n", reason);
		free(reason);
	}
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, conn_done, conn_event, NULL);
	bufferevent_write(bev, out.data, out.len);
	buf_clear(&out);
}

static void
on_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(evl);
	struct bufferevent *bev;

	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		(void)close(fd);
		return;
	}
	bufferevent_setcb(bev, conn_read, NULL, conn_event, arg);
	bufferevent_set_timeouts(bev, &(struct timeval){ 10, 0 },
	    &(struct timeval){ 10, 0 });
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Out of descriptors: a second's pause rather than a spinning retry. */
static void
on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct ctl *c = arg;
	char what[PATH_MAX + 20];

	snprintf(what, sizeof(what), "control socket %s", c->path);
	listen_pause(evl, c->resume_ev, what, "");
}

static int
make_addr(const char *path, struct sockaddr_un *sun, struct err *e)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (str_copy(sun->sun_path, path, sizeof(sun->sun_path)) >=
	    sizeof(sun->sun_path))
		return err_set(e, "control socket path too long: %s", path);
	return 0;
}

struct ctl *
ctl_new(struct event_base *base, const char *path, ctl_handler_fn fn,
    void *arg, struct err *e)
{
	struct sockaddr_un sun;
	struct ctl *c;
	mode_t old;

	if (make_addr(path, &sun, e) == -1)
		return NULL;
	if (unlink(path) == -1 && errno != ENOENT) {
		err_sys(e, "unlink %s", path);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	c->fn = fn;
	c->arg = arg;
	old = umask(077);
	c->evl = evconnlistener_new_bind(base, on_accept, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (c->evl == NULL) {
		err_sys(e, "control socket %s", path);
		free(c->path);
		free(c);
		return NULL;
	}
	evconnlistener_set_error_cb(c->evl, on_accept_error);
	c->resume_ev = listen_resume_new(base, c->evl);
	return c;
}

void
ctl_free(struct ctl *c)
{
	if (c == NULL)
		return;
	evconnlistener_free(c->evl);
	event_free(c->resume_ev);
	(void)unlink(c->path);
	free(c->path);
	free(c);
}

int
ctl_request(const char *path, const char *verb, const char *param,
    int timeout, struct buf *out, struct err *e)
{
	struct sockaddr_un sun;
	struct buf req;
	char chunk[4096];
	char *last;
	int fd, rc;

	if (make_addr(path, &sun, e) == -1)
		return -2;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		err_sys(e, "socket");
		return -2;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		err_sys(e, "no server is running (%s)", path);
		(void)close(fd);
		return -2;
	}
	buf_init(&req);
	buf_printf(&req, "%s%s%s\n", verb, param ? " " : "", param ? param :
	    "");
	if (write(fd, req.data, req.len) != (ssize_t)req.len) {
		err_sys(e, "write to %s", path);
		buf_clear(&req);
		(void)close(fd);
		return -2;
	}
	buf_clear(&req);
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, timeout * 1000) <= 0) {
			err_set(e, "no answer from the server within %ds",
			    timeout);
			(void)close(fd);
			return -2;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_append(out, chunk, (size_t)n);
	}
	(void)close(fd);
	/* Split off the last line: "ok" or "error: ...". */
	while (out->len && out->data[out->len - 1] == '\n')
		out->data[--out->len] = '\0';
	last = strrchr(out->data ? out->data : "", '\n');
	last = last ? last + 1 : out->data;
	if (last && strcmp(last, "ok") == 0)
		rc = 0;
	else if (last && strncmp(last, "error: ", 7) == 0) {
		err_set(e, "%s", last + 7);
		rc = -1;
	} else {
		err_set(e, "unexpected answer from the server");
		rc = -1;
	}
	if (last) {
		out->len = (size_t)(last - out->data);
		out->data[out->len] = '\0';
	}
	return rc;
}
