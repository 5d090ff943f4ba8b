"""The IP layers of a frame's tree: IPv4 and IPv6 (extension headers, fragments,
checksums), the link trailer after the datagram, and the dispatch by ethertype.

Methods of the frame dissector (:mod:`pcapip.dissect.frame`); an ethertype or IP
protocol that opens a tunnel goes to :mod:`pcapip.dissect.tunnel_layers`, TCP and UDP
to the transport layers (``transport``).
"""

from __future__ import annotations

import struct

from pcapip.dissect import tunnel_layers as tun
from pcapip.dissect.addr import ip_value, ipv4_text, ipv6_text
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Field
from pcapip.dissect.frame_link import ETH_IPV4, ETH_IPV6, VLAN_TPIDS, _u16
from pcapip.dissect.hf import item, subtree, vals
from pcapip.dissect.hf_layers import IPV6_EXTENSIONS
from pcapip.dissect.tunnel_layers import internet_checksum as _checksum


class IpLayers:
    """The network-layer part of the frame dissector (``frame._Dissector`` mixes it in)."""

    b: bytes
    n: int
    layers: list[Field]
    is_ethernet: bool
    depth: int

    def ip(self, off: int, etype: int, *, raw: bool = False) -> None:
        if not raw and etype in VLAN_TPIDS:
            stepped = self.vlan_tags(off, etype)
            if stepped is None:
                return
            off, etype = stepped
        if etype == ETH_IPV4:
            self.ipv4(off)
        elif etype == ETH_IPV6:
            self.ipv6(off)
        elif etype == tun.ETH_MPLS and not raw:
            tun.mpls(self, off)
        elif etype == tun.ETH_PPPOE and not raw:
            tun.pppoe(self, off)
        else:
            last = self.layers[-1]
            what = f"ethertype 0x{etype:04x}" if not raw else "raw packet version"
            last.experts.append(expert("frame.not_ip", off, max(0, self.n - off),
                                       f"{what} is not IPv4/IPv6"))

    def _trailer(self, end: int) -> Field | None:
        """Bytes between the end of the IP datagram and the end of the frame (the outermost
        datagram's: an inner one ends where its tunnel's payload does)."""
        if end >= self.n or self.depth:
            return None
        tail = self.b[end:]
        zeros = tail.count(0) == len(tail)
        name = "frame.trailer" if not self.is_ethernet else "eth.padding" if zeros else "eth.trailer"
        trailer = item(name, tail.hex(), end, len(tail), tail)
        if not zeros:
            trailer.experts.append(expert("frame.trailer", end, len(tail),
                                          f"{len(tail)} bytes after the end of the IP datagram "
                                          "(link padding or capture junk)"))
        return trailer

    def ipv4(self, off: int) -> None:
        b = self.b
        node = subtree("ip", off, min(20, max(0, self.n - off)))
        self.layers.append(node)
        if self.cut(node, off, 20, "IPv4 header"):
            return
        vihl = b[off]
        ver, ihl = vihl >> 4, (vihl & 0x0F) * 4
        node.add(item("ip.version", ver, off, 1, ver, bits=ver))
        if ver != 4:
            node.experts.append(expert("ip.bad_version", off, 1,
                                       f"IP version {ver} where IPv4 was announced"))
            return
        node.add(item("ip.hdr_len", f"{ihl} bytes ({vihl & 15})", off, 1, ihl, bits=vihl & 15))
        if ihl < 20:
            node.experts.append(expert("ip.bad_ihl", off, 1,
                                       f"IPv4 header length {ihl} is below 20"))
            return
        tos = b[off + 1]
        ds = node.add(item("ip.dsfield", f"0x{tos:02x}", off + 1, 1, tos))
        ds.add(item("ip.dsfield.dscp", tos >> 2, off + 1, 1, tos >> 2))
        ds.add(item("ip.dsfield.ecn", tos & 3, off + 1, 1, tos & 3))
        tot, ident, ff = _u16(b, off + 2), _u16(b, off + 4), _u16(b, off + 6)
        ttl, proto, csum = b[off + 8], b[off + 9], _u16(b, off + 10)
        src, dst = b[off + 12 : off + 16], b[off + 16 : off + 20]
        node.add(item("ip.len", tot, off + 2, 2, tot))
        node.add(item("ip.id", f"0x{ident:04x} ({ident})", off + 4, 2, ident))
        flags = ff >> 13
        fl = node.add(item("ip.flags", f"0x{flags:x}", off + 6, 1, flags))
        for name, bit in (("ip.flags.rb", 4), ("ip.flags.df", 2), ("ip.flags.mf", 1)):
            fl.add(item(name, bool(flags & bit), off + 6, 1, bool(flags & bit)))
        frag = ff & 0x1FFF
        node.add(item("ip.frag_offset", f"{frag} ({frag * 8} bytes)", off + 6, 2, frag))
        node.add(item("ip.ttl", ttl, off + 8, 1, ttl))
        node.add(item("ip.proto", f"{vals('ip.proto', proto, 'Unknown')} ({proto})", off + 9, 1,
                      proto))
        ck = node.add(item("ip.checksum", f"0x{csum:04x}", off + 10, 2, csum))
        node.add(item("ip.src", ipv4_text(src), off + 12, 4, ip_value(src)))
        node.add(item("ip.dst", ipv4_text(dst), off + 16, 4, ip_value(dst)))
        node.label += f", Src: {ipv4_text(src)}, Dst: {ipv4_text(dst)}"
        node.length = min(ihl, self.n - off)
        if self.cut(node, off, ihl, "IPv4 header with options"):
            return
        if ihl > 20:
            node.add(item("ip.options", f"({ihl - 20} bytes)", off + 20, ihl - 20,
                          b[off + 20 : off + ihl]))
        calc = _checksum(b[off : off + 10] + b"\0\0" + b[off + 12 : off + ihl])
        good = calc == csum
        ck.add(item("ip.checksum.status", "Good" if good else "Bad", off + 10, 2,
                    "good" if good else "bad", generated=True))
        if not good:
            ck.experts.append(expert("ip.checksum_bad", off + 10, 2,
                                     f"IPv4 header checksum 0x{csum:04x}, computed 0x{calc:04x}"))
        if tot == 0:
            # segmentation offload on the capturing host: the length was never filled in
            node.experts.append(expert("ip.zero_length", off + 2, 2))
            tot = self.n - off
        elif tot < ihl:
            node.experts.append(expert("ip.bad_total_length", off + 2, 2,
                                       f"total length {tot} is below the header length {ihl}"))
            return
        end = off + tot
        trailer = self._trailer(end)
        if end > self.n:
            node.experts.append(expert("frame.truncated", off + 2, 2,
                                       f"IP total length {tot} but only {self.n - off} bytes "
                                       "captured"))
        if frag:
            node.experts.append(expert("ip.fragment", off + 6, 2,
                                       f"fragment at offset {frag * 8}: no transport header"))
        else:
            self.transport(off + ihl, min(end, self.n), proto, 4)
        if trailer is not None:
            self.layers.append(trailer)

    def ipv6(self, off: int) -> None:
        b = self.b
        node = subtree("ipv6", off, min(40, max(0, self.n - off)))
        self.layers.append(node)
        if self.cut(node, off, 40, "IPv6 header"):
            return
        first = struct.unpack_from("!I", b, off)[0]
        ver, tclass, flow = first >> 28, (first >> 20) & 0xFF, first & 0xFFFFF
        node.add(item("ipv6.version", ver, off, 1, ver, bits=ver))
        if ver != 6:
            node.experts.append(expert("ip.bad_version", off, 1,
                                       f"IP version {ver} where IPv6 was announced"))
            return
        plen, nxt, hlim = _u16(b, off + 4), b[off + 6], b[off + 7]
        src, dst = b[off + 8 : off + 24], b[off + 24 : off + 40]
        node.add(item("ipv6.tclass", f"0x{tclass:02x}", off, 4, tclass))
        node.add(item("ipv6.flow", f"0x{flow:05x}", off + 1, 3, flow))
        node.add(item("ipv6.plen", plen, off + 4, 2, plen))
        node.add(item("ipv6.nxt", f"{vals('ipv6.nxt', nxt, str(nxt))} ({nxt})", off + 6, 1, nxt))
        node.add(item("ipv6.hlim", hlim, off + 7, 1, hlim))
        node.add(item("ipv6.src", ipv6_text(src), off + 8, 16, ip_value(src)))
        node.add(item("ipv6.dst", ipv6_text(dst), off + 24, 16, ip_value(dst)))
        node.label += f", Src: {ipv6_text(src)}, Dst: {ipv6_text(dst)}"
        end = off + 40 + plen
        trailer = self._trailer(end)
        if end > self.n:
            node.experts.append(expert("frame.truncated", off + 4, 2,
                                       f"payload length {plen} but only {self.n - off - 40} "
                                       "bytes captured"))
        cur = off + 40
        for _ in range(16):
            if nxt in IPV6_EXTENSIONS:
                short, label = IPV6_EXTENSIONS[nxt]
                if cur + 2 > self.n:
                    node.experts.append(expert("ip.ext_truncated", cur, max(0, self.n - cur),
                                               f"{label} header cut by the capture"))
                    break
                hl = (b[cur + 1] + 2) * 4 if nxt == 51 else (b[cur + 1] + 1) * 8
                ext = node.add(subtree(f"ipv6.{short}", cur, min(hl, self.n - cur)))
                ext.add(item(f"ipv6.{short}.nxt", b[cur], cur, 1, b[cur]))
                ext.add(item(f"ipv6.{short}.len", b[cur + 1], cur + 1, 1, b[cur + 1]))
                if cur + hl > self.n:
                    ext.experts.append(expert("ip.ext_truncated", cur, self.n - cur,
                                              f"{label} header of {hl} bytes cut by the capture"))
                    break
                nxt = b[cur]
                cur += hl
                continue
            if nxt == 44:
                ext = node.add(subtree("ipv6.fragment", cur, max(0, min(8, self.n - cur))))
                if self.cut(ext, cur, 8, "IPv6 fragment header"):
                    break
                fo = _u16(b, cur + 2)
                ext.add(item("ipv6.fragment.nxt", b[cur], cur, 1, b[cur]))
                ext.add(item("ipv6.fragment.offset", fo >> 3, cur + 2, 2, fo >> 3))
                ext.add(item("ipv6.fragment.more", bool(fo & 1), cur + 2, 2, bool(fo & 1)))
                nxt = b[cur]
                cur += 8
                if fo >> 3:
                    ext.experts.append(expert("ip.fragment", cur - 8, 8,
                                              "IPv6 fragment: no transport header"))
                    if trailer is not None:
                        self.layers.append(trailer)
                    return
                continue
            break
        self.transport(cur, min(end, self.n), nxt, 6)
        if trailer is not None:
            self.layers.append(trailer)
