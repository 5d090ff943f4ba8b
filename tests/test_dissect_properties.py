"""Property-based tests: round-trips through independent encoders, and fuzzing.

Encoders: the ``proxy-protocol`` library (its own v1/v2 packer, CRC32C from
the ``crc32c`` package) and the spec-derived builder in tests/gen. The
library's parser is also used as a second opinion on valid headers. Fuzzing
feeds random and mutated bytes: the dissectors must never raise, and must
keep their own invariants (offsets inside the data, prefixes of a valid
header never rejected).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import string

from gen.proxy_pcaps import V2_SIG, addr_block, tlv, v1, v2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6, ProxyResultUnix
from proxyprotocol.tlv import ProxyProtocolSSLTLV, ProxyProtocolTLV
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from pcapip.dissect import (
    DEFAULT_REGISTRY,
    KNOWN_VARIANTS,
    ParseState,
    dissect_frame,
    dissect_tcp_options,
    parse_proxy,
)

# PCAPIP_FUZZ_EXAMPLES raises the number of examples for a longer fuzzing run.
SETTINGS = settings(max_examples=int(os.environ.get("PCAPIP_FUZZ_EXAMPLES", "300")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])

ports = st.integers(0, 65535)
ipv4s = st.ip_addresses(v=4)
ipv6s = st.ip_addresses(v=6)
ascii_text = st.text(string.ascii_letters + string.digits + "-._", min_size=0, max_size=40)


def carried(a: ipaddress.IPv6Address | ipaddress.IPv4Address) -> str:
    """The text pcapip reports: as carried (an IPv4-mapped address stays ::ffff:a.b.c.d,
    inet_ntop's form; Python before 3.13 would print ::ffff:cb00:7109)."""
    if isinstance(a, ipaddress.IPv6Address):
        return socket.inet_ntop(socket.AF_INET6, a.packed)
    return str(a)


# --- v1 ------------------------------------------------------------------------------------------


@SETTINGS
@given(src=ipv4s, dst=ipv4s, sp=ports, dp=ports)
def test_v1_tcp4_roundtrip_library(src, dst, sp, dp):
    line = ProxyProtocolV1().pack(ProxyResultIPv4((src, sp), (dst, dp)))
    p = parse_proxy(line + b"payload")
    assert p.state is ParseState.OK
    h = p.header
    assert (h.family, h.src_addr, h.dst_addr, h.src_port, h.dst_port) == (
        "TCP4", str(src), str(dst), sp, dp)
    assert p.length == len(line)


@SETTINGS
@given(src=ipv6s, dst=ipv6s, sp=ports, dp=ports, form=st.sampled_from(["compressed", "exploded",
                                                                        "upper"]))
def test_v1_tcp6_roundtrip_all_text_forms(src, dst, sp, dp, form):
    def text(a: ipaddress.IPv6Address) -> str:
        if form == "exploded":
            return a.exploded
        if form == "upper":
            return a.exploded.upper() if a.ipv4_mapped else str(a).upper()
        return str(a)

    line = v1("TCP6", text(src), text(dst), sp, dp)
    p = parse_proxy(line)
    assert p.state is ParseState.OK, (line, p.experts)
    h = p.header
    assert (h.src_addr, h.dst_addr, h.src_port, h.dst_port) == (carried(src), carried(dst),
                                                                 sp, dp)


@SETTINGS
@given(src=ipv6s, dst=ipv6s, sp=ports, dp=ports)
def test_v1_tcp6_roundtrip_library(src, dst, sp, dp):
    line = ProxyProtocolV1().pack(ProxyResultIPv6((src, sp, 0, 0), (dst, dp, 0, 0)))
    h = parse_proxy(line).header
    assert (h.src_addr, h.dst_addr, h.src_port, h.dst_port) == (carried(src), carried(dst),
                                                                 sp, dp)


# --- v2 ------------------------------------------------------------------------------------------

tlv_values = st.fixed_dictionaries({}, optional={
    "alpn": st.binary(min_size=1, max_size=20).filter(lambda b: _utf8(b)),
    "authority": ascii_text.filter(bool),
    "unique_id": st.binary(min_size=1, max_size=128),
    "netns": ascii_text.filter(bool),
    "ssl": st.fixed_dictionaries({"has_ssl": st.booleans(), "verified": st.booleans()},
                                 optional={"version": ascii_text, "cn": ascii_text,
                                           "cipher": ascii_text, "sig_alg": ascii_text,
                                           "key_alg": ascii_text}),
})


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@SETTINGS
@given(kind=st.sampled_from(["ipv4", "ipv6", "unix"]), dgram=st.booleans(), a=st.data(),
       tlvs=tlv_values)
def test_v2_roundtrip_library(kind, dgram, a, tlvs):
    proto = socket.SOCK_DGRAM if dgram else socket.SOCK_STREAM
    ssl = ProxyProtocolSSLTLV(**tlvs["ssl"]) if "ssl" in tlvs else None
    t = ProxyProtocolTLV(alpn=tlvs.get("alpn"), authority=tlvs.get("authority"),
                         unique_id=tlvs.get("unique_id"), netns=tlvs.get("netns"), ssl=ssl)
    if kind == "ipv4":
        src, dst = a.draw(ipv4s), a.draw(ipv4s)
        sp, dp = a.draw(ports), a.draw(ports)
        res = ProxyResultIPv4((src, sp), (dst, dp), protocol=proto, tlv=t)
        want = (str(src), str(dst), sp, dp)
    elif kind == "ipv6":
        src, dst = a.draw(ipv6s), a.draw(ipv6s)
        sp, dp = a.draw(ports), a.draw(ports)
        res = ProxyResultIPv6((src, sp, 0, 0), (dst, dp, 0, 0), protocol=proto, tlv=t)
        want = (carried(src), carried(dst), sp, dp)
    else:
        path = st.text(string.ascii_letters + "/._", min_size=1, max_size=107)
        src, dst = a.draw(path), a.draw(path)
        res = ProxyResultUnix(src, dst, protocol=proto, tlv=t)
        want = (src, dst, None, None)
    data = ProxyProtocolV2().pack(res)
    p = parse_proxy(data + b"\x00tail")
    assert p.state is ParseState.OK, [(e.code, e.message) for e in p.experts]
    h = p.header
    assert (h.src_addr, h.dst_addr, h.src_port, h.dst_port) == want
    assert h.transport == ("DGRAM" if dgram else "STREAM")
    assert h.length == p.length == len(data)
    assert h.crc32c == "ok"  # the library adds a CRC32C computed with another implementation
    got = {x.name: x for x in h.tlvs}
    if "alpn" in tlvs:
        assert got["alpn"].value == tlvs["alpn"].decode()
    for name in ("authority", "netns"):
        if name in tlvs:
            assert got[name].value == tlvs[name]
    if "unique_id" in tlvs:
        assert got["unique_id"].value == tlvs["unique_id"]
    if ssl:  # the library leaves out an SSL TLV that says nothing
        s = got["ssl"]
        assert s.value["client"] == ssl.client and s.value["verify"] == ssl.verify
        subs = {c.name: c.value for c in s.children}
        for k in ("version", "cn", "cipher", "sig_alg", "key_alg"):
            if k in tlvs["ssl"]:
                assert subs[f"ssl.{k}"] == tlvs["ssl"][k]
    # second opinion: the library parses our view of the same bytes identically
    lib = ProxyProtocolV2().unpack(data)
    if kind != "unix":
        assert (carried(lib.source[0]), carried(lib.dest[0])) == want[:2]


raw_tlvs = st.lists(st.tuples(st.sampled_from([0x01, 0x02, 0x04, 0x05, 0x30, 0xE5, 0xF2, 0xEA]),
                              st.binary(max_size=40)), max_size=6)


@SETTINGS
@given(src=ipv4s, dst=ipv4s, sp=ports, dp=ports, tl=raw_tlvs, crc=st.booleans(),
       cmd=st.sampled_from([0, 1]))
def test_v2_roundtrip_spec_encoder(src, dst, sp, dp, tl, crc, cmd):
    hdr = v2(cmd, 0x11, addr_block(0x11, str(src), str(dst), sp, dp),
             [tlv(t, val) for t, val in tl], crc=crc)
    p = parse_proxy(hdr)
    assert p.state is ParseState.OK, p.experts
    assert [(x.type, x.length - 3) for x in p.header.tlvs] == \
        [(t, len(val)) for t, val in tl] + ([(3, 4)] if crc else [])
    if cmd == 1:
        assert (p.header.src_addr, p.header.dst_port) == (str(src), dp)
    assert p.header.crc32c == ("ok" if crc else None)


# --- soundness of incremental answers --------------------------------------------------------------

valid_headers = st.one_of(
    st.builds(lambda s, d, a, b: v1("TCP4", str(s), str(d), a, b), ipv4s, ipv4s, ports, ports),
    st.builds(lambda s, d, a, b: v1("TCP6", str(s), str(d), a, b), ipv6s, ipv6s, ports, ports),
    st.builds(lambda s, d, a, b, t: v2(1, 0x21, addr_block(0x21, str(s), str(d), a, b),
                                       [tlv(x, y) for x, y in t], crc=True),
              ipv6s, ipv6s, ports, ports, raw_tlvs),
)


@SETTINGS
@given(hdr=valid_headers, cut=st.integers(0, 300))
def test_no_prefix_of_a_valid_header_is_rejected(hdr, cut):
    cut = min(cut, len(hdr) - 1)
    p = parse_proxy(hdr[:cut])
    assert p.state is ParseState.NEED_MORE, (hdr[:cut], p.experts)
    assert p.need <= len(hdr) - cut


# --- fuzzing ---------------------------------------------------------------------------------------


def check_invariants(data: bytes, base: int = 0, final: bool = False) -> None:
    p = parse_proxy(data, base_offset=base, final=final)
    assert isinstance(p.state, ParseState)
    assert "dissect.internal_error" not in p.codes
    if p.state is ParseState.OK:
        assert p.header is not None and 0 < p.length <= len(data)
        # the same header alone is OK too; any shorter prefix is not OK
        assert parse_proxy(data[: p.length]).state is ParseState.OK
        assert parse_proxy(data[: p.length - 1]).state is not ParseState.OK
    if p.state is ParseState.NEED_MORE:
        assert p.need >= 1 and not final
    if p.state is ParseState.NOT_PROXY:
        assert not data.startswith(b"PROXY") and not data.startswith(V2_SIG[:len(data)] or b"\1")
    for e in p.experts:
        assert base <= e.offset <= base + max(len(data), 107)
    if p.tree is not None:
        for f in p.tree.walk():
            assert base <= f.offset and f.offset + f.length <= base + len(data), f


@SETTINGS
@given(data=st.binary(max_size=300), base=st.integers(0, 1000), final=st.booleans())
def test_fuzz_random_bytes(data, base, final):
    check_invariants(data, base, final)


@SETTINGS
@given(data=st.one_of(
    st.binary(max_size=120).map(lambda b: b"PROXY " + b),
    st.binary(max_size=120).map(lambda b: V2_SIG + b),
    st.text(alphabet="PROXYTCP46UNKOW0123456789abcdef:. \r\n", max_size=120).map(str.encode),
))
def test_fuzz_near_misses(data):
    check_invariants(data)
    check_invariants(data, final=True)


@SETTINGS
@given(hdr=valid_headers, ops=st.lists(st.tuples(st.sampled_from(["flip", "del", "ins", "set"]),
                                                  st.integers(0, 400), st.integers(0, 255)),
                                        min_size=1, max_size=4))
def test_fuzz_mutated_headers(hdr, ops):
    b = bytearray(hdr + b"payload")
    for op, pos, val in ops:
        pos %= len(b) if b else 1
        if op == "flip" and b:
            b[pos] ^= 1 << (val % 8)
        elif op == "del" and b:
            del b[pos]
        elif op == "ins":
            b.insert(pos, val)
        elif b:
            b[pos] = val
    check_invariants(bytes(b))
    check_invariants(bytes(b), final=True)


# --- TCP options -------------------------------------------------------------------------------------


def reference_walk(opts: bytes) -> tuple[str | None, int | None]:
    """A receiving module's walk, written independently: first reached exact match wins."""
    client_variants = {(v.kind, v.length) for v in KNOWN_VARIANTS if v.carries == "client"}
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            return None, None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts):
            return None, None
        size = opts[i + 1]
        if size < 2 or i + size > len(opts):
            return None, None
        if (kind, size) in client_variants:
            body = opts[i + 2 : i + size]
            if kind == 28:
                raw = body[1:]
                port = None
            elif (kind, size) in {(254, 20), (253, 20), (201, 20), (249, 40)}:
                port, raw = int.from_bytes(body[:2], "big"), body[2:18]
            else:
                port, raw = int.from_bytes(body[:2], "big"), body[2:6]
            return carried(ipaddress.ip_address(raw)), port
        i += size
    return None, None


