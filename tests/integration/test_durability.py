"""Integration tests: never lose mail (SPEC §3 "Never lose mail", §4 spool
recovery). kill -9 of the server under concurrent load, right after an
acknowledgement and in the middle of DATA; after a restart on the same
configuration every acknowledged message is delivered exactly once, no
half-written message is delivered, and the spool is recovered (no message left
in spool/tmp, spool/queue drained).
"""
import os
import random
import re
import signal
import smtplib
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, wait_for,  # noqa: E402
                     hermetic, ID_RE)

TOKEN_RE = re.compile(rb"Subject: dur-([0-9a-z-]+)\r\n")
FILLER = b"".join(b"line %03d of the durable message body, padding padding\r\n"
                  % i for i in range(60))


# ---- helpers (local to this file) ----------------------------------------

def make_message(tok):
    return (b"From: <load@example.org>\r\nTo: <postmaster@localhost>\r\n"
            b"Subject: dur-%s\r\nMessage-ID: <%s@example.org>\r\n\r\n"
            % (tok.encode(), tok.encode()) + FILLER +
            b"END-%s\r\n" % tok.encode())


def delivered(s, box="postmaster"):
    """{token: [file bytes, ...]} over new/ and cur/ of box, plus files
    without a token."""
    out, strays = {}, []
    for sub in ("new", "cur"):
        d = s.path("postoffice", box, sub)
        if not os.path.isdir(d):
            continue
        for fn in os.listdir(d):
            try:
                with open(os.path.join(d, fn), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            m = TOKEN_RE.search(data)
            if m:
                out.setdefault(m.group(1).decode(), []).append(data)
            else:
                strays.append(data)
    return out, strays


def files_under(path):
    out = []
    for root, _, files in os.walk(path):
        out.extend(os.path.join(root, f) for f in files)
    return out


def kept_for_reuse(path):
    """tmp/r.N: a finished queue file the server keeps to write the next
    queued message into (doc/QUEUE.md), not a message."""
    return os.path.basename(os.path.dirname(path)) == "tmp" and \
        os.path.basename(path).startswith("r.")


def check_spool_recovered(s, timeout=30):
    """spool/tmp without messages and spool/queue drained (when they
    exist)."""
    q = s.path("spool", "queue")
    wait_for(lambda: not files_under(q), timeout,
             "spool/queue to drain (left: %r)" % files_under(q)[:5])
    for sub in ("tmp", "state"):
        d = s.path("spool", sub)

        def left():
            return [f for f in files_under(d) if not kept_for_reuse(f)]
        wait_for(lambda: not left(), 10,
                 "spool/%s to be empty (left: %r)" % (sub, left()[:5]))
    assert not files_under(s.path("spool", "quarantine")), \
        files_under(s.path("spool", "quarantine"))


def check_complete(tok, files):
    want = make_message(tok)
    for data in files:
        assert data.endswith(want), \
            "delivered copy of %s is not complete/intact:\n%r" % (
                tok, data[-300:])
        assert data.startswith(b"Return-Path: <load@example.org>\r\n"), \
            data[:200]


class Load:
    """N threads sending the given tokens with smtplib (one session per
    thread, reconnecting after each 5 messages); records what was
    attempted and what got 250."""

    def __init__(self, port, tokens, nthreads=5):
        self.port = port
        self.lock = threading.Lock()
        self.todo = list(tokens)
        self.attempted = set()
        self.acked = set()
        self.errors = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(nthreads)]

    def next(self):
        with self.lock:
            if self.stop.is_set() or not self.todo:
                return None
            tok = self.todo.pop(0)
            self.attempted.add(tok)
            return tok

    def run(self):
        c = None
        n = 0
        deadline = time.time() + 120
        try:
            while time.time() < deadline:
                tok = self.next()
                if tok is None:
                    break
                if c is None or n % 5 == 0:
                    if c is not None:
                        c.quit()
                    c = smtplib.SMTP("127.0.0.1", self.port, timeout=15)
                    c.ehlo("load.example")
                c.sendmail("load@example.org", ["postmaster@localhost"],
                           make_message(tok))
                n += 1
                with self.lock:
                    self.acked.add(tok)
        except (OSError, smtplib.SMTPException) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout=60):
        end = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.time()))
        assert not any(t.is_alive() for t in self.threads), \
            "load threads still running"

    def count(self):
        with self.lock:
            return len(self.acked)


