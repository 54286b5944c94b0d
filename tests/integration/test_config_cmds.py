#!/usr/bin/python3
"""`smtpgate check` and `smtpgate config` (SPEC §1, §2): check prints each
problem as FILE:LINE: message on stderr and exits 78, or "FILE:
configuration OK" and 0; config prints every key with its effective value,
defaults included, in a form that loads back into the same configuration;
usage errors exit 64. Also: every key that `smtpgate config` prints is
documented in doc/smtpgate.conf.5.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Server, _live, main, test  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ENOENT = "No such file or directory"

KEYS = [
    "hostname", "listen", "submission_listen", "spool_dir", "postoffice_dir",
    "local_domains", "address_map", "recipient_delimiter", "lmtp_host",
    "relay_host", "dns_servers", "relay_networks", "max_message_size",
    "max_recipients", "max_connections", "max_connections_per_ip",
    "command_timeout", "data_timeout", "tls_cert_file", "tls_key_file",
    "auth_users", "auth_require_tls", "retry_min", "retry_max",
    "queue_lifetime", "delay_warning", "delivery_concurrency",
    "proxy_protocol", "bind_retry", "user", "log", "trace_clients",
]


class TempDir:
    """A scratch directory removed after the test (harness cleanup)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="smtpgate-cfg.")
        _live.append(self)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args, cwd):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True,
                          timeout=30, cwd=cwd)


def parse_config(text):
    """`smtpgate config` output as a dict; checks the line shape."""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"^([a-z_]+) = (.*)$", ln)
        assert m, "not a 'key = value' line: %r" % ln
        assert m.group(1) not in out, "key printed twice: %s" % m.group(1)
        out[m.group(1)] = m.group(2)
    return out


def expect(p, rc, stdout=None, stderr=None):
    assert p.returncode == rc, "exit %d, expected %d\nstdout: %s\nstderr: %s" \
        % (p.returncode, rc, p.stdout, p.stderr)
    if stdout is not None:
        assert p.stdout == stdout, "stdout %r, expected %r" % (p.stdout,
                                                                 stdout)
    if stderr is not None:
        assert p.stderr == stderr, "stderr %r, expected %r" % (p.stderr,
                                                                 stderr)


@test
def check_ok():
    s = Server()
    p = s.cmd("check")
    expect(p, 0, stdout="%s: configuration OK\n" % s.conf_path, stderr="")


@test
def check_defaults_without_file():
    d = TempDir()
    p = run(["check"], d.dir)
    expect(p, 0, stdout="(defaults): configuration OK\n", stderr="")


@test
def check_reports_every_problem_with_file_and_line():
    s = Server()
    path = s.write_file("bad.conf", "\n".join([
        "# a comment",
        "hostname = mx.example.test",
        "foo = 1",
        "max_recipients = abc   # trailing comment",
        "",
        "listen 127.0.0.1:25",
        "data_timeout = 10 minutes",
        "listen = 127.0.0.1:0",
        "relay_networks = 10.0.0.1/8",
        "proxy_protocol = maybe",
        "max_message_size = 100",
    ]) + "\n")
    p = s.cmd("check", "-c", path)
    expect(p, 78, stdout="", stderr="".join(
        "%s:%s\n" % (path, m) for m in [
            "3: unknown key 'foo'",
            "4: bad value for max_recipients: 'abc' (expected a number)",
            "6: expected 'key = value', got 'listen 127.0.0.1:25'",
            "7: bad value for data_timeout: '10 minutes' (expected a "
            "duration like 30s, 5m, 1h or 5d)",
            "8: bad value for listen: '127.0.0.1:0' (port must be a number "
            "1-65535)",
            "9: bad value for relay_networks: '10.0.0.1/8' (host bits set "
            "beyond the prefix length; did you mean 10.0.0.0/8?)",
            "10: bad value for proxy_protocol: 'maybe' (expected yes or no)",
            "11: bad value for max_message_size: '100' (must be at least "
            "1k)",
        ]))


@test
def check_combinations():
    s = Server({"retry_min": "2h", "tls_cert_file": "cert.pem"})
    lines = {k: i + 1 for i, k in enumerate(s.conf)}
    p = s.cmd("check")
    expect(p, 78, stdout="", stderr=(
        "%s:%d: retry_min (2h) is greater than retry_max (1h)\n"
        "%s:%d: tls_cert_file is set but tls_key_file is not: STARTTLS "
        "needs both\n") % (s.conf_path, lines["retry_min"], s.conf_path,
                           lines["tls_cert_file"]))


