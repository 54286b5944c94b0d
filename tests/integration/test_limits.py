"""Integration tests: limits and bounded resources (SPEC §2, §3 "Strict
input, clear errors"): max_connections, max_connections_per_ip,
max_message_size (SIZE= and bytes received), max_recipients, the error
limit, command_timeout / data_timeout, over-long command lines and bare
CR/LF in command lines, and memory per session staying bounded whatever a
client sends.
"""
import os
import re
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, wait_for,  # noqa: E402
                     hermetic, hermetic_server, asan_small_quarantine_env,
                     exp, greet, send_msg, settle, server_rss_kb,
                     RSS_LIMIT_KB)


# ---- helpers (local to this file) ----------------------------------------

def start(conf=None):
    return hermetic_server(conf, "limits")


def start_for_rss(conf=None):
    """For the memory tests: see asan_small_quarantine_env()."""
    return hermetic_server(conf, "limits", env=asan_small_quarantine_env())


def pump(r, total, chunk, s, head=b"", tail=b""):
    """Sends head, then total bytes of chunk-sized filler without CRLF,
    then tail, while sampling the server's RSS. Stops early if the server
    closes. Returns (max_rss_kb, bytes_sent, closed_early)."""
    peak = server_rss_kb(s)
    sent = 0
    r.sock.settimeout(10)
    try:
        r.send(head)
        buf = b"x" * chunk
        n = 0
        while sent < total:
            r.sock.sendall(buf)
            sent += len(buf)
            n += 1
            if n % 16 == 0:
                peak = max(peak, server_rss_kb(s))
        r.send(tail)
    except (BrokenPipeError, ConnectionResetError):
        return max(peak, server_rss_kb(s)), sent, True
    except socket.timeout:
        raise AssertionError("server stopped reading after %d bytes "
                             "without closing (RSS %d kB)"
                             % (sent, server_rss_kb(s)))
    time.sleep(0.3)
    return max(peak, server_rss_kb(s)), sent, False


def greeted_or_none(s):
    """A new Raw client if the server greets it with 220; else None (the
    connection closed)."""
    r = s.raw()
    c, t = r.reply()
    if c == 220:
        return r
    r.close()
    return None


def server_still_serves(s):
    assert s.proc.poll() is None, "server died: %s" % s.proc.returncode
    r = greet(s)
    exp(r, "NOOP", 250, "2.0.0")
    exp(r, "QUIT", 221)


# ---- connections ------------------------------------------------------------

@test
def per_ip_limit():
    s = start({"max_connections_per_ip": "2",
               "relay_networks": "10.0.0.0/8"})
    a = greet(s)
    b = greet(s)
    c = s.raw()
    exp(c, None, 421, "4.7.0")
    assert c.closed(), "third connection from one IP not closed"
    exp(a, "NOOP", 250, "2.0.0")
    exp(b, "NOOP", 250, "2.0.0")
    # refused connections do not use up slots
    for i in range(10):
        x = s.raw()
        exp(x, None, 421, "4.7.0")
        assert x.closed()
        x.close()
    send_msg(a, "alice@example.org", ["postmaster@localhost"],
             message("under per-ip limit"))
    exp(a, "QUIT", 221)
    assert a.closed()
    a.close()

    # a slot is free again (allow the server a moment to notice)
    d = wait_for(lambda: greeted_or_none(s), 5,
                 "a new connection after one closed")
    exp(d, "EHLO client.example", 250)
    exp(d, "QUIT", 221)
    exp(b, "QUIT", 221)
    settle(s, "postmaster", 1)


@test
def per_ip_limit_exempts_relay_networks():
    s = start({"max_connections_per_ip": "2"})   # loopback is in relay_nets
    rs = [greet(s) for _ in range(5)]
    for r in rs:
        exp(r, "NOOP", 250, "2.0.0")
    for r in rs:
        exp(r, "QUIT", 221)


