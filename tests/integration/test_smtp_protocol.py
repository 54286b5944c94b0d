"""Integration tests: the inbound SMTP dialogue (SPEC §3 "Receiving",
"Strict input, clear errors"): greeting, EHLO keywords, the exact replies
of every command, syntax and sequence errors, PIPELINING, CHUNKING (BDAT),
SMTPUTF8, relaying rules. Clients: raw sockets, smtplib and swaks.

Limits (sizes, recipients, errors, timeouts, long lines, connections) are
in test_limits.py; smuggling in test_smuggling.py; the delivered file in
test_local_delivery.py.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (test, main, message, hermetic_server,  # noqa: E402
                     ID_RE, exp, greet, send_msg, settle, mailboxes)

HOST = "mx.example.test"
SWAKS = "/usr/bin/swaks"


# ---- helpers (local to this file) ----------------------------------------

def start(conf=None):
    return hermetic_server(conf, "proto")


# ---- greeting, EHLO, HELO -------------------------------------------------

@test
def greeting_and_ehlo_keywords():
    s = start({"max_message_size": "100000"})
    r = s.raw()
    c, t = r.reply()
    assert c == 220 and t == "%s ESMTP smtpgate" % HOST, (c, t)
    r.send("EHLO client.example\r\n")
    lines = []
    while True:
        ln = r.line()
        lines.append(ln)
        assert ln[:3] == "250", "EHLO reply line %r" % ln
        if ln[3] != "-":
            break
    assert lines[0][4:] == HOST, "first EHLO line %r" % lines[0]
    kws = [ln[4:] for ln in lines[1:]]
    for k in ("PIPELINING", "SIZE 100000", "8BITMIME", "ENHANCEDSTATUSCODES",
              "SMTPUTF8", "CHUNKING"):
        assert k in kws, "EHLO lacks %r: %r" % (k, kws)
    for k in kws:
        assert not k.startswith("STARTTLS") and not k.startswith("AUTH"), \
            "EHLO offers %r without TLS/AUTH configured: %r" % (k, kws)
    exp(r, "QUIT", 221, "2.0.0", "2.0.0 Bye")
    assert r.closed(), "connection not closed after QUIT"


@test
def ehlo_size_default_25M():
    s = start()
    r = s.raw()
    exp(r, None, 220)
    t = exp(r, "EHLO client.example", 250)
    sizes = [k for k in t.split("\n") if k.startswith("SIZE ")]
    assert len(sizes) == 1, t
    assert int(sizes[0][5:]) in (25 * 1000 * 1000, 25 * 1024 * 1024), sizes


@test
def helo_and_smtplib():
    s = start()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "HELO client.example", 250, text=HOST)
    exp(r, "MAIL FROM:<alice@example.org>", 250, text="2.1.0 Ok")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, text="2.1.5 Ok")
    exp(r, "QUIT", 221)
    # smtplib with EHLO, SIZE and ESMTP parameters
    c = s.smtp()
    code, _ = c.ehlo("client.example")
    assert code == 250
    assert c.has_extn("pipelining") and c.has_extn("chunking")
    refused = c.sendmail("alice@example.org", ["postmaster@localhost"],
                         message("via smtplib").encode(),
                         mail_options=["BODY=8BITMIME"])
    assert refused == {}, refused
    c.quit()
    got = settle(s, "postmaster", 1)
    assert b"Subject: via smtplib" in got[0]


@test
def command_replies_exact():
    s = start()
    r = greet(s)
    exp(r, "NOOP", 250, text="2.0.0 Ok")
    exp(r, "RSET", 250, text="2.0.0 Ok")
    exp(r, "VRFY postmaster", 252, "2.0.0")
    exp(r, "EXPN staff", 502, "5.5.1")
    exp(r, "HELP", 214, "2.0.0")
    exp(r, "MAIL FROM:<alice@example.org>", 250, text="2.1.0 Ok")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, text="2.1.5 Ok")
    exp(r, "DATA", 354, text="End data with <CR><LF>.<CR><LF>")
    r.send(message("exact").encode() + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    assert ID_RE.match(t), "end-of-data reply %r" % t
    exp(r, "QUIT", 221, text="2.0.0 Bye")
    assert r.closed()
    got = settle(s, "postmaster", 1)
    assert b"Subject: exact" in got[0]


@test
def verbs_case_insensitive():
    s = start()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "ehlo client.example", 250)
    exp(r, "mail from:<alice@example.org>", 250, "2.1.0")
    exp(r, "Rcpt To:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "noop", 250, "2.0.0")
    exp(r, "RSET", 250, "2.0.0")
    # one space after the colon is tolerated (as Postfix does)
    exp(r, "MAIL FROM: <alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO: <postmaster@localhost>", 250, "2.1.5")
    exp(r, "data", 354)
    r.send(message("lowercase").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "quit", 221)
    settle(s, "postmaster", 1)


@test
def queue_ids_unique_hex_sorted():
    s = start()
    ids = []
    for sess in range(3):
        r = greet(s)
        for i in range(4):
            ids.append(send_msg(r, "alice@example.org",
                                ["postmaster@localhost"],
                                message("id %d.%d" % (sess, i))))
            time.sleep(0.01)
        exp(r, "QUIT", 221)
        r.close()
    for i in ids:
        assert re.match(r"^[0-9A-F]+$", i), "queue id %r is not upper hex" % i
    assert len(set(ids)) == len(ids), "duplicate queue ids: %r" % ids
    assert ids == sorted(ids), "queue ids do not sort by time: %r" % ids
    settle(s, "postmaster", len(ids))


@test
def swaks_clients():
    s = start()
    base = [SWAKS, "--server", "127.0.0.1:%d" % s.port, "--from",
            "alice@example.org", "--helo", "client.example",
            "--silent", "2", "--timeout", "10"]
    p = subprocess.run(base + ["--to", "postmaster@localhost", "--header",
                               "Subject: swaks plain"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "swaks: %d %s %s" % (p.returncode, p.stdout,
                                                  p.stderr)
    p = subprocess.run(base + ["--to", "bob@example.test,carol@example.test",
                               "--pipeline", "--header",
                               "Subject: swaks pipelined"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "swaks --pipeline: %d %s %s" % (
        p.returncode, p.stdout, p.stderr)
    a = settle(s, "postmaster", 1)
    b = settle(s, "bob", 1)
    c = settle(s, "carol", 1)
    assert b"Subject: swaks plain" in a[0]
    assert b"Subject: swaks pipelined" in b[0]
    assert b"Subject: swaks pipelined" in c[0]


# ---- errors -----------------------------------------------------------------

@test
def unknown_command():
    s = start()
    r = greet(s)
    exp(r, "FROB x", 500, "5.5.2")
    exp(r, "MAILFROM:<a@example.org>", 500, "5.5.2")
    exp(r, "NOOP", 250, "2.0.0")
    # the session still works
    send_msg(r, "alice@example.org", ["postmaster@localhost"],
             message("after unknown"))
    settle(s, "postmaster", 1)


@test
def bad_syntax_501():
    s = start()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO", 501, "5.5.4")
    exp(r, "HELO", 501, "5.5.4")
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL", 501, "5.5.4")
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT", 501, "5.5.4")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "QUIT", 221)


@test
def bad_address_syntax():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@@example.org>", 501, "5.1.7")
    exp(r, "MAIL FROM:<alice@example..org>", 501, "5.1.7")
    exp(r, "MAIL FROM:<alice..x@example.org>", 501, "5.1.7")
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<bob@@example.test>", 501, "5.1.3")
    exp(r, "RCPT TO:<bob..x@example.test>", 501, "5.1.3")
    exp(r, "RCPT TO:<bob@example.test", 501, "5.1.3")
    exp(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
    exp(r, "QUIT", 221)


@test
def local_part_longer_than_64():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<%s@example.org>" % ("s" * 65), 501, "5.1.7")
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<%s@example.test>" % ("a" * 65), 501, "5.1.3")
    exp(r, "RCPT TO:<%s@example.test>" % ("a" * 64), 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message("long local").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    settle(s, "a" * 64, 1)
    assert mailboxes(s) == ["a" * 64], mailboxes(s)


@test
def unsupported_parameters_555():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org> FOO=BAR", 555, "5.5.4")
    exp(r, "MAIL FROM:<alice@example.org> XYZZY", 555, "5.5.4")
    exp(r, "MAIL FROM:<alice@example.org> BODY=8BITMIME SIZE=100", 250,
        "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost> FOO=1", 555, "5.5.4")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "QUIT", 221)


@test
def sequence_errors_503():
    s = start()
    # MAIL before EHLO/HELO
    r = s.raw()
    exp(r, None, 220)
    exp(r, "MAIL FROM:<alice@example.org>", 503, "5.5.1")
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    exp(r, "QUIT", 221)
    # RCPT before MAIL, DATA before MAIL, DATA before RCPT, nested MAIL
    r = greet(s)
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    exp(r, "DATA", 503, "5.5.1")
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "DATA", 503, "5.5.1")
    exp(r, "MAIL FROM:<alice@example.org>", 503, "5.5.1")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    # RSET forgets the transaction
    exp(r, "RSET", 250, "2.0.0")
    exp(r, "DATA", 503, "5.5.1")
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    exp(r, "QUIT", 221)
    # EHLO again resets the transaction too (RFC 5321 §4.1.4)
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "EHLO client.example", 250)
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    exp(r, "QUIT", 221)
    # BDAT mixed with DATA
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, b"BDAT 5\r\nhello", 250, "2.0.0")
    exp(r, "DATA", 503, "5.5.1")
    exp(r, "RSET", 250, "2.0.0")
    # BDAT without a transaction: refused, but its chunk is consumed
    exp(r, b"BDAT 4 LAST\r\nNOOP", 503, "5.5.1")
    exp(r, "NOOP", 250, "2.0.0")
    exp(r, "QUIT", 221)
    time.sleep(1.0)
    assert s.mailbox("postmaster") == [], "a message was delivered"


@test
def data_without_valid_recipient():
    s = start({"relay_networks": "10.0.0.0/8"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<bob@remote.example>", 554, "5.7.1")
    exp(r, "DATA", 554, "5.5.1")
    exp(r, "RSET", 250)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "DATA", 503, "5.5.1")
    exp(r, "QUIT", 221)


@test
def relay_denied_outside_relay_networks():
    s = start({"relay_networks": "10.0.0.0/8"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<bob@remote.example>", 554, "5.7.1")
    exp(r, "RCPT TO:<bob@example.test.remote.example>", 554, "5.7.1")
    exp(r, "RCPT TO:<bob@[192.0.2.1]>", 554, "5.7.1")
    # source routes are discarded, not followed (no relay through us)
    exp(r, "RCPT TO:<@example.test:bob@remote.example>", 554, "5.7.1")
    # local recipients are still fine; %-hack and bang paths are local
    # parts here, never routes to another host
    for rc in ("bob%remote.example@example.test",
               "remote.example!bob@example.test"):
        r.send("RCPT TO:<%s>\r\n" % rc)
        c, t = r.reply()
        assert c in (250, 550), "RCPT %s: %d %r" % (rc, c, t)
    exp(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
    exp(r, "RCPT TO:<carol@LOCALHOST>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message("local only").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    settle(s, "bob", 1)
    settle(s, "carol", 1)
    assert "relay=remote.example" not in s.log(), s.log()
    q = s.path("spool", "queue")
    assert not os.path.isdir(q) or os.listdir(q) == [], os.listdir(q)
    # and swaks sees the same refusal
    p = subprocess.run([SWAKS, "--server", "127.0.0.1:%d" % s.port,
                        "--from", "alice@example.org", "--to",
                        "someone@remote.example", "--silent", "2",
                        "--timeout", "10"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, "swaks relayed through us: %s" % p.stdout
    assert "554 5.7.1" in p.stdout + p.stderr, p.stdout + p.stderr


@test
def relay_allowed_from_relay_networks():
    s = start()    # default relay_networks: 127.0.0.0/8
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<bob@remote.example>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message("to remote", to="bob@remote.example").encode() + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    assert ID_RE.match(t), t
    exp(r, "QUIT", 221)
    time.sleep(1.5)
    # queued for the relay host (which is down): waiting in the queue,
    # never delivered into a mailbox
    assert mailboxes(s) == [], "remote mail delivered locally: %r" % \
        mailboxes(s)
    q = s.path("spool", "queue")
    queued = os.listdir(q) if os.path.isdir(q) else []
    assert len(queued) == 1, "spool/queue: %r" % queued
    assert s.proc.poll() is None, "server died"


@test
def smtputf8():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<j\u00f6rg@example.org>", 553, "5.6.7")
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<j\u00f6rg@example.test>", 553, "5.6.7")
    exp(r, "RSET", 250)
    exp(r, "MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "RCPT TO:<j\u00f6rg@example.test>", 250, "2.1.5")
    exp(r, "DATA", 354)
    body = ("From: <j\u00f6rg@example.org>\r\nSubject: utf8 \u00e9t\u00e9"
            "\r\n\r\nGr\u00fc\u00dfe\r\n").encode()
    r.send(body + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 1)
    assert got[0].endswith(body), got[0]
    assert "Return-Path: <j\u00f6rg@example.org>".encode() in got[0], got[0]
    got = settle(s, "j\u00f6rg", 1)
    assert got[0].endswith(body), got[0]


@test
def pipelined_transaction():
    s = start()
    r = greet(s)
    r.send("MAIL FROM:<alice@example.org>\r\n"
           "RCPT TO:<bob@example.test>\r\n"
           "RCPT TO:<carol@example.test>\r\n"
           "DATA\r\n")
    exp(r, None, 250, "2.1.0")
    exp(r, None, 250, "2.1.5")
    exp(r, None, 250, "2.1.5")
    exp(r, None, 354)
    # the message, its end and the next commands in one write as well
    r.send(message("pipelined").encode() + b".\r\n"
           b"MAIL FROM:<alice@example.org>\r\n"
           b"RCPT TO:<bad@@example.test>\r\n"
           b"RCPT TO:<dave@example.test>\r\n"
           b"DATA\r\n")
    t = exp(r, None, 250, "2.0.0")
    assert ID_RE.match(t), t
    exp(r, None, 250, "2.1.0")
    exp(r, None, 501, "5.1.3")
    exp(r, None, 250, "2.1.5")
    exp(r, None, 354)
    r.send(message("second").encode() + b".\r\nNOOP\r\nQUIT\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, None, 250, "2.0.0")
    exp(r, None, 221)
    assert r.closed()
    assert b"Subject: pipelined" in settle(s, "bob", 1)[0]
    assert b"Subject: pipelined" in settle(s, "carol", 1)[0]
    assert b"Subject: second" in settle(s, "dave", 1)[0]
    assert "bad" not in mailboxes(s)


@test
def bdat_rcpt_after_a_chunk_refused():
    """The first chunk decides where the message goes (the one mailbox, or
    the spool with its envelope): a RCPT after it is refused, never told
    250 and then left out. For one recipient and for several."""
    s = start()
    for first, late in ((["alice"], "bob"), (["carol", "dave"], "erin")):
        r = greet(s)
        exp(r, "MAIL FROM:<sender@example.org>", 250, "2.1.0")
        for box in first:
            exp(r, "RCPT TO:<%s@localhost>" % box, 250, "2.1.5")
        c1 = message("bdat then rcpt").encode()
        exp(r, b"BDAT %d\r\n%s" % (len(c1), c1), 250, "2.0.0")
        exp(r, "RCPT TO:<%s@localhost>" % late, 503, "5.5.1")
        t = exp(r, "BDAT 0 LAST", 250, "2.0.0")
        assert ID_RE.match(t), t
        exp(r, "QUIT", 221)
        for box in first:
            settle(s, box, 1)
        assert late not in mailboxes(s), mailboxes(s)


@test
def bdat_last_does_not_stand_for_helo():
    """A refused BDAT ... LAST before any HELO leaves the session where it
    was: MAIL still needs HELO/EHLO (before and after STARTTLS alike)."""
    s = start()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "MAIL FROM:<a@example.org>", 503, "5.5.1")
    exp(r, "BDAT 0 LAST", 503, "5.5.1")
    exp(r, "MAIL FROM:<a@example.org>", 503, "5.5.1",
        "5.5.1 Error: send HELO/EHLO first")
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<a@example.org>", 250, "2.1.0")
    exp(r, "QUIT", 221)


@test
def bdat_chunks():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c1 = b"From: <alice@example.org>\r\nSubject: bdat\r\n\r\n"
    c2 = b".leading dot stays\r\n..two dots stay\r\n.\r\n"
    c3 = b"last line\r\n"
    exp(r, b"BDAT %d\r\n%s" % (len(c1), c1), 250,
        text="2.0.0 Ok: %d bytes received" % len(c1))
    exp(r, b"BDAT %d\r\n%s" % (len(c2), c2), 250,
        text="2.0.0 Ok: %d bytes received" % len(c2))
    t = exp(r, b"BDAT %d LAST\r\n%s" % (len(c3), c3), 250, "2.0.0")
    assert ID_RE.match(t), t
    # a second message in the same session ends with BDAT 0 LAST, pipelined
    # (chunk headers and data in one write)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    m2 = message("bdat zero last").encode()
    r.send(b"BDAT %d\r\n%sBDAT 0 LAST\r\nNOOP\r\n" % (len(m2), m2))
    exp(r, None, 250, text="2.0.0 Ok: %d bytes received" % len(m2))
    t = exp(r, None, 250, "2.0.0")
    assert ID_RE.match(t), t
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 2)
    one = [m for m in got if b"Subject: bdat\r\n" in m]
    two = [m for m in got if b"Subject: bdat zero last" in m]
    assert len(one) == 1 and len(two) == 1, got
    assert one[0].endswith(c1 + c2 + c3), one[0]
    assert two[0].endswith(m2), two[0]


@test
def bdat_zero_last_alone():
    """BDAT 0 LAST in a write of its own (nothing pipelined after it) is
    answered at once."""
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    m = message("zero last alone").encode()
    exp(r, b"BDAT %d\r\n%s" % (len(m), m), 250,
        text="2.0.0 Ok: %d bytes received" % len(m))
    r.sock.settimeout(5)
    t = exp(r, b"BDAT 0 LAST\r\n", 250, "2.0.0")
    assert ID_RE.match(t), t
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 1)
    assert got[0].endswith(m), got[0]


@test
def bdat_binary_safe_chunk_boundaries():
    """Chunk data that looks like commands is data; a CRLF split across two
    chunks is a CRLF (not a bare CR then a bare LF)."""
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c1 = b"Subject: split\r\n\r\nQUIT\r"
    c2 = b"\nRSET\r\n"
    exp(r, b"BDAT %d\r\n%s" % (len(c1), c1), 250, "2.0.0")
    t = exp(r, b"BDAT %d LAST\r\n%s" % (len(c2), c2), 250, "2.0.0")
    assert ID_RE.match(t), t
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 1)
    assert got[0].endswith(c1 + c2), got[0]


@test
def disconnect_mid_data_delivers_nothing():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
    r.close()
    # a BDAT transaction cut off between chunks
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c1 = b"Subject: cut bdat\r\n\r\n"
    exp(r, b"BDAT %d\r\n%s" % (len(c1), c1), 250, "2.0.0")
    r.send(b"BDAT 100 LAST\r\nonly part")
    r.close()
    # the server is fine and the next message is the only one delivered
    r = greet(s)
    send_msg(r, "alice@example.org", ["postmaster@localhost"],
             message("complete"))
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 1)
    assert b"Subject: complete" in got[0], got


@test
def garbage_and_random_dialogues_survive():
    """Seeded random junk and random command sequences: the server answers
    or closes, never crashes, and then serves a normal session."""
    import random
    rnd = random.Random(5321)
    verbs = ["MAIL FROM:<%s>", "RCPT TO:<%s>", "DATA", "BDAT %d", "RSET",
             "NOOP", "EHLO %s", "HELO %s", "VRFY %s", "BDAT %d LAST",
             "MAIL FROM:<%s> SIZE=%d", "RCPT TO:<%s> NOTIFY=NEVER", "AUTH %s",
             "STARTTLS", "HELP %s"]
    words = ["", "a@example.test", "postmaster@localhost", "@", "<>", "x" * 70,
             "\u00e9@example.test", "a@[1.2.3.4]", "a@b@c", "\"q\"@x.test",
             "%", "0", "-1", "18446744073709551616", "PLAIN", "=\x00"]
    s = start()
    for sess in range(20):
        r = None
        try:
            r = s.raw()
            r.reply()
            r.sock.settimeout(0.3)
            for i in range(rnd.randint(1, 30)):
                if rnd.random() < 0.3:
                    line = bytes(rnd.randrange(256) for _ in
                                 range(rnd.randint(0, 300)))
                else:
                    v = rnd.choice(verbs)
                    args = tuple(rnd.choice(words) if "%s" in v else
                                 rnd.choice([0, 1, 5, 100, 10 ** 9])
                                 for _ in range(v.count("%")))
                    try:
                        line = (v % args).encode()
                    except TypeError:
                        line = v.encode()
                r.send(line + (b"\r\n" if rnd.random() < 0.9 else b"\n"))
                try:
                    r.reply()
                except (OSError, EOFError):
                    break
        except (OSError, EOFError):
            pass
        finally:
            if r is not None:
                r.close()
        assert s.proc.poll() is None, "server died in session %d" % sess
    r = greet(s)
    send_msg(r, "alice@example.org", ["postmaster@localhost"],
             message("after junk"))
    exp(r, "QUIT", 221)
    got = s.wait_mailbox("postmaster", 1, 15)
    assert any(b"Subject: after junk" in m for m in got)
    assert s.proc.poll() is None


if __name__ == "__main__":
    main()