@test
def check_overrides():
    s = Server()
    p = s.cmd("check", "-o", "max_recipients=5", "-o", "nonsense",
              "-o", "foo=bar", "-o", "max_connections=0")
    expect(p, 78, stdout="", stderr=(
        "-o:2: expected KEY=VALUE, got 'nonsense'\n"
        "-o:3: unknown key 'foo'\n"
        "-o:4: bad value for max_connections: '0' (expected a number "
        ">= 1)\n"))
    # Overrides come after the file and win...
    s.conf["max_recipients"] = "7"
    s.write_conf()
    p = s.cmd("config", "-o", "max_recipients=10")
    expect(p, 0)
    assert "\nmax_recipients = 10\n" in p.stdout, p.stdout
    # ...but a bad line in the file is still an error in the file.
    s.conf["max_recipients"] = "lots"
    s.write_conf()
    p = s.cmd("check", "-o", "max_recipients=10")
    expect(p, 78, stdout="")
    assert p.stderr.startswith(s.conf_path + ":"), p.stderr


@test
def check_missing_file():
    d = TempDir()
    p = run(["check", "-c", "nope.conf"], d.dir)
    expect(p, 78, stdout="", stderr="nope.conf: cannot open: %s\n" % ENOENT)
    p = run(["check", "-c", d.dir], d.dir)
    expect(p, 78, stdout="", stderr="%s: cannot read: Is a directory\n"
           % d.dir)


@test
def check_usage():
    s = Server()
    for args in (["check", "extra"], ["check", "-c"], ["check", "-x"],
                 ["config", "extra"], ["config", "-o"]):
        p = s.cmd(*args) if "-c" not in args else run(args, s.dir)
        expect(p, 64, stdout="")
        assert "usage: smtpgate" in p.stderr, p.stderr


@test
def check_auth_users_file():
    s = Server({"auth_users": "users"})
    p = s.cmd("check")
    expect(p, 78, stdout="", stderr="%s: cannot open: %s\n"
           % (s.path("users"), ENOENT))
    s.write_file("users", "# users\nalice:$6$salt$hash\n\nbob:$y$j9T$a$b\n")
    expect(s.cmd("check"), 0, stderr="")
    s.write_file("users", "alice:$6$salt$hash\nbob\ncarol:plain\n:$6$x\n"
                 "alice:$6$y\n")
    users = s.path("users")
    p = s.cmd("check")
    expect(p, 78, stdout="", stderr=(
        "{0}:2: expected user:crypt-hash\n"
        "{0}:3: password hash must be in crypt(3) form, starting with '$'\n"
        "{0}:4: empty user name\n"
        "{0}:5: user 'alice' is given twice\n").format(users))


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True, timeout=60)


@test
def check_tls_files():
    s = Server({"tls_cert_file": "cert.pem", "tls_key_file": "key.pem"})
    p = s.cmd("check")
    expect(p, 78, stdout="", stderr="%s: cannot open: %s\n%s: cannot open: "
           "%s\n" % (s.path("cert.pem"), ENOENT, s.path("key.pem"), ENOENT))
    for name in ("key", "other"):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", name + ".pem", cwd=s.dir)
    openssl("req", "-new", "-x509", "-key", "key.pem", "-out", "cert.pem",
            "-days", "2", "-subj", "/CN=mx.example.test", cwd=s.dir)
    expect(s.cmd("check"), 0, stderr="")
    p = s.cmd("check", "-o", "tls_key_file=other.pem")
    expect(p, 78, stdout="", stderr="%s: the private key does not match the "
           "certificate in %s\n" % (s.path("other.pem"), s.path("cert.pem")))
    s.write_file("junk.pem", "not a certificate\n")
    p = s.cmd("check", "-o", "tls_cert_file=junk.pem")
    expect(p, 78, stdout="")
    assert p.stderr.startswith("%s: cannot load the certificate: "
                               % s.path("junk.pem")), p.stderr


@test
def check_address_map():
    s = Server({"address_map": "aliases"})
    p = s.cmd("check")
    expect(p, 78, stdout="")
    assert s.path("aliases") in p.stderr, p.stderr
    s.write_file("aliases", "# map\npostmaster  alice\n")
    expect(s.cmd("check"), 0, stderr="")


