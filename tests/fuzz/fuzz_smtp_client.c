/*
 * fuzz_smtp_client.c - libFuzzer target for the outbound SMTP/LMTP client
 * (src/gate/smtp_client.c), which reads the replies of untrusted remote
 * servers: the multi-line reply parser (take_line/read_reply), the
 * enhanced status codes and the EHLO keywords (parse_ehlo).
 *
 * Those parsers are static functions of a client bound to a bufferevent,
 * not reachable as pure functions, so the target drives the real client
 * through its public API over a socketpair: byte 0 picks the mode (bit 0
 * LMTP, bit 1 a second transaction on the same connection, bit 2 one
 * recipient instead of three, bit 3 an 8-bit message, bit 4 a UTF-8
 * recipient), the rest is everything the "server" sends, written at once
 * and followed by end of file. Without TLS.
 *
 * Checks, beyond the sanitizers:
 * - every reply handed to a callback has a valid status and step, a
 *   code of 0 or 200-599, a text without control characters that starts
 *   with the code when there is one (or is the client's "unexpected
 *   reply from peer ..." sentence: the header promises the reply, see
 *   the report), an enhanced code that is "" or
 *   class.digits.digits of the code's class; a 4xx reply is TEMPFAIL and
 *   a 5xx PERMFAIL; rcpt() is OK only for a 2xx;
 * - every recipient of every transaction gets exactly one final result
 *   (rcpt refusal, data_done, tx_done's fail, or failed's reply), the
 *   LMTP data_done replies come for accepted recipients in order, and
 *   every transaction is over by tx_done or failed;
 * - no callback after failed or closed, exactly one of them ends the
 *   session, ready comes once before any transaction, and
 *   smtp_client_size_max is 0 unless SIZE was announced;
 * - the session ends by itself once the input is used up (no timer
 *   needed; a 10 s safety timer would count as a hang).
 */
/* fuzz-sources: src/gate/smtp_client.c src/lib/buf.c src/lib/err.c src/lib/mem.c src/lib/log.c src/lib/str.c */
/* fuzz-libs: -levent -levent_openssl -lssl -lcrypto -lpthread */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "gate/smtp_client.h"
#include "lib/err.h"
#include "fuzz_util.h"

#define NRCPT	3

enum result { R_NONE, R_ACCEPTED, R_FINAL };

struct run {
	struct event_base	*base;
	struct smtp_client	*c;
	int			 fd;		/* the message */
	bool			 is_lmtp;
	int			 tx_left;	/* transactions to start */
	bool			 in_tx;
	bool			 ready_seen;
	bool			 over;		/* failed or closed came */
	size_t			 nrcpt;
	enum result		 res[NRCPT];
	int			 lmtp_next;	/* next accepted index due */
	const char		*rcpts[NRCPT];
};

