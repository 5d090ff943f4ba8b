"""What dpkt and scapy decode of one frame, as the columns pcapip's decoder fills, or None
where their answer is not unambiguous (see ``fuzz_roundtrip.py`` for the cases).

A view is a dict: ``ipver``, ``src``/``dst`` (16 bytes, IPv4 mapped as pcapip keeps them),
``proto``, ``ip_off``, ``l4_off``, ``sport``, ``dport``, ``tcp_flags`` (TCP), ``opt_len``,
``pay_off``, ``pay_len``, ``ethertype`` and ``vlans`` (the VLAN ids, outermost first).
Offsets come from the header lengths the library read, lengths from the IP (and UDP)
length fields it read; only the byte ranges are taken from the frame.
"""

from __future__ import annotations

import struct

import dpkt

TUNNEL_PROTOS = (4, 41, 47)  # IP-in-IP, IPv6-in-IP, GRE: pcapip opens them
V6_EXTS = (0, 43, 44, 51, 60)  # the extension headers pcapip steps over
NULL_FAMILIES = {2: 4, 24: 6, 28: 6, 30: 6}  # BSD loopback header: AF_INET, the AF_INET6s
RAW_LINKS = {101: (4, 6), 12: (4, 6), 14: (4, 6), 228: (4,), 229: (6,)}
V4_MAPPED = bytes(10) + b"\xff\xff"
ETH = {4: 0x0800, 6: 0x86DD}


def _addr(a: bytes) -> bytes:
    return V4_MAPPED + a if len(a) == 4 else a


def _link_offset(lt: int, frame: bytes) -> int | None:
    """Where the network layer starts for the fixed-size link headers (Ethernet: without
    its VLAN tags); None for a link type or loopback family not compared."""
    if lt in RAW_LINKS:
        return 0
    if lt in (0, 108):
        if len(frame) < 4:
            return None
        le, be = struct.unpack_from("<I", frame)[0], struct.unpack_from(">I", frame)[0]
        return 4 if le in NULL_FAMILIES or be in NULL_FAMILIES else None
    return {1: 14, 113: 16, 276: 20}.get(lt)


def _l4(
    view: dict, l4_off: int, ip_end: int, tcp_hlen: int | None, ulen: int | None
) -> dict | None:
    """The transport part of a view, when its header lies inside the IP packet and (UDP)
    its length is exactly what the IP packet holds."""
    if tcp_hlen is not None:
        if tcp_hlen < 20 or l4_off + tcp_hlen > ip_end:
            return None
        view.update(opt_len=tcp_hlen - 20, pay_off=l4_off + tcp_hlen)
    else:
        if ulen is None or l4_off + ulen != ip_end or ulen < 8:
            return None
        view.update(pay_off=l4_off + 8)
    view["pay_len"] = ip_end - view["pay_off"]
    view["l4_off"] = l4_off
    return view


# ---- dpkt ---------------------------------------------------------------------------------
def _dpkt_link(lt: int, frame: bytes):
    """(network-layer object, its offset, VLAN ids) as dpkt decodes the link layer."""
    off = _link_offset(lt, frame)
    if off is None:
        return None
    if lt in RAW_LINKS:
        v = frame[0] >> 4 if frame else 0
        if v not in RAW_LINKS[lt]:
            return None
        return (dpkt.ip.IP(frame) if v == 4 else dpkt.ip6.IP6(frame)), 0, []
    if lt == 1:
        eth = dpkt.ethernet.Ethernet(frame)
        if eth.type <= 1500:  # 802.3 length: LLC, not an ethertype
            return None
        tags = getattr(eth, "vlan_tags", [])
        off += 4 * len(tags)
        # dpkt guesses IP behind MPLS labels from the first nibble: only a real ethertype
        if struct.unpack_from(">H", frame, off - 2)[0] not in ETH.values():
            return None
        return eth.data, off, [t.id for t in tags]
    pkt = {113: dpkt.sll.SLL, 276: dpkt.sll2.SLL2}.get(lt, dpkt.loopback.Loopback)(frame)
    return pkt.data, off, []


def _dpkt_ip(ip, ip_off: int, avail: int):
    """(IP version, transport offset, IP packet length) when dpkt decoded a whole,
    unfragmented IPv4/IPv6 packet with only the extension headers pcapip steps over."""
    if isinstance(ip, dpkt.ip.IP):
        if ip.v != 4 or ip.hl < 5 or ip.mf or ip.offset or (ip.len or avail) < ip.hl * 4:
            return None
        return 4, ip_off + ip.hl * 4, ip.len or avail
    if not isinstance(ip, dpkt.ip6.IP6) or ip.v != 6:
        return None
    exts = ip.all_extension_headers
    kinds = [ip.nxt] + [getattr(e, "nxt", None) for e in exts[:-1]]
    if len(exts) > 16 or any(k not in V6_EXTS for k in kinds[: len(exts)]):
        return None
    if any(isinstance(e, dpkt.ip6.IP6FragmentHeader) and (e.frag_off or e.m_flag) for e in exts):
        return None  # a real fragment: no whole transport header
    return 6, ip_off + 40 + sum(e.length for e in exts), 40 + ip.plen if ip.plen else avail