@test
def config_prints_every_key_with_defaults():
    d = TempDir()
    p = run(["config"], d.dir)
    expect(p, 0, stderr="")
    conf = parse_config(p.stdout)
    assert list(conf) == KEYS, list(conf)
    dirp = os.path.realpath(d.dir)
    want = {
        "listen": "127.0.0.1:2525", "submission_listen": "127.0.0.1:2587",
        "spool_dir": dirp + "/var/spool",
        "postoffice_dir": dirp + "/var/postoffice",
        "local_domains": "localhost", "address_map": "",
        "recipient_delimiter": "+", "lmtp_host": "", "relay_host": "",
        "dns_servers": "", "relay_networks": "127.0.0.0/8, ::1/128",
        "max_message_size": "25M", "max_recipients": "1000",
        "max_connections": "10000", "max_connections_per_ip": "50",
        "command_timeout": "5m", "data_timeout": "10m", "tls_cert_file": "",
        "tls_key_file": "", "auth_users": "", "auth_require_tls": "yes",
        "retry_min": "5m", "retry_max": "1h", "queue_lifetime": "5d",
        "delay_warning": "4h", "delivery_concurrency": "20",
        "proxy_protocol": "no", "bind_retry": "60s", "user": "smtpgate",
        "log": "stderr", "trace_clients": "",
    }
    for k, v in want.items():
        assert conf[k] == v, "%s = %r, expected %r" % (k, conf[k], v)
    assert conf["hostname"] == socket.gethostname(), conf["hostname"]


@test
def config_shows_file_and_overrides():
    s = Server({"max_message_size": "10240k", "retry_max": "7200",
                "local_domains": "Example.TEST localhost.",
                "relay_networks": "10.0.0.0/8 192.168.0.0/16",
                "address_map": "etc/aliases", "log": "syslog"})
    p = s.cmd("config", "-o", "proxy_protocol=on", "-o", "bind_retry=2m")
    expect(p, 0, stderr="")
    conf = parse_config(p.stdout)
    assert conf["hostname"] == "mx.example.test"
    assert conf["listen"] == "127.0.0.1:%d" % s.port
    assert conf["max_message_size"] == "10M"
    assert conf["retry_max"] == "2h"
    assert conf["local_domains"] == "example.test, localhost"
    assert conf["relay_networks"] == "10.0.0.0/8, 192.168.0.0/16"
    # Relative paths resolve against the file's directory, not the cwd.
    assert conf["spool_dir"] == os.path.join(s.dir, "spool")
    assert conf["address_map"] == os.path.join(s.dir, "etc/aliases")
    assert conf["log"] == "syslog"
    assert conf["proxy_protocol"] == "yes"
    assert conf["bind_retry"] == "2m"
    d = TempDir()
    p2 = run(["config", "-c", s.conf_path, "-o", "proxy_protocol=on",
              "-o", "bind_retry=2m"], d.dir)
    expect(p2, 0, stdout=p.stdout)


@test
def config_output_loads_back():
    s = Server({"relay_host": "[192.0.2.1]:2525", "dns_servers":
                "127.0.0.1:5353 [::1]:53", "trace_clients": "203.0.113.7",
                "auth_users": "users", "delay_warning": "0",
                "recipient_delimiter": "", "lmtp_host": "unix:/run/lmtp"})
    s.write_file("users", "alice:$6$salt$hash\n")
    p = s.cmd("config")
    expect(p, 0, stderr="")
    # Loaded from another directory: every path in it is absolute.
    d = TempDir()
    printed = os.path.join(d.dir, "printed.conf")
    with open(printed, "w") as f:
        f.write(p.stdout)
    p2 = run(["config", "-c", printed], d.dir)
    expect(p2, 0, stdout=p.stdout, stderr="")
    expect(run(["check", "-c", printed], d.dir), 0,
           stdout="%s: configuration OK\n" % printed, stderr="")


@test
def config_errors_exit_78():
    s = Server({"max_recipients": "none"})
    lines = {k: i + 1 for i, k in enumerate(s.conf)}
    p = s.cmd("config")
    expect(p, 78, stdout="", stderr="%s:%d: bad value for max_recipients: "
           "'none' (expected a number)\n"
           % (s.conf_path, lines["max_recipients"]))
    d = TempDir()
    expect(run(["config", "-c", "missing.conf"], d.dir), 78, stdout="",
           stderr="missing.conf: cannot open: %s\n" % ENOENT)


@test
def man_page_documents_every_key():
    with open(os.path.join(ROOT, "doc", "smtpgate.conf.5")) as f:
        man = f.read()
    d = TempDir()
    conf = parse_config(run(["config"], d.dir).stdout)
    missing = [k for k in conf
               if not re.search(r"^\.It Ic %s\b" % re.escape(k), man, re.M)
               and not re.search(r"^\.B %s\b" % re.escape(k), man, re.M)]
    assert not missing, "keys missing from smtpgate.conf.5: %s" % missing


if __name__ == "__main__":
    main()
