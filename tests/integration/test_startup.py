#!/usr/bin/python3
"""Start-up and restart while mail is arriving (SPEC §4), the failure
smtpgate exists to fix: a busy listen address is retried once a second for
bind_retry and then named with its holder (exit 75); a holder that lets go
is waited for; a restart right after SIGTERM binds at once despite TIME_WAIT
and clients knocking; systemd socket activation; connections that arrive
during start-up get their greeting; one busy listener does not keep the
others from serving.
"""
import fcntl
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, Server, free_port, main, message, test,  # noqa: E402
                     wait_for, wait_exit)

BUSY = "Address already in use"


def hold_port(port, host="127.0.0.1"):
    """A listening socket on port, bound WITHOUT SO_REUSEADDR (on Linux
    SO_REUSEADDR would not let anybody bind over a LISTEN socket anyway)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    s.bind((host, port))
    s.listen(16)
    return s


def lines_with(text, *words):
    return [ln for ln in text.splitlines() if all(w in ln for w in words)]


def retry_lines(log, addr):
    """Lines about a failed attempt on addr (not the final fatal one)."""
    return [ln for ln in lines_with(log, addr, BUSY) if "fatal" not in ln]


def deliver(srv, rcpt="postmaster@localhost", port=None, subject="test"):
    """One whole SMTP transaction with smtplib; returns the queue reply."""
    c = srv.smtp(port=port)
    try:
        code, _ = c.ehlo("client.example.org")
        assert code == 250, "EHLO: %d" % code
        c.mail("alice@example.org")
        code, text = c.rcpt(rcpt)
        assert code == 250, "RCPT %s: %d %s" % (rcpt, code, text)
        code, text = c.data(message(subject=subject, to=rcpt))
        assert code == 250, "DATA: %d %s" % (code, text)
        assert b"queued as" in text, text
        return text
    finally:
        try:
            c.quit()
        except Exception:
            c.close()


def time_wait_count(port):
    """Sockets in TIME_WAIT whose local port is port (Linux /proc)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for ln in f:
            fields = ln.split()
            if fields[3] == "06" and int(fields[1].split(":")[1], 16) == port:
                n += 1
    return n


@test
def busy_port_retried_then_exit_75():
    s = Server({"bind_retry": "3s"}, name="busy")
    addr = "127.0.0.1:%d" % s.port
    holder = hold_port(s.port)
    try:
        t0 = time.time()
        s.start(wait=False)
        rc = wait_exit(s, 15)
        took = time.time() - t0
    finally:
        holder.close()
    log = s.log()
    assert rc == 75, "exit status %s, expected 75:\n%s" % (rc, log)
    assert took >= 2.0, "gave up after %.1fs, bind_retry is 3s" % took
    tries = retry_lines(log, addr)
    assert len(tries) >= 2, ("expected >= 2 retry lines naming %s and %r, "
                             "got %d:\n%s" % (addr, BUSY, len(tries), log))
    me = "pid %d" % os.getpid()
    final = lines_with(log, addr, BUSY, me)
    assert final, ("no line names the address %s, the reason %r and the "
                   "holder %r:\n%s" % (addr, BUSY, me, log))
    assert lines_with(log, "fatal", addr, BUSY), \
        "no fatal line naming %s:\n%s" % (addr, log)
    assert "(python" in final[-1], \
        "holder's command name missing: %r" % final[-1]


@test
def holder_lets_go_then_serves():
    s = Server({"bind_retry": "10s"}, name="letgo")
    addr = "127.0.0.1:%d" % s.port
    holder = hold_port(s.port)
    released = threading.Event()

    def release():
        holder.close()
        released.set()
    timer = threading.Timer(2.0, release)
    timer.start()
    try:
        s.start(wait=False)
        # connect() would succeed against the holder: wait for the log.
        s.wait_log("listening on %s" % addr, timeout=12)
        assert released.is_set(), "listening before the holder let go"
        assert s.proc.poll() is None, s.log()
    finally:
        timer.cancel()
        holder.close()
    log = s.log()
    assert len(retry_lines(log, addr)) >= 1, \
        "no retry line for %s while it was busy:\n%s" % (addr, log)
    deliver(s, subject="after the holder let go")
    s.wait_mailbox("postmaster", 1)
    assert s.stop() == 0, s.log()