def load_transaction(s):
    """A Raw client past the greeting, EHLO, MAIL FROM:<load@example.org>
    and RCPT TO:<postmaster@localhost> (each 250)."""
    r = s.raw()
    r.expect(220)
    r.expect(250, "EHLO client.example")
    r.expect(250, "MAIL FROM:<load@example.org>")
    r.expect(250, "RCPT TO:<postmaster@localhost>")
    return r


def send_one(s, tok):
    """One message by DATA on a fresh session; the final reply (code,
    text), the session left open."""
    r = load_transaction(s)
    r.expect(354, "DATA")
    r.send(make_message(tok) + b".\r\n")
    return r, r.reply()


def restart(s):
    if getattr(s, "logf", None):
        s.logf.close()
    s.start()


# ---- tests -----------------------------------------------------------------

@test
def kill9_under_concurrent_load():
    s = Server(hermetic(), name="dur").start()
    tokens = ["t%03d-%06x" % (i, random.getrandbits(24)) for i in range(300)]
    load = Load(s.port, tokens).start()
    kill_after = random.randint(90, 110)
    end = time.time() + 90
    while load.count() < kill_after and time.time() < end and \
            any(t.is_alive() for t in load.threads):
        time.sleep(0.001)
    time.sleep(random.random() * 0.01)
    s.kill()
    load.stop.set()
    load.join()
    acked1 = set(load.acked)
    attempted1 = set(load.attempted)
    pending = len(acked1 - set(delivered(s)[0]))
    assert len(acked1) >= kill_after, \
        "only %d acknowledged before the kill; errors: %r" % (
            len(acked1), load.errors[:5])
    assert len(attempted1) < len(tokens), "kill came after all the traffic"

    restart(s)
    # the rest of the traffic arrives after the restart
    rest = [t for t in tokens if t not in attempted1]
    load2 = Load(s.port, rest).start()
    load2.join(120)
    assert load2.acked == set(rest), "after restart: %d of %d acked; %r" % (
        len(load2.acked), len(rest), load2.errors[:5])
    acked = acked1 | load2.acked

    def all_there():
        got, _ = delivered(s)
        return acked <= set(got)
    try:
        wait_for(all_there, 90, "every acknowledged message delivered")
    finally:
        got, _ = delivered(s)
        missing = sorted(acked - set(got))
        if missing:
            sys.stderr.write("missing %d acknowledged: %r\n"
                             % (len(missing), missing[:20]))
    check_spool_recovered(s)
    time.sleep(1.5)
    got, strays = delivered(s)
    assert not strays, "delivered files without a token: %r" % [
        x[:200] for x in strays]
    unknown = set(got) - set(tokens)
    assert not unknown, "unknown tokens delivered: %r" % unknown
    dups = {t: len(v) for t, v in got.items() if len(v) != 1}
    assert not dups, "delivered more than once: %r" % dups
    lost = acked - set(got)
    assert not lost, "acknowledged but lost: %r" % sorted(lost)
    # in flight at the kill (attempted, no 250): at most once, and whole
    for tok, files in got.items():
        check_complete(tok, files)
    assert set(got) <= acked | (attempted1 - acked1)
    sys.stderr.write("kill -9 after %d acks (%d of them not yet delivered "
                     "then); %d in flight, %d of them delivered; %d total "
                     "delivered\n"
                     % (len(acked1), pending, len(attempted1 - acked1),
                        len((attempted1 - acked1) & set(got)), len(got)))


