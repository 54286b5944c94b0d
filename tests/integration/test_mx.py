"""Integration tests: outbound delivery by MX lookup (SPEC §3 "Outbound
delivery": no relay_host, MX records with the A/AAAA fallback and the null
MX of RFC 7505), against dnsmasq on loopback (dnsmasq.DnsServer) and
aiosmtpd peers listening on 127.0.0.X:25 (MX targets use port 25).

When port 25 cannot be bound on loopback, every test is reported as
"ok - NAME # SKIP reason".
"""
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Server, test, main, wait_for  # noqa: E402
from dnsmasq import DnsServer  # noqa: E402
from peers import (SmtpPeer, submit, queue_entry, log_lines,  # noqa: E402
                   deferred_entry,
                   wait_log_re, wait_removed, dsns)
from dsn_check import parse_dsn  # noqa: E402

HOST = "mx.example.test"
_used = set()


def free_ip():
    """A 127.0.0.X (X in 2..250) whose port 25 can be bound right now."""
    for _ in range(100):
        x = random.randint(2, 250)
        if x in _used:
            continue
        ip = "127.0.0.%d" % x
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, 25))
        except OSError:
            continue
        finally:
            s.close()
        _used.add(x)
        return ip
    raise AssertionError("no 127.0.0.X with a free port 25")


def port25_problem():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.%d" % random.randint(2, 250), 25))
        return None
    except OSError as e:
        return "cannot bind port 25 on loopback: %s" % e
    finally:
        s.close()


def gate(dns, **conf):
    c = {"retry_min": "1s", "retry_max": "2s", "dns_servers": dns.server}
    c.update(conf)
    return Server(c, name="mx").start()


def one_dsn(s, kind="failed", timeout=15.0):
    wait_for(lambda: dsns(s, "alice"), timeout, "a DSN in alice's mailbox")
    ds = dsns(s, "alice")
    assert len(ds) == 1, "%d DSNs" % len(ds)
    return parse_dsn(ds[0], kind=kind, hostname=HOST)


def relay_re(qid, rcpt, host, ip, status):
    return (r"%s: to=<%s> relay=%s\[%s\]:25 delay=\d+\.\d\d status=%s"
            % (qid, re.escape(rcpt), re.escape(host), re.escape(ip), status))


@test
def mx_lowest_preference_first():
    ip1, ip2 = free_ip(), free_ip()
    # The preference-20 record first in the zone: order comes from the
    # preference, not from the answer.
    dns = DnsServer([("MX", "dest.test", "mx2.dest.test", 20),
                     ("MX", "dest.test", "mx1.dest.test", 10),
                     ("A", "mx1.dest.test", ip1),
                     ("A", "mx2.dest.test", ip2)])
    p1 = SmtpPeer(host=ip1, port=25).start()
    p2 = SmtpPeer(host=ip2, port=25).start()
    s = gate(dns)
    for i in range(3):
        qid = submit(s, "alice@localhost", ["bob@dest.test"],
                     subject="mx %d" % i)
        wait_log_re(s, relay_re(qid, "bob@dest.test", "mx1.dest.test", ip1,
                                "sent"), 15)
        wait_removed(s, qid)
    assert len(p1.messages) == 3 and p2.messages == [], \
        (p1.messages, p2.messages)
    assert p2.connections == 0
    assert p1.messages[0].mail_from == "alice@localhost"


@test
def mx_next_preference_when_first_is_down():
    ip1, ip2 = free_ip(), free_ip()
    dns = DnsServer([("MX", "dest.test", "mx1.dest.test", 10),
                     ("MX", "dest.test", "mx2.dest.test", 20),
                     ("A", "mx1.dest.test", ip1),
                     ("A", "mx2.dest.test", ip2)])
    SmtpPeer(host=ip1, port=25)         # never started: refused
    p2 = SmtpPeer(host=ip2, port=25).start()
    s = gate(dns)
    qid = submit(s, "alice@localhost", ["bob@dest.test"])
    m = p2.wait_messages(1, 20)[0]
    assert m.rcpt_tos == ["bob@dest.test"], m.rcpt_tos
    wait_log_re(s, relay_re(qid, "bob@dest.test", "mx2.dest.test", ip2,
                            "sent"), 10)
    wait_removed(s, qid)
    assert dsns(s, "alice") == []


