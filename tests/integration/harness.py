"""Integration-test harness: starts the real smtpgate binary on free loopback
ports in a private directory and talks to it with real clients.

Each test file defines functions decorated with @test and ends with main().
Every test prints "ok - NAME" or "not ok - NAME" (tests/run.sh counts them).
Servers started by a test are stopped (by PID) when it ends.

Besides Server and Raw, the helpers shared by the test files: hermetic()
and hermetic_server() (nothing leaves loopback), the dialogue checks exp(),
greet()/greet_text(), send_msg(), settle() and mailboxes(), make_cert() and
client_ctx() for TLS, queue_json(), status_counts(), wait_exit(), and the
RSS readers vmrss_kb()/server_rss_kb() with asan_small_quarantine_env().
"""
import json
import os
import re
import resource
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("SMTPGATE_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "smtpgate")
BIN = os.path.abspath(BIN)
_tests = []
_live = []          # servers and processes to stop after each test


def test(fn):
    _tests.append(fn)
    return fn


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now (on host, loopback by
    default)."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0, what="condition"):
    """Polls pred() until it is truthy; raises AssertionError on timeout."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def close_probe(sock):
    """End a listen probe so that the server has counted it out on return.

    A plain close races the test's next connections: the server may accept
    them before it sees the probe's EOF and refuse one under
    max_connections_per_ip.  So when the listener greets, say QUIT and wait
    for the server to close: it releases the slot before it closes the
    socket.  A listener that says nothing first (PROXY protocol) is closed
    as it is, and the log check in wait_listening() covers it."""
    try:
        sock.settimeout(2)
        banner = sock.recv(512)
        if banner.startswith(b"220"):
            sock.sendall(b"QUIT\r\n")
            deadline = time.time() + 5
            while time.time() < deadline and sock.recv(512):
                pass
    except OSError:
        pass
    finally:
        sock.close()


class Server:
    """One smtpgate instance with its own directory, config and ports."""

    def __init__(self, conf=None, name="it"):
        self.dir = tempfile.mkdtemp(prefix="smtpgate-%s." % name)
        self.port = free_port()
        self.sub_port = free_port()
        self.conf = {
            "hostname": "mx.example.test",
            "listen": "127.0.0.1:%d" % self.port,
            "submission_listen": "127.0.0.1:%d" % self.sub_port,
            "spool_dir": "spool",
            "postoffice_dir": "postoffice",
            "local_domains": "localhost, example.test",
            "bind_retry": "3s",
            # Hermetic by default: no DNS query leaves the machine (a
            # closed loopback port answers at once); tests of outbound
            # delivery set their own dns_servers / relay_host.
            "dns_servers": "127.0.0.1:9",
            "user": "root" if os.geteuid() == 0 else "",
        }
        if conf:
            self.conf.update(conf)
        self.proc = None
        self.logpath = os.path.join(self.dir, "server.log")
        self.write_conf()
        _live.append(self)

    @property
    def conf_path(self):
        return os.path.join(self.dir, "smtpgate.conf")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            for k, v in self.conf.items():
                f.write("%s = %s\n" % (k, v))

    def write_file(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def cmd(self, *args, input=None, timeout=30, env=None):
        """Runs `smtpgate ARGS -c CONF`; returns CompletedProcess (text)."""
        argv = [BIN] + list(args)
        if "-c" not in args:
            argv[2:2] = ["-c", self.conf_path]
        return subprocess.run(argv, input=input, capture_output=True,
                              text=True, timeout=timeout, cwd=self.dir,
                              env=env)

    def start(self, wait=True, extra_args=(), env=None):
        self.logf = open(self.logpath, "ab")
        self.log_start = self.logf.tell()
        self.proc = subprocess.Popen(
            [BIN, "serve", "-c", self.conf_path] + list(extra_args),
            stdout=self.logf, stderr=subprocess.STDOUT, cwd=self.dir,
            env=env, pass_fds=getattr(self, "pass_fds", ()),
            preexec_fn=self._limits)
        if wait:
            self.wait_listening()
        return self

    def _limits(self):
        """In the child: the open-files limit a test asked for (nofile =
        (soft, hard); hard None keeps the current one)."""
        want = getattr(self, "nofile", None)
        if want:
            soft, hard = want
            if hard is None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def wait_listening(self, port=None, timeout=10.0):
        port = port or self.port

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("smtpgate exited with %s:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                sock = socket.create_connection(("127.0.0.1", port), 0.5)
            except OSError:
                return False
            close_probe(sock)
            return True
        wait_for(up, timeout, "smtpgate to listen on %d" % port)

        # The probe connections above count towards max_connections(_per_ip)
        # until the server has seen them close: wait for that (best effort),
        # so that a test's first connections never race them.
        def probes_gone():
            try:
                with open(self.logpath, "rb") as f:
                    f.seek(getattr(self, "log_start", 0))
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                return True
            return text.count(": disconnect from") >= \
                text.count(": connect from")
        try:
            wait_for(probes_gone, 3, "the listen probes to be closed")
        except AssertionError:
            pass

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("smtpgate did not stop on SIGTERM")
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, text, timeout=10.0):
        return wait_for(lambda: text in self.log(), timeout,
                        "log line containing %r" % text)

    def mailbox(self, name):
        """Contents (bytes) of the messages in postoffice/NAME/new, by name."""
        d = self.path("postoffice", name, "new")
        if not os.path.isdir(d):
            return []
        out = []
        for fn in sorted(os.listdir(d)):
            with open(os.path.join(d, fn), "rb") as f:
                out.append(f.read())
        return out

    def wait_mailbox(self, name, count, timeout=10.0):
        return wait_for(lambda: len(self.mailbox(name)) >= count and
                        self.mailbox(name), timeout,
                        "%d message(s) in mailbox %s" % (count, name))

    def smtp(self, port=None, **kw):
        return smtplib.SMTP("127.0.0.1", port or self.port, timeout=10, **kw)

    def raw(self, port=None):
        return Raw(port or self.port)

    def cleanup(self):
        self.kill()
        if getattr(self, "logf", None):
            self.logf.close()


class Raw:
    """A raw socket client for dialogue tests: send bytes, read replies."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout)
        self.timeout = timeout
        self.pending = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.pending)
            self.pending += chunk
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One whole (possibly multi-line) reply as (code, text)."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                break
        return int(lines[0][:3]), "\n".join(l[4:] for l in lines)

    def expect(self, code, send=None):
        """Optionally sends a line (CRLF added), then expects a reply code."""
        if send is not None:
            self.send(send + "\r\n")
        c, text = self.reply()
        if isinstance(code, int):
            ok = c == code
        else:
            ok = str(c).startswith(str(code))
        if not ok:
            raise AssertionError("expected %s after %r, got %d %s"
                                 % (code, send, c, text))
        return text

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout."""
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if r:
                try:
                    d = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                if not d:
                    return True
                self.pending += d
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def message(subject="test", body="Hello.\r\n", frm="alice@example.org",
            to="postmaster@localhost", extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\n%s"
            % (frm, to, subject, extra, body))


# ---- helpers shared by the test files ---------------------------------------

# The end-of-data reply text of an accepted message; group 1: the queue id.
ID_RE = re.compile(r"^2\.0\.0 Ok: queued as ([0-9A-F]+)$")

# What the memory tests allow the server's RSS to reach.
RSS_LIMIT_KB = 64 * 1024


def hermetic(conf=None):
    """Nothing leaves loopback: DNS and the relay host point at loopback
    ports where nothing listens, so mail for remote domains (bounces
    included) just waits in the queue. Returns the conf dict, conf's own
    settings applied last."""
    c = {"dns_servers": "127.0.0.1:%d" % free_port(),
         "relay_host": "[127.0.0.1]:%d" % free_port()}
    c.update(conf or {})
    return c


def hermetic_server(conf=None, name="it", env=None):
    """A started Server on hermetic(conf); env as for Server.start()."""
    return Server(hermetic(conf), name=name).start(env=env)


def asan_small_quarantine_env():
    """The environment for a server whose RSS a test measures: under
    AddressSanitizer, freed memory sits in ASan's quarantine (up to 256 MB)
    and would count as the server's RSS; keep that quarantine small. No
    effect on a normal build."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return dict(os.environ, ASAN_OPTIONS=(opts + ":" if opts else "") +
                "quarantine_size_mb=1:thread_local_quarantine_size_kb=64")


