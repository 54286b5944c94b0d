"""Integration tests: inbound STARTTLS (SPEC §2 tls_cert_file/tls_key_file,
§3 "Receiving"; RFC 3207).

STARTTLS offered only when a certificate and key are configured, TLS 1.2/1.3
only, the session starting over after the handshake, STARTTLS refused inside
TLS and during a transaction, no command injection across STARTTLS
(CVE-2011-0411), Received: "with ESMTPS (using TLSv1.x with cipher ...)",
the "TLS established" log line, certificate reload on SIGHUP, and a
certificate/key mismatch refused by `check` and `serve` with exit 78.
Clients: Python smtplib with starttls(), swaks --tls, raw sockets wrapped
with the ssl module after the 220.
"""
import os
import re
import signal
import socket
import select
import ssl
import subprocess
import sys
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, test, main, message, wait_for,  # noqa: E402
                     exp, make_cert, client_ctx)

warnings.simplefilter("ignore", DeprecationWarning)


# ---- helpers (local to this file) ----------------------------------------

def der_of(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def tls_server(conf=None, cn="localhost", start=True):
    """A server with cert.pem/key.pem in its directory (relative paths)."""
    c = {"tls_cert_file": "cert.pem", "tls_key_file": "key.pem"}
    c.update(conf or {})
    s = Server(c, name="tls")
    make_cert(s.dir, cn)
    if start:
        s.start()
    return s


def no_more_bytes(sock, wait=0.5):
    """True when nothing arrives on sock within wait seconds."""
    r, _, _ = select.select([sock], [], [], wait)
    if not r:
        return True
    try:
        sock.settimeout(0.5)
        d = sock.recv(4096, socket.MSG_PEEK)
    except (OSError, socket.timeout):
        return True
    return d == b""


def starttls_raw(s, ehlo=True):
    """A raw client that has done EHLO (optionally), STARTTLS and the
    handshake; returns (Raw, ehlo text before TLS)."""
    r = s.raw()
    exp(r, None, 220)
    text = exp(r, "EHLO client.example", 250) if ehlo else ""
    exp(r, "STARTTLS", 220, "2.0.0")
    assert r.pending == b"", "bytes after the 220: %r" % r.pending
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
    return r, text


def ehlo_keywords(text):
    return [ln.split()[0].upper() for ln in text.split("\n")[1:] if ln]


def _old_tls_client_works():
    """Whether this client can speak TLS 1.0/1.1 at all (to an in-process
    server that allows it): otherwise the version test proves nothing."""
    try:
        d = "/tmp"
        import tempfile
        d = tempfile.mkdtemp(prefix="smtpgate-tlsprobe.")
        cp, kp = make_cert(d)
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(cp, kp)
        srv.minimum_version = ssl.TLSVersion.TLSv1
        srv.set_ciphers("DEFAULT:@SECLEVEL=0")
        cli = client_ctx(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1, True)
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        ls.settimeout(5)
        res = {}

        def serve():
            try:
                c, _ = ls.accept()
                c.settimeout(5)
                srv.wrap_socket(c, server_side=True).close()
            except Exception:
                pass
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        c = socket.create_connection(ls.getsockname(), 5)
        t = cli.wrap_socket(c)
        res["v"] = t.version()
        t.close()
        th.join(5)
        ls.close()
        import shutil
        shutil.rmtree(d, ignore_errors=True)
        return res.get("v") == "TLSv1.1"
    except Exception:
        return False


_OLD_TLS = _old_tls_client_works()


# ---- offered only when configured ------------------------------------------

@test
def starttls_not_offered_without_cert():
    s = Server(name="tls").start()
    r = s.raw()
    exp(r, None, 220)
    t = exp(r, "EHLO client.example", 250)
    assert "STARTTLS" not in ehlo_keywords(t), t
    r.send("STARTTLS\r\n")
    c, t = r.reply()
    assert c == 502 and t.startswith("5.5.1"), "STARTTLS without cert: %d %s" % (c, t)
    exp(r, "NOOP", 250)
    r.close()
    # only one of the two set: still not offered
    s2 = Server({"tls_cert_file": "cert.pem"}, name="tls")
    make_cert(s2.dir)
    res = s2.cmd("check")
    if res.returncode == 0:
        s2.start()
        r = s2.raw()
        exp(r, None, 220)
        t = exp(r, "EHLO client.example", 250)
        assert "STARTTLS" not in ehlo_keywords(t), t
        r.close()


@test
def starttls_offered_and_session_starts_over():
    s = tls_server()
    r = s.raw()
    exp(r, None, 220)
    t = exp(r, "EHLO client.example", 250)
    assert "STARTTLS" in ehlo_keywords(t), "STARTTLS not advertised: %r" % t
    exp(r, "STARTTLS", 220, "2.0.0")
    assert r.pending == b""
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
    assert r.sock.version() in ("TLSv1.2", "TLSv1.3"), r.sock.version()
    # The session starts over: MAIL before EHLO is a sequence error.
    exp(r, "MAIL FROM:<alice@example.org>", 503, "5.5.1")
    t = exp(r, "EHLO client.example", 250)
    assert "STARTTLS" not in ehlo_keywords(t), \
        "STARTTLS advertised again inside TLS: %r" % t
    exp(r, "MAIL FROM:<alice@example.org>", 250, "2.1.0")
    exp(r, "RCPT TO:<postmaster@localhost>", 250, "2.1.5")
    exp(r, "DATA", 354)
    r.send(message(subject="over tls").encode() + b".\r\n")
    exp(r, None, 250, "2.0.0")
    exp(r, "QUIT", 221)
    r.close()
    s.wait_mailbox("postmaster", 1)


@test
def starttls_reply_text():
    s = tls_server()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    r.send("STARTTLS\r\n")
    assert r.line() == "220 2.0.0 Ready to start TLS"
    r.close()


@test
def starttls_twice_refused():
    s = tls_server()
    r, _ = starttls_raw(s)
    exp(r, "EHLO client.example", 250)
    exp(r, "STARTTLS", 503, "5.5.1")
    # still usable
    exp(r, "NOOP", 250)
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    r.close()


@test
def starttls_twice_refused_before_ehlo():
    s = tls_server()
    r, _ = starttls_raw(s)
    r.send("STARTTLS\r\n")
    c, t = r.reply()
    assert c == 503 and t.startswith("5.5.1"), "%d %s" % (c, t)
    r.close()


@test
def starttls_during_transaction_refused():
    s = tls_server()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "MAIL FROM:<alice@example.org>", 250)
    exp(r, "STARTTLS", 503, "5.5.1")
    exp(r, "RCPT TO:<postmaster@localhost>", 250)
    exp(r, "STARTTLS", 503, "5.5.1")
    # and nothing switched to TLS: plaintext dialogue goes on
    exp(r, "RSET", 250)
    exp(r, "STARTTLS", 220, "2.0.0")
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
    exp(r, "EHLO client.example", 250)
    r.close()


