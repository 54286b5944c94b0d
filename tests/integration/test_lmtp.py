"""Integration tests: local delivery over LMTP (SPEC §2 lmtp_host, §6):
local mail goes to a real Dovecot (peers.Dovecot, LMTP + IMAP on loopback)
and is read back over IMAP and from Dovecot's Maildir; per-recipient LMTP
replies (an unknown user at Dovecot -> that recipient bounces, the others
are delivered); LMTP's per-recipient replies after DATA (RFC 2033) with a
scripted aiosmtpd LMTP peer; deferral while the LMTP server is down.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, test, main, wait_for  # noqa: E402
from peers import (Dovecot, SmtpPeer, submit, queue_entry,  # noqa: E402
                   deferred_entry,
                   log_lines, wait_log_re, wait_removed)
from dsn_check import parse_dsn, is_dsn  # noqa: E402

HOST = "mx.example.test"


def gate(lmtp_hostport, **conf):
    c = {"retry_min": "1s", "retry_max": "2s", "lmtp_host": lmtp_hostport}
    c.update(conf)
    return Server(c, name="lmtp").start()


@test
def local_mail_delivered_to_dovecot_over_lmtp():
    dc = Dovecot().start()
    s = gate(dc.hostport)
    data = ("From: <sender@elsewhere.example>\r\nTo: <alice@localhost>, "
            "<bob@example.test>\r\nSubject: over lmtp\r\n"
            "Message-ID: <lmtp1@elsewhere.example>\r\n\r\n"
            "Hello over LMTP.\r\n")
    qid = submit(s, "sender@elsewhere.example",
                 ["alice@localhost", "bob@example.test"], data)
    wait_removed(s, qid, 15)
    for rcpt in ("alice@localhost", "bob@example.test"):
        wait_log_re(s, r"%s: to=<%s> .*status=sent" % (qid, re.escape(rcpt)))
    # alice over IMAP
    msgs = dc.imap_messages("alice")
    assert len(msgs) == 1, msgs
    m = msgs[0]
    assert b"Subject: over lmtp\r\n" in m, m
    assert m.rstrip(b"\r\n").endswith(b"Hello over LMTP."), m
    assert re.search(rb"(?im)^Return-Path: <sender@elsewhere\.example>", m), m
    assert ("by %s" % HOST).encode() in m, "smtpgate's Received: missing"
    # bob from Dovecot's Maildir
    b = dc.wait_messages("bob", 1)
    assert len(b) == 1 and b"Subject: over lmtp" in b[0], b
    # Nothing in smtpgate's own postoffice.
    assert s.mailbox("alice") == [] and s.mailbox("bob") == []
    assert not os.path.isdir(s.path("postoffice", "alice"))


@test
def unknown_user_at_dovecot_bounces_others_delivered():
    dc = Dovecot().start()
    s = gate(dc.hostport)
    # carol is a valid local part for smtpgate (no address_map) but not a
    # Dovecot user: Dovecot refuses her with 550 at RCPT.
    qid = submit(s, "bob@localhost", ["alice@localhost", "carol@localhost"])
    wait_log_re(s, r"%s: to=<carol@localhost> .*status=bounced \(55\d"
                % qid, 15)
    wait_log_re(s, r"%s: to=<alice@localhost> .*status=sent" % qid)
    dc.wait_messages("alice", 1)
    # The DSN goes to bob@localhost: local, so to Dovecot as well.
    got = wait_for(lambda: [m for m in dc.maildir_messages("bob")
                            if is_dsn(m)], 15, "the DSN in bob's mailbox")
    assert len(got) == 1, got
    d = parse_dsn(got[0], kind="failed", hostname=HOST)
    assert d["order"] == ["carol@localhost"], d["order"]
    r = d["recipients"]["carol@localhost"]
    assert r["status"] == "5.1.1", r
    assert "550" in r.get("diagnostic-code", ""), r
    wait_removed(s, qid)
    time.sleep(1)
    assert len(dc.maildir_messages("alice")) == 1


@test
def lmtp_per_recipient_replies_after_data():
    """RFC 2033: one reply per recipient after DATA. alice 250, bob 452
    (retried alone later), erin 550 (bounced)."""
    peer = SmtpPeer(lmtp=True).start()
    peer.lmtp_data_replies["bob@localhost"] = "452 4.2.2 <bob@localhost> " \
        "mailbox full"
    peer.lmtp_data_replies["erin@localhost"] = "550 5.2.1 <erin@localhost> " \
        "mailbox disabled"
    s = gate(peer.hostport)
    qid = submit(s, "alice@localhost", ["alice@localhost", "bob@localhost",
                                        "erin@localhost"])
    wait_log_re(s, r"%s: to=<bob@localhost> .*status=deferred \(452" % qid)
    wait_log_re(s, r"%s: to=<erin@localhost> .*status=bounced \(550" % qid)
    wait_log_re(s, r"%s: to=<alice@localhost> .*status=sent" % qid)
    # The state file is written after these log lines (and after the
    # bounce for erin is queued): wait for it rather than read it once.
    want = {"alice@localhost": "sent", "bob@localhost": "deferred",
            "erin@localhost": "bounced"}

    def states():
        e = queue_entry(s, qid)
        return {r["address"]: r["state"] for r in e["recipients"]}
    wait_for(lambda: states() == want, 10,
             "per-recipient states %r" % want)
    del peer.lmtp_data_replies["bob@localhost"]
    wait_for(lambda: peer.received_for("bob@localhost"), 15,
             "bob delivered on retry")
    wait_removed(s, qid)
    assert len(peer.received_for("alice@localhost")) >= 1
    # alice got the message once (and the DSN about erin, also over LMTP).
    alice_msgs = [m for m in peer.received_for("alice@localhost")
                  if not is_dsn(m.content)]
    assert len(alice_msgs) == 1, alice_msgs
    dsn = [m for m in peer.received_for("alice@localhost")
           if is_dsn(m.content)]
    assert len(dsn) == 1, dsn
    d = parse_dsn(dsn[0].content, kind="failed", hostname=HOST)
    assert d["order"] == ["erin@localhost"], d["order"]
    assert d["recipients"]["erin@localhost"]["status"] == "5.2.1"
    # The retry carried bob only.
    assert peer.rcpt_commands.count("alice@localhost") >= 1
    assert [m.rcpt_tos for m in peer.received_for("bob@localhost")] == \
        [["bob@localhost"]]


@test
def lmtp_down_defers_then_delivers():
    dc = Dovecot()          # configured, not started
    s = gate(dc.hostport)
    qid = submit(s, "sender@elsewhere.example", ["alice@localhost"])
    wait_log_re(s, r"%s: to=<alice@localhost> .*status=deferred" % qid, 15)
    e = deferred_entry(s, qid)
    assert e and e["recipients"][0]["state"] == "deferred", e
    assert not log_lines(s, qid, "status=bounced")
    dc.start()
    dc.wait_messages("alice", 1, 30)
    wait_removed(s, qid)
    assert len(dc.imap_messages("alice")) == 1


@test
def lmtp_unix_socket_missing_defers_quietly():
    """lmtp_host = unix:/path with nothing listening fails at connect()
    itself: the message is deferred with one line, and the server goes on
    serving (it used to start connections for ever: a spinning CPU, a log
    growing by 100,000 lines a second, no greeting for anyone)."""
    s = Server({"retry_min": "5s", "retry_max": "10s"}, name="lmtp")
    s.conf["lmtp_host"] = "unix:" + s.path("no-such.sock")
    s.write_conf()
    s.start()
    qid = submit(s, "sender@elsewhere.example", ["alice@localhost"])
    wait_log_re(s, r"%s: to=<alice@localhost> .*status=deferred" % qid, 15)
    time.sleep(1.0)
    failed = s.log().count("delivery to unix:")
    assert 1 <= failed <= 3, "%d 'delivery to' lines:\n%s" % (
        failed, s.log()[-2000:])
    r = s.raw()
    r.sock.settimeout(5)
    assert r.reply()[0] == 220
    r.close()
    e = deferred_entry(s, qid)
    assert e and e["recipients"][0]["state"] == "deferred", e


if __name__ == "__main__":
    main()
