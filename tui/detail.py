"""Everything the detail pane shows about one flow, gathered off the UI thread.

For the selected flow: the packets that carried its client address (TOA
segments, PROXY header segments, and for a header split over segments the
reassembled stream start) dissected into Wireshark-style trees; its packet
timeline; its findings with the catalogue's advice. A flow with no such
packet shows its first packet instead, because the reason a client is
missing (no room in the handshake ACK, no header at all) is visible there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcapip.decode import in_flows
from pcapip.decode.tunnels import tenant, tenants
from pcapip.tui.frames import Frame, FrameIndex, ip_halves

#: packets shown in a flow's timeline (a long download has millions)
TIMELINE_MAX = 2000
#: held while a worker reads the final flow table's packed rows (the detail, the export):
#: past a few MiB they live in one temporary file read with seek + read, which two
#: threads must not share at once
TABLE_READS = threading.Lock()

_FLAG_NAMES = ((2, "SYN"), (16, "ACK"), (1, "FIN"), (4, "RST"), (8, "PSH"), (32, "URG"))


@dataclass
class PacketView:
    """One packet (or the reassembled stream start) with its field tree."""

    title: str
    number: int | None  # frame number; None for a reassembled stream
    data: bytes
    layers: list[Any]  # pcapip.dissect.Field roots
    focus: Any = None  # the field to highlight first (TOA option, PROXY header)


@dataclass
class TimelineEntry:
    frame: int
    ts_ns: int
    direction: str  # "→" egress to origin, "←" back
    flags: str
    seq: int | None
    ack: int | None
    length: int
    note: str


@dataclass
class FindingView:
    severity: str
    code: str
    packet: int | None
    message: str


@dataclass
class FlowDetail:
    rec: dict[str, Any]
    packets: list[PacketView] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_total: int = 0
    findings: list[FindingView] = field(default_factory=list)
    note: str | None = None


def flags_text(flags: int, transport: str) -> str:
    if transport != "tcp":
        return "UDP"
    names = [n for bit, n in _FLAG_NAMES if flags & bit]
    return ",".join(names) or "-"


def focus_field(layers: list[Any]) -> Any:
    """The field that answers "who is the client" in this packet: PROXY header or TOA option."""
    for layer in layers:
        node = layer.find("proxy")
        if node is not None:
            return node
    for layer in layers:
        for node in layer.walk():
            if node.name == "toa" and node.length:
                return node
    for layer in layers:
        node = layer.find("tcp.options")
        if node is not None:
            return node
    return None


def dissect(
    frame: Frame, registry: Any, title: str, udp_ports: dict[int, int] | None = None
) -> PacketView:
    """``frame``'s layer tree; ``udp_ports`` the UDP ports whose tunnels are opened
    (``--vxlan-port``; None: the defaults)."""
    from pcapip.dissect import dissect_frame

    layers = dissect_frame(frame.data, frame.linktype, registry=registry, udp_ports=udp_ports)
    return PacketView(title, frame.number, frame.data, layers, focus_field(layers))


def _decode_frames(frames: list[Frame], kinds: Any, udp_ports: dict[int, int] | None) -> Any:
    """Decode a handful of frames (not consecutive) with the engine's decoder."""
    from pcapip.decode import decode
    from pcapip.sources import FrameBatch

    batch = FrameBatch.of_frames(
        [f.data for f in frames],
        ts_ns=[f.ts_ns for f in frames],
        linktype=[f.linktype for f in frames],
        origlen=[f.origlen for f in frames],
    )
    return decode(batch, toa_kinds=kinds, tunnel_ports=udp_ports)


def _reassemble(segments: list[tuple[int, bytes]]) -> bytes:
    """Stream start from (seq, payload) segments: first copy of each byte wins."""
    if not segments:
        return b""
    base = min(s for s, _ in segments)
    out = bytearray()
    have = bytearray()
    for seq, payload in sorted(segments, key=lambda s: s[0]):
        off = (seq - base) & 0xFFFFFFFF
        if off > 1 << 20:
            continue
        end = off + len(payload)
        if end > len(out):
            out.extend(b"\0" * (end - len(out)))
            have.extend(b"\0" * (end - len(have)))
        for k, b in enumerate(payload):
            if not have[off + k]:
                out[off + k] = b
                have[off + k] = 1
    # only the contiguous prefix is meaningful
    n = have.find(0)
    return bytes(out if n < 0 else out[:n])


