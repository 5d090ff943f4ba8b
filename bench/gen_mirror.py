"""A VXLAN-mirrored copy of a capture: every frame inside VXLAN, as cloud traffic
mirroring delivers it (AWS VPC Traffic Mirroring, Azure vTAP).

Each frame of the input (classic pcap, Ethernet) becomes outer Ethernet / IPv4 /
UDP 4789 / VXLAN / the frame, with one VNI per mirror session (``--sessions``,
chosen by the frame's inner 4-tuple so a connection stays in one session). The
decode benchmark compares ``pcapip analyze`` on the copy with the plain file
(issue 13's target: within 1.5x).

    .venv/bin/python bench/gen_mirror.py bench/out/eth-tcp-1000000.pcap /tmp/vx-1m.pcap
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

_OUTER_MACS = bytes.fromhex("02000000aa0102000000aa02")
_VNI_BASE = 7000


def _outer(inner_len: int, vni: int, ident: int) -> bytes:
    """The 50 bytes before a mirrored frame of ``inner_len`` bytes (checksums left 0)."""
    udp_len = 8 + 8 + inner_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 99, 0, 1]), bytes([10, 99, 0, 2]))  # fmt: skip
    udp = struct.pack("!HHHH", 49152 + (vni & 0xFFF), 4789, udp_len, 0)
    vxlan = struct.pack("!II", 0x08000000, vni << 8)
    return _OUTER_MACS + b"\x08\x00" + ip + udp + vxlan


def _session(frame: bytes, sessions: int) -> int:
    """A VNI for the frame: by its IPv4 addresses and ports, the same both ways."""
    if len(frame) < 38 or frame[12:14] != b"\x08\x00":
        return _VNI_BASE
    ends = sorted((frame[26:30] + frame[34:36], frame[30:34] + frame[36:38]))
    return _VNI_BASE + zlib.crc32(ends[0] + ends[1]) % sessions


def mirror(src: Path, dst: Path, sessions: int = 4) -> int:
    """Write the mirrored copy of ``src`` to ``dst``; returns the frames written."""
    n = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        head = fi.read(24)
        magic, linktype = struct.unpack("<I", head[:4])[0], struct.unpack("<I", head[20:24])[0]
        if magic not in (0xA1B2C3D4, 0xA1B23C4D) or linktype != 1:
            raise SystemExit(f"{src}: a little-endian Ethernet pcap is needed")
        fo.write(head[:16] + struct.pack("<I", 262144) + head[20:])
        out: list[bytes] = []
        while True:
            rec = fi.read(16)
            if len(rec) < 16:
                break
            sec, frac, cap, wire = struct.unpack("<IIII", rec)
            frame = fi.read(cap)
            hdr = _outer(wire, _session(frame, sessions), n)
            out.append(struct.pack("<IIII", sec, frac, cap + 50, wire + 50) + hdr + frame)
            n += 1
            if len(out) >= 8192:
                fo.write(b"".join(out))
                out.clear()
        fo.write(b"".join(out))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--sessions", type=int, default=4, help="VXLAN VNIs (mirror sessions)")
    args = ap.parse_args()
    print(f"{mirror(args.src, args.dst, args.sessions)} frames -> {args.dst}")


if __name__ == "__main__":
    main()
