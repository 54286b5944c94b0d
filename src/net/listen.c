/*
 * listen.c - listening sockets that never fail a start for no reason
 * (SPEC §4): "host:port" parsing, one bind attempt with SO_REUSEADDR (the
 * caller retries a busy address once a second), systemd socket activation
 * (sd_listen_fds(3) without libsystemd), and naming the process that holds
 * a busy port from /proc.
 *
 * Layer: net. Owns no state and no event loop: it hands plain fds to its
 * caller. Reports through struct err and never logs, so that the caller
 * decides between "retrying" and "fatal". It must never bind without
 * SO_REUSEADDR: connections left in TIME_WAIT by a previous instance must
 * not block a restart.
 */
#include "net/listen.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/str.h"

#define LISTEN_BACKLOG		1024
#define SD_LISTEN_FDS_START	3
#define HOLDER_INODES_MAX	64
#define TCP_STATE_LISTEN	0x0a	/* include/net/tcp_states.h */

static int
parse_port(const char *s, const char *addr, in_port_t *port, struct err *e)
{
	unsigned long v = 0;

	if (*s == '\0')
		return err_set(e, "listen address \"%s\": missing port", addr);
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return err_set(e, "listen address \"%s\": bad port "
			    "\"%s\"", addr, s);
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return err_set(e, "listen address \"%s\": port %s out "
			    "of range (0-65535)", addr, s);
	}
	*port = htons((in_port_t)v);
	return 0;
}

static int
parse_v6(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    struct err *e)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	const char *rb = strchr(s, ']');
	char host[INET6_ADDRSTRLEN];
	size_t hlen;

	if (rb == NULL)
		return err_set(e, "listen address \"%s\": missing \"]\"", s);
	hlen = (size_t)(rb - (s + 1));
	if (hlen == 0 || hlen >= sizeof(host))
		return err_set(e, "listen address \"%s\": bad IPv6 address",
		    s);
	memcpy(host, s + 1, hlen);
	host[hlen] = '\0';
	if (rb[1] != ':')
		return err_set(e, "listen address \"%s\": missing \":PORT\" "
		    "after \"]\"", s);
	sin6->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
		return err_set(e, "listen address \"%s\": bad IPv6 address "
		    "\"%s\"", s, host);
	if (parse_port(rb + 2, s, &sin6->sin6_port, e) == -1)
		return -1;
	*len = sizeof(*sin6);
	return 0;
}

static int
parse_v4(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    struct err *e)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	const char *colon = strrchr(s, ':');
	char host[256];
	size_t hlen;

	if (colon == NULL)
		return err_set(e, "listen address \"%s\": missing \":PORT\"",
		    s);
	if (strchr(s, ':') != colon)
		return err_set(e, "listen address \"%s\": write an IPv6 "
		    "address in brackets, as \"[::1]:25\"", s);
	hlen = (size_t)(colon - s);
	if (hlen == 0)
		return err_set(e, "listen address \"%s\": missing host "
		    "(\"*\" for any)", s);
	if (hlen >= sizeof(host))
		return err_set(e, "listen address \"%s\": host too long", s);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	sin->sin_family = AF_INET;
	if (strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcasecmp(host, "localhost") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return err_set(e, "listen address \"%s\": \"%s\" is not a "
		    "numeric IPv4 address (host names other than localhost "
		    "are not resolved)", s, host);
	if (parse_port(colon + 1, s, &sin->sin_port, e) == -1)
		return -1;
	*len = sizeof(*sin);
	return 0;
}

int
listen_parse_addr(const char *s, struct sockaddr_storage *ss,
    socklen_t *len, struct err *e)
{
	memset(ss, 0, sizeof(*ss));
	*len = 0;
	if (s == NULL || *s == '\0')
		return err_set(e, "listen address \"\": empty");
	if (s[0] == '[')
		return parse_v6(s, ss, len, e);
	return parse_v4(s, ss, len, e);
}

int
listen_try_bind(const char *addr, struct err *e)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1, saved;

	if (listen_parse_addr(addr, &ss, &sslen, e) == -1) {
		if (e != NULL)
			e->errnum = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return err_sys(e, "%s: socket", addr);
	/*
	 * SO_REUSEADDR lets us bind while connections of a previous
	 * instance sit in TIME_WAIT; on Linux it still refuses a port that
	 * another socket is listening on, which is what we want to see.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail_opt;
	/* An IPv6 listener never takes the IPv4 port as well. */
	if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail_opt;
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1)
		goto fail;
	return fd;

fail_opt:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return err_sys(e, "%s: setsockopt", addr);
fail:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return err_sys(e, "%s", addr);
}

/* One local address from /proc/net/tcp{,6}, in the kernel's word order. */
struct tcp_ent {
	int		 family;
	uint32_t	 addr[4];	/* as the kernel prints them: native */
	unsigned	 port;		/* host order */
	unsigned	 state;
	unsigned long	 inode;
};

