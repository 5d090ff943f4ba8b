"""dissect_frame (the layer tree of ``pcapip show``) and hexdump.

Layer fields are checked against dpkt's independent decoding of the same
frames, and every field's offset/length must point at the bytes it decodes.
"""

from __future__ import annotations

import ipaddress
import re
import struct

import dpkt
import pytest
from gen.dissect_compare import PCAPS, all_captures, flatten, read_frames_lt
from gen.proxy_pcaps import CAPTURES, addr_block, eth, ip, tcp, toa4, udp, v1, v2

from pcapip.dissect import dissect_frame, hexdump

LINK_CAPS = [c for c in CAPTURES if c.name.startswith("dissect-link-")]


def by_name(layers):
    return {layer.name: layer for layer in layers}


def dpkt_ip(frame: bytes, linktype: int):
    """The IP packet inside a frame according to dpkt (None when dpkt finds none)."""
    try:
        if linktype == 1:
            pkt = dpkt.ethernet.Ethernet(frame).data
        elif linktype == 113:
            pkt = dpkt.sll.SLL(frame).data
        elif linktype == 276:
            pkt = dpkt.sll2.SLL2(frame).data
        elif linktype in (0, 108):
            fam = struct.unpack("<I" if linktype == 0 and frame[0] else ">I", frame[:4])[0]
            body = frame[4:]
            pkt = dpkt.ip.IP(body) if fam == 2 else dpkt.ip6.IP6(body)
        elif linktype in (12, 14, 101, 228, 229):
            pkt = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
        else:
            return None
    except (dpkt.UnpackError, struct.error, IndexError):
        return None
    if isinstance(pkt, dpkt.pppoe.PPPoE):
        pkt = getattr(pkt.data, "data", None)
    return pkt if isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6) else None


def _ip_of(data):
    """IPv4/IPv6 dpkt object of an inner Ethernet frame, or of raw IP bytes by version."""
    if isinstance(data, dpkt.ethernet.Ethernet):
        data = data.data
    elif isinstance(data, bytes) and data[:1]:
        data = dpkt.ip.IP(data) if data[0] >> 4 == 4 else dpkt.ip6.IP6(data)
    return data if isinstance(data, dpkt.ip.IP | dpkt.ip6.IP6) else None


def dpkt_inner(pkt):
    """The innermost IP packet dpkt reaches through tunnels: it decodes IP in IP, GRE and its
    inner Ethernet itself; VXLAN, GENEVE and ERSPAN headers are stepped over here by their
    fixed layouts and the rest left to dpkt."""
    for _ in range(8):
        d, nxt = pkt.data, None
        try:
            if isinstance(d, dpkt.ip.IP | dpkt.ip6.IP6):
                nxt = d
            elif isinstance(d, dpkt.gre.GRE):
                raw = bytes(d.data)
                skip = {0x88BE: 8, 0x22EB: 20 if len(raw) > 11 and raw[11] & 1 else 12}
                nxt = _ip_of(dpkt.ethernet.Ethernet(raw[skip[d.p]:])) if d.p in skip else \
                    _ip_of(d.data)
            elif isinstance(d, dpkt.udp.UDP) and d.dport == 4789:
                nxt = _ip_of(dpkt.ethernet.Ethernet(bytes(d.data)[8:]))
            elif isinstance(d, dpkt.udp.UDP) and d.dport == 6081:
                raw = bytes(d.data)
                body = raw[8 + (raw[0] & 0x3F) * 4 :]
                nxt = _ip_of(dpkt.ethernet.Ethernet(body) if raw[2:4] == b"\x65\x58" else body)
        except (dpkt.UnpackError, struct.error, IndexError, KeyError):
            nxt = None
        if nxt is None:
            return pkt
        pkt = nxt
    return pkt


def _one(f, name):
    vals = [v for _, _, v in f.get(name, [])]
    return vals[0] if vals else None


