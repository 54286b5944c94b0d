"""Integration tests: SMTP AUTH (RFC 4954) PLAIN and LOGIN against
auth_users (SPEC §1 `smtpgate passwd`, §2 auth_users / auth_require_tls /
submission_listen, §3 "no open relay").

`smtpgate passwd` (yescrypt, mode 0600), SHA-512-crypt and bcrypt hashes
written by hand, when AUTH is advertised (TLS, auth_require_tls = no, the
loopback relay_networks exemption), 538 before STARTTLS, success and
failure replies, slowed failures and the disconnect after 3, the sequence
and syntax errors, relaying once authenticated, the log and Received:
traces (sasl_username, ESMTPA/ESMTPSA), no password in the log even when
tracing the client, and the submission port requiring AUTH.
"""
import base64
import os
import re
import signal
import smtplib
import stat
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, wait_for,  # noqa: E402
                     free_port, exp, greet_text, make_cert, client_ctx,
                     queue_json)

warnings.simplefilter("ignore", DeprecationWarning)
try:
    import crypt as _crypt
except ImportError:                                 # Python >= 3.13
    _crypt = None

USER, PASS = "alice", "S3cret-pa55word!"


def _has_method(m):
    if _crypt is None or m is None:
        return False
    try:
        h = _crypt.crypt("x", _crypt.mksalt(m))
    except Exception:
        return False
    return bool(h) and _crypt.crypt("x", h) == h


_HAS_SHA512 = _crypt is not None and _has_method(_crypt.METHOD_SHA512)
_HAS_BCRYPT = _crypt is not None and _has_method(
    getattr(_crypt, "METHOD_BLOWFISH", None))


# ---- helpers (local to this file) ----------------------------------------

def auth_server(conf=None, tls=False, users=((USER, PASS),), start=True):
    """A server with auth_users (written by `smtpgate passwd`); remote mail
    goes to a closed port on loopback, never to the network."""
    c = {"auth_users": "users",
         "relay_host": "[127.0.0.1]:%d" % free_port(),
         "dns_servers": "127.0.0.1:%d" % free_port()}
    if tls:
        c.update({"tls_cert_file": "cert.pem", "tls_key_file": "key.pem"})
    c.update(conf or {})
    s = Server(c, name="auth")
    if tls:
        make_cert(s.dir)
    for u, p in users:
        res = s.cmd("passwd", u, input=p + "\n")
        assert res.returncode == 0, "passwd: %d %s%s" % (
            res.returncode, res.stdout, res.stderr)
    if start:
        s.start()
    return s


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user=USER, pw=PASS, authz=""):
    return b64("%s\0%s\0%s" % (authz, user, pw))


def advertises_auth(ehlo_text):
    return any(ln.upper() == "AUTH PLAIN LOGIN" for ln in ehlo_text.split("\n"))


def starttls(r):
    exp(r, "STARTTLS", 220, "2.0.0")
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
    return exp(r, "EHLO client.example", 250)


def header_block(m):
    return m.decode("utf-8", "replace").split("\r\n\r\n", 1)[0]


# ---- smtpgate passwd and the hash formats ------------------------------------

@test
def passwd_writes_yescrypt_0600():
    s = auth_server(start=False)
    p = s.path("users")
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    with open(p) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and lines[0].startswith(USER + ":$y$"), lines
    assert PASS not in open(p).read()
    # a second user is added, the first kept; changing a password replaces
    res = s.cmd("passwd", "bob", input="bobpass\n")
    assert res.returncode == 0, res.stderr
    res = s.cmd("passwd", USER, input="newpass\n")
    assert res.returncode == 0, res.stderr
    with open(p) as f:
        lines = f.read().splitlines()
    assert sorted(l.split(":")[0] for l in lines) == ["alice", "bob"], lines
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    s.start()
    r, t = greet_text(s)
    exp(r, "AUTH PLAIN " + plain(USER, "newpass"), 235, "2.7.0")
    r.close()
    r, t = greet_text(s)
    exp(r, "AUTH PLAIN " + plain("bob", "bobpass"), 235, "2.7.0")
    r.close()


@test
def passwd_needs_auth_users_and_password():
    s = Server(name="auth")
    res = s.cmd("passwd", USER, input=PASS + "\n")
    assert res.returncode != 0, "passwd without auth_users succeeded"
    assert "auth_users" in res.stderr, res.stderr
    s2 = auth_server(users=(), start=False)
    res = s2.cmd("passwd", USER, input="")
    assert res.returncode != 0, "passwd with an empty stdin succeeded"
    assert not os.path.exists(s2.path("users")) or \
        USER not in open(s2.path("users")).read()


