"""One frame as Wireshark-style layers, for ``pcapip show`` and the TUI detail pane.

Works from the raw frame bytes and the link type alone (no decoder columns),
so a single packet can be shown from anywhere. Every field carries its
absolute offset in the frame, which is what lets a hex view mark the bytes of
the field under the cursor. Damaged or cut frames are dissected as far as the
bytes go; the point where they stop is an expert, never an exception.
"""

from __future__ import annotations

import struct

from pcapip.decode.tunnels import udp_tunnel_ports
from pcapip.dissect import tunnel_layers as tun
from pcapip.dissect.addr import ip_value, ipv4_text, ipv6_text, mac_text
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Field
from pcapip.dissect.hf import HF, item, subtree, vals
from pcapip.dissect.hf_layers import ETHERTYPES, IPV6_EXTENSIONS, SLL_PKTTYPES
from pcapip.dissect.proxy import parse_proxy
from pcapip.dissect.proxy_model import ParseState, ProxyParse
from pcapip.dissect.tcp_options import dissect_tcp_options
from pcapip.dissect.toa_registry import DEFAULT_REGISTRY, ToaRegistry
from pcapip.dissect.tunnel_layers import internet_checksum as _checksum

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
DLT_RAW_ALIASES = (12, 14)  # DLT_RAW as written by some BSDs

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
NULL_AF_INET = 2
NULL_AF_INET6 = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS


def _u16(b: bytes, o: int) -> int:
    return (b[o] << 8) | b[o + 1]


def _etype_label(t: int) -> str:
    return f"{ETHERTYPES.get(t, 'Unknown')} (0x{t:04x})"


