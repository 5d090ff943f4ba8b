"""Build the generated tunnel captures in tests/pcaps/ (tunnel-*.pcap + tunnel-*.expect.json).

Mirrors and overlays wrap the proxy -> origin connection pcapip is asked about
(issue 13): every encapsulation pcapip opens is built here with scapy around
real-looking connections (full handshakes with a TOA kind 200 option in the SYN
and the handshake ACK, or a PROXY v1/v2 header before an HTTP request), and in
every encapsulation with an identity two tenants carry the same inner address
pair and ports with different clients. Beside each capture,
``tunnel-X.expect.json`` lists what was put in: one row per connection
(``tunnel`` as :func:`pcapip.decode.tunnels.tunnel_label` writes it, egress and
client ``ip:port``, method ``toa``/``ppv1``/``ppv2``), derived from the
construction below, not from any decoder's output. Frames pcapip must not open
(crafted loops past ``MAX_TUNNEL_DEPTH``, cut or lying headers) carry no row.

Run: ``python tests/gen/tunnel_pcaps.py [OUTDIR]`` (default: tests/pcaps).
Deterministic: fixed timestamps, addresses, ports, sequence numbers and IP ids.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.mpls import MPLS, EoMCW
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

from pcapip.decode import tunnels as T

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HTTP_GET = b"GET / HTTP/1.1\r\nHost: origin.example\r\n\r\n"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

# inner: the proxy's egress and the origin (documentation ranges)
EGRESS4, ORIGIN4 = "192.0.2.10", "198.51.100.20"
EGRESS6, ORIGIN6 = "2001:db8:e::10", "2001:db8::20"
# underlay: tunnel endpoints (VTEPs, GRE peers, the mirror's source and collector)
UNDER_A, UNDER_B = "10.0.0.1", "10.0.0.2"
UNDER6_A, UNDER6_B = "fd00::1", "fd00::2"
MAC_A, MAC_B = "02:00:00:00:0a:01", "02:00:00:00:0a:02"  # underlay NICs
MAC_E, MAC_O = "02:aa:aa:00:0e:10", "02:aa:aa:00:0f:20"  # inner: egress, origin

Wrap = Callable[[Packet, bool], Packet]  # inner IP packet, egress->origin? -> outer frame


# ------------------------------------------------------------------ inner connections
def toa200(ip: str, port: int) -> bytes:
    """TOA kind 200: ``|200|8|port|IPv4|``; scapy adds kind and length."""
    return struct.pack("!H", port) + ipaddress.IPv4Address(ip).packed


def v1(client: tuple[str, int], origin: tuple[str, int]) -> bytes:
    fam = "TCP6" if ":" in client[0] else "TCP4"
    return f"PROXY {fam} {client[0]} {origin[0]} {client[1]} {origin[1]}\r\n".encode()


def v2(client: tuple[str, int], origin: tuple[str, int]) -> bytes:
    six = ":" in client[0]
    body = (ipaddress.ip_address(client[0]).packed + ipaddress.ip_address(origin[0]).packed
            + struct.pack("!HH", client[1], origin[1]))
    return V2_SIG + bytes([0x21, 0x21 if six else 0x11]) + struct.pack("!H", len(body)) + body


@dataclass
class Conn:
    """One proxy -> origin connection and the client it announces."""

    egress: tuple[str, int]
    origin: tuple[str, int]
    method: str  # toa, ppv1, ppv2
    client: tuple[str, int]
    isn_e: int = 1000
    isn_o: int = 5000

    def packets(self, ident: int) -> list[tuple[bool, Packet]]:
        """SYN, SYN-ACK, ACK, request, reply, FIN/ACK both ways, last ACK: (from egress, IP)."""
        e, o = self.egress, self.origin
        toa = [(200, toa200(*self.client))] if self.method == "toa" else []
        head = {"ppv1": v1, "ppv2": v2}.get(self.method)
        req = (head(self.client, o) if head else b"") + HTTP_GET
        se, so = self.isn_e, self.isn_o
        plan = [
            (True, se, 0, SYN, [("MSS", 1460), *toa], b""),
            (False, so, se + 1, SYN | ACK, [("MSS", 1460)], b""),
            (True, se + 1, so + 1, ACK, toa, b""),
            (True, se + 1, so + 1, PSH | ACK, [], req),
            (False, so + 1, se + 1 + len(req), PSH | ACK, [], HTTP_OK),
            (True, se + 1 + len(req), so + 1 + len(HTTP_OK), FIN | ACK, [], b""),
            (False, so + 1 + len(HTTP_OK), se + 2 + len(req), FIN | ACK, [], b""),
            (True, se + 2 + len(req), so + 2 + len(HTTP_OK), ACK, [], b""),
        ]
        out = []
        for k, (fwd, seq, ack, flags, opts, data) in enumerate(plan):
            src, dst = (e, o) if fwd else (o, e)
            tcp = TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags, window=64240,
                      options=opts)
            if ":" in src[0]:
                l3: Packet = IPv6(src=src[0], dst=dst[0], hlim=64)
            else:
                l3 = IP(src=src[0], dst=dst[0], ttl=64, flags="DF", id=(ident + k) & 0xFFFF)
            out.append((fwd, l3 / tcp / Raw(data) if data else l3 / tcp))
        return out


# ------------------------------------------------------------------ captures
@dataclass
class Capture:
    name: str
    description: str
    frames: list[tuple[bytes, int]] = field(default_factory=list)  # captured bytes, wire length
    expect: list[dict[str, str]] = field(default_factory=list)

    def conn(self, wrap: Wrap, label: str, c: Conn) -> None:
        """The connection's packets, each wrapped; ``label``: the ``tunnel`` column expected."""
        for fwd, pkt in c.packets(ident=0x100 * (len(self.frames) // 8 + 1)):
            data = bytes(wrap(pkt, fwd))
            self.frames.append((data, len(data)))
        self.expect.append({"tunnel": label, "egress": _hp(c.egress), "origin": _hp(c.origin),
                            "client": _hp(c.client), "method": c.method})

    def raw(self, frame: Packet | bytes, cut: int | None = None) -> None:
        """A frame with no connection behind it (hostile); ``cut``: the capture keeps only
        that many bytes (a snap length inside a tunnel header)."""
        data = bytes(frame)
        self.frames.append((data[:cut] if cut is not None else data, len(data)))


def _hp(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def label(kind: int, ident: int = 0) -> str:
    return T.tunnel_label(kind, ident)


def mpls_ident(labels: list[int]) -> int:
    """The decode's packing of a label stack (pcapip.decode.tunnels module doc)."""
    ident = min(len(labels), 15) << 60
    for k, lab in enumerate(labels[: T.MPLS_LABELS_KEPT]):
        ident |= lab << (40 - 20 * k)
    return ident


# ------------------------------------------------------------------ underlay builders
def under(fwd: bool, *, six: bool = False, vlan: int | None = None) -> Packet:
    """Ethernet (+ 802.1Q) + IP between the two tunnel endpoints, in the packet's direction."""
    eth = Ether(src=MAC_A, dst=MAC_B) if fwd else Ether(src=MAC_B, dst=MAC_A)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan, prio=3)
    a, b = (UNDER6_A, UNDER6_B) if six else (UNDER_A, UNDER_B)
    src, dst = (a, b) if fwd else (b, a)
    return eth / (IPv6(src=src, dst=dst, hlim=64) if six else IP(src=src, dst=dst, ttl=64, id=7))


def inner_eth(pkt: Packet, fwd: bool, tags: tuple[tuple[str, int], ...] = ()) -> Packet:
    """The inner Ethernet of an L2 tunnel, with optional VLAN tags (("q"|"ad", vid), ...)."""
    eth = Ether(src=MAC_E, dst=MAC_O) if fwd else Ether(src=MAC_O, dst=MAC_E)
    for kind, vid in tags:
        eth = eth / (Dot1AD(vlan=vid) if kind == "ad" else Dot1Q(vlan=vid))
    return eth / pkt


def vxlan(vni: int, port: int = T.VXLAN_PORT, tags=(), vlan: int | None = None) -> Wrap:
    def w(pkt: Packet, fwd: bool) -> Packet:
        return (under(fwd, vlan=vlan) / UDP(sport=49152 + vni % 4096, dport=port, chksum=0)
                / VXLAN(vni=vni, flags=0x08, NextProtocol=0) / inner_eth(pkt, fwd, tags))
    return w


def geneve(vni: int, opts: list[tuple[int, int, bytes]] = (), l2: bool = False,
           tags: tuple[tuple[str, int], ...] = ()) -> Wrap:
    """GENEVE; ``opts``: (class, type, data a multiple of 4 bytes); ``l2``: inner Ethernet
    (with ``tags``)."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        proto = 0x6558 if l2 else 0x86DD if isinstance(pkt, IPv6) else 0x0800
        g = GENEVE(vni=vni, proto=proto, options=[GeneveOptions(classid=c, type=t, data=d)
                                                  for c, t, d in opts])
        return (under(fwd) / UDP(sport=50000 + vni % 4096, dport=T.GENEVE_PORT, chksum=0) / g
                / (inner_eth(pkt, fwd, tags) if l2 else pkt))
    return w


def gre(key: int | None = None, csum: bool = False, seq: int | None = None, l2: bool = False,
        six: bool = False) -> Wrap:
    def w(pkt: Packet, fwd: bool) -> Packet:
        proto = 0x6558 if l2 else 0x86DD if isinstance(pkt, IPv6) else 0x0800
        g = GRE(proto=proto, chksum_present=int(csum), key_present=int(key is not None),
                key=key, seqnum_present=int(seq is not None), sequence_number=seq)
        return under(fwd, six=six) / g / (inner_eth(pkt, fwd) if l2 else pkt)
    return w


def erspan2(session: int, seq: int = 1) -> Wrap:
    """ERSPAN type II: GRE with the sequence bit, 0x88BE; a mirror: one direction on the wire."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        g = GRE(proto=0x88BE, seqnum_present=1, sequence_number=seq)
        return (under(True) / g / ERSPAN_II(vlan=10, session_id=session, index=0x1234)
                / inner_eth(pkt, fwd))
    return w


#: ERSPAN III platform-specific sub-headers: platform id -> (26-bit info, 32-bit info):
#: 3 port index 42 + upper timestamp; 5 (Nexus-style) switch id 0x15, port 0x0102, seconds
PLATFORMS = {3: (0x2A, 0x0BADCAFE), 5: ((0x15 << 16) | 0x0102, 1_700_000_000)}


def erspan3(session: int, platform: int = 0) -> Wrap:
    """ERSPAN type III (GRE 0x22EB); ``platform``: an id of PLATFORMS for the O bit and the
    8-byte platform sub-header (0: none)."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        g = GRE(proto=0x22EB, seqnum_present=1, sequence_number=9)
        e3 = ERSPAN_III(vlan=20, session_id=session, timestamp=0x01020304, sgt_other=77,
                        hw=5, d=int(not fwd), gra=1, o=int(bool(platform)))
        out = under(True) / g / e3
        if platform:
            info1, info2 = PLATFORMS[platform]
            out = out / ERSPAN_PlatformSpecific(platf_id=platform, info1=info1, info2=info2)
        return out / inner_eth(pkt, fwd)
    return w


def mpls(labels: list[int], cw: bool = False) -> Wrap:
    """An MPLS stack on Ethernet; ``cw``: an Ethernet pseudowire with a control word."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        eth = Ether(src=MAC_A, dst=MAC_B, type=0x8847) if fwd else \
            Ether(src=MAC_B, dst=MAC_A, type=0x8847)
        stack = eth
        for k, lab in enumerate(labels):
            stack = stack / MPLS(label=lab, cos=k, s=int(k == len(labels) - 1), ttl=64 - k)
        if cw:
            return stack / EoMCW(seq=7) / inner_eth(pkt, fwd)
        return stack / pkt
    return w


def pppoe(session: int, vlan: int | None = None) -> Wrap:
    def w(pkt: Packet, fwd: bool) -> Packet:
        eth = Ether(src=MAC_A, dst=MAC_B) if fwd else Ether(src=MAC_B, dst=MAC_A)
        if vlan is not None:
            eth = eth / Dot1Q(vlan=vlan)
        proto = 0x0057 if isinstance(pkt, IPv6) else 0x0021
        return eth / PPPoE(code=0, sessionid=session) / PPP(proto=proto) / pkt
    return w


def ipin(six: bool = False) -> Wrap:
    """IPv4/IPv6 in IPv4 (proto 4/41) or in IPv6 (next header 4/41)."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        nh = 41 if isinstance(pkt, IPv6) else 4
        outer = under(fwd, six=six)
        outer[IPv6 if six else IP].setfieldval("nh" if six else "proto", nh)
        return outer / pkt
    return w


def nest(outer: Wrap, inner: Wrap) -> Wrap:
    """``inner``'s whole frame (minus its Ethernet) carried in ``outer``: e.g. GRE in VXLAN."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        frame = inner(pkt, fwd)
        return outer(frame.payload, fwd)
    return w


def mpls_in_gre(labels: list[int], key: int) -> Wrap:
    """MPLS over GRE (protocol 0x8847, RFC 4023): the stack right after the GRE header."""
    def w(pkt: Packet, fwd: bool) -> Packet:
        stack: Packet = GRE(proto=0x8847, key_present=1, key=key)
        for k, lab in enumerate(labels):
            stack = stack / MPLS(label=lab, s=int(k == len(labels) - 1), ttl=63)
        return under(fwd) / stack / pkt
    return w


# ------------------------------------------------------------------ the captures
def _c(n: int) -> tuple[str, int]:
    """The n-th real client: 203.0.113.n, port 50000 + n."""
    return (f"203.0.113.{n}", 50000 + n)


def _c6(n: int) -> tuple[str, int]:
    return (f"2001:db8:c::{n:x}", 50000 + n)


E4 = (EGRESS4, 40001)  # the inner address pair both tenants share
O4, O4PP = (ORIGIN4, 80), (ORIGIN4, 8080)
E6, O6 = (EGRESS6, 40006), (ORIGIN6, 8080)


def tenants(cap: Capture, wa: Wrap, la: str, wb: Wrap, lb: str, n: int) -> None:
    """Two tenants, the same inner 4-tuple and sequence numbers, different TOA clients."""
    cap.conn(wa, la, Conn(E4, O4, "toa", _c(n)))
    cap.conn(wb, lb, Conn(E4, O4, "toa", _c(n + 1)))


def vxlan_capture() -> Capture:
    cap = Capture("tunnel-vxlan.pcap", "VXLAN (UDP 4789): two tenants (VNI 5001, 5002) with the "
                  "same inner connections and different clients, by TOA, PROXY v2 and v1")
    a, b = vxlan(5001), vxlan(5002)
    tenants(cap, a, label(T.TUN_VXLAN, 5001), b, label(T.TUN_VXLAN, 5002), 1)
    cap.conn(a, label(T.TUN_VXLAN, 5001), Conn((EGRESS4, 40002), O4PP, "ppv2", _c(3)))
    cap.conn(b, label(T.TUN_VXLAN, 5002), Conn((EGRESS4, 40002), O4PP, "ppv2", _c(4)))
    cap.conn(a, label(T.TUN_VXLAN, 5001), Conn((EGRESS4, 40003), O4PP, "ppv1", _c(5)))
    return cap


def vxlan8472_capture() -> Capture:
    cap = Capture("tunnel-vxlan-8472.pcap", "VXLAN on UDP 8472 (Linux's default port): opened "
                  "only when asked (--vxlan-port 8472)")
    w = vxlan(42, port=8472)
    cap.conn(w, label(T.TUN_VXLAN, 42), Conn(E4, O4, "toa", _c(11)))
    cap.conn(w, label(T.TUN_VXLAN, 42), Conn((EGRESS4, 40002), O4PP, "ppv1", _c(12)))
    return cap


AWS_OPTS = [(0x0108, 1, bytes(range(8))), (0x0108, 2, bytes(range(8, 16))),
            (0x0108, 3, b"\0\0\0\x2a")]  # Gateway Load Balancer style: 3 options, 28 bytes


def geneve_capture() -> Capture:
    cap = Capture("tunnel-geneve.pcap", "GENEVE (UDP 6081): inner Ethernet (0x6558) without "
                  "options, inner IPv4 with three options, inner IPv6 with one 16-byte option")
    tenants(cap, geneve(7, l2=True), label(T.TUN_GENEVE, 7), geneve(8, AWS_OPTS),
            label(T.TUN_GENEVE, 8), 21)
    w6 = geneve(9, [(0x0101, 0x80, bytes(range(16)))])
    cap.conn(w6, label(T.TUN_GENEVE, 9), Conn(E6, O6, "ppv2", _c6(0x23)))
    cap.conn(geneve(9, [(0xFFFF, 5, b"\x11" * 4)], l2=True), label(T.TUN_GENEVE, 9),
             Conn((EGRESS4, 40002), O4PP, "ppv1", _c(24)))
    return cap


def gre_capture() -> Capture:
    cap = Capture("tunnel-gre.pcap", "GRE: plain; checksum + key + sequence (two tenants, keys "
                  "42 and 43); inner IPv6; transparent Ethernet (0x6558); GRE over IPv6")
    cap.conn(gre(), label(T.TUN_GRE), Conn((EGRESS4, 40002), O4PP, "ppv1", _c(31)))
    tenants(cap, gre(42, csum=True, seq=1), label(T.TUN_GRE, T.GRE_KEY_PRESENT | 42),
            gre(43, csum=True, seq=1), label(T.TUN_GRE, T.GRE_KEY_PRESENT | 43), 32)
    cap.conn(gre(44), label(T.TUN_GRE, T.GRE_KEY_PRESENT | 44), Conn(E6, O6, "ppv2", _c6(0x34)))
    cap.conn(gre(45, l2=True), label(T.TUN_GRE, T.GRE_KEY_PRESENT | 45),
             Conn((EGRESS4, 40003), O4PP, "ppv2", _c(35)))
    cap.conn(gre(six=True), label(T.TUN_GRE), Conn((EGRESS4, 40004), O4, "toa", _c(36)))
    return cap


def erspan_capture() -> Capture:
    cap = Capture("tunnel-erspan.pcap", "ERSPAN type II (sessions 7 and 8: two tenants) and "
                  "type III (session 9 without, 10 and 11 with platform sub-headers 3 and 5)")
    tenants(cap, erspan2(7), label(T.TUN_ERSPAN2, 7), erspan2(8), label(T.TUN_ERSPAN2, 8), 41)
    cap.conn(erspan3(9), label(T.TUN_ERSPAN3, 9), Conn((EGRESS4, 40002), O4PP, "ppv2", _c(43)))
    cap.conn(erspan3(10, platform=3), label(T.TUN_ERSPAN3, 10),
             Conn((EGRESS4, 40003), O4PP, "ppv1", _c(44)))
    cap.conn(erspan3(11, platform=5), label(T.TUN_ERSPAN3, 11),
             Conn((EGRESS4, 40004), O4, "toa", _c(45)))
    return cap


def mpls_capture() -> Capture:
    cap = Capture("tunnel-mpls.pcap", "MPLS: one label (two tenants, 1001 and 1002), stacks of "
                  "2 (inner IPv6) and 3, an Ethernet pseudowire with a control word")
    tenants(cap, mpls([1001]), label(T.TUN_MPLS, mpls_ident([1001])), mpls([1002]),
            label(T.TUN_MPLS, mpls_ident([1002])), 51)
    cap.conn(mpls([16, 2002]), label(T.TUN_MPLS, mpls_ident([16, 2002])),
             Conn(E6, O6, "ppv2", _c6(0x53)))
    cap.conn(mpls([16, 17, 3003]), label(T.TUN_MPLS, mpls_ident([16, 17, 3003])),
             Conn((EGRESS4, 40002), O4PP, "ppv1", _c(54)))
    cap.conn(mpls([16, 4004], cw=True), label(T.TUN_MPLS, mpls_ident([16, 4004])),
             Conn((EGRESS4, 40003), O4PP, "ppv2", _c(55)))
    return cap


def pppoe_capture() -> Capture:
    cap = Capture("tunnel-pppoe.pcap", "PPPoE sessions: 0x11 and 0x12 (two tenants, PPP IPv4), "
                  "0x13 (PPP IPv6), 0x14 behind an 802.1Q tag")
    tenants(cap, pppoe(0x11), label(T.TUN_PPPOE, 0x11), pppoe(0x12), label(T.TUN_PPPOE, 0x12),
            61)
    cap.conn(pppoe(0x13), label(T.TUN_PPPOE, 0x13), Conn(E6, O6, "ppv1", _c6(0x63)))
    cap.conn(pppoe(0x14, vlan=100), label(T.TUN_PPPOE, 0x14),
             Conn((EGRESS4, 40002), O4PP, "ppv2", _c(64)))
    return cap


def ipip_capture() -> Capture:
    cap = Capture("tunnel-ipip.pcap", "IP in IP: IPv4 in IPv4 (4), IPv6 in IPv4 (41), IPv4 in "
                  "IPv6, IPv6 in IPv6")
    cap.conn(ipin(), label(T.TUN_4IN4), Conn(E4, O4, "toa", _c(71)))
    cap.conn(ipin(), label(T.TUN_6IN4), Conn(E6, O6, "ppv1", _c6(0x72)))
    cap.conn(ipin(six=True), label(T.TUN_4IN6), Conn((EGRESS4, 40002), O4PP, "ppv2", _c(73)))
    cap.conn(ipin(six=True), label(T.TUN_6IN6), Conn(E6, O6, "ppv2", _c6(0x74)))
    return cap


def vlan_capture() -> Capture:
    cap = Capture("tunnel-vlan.pcap", "VLAN tags outside and inside tunnels: 802.1Q before "
                  "VXLAN; 802.1Q inside VXLAN's inner Ethernet (two tenants); 802.1ad + 802.1Q "
                  "inside GENEVE")
    cap.conn(vxlan(6001, vlan=100), label(T.TUN_VXLAN, 6001),
             Conn((EGRESS4, 40002), O4PP, "ppv1", _c(81)))
    tag = (("q", 200),)
    tenants(cap, vxlan(6001, tags=tag), label(T.TUN_VXLAN, 6001), vxlan(6002, tags=tag),
            label(T.TUN_VXLAN, 6002), 82)
    cap.conn(geneve(11, l2=True, tags=(("ad", 300), ("q", 301))), label(T.TUN_GENEVE, 11),
             Conn((EGRESS4, 40003), O4PP, "ppv2", _c(84)))
    return cap


def nested_capture() -> Capture:
    cap = Capture("tunnel-nested.pcap", "nesting: GRE in VXLAN, VXLAN in GRE, IPv4-in-IPv4 in "
                  "GENEVE, MPLS over GRE, and 4 layers deep (VXLAN > GRE > IPIP > GENEVE)")
    cap.conn(nest(vxlan(7001), gre(77)), label(T.TUN_GRE, T.GRE_KEY_PRESENT | 77),
             Conn(E4, O4, "toa", _c(91)))
    cap.conn(nest(gre(78), vxlan(7002)), label(T.TUN_VXLAN, 7002),
             Conn((EGRESS4, 40002), O4PP, "ppv2", _c(92)))
    # the innermost layer that names a tenant: GENEVE's VNI, not the IP-in-IP inside it
    cap.conn(nest(geneve(12), ipin()), label(T.TUN_GENEVE, 12),
             Conn((EGRESS4, 40003), O4PP, "ppv1", _c(93)))
    cap.conn(mpls_in_gre([5005], 79), label(T.TUN_MPLS, mpls_ident([5005])),
             Conn((EGRESS4, 40004), O4, "toa", _c(94)))
    deep = nest(vxlan(7003), nest(gre(80), nest(ipin(), geneve(13))))
    cap.conn(deep, label(T.TUN_GENEVE, 13), Conn((EGRESS4, 40005), O4PP, "ppv2", _c(95)))
    return cap


def _syn(n: int, toa: bool = True) -> Packet:
    """A SYN from egress port 40100+n, with a TOA naming client 200+n: what a hostile frame
    would smuggle to the origin."""
    opts = [(200, toa200(*_c(200 + n)))] if toa else []
    return IP(src=EGRESS4, dst=ORIGIN4, ttl=64, id=n) / TCP(
        sport=40100 + n, dport=80, seq=1000, flags=SYN, options=opts)


def hostile_capture() -> Capture:
    """Frames no decoder may open whole: loops past MAX_TUNNEL_DEPTH, cut and lying headers.
    One row is expected: a GENEVE option lying about its own length inside an option area
    whose length is right (options are skipped by the header's length, as the issue says)."""
    cap = Capture("tunnel-hostile.pcap", "crafted loops deeper than the depth limit, tunnel "
                  "headers cut by the snap length, a GENEVE option length past the packet, MPLS "
                  "without bottom of stack")
    eth = Ether(src=MAC_A, dst=MAC_B)
    deep: Packet = _syn(1)  # IPv4 in IPv4, 10 deep
    for k in range(10):
        deep = IP(src=f"10.9.{k}.1", dst=f"10.9.{k}.2", ttl=64, id=k) / deep
    cap.raw(eth / deep)
    deep = _syn(2)  # one layer past the limit
    for k in range(T.MAX_TUNNEL_DEPTH + 1):
        deep = IP(src=f"10.8.{k}.1", dst=f"10.8.{k}.2", ttl=64, id=k) / deep
    cap.raw(eth / deep)
    deep = Ether(src=MAC_E, dst=MAC_O) / _syn(3)  # VXLAN in VXLAN, 8 deep
    for k in range(8):
        deep = (Ether(src=MAC_A, dst=MAC_B) / IP(src=f"10.7.{k}.1", dst=f"10.7.{k}.2", id=k)
                / UDP(sport=49152 + k, dport=T.VXLAN_PORT, chksum=0)
                / VXLAN(vni=100 + k, flags=0x08, NextProtocol=0) / deep)
    cap.raw(deep)
    deep = _syn(4)  # GRE in GRE, 6 deep, keyed
    for k in range(6):
        deep = IP(src=f"10.6.{k}.1", dst=f"10.6.{k}.2", id=k) / GRE(key_present=1, key=k) / deep
    cap.raw(eth / deep)
    # tunnel headers cut by the snap length: (frame, bytes kept)
    ip = IP(src=UNDER_A, dst=UNDER_B, ttl=64, id=7)
    under_len = 14 + 20
    cut = [
        (eth / ip / UDP(sport=49152, dport=T.VXLAN_PORT, chksum=0)
         / VXLAN(vni=5001, flags=0x08, NextProtocol=0) / Ether(src=MAC_E, dst=MAC_O) / _syn(5),
         under_len + 8 + 4),
        (eth / ip / UDP(sport=50000, dport=T.GENEVE_PORT, chksum=0)
         / GENEVE(vni=7, proto=0x0800, options=[GeneveOptions(classid=0x0108, type=1,
                                                              data=bytes(8))]) / _syn(6),
         under_len + 8 + 6),
        (eth / ip / GRE(chksum_present=1, key_present=1, key=42, seqnum_present=1,
                        sequence_number=1) / _syn(7), under_len + 6),
        (eth / ip / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
         / ERSPAN_II(session_id=7) / Ether(src=MAC_E, dst=MAC_O) / _syn(8), under_len + 8 + 4),
        (eth / ip / GRE(proto=0x22EB) / ERSPAN_III(session_id=9, o=1)
         / ERSPAN_PlatformSpecific(platf_id=3) / Ether(src=MAC_E, dst=MAC_O) / _syn(9),
         under_len + 4 + 12 + 3),
        (Ether(src=MAC_A, dst=MAC_B, type=0x8847) / MPLS(label=1001, s=0) / MPLS(label=7, s=1)
         / _syn(10), 14 + 4 + 2),
        (eth / PPPoE(code=0, sessionid=0x11) / PPP(proto=0x21) / _syn(11), 14 + 4),
    ]
    for frame, keep in cut:
        cap.raw(frame, cut=keep)
    # GENEVE: opt_len 63 (252 bytes of options) in a 24-byte payload; then an option whose
    # own length (31 words) runs past the 8-byte option area
    long_opts = GENEVE(vni=7, proto=0x0800, optionlen=63) / Raw(b"\x01\x08\x01\x01" + bytes(4))
    cap.raw(eth / ip / UDP(sport=50000, dport=T.GENEVE_PORT, chksum=0) / long_opts)
    bad_opt = GENEVE(vni=7, proto=0x0800, optionlen=2) / Raw(b"\x01\x08\x01\x1f" + bytes(4))
    cap.raw(eth / ip / UDP(sport=50001, dport=T.GENEVE_PORT, chksum=0) / bad_opt / _syn(12))
    cap.expect.append({"tunnel": label(T.TUN_GENEVE, 7), "egress": f"{EGRESS4}:40112",
                       "origin": _hp(O4), "client": _hp(_c(212)), "method": "toa"})
    # MPLS labels without bottom of stack to the end of the frame
    stack = Ether(src=MAC_A, dst=MAC_B, type=0x8847)
    for k in range(12):
        stack = stack / MPLS(label=100 + k, s=0, ttl=64)
    cap.raw(stack)
    # PPPoE whose payload length runs past the frame
    # (no TOA in it: whether a decoder trusts the captured bytes or the length is its choice)
    cap.raw(eth / PPPoE(code=0, sessionid=0x15, len=1400) / PPP(proto=0x21) / _syn(13, toa=False))
    return cap


def all_captures() -> list[Capture]:
    return [vxlan_capture(), vxlan8472_capture(), geneve_capture(), gre_capture(),
            erspan_capture(), mpls_capture(), pppoe_capture(), ipip_capture(), vlan_capture(),
            nested_capture(), hostile_capture()]


def write_pcap(path: Path, frames: list[tuple[bytes, int]]) -> None:
    """pcap, µs, little-endian, Ethernet; fixed timestamps 1 ms apart."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k, (data, wire) in enumerate(frames):
            fh.write(struct.pack("<IIII", 1_700_000_000 + k // 1000, (k % 1000) * 1000,
                                 len(data), wire))
            fh.write(data)


def expect_path(pcap: Path) -> Path:
    """``tunnel-X.pcap`` -> ``tunnel-X.expect.json``."""
    return pcap.with_name(pcap.name.removesuffix(".pcap") + ".expect.json")


def write_all(out: Path) -> list[Path]:
    paths = []
    for c in all_captures():
        write_pcap(out / c.name, c.frames)
        expect_path(out / c.name).write_text(json.dumps(c.expect, indent=1) + "\n")
        paths.append(out / c.name)
    return paths


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "pcaps"
    out.mkdir(parents=True, exist_ok=True)
    for path in write_all(out):
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
