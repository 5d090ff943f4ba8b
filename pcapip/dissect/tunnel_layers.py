"""The encapsulation layers of ``pcapip show``: VXLAN, GENEVE, GRE, ERSPAN II/III, MPLS, PPPoE, IP in IP.

Mirrors and overlays wrap the connection an operator asks about (issue 13), so the
tree shows every wrapper with Wireshark's field names and then the inner layers,
where the TOA and PROXY dissection runs as on any TCP segment. The frame dissector
(:mod:`.frame`) calls in here from its ethertype, IP protocol and UDP port dispatch
and is called back for the inner Ethernet or IP. The encapsulations and the depth
limit are :mod:`pcapip.decode.tunnels`' (the decode opens the same ones); a header
cut short or lying about its length is an expert on its node, never an exception,
and a chain of encapsulations deeper than ``MAX_TUNNEL_DEPTH`` stops with one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

from pcapip.decode.tunnels import MAX_TUNNEL_DEPTH, TUN_GENEVE, TUN_VXLAN
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Field
from pcapip.dissect.hf import item, subtree, vals

ETH_TEB, ETH_MPLS, ETH_PPPOE, ETH_ERSPAN2, ETH_ERSPAN3 = 0x6558, 0x8847, 0x8864, 0x88BE, 0x22EB
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057


class Host(Protocol):
    """What a tunnel layer needs of the frame dissector: the bytes, the layer list, the
    bounds check, the depth counter and the inner Ethernet/IP dissection."""

    b: bytes
    n: int
    layers: list[Field]
    depth: int

    def cut(self, node: Field, off: int, need: int, what: str) -> bool: ...
    def ethernet(self, off: int = 0) -> None: ...
    def ip(self, off: int, etype: int, *, raw: bool = False) -> None: ...
    def ipv4(self, off: int) -> None: ...
    def ipv6(self, off: int) -> None: ...


def _u16(b: bytes, o: int) -> int:
    return (b[o] << 8) | b[o + 1]


def _u32(b: bytes, o: int) -> int:
    return struct.unpack_from("!I", b, o)[0]


def _hex16(v: int) -> str:
    return f"0x{v:04x}"


def _head(d: Host, off: int, size: int) -> bytes:
    """A header's bytes from the frame, zero-padded where the capture cut it (only the fields
    that fit are drawn, see :func:`_put`)."""
    return d.b[off : off + size].ljust(size, b"\0")


def _put(d: Host, parent: Field | None, name: str, shown: object, at: int, size: int,
         value: object) -> Field | None:
    """Add a field if its bytes were captured: a cut header is drawn as far as it goes, as
    Wireshark draws it."""
    if parent is None or at + size > d.n:
        return None
    return parent.add(item(name, shown, at, size, value))


def enter(d: Host, node: Field, off: int) -> bool:
    """Count one more encapsulation opened at ``off``; past the limit, say so and stop."""
    if d.depth >= MAX_TUNNEL_DEPTH:
        node.experts.append(expert("frame.tunnel_depth", off, max(0, d.n - off),
                                   f"more than {MAX_TUNNEL_DEPTH} encapsulations in one frame: "
                                   "the inner ones are not opened"))
        return False
    d.depth += 1
    return True


def _layer(d: Host, name: str, off: int, size: int, **kw: str) -> Field:
    node = subtree(name, off, min(size, max(0, d.n - off)), **kw)
    d.layers.append(node)
    return node


def _inner(d: Host, off: int, proto: int) -> None:
    """What follows a tunnel header that names its payload by ethertype."""
    if proto == ETH_TEB:
        d.ethernet(off)
    else:
        d.ip(off, proto)


# --- IP in IP ------------------------------------------------------------------------------


def ip_in_ip(d: Host, off: int, proto: int) -> None:
    """IPv4 (protocol 4) or IPv6 (41) right after an IPv4/IPv6 header."""
    if enter(d, d.layers[-1], off):
        if proto == 4:
            d.ipv4(off)
        else:
            d.ipv6(off)


# --- UDP: VXLAN and GENEVE ---------------------------------------------------------------


def udp_tunnel(d: Host, off: int, end: int, kind: int) -> None:
    """The UDP payload at ``off`` of a port that opens VXLAN or GENEVE."""
    if not enter(d, d.layers[-1], off):
        return
    if kind == TUN_VXLAN:
        vxlan(d, off)
    elif kind == TUN_GENEVE:
        geneve(d, off, end)


def vxlan(d: Host, off: int) -> None:
    h = _head(d, off, 8)
    node = _layer(d, "vxlan", off, 8)
    flags, gbp, vni = _u16(h, 0), _u16(h, 2), _u32(h, 4) >> 8
    fl = _put(d, node, "vxlan.flags", _hex16(flags), off, 2, flags)
    for name, bit in (("vxlan.flag_g", 0x8000), ("vxlan.flag_i", 0x0800),
                      ("vxlan.flag_d", 0x0040), ("vxlan.flag_a", 0x0008)):
        _put(d, fl, name, bool(flags & bit), off, 2, bool(flags & bit))
    _put(d, fl, "vxlan.flags_reserved", _hex16(flags & 0x77B7), off, 2, flags & 0x77B7)
    _put(d, node, "vxlan.gbp", gbp, off + 2, 2, gbp)
    _put(d, node, "vxlan.vni", vni, off + 4, 3, vni)
    _put(d, node, "vxlan.reserved8", h[7], off + 7, 1, h[7])
    if d.cut(node, off, 8, "VXLAN header"):
        return
    node.label += f", VNI: {vni}"
    d.ethernet(off + 8)


def geneve(d: Host, off: int, end: int) -> None:
    h = _head(d, off, 8)
    node = _layer(d, "geneve", off, 8)
    ver, olen = h[0] >> 6, (h[0] & 0x3F) * 4
    flags, proto, vni = h[1], _u16(h, 2), _u32(h, 4) >> 8
    _put(d, node, "geneve.version", ver, off, 1, ver)
    _put(d, node, "geneve.option.length", f"{olen} bytes", off, 1, olen)
    fl = _put(d, node, "geneve.flags", f"0x{flags:02x}", off + 1, 1, flags)
    _put(d, fl, "geneve.flags.oam", bool(flags & 0x80), off + 1, 1, bool(flags & 0x80))
    _put(d, fl, "geneve.flags.critical", bool(flags & 0x40), off + 1, 1, bool(flags & 0x40))
    _put(d, node, "geneve.proto_type", f"{vals('geneve.proto_type', proto, 'Unknown')} "
         f"(0x{proto:04x})", off + 2, 2, proto)
    _put(d, node, "geneve.vni", f"0x{vni:06x} ({vni})", off + 4, 3, vni)
    _put(d, node, "geneve.reserved", f"0x{h[7]:02x}", off + 7, 1, h[7])
    if d.cut(node, off, 8, "GENEVE header"):
        return
    node.label += f", VNI: 0x{vni:06x}"
    if ver != 0:
        node.experts.append(expert("frame.not_ip", off, 1, f"GENEVE version {ver} not opened"))
        return
    start, stop = off + 8, min(end, d.n)
    if start + olen > stop:
        node.length = max(0, stop - off)
        node.experts.append(expert("frame.truncated", off, 1,
                                   f"GENEVE options of {olen} bytes run past the "
                                   f"{max(0, stop - start)} bytes after the header"))
        return
    node.length = 8 + olen
    if olen:
        _geneve_options(node, d.b, start, start + olen)
    _inner(d, start + olen, proto)


def _geneve_options(node: Field, b: bytes, start: int, stop: int) -> None:
    area = node.add(item("geneve.options", f"({stop - start} bytes)", start, stop - start,
                         b[start:stop]))
    at = start
    while at + 4 <= stop:
        cls, typ, size = _u16(b, at), b[at + 2], 4 + (b[at + 3] & 0x1F) * 4
        if size > stop - at:  # Wireshark draws no option then, only its complaint
            area.experts.append(expert("frame.truncated", at + 3, 1,
                                       f"option class 0x{cls:04x} type 0x{typ:02x}: length "
                                       f"{size} runs past the option area"))
            return
        opt = area.add(item("geneve.option", f"Class: 0x{cls:04x}, Type: 0x{typ:02x}", at, size,
                            b[at : at + size]))
        opt.add(item("geneve.option.class", f"0x{cls:04x}", at, 2, cls))
        t = opt.add(item("geneve.option.type", f"0x{typ:02x}", at + 2, 1, typ))
        t.add(item("geneve.option.type.critical", bool(typ & 0x80), at + 2, 1, bool(typ & 0x80)))
        opt.add(item("geneve.option.length", f"{size} bytes", at + 3, 1, size))
        if size > 4:
            opt.add(item("geneve.option.unknown.data", b[at + 4 : at + size].hex(), at + 4,
                         size - 4, b[at + 4 : at + size]))
        at += size
    if at < stop:
        area.experts.append(expert("frame.truncated", at, stop - at,
                                   f"{stop - at} bytes left in the option area"))


# --- GRE and ERSPAN ------------------------------------------------------------------------


def gre(d: Host, off: int, end: int) -> None:
    """GRE (IP protocol 47), then IP, Ethernet (0x6558), MPLS, or ERSPAN II/III."""
    if not enter(d, d.layers[-1], off):
        return
    b, h = d.b, _head(d, off, 4)
    node = _layer(d, "gre", off, 4)
    fv, proto = _u16(h, 0), _u16(h, 2)
    fl = _put(d, node, "gre.flags_and_version", _hex16(fv), off, 2, fv)
    for name, bit in (("checksum", 0x8000), ("routing", 0x4000), ("key", 0x2000),
                      ("sequence_number", 0x1000), ("strict_source_route", 0x0800)):
        _put(d, fl, f"gre.flags.{name}", bool(fv & bit), off, 2, bool(fv & bit))
    for name, value in (("recursion_control", (fv >> 8) & 7), ("reserved", (fv >> 3) & 0x1F),
                        ("version", fv & 7)):
        _put(d, fl, f"gre.flags.{name}", value, off, 2, value)
    _put(d, node, "gre.proto", f"{vals('gre.proto', proto, 'Unknown')} (0x{proto:04x})",
         off + 2, 2, proto)
    if d.cut(node, off, 4, "GRE header"):
        return
    if fv & 0x4007:
        node.experts.append(expert("frame.not_ip", off, 2, "GRE with routing or a version "
                                   "other than 0 is not opened"))
        return
    hl = 4 + 4 * (bool(fv & 0x8000) + bool(fv & 0x2000) + bool(fv & 0x1000))
    node.length = min(hl, max(0, d.n - off))
    h = _head(d, off, hl)
    at = off + 4
    if fv & 0x8000:
        ck = _u16(h, at - off)
        calc = internet_checksum(b[off:at] + b"\0\0" + b[at + 2 : min(end, d.n)])
        state = "correct" if calc == ck else f"incorrect, should be 0x{calc:04x}"
        _put(d, node, "gre.checksum", f"0x{ck:04x} [{state}]", at, 2, ck)
        _put(d, node, "gre.offset", _u16(h, at + 2 - off), at + 2, 2, _u16(h, at + 2 - off))
        at += 4
    if fv & 0x2000:
        key = _u32(h, at - off)
        _put(d, node, "gre.key", f"0x{key:08x}", at, 4, key)
        node.label += f", Key: {key}"
        at += 4
    if fv & 0x1000:
        seq = _u32(h, at - off)
        _put(d, node, "gre.sequence_number", seq, at, 4, seq)
        at += 4
    if d.cut(node, off, hl, "GRE header with its optional fields"):
        return
    if proto == ETH_ERSPAN2:
        erspan2(d, at)
    elif proto == ETH_ERSPAN3:
        erspan3(d, at)
    else:
        _inner(d, at, proto)


def _erspan_words(d: Host, node: Field, off: int, h: bytes, mode: str) -> Callable[..., None]:
    """The first 4 bytes both ERSPAN types share (``mode``: type II's ``erspan.encap``,
    type III's ``erspan.bso`` in the same 2 bits); returns the node's field writer."""
    w0, w1 = _u16(h, 0), _u16(h, 2)

    def bits(name: str, at: int, size: int, value: int) -> None:
        _put(d, node, name, value, at, size, value)

    bits("erspan.version", off, 2, w0 >> 12)
    bits("erspan.vlan", off, 2, w0 & 0x0FFF)
    bits("erspan.cos", off + 2, 2, w1 >> 13)
    bits(mode, off + 2, 2, (w1 >> 11) & 3)
    bits("erspan.truncated", off + 2, 2, (w1 >> 10) & 1)
    bits("erspan.spanid", off + 2, 2, w1 & 0x03FF)
    return bits


def erspan2(d: Host, off: int) -> None:
    h = _head(d, off, 8)
    node = _layer(d, "erspan", off, 8, more=" Type II")
    w1, w2 = _u16(h, 2), _u32(h, 4)
    bits = _erspan_words(d, node, off, h, "erspan.encap")
    bits("erspan.reserved", off + 4, 4, w2 >> 20)
    bits("erspan.index", off + 4, 4, w2 & 0xFFFFF)
    if d.cut(node, off, 8, "ERSPAN type II header"):
        return
    node.label += f", Session: {w1 & 0x03FF}"
    d.ethernet(off + 8)


def erspan3(d: Host, off: int) -> None:
    """ERSPAN type III: 12 bytes, then the 8-byte platform sub-header when the O bit is set."""
    h = _head(d, off, 20)
    node = _layer(d, "erspan", off, 12, more=" Type III")
    w1, w5 = _u16(h, 2), _u16(h, 10)
    bits = _erspan_words(d, node, off, h, "erspan.bso")
    bits("erspan.timestamp", off + 4, 4, _u32(h, 4))
    bits("erspan.sgt", off + 8, 2, _u16(h, 8))
    bits("erspan.p", off + 10, 2, w5 >> 15)
    bits("erspan.ft", off + 10, 2, (w5 >> 10) & 0x1F)
    bits("erspan.hw", off + 10, 2, (w5 >> 4) & 0x3F)
    _put(d, node, "erspan.direction", "Egress" if w5 & 8 else "Ingress", off + 10, 2,
         bool(w5 & 8))
    bits("erspan.gra", off + 10, 2, (w5 >> 1) & 3)
    bits("erspan.o", off + 10, 2, w5 & 1)
    if d.cut(node, off, 12, "ERSPAN type III header"):
        return
    node.label += f", Session: {w1 & 0x03FF}"
    at = off + 12
    if w5 & 1:
        node.length = min(20, max(0, d.n - off))
        _platform(d, node, h[12:20], at)
        if d.cut(node, at, 8, "ERSPAN platform-specific sub-header"):
            return
        at += 8
    if (w5 >> 10) & 0x1F:
        node.experts.append(expert("frame.not_ip", off + 10, 2, "ERSPAN frame type "
                                   f"{(w5 >> 10) & 0x1F} is not Ethernet"))
        return
    d.ethernet(at)


def _platform(d: Host, node: Field, h: bytes, at: int) -> None:
    """The platform-specific sub-header (``h``: its 8 bytes, zero-padded where cut)."""
    w, w2 = _u32(h, 0), _u32(h, 4)
    _put(d, node, "erspan.platid", w >> 26, at, 4, w >> 26)
    if w >> 26 == 3:  # port index + the upper 32 bits of the timestamp
        _put(d, node, "erspan.pid3.rsvd1", (w >> 14) & 0xFFF, at, 4, (w >> 14) & 0xFFF)
        _put(d, node, "erspan.pid3.port_index", w & 0x3FFF, at, 4, w & 0x3FFF)
        _put(d, node, "erspan.pid3.timestamp", w2, at + 4, 4, w2)
    elif w >> 26 in (5, 6):  # switch id, port index, timestamp in seconds
        _put(d, node, "erspan.pid5.switchid", (w >> 16) & 0x3FF, at, 4, (w >> 16) & 0x3FF)
        _put(d, node, "erspan.pid5.port_index", w & 0xFFFF, at, 4, w & 0xFFFF)
        _put(d, node, "erspan.pid5.timestamp", w2, at + 4, 4, w2)


# --- MPLS and PPPoE ------------------------------------------------------------------------


def mpls(d: Host, off: int) -> None:
    """A label stack (one layer per label, as Wireshark draws it) to bottom of stack, then IPv4
    or IPv6 by the version nibble, or an Ethernet pseudowire behind a control word."""
    if not enter(d, d.layers[-1], off):
        return
    b, node = d.b, None
    while True:
        if node is not None and off >= d.n:  # the frame ends with no bottom of stack
            node.experts.append(expert("frame.truncated", off - 4, 4, "the frame ends before a "
                                       "bottom-of-stack label"))
            return
        node = _layer(d, "mpls", off, 4)
        if d.cut(node, off, 4, "MPLS label"):
            return
        w = _u32(b, off)
        lab, exp, bos, ttl = w >> 12, (w >> 9) & 7, (w >> 8) & 1, w & 0xFF
        node.label += f", Label: {lab}, Exp: {exp}, S: {bos}, TTL: {ttl}"
        for name, v in (("label", lab), ("exp", exp), ("bottom", bos), ("ttl", ttl)):
            node.add(item(f"mpls.{name}", v, off, 4, v))
        off += 4
        if bos:
            break
    if off >= d.n:
        node.experts.append(expert("frame.truncated", off, 0, "nothing after the label stack"))
        return
    nibble = b[off] >> 4
    if nibble == 4:
        d.ipv4(off)
    elif nibble == 6:
        d.ipv6(off)
    elif nibble == 0:
        cw = _layer(d, "pwethcw", off, 4)
        if d.cut(cw, off, 4, "PW control word"):
            return
        seq = _u16(b, off + 2)
        cw.add(item("pweth.cw.sequence_number", seq, off + 2, 2, seq))
        d.ethernet(off + 4)
    else:
        node.experts.append(expert("frame.not_ip", off, d.n - off,
                                   f"payload version nibble {nibble}: not IP or a PW control word"))


def pppoe(d: Host, off: int) -> None:
    """PPPoE session stage (0x8864) and the PPP protocol field: IPv4 0x0021, IPv6 0x0057."""
    if not enter(d, d.layers[-1], off):
        return
    b = d.b
    node = _layer(d, "pppoes", off, 6)
    if d.cut(node, off, 6, "PPPoE header"):
        return
    vt, code, sid, plen = b[off], b[off + 1], _u16(b, off + 2), _u16(b, off + 4)
    node.add(item("pppoe.version", vt >> 4, off, 1, vt >> 4, bits=vt >> 4))
    node.add(item("pppoe.type", vt & 15, off, 1, vt & 15, bits=vt & 15))
    node.add(item("pppoe.code", f"0x{code:02x}", off + 1, 1, code))
    node.add(item("pppoe.session_id", _hex16(sid), off + 2, 2, sid))
    node.add(item("pppoe.payload_length", plen, off + 4, 2, plen))
    if off + 6 + plen > d.n:
        node.experts.append(expert("frame.truncated", off + 4, 2,
                                   f"payload length {plen}, {d.n - off - 6} bytes captured"))
    ppp = _layer(d, "ppp", off + 6, 2)
    if d.cut(ppp, off + 6, 2, "PPP protocol field"):
        return
    proto = _u16(b, off + 6)
    ppp.add(item("ppp.protocol", f"{vals('ppp.protocol', proto, 'Unknown')} (0x{proto:04x})",
                 off + 6, 2, proto))
    if proto == PPP_IPV4:
        d.ipv4(off + 8)
    elif proto == PPP_IPV6:
        d.ipv6(off + 8)
    else:
        ppp.experts.append(expert("frame.not_ip", off + 8, max(0, d.n - off - 8),
                                  f"PPP protocol 0x{proto:04x} is not IPv4/IPv6"))


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum (IPv4 header, GRE)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
