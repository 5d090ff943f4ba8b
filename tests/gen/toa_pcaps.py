"""Build the synthetic TOA captures in tests/pcaps/ (toa-variants.pcap, toa-bad-lengths.pcap).

The public captures cover only three vendor variants (254+250, 252, 253), so
every other row of the TOA variant table, and the malformed shapes a dissector
must survive, are built here byte by byte. The frames are written with the
standard library only (no packet library), so the bytes on disk are exactly
the bytes spelled out below and a test that decodes them with tshark or dpkt
checks our dissector against an independent reading of the same bytes.

Run: ``python tests/gen/toa_pcaps.py [OUTDIR]`` (default: tests/pcaps).
The output is deterministic (fixed timestamps, addresses and sequence numbers).
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_ETHERNET = 1
SYN, ACK, PSH = 0x02, 0x10, 0x08

# Addresses from the documentation ranges (RFC 5737 / RFC 3849).
EGRESS4, ORIGIN4 = "192.0.2.10", "198.51.100.20"
EGRESS6, ORIGIN6 = "2001:db8:e::10", "2001:db8:0::20"

MSS = bytes([2, 4, 0x05, 0xB4])
SACK_OK = bytes([4, 2])
NOP = bytes([1])
EOL = bytes([0])
WSCALE = bytes([3, 3, 7])


def ts(val: int = 0x01020304, ecr: int = 0) -> bytes:
    return struct.pack("!BBII", 8, 10, val, ecr)


def ip4(a: str) -> bytes:
    return ipaddress.IPv4Address(a).packed


def ip6(a: str) -> bytes:
    return ipaddress.IPv6Address(a).packed


def opt(kind: int, body: bytes, length: int | None = None) -> bytes:
    """One TCP option; ``length`` overrides the length byte to build malformed options."""
    return bytes([kind, len(body) + 2 if length is None else length]) + body


def port_ipv4(port: int, addr: str) -> bytes:
    return struct.pack("!H", port) + ip4(addr)


def port_ipv6(port: int, addr: str) -> bytes:
    return struct.pack("!H", port) + ip6(addr)


# --- TOA option builders, one per row of the variant table --------------------------------


def toa_v4(kind: int, port: int, addr: str) -> bytes:
    return opt(kind, port_ipv4(port, addr))


def toa_v6(kind: int, port: int, addr: str) -> bytes:
    return opt(kind, port_ipv6(port, addr))


def toa_bytedance(cport: int, caddr: str, dport: int, daddr: str) -> bytes:
    return opt(254, port_ipv4(cport, caddr) + b"\0\0" + port_ipv4(dport, daddr))


def toa_alibaba_vpc(cport: int, caddr: str, vpc: int, vip: str, vport: int) -> bytes:
    return opt(
        252,
        port_ipv4(cport, caddr)
        + struct.pack("!I", vpc)
        + ip4(vip)
        + struct.pack("!H", vport)
        + b"\0\0",
    )


def toa_vtoa_v6(cport: int, caddr: str, vpc: int, vip: str) -> bytes:
    return opt(249, port_ipv6(cport, caddr) + vpc.to_bytes(3, "big") + ip6(vip) + b"\0")


def toa_cdn(addr: str) -> bytes:
    a = ipaddress.ip_address(addr)
    return opt(28, bytes([1 if a.version == 4 else 0]) + a.packed)


# --- frame building -----------------------------------------------------------------------


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@dataclass
class Seg:
    """One TCP segment of a flow; ``opts`` are the raw option bytes (padded to 4 here)."""

    from_client: bool
    flags: int
    opts: bytes = b""
    payload: bytes = b""


def tcp_segment(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    opts: bytes,
    payload: bytes,
) -> bytes:
    opts = opts + b"\0" * (-len(opts) % 4)
    if len(opts) > 40:
        raise ValueError(f"{len(opts)} option bytes do not fit a TCP header")
    hdr = (
        struct.pack(
            "!HHIIBBHHH", sport, dport, seq, ack, (5 + len(opts) // 4) << 4, flags, 65535, 0, 0
        )
        + opts
    )
    seg = hdr + payload
    proto = 6
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), proto)
    c = csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ip_packet(src: str, dst: str, l4: bytes, ident: int) -> tuple[bytes, int]:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        h = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, 6, 0, s.packed, d.packed
        )
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        return h + l4, 0x0800
    h = struct.pack("!IHBB16s16s", 6 << 28, len(l4), 6, 64, s.packed, d.packed)
    return h + l4, 0x86DD


def flow_frames(
    client: str, server: str, cport: int, sport: int, segs: Iterable[Seg], ident: int
) -> list[bytes]:
    """Ethernet frames of one connection; sequence numbers follow the handshake rules."""
    cmac, smac = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    cisn, sisn = 0x10000000 + cport, 0x20000000 + cport
    cseq, sseq = cisn, sisn
    frames = []
    for seg in segs:
        src, dst = (client, server) if seg.from_client else (server, client)
        sp, dp = (cport, sport) if seg.from_client else (sport, cport)
        seq = cseq if seg.from_client else sseq
        ack = (sseq if seg.from_client else cseq) if seg.flags & ACK else 0
        raw_src, raw_dst = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
        l4 = tcp_segment(raw_src, raw_dst, sp, dp, seq, ack, seg.flags, seg.opts, seg.payload)
        pkt, etype = ip_packet(src, dst, l4, ident)
        ident += 1
        eth = (smac + cmac if seg.from_client else cmac + smac) + struct.pack("!H", etype)
        frames.append(eth + pkt)
        adv = len(seg.payload) + (1 if seg.flags & SYN else 0)
        if seg.from_client:
            cseq += adv
        else:
            sseq += adv
    return frames


def handshake(
    toa_syn: bytes | None, toa_ack: bytes | None, *, v6: bool = False, data_toa: bytes | None = None
) -> list[Seg]:
    """SYN, SYN-ACK, ACK (and one data segment when ``data_toa`` is given)."""
    syn_opts = MSS + SACK_OK + ts() + NOP + WSCALE
    if toa_syn is not None:
        # A proxy that needs the room drops the timestamp, as the Alibaba SYN in tests/pcaps does.
        syn_opts = (
            toa_syn + MSS + NOP + NOP + SACK_OK + NOP + WSCALE
            if len(toa_syn) + 20 > 40
            else MSS + SACK_OK + toa_syn + NOP + WSCALE
        )
    segs = [
        Seg(True, SYN, syn_opts),
        Seg(False, SYN | ACK, MSS + NOP + NOP + SACK_OK + NOP + WSCALE),
        Seg(True, ACK, toa_ack or b""),
    ]
    if data_toa is not None:
        segs.append(Seg(True, ACK | PSH, data_toa, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    return segs


def write_pcap(path: Path, frames: list[bytes], *, t0: int = 1700000000) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", t0 + i // 1000, (i % 1000) * 1000, len(f), len(f)) + f)
    path.write_bytes(b"".join(out))


# --- the captures ---------------------------------------------------------------------------


def variants() -> list[bytes]:
    """One connection per known variant; client addresses differ per flow so mix-ups show."""
    flows: list[tuple[bool, list[Seg]]] = [
        # Tencent kind 200: SYN-less (handshake ACK only) and SYN + ACK.
        (False, handshake(None, toa_v4(200, 40001, "203.0.113.1"))),
        (
            False,
            handshake(
                toa_v4(200, 40002, "203.0.113.2"),
                toa_v4(200, 40002, "203.0.113.2"),
                data_toa=toa_v4(200, 40002, "203.0.113.2"),
            ),
        ),
        # Alibaba/Huawei 254 IPv4, DPVS 254 IPv6 over IPv6, ByteDance 254/16.
        (False, handshake(toa_v4(254, 40003, "203.0.113.3"), toa_v4(254, 40003, "203.0.113.3"))),
        (True, handshake(None, toa_v6(254, 40004, "2001:db8:c::4"))),
        (False, handshake(None, toa_bytedance(40005, "203.0.113.5", 80, "198.51.100.20"))),
        # 253 IPv6, JD 201 IPv6, each over IPv6.
        (True, handshake(toa_v6(253, 40006, "2001:db8:c::6"), toa_v6(253, 40006, "2001:db8:c::6"))),
        (True, handshake(None, toa_v6(201, 40007, "2001:db8:c::7"))),
        # Alibaba vtoa: 254 then 250 (the VIP) in the handshake ACK.
        (
            False,
            handshake(None, toa_v4(254, 40008, "203.0.113.8") + toa_v4(250, 443, "192.0.2.80")),
        ),
        # Alibaba VPC 252 (20 bytes, fills the SYN so the timestamp goes).
        (
            False,
            handshake(
                toa_alibaba_vpc(40009, "203.0.113.9", 0x00C0FFEE, "192.0.2.90", 443),
                toa_alibaba_vpc(40009, "203.0.113.9", 0x00C0FFEE, "192.0.2.90", 443),
            ),
        ),
        # Alibaba vtoa IPv6 249 (40 bytes: the whole option space).
        (True, handshake(None, toa_vtoa_v6(40010, "2001:db8:c::a", 0x123456, "2001:db8:f::10"))),
        # Alibaba CDN kind 28: IPv4 (len 7) and IPv6 (len 19), no port.
        (False, handshake(None, toa_cdn("203.0.113.11") + NOP)),
        (True, handshake(None, toa_cdn("2001:db8:c::c") + NOP)),
        # IPv4 TOA carried by an IPv6 connection (NAT64 egress).
        (True, handshake(None, toa_v4(200, 40013, "203.0.113.13"))),
    ]
    frames: list[bytes] = []
    for i, (v6, segs) in enumerate(flows):
        client, server = (EGRESS6, ORIGIN6) if v6 else (EGRESS4, ORIGIN4)
        frames += flow_frames(client, server, 50000 + i, 80, segs, ident=0x100 * (i + 1))
    return frames


def bad_lengths() -> list[bytes]:
    """TOA kinds with lengths no variant has, and options a kernel-style walk never reaches."""
    good = toa_v4(200, 41000, "203.0.113.100")
    acks: list[bytes] = [
        opt(200, port_ipv4(41001, "203.0.113.101")[:5]),  # 200 len 7: one byte short
        opt(200, port_ipv4(41002, "203.0.113.102") + b"\0\0"),  # 200 len 10: two bytes long
        opt(254, port_ipv4(41003, "203.0.113.103") + b"\0\0\0\0"),  # 254 len 12: no variant
        opt(201, port_ipv4(41004, "203.0.113.104")),  # 201 len 8: 201 is IPv6 only
        opt(253, port_ipv4(41005, "203.0.113.105")),  # 253 len 8 (as in the public 253 capture)
        EOL + NOP + NOP + NOP + good,  # TOA after EOL: the walk stops first
        NOP + bytes([30, 1]) + good,  # len 1 before the TOA breaks the walk
        NOP + NOP + toa_v4(200, 41006, "203.0.113.106")[:6],  # TOA running past the header
        toa_v4(200, 41007, "203.0.113.107")
        + toa_v4(200, 41008, "203.0.113.108"),  # two, disagreeing
        bytes([28, 4, 0, 30]) + NOP + NOP + good,  # real User Timeout (28/4), then a TOA
        bytes([254, 4, 0xF9, 0x89]) + good,  # TFO cookie request (RFC 7413 exp form)
        bytes([200, 2]) + good,  # 200 with an empty body
        toa_v4(200, 0, "0.0.0.0"),  # unspecified client, port 0
        good + good,  # the same TOA twice
        toa_v4(250, 443, "192.0.2.80"),  # a VIP option with no client option before it
        toa_v6(254, 41009, "::ffff:203.0.113.109"),  # IPv4-mapped IPv6 client
        opt(28, b"\0" + ip4("203.0.113.111")),  # CDN IPv4 length with an IPv6 version byte
        opt(254, b"\xf9\x89" + ip4("203.0.113.110")),  # 254/8 that starts with the TFO exid
        opt(254, b"\xf9\x89" + bytes(range(8))),  # TFO cookie (experimental form)
    ]
    frames: list[bytes] = []
    for i, o in enumerate(acks):
        segs = [
            Seg(True, SYN, MSS + SACK_OK + ts() + NOP + WSCALE),
            Seg(False, SYN | ACK, MSS + NOP + NOP + SACK_OK + NOP + WSCALE),
            Seg(True, ACK, o),
        ]
        frames += flow_frames(EGRESS4, ORIGIN4, 51000 + i, 80, segs, ident=0x100 * (i + 1))
    return frames


CAPTURES = {
    "toa-variants.pcap": variants,
    "toa-bad-lengths.pcap": bad_lengths,
}


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "pcaps"
    out.mkdir(parents=True, exist_ok=True)
    for name, build in CAPTURES.items():
        write_pcap(out / name, build())
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
