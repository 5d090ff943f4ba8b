"""PROXY v2: every rule of spec section 2.2 (header and TLVs), accepted and rejected.

Headers are built with the test-side encoder in tests/gen/proxy_pcaps.py
(written from the spec, CRC32C from a different library than the parser's).
"""

from __future__ import annotations

import struct

import pytest
from gen.proxy_pcaps import V2_SIG, addr_block, ssl_tlv, tlv, v2

from pcapip.dissect import ParseState, Severity, parse_proxy

A4 = addr_block(0x11, "198.51.100.7", "192.0.2.1", 40001, 443)
A6 = addr_block(0x21, "2001:db8::7", "2001:db8:1::1", 40003, 8443)


def ok(data: bytes):
    p = parse_proxy(data)
    assert p.state is ParseState.OK, [(e.code, e.message) for e in p.experts]
    return p


def bad(data: bytes, code: str):
    p = parse_proxy(data)
    assert p.state is ParseState.MALFORMED, (p.state, p.experts)
    codes = [e.code for e in p.experts if e.severity is Severity.ERROR]
    assert code in codes, [(e.code, e.message) for e in p.experts]
    return p


def test_signature_version_and_length():
    hdr = v2(1, 0x11, A4)
    p = ok(hdr + b"payload")
    h = p.header
    assert (h.version, h.command, h.family, h.transport) == (2, "PROXY", "INET", "STREAM")
    assert (h.src_addr, h.dst_addr, h.src_port, h.dst_port) == ("198.51.100.7", "192.0.2.1",
                                                                40001, 443)
    assert p.length == h.length == 16 + 12 == len(hdr)
    assert p.tree.find("proxy.v2.magic").value == V2_SIG
    assert p.tree.find("proxy.v2.length").value == 12


@pytest.mark.parametrize("fam,family,transport,block", [
    (0x11, "INET", "STREAM", 12), (0x12, "INET", "DGRAM", 12),
    (0x21, "INET6", "STREAM", 36), (0x22, "INET6", "DGRAM", 36),
    (0x31, "UNIX", "STREAM", 216), (0x32, "UNIX", "DGRAM", 216),
])
def test_each_valid_family_byte(fam, family, transport, block):
    src, dst = {1: ("10.0.0.1", "10.0.0.2"), 2: ("fd00::1", "fd00::2"),
                3: ("/tmp/a", "/tmp/b")}[fam >> 4]
    ab = addr_block(fam, src, dst, 1234, 5678)
    assert len(ab) == block
    p = ok(v2(1, fam, ab))
    h = p.header
    assert (h.family, h.transport, h.src_addr, h.dst_addr) == (family, transport, src, dst)
    if fam >> 4 != 3:
        assert (h.src_port, h.dst_port) == (1234, 5678)


def test_unspec_family_is_accepted_but_carries_no_client():
    p = ok(v2(0, 0x00))
    assert p.header.command == "LOCAL" and p.length == 16
    p = ok(v2(1, 0x00))
    assert p.header.src_addr is None
    assert "proxy.v2.unspec" in p.codes


@pytest.mark.parametrize("fam,code", [
    (0x13, "proxy.v2.bad_transport"), (0x41, "proxy.v2.bad_family"),
    (0xFF, "proxy.v2.bad_family"), (0x01, "proxy.v2.bad_family_protocol"),
    (0x10, "proxy.v2.bad_family_protocol"), (0x20, "proxy.v2.bad_family_protocol"),
    (0x30, "proxy.v2.bad_family_protocol"), (0x02, "proxy.v2.bad_family_protocol"),
])
def test_rejects_other_family_bytes(fam, code):
    bad(v2(1, fam, A4), code)


@pytest.mark.parametrize("cmd", [2, 3, 0xF])
def test_rejects_other_commands(cmd):
    bad(v2(cmd, 0x11, A4), "proxy.v2.bad_command")