@test
def max_connections_total():
    s = start({"max_connections": "3"})
    rs = [greet(s) for _ in range(3)]
    x = s.raw()
    exp(x, None, 421, "4.7.0")
    assert x.closed(), "4th connection not closed"
    for r in rs:
        exp(r, "NOOP", 250, "2.0.0")
    exp(rs[0], "QUIT", 221)
    assert rs[0].closed()
    d = wait_for(lambda: greeted_or_none(s), 5,
                 "a connection after one closed")
    exp(d, "NOOP", 250, "2.0.0")


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@test
def open_files_limit_sizes_sessions():
    """With a hard open-files limit of 64 the server cannot hold
    max_connections: it says so at start, answers every client at once
    (220 or 421, none left in the listen queue), and when accept() runs out
    of descriptors it pauses instead of spinning on the listen socket and
    flooding the log."""
    s = Server(hermetic({"max_connections_per_ip": "1000"}), "limits")
    s.nofile = (64, 64)
    s.start()
    assert re.search(r"the open files limit 64 leaves room for \d+ "
                     r"sessions, fewer than max_connections 10000: the rest "
                     r"are refused with 421", s.log()), s.log()
    socks = [socket.create_connection(("127.0.0.1", s.port), 5)
             for _ in range(80)]
    answers = {}
    for sock in socks:
        sock.settimeout(8)
        try:
            line = sock.recv(200)
        except socket.timeout:
            line = b"(nothing)"
        answers[line[:9]] = answers.get(line[:9], 0) + 1
    assert set(answers) <= {b"220 mx.ex", b"421 4.7.0"}, answers
    assert answers.get(b"220 mx.ex", 0) >= 16, answers
    assert answers.get(b"421 4.7.0", 0) >= 1, answers
    # Idle now: no CPU burnt on a pending accept, no log flood.
    before = cpu_seconds(s.proc.pid)
    time.sleep(1.5)
    used = cpu_seconds(s.proc.pid) - before
    assert used < 0.5, "%.2fs of CPU while idle" % used
    log = s.log()
    assert log.count(": accept: ") <= 10, log[-2000:]
    for line in log.splitlines():
        if ": accept: " in line:
            assert "Too many open files" in line and \
                "not accepting connections for 1s" in line, line
    for sock in socks:
        sock.close()
    r = wait_for(lambda: greeted_or_none(s), 10,
                 "a greeting once the sessions are gone")
    exp(r, "EHLO client.example", 250)
    send_msg(r, "alice@example.org", ["postmaster@localhost"],
             message("after the open files ran out"))
    exp(r, "QUIT", 221)
    settle(s, "postmaster", 1)


