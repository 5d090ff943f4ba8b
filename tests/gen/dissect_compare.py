"""Shared helpers for the dissector's differential tests (tshark, dpkt).

Reads captures with dpkt (not pcapip's own reader, so a reader bug cannot
hide a dissector bug) and flattens pcapip's layer trees into comparable
(name, offset, length, value) rows.
"""

from __future__ import annotations

import functools
import gzip
import io
import ipaddress
import json
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import dpkt

from pcapip.dissect import Field

HERE = Path(__file__).resolve().parents[1]
PCAPS = HERE / "pcaps"
PUBLIC = PCAPS / "public"  # captures vendored from other projects (tests/pcaps/README.md)


def all_captures() -> list[Path]:
    """Every capture in tests/pcaps and tests/pcaps/public (deduplicated by file name)."""
    seen: dict[str, Path] = {}
    for d in (PCAPS, PUBLIC):
        for p in sorted(d.glob("*.pcap*")):
            if p.suffix in (".pcap", ".pcapng") or p.name.endswith((".pcap.gz",)):
                seen.setdefault(p.name, p)
    return [seen[k] for k in sorted(seen)]


def read_frames(path: Path) -> tuple[int, list[bytes]]:
    """(linktype, frames) via dpkt; frames read before any damage are kept."""
    linktype, frames = -1, []
    for lt, frame in read_frames_lt(path):
        linktype = lt if linktype == -1 else linktype
        frames.append(frame)
    return linktype, frames


def read_frames_lt(path: Path) -> list[tuple[int, bytes]]:
    """(linktype, frame) per frame: pcap via dpkt, pcapng by walking its blocks here
    (dpkt's pcapng reader knows only the first interface's link type)."""
    out: list[tuple[int, bytes]] = []
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        if raw[:4] == b"\x0a\x0d\x0d\x0a":
            return _pcapng(raw)
        with io.BytesIO(raw) as fh:
            reader: Any = dpkt.pcap.Reader(fh)
            lt = reader.datalink()
            for _ts, buf in reader:
                out.append((lt, bytes(buf)))
    except Exception:
        pass
    return out


def _pcapng(raw: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    order = "<"
    ifaces: list[int] = []
    off = 0
    try:
        while off + 12 <= len(raw):
            if raw[off : off + 4] == b"\x0a\x0d\x0d\x0a":
                order = "<" if raw[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                ifaces = []
            btype, blen = struct.unpack_from(order + "II", raw, off)
            if blen < 12 or off + blen > len(raw):
                break
            body = raw[off + 8 : off + blen - 4]
            if btype == 1:
                ifaces.append(struct.unpack_from(order + "H", body, 0)[0])
            elif btype == 6:
                iface, _hi, _lo, cap, _orig = struct.unpack_from(order + "IIIII", body, 0)
                out.append((ifaces[iface], body[20 : 20 + cap]))
            elif btype == 2:  # obsolete Packet Block
                iface, _drops, _hi, _lo, cap, _orig = struct.unpack_from(order + "HHIIII", body, 0)
                out.append((ifaces[iface], body[20 : 20 + cap]))
            elif btype == 3:
                orig = struct.unpack_from(order + "I", body, 0)[0]
                out.append((ifaces[0], body[4 : 4 + min(orig, len(body) - 4)]))
            off += blen
    except (struct.error, IndexError):
        pass
    return out


def flatten(layers: list[Field]) -> dict[str, list[tuple[int, int, Any]]]:
    out: dict[str, list[tuple[int, int, Any]]] = defaultdict(list)
    for layer in layers:
        for f in layer.walk():
            out[f.name].append((f.offset, f.length, f.value))
    return out


def option_walk(options: Field) -> list[tuple[int, int, int | None]]:
    """(offset, kind, length) of the options a receiver's walk visits, as Wireshark lists them.

    Wireshark stops at a broken option and after an EOL followed by non-zero
    bytes; all-zero padding after EOL it lists as one EOL per byte.
    """
    rows: list[tuple[int, int, int | None]] = []
    kids = options.children
    for idx, node in enumerate(kids):
        if node.name == "tcp.options.padding":
            rows += [(node.offset + k, 0, None) for k in range(node.length)]
            break
        if any(e.code == "toa.walk_broken" for e in node.experts):
            break
        if any(e.code == "frame.truncated" for e in node.experts):  # cut by the snap length
            length = node.children[1].value if len(node.children) > 1 else None
            rows.append((node.offset, node.children[0].value, length))
            break
        kind = node.children[0].value
        length = node.children[1].value if len(node.children) > 1 and kind > 1 else None
        rows.append((node.offset, kind, length))
        if kind == 0:
            nxt = kids[idx + 1] if idx + 1 < len(kids) else None
            if nxt is None or nxt.name != "tcp.options.padding":
                break
    return rows


def run_tshark(args: list[str]) -> str:
    res = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120)
    return res.stdout


@functools.cache
def pdml_packets(path: Path, extra: tuple[str, ...] = ()) -> list[dict[str, list[dict[str, str]]]]:
    """tshark's PDML, one dict per packet: field name -> list of field attributes (a name
    that repeats, e.g. the outer and inner ``ip.src`` of a tunnel, lists each in frame
    order). ``extra``: more tshark options (``-d udp.port==8472,vxlan``)."""
    xml = run_tshark(["-r", str(path), "-o", "tcp.try_heuristic_first:TRUE", *extra, "-T",
                      "pdml"])
    packets = []
    if not xml.strip():
        return packets
    root = ET.fromstring(xml)
    for pkt in root.iter("packet"):
        fields: dict[str, list[dict[str, str]]] = defaultdict(list)
        for f in pkt.iter():
            if f.tag not in ("field", "proto") or f.get("hide") == "yes":
                continue
            fields[f.get("name", "")].append(dict(f.attrib))
        packets.append(fields)
    return packets


@functools.cache
def tshark_raw_frames(path: Path) -> list[bytes]:
    """The bytes tshark takes as each frame (to align with our reading of damaged files)."""
    out = run_tshark(["-r", str(path), "-T", "json", "-x", "-j", "frame"])
    if not out.strip():
        return []

    def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in pairs:
            d.setdefault(k, v)
        return d

    frames = []
    for pkt in json.loads(out, object_pairs_hook=first_wins):
        raw = pkt["_source"]["layers"].get("frame_raw")
        frames.append(bytes.fromhex(raw[0]) if raw else b"")
    return frames


def aligned(path: Path) -> list[tuple[int, int, bytes]]:
    """(tshark packet index, linktype, frame) for frames that both readers agree on."""
    ours = read_frames_lt(path)
    theirs = tshark_raw_frames(path)
    pairs = []
    j = 0
    for i, raw in enumerate(theirs):
        for k in range(j, min(j + 4, len(ours))):
            if ours[k][1] == raw:
                pairs.append((i, ours[k][0], raw))
                j = k + 1
                break
    return pairs


def same_value(mine: Any, show: str) -> bool:
    if mine is None:
        return True
    if isinstance(mine, bool):
        return int(mine) == int(show, 0)
    if isinstance(mine, int):
        return mine == int(show, 0)
    if isinstance(mine, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return mine == ipaddress.ip_address(show)
    if isinstance(mine, str):
        return mine == show
    return True