@test
def no_command_injection_across_starttls():
    s = tls_server()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    junk = b"RSET\r\nMAIL FROM:<evil@example.org>\r\n"
    r.send(b"STARTTLS\r\n" + junk)
    exp(r, None, 220, "2.0.0")
    assert r.pending == b"", "extra plaintext after the 220: %r" % r.pending
    assert no_more_bytes(r.sock), "server answered the injected commands " \
        "in plaintext: %r" % r.sock.recv(4096, socket.MSG_PEEK)
    r.sock.settimeout(10)
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
    t = exp(r, "EHLO client.example", 250)
    assert t.startswith("mx.example.test"), t
    # MAIL must not have been executed: RCPT without MAIL is 503
    exp(r, "RCPT TO:<postmaster@localhost>", 503, "5.5.1")
    exp(r, "NOOP", 250)
    assert r.pending == b"", "extra replies in the stream: %r" % r.pending
    assert no_more_bytes(r.sock), "extra replies after NOOP"
    exp(r, "QUIT", 221)
    r.close()
    s.wait_log("discarding %d bytes pipelined after STARTTLS" % len(junk))
    assert "evil@example.org" not in s.log(), s.log()[-2000:]


@test
def plaintext_after_starttls_reply_not_executed():
    """Junk that arrives after the 220 (a separate write) goes into the TLS
    handshake and must make it fail, never be executed as a command."""
    s = tls_server()
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    r.send(b"STARTTLS\r\n")
    exp(r, None, 220, "2.0.0")
    r.send(b"MAIL FROM:<evil@example.org>\r\n")
    # the server must not answer it as SMTP
    time.sleep(0.5)
    try:
        d = r.sock.recv(4096)
    except (OSError, socket.timeout):
        d = b""
    assert not d.startswith(b"250") and b"2.1.0" not in d, \
        "plaintext MAIL after STARTTLS executed: %r" % d
    r.close()
    wait_for(lambda: "TLS handshake failed" in s.log() or
             "disconnect from" in s.log(), 10, "handshake failure logged")


