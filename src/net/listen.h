/*
 * listen.h - listening sockets that never fail a start for no reason
 * (SPEC §4): address parsing, bind with SO_REUSEADDR, systemd socket
 * activation, and naming the process that holds a busy port.
 */
#ifndef SMTPGATE_NET_LISTEN_H
#define SMTPGATE_NET_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

struct event;
struct event_base;
struct evconnlistener;

struct err;

/*
 * Parses "host:port", "[v6]:port", "*:port" (any IPv4 address) or
 * "localhost:port" (127.0.0.1); hosts are numeric otherwise, never
 * resolved. Port 0 is accepted (the kernel picks one: tests). Returns 0,
 * or -1 with e->msg naming the address and the problem
 * ("listen address "x:99999": port 99999 out of range (0-65535)").
 */
int	listen_parse_addr(const char *s, struct sockaddr_storage *ss,
	    socklen_t *len, struct err *e);
/*
 * One attempt to bind and listen on addr: socket (nonblocking, cloexec),
 * SO_REUSEADDR (and IPV6_V6ONLY for IPv6), bind, listen(backlog 1024).
 * Returns the fd (caller closes), or -1 with e->msg "ADDR: REASON"
 * (strerror) and e->errnum set: EADDRINUSE when busy (the caller retries
 * and may name the holder with listen_port_holder), EINVAL for an address
 * that does not parse (e->msg from listen_parse_addr).
 */
int	listen_try_bind(const char *addr, struct err *e);
/*
 * The process holding the local TCP address sa in LISTEN state or any
 * other state, found through /proc/net/tcp{,6} and /proc/PID/fd: a socket
 * on the same port whose address equals sa's or where either is the
 * wildcard. A LISTEN socket wins over others. Writes "pid 1234 (nginx)"
 * (truncated to size) to out. Returns 0, or -1 when it cannot be found
 * (another user's process without permission, only TIME_WAIT left, not
 * Linux...). Reads /proc: slow with many processes, call it only after
 * EADDRINUSE.
 */
int	listen_port_holder(const struct sockaddr *sa, char *out, size_t size);
/*
 * systemd socket activation, as sd_listen_fds(3): when LISTEN_PID is our
 * pid, returns the number of descriptors passed from fd 3 (LISTEN_FDS),
 * made nonblocking and close-on-exec; otherwise 0. Returns -1 (errno
 * EINVAL for unparsable variables, EBADF when a passed fd is not open).
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset in every case, so
 * that children do not take the fds for theirs.
 */
int	listen_systemd_fds(void);
/*
 * Writes the local address of a bound socket fd as "127.0.0.1:2525" or
 * "[::1]:25". Returns out, or NULL (errno set) when getsockname fails or
 * out is too small.
 */
char	*listen_fd_name(int fd, char *out, size_t size);

/* Seconds a listener stops accepting after an accept() error. */
#define LISTEN_PAUSE	1

/* A timer that enables evl again, for listen_pause (event_free it). */
struct event	*listen_resume_new(struct event_base *base,
		    struct evconnlistener *evl);
/*
 * For a listener's error callback (EMFILE, ENFILE, ENOBUFS): the pending
 * connection stays in the listen queue, and evl would wake the loop for
 * it again at once, round after round. Instead evl stops accepting for
 * LISTEN_PAUSE seconds (resume is its listen_resume_new timer), with one
 * log line: "WHAT: accept: ERROR DETAIL: not accepting connections for
 * 1s".
 */
void		 listen_pause(struct evconnlistener *evl, struct event *resume,
		    const char *what, const char *detail);

#endif
