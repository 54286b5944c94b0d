/*
 * test_listen.c - unit tests for src/net/listen.c: address parsing, one
 * bind attempt, EADDRINUSE on a port we hold ourselves, finding the holder
 * of a port through /proc, systemd socket activation and fd naming.
 * Loopback only; every port is chosen by the kernel (port 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/err.h"
#include "net/listen.h"

#include "t.h"

/* Parses s and formats it back as "host:port" through inet_ntop. */
static const char *
parse_fmt(const char *s, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct err e;
	char host[INET6_ADDRSTRLEN];

	err_clear(&e);
	if (listen_parse_addr(s, &ss, &len, &e) == -1)
		return NULL;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		CHECK_INT(len, sizeof(*sin));
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		CHECK_INT(len, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else
		return NULL;
	return out;
}

static void
test_parse_good(void)
{
	char b[128];

	CHECK_STR(parse_fmt("127.0.0.1:2525", b, sizeof(b)), "127.0.0.1:2525");
	CHECK_STR(parse_fmt("[::1]:25", b, sizeof(b)), "[::1]:25");
	CHECK_STR(parse_fmt("*:25", b, sizeof(b)), "0.0.0.0:25");
	CHECK_STR(parse_fmt("[::]:25", b, sizeof(b)), "[::]:25");
	CHECK_STR(parse_fmt("localhost:25", b, sizeof(b)), "127.0.0.1:25");
	CHECK_STR(parse_fmt("LocalHost:587", b, sizeof(b)), "127.0.0.1:587");
	CHECK_STR(parse_fmt("0.0.0.0:0", b, sizeof(b)), "0.0.0.0:0");
	CHECK_STR(parse_fmt("10.1.2.3:65535", b, sizeof(b)), "10.1.2.3:65535");
	CHECK_STR(parse_fmt("[2001:db8::1]:2525", b, sizeof(b)),
	    "[2001:db8::1]:2525");
}

/* The parse fails and the message names the address and a reason. */
static void
check_bad(const char *s, const char *reason)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct err e;

	err_clear(&e);
	CHECK_INT(listen_parse_addr(s, &ss, &len, &e), -1);
	if (strstr(e.msg, s) == NULL || strstr(e.msg, reason) == NULL) {
		fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", s,
		    e.msg, reason);
		t_failed_checks++;
	}
}

static void
test_parse_bad(void)
{
	check_bad("127.0.0.1", "missing");
	check_bad("127.0.0.1:", "missing port");
	check_bad("127.0.0.1:25x", "bad port");
	check_bad("127.0.0.1:65536", "out of range");
	check_bad("127.0.0.1:99999999999999999999", "out of range");
	check_bad("127.0.0.1:-1", "bad port");
	check_bad(":25", "missing host");
	check_bad("mail.example.com:25", "not a numeric");
	check_bad("256.0.0.1:25", "not a numeric");
	check_bad("::1:25", "brackets");
	check_bad("[::1]", "missing");
	check_bad("[::1:25", "missing \"]\"");
	check_bad("[]:25", "bad IPv6");
	check_bad("[zz::1]:25", "bad IPv6");
	check_bad("[::1]25", "missing");
	check_bad("[127.0.0.1]:25", "bad IPv6");
	check_bad("", "empty");
}

static void
test_bind_port_zero(void)
{
	struct err e;
	char name[64];
	int fd, fl;

	err_clear(&e);
	fd = listen_try_bind("127.0.0.1:0", &e);
	CHECK(fd >= 0);
	if (fd < 0) {
		fprintf(stderr, "  %s\n", e.msg);
		return;
	}
	fl = fcntl(fd, F_GETFL);
	CHECK(fl != -1 && (fl & O_NONBLOCK));
	fl = fcntl(fd, F_GETFD);
	CHECK(fl != -1 && (fl & FD_CLOEXEC));
	CHECK(listen_fd_name(fd, name, sizeof(name)) != NULL);
	CHECK(strncmp(name, "127.0.0.1:", 10) == 0 && atoi(name + 10) > 0);
	/* too small a buffer is an error, not a truncated name */
	CHECK(listen_fd_name(fd, name, 5) == NULL);
	close(fd);

	/* IPv6 loopback, when this host has it */
	err_clear(&e);
	fd = listen_try_bind("[::1]:0", &e);
	if (fd >= 0) {
		int v6only = 0;
		socklen_t l = sizeof(v6only);
		CHECK(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    &l) == 0 && v6only == 1);
		CHECK(listen_fd_name(fd, name, sizeof(name)) != NULL);
		CHECK(strncmp(name, "[::1]:", 6) == 0);
		close(fd);
	} else
		fprintf(stderr, "  (no IPv6 loopback: %s)\n", e.msg);

	err_clear(&e);
	CHECK_INT(listen_try_bind("nonsense", &e), -1);
	CHECK(strstr(e.msg, "nonsense") != NULL);
	CHECK(e.errnum != 0 && e.errnum != EADDRINUSE);
}

