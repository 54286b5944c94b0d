"""A full disk: new mail is refused with 452 4.3.1 rather than accepted
and lost (SPEC §3 "Never lose mail"). The spool lives on a small tmpfs
mounted by the test (root only; skipped otherwise)."""
import os
import subprocess

from harness import Server, main, message, test, wait_for

MIB = 1024 * 1024


def mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb,
                        "tmpfs", path], capture_output=True, text=True)
    return r.returncode == 0


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def skip(name, why):
    print("ok - test_disk_full: %s # SKIP %s" % (name, why), flush=True)


@test
def full_spool_refuses_with_452():
    if os.geteuid() != 0:
        return skip("full_spool_refuses_with_452", "not root")
    s = Server({"max_message_size": "64M"}, name="full")
    spool = s.path("spool")
    # 48 MB: 8 MB for the journal, 32 MB of reserve, 8 MB to fill.
    if not mount_tmpfs(spool, 48):
        return skip("full_spool_refuses_with_452", "cannot mount tmpfs")
    try:
        s.start()
        c = s.smtp()
        c.sendmail("alice@example.org", ["postmaster@localhost"],
                   message("fits"))
        c.quit()
        s.wait_mailbox("postmaster", 1)
        # Fill the spool's file system to below the reserve.
        with open(os.path.join(spool, "filler"), "wb") as f:
            f.write(b"x" * (12 * MIB))
        c = s.smtp()
        c.ehlo("client.example")
        code, text = c.mail("alice@example.org")
        assert code == 452 and text.startswith(b"4.3.1"), (code, text)
        c.rset()
        # A message bigger than what is left fails at the end of the
        # data with 452 4.3.1 too: refused, never acknowledged.
        os.remove(os.path.join(spool, "filler"))
        with open(os.path.join(spool, "filler"), "wb") as f:
            f.write(b"x" * (5 * MIB))
        code, _ = c.mail("alice@example.org")
        assert code == 250, code
        code, _ = c.rcpt("postmaster@localhost")
        assert code == 250, code
        # Two mailboxes: the message goes through the (full) spool; a
        # single local recipient is written straight into its mailbox.
        code, _ = c.rcpt("alice@localhost")
        assert code == 250, code
        big = message("too big for the disk",
                      body=("y" * 998 + "\r\n") * (37 * 1024))
        code, text = c.data(big)
        assert code == 452 and text.startswith(b"4.3.1"), (code, text[:80])
        c.quit()
        # Nothing half-written stays behind, the first message is intact.
        assert os.listdir(os.path.join(spool, "tmp")) == []
        assert os.listdir(os.path.join(spool, "queue")) == []
        assert len(s.mailbox("postmaster")) == 1
        assert "No space left on device" in s.log(), s.log()[-2000:]
        # Room again: mail flows again.
        os.remove(os.path.join(spool, "filler"))
        c = s.smtp()
        c.sendmail("alice@example.org", ["postmaster@localhost"],
                   message("after"))
        c.quit()
        s.wait_mailbox("postmaster", 2)
    finally:
        s.kill()
        umount(spool)


@test
def full_postoffice_refuses_direct_delivery_with_452():
    """A message for one local mailbox is written straight into it: a
    full postoffice refuses it at the end of the data, never loses it."""
    if os.geteuid() != 0:
        return skip("full_postoffice_refuses_direct_delivery_with_452",
                    "not root")
    s = Server({"max_message_size": "64M"}, name="fullpo")
    po = s.path("postoffice")
    if not mount_tmpfs(po, 8):
        return skip("full_postoffice_refuses_direct_delivery_with_452",
                    "cannot mount tmpfs")
    try:
        s.start()
        c = s.smtp()
        c.sendmail("alice@example.org", ["postmaster@localhost"],
                   message("fits"))
        big = message("too big for the postoffice",
                      body=("y" * 998 + "\r\n") * (10 * 1024))
        code, _ = c.mail("alice@example.org")
        assert code == 250, code
        code, _ = c.rcpt("postmaster@localhost")
        assert code == 250, code
        code, text = c.data(big)
        assert code == 452 and text.startswith(b"4.3.1"), (code, text[:80])
        c.quit()
        assert len(s.mailbox("postmaster")) == 1
        tmp = os.path.join(po, "postmaster", "tmp")
        assert os.listdir(tmp) == [], os.listdir(tmp)
    finally:
        s.kill()
        umount(po)


main()
