"""The flow table: every flow's row, numbered, with the findings that compare flows.

A missing client address only means something next to flows that have one
(same origin port), and a TOA with no room left only matters on a port that
uses TOA; so these findings wait until every flow of every capture is known.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pcapip.flows.findings import CATALOGUE, Finding, join_codes
from pcapip.flows.rows import FlowRow

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


def build_table(
    rows: list[FlowRow],
    *,
    trusted: Sequence[Any] | None = None,
    stats: dict[str, int] | None = None,
    captures: Sequence[str] = (),
) -> FlowTable:
    rows.sort(key=lambda r: (r.capture, r.first_frame))
    # origin ports where some flow carried a client address / a TOA
    with_client: set[tuple[str, str, int]] = set()
    with_toa: set[tuple[str, str, int]] = set()
    for r in rows:
        k = (r.transport, r.origin_ip, r.origin_port)
        if r.client_ip is not None and r.status == "ok":
            with_client.add(k)
        if r.toa_carried:
            with_toa.add(k)
    trusted_cache: dict[str, bool] = {}
    for fid, r in enumerate(rows, 1):
        k = (r.transport, r.origin_ip, r.origin_port)
        if r.method == "none" and r.judged and k in with_client:
            r.findings.append(
                Finding(
                    fid,
                    "client.missing",
                    f"no TOA or PROXY header, while other flows to {r.origin_ip}:{r.origin_port} carry one",
                    r.first_frame,
                    r.capture,
                )
            )
        if r.no_room is not None and (r.toa_carried or k in with_toa):
            cap, frame = r.no_room
            r.findings.append(
                Finding(
                    fid,
                    "toa.no_room",
                    "the handshake ACK has no TOA and its options leave fewer than 8 free bytes",
                    frame,
                    cap,
                )
            )
        if trusted is not None and r.carries_client:
            ok = trusted_cache.get(r.egress_ip)
            if ok is None:
                ok = trusted_cache[r.egress_ip] = _in(trusted, r.egress_ip)
            if not ok:
                cap, frame = r.header_frame or (r.capture, r.first_frame)
                who = f" claims client {r.client_ip}" if r.client_ip else " carries a client header"
                r.findings.append(
                    Finding(
                        fid,
                        "client.untrusted",
                        f"{r.egress_ip} is not in --trusted; its connection{who}",
                        frame,
                        cap,
                    )
                )
        for f in r.findings:
            f.flow = fid

    cols: dict[str, list[Any]] = {
        "flow": list(range(1, len(rows) + 1)),
        "transport": [r.transport for r in rows],
        "start": [r.start_ns for r in rows],
        "end": [r.end_ns for r in rows],
        "egress_ip": [r.egress_ip for r in rows],
        "egress_port": [r.egress_port for r in rows],
        "origin_ip": [r.origin_ip for r in rows],
        "origin_port": [r.origin_port for r in rows],
        "method": [r.method for r in rows],
        "client_ip": [r.client_ip for r in rows],
        "client_port": [r.client_port for r in rows],
        "proxy_ip": [r.proxy_ip for r in rows],
        "proxy_port": [r.proxy_port for r in rows],
        "pp_command": [r.pp_command for r in rows],
        "pp_family": [r.pp_family for r in rows],
        "tlvs": [r.tlvs for r in rows],
        "packets": [r.packets for r in rows],
        "bytes": [r.bytes for r in rows],
        "status": [r.status for r in rows],
        "findings": [join_codes([f.code for f in r.findings]) if r.findings else "" for r in rows],
    }
    findings: list[Finding] = []
    header_frames: dict[int, list[tuple[int, int]]] = {}
    counts: dict[str, int] = defaultdict(int)
    for fid, r in enumerate(rows, 1):
        if r.findings:
            r.findings.sort(key=lambda f: f.frame or 0)
            findings.extend(r.findings)
        if r.header_frames:
            header_frames[fid] = r.header_frames
        if r.transport == "tcp" and r.hs_done:
            counts["syn_recv_sock_toa" if r.hs_toa else "syn_recv_sock_no_toa"] += 1
    for name, values in (
        ("flows", cols["transport"]),
        ("method", cols["method"]),
        ("status", cols["status"]),
    ):
        for k, v in Counter(values).items():
            counts[f"{name}_{k}"] += v
    counts["toa_in_syn"] = sum(1 for r in rows if r.toa_in_syn)
    counts["flows_with_toa"] = sum(1 for r in rows if r.toa_carried)
    for f in findings:
        counts[f"findings_{CATALOGUE[f.code].level.label}"] += 1
    out: dict[str, int] = dict(stats or {})
    out["flows"] = len(rows)
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
    for s in STATUSES:
        out[f"status_{s}"] = counts.get(f"status_{s}", 0)
    return FlowTable(cols, findings, out, header_frames, list(captures))