# ---- versions ---------------------------------------------------------------

@test
def tls12_and_tls13_accepted():
    s = tls_server()
    for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                      (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        r = s.raw()
        exp(r, None, 220)
        exp(r, "EHLO client.example", 250)
        exp(r, "STARTTLS", 220)
        ctx = client_ctx(max_version=ver, min_version=ver)
        r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
        assert r.sock.version() == name, r.sock.version()
        exp(r, "EHLO client.example", 250)
        exp(r, "QUIT", 221)
        r.close()


def _old_versions():
    s = tls_server()
    for ver, name in ((ssl.TLSVersion.TLSv1_1, "TLSv1.1"),
                      (ssl.TLSVersion.TLSv1, "TLSv1")):
        r = s.raw()
        exp(r, None, 220)
        exp(r, "EHLO client.example", 250)
        exp(r, "STARTTLS", 220)
        ctx = client_ctx(max_version=ver, min_version=ssl.TLSVersion.TLSv1,
                         seclevel0=True)
        v = None
        try:
            t = ctx.wrap_socket(r.sock, server_hostname="localhost")
            v = t.version()
            r.sock = t
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        r.close()
        assert v is None, "handshake with max %s succeeded: %s" % (name, v)
    wait_for(lambda: s.log().count("TLS handshake failed") >= 2, 10,
             "two 'TLS handshake failed' log lines")
    # control: the very same client settings with TLS 1.2 allowed succeed,
    # so the failures above are the server refusing the old versions
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "STARTTLS", 220)
    ctx = client_ctx(max_version=ssl.TLSVersion.TLSv1_2,
                     min_version=ssl.TLSVersion.TLSv1, seclevel0=True)
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    assert r.sock.version() == "TLSv1.2", r.sock.version()
    r.close()
    # the server is still fine
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    r.close()


if _OLD_TLS:
    tls10_and_tls11_refused = test(_old_versions)
    tls10_and_tls11_refused.__name__ = "tls10_and_tls11_refused"
else:
    def _skip_old():
        pass
    _skip_old.__name__ = ("tls10_and_tls11_refused # SKIP this client "
                          "cannot offer TLS 1.0/1.1")
    test(_skip_old)


# ---- what a TLS session leaves behind ------------------------------------------

@test
def received_header_and_log_over_tls():
    s = tls_server()
    c = s.smtp()
    c.ehlo("client.example")
    assert c.has_extn("starttls")
    code, _ = c.starttls(context=client_ctx())
    assert code == 220
    cipher, version, _ = c.sock.cipher()
    c.ehlo("client.example")
    c.sendmail("alice@example.org", ["postmaster@localhost"],
               message(subject="tls received"))
    c.quit()
    msgs = s.wait_mailbox("postmaster", 1)
    m = msgs[0].decode("utf-8", "replace")
    head = m.split("\r\n\r\n", 1)[0]
    rec = re.search(r"^Received:.*?(?=^\S)", head + "\r\nX:", re.S | re.M)
    assert rec, head
    rec = rec.group(0)
    assert "with ESMTPS" in rec, rec
    assert "(using TLSv1." in rec, rec
    assert cipher in rec, "cipher %s not in %r" % (cipher, rec)
    assert version in rec, "version %s not in %r" % (version, rec)
    s.wait_log("TLS established: %s with cipher %s" % (version, cipher))
    # and the queue log line names the protocol
    assert re.search(r"client=\[127\.0\.0\.1\]:\d+ .*proto=ESMTPS", s.log()), \
        s.log()[-2000:]


@test
def swaks_tls():
    s = tls_server()
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                        str(s.port), "--tls", "--from", "alice@example.org",
                        "--to", "postmaster@localhost", "--helo",
                        "client.example", "--timeout", "10",
                        "--header", "Subject: swaks tls"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "250 2.0.0 Ok: queued as" in p.stdout, p.stdout
    m = s.wait_mailbox("postmaster", 1)[0].decode("utf-8", "replace")
    assert "with ESMTPS" in m and "Subject: swaks tls" in m, m[:600]


