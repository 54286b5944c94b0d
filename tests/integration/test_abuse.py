"""Integration tests: abuse limits (SPEC §2 max_connections,
max_connections_per_ip, command_timeout / data_timeout, max_recipients;
§3 "too many errors", "Memory per session stays bounded whatever a client
sends").

Per-IP and total connection limits (relay_networks clients exempt from the
per-IP one), slowloris clients (a partial command, a byte trickled every
second, a stalled DATA), the recipient limit, the error limit, a 50 MB line
without LF, and a well-behaved client that still gets its mail delivered
while all of this goes on.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, Raw, test, main, message,  # noqa: E402
                     ID_RE, RSS_LIMIT_KB, exp, vmrss_kb,
                     asan_small_quarantine_env)


# ---- helpers (local to this file) ----------------------------------------

def start(conf=None, env=None):
    return Server(conf, name="abuse").start(env=env)


def raw_from(s, src="127.0.0.1", port=None):
    """A Raw client whose source address is src (any 127.x works)."""
    r = Raw.__new__(Raw)
    r.sock = socket.create_connection(("127.0.0.1", port or s.port), 10,
                                      source_address=(src, 0))
    r.timeout = 10
    r.pending = b""
    return r


def deliver(s, r, rcpts=("postmaster@localhost",), subject="normal"):
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    for rc in rcpts:
        exp(r, "RCPT TO:<%s>" % rc, 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message(subject=subject).encode() + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    assert ID_RE.match(t), t


def normal_client(s, src="127.0.0.1", subject="normal", box="postmaster"):
    """A well-behaved client: one message, delivered."""
    before = len(s.mailbox(box))
    r = raw_from(s, src)
    exp(r, None, 220)
    exp(r, "EHLO normal.example", 250)
    deliver(s, r, subject=subject)
    exp(r, "QUIT", 221)
    r.close()
    s.wait_mailbox(box, before + 1, 15)


def closed_with(r, code, enh, within):
    """Expects reply code then the close, all within `within` seconds."""
    r.sock.settimeout(within)
    t0 = time.time()
    c, t = r.reply()
    assert c == code and t.startswith(enh), "got %d %s" % (c, t)
    left = max(0.5, within - (time.time() - t0))
    assert r.closed(left), "not closed after %d %s" % (c, t)
    return time.time() - t0


# ---- connection limits -------------------------------------------------------

@test
def per_ip_limit():
    s = start({"max_connections_per_ip": "3", "relay_networks": "10.0.0.0/8"})
    held = []
    for _ in range(3):
        r = s.raw()
        exp(r, None, 220)
        held.append(r)
    r4 = s.raw()
    closed_with(r4, 421, "4.7.0", 5)
    s.wait_log("too many connections")
    # the others still work
    for i, r in enumerate(held):
        exp(r, "EHLO c%d.example" % i, 250)
    deliver(s, held[0], subject="held 0")
    s.wait_mailbox("postmaster", 1)
    # another address is counted apart
    normal_client(s, "127.0.0.2", "other ip")
    # one leaves, a new one may come in
    exp(held[2], "QUIT", 221)
    held[2].close()
    time.sleep(0.3)
    r5 = s.raw()
    exp(r5, None, 220)
    exp(r5, "EHLO again.example", 250)
    for r in held[:2] + [r5]:
        r.close()


@test
def per_ip_limit_exempts_relay_networks():
    s = start({"max_connections_per_ip": "3"})       # 127.0.0.0/8 exempt
    held = []
    for _ in range(6):
        r = s.raw()
        exp(r, None, 220)
        held.append(r)
    for r in held:
        exp(r, "NOOP", 250)
        r.close()


@test
def total_limit():
    s = start({"max_connections": "5", "max_connections_per_ip": "50",
               "relay_networks": "10.0.0.0/8"})
    held = []
    for i in range(5):
        r = raw_from(s, "127.0.0.%d" % (i + 1))
        exp(r, None, 220)
        held.append(r)
    r6 = raw_from(s, "127.0.0.9")
    closed_with(r6, 421, "4.7.0", 5)
    s.wait_log("too many connections")
    for r in held:
        exp(r, "NOOP", 250)
    exp(held[0], "QUIT", 221)
    held[0].close()
    time.sleep(0.3)
    normal_client(s, "127.0.0.9", "after one left")
    for r in held[1:]:
        r.close()


@test
def connection_flood_bounded():
    """40 connections at once from one non-exempt address: at most 3 are
    served, the rest refused; the server stays up and serves others."""
    s = start({"max_connections_per_ip": "3", "relay_networks": "10.0.0.0/8"})
    socks = []
    for _ in range(40):
        try:
            socks.append(s.raw())
        except OSError:
            break
    greeted = refused = 0
    for r in socks:
        try:
            c, t = r.reply()
        except (EOFError, OSError):
            continue
        if c == 220:
            greeted += 1
        elif c == 421:
            refused += 1
    assert greeted <= 3, "%d sessions greeted" % greeted
    assert refused >= 30, "only %d refused" % refused
    normal_client(s, "127.0.0.2", "during flood")
    for r in socks:
        r.close()


# ---- slowloris --------------------------------------------------------------

@test
def partial_command_times_out():
    s = start({"command_timeout": "2s"})
    r = s.raw()
    exp(r, None, 220)
    r.send(b"EH")
    took = closed_with(r, 421, "4.4.2", 6)
    assert took <= 3.5, "closed after %.1fs with command_timeout 2s" % took
    s.wait_log("timeout")


@test
def idle_after_greeting_times_out():
    s = start({"command_timeout": "2s"})
    r = s.raw()
    exp(r, None, 220)
    took = closed_with(r, 421, "4.4.2", 6)
    assert took <= 3.5, took


@test
def byte_trickler_closed():
    """A client trickling one byte a second of a command line, never ending
    it, must not hold its session forever: with command_timeout 2s it has
    to be closed within 15 s."""
    s = start({"command_timeout": "2s"})
    r = s.raw()
    exp(r, None, 220)
    line = b"EHLO " + b"x" * 100
    t0 = time.time()
    closed = False
    for i in range(16):
        try:
            r.sock.sendall(line[i:i + 1])
        except OSError:
            closed = True
            break
        if r.closed(1.0):
            closed = True
            break
    took = time.time() - t0
    assert closed, ("a client sending one byte per second of a command line "
                    "held its session for %.0fs with command_timeout 2s "
                    "(the read timeout restarts on every byte)" % took)
    assert took <= 15.5, took


@test
def line_trickler_of_noops_is_a_normal_client():
    """Control: complete commands, each within the timeout, keep a session
    alive (that is the RFC's idea of the timeout)."""
    s = start({"command_timeout": "2s"})
    r = s.raw()
    exp(r, None, 220)
    for _ in range(3):
        time.sleep(1.0)
        exp(r, "NOOP", 250)
    r.close()


@test
def stalled_data_times_out():
    s = start({"data_timeout": "2s", "command_timeout": "30s"})
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "RCPT TO:<postmaster@localhost>", 250)
    exp(r, "DATA", 354)
    r.send(b"Subject: stalled\r\n\r\nhalf a message")
    took = closed_with(r, 421, "4.4.2", 8)
    assert took <= 3.5, "DATA stall closed after %.1fs" % took
    time.sleep(1.0)
    assert s.mailbox("postmaster") == [], "a stalled message was delivered"
    normal_client(s, subject="after stall")


