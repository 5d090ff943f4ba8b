"""TOA: the variant registry, the kernel-style option walk and what it misses.

Option bytes are spelled out here or built with tests/gen/proxy_pcaps.py;
expected values come from those bytes and from docs/toa-variants.md, which the
registry test parses on its own.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from pathlib import Path

import pytest
from gen.dissect_compare import PUBLIC, read_frames_lt
from gen.proxy_pcaps import EOL, MSS, NOP, TOA_CASES, opt, toa4, toa6

from pcapip.dissect import (
    DEFAULT_REGISTRY,
    KNOWN_VARIANTS,
    Severity,
    ToaRegistry,
    dissect_frame,
    dissect_tcp_options,
)
from pcapip.errors import UsageError

SPEC = Path(__file__).resolve().parents[1] / "docs" / "toa-variants.md"


def spec_rows() -> list[tuple[int, int, str]]:
    rows = []
    for line in SPEC.read_text().splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|\s*([\d /]+)\s*\|[^|]*\|\s*(.+?)\s*\|\s*$", line)
        if m:
            for ln in m.group(2).split("/"):
                rows.append((int(m.group(1)), int(ln), m.group(3)))
    return rows


def test_registry_covers_every_row_of_the_variant_table():
    rows = spec_rows()
    assert len(rows) == 11
    assert {(k, ln) for k, ln, _ in rows} == {(v.kind, v.length) for v in KNOWN_VARIANTS}
    for kind, ln, who in rows:
        v = DEFAULT_REGISTRY.lookup(kind, ln)
        first_vendor = re.sub(r"\s*\(.*", "", who.split(",")[0]).strip()
        assert first_vendor.split()[0] in v.vendors, (kind, ln, who, v.vendors)
    assert DEFAULT_REGISTRY.kinds == {200, 254, 253, 201, 250, 252, 249, 28}
    assert {v.name for v in KNOWN_VARIANTS} >= {"tencent-ipv4", "lvs-ipv6", "alibaba-vpc"}
    assert len({v.name for v in KNOWN_VARIANTS}) == len(KNOWN_VARIANTS)
    assert [v.carries for v in KNOWN_VARIANTS if v.kind == 250] == ["vip"]


def test_toa_kind_spec():
    assert ToaRegistry.from_spec(["200"]).kinds == {200}
    assert ToaRegistry.from_spec(["200,254"]).kinds == {200, 254}
    plus = ToaRegistry.from_spec(["+199"])
    assert plus.kinds == DEFAULT_REGISTRY.kinds | {199}
    assert ToaRegistry.from_spec([200, "+199"]).kinds == {200, 199}
    assert ToaRegistry.from_spec(["0xc8"]).kinds == {200}
    for bad in ("0", "1", "256", "abc", "+x", "1_0", "++200", "+-200", " ", ",", "200 201"):
        with pytest.raises(UsageError):
            ToaRegistry.from_spec([bad])


def test_user_added_kind_decodes_ipv4_and_ipv6_layouts():
    reg = ToaRegistry.from_spec(["+199"])
    r = dissect_tcp_options(toa4(199, 1234, "203.0.113.1") + toa6(199, 5, "2001:db8::5"),
                            registry=reg)
    assert [(o.client_ip, o.client_port) for o in r.options] == [("203.0.113.1", 1234),
                                                                 ("2001:db8::5", 5)]
    assert r.options[0].variant.name == "kind199-ipv4"
    assert not dissect_tcp_options(toa4(199, 1, "1.2.3.4")).options  # not a TOA by default


def test_restricting_kinds_turns_other_toas_into_plain_options():
    data = toa4(254, 1, "203.0.113.1") + toa4(200, 2, "203.0.113.2")
    r = dissect_tcp_options(data, registry=ToaRegistry.from_spec(["200"]))
    assert [o.kind for o in r.options] == [200]
    assert (r.client_ip, r.client_port) == ("203.0.113.2", 2)
    assert r.tree.children[0].name == "tcp.options.experimental"


# --- every variant decodes ------------------------------------------------------------------


def case(name: str) -> bytes:
    return next(o for n, o, _ in TOA_CASES if n == name)


@pytest.mark.parametrize("name,client,port,vip,vport,vpc", [
    ("tencent-200", "203.0.113.1", 40001, None, None, None),
    ("lvs-254-then-250", "203.0.113.2", 40002, "192.0.2.80", 80, None),
    ("nat64-ipv6-toa-on-ipv4", "2001:db8:c::8", 40008, None, None, None),
    ("mapped-253", "::ffff:203.0.113.9", 40009, None, None, None),
    ("vtoa-249-40", "2001:db8:c::b", 40011, "2001:db8:f::1", None, 0x123456),
    ("cdn-28-7", "203.0.113.12", None, None, None, None),
    ("cdn-28-19", "2001:db8:c::d", None, None, None, None),
    ("bytedance-254-16", "203.0.113.14", 40014, "192.0.2.20", 443, None),
    ("jupiter-201", "2001:db8:c::f", 40015, None, None, None),
])
def test_variants_decode(name, client, port, vip, vport, vpc):
    r = dissect_tcp_options(case(name))
    assert (r.client_ip, r.client_port, r.vip_ip, r.vip_port) == (client, port, vip, vport)
    first = r.options[0]
    assert first.vpc_id == vpc and first.reached and first.variant is not None
    assert not r.malformed, [(e.code, e.message) for e in r.all_experts()]


def test_alibaba_vpc_252_fields():
    body = struct.pack("!H", 50318) + bytes([10, 2, 154, 20]) + bytes.fromhex("e4a70c00") + \
        bytes([10, 2, 40, 9]) + struct.pack("!H", 6379) + b"\x01\x01"
    r = dissect_tcp_options(opt(252, body))
    o = r.options[0]
    assert (o.client_ip, o.client_port, o.vpc_id, o.vip_ip, o.vip_port) == (
        "10.2.154.20", 50318, 0xE4A70C00, "10.2.40.9", 6379)
    assert o.variant.name == "alibaba-vpc"


def test_tree_fields_point_at_their_bytes():
    data = MSS + toa4(254, 27812, "59.82.47.36") + toa4(250, 80, "106.11.32.156")
    r = dissect_tcp_options(data, base_offset=54)
    frame = bytes(54) + data
    toa = r.tree.find_all("toa")[0]
    for f in toa.walk():
        assert frame[f.offset] == data[f.offset - 54]
    port = toa.find("toa.port")
    assert struct.unpack_from("!H", frame, port.offset)[0] == 27812 == port.value
    addr = toa.find("toa.addr")
    assert frame[addr.offset : addr.offset + 4] == bytes([59, 82, 47, 36])
    assert addr.value == ipaddress.IPv4Address("59.82.47.36")
    assert toa.find("toa.kind").value == 254 and toa.find("toa.len").value == 8
    assert toa.find("toa.variant").value == "lvs-ipv4"
    vip = r.tree.find_all("toa")[1].find("toa.vip")
    assert str(vip.value) == "106.11.32.156" and vip.offset == 54 + 4 + 8 + 4


# --- the walk ---------------------------------------------------------------------------------


def codes(r) -> set[str]:
    return {e.code for e in r.all_experts()}


def test_eol_ends_the_walk_and_a_toa_after_it_is_reported():
    r = dissect_tcp_options(case("after-eol"))
    assert r.client_ip is None
    (o,) = r.options
    assert not o.reached and o.client_ip == "203.0.113.3"
    assert "toa.after_eol" in codes(r)
    # padding zeros after EOL are normal
    r = dissect_tcp_options(toa4(200, 1, "203.0.113.1") + EOL + b"\0\0\0")
    assert r.client_ip == "203.0.113.1" and not r.all_experts()


def test_nop_is_one_byte():
    r = dissect_tcp_options(NOP * 7 + toa4(200, 9, "203.0.113.9") + NOP)
    assert (r.client_ip, r.client_port) == ("203.0.113.9", 9)
    assert r.options[0].offset == 7


@pytest.mark.parametrize("broken", [bytes([30, 1]), bytes([30, 0]), bytes([8, 1])])
def test_length_below_two_aborts_the_walk(broken):
    r = dissect_tcp_options(NOP + broken + NOP + toa4(200, 4, "203.0.113.4"))
    assert r.client_ip is None
    (o,) = r.options
    assert not o.reached and o.client_ip == "203.0.113.4"
    assert {"toa.walk_broken", "toa.after_broken"} <= codes(r)


def test_length_past_the_header_aborts_the_walk():
    r = dissect_tcp_options(NOP + bytes([8, 30]) + b"\0" * 5 + toa4(200, 4, "203.0.113.4"))
    assert r.client_ip is None and "toa.walk_broken" in codes(r)
    assert [o.client_ip for o in r.options] == ["203.0.113.4"]
    # a TOA that itself runs past the header
    r = dissect_tcp_options(NOP + NOP + toa4(200, 1, "203.0.113.1")[:6])
    assert r.client_ip is None
    (o,) = r.options
    assert not o.reached and "toa.truncated" in codes(r)
    # a kind byte with no length byte
    r = dissect_tcp_options(NOP + bytes([200]))
    assert "toa.walk_broken" in codes(r)


def test_option_cut_by_the_capture_is_not_a_walk_error():
    data = MSS + toa4(200, 1, "203.0.113.1")
    r = dissect_tcp_options(data[:8], wire_length=len(data))
    assert "toa.walk_broken" not in codes(r) and "frame.truncated" in codes(r)
    (o,) = r.options
    assert o.reached and o.client_ip is None


def test_first_exact_match_wins_and_disagreement_is_an_error():
    r = dissect_tcp_options(case("disagree-200-254"))
    assert (r.client_ip, r.client_port) == ("203.0.113.5", 40005)
    assert "toa.disagree" in codes(r) and r.malformed
    r = dissect_tcp_options(toa4(200, 1, "203.0.113.1") * 2)
    assert "toa.duplicate" in codes(r) and not r.malformed


def test_vip_without_client():
    r = dissect_tcp_options(case("vip-250-alone"))
    assert r.client_ip is None and r.vip_ip == "192.0.2.80"
    assert "toa.vip_without_client" in codes(r) and r.malformed
    assert "toa.vip_without_client" not in codes(dissect_tcp_options(case("lvs-254-then-250")))


def test_unknown_length_of_a_known_kind_is_malformed():
    r = dissect_tcp_options(case("unknown-length-200-10"))
    (o,) = r.options
    assert o.variant is None and o.client_ip is None and r.client_ip is None
    e = next(e for e in o.experts if e.code == "toa.unknown_length")
    assert e.severity is Severity.ERROR and "8" in e.message  # names the known length
    for kind, ln in ((201, 8), (252, 8), (249, 20), (250, 20), (28, 6)):
        r = dissect_tcp_options(opt(kind, b"\1" * (ln - 2)))
        assert "toa.unknown_length" in codes(r), (kind, ln)


def test_kind_28_version_byte():
    bad = opt(28, b"\x00" + bytes([203, 0, 113, 1]))  # IPv4 length with an IPv6 version byte
    assert "toa.bad_version" in codes(dissect_tcp_options(bad))
    assert "toa.bad_version" not in codes(dissect_tcp_options(case("cdn-28-7")))


# --- kinds 253/254: TOA or RFC 6994 experiment ----------------------------------------------


def test_tfo_cookie_is_not_a_toa():
    r = dissect_tcp_options(case("tfo-cookie-254-12"))
    assert not r.options and not r.all_experts()
    assert r.tree.children[0].find("tcp.options.tfo.cookie").value == bytes(range(8))


def test_smc_r_is_not_a_toa():
    r = dissect_tcp_options(case("smc-r-254-6"))
    assert not r.options
    assert r.tree.children[0].find("tcp.options.experimental.exid").value == 0xE2D4C3D9


def test_toa_length_with_tfo_exid_is_ambiguous():
    r = dissect_tcp_options(case("tfo-ambiguous-254-8"))
    (o,) = r.options
    assert o.client_port == 0xF989 and o.client_ip == "203.0.113.7"
    e = next(e for e in o.experts if e.code == "toa.exp_ambiguous")
    assert "63881" in e.message and "Fast Open" in e.message


def test_253_of_no_toa_length_is_an_rfc6994_experiment_not_a_toa():
    r = dissect_tcp_options(bytes.fromhex("fd0864439ff90050"))
    assert not r.options and not r.all_experts() and r.client_ip is None
    node = r.tree.children[0]
    assert node.name == "tcp.options.experimental" and node.label.endswith("Unknown")
    assert node.find("tcp.options.experimental.exid").value == 0x6443
    assert node.find("tcp.options.experimental.data").value == bytes.fromhex("9ff90050")


def test_user_timeout_is_not_a_toa():
    r = dissect_tcp_options(case("user-timeout-28-4"))
    assert not r.options and r.tree.children[0].find("tcp.options.user_to_val").value == 10


# --- address families -----------------------------------------------------------------------


def test_ipv6_client_on_an_ipv4_connection_is_noted():
    r = dissect_tcp_options(case("nat64-ipv6-toa-on-ipv4"), ip_version=4)
    e = next(e for e in r.all_experts() if e.code == "toa.cross_family")
    assert e.severity is Severity.NOTE and "sockaddr_in6" in e.message
    assert r.client_ip == "2001:db8:c::8"
    r = dissect_tcp_options(case("ipv4-toa-on-ipv6"), ip_version=6)
    assert "toa.cross_family" in codes(r)
    assert "toa.cross_family" not in codes(dissect_tcp_options(case("tencent-200"), ip_version=4))


def test_ipv4_mapped_address_is_an_ipv4_client_shown_as_carried():
    r = dissect_tcp_options(case("mapped-253"), ip_version=4)
    assert r.client_ip == "::ffff:203.0.113.9"
    e = next(e for e in r.all_experts() if e.code == "toa.v4_mapped")
    assert "an IPv4 client (203.0.113.9)" in e.message
    assert "toa.v4_mapped" in codes(r)
    assert "toa.cross_family" not in codes(r)  # it is an IPv4 client on an IPv4 packet


def test_zero_client():
    assert "toa.zero_client" in codes(dissect_tcp_options(toa4(200, 0, "203.0.113.1")))
    assert "toa.zero_client" in codes(dissect_tcp_options(toa4(200, 5, "0.0.0.0")))


# --- the public captures ---------------------------------------------------------------------


def public(name: str):
    frames = read_frames_lt(PUBLIC / name)
    out = []
    for lt, f in frames:
        layers = dissect_frame(f, lt)
        tcp = next(layer for layer in layers if layer.name == "tcp")
        opts = tcp.find("tcp.options")
        out.append([c for c in opts.children if c.name == "toa"] if opts else [])
    return out


def _client(node):
    return str(node.find("toa.addr").value), node.find("toa.port").value


def test_public_254_250_alibaba_slb():
    toas = public("toa-254-250-alibaba-slb.pcap")
    # SYN: 254 only (fe 08 6ca4 3b522f24); handshake ACK: 254 then 250 (fa 08 0050 6a0b209c)
    assert [[t.find("toa.kind").value for t in f] for f in toas[:3]] == [[254], [], [254, 250]]
    assert _client(toas[0][0]) == ("59.82.47.36", 0x6CA4)
    assert _client(toas[2][0]) == ("59.82.47.36", 27812)
    assert str(toas[2][1].find("toa.vip").value) == "106.11.32.156"
    assert toas[2][1].find("toa.vip_port").value == 80
    assert not [e for f in toas for t in f for x in t.walk() for e in x.experts]


def test_public_252_alibaba_vpc():
    toas = public("toa-252-alibaba-vpc.pcap")
    with_toa = [i for i, f in enumerate(toas) if f]
    assert with_toa == [0, 2, 3]  # SYN, handshake ACK, first data segment
    for i in with_toa:
        t = toas[i][0]
        assert _client(t) == ("10.2.154.20", 0xC48E)
        assert t.find("toa.vpc_id").value == 0xE4A70C00
        assert str(t.find("toa.vip").value) == "10.2.40.9"
        assert t.find("toa.vip_port").value == 0x18EB


def test_public_253_experiment_in_a_damaged_file():
    frames = read_frames_lt(PUBLIC / "toa-253-bad-record-lengths.pcap")
    for (lt, frame), exid in zip(frames[:2], (0x6443, 0x6442), strict=True):
        tcp = next(layer for layer in dissect_frame(frame, lt) if layer.name == "tcp")
        opts = tcp.find("tcp.options")
        assert "toa" not in [c.name for c in opts.children]  # no 253 variant has length 8
        node = tcp.find("tcp.options.experimental.exid")
        assert node is not None and node.value == exid  # what tshark shows too
    # every record carries 16 bytes beyond the IP datagram; they are shown, not parsed
    layers = dissect_frame(frames[0][1], frames[0][0])
    trailer = next(layer for layer in layers if layer.name == "frame.trailer")
    assert trailer.length == 16
