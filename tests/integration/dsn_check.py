"""Checks a delivery status notification (bounce or delay warning) that
smtpgate produced: RFC 3464 multipart/report structure, read with Python's
email package (so it is judged by an independent parser, not by our own).

Used by integration tests:

    from dsn_check import parse_dsn, check_dsn, is_dsn
    rcpts = check_dsn(raw_bytes, kind="failed", hostname="mx.example.test")
    assert rcpts["bob@remote.example"]["status"] == "5.1.1"

check_dsn() returns a dict: final recipient address (lowercased) -> dict of
that recipient's DSN fields, names lowercased, values unfolded ("action",
"status", "final-recipient", "diagnostic-code", "remote-mta", ...; plus
"address", the address without its "rfc822;" type). parse_dsn() returns
everything (see its docstring). Both raise AssertionError with a reason when
the message is not a well-formed DSN.

Command line (self-test / troubleshooting):
    /usr/bin/python3 tests/integration/dsn_check.py FILE...
prints the parsed fields of each FILE as JSON; exit status 0 when every
FILE is a well-formed DSN, 1 otherwise.
"""
import email
import email.parser
import email.policy
import json
import re
import sys

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
STATUS_RE = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")
SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
}
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
HEADER_TYPES = ("text/rfc822-headers", "message/global-headers",
                "message/rfc822", "message/global")


def _unfold(value):
    """A header value with folding undone (RFC 5322 §2.2.3)."""
    return re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()


def _fields(items):
    """[(name, value)] -> {lowercase name: unfolded value} (no duplicates)."""
    out = {}
    for name, value in items:
        key = name.lower()
        assert key not in out, "field %s appears twice in one group" % name
        out[key] = _unfold(value)
    return out


def _status_groups(part):
    """The field groups of a (global-)delivery-status part: a list of
    {name: value}, the per-message group first."""
    payload = part.get_payload()
    ctype = part.get_content_type()
    if ctype == "message/delivery-status":
        # The email package splits this type into one Message per group.
        assert isinstance(payload, list) and payload, \
            "message/delivery-status part has no field groups"
        return [_fields(m.items()) for m in payload]
    # message/global-delivery-status: parsed as one message whose header is
    # the first group and whose body holds the others.
    assert isinstance(payload, list) and len(payload) == 1, \
        "%s part is not parsed as fields" % ctype
    first = payload[0]
    groups = [_fields(first.items())]
    rest = first.get_payload(decode=True) or b""
    text = rest.decode("utf-8", "strict").replace("\r\n", "\n")
    parser = email.parser.Parser(policy=email.policy.SMTPUTF8)
    for block in re.split(r"\n[ \t]*\n", text):
        if block.strip():
            groups.append(_fields(parser.parsestr(block + "\n",
                                                  headersonly=True).items()))
    return groups


def _address(value):
    """"rfc822; a@b" -> "a@b" (also "utf-8;")."""
    m = re.match(r"^\s*([A-Za-z0-9-]+)\s*;\s*(.*)$", value)
    assert m, "address field %r has no address-type" % value
    return m.group(2).strip()


def _lines_ok(data):
    for n, line in enumerate(data.split(b"\n"), 1):
        assert len(line.rstrip(b"\r")) <= 998, \
            "line %d is %d octets long (RFC 5322 limit 998)" % (n, len(line))


def is_dsn(data):
    """True when data (bytes) looks like a DSN (multipart/report with
    report-type=delivery-status), without checking it further."""
    msg = email.message_from_bytes(data, policy=email.policy.SMTPUTF8)
    return (msg.get_content_type() == "multipart/report" and
            (msg.get_param("report-type") or "").lower() == "delivery-status")


