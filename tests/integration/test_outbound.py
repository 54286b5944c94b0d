"""Integration tests: outbound delivery to the mail routing host
(SPEC §3 "Outbound delivery"): relay_host, per-recipient results, retry and
back-off, bounces and delay warnings as DSNs (RFC 3464), no bounce to the
null sender (double bounce to the postmaster), connection reuse,
delivery_concurrency, 8BITMIME/SMTPUTF8, STARTTLS, forwarding through
address_map, and a restart in the middle of a retry schedule.

The routing host is an aiosmtpd peer in this process (peers.SmtpPeer).
Senders are local (alice@localhost) so bounces land in postoffice/alice.
"""
import os
import re
import socket
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, wait_for,  # noqa: E402
                     status_counts)
from peers import (SmtpPeer, submit, queue_json, queue_entry,  # noqa: E402
                   deferred_entry,
                   log_lines, wait_log_re, wait_removed, dsns, bounce_id,
                   make_cert, server_tls_context)
from dsn_check import parse_dsn, check_dsn  # noqa: E402

HOST = "mx.example.test"
SENT_RE = (r"%s: to=<%s> relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d "
           r"delay=\d+\.\d\d status=sent \(250")


def gate(peer=None, start=True, **conf):
    c = {"retry_min": "1s", "retry_max": "2s"}
    if peer is not None:
        c["relay_host"] = peer.hostport
    c.update(conf)
    s = Server(c, name="out")
    return s.start() if start else s


def status_counters(s):
    r = s.cmd("status")
    assert r.returncode == 0, "status: rc %d %s" % (r.returncode, r.stderr)
    return status_counts(r.stdout)


def one_dsn(s, box, kind, timeout=15.0):
    """Waits for exactly one DSN of kind in box; returns parse_dsn()."""
    wait_for(lambda: dsns(s, box), timeout, "a DSN in mailbox %s" % box)
    ds = [parse_dsn(m, hostname=HOST) for m in dsns(s, box)]
    ds = [d for d in ds if d["kind"] == kind]
    assert len(ds) == 1, "%d %s DSNs in %s" % (len(ds), kind, box)
    return ds[0]


# ---- plain relaying -----------------------------------------------------

@test
def relay_host_gets_message_with_envelope_and_log():
    peer = SmtpPeer().start()
    s = gate(peer)
    body = "Line one.\r\n.dot line\r\nLast.\r\n"
    data = ("From: <alice@localhost>\r\nTo: <bob@remote.example>\r\n"
            "Subject: relay test\r\nMessage-ID: <r1@localhost>\r\n\r\n"
            + body)
    qid = submit(s, "alice@localhost", ["bob@remote.example"], data)
    m = peer.wait_messages(1)[0]
    assert m.mail_from == "alice@localhost", m.mail_from
    assert m.rcpt_tos == ["bob@remote.example"], m.rcpt_tos
    # The message as sent, after smtpgate's Received: header.
    assert m.content.startswith(b"Received: "), m.content[:80]
    assert ("by %s" % HOST).encode() in m.content.split(b"\r\n\r\n")[0]
    assert m.content.endswith(data.encode()), "content changed: %r" \
        % m.content
    wait_log_re(s, SENT_RE % (qid, re.escape("bob@remote.example"),
                              peer.port))
    wait_removed(s, qid)
    assert queue_json(s) == [], queue_json(s)
    assert not os.path.exists(s.path("spool", "queue", qid))
    c = status_counters(s)
    assert c.get("delivered") == 1 and c.get("accepted") == 1, c
    assert c.get("queue_size") == 0, c


@test
def one_of_two_recipients_refused_550():
    peer = SmtpPeer().start()
    peer.rcpt_replies["bad@remote.example"] = "550 5.1.1 <bad@remote.example>" \
        " no such user"
    s = gate(peer)
    qid = submit(s, "alice@localhost",
                 ["good@remote.example", "bad@remote.example"])
    m = peer.wait_messages(1)[0]
    assert m.rcpt_tos == ["good@remote.example"], m.rcpt_tos
    wait_log_re(s, SENT_RE % (qid, re.escape("good@remote.example"),
                              peer.port))
    wait_log_re(s, r"%s: to=<bad@remote\.example> relay=127\.0\.0\.1"
                r"\[127\.0\.0\.1\]:%d delay=\d+\.\d\d status=bounced "
                r"\(550 5\.1\.1" % (qid, peer.port))
    nid = bounce_id(s, qid)
    wait_removed(s, qid)
    d = one_dsn(s, "alice", "failed")
    assert d["to"].strip("<>") == "alice@localhost", d["to"]
    assert d["order"] == ["bad@remote.example"], d["order"]
    r = d["recipients"]["bad@remote.example"]
    assert r["status"] == "5.1.1", r
    assert "550" in r.get("diagnostic-code", ""), r
    assert d["original_headers"] and "Subject: test" in \
        d["original_headers"], d["original_headers"]
    # The DSN itself came from the null sender.
    box = s.mailbox("alice")
    assert box[0].startswith(b"Return-Path: <>"), box[0][:60]
    s.wait_log("%s: removed" % nid)
    time.sleep(1.5)
    assert peer.transactions == 1, "retried: %d" % peer.transactions
    assert len(s.mailbox("alice")) == 1


