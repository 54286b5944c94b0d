#!/usr/bin/python3
"""Signals (SPEC §3 "Never lose mail", §4): SIGTERM closes the listeners,
answers idle sessions with 421, lets a transaction in progress finish and
exits 0 with the queue intact; SIGINT does the same; SIGHUP reloads the
configuration and the address map without dropping a session, and a broken
configuration on reload is logged with FILE:LINE and the old one kept.
"""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, main, message, test, wait_for,  # noqa: E402
                     wait_exit)


def ehlo(r, name="client.example.org"):
    r.expect(220)
    r.expect(250, "EHLO %s" % name)


def send_data(r, rcpt, subject):
    r.expect(354, "DATA")
    r.send(message(subject=subject, to=rcpt) + ".\r\n")
    text = r.expect(250)
    assert "queued as" in text, text
    return text


def transaction(r, rcpt, subject="test"):
    r.expect(250, "MAIL FROM:<alice@example.org>")
    r.expect(250, "RCPT TO:<%s>" % rcpt)
    return send_data(r, rcpt, subject)


def refused(port):
    """True when nothing accepts connections on port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return False
    except OSError:
        return True


def count(text, word):
    return sum(1 for ln in text.splitlines() if word in ln.lower())


def sigterm_idle(sig):
    s = Server(name="termidle")
    s.start()
    r = s.raw()
    ehlo(r)
    r2 = s.raw()        # one that has not even said EHLO
    r2.expect(220)
    t0 = time.time()
    s.signal(sig)
    for c in (r, r2):
        code, text = c.reply()
        assert code == 421, "expected 421, got %d %s" % (code, text)
        assert "4.3.2" in text and "mx.example.test" in text, text
        assert c.closed(5), "connection left open after 421"
        c.close()
    rc = wait_exit(s, 5)
    assert rc == 0, "exit status %s:\n%s" % (rc, s.log())
    assert time.time() - t0 < 5
    assert refused(s.port)


@test
def sigterm_idle_session_gets_421():
    sigterm_idle(signal.SIGTERM)


@test
def sigint_idle_session_gets_421():
    sigterm_idle(signal.SIGINT)


@test
def sigterm_during_transaction_finishes():
    s = Server(name="termtx")
    s.start()
    r = s.raw()
    ehlo(r)
    r.expect(250, "MAIL FROM:<alice@example.org>")
    r.expect(250, "RCPT TO:<postmaster@localhost>")
    idle = s.raw()
    ehlo(idle)
    s.signal(signal.SIGTERM)
    # Stop accepting: the listener goes away at once...
    wait_for(lambda: refused(s.port), 3, "the listener to close")
    # ...the idle session is told, the transaction goes on.
    code, text = idle.reply()
    assert code == 421, "idle session: %d %s" % (code, text)
    idle.close()
    time.sleep(0.5)
    assert s.proc.poll() is None, "exited with a transaction open:\n" + \
        s.log()
    send_data(r, "postmaster@localhost", "finished during shutdown")
    # After the transaction the session may be told 421 or may QUIT.
    try:
        r.send("QUIT\r\n")
        code, _ = r.reply()
        assert code in (221, 421), code
    except (OSError, EOFError):
        pass
    r.close()
    rc = wait_exit(s, 12)
    assert rc == 0, "exit status %s:\n%s" % (rc, s.log())
    # Delivered before the exit, or delivered after a restart: once.
    if not s.mailbox("postmaster"):
        s.start()
    s.wait_mailbox("postmaster", 1)
    time.sleep(0.5)
    box = s.mailbox("postmaster")
    assert len(box) == 1, "%d copies delivered" % len(box)
    assert b"finished during shutdown" in box[0]
    assert s.stop() in (0, None), s.log()


@test
def sigterm_grace_period_ends_stuck_session():
    # A client that stops talking in the middle of a transaction does not
    # keep the server from exiting for longer than the grace period.
    s = Server(name="termstuck")
    s.start()
    r = s.raw()
    ehlo(r)
    r.expect(250, "MAIL FROM:<alice@example.org>")
    r.expect(250, "RCPT TO:<postmaster@localhost>")
    r.expect(354, "DATA")
    r.send("Subject: never finished\r\n\r\nhalf")
    t0 = time.time()
    s.signal(signal.SIGTERM)
    rc = wait_exit(s, 20)
    took = time.time() - t0
    assert rc == 0, "exit status %s:\n%s" % (rc, s.log())
    assert took < 16, "took %.1fs to exit" % took
    r.close()
    assert not s.mailbox("postmaster")
    # Nothing half-received is delivered after a restart either.
    s.start()
    time.sleep(1)
    assert not s.mailbox("postmaster"), "half a message was delivered"
    assert s.stop() == 0, s.log()


def reload_and_wait(s, before):
    s.signal(signal.SIGHUP)
    wait_for(lambda: count(s.log(), "reload") > before, 5,
             "a log line about the reload")


@test
def sighup_reloads_address_map_sessions_go_on():
    s = Server({"address_map": "aliases"}, name="hup")
    s.write_file("aliases", "alias1@localhost  box1\n")
    s.start()
    old = s.raw()
    ehlo(old)
    old.expect(250, "MAIL FROM:<alice@example.org>")
    old.expect(250, "RCPT TO:<alias1@localhost>")
    # Not mapped yet.
    probe = s.raw()
    ehlo(probe)
    probe.expect(250, "MAIL FROM:<alice@example.org>")
    probe.expect(550, "RCPT TO:<alias2@localhost>")
    probe.expect(221, "QUIT")
    probe.close()

    s.write_file("aliases", "alias1@localhost  box1\n"
                 "alias2@localhost  box2\n")
    before = count(s.log(), "reload")
    reload_and_wait(s, before)
    assert s.proc.poll() is None, s.log()

    # The session opened before the reload is not dropped and goes on.
    send_data(old, "alias1@localhost", "old session, first message")
    transaction(old, "alias1@localhost", "old session, second message")
    old.expect(221, "QUIT")
    old.close()
    s.wait_mailbox("box1", 2)

    # A new session sees the new alias.
    new = s.raw()
    ehlo(new)
    transaction(new, "alias2@localhost", "new alias")
    new.expect(221, "QUIT")
    new.close()
    s.wait_mailbox("box2", 1)
    assert s.stop() == 0, s.log()


@test
def sighup_reloads_config():
    # A config change (hostname) shows in sessions opened after SIGHUP.
    s = Server(name="hupconf")
    s.start()
    old = s.raw()
    text = old.expect(220)
    assert "mx.example.test" in text, text
    s.conf["hostname"] = "mx2.example.test"
    s.write_conf()
    reload_and_wait(s, count(s.log(), "reload"))
    new = s.raw()
    text = new.expect(220)
    assert "mx2.example.test" in text, "greeting after reload: %s" % text
    new.expect(221, "QUIT")
    new.close()
    # The old session is still there.
    old.expect(250, "EHLO client.example.org")
    transaction(old, "postmaster@localhost", "old session after reload")
    old.expect(221, "QUIT")
    old.close()
    s.wait_mailbox("postmaster", 1)
    assert s.stop() == 0, s.log()


@test
def sighup_names_keys_that_need_a_restart():
    # log = syslog cannot take over from stderr in a running server (the
    # worker threads log too): the reload says so and logging goes on.
    s = Server(name="hupkeys")
    s.start()
    s.conf["log"] = "syslog"
    s.write_conf()
    reload_and_wait(s, count(s.log(), "reload"))
    s.wait_log("reload: changes to listen, submission_listen, spool_dir, "
               "dns_servers, user or log take effect at the next restart",
               timeout=5)
    before = count(s.log(), "disconnect from")
    r = s.raw()
    r.expect(220)
    r.expect(221, "QUIT")
    r.close()
    wait_for(lambda: count(s.log(), "disconnect from") > before, 5,
             "the session's lines on stderr after the reload")
    assert s.stop() == 0, s.log()


@test
def sighup_broken_config_keeps_old():
    s = Server({"address_map": "aliases"}, name="hupbad")
    s.write_file("aliases", "alias1@localhost  box1\n")
    s.start()
    old = s.raw()
    ehlo(old)
    good = open(s.conf_path).read()
    nlines = good.count("\n")
    with open(s.conf_path, "a") as f:
        f.write("no_such_key = 1\n")
    # The map changes too, but the reload fails as a whole.
    s.write_file("aliases", "alias1@localhost  box1\n"
                 "alias2@localhost  box2\n")
    bad_line = nlines + 1
    s.signal(signal.SIGHUP)
    where = "smtpgate.conf:%d" % bad_line
    s.wait_log(where, timeout=5)
    line = [ln for ln in s.log().splitlines() if where in ln][-1]
    assert "no_such_key" in line, "error does not name the key: %r" % line
    time.sleep(0.3)
    assert s.proc.poll() is None, "exited on a bad reload:\n" + s.log()

    # Still serving, with the old configuration, old session and new ones.
    transaction(old, "alias1@localhost", "old session after bad reload")
    old.expect(221, "QUIT")
    old.close()
    new = s.raw()
    ehlo(new)
    new.expect(250, "MAIL FROM:<alice@example.org>")
    new.expect(550, "RCPT TO:<alias2@localhost>")
    new.expect(250, "RCPT TO:<alias1@localhost>")
    send_data(new, "alias1@localhost", "new session after bad reload")
    new.expect(221, "QUIT")
    new.close()
    s.wait_mailbox("box1", 2)

    # A broken address map alone is refused as well, with FILE:LINE.
    with open(s.conf_path, "w") as f:
        f.write(good)
    s.write_file("aliases", "alias1@localhost  box1\n"
                 "alias3@localhost  ../escape\n")
    s.signal(signal.SIGHUP)
    s.wait_log("aliases:2", timeout=5)
    time.sleep(0.3)
    assert s.proc.poll() is None, s.log()
    new = s.raw()
    ehlo(new)
    new.expect(250, "MAIL FROM:<alice@example.org>")
    new.expect(550, "RCPT TO:<alias3@localhost>")
    new.expect(250, "RCPT TO:<alias1@localhost>")
    new.expect(221, "QUIT")
    new.close()

    # Fixed: the next reload works.
    s.write_file("aliases", "alias1@localhost  box1\n"
                 "alias2@localhost  box2\n")
    reload_and_wait(s, count(s.log(), "reload"))
    new = s.raw()
    ehlo(new)
    transaction(new, "alias2@localhost", "after the fix")
    new.expect(221, "QUIT")
    new.close()
    s.wait_mailbox("box2", 1)
    assert s.stop() == 0, s.log()


if __name__ == "__main__":
    main()
