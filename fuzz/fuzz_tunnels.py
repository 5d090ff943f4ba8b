"""Tunnel decapsulation: an Ethernet/IPv4 carrier around fuzzed encapsulation bytes (VXLAN,
GENEVE, GRE, MPLS, PPPoE, IP-in-IP) decodes the same in both loops, never opens more than
MAX_TUNNEL_DEPTH layers, and reads nothing past the frame."""

from __future__ import annotations

import struct
import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import Broken, batch_of, decode_both

    from pcapip.decode import (
        decode,
        kernel_tunnels,  # noqa: F401
    )
    from pcapip.decode.tunnels import MAX_TUNNEL_DEPTH

ETH_IP4 = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
ETH_MPLS = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x88\x47"
ETH_PPPOE = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x88\x64"


def ip4(proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                      bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return hdr + payload


def udp(dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def carrier(kind: int, body: bytes) -> bytes:
    if kind == 0:
        return ETH_IP4 + ip4(17, udp(4789, body))
    if kind == 1:
        return ETH_IP4 + ip4(17, udp(6081, body))
    if kind == 2:
        return ETH_IP4 + ip4(47, body)
    if kind == 3:
        return ETH_MPLS + body
    if kind == 4:
        return ETH_PPPOE + body
    return ETH_IP4 + ip4(4 if kind == 5 else 41, body)


def test_one(data: bytes) -> None:
    if not data:
        return
    frame = carrier(data[0] % 7, data[1:])
    decode_both(struct.pack("<H", 1) + frame)  # both loops agree, offsets inside
    b = batch_of(struct.pack("<H", 1) + frame)
    pk = decode(b, backend="pure")
    if bin(int(pk.tun_seen[0])).count("1") > MAX_TUNNEL_DEPTH + 1:
        raise Broken("more encapsulation kinds opened than the depth allows")


def seeds():
    inner = ETH_IP4 + ip4(6, struct.pack("!HHIIBBHHH", 40001, 80, 1, 0, 0x50, 2, 65535, 0, 0))
    yield b"\x00" + b"\x08\x00\x00\x00\x00\x13\x89\x00" + inner
    yield b"\x01" + b"\x00\x00\x65\x58\x00\x13\x89\x00" + inner
    yield b"\x02" + b"\x20\x00\x08\x00\x00\x00\x00\x07" + ip4(6, bytes(20))
    yield b"\x03" + b"\x00\x06\x41\x40" + ip4(6, bytes(20))
    yield b"\x04" + b"\x11\x00\x00\x01\x00\x16\x00\x21" + ip4(6, bytes(20))
    yield b"\x05" + ip4(6, bytes(20))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
