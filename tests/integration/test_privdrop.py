"""Integration tests: privilege drop (SPEC §2 `user`: when started as root,
drop to this user after binding).

Only as root (otherwise every test reports "# SKIP not root"). The server
started with `user = smtpgate` runs with all four Uid and Gid fields of
smtpgate, no supplementary root group and no capabilities, still listens
(bound before the drop), delivers mail, and leaves spool and postoffice
files owned by smtpgate, files 0600 and directories 0700, nothing readable
by others. An unknown user is a configuration error (exit 78, named).
`smtpgate sendmail` run as root hands its spool file to the spool's owner
so that the server (as smtpgate) delivers it.
"""
import json
import os
import pwd
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, wait_for,  # noqa: E402
                     free_port, exp)

USER = "smtpgate"
IS_ROOT = os.geteuid() == 0


# ---- helpers (local to this file) ----------------------------------------

def ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True, timeout=30)
        return pwd.getpwnam(USER)


def server(conf=None, start=True):
    c = {"user": USER,
         "relay_host": "[127.0.0.1]:%d" % free_port(),
         "dns_servers": "127.0.0.1:%d" % free_port()}
    c.update(conf or {})
    s = Server(c, name="priv")
    # the test directory (mkdtemp: 0700 root) must be traversable by the
    # unprivileged user; the server cannot fix its parents itself
    os.chmod(s.dir, 0o711)
    if start:
        s.start()
    return s


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            out[k] = v.split()
    return out


def walk_modes(root):
    """Every path under root (root included) with its lstat."""
    out = [(root, os.lstat(root))]
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out.append((p, os.lstat(p)))
    return out


def check_tree(root, pw, problems):
    for p, st in walk_modes(root):
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != pw.pw_uid or st.st_gid != pw.pw_gid:
            problems.append("%s owned by %d:%d, not %s (%d:%d)"
                            % (p, st.st_uid, st.st_gid, USER, pw.pw_uid,
                               pw.pw_gid))
        if mode & 0o007:
            problems.append("%s has mode %o: accessible by others"
                            % (p, mode))
        if stat.S_ISDIR(st.st_mode) and mode != 0o700:
            problems.append("directory %s has mode %o, not 700" % (p, mode))
        if stat.S_ISREG(st.st_mode) and mode != 0o600:
            problems.append("file %s has mode %o, not 600" % (p, mode))


def skippable(fn):
    """Registers fn, or a stand-in reported as skipped when not root."""
    if IS_ROOT:
        return test(fn)

    def skipped():
        print("# %s: needs root" % fn.__name__)
    skipped.__name__ = "%s # SKIP not root" % fn.__name__
    test(skipped)
    return fn


# ---- tests ----------------------------------------------------------------

@skippable
def ids_dropped():
    pw = ensure_user()
    s = server()
    st = status(s.proc.pid)
    uids = [int(x) for x in st["Uid"]]
    gids = [int(x) for x in st["Gid"]]
    assert uids == [pw.pw_uid] * 4, "Uid %s, want %d x4" % (uids, pw.pw_uid)
    assert gids == [pw.pw_gid] * 4, "Gid %s, want %d x4" % (gids, pw.pw_gid)
    groups = [int(x) for x in st.get("Groups", [])]
    assert 0 not in groups, "still in group root: %s" % groups
    assert int(st["CapEff"][0], 16) == 0, "capabilities left: %s" % st["CapEff"]
    assert int(st["CapPrm"][0], 16) == 0, "capabilities left: %s" % st["CapPrm"]
    # listening still works (bound before the drop)
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    r.close()
    r = s.raw(s.sub_port)
    exp(r, None, 220)
    r.close()


