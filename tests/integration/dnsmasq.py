"""A throw-away DNS server for integration tests: dnsmasq (package
dnsmasq-base) on 127.0.0.1 at a free UDP+TCP port, answering from a
generated config file in a temp dir. Point smtpgate at it with
dns_servers = srv.server.

    from dnsmasq import DnsServer
    srv = DnsServer([
        ("MX", "example.test", "mx1.example.test", 10),
        ("A", "mx1.example.test", "127.0.0.1"),
        ("AAAA", "mx1.example.test", "::1"),
        ("NULLMX", "nomail.test"),          # RFC 7505 "MX 0 ."
        "txt-record=example.test,hello",    # raw dnsmasq config line
    ])
    ... dns_servers = srv.server ("127.0.0.1:PORT") ...
    srv.stop()

dnsmasq is authoritative (local=/ZONE/) for every zone given, by default
the last label of each record name ("test"): there, unknown names get
NXDOMAIN and known names without the asked type get NOERROR/NODATA.
Names outside the zones get REFUSED (no upstream servers), which a
resolver treats as a temporary failure. dnsmasq is stopped by its PID;
if harness is imported, the server is also stopped after each test.
"""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

DNSMASQ = "/usr/sbin/dnsmasq"


def _free_port():
    """A port free on 127.0.0.1 for both UDP and TCP right now."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port for dnsmasq")


def query(port, name, qtype=1, timeout=1.0):
    """Sends one UDP query; returns (rcode, answer count) or None."""
    qn = b"".join(bytes([len(p)]) + p.encode()
                  for p in name.split(".") if p) + b"\0"
    pkt = struct.pack(">HHHHHH", 0x5eed, 0x0100, 1, 0, 0, 0) + qn + \
        struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(pkt, ("127.0.0.1", port))
        r = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(r) < 12 or r[:2] != b"\x5e\xed":
        return None
    return r[3] & 15, struct.unpack(">H", r[6:8])[0]


def _config(records, zones):
    lines = []
    hosts = {}              # name -> [ip...], one host-record line each
    names = []
    for r in records:
        if isinstance(r, str):
            lines.append(r)
            continue
        kind = r[0].upper()
        if kind == "MX":
            _, domain, host, pref = r
            lines.append("mx-host=%s,%s,%d" % (domain, host, pref))
            names.append(domain)
        elif kind == "NULLMX":
            lines.append("mx-host=%s,.,0" % r[1])
            names.append(r[1])
        elif kind in ("A", "AAAA"):
            hosts.setdefault(r[1], []).append(r[2])
            names.append(r[1])
        elif kind == "CNAME":
            lines.append("cname=%s,%s" % (r[1], r[2]))
            names.append(r[1])
        elif kind == "TXT":
            lines.append("txt-record=%s,%s" % (r[1], r[2]))
            names.append(r[1])
        else:
            raise ValueError("unknown record kind %r" % (r,))
    for name, ips in hosts.items():
        lines.append("host-record=%s,%s" % (name, ",".join(ips)))
    if zones is None:
        zones = sorted({n.rstrip(".").rsplit(".", 1)[-1] for n in names})
    for z in zones:
        lines.append("local=/%s/" % z)
    return "\n".join(lines) + "\n"


class DnsServer:
    """dnsmasq on 127.0.0.1:self.port serving records (see module doc)."""

    def __init__(self, records=(), zones=None, start_timeout=3.0):
        if not os.access(DNSMASQ, os.X_OK):
            raise RuntimeError("%s not installed (package dnsmasq-base)"
                               % DNSMASQ)
        self.dir = tempfile.mkdtemp(prefix="smtpgate-dns.")
        self.conf_path = os.path.join(self.dir, "dnsmasq.conf")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")
        with open(self.conf_path, "w") as f:
            f.write(_config(records, zones))
        self.proc = None
        self.port = None
        try:
            import harness      # stopped with the test's other processes
            harness._live.append(self)
        except ImportError:
            pass
        # The port may be taken between _free_port and bind: try again.
        for _ in range(3):
            if self._start(start_timeout):
                return
        log = self.log()
        self.stop()
        raise RuntimeError("dnsmasq did not start:\n" + log)

    def _start(self, timeout):
        self.port = _free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts",
                 "--port=%d" % self.port, "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--conf-file=" + self.conf_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            if query(self.port, "ready.invalid", timeout=0.1) is not None:
                return True
        self._kill()
        return False

    @property
    def server(self):
        """The dns_servers value: "127.0.0.1:PORT"."""
        return "127.0.0.1:%d" % self.port

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()       # by PID
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        """Stops dnsmasq and removes its directory; idempotent."""
        self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    cleanup = stop      # harness calls cleanup() after each test

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # Self-test: python3 tests/integration/dnsmasq.py
    with DnsServer([("MX", "example.test", "mx1.example.test", 10),
                    ("MX", "example.test", "mx2.example.test", 20),
                    ("A", "mx1.example.test", "127.0.0.1"),
                    ("AAAA", "mx1.example.test", "::1"),
                    ("NULLMX", "nomail.test")]) as srv:
        checks = [
            (("example.test", 15), (0, 2)),
            (("nomail.test", 15), (0, 1)),
            (("mx1.example.test", 1), (0, 1)),
            (("mx1.example.test", 28), (0, 1)),
            (("mx1.example.test", 15), (0, 0)),     # NODATA
            (("nx.example.test", 15), (3, 0)),      # NXDOMAIN
            (("elsewhere.invalid", 15), (5, 0)),    # REFUSED
        ]
        bad = 0
        for (name, qtype), want in checks:
            got = query(srv.port, name, qtype)
            ok = got == want
            bad += not ok
            print("%s - %s type %d: %r" % ("ok" if ok else "not ok", name,
                                           qtype, got))
        pid = srv.proc.pid
    print("%s - stopped" % ("ok" if not os.path.exists("/proc/%d" % pid)
                            or open("/proc/%d/stat" % pid).read().split()[2]
                            == "Z" else "not ok"))
    raise SystemExit(1 if bad else 0)
