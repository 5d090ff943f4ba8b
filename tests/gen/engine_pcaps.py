"""Write the engine's test captures into tests/pcaps/.

Packets are built with scapy; the capture containers (pcap in both byte
orders and resolutions, pcapng with several sections, interfaces and block
kinds, damaged variants) are written byte by byte here with ``struct`` so
that every format corner is exercised on purpose. Everything is
deterministic: running the script again reproduces the same files.

    .venv/bin/python tests/gen/engine_pcaps.py            # synthetic captures
    .venv/bin/python tests/gen/engine_pcaps.py --record   # + real loopback captures (root, tcpdump, dumpcap)
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

OUT = Path(__file__).resolve().parent.parent / "pcaps"
T0 = 1_700_000_000  # seconds; every capture starts here
MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"
PROXY_V1 = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 80\r\n"
PROXY_V2_UDP = (
    b"\r\n\r\n\x00\r\nQUIT\n"
    + bytes([0x21, 0x12, 0x00, 0x0C])
    + bytes([198, 51, 100, 9, 10, 0, 0, 2])
    + struct.pack("!HH", 40000, 53)
)
TOA_200 = (200, bytes([0x1F, 0x90, 203, 0, 113, 7]))  # port 8080, 203.0.113.7

# ---------------------------------------------------------------------------------------------
# container writers


def pcap_bytes(
    frames: list[tuple[int, bytes] | tuple[int, bytes, int]],
    *,
    linktype: int,
    big: bool = False,
    nano: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """Classic pcap. frames: (timestamp ns, data[, original length])."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for fr in frames:
        ts, data = fr[0], fr[1]
        orig = fr[2] if len(fr) > 2 else len(data)
        cap = data[:snaplen]
        sec, frac = divmod(ts, 1_000_000_000)
        if not nano:
            frac //= 1000
        out.append(struct.pack(e + "IIII", sec, frac, len(cap), orig) + cap)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def ng_opts(opts: list[tuple[int, bytes]], e: str) -> bytes:
    if not opts:
        return b""
    body = b"".join(struct.pack(e + "HH", c, len(v)) + _pad4(v) for c, v in opts)
    return body + struct.pack(e + "HH", 0, 0)


def ng_block(btype: int, body: bytes, e: str) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)


def ng_shb(e: str, opts: list[tuple[int, bytes]] | None = None) -> bytes:
    body = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + ng_opts(opts or [], e)
    return ng_block(0x0A0D0D0A, body, e)


def ng_idb(e: str, linktype: int, snaplen: int = 262144, opts=None) -> bytes:
    return ng_block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + ng_opts(opts or [], e), e)


def ng_epb(
    e: str, iface: int, ticks: int, data: bytes, orig: int | None = None, opts=None
) -> bytes:
    orig = len(data) if orig is None else orig
    body = struct.pack(e + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig)
    return ng_block(6, body + _pad4(data) + ng_opts(opts or [], e), e)


def ng_spb(e: str, data: bytes, orig: int | None = None) -> bytes:
    return ng_block(3, struct.pack(e + "I", len(data) if orig is None else orig) + data, e)


def ng_pb(e: str, iface: int, ticks: int, data: bytes) -> bytes:
    body = struct.pack(
        e + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return ng_block(2, body + data, e)


def ticks(ts_ns: int, tsresol: int) -> int:
    """Timestamp in units of an if_tsresol byte (truncating, as a capture tool would)."""
    if tsresol & 0x80:
        return (ts_ns << (tsresol & 0x7F)) // 1_000_000_000
    return ts_ns * 10 ** (tsresol) // 1_000_000_000


# ---------------------------------------------------------------------------------------------
# link-layer headers scapy does not make the way we want


def sll(proto: int, pkttype: int = 0, hatype: int = 1) -> bytes:
    return struct.pack(
        "!HHH8sH", pkttype, hatype, 6, bytes.fromhex("020000000001") + b"\0\0", proto
    )


def sll2(proto: int, ifindex: int = 2, pkttype: int = 4, hatype: int = 1) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, hatype, pkttype, 6, bytes(6) + b"\0\0")


def null_hdr(family: int, big: bool) -> bytes:
    return struct.pack(">I" if big else "<I", family)


# ---------------------------------------------------------------------------------------------
# packets


def tcp4(src, dst, sport, dport, flags, seq, ack=0, opts=(), payload=b"", **ip):
    return (
        IP(src=src, dst=dst, **ip)
        / TCP(
            sport=sport,
            dport=dport,
            flags=flags,
            seq=seq,
            ack=ack,
            window=64240,
            options=list(opts),
        )
        / Raw(payload)
    )


