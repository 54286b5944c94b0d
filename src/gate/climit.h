/*
 * climit.h - connection counts per client address, for
 * max_connections_per_ip. Open hashing over 16-byte addresses (IPv4 kept as
 * IPv4-mapped IPv6), so look-ups stay O(1) with 10,000 sessions.
 */
#ifndef SMTPGATE_GATE_CLIMIT_H
#define SMTPGATE_GATE_CLIMIT_H

#include <sys/socket.h>

struct climit;

struct climit	*climit_new(void);
void		 climit_free(struct climit *cl);
/* Counts one more connection from sa; returns the new count. */
unsigned	 climit_add(struct climit *cl, const struct sockaddr *sa);
/* Counts one connection from sa less. */
void		 climit_del(struct climit *cl, const struct sockaddr *sa);

#endif
