"""The link layers of a frame's tree: Ethernet, VLAN/QinQ tags, Linux cooked (SLL, SLL2),
BSD loopback; what ``pcapip show`` draws before the IP layer.

Methods of the frame dissector (:mod:`pcapip.dissect.frame`), which holds the frame's
bytes and layers and dissects what each link layer carries (``ip``).
"""

from __future__ import annotations

import struct

from pcapip.dissect.addr import mac_text
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Field
from pcapip.dissect.hf import item, subtree
from pcapip.dissect.hf_layers import ETHERTYPES, SLL_PKTTYPES
from pcapip.sources.linktypes import LINKTYPE_LOOP

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
NULL_AF_INET = 2
NULL_AF_INET6 = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS


def _u16(b: bytes, o: int) -> int:
    return (b[o] << 8) | b[o + 1]


def _etype_label(t: int) -> str:
    return f"{ETHERTYPES.get(t, 'Unknown')} (0x{t:04x})"


class LinkLayers:
    """The link-layer half of the frame dissector (``frame._Dissector`` mixes it in)."""

    b: bytes
    n: int
    layers: list[Field]
    is_ethernet: bool

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

