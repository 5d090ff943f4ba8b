"""Independent references for the engine tests: tshark, dpkt and scapy readings of a capture.

Nothing here uses pcapip's own parsing: frames are read by dpkt (classic
pcap) or scapy (pcapng, which dpkt reads only one interface of), fields by
tshark or dpkt's dissectors, so a disagreement points at a real bug on one
side.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dpkt
import numpy as np

from pcapip.sources import open_capture

PCAPS = Path(__file__).resolve().parent / "pcaps"
PUBLIC = PCAPS / "public"  # captures vendored from other projects (tests/pcaps/README.md)
DAMAGED_PREFIXES = ("bad-", "empty", "not-a-capture")


def capture_files() -> list[Path]:
    """Every capture in tests/pcaps and tests/pcaps/public that is meant to be read completely."""
    out = []
    for p in [*sorted(PCAPS.iterdir()), *sorted(PUBLIC.iterdir())]:
        if p.suffix not in (".pcap", ".pcapng", ".gz") or p.name.startswith(DAMAGED_PREFIXES):
            continue
        out.append(p)
    return out


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def is_pcapng(path: Path) -> bool:
    return raw_bytes(path)[:4] == b"\x0a\x0d\x0d\x0a"


# --------------------------------------------------------------------------------------------
# pcapip side, flattened


@dataclass
class Read:
    frames: list[bytes]
    caplen: np.ndarray
    origlen: np.ndarray
    ts_ns: np.ndarray
    linktype: np.ndarray
    iface: np.ndarray
    file_offset: np.ndarray
    first_frames: list[int]


def read_capture(path: Path | str, **kw) -> Read:
    batches = []
    with open_capture(path, **kw) as src:
        batches.extend(src)
    frames = [b.frame_bytes(i) for b in batches for i in range(len(b))]

    def cat(name: str, dtype) -> np.ndarray:
        parts = [getattr(b, name) for b in batches]
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    return Read(
        frames=frames,
        caplen=cat("caplen", np.int64),
        origlen=cat("origlen", np.int64),
        ts_ns=cat("ts_ns", np.int64),
        linktype=cat("linktype", np.int32),
        iface=cat("iface", np.int32),
        file_offset=cat("file_offset", np.int64),
        first_frames=[b.first_frame for b in batches],
    )


# --------------------------------------------------------------------------------------------
# frames according to dpkt (pcap) and scapy (pcapng)


@dataclass
class RefFrame:
    data: bytes
    linktype: int | None  # None: the reference cannot tell (see reference_frames)
    origlen: int | None = None


def pcapng_sections(path: Path) -> int:
    """Number of section header blocks, found by walking block lengths."""
    data = raw_bytes(path)
    pos = count = 0
    order = "<"
    while pos + 12 <= len(data):
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            count += 1
            order = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        pos += int.from_bytes(data[pos + 4 : pos + 8], "little" if order == "<" else "big")
    return count


def reference_frames(path: Path) -> list[RefFrame]:
    if is_pcapng(path):
        from scapy.utils import RawPcapNgReader

        # scapy numbers interfaces across sections instead of per section, so its
        # link types are only trusted for single-section files
        single = pcapng_sections(path) == 1
        out = []
        with RawPcapNgReader(str(path)) as rd:
            for data, meta in rd:
                out.append(RefFrame(data, meta.linktype if single else None, meta.wirelen))
        return out
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as f:
        rd = dpkt.pcap.Reader(f)
        lt = rd.datalink()
        return [RefFrame(bytes(buf), lt) for _, buf in rd]


# --------------------------------------------------------------------------------------------
# tshark

TSHARK_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.cap_len",
    "frame.len",
    "frame.interface_id",
    "frame.encap_type",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.ttl",
    "ipv6.hlim",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.hdr_len",
    "tcp.window_size_value",
    "tcp.options",
    "tcp.len",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
)


@cache
def tshark_rows(path: str) -> list[dict[str, str]]:
    """One dict per record tshark shows (custom pcapng blocks included; see packet_rows)."""
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    # no heuristics or reassembly: each frame on its own, as pcapip decodes it
    cmd += ["-o", "tcp.desegment_tcp_streams:FALSE", "-o", "ip.defragment:FALSE"]
    cmd += ["-o", "ipv6.defragment:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        vals = line.split("\t")
        vals += [""] * (len(TSHARK_FIELDS) - len(vals))
        rows.append(dict(zip(TSHARK_FIELDS, vals, strict=True)))
    return rows


def packet_rows(path: Path) -> list[dict[str, str]]:
    """tshark's rows, one per frame as tshark numbers them: a pcapng custom block is a frame
    without an interface (pcapip numbers it as one too, a frame of link type LT_RECORD)."""
    return tshark_rows(str(path))


def epoch_to_ns(text: str) -> int:
    if not text:
        return 0
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


# --------------------------------------------------------------------------------------------
# decode reference with dpkt


@dataclass
class RefPacket:
    kind: str  # "tcp", "udp", "not_ip", "fragment", "other_l4", "unknown_link", "error"
    ipver: int = 0
    src: str = ""
    dst: str = ""
    ttl: int = 0
    proto: int = 0
    sport: int = 0
    dport: int = 0
    flags: int = 0
    seq: int = 0
    ack: int = 0
    win: int = 0
    hlen: int = 0
    options: bytes = b""
    payload: bytes = b""
    ulen: int = 0
    error: str = ""


def _addr(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    return str(ipaddress.IPv6Address(raw))


def _l3_from_link(frame: bytes, linktype: int):
    """dpkt's view of the network layer: an IP/IP6 object, or a string saying why not."""
    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(frame)
        data = eth.data
    elif linktype == 113:
        s = dpkt.sll.SLL(frame)
        data = s.data
        if isinstance(data, bytes) and s.ethtype in (0x8100, 0x88A8):
            tag = dpkt.ethernet.VLANtag8021Q(data)
            data = {0x0800: dpkt.ip.IP, 0x86DD: dpkt.ip6.IP6}.get(tag.type, bytes)(data[4:])
    elif linktype == 276:
        data = dpkt.sll2.SLL2(frame).data
    elif linktype in (0, 108):
        data = dpkt.loopback.Loopback(frame).data
    elif linktype in (101, 12, 14, 228, 229):
        version = frame[0] >> 4
        data = dpkt.ip.IP(frame) if version == 4 else dpkt.ip6.IP6(frame)
    else:
        return "unknown_link"
    if isinstance(data, dpkt.ip.IP | dpkt.ip6.IP6):
        return data
    return "not_ip"