class Knocker(threading.Thread):
    """Keeps connecting to a port (and dropping the connection) until
    stopped, as a routing host with mail to send would."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_ev = threading.Event()
        self.attempts = 0

    def run(self):
        while not self.stop_ev.is_set():
            self.attempts += 1
            try:
                c = socket.create_connection(("127.0.0.1", self.port), 1)
                c.close()
            except OSError:
                pass
            time.sleep(0.005)

    def stop(self):
        self.stop_ev.set()
        self.join(5)


@test
def restart_at_once_after_sigterm():
    s = Server({"bind_retry": "10s"}, name="restart")
    addr = "127.0.0.1:%d" % s.port
    s.start()
    # Many short sessions that the server closes first: TIME_WAIT on the
    # listening port's side.
    for i in range(40):
        r = s.raw()
        r.expect(220)
        r.expect(221, "QUIT")
        r.closed(2)
        r.close()
    deliver(s, subject="before restart")
    # Idle sessions still open when SIGTERM comes (closed by the server).
    idle = [s.raw() for _ in range(10)]
    for r in idle:
        r.expect(220)
    knock = Knocker(s.port)
    knock.start()
    try:
        time.sleep(0.2)
        assert s.stop() == 0, "first instance: exit %s\n%s" % (
            s.proc.returncode, s.log())
        for r in idle:
            r.close()
        mark = len(s.log())
        assert time_wait_count(s.port) > 0, "no TIME_WAIT left to test with"
        t0 = time.time()
        s.start(wait=False)
        wait_for(lambda: "listening on %s" % addr in s.log()[mark:], 5,
                 "the new instance to listen on %s" % addr)
        took = time.time() - t0
    finally:
        knock.stop()
    new = s.log()[mark:]
    assert not retry_lines(new, addr), \
        "restart retried the bind:\n%s" % new
    assert BUSY not in new, new
    assert took < 2.0, "restart took %.1fs:\n%s" % (took, new)
    assert knock.attempts > 10, "the knocker did not run"
    deliver(s, subject="after restart")
    s.wait_mailbox("postmaster", 2)
    assert s.stop() == 0, s.log()


def start_activated(s, lsock):
    """Starts s the way systemd would with lsock as its only socket:
    fd 3, LISTEN_FDS=1, LISTEN_PID = smtpgate's own pid."""
    # Somewhere above 3, close-on-exec, so that dup2 to 3 is a real dup.
    hi = fcntl.fcntl(lsock.fileno(), fcntl.F_DUPFD_CLOEXEC, 30)

    def child_setup():
        os.dup2(hi, 3)      # dup2 clears FD_CLOEXEC on fd 3

    # The shell exports its own pid, then execs smtpgate in that process.
    argv = ["/bin/sh", "-c",
            'LISTEN_PID=$$; LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; '
            'exec "$0" "$@"', BIN, "serve", "-c", s.conf_path]
    env = dict(os.environ)
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(k, None)
    s.logf = open(s.logpath, "ab")
    try:
        s.proc = subprocess.Popen(argv, stdout=s.logf,
                                  stderr=subprocess.STDOUT, cwd=s.dir,
                                  env=env, close_fds=False,
                                  preexec_fn=child_setup)
    finally:
        os.close(hi)
    # Only the child holds the socket now: whatever answers is smtpgate.
    lsock.close()


def check_activated(s, name):
    """smtpgate serves mail through the socket it was handed, named name
    in its log, and never tries to bind that address itself."""
    s.wait_listening(timeout=10)
    deliver(s, subject="through systemd's socket")
    s.wait_mailbox("postmaster", 1)
    time.sleep(1.2)     # a retry, if any, would be logged by now
    log = s.log()
    assert BUSY not in log, ("smtpgate tried to bind the address it was "
                             "handed:\n%s" % log)
    assert s.proc.poll() is None, log
    assert "listening on %s" % name in log, log
    assert s.stop() == 0, s.log()


@test
def systemd_socket_activation():
    # The socket systemd would have made, on the configured address.
    s = Server({"bind_retry": "3s"}, name="systemd")
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", s.port))
    lsock.listen(128)
    start_activated(s, lsock)
    check_activated(s, "127.0.0.1:%d" % s.port)


@test
def systemd_socket_activation_other_spelling():
    # listen says "localhost:PORT"; systemd's socket is 127.0.0.1:PORT.
    s = Server({"bind_retry": "3s"}, name="systemd2")
    s.conf["listen"] = "localhost:%d" % s.port
    s.write_conf()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", s.port))
    lsock.listen(128)
    start_activated(s, lsock)
    check_activated(s, "127.0.0.1:%d" % s.port)


@test
def systemd_socket_activation_dual_stack():
    # What ListenStream=PORT gives: [::]:PORT taking IPv4 too; listen is
    # "*:PORT". smtpgate must not fight its own socket for the port.
    s = Server({"bind_retry": "3s"}, name="systemd6")
    s.conf["listen"] = "*:%d" % s.port
    s.write_conf()
    try:
        lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("::", s.port))
    except OSError as e:
        print("# skipped: no IPv6 (%s)" % e)
        return
    lsock.listen(128)
    start_activated(s, lsock)
    check_activated(s, "[::]:%d" % s.port)


