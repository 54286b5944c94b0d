"""Integration tests: relay control (SPEC §2 relay_networks, local_domains,
address_map; §3 "A non-local recipient from a client that is neither in
relay_networks nor authenticated is refused at RCPT with 554 5.7.1 (no open
relay, ever)").

With relay_networks = 10.0.0.0/8 the loopback test client may not relay.
Each address of the classic relay-test matrix (percent hack, bang paths,
source routes, quoted local parts, trailing dots, IP literals, case,
look-alike domains) must be refused, or at most accepted as a *local*
mailbox; never queued for a remote destination. After the matrix the spool
(`smtpgate queue list --json`) holds no remote recipient and no delivery to
a remote host was tried. Positive controls: a relay_networks client does
relay, and local recipients are accepted.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, wait_for,  # noqa: E402
                     free_port, ID_RE, exp, queue_json)

# (address, expected refusals or None for "the allowed set")
REFUSED = {(554, "5.7.1"), (550, "5.1.1"), (501, "5.1.3")}
ANY5XX = "any 5xx"
MATRIX = [
    ("user%remote.example@example.test", None),
    ("user@remote.example@example.test", None),
    ("@example.test:user@remote.example", {(554, "5.7.1")}),
    ('"user@remote.example"@example.test', {(550, "5.1.1")}),
    ("remote.example!user@example.test", None),
    ("user@remote.example.", None),
    ("USER@REMOTE.EXAMPLE", {(554, "5.7.1")}),
    ("user@[127.0.0.1]", {(554, "5.7.1")}),
    ("user@[IPv6:::1]", None),
    ("user@localhost.", None),          # local: may be accepted (see below)
    ("user@example.test.remote.example", {(554, "5.7.1")}),
    ("user@Remote.Example", {(554, "5.7.1")}),
    ("user@remote.example", {(554, "5.7.1")}),
    # more of the same family (not in the brief): any 5xx refusal will do
    ("@a.example,@example.test:user@remote.example", ANY5XX),
    ("user@remote.example%example.test", ANY5XX),
    ("user%remote.example%example.test@localhost", ANY5XX),
    ("user@example.test@remote.example", ANY5XX),
    ("<user@remote.example>", ANY5XX),    # doubled brackets
    ("user@remote.example\x00@example.test", ANY5XX),
    ("user@[10.0.0.1]", ANY5XX),
    ("user@sub.example.test", {(554, "5.7.1")}),
    ("user@xexample.test", {(554, "5.7.1")}),
]
# addresses that may be accepted as a local mailbox (never relayed)
MAY_BE_LOCAL = {"user@localhost."}
MAY_BE_LOCAL_NO_MAP = {"user%remote.example@example.test",
                       "remote.example!user@example.test",
                       "user%remote.example%example.test@localhost",
                       "user@localhost."}


# ---- helpers (local to this file) ----------------------------------------

def server(conf=None, with_map=True):
    """relay_networks excludes loopback; remote delivery (if any were ever
    queued) goes to a closed loopback port, never to the network."""
    c = {"relay_networks": "10.0.0.0/8",
         "relay_host": "[127.0.0.1]:%d" % free_port(),
         "dns_servers": "127.0.0.1:%d" % free_port()}
    if with_map:
        c["address_map"] = "aliases"
    c.update(conf or {})
    s = Server(c, name="relay")
    if with_map:
        s.write_file("aliases",
                     "postmaster@localhost     postmaster\n"
                     "postmaster@example.test  postmaster\n"
                     "user@localhost           user\n"
                     "user@example.test        user\n")
    return s.start()


def try_rcpt(s, addr):
    """One transaction: MAIL, the RCPT under test, a local RCPT, DATA.
    Returns (code, text, queue id or None)."""
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<tester@example.org>", 250)
    r.send(b"RCPT TO:<" + addr.encode("utf-8", "surrogateescape") +
           b">\r\n")
    code, text = r.reply()
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message(subject="relay test %s" % addr.replace("\0", "\\0"),
                   to="postmaster@localhost").encode() + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    m = ID_RE.match(t)
    assert m, t
    exp(r, "QUIT", 221)
    r.close()
    return code, text, m.group(1)


def run_matrix(s, may_be_local):
    problems = []
    accepted_local = []
    for addr, want in MATRIX:
        code, text, qid = try_rcpt(s, addr)
        enh = text.split(" ", 1)[0]
        if code == 250:
            if addr in may_be_local:
                accepted_local.append((addr, qid))
            else:
                problems.append("%r accepted: %d %s" % (addr, code, text))
            continue
        allowed = want if want is not None else REFUSED
        if allowed == ANY5XX:
            if not 500 <= code < 600:
                problems.append("%r: got %d %s, want a 5xx refusal"
                                % (addr, code, text))
        elif (code, enh) not in allowed:
            problems.append("%r: got %d %s, want one of %s"
                            % (addr, code, text, sorted(allowed)))
    # every message reached the local postmaster
    s.wait_mailbox("postmaster", len(MATRIX), 30)
    time.sleep(1.0)
    # no remote recipient in the spool, nothing tried towards a remote host
    for m in queue_json(s):
        for rc in m.get("recipients", []):
            if rc.get("route") != "local":
                problems.append("queued for a remote destination: %s"
                                % json.dumps(rc))
    log = s.log()
    for ln in log.splitlines():
        if " to=<" in ln and " relay=" in ln and "relay=local" not in ln \
                and "postmaster" not in ln.split(" to=<", 1)[1][:40]:
            problems.append("delivery attempt: %s" % ln)
    # the accepted-as-local ones were delivered locally, by the log
    for addr, qid in accepted_local:
        if not re.search(r"%s: to=<%s> relay=local " % (qid, re.escape(addr)),
                         log):
            problems.append("%r accepted but not delivered locally" % addr)
    return problems


# ---- the matrix ------------------------------------------------------------------

@test
def matrix_with_address_map():
    s = server(with_map=True)
    problems = run_matrix(s, MAY_BE_LOCAL)
    assert not problems, "\n".join(problems)


@test
def matrix_without_address_map():
    """Every valid local part is its own mailbox: the percent hack and bang
    paths may become (odd) local mailboxes, but nothing is relayed."""
    s = server(with_map=False)
    problems = run_matrix(s, MAY_BE_LOCAL_NO_MAP)
    assert not problems, "\n".join(problems)
    # whatever was accepted is a mailbox inside postoffice_dir
    po = s.path("postoffice")
    for name in os.listdir(po):
        assert "/" not in name and name not in (".", ".."), name
        assert os.path.realpath(os.path.join(po, name)).startswith(
            os.path.realpath(po) + os.sep), name


@test
def percent_hack_refused_when_map_lacks_it():
    s = server(with_map=True)
    code, text, _ = try_rcpt(s, "user%remote.example@example.test")
    assert code == 550 and text.startswith("5.1.1"), "%d %s" % (code, text)
    time.sleep(0.5)
    for m in queue_json(s):
        for rc in m["recipients"]:
            assert "remote.example" not in rc.get("target", "") and \
                rc.get("route") == "local", rc


@test
def percent_hack_local_when_mapped():
    """Mapped to a local mailbox, the percent address is delivered there."""
    s = server(with_map=True)
    with open(s.path("aliases"), "a") as f:
        f.write("user%remote.example@example.test  percentbox\n")
    import signal
    n = s.log().count("reload")
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.log().count("reload") > n, 10, "reload")
    code, text, _ = try_rcpt(s, "user%remote.example@example.test")
    assert code == 250, "%d %s" % (code, text)
    s.wait_mailbox("percentbox", 1)
    for m in queue_json(s):
        for rc in m["recipients"]:
            assert rc.get("route") == "local", rc


@test
def all_refusals_in_one_session_then_still_usable():
    """Many refused RCPTs in a row: refused each time (maybe the error limit
    closes the session with 421), never accepted."""
    s = server()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<tester@example.org>", 250)
    for addr, _ in MATRIX:
        if addr in MAY_BE_LOCAL:
            continue
        r.send(b"RCPT TO:<" + addr.encode() + b">\r\n")
        try:
            c, t = r.reply()
        except EOFError:
            break
        assert c != 250, "%r accepted: %d %s" % (addr, c, t)
        if c == 421:
            assert r.closed(5)
            break
    r.close()
    # a new session still works
    code, text, _ = try_rcpt(s, "user@remote.example")
    assert code == 554, (code, text)


# ---- positive controls ---------------------------------------------------------

@test
def relay_networks_client_may_relay():
    s = server({"relay_networks": "127.0.0.0/8, ::1/128"})
    code, text, qid = try_rcpt(s, "user@remote.example")
    assert code == 250 and text.startswith("2.1.5"), (code, text)
    code, text, qid = try_rcpt(s, "USER@Remote.Example")
    assert code == 250, (code, text)
    wait_for(lambda: any(rc["route"] == "remote" for m in queue_json(s)
                         for rc in m["recipients"]), 10,
             "a remote recipient in the queue")
    # source route: the destination is the last part
    code, text, qid = try_rcpt(s, "@example.test:user@remote.example")
    assert code == 250, (code, text)
    def has_target():
        return any(rc.get("address", "").lower() == "user@remote.example"
                   and rc["route"] == "remote" for m in queue_json(s)
                   for rc in m["recipients"])
    wait_for(has_target, 10, "user@remote.example queued")


@test
def default_relay_networks_allow_loopback():
    s = Server({"relay_host": "[127.0.0.1]:%d" % free_port(),
                "dns_servers": "127.0.0.1:%d" % free_port()},
               name="relay").start()
    code, text, _ = try_rcpt(s, "user@remote.example")
    assert code == 250 and text.startswith("2.1.5"), (code, text)


@test
def local_recipients_accepted_from_outside():
    s = server()
    for addr in ("postmaster@example.test", "user@localhost",
                 "USER@EXAMPLE.TEST", "user@Example.Test",
                 "postmaster@LOCALHOST"):
        code, text, _ = try_rcpt(s, addr)
        assert code == 250 and text.startswith("2.1.5"), \
            "%s: %d %s" % (addr, code, text)
    code, text, _ = try_rcpt(s, "nobody@example.test")
    assert code == 550 and text.startswith("5.1.1"), (code, text)
    s.wait_mailbox("user", 3)


if __name__ == "__main__":
    main()
