"""Real peers for smtpgate's outbound integration tests.

SmtpPeer: an aiosmtpd SMTP sink (the mail routing host or an MX host) in a
background thread of the test process. Scripted replies per recipient
(e.g. 550 for one, 451 for another), per DATA, per MAIL; it counts
sessions (EHLO/HELO/LHLO), the largest number of sessions open at once,
transactions, and stores every message received (envelope + content).
start()/stop()/restart() keep the same address and port.

    from peers import SmtpPeer
    peer = SmtpPeer().start()               # 127.0.0.1:free port
    peer.rcpt_replies["bad@remote.example"] = "550 5.1.1 no such user"
    conf["relay_host"] = peer.hostport      # "127.0.0.1:PORT"
    peer.wait_messages(1)
    m = peer.messages[0]   # Msg: mail_from, rcpt_tos, content, tls, ...

Dovecot: a private Dovecot (LMTP + IMAP) started by the test, with its own
configuration in a temp dir, users alice, bob and postmaster (password
"password"), mail in TMPDIR/mail/USER (Maildir).

    dc = Dovecot().start()
    conf["lmtp_host"] = "127.0.0.1:%d" % dc.lmtp_port
    dc.maildir_messages("alice"); dc.imap_messages("alice")

Both are registered with harness._live so they are stopped after each
test. Ports, waiting, certificates and queue_json() come from harness.
"""
import asyncio
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from aiosmtpd.lmtp import LMTP

import harness
from harness import free_port, wait_for, queue_json  # noqa: F401 (re-export)


def _register(obj):
    harness._live.append(obj)


class Msg:
    """One message as the peer received it."""

    def __init__(self, session, envelope, peer_port):
        self.mail_from = envelope.mail_from
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.mail_options = list(envelope.mail_options)
        self.rcpt_options = list(envelope.rcpt_options)
        c = envelope.original_content
        if c is None:
            c = envelope.content
        self.content = c if isinstance(c, bytes) else c.encode()
        self.tls = session.ssl is not None
        self.helo = session.host_name
        self.session_no = None
        self.time = time.time()

    def __repr__(self):
        return "<Msg from=%r to=%r tls=%s %d bytes>" % (
            self.mail_from, self.rcpt_tos, self.tls, len(self.content))


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        p = self.peer
        with p.lock:
            p.mail_commands.append((address, list(mail_options)))
            reply = p.mail_reply
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        p = self.peer
        with p.lock:
            p.rcpt_commands.append(address)
            reply = p.rcpt_replies.get(address.lower(), p.default_rcpt_reply)
        if callable(reply):
            reply = reply(address)
        if reply and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return reply or "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        p = self.peer
        if p.data_delay:
            await asyncio.sleep(p.data_delay)
        with p.lock:
            reply = p.data_reply
            p.transactions += 1
        if reply and not reply.startswith("2"):
            return reply
        m = Msg(session, envelope, p.port)
        m.session_no = getattr(session, "_peer_session_no", None)
        if isinstance(server, LMTP):
            # LMTP: one reply per accepted recipient (RFC 2033), scripted
            # by lmtp_data_replies; the message is stored with the
            # recipients that got a 2xx.
            lines, ok = [], []
            with p.lock:
                for r in envelope.rcpt_tos:
                    rr = p.lmtp_data_replies.get(r.lower(),
                                                 "250 2.0.0 <%s> OK" % r)
                    lines.append(rr)
                    if rr.startswith("2"):
                        ok.append(r)
                m.rcpt_tos = ok
                if ok:
                    p.messages.append(m)
            return "\r\n".join(lines)
        with p.lock:
            p.messages.append(m)
        return reply or "250 2.0.0 OK: accepted"