def greet_during_startup(port, n, deadline):
    """n clients connect in a tight loop until the port accepts; each must
    then get a 220 greeting (nothing reset or closed). Returns a list of
    problems (empty when all is well) and the number of refused connects
    (showing the clients really were early)."""
    problems = []
    refused = [0]
    lock = threading.Lock()
    conns = []

    def client(i):
        c = None
        while time.time() < deadline:
            try:
                c = socket.create_connection(("127.0.0.1", port), 2)
                break
            except ConnectionRefusedError:
                with lock:
                    refused[0] += 1
                time.sleep(0.001)
            except OSError as e:
                with lock:
                    problems.append("client %d: connect: %r" % (i, e))
                return
        if c is None:
            with lock:
                problems.append("client %d: never connected" % i)
            return
        c.settimeout(max(1.0, deadline - time.time()))
        buf = b""
        try:
            while b"\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    raise EOFError("closed before the greeting")
                buf += d
        except Exception as e:
            with lock:
                problems.append("client %d: %r (got %r)" % (i, e, buf))
            c.close()
            return
        if not buf.startswith(b"220 "):
            with lock:
                problems.append("client %d: greeting %r" % (i, buf))
        with lock:
            conns.append(c)

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    return threads, conns, problems, refused


def finish_clients(threads, conns, problems):
    for t in threads:
        t.join(30)
    # All n greeted connections were open at once; now end them properly.
    for c in conns:
        try:
            c.sendall(b"QUIT\r\n")
            d = c.recv(4096)
            if not d.startswith(b"221"):
                problems.append("QUIT answered %r" % d)
        except OSError as e:
            problems.append("QUIT: %r" % e)
        finally:
            c.close()


@test
def connections_during_startup_served():
    s = Server(name="early")
    threads, conns, problems, refused = greet_during_startup(
        s.port, 20, time.time() + 20)
    time.sleep(0.05)        # the clients are knocking before we start
    s.start(wait=False)
    finish_clients(threads, conns, problems)
    assert not problems, "\n".join(problems) + "\n" + s.log()
    assert len(conns) == 20, "%d of 20 greeted" % len(conns)
    assert refused[0] > 0, "clients were not early"
    assert s.proc.poll() is None, s.log()
    deliver(s, subject="after the rush")
    s.wait_mailbox("postmaster", 1)
    assert s.stop() == 0, s.log()


@test
def connections_during_startup_with_queued_mail():
    # Mail for a relay that is down stays queued: the restart has a spool
    # to recover while clients knock.
    dead = free_port()
    s = Server({"relay_host": "[127.0.0.1]:%d" % dead,
                "retry_min": "1h"}, name="earlyq")
    s.start()
    c = s.smtp()
    c.ehlo("client.example.org")
    for i in range(60):
        c.mail("alice@example.org")
        code, text = c.rcpt("bob%d@remote.example.net" % i)
        assert code == 250, "RCPT: %d %s" % (code, text)
        code, text = c.data(message(subject="queued %d" % i,
                                    to="bob%d@remote.example.net" % i,
                                    body="x" * 2000 + "\r\n"))
        assert code == 250, "DATA: %d %s" % (code, text)
    c.quit()
    assert s.stop() == 0, s.log()
    n_queued = sum(len(f) for _, _, f in os.walk(s.path("spool")))
    assert n_queued >= 60, "only %d spool files after 60 messages" % n_queued

    threads, conns, problems, refused = greet_during_startup(
        s.port, 20, time.time() + 20)
    time.sleep(0.05)
    s.start(wait=False)
    finish_clients(threads, conns, problems)
    assert not problems, "\n".join(problems) + "\n" + s.log()[-3000:]
    assert len(conns) == 20, "%d of 20 greeted" % len(conns)
    deliver(s, subject="after the rush")
    s.wait_mailbox("postmaster", 1)
    assert s.stop() == 0, s.log()


@test
def one_busy_listener_others_serve():
    p2 = free_port()
    s = Server({"listen": "127.0.0.1:%d, 127.0.0.1:%d" % (free_port(), p2),
                "bind_retry": "20s"}, name="twolisten")
    p1 = int(s.conf["listen"].split(",")[0].rsplit(":", 1)[1])
    busy = "127.0.0.1:%d" % p1
    holder = hold_port(p1)
    try:
        s.start(wait=False)
        s.wait_log("listening on 127.0.0.1:%d" % p2, timeout=5)
        # The free listener serves mail while the busy one is retried.
        deliver(s, port=p2, subject="while the other one is busy")
        s.wait_mailbox("postmaster", 1)
        wait_for(lambda: len(retry_lines(s.log(), busy)) >= 2, 5,
                 "2 retry lines for %s" % busy)
        assert s.proc.poll() is None, s.log()
        assert "listening on %s" % busy not in s.log()
    finally:
        holder.close()
    # Once it is free, the busy address is taken and serves too.
    s.wait_log("listening on %s" % busy, timeout=5)
    deliver(s, port=p1, subject="on the formerly busy one")
    s.wait_mailbox("postmaster", 2)
    assert s.stop() == 0, s.log()


if __name__ == "__main__":
    main()
