"""proxy_protocol = yes: listeners expect HAProxy's PROXY header (v1 and
v2) and use the client address it carries for every policy (relay
networks, limits, logs, Received:). SPEC §2, §6."""
import socket
import struct

from harness import Raw, Server, main, test


def proxy_v1(src, dst="127.0.0.1", sport=40000, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def proxy_v2(src, dst="127.0.0.1", sport=40000, dport=25, local=False):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if local:
        return sig + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    body = (socket.inet_aton(src) + socket.inet_aton(dst) +
            struct.pack("!HH", sport, dport))
    tlv = b"\x04\x00\x03abc"		# a TLV to be skipped
    return (sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body) +
            len(tlv)) + body + tlv)


def session(s, header):
    r = Raw(s.port)
    r.send(header)
    return r


@test
def v1_client_address_is_used():
    s = Server({"proxy_protocol": "yes", "relay_networks": "127.0.0.0/8",
                "trace_clients": "198.51.100.0/24"}).start()
    # 198.51.100.7 is outside relay_networks: no relaying for it.
    r = session(s, proxy_v1("198.51.100.7"))
    r.expect(220)
    r.expect(250, "EHLO client.example")
    r.expect(250, "MAIL FROM:<a@example.org>")
    r.expect(554, "RCPT TO:<bob@remote.example>")
    r.expect(250, "RCPT TO:<postmaster@localhost>")
    r.expect(354, "DATA")
    r.send("Subject: via proxy\r\n\r\nhi\r\n.\r\n")
    r.expect(250)
    r.expect(221, "QUIT")
    msg = s.wait_mailbox("postmaster", 1)[0]
    assert b"[198.51.100.7]" in msg, msg[:300]
    assert "connect from [198.51.100.7]:40000" in s.log()
    # trace_clients matched the proxied address, not the balancer's.
    assert "[198.51.100.7]:40000 < MAIL FROM" in s.log()


@test
def v2_header_with_tlv_and_pipelined_smtp():
    s = Server({"proxy_protocol": "yes"}).start()
    # The header and the first command in one write: the command must
    # stay in the buffer after the header is drained.
    r = session(s, proxy_v2("192.0.2.9") + b"EHLO c.example\r\n")
    r.expect(220)
    r.expect(250)
    r.expect(221, "QUIT")
    assert "connect from [192.0.2.9]:40000" in s.log()


@test
def v2_local_keeps_connection_address():
    s = Server({"proxy_protocol": "yes"}).start()
    r = session(s, proxy_v2("", local=True))
    r.expect(220)
    r.expect(221, "QUIT")
    assert "connect from [127.0.0.1]:" in s.log()


@test
def garbage_instead_of_header_closes():
    s = Server({"proxy_protocol": "yes"}).start()
    r = Raw(s.port)
    r.send(b"EHLO not-a-proxy\r\n")
    assert r.closed(5), "server kept a connection without PROXY header"
    assert "PROXY protocol: not a PROXY protocol header" in s.log()
    # v1 longer than 107 bytes.
    r = Raw(s.port)
    r.send(b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n")
    assert r.closed(5)
    assert "longer than 107" in s.log()


@test
def per_ip_limit_counts_proxied_clients():
    s = Server({"proxy_protocol": "yes", "relay_networks": "10.0.0.0/8",
                "max_connections_per_ip": "2"}).start()
    held = [session(s, proxy_v1("203.0.113.5", sport=1000 + i))
            for i in range(2)]
    for r in held:
        r.expect(220)
    third = session(s, proxy_v1("203.0.113.5", sport=2000))
    third.expect(421)
    # Another client behind the same balancer is not affected.
    other = session(s, proxy_v1("203.0.113.6"))
    other.expect(220)


@test
def without_proxy_protocol_header_is_a_command():
    s = Server().start()
    r = Raw(s.port)
    r.expect(220)
    r.send(proxy_v1("198.51.100.7"))
    r.expect(500)


main()
