"""Integration tests: `smtpgate sendmail` and the binary called as
`sendmail` (SPEC §1): local submission of the message on stdin, with no
server running (the message waits in spool/queue/ until the server starts)
and with one (delivered at once); -t, -i/-oi, -f, -F, the options that are
accepted and ignored, LF -> CRLF, the headers added when missing, and the
exit codes (67 unknown local user, 64 no recipients).
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Server, test, main, wait_for  # noqa: E402
from peers import SmtpPeer, queue_json, wait_removed  # noqa: E402

MSG = ("From: Alice <alice@localhost>\nTo: bob@localhost\n"
       "Subject: via sendmail\nDate: Mon, 30 Nov 2026 07:00:00 +0000\n"
       "Message-ID: <sm1@localhost>\n\nHello Bob.\nSecond line.\n")


def gate(**conf):
    c = {"retry_min": "1s", "retry_max": "2s"}
    c.update(conf)
    return Server(c, name="sendmail")


def sendmail(s, args, text, argv0=None, timeout=30):
    """Runs `smtpgate sendmail -c CONF ARGS` (or a link named sendmail)."""
    if argv0:
        argv = [argv0, "-c", s.conf_path] + list(args)
    else:
        argv = [harness.BIN, "sendmail", "-c", s.conf_path] + list(args)
    data = text.encode("utf-8") if isinstance(text, str) else text
    return subprocess.run(argv, input=data, capture_output=True,
                          timeout=timeout, cwd=s.dir)


def ok(r):
    assert r.returncode == 0, "sendmail rc %d: %s" % (
        r.returncode, r.stderr.decode(errors="replace"))
    return r


def queued_ids(s):
    d = s.path("spool", "queue")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def header_section(msg):
    return msg.split(b"\r\n\r\n", 1)[0]


def body_of(msg):
    return msg.split(b"\r\n\r\n", 1)[1]


def no_bare_lf(data):
    return re.search(rb"(?<!\r)\n", data) is None


# ---- with no server running ---------------------------------------------

@test
def no_server_message_waits_in_spool_then_delivered():
    s = gate()
    r = ok(sendmail(s, ["bob@localhost"], MSG))
    ids = queued_ids(s)
    assert len(ids) == 1, ids
    js = queue_json(s)
    assert [m["id"] for m in js] == ids, js
    assert js[0]["recipients"][0]["state"] == "pending", js
    assert s.mailbox("bob") == []
    s.start()
    box = s.wait_mailbox("bob", 1, 15)
    m = box[0]
    assert no_bare_lf(m), "bare LF in the delivered copy: %r" % m
    assert b"Subject: via sendmail\r\n" in m, m
    assert body_of(m) == b"Hello Bob.\r\nSecond line.\r\n", body_of(m)
    assert m.startswith(b"Return-Path: <"), m[:60]
    wait_removed(s, ids[0])
    assert queued_ids(s) == []


@test
def no_server_remote_recipient_relayed_at_start():
    peer = SmtpPeer().start()
    s = gate(relay_host=peer.hostport)
    ok(sendmail(s, ["-f", "alice@localhost", "carol@remote.example"], MSG))
    assert len(queued_ids(s)) == 1
    time.sleep(0.5)
    assert peer.messages == []
    s.start()
    m = peer.wait_messages(1, 15)[0]
    assert m.mail_from == "alice@localhost", m.mail_from
    assert m.rcpt_tos == ["carol@remote.example"], m.rcpt_tos
    assert b"Subject: via sendmail\r\n" in m.content


# ---- with the server running ----------------------------------------------

@test
def server_running_delivers_at_once():
    s = gate(retry_min="1h", retry_max="2h").start()
    t0 = time.time()
    ok(sendmail(s, ["bob@localhost"], MSG))
    s.wait_mailbox("bob", 1, 5)
    assert time.time() - t0 < 5
    wait_for(lambda: queued_ids(s) == [], 5, "the queue emptied")


@test
def link_named_sendmail_behaves_the_same():
    s = gate().start()
    link = s.path("sendmail")
    os.symlink(harness.BIN, link)
    ok(sendmail(s, ["-i", "bob@localhost"], MSG, argv0=link))
    m = s.wait_mailbox("bob", 1, 10)[0]
    assert b"Subject: via sendmail" in m


# ---- dots, -i, line ends ---------------------------------------------------

@test
def lone_dot_ends_message_without_i():
    s = gate().start()
    ok(sendmail(s, ["bob@localhost"],
                "Subject: dots\n\nbefore\n.\nafter the dot\n"))
    m = s.wait_mailbox("bob", 1, 10)[0]
    b = body_of(m)
    assert b == b"before\r\n", b


@test
def dot_line_kept_with_i_and_oi():
    s = gate().start()
    text = "Subject: dots\n\nbefore\n.\n..two\nafter\n"
    ok(sendmail(s, ["-i", "bob@localhost"], text))
    ok(sendmail(s, ["-oi", "alice@localhost"], text))
    for box in ("bob", "alice"):
        b = body_of(s.wait_mailbox(box, 1, 10)[0])
        assert b == b"before\r\n.\r\n..two\r\nafter\r\n", (box, b)


@test
def crlf_input_not_doubled_and_no_final_newline():
    s = gate().start()
    ok(sendmail(s, ["-i", "bob@localhost"],
                b"Subject: crlf\r\n\r\nline one\r\nline two"))
    m = s.wait_mailbox("bob", 1, 10)[0]
    assert no_bare_lf(m) and b"\r\r" not in m, m
    assert body_of(m) == b"line one\r\nline two\r\n", body_of(m)


# ---- -t ---------------------------------------------------------------------

@test
def t_reads_to_cc_bcc_and_removes_bcc():
    s = gate().start()
    text = ("From: alice@localhost\nTo: Bob <bob@localhost>\n"
            "Cc: alice@localhost\nBcc: postmaster@localhost\n"
            "Subject: -t test\n\nfor three\n")
    ok(sendmail(s, ["-t", "-i"], text))
    for box in ("bob", "alice", "postmaster"):
        m = s.wait_mailbox(box, 1, 10)[0]
        h = header_section(m)
        assert not re.search(rb"(?im)^bcc:", h), "Bcc kept for %s: %r" \
            % (box, h)
        assert b"Subject: -t test" in h
        assert re.search(rb"(?im)^Delivered-To: <?%s@localhost>?" %
                         box.encode(), h), h


@test
def t_without_recipients_is_usage_error():
    s = gate()
    r = sendmail(s, ["-t"], "Subject: nobody\n\nbody\n")
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert r.stderr.strip()
    assert queued_ids(s) == []


# ---- senders, names, added headers ------------------------------------------

@test
def f_and_F_set_sender_and_from_header():
    s = gate().start()
    ok(sendmail(s, ["-f", "carol@localhost", "-F", "Carol Example",
                    "bob@localhost"], "Subject: from carol\n\nhi\n"))
    m = s.wait_mailbox("bob", 1, 10)[0]
    h = header_section(m)
    assert m.startswith(b"Return-Path: <carol@localhost>"), m[:60]
    mf = re.search(rb"(?im)^From: (.*)$", h)
    assert mf, h
    assert b"carol@localhost" in mf.group(1) and b"Carol Example" in \
        mf.group(1), mf.group(1)


@test
def headers_added_when_missing_and_not_duplicated():
    s = gate().start()
    ok(sendmail(s, ["bob@localhost"], "Subject: bare\n\nbody\n"))
    m = s.wait_mailbox("bob", 1, 10)[0]
    h = header_section(m)
    for name in (b"From", b"Date", b"Message-ID"):
        n = len(re.findall(rb"(?im)^%s:" % name, h))
        assert n == 1, "%d %s: headers in %r" % (n, name, h)
    d = re.search(rb"(?im)^Date: (.*)$", h).group(1).decode()
    import email.utils
    assert email.utils.parsedate_to_datetime(d), d
    assert re.search(rb"(?im)^Message-ID: <[^@>\s]+@[^>\s]+>", h), h
    # Present already: kept as they are, not added again.
    ok(sendmail(s, ["alice@localhost"], MSG))
    h = header_section(s.wait_mailbox("alice", 1, 10)[0])
    for name in (b"From", b"Date", b"Message-ID"):
        assert len(re.findall(rb"(?im)^%s:" % name, h)) == 1, h
    assert b"Message-ID: <sm1@localhost>" in h, h
    assert b"Date: Mon, 30 Nov 2026 07:00:00 +0000" in h, h


@test
def null_sender_with_empty_and_angle_brackets():
    s = gate().start()
    ok(sendmail(s, ["-f", "", "bob@localhost"], "Subject: n1\n\nx\n"))
    ok(sendmail(s, ["-f", "<>", "alice@localhost"], "Subject: n2\n\nx\n"))
    for box in ("bob", "alice"):
        m = s.wait_mailbox(box, 1, 10)[0]
        assert m.startswith(b"Return-Path: <>\r\n"), (box, m[:60])


@test
def ignored_options_are_accepted():
    s = gate().start()
    r = ok(sendmail(s, ["-oem", "-odb", "-odi", "-bm", "-v", "-B",
                        "8BITMIME", "-N", "never", "-i", "--",
                        "bob@localhost"], MSG))
    m = s.wait_mailbox("bob", 1, 10)[0]
    assert b"Subject: via sendmail" in m
    # -B and -N took their arguments: no mailbox named after them.
    assert s.mailbox("8BITMIME") == [] and s.mailbox("never") == []


# ---- errors -------------------------------------------------------------------

@test
def unknown_local_user_exit_67():
    s = gate()
    s.write_file("map", "bob@localhost  bob\nalice@localhost alice\n")
    s.conf["address_map"] = "map"
    s.write_conf()
    r = sendmail(s, ["nosuchuser@localhost"], MSG)
    assert r.returncode == 67, (r.returncode, r.stderr)
    assert b"nosuchuser" in r.stderr, r.stderr
    assert queued_ids(s) == []


@test
def no_recipients_exit_64():
    s = gate()
    r = sendmail(s, [], MSG)
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert r.stderr.strip()
    assert queued_ids(s) == []


if __name__ == "__main__":
    main()