@test
def kill9_right_after_ack():
    s = Server(hermetic(), name="dur").start()
    ids = []
    for i in range(3):
        tok = "single%d-%06x" % (i, random.getrandbits(24))
        r, (c, t) = send_one(s, tok)
        s.kill()                     # at once, before anything else
        assert c == 250 and ID_RE.match(t), (c, t)
        ids.append(ID_RE.match(t).group(1))
        r.close()
        restart(s)
        wait_for(lambda: tok in delivered(s)[0], 30,
                 "message %s delivered after restart" % tok)
    check_spool_recovered(s)
    # queue ids stay unique and in time order across restarts
    assert len(set(ids)) == 3 and ids == sorted(ids), ids
    time.sleep(1.5)
    got, strays = delivered(s)
    assert not strays, strays
    assert len(got) == 3, sorted(got)
    for tok, files in got.items():
        assert len(files) == 1, "%s delivered %d times" % (tok, len(files))
        check_complete(tok, files)


@test
def kill9_during_multi_recipient_delivery():
    """One message to three mailboxes, kill -9 at small random delays
    after the 250 (so delivery is cut at different points): after the
    restart each mailbox has it exactly once."""
    s = Server(hermetic(), name="dur").start()
    boxes = ("alice", "bob", "carol")
    toks = []
    for i in range(6):
        tok = "multi%d-%06x" % (i, random.getrandbits(24))
        toks.append(tok)
        c = smtplib.SMTP("127.0.0.1", s.port, timeout=15)
        c.sendmail("load@example.org", ["%s@example.test" % b for b in boxes],
                   make_message(tok))
        time.sleep(random.random() * 0.03 * i)
        s.kill()
        c.close()
        restart(s)
        for b in boxes:
            wait_for(lambda: tok in delivered(s, b)[0], 30,
                     "%s delivered to %s after restart" % (tok, b))
    check_spool_recovered(s)
    time.sleep(1.5)
    for b in boxes:
        got, strays = delivered(s, b)
        assert not strays, strays
        assert sorted(got) == sorted(toks), (b, sorted(got))
        dups = {t: len(v) for t, v in got.items() if len(v) != 1}
        assert not dups, "%s: delivered more than once: %r" % (b, dups)
        for tok, files in got.items():
            check_complete(tok, files)


@test
def kill9_with_queued_backlog():
    """Acknowledged mail still in the queue (its mailbox cannot be
    created: a file is in the way, so delivery is deferred) survives
    kill -9 and is delivered once after the restart, when the mailbox can
    be made."""
    s = Server(hermetic({"retry_min": "1s", "retry_max": "2s"}), name="dur")
    os.makedirs(s.path("postoffice"))
    blocker = s.path("postoffice", "postmaster")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    s.start()
    toks = ["backlog%02d-%06x" % (i, random.getrandbits(24))
            for i in range(30)]
    load = Load(s.port, toks, nthreads=3).start()
    load.join(120)
    assert load.acked == set(toks), (len(load.acked), load.errors[:5])
    wait_for(lambda: "deferred" in s.log(), 15,
             "a deferred delivery in the log")
    q = s.path("spool", "queue")
    assert len(files_under(q)) >= 1, "nothing queued: %r" % files_under(q)
    s.kill()
    os.unlink(blocker)
    restart(s)
    wait_for(lambda: set(toks) <= set(delivered(s)[0]), 60,
             "the backlog delivered after restart")
    check_spool_recovered(s)
    time.sleep(1.5)
    got, strays = delivered(s)
    assert not strays, strays
    assert sorted(got) == sorted(toks), sorted(set(got) ^ set(toks))
    dups = {t: len(v) for t, v in got.items() if len(v) != 1}
    assert not dups, "delivered more than once: %r" % dups
    for tok, files in got.items():
        check_complete(tok, files)