def parse_dsn(data, kind=None, hostname=None):
    """Parses and checks a DSN (bytes, as delivered: a Maildir file with
    Return-Path:/Delivered-To: first is fine). kind: "failed"/"delayed" to
    require; hostname: the Reporting-MTA / MAILER-DAEMON host to require.

    Returns a dict:
      kind            "failed" or "delayed" (the recipients' Action)
      headers         {lowercase name: value} of the DSN's own header
      subject, from, to, message_id
      text            the human-readable part (str)
      per_message     {field: value}: reporting-mta, arrival-date, ...
      recipients      {address: {field: value, "address": address}}
      order           the recipient addresses in report order
      original_headers  str of the returned header section, or None
    """
    assert isinstance(data, (bytes, bytearray)), "give the raw bytes"
    _lines_ok(data)
    msg = email.message_from_bytes(bytes(data), policy=email.policy.SMTPUTF8)
    hdrs = {k.lower(): _unfold(v) for k, v in msg.items()}

    if "return-path" in hdrs:
        assert hdrs["return-path"] == "<>", \
            "a DSN is sent from the null sender, Return-Path is %r" \
            % hdrs["return-path"]
    assert msg.get_content_type() == "multipart/report", \
        "Content-Type is %s, not multipart/report" % msg.get_content_type()
    assert (msg.get_param("report-type") or "").lower() == "delivery-status", \
        "report-type is %r" % msg.get_param("report-type")
    assert msg.get_boundary(), "no boundary"
    frm = hdrs.get("from", "")
    assert re.search(r"MAILER-DAEMON@", frm, re.I), "From: is %r" % frm
    if hostname:
        assert ("@%s" % hostname).lower() in frm.lower(), \
            "From: %r is not MAILER-DAEMON@%s" % (frm, hostname)
    assert hdrs.get("auto-submitted", "").lower() == "auto-replied", \
        "Auto-Submitted: is %r (RFC 3834)" % hdrs.get("auto-submitted")
    for name in ("to", "date", "message-id", "subject", "mime-version"):
        assert hdrs.get(name), "no %s: header" % name
    assert not msg.defects, "defects in the DSN: %r" % msg.defects

    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) in (2, 3), \
        "a DSN has 2 or 3 parts, this one %d" % len(parts)
    assert parts[0].get_content_type() == "text/plain", \
        "first part is %s" % parts[0].get_content_type()
    charset = parts[0].get_content_charset() or "us-ascii"
    text = parts[0].get_payload(decode=True).decode(charset)
    assert parts[1].get_content_type() in STATUS_TYPES, \
        "second part is %s" % parts[1].get_content_type()
    original = None
    if len(parts) == 3:
        ctype = parts[2].get_content_type()
        assert ctype in HEADER_TYPES, "third part is %s" % ctype
        if ctype.startswith("text/"):
            original = parts[2].get_payload(decode=True).decode(
                parts[2].get_content_charset() or "us-ascii", "replace")
        else:
            inner = parts[2].get_payload()[0]
            original = "".join("%s: %s\n" % (k, v) for k, v in inner.items())

    groups = _status_groups(parts[1])
    per_message, rgroups = groups[0], groups[1:]
    assert re.match(r"^dns\s*;\s*\S+$", per_message.get("reporting-mta", "")), \
        "Reporting-MTA is %r" % per_message.get("reporting-mta")
    if hostname:
        assert _address(per_message["reporting-mta"]) == hostname, \
            "Reporting-MTA is %r" % per_message["reporting-mta"]
    assert rgroups, "no per-recipient field group"

    recipients, order, actions = {}, [], set()
    for g in rgroups:
        assert "final-recipient" in g, "group without Final-Recipient: %r" % g
        assert g.get("action") in ACTIONS, "Action is %r" % g.get("action")
        m = STATUS_RE.match(g.get("status", ""))
        assert m, "Status is %r" % g.get("status")
        if g["action"] == "failed":
            assert m.group(1) in "45", "failed with Status %s" % g["status"]
        if g["action"] == "delayed":
            assert m.group(1) == "4", "delayed with Status %s" % g["status"]
        if "original-recipient" in g:
            _address(g["original-recipient"])
        addr = _address(g["final-recipient"])
        g["address"] = addr
        key = addr.lower()
        assert key not in recipients, "%s reported twice" % addr
        recipients[key] = g
        order.append(key)
        actions.add(g["action"])
    assert len(actions) == 1, "mixed actions in one DSN: %r" % actions
    action = actions.pop()
    if action in SUBJECTS:
        assert hdrs["subject"] == SUBJECTS[action], \
            "Subject %r for action %s" % (hdrs["subject"], action)
    if kind:
        assert action == kind, "a %s DSN, expected %s" % (action, kind)
    return {
        "kind": action,
        "headers": hdrs,
        "subject": hdrs["subject"],
        "from": frm,
        "to": hdrs["to"],
        "message_id": hdrs["message-id"],
        "text": text,
        "per_message": per_message,
        "recipients": recipients,
        "order": order,
        "original_headers": original,
    }


def check_dsn(data, kind=None, hostname=None):
    """parse_dsn(...)["recipients"]: address -> that recipient's fields."""
    return parse_dsn(data, kind=kind, hostname=hostname)["recipients"]


def main(argv):
    rc = 0
    for path in argv[1:]:
        with open(path, "rb") as f:
            data = f.read()
        try:
            d = parse_dsn(data)
        except AssertionError as e:
            print("%s: not a well-formed DSN: %s" % (path, e))
            rc = 1
            continue
        print(json.dumps({"file": path, "kind": d["kind"],
                          "subject": d["subject"], "to": d["to"],
                          "per_message": d["per_message"],
                          "recipients": [d["recipients"][a]
                                         for a in d["order"]],
                          "has_original_headers":
                              d["original_headers"] is not None},
                         indent=2, ensure_ascii=False))
    if len(argv) < 2:
        print("usage: dsn_check.py FILE...", file=sys.stderr)
        rc = 64
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
