/* Unit tests: mail/envelope.c - queue file header and state records. */
#include "t.h"

#include <stdlib.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "mail/envelope.h"

static void
fill(struct envelope *env)
{
	envelope_init(env);
	env->arrival = 1764484864.123456;
	env->client_addr = strdup("192.0.2.1");
	env->client_name = strdup("[192.0.2.1]");
	env->helo = strdup("client example");	/* a space: xtext encoded */
	env->proto = strdup("ESMTP");
	env->sender = strdup("alice+tag@example.org");
	env->body = strdup("8BITMIME");
	env->smtputf8 = true;
	envelope_add_rcpt(env, RCPT_LOCAL, "postmaster", "postmaster@localhost",
	    NULL, NULL);
	envelope_add_rcpt(env, RCPT_REMOTE, "bob@remote.example",
	    "bob@remote.example", "SUCCESS,FAILURE", "rfc822;bob@remote.example");
	env->data_len = 5;
}

/* True when text is not a queue file, with an error that says why. */
static bool
is_refused(const char *text)
{
	struct envelope env;
	struct err e;
	size_t hl;
	bool refused;

	envelope_init(&env);
	err_clear(&e);
	refused = envelope_parse(text, strlen(text), &env, &hl, &e) == -1 &&
	    e.msg[0] != '\0';
	envelope_clear(&env);
	return refused;
}

static void
test_round_trip(void)
{
	struct envelope a, b;
	struct buf out;
	struct err e;
	size_t hl = 0;

	fill(&a);
	buf_init(&out);
	envelope_format(&a, &out);
	buf_append(&out, "hello", 5);
	envelope_init(&b);
	CHECK_INT(envelope_parse(out.data, out.len, &b, &hl, &e), 0);
	CHECK_INT(hl, out.len - 5);
	CHECK_STR(b.helo, "client example");
	CHECK_STR(b.sender, "alice+tag@example.org");
	CHECK_STR(b.body, "8BITMIME");
	CHECK(b.smtputf8);
	CHECK(b.auth_user == NULL);
	CHECK_INT(b.nrcpts, 2);
	CHECK_INT(b.rcpts[1].kind, RCPT_REMOTE);
	CHECK_STR(b.rcpts[1].notify, "SUCCESS,FAILURE");
	CHECK_STR(b.rcpts[1].orcpt, "rfc822;bob@remote.example");
	CHECK(b.rcpts[0].notify == NULL);
	CHECK_INT(b.data_len, 5);
	CHECK(b.arrival > 1764484864.12 && b.arrival < 1764484864.13);
	envelope_clear(&a);
	envelope_clear(&b);
	buf_clear(&out);
}

static void
test_null_sender(void)
{
	struct envelope a, b;
	struct buf out;
	struct err e;
	size_t hl;

	fill(&a);
	free(a.sender);
	a.sender = strdup("");
	buf_init(&out);
	envelope_format(&a, &out);
	envelope_init(&b);
	CHECK_INT(envelope_parse(out.data, out.len, &b, &hl, &e), 0);
	CHECK_STR(b.sender, "");
	envelope_clear(&a);
	envelope_clear(&b);
	buf_clear(&out);
}

