"""The forwarding rules file (EdgeOne's batch format): every field form, and every problem
reported with its line number rather than skipped."""

from __future__ import annotations

import ipaddress

import pytest

from pcapip.rules import RulesError, RuleSet, parse_rules
from pcapip.rules.parse import MAX_RULES, RESERVED

# the example, and the one on EdgeOne's "Batch Configuring Forwarding Rules" page
DOC = """\
tcp:80-90 origin.example.com 80-90 off toa
tcp:443 198.51.100.20 8443 on ppv2
udp:38888;38889 og:game-origins 38888;38889 off ppv2
tcp:123 test.origin.com 456 on ppv1
"""


def _problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "r.txt")
    return exc.value.problems


def test_the_documentations_examples() -> None:
    rules = parse_rules(DOC)
    assert [r.line for r in rules] == [1, 2, 3, 4]
    r80, r443, rudp, r123 = rules
    assert r80.transport == "tcp" and r80.forwarding == tuple(range(80, 91))
    assert r80.origin == "origin.example.com" and r80.origin_ip is None
    assert r80.origin_ports == tuple(range(80, 91)) and not r80.persistence and r80.method == "toa"
    assert r443.origin_ip == ipaddress.ip_address("198.51.100.20") and r443.persistence
    assert r443.forwarding == (443,) and r443.origin_ports == (8443,) and r443.method == "ppv2"
    assert rudp.transport == "udp" and rudp.forwarding == (38888, 38889)
    assert rudp.origin == "og:game-origins" and rudp.origin_ports == (38888, 38889)
    assert r123.forwarding == (123,) and r123.origin_ports == (456,) and r123.method == "ppv1"
    assert r123.label == "4: tcp:123 test.origin.com 456 on ppv1"


def test_fields_are_case_insensitive_and_spacing_free() -> None:
    (r,) = parse_rules("  TCP:443   Origin.Example.COM\t8443 ON PPv2  \n")
    assert (r.transport, r.origin, r.method, r.persistence) == ("tcp", "origin.example.com", "ppv2", True)
    assert r.text == "tcp:443 origin.example.com 8443 on ppv2"


def test_a_range_maps_position_by_position() -> None:
    # forwarding 80-90 -> origin 90-100 means 80->90 ... 90->100
    (r,) = parse_rules("tcp:80-90 10.0.0.1 90-100 off toa")
    assert r.forwarding_for(90) == (80,) and r.forwarding_for(100) == (90,)
    assert r.forwarding_for(95) == (85,) and r.forwarding_for(89) == ()
    assert r.covers_port(100) and not r.covers_port(101)


def test_one_origin_port_takes_every_forwarding_port() -> None:
    (r,) = parse_rules("tcp:80;81;82 10.0.0.1 8080 off ppv1\n")
    assert r.forwarding_for(8080) == (80, 81, 82) and r.forwarding_for(80) == ()
    (r,) = parse_rules("tcp:1000-1009 10.0.0.1 8080 off ppv1\n")
    assert r.forwarding_for(8080) == tuple(range(1000, 1010))


