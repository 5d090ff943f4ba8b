"""Captures for the "say every oddity" tests: tunnels pcapip opens and does not open,
non-TCP/UDP noise, and records whose captured length exceeds the wire length.

Frames are packed byte by byte with ``struct`` (deterministic); the tests write them to a
temporary directory, so nothing here is checked in as a binary.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flow_pcaps import _ip4, tcp_segment, udp_datagram  # noqa: E402

ETH_HDR = bytes.fromhex("020000000002020000000001")  # dst, src MACs
T0 = 1_700_000_000.0


def handshake(src: str, dst: str, sport: int, dport: int) -> list[bytes]:
    """SYN, SYN-ACK, ACK, a data segment and its ACK (Ethernet frames)."""
    return [
        tcp_segment(src, dst, sport, dport, 1000, 0, 0x02),
        tcp_segment(dst, src, dport, sport, 5000, 1001, 0x12),
        tcp_segment(src, dst, sport, dport, 1001, 5001, 0x10),
        tcp_segment(src, dst, sport, dport, 1001, 5001, 0x18, b"GET / HTTP/1.0\r\n\r\n"),
        tcp_segment(dst, src, dport, sport, 5001, 1019, 0x10),
    ]


def gre(frame: bytes, outer_src: str = "10.9.0.1", outer_dst: str = "10.9.0.2") -> bytes:
    """An Ethernet frame's IPv4 packet inside GRE (IP protocol 47) inside IPv4."""
    inner = frame[14:]
    return ETH_HDR + b"\x08\x00" + _ip4(outer_src, outer_dst, 47, b"\x00\x00\x08\x00" + inner)


def pptp_gre(frame: bytes, outer_src: str = "10.9.0.1", outer_dst: str = "10.9.0.2") -> bytes:
    """An Ethernet frame's IPv4 packet in PPP inside enhanced GRE (version 1, PPTP): a GRE
    pcapip does not open."""
    ppp = b"\xff\x03\x00\x21" + frame[14:]
    hdr = struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), 7, 1)
    return ETH_HDR + b"\x08\x00" + _ip4(outer_src, outer_dst, 47, hdr + ppp)


def vxlan(
    frame: bytes, outer_src: str = "10.9.0.1", outer_dst: str = "10.9.0.2", port: int = 4789
) -> bytes:
    """An Ethernet frame inside VXLAN (UDP port ``port``, VNI 42)."""
    head = b"\x08\x00\x00\x00\x00\x00\x2a\x00"
    return udp_datagram(outer_src, outer_dst, 49152, port, head + frame)


def arp(n: int) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02" * 6,
                       bytes([10, 0, 0, 1]), b"\0" * 6, bytes([10, 0, 0, n]))  # fmt: skip
    return b"\xff" * 6 + ETH_HDR[6:] + b"\x08\x06" + body


def icmpv6_echo(n: int) -> bytes:
    src = ipaddress.IPv6Address("2001:db8::1").packed
    dst = ipaddress.IPv6Address("2001:db8::2").packed
    body = struct.pack("!BBHHH", 128, 0, 0, 7, n)
    return ETH_HDR + b"\x86\xdd" + struct.pack("!IHBB", 6 << 28, len(body), 58, 64) + src + dst + body


def write(path: Path, frames: list[bytes], *, extra_caplen: int = 0) -> Path:
    """A classic pcap (µs, Ethernet); ``extra_caplen`` makes every record header claim that
    many captured bytes more than were on the wire (the bytes are really there)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for i, data in enumerate(frames):
        sec, usec = int(T0) + i // 1000, (i % 1000) * 1000
        data = data + b"\0" * extra_caplen
        out.append(struct.pack("<IIII", sec, usec, len(data), len(data) - extra_caplen) + data)
    path.write_bytes(b"".join(out))
    return path


def gre_only(path: Path) -> Path:
    return write(path, [gre(f) for f in handshake("192.0.2.10", "198.51.100.20", 40001, 80)])


def pptp_only(path: Path) -> Path:
    return write(path, [pptp_gre(f) for f in handshake("192.0.2.10", "198.51.100.20", 40001, 80)])


def vxlan_only(path: Path, port: int = 4789) -> Path:
    frames = handshake("192.0.2.10", "198.51.100.20", 40001, 80)
    return write(path, [vxlan(f, port=port) for f in frames])


def tcp_and_gre(path: Path, wrap=gre) -> Path:
    """Two plain connections, one connection in GRE (``wrap``): 10 TCP packets, 5 GRE packets."""
    frames = handshake("192.0.2.10", "198.51.100.20", 40001, 80)
    frames += [wrap(f) for f in handshake("192.0.2.11", "198.51.100.20", 40002, 80)]
    frames += handshake("192.0.2.12", "198.51.100.20", 40003, 80)
    return write(path, frames)


def tcp_and_noise(path: Path) -> Path:
    """One connection (5 packets) among 8 ARP requests and 4 ICMPv6 echo requests."""
    frames = [arp(n) for n in range(2, 6)]
    frames += handshake("192.0.2.10", "198.51.100.20", 40001, 80)
    frames += [icmpv6_echo(n) for n in range(4)] + [arp(n) for n in range(6, 10)]
    return write(path, frames)


def noise_only(path: Path) -> Path:
    return write(path, [arp(n) for n in range(2, 10)])