@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
def test_layers_agree_with_dpkt(path):
    checked = 0
    for lt, frame in read_frames_lt(path):
        pkt = dpkt_ip(frame, lt)
        if pkt is None:
            continue
        layers = dissect_frame(frame, lt)
        f = flatten(layers)
        if isinstance(pkt, dpkt.ip.IP):
            if "ip.src" not in f:
                continue
            assert (_one(f, "ip.src").packed, _one(f, "ip.dst").packed) == (pkt.src, pkt.dst)
            assert (_one(f, "ip.ttl"), _one(f, "ip.proto"), _one(f, "ip.id")) == (pkt.ttl, pkt.p,
                                                                                   pkt.id)
            if pkt.offset:
                continue  # fragment: no transport header
        else:
            if "ipv6.src" not in f:
                continue
            assert (_one(f, "ipv6.src").packed, _one(f, "ipv6.dst").packed) == (pkt.src, pkt.dst)
        inner = dpkt_inner(pkt)
        codes = {e.code for x in layers for e in x.all_experts()}
        if inner is not pkt:  # a tunnel: the innermost IP is the tree's last one
            if "frame.tunnel_depth" in codes:
                continue  # dpkt opens more than the depth limit lets pcapip open
            name = "ip" if isinstance(inner, dpkt.ip.IP) else "ipv6"
            last = [x for x in layers if x.name in ("ip", "ipv6")][-1]
            assert last.name == name, path.name
            assert (_one(flatten([last]), f"{name}.src").packed,
                    _one(flatten([last]), f"{name}.dst").packed) == (inner.src, inner.dst)
            checked += 1
        l4 = inner.data
        if isinstance(l4, dpkt.tcp.TCP) and "tcp.hdr_len" in f:
            assert (_one(f, "tcp.srcport"), _one(f, "tcp.dstport")) == (l4.sport, l4.dport)
            assert (_one(f, "tcp.seq_raw"), _one(f, "tcp.ack_raw")) == (l4.seq, l4.ack)
            assert _one(f, "tcp.flags") & 0xFF == l4.flags & 0xFF
            assert _one(f, "tcp.window_size_value") == l4.win
            try:
                opts = dpkt.tcp.parse_opts(l4.opts)
            except (dpkt.UnpackError, struct.error, IndexError):
                opts = None
            rows = sorted(f.get("tcp.option_kind", []) + f.get("toa.kind", []))
            kinds = [v for _, _, v in rows]
            codes = {e.code for x in layers for g in x.walk() for e in g.experts}
            if opts is not None and not codes & {"toa.walk_broken", "frame.truncated",
                                                 "toa.nonzero_after_eol"}:
                # dpkt reads on past a bad length, so compare only well-formed option lists;
                # dpkt also lists each padding byte after EOL as one more EOL
                theirs = [k for k, _ in opts]
                assert theirs[: len(kinds)] == kinds, (path.name, opts, kinds)
            if l4.data and "tcp.payload" in f:
                assert _one(f, "tcp.payload") == bytes(l4.data)
            checked += 1
        elif isinstance(l4, dpkt.udp.UDP) and "udp.length" in f:
            assert (_one(f, "udp.srcport"), _one(f, "udp.dstport"), _one(f, "udp.length")) == (
                l4.sport, l4.dport, l4.ulen)
            checked += 1
    assert checked or path.name.startswith(("bad-", "empty", "not-a", "unknown"))


@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
def test_every_field_points_inside_the_frame_at_its_bytes(path):
    for lt, frame in read_frames_lt(path):
        for layer in dissect_frame(frame, lt):
            for f in layer.walk():
                if f.generated:
                    continue
                assert f.offset >= 0 and f.offset + f.length <= len(frame), (path.name, f.name)
                if isinstance(f.value, ipaddress.IPv4Address | ipaddress.IPv6Address) and \
                        f.length in (4, 16):
                    assert frame[f.offset : f.offset + f.length] == f.value.packed, f.name
                elif isinstance(f.value, bytes) and f.length == len(f.value) and f.length:
                    assert frame[f.offset : f.offset + f.length] == f.value, f.name
                elif f.name.endswith(("port", ".len", ".length", "_len")) and f.length == 2 and \
                        isinstance(f.value, int):
                    raw = frame[f.offset : f.offset + 2]
                    if raw != str(f.value).encode():  # a PROXY v1 port is text
                        assert struct.unpack("!H", raw)[0] == f.value, f.name


