"""Integration tests: the queue commands (SPEC §1): `smtpgate queue list
[--json]`, `queue show ID`, `queue flush`, `queue hold|release|delete ID`
(through the running server's control socket, and hold/release/delete by
editing the spool when no server runs), `mailq`, `smtpgate status`, and bad
ids (exit 64).

Mail is kept in the queue by a routing host (peers.SmtpPeer) that is down
or answers 451; retry_min is long (1h) so that only the commands move it.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Server, test, main, wait_for,  # noqa: E402
                     status_counts)
from peers import (SmtpPeer, submit, queue_json, queue_entry,  # noqa: E402
                   log_lines, wait_log_re, wait_removed, dsns)

RCPT_KEYS = {"address", "original", "route", "target", "state", "attempts",
             "last_try", "next_try", "last_error"}
MSG_KEYS = {"id", "size", "arrival", "sender", "held", "recipients"}


def gate(peer, **conf):
    c = {"retry_min": "1h", "retry_max": "2h", "relay_host": peer.hostport}
    c.update(conf)
    return Server(c, name="queue").start()


def deferred(s, qid, timeout=15.0):
    """Waits until qid's remote recipient is deferred; returns the entry."""
    wait_log_re(s, r"%s: to=<[^>]*@remote\.example> .*status=deferred"
                % qid, timeout)
    return wait_for(lambda: (lambda e: e if e and any(
        r["state"] == "deferred" for r in e["recipients"]) else None)(
        queue_entry(s, qid)), 5, "deferred state in queue list")


def ok(r, what):
    assert r.returncode == 0, "%s: rc %d, stdout %r, stderr %r" % (
        what, r.returncode, r.stdout, r.stderr)
    return r


def greylisting_peer():
    peer = SmtpPeer().start()
    peer.default_rcpt_reply = "451 4.7.1 greylisted, come back later"
    return peer


# ---- list, show, mailq ---------------------------------------------------

@test
def list_text_and_json():
    peer = SmtpPeer()               # down
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["bob@remote.example",
                                        "postmaster@localhost"],
                 subject="listed")
    e = deferred(s, qid)
    # The local copy is delivered on its own schedule (Maildir batches):
    # wait for both outcomes to be recorded before listing.
    wait_log_re(s, r"%s: to=<postmaster@localhost> .*status=sent" % qid)
    wait_for(lambda: all(r["state"] != "pending" for r in
                         queue_entry(s, qid)["recipients"]), 5,
             "both outcomes in the queue state")
    size = int(wait_log_re(s, r"%s: from=<alice@localhost> size=(\d+)"
                           % qid).group(1))
    # JSON
    js = queue_json(s)
    assert isinstance(js, list) and len(js) == 1, js
    assert set(js[0]) >= MSG_KEYS, js[0]
    assert js[0]["id"] == qid and js[0]["sender"] == "alice@localhost", js
    assert js[0]["held"] is False, js[0]
    assert js[0]["size"] == size, (js[0]["size"], size)
    assert abs(js[0]["arrival"] - time.time()) < 60, js[0]["arrival"]
    rs = {r["address"]: r for r in js[0]["recipients"]}
    assert set(rs) == {"bob@remote.example", "postmaster@localhost"}, rs
    for r in rs.values():
        assert set(r) >= RCPT_KEYS, r
    bob = rs["bob@remote.example"]
    assert bob["state"] == "deferred" and bob["attempts"] == 1, bob
    assert bob["route"] == "remote" and bob["target"] == \
        "bob@remote.example", bob
    assert bob["original"] == "bob@remote.example", bob
    assert bob["last_error"] and bob["last_try"] > 0, bob
    assert bob["next_try"] - bob["last_try"] >= 3000, \
        "next try not ~1h later: %r" % bob
    pm = rs["postmaster@localhost"]
    assert pm["state"] == "sent" and pm["route"] == "local", pm
    assert pm["target"] == "postmaster", pm
    assert pm["last_error"] is None, pm
    # Text
    t = ok(s.cmd("queue", "list"), "queue list").stdout
    lines = t.splitlines()
    assert any(ln.startswith(qid) and str(size) in ln and
               "<alice@localhost>" in ln for ln in lines), t
    assert re.search(r"deferred\s+<bob@remote\.example>.*next try", t), t
    assert "1 message(s)" in t, t
    assert "(held)" not in t
    # mailq: a link named mailq to the binary
    link = s.path("mailq")
    os.symlink(harness.BIN, link)
    import subprocess
    m = subprocess.run([link, "-c", s.conf_path], capture_output=True,
                       text=True, timeout=30)
    assert m.returncode == 0, m.stderr
    assert m.stdout == t, "mailq:\n%s\nqueue list:\n%s" % (m.stdout, t)