@test
def kill9_mid_data_delivers_nothing():
    s = Server(hermetic(), name="dur").start()
    r = load_transaction(s)
    r.expect(354, "DATA")
    whole = make_message("half-000000")
    r.send(whole[:len(whole) // 2])
    time.sleep(0.3)
    s.kill()
    r.close()
    # a BDAT transaction with its first chunk accepted, killed before LAST
    restart(s)
    r = load_transaction(s)
    part = whole[:1000]
    r.send(b"BDAT %d\r\n" % len(part) + part)
    r.expect(250)
    s.kill()
    r.close()
    restart(s)
    # the server works and the next message is the only one delivered
    tok = "after-%06x" % random.getrandbits(24)
    c = s.smtp()
    c.sendmail("load@example.org", ["postmaster@localhost"],
               make_message(tok))
    c.quit()
    wait_for(lambda: tok in delivered(s)[0], 30, "message after restart")
    check_spool_recovered(s)
    time.sleep(1.5)
    got, strays = delivered(s)
    assert not strays, strays
    assert list(got) == [tok], sorted(got)
    check_complete(tok, got[tok])


@test
def sigterm_keeps_acknowledged_mail():
    """SIGTERM right after an acknowledgement: exit 0, message delivered
    (before the exit or after the next start), exactly once."""
    s = Server(hermetic(), name="dur").start()
    tok = "term-%06x" % random.getrandbits(24)
    c = s.smtp()
    c.sendmail("load@example.org", ["postmaster@localhost"],
               make_message(tok))
    c.quit()
    rc = s.stop()
    assert rc == 0, "exit status %s after SIGTERM" % rc
    restart(s)
    wait_for(lambda: tok in delivered(s)[0], 30, "message after SIGTERM")
    check_spool_recovered(s)
    time.sleep(1.5)
    got, _ = delivered(s)
    assert list(got) == [tok] and len(got[tok]) == 1, got
    check_complete(tok, got[tok])


def journal_pending(path):
    """True while the journal's oldest record is not yet checkpointed
    (doc/QUEUE.md "The journal": the newer valid header slot names the
    tail; a record there with the tail's sequence is still needed)."""
    with open(path, "rb") as f:
        slots = [f.read(4096), f.read(4096)]
        best = None
        for i, h in enumerate(slots):
            if h[:8] != b"SGJHDR01":
                continue
            tail_off, tail_seq, gen = struct.unpack_from("<QQQ", h, 8)
            if gen % 2 == i and (best is None or gen > best[2]):
                best = (tail_off, tail_seq, gen)
        assert best, "no header in %s" % path
        f.seek(best[0])
        rec = f.read(16)
    return rec[:8] == b"SGJREC01" and \
        struct.unpack_from("<Q", rec, 8)[0] == best[1]


@test
def journal_puts_back_what_a_power_cut_lost():
    """A direct delivery is acknowledged once its journal record is
    written; its Maildir file is synced by the next checkpoint. Stopped
    before that checkpoint, the file deleted (what a power cut can do to
    a file not yet written back), then kill -9: the restart puts the file
    back from the journal, whole and once, and says so in the log."""
    s = Server(hermetic(), name="dur").start()
    journal = s.path("spool", "journal")
    for attempt in range(10):
        tok = "jnl%d-%06x" % (attempt, random.getrandbits(24))
        r, (c, t) = send_one(s, tok)
        os.kill(s.proc.pid, signal.SIGSTOP)
        assert c == 250 and ID_RE.match(t), (c, t)
        if journal_pending(journal):
            break
        # the checkpoint (every 100 ms) was quicker: again
        os.kill(s.proc.pid, signal.SIGCONT)
        r.close()
    else:
        raise AssertionError("every record was checkpointed before SIGSTOP")
    got, _ = delivered(s)
    assert tok in got, "delivered at the commit point: %r" % sorted(got)
    new = s.path("postoffice", "postmaster", "new")
    lost = [f for f in os.listdir(new)
            if tok.encode() in open(os.path.join(new, f), "rb").read()]
    assert len(lost) == 1, lost
    os.remove(os.path.join(new, lost[0]))
    s.kill()
    restart(s)
    wait_for(lambda: tok in delivered(s)[0], 30,
             "message %s put back after the restart" % tok)
    assert os.listdir(new).count(lost[0]) == 1
    assert "journal: restored %s/%s" % (new, lost[0]) in s.log(), \
        s.log()[-2000:]
    check_spool_recovered(s)
    got, strays = delivered(s)
    assert not strays, strays
    for t, files in got.items():
        assert len(files) == 1, "%s delivered %d times" % (t, len(files))
        check_complete(t, files)


if __name__ == "__main__":
    main()