@test
def data_refused_5xx_bounces_all_at_once():
    peer = SmtpPeer().start()
    peer.data_reply = "554 5.7.1 message content refused"
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["a@remote.example",
                                        "b@remote.example"])
    d = one_dsn(s, "alice", "failed")
    assert sorted(d["order"]) == ["a@remote.example", "b@remote.example"], \
        d["order"]
    for r in d["recipients"].values():
        assert r["status"] == "5.7.1", r
    wait_removed(s, qid)
    time.sleep(2.5)     # more than retry_max: no retry of a 5xx
    assert peer.transactions == 1, "DATA tried %d times" % peer.transactions
    assert queue_json(s) == []


@test
def per_recipient_results_sent_bounced_deferred():
    """One transaction: 250, 550 and 451. The 451 one is retried alone
    and delivered once the peer takes it; the others are never resent."""
    peer = SmtpPeer().start()
    peer.rcpt_replies["no@remote.example"] = "550 5.1.1 unknown"
    peer.rcpt_replies["later@remote.example"] = "451 4.3.0 try later"
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["yes@remote.example",
                                        "no@remote.example",
                                        "later@remote.example"])
    peer.wait_messages(1)
    wait_log_re(s, r"%s: to=<later@remote\.example> .*status=deferred "
                r"\(451 4\.3\.0" % qid)
    # the state file is written just after the log line
    e = wait_for(lambda: [e for e in [queue_entry(s, qid)] if e and all(
        r["state"] in ("sent", "bounced", "deferred")
        for r in e["recipients"])], 5, "the queue entry's states")[0]
    st = {r["address"]: r for r in e["recipients"]}
    assert st["yes@remote.example"]["state"] == "sent", st
    assert st["no@remote.example"]["state"] == "bounced", st
    assert st["later@remote.example"]["state"] == "deferred", st
    assert st["later@remote.example"]["attempts"] >= 1, st
    assert "451" in (st["later@remote.example"]["last_error"] or ""), st
    d = one_dsn(s, "alice", "failed")
    assert d["order"] == ["no@remote.example"], d["order"]
    del peer.rcpt_replies["later@remote.example"]
    wait_for(lambda: peer.received_for("later@remote.example"), 15,
             "the deferred recipient delivered")
    wait_removed(s, qid)
    assert len(peer.received_for("yes@remote.example")) == 1
    assert len(peer.received_for("later@remote.example")) == 1
    assert all(len(m.rcpt_tos) == 1 for m in peer.messages[1:]), \
        peer.messages
    assert peer.rcpt_commands.count("no@remote.example") == 1, \
        peer.rcpt_commands
    assert len(dsns(s, "alice")) == 1


# ---- retry, bounce after queue_lifetime, delay warning --------------------

@test
def peer_down_defers_then_delivers():
    peer = SmtpPeer()               # not started: connection refused
    s = gate(peer)
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    wait_log_re(s, r"%s: to=<bob@remote\.example> relay=\S+ "
                r"delay=\d+\.\d\d status=deferred \(" % qid)
    e = deferred_entry(s, qid)
    assert e is not None, queue_json(s)
    r = e["recipients"][0]
    assert r["state"] == "deferred" and r["attempts"] >= 1, r
    assert r["next_try"] >= r["last_try"] > 0, r
    assert r["last_error"], r
    assert status_counters(s).get("deferred", 0) >= 1
    peer.start()
    peer.wait_messages(1, timeout=30)
    wait_removed(s, qid, 10)
    time.sleep(1)
    assert len(peer.messages) == 1, peer.messages
    assert dsns(s, "alice") == [], "a DSN for a delivered message"


