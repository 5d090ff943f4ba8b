"""The dissectors' no-tree parse is the same parse as the tree one, minus the tree.

The flow stage calls ``parse_proxy(..., tree=False)`` and
``dissect_tcp_options(..., build_tree=False)``: the same code with the drawing left
out, so every rule, typed value, expert (code, message, bytes) and length must be
what ``pcapip show`` draws from. Any input, valid or not.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pcapip.dissect import DEFAULT_REGISTRY, dissect_tcp_options, parse_proxy

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1))
port = st.integers(0, 65535)


def _summary(p):
    experts = [(e.severity, e.code, e.message, e.offset, e.length) for e in p.experts]
    return p.state, p.need, p.length, p.header, experts


def _same(data: bytes, base: int = 0, final: bool = False) -> None:
    full = parse_proxy(data, base_offset=base, final=final)
    lean = parse_proxy(data, base_offset=base, final=final, tree=False)
    assert lean.tree is None
    assert _summary(lean) == _summary(full), data
    if full.tree is not None:  # every expert the tree shows is in the parse's list
        shown = {id(e) for e in full.tree.all_experts()}
        assert shown <= {id(e) for e in full.experts}


v1_line = st.one_of(
    st.builds(lambda a, b, c, d: f"PROXY TCP4 {a} {b} {c} {d}\r\n", ipv4, ipv4, port, port),
    st.builds(lambda a, b, c, d: f"PROXY TCP6 {a} {b} {c} {d}\r\n", ipv6, ipv6, port, port),
    st.text(alphabet="PROXY TCP46UNKOW0123456789.:abcdef \r\n", max_size=70).map(
        lambda t: "PROXY " + t
    ),
)


@settings(max_examples=500)
@given(v1_line, st.binary(max_size=12), st.integers(0, 200), st.booleans(),
       st.integers(0, 110))
def test_v1_without_tree_is_the_same_parse(line, tail, base, final, cut) -> None:
    data = line.encode() + tail
    _same(data, base, final)
    _same(data[:cut], base, final)


tlv = st.builds(lambda t, v: struct.pack("!BH", t, len(v)) + v,
                st.sampled_from([1, 2, 3, 4, 5, 0x20, 0x30, 0xE0, 0xEA, 0xEE, 0x99]),
                st.binary(max_size=12))


@settings(max_examples=800)
@given(st.sampled_from([0x20, 0x21, 0x22, 0x11, 0x2F]),
       st.sampled_from([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x13, 0x41]),
       st.binary(min_size=0, max_size=40), st.lists(tlv, max_size=3),
       st.sampled_from([None, -1, 0, 1, 7]), st.integers(0, 200), st.booleans(),
       st.integers(0, 120))
def test_v2_without_tree_is_the_same_parse(vc, fam, addr, tlvs, fudge, base, final,
                                           cut) -> None:
    body = addr + b"".join(tlvs)
    ln = len(body) if fudge is None else max(0, len(body) + fudge)
    data = SIG + bytes([vc, fam]) + struct.pack("!H", ln) + body
    _same(data, base, final)
    _same(data[:cut], base, final)


def test_v2_crc32c_without_tree() -> None:
    import google_crc32c

    body = bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 1, 187]) + b"\x03\x00\x04\0\0\0\0"
    head = SIG + b"\x21\x11" + struct.pack("!H", len(body)) + body
    good = head[:-4] + struct.pack("!I", google_crc32c.value(head))
    for data in (good, head[:-4] + b"\xde\xad\xbe\xef"):
        _same(data)
    assert parse_proxy(good, tree=False).header.crc32c == "ok"
    assert parse_proxy(head[:-4] + b"\xde\xad\xbe\xef", tree=False).header.crc32c == "bad"


def _toa_summary(res):
    return ((res.client_ip, res.client_port, res.vip_ip, res.vip_port),
            [(o.kind, o.length, o.offset, o.variant, o.client_ip, o.client_port, o.vip_ip,
              o.vip_port, o.vpc_id, o.reached,
              [(e.code, e.message, e.offset, e.length) for e in o.experts])
             for o in res.options],
            [(e.code, e.message, e.offset, e.length) for e in res.experts])


toa_opt = st.one_of(
    st.just(b"\x01"), st.just(b"\x00"), st.just(b"\x02\x04\x05\xb4"),
    st.builds(lambda k, body: bytes([k, len(body) + 2]) + body,
              st.sampled_from([200, 254, 253, 201, 250, 252, 249, 28, 8]),
              st.binary(min_size=0, max_size=38)),
    st.builds(lambda v, b: bytes([v.kind, v.length]) + b[: v.length - 2],
              st.sampled_from(DEFAULT_REGISTRY.variants), st.binary(min_size=38, max_size=38)),
)


@settings(max_examples=800)
@given(st.lists(toa_opt, max_size=6), st.integers(0, 100), st.sampled_from([None, 4, 6]),
       st.integers(0, 8))
def test_tcp_options_without_tree_is_the_same_walk(parts, base, ipver, extra) -> None:
    raw = b"".join(parts)[:40]
    full = dissect_tcp_options(raw, base_offset=base, ip_version=ipver)
    lean = dissect_tcp_options(raw, base_offset=base, ip_version=ipver, build_tree=False)
    assert _toa_summary(lean) == _toa_summary(full)
    cut = raw[: max(0, len(raw) - extra)]
    full = dissect_tcp_options(cut, base_offset=base, wire_length=len(raw))
    lean = dissect_tcp_options(cut, base_offset=base, wire_length=len(raw), build_tree=False)
    assert _toa_summary(lean) == _toa_summary(full)
