"""Integration tests: local delivery into Maildir (SPEC §2 address_map,
recipient_delimiter, local_domains; §3 "Local delivery", mailbox names
never escaping postoffice_dir).

The delivered file is: "Return-Path: <sender>", "Delivered-To: <rcpt>",
a "Received:" header added by the server, then the message exactly as
sent (dot-unstuffed), all with CRLF line ends.
"""
import os
import re
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, hermetic,  # noqa: E402
                     ID_RE, exp, greet, send_msg, settle, mailboxes)

HOST = "mx.example.test"


# ---- helpers (local to this file) ----------------------------------------

def start(conf=None, addrmap=None):
    s = Server(hermetic(conf), name="local")
    if addrmap is not None:
        s.write_file("map", addrmap)
        s.conf["address_map"] = "map"
        s.write_conf()
    return s.start()


def deliver(s, rcpts, subject, frm="alice@example.org", data=None):
    r = greet(s)
    data = data or message(subject, frm=frm)
    qid = send_msg(r, frm, rcpts, data)
    exp(r, "QUIT", 221)
    r.close()
    return qid, data.encode() if isinstance(data, str) else data


def split_delivered(data):
    """Returns (return_path, delivered_to, received_unfolded, rest)."""
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: "), data[:300]
    assert lines[1].startswith(b"Delivered-To: "), data[:300]
    assert lines[2].startswith(b"Received: "), data[:300]
    i = 3
    rec = [lines[2]]
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        rec.append(lines[i])
        i += 1
    received = b" ".join(x.strip() for x in rec)
    rest = b"\r\n".join(lines[i:])
    dt = lines[1][len(b"Delivered-To: "):]
    if dt.startswith(b"<") and dt.endswith(b">"):
        dt = dt[1:-1]
    return lines[0][len(b"Return-Path: "):], dt, received, rest


# ---- the delivered file ----------------------------------------------------