static bool
is_any(const struct tcp_ent *t)
{
	int n = t->family == AF_INET ? 1 : 4;

	for (int i = 0; i < n; i++)
		if (t->addr[i] != 0)
			return false;
	return true;
}

/* ::ffff:a.b.c.d maps to the IPv4 address a.b.c.d. */
static bool
is_v4_mapped(const struct tcp_ent *t)
{
	return t->family == AF_INET6 && t->addr[0] == 0 && t->addr[1] == 0 &&
	    t->addr[2] == htonl(0xffff);
}

/* The target as a tcp_ent, so both sides compare the same way. */
static int
target_from_sa(const struct sockaddr *sa, struct tcp_ent *t)
{
	memset(t, 0, sizeof(*t));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		t->family = AF_INET;
		t->addr[0] = sin->sin_addr.s_addr;
		t->port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		t->family = AF_INET6;
		memcpy(t->addr, &sin6->sin6_addr, sizeof(t->addr));
		t->port = ntohs(sin6->sin6_port);
	} else
		return -1;
	return 0;
}

/*
 * Whether socket s can be the reason the target cannot bind: same port,
 * and the addresses equal or either one the wildcard. Across families
 * only the IPv6 wildcard (possibly dual-stack) and IPv4-mapped addresses
 * meet IPv4 ones.
 */
static bool
conflicts(const struct tcp_ent *s, const struct tcp_ent *t)
{
	if (s->port != t->port)
		return false;
	if (s->family == t->family)
		return is_any(s) || is_any(t) ||
		    memcmp(s->addr, t->addr, sizeof(s->addr)) == 0;
	if (t->family == AF_INET) {
		/* s is IPv6 */
		if (is_any(s))
			return true;
		return is_v4_mapped(s) && (is_any(t) || s->addr[3] ==
		    t->addr[0]);
	}
	/* t is IPv6, s is IPv4 */
	if (is_any(t))
		return true;
	return is_v4_mapped(t) && (is_any(s) || t->addr[3] == s->addr[0]);
}

static int
parse_tcp_line(const char *line, int family, struct tcp_ent *t)
{
	char local[64], hex[9];
	unsigned port, state;
	unsigned long inode;
	size_t alen;
	const char *colon;

	/* sl local rem st tx:rx tr:when retr uid timeout inode */
	if (sscanf(line, " %*s %63s %*s %x %*s %*s %*s %*s %*s %lu",
	    local, &state, &inode) != 3)
		return -1;
	colon = strchr(local, ':');
	if (colon == NULL || sscanf(colon + 1, "%x", &port) != 1)
		return -1;
	alen = (size_t)(colon - local);
	if (alen != (family == AF_INET ? 8u : 32u))
		return -1;
	memset(t, 0, sizeof(*t));
	t->family = family;
	for (size_t i = 0; i < alen / 8; i++) {
		memcpy(hex, local + i * 8, 8);
		hex[8] = '\0';
		t->addr[i] = (uint32_t)strtoul(hex, NULL, 16);
	}
	t->port = port;
	t->state = state;
	t->inode = inode;
	return 0;
}

/*
 * Appends the inodes of sockets that conflict with the target, from one
 * /proc/net file: LISTEN ones go to the front so that they win. Sockets
 * with inode 0 (TIME_WAIT, orphans) belong to no process and are skipped.
 */
struct holder_ino {
	unsigned long	 inode;
	bool		 is_listen;
};

static void
collect_inodes(const char *path, int family, const struct tcp_ent *target,
    struct holder_ino *inodes, size_t *n)
{
	FILE *f = fopen(path, "re");
	char line[512];
	struct tcp_ent t;
	size_t i;

	if (f == NULL)
		return;
	if (fgets(line, sizeof(line), f) == NULL) {	/* header */
		(void)fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL && *n < HOLDER_INODES_MAX) {
		if (parse_tcp_line(line, family, &t) == -1 || t.inode == 0 ||
		    !conflicts(&t, target))
			continue;
		i = *n;
		if (t.state == TCP_STATE_LISTEN) {
			/* after the LISTEN ones already there */
			i = 0;
			while (i < *n && inodes[i].is_listen)
				i++;
			memmove(inodes + i + 1, inodes + i,
			    (*n - i) * sizeof(*inodes));
		}
		inodes[i].inode = t.inode;
		inodes[i].is_listen = t.state == TCP_STATE_LISTEN;
		(*n)++;
	}
	(void)fclose(f);
}

/* Index in inodes of the socket named by link "socket:[N]", or -1. */
static long
inode_index(const char *link, const struct holder_ino *inodes, size_t n)
{
	unsigned long ino;
	char *end;

	if (strncmp(link, "socket:[", 8) != 0)
		return -1;
	errno = 0;
	ino = strtoul(link + 8, &end, 10);
	if (errno != 0 || *end != ']')
		return -1;
	for (size_t i = 0; i < n; i++)
		if (inodes[i].inode == ino)
			return (long)i;
	return -1;
}