def _hand_hash(method_name):
    def fn():
        s = auth_server(users=(), start=False)
        h = _crypt.crypt(PASS, _crypt.mksalt(getattr(_crypt, method_name)))
        s.write_file("users", "%s:%s\n" % (USER, h), 0o600)
        s.start()
        r, t = greet_text(s)
        exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
        r.close()
        r, t = greet_text(s)
        exp(r, "AUTH PLAIN " + plain(pw="wrong"), 535, "5.7.8")
        r.close()
    return fn


for _name, _m, _ok, _why in (
        ("sha512_crypt_hash_accepted", "METHOD_SHA512", _HAS_SHA512,
         "no SHA-512 crypt in this Python"),
        ("bcrypt_hash_accepted", "METHOD_BLOWFISH", _HAS_BCRYPT,
         "this platform's crypt lacks bcrypt")):
    _f = _hand_hash(_m) if _ok else (lambda: None)
    _f.__name__ = _name if _ok else "%s # SKIP %s" % (_name, _why)
    test(_f)


# ---- when AUTH is offered ----------------------------------------------------

@test
def loopback_relay_client_exempt_from_tls():
    """Default relay_networks contains 127.0.0.1: AUTH offered in clear."""
    s = auth_server()
    r, t = greet_text(s)
    assert advertises_auth(t), "AUTH not offered to loopback: %r" % t
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    r.close()


@test
def starttls_forgets_plaintext_auth():
    """RFC 3207 4.2: after STARTTLS the session starts over, AUTH too: a
    plaintext AUTH (allowed to loopback here) does not carry over, so an
    injected one cannot either."""
    s = auth_server(tls=True)
    r = s.raw(s.sub_port)
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    t = starttls(r)
    assert advertises_auth(t), "AUTH not offered again over TLS: %r" % t
    # the submission port wants AUTH again
    exp(r, "MAIL FROM:<alice@example.test>", 530)
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    exp(r, "MAIL FROM:<alice@example.test>", 250)
    exp(r, "QUIT", 221)


@test
def not_offered_without_auth_users():
    s = Server(name="auth").start()
    r, t = greet_text(s)
    assert "AUTH" not in t.upper().split(), t
    r.send("AUTH PLAIN " + plain() + "\r\n")
    c, txt = r.reply()
    assert c == 502 or c == 503, "AUTH without auth_users: %d %s" % (c, txt)
    r.close()


@test
def not_exempt_needs_starttls():
    s = auth_server({"relay_networks": "10.0.0.0/8"}, tls=True)
    r, t = greet_text(s)
    assert not advertises_auth(t), "AUTH offered before STARTTLS: %r" % t
    exp(r, "AUTH PLAIN " + plain(), 538, "5.7.11")
    exp(r, "AUTH LOGIN", 538, "5.7.11")
    t = starttls(r)
    assert advertises_auth(t), "AUTH not offered inside TLS: %r" % t
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    # once authenticated it is no longer advertised
    t = exp(r, "EHLO client.example", 250)
    assert not advertises_auth(t), t
    r.close()


@test
def auth_require_tls_no():
    s = auth_server({"relay_networks": "10.0.0.0/8",
                     "auth_require_tls": "no"})
    r, t = greet_text(s)
    assert advertises_auth(t), "AUTH not offered with auth_require_tls=no"
    exp(r, "AUTH LOGIN", 334)
    exp(r, b64(USER), 334)
    exp(r, b64(PASS), 235, "2.7.0")
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "RCPT TO:<postmaster@localhost>", 250)
    exp(r, "DATA", 354)
    r.send(message(subject="esmtpa").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    r.close()
    m = header_block(s.wait_mailbox("postmaster", 1)[0])
    assert "with ESMTPA " in m, m


# ---- the dialogue ------------------------------------------------------------

@test
def plain_and_login_dialogues():
    s = auth_server()
    # PLAIN with the response on its own line
    r, _ = greet_text(s)
    t = exp(r, "AUTH PLAIN", 334)
    assert t.strip() == "", "PLAIN challenge should be empty: %r" % t
    exp(r, plain(), 235, "2.7.0")
    r.close()
    # LOGIN: the challenges are base64 "Username:" / "Password:"
    r, _ = greet_text(s)
    t = exp(r, "AUTH LOGIN", 334)
    assert base64.b64decode(t).lower().startswith(b"username"), t
    t = exp(r, b64(USER), 334)
    assert base64.b64decode(t).lower().startswith(b"password"), t
    exp(r, b64(PASS), 235, "2.7.0")
    r.close()
    # LOGIN with the user name as initial response
    r, _ = greet_text(s)
    exp(r, "AUTH LOGIN " + b64(USER), 334)
    exp(r, b64(PASS), 235, "2.7.0")
    r.close()
    # mechanism names are case-insensitive; smtplib picks one by itself
    r, _ = greet_text(s)
    exp(r, "auth plain " + plain(), 235, "2.7.0")
    r.close()
    c = s.smtp()
    c.ehlo("client.example")
    code, _ = c.login(USER, PASS)
    assert code == 235
    c.quit()


@test
def errors_in_the_dialogue():
    s = auth_server()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "AUTH PLAIN " + plain(), 503, "5.5.1")      # before EHLO
    exp(r, "EHLO client.example", 250)
    exp(r, "AUTH CRAM-MD5", 504, "5.5.4")
    exp(r, "AUTH XYZZY " + plain(), 504, "5.5.4")
    exp(r, "AUTH PLAIN", 334)
    exp(r, "*", 501)                                    # cancelled
    exp(r, "AUTH PLAIN !!!notbase64!!!", 501, "5.5.2")
    exp(r, "AUTH LOGIN", 334)
    exp(r, "%%%%", 501, "5.5.2")
    exp(r, "AUTH LOGIN", 334)
    exp(r, b64(USER), 334)
    exp(r, "*", 501)
    # transaction in progress
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "AUTH PLAIN " + plain(), 503, "5.5.1")
    exp(r, "RSET", 250)
    # the session still works and can authenticate now
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    exp(r, "AUTH PLAIN " + plain(), 503, "5.5.1")      # twice
    exp(r, "AUTH LOGIN", 503, "5.5.1")
    exp(r, "NOOP", 250)
    r.close()