@test
def delivered_file_format_and_maildir():
    s = start()
    data = ("From: Alice <alice@example.org>\r\nTo: <bob@example.test>\r\n"
            "Subject: format\r\nMessage-ID: <fmt.1@example.org>\r\n\r\n"
            "first line\r\n.x dot line\r\n..\r\n\r\n8bit: \u00e9\r\n"
            "last line\r\n").encode()
    wire = data.replace(b"\r\n.", b"\r\n..")
    r = greet(s)
    exp(r, "MAIL FROM:<alice@example.org> BODY=8BITMIME", 250, "2.1.0")
    exp(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(wire + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    qid = ID_RE.match(t).group(1)
    exp(r, "QUIT", 221)
    got = settle(s, "bob", 1)
    rp, dt, rec, rest = split_delivered(got[0])
    assert rp == b"<alice@example.org>", rp
    assert dt == b"bob@example.test", dt
    assert rec.startswith(b"Received: from "), rec
    assert (b"by " + HOST.encode()) in rec, rec
    assert b"with ESMTP" in rec, rec
    assert qid.encode() in rec, (qid, rec)
    assert b"127.0.0.1" in rec, rec
    assert rest == data, "message changed in delivery:\n%r\n%r" % (rest, data)
    # Maildir layout and modes
    box = s.path("postoffice", "bob")
    for sub in ("tmp", "new", "cur"):
        assert os.path.isdir(os.path.join(box, sub)), sub
    assert os.listdir(os.path.join(box, "tmp")) == [], "tmp/ not empty"
    assert os.listdir(os.path.join(box, "cur")) == []
    names = os.listdir(os.path.join(box, "new"))
    assert len(names) == 1 and not names[0].startswith("."), names
    st = os.stat(os.path.join(box, "new", names[0]))
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


@test
def helo_gives_with_smtp_and_null_sender():
    s = start()
    r = greet(s, verb="HELO")
    data = message("helo", frm="mailer-daemon@example.org").encode()
    exp(r, "MAIL FROM:<>", 250, "2.1.0")
    exp(r, "RCPT TO:<carol@example.test>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(data + b".\r\n")
    qid = ID_RE.match(exp(r, None, 250, "2.0.0")).group(1)
    exp(r, "QUIT", 221)
    got = settle(s, "carol", 1)
    rp, dt, rec, rest = split_delivered(got[0])
    assert rp == b"<>", rp
    assert dt == b"carol@example.test", dt
    assert b"with SMTP" in rec and b"with ESMTP" not in rec, rec
    assert qid.encode() in rec, rec
    assert rest == data


@test
def dot_unstuffing_via_smtplib():
    s = start()
    body = "..x\r\n.\r\n...\r\n.y\r\nend\r\n"
    data = message("dots", body=body).encode()
    c = s.smtp()
    c.sendmail("alice@example.org", ["postmaster@localhost"], data)
    c.quit()
    got = settle(s, "postmaster", 1)
    assert got[0].endswith(data), got[0]
    # and a raw client doing the stuffing itself
    r = greet(s)
    wire = message("raw dots", body="....\r\n..x\r\n").encode()
    send_msg(r, "alice@example.org", ["postmaster@localhost"], None,
             stuffed=wire)
    exp(r, "QUIT", 221)
    got = settle(s, "postmaster", 2)
    raw = [m for m in got if b"Subject: raw dots" in m]
    assert len(raw) == 1 and raw[0].endswith(b"\r\n...\r\n.x\r\n"), raw


@test
def large_message_intact():
    s = start()
    lines = ["%06d %s" % (i, "abcdefghij" * 7) for i in range(20000)]
    data = message("large", body="\r\n".join(lines) + "\r\n").encode()
    c = s.smtp()
    c.sendmail("alice@example.org", ["bob@example.test"], data)
    c.quit()
    got = settle(s, "bob", 1, timeout=30)
    assert got[0].endswith(data), "large message (%d bytes) altered" % len(
        data)


@test
def one_message_three_mailboxes():
    s = start()
    r = greet(s)
    data = message("three").encode()
    rcpts = ["alice@example.test", "bob@example.test", "carol@localhost"]
    qid = send_msg(r, "sender@example.org", rcpts, data)
    exp(r, "QUIT", 221)
    for box, rc in zip(("alice", "bob", "carol"), rcpts):
        got = settle(s, box, 1)
        rp, dt, rec, rest = split_delivered(got[0])
        assert dt == rc.encode(), (box, dt)
        assert rp == b"<sender@example.org>"
        assert qid.encode() in rec
        assert rest == data
    assert mailboxes(s) == ["alice", "bob", "carol"], mailboxes(s)


@test
def mailbox_is_lowercased_local_part_and_delimiter():
    s = start()
    deliver(s, ["Bob.Smith@Example.Test"], "case")
    deliver(s, ["alice+tag@example.test"], "tagged")
    deliver(s, ["alice+@example.test"], "empty tag")
    deliver(s, ["postmaster"], "bare postmaster")
    deliver(s, ["PostMaster@LocalHost"], "postmaster case")
    b = settle(s, "bob.smith", 1)
    assert b"Subject: case" in b[0]
    _, dt, _, _ = split_delivered(b[0])
    assert dt.lower() == b"bob.smith@example.test", dt
    a = settle(s, "alice", 2)
    assert any(b"Subject: tagged" in m for m in a)
    p = settle(s, "postmaster", 2)
    assert any(b"Subject: bare postmaster" in m for m in p)
    assert mailboxes(s) == ["alice", "bob.smith", "postmaster"], mailboxes(s)


# ---- address map ------------------------------------------------------------

MAP = """# test map
alice   alice
bob     bob
sales   alice
team    alice, bob
info@example.test   bob
support@example.test   team@example.test
Folder  shared
"""


@test
def address_map_aliases_lists_full_keys():
    s = start(addrmap=MAP)
    r = greet(s)
    exp(r, "MAIL FROM:<x@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<nobody@example.test>", 550, "5.1.1")
    exp(r, "RCPT TO:<info@localhost>", 550, "5.1.1")     # key is per domain
    exp(r, "RCPT TO:<shared@example.test>", 550, "5.1.1")  # target, not key
    exp(r, "RSET", 250)
    r.close()
    deliver(s, ["sales@example.test"], "to sales")
    deliver(s, ["sales@localhost"], "to sales at localhost")
    deliver(s, ["team@example.test"], "to team")
    deliver(s, ["info@example.test"], "to info")
    deliver(s, ["alice+news@example.test"], "to alice tagged")
    deliver(s, ["SALES+x@EXAMPLE.TEST"], "to sales tagged")
    deliver(s, ["support@example.test"], "to support")
    deliver(s, ["folder@example.test"], "to folder")
    deliver(s, ["postmaster@localhost"], "to postmaster")
    alice = settle(s, "alice", 6)
    bob = settle(s, "bob", 3)
    subj = lambda ms: sorted(re.search(rb"Subject: ([^\r]*)", m).group(1)
                             for m in ms)
    assert subj(alice) == sorted([b"to sales", b"to sales at localhost",
                                  b"to team", b"to alice tagged",
                                  b"to sales tagged", b"to support"]), \
        subj(alice)
    assert subj(bob) == sorted([b"to team", b"to info", b"to support"]), \
        subj(bob)
    assert subj(settle(s, "shared", 1)) == [b"to folder"]
    assert subj(settle(s, "postmaster", 1)) == [b"to postmaster"]
    assert mailboxes(s) == ["alice", "bob", "postmaster", "shared"], \
        mailboxes(s)


@test
def address_map_catch_all():
    s = start(addrmap="@example.test  catchall\nsales  alice\n")
    deliver(s, ["random@example.test"], "random")
    deliver(s, ["sales@example.test"], "sales")
    deliver(s, ["postmaster@localhost"], "pm")
    r = greet(s)
    exp(r, "MAIL FROM:<x@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<random@localhost>", 550, "5.1.1")   # other domain
    exp(r, "QUIT", 221)
    c = settle(s, "catchall", 1)
    assert b"Subject: random" in c[0]
    _, dt, _, _ = split_delivered(c[0])
    assert dt == b"random@example.test", dt
    assert b"Subject: sales" in settle(s, "alice", 1)[0]
    assert b"Subject: pm" in settle(s, "postmaster", 1)[0]


@test
def address_map_with_smtplib_partial_refusal():
    s = start(addrmap=MAP)
    c = s.smtp()
    refused = c.sendmail("x@example.org", ["alice@example.test",
                                           "ghost@example.test"],
                         message("partial").encode())
    c.quit()
    assert list(refused) == ["ghost@example.test"], refused
    assert refused["ghost@example.test"][0] == 550
    assert refused["ghost@example.test"][1].startswith(b"5.1.1"), refused
    settle(s, "alice", 1)
    assert "ghost" not in mailboxes(s)


# ---- mailbox names never escape postoffice_dir ------------------------------

@test
def path_traversal_never_escapes():
    s = start()
    po = s.path("postoffice")
    # valid syntax, unsafe mailbox name: must be 550 5.1.1
    must_550 = ["a/b", "\"../../etc\"", "\"a/b\"", "\"/etc\"",
                "\"../x\"", "\"a\\/b\""]
    # a syntax error (501 5.1.3) or 550 5.1.1
    refuse = [".hidden", "..", "../../etc", "a/../../b", "a..b", ".",
              "\"a\\\x01b\"", "\"\x7f\"", "\"a\x1bb\""]
    # quoted forms: refused, or (if the quotes stay in the name) harmless
    maybe = ["\"..\"", "\".\"", "\".hidden\"", "\"q\\.y\""]
    # harmless names: accepted as they are, inside postoffice
    safe = ["%2e%2e", "x.y", "a-b_c=d"]

    def outside(lp):
        p = os.path.normpath(os.path.join(po, lp.strip("\"")))
        return None if p.startswith(po + os.sep) else p
    watch = {p for p in map(outside, must_550 + refuse + maybe) if p}
    watch |= {s.path(n) for n in ("etc", "b", "x", "a", "evil")}
    existed = {p for p in watch if os.path.lexists(p)}

    r = greet(s)
    exp(r, "MAIL FROM:<x@example.org>", 250, "2.1.0")
    for lp in must_550:
        exp(r, "RCPT TO:<%s@example.test>" % lp, 550, "5.1.1")
    exp(r, "RSET", 250)
    r.close()
    # whatever is accepted gets a message: delivery is where it matters
    # (sessions kept under the error limit)
    accepted = []
    for i, lp in enumerate(refuse + maybe):
        if i % 7 == 0:
            if i:
                exp(r, "QUIT", 221)
            r = greet(s)
            exp(r, "MAIL FROM:<x@example.org>", 250, "2.1.0")
        r.send("RCPT TO:<%s@example.test>\r\n" % lp)
        c, t = r.reply()
        if lp in maybe and c == 250:
            accepted.append(lp)
            continue
        ok = [(550, "5.1.1"), (501, "5.1.3")]
        if any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in lp):
            ok.append((500, "5.5.2"))    # control byte in a command line
        assert (c, t[:5]) in ok, "RCPT %r: %d %r" % (lp, c, t)
    for lp in safe:
        exp(r, "RCPT TO:<%s@example.test>" % lp, 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message("traversal").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    for lp in safe:
        settle(s, lp, 1)
    time.sleep(1.0)
    boxes = mailboxes(s)
    for b in boxes:
        assert b not in (".", "..") and "/" not in b and not \
            b.startswith("."), "unsafe mailbox %r" % b
    assert set(safe) <= set(boxes), boxes
    assert len(boxes) == len(safe) + len(accepted), (boxes, accepted)
    for p in watch - existed:
        assert not os.path.lexists(p), "created outside postoffice: %s" % p
    # nothing anywhere under the server dir except inside postoffice/ and
    # spool/ holds the message
    for root, dirs, files in os.walk(s.dir):
        rel = os.path.relpath(root, s.dir).split(os.sep)[0]
        if rel in ("postoffice", "spool"):
            continue
        for fn in files:
            if fn == "server.log":
                continue
            with open(os.path.join(root, fn), "rb") as f:
                assert b"Subject: traversal" not in f.read(), \
                    os.path.join(root, fn)


@test
def path_traversal_through_address_map():
    """A map cannot be used to leave postoffice either: targets are
    checked at load time (the server refuses to start, or ignores the
    bad line), and a recipient never reaches an unsafe mailbox."""
    s = Server(hermetic(), name="local")
    s.write_file("map", "ok  okbox\nevil  ../evil\n")
    s.conf["address_map"] = "map"
    s.write_conf()
    s.start(wait=False)
    try:
        s.wait_listening(timeout=5)
        up = True
    except AssertionError:
        up = False
    if up:
        r = greet(s)
        exp(r, "MAIL FROM:<x@example.org>", 250, "2.1.0")
        r.send("RCPT TO:<evil@example.test>\r\n")
        c, t = r.reply()
        assert c >= 400, "evil map target accepted: %d %r" % (c, t)
        exp(r, "QUIT", 221)
    else:
        assert s.proc.poll() is not None
        assert "map" in s.log(), s.log()
    assert not os.path.exists(s.path("evil")), "escaped postoffice"


@test
def postmaster_always_accepted():
    s = start(addrmap="alice  alice\n")
    r = greet(s)
    exp(r, "MAIL FROM:<x@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "RCPT TO:<postmaster>", 250, "2.1.5")
    exp(r, "RCPT TO:<Postmaster>", 250, "2.1.5")
    exp(r, "RCPT TO:<someone>", 501)    # only postmaster may lack a domain
    exp(r, "DATA", 354)
    r.send(message("pm").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    # one copy (duplicate recipients resolving to one mailbox) or three
    s.wait_mailbox("postmaster", 1, 15)
    time.sleep(1.0)
    got = s.mailbox("postmaster")
    assert 1 <= len(got) <= 3, got
    assert mailboxes(s) == ["postmaster"], mailboxes(s)


if __name__ == "__main__":
    main()
