"""Integration-test harness: starts the real smtpgate binary on free loopback
ports in a private directory and talks to it with real clients.

Each test file defines functions decorated with @test and ends with main().
Every test prints "ok - NAME" or "not ok - NAME" (tests/run.sh counts them).
Servers started by a test are stopped (by PID) when it ends.
"""
import os
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


def free_port():
    """A TCP port that nothing listens on right now (loopback)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
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
        self.proc = subprocess.Popen(
            [BIN, "serve", "-c", self.conf_path] + list(extra_args),
            stdout=self.logf, stderr=subprocess.STDOUT, cwd=self.dir,
            env=env, pass_fds=getattr(self, "pass_fds", ()))
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, port=None, timeout=10.0):
        port = port or self.port

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("smtpgate exited with %s:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return True
            except OSError:
                return False
        wait_for(up, timeout, "smtpgate to listen on %d" % port)

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
