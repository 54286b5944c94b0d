"""A queue file that cannot be read or parsed is moved aside to
spool/quarantine/ with its reason, and never blocks the rest of the queue
(SPEC §3)."""
import os

from harness import Server, main, test, wait_for


@test
def unparsable_queue_files_are_quarantined():
    s = Server(name="quar")
    # A good message, queued with no server running...
    r = s.cmd("sendmail", "postmaster@localhost",
              input="Subject: good\n\nstill delivered\n")
    assert r.returncode == 0, r.stderr
    queue = s.path("spool", "queue")
    good = os.listdir(queue)
    assert len(good) == 1, good
    # ...queued around broken ones: garbage, a truncated record, a
    # header whose data length does not match, a name that is no id.
    bad = {
        "00000000000000001": b"this is not a queue file\n",
        "00000000000000002": b"SMTPGATE-QUEUE 1\nsender a@b.example\n",
        "00000000000000003": (b"SMTPGATE-QUEUE 1\nsender a@b.example\n"
                              b"rcpt local postmaster postmaster@localhost"
                              b" - -\ndata 00000000000000000999\nshort\n"),
        "notanid": b"junk",
    }
    for name, data in bad.items():
        with open(os.path.join(queue, name), "wb") as f:
            f.write(data)
    s.start()
    s.wait_mailbox("postmaster", 1)
    assert b"still delivered" in s.mailbox("postmaster")[0]
    qdir = s.path("spool", "quarantine")
    wait_for(lambda: all(os.path.exists(os.path.join(qdir, n))
                         for n in bad), 10, "quarantined files")
    for name in bad:
        with open(os.path.join(qdir, name + ".reason")) as f:
            reason = f.read()
        assert reason.strip(), name
    assert "00000000000000003" in s.log() and "quarantine" in s.log()
    wait_for(lambda: os.listdir(queue) == [], 10, "an empty queue")
    # The queue keeps working.
    c = s.smtp()
    c.sendmail("a@example.org", ["postmaster@localhost"],
               "Subject: later\r\n\r\nok\r\n")
    c.quit()
    s.wait_mailbox("postmaster", 2)


main()
