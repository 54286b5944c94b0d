/*
 * fdlimit.h - the open-files limit a server lives within.
 *
 * Every session is a socket, so the soft RLIMIT_NOFILE is a ceiling on
 * sessions that systemd (1024) and login shells set far below what an
 * event-driven server can hold. The server raises it to the hard limit at
 * start, and sizes what it accepts by what is left.
 */
#ifndef SMTPGATE_LIB_FDLIMIT_H
#define SMTPGATE_LIB_FDLIMIT_H

/* Never raised beyond this: some hard limits are "unlimited". */
#define FDLIMIT_CAP	1048576UL

/*
 * Raises the soft limit to the hard one (at most FDLIMIT_CAP). Returns the
 * soft limit now in force; *was is the one before (equal when nothing
 * changed or setrlimit refused).
 */
unsigned long	fdlimit_raise(unsigned long *was);

/* The soft limit in force (FDLIMIT_CAP when "unlimited"). */
unsigned long	fdlimit_current(void);

#endif
