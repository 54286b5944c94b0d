/*
 * listen.h - listening sockets that never fail a start for no reason
 * (SPEC §4): address parsing, bind with SO_REUSEADDR, systemd socket
 * activation, and naming the process that holds a busy port.
 */
#ifndef SMTPGATE_NET_LISTEN_H
#define SMTPGATE_NET_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

struct err;

/* Parses "host:port", "[v6]:port" or "*:port" (numeric hosts and
 * "localhost" only). Returns 0 or -1 with e->msg naming the problem. */
int	listen_parse_addr(const char *s, struct sockaddr_storage *ss,
	    socklen_t *len, struct err *e);
/*
 * One attempt to bind and listen on addr: socket (nonblocking, cloexec),
 * SO_REUSEADDR (and IPV6_V6ONLY for IPv6), bind, listen(backlog 1024).
 * Returns the fd, or -1 with e->msg "ADDR: REASON" and e->errnum set
 * (EADDRINUSE when busy: the caller retries).
 */
int	listen_try_bind(const char *addr, struct err *e);
/*
 * The process holding the local TCP address sa in LISTEN state or any
 * other state, found through /proc/net/tcp{,6} and /proc/PID/fd. Writes
 * "pid 1234 (nginx)" to out. Returns 0, or -1 when it cannot be found
 * (another user's process without permission, not Linux...).
 */
int	listen_port_holder(const struct sockaddr *sa, char *out, size_t size);
/*
 * systemd socket activation: when LISTEN_PID is our pid, returns the number
 * of descriptors passed from fd 3 (LISTEN_FDS) and unsets LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES; otherwise 0. The fds are made nonblocking
 * and close-on-exec.
 */
int	listen_systemd_fds(void);
/* Writes the local address of a bound socket fd as "host:port". */
char	*listen_fd_name(int fd, char *out, size_t size);

#endif