/* A listening socket bound without SO_REUSEADDR on 127.0.0.1:0. */
static int
plain_listener(unsigned *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 5) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		perror("plain_listener");
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
test_bind_busy(void)
{
	struct err e;
	char addr[64], name[64], expect[256];
	unsigned port;
	int held, fd;

	/* held by a socket without SO_REUSEADDR */
	held = plain_listener(&port);
	CHECK(held >= 0);
	if (held < 0)
		return;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	err_clear(&e);
	CHECK_INT(listen_try_bind(addr, &e), -1);
	CHECK_INT(e.errnum, EADDRINUSE);
	snprintf(expect, sizeof(expect), "%s: %s", addr, strerror(EADDRINUSE));
	CHECK_STR(e.msg, expect);
	/* the wildcard conflicts with it too */
	snprintf(addr, sizeof(addr), "*:%u", port);
	err_clear(&e);
	CHECK_INT(listen_try_bind(addr, &e), -1);
	CHECK_INT(e.errnum, EADDRINUSE);
	close(held);

	/* held by our own listener (with SO_REUSEADDR): still busy */
	err_clear(&e);
	held = listen_try_bind("127.0.0.1:0", &e);
	CHECK(held >= 0);
	if (held < 0)
		return;
	CHECK(listen_fd_name(held, name, sizeof(name)) != NULL);
	err_clear(&e);
	CHECK_INT(listen_try_bind(name, &e), -1);
	CHECK_INT(e.errnum, EADDRINUSE);
	CHECK(strncmp(e.msg, name, strlen(name)) == 0);
	close(held);

	/* once it is closed, the address binds again at once */
	err_clear(&e);
	fd = listen_try_bind(name, &e);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

/* A connection that leaves TIME_WAIT behind does not block a rebind. */
static void
test_bind_time_wait(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct err e;
	char name[64];
	int lfd, c, a, fd;

	err_clear(&e);
	lfd = listen_try_bind("127.0.0.1:0", &e);
	CHECK(lfd >= 0);
	if (lfd < 0)
		return;
	CHECK(listen_fd_name(lfd, name, sizeof(name)) != NULL);
	CHECK(getsockname(lfd, (struct sockaddr *)&sin, &len) == 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&sin, len) == 0);
	a = -1;
	for (int i = 0; i < 200 && a == -1; i++) {
		a = accept(lfd, NULL, NULL);
		if (a == -1)
			usleep(5000);
	}
	CHECK(a >= 0);
	/* the server side closes first: its end goes to TIME_WAIT */
	close(a);
	usleep(20000);
	close(c);
	close(lfd);
	usleep(20000);
	err_clear(&e);
	fd = listen_try_bind(name, &e);
	CHECK(fd >= 0);
	if (fd < 0)
		fprintf(stderr, "  %s\n", e.msg);
	else
		close(fd);
}