@pytest.mark.parametrize("ver", [0, 1, 3, 0xF])
def test_rejects_other_versions(ver):
    p = bad(v2(1, 0x11, A4, ver=ver), "proxy.v2.bad_version")
    assert p.experts[0].offset == 12


def test_local_honours_len_and_ignores_addresses():
    hdr = v2(0, 0x11, A4)
    p = ok(hdr + b"data")
    h = p.header
    assert h.command == "LOCAL" and p.length == 28
    assert h.src_addr is None and h.src_port is None  # receivers use the real endpoints
    assert p.tree.find("proxy.src.ipv4") is not None  # but the bytes are shown
    # LOCAL with UNSPEC and a non-zero len: the len bytes still belong to the header
    p = ok(v2(0, 0x00, b"", [tlv(0x04, b"\0" * 5)]))
    assert p.length == 16 + 8


def test_address_block_sizes_are_enforced_for_proxy():
    bad(v2(1, 0x11, A4[:8]), "proxy.v2.addr_too_short")
    bad(v2(1, 0x21, A4), "proxy.v2.addr_too_short")  # 12 bytes for a 36-byte family
    bad(v2(1, 0x31, A6), "proxy.v2.addr_too_short")
    p = ok(v2(0, 0x21, A4))  # LOCAL: noted, not an error
    assert "proxy.v2.local_short_addr" in p.codes


def test_unix_paths_are_nul_padded():
    p = ok(v2(1, 0x31, addr_block(0x31, "/run/a.sock", "/run/b.sock")))
    assert (p.header.src_addr, p.header.dst_addr) == ("/run/a.sock", "/run/b.sock")
    assert not p.experts or all(e.severity < Severity.WARN for e in p.experts)
    junk = b"/run/a.sock\0junk".ljust(108, b"\0") + b"/run/b.sock".ljust(108, b"\0")
    p = parse_proxy(v2(1, 0x31, junk))
    assert "proxy.v2.unix_padding" in p.codes and p.header.src_addr == "/run/a.sock"
    full = b"x" * 108 + b"/b".ljust(108, b"\0")
    assert "proxy.v2.unix_unterminated" in parse_proxy(v2(1, 0x31, full)).codes
    abstract = b"\0hidden".ljust(108, b"\0") + b"/b".ljust(108, b"\0")
    assert ok(v2(1, 0x31, abstract)).header.src_addr == "@hidden"


# --- TLVs -----------------------------------------------------------------------------------------


def test_registered_tlvs_are_decoded():
    subs = [(0x21, b"TLSv1.3"), (0x22, b"client.example"), (0x23, b"TLS_AES_128_GCM_SHA256"),
            (0x24, b"SHA256"), (0x25, b"RSA2048"), (0x26, b"X25519"),
            (0x27, b"rsa_pss_rsae_sha256"), (0x28, b"\x30\x82\x01\x0a")]
    hdr = v2(1, 0x11, A4, [tlv(0x01, b"h2"), tlv(0x02, b"www.example.com"),
                           tlv(0x04, b"\0\0"), tlv(0x05, b"u" * 128),
                           ssl_tlv(0x07, 0, subs), tlv(0x30, b"blue")], crc=True)
    p = ok(hdr)
    h = p.header
    assert [t.name for t in h.tlvs] == ["alpn", "authority", "noop", "unique_id", "ssl",
                                        "netns", "crc32c"]
    assert h.tlv("alpn").value == "h2" and h.tlv("authority").value == "www.example.com"
    assert h.tlv("unique_id").value == b"u" * 128 and h.tlv("netns").value == "blue"
    ssl = h.tlv("ssl")
    assert ssl.value == {"client": 7, "verify": 0, "ssl": True, "cert_conn": True,
                         "cert_sess": True}
    assert [(c.name, c.value) for c in ssl.children] == [
        ("ssl.version", "TLSv1.3"), ("ssl.cn", "client.example"),
        ("ssl.cipher", "TLS_AES_128_GCM_SHA256"), ("ssl.sig_alg", "SHA256"),
        ("ssl.key_alg", "RSA2048"), ("ssl.group", "X25519"),
        ("ssl.sig_scheme", "rsa_pss_rsae_sha256"), ("ssl.client_cert", b"\x30\x82\x01\x0a")]
    assert h.crc32c == "ok"
    for t in h.tlvs:  # offsets and lengths point at the TLV bytes
        assert hdr[t.offset] == t.type
        assert struct.unpack_from("!H", hdr, t.offset + 1)[0] == t.length - 3
    assert p.tree.find("proxy.v2.tlv.ssl.cn").value == "client.example"
    assert p.tree.find("proxy.v2.tlv.crc32c.status").value == "ok"