@skippable
def delivery_and_file_ownership():
    pw = ensure_user()
    s = server()
    c = s.smtp()
    # one local message, one held back for a remote destination (deferred
    # to a closed loopback port) so that the spool keeps files
    c.sendmail("alice@example.org", ["postmaster@localhost"],
               message(subject="as smtpgate"))
    c.sendmail("alice@example.org", ["user@remote.example"],
               message(subject="stays queued", to="user@remote.example"))
    c.quit()
    s.wait_mailbox("postmaster", 1)
    wait_for(lambda: "status=deferred" in s.log(), 15, "remote deferred")
    time.sleep(0.5)
    problems = []
    d = s.path("postoffice", "postmaster", "new")
    files = os.listdir(d)
    assert len(files) == 1, files
    st = os.stat(os.path.join(d, files[0]))
    assert st.st_uid == pw.pw_uid, "delivered file owned by %d" % st.st_uid
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    check_tree(s.path("postoffice"), pw, problems)
    check_tree(s.path("spool"), pw, problems)
    n_spool_files = sum(1 for p, st in walk_modes(s.path("spool"))
                        if stat.S_ISREG(st.st_mode))
    assert n_spool_files >= 1, "no spool file for the deferred message"
    assert not problems, "\n".join(problems)


@skippable
def unknown_user_serve_exits_78():
    s = server({"user": "no-such-user-xyz"}, start=False)
    s.start(wait=False)
    try:
        rc = s.proc.wait(15)
    except subprocess.TimeoutExpired:
        raise AssertionError("serve with an unknown user did not exit")
    assert rc == 78, "serve: %d %s" % (rc, s.log())
    assert "no-such-user-xyz" in s.log(), s.log()


@skippable
def unknown_user_check_exits_78():
    s = server({"user": "no-such-user-xyz"}, start=False)
    res = s.cmd("check")
    out = res.stdout + res.stderr
    assert res.returncode == 78, "check: %d %s" % (res.returncode, out)
    assert "no-such-user-xyz" in out, out


@skippable
def sendmail_as_root_delivered_by_unprivileged_server():
    pw = ensure_user()
    s = server()
    res = s.cmd("sendmail", "postmaster@localhost",
                input=message(subject="from root sendmail",
                              to="postmaster@localhost").replace("\r\n",
                                                                 "\n"))
    assert res.returncode == 0, "sendmail: %d %s%s" % (
        res.returncode, res.stdout, res.stderr)
    m = s.wait_mailbox("postmaster", 1, 20)
    assert b"from root sendmail" in m[0]
    time.sleep(0.5)
    problems = []
    check_tree(s.path("spool"), pw, problems)
    check_tree(s.path("postoffice"), pw, problems)
    assert not problems, "\n".join(problems)


@skippable
def sendmail_as_root_before_server_starts():
    """Submitted as root while no server runs: the first server started
    (dropping to smtpgate) can still read and deliver it."""
    ensure_user()
    s = server(start=False)
    # the spool must exist and belong to smtpgate first: start/stop once
    s.start()
    assert s.stop() == 0
    res = s.cmd("sendmail", "postmaster@localhost",
                input=message(subject="waiting").replace("\r\n", "\n"))
    assert res.returncode == 0, res.stderr
    s.start()
    m = s.wait_mailbox("postmaster", 1, 20)
    assert b"Subject: waiting" in m[0]


@skippable
def queue_commands_as_root_work():
    ensure_user()
    s = server()
    c = s.smtp()
    c.sendmail("alice@example.org", ["user@remote.example"], message())
    c.quit()
    wait_for(lambda: "status=deferred" in s.log(), 15, "deferred")
    res = s.cmd("queue", "list", "--json")
    assert res.returncode == 0, res.stderr
    q = json.loads(res.stdout)
    assert len(q) == 1, q
    res = s.cmd("status")
    assert res.returncode == 0, "status against a server running as %s: " \
        "%d %s" % (USER, res.returncode, res.stderr)


@skippable
def stays_unprivileged_after_reload():
    pw = ensure_user()
    s = server()
    import signal
    n = s.log().count("reload")
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.log().count("reload") > n, 10, "reload")
    st = status(s.proc.pid)
    assert [int(x) for x in st["Uid"]] == [pw.pw_uid] * 4, st["Uid"]
    c = s.smtp()
    c.sendmail("alice@example.org", ["postmaster@localhost"], message())
    c.quit()
    s.wait_mailbox("postmaster", 1)


if __name__ == "__main__":
    main()