@test
def tempfail_4xx_retried_then_bounced_after_queue_lifetime():
    peer = SmtpPeer().start()
    peer.rcpt_replies["bob@remote.example"] = "451 4.7.1 greylisted"
    s = gate(peer, queue_lifetime="5s", delay_warning="0")
    t0 = time.time()
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    d = one_dsn(s, "alice", "failed", timeout=20)
    took = time.time() - t0
    assert took >= 4.0, "bounced after %.1fs, queue_lifetime 5s" % took
    r = d["recipients"]["bob@remote.example"]
    assert r["status"].startswith("4."), r
    assert "451" in r.get("diagnostic-code", ""), r
    n = peer.rcpt_commands.count("bob@remote.example")
    assert n >= 2, "tried %d times in 5s with retry_min 1s" % n
    lines = log_lines(s, qid, "to=<bob@remote.example>")
    assert any("status=deferred" in ln for ln in lines), lines
    assert "status=bounced" in lines[-1], lines
    wait_removed(s, qid)
    assert peer.messages == []


@test
def null_sender_never_bounced_postmaster_gets_double_bounce():
    peer = SmtpPeer().start()
    peer.default_rcpt_reply = "550 5.1.1 no such user"
    s = gate(peer)
    qid = submit(s, "", ["gone@remote.example"])
    wait_log_re(s, r"%s: to=<gone@remote\.example> .*status=bounced" % qid)
    pm = s.wait_mailbox("postmaster", 1, 15)
    d = parse_dsn(pm[0], kind="failed", hostname=HOST)
    assert "gone@remote.example" in d["recipients"], d["order"]
    wait_removed(s, qid)
    time.sleep(2.5)
    assert not log_lines(s, qid, "sender non-delivery"), log_lines(s, qid)
    # Nothing went out to anyone but the original attempt.
    assert [a.strip("<>") for a, _ in peer.mail_commands] == [""], \
        peer.mail_commands
    assert len(s.mailbox("postmaster")) == 1
    assert queue_json(s) == []


@test
def delay_warning_sent_once_per_recipient():
    peer = SmtpPeer().start()
    peer.default_rcpt_reply = "451 4.3.0 busy, try later"
    s = gate(peer, delay_warning="2s", queue_lifetime="60s")
    qid = submit(s, "alice@localhost", ["bob@remote.example",
                                        "carol@remote.example"])
    wait_for(lambda: dsns(s, "alice"), 15, "a delay warning")
    time.sleep(6)       # several more retries: no second warning
    seen = []
    warned = len(dsns(s, "alice"))
    for m in dsns(s, "alice"):
        d = parse_dsn(m, kind="delayed", hostname=HOST)
        for a, r in d["recipients"].items():
            assert r["status"].startswith("4."), r
            seen.append(a)
    assert sorted(seen) == ["bob@remote.example", "carol@remote.example"], \
        "recipients warned about: %r" % seen
    assert peer.rcpt_commands.count("bob@remote.example") >= 3
    e = queue_entry(s, qid)
    assert e and all(r["state"] == "deferred" for r in e["recipients"]), e
    peer.default_rcpt_reply = None
    peer.wait_messages(1, 15)
    wait_removed(s, qid)
    time.sleep(1)
    assert len(dsns(s, "alice")) == warned, "DSNs after delivery"
    for m in dsns(s, "alice"):
        assert parse_dsn(m)["kind"] == "delayed", "a failure DSN after " \
            "delivery"


# ---- connections --------------------------------------------------------

def send_many(s, n, rcpt="bob@remote.example", sender="alice@localhost"):
    """n messages in one SMTP session, back to back."""
    import smtplib
    c = smtplib.SMTP("127.0.0.1", s.port, timeout=15)
    ids = []
    try:
        c.ehlo("client.example")
        for i in range(n):
            code, text = c.mail(sender)
            assert code == 250, text
            code, text = c.rcpt(rcpt)
            assert code == 250, text
            code, text = c.data(("From: <%s>\r\nTo: <%s>\r\nSubject: "
                                 "msg %d\r\n\r\nbody %d\r\n"
                                 % (sender, rcpt, i, i)).encode())
            assert code == 250, text
            ids.append(re.search(r"queued as ([0-9A-F]+)",
                                 text.decode()).group(1))
        c.quit()
    finally:
        c.close()
    return ids