def test_ipv6_origins_blank_lines_and_comments() -> None:
    rules = parse_rules("# exported 2026-12-06\n\ntcp:443 2001:db8::20 8443 off ppv2\n   # x\n")
    (r,) = rules
    assert r.line == 3 and r.origin_ip == ipaddress.ip_address("2001:db8::20")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("sctp:80 a.example 80 off off", "protocol must be tcp or udp"),
        ("tcp80 a.example 80 off off", "protocol must be tcp or udp"),
        ("tcp:0 a.example 80 off off", "forwarding port 0 is out of 1-64999"),
        ("tcp:65000 a.example 80 off off", "forwarding port 65000 is out of 1-64999"),
        ("tcp:80 a.example 70000 off off", "origin port 70000 is out of 1-65535"),
        ("tcp:x a.example 80 off off", "is not a port number"),
        ("tcp:90-80 a.example 80 off off", "runs backwards"),
        ("tcp:80-90 a.example 80-85 off off", "forwarding 80-90 has 11 ports, origin 80-85 has 6"),
        ("tcp:80;81 a.example 80;81;82 off off", "ranges of different lengths"),
        ("tcp:80;81 a.example 80-81 off off", "an origin port range needs a forwarding port range"),
        ("tcp:80;90-95 a.example 80 off off", "a list of ports or one range, not both"),
        ("tcp:80;80 a.example 80 off off", "lists a port twice"),
        ("tcp:" + ";".join(str(p) for p in range(1, 22)) + " a.example 80 off off",
         "21 forwarding ports listed: at most 20"),
        ("udp:53 a.example 53 off toa", "toa is TCP only"),
        ("udp:53 a.example 53 off ppv1", "ppv1 is TCP only"),
        ("tcp:80 a.example 80 maybe off", "session persistence 'maybe'"),
        ("tcp:80 a.example 80 off ppv3", "pass-client-IP method 'ppv3'"),
        ("tcp:80 a.example 80 off", "expected 5 fields"),
        ("tcp:80 a.example 80 off off extra", "found 6"),
        ("tcp:80 bad..host 80 off off", "is not an IP address, a domain or og:GROUP"),
        ("tcp:80 og: 80 off off", "has no name"),
    ],
)
def test_each_bad_field_is_named(line: str, says: str) -> None:
    ((n, msg),) = _problems(f"tcp:1 ok.example 1 off off\n{line}\n")
    assert n == 2 and says in msg, msg


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_reserved_forwarding_ports(proto: str) -> None:
    for port in RESERVED[proto]:
        ((n, msg),) = _problems(f"{proto}:{port} a.example 80 off off\n")
        assert n == 1 and f"port {port} is reserved" in msg
    other = "udp" if proto == "tcp" else "tcp"
    method = "off"
    assert parse_rules(f"{other}:{RESERVED[proto][0]} a.example 80 off {method}\n")


def test_a_forwarding_port_used_twice_names_the_first_line() -> None:
    problems = _problems("tcp:80-90 a.example 80-90 off toa\n\ntcp:85 b.example 85 off off\n")
    assert problems == [(3, "tcp port 85 is already forwarded by line 1")]
    # the same port number over the other protocol is another forwarding port
    assert len(parse_rules("tcp:85 a.example 85 off off\nudp:85 a.example 85 off off\n")) == 2


def test_at_most_2000_rules() -> None:
    text = "".join(f"tcp:{p} a.example {p} off off\n" for p in range(1000, 1000 + MAX_RULES))
    assert len(parse_rules(text)) == MAX_RULES
    problems = _problems(text + "tcp:9000 a.example 9000 off off\n")
    assert problems == [(MAX_RULES + 1, f"more than {MAX_RULES} rules (the proxy takes at most {MAX_RULES})")]


def test_every_problem_is_reported_with_its_file_and_line() -> None:
    text = "tcp:1 a.example 1 off off\nbogus\nudp:7 a.example 7 off toa\n"
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "edge.rules")
    lines = str(exc.value).splitlines()
    assert lines[0].startswith("edge.rules, line 2: expected 5 fields")
    assert lines[1].startswith("edge.rules, line 3: toa is TCP only")


def test_a_file_that_cannot_be_read(tmp_path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        RuleSet.load(tmp_path / "missing.rules")
    bad = tmp_path / "latin1.rules"
    bad.write_bytes(b"tcp:80 a.example 80 off off\n# caf\xe9\n")
    with pytest.raises(RulesError, match=r"line 2: not UTF-8 text"):
        RuleSet.load(bad)


def test_line_numbers_count_newlines_only() -> None:
    """A form feed or a line separator inside a line does not start a new line (an editor
    shows one); CRLF files number as LF files."""
    ((n, msg),) = _problems("tcp:1 a.example 1 off off\r\ntcp:2 a.example\x0c 2 off\u2028 x y\r\n")
    assert n == 2 and "found 6" in msg
    assert [r.line for r in parse_rules("# c\r\n\r\ntcp:1 a.example 1 off off\r\n")] == [3]