class _Dissector:
    def __init__(self, frame: bytes, registry: ToaRegistry, proxy_offset: int | None,
                 udp_ports: dict[int, int]) -> None:
        self.b = frame
        self.n = len(frame)
        self.registry = registry
        self.proxy_offset = proxy_offset
        self.udp_ports = udp_ports  # UDP destination port -> encapsulation (VXLAN, GENEVE)
        self.layers: list[Field] = []
        self.is_ethernet = False
        self.depth = 0  # encapsulations opened (tunnel_layers.enter)

    def cut(self, node: Field, off: int, need: int, what: str) -> bool:
        """True (and an expert on ``node``) when fewer than ``need`` bytes remain at ``off``."""
        if off + need <= self.n:
            return False
        have = max(0, self.n - off)
        node.experts.append(expert("frame.truncated", min(off, self.n), have,
                                   f"{what} needs {need} bytes at offset {off}, "
                                   f"only {have} captured"))
        return True

    # --- link layers ------------------------------------------------------------------------

    def run(self, linktype: int) -> list[Field]:
        b, n = self.b, self.n
        frame = item("frame", f"{n} bytes captured ({n * 8} bits)", 0, n, n)
        frame.add(item("frame.cap_len", f"{n} bytes", 0, 0, n, generated=True))
        frame.add(item("frame.linktype", linktype, 0, 0, linktype, generated=True))
        self.layers.append(frame)
        if linktype == LINKTYPE_ETHERNET:
            self.ethernet()
        elif linktype == LINKTYPE_LINUX_SLL:
            self.sll()
        elif linktype == LINKTYPE_LINUX_SLL2:
            self.sll2()
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            self.null(linktype)
        elif linktype in (LINKTYPE_RAW, *DLT_RAW_ALIASES):
            if n:
                self.ip(0, {4: ETH_IPV4, 6: ETH_IPV6}.get(b[0] >> 4, 0), raw=True)
        elif linktype == LINKTYPE_IPV4:
            self.ip(0, ETH_IPV4)
        elif linktype == LINKTYPE_IPV6:
            self.ip(0, ETH_IPV6)
        else:
            frame.experts.append(expert("frame.unknown_link", 0, n,
                                        f"link type {linktype} is not dissected"))
        return self.layers

    def ethernet(self, off: int = 0) -> None:
        """Ethernet II at ``off``: the frame's own, or the inner one of an L2 tunnel."""
        b = self.b
        eth = subtree("eth", off, min(14, max(0, self.n - off)))
        self.layers.append(eth)
        self.is_ethernet = self.is_ethernet or off == 0
        if self.cut(eth, off, 14, "Ethernet header"):
            return
        dst, src, etype = b[off : off + 6], b[off + 6 : off + 12], _u16(b, off + 12)
        eth.label += f", Src: {mac_text(src)}, Dst: {mac_text(dst)}"
        eth.add(item("eth.dst", mac_text(dst), off, 6, mac_text(dst)))
        eth.add(item("eth.src", mac_text(src), off + 6, 6, mac_text(src)))
        if etype < 0x0600:
            eth.add(item("eth.len", etype, off + 12, 2, etype))
            eth.experts.append(expert("frame.not_ip", off + 14, self.n - off - 14,
                                      "IEEE 802.3 frame (length field): not IP"))
            return
        eth.add(item("eth.type", _etype_label(etype), off + 12, 2, etype))
        self.ip(off + 14, etype)

    def sll(self) -> None:
        b = self.b
        sll = subtree("sll", 0, min(16, self.n))
        self.layers.append(sll)
        if self.cut(sll, 0, 16, "Linux cooked (SLL) header"):
            return
        pkttype, hatype, halen = _u16(b, 0), _u16(b, 2), _u16(b, 4)
        sll.add(item("sll.pkttype", f"{SLL_PKTTYPES.get(pkttype, 'Unknown')} ({pkttype})", 0, 2,
                     pkttype))
        sll.add(item("sll.hatype", hatype, 2, 2, hatype))
        sll.add(item("sll.halen", halen, 4, 2, halen))
        self._sll_addr(sll, 6, halen)
        proto = _u16(b, 14)
        sll.add(item("sll.etype", _etype_label(proto), 14, 2, proto))
        self.ip(16, proto)

    def sll2(self) -> None:
        b = self.b
        sll = subtree("sll", 0, min(20, self.n), alt="Linux cooked capture v2")
        self.layers.append(sll)
        if self.cut(sll, 0, 20, "Linux cooked v2 (SLL2) header"):
            return
        proto = _u16(b, 0)
        ifindex = struct.unpack_from("!I", b, 4)[0]
        hatype, pkttype, halen = _u16(b, 8), b[10], b[11]
        sll.add(item("sll.etype", _etype_label(proto), 0, 2, proto))
        sll.add(subtree("sll.reserved", 2, 2, _u16(b, 2)))
        sll.add(item("sll.ifindex", ifindex, 4, 4, ifindex))
        sll.add(item("sll.hatype", hatype, 8, 2, hatype))
        sll.add(item("sll.pkttype", f"{SLL_PKTTYPES.get(pkttype, 'Unknown')} ({pkttype})", 10, 1,
                     pkttype))
        sll.add(item("sll.halen", halen, 11, 1, halen))
        self._sll_addr(sll, 12, halen)
        self.ip(20, proto)

    def _sll_addr(self, sll: Field, off: int, halen: int) -> None:
        raw = self.b[off : off + min(halen, 8)]
        if halen == 6:
            sll.add(item("sll.src.eth", mac_text(raw), off, 6, mac_text(raw)))
            if halen < 8:
                sll.add(subtree("sll.unused", off + 6, 2, self.b[off + 6 : off + 8]))
        else:
            sll.add(item("sll.src.other", raw.hex(), off, 8, self.b[off : off + 8]))

    def null(self, linktype: int) -> None:
        b = self.b
        null = subtree("null", 0, min(4, self.n))
        self.layers.append(null)
        if self.cut(null, 0, 4, "loopback header"):
            return
        le, be = struct.unpack_from("<I", b, 0)[0], struct.unpack_from(">I", b, 0)[0]
        # LOOP is big-endian; DLT_NULL is in the capturing machine's byte order
        fam = be if linktype == LINKTYPE_LOOP or le > 0xFFFF else le
        null.add(item("null.family", fam, 0, 4, fam))
        etype = ETH_IPV4 if fam == NULL_AF_INET else ETH_IPV6 if fam in NULL_AF_INET6 else 0
        if not etype:
            null.experts.append(expert("frame.not_ip", 4, self.n - 4,
                                       f"loopback family {fam} is not IPv4/IPv6"))
            return
        self.ip(4, etype)

    # --- network layer ----------------------------------------------------------------------

    def vlan_tags(self, off: int, etype: int) -> tuple[int, int] | None:
        """Step over stacked 802.1Q / 802.1ad tags; None when a tag is cut off."""
        b = self.b
        for _ in range(8):
            if etype not in VLAN_TPIDS:
                break
            qinq = etype == 0x88A8
            proto = "ieee8021ad" if qinq else "vlan"
            tag = subtree(proto, off, min(4, max(0, self.n - off)))
            self.layers.append(tag)
            if self.cut(tag, off, 4, "VLAN tag"):
                return None
            tci, etype = _u16(b, off), _u16(b, off + 2)
            prio, dei, vid = tci >> 13, (tci >> 12) & 1, tci & 0x0FFF
            tag.label += f", PRI: {prio}, DEI: {dei}, ID: {vid}"
            size = 1 if qinq else 2  # Wireshark's own field sizes
            tag.add(item(f"{proto}.priority", prio, off, size, prio))
            tag.add(item(f"{proto}.dei", dei, off, size, dei))
            tag.add(item(f"{proto}.id", vid, off, 2, vid))
            tag.add(item(f"{proto}.etype", _etype_label(etype), off + 2, 2, etype))
            off += 4
        return off, etype

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

    # --- transport and PROXY ----------------------------------------------------------------

    def transport(self, off: int, end: int, proto: int, ipver: int) -> None:
        if proto == 6:
            self.tcp(off, end, ipver)
        elif proto == 17:
            self.udp(off, end)
        elif proto in (4, 41):
            tun.ip_in_ip(self, off, proto)
        elif proto == 47:
            tun.gre(self, off, end)

    def tcp(self, off: int, end: int, ipver: int) -> None:
        b = self.b
        have = max(0, end - off)
        node = subtree("tcp", off, min(20, have))
        self.layers.append(node)

        def room(rel: int, size: int) -> bool:
            return rel + size <= have

        # a header cut by the snap length is still shown as far as it goes
        if room(0, 4):
            sp, dp = _u16(b, off), _u16(b, off + 2)
            node.add(item("tcp.srcport", sp, off, 2, sp))
            node.add(item("tcp.dstport", dp, off + 2, 2, dp))
            node.label = HF["tcp"].label + f", Src Port: {sp}, Dst Port: {dp}"
        if room(4, 4):
            seq = struct.unpack_from("!I", b, off + 4)[0]
            node.add(item("tcp.seq_raw", seq, off + 4, 4, seq))
        if room(8, 4):
            ack = struct.unpack_from("!I", b, off + 8)[0]
            node.add(item("tcp.ack_raw", ack, off + 8, 4, ack))
        if room(12, 1):
            doff = b[off + 12] >> 4
            node.add(item("tcp.hdr_len", f"{doff * 4} bytes ({doff})", off + 12, 1, doff * 4,
                          bits=doff))
        if room(12, 2):
            flags = _u16(b, off + 12) & 0x0FFF
            fl = node.add(item("tcp.flags", f"0x{flags:03x} ({_flag_str(flags)})", off + 12, 2,
                               flags))
            fl.add(item("tcp.flags.res", flags >> 9, off + 12, 1, flags >> 9))
            for bit, name in ((0x100, "ae"), (0x80, "cwr"), (0x40, "ece"), (0x20, "urg"),
                              (0x10, "ack"), (0x08, "push"), (0x04, "reset"), (0x02, "syn"),
                              (0x01, "fin")):
                at = off + 12 if bit == 0x100 else off + 13
                fl.add(item(f"tcp.flags.{name}", bool(flags & bit), at, 1, bool(flags & bit)))
        for rel, name in ((14, "tcp.window_size_value"), (16, "tcp.checksum"),
                          (18, "tcp.urgent_pointer")):
            if room(rel, 2):
                v = _u16(b, off + rel)
                node.add(item(name, f"0x{v:04x}" if rel == 16 else v, off + rel, 2, v))
        if have < 20:
            node.experts.append(expert("frame.truncated", off, have,
                                       f"TCP header needs 20 bytes, {have} present"))
            return
        sp, dp = _u16(b, off), _u16(b, off + 2)
        seq, ack = struct.unpack_from("!II", b, off + 4)
        doff = b[off + 12] >> 4
        hlen = doff * 4
        if hlen < 20:
            node.experts.append(expert("tcp.bad_offset", off + 12, 1,
                                       f"TCP data offset {doff} ({hlen} bytes) is below 20"))
            return
        node.length = min(hlen, end - off)
        opt_end = min(off + hlen, end)
        if off + hlen > end:
            node.experts.append(expert("frame.truncated", off, end - off,
                                       f"TCP header of {hlen} bytes, {end - off} present"))
        if hlen > 20:
            res = dissect_tcp_options(b[off + 20 : opt_end], base_offset=off + 20,
                                      registry=self.registry, ip_version=ipver,
                                      wire_length=hlen - 20)
            node.add(res.tree)
        pay = off + hlen
        plen = max(0, end - pay)
        node.label = (HF["tcp"].label + f", Src Port: {sp}, Dst Port: {dp}, "
                      f"Seq: {seq}, Ack: {ack}, Len: {plen}")
        if plen:
            node.add(subtree("tcp.payload", pay, plen, b[pay:end], more=f" ({plen} bytes)"))
            self.proxy(pay, end, udp=False)

    def udp(self, off: int, end: int) -> None:
        b = self.b
        have = max(0, end - off)
        node = subtree("udp", off, min(8, have))
        self.layers.append(node)
        for rel, name in ((0, "udp.srcport"), (2, "udp.dstport"), (4, "udp.length"),
                          (6, "udp.checksum")):
            if rel + 2 <= have:
                v = _u16(b, off + rel)
                node.add(item(name, f"0x{v:04x}" if rel == 6 else v, off + rel, 2, v))
        if have < 8:
            node.experts.append(expert("frame.truncated", off, have,
                                       f"UDP header needs 8 bytes, {have} present"))
            return
        sp, dp, ulen, _csum = struct.unpack_from("!HHHH", b, off)
        node.label += f", Src Port: {sp}, Dst Port: {dp}"
        pay_end = end
        if ulen < 8:
            node.experts.append(expert("udp.bad_length", off + 4, 2,
                                       f"UDP length {ulen} is below 8"))
        elif off + ulen > end:
            if self.n >= off + ulen:
                node.experts.append(expert("udp.bad_length", off + 4, 2,
                                           f"UDP length {ulen} runs past the IP payload"))
            else:
                node.experts.append(expert("frame.truncated", off + 4, 2,
                                           f"UDP length {ulen}, {end - off} bytes captured"))
        else:
            pay_end = off + ulen
        pay = off + 8
        if pay_end > pay:
            node.add(subtree("udp.payload", pay, pay_end - pay, b[pay:pay_end],
                            more=f" ({pay_end - pay} bytes)"))
            if dp in self.udp_ports:
                tun.udp_tunnel(self, pay, pay_end, self.udp_ports[dp])
            else:
                self.proxy(pay, pay_end, udp=True)

    def proxy(self, pay: int, end: int, *, udp: bool) -> None:
        start = pay
        if self.proxy_offset is not None:
            start = pay + max(0, self.proxy_offset)
            if start > end:
                return
        elif self.b[pay:pay + 1] not in (b"P", b"\r"):
            return
        pp = parse_proxy(self.b[start:end], base_offset=start, final=udp)
        if pp.state is ParseState.NOT_PROXY or pp.tree is None:
            return
        _transport_check(pp, udp)
        if start > pay:
            self.layers.append(_data(self.b, pay, start))
        self.layers.append(pp.tree)
        # A second header right after the first (two proxies in a chain both adding one, or
        # a proxy that repeats itself): receivers hand it to the application as data.
        for _ in range(8):
            if pp.state is not ParseState.OK or start + pp.length >= end:
                break
            nstart = start + pp.length
            nxt = parse_proxy(self.b[nstart:end], base_offset=nstart, final=udp)
            if nxt.state is ParseState.NOT_PROXY or nxt.tree is None:
                break
            nxt.tree.experts.insert(0, expert("proxy.repeated", nstart,
                                              nxt.length or end - nstart,
                                              "another PROXY header follows the first one: the "
                                              "receiver passes it to the application as data"))
            self.layers.append(nxt.tree)
            pp, start = nxt, nstart
        if pp.state is ParseState.OK and start + pp.length < end:
            self.layers.append(_data(self.b, start + pp.length, end))


