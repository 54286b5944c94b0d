"""Integration tests: SMTP smuggling (SPEC §3 "Strict input"): only
<CR><LF>.<CR><LF> ends the data; a bare LF or bare CR anywhere in a message
(DATA or BDAT) makes the server refuse that whole message with 554 5.6.0
after its real end, deliver nothing of it, and stay in step with the
client (the smuggled commands are data, never executed).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (test, main, message, hermetic_server,  # noqa: E402
                     ID_RE, exp, greet)

SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\n"
            b"RCPT TO:<postmaster@localhost>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\n"
            b"smuggled body\r\n"
            b".\r\n")

VARIANTS = [
    ("lf_dot_lf", b"\n.\n"),
    ("lf_dot_crlf", b"\n.\r\n"),
    ("cr_dot_cr", b"\r.\r"),
    ("crlf_dot_cr", b"\r\n.\r"),
    ("crlf_dot_lf", b"\r\n.\n"),
    ("crlf_dot_cr_x", b"\r\n.\rX"),
]


# ---- helpers (local to this file) ----------------------------------------

def start(conf=None):
    return hermetic_server(conf, "smuggle")


def all_delivered(s):
    """(path, bytes) of every file under postoffice."""
    out = []
    for root, _, files in os.walk(s.path("postoffice")):
        for fn in files:
            p = os.path.join(root, fn)
            with open(p, "rb") as f:
                out.append((p, f.read()))
    return out


def clean_message_then_check(s, r, bad_words=(b"smuggled", b"Subject: first",
                                               b"evil@example.org")):
    """The session goes on: a clean message is accepted and is the only
    thing ever delivered."""
    exp(r, "NOOP", 250, "2.0.0")
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    clean = message("clean").encode()
    r.send(clean + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    assert ID_RE.match(t), t
    exp(r, "QUIT", 221)
    s.wait_mailbox("postmaster", 1, 15)
    time.sleep(1.5)
    files = all_delivered(s)
    assert len(files) == 1, "expected only the clean message, got %r" % files
    path, data = files[0]
    assert data.endswith(clean), data
    for w in bad_words:
        assert w not in data, "%r delivered: %r" % (w, data)
    assert "/postoffice/postmaster/new/" in path, path


def smuggle_data(variant):
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: first\r\n\r\nbody" + variant + SMUGGLED)
    # exactly one reply, for the whole thing: 554 5.6.0
    exp(r, None, 554, "5.6.0")
    clean_message_then_check(s, r)


def _make(name, variant):
    def fn():
        smuggle_data(variant)
    fn.__name__ = "smuggle_" + name
    return fn


for _name, _v in VARIANTS:
    test(_make(_name, _v))


@test
def smuggle_split_across_writes():
    """The same with the bytes trickling in one by one around the fake
    end marker (the automaton must not depend on how reads are split)."""
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: first\r\n\r\nbody")
    for b in b"\n.\r\n":
        r.send(bytes([b]))
        time.sleep(0.05)
    r.send(SMUGGLED)
    exp(r, None, 554, "5.6.0")
    clean_message_then_check(s, r)


@test
def bare_lf_in_body():
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: first\r\n\r\nline one\nline two\r\n.\r\n")
    exp(r, None, 554, "5.6.0")
    # with commands pipelined after the real end: they run normally
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: first\r\n\r\nline one\nline two\r\n.\r\n"
           b"RSET\r\nNOOP\r\n")
    exp(r, None, 554, "5.6.0")
    exp(r, None, 250, "2.0.0")
    exp(r, None, 250, "2.0.0")
    # the refused transaction is over: no RCPT without a new MAIL
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: first\r\n\r\nbare\nlf\r\n.\r\n")
    exp(r, None, 554, "5.6.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    exp(r, "DATA", 503, "5.5.1")
    clean_message_then_check(s, r)


@test
def bare_cr_in_body_and_headers():
    s = start()
    r = greet(s)
    for data in (b"Subject: first\r\n\r\nline one\rline two\r\n.\r\n",
                 b"Subject: first\rX-Evil: 1\r\n\r\nbody\r\n.\r\n",
                 b"Subject: first\r\n\r\nbody\r\r\n.\r\n",
                 b"Subject: first\r\n\r\nbody\n\r\n.\r\n"):
        exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
        exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
        exp(r, "DATA", 354)
        r.send(data)
        exp(r, None, 554, "5.6.0")
    clean_message_then_check(s, r)


@test
def bdat_bare_lf_refused_at_last():
    s = start()
    r = greet(s)
    # bare LF in a first chunk: that chunk is taken, LAST refuses the whole
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c1 = b"Subject: first\r\n\r\nbody\n.\n" + SMUGGLED
    c2 = b"more\r\n"
    exp(r, b"BDAT %d\r\n%s" % (len(c1), c1), 250,
        text="2.0.0 Ok: %d bytes received" % len(c1))
    exp(r, b"BDAT %d LAST\r\n%s" % (len(c2), c2), 554, "5.6.0")
    # a single LAST chunk with a bare CR
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c = b"Subject: first\r\n\r\nbody\r.\r" + SMUGGLED
    exp(r, b"BDAT %d LAST\r\n%s" % (len(c), c), 554, "5.6.0")
    # the LAST chunk ends on a bare CR (the LF never comes)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c = b"Subject: first\r\n\r\nbody\r"
    exp(r, b"BDAT %d LAST\r\n%s" % (len(c), c), 554, "5.6.0")
    clean_message_then_check(s, r)


@test
def bdat_final_bare_cr_then_zero_last():
    """A chunk ending in CR, then BDAT 0 LAST: the CR stays bare."""
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    c = b"Subject: first\r\n\r\nbody\r"
    exp(r, b"BDAT %d\r\n%s" % (len(c), c), 250, "2.0.0")
    r.sock.settimeout(5)
    exp(r, b"BDAT 0 LAST\r\n", 554, "5.6.0")
    clean_message_then_check(s, r)


@test
def legit_dots_are_not_an_end():
    """Lines that only look like an end (".x", "..", " .") are data."""
    s = start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: dots\r\n\r\n.x\r\n..\r\n .\r\n.\tx\r\nend\r\n.\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    got = s.wait_mailbox("postmaster", 1, 15)
    time.sleep(1.0)
    got = s.mailbox("postmaster")
    assert len(got) == 1, got
    assert got[0].endswith(b"Subject: dots\r\n\r\nx\r\n.\r\n .\r\n\tx\r\n"
                           b"end\r\n"), got[0]


if __name__ == "__main__":
    main()