def _make_proto(base):
    class Proto(base):
        """Counts sessions (first EHLO/HELO/LHLO on a connection) and
        the sessions open at once."""
        _peer = None

        def _count(self):
            if getattr(self, "_peer_counted", False):
                return
            self._peer_counted = True
            p = self._peer
            with p.lock:
                p.connections += 1
                p.active += 1
                p.max_active = max(p.max_active, p.active)
                self.session._peer_session_no = p.connections

        def connection_lost(self, error):
            if getattr(self, "_peer_counted", False):
                self._peer_counted = False
                with self._peer.lock:
                    self._peer.active -= 1
            super().connection_lost(error)

        async def smtp_EHLO(self, arg):
            if arg and not self._peer.lmtp:
                self._count()
            if self._peer.ehlo_reply and arg:
                await self.push(self._peer.ehlo_reply)
                return
            await super().smtp_EHLO(arg)

        async def smtp_HELO(self, arg):
            if arg and not self._peer.lmtp:
                self._count()
            await super().smtp_HELO(arg)

    if base is LMTP:
        class LProto(Proto):
            async def smtp_LHLO(self, arg):
                if arg:
                    self._count()
                await super().smtp_LHLO(arg)
        return LProto
    return Proto


class _Controller(Controller):
    def __init__(self, peer, **kw):
        self._peer_obj = peer
        super().__init__(_Handler(peer), **kw)

    def factory(self):
        base = LMTP if self._peer_obj.lmtp else SMTP
        proto = _make_proto(base)
        proto._peer = self._peer_obj
        kw = dict(self.SMTP_kwargs)
        if self._peer_obj.lmtp:
            kw.pop("enable_SMTPUTF8", None)
            kw["enable_SMTPUTF8"] = self._peer_obj.smtputf8
        return proto(self.handler, **kw)