def _transport_check(pp: ProxyParse, udp: bool) -> None:
    h, tree = pp.header, pp.tree
    if h is None or tree is None:
        return
    if h.version == 1 and udp:
        tree.experts.append(expert("proxy.v1.over_udp", tree.offset, tree.length,
                                   "PROXY v1 header in a UDP datagram (v1 describes TCP only)"))
    elif h.version == 2 and h.command == "PROXY" and h.transport in ("STREAM", "DGRAM"):
        want = "DGRAM" if udp else "STREAM"
        if h.transport != want:
            tree.experts.append(expert("proxy.transport_mismatch", tree.offset + 13, 1,
                                       f"header says {h.transport} but it travels in "
                                       f"{'UDP' if udp else 'TCP'}"))


def _data(b: bytes, start: int, end: int) -> Field:
    data = subtree("data", start, end - start, more=f" ({end - start} bytes)")
    data.add(item("data.data", b[start:end][:32].hex() + ("..." if end - start > 32 else ""),
                  start, end - start, b[start:end]))
    data.add(item("data.len", end - start, start, 0, end - start, generated=True))
    return data


def _flag_str(flags: int) -> str:
    names = [(0x100, "AE"), (0x80, "CWR"), (0x40, "ECE"), (0x20, "URG"), (0x10, "ACK"),
             (0x08, "PSH"), (0x04, "RST"), (0x02, "SYN"), (0x01, "FIN")]
    return ", ".join(n for bit, n in names if flags & bit) or "none"


def dissect_frame(frame: bytes, linktype: int, *, registry: ToaRegistry = DEFAULT_REGISTRY,
                  proxy_offset: int | None = None,
                  udp_ports: dict[int, int] | None = None) -> list[Field]:
    """Wireshark-style layers of one frame, tunnels opened; never raises.

    ``proxy_offset``: where in the L4 payload a PROXY header starts (the flow
    stage knows it for a header that follows earlier stream bytes); without
    it, a header is looked for at the start of the payload. ``udp_ports``: UDP
    destination port -> encapsulation opened there (default
    :func:`pcapip.decode.tunnels.udp_tunnel_ports`: VXLAN 4789, GENEVE 6081).
    """
    frame = bytes(frame)
    ports = udp_tunnel_ports() if udp_ports is None else udp_ports
    d = _Dissector(frame, registry, proxy_offset, ports)
    try:
        return d.run(int(linktype))
    except Exception as exc:  # a dissector bug must not take `pcapip show` down
        layers = d.layers or [item("frame", f"{len(frame)} bytes", 0, len(frame))]
        layers[-1].experts.append(expert("dissect.internal_error", 0, len(frame),
                                         f"frame dissector failed: {type(exc).__name__}: {exc}"))
        return layers
