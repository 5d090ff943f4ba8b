"""The frames a seed document prints, byte for byte, as captures of our own (tests/pcaps/seeds/).

A seed is a vendor document that shows frames as hex dumps next to
Wireshark's view of them. The bytes are facts: they are transcribed here
exactly as printed (misprints included) and written into captures, so the
tests read captures, not the document. What the document's Wireshark view
says about those bytes is transcribed too, line for line (``*_VIEW``): the
tests hold pcapip to it, and hold tshark to it, which made the original view,
so a slip in the transcription fails a test instead of passing silently.

The repaired frames built from these facts (a checksum-proven misprint fixed,
the v1 connection around the printed stream) are tests/gen/proxy_pcaps.py's
``seed002-*.pcap``.

Run: ``.venv/bin/python tests/gen/seed_pcaps.py [OUTDIR]`` (default:
tests/pcaps/seeds). The output is deterministic.
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

# --- seed 002: Tencent Cloud EdgeOne, "L4 Proxy" product documentation --------------------
# Sections "Method 2: Parsing Real Client IPs on Application Server" (the PROXY v2 UDP
# frame, 2023-09-11) and "Format of Real Client IPs Obtained Through Proxy Protocol V1/V2"
# and "Method 1: Obtaining Real Client IPs Through Nginx" (the PROXY v1 example).

# Frame 1 of the UDP example, as printed (Linux cooked v1). Byte 0x23 is printed 0x0a.
SEED002_V2_PRINTED = """
0000  00 00 00 01 00 06 fe ee 35 c9 48 c9 00 00 08 00  .....5.H.....
0010  45 b8 00 39 d7 79 40 00 30 11 2b 9b 2b af 11 27  E..9.y@.0.+...
0020  0a 04 00 0a 2e 3a 97 e8 00 25 df 96 0d 0a 0d 0a  ....:..%.....
0030  00 0d 0a 51 55 49 54 0a 21 12 00 0c 77 1d 87 cd  ...QUIT!...w...
0040  2b 9f 73 3f be 6c 97 e8 30  ....+s?.l..0
"""

# The packet list row of that frame: No., Time, Source, Destination, Protocol, Length.
SEED002_V2_LIST_ROW = ("1", "0.000000", "43.175.17.39", "10.4.0.14", "PROXYv2", "73")

SEED002_V2_VIEW = (
    "Frame 1: 73 bytes on wire (584 bits), 73 bytes captured (584 bits)",
    "Linux cooked capture v1",
    "Internet Protocol Version 4, Src: 43.175.17.39, Dst: 10.4.0.14",
    "User Datagram Protocol, Src Port: 11834, Dst Port: 38888",
    "PROXY Protocol",
    "Magic: 0d0a0d0a000d0a515549540a",
    "0010 = Version: 2",
    "... 0001 = Command: 1",
    "[Version: 2]",
    "Address Family Protocol: UDP over IPv4 (0x12)",
    "Length: 12",
    "Source Address: 119.29.135.205",
    "Destination Address: 43.159.115.63",
    "Source Port: 48748",
    "Destination Port: 38888",
)

# The PROXY v1 example: the 60 bytes Wireshark reassembled from two segments, as printed.
SEED002_V1_PRINTED = """
0000	50 52 4f 58 59 20 54 43	50 34 20 31 31 39 2e 32	PF
0010	39 2e 31 33 35 2e 32 30	35 20 34 33 2e 31 35 39	9
0020	2e 31 31 35 2e 36 33 20	35 33 38 35 39 20 31 30	.1
0030	30 30 30 0d 0a 61 62 63	31 32 34 33	00
"""

SEED002_V1_VIEW = (
    "Frame 18: 60 bytes on wire (480 bits), 60 bytes captured (480 bits)",
    "Linux cooked capture v1",
    "Internet Protocol Version 4, Src: 43.132.85.50, Dst: 10.4.0.14",
    "Transmission Control Protocol, Src Port: 7502, Dst Port: 10000, Seq: 57, Ack: 4, Len: 4",
    "[2 Reassembled TCP Segments (60 bytes): #7(56), #18(4)]",
    "PROXY Protocol",
    "PROXY v1 magic",
    "Protocol: TCP4",
    "Source Address: 119.29.135.205",
    "Destination Address: 43.159.115.63",
    "Source Port: 53859",
    "Destination Port: 10000",
    "Data (7 bytes)",
)


def parse_hexdump(text: str) -> bytes:
    """The bytes of a dump printed as 'OOOO  xx xx ...  ascii' lines (tabs or spaces).

    The offsets are checked, so a dropped or doubled line cannot go unnoticed.
    """
    out = bytearray()
    for line in text.strip().splitlines():
        m = re.match(r"^([0-9a-f]{4})(?:\t| {2})(.*)$", line)
        if not m:
            raise ValueError(f"not a hex dump line: {line!r}")
        if int(m.group(1), 16) != len(out):
            raise ValueError(f"offset {m.group(1)} after {len(out)} bytes")
        # columns: hex groups ..., ascii (always last; it may itself look like hex)
        cols = re.split(r"\t| {2,}", m.group(2).strip())
        out += bytes.fromhex(" ".join(cols[:-1]))
    return bytes(out)


@dataclass(frozen=True)
class Capture:
    name: str
    linktype: int
    printed: str
    readme: str

    def frames(self) -> list[bytes]:
        return [parse_hexdump(self.printed)]


LINKTYPE_LINUX_SLL = 113
LINKTYPE_USER0 = 147  # private use: the printed stream is TCP payload, not a frame

CAPTURES: tuple[Capture, ...] = (
    Capture("seed002-v2-frame-as-printed.pcap", LINKTYPE_LINUX_SLL, SEED002_V2_PRINTED,
            "seed 002's 73-byte PROXY v2 UDP frame (Linux cooked v1) exactly as the document "
            "prints it, misprinted destination byte 0x23 (0x0a, 10.4.0.10) included: both "
            "checksums fail on it"),
    Capture("seed002-v1-stream-as-printed.pcap", LINKTYPE_USER0, SEED002_V1_PRINTED,
            "the 60 bytes seed 002 prints for its PROXY v1 example (Wireshark's reassembly of "
            "two segments: the header line and `abc1243`), one record on link type 147 (USER0) "
            "because the document shows the stream, not the frames that carried it"),
)

OUT = Path(__file__).resolve().parents[1] / "pcaps" / "seeds"
T0 = 1682666399  # 2023-04-28 07:19:59 UTC, the time of the document's nginx log line


def write_pcap(path: Path, linktype: int, frames: list[bytes]) -> None:
    """A little-endian µs pcap, one record per frame, one second apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", T0 + i, 0, len(f), len(f)) + f)
    path.write_bytes(b"".join(out))


def build_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for cap in CAPTURES:
        p = out / cap.name
        write_pcap(p, cap.linktype, cap.frames())
        paths.append(p)
    return paths


def readme_lines() -> list[str]:
    return [f"- `{c.name}` — {c.readme}." for c in CAPTURES]


def main(argv: list[str]) -> int:
    for p in build_all(Path(argv[1]) if len(argv) > 1 else OUT):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