@test
def plain_with_bad_structure():
    s = auth_server()
    r, _ = greet_text(s)
    # no NUL separators
    exp(r, "AUTH PLAIN " + b64(USER + PASS), 501, "5.5.2")
    # authzid different from authcid: never authenticates as someone else
    r2, _ = greet_text(s)
    r2.send("AUTH PLAIN " + plain(authz="root") + "\r\n")
    c, t = r2.reply()
    assert c != 235, "AUTH PLAIN with authzid root for alice: %d %s" % (c, t)
    assert "authenticated as root" not in s.log()
    r.close()
    r2.close()


@test
def failures_slowed_then_disconnect():
    s = auth_server()
    r, _ = greet_text(s)
    times = []
    for i, (u, p) in enumerate(((USER, "wrong1"), ("nosuchuser", PASS),
                                (USER, "wrong3"))):
        t0 = time.time()
        r.send("AUTH PLAIN " + plain(u, p) + "\r\n")
        exp(r, None, 535, "5.7.8")
        times.append(time.time() - t0)
    assert times[0] >= 0.9, "first failure answered after %.2fs" % times[0]
    assert times[1] >= 1.9 and times[1] > times[0] + 0.5, times
    assert times[2] > times[1] + 0.5, times
    exp(r, None, 421, "4.7.0")
    assert r.closed(5), "not disconnected after 3 failed AUTH"
    wait_for(lambda: "too many failed AUTH" in s.log(), 5, "log line")
    # other clients are not affected; a new session may authenticate
    r, _ = greet_text(s)
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    r.close()


@test
def login_failure_then_success_same_session():
    s = auth_server()
    r, _ = greet_text(s)
    exp(r, "AUTH LOGIN", 334)
    exp(r, b64(USER), 334)
    exp(r, b64("nope"), 535, "5.7.8")
    exp(r, "AUTH LOGIN", 334)
    exp(r, b64(USER), 334)
    exp(r, b64(PASS), 235, "2.7.0")
    r.close()


@test
def no_pipelined_command_runs_during_slow_failure():
    """Commands pipelined behind a failing AUTH wait for its reply and then
    run in the unauthenticated session (relay still refused)."""
    s = auth_server({"relay_networks": "10.0.0.0/8",
                     "auth_require_tls": "no"})
    r, _ = greet_text(s)
    r.send("AUTH PLAIN " + plain(pw="bad") + "\r\nMAIL FROM:<a@example.org>"
           "\r\nRCPT TO:<user@remote.example>\r\n")
    exp(r, None, 535, "5.7.8")
    exp(r, None, 250)
    exp(r, None, 554, "5.7.1")
    r.close()


# ---- what authentication allows and leaves behind --------------------------

@test
def authenticated_relay_over_tls():
    s = auth_server({"relay_networks": "10.0.0.0/8"}, tls=True)
    # control: without AUTH a remote recipient is refused
    r, _ = greet_text(s)
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "RCPT TO:<user@remote.example>", 554, "5.7.1")
    r.close()
    r, _ = greet_text(s)
    starttls(r)
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "RCPT TO:<user@remote.example>", 250, "2.1.5")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message(subject="authenticated").encode() + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    qid = t.rsplit(" ", 1)[1]
    exp(r, "QUIT", 221)
    r.close()
    m = header_block(s.wait_mailbox("postmaster", 1)[0])
    assert "with ESMTPSA" in m, m
    log = s.log()
    assert "authenticated as %s" % USER in log, log[-2000:]
    assert re.search(r"%s: client=\[127\.0\.0\.1\]:\d+ .*sasl_username=%s"
                     % (qid, USER), log), log[-2000:]
    # the remote recipient is in the queue (deferred to the closed port)
    rcpts = [x for m in queue_json(s) for x in m["recipients"]]
    assert any(x["address"] == "user@remote.example" and
               x["route"] == "remote" for x in rcpts), rcpts


