"""The flow table: every flow's row, numbered, with the findings that compare flows.

A missing client address only means something next to flows that have one
(same origin port), and a TOA with no room left only matters on a port that
uses TOA; so these findings wait until every flow of every capture is known.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.flows.columnar import RowBlock
from pcapip.flows.findings import CATALOGUE, ORDER, Finding
from pcapip.flows.rows import FlowRow

if TYPE_CHECKING:
    from pcapip.flows.tracker import FlowTracker

COLUMNS: tuple[str, ...] = (
    "flow",
    "transport",
    "start",
    "end",
    "egress_ip",
    "egress_port",
    "origin_ip",
    "origin_port",
    "method",
    "client_ip",
    "client_port",
    "proxy_ip",
    "proxy_port",
    "pp_command",
    "pp_family",
    "tlvs",
    "packets",
    "bytes",
    "status",
    "findings",
)

METHODS = ("toa", "ppv1", "ppv2", "none", "unknown")
STATUSES = ("ok", "malformed", "incomplete", "absent", "mid-stream")


@dataclass
class FlowTable:
    """Plain columns (lists), one entry per flow, in order of each flow's first packet.

    Times are integer nanoseconds since the epoch (UTC); missing values are None.
    """

    columns: dict[str, list[Any]]
    findings: list[Finding]
    stats: dict[str, int]
    header_frames: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    captures: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.columns["flow"])


def _in(nets: Sequence[Any], ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in nets)


def _same_ip(a: str | None, b: str | None) -> bool:
    """Whether two address texts name the same address (IPv6 text has many spellings)."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _permute(values: list[Any], order: list[int]) -> list[Any]:
    if len(order) == 1:
        return [values[order[0]]]
    return list(itemgetter(*order)(values)) if order else []


_LEVEL = {code: k.level.label for code, k in CATALOGUE.items()}
# output column -> FlowRow field, where the names differ
_ROW_NAME = {"start": "start_ns", "end": "end_ns"}


def _code_columns(nflows: int, flows: np.ndarray, codes: list[str]) -> list[str]:
    """The findings column: each flow's distinct codes, in catalogue order, ``;``-joined."""
    out = [""] * nflows
    if not codes:
        return out
    by_code = sorted(set(codes), key=ORDER.__getitem__)
    rank = {c: k for k, c in enumerate(by_code)}
    if len(by_code) <= 62:
        bits = np.asarray([1 << rank[c] for c in codes], dtype=np.int64)
        mask = np.zeros(nflows, dtype=np.int64)
        np.bitwise_or.at(mask, flows - 1, bits)
        text: dict[int, str] = {}
        for fid in np.flatnonzero(mask).tolist():
            m = int(mask[fid])
            t = text.get(m)
            if t is None:
                t = text[m] = ";".join(c for k, c in enumerate(by_code) if m >> k & 1)
            out[fid] = t
        return out
    sets: dict[int, set[str]] = {}
    for fid, code in zip(flows.tolist(), codes, strict=True):
        sets.setdefault(fid - 1, set()).add(code)
    for fid, cs in sets.items():
        out[fid] = ";".join(sorted(cs, key=ORDER.__getitem__))
    return out