@test
def soft_open_files_limit_raised():
    """A soft limit under the hard one (systemd's 1024) is raised at start,
    and the log says so."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = min(hard, 1048576)
    s = Server(hermetic(), "limits")
    s.nofile = (64, None)
    s.start()
    assert "open files limit raised from 64 to %d" % want in s.log(), \
        s.log()
    with open("/proc/%d/limits" % s.proc.pid) as f:
        row = [x for x in f if x.startswith("Max open files")][0].split()
    assert int(row[3]) == want, row
    server_still_serves(s)


# ---- sizes -----------------------------------------------------------------

@test
def size_parameter_too_big():
    s = start({"max_message_size": "100000"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org> SIZE=100001", 552, "5.3.4")
    # 20 digits (the RFC 1870 maximum), more than 2^64
    exp(r, "MAIL FROM:<alice@example.org> SIZE=99999999999999999999", 552,
        "5.3.4")
    # more than 20 digits is a syntax error
    r.send("MAIL FROM:<alice@example.org> SIZE=999999999999999999999\r\n")
    c, t = r.reply()
    assert (c, t[:5]) in ((501, "5.5.4"), (552, "5.3.4"), (555, "5.5.4")), \
        (c, t)
    exp(r, "MAIL FROM:<alice@example.org> SIZE=100000", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "QUIT", 221)


@test
def oversize_message_refused_after_data():
    s = start({"max_message_size": "10000"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    big = message("too big", body=("y" * 78 + "\r\n") * 250)   # ~20 kB
    r.send(big.encode() + b".\r\n")
    exp(r, None, 552, "5.3.4")
    # the same, with BDAT in one LAST chunk: the chunk is consumed
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    b = big.encode()
    r.send(b"BDAT %d LAST\r\n" % len(b) + b)
    exp(r, None, 552, "5.3.4")
    exp(r, "NOOP", 250, "2.0.0")
    # BDAT in two chunks that only together are too big
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    half = b"Subject: too big\r\n\r\n" + b"w" * 5980 + b"\r\n"
    r.send(b"BDAT %d\r\n" % len(half) + half)
    c, t = r.reply()
    if c == 250:     # refused at LAST, or at the chunk that overflows
        exp(r, b"BDAT %d LAST\r\n" % len(half) + half, 552, "5.3.4")
    else:
        assert (c, t[:5]) == (552, "5.3.4"), (c, t)
    exp(r, "RSET", 250, "2.0.0")
    # a message that fits is accepted and is the only one delivered
    ok = message("fits", body=("z" * 78 + "\r\n") * 100)    # ~8 kB
    send_msg(r, "alice@example.org", ["postmaster@localhost"], ok)
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 1)
    assert b"Subject: fits" in got[0] and b"too big" not in got[0]


@test
def message_size_boundary():
    """max_message_size counts the message bytes received: max-3 bytes
    fit (whether or not the final ".CRLF" is counted), max+1 do not."""
    s = start({"max_message_size": "5000"})
    r = greet(s)
    head = b"Subject: boundary %d\r\n\r\n"
    for n, code in ((4997, 250), (5001, 552)):
        h = head % n
        body = b"b" * (n - len(h) - 2) + b"\r\n"
        data = h + body
        assert len(data) == n
        exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
        exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
        exp(r, "DATA", 354)
        r.send(data + b".\r\n")
        exp(r, None, code, "2.0.0" if code == 250 else "5.3.4")
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 1)
    assert b"Subject: boundary 4997" in got[0]


@test
def many_concurrent_sessions():
    """300 idle sessions at once; all are served, and mail still flows."""
    s = start()
    rs = []
    try:
        for i in range(300):
            r = s.raw()
            rs.append(r)
        for r in rs:
            exp(r, None, 220)
        for r in rs:
            r.send("EHLO many.example\r\n")
        for r in rs:
            exp(r, None, 250)
        r = greet(s)
        send_msg(r, "alice@example.org", ["postmaster@localhost"],
                 message("while busy"))
        exp(r, "QUIT", 221)
        for r in rs:
            exp(r, "NOOP", 250, "2.0.0")
        settle(s, "postmaster", 1)
    finally:
        for r in rs:
            r.close()
    server_still_serves(s)


@test
def huge_data_memory_bounded():
    """30 MB of DATA against max_message_size 1M: refused after the end,
    and the server does not hold it in memory."""
    s = start_for_rss({"max_message_size": "1000000"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    line = b"d" * 998 + b"\r\n"
    peak = server_rss_kb(s)
    r.sock.settimeout(10)
    for i in range(30 * 1000):
        r.sock.sendall(line)
        if i % 2000 == 0:
            peak = max(peak, server_rss_kb(s))
    r.send(b".\r\n")
    exp(r, None, 552, "5.3.4")
    peak = max(peak, server_rss_kb(s))
    assert peak < RSS_LIMIT_KB, "server RSS reached %d kB" % peak
    exp(r, "NOOP", 250, "2.0.0")
    # one 20 MB line with no CRLF in it, in DATA
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    peak2, sent, early = pump(r, 20 * 1024 * 1024, 65536, s,
                              head=b"Subject: one line\r\n\r\n",
                              tail=b"\r\n.\r\n")
    assert not early, "closed during DATA after %d bytes" % sent
    exp(r, None, 552, "5.3.4")
    assert peak2 < RSS_LIMIT_KB, "server RSS reached %d kB" % peak2
    exp(r, "NOOP", 250, "2.0.0")
    exp(r, "QUIT", 221)
    time.sleep(1.0)
    assert s.mailbox("postmaster") == [], "oversize message delivered"


# ---- recipients ------------------------------------------------------------

@test
def max_recipients():
    s = start({"max_recipients": "3"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    for i in range(1, 4):
        exp(r, "RCPT TO:<u%d@example.test>" % i, 250, "2.1.5")
    for i in range(4, 6):
        exp(r, "RCPT TO:<u%d@example.test>" % i, 452, "4.5.3")
    exp(r, "DATA", 354)
    r.send(message("three rcpts").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    for i in range(1, 4):
        settle(s, "u%d" % i, 1)
    for i in range(4, 6):
        assert s.mailbox("u%d" % i) == [], "u%d got the message" % i


# ---- errors and timeouts -------------------------------------------------

@test
def too_many_errors():
    s = start()
    r = greet(s)
    for i in range(10):
        exp(r, "BOGUS%d" % i, 500, "5.5.2")
    # the 11th error: 421 4.7.0 (possibly after its own 500), then close
    r.send("BOGUS10\r\n")
    c, t = r.reply()
    if c == 500:
        c, t = r.reply()
    assert c == 421 and t.startswith("4.7.0"), "got %d %r" % (c, t)
    assert r.closed(), "connection not closed after 421"
    # mixed kinds of errors count as well
    r = greet(s)
    bad = ["RCPT TO:<a@example.test>", "DATA", "MAIL FROM:<@@>", "FOO",
           "MAIL FROM:<a@example.org> X=Y", "RCPT", "BAR", "BAZ", "QUUX",
           "ZAP", "ZIP"]
    replies = []
    closed = False
    for b in bad + [None]:
        try:
            if b is not None:
                r.send(b + "\r\n")
            c, t = r.reply()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            closed = True
            break
        replies.append((c, t))
        if c == 421:
            break
        assert c >= 500, "%r is an error, got %d %r" % (b, c, t)
    assert replies and replies[-1][0] == 421, "no 421 after %d errors: %r" % (
        len(bad), replies)
    assert replies[-1][1].startswith("4.7.0"), replies[-1]
    assert len(replies) >= 10, "421 after only %d errors: %r" % (
        len(replies), replies)
    assert closed or r.closed()
    server_still_serves(s)


@test
def too_many_unknown_recipients():
    """Refused recipients count as errors (directory harvesting): the
    11th gets, or is followed by, 421 4.7.0 and the connection closes."""
    s = Server(hermetic({"address_map": "map"}), name="limits")
    s.write_file("map", "alice  alice\n")
    s.start()
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    for i in range(10):
        exp(r, "RCPT TO:<user%d@example.test>" % i, 550, "5.1.1")
    r.send("RCPT TO:<user10@example.test>\r\n")
    c, t = r.reply()
    if c == 550:
        c, t = r.reply()
    assert c == 421 and t.startswith("4.7.0"), (c, t)
    assert r.closed()
    server_still_serves(s)


@test
def command_timeout():
    s = start({"command_timeout": "2s"})
    r = s.raw()
    exp(r, None, 220)
    t0 = time.time()
    r.sock.settimeout(15)
    exp(r, None, 421, "4.4.2")
    el = time.time() - t0
    assert 1.5 <= el <= 8, "421 after %.1fs (command_timeout 2s)" % el
    assert r.closed(), "not closed after the timeout"
    # mid-transaction too; nothing is delivered
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    r.sock.settimeout(15)
    r.send("NOOP")    # a partial line does not reset the clock for ever
    exp(r, None, 421, "4.4.2")
    assert r.closed()
    server_still_serves(s)
    time.sleep(1.0)
    assert s.mailbox("postmaster") == []


SLOW_SYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
/* While the file FLAG exists, every sync takes SLOW microseconds more. */
static void slow(void) { if (access(FLAG, F_OK) == 0) usleep(SLOW); }
int fsync(int fd) { static int (*r)(int); if (!r) r = dlsym(RTLD_NEXT,
    "fsync"); slow(); return r(fd); }
int fdatasync(int fd) { static int (*r)(int); if (!r) r = dlsym(RTLD_NEXT,
    "fdatasync"); slow(); return r(fd); }
int syncfs(int fd) { static int (*r)(int); if (!r) r = dlsym(RTLD_NEXT,
    "syncfs"); slow(); return r(fd); }
"""