@test
def list_empty_queue():
    peer = SmtpPeer()
    s = gate(peer)
    r = ok(s.cmd("queue", "list"), "queue list")
    assert "empty" in r.stdout.lower(), r.stdout
    assert queue_json(s) == []


@test
def show_one_message():
    peer = SmtpPeer()               # down
    s = gate(peer, delay_warning="4h", queue_lifetime="5d")
    qid = submit(s, "alice@localhost", ["bob@remote.example"],
                 subject="show me please")
    deferred(s, qid)
    t = ok(s.cmd("queue", "show", qid), "queue show").stdout
    for want in (qid, "<alice@localhost>", "<bob@remote.example>",
                 "deferred", "route:", "relay_host", peer.hostport,
                 "attempts: 1", "last reply:", "next retry:", "Warn at:",
                 "Bounce at:", "Subject: show me please",
                 "From: <alice@localhost>"):
        assert want in t, "%r not in queue show:\n%s" % (want, t)
    # Routed by MX when there is no relay_host (read from the spool and
    # the configuration, no server needed).
    s.stop()
    del s.conf["relay_host"]
    s.write_conf()
    t = ok(s.cmd("queue", "show", qid), "queue show (no server)").stdout
    assert re.search(r"route:.*MX.*remote\.example", t), t


# ---- flush --------------------------------------------------------------

@test
def flush_retries_deferred_mail_now():
    peer = SmtpPeer()               # down
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    deferred(s, qid)
    peer.start()                    # the routing host is back
    t0 = time.time()
    ok(s.cmd("queue", "flush"), "queue flush")
    peer.wait_messages(1, 15)
    took = time.time() - t0
    wait_removed(s, qid)
    assert took < 15, took
    assert queue_json(s) == []


@test
def flush_retries_after_4xx():
    peer = greylisting_peer()
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    deferred(s, qid)
    peer.default_rcpt_reply = None
    ok(s.cmd("queue", "flush"), "queue flush")
    peer.wait_messages(1, 10)
    wait_removed(s, qid)


# ---- hold / release / delete with the server running --------------------

@test
def hold_and_release_running():
    peer = greylisting_peer()
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    deferred(s, qid)
    ok(s.cmd("queue", "hold", qid), "queue hold")
    assert queue_entry(s, qid)["held"] is True
    t = s.cmd("queue", "list").stdout
    assert re.search(r"^%s .*\(held\)" % qid, t, re.M), t
    assert "(held)" in s.cmd("queue", "show", qid).stdout
    peer.default_rcpt_reply = None
    ok(s.cmd("queue", "flush"), "queue flush")
    time.sleep(3)
    assert peer.messages == [], "a held message was delivered"
    assert queue_entry(s, qid) is not None
    ok(s.cmd("queue", "release", qid), "queue release")
    peer.wait_messages(1, 15)
    wait_removed(s, qid)


@test
def delete_running():
    peer = greylisting_peer()
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    deferred(s, qid)
    ok(s.cmd("queue", "delete", qid), "queue delete")
    assert queue_entry(s, qid) is None, queue_json(s)
    assert not os.path.exists(s.path("spool", "queue", qid))
    s.wait_log("%s: removed" % qid)
    peer.default_rcpt_reply = None
    ok(s.cmd("queue", "flush"), "queue flush")
    time.sleep(2.5)
    assert peer.messages == [], "a deleted message was delivered"
    assert dsns(s, "alice") == [], "a DSN for a deleted message"
    r = s.cmd("queue", "show", qid)
    assert r.returncode != 0, "show of a deleted message: %r" % r.stdout