@test
def swaks_tls_auth_plain():
    s = auth_server({"relay_networks": "10.0.0.0/8"}, tls=True)
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                        str(s.port), "--tls", "--auth", "PLAIN",
                        "--auth-user", USER, "--auth-password", PASS,
                        "--from", "alice@example.org", "--to",
                        "user@remote.example", "--helo", "client.example",
                        "--timeout", "15"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235 2.7.0" in p.stdout and "250 2.0.0 Ok: queued" in p.stdout, \
        p.stdout
    # a wrong password through swaks fails
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                        str(s.port), "--tls", "--auth", "LOGIN",
                        "--auth-user", USER, "--auth-password", "nope",
                        "--from", "alice@example.org", "--to",
                        "user@remote.example", "--timeout", "15"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "535 5.7.8" in p.stdout, p.stdout


@test
def password_never_logged_even_when_traced():
    s = auth_server({"trace_clients": "127.0.0.0/8"})
    secrets = [PASS, b64(PASS), plain(), "wrong-" + PASS, b64("wrong-" + PASS),
               plain(pw="wrong-" + PASS)]
    r, _ = greet_text(s)
    exp(r, "AUTH PLAIN " + plain(pw="wrong-" + PASS), 535)
    exp(r, "AUTH PLAIN", 334)
    exp(r, plain(), 235)
    r.close()
    r, _ = greet_text(s)
    exp(r, "AUTH LOGIN", 334)
    exp(r, b64(USER), 334)
    exp(r, b64("wrong-" + PASS), 535)
    exp(r, "AUTH LOGIN " + b64(USER), 334)
    exp(r, b64(PASS), 235)
    exp(r, "QUIT", 221)
    r.close()
    c = s.smtp()
    c.ehlo("client.example")
    c.login(USER, PASS)
    c.quit()
    wait_for(lambda: s.log().count("authenticated as") >= 3, 5, "3 auths")
    log = s.log()
    assert "< EHLO client.example" in log or "EHLO client.example" in log, \
        "trace_clients did not trace: %s" % log[-1500:]
    for x in secrets:
        assert x not in log, "secret %r in the log:\n%s" % (x, log[-3000:])
    # no base64 of the whole PLAIN/LOGIN pieces in any form (with padding
    # stripped too)
    for x in secrets:
        assert x.rstrip("=") not in log, x


@test
def submission_requires_auth():
    s = auth_server()
    r, t = greet_text(s, port=s.sub_port)
    exp(r, "MAIL FROM:<alice@example.org>", 530, "5.7.0")
    exp(r, "AUTH PLAIN " + plain(), 235, "2.7.0")
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "RCPT TO:<user@remote.example>", 250, "2.1.5")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message(subject="submitted").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    r.close()
    m = header_block(s.wait_mailbox("postmaster", 1)[0])
    assert "with ESMTPA" in m, m
    # with smtplib: sendmail without login fails with 530
    c = s.smtp(s.sub_port)
    c.ehlo("client.example")
    try:
        c.sendmail("alice@example.org", ["postmaster@localhost"], message())
        raise AssertionError("submission accepted mail without AUTH")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 530, e
    c.close()


@test
def submission_requires_auth_even_without_auth_users():
    """No auth_users at all: the submission port refuses MAIL (530) rather
    than becoming an open relay for loopback clients."""
    s = Server(name="auth").start()
    r, t = greet_text(s, port=s.sub_port)
    r.send("MAIL FROM:<alice@example.org>\r\n")
    c, txt = r.reply()
    assert c == 530, "%d %s" % (c, txt)
    r.close()


@test
def users_reloaded_on_sighup():
    s = auth_server()
    r, _ = greet_text(s)
    exp(r, "AUTH PLAIN " + plain("carol", "carolpw"), 535)
    r.close()
    res = s.cmd("passwd", "carol", input="carolpw\n")
    assert res.returncode == 0, res.stderr
    n = s.log().count("reload")
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.log().count("reload") > n, 10, "reload log line")
    r, _ = greet_text(s)
    exp(r, "AUTH PLAIN " + plain("carol", "carolpw"), 235, "2.7.0")
    r.close()


if __name__ == "__main__":
    main()