def test_tlvs_after_ssl_are_siblings_not_children():
    hdr = v2(1, 0x11, A4, [ssl_tlv(0x01, 0, [(0x21, b"TLSv1.2")]), tlv(0x02, b"after.example"),
                           tlv(0x01, b"http/1.1")])
    h = ok(hdr).header
    assert [t.name for t in h.tlvs] == ["ssl", "authority", "alpn"]
    assert [c.name for c in h.tlvs[0].children] == ["ssl.version"]
    assert h.tlvs[1].value == "after.example"


def test_vendor_tlvs():
    hdr = v2(1, 0x21, A6, [tlv(0xEA, b"\x01vpce-0123456789abcdef0"),
                           tlv(0xEE, b"\x01" + struct.pack("<I", 0x01020304)),
                           tlv(0xE0, struct.pack("!Q", 0x1122334455667788)),
                           tlv(0xE5, b"custom"), tlv(0xF1, b"exp")])
    h = ok(hdr).header
    assert [(t.name, t.value) for t in h.tlvs] == [
        ("aws.vpce_id", "vpce-0123456789abcdef0"), ("azure.link_id", 0x01020304),
        ("gcp.psc_id", 0x1122334455667788), ("custom", b"custom"), ("experimental", b"exp")]


def test_vendor_tlvs_with_wrong_layout_are_flagged_and_kept_raw():
    for t in (tlv(0xEE, b"\x01\x02\x03"), tlv(0xE0, b"short"), tlv(0xEA, b"")):
        p = ok(v2(1, 0x11, A4, [t]))
        assert "proxy.v2.tlv.vendor_layout" in p.codes
        assert p.header.tlvs[0].name == "custom"


def test_unregistered_and_future_types():
    p = ok(v2(1, 0x11, A4, [tlv(0x06, b"x"), tlv(0x22, b"cn-at-top")]))
    assert [t.name for t in p.header.tlvs] == ["unknown", "unknown"]
    assert p.codes.count("proxy.v2.tlv.unknown_type") == 2
    assert "proxy.v2.tlv.future_type" in ok(v2(1, 0x11, A4, [tlv(0xF9, b"x")])).codes


def test_tlv_overrun_is_rejected():
    p = bad(v2(1, 0x11, A4 + b"\x02\x00\x20short"), "proxy.v2.tlv.overrun")
    e = next(e for e in p.experts if e.code == "proxy.v2.tlv.overrun")
    assert e.offset == 28


@pytest.mark.parametrize("stray", [b"\x01", b"\x01\x00"])
def test_stray_bytes_shorter_than_a_tlv_header_are_rejected(stray):
    bad(v2(1, 0x11, A4 + stray), "proxy.v2.tlv.stray_bytes")
    ok(v2(1, 0x11, A4 + b"\x04\x00\x00"))  # an empty NOOP is fine