option_bytes = st.one_of(
    st.binary(max_size=40),
    st.lists(st.one_of(
        st.just(b"\x01"), st.just(b"\x00"), st.just(bytes([2, 4, 5, 0xB4])),
        st.builds(lambda k, body: bytes([k, len(body) + 2]) + body,
                  st.sampled_from([200, 254, 253, 201, 250, 252, 249, 28, 8, 30]),
                  st.binary(min_size=0, max_size=38)),
        st.builds(lambda v, b: bytes([v.kind, v.length]) + b[: v.length - 2].ljust(v.length - 2,
                                                                                   b"\0"),
                  st.sampled_from(KNOWN_VARIANTS), st.binary(min_size=38, max_size=38)),
    ), max_size=6).map(lambda parts: b"".join(parts)[:40]),
)


@SETTINGS
@given(opts=option_bytes, base=st.integers(0, 100), ipver=st.sampled_from([None, 4, 6]))
def test_fuzz_tcp_options_against_reference_walk(opts, base, ipver):
    r = dissect_tcp_options(opts, base_offset=base, ip_version=ipver)
    assert (r.client_ip, r.client_port) == reference_walk(opts)
    for o in r.options:
        assert base <= o.offset < base + len(opts)
        assert o.kind in DEFAULT_REGISTRY.kinds and opts[o.offset - base] == o.kind
        if o.client_ip is not None:
            assert o.variant is not None
    for f in r.tree.walk():
        assert base <= f.offset and f.offset + f.length <= base + len(opts)
    assert "dissect.internal_error" not in [e.code for e in r.all_experts()]
    lean = dissect_tcp_options(opts, base_offset=base, ip_version=ipver, build_tree=False)

    def summary(res):
        return ((res.client_ip, res.client_port, res.vip_ip, res.vip_port),
                [(o.offset, o.variant, o.client_ip, o.vip_ip, o.reached,
                  [e.code for e in o.experts]) for o in res.options],
                [e.code for e in res.experts])

    assert summary(lean) == summary(r)


@SETTINGS
@given(frame=st.binary(max_size=200), linktype=st.sampled_from([0, 1, 101, 108, 113, 228, 229,
                                                                 276, 147]))
def test_fuzz_dissect_frame(frame, linktype):
    layers = dissect_frame(frame, linktype)
    assert layers and layers[0].name == "frame"
    for layer in layers:
        for f in layer.walk():
            assert "dissect.internal_error" not in [e.code for e in f.experts]
            if not f.generated:
                assert f.offset >= 0 and f.offset + f.length <= len(frame), (f.name, f.offset)


@SETTINGS
@given(data=st.data())
def test_fuzz_dissect_frame_mutated_real_frames(data):
    from gen.proxy_pcaps import CAPTURES

    cap = data.draw(st.sampled_from(CAPTURES))
    frames = cap.build()
    frame = bytearray(data.draw(st.sampled_from(frames)))
    assume(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    for f in (bytes(frame), bytes(frame[:cut])):
        for layer in dissect_frame(f, cap.linktype):
            for x in layer.walk():
                assert "dissect.internal_error" not in [e.code for e in x.experts]
                if not x.generated:
                    assert x.offset + x.length <= len(f)