def build_detail(
    rec: dict[str, Any],
    index: FrameIndex,
    *,
    registry: Any,
    header_frames: list[int],
    findings: list[FindingView],
    udp_ports: dict[int, int] | None = None,
) -> FlowDetail:
    """The detail of the flow ``rec`` (a model record) from the capture's frame index,
    decoded and dissected with the tunnels the loader opened (``udp_ports``)."""
    det = FlowDetail(rec, findings=findings)
    transport = rec["transport"]
    eg_ip, eg_port = rec["egress_ip"], rec["egress_port"]
    or_ip, or_port = rec["origin_ip"], rec["origin_port"]
    if eg_port is None or or_port is None:
        det.note = "this flow has no ports"
        return det
    cands = index.flow_frames(
        transport, eg_ip, int(eg_port), or_ip, int(or_port), int(rec["start"]), int(rec["end"])
    )
    want = [int(n) for n in cands[:TIMELINE_MAX]]
    frames = index.frames([*want, *header_frames])
    tl_frames = [frames[n] for n in want if n in frames]
    segs = _timeline(det, tl_frames, set(header_frames), registry, udp_ports) if tl_frames else []
    det.timeline_total = max(len(cands), len(det.timeline))
    for n in header_frames:
        if n in frames:
            what = "client address" if rec["method"] != "toa" else "TOA option"
            title = f"Frame {n} · carries the {what}"
            det.packets.append(dissect(frames[n], registry, title, udp_ports))
    if rec["method"] in ("ppv1", "ppv2") and len(segs) > 1:
        view = _reassembled(segs, header_frames)
        if view is not None:
            det.packets.append(view)
    if not det.packets and tl_frames:
        first = tl_frames[0]
        title = f"Frame {first.number} · first packet"
        det.packets.append(dissect(first, registry, title, udp_ports))
        det.note = "no packet of this flow carried a client address that could be read"
    return det


def _timeline(
    det: FlowDetail,
    tl_frames: list[Any],
    hset: set[int],
    registry: Any,
    udp_ports: dict[int, int] | None,
) -> list[tuple[int, bytes]]:
    """The flow's packets (``tl_frames``, found by a hash of its ports) into the detail's
    timeline, relative sequence numbers per direction, each packet that carried the client
    noted; returns the header-carrying segments from the egress (seq, payload)."""
    rec = det.rec
    transport = rec["transport"]
    eg = (*ip_halves(rec["egress_ip"]), int(rec["egress_port"]))
    orig = (*ip_halves(rec["origin_ip"]), int(rec["origin_port"]))
    proto = 6 if transport == "tcp" else 17
    its_tenant = tenant(rec.get("tunnel") or "")
    segs: list[tuple[int, bytes]] = []
    pk = _decode_frames(tl_frames, registry.kinds, udp_ports)
    theirs = tenants(pk.tun_kind.tolist(), pk.tun_id.tolist())
    counted = in_flows(pk)  # a header cut before its flags: shown, but the flow did not count it
    isn: dict[str, int] = {}
    for i, fr in enumerate(tl_frames):
        src = (int(pk.src_hi[i]), int(pk.src_lo[i]), int(pk.sport[i]))
        dst = (int(pk.dst_hi[i]), int(pk.dst_lo[i]), int(pk.dport[i]))
        if int(pk.proto[i]) != proto or {src, dst} != {eg, orig}:
            continue  # a hash collision, not this flow
        if theirs[i] != its_tenant:
            continue  # the same inner connection in another tenant's tunnel
        d = "→" if src == eg else "←"
        flags = int(pk.tcp_flags[i])
        seq, ack = _seq_ack(pk, i, d, isn, flags) if transport == "tcp" else (None, None)
        note = _note(rec["method"], fr.number in hset, bool(int(pk.opt_flags[i]) & 1))
        if not counted[i]:
            note = _not_counted(pk, i)
        size, shown_flags = int(pk.pay_len[i]), flags_text(flags, transport)
        det.timeline.append(
            TimelineEntry(fr.number, fr.ts_ns, d, shown_flags, seq, ack, size, note)
        )
        if fr.number in hset and transport == "tcp" and d == "→" and int(pk.pay_cap[i]):
            segs.append((int(pk.seq[i]), pk.payload(i)))
    return segs