/* The best (lowest) inode index that process pid holds, or -1. */
static long
scan_pid_fds(const char *pid, const struct holder_ino *inodes, size_t n)
{
	char dirpath[64], path[320], link[64];
	struct dirent *de;
	long best = -1, i;
	ssize_t len;
	DIR *d;

	if ((size_t)snprintf(dirpath, sizeof(dirpath), "/proc/%s/fd", pid) >=
	    sizeof(dirpath))
		return -1;
	if ((d = opendir(dirpath)) == NULL)
		return -1;	/* gone, or another user's process */
	while ((de = readdir(d)) != NULL && best != 0) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dirpath,
		    de->d_name) >= sizeof(path))
			continue;
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		i = inode_index(link, inodes, n);
		if (i != -1 && (best == -1 || i < best))
			best = i;
	}
	(void)closedir(d);
	return best;
}

static bool
is_pid_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static void
format_holder(const char *pid, char *out, size_t size)
{
	char path[64], comm[64] = "";
	FILE *f;

	if ((size_t)snprintf(path, sizeof(path), "/proc/%s/comm", pid) <
	    sizeof(path) && (f = fopen(path, "re")) != NULL) {
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		(void)fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
	}
	if (comm[0] != '\0')
		snprintf(out, size, "pid %s (%s)", pid, comm);
	else
		snprintf(out, size, "pid %s", pid);
}

int
listen_port_holder(const struct sockaddr *sa, char *out, size_t size)
{
	struct holder_ino inodes[HOLDER_INODES_MAX];
	char best_pid[32] = "";
	struct tcp_ent target;
	struct dirent *de;
	long best = -1, i;
	size_t n = 0;
	DIR *d;

	if (size > 0)
		out[0] = '\0';
	if (sa == NULL || target_from_sa(sa, &target) == -1)
		return -1;
	collect_inodes("/proc/net/tcp", AF_INET, &target, inodes, &n);
	collect_inodes("/proc/net/tcp6", AF_INET6, &target, inodes, &n);
	if (n == 0)
		return -1;
	if ((d = opendir("/proc")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && best != 0) {
		if (!is_pid_name(de->d_name))
			continue;
		i = scan_pid_fds(de->d_name, inodes, n);
		if (i != -1 && (best == -1 || i < best)) {
			best = i;
			str_copy(best_pid, de->d_name, sizeof(best_pid));
		}
	}
	(void)closedir(d);
	if (best == -1)
		return -1;
	format_holder(best_pid, out, size);
	return 0;
}

int
listen_systemd_fds(void)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	unsigned long pid, n;
	char *end;
	int r = 0;

	if (pid_s == NULL || fds_s == NULL)
		goto done;
	errno = 0;
	pid = strtoul(pid_s, &end, 10);
	if (errno != 0 || end == pid_s || *end != '\0')
		goto bad;
	if (pid != (unsigned long)getpid())
		goto done;	/* meant for another process */
	errno = 0;
	n = strtoul(fds_s, &end, 10);
	if (errno != 0 || end == fds_s || *end != '\0' ||
	    n > (unsigned long)(INT_MAX - SD_LISTEN_FDS_START))
		goto bad;
	for (int fd = SD_LISTEN_FDS_START;
	    fd < SD_LISTEN_FDS_START + (int)n; fd++) {
		int fl = fcntl(fd, F_GETFL);
		if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
			goto fail;	/* errno from fcntl: EBADF */
	}
	r = (int)n;
	goto done;

bad:
	errno = EINVAL;
fail:
	r = -1;
done:
	/* Like sd_listen_fds(1): children must not take them for theirs. */
	{
		int saved = errno;
		(void)unsetenv("LISTEN_PID");
		(void)unsetenv("LISTEN_FDS");
		(void)unsetenv("LISTEN_FDNAMES");
		errno = saved;
	}
	return r;
}

char *
listen_fd_name(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	int n;

	if (size == 0 || getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return NULL;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, host,
		    sizeof(host)) == NULL)
			return NULL;
		n = snprintf(out, size, "%s:%u", host,
		    (unsigned)ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, host,
		    sizeof(host)) == NULL)
			return NULL;
		n = snprintf(out, size, "[%s]:%u", host,
		    (unsigned)ntohs(sin6->sin6_port));
	} else {
		errno = EAFNOSUPPORT;
		return NULL;
	}
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return out;
}

static void
resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

struct event *
listen_resume_new(struct event_base *base, struct evconnlistener *evl)
{
	return evtimer_new(base, resume_accepting, evl);
}

void
listen_pause(struct evconnlistener *evl, struct event *resume,
    const char *what, const char *detail)
{
	struct timeval tv = { LISTEN_PAUSE, 0 };

	log_warnx("%s: accept: %s%s: not accepting connections for %ds", what,
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), detail,
	    LISTEN_PAUSE);
	evconnlistener_disable(evl);
	evtimer_add(resume, &tv);
}