def tcp6(src, dst, sport, dport, flags, seq, ack=0, opts=(), payload=b"", ext=None):
    ip = IPv6(src=src, dst=dst)
    if ext is not None:
        ip = ip / ext
    return (
        ip
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, options=list(opts))
        / Raw(payload)
    )


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def raw_tcp_options(pkt, options: bytes) -> bytes:
    """Ethernet/IPv4/TCP frame (no IP options) with exactly these TCP option bytes.

    scapy normalises option lists, so malformed ones are spliced in by hand;
    the IP total length, TCP data offset and IP checksum are patched to match.
    """
    raw = bytearray(bytes(pkt))
    tcp = 14 + 20
    body = raw[: tcp + 20] + options + raw[tcp + 20 :]
    struct.pack_into("!H", body, 14 + 2, len(body) - 14)
    body[tcp + 12] = ((20 + len(options)) // 4) << 4 | (body[tcp + 12] & 0x0F)
    struct.pack_into("!H", body, 14 + 10, 0)
    struct.pack_into("!H", body, 14 + 10, ip_checksum(bytes(body[14:34])))
    return bytes(body)


SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None), ("WScale", 7)]


def handshake4(
    c="10.0.0.1", s="10.0.0.2", cp=51234, sp=80, toa=True, data=PROXY_V1 + b"GET / HTTP/1.1\r\n\r\n"
):
    syn_opts = [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]
    if toa:
        syn_opts.append(TOA_200)
    return [
        tcp4(c, s, cp, sp, "S", 1000, opts=syn_opts),
        tcp4(s, c, sp, cp, "SA", 5000, 1001, opts=SYN_OPTS),
        tcp4(
            c,
            s,
            cp,
            sp,
            "A",
            1001,
            5001,
            opts=[("NOP", None), ("NOP", None), TOA_200] if toa else [],
        ),
        tcp4(c, s, cp, sp, "PA", 1001, 5001, payload=data),
        tcp4(s, c, sp, cp, "A", 5001, 1001 + len(data)),
        tcp4(s, c, sp, cp, "FA", 5001, 1001 + len(data)),
        tcp4(c, s, cp, sp, "FA", 1001 + len(data), 5002),
    ]


def ipv6_set():
    a, b = "2001:db8::1", "2001:db8::2"
    frag = (
        IPv6(src=a, dst=b)
        / IPv6ExtHdrFragment(id=7, offset=0, m=1, nh=6)
        / Raw(bytes(TCP(sport=1, dport=2))[:16])
    )
    frag2 = IPv6(src=a, dst=b) / IPv6ExtHdrFragment(id=7, offset=2, m=0, nh=6) / Raw(b"x" * 8)
    return [
        tcp6(a, b, 40000, 443, "S", 1, opts=[("MSS", 1440), (253, bytes(18))]),
        tcp6(b, a, 443, 40000, "SA", 9, 2, opts=[("MSS", 1440)]),
        tcp6(
            a,
            b,
            40000,
            443,
            "PA",
            2,
            10,
            payload=b"hello over v6",
            ext=IPv6ExtHdrHopByHop()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrRouting(addresses=["2001:db8::3"]),
        ),
        # atomic fragment: a fragment header with offset 0 and M=0 is not a fragment
        tcp6(a, b, 40000, 443, "A", 15, 10, ext=IPv6ExtHdrFragment(id=9, offset=0, m=0)),
        frag,
        frag2,
        IPv6(src=a, dst=b)
        / AH(nh=6, payloadlen=4, spi=0x100, seq=1, icv=bytes(12))
        / TCP(sport=40001, dport=22, flags="S", seq=77),
        IPv6(src=a, dst=b) / UDP(sport=5353, dport=53) / Raw(b"\x12\x34query"),
        IPv6(src=a, dst="ff02::1", nh=58)
        / Raw(b"\x80\x00\x00\x00icmp6"),  # ICMPv6 echo, not TCP/UDP
    ]