@pytest.mark.parametrize("cap", LINK_CAPS, ids=lambda c: c.name)
def test_each_link_type_reaches_toa_and_proxy(cap):
    frames = read_frames_lt(PCAPS / cap.name)
    assert [lt for lt, _ in frames] == [cap.linktype] * 3
    toa_frame, v1_frame, v2_frame = (dissect_frame(f, lt) for lt, f in frames)
    names = [layer.name for layer in toa_frame]
    assert names[0] == "frame" and "tcp" in names
    toa = by_name(toa_frame)["tcp"].find("toa")
    assert str(toa.find("toa.addr").value) == "203.0.113.20" and toa.find("toa.port").value == 40020
    p1 = by_name(v1_frame)["proxy"]
    assert str(p1.find("proxy.src.ipv4").value) == "203.0.113.20"
    p2 = by_name(v2_frame)["proxy"]
    src = p2.find("proxy.src.ipv4") or p2.find("proxy.src.ipv6")
    assert str(src.value) in ("203.0.113.21", "2001:db8:c::21")
    assert by_name(v2_frame)["data"].find("data.data").value == b"payload"


def test_vlan_tags():
    (_lt, frame), *_ = read_frames_lt(PCAPS / "dissect-link-vlan.pcap")
    layers = dissect_frame(frame, 1)
    assert [x.name for x in layers[:5]] == ["frame", "eth", "ieee8021ad", "vlan", "ip"]
    assert layers[2].find("ieee8021ad.id").value == 100
    assert (layers[3].find("vlan.id").value, layers[3].find("vlan.priority").value) == (7, 1)


def _frame(l4_payload=b"", proto=6, opts=b"", src="192.0.2.10", dst="192.0.2.20"):
    if proto == 6:
        seg = tcp(src, dst, 1000, 80, 1, 1, 0x18, opts, l4_payload)
    else:
        seg = udp(src, dst, 1000, 80, l4_payload)
    return eth(ip(src, dst, proto, seg), 0x0800 if ":" not in src else 0x86DD)


def test_truncated_frames_are_dissected_as_far_as_they_go():
    full = _frame(v1("TCP4", "1.2.3.4", "5.6.7.8", 1, 2), opts=toa4(200, 7, "203.0.113.7"))
    for cut in range(len(full) + 1):
        layers = dissect_frame(full[:cut], 1)
        codes = [e.code for x in layers for f in x.walk() for e in f.experts]
        assert "dissect.internal_error" not in codes
        if cut < len(full):
            assert "frame.truncated" in codes or cut < 14, cut
    # cut inside the options: the TOA bytes are missing, not "broken"
    layers = dissect_frame(full[: 14 + 20 + 20 + 5], 1)
    tcp_layer = by_name(layers)["tcp"]
    codes = [e.code for f in tcp_layer.walk() for e in f.experts]
    assert "toa.walk_broken" not in codes and "frame.truncated" in codes
    # cut after the ports: ports are shown
    layers = dissect_frame(full[: 14 + 20 + 6], 1)
    assert by_name(layers)["tcp"].find("tcp.dstport").value == 80


def test_trailer_and_ip_total_length():
    frame = _frame() + b"\xaa" * 6
    layers = dissect_frame(frame, 1)
    assert layers[-1].name == "eth.trailer" and layers[-1].length == 6
    assert "frame.trailer" in [e.code for e in layers[-1].experts]
    padded = _frame() + b"\0" * 6
    assert dissect_frame(padded, 1)[-1].name == "eth.padding"