# ---- hold / release / delete with no server (spool edit) ----------------

@test
def hold_release_delete_without_server():
    peer = greylisting_peer()
    s = gate(peer)
    q1 = submit(s, "alice@localhost", ["bob@remote.example"], subject="one")
    q2 = submit(s, "alice@localhost", ["carol@remote.example"],
                subject="two")
    deferred(s, q1)
    deferred(s, q2)
    assert s.stop() == 0
    ok(s.cmd("queue", "hold", q1), "queue hold (no server)")
    ok(s.cmd("queue", "delete", q2), "queue delete (no server)")
    js = queue_json(s)
    assert [m["id"] for m in js] == [q1], js
    assert js[0]["held"] is True, js
    assert not os.path.exists(s.path("spool", "queue", q2))
    # Started again with the peer accepting: the held one stays.
    peer.default_rcpt_reply = None
    s.start()
    ok(s.cmd("queue", "flush"), "queue flush")
    time.sleep(3)
    assert peer.messages == [], peer.messages
    assert queue_entry(s, q1)["held"] is True
    assert s.stop() == 0
    ok(s.cmd("queue", "release", q1), "queue release (no server)")
    assert queue_entry(s, q1)["held"] is False
    s.start()
    ok(s.cmd("queue", "flush"), "queue flush")
    peer.wait_messages(1, 15)
    wait_removed(s, q1)
    assert [m.rcpt_tos for m in peer.messages] == [["bob@remote.example"]]
    assert dsns(s, "alice") == []


# ---- status ---------------------------------------------------------------

@test
def status_counters():
    peer = SmtpPeer().start()
    peer.rcpt_replies["bad@remote.example"] = "550 5.1.1 unknown"
    peer.rcpt_replies["later@remote.example"] = "451 4.3.0 later"
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["ok@remote.example",
                                        "bad@remote.example",
                                        "later@remote.example"])
    deferred(s, qid)
    s.wait_log("sender non-delivery notification")
    wait_for(lambda: s.mailbox("alice"), 10, "the bounce")
    r = ok(s.cmd("status"), "status")
    c = status_counts(r.stdout)
    for k in ("connections", "accepted", "delivered", "deferred", "bounced",
              "queue_size"):
        assert k in c, "no %r line in status:\n%s" % (k, r.stdout)
    assert c["accepted"] == 1, c
    assert c["connections"] >= 1, c
    # ok@ sent, the bounce delivered to alice
    assert c["delivered"] == 2, c
    assert c["bounced"] == 1 and c["deferred"] == 1, c
    assert c["queue_size"] == 1, c
    assert s.stop() == 0
    r = s.cmd("status")
    assert r.returncode == 75, "status with no server: rc %d" % r.returncode
    assert r.stderr.strip(), "no message on stderr"


# ---- bad ids ----------------------------------------------------------------

@test
def bad_ids_are_usage_errors():
    peer = SmtpPeer()
    s = gate(peer)
    for verb in ("show", "hold", "release", "delete"):
        for bad in ("../../etc/passwd", "xyz", "0123456789abcdef0",
                    "0123456789ABCDEF", ""):
            r = s.cmd("queue", verb, bad)
            assert r.returncode == 64, "queue %s %r: rc %d %r" % (
                verb, bad, r.returncode, r.stderr)
            assert r.stderr.strip(), "queue %s %r: no message" % (verb, bad)
    r = s.cmd("queue", "frobnicate")
    assert r.returncode == 64, r.returncode
    r = s.cmd("queue", "show")
    assert r.returncode == 64, r.returncode
    # A well-formed id that is not queued: an error, not a usage error.
    for verb in ("show", "hold", "release", "delete"):
        r = s.cmd("queue", verb, "0123456789ABCDEF0")
        assert r.returncode not in (0, 64), "queue %s of a missing id: " \
            "rc %d" % (verb, r.returncode)
        assert r.stderr.strip()


if __name__ == "__main__":
    main()
