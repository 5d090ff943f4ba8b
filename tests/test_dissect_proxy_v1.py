"""PROXY v1: every rule of spec section 2.1 with an accepting and a rejecting case.

Expected values come from the spec text and the inputs themselves, never from
running the parser; each rejection must name its rule (the expert code).
"""

from __future__ import annotations

import pytest

from pcapip.dissect import ParseState, Severity, parse_proxy


def ok(line: bytes):
    p = parse_proxy(line)
    assert p.state is ParseState.OK, (line, p.experts)
    assert p.header is not None
    return p


def bad(line: bytes, code: str):
    p = parse_proxy(line)
    assert p.state is ParseState.MALFORMED, (line, p.state, p.experts)
    errors = [e for e in p.experts if e.severity is Severity.ERROR]
    assert errors and errors[0].code == code, (line, [(e.code, e.message) for e in p.experts])
    assert p.reason == errors[0].message
    return p


# --- accepted lines: (line, family, src, dst, sport, dport) -------------------------------------
ACCEPT = [
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "TCP4", "192.168.0.1",
     "192.168.0.11", 56324, 443),
    (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", "TCP4", "255.255.255.255",
     "255.255.255.255", 65535, 65535),
    (b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n", "TCP4", "0.0.0.0", "10.0.0.1", 0, 0),
    (b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", "TCP6", "2001:db8::1", "2001:db8::2", 1, 2),
    (b"PROXY TCP6 ::1 :: 10 20\r\n", "TCP6", "::1", "::", 10, 20),
    (b"PROXY TCP6 FFFF:ffff:0:0:0:0:0:1 1:2:3:4:5:6:7:8 443 8443\r\n", "TCP6",
     "ffff:ffff::1", "1:2:3:4:5:6:7:8", 443, 8443),
    (b"PROXY TCP6 0001:0db8:0000:0000:0000:0000:0000:0001 fe80:: 1 1\r\n", "TCP6",
     "2001:db8::1".replace("2001", "1"), "fe80::", 1, 1),
]


@pytest.mark.parametrize("line,family,src,dst,sport,dport", ACCEPT)
def test_accepts_valid_lines(line, family, src, dst, sport, dport):
    p = ok(line + b"GET / HTTP/1.1\r\n")
    h = p.header
    assert (h.version, h.command, h.family, h.transport) == (1, "PROXY", family, "STREAM")
    assert (h.src_addr, h.dst_addr, h.src_port, h.dst_port) == (src, dst, sport, dport)
    assert p.length == h.length == len(line)


def test_longest_valid_line_is_accepted():
    v6 = ":".join(["ffff"] * 8)
    line = f"PROXY TCP6 {v6} {v6} 65535 65535\r\n".encode()
    assert len(line) == 104
    assert ok(line).header.src_port == 65535
    worst = f"PROXY UNKNOWN {v6} {v6} 65535 65535\r\n".encode()
    assert len(worst) == 107
    p = ok(worst)
    assert p.header.family == "UNKNOWN" and p.length == 107


def test_unknown_ignores_the_rest_of_the_line():
    for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN anything at all 1 2 3\r\n",
                 b"PROXY UNKNOWN ::1 junk\r\n"):
        p = ok(line + b"rest")
        assert p.header.family == "UNKNOWN" and p.header.transport == "UNSPEC"
        assert p.header.src_addr is None and p.header.src_port is None
        assert p.length == len(line)
        assert "proxy.v1.unknown" in p.codes  # a note, not an error