def test_bad_headers_are_experts():
    good = _frame()
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x44
    assert "ip.bad_ihl" in [e.code for x in dissect_frame(bytes(bad_ihl), 1) for e in x.experts]
    bad_csum = bytearray(good)
    bad_csum[24] ^= 0xFF
    f = flatten(dissect_frame(bytes(bad_csum), 1))
    assert _one(f, "ip.checksum.status") == "bad"
    assert _one(flatten(dissect_frame(good, 1)), "ip.checksum.status") == "good"
    bad_off = bytearray(good)
    bad_off[14 + 20 + 12] = 0x30
    tcp_layer = by_name(dissect_frame(bytes(bad_off), 1))["tcp"]
    assert "tcp.bad_offset" in [e.code for e in tcp_layer.experts]
    frag = bytearray(good)
    frag[14 + 6 : 14 + 8] = struct.pack("!H", 0x0010)
    layers = dissect_frame(bytes(frag), 1)
    assert "tcp" not in by_name(layers)
    assert "ip.fragment" in [e.code for e in by_name(layers)["ip"].experts]
    tso = bytearray(_frame(b"x" * 3000))
    tso[16:18] = b"\0\0"
    layers = dissect_frame(bytes(tso), 1)
    assert "ip.zero_length" in [e.code for e in by_name(layers)["ip"].experts]
    assert by_name(layers)["tcp"].find("tcp.payload").length == 3000
    arp = eth(b"\0" * 28, 0x0806)
    assert "frame.not_ip" in [e.code for x in dissect_frame(arp, 1) for e in x.experts]
    assert "frame.unknown_link" in [e.code for e in dissect_frame(b"xyz", 147)[0].experts]


def test_ipv6_extension_headers_are_walked():
    seg = udp("2001:db8::1", "2001:db8::2", 5, 6, v2(1, 0x22, addr_block(0x22, "fd00::1",
                                                                        "fd00::2", 1, 2)))
    hop = bytes([17, 0]) + b"\x01\x04\0\0\0\0"  # hop-by-hop, next header UDP, PadN
    pkt = struct.pack("!IHBB16s16s", 6 << 28, len(hop) + len(seg), 0, 64,
                      ipaddress.IPv6Address("2001:db8::1").packed,
                      ipaddress.IPv6Address("2001:db8::2").packed) + hop + seg
    layers = dissect_frame(eth(pkt, 0x86DD), 1)
    assert by_name(layers)["ipv6"].find("ipv6.hopopts.nxt").value == 17
    assert by_name(layers)["proxy"].find("proxy.src.ipv6") is not None


def test_proxy_header_details_in_frames():
    # a second header right after the first
    data = v1("TCP4", "1.2.3.4", "5.6.7.8", 1, 2) + v1("TCP4", "9.9.9.9", "5.6.7.8", 3, 2) + b"x"
    layers = dissect_frame(_frame(data), 1)
    proxies = [x for x in layers if x.name == "proxy"]
    assert len(proxies) == 2 and proxies[1].experts[0].code == "proxy.repeated"
    assert layers[-1].name == "data" and layers[-1].length == 1
    # v2 STREAM header in a UDP datagram, v1 in UDP
    d = v2(1, 0x11, addr_block(0x11, "1.2.3.4", "5.6.7.8", 1, 2))
    p = by_name(dissect_frame(_frame(d, proto=17), 1))["proxy"]
    assert "proxy.transport_mismatch" in [e.code for e in p.experts]
    p = by_name(dissect_frame(_frame(v1("TCP4", "1.2.3.4", "5.6.7.8", 1, 2), proto=17), 1))
    assert "proxy.v1.over_udp" in [e.code for e in p["proxy"].experts]
    # a header later in the payload, located by the caller
    layers = dissect_frame(_frame(b"junk" + d), 1, proxy_offset=4)
    assert [x.name for x in layers][-2:] == ["data", "proxy"]
    assert by_name(layers)["proxy"].offset == 14 + 20 + 20 + 4
    # an incomplete header (first segment of a split one) shows what is there
    layers = dissect_frame(_frame(d[:14]), 1)
    assert "proxy.incomplete" in [e.code for e in by_name(layers)["proxy"].experts]
    # no PROXY subtree for ordinary payloads
    assert "proxy" not in by_name(dissect_frame(_frame(b"GET / HTTP/1.1\r\n"), 1))