def build_table(
    rows: RowBlock | Iterable[FlowRow],
    *,
    trusted: Sequence[Any] | None = None,
    stats: dict[str, int] | None = None,
    captures: Sequence[str] = (),
) -> FlowTable:
    """Number the flows in order of their first packet, add the findings that compare
    flows, and count. ``rows`` is not modified."""
    b = rows if isinstance(rows, RowBlock) else RowBlock.from_rows(list(rows))
    src = b.cols
    n = len(b)
    if n:
        order = np.lexsort(
            (
                np.asarray(src["first_frame"], dtype=np.int64),
                np.asarray(src["capture"], dtype=np.int64),
            )
        )
    else:
        order = np.zeros(0, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(1, n + 1)
    fid = pos.tolist()  # row -> flow id

    # findings that compare flows, computed on the rows as they came (flow ids from ``fid``);
    # appended after the rows' own findings, code by code, so each flow's order is kept
    t_flow: list[int] = []
    t_code: list[str] = []
    t_msg: list[str] = []
    t_frame: list[int | None] = []
    t_cap: list[int] = []
    o_ip, o_port = src["origin_ip"], src["origin_port"]
    first_frame, capture = src["first_frame"], src["capture"]
    keys = list(zip(src["transport"], o_ip, o_port, strict=True))
    # origin ports where some flow carried a client address / a TOA
    with_client = {
        k
        for k, ip, st in zip(keys, src["client_ip"], src["status"], strict=True)
        if ip is not None and st == "ok"
    }
    if with_client:
        for r, m, j, k in zip(range(n), src["method"], src["judged"], keys, strict=True):
            if j and m == "none" and k in with_client:
                t_flow.append(fid[r])
                t_code.append("client.missing")
                t_msg.append(
                    f"no TOA or PROXY header, while other flows to {o_ip[r]}:{o_port[r]} carry one"
                )
                t_frame.append(first_frame[r])
                t_cap.append(capture[r])
    # a PROXY header whose source is the connection's own source: the proxy's health check
    e_ip_col, e_port_col = src["egress_ip"], src["egress_port"]
    for r, (m, c_ip, c_port) in enumerate(
        zip(src["method"], src["client_ip"], src["client_port"], strict=True)
    ):
        if (
            m in ("ppv1", "ppv2")
            and c_port is not None
            and c_port == e_port_col[r]
            and _same_ip(c_ip, e_ip_col[r])
        ):
            cap, frame = src["header_frame"][r] or (capture[r], first_frame[r])
            t_flow.append(fid[r])
            t_code.append("proxy.self_addressed")
            t_msg.append(
                f"the header's source {c_ip}:{c_port} is this connection's own source: "
                "a check by the proxy, not a client"
            )
            t_frame.append(frame)
            t_cap.append(cap)
    toa_carried = src["toa_carried"]
    with_toa = {k for k, t in zip(keys, toa_carried, strict=True) if t}
    for r, nr in enumerate(src["no_room"]):
        if nr is not None and (toa_carried[r] or keys[r] in with_toa):
            t_flow.append(fid[r])
            t_code.append("toa.no_room")
            t_msg.append(
                "the handshake ACK has no TOA and its options leave fewer than 8 free bytes"
            )
            t_frame.append(nr[1])
            t_cap.append(nr[0])
    if trusted is not None:
        e_ip, client_ip, header_frame = src["egress_ip"], src["client_ip"], src["header_frame"]
        trusted_cache: dict[str, bool] = {}
        for r, carries in enumerate(src["carries_client"]):
            if not carries:
                continue
            ip = e_ip[r]
            ok = trusted_cache.get(ip)
            if ok is None:
                ok = trusted_cache[ip] = _in(trusted, ip)
            if not ok:
                cap, frame = header_frame[r] or (capture[r], first_frame[r])
                who = (
                    f" claims client {client_ip[r]}" if client_ip[r] else " carries a client header"
                )
                t_flow.append(fid[r])
                t_code.append("client.untrusted")
                t_msg.append(f"{ip} is not in --trusted; its connection{who}")
                t_frame.append(frame)
                t_cap.append(cap)

    # every finding, per flow in order of its packet (ties: the order they were noted)
    f_flow = pos[np.asarray(b.f_row, dtype=np.int64)] if b.f_row else np.zeros(0, np.int64)
    all_flow = np.concatenate([f_flow, np.asarray(t_flow, dtype=np.int64)])
    codes = b.f_code + t_code
    msgs = b.f_msg + t_msg
    frames = b.f_frame + t_frame
    caps = b.f_capture + t_cap
    fkey = np.asarray([0 if f is None else f for f in frames], dtype=np.int64)
    forder = np.lexsort((np.arange(all_flow.size), fkey, all_flow)).tolist()
    flow_l = all_flow.tolist()
    findings = [Finding(flow_l[k], codes[k], msgs[k], frames[k], caps[k]) for k in forder]

    ol = order.tolist()
    cols: dict[str, list[Any]] = {"flow": list(range(1, n + 1))}
    for name in COLUMNS[1:-1]:
        cols[name] = _permute(src[_ROW_NAME.get(name, name)], ol)
    cols["findings"] = _code_columns(n, all_flow, codes)
    header_frames = dict(sorted((fid[r], fr) for r, fr in enumerate(src["header_frames"]) if fr))

    counts: Counter[str] = Counter()
    for name, values in (
        ("flows", src["transport"]),
        ("method", src["method"]),
        ("status", src["status"]),
    ):
        for k, v in Counter(values).items():
            counts[f"{name}_{k}"] += v
    for t, done, toa in zip(src["transport"], src["hs_done"], src["hs_toa"], strict=True):
        if done and t == "tcp":
            counts["syn_recv_sock_toa" if toa else "syn_recv_sock_no_toa"] += 1
    counts["toa_in_syn"] = sum(src["toa_in_syn"])
    counts["flows_with_toa"] = sum(toa_carried)
    for code, k in Counter(codes).items():
        counts[f"findings_{_LEVEL[code]}"] += k
    out: dict[str, int] = dict(stats or {})
    out["flows"] = n
    for name in (
        "flows_tcp",
        "flows_udp",
        "syn_recv_sock_toa",
        "syn_recv_sock_no_toa",
        "toa_in_syn",
        "flows_with_toa",
        "findings_info",
        "findings_warning",
        "findings_error",
    ):
        out[name] = counts.get(name, 0)
    for m in METHODS:
        out[f"method_{m}"] = counts.get(f"method_{m}", 0)
    for st in STATUSES:
        out[f"status_{st}"] = counts.get(f"status_{st}", 0)
    return FlowTable(cols, findings, out, header_frames, list(captures))


def finish_table(
    tracker: FlowTracker,
    captures: Sequence[str],
    trusted: str | Sequence[Any] | None = None,
    *,
    earlier: Iterable[FlowRow] = (),
) -> FlowTable:
    """End every flow still open and build the flow table, as ``pcapip analyze`` does.

    ``earlier`` holds rows already taken from the tracker (``take_ended``),
    e.g. spooled by a long live capture; ``trusted`` is the ``--trusted``
    spec or its parsed networks.
    """
    from pcapip.flows.tracker import parse_trusted

    if isinstance(trusted, str) or (
        trusted is not None and any(isinstance(t, str) for t in trusted)
    ):
        trusted = parse_trusted(trusted)
    tracker.end_all()
    parts: list[RowBlock | Sequence[FlowRow]] = list(tracker.take_blocks())
    rest = list(earlier)
    if rest:
        parts.append(rest)
    block = (
        parts[0] if len(parts) == 1 and isinstance(parts[0], RowBlock) else RowBlock.concat(parts)
    )
    table = build_table(block, trusted=trusted, stats=tracker.stats, captures=list(captures))
    table.stats["captures"] = len(captures)
    return table