@test
def mx_next_preference_when_first_refuses_at_greeting():
    """The first MX greets with 421 (RFC 5321 §3.8): the next one gets it."""
    ip1, ip2 = free_ip(), free_ip()
    dns = DnsServer([("MX", "dest.test", "mx1.dest.test", 10),
                     ("MX", "dest.test", "mx2.dest.test", 20),
                     ("A", "mx1.dest.test", ip1),
                     ("A", "mx2.dest.test", ip2)])
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind((ip1, 25))
    busy.listen(16)
    import threading
    stop = threading.Event()

    def refuse():
        busy.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = busy.accept()
            except OSError:
                continue
            try:
                c.sendall(b"421 4.3.2 mx1 too busy, try another\r\n")
            except OSError:
                pass
            c.close()
    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    try:
        p2 = SmtpPeer(host=ip2, port=25).start()
        s = gate(dns)
        qid = submit(s, "alice@localhost", ["bob@dest.test"])
        p2.wait_messages(1, 20)
        wait_removed(s, qid)
    finally:
        stop.set()
        t.join(2)
        busy.close()


@test
def a_record_fallback_without_mx():
    ip = free_ip()
    dns = DnsServer([("A", "nomx.test", ip)])
    p = SmtpPeer(host=ip, port=25).start()
    s = gate(dns)
    qid = submit(s, "alice@localhost", ["carol@nomx.test"])
    m = p.wait_messages(1, 20)[0]
    assert m.rcpt_tos == ["carol@nomx.test"], m.rcpt_tos
    wait_log_re(s, relay_re(qid, "carol@nomx.test", "nomx.test", ip,
                            "sent"), 10)
    wait_removed(s, qid)


@test
def null_mx_bounces_at_once_5_1_10():
    dns = DnsServer([("NULLMX", "nullmx.test")])
    s = gate(dns)
    t0 = time.time()
    qid = submit(s, "alice@localhost", ["dave@nullmx.test"])
    d = one_dsn(s)
    assert time.time() - t0 < 10, "not at once"
    r = d["recipients"]["dave@nullmx.test"]
    assert r["status"] == "5.1.10", r
    wait_removed(s, qid)
    lines = log_lines(s, qid, "to=<dave@nullmx.test>")
    assert len(lines) == 1 and "status=bounced" in lines[0], lines


@test
def nxdomain_bounces_5_1_2():
    dns = DnsServer([("A", "other.test", "127.0.0.9")])
    s = gate(dns)
    qid = submit(s, "alice@localhost", ["erin@nosuchdomain.test"])
    d = one_dsn(s)
    r = d["recipients"]["erin@nosuchdomain.test"]
    assert r["status"] == "5.1.2", r
    wait_removed(s, qid)
    lines = log_lines(s, qid, "to=<erin@nosuchdomain.test>")
    assert len(lines) == 1 and "status=bounced" in lines[0], lines


@test
def dns_not_answering_defers():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))       # receives queries, never answers

    class Fake:
        server = "127.0.0.1:%d" % silent.getsockname()[1]
    try:
        s = gate(Fake, queue_lifetime="1h")
        qid = submit(s, "alice@localhost", ["frank@dest.test"])
        wait_log_re(s, r"%s: to=<frank@dest\.test> .*status=deferred"
                    % qid, 60)
        e = deferred_entry(s, qid)
        assert e is not None, "message gone"
        r = e["recipients"][0]
        assert r["state"] == "deferred" and r["attempts"] >= 1, r
        assert dsns(s, "alice") == [], "bounced on a DNS timeout"
        assert not log_lines(s, qid, "status=bounced")
    finally:
        silent.close()


@test
def dns_refused_defers():
    """REFUSED from the resolver (a domain outside dnsmasq's zones) is a
    temporary failure, not a bounce."""
    dns = DnsServer([("A", "x.test", "127.0.0.9")])
    s = gate(dns, queue_lifetime="1h")
    qid = submit(s, "alice@localhost", ["gina@outside.invalid"])
    wait_log_re(s, r"%s: to=<gina@outside\.invalid> .*status=deferred"
                % qid, 30)
    assert dsns(s, "alice") == []
    assert deferred_entry(s, qid) is not None, queue_entry(s, qid)


if __name__ == "__main__":
    why = port25_problem()
    if why:
        for fn in harness._tests:
            print("ok - test_mx: %s # SKIP %s" % (fn.__name__, why),
                  flush=True)
        sys.exit(0)
    main()
