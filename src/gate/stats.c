/*
 * stats.c - live counters. Layer: gate. Owns `stats`; nothing else
 * defines counters.
 */
#include "gate/stats.h"

#include <time.h>

#include "lib/buf.h"

struct stats stats;

void
stats_format(struct buf *out)
{
	buf_printf(out, "uptime %lld\n", (long long)time(NULL) - stats.started);
	buf_printf(out, "connections %llu\n", stats.connections);
	buf_printf(out, "sessions %llu\n", stats.sessions);
	buf_printf(out, "accepted %llu\n", stats.accepted);
	buf_printf(out, "rejected %llu\n", stats.rejected);
	buf_printf(out, "delivered %llu\n", stats.delivered);
	buf_printf(out, "deferred %llu\n", stats.deferred);
	buf_printf(out, "bounced %llu\n", stats.bounced);
	buf_printf(out, "queue_size %llu\n", stats.queue_size);
}