@test
def connection_reused_for_several_messages():
    """Messages to one destination in a row, each submitted once the one
    before was delivered (within the idle time of a connection): the
    routing host sees fewer connections than messages."""
    peer = SmtpPeer().start()
    s = gate(peer)
    ids = []
    for i in range(6):
        ids.append(submit(s, "alice@localhost", ["bob@remote.example"],
                          subject="msg %d" % i))
        peer.wait_messages(i + 1, 15)
        time.sleep(0.2)
    for q in ids:
        wait_removed(s, q)
    subjects = sorted(re.search(rb"Subject: msg (\d)", m.content).group(1)
                      for m in peer.messages)
    assert subjects == [b"0", b"1", b"2", b"3", b"4", b"5"], subjects
    assert peer.connections < 6, "%d connections for 6 messages" \
        % peer.connections
    per = {}
    for m in peer.messages:
        per[m.session_no] = per.get(m.session_no, 0) + 1
    assert max(per.values()) >= 2, "no connection carried 2 messages: %r" \
        % per


@test
def delivery_concurrency_one_means_one_connection_at_a_time():
    peer = SmtpPeer().start()
    peer.data_delay = 0.3
    s = gate(peer, delivery_concurrency="1")
    send_many(s, 5)
    peer.wait_messages(5, 30)
    assert peer.max_active == 1, "%d connections at once" % peer.max_active
    # The backlog is served over the one connection, not one each.
    assert peer.connections < 5, "%d connections for 5 messages" \
        % peer.connections


@test
def concurrency_above_one_uses_parallel_connections():
    """The counterpart: with a slow peer and many queued messages, more
    than one connection is used (so the test above can fail)."""
    peer = SmtpPeer().start()
    peer.data_delay = 0.5
    s = gate(peer, delivery_concurrency="4")
    send_many(s, 8)
    peer.wait_messages(8, 30)
    assert 2 <= peer.max_active <= 4, "%d connections at once" \
        % peer.max_active


# ---- 8BITMIME, SMTPUTF8, STARTTLS -----------------------------------------