class SmtpPeer:
    """An aiosmtpd SMTP (or LMTP) server on host:port in a thread."""

    def __init__(self, host="127.0.0.1", port=None, smtputf8=True,
                 tls_context=None, lmtp=False, name="peer.example"):
        self.host = host
        self.port = port or free_port(host)
        self.smtputf8 = smtputf8
        self.tls_context = tls_context
        self.lmtp = lmtp
        self.name = name
        self.lock = threading.Lock()
        self.rcpt_replies = {}          # lowercased address -> reply
        self.default_rcpt_reply = None  # None: 250
        self.mail_reply = None          # None: 250
        self.data_reply = None          # None: 250
        self.ehlo_reply = None          # e.g. "421 go away"
        self.data_delay = 0.0           # seconds before the DATA reply
        self.lmtp_data_replies = {}     # LMTP: address -> reply at DATA
        self.ctl = None
        self.reset()
        _register(self)

    def reset(self):
        """Forgets counters and messages (not the scripted replies)."""
        with self.lock:
            self.messages = []
            self.mail_commands = []
            self.rcpt_commands = []
            self.connections = 0
            self.transactions = 0
            self.active = 0
            self.max_active = 0

    @property
    def hostport(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def running(self):
        return self.ctl is not None

    def start(self):
        assert self.ctl is None, "peer already running"
        kw = dict(hostname=self.host, port=self.port,
                  server_hostname=self.name,
                  enable_SMTPUTF8=self.smtputf8, ready_timeout=5.0,
                  data_size_limit=0)
        if self.tls_context is not None:
            kw["tls_context"] = self.tls_context
            kw["require_starttls"] = False
        last = None
        for _ in range(40):     # the port may linger a moment after stop
            ctl = _Controller(self, **kw)
            try:
                ctl.start()
                self.ctl = ctl
                return self
            except OSError as e:
                last = e
                try:
                    ctl.stop(no_assert=True)
                except Exception:
                    pass
                time.sleep(0.1)
        raise last

    def stop(self):
        ctl, self.ctl = self.ctl, None
        if ctl is not None:
            try:
                ctl.stop(no_assert=True)
            except Exception:
                pass
        # Connections of the stopped loop are gone with its transports.
        with self.lock:
            self.active = 0

    def restart(self):
        self.stop()
        return self.start()

    cleanup = stop

    def wait_messages(self, n, timeout=15.0):
        return wait_for(lambda: len(self.messages) >= n and self.messages,
                        timeout,
                        "%d message(s) at peer %s" % (n, self.hostport))

    def received_for(self, rcpt):
        """Messages whose envelope names rcpt."""
        with self.lock:
            return [m for m in self.messages
                    if rcpt.lower() in (r.lower() for r in m.rcpt_tos)]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- TLS ------------------------------------------------------------------

def make_cert(dirpath, cn="peer.example"):
    """A self-signed certificate for a peer (harness.make_cert() as
    peer-cert.pem / peer-key.pem, valid 2 days): (cert, key)."""
    return harness.make_cert(dirpath, cn, "peer-cert.pem", "peer-key.pem",
                             days=2)


def server_tls_context(cert, key):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


# ---- Dovecot ---------------------------------------------------------------

DOVECOT = "/usr/sbin/dovecot"
USERS = ("alice", "bob", "postmaster")
PASSWORD = "password"


def _user_or(name, fallback):
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return fallback


class Dovecot:
    """A private Dovecot with LMTP and IMAP on loopback (started as root)."""

    def __init__(self, users=USERS):
        if not os.access(DOVECOT, os.X_OK):
            raise RuntimeError("%s not installed" % DOVECOT)
        self.dir = tempfile.mkdtemp(prefix="smtpgate-dovecot.")
        os.chmod(self.dir, 0o755)
        self.users = users
        self.lmtp_port = free_port()
        self.imap_port = free_port()
        self.proc = None
        # Dovecot refuses to run its login processes as root ("This
        # process must not be run as root") and mail users with UID 0
        # ("invalid UID '0'"): use the package's unprivileged users and
        # nobody for the mail files.
        self.internal_user = _user_or("dovecot", "nobody")
        self.login_user = _user_or("dovenull", "nobody")
        nob = pwd.getpwnam("nobody")
        self.mail_uid, self.mail_gid = nob.pw_uid, nob.pw_gid
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        _register(self)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def hostport(self):
        return "127.0.0.1:%d" % self.lmtp_port

    def write_conf(self):
        d = self.dir
        for sub in ("run", "state", "mail", "home"):
            os.makedirs(self.path(sub), exist_ok=True)
        uid, gid = self.mail_uid, self.mail_gid
        for sub in ("mail", "home"):
            os.chown(self.path(sub), uid, gid)
        with open(self.path("passwd"), "w") as f:
            for u in self.users:
                f.write("%s:{PLAIN}%s:%d:%d::%s::\n"
                        % (u, PASSWORD, uid, gid, self.path("home", u)))
        os.chmod(self.path("passwd"), 0o644)
        conf = """\
# private Dovecot for smtpgate integration tests
instance_name = smtpgate-test-%(tag)s
base_dir = %(d)s/run
state_dir = %(d)s/state
listen = 127.0.0.1
protocols = lmtp imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = %(d)s/dovecot.log
info_log_path = %(d)s/dovecot.log
debug_log_path = %(d)s/dovecot.log
default_internal_user = %(internal)s
default_login_user = %(login)s
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:%(d)s/mail/%%n
lmtp_save_to_detail_mailbox = no
recipient_delimiter = +
shutdown_clients = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%n %(d)s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%n %(d)s/passwd
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %(lmtp)d
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(imap)d
  }
  inet_listener imaps {
    port = 0
  }
}
""" % {"d": d, "lmtp": self.lmtp_port, "imap": self.imap_port,
            "tag": os.path.basename(d).split(".")[-1],
            "internal": self.internal_user, "login": self.login_user}
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def start(self, timeout=10.0):
        self.write_conf()
        self.logf = open(self.path("stdout.log"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()))
            for port in (self.lmtp_port, self.imap_port):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                except OSError:
                    return False
            return True
        wait_for(up, timeout, "dovecot to listen")
        return self

    def log(self):
        out = ""
        for name in ("stdout.log", "dovecot.log"):
            try:
                with open(self.path(name), errors="replace") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)     # by PID
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def cleanup(self):
        self.stop()
        if not os.environ.get("KEEP_TEST_DIRS") and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def maildir_messages(self, user):
        """Contents (bytes) of USER's messages in new/ and cur/."""
        out = []
        for sub in ("new", "cur"):
            d = self.path("mail", user, sub)
            if not os.path.isdir(d):
                continue
            for fn in sorted(os.listdir(d)):
                with open(os.path.join(d, fn), "rb") as f:
                    out.append(f.read())
        return out

    def imap_messages(self, user, password=PASSWORD):
        """USER's INBOX read over IMAP (bytes per message)."""
        im = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            im.login(user, password)
            typ, _ = im.select("INBOX", readonly=True)
            assert typ == "OK", "IMAP SELECT failed"
            typ, data = im.search(None, "ALL")
            assert typ == "OK"
            out = []
            for num in data[0].split():
                typ, d = im.fetch(num, "(BODY.PEEK[])")
                assert typ == "OK"
                out.append(d[0][1])
            im.logout()
            return out
        finally:
            try:
                im.shutdown()
            except Exception:
                pass

    def wait_messages(self, user, n, timeout=15.0):
        return wait_for(lambda: len(self.maildir_messages(user)) >= n and
                        self.maildir_messages(user), timeout,
                        "%d message(s) for %s in Dovecot" % (n, user))