@test
def plaintext_received_is_esmtp():
    """Control: without TLS the protocol is plain ESMTP (no S, no using)."""
    s = tls_server()
    c = s.smtp()
    c.sendmail("alice@example.org", ["postmaster@localhost"], message())
    c.quit()
    m = s.wait_mailbox("postmaster", 1)[0].decode("utf-8", "replace")
    assert "with ESMTP " in m and "(using" not in m, m[:600]


# ---- reload and configuration errors ------------------------------------------

@test
def certificate_reloaded_on_sighup():
    s = tls_server(cn="first.example")
    old = der_of(s.path("cert.pem"))

    def peer_cert():
        r = s.raw()
        exp(r, None, 220)
        exp(r, "EHLO client.example", 250)
        exp(r, "STARTTLS", 220)
        r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
        der = r.sock.getpeercert(binary_form=True)
        return r, der

    r0, der0 = peer_cert()
    assert der0 == old, "server does not present cert.pem"
    exp(r0, "EHLO client.example", 250)
    # a new certificate with another CN, put in place atomically
    make_cert(s.dir, "second.example", "cert.new", "key.new")
    new = der_of(s.path("cert.new"))
    assert new != old
    os.rename(s.path("key.new"), s.path("key.pem"))
    os.rename(s.path("cert.new"), s.path("cert.pem"))
    n = s.log().count("reload")
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.log().count("reload") > n, 10, "reload log line")
    assert "reload failed" not in s.log(), s.log()[-2000:]
    r1, der1 = peer_cert()
    assert der1 == new, "after SIGHUP the server still presents the old " \
        "certificate"
    exp(r1, "EHLO client.example", 250)
    r1.close()
    # the TLS session opened before the reload was not dropped
    exp(r0, "NOOP", 250)
    exp(r0, "MAIL FROM:<alice@example.org>", 250)
    r0.close()


@test
def reload_with_bad_key_keeps_old_certificate():
    s = tls_server(cn="first.example")
    old = der_of(s.path("cert.pem"))
    # a new certificate whose key is not put in place: mismatch
    make_cert(s.dir, "second.example", "cert.new", "key.new")
    os.rename(s.path("cert.new"), s.path("cert.pem"))
    s.signal(signal.SIGHUP)
    s.wait_log("reload failed")
    assert s.proc.poll() is None, "server died on a bad reload"
    r = s.raw()
    exp(r, None, 220)
    exp(r, "EHLO client.example", 250)
    exp(r, "STARTTLS", 220)
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="localhost")
    assert r.sock.getpeercert(binary_form=True) == old
    exp(r, "EHLO client.example", 250)
    r.close()


@test
def cert_key_mismatch_is_config_error():
    s = Server({"tls_cert_file": "cert.pem", "tls_key_file": "other.pem"},
               name="tls")
    make_cert(s.dir, "a.example")
    make_cert(s.dir, "b.example", "othercert.pem", "other.pem")
    res = s.cmd("check")
    out = res.stdout + res.stderr
    assert res.returncode == 78, "check: %d %s" % (res.returncode, out)
    assert "cert.pem" in out or "other.pem" in out, \
        "check does not name the file: %r" % out
    s.start(wait=False)
    try:
        rc = s.proc.wait(15)
    except subprocess.TimeoutExpired:
        raise AssertionError("serve did not exit on a cert/key mismatch")
    assert rc == 78, "serve: %d %s" % (rc, s.log())
    assert "cert.pem" in s.log() or "other.pem" in s.log(), s.log()


@test
def missing_cert_file_is_config_error():
    s = Server({"tls_cert_file": "nothere.pem", "tls_key_file": "key.pem"},
               name="tls")
    make_cert(s.dir)
    res = s.cmd("check")
    out = res.stdout + res.stderr
    assert res.returncode == 78, "check: %d %s" % (res.returncode, out)
    assert "nothere.pem" in out, out


@test
def cert_paths_relative_to_config_dir():
    """`serve` started from another directory still finds cert.pem."""
    s = tls_server(start=False)
    other = os.path.join(s.dir, "elsewhere")
    os.mkdir(other)
    res = subprocess.run([os.environ.get("SMTPGATE_BIN") or
                          os.path.join(os.path.dirname(
                              os.path.abspath(__file__)), "..", "..",
                              "smtpgate"),
                          "check", "-c", s.conf_path],
                         capture_output=True, text=True, cwd=other,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


if __name__ == "__main__":
    main()