def mixed_ethernet() -> list[bytes]:
    """Every decode corner on Ethernet: one frame each, in a fixed order."""
    eth = Ether(src=MAC_C, dst=MAC_S)
    eth6 = Ether(src=MAC_C, dst=MAC_S, type=0x86DD)
    frames: list[bytes] = []
    frames += [bytes(eth / p) for p in handshake4()]
    frames.append(
        bytes(
            eth
            / IP(src="10.0.0.1", dst="10.0.0.53")
            / UDP(sport=40000, dport=53)
            / Raw(PROXY_V2_UDP + b"dns")
        )
    )
    frames.append(
        bytes(Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2"))
    )
    frames.append(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / Raw(b"ping")))
    # IPv4 with options (IHL 6)
    frames.append(
        bytes(
            eth
            / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_Router_Alert()])
            / TCP(sport=1111, dport=2222, flags="S", seq=42)
        )
    )
    # IPv4 fragments: first (MF) and a later one
    big = (
        IP(src="10.0.0.1", dst="10.0.0.2", id=321, flags="MF")
        / UDP(sport=9, dport=9)
        / Raw(b"A" * 32)
    )
    frames.append(bytes(eth / big))
    frames.append(
        bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2", id=321, frag=5, proto=17) / Raw(b"B" * 16))
    )
    # VLAN, QinQ 802.1ad, legacy QinQ 0x9100
    frames.append(
        bytes(eth / Dot1Q(vlan=10) / tcp4("10.1.0.1", "10.1.0.2", 3000, 80, "S", 1, opts=[TOA_200]))
    )
    frames.append(
        bytes(
            Ether(src=MAC_C, dst=MAC_S)
            / Dot1AD(vlan=100)
            / Dot1Q(vlan=20)
            / tcp4("10.2.0.1", "10.2.0.2", 3001, 80, "S", 2)
        )
    )
    legacy = (
        Ether(src=MAC_C, dst=MAC_S, type=0x9100)
        / Dot1Q(vlan=200)
        / Dot1Q(vlan=30)
        / IP(src="10.3.0.1", dst="10.3.0.2")
        / UDP(sport=7, dport=7)
        / Raw(b"qinq")
    )
    frames.append(bytes(legacy))
    # short frame padded to the Ethernet minimum, and junk after the IP total length
    frames.append(bytes(eth / tcp4("10.0.0.1", "10.0.0.2", 51234, 80, "R", 77)) + bytes(6))
    frames.append(
        bytes(eth / tcp4("10.0.0.1", "10.0.0.2", 51234, 80, "A", 78, 5, payload=b"xy"))
        + b"JUNKJUNKJUNK"
    )
    # TCP option corner cases
    base = eth / tcp4("10.0.0.1", "10.0.0.2", 6000, 80, "S", 100)
    frames.append(
        raw_tcp_options(base, bytes([2, 4, 5, 0xB4, 0, 0, 0, 0]))
    )  # MSS, EOL, zero padding
    frames.append(
        raw_tcp_options(base, bytes([2, 4, 5, 0xB4, 0, 1, 1, 1, 254, 8, 0x1F, 0x90, 1, 2, 3, 4]))
    )  # TOA hidden after EOL
    frames.append(
        raw_tcp_options(base, bytes([1, 1, 200, 0, 0x1F, 0x90, 1, 2]))
    )  # TOA kind with length 0: walk broken
    frames.append(
        raw_tcp_options(base, bytes([8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 4, 9]))
    )  # TS then SACK-perm overrunning
    frames.append(
        raw_tcp_options(base, bytes([28, 7, 1, 203, 0, 113, 9, 0]))
    )  # kind 28 length 7 (CDN toa)
    frames.append(raw_tcp_options(base, bytes([1, 1, 1, 252])))  # kind in the last byte: no length
    # impossible headers
    bad_ihl = bytearray(bytes(eth / tcp4("10.0.0.1", "10.0.0.2", 1, 2, "S", 3)))
    bad_ihl[14] = 0x44  # IHL 4
    frames.append(bytes(bad_ihl))
    bad_doff = bytearray(bytes(eth / tcp4("10.0.0.1", "10.0.0.2", 1, 2, "S", 3)))
    bad_doff[14 + 20 + 12] = 0x40  # data offset 4
    frames.append(bytes(bad_doff))
    bad_udp = (
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2, len=200) / Raw(b"short")
    )
    frames.append(bytes(bad_udp))
    # IPv6 set
    frames += [bytes(eth6 / p) for p in ipv6_set()]
    # a non-IP ethertype (LLDP) and an 802.3 length frame
    frames.append(bytes(Ether(src=MAC_C, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(bytes(20))))
    frames.append(bytes(Ether(src=MAC_C, dst=MAC_S, type=46) / Raw(bytes(46))))
    return frames


def ip_only() -> list[bytes]:
    """IPv4 and IPv6 TCP/UDP without a link layer (for raw-IP-like link types)."""
    out = [bytes(p) for p in handshake4(c="192.0.2.10", s="192.0.2.20", cp=40100, sp=8080)]
    out.append(
        bytes(IP(src="192.0.2.10", dst="192.0.2.53") / UDP(sport=5000, dport=53) / Raw(b"q"))
    )
    out += [bytes(p) for p in ipv6_set()[:3]]
    out.append(
        bytes(IPv6(src="2001:db8::a", dst="2001:db8::b") / UDP(sport=1, dport=2) / Raw(b"u6"))
    )
    return out


def timed(frames: list[bytes]) -> list[tuple[int, bytes]]:
    return list(zip(stamps(len(frames)), frames, strict=True))


def stamps(n: int, start: int = T0 * 10**9 + 123_456_789, step: int = 1_234_567) -> list[int]:
    return [start + i * step for i in range(n)]


# ---------------------------------------------------------------------------------------------
# the captures


def write(name: str, data: bytes) -> None:
    (OUT / name).write_bytes(data)
    print(f"{name}: {len(data)} bytes")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def build_all() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    eth = mixed_ethernet()
    ts = stamps(len(eth))
    write("eth-mixed-us-le.pcap", pcap_bytes(list(zip(ts, eth, strict=True)), linktype=1))
    # snap length 80: headers and payloads cut short
    write(
        "eth-snap80-ns-be.pcap",
        pcap_bytes(list(zip(ts, eth, strict=True)), linktype=1, big=True, nano=True, snaplen=80),
    )

    ipf = ip_only()
    t2 = stamps(len(ipf), step=999_999_937)
    write(
        "raw101-ns-be.pcap",
        pcap_bytes(list(zip(t2, ipf, strict=True)), linktype=101, big=True, nano=True),
    )
    write("raw12-us-le.pcap", pcap_bytes(list(zip(t2, ipf, strict=True)), linktype=12))
    write("raw14-ns-le.pcap", pcap_bytes(list(zip(t2, ipf, strict=True)), linktype=14, nano=True))
    v4 = [f for f in ipf if f[0] >> 4 == 4]
    v6 = [f for f in ipf if f[0] >> 4 == 6]
    write(
        "raw228-ipv4-us-be.pcap",
        pcap_bytes(list(zip(t2[: len(v4)], v4, strict=True)), linktype=228, big=True),
    )
    write(
        "raw229-ipv6-ns-le.pcap",
        pcap_bytes(list(zip(t2[: len(v6)], v6, strict=True)), linktype=229, nano=True),
    )

    def proto_of(f: bytes) -> int:
        return 0x0800 if f[0] >> 4 == 4 else 0x86DD

    arp = bytes(ARP(psrc="10.0.0.1", pdst="10.0.0.2"))
    sll_frames = [sll(proto_of(f), pkttype=i % 5) + f for i, f in enumerate(ipf)]
    sll_frames.append(sll(0x0806) + arp)
    sll_frames.append(sll(0x8100) + struct.pack("!HH", 5, 0x0800) + ipf[3])  # VLAN tag inside SLL
    write("sll-us-be.pcap", pcap_bytes(timed(sll_frames), linktype=113, big=True))
    sll2_frames = [sll2(proto_of(f), ifindex=3 + i % 2) + f for i, f in enumerate(ipf)]
    sll2_frames.append(sll2(0x0806) + arp)
    write("sll2-ns-le.pcap", pcap_bytes(timed(sll2_frames), linktype=276, nano=True))

    fam6 = (24, 28, 30)
    null_le = [null_hdr(2 if f[0] >> 4 == 4 else fam6[i % 3], False) + f for i, f in enumerate(ipf)]
    null_le.append(null_hdr(7, False) + b"\0" * 20)  # AF 7: not IP
    write("null-le.pcap", pcap_bytes(timed(null_le), linktype=0))
    null_be = [null_hdr(2 if f[0] >> 4 == 4 else fam6[i % 3], True) + f for i, f in enumerate(ipf)]
    write("null-befamily-us-be.pcap", pcap_bytes(timed(null_be), linktype=0, big=True))
    loop = [null_hdr(2 if f[0] >> 4 == 4 else 24, True) + f for f in ipf]
    loop.append(null_hdr(2, False) + ipf[0])  # a host-order family on DLT_LOOP
    write("loop-be.pcap", pcap_bytes(timed(loop), linktype=108))

    write_pcapng()

    # gzip: detected from the magic, names do not matter
    write("eth-mixed-us-le.pcap.gz", gz((OUT / "eth-mixed-us-le.pcap").read_bytes()))
    write("multi-section.pcapng.gz", gz((OUT / "multi-section.pcapng").read_bytes()))

    write_damaged(eth, ts)


def write_pcapng() -> None:
    eth = mixed_ethernet()
    ipf = ip_only()
    L, B = "<", ">"
    t = stamps(64, step=3_333_333_331)
    blocks = [
        ng_shb(L, [(2, b"generic x86"), (3, b"Linux"), (4, b"engine_pcaps")]),
        ng_idb(L, 1, opts=[(2, b"eth0")]),  # default resolution: microseconds
        ng_idb(L, 101, opts=[(2, b"tun0"), (9, b"\x09")]),  # nanoseconds
        ng_block(
            4,
            _pad4(struct.pack("<HH4s", 1, 17, bytes([10, 0, 0, 1])) + b"host.example\0") + bytes(4),
            L,
        ),  # NRB
        ng_epb(L, 0, ticks(t[0], 6), eth[0]),
        ng_epb(L, 1, ticks(t[1], 9), ipf[1], opts=[(1, b"a comment")]),
        ng_idb(L, 276, opts=[(9, b"\x94")]),  # SLL2, resolution 2^-20
        ng_epb(L, 2, ticks(t[2], 0x94), sll2(0x0800) + ipf[2]),
        ng_block(0x00000BAD, struct.pack("<I", 32473) + b"custom data", L),  # custom block: skipped
        ng_block(0x12345678, b"unknown block type", L),  # unknown: skipped
        ng_spb(L, eth[3]),  # SPB: interface 0, no timestamp
        ng_pb(L, 0, ticks(t[4], 6), eth[4]),  # obsolete packet block
        ng_epb(L, 0, ticks(t[5], 6), eth[5][:40], orig=len(eth[5])),  # cut by a snap length
        ng_block(
            5, struct.pack("<III", 0, ticks(t[5], 6) >> 32, ticks(t[5], 6) & 0xFFFFFFFF), L
        ),  # ISB
        # second section, big-endian: interface ids restart at 0
        ng_shb(B),
        ng_idb(B, 113, opts=[(9, b"\x03"), (14, struct.pack(">q", 3600))]),  # ms, +1 h offset
        ng_idb(B, 1, opts=[(9, b"\x09")]),
        ng_epb(B, 0, ticks(t[6], 3) - 3600 * 1000, sll(0x86DD) + ipf[-1]),
        ng_epb(B, 1, ticks(t[7], 9), eth[6]),
        ng_epb(B, 1, ticks(t[8], 9), eth[7]),
        ng_pb(B, 0, ticks(t[9], 3) - 3600 * 1000, sll(0x0800) + ipf[0]),
        # third section, little-endian again, microsecond default
        ng_shb(L),
        ng_idb(L, 0),
        ng_epb(L, 0, ticks(t[10], 6), null_hdr(2, False) + ipf[3]),
    ]
    write("multi-section.pcapng", b"".join(blocks))

    # one interface per link type, including one pcapip does not decode (147 USER0)
    links = [
        (
            1,
            lambda f: (
                bytes(Ether(src=MAC_C, dst=MAC_S, type=0x0800 if f[0] >> 4 == 4 else 0x86DD)) + f
            ),
        ),
        (113, lambda f: sll(0x0800 if f[0] >> 4 == 4 else 0x86DD) + f),
        (276, lambda f: sll2(0x0800 if f[0] >> 4 == 4 else 0x86DD) + f),
        (101, lambda f: f),
        (12, lambda f: f),
        (14, lambda f: f),
        (0, lambda f: null_hdr(2 if f[0] >> 4 == 4 else 30, False) + f),
        (108, lambda f: null_hdr(2 if f[0] >> 4 == 4 else 24, True) + f),
        (147, lambda f: b"\xaa\xbb" + f),
    ]
    v4 = [f for f in ipf if f[0] >> 4 == 4]
    v6 = [f for f in ipf if f[0] >> 4 == 6]
    blocks = [ng_shb(B, [(4, b"engine_pcaps")])]
    blocks += [ng_idb(B, lt, opts=[(9, b"\x09")]) for lt, _ in links]
    blocks += [ng_idb(B, 228, opts=[(9, b"\x09")]), ng_idb(B, 229, opts=[(9, b"\x09")])]
    k = 0
    for i, (_, wrap) in enumerate(links):
        for f in (v4[3], v6[0], v4[4]):
            blocks.append(ng_epb(B, i, t[k % len(t)], wrap(f)))
            k += 1
    for f in v4[:4]:
        blocks.append(ng_epb(B, len(links), t[k % len(t)], f))
        k += 1
    for f in v6:
        blocks.append(ng_epb(B, len(links) + 1, t[k % len(t)], f))
        k += 1
    write("all-links-be.pcapng", b"".join(blocks))


def write_damaged(eth: list[bytes], ts: list[int]) -> None:
    good = pcap_bytes(list(zip(ts[:6], eth[:6], strict=True)), linktype=1)
    write("bad-truncated-last.pcap", good[:-10])  # last record loses its last 10 bytes
    body = bytearray(good)
    # third record header: caplen absurd
    off = 24
    for _ in range(2):
        off += 16 + struct.unpack_from("<I", body, off + 8)[0]
    struct.pack_into("<I", body, off + 8, 0x7FFFFFF0)
    write("bad-absurd-caplen.pcap", bytes(body))

    L = "<"
    t = stamps(8)
    sec1 = (
        ng_shb(L)
        + ng_idb(L, 1)
        + b"".join(ng_epb(L, 0, ticks(x, 6), f) for x, f in zip(t[:3], eth[:3], strict=True))
    )
    bad_shb = bytearray(ng_shb(L))
    bad_shb[8:12] = b"\x11\x22\x33\x44"
    write(
        "bad-bom.pcapng",
        sec1 + bytes(bad_shb) + ng_idb(L, 1) + ng_epb(L, 0, ticks(t[3], 6), eth[3]),
    )
    broken = bytearray(ng_epb(L, 0, ticks(t[3], 6), eth[3]))
    struct.pack_into("<I", broken, 4, len(broken) + 2)  # not a multiple of 4
    write("bad-block-length.pcapng", sec1 + bytes(broken) + ng_epb(L, 0, ticks(t[4], 6), eth[4]))
    wrong_if = ng_epb(L, 5, ticks(t[3], 6), eth[3])
    write("bad-interface-id.pcapng", sec1 + wrong_if)

    write("empty.pcap", b"")
    write("not-a-capture.pcap", b"This is a text file, not a capture.\n")
    user0 = [b"\x01\x02custom-link-frame-" + bytes([i]) for i in range(3)]
    write("unknown-linktype.pcap", pcap_bytes(list(zip(ts[:3], user0, strict=True)), linktype=147))
    write("bad-truncated.pcap.gz", gz(good)[:-30])


# ---------------------------------------------------------------------------------------------
# real captures on loopback


def _loopback_traffic(port: int) -> None:
    """A short TCP exchange (PROXY v1 header, request, response) and two UDP datagrams."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    th = threading.Thread(target=serve)
    th.start()
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(PROXY_V1 + b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        while c.recv(4096):
            pass
    th.join()
    srv.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(PROXY_V2_UDP + b"payload", ("127.0.0.1", port + 1))
    u.close()
    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        u6.sendto(b"v6 datagram", ("::1", port + 1))
    u6.close()


def record(tool: list[str], out: Path, port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmpfile = Path(tmp) / out.name
        filt = f"port {port} or port {port + 1}"
        cmd = (
            [*tool, str(tmpfile), filt]
            if tool[0] == "tcpdump"
            else [*tool, str(tmpfile), "-f", filt]
        )
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)
            _loopback_traffic(port)
            time.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        shutil.copyfile(tmpfile, out)
    print(f"{out.name}: {out.stat().st_size} bytes (recorded)")


def record_all() -> None:
    if os.geteuid() != 0:
        sys.exit("--record needs root (packet capture on lo)")
    record(["tcpdump", "-i", "lo", "-U", "-w"], OUT / "loopback-tcpdump.pcap", 18080)
    record(["dumpcap", "-q", "-i", "lo", "-w"], OUT / "loopback-dumpcap.pcapng", 18090)
    # "-i any" records Linux cooked headers: SLL2 with tcpdump >= 4.99
    record(
        ["tcpdump", "-i", "any", "-y", "LINUX_SLL2", "-U", "-w"],
        OUT / "any-sll2-tcpdump.pcap",
        18100,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--record", action="store_true", help="also record the real loopback captures")
    args = ap.parse_args()
    build_all()
    if args.record:
        record_all()


if __name__ == "__main__":
    main()
