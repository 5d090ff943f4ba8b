"""Well-formed frames built from fuzz bytes (the bytes are the field values), so that the
``roundtrip`` target compares pcapip with dpkt and scapy on most inputs, not only when
random bytes happen to make a valid packet. Built by hand with ``struct``: independent of
pcapip and of both libraries. A few knobs deliberately leave the well-formed path (a real
fragment, a cut frame, a UDP tunnel port): those frames are decoded but not compared. Each
knob takes its rare branch on its largest value, so an input that runs out of bytes (zeros
from then on) still builds a well-formed frame."""

from __future__ import annotations

import struct

LINKS = (1, 1, 1, 101, 12, 14, 228, 229, 0, 108, 113, 276)
VLAN_TPIDS = (0x8100, 0x8100, 0x88A8, 0x9100)
TCP_OPTIONS = (
    b"\x02\x04\x05\xb4",  # MSS
    b"\x01",  # NOP
    b"\x03\x03\x07",  # window scale
    b"\x04\x02",  # SACK permitted
    b"\x08\x0a" + b"\x11" * 8,  # timestamps
    b"\xfe\x08\x1f\x90\xc0\x00\x02\x07",  # a TOA (kind 254: port, IPv4)
    b"\x00",  # EOL
)
V6_EXTS = (0, 60, 43, 44, 51)


def _bytes(fdp, n: int) -> bytes:
    """Exactly ``n`` bytes (zeros once the input runs out)."""
    b = fdp.ConsumeBytes(n)
    return b + bytes(n - len(b))


def _u(fdp, bits: int) -> int:
    return fdp.ConsumeIntInRange(0, (1 << bits) - 1)


def _tcp_options(fdp) -> bytes:
    if fdp.ConsumeBool():  # random bytes: the option walk sees anything
        return _bytes(fdp, 4 * fdp.ConsumeIntInRange(0, 10))
    out = b""
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        out += fdp.PickValueInList(list(TCP_OPTIONS))
    out = out[:40]
    return out + bytes(-len(out) % 4)


def transport(fdp, tcp: bool) -> bytes:
    """A TCP segment or UDP datagram (checksum: whatever the input says)."""
    sport, dport = _u(fdp, 16), _u(fdp, 16)
    payload = _bytes(fdp, fdp.ConsumeIntInRange(0, 96))
    if not tcp:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), _u(fdp, 16)) + payload
    opts = _tcp_options(fdp)
    flags = _u(fdp, 12)  # 3 reserved bits, NS, CWR ... FIN
    doff = 5 + len(opts) // 4
    head = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        _u(fdp, 32),
        _u(fdp, 32),
        (doff << 4) | (flags >> 8),
        flags & 0xFF,
        _u(fdp, 16),
        _u(fdp, 16),
        _u(fdp, 16),
    )
    return head + opts + payload


def ipv4(fdp, proto: int, body: bytes) -> bytes:
    opts = _bytes(fdp, 4 * fdp.ConsumeIntInRange(0, 10))
    ihl = 5 + len(opts) // 4
    frag = 0x4000 if fdp.ConsumeBool() else 0  # DF
    if fdp.ConsumeIntInRange(0, 9) == 9:  # a real fragment: not compared
        frag |= fdp.PickValueInList([0x2000, 0x0001, 0x1FFF, 0x2010])
    total = ihl * 4 + len(body)
    if fdp.ConsumeIntInRange(0, 15) == 15:  # segmentation offload: length left 0
        total = 0
    head = struct.pack(
        "!BBHHHBBH",
        0x40 | ihl,
        _u(fdp, 8),
        total,
        _u(fdp, 16),
        frag,
        _u(fdp, 8),
        proto,
        _u(fdp, 16),
    )
    return head + _bytes(fdp, 8) + opts + body


def _v6_ext(fdp, kind: int, nxt: int) -> bytes:
    if kind == 44:  # fragment header; offset and M 0 (an atomic fragment) unless a knob says
        off = 0 if fdp.ConsumeIntInRange(0, 7) < 7 else fdp.PickValueInList([1, 8, 0x10, 0x11])
        return struct.pack("!BBHI", nxt, 0, off | (_u(fdp, 2) << 1), _u(fdp, 32))
    if kind == 51:  # AH: length in 4-byte units minus 2
        n = fdp.ConsumeIntInRange(1, 6)
        return bytes((nxt, n)) + _bytes(fdp, (n + 2) * 4 - 2)
    n = fdp.ConsumeIntInRange(0, 3)  # hop-by-hop, routing, destination: 8-byte units minus 1
    body = _bytes(fdp, (n + 1) * 8 - 2)
    if kind != 43 and fdp.ConsumeBool():  # options of PadN only
        body = bytes((1, len(body) - 2)) + bytes(len(body) - 2)
    return bytes((nxt, n)) + body


def ipv6(fdp, proto: int, body: bytes) -> bytes:
    kinds = [fdp.PickValueInList(list(V6_EXTS)) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    chain = body
    nxt = proto
    for kind in reversed(kinds):
        chain = _v6_ext(fdp, kind, nxt) + chain
        nxt = kind
    plen = len(chain) if fdp.ConsumeIntInRange(0, 15) < 15 else 0  # 0: jumbogram / offload
    head = struct.pack("!IHBB", (6 << 28) | _u(fdp, 28), plen, nxt, _u(fdp, 8))
    return head + _bytes(fdp, 32) + chain


def link(fdp, lt: int, ver: int, packet: bytes) -> bytes:
    et = 0x0800 if ver == 4 else 0x86DD
    if lt == 1:
        head = _bytes(fdp, 12)
        for _ in range(fdp.ConsumeIntInRange(0, 2)):
            head += struct.pack("!HH", fdp.PickValueInList(list(VLAN_TPIDS)), _u(fdp, 16))
        return head + struct.pack("!H", et) + packet
    if lt == 113:
        return _bytes(fdp, 14) + struct.pack("!H", et) + packet
    if lt == 276:
        return struct.pack("!HH", et, 0) + _bytes(fdp, 16) + packet
    if lt in (0, 108):
        fam = 2 if ver == 4 else fdp.PickValueInList([24, 28, 30])
        big = lt == 108 or fdp.ConsumeBool()
        return struct.pack(">I" if big else "<I", fam) + packet
    return packet  # raw IP


def build(fdp) -> tuple[int, bytes]:
    """(link type, frame): a well-formed TCP or UDP packet over IPv4 or IPv6 in one of the
    link layers pcapip decodes, fields from the fuzz input."""
    lt = fdp.PickValueInList(list(LINKS))
    ver = 4 if lt == 228 else 6 if lt == 229 else fdp.PickValueInList([4, 6])
    tcp = fdp.ConsumeIntInRange(0, 3) != 3
    body = transport(fdp, tcp)
    proto = 6 if tcp else 17
    packet = ipv4(fdp, proto, body) if ver == 4 else ipv6(fdp, proto, body)
    frame = link(fdp, lt, ver, packet) + _bytes(fdp, fdp.ConsumeIntInRange(0, 2) * 4)
    if fdp.ConsumeIntInRange(0, 15) == 15:  # cut by a snap length: not compared
        frame = frame[: fdp.ConsumeIntInRange(0, len(frame))]
    return lt, frame