static void
test_port_holder(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct err e;
	char name[64], out[128], expect[128], comm[64] = "", wild[64];
	unsigned port;
	int held;
	FILE *f;

	if ((f = fopen("/proc/self/comm", "r")) != NULL) {
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
	}
	snprintf(expect, sizeof(expect), "pid %ld (%s)", (long)getpid(), comm);

	err_clear(&e);
	held = listen_try_bind("127.0.0.1:0", &e);
	CHECK(held >= 0);
	if (held < 0)
		return;
	CHECK(listen_fd_name(held, name, sizeof(name)) != NULL);
	CHECK_INT(listen_parse_addr(name, &ss, &len, &e), 0);
	CHECK_INT(listen_port_holder((struct sockaddr *)&ss, out, sizeof(out)),
	    0);
	CHECK_STR(out, expect);

	/* the wildcard address on the same port finds it as well */
	port = (unsigned)atoi(strchr(name, ':') + 1);
	snprintf(wild, sizeof(wild), "*:%u", port);
	CHECK_INT(listen_parse_addr(wild, &ss, &len, &e), 0);
	out[0] = '\0';
	CHECK_INT(listen_port_holder((struct sockaddr *)&ss, out, sizeof(out)),
	    0);
	CHECK_STR(out, expect);
	/* a short buffer truncates but stays a string */
	CHECK_INT(listen_port_holder((struct sockaddr *)&ss, out, 6), 0);
	CHECK_INT(strlen(out), 5);
	CHECK(strncmp(out, expect, 5) == 0);
	close(held);

	/* nothing holds it any more */
	CHECK_INT(listen_parse_addr(name, &ss, &len, &e), 0);
	CHECK_INT(listen_port_holder((struct sockaddr *)&ss, out, sizeof(out)),
	    -1);

	/* IPv6: a wildcard [::] holder is found for a v6 address */
	err_clear(&e);
	held = listen_try_bind("[::]:0", &e);
	if (held >= 0) {
		CHECK(listen_fd_name(held, name, sizeof(name)) != NULL);
		port = (unsigned)atoi(strrchr(name, ':') + 1);
		snprintf(wild, sizeof(wild), "[::1]:%u", port);
		CHECK_INT(listen_parse_addr(wild, &ss, &len, &e), 0);
		CHECK_INT(listen_port_holder((struct sockaddr *)&ss, out,
		    sizeof(out)), 0);
		CHECK_STR(out, expect);
		close(held);
	}
}

static void
test_systemd_fds(void)
{
	char pid[32];

	/* nothing set */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	CHECK_INT(listen_systemd_fds(), 0);

	/* meant for another process: ignored, and not passed on */
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "smtp", 1);
	CHECK_INT(listen_systemd_fds(), 0);
	CHECK(getenv("LISTEN_PID") == NULL);
	CHECK(getenv("LISTEN_FDS") == NULL);
	CHECK(getenv("LISTEN_FDNAMES") == NULL);

	/* garbage */
	setenv("LISTEN_PID", "12abc", 1);
	setenv("LISTEN_FDS", "1", 1);
	CHECK_INT(listen_systemd_fds(), -1);
	CHECK(getenv("LISTEN_PID") == NULL);
}

/* Our pid, fd 3 a blocking listening socket: taken, made nonblocking. */
static void
test_systemd_fds_ours(void)
{
	struct err e;
	char pid[32], name[64], name3[64], count[16];
	int lfd, saved3, fl, closed;

	err_clear(&e);
	lfd = listen_try_bind("127.0.0.1:0", &e);
	CHECK(lfd >= 0);
	if (lfd < 0)
		return;
	CHECK(listen_fd_name(lfd, name, sizeof(name)) != NULL);
	saved3 = fcntl(3, F_DUPFD_CLOEXEC, 100);	/* -1 when fd 3 is free */
	CHECK(dup2(lfd, 3) == 3);	/* dup2 clears FD_CLOEXEC */
	fl = fcntl(3, F_GETFL);
	CHECK(fcntl(3, F_SETFL, fl & ~O_NONBLOCK) == 0);

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	CHECK_INT(listen_systemd_fds(), 1);
	CHECK(getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL);
	fl = fcntl(3, F_GETFL);
	CHECK(fl != -1 && (fl & O_NONBLOCK));
	fl = fcntl(3, F_GETFD);
	CHECK(fl != -1 && (fl & FD_CLOEXEC));
	CHECK(listen_fd_name(3, name3, sizeof(name3)) != NULL);
	CHECK_STR(name3, name);

	/* a count that reaches a closed fd */
	for (closed = 4; fcntl(closed, F_GETFD) != -1; closed++)
		;
	snprintf(count, sizeof(count), "%d", closed - 3 + 1);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", count, 1);
	CHECK_INT(listen_systemd_fds(), -1);
	CHECK_INT(errno, EBADF);

	if (saved3 >= 0) {
		CHECK(dup2(saved3, 3) == 3);
		close(saved3);
	} else
		close(3);
	close(lfd);
}

int
main(void)
{
	RUN(test_parse_good);
	RUN(test_parse_bad);
	RUN(test_bind_port_zero);
	RUN(test_bind_busy);
	RUN(test_bind_time_wait);
	RUN(test_port_holder);
	RUN(test_systemd_fds);
	RUN(test_systemd_fds_ours);
	T_EXIT();
}