def dpkt_view(lt: int, frame: bytes) -> dict | None:
    """dpkt's decode of the frame (see the module docstring), or None."""
    try:
        got = _dpkt_link(lt, frame)
    except Exception:  # noqa: BLE001 - dpkt's own failures (even AttributeError): not compared
        return None
    if got is None:
        return None
    ip, ip_off, vlans = got
    avail = len(frame) - ip_off
    layer = _dpkt_ip(ip, ip_off, avail)
    if layer is None:
        return None
    ver, l4_off, total = layer
    if total > avail:  # cut by a snap length: dpkt keeps what is there, silently
        return None
    l4 = ip.data
    if ip.p in TUNNEL_PROTOS or not isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
        return None
    view = {
        "ipver": ver,
        "src": _addr(ip.src),
        "dst": _addr(ip.dst),
        "proto": ip.p,
        "ip_off": ip_off,
        "sport": l4.sport,
        "dport": l4.dport,
        "ethertype": ETH[ver],
        "vlans": vlans,
    }
    if isinstance(l4, dpkt.tcp.TCP):
        view["tcp_flags"] = l4.flags
        return _l4(view, l4_off, ip_off + total, l4.off * 4, None)
    # dpkt's UDP data is the rest of the IP packet, whatever the UDP length says: compared
    # only when the two agree
    ulen = l4.ulen if l4.ulen == 8 + len(l4.data) else None
    return _l4(view, l4_off, ip_off + total, None, ulen)


# ---- scapy --------------------------------------------------------------------------------
_SCAPY: dict = {}


def _scapy():
    if not _SCAPY:
        from scapy.config import conf
        from scapy.layers import inet, inet6, l2

        _SCAPY.update(conf=conf, inet=inet, inet6=inet6, l2=l2)
    return _SCAPY


def _scapy_ext_len(layer, inet6) -> int | None:
    if isinstance(layer, inet6.IPv6ExtHdrFragment):
        return None if layer.offset or layer.m else 8
    if isinstance(layer, inet6.IPv6ExtHdrRouting) and layer.len % 2:
        return None  # scapy reads type 0 addresses, 16 bytes each: an odd length leaves 8
    if isinstance(
        layer, inet6.IPv6ExtHdrHopByHop | inet6.IPv6ExtHdrDestOpt | inet6.IPv6ExtHdrRouting
    ):
        return (layer.len + 1) * 8
    return None


def scapy_view(lt: int, frame: bytes) -> dict | None:
    """scapy's decode of the frame (see the module docstring), or None."""
    s = _scapy()
    cls = s["conf"].l2types.get(lt)
    off = _link_offset(lt, frame)
    if cls is None or off is None or not frame:
        return None
    try:
        pkt = cls(frame)
    except Exception:  # noqa: BLE001 - scapy's failures are many; none is compared
        return None
    inet, inet6, l2 = s["inet"], s["inet6"], s["l2"]
    layer, vlans = pkt, []
    if lt == 1:
        if not isinstance(pkt, l2.Ether):  # 802.3 (Dot3): not an ethertype
            return None
        layer = pkt.payload
        while isinstance(layer, l2.Dot1Q):  # Dot1AD is a Dot1Q
            vlans.append(layer.vlan)
            layer = layer.payload
        off += 4 * len(vlans)
    elif lt not in RAW_LINKS:
        layer = pkt.payload
    avail = len(frame) - off
    if isinstance(layer, inet.IP) and not isinstance(layer, inet6.IPv6):
        if layer.version != 4 or layer.ihl < 5 or int(layer.flags) & 1 or layer.frag:
            return None
        ver, l4_off, total, nxt = 4, off + layer.ihl * 4, layer.len or avail, layer.payload
        if total < layer.ihl * 4:
            return None
    elif isinstance(layer, inet6.IPv6):
        if layer.version != 6:
            return None
        ver, total, l4_off, nxt = (
            6,
            40 + layer.plen if layer.plen else avail,
            off + 40,
            layer.payload,
        )
        count = 0
        while not isinstance(nxt, inet.TCP | inet.UDP):
            n = _scapy_ext_len(nxt, inet6)
            count += 1
            if n is None or count > 16:
                return None
            l4_off, nxt = l4_off + n, nxt.payload
    else:
        return None
    if total > avail or not isinstance(nxt, inet.TCP | inet.UDP):
        return None
    proto = 6 if isinstance(nxt, inet.TCP) else 17
    view = {
        "ipver": ver,
        "src": _addr(_ip_bytes(layer.src, ver)),
        "dst": _addr(_ip_bytes(layer.dst, ver)),
        "proto": proto,
        "ip_off": off,
        "sport": nxt.sport,
        "dport": nxt.dport,
        "ethertype": ETH[ver],
        "vlans": vlans,
    }
    if proto == 6:
        view["tcp_flags"] = int(nxt.flags)
        return _l4(view, l4_off, off + total, nxt.dataofs * 4, None)
    return _l4(view, l4_off, off + total, None, nxt.len)


def _ip_bytes(text: str, ver: int) -> bytes:
    import socket

    return socket.inet_pton(socket.AF_INET if ver == 4 else socket.AF_INET6, text)
