"""Integration tests: the log (SPEC §5, §2 trace_clients): connect and
disconnect lines with the client address, "ID: from=<...> size=N nrcpt=N",
one "ID: to=<...> relay=local delay=S status=sent (...)" line per
recipient, and the "<" / ">" transcript of sessions from trace_clients
only. Log lines never carry raw control characters from a peer.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, wait_for,  # noqa: E402
                     hermetic, hermetic_server, ID_RE, exp)


# ---- helpers (local to this file) ----------------------------------------

def start(conf=None):
    return hermetic_server(conf, "log")


def transaction(s, frm, rcpts, data):
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<%s>" % frm, 250, "2.1.0")
    for rc in rcpts:
        exp(r, "RCPT TO:<%s>" % rc, 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(data + b".\r\n")
    qid = ID_RE.match(exp(r, None, 250, "2.0.0")).group(1)
    exp(r, "QUIT", 221)
    assert r.closed()
    r.close()
    return qid


def lines_matching(s, rx):
    return [ln for ln in s.log().splitlines() if re.search(rx, ln)]


def wait_line(s, rx, timeout=15.0):
    return wait_for(lambda: lines_matching(s, rx), timeout,
                    "a log line matching %r" % rx)


def to_rx(qid, rcpt):
    # extra "key=value" fields (e.g. mailbox=) may come between
    kv = r"(?: [a-z_]+=[^ ]*)*"
    return (r"\b%s: to=<%s>,?%s relay=local,?%s delay=\d+(\.\d+)?,?%s"
            r" status=sent \(.+\)" % (qid, re.escape(rcpt), kv, kv, kv))


# ---- tests -----------------------------------------------------------------

@test
def connect_from_size_to_disconnect():
    s = start()
    data = message("logged", to="bob@example.test").encode()
    qid = transaction(s, "alice@example.org",
                      ["bob@example.test", "carol@localhost"], data)
    wait_line(s, r"\bconnect from .*127\.0\.0\.1")
    fl = wait_line(s, r"\b%s: from=<alice@example\.org>,? size=\d+,? "
                      r"nrcpt=2\b" % qid)
    assert len(fl) == 1, "from= logged %d times: %r" % (len(fl), fl)
    size = int(re.search(r"size=(\d+)", fl[0]).group(1))
    assert len(data) <= size <= len(data) + 2048, \
        "size=%d for a %d-byte message" % (size, len(data))
    for rc in ("bob@example.test", "carol@localhost"):
        tl = wait_line(s, to_rx(qid, rc))
        assert len(tl) == 1, "to=<%s> logged %d times: %r" % (rc, len(tl), tl)
    wait_line(s, r"disconnect from .*127\.0\.0\.1")
    # every line about this message carries its id
    assert lines_matching(s, r"\b%s: " % qid)


@test
def one_connect_disconnect_pair_per_session():
    s = start()
    for i in range(3):
        r = s.raw()
        exp(r, None, 220)
        exp(r, "EHLO client%d.example" % i, 250)
        exp(r, "QUIT", 221)
        r.close()
    # an abrupt close is logged as well
    r = s.raw()
    exp(r, None, 220)
    r.close()
    def counts():
        con = lines_matching(s, r"\bconnect from\b")
        dis = lines_matching(s, r"\bdisconnect from\b")
        return con, dis
    try:
        wait_for(lambda: len(counts()[1]) >= 4 and
                 len(counts()[0]) == len(counts()[1]), 10,
                 "a disconnect line for every connect line")
    finally:
        con, dis = counts()
    # the harness's own readiness probe also connected once
    assert len(con) in (4, 5), con
    assert len(dis) == len(con), (con, dis)


@test
def null_sender_and_mapped_recipient():
    s = Server(hermetic({"address_map": "map"}), name="log")
    s.write_file("map", "sales  alice, bob\n")
    s.start()
    data = message("to sales").encode()
    qid = transaction(s, "", ["sales@example.test"], data)
    # nrcpt: the envelope recipient, or (as Postfix counts after alias
    # expansion) the two it resolved to
    wait_line(s, r"\b%s: from=<>,? size=\d+,? nrcpt=[12]\b" % qid)
    # one delivery line per mailbox; the address is the recipient (or the
    # mailbox it resolved to)
    s.wait_mailbox("alice", 1)
    s.wait_mailbox("bob", 1)
    tl = wait_for(lambda: len(lines_matching(
        s, r"\b%s: to=<[^>]*>.* relay=local.* status=sent" % qid)) >= 2 and
        lines_matching(s, r"\b%s: to=<[^>]*>.* status=sent" % qid), 15,
        "two status=sent lines")
    assert len(tl) == 2, tl
    assert all("to=<sales@example.test>" in ln or "alice" in ln or
               "bob" in ln for ln in tl), tl


@test
def trace_clients_transcript():
    s = start({"trace_clients": "127.0.0.1/32"})
    data = message("traced").encode()
    transaction(s, "alice@example.org", ["postmaster@localhost"], data)
    s.wait_mailbox("postmaster", 1)
    wait_line(s, r"< MAIL FROM:<alice@example\.org>")
    wait_line(s, r"> 250 2\.1\.0 Ok")
    wait_line(s, r"< RCPT TO:<postmaster@localhost>")
    wait_line(s, r"> 250 2\.1\.5 Ok")
    wait_line(s, r"< EHLO client\.example")
    wait_line(s, r"> 221 2\.0\.0 Bye")
    # the message itself is not part of the transcript
    assert not lines_matching(s, r"Subject: traced"), \
        lines_matching(s, r"Subject: traced")


@test
def no_transcript_without_trace_clients():
    for conf in ({}, {"trace_clients": "10.0.0.0/8"}):
        s = start(conf)
        transaction(s, "alice@example.org", ["postmaster@localhost"],
                    message("untraced").encode())
        s.wait_mailbox("postmaster", 1)
        wait_line(s, r"status=sent")
        time.sleep(0.5)
        assert not lines_matching(s, r"< MAIL FROM:"), s.log()
        assert not lines_matching(s, r"> 250 2\.1\.0"), s.log()
        assert not lines_matching(s, r"< EHLO"), s.log()
        s.cleanup()


@test
def control_characters_never_reach_the_log():
    s = start({"trace_clients": "127.0.0.1/32"})
    r = s.raw()
    exp(r, None, 220)
    r.send(b"EHLO evil\x1b[31m.example\r\n")
    r.reply()
    r.send(b"NOOP \x1b]0;title\x07 \x08\x08\r\n")
    r.reply()
    r.send(b"MAIL FROM:<a\x1b@example.org>\r\n")
    r.reply()
    exp(r, "QUIT", 221)
    r.close()
    wait_line(s, r"disconnect from")
    with open(s.logpath, "rb") as f:
        raw = f.read()
    bad = [c for c in raw if (c < 0x20 and c not in (0x09, 0x0a)) or
           c == 0x7f]
    assert not bad, "control bytes %r in the log" % sorted(set(bad))


if __name__ == "__main__":
    main()
