"""Incremental parsing: NEED_MORE, NOT_PROXY and MALFORMED are three different answers.

The flow stage feeds the start of a TCP stream as segments arrive; a header
split over segments must yield NEED_MORE until it is complete, anything that
can no longer become a header must be NOT_PROXY (or MALFORMED once it is
clearly a broken header), and NEED_MORE must never be given for bytes that
cannot complete.
"""

from __future__ import annotations

import pytest
from gen.proxy_pcaps import SEED002_V1_LINE, addr_block, ssl_tlv, tlv, v1, v2

from pcapip.dissect import ParseState, parse_proxy

HEADERS = [
    SEED002_V1_LINE,
    v1("TCP6", "2001:db8::1", "2001:db8::2", 1, 65535),
    v1("UNKNOWN", rest=""),
    v2(1, 0x11, addr_block(0x11, "10.0.0.1", "10.0.0.2", 1, 2)),
    v2(0, 0x00),
    v2(1, 0x21, addr_block(0x21, "fd00::1", "fd00::2", 1, 2),
       [tlv(0x02, b"a.example"), ssl_tlv(1, 0, [(0x21, b"TLSv1.3")])], crc=True),
]


@pytest.mark.parametrize("hdr", HEADERS)
def test_every_prefix_needs_more_and_the_whole_is_ok(hdr):
    stream = hdr + b"GET / HTTP/1.1\r\n\r\n"
    for k in range(len(hdr)):
        p = parse_proxy(stream[:k])
        assert p.state is ParseState.NEED_MORE, (k, p.state, p.experts)
        assert 1 <= p.need <= len(hdr) - k, (k, p.need)  # a lower bound, never more than missing
        assert p.header is None
    for k in range(len(hdr), len(stream) + 1):
        p = parse_proxy(stream[:k])
        assert p.state is ParseState.OK and p.length == len(hdr)


@pytest.mark.parametrize("hdr", HEADERS)
def test_final_prefix_is_truncated(hdr):
    for k in range(1, len(hdr)):
        p = parse_proxy(hdr[:k], final=True)
        assert p.state is ParseState.MALFORMED, k
        assert "proxy.truncated" in p.codes
    assert parse_proxy(hdr, final=True).state is ParseState.OK


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"SSH-2.0-OpenSSH_9.6\r\n", b"proxy TCP4",
    b"PROXZ", b"PROX\x00", b"\r\n\r\nGET", b"\r\n\r\n\x00\r\nX", b"\x00", b" PROXY TCP4",
])
def test_not_proxy(data):
    p = parse_proxy(data)
    assert p.state is ParseState.NOT_PROXY
    assert p.tree is None and p.header is None and not p.experts


@pytest.mark.parametrize("data", [b"", b"P", b"PROX", b"PROXY", b"PROXY ", b"PROXY TCP",
                                  b"\r", b"\r\n\r\n\x00\r\nQUIT\n", b"\r\n\r\n\x00\r\nQUIT\n\x21",
                                  b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00"])
def test_prefixes_of_either_signature_need_more(data):
    p = parse_proxy(data)
    assert p.state is ParseState.NEED_MORE and p.need >= 1


def test_detection_needs_13_bytes_for_v2():
    sig12 = b"\r\n\r\n\x00\r\nQUIT\n"
    assert parse_proxy(sig12).state is ParseState.NEED_MORE
    assert parse_proxy(sig12 + b"\x11").state is ParseState.MALFORMED  # version 1 nibble
    assert parse_proxy(sig12 + b"\x21").state is ParseState.NEED_MORE


def test_v1_without_crlf_in_107_bytes_is_malformed_not_need_more():
    line = b"PROXY UNKNOWN " + b"x" * 92
    assert len(line) == 106
    assert parse_proxy(line).state is ParseState.NEED_MORE
    assert parse_proxy(line + b"x").state is ParseState.MALFORMED
    assert parse_proxy(line + b"x").codes[0] == "proxy.v1.too_long"
    assert parse_proxy(line + b"\r").state is ParseState.MALFORMED  # its LF would be byte 108


@pytest.mark.parametrize("partial,code", [
    (b"PROXY TCP9", "proxy.v1.bad_protocol"),
    (b"PROXY  ", "proxy.v1.bad_separator"),
    (b"PROXY TCP4 01", "proxy.v1.ipv4_leading_zero"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", "proxy.v1.extra_field"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999", "proxy.v1.port_range"),
    (b"PROXY TCP6 1::2::", "proxy.v1.ipv6_double_colon"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "proxy.v1.lone_lf"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x23", "proxy.v2.bad_command"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x44", "proxy.v2.bad_family"),
])
def test_a_prefix_that_cannot_become_valid_is_rejected_early(partial, code):
    p = parse_proxy(partial)
    assert p.state is ParseState.MALFORMED and code in p.codes


def test_seed_header_split_over_two_segments():
    stream = SEED002_V1_LINE + b"abc1243"
    first, second = stream[:20], stream[20:]
    p = parse_proxy(first)
    assert p.state is ParseState.NEED_MORE
    p = parse_proxy(first + second)
    assert p.state is ParseState.OK and p.header.src_addr == "119.29.135.205"
    assert (first + second)[p.length :] == b"abc1243"


def test_v2_need_counts_the_announced_length():
    hdr = v2(1, 0x11, addr_block(0x11, "10.0.0.1", "10.0.0.2", 1, 2), [tlv(0x04, b"\0" * 100)])
    p = parse_proxy(hdr[:16])
    assert p.state is ParseState.NEED_MORE and p.need == len(hdr) - 16 and p.length == len(hdr)
    p = parse_proxy(hdr[:40])
    assert p.need == len(hdr) - 40


def test_memoryview_input():
    hdr = bytearray(SEED002_V1_LINE)
    assert parse_proxy(memoryview(hdr)).header.dst_port == 10000