static void
check_reply(const struct smtp_client_reply *r)
{
	if (r == NULL || r->text == NULL ||
	    (unsigned)r->status >= SMTP_CLIENT_STATUS_COUNT ||
	    (unsigned)r->step >= SMTP_CLIENT_STEP_COUNT)
		abort();
	if (memchr(r->enhanced, '\0', sizeof(r->enhanced)) == NULL)
		abort();
	for (const unsigned char *p = (const unsigned char *)r->text; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			abort();
	if (r->code == 0) {
		if (r->text[0] == '\0')
			abort();
		if (r->enhanced[0] && !fuzz_is_status(r->enhanced,
		    r->enhanced[0] - '0'))
			abort();
		return;
	}
	if (r->code < 200 || r->code > 599)
		abort();
	/* The reply itself, or (a reply that makes no sense where it came,
	 * smtp_client.c handle_reply) our sentence quoting it. */
	if ((r->text[0] != '0' + r->code / 100 ||
	    r->text[1] != '0' + r->code / 10 % 10 ||
	    r->text[2] != '0' + r->code % 10 ||
	    (r->text[3] != '\0' && r->text[3] != ' ')) &&
	    strncmp(r->text, "unexpected reply from peer ", 27) != 0)
		abort();
	if (r->enhanced[0] && !fuzz_is_status(r->enhanced, r->code / 100))
		abort();
	if (r->code / 100 == 4 && r->status != SMTP_CLIENT_TEMPFAIL &&
	    r->status != SMTP_CLIENT_CONNFAIL)
		abort();
	if (r->code / 100 == 5 && r->status != SMTP_CLIENT_PERMFAIL &&
	    r->status != SMTP_CLIENT_CONNFAIL)
		abort();
	if (r->status == SMTP_CLIENT_OK && r->code / 100 != 2 &&
	    r->code / 100 != 3)
		abort();
}

static void
start_tx(struct run *r)
{
	struct smtp_client_msg m;
	struct err e;

	memset(&m, 0, sizeof(m));
	m.sender = "sender@example.org";
	m.rcpts = r->rcpts;
	m.rcpt_count = r->nrcpt;
	m.fd = r->fd;
	m.offset = 0;
	m.length = lseek(r->fd, 0, SEEK_END);
	for (size_t i = 0; i < r->nrcpt; i++)
		r->res[i] = R_NONE;
	r->lmtp_next = 0;
	if (smtp_client_send(r->c, &m, &e) == -1)
		abort();
	r->in_tx = true;
	r->tx_left--;
}

static void
on_ready(struct smtp_client *c, void *arg)
{
	struct run *r = arg;

	if (r->over || r->ready_seen || r->in_tx)
		abort();
	r->ready_seen = true;
	if ((smtp_client_extensions(c) & SMTP_CLIENT_EXT_SIZE) == 0 &&
	    smtp_client_size_max(c) != 0)
		abort();
	start_tx(r);
}

static void
final(struct run *r, int index)
{
	if (index < 0 || (size_t)index >= r->nrcpt ||
	    r->res[index] == R_FINAL)
		abort();
	r->res[index] = R_FINAL;
}

static void
on_rcpt(struct smtp_client *c, void *arg, int index,
    const struct smtp_client_reply *reply)
{
	struct run *r = arg;

	check_reply(reply);
	if (r->over || !r->in_tx || index < 0 || (size_t)index >= r->nrcpt ||
	    r->res[index] != R_NONE)
		abort();
	if (reply->status == SMTP_CLIENT_OK) {
		if (reply->code / 100 != 2)
			abort();
		r->res[index] = R_ACCEPTED;
	} else
		final(r, index);
}

static void
on_data_done(struct smtp_client *c, void *arg, int index,
    const struct smtp_client_reply *reply)
{
	struct run *r = arg;

	check_reply(reply);
	if (r->over || !r->in_tx)
		abort();
	if (!r->is_lmtp) {
		if (index != -1)
			abort();
		for (size_t i = 0; i < r->nrcpt; i++) {
			if (r->res[i] == R_NONE)
				abort();
			if (r->res[i] == R_ACCEPTED)
				final(r, (int)i);
		}
		return;
	}
	/* LMTP: the accepted recipients, in order. */
	while (r->lmtp_next < (int)r->nrcpt &&
	    r->res[r->lmtp_next] != R_ACCEPTED)
		r->lmtp_next++;
	if (index != r->lmtp_next)
		abort();
	final(r, index);
	r->lmtp_next++;
}

static void
on_tx_done(struct smtp_client *c, void *arg,
    const struct smtp_client_reply *fail)
{
	struct run *r = arg;

	if (r->over || !r->in_tx)
		abort();
	if (fail)
		check_reply(fail);
	for (size_t i = 0; i < r->nrcpt; i++) {
		if (r->res[i] == R_FINAL)
			continue;
		if (fail == NULL)
			abort();
		r->res[i] = R_FINAL;
	}
	r->in_tx = false;
	if (r->tx_left > 0)
		start_tx(r);
	else
		smtp_client_quit(c);
}

static void
on_failed(struct smtp_client *c, void *arg,
    const struct smtp_client_reply *reply)
{
	struct run *r = arg;

	check_reply(reply);
	if (r->over)
		abort();
	if (reply->status == SMTP_CLIENT_OK)
		abort();
	r->over = true;
	r->in_tx = false;
	event_base_loopbreak(r->base);
}

static void
on_closed(struct smtp_client *c, void *arg)
{
	struct run *r = arg;

	if (r->over || r->in_tx)
		abort();
	r->over = true;
	event_base_loopbreak(r->base);
}

static void
on_safety(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static int
message_fd(bool is_8bit)
{
	static const char text[] = "Subject: test\r\n\r\nline one\r\n"
	    ".leading dot\r\n.\r\nlast\r\n";
	int fd = memfd_create("msg", MFD_CLOEXEC);

	if (fd == -1)
		abort();
	if (write(fd, text, sizeof(text) - 1) != (ssize_t)sizeof(text) - 1 ||
	    (is_8bit && write(fd, "caf\xc3\xa9\r\n", 7) != 7))
		abort();
	return fd;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_base *base;
	struct smtp_client_params params;
	struct smtp_client_cb cb = {
		on_ready, on_rcpt, on_data_done, on_tx_done, on_failed,
		on_closed,
	};
	struct timeval ten = { 10, 0 };
	struct event *safety;
	struct run r;
	struct err e;
	int sv[2];
	size_t off = 1;

	if (size < 1)
		return 0;
	if (base == NULL) {
		signal(SIGPIPE, SIG_IGN);
		if ((base = event_base_new()) == NULL)
			abort();
	}
	memset(&r, 0, sizeof(r));
	r.base = base;
	r.is_lmtp = data[0] & 1;
	r.tx_left = (data[0] & 2) ? 2 : 1;
	r.nrcpt = (data[0] & 4) ? 1 : NRCPT;
	r.rcpts[0] = "one@example.net";
	r.rcpts[1] = (data[0] & 16) ? "tw\xc3\xb6@example.net" :
	    "two@example.net";
	r.rcpts[2] = "three@example.net";
	r.fd = message_fd(data[0] & 8);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		abort();
	/* The whole dialogue of the "server" at once, then end of file. */
	while (off < size) {
		ssize_t n = write(sv[1], data + off, size - off);

		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);

	memset(&params, 0, sizeof(params));
	params.helo_name = "client.example.org";
	params.server_name = "mx.example.net";
	params.is_lmtp = r.is_lmtp;
	r.c = smtp_client_new(base, sv[0], &params, &cb, &r, &e);
	if (r.c == NULL)
		abort();
	if ((safety = evtimer_new(base, on_safety, base)) == NULL ||
	    evtimer_add(safety, &ten) == -1)
		abort();
	event_base_dispatch(base);
	if (!r.over)
		abort();	/* a hang: the input ended, so must the session */
	event_free(safety);
	smtp_client_free(r.c);
	/* Run what a freed client may have left active. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	close(sv[1]);
	close(r.fd);
	return 0;
}