def test_crc32c():
    good = v2(1, 0x11, A4, [tlv(0x02, b"x.example")], crc=True)
    p = ok(good)
    assert p.header.crc32c == "ok"
    wrong = v2(1, 0x11, A4, [tlv(0x02, b"x.example")], crc_value=0xDEADBEEF)
    p = bad(wrong, "proxy.v2.tlv.crc32c_mismatch")
    assert p.header.crc32c == "bad"  # still decoded
    assert p.header.src_addr == "198.51.100.7"
    # any flipped bit in the header (outside the CRC field) is caught
    flipped = bytearray(good)
    flipped[20] ^= 0x01
    assert parse_proxy(bytes(flipped)).header.crc32c == "bad"
    # the CRC covers the whole 16+len header, not just the TLVs
    flipped = bytearray(good)
    flipped[13] = 0x12
    assert parse_proxy(bytes(flipped)).header.crc32c == "bad"


@pytest.mark.parametrize("ln", [0, 3, 5, 8])
def test_crc32c_length_must_be_4(ln):
    bad(v2(1, 0x11, A4, [tlv(0x03, b"\0" * ln)]), "proxy.v2.tlv.crc32c_length")


def test_unique_id_limit():
    ok(v2(1, 0x11, A4, [tlv(0x05, b"u" * 128)]))
    bad(v2(1, 0x11, A4, [tlv(0x05, b"u" * 129)]), "proxy.v2.tlv.unique_id_too_long")


def test_ssl_tlv_rules():
    ok(v2(1, 0x11, A4, [ssl_tlv(0, 0, [])]))  # 5 bytes: client + verify only
    for short in (b"", b"\x01", b"\x01\0\0\0"):
        bad(v2(1, 0x11, A4, [tlv(0x20, short)]), "proxy.v2.tlv.ssl_too_short")
    orphan = tlv(0x20, b"\x00\0\0\0\0" + tlv(0x21, b"TLSv1.3") + b"\x22\x00")
    bad(v2(1, 0x11, A4, [orphan]), "proxy.v2.tlv.ssl_orphan")
    overrun = tlv(0x20, b"\x00\0\0\0\0" + b"\x22\x00\x09short")
    bad(v2(1, 0x11, A4, [overrun]), "proxy.v2.tlv.ssl_sub_overrun")
    p = ok(v2(1, 0x11, A4, [ssl_tlv(0x01, 0, [])]))
    assert "proxy.v2.tlv.ssl_version_missing" in p.codes
    p = ok(v2(1, 0x11, A4, [ssl_tlv(0x09, 1, [(0x21, b"TLSv1.3"), (0x40, b"?")])]))
    assert {"proxy.v2.tlv.ssl_client_bits", "proxy.v2.tlv.ssl_unknown_sub"} <= set(p.codes)


def test_bad_utf8_text_is_a_warning_with_raw_value():
    p = ok(v2(1, 0x11, A4, [tlv(0x02, b"bad\xffname")]))
    assert p.header.tlvs[0].value == b"bad\xffname"
    e = next(e for e in p.experts if e.code == "proxy.v2.tlv.bad_text")
    assert e.offset == 28 + 3 + 3


def test_tree_offsets_point_at_the_bytes():
    hdr = v2(1, 0x21, A6, [tlv(0x02, b"a.example"), ssl_tlv(1, 0, [(0x21, b"TLSv1.3")])],
             crc=True)
    p = ok(hdr)
    for f in p.tree.walk():
        assert f.offset >= 0 and f.offset + f.length <= len(hdr), f
    src = p.tree.find("proxy.src.ipv6")
    assert hdr[src.offset : src.offset + 16] == src.value.packed
    port = p.tree.find("proxy.dstport")
    assert struct.unpack_from("!H", hdr, port.offset)[0] == port.value == 8443
    for t in p.tree.find_all("proxy.v2.tlv.type"):
        assert hdr[t.offset] == t.value
    ver = p.tree.find("proxy.v2.tlv.ssl.version")
    assert hdr[ver.offset : ver.offset + ver.length] == b"TLSv1.3"