@test
def commit_slower_than_command_timeout():
    """The wait for a slow disk is the server's, not the client's: a commit
    that takes longer than command_timeout ends with its 250, not with a
    421 (which also freed the session while the commit still held it)."""
    s = Server(hermetic({"command_timeout": "1s"}), "limits")
    flag = s.path("slow")
    shim = s.path("slowsync.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim,
                    '-DFLAG="%s"' % flag, "-DSLOW=800000", "-x", "c", "-"],
                   input=SLOW_SYNC_C.encode(), check=True)
    env = asan_small_quarantine_env()
    # the shim goes first; AddressSanitizer would refuse that otherwise
    env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
    env["LD_PRELOAD"] = shim
    s.start(env=env)
    open(flag, "w").close()
    r = greet(s)
    r.sock.settimeout(30)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<alice@localhost>", 250, "2.1.5")
    exp(r, "RCPT TO:<bob@localhost>", 250, "2.1.5")   # queued: synced
    exp(r, "DATA", 354)
    t0 = time.time()
    r.send(message("slow disk").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    assert time.time() - t0 > 1.0, "the sync was not slow: no test"
    os.unlink(flag)
    exp(r, "NOOP", 250, "2.0.0")
    exp(r, "QUIT", 221)
    assert s.proc.poll() is None, s.log()[-2000:]
    settle(s, "alice", 1)
    settle(s, "bob", 1)


@test
def data_timeout():
    s = start({"data_timeout": "2s", "command_timeout": "30s"})
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(b"Subject: stalled\r\n\r\nhalf")
    t0 = time.time()
    r.sock.settimeout(15)
    exp(r, None, 421, "4.4.2")
    el = time.time() - t0
    assert 1.5 <= el <= 8, "421 after %.1fs (data_timeout 2s)" % el
    assert r.closed()
    server_still_serves(s)
    time.sleep(1.0)
    assert s.mailbox("postmaster") == [], "a stalled message was delivered"
    # a BDAT chunk that stops half-way
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    r.send(b"BDAT 100\r\nSubject: stalled bdat\r\n")
    t0 = time.time()
    r.sock.settimeout(40)
    exp(r, None, 421, "4.4.2")
    el = time.time() - t0
    assert el <= 8, "421 after %.1fs (data_timeout 2s)" % el
    assert r.closed()
    time.sleep(1.0)
    assert s.mailbox("postmaster") == [], "a stalled message was delivered"


# ---- command lines ----------------------------------------------------------

@test
def long_command_line():
    s = start()
    r = greet(s)
    # under the limit: fine
    exp(r, "NOOP " + "x" * 4000, 250, "2.0.0")
    # over the limit: 500 5.5.2, then the session goes on or ends with 421
    exp(r, "NOOP " + "x" * 5000, 500, "5.5.2")
    r.send("NOOP\r\n")
    c, t = r.reply()
    if c == 421:
        assert r.closed(), "421 but not closed"
    else:
        assert c == 250, "after the long line: %d %r" % (c, t)
        # the rest of the long line was not taken as a command
        exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
        exp(r, "QUIT", 221)
    server_still_serves(s)


@test
def fifty_megabyte_line_memory_bounded():
    s = start_for_rss()
    r = greet(s)
    peak, sent, early = pump(r, 50 * 1024 * 1024, 65536, s,
                             head=b"MAIL FROM:<", tail=b">\r\n")
    assert peak < RSS_LIMIT_KB, "server RSS reached %d kB after %d bytes" % (
        peak, sent)
    # the line-too-long reply must have come (before or after the close)
    try:
        c, t = r.reply()
    except (EOFError, ConnectionResetError) as e:
        raise AssertionError("no reply to the 50 MB line (closed early=%s, "
                             "%d bytes sent): %s" % (early, sent, e))
    assert c == 500 and t.startswith("5.5.2"), "reply %d %r" % (c, t)
    try:
        r.send("NOOP\r\n")
        c, t = r.reply()
    except (EOFError, ConnectionResetError, BrokenPipeError):
        c, t = None, "closed without 421"
    assert c in (250, 421), "after the 50 MB line: %s %r" % (c, t)
    if c == 421:
        assert t.startswith("4."), t
        assert r.closed()
    server_still_serves(s)
    assert server_rss_kb(s) < RSS_LIMIT_KB


@test
def unread_replies_memory_bounded():
    """A client pipelining 2M NOOPs without reading a reply: the server
    stops reading rather than queueing replies without bound, then
    answers every one, in order, once the client reads."""
    import select
    import threading
    s = start_for_rss()
    r = greet(s)
    n = 2000000
    data = b"NOOP\r\n" * n
    sock = r.sock
    sock.setblocking(False)
    off = 0
    peak = server_rss_kb(s)
    stall_end = time.time() + 2
    deadline = time.time() + 60
    while off < len(data) and time.time() < stall_end and \
            time.time() < deadline:
        _, w, _ = select.select([], [sock], [], 0.2)
        if w:
            try:
                off += sock.send(data[off:off + 65536])
                stall_end = time.time() + 2
            except BlockingIOError:
                pass
        peak = max(peak, server_rss_kb(s))
    peak = max(peak, server_rss_kb(s))
    assert peak < RSS_LIMIT_KB, "server RSS reached %d kB" % peak
    sock.setblocking(True)
    sock.settimeout(20)
    rest = data[off:]
    sender = threading.Thread(target=lambda: sock.sendall(rest), daemon=True)
    sender.start()
    want = b"250 2.0.0 Ok\r\n" * 1000
    got = r.pending
    count = 0
    end = time.time() + 90
    while count < n and time.time() < end:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed after %d replies" % count
        got += chunk
        # compare whole blocks of replies, keep the remainder
        while len(got) >= len(want):
            assert got[:len(want)] == want, "odd reply near %d: %r" % (
                count, got[:200])
            got = got[len(want):]
            count += 1000
        if count + len(got) // 14 >= n:
            assert got == want[:len(got)], got[:200]
            count += len(got) // 14
            got = got[len(got) // 14 * 14:]
    sender.join(20)
    assert count == n, "%d replies to %d NOOPs" % (count, n)
    r.pending = got
    exp(r, "QUIT", 221)
    sys.stderr.write("unread replies: %d bytes sent before the server "
                     "stopped reading; peak RSS %d kB\n" % (off, peak))


@test
def bare_lf_or_cr_in_command_line():
    """Only CRLF ends a command line (RFC 5321 §2.3.8: no other sequence is
    a line terminator): a line with a bare LF or CR in it gets one
    500 5.5.2 and no part of it is executed."""
    s = start()
    r = greet(s)

    def one_reply_only(bad):
        exp(r, bad, 500, "5.5.2")
        r.send("NOOP\r\n")
        c, t = r.reply()
        assert (c, t) == (250, "2.0.0 Ok"), (
            "%r got a second reply %d %r: the server split the line at the "
            "bare CR/LF and ran the rest as a command" % (bad, c, t))
    one_reply_only("NOOP\rNOOP")
    one_reply_only("NOOP\nNOOP\nNOOP")
    one_reply_only("NOOP\nNOOP")
    one_reply_only("MAIL FROM:<alice@example.org>\nRCPT TO:<x@example.test>")
    # nothing of that line was executed: no transaction is open
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    # a bare LF cannot smuggle a command behind a refused one either
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    one_reply_only("RCPT TO:<bob@example.test>\nRSET")
    exp(r, "DATA", 503, "5.5.1")
    # a NUL in a command line is refused too
    r.send(b"NOOP \x00x\r\n")
    c, t = r.reply()
    assert c in (500, 501), "NUL in command: %d %r" % (c, t)
    exp(r, "QUIT", 221)


if __name__ == "__main__":
    main()