def exp(r, send, code, enh=None, text=None):
    """Sends send on Raw r (str: CRLF added; bytes: as they are; None:
    nothing), reads one reply, checks its code, its enhanced code (the
    whole text or the first word) and (optionally) its exact text.
    Returns the reply text."""
    if send is not None:
        r.send(send + "\r\n" if isinstance(send, str) else send)
    c, t = r.reply()
    ok = c == code
    if enh is not None:
        ok = ok and (t == enh or t.startswith(enh + " "))
    if text is not None:
        ok = ok and t == text
    assert ok, "after %r expected %s %s %s, got %d %r" % (
        send, code, enh or "", text or "", c, t)
    return t


def greet_text(s, ehlo="client.example", verb="EHLO", port=None):
    """A Raw client on server s (port: s.port by default) that got the 220
    and said `VERB EHLO` (250); no EHLO when ehlo is empty. Returns
    (Raw, text of the EHLO reply or None)."""
    r = s.raw(port)
    exp(r, None, 220)
    t = exp(r, "%s %s" % (verb, ehlo), 250) if ehlo else None
    return r, t


def greet(s, ehlo="client.example", verb="EHLO", port=None):
    """greet_text() without the EHLO reply: returns the Raw client."""
    return greet_text(s, ehlo, verb, port)[0]