def ref_decode(frame: bytes, linktype: int) -> RefPacket:
    try:
        ip = _l3_from_link(frame, linktype)
    except (dpkt.UnpackError, dpkt.NeedData) as exc:
        return RefPacket("error", error=repr(exc))
    if isinstance(ip, str):
        return RefPacket(ip)
    ref = RefPacket("other_l4", src=_addr(ip.src), dst=_addr(ip.dst))
    if isinstance(ip, dpkt.ip.IP):
        ref.ipver, ref.ttl, ref.proto = 4, ip.ttl, ip.p
        if ip.mf or ip.offset:
            ref.kind = "fragment"
            return ref
    else:
        ref.ipver, ref.ttl, ref.proto = 6, ip.hlim, ip.p
        for ext in ip.all_extension_headers:
            if isinstance(ext, dpkt.ip6.IP6FragmentHeader) and (ext.frag_off or ext.m_flag):
                ref.kind = "fragment"
                return ref
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        ref.kind = "tcp"
        ref.sport, ref.dport, ref.flags = l4.sport, l4.dport, l4.flags
        ref.seq, ref.ack, ref.win, ref.hlen = l4.seq, l4.ack, l4.win, l4.off * 4
        ref.options, ref.payload = bytes(l4.opts), bytes(l4.data)
    elif isinstance(l4, dpkt.udp.UDP):
        ref.kind = "udp"
        ref.sport, ref.dport, ref.ulen = l4.sport, l4.dport, l4.ulen
        ref.payload = bytes(l4.data)[: max(0, l4.ulen - 8)] if l4.ulen else bytes(l4.data)
    return ref
