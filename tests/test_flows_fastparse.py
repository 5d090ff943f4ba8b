"""The quick PROXY/TOA readers must never disagree with the dissectors.

The flow stage answers clean headers and options itself and sends the rest to
pcapip.dissect; whenever it answers, the dissector must say the same thing.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pcapip.dissect import (
    DEFAULT_REGISTRY,
    ParseState,
    ToaRegistry,
    dissect_tcp_options,
    parse_proxy,
)
from pcapip.flows import fastparse
from pcapip.flows import headers as hdr

SIG = fastparse.V2_SIG

ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: ipaddress.IPv6Address(n).packed, st.integers(0, 2**128 - 1))
port = st.integers(0, 65535)


def _same(data: bytes) -> bool:
    """True when the quick reader answered (and then it agreed with the dissector)."""
    quick = fastparse.proxy(data)
    if quick is None:
        return False
    full = parse_proxy(data)
    assert full.state is ParseState.OK, (data, full.reason)
    assert quick.length == full.length
    q, f = quick.header, full.header
    for a in (
        "version",
        "command",
        "family",
        "transport",
        "src_addr",
        "dst_addr",
        "src_port",
        "dst_port",
        "length",
        "crc32c",
    ):
        assert getattr(q, a) == getattr(f, a), a
    assert f.tlvs == []
    return True


@settings(max_examples=400)
@given(ipv4, ipv4, port, port, st.binary(max_size=20))
def test_v1_tcp4(src, dst, sp, dp, tail) -> None:
    line = f"PROXY TCP4 {src} {dst} {sp} {dp}\r\n".encode()
    assert _same(line + tail)


@settings(max_examples=400)
@given(st.text(alphabet="PROXY TCP46UNKOW0123456789.:abcdef \r\n", max_size=60))
def test_v1_like_text_never_disagrees(text) -> None:
    _same(("PROXY " + text).encode())


@settings(max_examples=300)
@given(st.sampled_from([0x11, 0x12]), ipv4, ipv4, port, port, st.binary(max_size=8))
def test_v2_inet(fam, src, dst, sp, dp, tail) -> None:
    body = (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sp, dp)
    )
    assert _same(SIG + bytes([0x21, fam]) + struct.pack("!H", 12) + body + tail)


@settings(max_examples=300)
@given(st.sampled_from([0x21, 0x22]), ipv6, ipv6, port, port)
def test_v2_inet6(fam, src, dst, sp, dp) -> None:
    data = SIG + bytes([0x21, fam]) + struct.pack("!H", 36) + src + dst + struct.pack("!HH", sp, dp)
    _same(data)


@settings(max_examples=500)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 60), st.binary(max_size=64))
def test_v2_any_fixed_header_never_disagrees(vc, fam, ln, body) -> None:
    _same(SIG + bytes([vc, fam]) + struct.pack("!H", ln) + body)


def test_local_and_not_proxy() -> None:
    assert _same(SIG + b"\x20\x00\x00\x00")
    assert hdr.parse(b"GET / HTTP/1.1\r\n").state is ParseState.NOT_PROXY
    assert parse_proxy(b"GET / HTTP/1.1\r\n").state is ParseState.NOT_PROXY


# ------------------------------------------------------------------ TOA
_opt = st.one_of(
    st.just(b"\x01"),
    st.builds(lambda m: b"\x02\x04" + struct.pack("!H", m), st.integers(0, 65535)),
    st.builds(
        lambda a, b: b"\x08\x0a" + struct.pack("!II", a, b),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.just(b"\x04\x02"),
    st.builds(
        lambda k, p, a: bytes([k, 8]) + struct.pack("!H", p) + a,
        st.sampled_from([200, 254, 253, 250, 201, 28, 99]),
        port,
        st.binary(min_size=4, max_size=4),
    ),
    st.builds(
        lambda k, n, b: bytes([k, n]) + b,
        st.integers(0, 255),
        st.integers(0, 12),
        st.binary(max_size=10),
    ),
    st.just(b"\x00\x00\x00"),
)


def _toa_same(raw: bytes, registry) -> bool:
    quick = fastparse.toa(raw, registry)
    if quick is None:
        return False
    res = dissect_tcp_options(raw, registry=registry)
    assert hdr.toa_problems(res) == [], raw.hex()
    assert (res.client_ip, res.client_port) == (quick[0], quick[1]), raw.hex()
    chosen = [o for o in res.options if o.reached and o.client_ip == res.client_ip]
    assert chosen and (chosen[0].kind, chosen[0].length, chosen[0].variant.name) == quick[2:], (
        raw.hex()
    )
    return True


@settings(max_examples=1500)
@given(st.lists(_opt, max_size=6))
def test_toa_quick_reader_agrees(opts) -> None:
    raw = b"".join(opts)[:40]
    _toa_same(raw, DEFAULT_REGISTRY)


@settings(max_examples=300)
@given(st.lists(_opt, max_size=6), st.sampled_from(["254", "+99", "200"]))
def test_toa_quick_reader_agrees_with_other_kinds(opts, spec) -> None:
    _toa_same(b"".join(opts)[:40], ToaRegistry.from_spec([spec]))


def test_toa_common_case_is_answered_quickly() -> None:
    raw = (
        b"\x02\x04\x05\xb4\x01\x01\x08\x0a"
        + b"\0" * 8
        + bytes([200, 8])
        + struct.pack("!H", 5001)
        + bytes([100, 64, 0, 1])
    )
    assert _toa_same(raw, DEFAULT_REGISTRY)