static void
test_bad_headers(void)
{
	static const char *bad[] = {
		"",
		"NOT-A-QUEUE 1\n",
		"SMTPGATE-QUEUE 2\ndata 0\n",
		"SMTPGATE-QUEUE 1\nsender a@b\ndata 0\n",		/* no rcpt */
		"SMTPGATE-QUEUE 1\nsender a@b\nrcpt local x a@b - -\n",	/* no data */
		"SMTPGATE-QUEUE 1\nsender a@b\nrcpt elsewhere x a@b - -\ndata 0\n",
		"SMTPGATE-QUEUE 1\nsender a+ZZb\nrcpt local x a@b - -\ndata 0\n",
		"SMTPGATE-QUEUE 1\nsender a@b\nrcpt local x a@b - -\ndata x\n",
		"SMTPGATE-QUEUE 1\nbogus line\ndata 0\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(is_refused(bad[i]));
}

static void
test_state_round_trip(void)
{
	struct envelope a, b;
	struct buf out;
	struct err e;

	fill(&a);
	a.is_held = true;
	a.rcpts[0].status = RCPT_SENT;
	a.rcpts[0].attempts = 1;
	a.rcpts[1].status = RCPT_DEFERRED;
	a.rcpts[1].attempts = 3;
	a.rcpts[1].next_try = 1764485299;
	a.rcpts[1].reply = strdup("451 4.3.0 try again later");
	a.rcpts[1].relay = strdup("mx.example[192.0.2.1]:25");
	a.rcpts[1].is_warned = true;
	buf_init(&out);
	envelope_format_state(&a, &out);
	fill(&b);
	CHECK_INT(envelope_parse_state(out.data, out.len, &b, &e), 0);
	CHECK(b.is_held);
	CHECK_INT(b.rcpts[0].status, RCPT_SENT);
	CHECK_INT(b.rcpts[1].status, RCPT_DEFERRED);
	CHECK_INT(b.rcpts[1].attempts, 3);
	CHECK_INT(b.rcpts[1].next_try, 1764485299);
	CHECK_STR(b.rcpts[1].reply, "451 4.3.0 try again later");
	CHECK_STR(b.rcpts[1].relay, "mx.example[192.0.2.1]:25");
	CHECK(b.rcpts[1].is_warned);
	CHECK(!b.rcpts[0].is_warned);
	CHECK(!envelope_is_final(&b));
	b.rcpts[1].status = RCPT_BOUNCED;
	CHECK(envelope_is_final(&b));
	/* A state file naming a recipient the message does not have. */
	CHECK_INT(envelope_parse_state("SMTPGATE-STATE 1\nrcpt 7 sent 1 0 0 - - -\n",
	    42, &b, &e), -1);
	envelope_clear(&a);
	envelope_clear(&b);
	buf_clear(&out);
}

static void
test_xtext(void)
{
	struct buf b;
	char *d;

	buf_init(&b);
	xtext_encode(&b, "a b+c=d\x01");
	CHECK_STR(b.data, "a+20b+2Bc+3Dd+01");
	d = xtext_decode(b.data);
	CHECK_STR(d, "a b+c=d\x01");
	free(d);
	buf_reset(&b);
	xtext_encode(&b, "-");
	d = xtext_decode(b.data);
	CHECK_STR(d, "-");
	free(d);
	CHECK(xtext_decode("a+0") == NULL);
	CHECK(xtext_decode("a+00") == NULL);
	CHECK(xtext_decode("a=b") == NULL);
	buf_clear(&b);
}

/*
 * Regression (fuzz_envelope): lines are not limited to 2047 bytes. A
 * long SMTPUTF8 address and ORCPT (xtext triples 8-bit bytes) made a
 * queue file the spool wrote but could not read back ("line 2: too
 * long"), and a remote reply longer than 2047 encoded bytes was cut by
 * sscanf("%2047s") in the state file (or made it unreadable when the cut
 * split a +HH).
 */
static void
test_long_fields(void)
{
	struct envelope a, b;
	struct buf out, addr, reply;
	struct err e;
	size_t hl = 0;

	buf_init(&addr);
	for (int i = 0; i < 60; i++)
		buf_puts(&addr, "\xc3\xa9");
	buf_puts(&addr, "@");
	for (int i = 0; i < 120; i++)
		buf_puts(&addr, "\xc3\xa9");
	buf_init(&reply);
	buf_puts(&reply, "451-4.7.1");
	for (int i = 0; i < 800; i++)
		buf_puts(&reply, " x");
	fill(&a);
	envelope_add_rcpt(&a, RCPT_REMOTE, addr.data, addr.data, "FAILURE",
	    addr.data);
	a.rcpts[2].status = RCPT_DEFERRED;
	a.rcpts[2].reply = strdup(reply.data);
	a.rcpts[2].relay = strdup("mx.example[192.0.2.1]:25");
	buf_init(&out);
	envelope_format(&a, &out);
	CHECK(out.len > 3000);	/* one line of more than 3000 bytes */
	envelope_init(&b);
	err_clear(&e);
	CHECK_INT(envelope_parse(out.data, out.len, &b, &hl, &e), 0);
	CHECK_INT(hl, out.len);
	CHECK_INT(b.nrcpts, 3);
	if (b.nrcpts == 3) {
		CHECK_STR(b.rcpts[2].orig, addr.data);
		CHECK_STR(b.rcpts[2].orcpt, addr.data);
	}
	buf_reset(&out);
	envelope_format_state(&a, &out);
	if (b.nrcpts == 3) {
		CHECK_INT(envelope_parse_state(out.data, out.len, &b, &e), 0);
		CHECK_STR(b.rcpts[2].reply, reply.data);
		CHECK_STR(b.rcpts[2].relay, "mx.example[192.0.2.1]:25");
	}
	envelope_clear(&a);
	envelope_clear(&b);
	buf_clear(&out);
	buf_clear(&addr);
	buf_clear(&reply);
}

/* Regression (fuzz_envelope): values the rest of the program cannot use
 * are errors, not undefined conversions (an arrival of 1e300 reached
 * (time_t) casts; a version of 99999999999 overflowed sscanf's %d). */
static void
test_bad_values(void)
{
	static const char *bad[] = {
		"SMTPGATE-QUEUE 1\narrival 1e300\nsender a@b\n"
		    "rcpt local x a@b - -\ndata 0\n",
		"SMTPGATE-QUEUE 1\narrival nan\nsender a@b\n"
		    "rcpt local x a@b - -\ndata 0\n",
		"SMTPGATE-QUEUE 1\narrival -5\nsender a@b\n"
		    "rcpt local x a@b - -\ndata 0\n",
		"SMTPGATE-QUEUE 99999999999999999999999\nsender a@b\n"
		    "rcpt local x a@b - -\ndata 0\n",
		"SMTPGATE-QUEUE 1x\nsender a@b\nrcpt local x a@b - -\n"
		    "data 0\n",
	};
	static const char *bad_state[] = {
		"SMTPGATE-STATE 1\nrcpt 0 sent 99999999999 0 0 - - -\n",
		"SMTPGATE-STATE 1\nrcpt 0 sent 1 99999999999999999999 0 - - -\n",
		"SMTPGATE-STATE 1\nrcpt 0 sent 1 0 0 - - - extra\n",
		"SMTPGATE-STATE 1\nrcpt 0 sent 1 0 0 - -\n",
		"SMTPGATE-STATE 1\nrcpt 0 sentsentsentsentsent 1 0 0 - - -\n",
		"SMTPGATE-STATE 1\nrcpt 0 sent 1 0 0 - - 4+2\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(is_refused(bad[i]));
	for (size_t i = 0; i < sizeof(bad_state) / sizeof(bad_state[0]);
	    i++) {
		struct envelope env;
		struct err e;

		fill(&env);
		err_clear(&e);
		CHECK_INT(envelope_parse_state(bad_state[i],
		    strlen(bad_state[i]), &env, &e), -1);
		CHECK(e.msg[0] != '\0');
		envelope_clear(&env);
	}
}

int
main(void)
{
	RUN(test_round_trip);
	RUN(test_null_sender);
	RUN(test_bad_headers);
	RUN(test_state_round_trip);
	RUN(test_xtext);
	RUN(test_long_fields);
	RUN(test_bad_values);
	T_EXIT();
}