@test
def eightbit_body_passed_with_8bitmime():
    peer = SmtpPeer().start()
    s = gate(peer)
    body = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 8 bit.\r\n".encode("utf-8")
    data = (b"From: <alice@localhost>\r\nTo: <bob@remote.example>\r\n"
            b"Subject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain;"
            b" charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + body)
    submit(s, "alice@localhost", ["bob@remote.example"], data,
           mail_options=["BODY=8BITMIME"])
    m = peer.wait_messages(1)[0]
    assert "BODY=8BITMIME" in [o.upper() for o in m.mail_options], \
        m.mail_options
    assert m.content.endswith(body), m.content[-80:]


def raw_utf8_submit(s, sender, rcpt, data):
    from harness import Raw
    r = Raw(s.port)
    r.expect(220)
    r.expect(250, "EHLO client.example")
    r.send(("MAIL FROM:<%s> SMTPUTF8\r\n" % sender).encode("utf-8"))
    r.expect(250)
    r.send(("RCPT TO:<%s>\r\n" % rcpt).encode("utf-8"))
    r.expect(250)
    r.expect(354, "DATA")
    r.send(data + b".\r\n")
    t = r.expect(250)
    r.expect(221, "QUIT")
    r.close()
    return re.search(r"queued as ([0-9A-F]+)", t).group(1)


UTF8_RCPT = "j\u00f8rgen@remote.example"
UTF8_DATA = ("From: <alice@localhost>\r\nTo: <%s>\r\nSubject: "
             "\u00e5 subject\r\n\r\nHej.\r\n" % UTF8_RCPT).encode("utf-8")


@test
def smtputf8_message_to_smtputf8_peer():
    peer = SmtpPeer(smtputf8=True).start()
    s = gate(peer)
    qid = raw_utf8_submit(s, "alice@localhost", UTF8_RCPT, UTF8_DATA)
    m = peer.wait_messages(1)[0]
    assert m.rcpt_tos == [UTF8_RCPT], m.rcpt_tos
    assert "SMTPUTF8" in [o.upper() for o in m.mail_options], m.mail_options
    assert UTF8_DATA in m.content, m.content
    wait_removed(s, qid)
    assert dsns(s, "alice") == []


@test
def smtputf8_message_to_peer_without_it_bounces_5_6_7():
    peer = SmtpPeer(smtputf8=False).start()
    s = gate(peer)
    qid = raw_utf8_submit(s, "alice@localhost", UTF8_RCPT, UTF8_DATA)
    d = one_dsn(s, "alice", "failed")
    assert len(d["recipients"]) == 1, d["recipients"]
    r = list(d["recipients"].values())[0]
    assert r["status"] == "5.6.7", r
    wait_removed(s, qid)
    assert peer.messages == [] and peer.rcpt_commands == [], \
        (peer.messages, peer.rcpt_commands)


@test
def starttls_to_routing_host():
    tmp = tempfile.mkdtemp(prefix="smtpgate-tls.")
    try:
        cert, key = make_cert(tmp)
        peer = SmtpPeer(tls_context=server_tls_context(cert, key)).start()
        s = gate(peer)
        qid = submit(s, "alice@localhost", ["bob@remote.example"])
        m = peer.wait_messages(1)[0]
        assert m.tls, "message arrived without STARTTLS"
        wait_log_re(s, SENT_RE % (qid, re.escape("bob@remote.example"),
                                  peer.port))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- forwarding ----------------------------------------------------------

@test
def failed_postmaster_notice_ends_in_quarantine():
    """A bounce (null sender) that cannot be delivered earns one notice to
    the postmaster; when that notice fails too (the postmaster is mapped
    to a remote address that refuses), it goes to the quarantine: never a
    notice about a notice, whatever the postmaster maps to."""
    peer = SmtpPeer().start()
    peer.default_rcpt_reply = "550 5.1.1 no such user"
    s = gate(peer, start=False)
    s.write_file("map", "postmaster@localhost  pm@remote.example\n")
    s.conf["address_map"] = "map"
    s.write_conf()
    s.start()
    submit(s, "", ["x@remote.example"])
    wait_for(lambda: os.listdir(s.path("spool", "quarantine")), 15,
             "the failed notice in the quarantine")
    time.sleep(2.0)     # several retry periods: nothing more comes
    notices = s.log().count("postmaster notification")
    assert notices == 1, "%d postmaster notifications:\n%s" % (
        notices, s.log()[-3000:])
    assert "pm@remote.example" in peer.rcpt_commands, peer.rcpt_commands
    assert s.proc.poll() is None


@test
def address_map_forward_keeps_original_sender():
    peer = SmtpPeer().start()
    s = gate(peer, start=False)
    s.write_file("map", "fwd@example.test  someone@remote.example\n")
    s.conf["address_map"] = "map"
    s.write_conf()
    s.start()
    qid = submit(s, "origin@elsewhere.example", ["fwd@example.test"])
    m = peer.wait_messages(1)[0]
    assert m.mail_from == "origin@elsewhere.example", m.mail_from
    assert m.rcpt_tos == ["someone@remote.example"], m.rcpt_tos
    ln = wait_log_re(s, r"%s: to=<someone@remote\.example>.* status=sent"
                     % qid)
    assert "fwd@example.test" in ln.string, ln.string
    wait_removed(s, qid)


# ---- restart keeps the schedule -----------------------------------------

@test
def restart_during_retry_schedule_keeps_it():
    peer = SmtpPeer()               # down
    s = gate(peer, retry_min="2s", retry_max="3s")
    qid = submit(s, "alice@localhost", ["bob@remote.example"])
    wait_log_re(s, r"%s: to=<bob@remote\.example> .*status=deferred" % qid)
    before = deferred_entry(s, qid)["recipients"][0]
    assert before["state"] == "deferred" and before["attempts"] >= 1, before
    assert s.stop() == 0, "exit status on SIGTERM"
    # With no server: the state is on disk.
    off = queue_entry(s, qid)
    assert off is not None, "message lost on stop"
    r = off["recipients"][0]
    assert r["state"] == "deferred", r
    assert r["attempts"] >= before["attempts"], (before, r)
    assert r["next_try"] > 0 and r["last_try"] > 0, r
    txt = s.cmd("queue", "list")
    assert qid in txt.stdout and "deferred" in txt.stdout, txt.stdout
    s.start()
    # Still down after the restart: attempts go on counting, not reset.
    wait_for(lambda: (queue_entry(s, qid) or {"recipients": [{}]})
             ["recipients"][0].get("attempts", 0) > r["attempts"], 15,
             "another attempt after the restart")
    peer.start()
    peer.wait_messages(1, 30)
    wait_removed(s, qid)
    time.sleep(1)
    assert len(peer.messages) == 1, peer.messages
    assert dsns(s, "alice") == []


if __name__ == "__main__":
    main()
