"""The transport layers of a frame's tree: TCP (its options through the TOA walk), UDP
(tunnel ports opened), and the PROXY headers at the start of their payload.

Methods of the frame dissector (:mod:`pcapip.dissect.frame`).
"""

from __future__ import annotations

import struct

from pcapip.dissect import tunnel_layers as tun
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Field
from pcapip.dissect.frame_link import _u16
from pcapip.dissect.hf import HF, item, subtree
from pcapip.dissect.proxy import parse_proxy
from pcapip.dissect.proxy_model import ParseState, ProxyParse, transport_oddity
from pcapip.dissect.tcp_options import dissect_tcp_options
from pcapip.dissect.toa_registry import ToaRegistry


class TransportLayers:
    """The TCP, UDP and PROXY part of the frame dissector (``frame._Dissector`` mixes it in)."""

    b: bytes
    n: int
    layers: list[Field]
    registry: ToaRegistry
    proxy_offset: int | None
    udp_ports: dict[int, int]

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
    tree = pp.tree
    odd = transport_oddity(pp.header, udp)
    if odd is None or tree is None:
        return
    code, message = odd
    at, span = (tree.offset, tree.length) if code == "proxy.v1.over_udp" else (tree.offset + 13, 1)
    tree.experts.append(expert(code, at, span, message))


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