# ---- per-session limits ------------------------------------------------------

@test
def max_recipients():
    s = start({"max_recipients": "5"})
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    for i in range(5):
        exp(r, "RCPT TO:<box%d@localhost>" % i, 250, "2.1.5")
    exp(r, "RCPT TO:<box5@localhost>", 452, "4.5.3")
    exp(r, "RCPT TO:<box6@localhost>", 452, "4.5.3")
    exp(r, "DATA", 354)
    r.send(message(subject="five").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    r.close()
    for i in range(5):
        s.wait_mailbox("box%d" % i, 1)
    time.sleep(0.5)
    assert s.mailbox("box5") == [] and s.mailbox("box6") == []


@test
def error_limit():
    s = start()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    answered = 0
    got421 = False
    for i in range(15):
        try:
            r.send("XYZZY%d\r\n" % i)
        except OSError:
            break
        try:
            c, t = r.reply()
        except (EOFError, OSError):
            break
        if c == 421:
            got421 = True
            assert t.startswith("4.7.0"), t
            break
        assert 500 <= c < 600, "%d %s" % (c, t)
        answered += 1
        if answered == 10:
            # the 10th error: the 421 follows its reply
            c, t = r.reply()
            assert c == 421 and t.startswith("4.7.0"), \
                "after 10 errors: %d %s" % (c, t)
            got421 = True
            break
    assert got421, "no 421 after %d bad commands" % answered
    assert answered in (9, 10), "421 after %d bad commands" % answered
    assert r.closed(5), "not closed after 421"
    s.wait_log("too many errors")
    normal_client(s, subject="after errors")


@test
def errors_below_limit_keep_session():
    s = start()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    for i in range(8):
        exp(r, "XYZZY%d" % i, 500)
    deliver(s, r, subject="after 8 errors")
    s.wait_mailbox("postmaster", 1)
    r.close()


# ---- memory --------------------------------------------------------------------

@test
def fifty_mb_line_without_lf():
    s = start(env=asan_small_quarantine_env())
    pid = s.proc.pid
    base = vmrss_kb(pid)
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    chunk = b"A" * 65536
    sent = 0
    peak = base
    closed_early = False
    r.sock.settimeout(30)
    t0 = time.time()
    while sent < 50 * 1024 * 1024 and time.time() - t0 < 120:
        try:
            r.sock.sendall(chunk)
        except OSError:
            closed_early = True
            break
        sent += len(chunk)
        if (sent // len(chunk)) % 32 == 0:
            peak = max(peak, vmrss_kb(pid))
    peak = max(peak, vmrss_kb(pid))
    assert s.proc.poll() is None, "server died:\n%s" % s.log()[-2000:]
    assert peak < RSS_LIMIT_KB, "server RSS %d kB (base %d kB) after %d " \
        "bytes of one line" % (peak, base, sent)
    if not closed_early:
        try:
            r.send(b"\r\n")
            c, t = r.reply()
            assert c == 500, "end of the long line: %d %s" % (c, t)
        except (OSError, EOFError):
            pass
    r.close()
    normal_client(s, subject="after the long line")
    assert vmrss_kb(pid) < RSS_LIMIT_KB


# ---- all at once --------------------------------------------------------------

@test
def normal_client_served_during_abuse():
    s = start({"max_connections_per_ip": "3", "relay_networks": "10.0.0.0/8",
               "command_timeout": "4s"})
    bad = []
    # slowloris clients fill the per-IP quota of 127.0.0.1
    for _ in range(3):
        r = s.raw()
        exp(r, None, 220)
        r.send(b"EH")
        bad.append(r)
    # an error-spewing client and a recipient-spraying one from 127.0.0.3
    e = raw_from(s, "127.0.0.3")
    exp(e, None, 220)
    for i in range(5):
        e.send("BOGUS%d\r\n" % i)
    # the refused fourth from 127.0.0.1
    r4 = s.raw()
    closed_with(r4, 421, "4.7.0", 5)
    # the normal client, from another address, gets its mail through
    t0 = time.time()
    normal_client(s, "127.0.0.2", "during abuse")
    assert time.time() - t0 < 5, "normal client took %.1fs" % (
        time.time() - t0)
    for r in bad:
        closed_with(r, 421, "4.4.2", 8)
    e.close()
    assert s.proc.poll() is None


if __name__ == "__main__":
    main()