def send_msg(r, frm, rcpts, data, stuffed=None):
    """One DATA transaction on an open session (every recipient must get
    250 2.1.5); data is the message, stuffed (if given) is what goes on
    the wire instead. Returns the queue id."""
    exp(r, "MAIL FROM:<%s>" % frm, 250, "2.1.0")
    for rc in rcpts:
        exp(r, "RCPT TO:<%s>" % rc, 250, "2.1.5")
    exp(r, "DATA", 354)
    wire = stuffed if stuffed is not None else data
    if isinstance(wire, str):
        wire = wire.encode()
    r.send(wire + b".\r\n")
    t = exp(r, None, 250, "2.0.0")
    m = ID_RE.match(t)
    assert m, "bad end-of-data reply %r" % t
    return m.group(1)


def settle(s, box, n, timeout=15.0):
    """Waits for n messages in mailbox box, then a little longer; returns
    them and checks that no more arrived."""
    if n:
        s.wait_mailbox(box, n, timeout)
    time.sleep(1.0)
    got = s.mailbox(box)
    assert len(got) == n, "mailbox %s: expected %d message(s), got %d:\n%r" % (
        box, n, len(got), got)
    return got


def mailboxes(s):
    """The names of the mailboxes under s's postoffice, sorted."""
    d = s.path("postoffice")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def make_cert(d, cn="localhost", cert="cert.pem", key="key.pem", days=1):
    """A self-signed certificate (RSA 2048, valid for days) and its key
    made with `openssl req`, written into directory d as cert and key.
    Returns (cert path, key path)."""
    cp, kp = os.path.join(d, cert), os.path.join(d, key)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=" + cn, "-days", str(days),
                    "-keyout", kp, "-out", cp],
                   check=True, capture_output=True, timeout=60)
    return cp, kp


def client_ctx(max_version=None, min_version=None, seclevel0=False):
    """A TLS client context that does not verify the server (self-signed
    test certificates), optionally limited to a range of versions and
    allowing every cipher (seclevel0)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def queue_json(server):
    """`smtpgate queue list --json`, parsed (its exit status must be 0)."""
    r = server.cmd("queue", "list", "--json")
    assert r.returncode == 0, "queue list --json: rc %d %s%s" % (
        r.returncode, r.stdout, r.stderr)
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError("queue list --json is not JSON (%s): %r"
                             % (e, r.stdout))


def status_counts(text):
    """The "NAME NUMBER" lines of `smtpgate status` output as a dict."""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"^(\w+) (\d+)$", ln)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def wait_exit(srv, timeout):
    """Waits up to timeout seconds for srv's process to exit; returns its
    exit status. Raises AssertionError (with the log) if it still runs."""
    try:
        return srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("smtpgate still running after %.0fs:\n%s"
                             % (timeout, srv.log()))


def vmrss_kb(pid):
    """VmRSS (kB) of process pid, 0 if it has none; OSError if there is no
    such process."""
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def tree_pids(root):
    """root and all its descendants (the server may fork helpers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def server_rss_kb(s):
    """Largest VmRSS (kB) among the processes of server s."""
    best = 0
    for p in tree_pids(s.proc.pid):
        try:
            best = max(best, vmrss_kb(p))
        except OSError:
            pass
    return best


def main():
    only = sys.argv[1:]
    failed = 0
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        name = "%s: %s" % (os.path.basename(sys.argv[0])[:-3], fn.__name__)
        t0 = time.time()
        try:
            fn()
            print("ok - %s (%.1fs)" % (name, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("not ok - %s" % name, flush=True)
            traceback.print_exc()
            for s in _live:
                if isinstance(s, Server):
                    sys.stderr.write("---- server log (%s):\n%s\n"
                                     % (s.dir, s.log()[-4000:]))
        finally:
            for s in _live:
                try:
                    s.cleanup()
                except Exception:
                    pass
            keep = os.environ.get("KEEP_TEST_DIRS")
            for s in _live:
                if isinstance(s, Server) and not keep:
                    shutil.rmtree(s.dir, ignore_errors=True)
            _live.clear()
    sys.exit(1 if failed else 0)