def test_udp_datagram_with_cut_header_is_malformed():
    d = v2(1, 0x12, addr_block(0x12, "1.2.3.4", "5.6.7.8", 1, 2))
    layers = dissect_frame(_frame(d[:20], proto=17), 1)
    p = by_name(layers)["proxy"]
    assert "proxy.truncated" in [e.code for e in p.experts]


def test_render_is_wireshark_like():
    (lt, frame), = read_frames_lt(PCAPS / "seed002-proxy-v2-udp-sll.pcap")
    text = "\n".join(layer.render() for layer in dissect_frame(frame, lt))
    assert "PROXY Protocol\n    Magic: 0d0a0d0a000d0a515549540a" in text
    assert "    [Version: 2]" in text and "Source Port: 48748" in text


# --- hexdump ---------------------------------------------------------------------------------


def _parse_dump(text: str) -> tuple[bytes, bytes]:
    """(all bytes, bytes inside [ ]) read back from a hexdump."""
    allb, marked = bytearray(), bytearray()
    inside = False
    for line in text.splitlines():
        hexpart = line[5:55]  # separators and hex digits; the ASCII column follows
        for tok in re.findall(r"\[|\]|[0-9a-f]{2}", hexpart):
            if tok == "[":
                inside = True
            elif tok == "]":
                inside = False
            else:
                allb.append(int(tok, 16))
                if inside:
                    marked.append(int(tok, 16))
    return bytes(allb), bytes(marked)


def test_hexdump_layout():
    data = bytes(range(256)) + b"tail"
    text = hexdump(data)
    lines = text.splitlines()
    assert len(lines) == 17
    assert lines[0] == ("0000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  "
                        "................")
    assert lines[3].endswith("0123456789:;<=>?")
    assert lines[-1].startswith("0100  74 61 69 6c") and lines[-1].endswith("tail")
    assert _parse_dump(text)[0] == data
    assert hexdump(b"") == ""


@pytest.mark.parametrize("off,ln", [(0, 1), (3, 5), (7, 2), (8, 8), (15, 2), (0, 73), (60, 13),
                                    (16, 16), (44, 28)])
def test_hexdump_marks_exactly_the_highlighted_bytes(off, ln):
    (lt, frame), = read_frames_lt(PCAPS / "seed002-proxy-v2-udp-sll.pcap")
    text = hexdump(frame, highlight=(off, ln))
    assert all(re.match(r"^[0-9a-f]{4} [ \[][0-9a-f]{2}", line) for line in text.splitlines())
    allb, marked = _parse_dump(text)
    assert allb == frame and marked == frame[off : off + ln]
    plain_lines = hexdump(frame).splitlines()
    for a, b in zip(text.splitlines(), plain_lines, strict=True):
        assert len(a.rstrip()) <= len(b) + 1


def test_hexdump_highlights_a_field_from_the_tree():
    (lt, frame), = read_frames_lt(PCAPS / "seed002-proxy-v2-udp-sll.pcap")
    layers = dissect_frame(frame, lt)
    src = next(f for x in layers for f in x.walk() if f.name == "proxy.src.ipv4")
    _, marked = _parse_dump(hexdump(frame, highlight=(src.offset, src.length)))
    assert marked == bytes([119, 29, 135, 205])


def test_proxy_state_of_frames_in_split_capture():
    frames = read_frames_lt(PCAPS / "dissect-proxy-split.pcap")
    states = []
    for lt, f in frames:
        layers = dissect_frame(f, lt)
        p = by_name(layers).get("proxy")
        states.append(None if p is None else
                      ("incomplete" if "proxy.incomplete" in [e.code for e in p.experts]
                       else "ok"))
    # v1 split 20/rest: first part incomplete, second part is not a header start
    assert states[3] == "incomplete" and states[4] is None
    # v2 split 10/5/rest: 10 bytes of signature, then the rest
    assert states[8] == "incomplete"