def _seq_ack(pk: Any, i: int, d: str, isn: dict[str, int], flags: int) -> tuple[int, int | None]:
    """Packet ``i``'s sequence and acknowledgement numbers relative to each direction's
    first sequence number (``isn``, filled in as the directions are first seen)."""
    raw_seq, raw_ack = int(pk.seq[i]), int(pk.ack[i])
    isn.setdefault(d, raw_seq)
    seq = (raw_seq - isn[d]) & 0xFFFFFFFF
    other = "←" if d == "→" else "→"
    ack = (raw_ack - isn[other]) & 0xFFFFFFFF if other in isn and flags & 16 else None
    return seq, ack


def _not_counted(pk: Any, i: int) -> str:
    """The note of packet ``i`` the flow did not count: the reason analyze reports for it."""
    from pcapip.decode.status import reason_label, undecoded_reasons

    ((reason, value, _, _),) = undecoded_reasons(pk, np.array([i]))
    return f"not counted: {reason_label(reason, value)}"


def _note(method: str, carried: bool, toa_kind: bool) -> str:
    """A timeline packet's note: it carried the client address, or has a TOA-kind option."""
    if carried:
        return {"toa": "TOA", "ppv1": "PROXY v1", "ppv2": "PROXY v2"}.get(method, "header")
    return "TOA-kind option" if toa_kind else ""


def _reassembled(segs: list[tuple[int, bytes]], header_frames: list[int]) -> PacketView | None:
    """A PROXY header split over several segments, dissected from the reassembled stream."""
    from pcapip.dissect import parse_proxy

    stream = _reassemble(segs)
    if not stream:
        return None
    r = parse_proxy(stream)
    if r.tree is None:
        return None
    nums = ", ".join(str(n) for n in header_frames)
    return PacketView(
        f"Reassembled stream start · {len(stream)} bytes from frames {nums}",
        None,
        stream,
        [r.tree],
        r.tree,
    )


def header_frames_of(analysis: Any, flow: int) -> list[int]:
    """Packet numbers that carried final flow ``flow``'s client address, read from the
    table's packed rows for that flow only (``Analysis.header_frames`` builds, and keeps,
    the lists of every flow: ~10 MB on the 5M-packet bench file for one detail)."""
    table = analysis.table
    if not 0 < flow <= len(table):
        return []
    with TABLE_READS:
        return [n for _, n in table.rows.header_frames(flow - 1, flow)[0]]


def _table_findings(table: Any, flow: int) -> list[tuple[str, int | None, str]]:
    """(code, packet, message) of final flow ``flow``'s findings, in the table's order,
    read from its packed finding columns (``FlowTable.findings`` builds, and keeps, an
    object for every finding of the capture)."""
    from pcapip.flows.packed import ints_out

    with TABLE_READS:
        return _findings_read(table, flow, ints_out)


def _findings_read(table: Any, flow: int, ints_out: Any) -> list[tuple[str, int | None, str]]:
    """(the reading of :func:`_table_findings`, with the table's file held)"""
    c = table.rows.cols
    hit = np.flatnonzero(np.asarray(c["F_flow"]) == flow)
    if not hit.size:
        return []
    lo, hi = int(hit[0]), int(hit[-1]) + 1  # (a flow's findings are together)
    mine = np.flatnonzero(np.asarray(c.slice("F_flow", lo, hi)) == flow)
    codes = table.vocab.decode(np.asarray(c.slice("F_code", lo, hi))[mine])
    msgs = table.vocab.decode(np.asarray(c.slice("F_msg", lo, hi))[mine])
    frames = ints_out(np.asarray(c.slice("F_frame", lo, hi))[mine])
    return list(zip(codes, frames, msgs, strict=True))


def findings_for(analysis: Any, flow: int | None, codes: str | None) -> list[FindingView]:
    """A flow's findings: from the analysis when final, else the codes known so far."""
    from pcapip.flows.findings import CATALOGUE

    if analysis is not None and flow is not None:
        # the table's findings (the rows of Analysis.findings), without building that frame
        return [
            FindingView(CATALOGUE[code].level.label, code, frame, msg)
            for code, frame, msg in _table_findings(analysis.table, flow)
        ]
    out = []
    for c in (codes or "").split(";"):
        if c:
            k = CATALOGUE.get(c)
            out.append(FindingView(k.level.label if k else "info", c, None, k.title if k else c))
    return out