# --- rejected lines: (line, code) ---------------------------------------------------------------
REJECT = [
    # "PROXY" + exactly one space
    (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_separator"),
    (b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_separator"),
    (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_separator"),
    (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "proxy.v1.bad_separator"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", "proxy.v1.bad_separator"),
    # protocol
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_protocol"),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_protocol"),
    (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_protocol"),
    (b"PROXY UNKNOWNX\r\n", "proxy.v1.bad_protocol"),
    # field count
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "proxy.v1.missing_field"),
    (b"PROXY TCP4\r\n", "proxy.v1.missing_field"),
    (b"PROXY \r\n", "proxy.v1.missing_field"),
    (b"PROXY\r\n", "proxy.v1.missing_field"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "proxy.v1.extra_field"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "proxy.v1.extra_field"),
    # IPv4 format
    (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "proxy.v1.bad_ipv4"),
    (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "proxy.v1.bad_ipv4"),
    (b"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", "proxy.v1.bad_ipv4"),
    (b"PROXY TCP4 1.2.3.x 5.6.7.8 1 2\r\n", "proxy.v1.bad_ipv4"),
    (b"PROXY TCP4 1.2.3.+4 5.6.7.8 1 2\r\n", "proxy.v1.bad_ipv4"),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "proxy.v1.ipv4_leading_zero"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n", "proxy.v1.ipv4_leading_zero"),
    (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "proxy.v1.ipv4_octet_range"),
    (b"PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n", "proxy.v1.ipv4_octet_range"),
    # family must match
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "proxy.v1.family_mismatch"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "proxy.v1.family_mismatch"),
    (b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "proxy.v1.family_mismatch"),
    # IPv6 format
    (b"PROXY TCP6 1::2::3 ::1 1 2\r\n", "proxy.v1.ipv6_double_colon"),
    (b"PROXY TCP6 12345::1 ::1 1 2\r\n", "proxy.v1.ipv6_group_too_long"),
    (b"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "proxy.v1.ipv6_bit_count"),
    (b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "proxy.v1.ipv6_bit_count"),
    (b"PROXY TCP6 1:2:3:4::5:6:7:8 ::1 1 2\r\n", "proxy.v1.ipv6_bit_count"),
    (b"PROXY TCP6 g::1 ::1 1 2\r\n", "proxy.v1.bad_ipv6"),
    (b"PROXY TCP6 :1::2 ::1 1 2\r\n", "proxy.v1.bad_ipv6"),
    (b"PROXY TCP6 1::2: ::1 1 2\r\n", "proxy.v1.bad_ipv6"),
    (b"PROXY TCP6 ::: ::1 1 2\r\n", "proxy.v1.bad_ipv6"),
    # ports
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "proxy.v1.port_leading_zero"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "proxy.v1.port_leading_zero"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "proxy.v1.port_range"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", "proxy.v1.port_range"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "proxy.v1.bad_port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x50\r\n", "proxy.v1.bad_port"),
    # line end
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "proxy.v1.lone_lf"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "proxy.v1.lone_cr"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "proxy.v1.lone_cr"),
    (b"PROXY UNKNOWN foo\nbar\r\n", "proxy.v1.lone_lf"),
    (b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "proxy.v1.too_long"),  # CRLF ends at byte 108
    (b"PROXY UNKNOWN " + b"x" * 200, "proxy.v1.too_long"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b"0" * 100, "proxy.v1.port_range"),
]


@pytest.mark.parametrize("line,code", REJECT)
def test_rejects_with_specific_reason(line, code):
    p = bad(line, code)
    e = next(e for e in p.experts if e.code == code)
    assert 0 <= e.offset < max(len(line), 108) and e.length >= 1


def test_crlf_at_the_limit():
    # 105 bytes of line + CRLF = 107: accepted; one more byte: rejected
    ok(b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n")
    bad(b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "proxy.v1.too_long")


def test_expert_points_at_the_offending_bytes():
    line = b"PROXY TCP4 1.2.3.4 5.6.7.008 1 2\r\n"
    p = bad(line, "proxy.v1.ipv4_leading_zero")
    e = p.experts[0]
    assert line[e.offset : e.offset + e.length] == b"008"
    p = bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "proxy.v1.port_range")
    assert p.experts[0].offset == len(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 ")


def test_dotted_ipv4_tail_in_tcp6_is_a_warning_not_a_rejection():
    p = ok(b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 2\r\n")
    assert "proxy.v1.ipv6_dotted" in p.codes
    assert p.header.src_addr == "::ffff:192.0.2.1"  # as carried (nginx shows it so too)


def test_malformed_keeps_what_was_decoded():
    p = bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "proxy.v1.port_range")
    assert p.header is not None
    assert (p.header.src_addr, p.header.dst_addr, p.header.src_port) == ("1.2.3.4", "5.6.7.8", 1)
    assert p.header.dst_port is None


def test_tree_fields_have_wireshark_names_offsets_and_values():
    line = b"PROXY TCP4 119.29.135.205 43.159.115.63 53859 10000\r\n"
    p = ok(line + b"abc1243")
    t = p.tree
    assert t.name == "proxy" and t.offset == 0 and t.length == len(line)

    def span(name):
        f = t.find(name)
        return line[f.offset : f.offset + f.length].decode(), f.value

    assert span("proxy.v1.magic")[0] == "PROXY"
    assert span("proxy.v1.proto") == ("TCP4", "TCP4")
    assert span("proxy.src.ipv4")[0] == "119.29.135.205"
    assert str(span("proxy.src.ipv4")[1]) == "119.29.135.205"
    assert span("proxy.dst.ipv4")[0] == "43.159.115.63"
    assert span("proxy.srcport") == ("53859", 53859)
    assert span("proxy.dstport") == ("10000", 10000)
    assert t.find("proxy.version").value == 1


def test_base_offset_shifts_every_offset():
    line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    a, b = parse_proxy(line), parse_proxy(line, base_offset=54)
    for fa, fb in zip(a.tree.walk(), b.tree.walk(), strict=True):
        assert fb.offset == fa.offset + 54
    e = parse_proxy(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", base_offset=54).experts[0]
    assert e.offset == 54 + len(b"PROXY TCP4 1.2.3.4 5.6.7.8 ")