# ---- helpers shared by the outbound tests ------------------------------------

ID_RE = r"Ok: queued as ([0-9A-F]+)"


def submit(server, sender, rcpts, data=None, subject="test", port=None,
           mail_options=(), headers=""):
    """One SMTP transaction to smtpgate; returns the queue id. Every
    recipient must be accepted."""
    import re
    import smtplib
    if data is None:
        data = ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\n%s\r\nHello.\r\n"
                % (sender or "MAILER-DAEMON@elsewhere.example",
                   ", ".join("<%s>" % r for r in rcpts), subject, headers))
    if isinstance(data, str):
        data = data.encode("utf-8")
    c = smtplib.SMTP("127.0.0.1", port or server.port, timeout=15)
    try:
        c.ehlo("client.example")
        code, text = c.mail(sender, list(mail_options))
        assert code == 250, "MAIL FROM:<%s> got %d %r" % (sender, code, text)
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, "RCPT TO:<%s> got %d %r" % (r, code, text)
        code, text = c.data(data)
        assert code == 250, "DATA got %d %r" % (code, text)
        m = re.search(ID_RE, text.decode())
        assert m, "no queue id in %r" % text
        c.quit()
        return m.group(1)
    finally:
        c.close()


def queue_entry(server, qid):
    for m in queue_json(server):
        if m.get("id") == qid:
            return m
    return None


def deferred_entry(server, qid, timeout=10):
    """The queue entry of qid once its first recipient reads deferred: the
    state file is written just after the log line a test waits for, so
    it is waited for too."""
    def ready():
        e = queue_entry(server, qid)
        return e if e and e["recipients"][0]["state"] == "deferred" else None
    return wait_for(ready, timeout,
                    "%s's first recipient to read deferred" % qid)


def log_lines(server, qid=None, text=None):
    """Server log lines (of queue id qid, containing text)."""
    out = []
    for ln in server.log().splitlines():
        if qid is not None and ("%s:" % qid) not in ln:
            continue
        if text is not None and text not in ln:
            continue
        out.append(ln)
    return out


def wait_log_re(server, pattern, timeout=10.0):
    """Waits for a log line matching the regex; returns the match."""
    import re
    rx = re.compile(pattern)

    def find():
        for ln in server.log().splitlines():
            m = rx.search(ln)
            if m:
                return m
        return None
    return wait_for(find, timeout, "log line matching %r" % pattern)


def wait_removed(server, qid, timeout=15.0):
    server.wait_log("%s: removed" % qid, timeout)


def dsns(server, box):
    """The DSNs in mailbox box (bytes each)."""
    from dsn_check import is_dsn
    return [m for m in server.mailbox(box) if is_dsn(m)]


def bounce_id(server, qid, timeout=15.0):
    """The id of the non-delivery notification logged for qid."""
    m = wait_log_re(server, r"%s: sender non-delivery notification: "
                    r"([0-9A-F]+)" % qid, timeout)
    return m.group(1)
