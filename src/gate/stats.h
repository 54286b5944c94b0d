/*
 * stats.h - the server's live counters (SPEC §1 `smtpgate status`).
 * The one mutable global of its kind, owned here, updated on the event
 * loop only.
 */
#ifndef SMTPGATE_GATE_STATS_H
#define SMTPGATE_GATE_STATS_H

struct buf;

struct stats {
	unsigned long long	connections;	/* accepted since start */
	unsigned long long	sessions;	/* open now */
	unsigned long long	accepted;	/* messages queued (250) */
	unsigned long long	rejected;	/* messages refused after data */
	unsigned long long	delivered;	/* recipients sent */
	unsigned long long	deferred;	/* recipient attempts deferred */
	unsigned long long	bounced;	/* recipients bounced */
	unsigned long long	queue_size;	/* messages in the queue now */
	long long		started;	/* epoch seconds */
};

extern struct stats stats;

/* "key value\n" lines for every counter. */
void	stats_format(struct buf *out);

#endif
