"""Rich rendering of an Analysis for the terminal: summary, findings with advice, tables."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pandas as pd
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from pcapip.flows.findings import CATALOGUE, ORDER, Level
from pcapip.flows.oddities import spoofing_line, undecoded_line
from pcapip.report.analysis import Analysis

_LEVEL_STYLE = {Level.INFO: "cyan", Level.WARNING: "yellow", Level.ERROR: "bold red"}
_STATUS_STYLE = {
    "ok": "green",
    "malformed": "red",
    "incomplete": "yellow",
    "absent": "dim",
    "mid-stream": "dim",
}


def summary(a: Analysis) -> Group:
    """Counts by method, the capture's oddities and facts (warnings, undecoded packets,
    unchecked spoofing, TOA kinds), the toa_stats-style counters when TOA is in play, and the
    findings grouped with their advice."""
    s = a.stats
    parts: list[Any] = []
    head = Text()
    head.append(f"{s.get('flows', 0)} flows", style="bold")
    head.append(
        f" ({s.get('flows_tcp', 0)} TCP, {s.get('flows_udp', 0)} UDP) from "
        f"{s.get('packets', 0)} packets in {len(a.captures)} capture(s)"
    )
    parts.append(head)
    parts.extend(_capture_notes(a))

    methods = Table(
        title="Client address carried by",
        title_justify="left",
        box=None,
        show_header=True,
        pad_edge=False,
    )
    methods.add_column("method")
    methods.add_column("flows", justify="right")
    labels = {
        "toa": "TOA option",
        "ppv1": "PROXY v1",
        "ppv2": "PROXY v2",
        "none": "nothing (connection start seen)",
        "unknown": "unknown (start not captured)",
    }
    for m, label in labels.items():
        n = s.get(f"method_{m}", 0)
        if n:
            methods.add_row(f"{m}  {label}", str(n))
    parts.append(methods)

    if _toa_in_play(a):
        parts.append(_toa_stats(s))
    parts.append(findings_table(a))
    return Group(*parts)


def _capture_notes(a: Analysis) -> list[Text]:
    """One line per fact about the capture as a whole: warnings first (yellow), then notes."""
    t = a.table
    out = [Text(f"warning: {w}", style="yellow") for w in a.warnings]
    line = undecoded_line(a.stats, t.undecoded)
    if line:
        out.append(Text(line, style="yellow" if a.stats.get("packets_blind") else "dim"))
    if not t.trusted_checked:
        note = spoofing_line(t.announcers)
        if note:
            out.append(Text(note, style="cyan"))
    if t.toa_kinds:
        out.append(Text("TOA kinds seen: " + "; ".join(str(k) for k in t.toa_kinds)))
    return out


def _toa_in_play(a: Analysis) -> bool:
    """TOA counters mean something only where TOA was seen or asked for (--toa-kind)."""
    s = a.stats
    if a.table.toa_asked or a.table.toa_kinds or s.get("toa_in_syn") or s.get("flows_with_toa"):
        return True
    return any(f.code.startswith("toa.") for f in a.table.findings)


def _toa_stats(s: dict[str, int]) -> Table:
    toa = Table(
        title="Handshakes (like /proc/net/toa_stats)",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    toa.add_column("counter")
    toa.add_column("value", justify="right")
    toa.add_row("syn_recv_sock_toa (handshake ACK carried TOA)", str(s.get("syn_recv_sock_toa", 0)))
    toa.add_row("syn_recv_sock_no_toa", str(s.get("syn_recv_sock_no_toa", 0)))
    toa.add_row("TOA in the SYN", str(s.get("toa_in_syn", 0)))
    return toa


def findings_table(a: Analysis) -> Any:
    fs = a.table.findings
    if not fs:
        return Text("No findings.", style="green")
    by_code: dict[str, list[Any]] = defaultdict(list)
    for f in fs:
        by_code[f.code].append(f)
    t = Table(title="Findings", title_justify="left", show_lines=True, expand=False)
    t.add_column("severity")
    t.add_column("code")
    t.add_column("flows", justify="right")
    t.add_column("what it means / what to try", ratio=1)
    codes = sorted(by_code, key=lambda c: (-CATALOGUE[c].level, ORDER[c]))
    for code in codes:
        kind = CATALOGUE[code]
        items = by_code[code]
        flows = sorted({f.flow for f in items})
        shown = ", ".join(str(x) for x in flows[:8]) + (" …" if len(flows) > 8 else "")
        msgs = Counter(f.message for f in items).most_common(2)
        body = Text()
        body.append(kind.title, style="bold")
        body.append(f"\n{kind.meaning}\n")
        for m, n in msgs:
            body.append(f"e.g. {m}" + (f" (×{n})" if n > 1 else "") + "\n", style="italic")
        body.append("Fix: ", style="bold")
        body.append(kind.fix)
        t.add_row(
            Text(kind.level.label, style=_LEVEL_STYLE[kind.level]),
            code,
            f"{len(flows)}\n[{shown}]",
            body,
        )
    return t


def _cell(v: Any, time_format: str) -> Text | str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime(time_format)
    return str(v)


def frame_table(
    df: pd.DataFrame, *, title: str, max_rows: int = 500, time_format: str = "%Y-%m-%d %H:%M:%S.%f"
) -> Table:
    t = Table(title=title, title_justify="left")
    cols = list(df.columns)
    if "tlvs" in cols and not df["tlvs"].fillna("").astype(str).str.len().any():
        cols.remove("tlvs")
    for c in cols:
        # Addresses, times and numbers are read whole or not at all: only the free-text
        # columns wrap, and they give up width first when the terminal is narrow.
        wrap = c in ("findings", "tlvs", "methods", "egress_ips")
        t.add_column(
            c,
            overflow="fold" if wrap else "ellipsis",
            no_wrap=not wrap,
            min_width=12 if wrap else None,
            ratio=1 if wrap else None,
            justify="right" if c in ("flow", "packets", "bytes", "flows") else "left",
        )
    shown = df if max_rows <= 0 else df.head(max_rows)
    for row in shown[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, row, strict=True):
            cell = _cell(v, time_format)
            if c == "status" and cell:
                cell = Text(cell, style=_STATUS_STYLE.get(cell, ""))
            cells.append(cell)
        t.add_row(*cells)
    if max_rows > 0 and len(df) > max_rows:
        t.caption = f"{len(df) - max_rows} more rows not shown (use --max-rows 0, or --format csv)"
    return t


def print_report(a: Analysis, console: Console, *, by: str = "flow", max_rows: int = 500) -> None:
    console.print(summary(a))
    titles = {"flow": "Flows", "egress": "Egress addresses", "client": "Clients"}
    df = a.frame(by)
    title = titles[by]
    time_format = "%Y-%m-%d %H:%M:%S"
    if by == "flow":
        if len(df) and df["start"].dt.date.nunique() == 1:
            # one day: the date goes in the title, the column keeps the time
            title = f"{title} ({df['start'].iloc[0].strftime('%Y-%m-%d')} UTC)"
            time_format = "%H:%M:%S.%f"
        else:
            time_format = "%Y-%m-%d %H:%M:%S.%f"
        df = _flows_for_display(df)
        if console.width < 150:  # a narrow terminal: keep what answers "who is the client"
            df = df[["flow", "egress", "origin", "method", "client", "status", "findings"]]
        elif console.width < 190:
            df = df.drop(columns=["proto", "proxy dst", "cmd", "packets"])
    console.print(frame_table(df, title=title, max_rows=max_rows, time_format=time_format))


def _joined(ip: pd.Series, port: pd.Series) -> list[str]:
    out = []
    for i, p in zip(ip.astype(object), port.astype(object), strict=True):
        if i is None or (not isinstance(i, str) and pd.isna(i)):
            out.append("")
            continue
        host = f"[{i}]" if ":" in i else i
        out.append(host if p is None or pd.isna(p) else f"{host}:{p}")
    return out


def _flows_for_display(f: pd.DataFrame) -> pd.DataFrame:
    """The flow table with address:port pairs joined, so it fits a terminal."""
    return pd.DataFrame(
        {
            "flow": f["flow"],
            "proto": f["transport"],
            "start": f["start"],
            "egress": _joined(f["egress_ip"], f["egress_port"]),
            "origin": _joined(f["origin_ip"], f["origin_port"]),
            "method": f["method"],
            "client": _joined(f["client_ip"], f["client_port"]),
            "proxy dst": _joined(f["proxy_ip"], f["proxy_port"]),
            "cmd": f["pp_command"],
            "tlvs": f["tlvs"],
            "packets": f["packets"],
            "status": f["status"],
            "findings": f["findings"].astype(str).str.replace(";", " ", regex=False),
        }
    )
