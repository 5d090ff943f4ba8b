"""Rich rendering of an Analysis for the terminal: summary, findings with advice, tables."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from pcapip.flows.findings import CATALOGUE, ORDER, Level
from pcapip.report.filters import worst_rank
from pcapip.report.notes import flood_line, spoofing_line, tunnels_line, undecoded_line

if TYPE_CHECKING:
    from pcapip.report.analysis import Analysis

_LEVEL_STYLE = {Level.INFO: "cyan", Level.WARNING: "yellow", Level.ERROR: "bold red"}
_STATUS_STYLE = {
    "ok": "green",
    "malformed": "red",
    "incomplete": "yellow",
    "absent": "dim",
    "mid-stream": "dim",
    "unanswered": "yellow",
    "refused": "yellow",
    "half-open": "yellow",
}
#: each method (``pcapip.flows.columns.METHODS``, in its order) as the summary says it
_METHOD_LABEL = {
    "toa": "TOA option",
    "ppv1": "PROXY v1",
    "ppv2": "PROXY v2",
    "none": "nothing (connection start seen)",
    "unknown": "unknown (start not captured)",
}


def summary(a: Analysis, *, explain: bool = False) -> Group:
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
    for m, label in _METHOD_LABEL.items():
        n = s.get(f"method_{m}", 0)
        if n:
            methods.add_row(f"{m}  {label}", str(n))
    parts.append(methods)

    if _toa_in_play(a):
        parts.append(_toa_stats(s))
    parts.append(findings_table(a, explain=explain))
    return Group(*parts)


def _capture_notes(a: Analysis) -> list[Text]:
    """One line per fact about the capture as a whole: warnings first (yellow), then notes."""
    t = a.table
    out = [Text(f"warning: {w}", style="yellow") for w in a.warnings]
    line = undecoded_line(a.stats, t.undecoded)
    if line:
        out.append(Text(line, style="yellow" if a.stats.get("packets_blind") else "dim"))
    tunnels = tunnels_line(a.stats)
    if tunnels:
        out.append(Text(tunnels))
    flood = flood_line(t.flood)
    if flood:
        out.append(Text(flood, style="yellow"))
    if not t.trusted_checked:
        note = spoofing_line(t.announcers)
        if note:
            out.append(Text(note, style="cyan"))
    if t.toa_kinds:
        out.append(Text("TOA kinds seen: " + "; ".join(str(k) for k in t.toa_kinds)))
    if t.rules is not None:
        out.append(Text(rules_line(a), style="cyan"))
    return out


def rules_line(a: Analysis) -> str:
    """``--rules``: how many flows the rules cover and how many the wire contradicts."""
    t = a.table
    f = a.findings
    flows = {c: f.loc[f["code"] == c, "flow"].nunique() for c in ("rule.mismatch", "rule.unmatched")}
    covered = int((a.flows["rule"].astype(object).fillna("") != "").sum())
    return (
        f"Forwarding rules {t.rules.path or ''} ({len(t.rules)} rules): {covered} flows covered, "
        f"{flows['rule.mismatch']} not as the rule says (rule.mismatch), "
        f"{flows['rule.unmatched']} covered by no rule (rule.unmatched) — --by rule lists them"
    )



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


def findings_table(a: Analysis, *, explain: bool = False) -> Any:
    """One line per finding code (severity, code, flows, title); ``explain``: the full
    meaning, examples and fix of each, wrapped to the terminal."""
    fs = a.findings
    if fs.empty:
        return Text("No findings.", style="green")
    flows_by_code: dict[str, list[int]] = defaultdict(list)
    msgs_by_code: dict[str, Counter[str]] = defaultdict(Counter)
    for flow, code, msg in zip(fs["flow"], fs["code"].astype(str), fs["message"], strict=True):
        flows_by_code[code].append(int(flow))
        msgs_by_code[code][str(msg)] += 1
    codes = sorted(flows_by_code, key=lambda c: (-CATALOGUE[c].level, ORDER[c]))
    if explain:
        parts = [_explained(c, flows_by_code[c], msgs_by_code[c]) for c in codes]
        return Group(Text("Findings"), *parts)
    width = max(map(len, codes))
    lines = [Text("Findings (--explain: what each means and how to fix it)")]
    for code in codes:
        kind = CATALOGUE[code]
        n = len(set(flows_by_code[code]))
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{kind.level.label:<8}", style=_LEVEL_STYLE[kind.level])
        line.append(f"{code:<{width}} {n:>5} flow{'s' if n != 1 else ' '}  {kind.title}")
        lines.append(line)
    return Group(*lines)


def _explained(code: str, flows: list[int], msgs: Counter[str]) -> Group:
    """One finding in full: title, meaning, examples, fix, and every flow it was seen on."""
    kind = CATALOGUE[code]
    ids = sorted(set(flows))
    head = Text()
    head.append(f"{kind.level.label} ", style=_LEVEL_STYLE[kind.level])
    head.append(code, style="bold")
    head.append(f" ({len(ids)} flow{'s' if len(ids) != 1 else ''}: ")
    head.append(", ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "") + ")")
    body = Text()
    body.append(kind.title, style="bold")
    body.append(f"\n{kind.meaning}\n")
    for m, n in msgs.most_common(2):
        body.append(f"e.g. {m}" + (f" (×{n})" if n > 1 else "") + "\n", style="italic")
    body.append("Fix: ", style="bold")
    body.append(kind.fix)
    return Group(head, Padding(body, (0, 0, 1, 2)))


def _cell(v: Any, time_format: str) -> Text | str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime(time_format)
    return str(v)


#: Right-aligned columns (numbers) and columns allowed to wrap (free text) in every table.
_NUMERIC = ("flow", "packets", "bytes", "flows", "problems", "clients", "egress_count")
_WRAP = ("findings", "tlvs", "methods", "egress_ips")

#: Columns given up first when the terminal is too narrow, per report; flow numbers,
#: group keys and findings are never dropped.
_DROP_FIRST: dict[str, tuple[str, ...]] = {
    "flow": (
        "proto", "proxy dst", "cmd", "packets", "tlvs", "start", "status", "tunnel", "rule", "method",
        "origin", "client",
    ),
    "egress": ("first_seen", "last_seen", "clients", "methods"),
    "client": ("first_seen", "last_seen", "egress_count", "egress_ips"),
    "origin": ("first_seen", "last_seen", "clients", "egress_count", "methods"),
    "rule": ("first_seen", "last_seen", "unknown", "rule_method", "toa"),
}


def frame_table(
    df: pd.DataFrame,
    *,
    title: str,
    max_rows: int = 500,
    time_format: str = "%Y-%m-%d %H:%M:%S.%f",
    compact: bool = False,
) -> Table:
    """A frame as a Rich table; ``compact``: no vertical rules, for a narrow terminal."""
    if compact:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    else:
        t = Table(title=title, title_justify="left")
    cols = list(df.columns)
    for c in ("tlvs", "tunnel"):  # shown only when a flow has one
        if c in cols and not df[c].fillna("").astype(str).str.len().any():
            cols.remove(c)
    shown = df if max_rows <= 0 else df.head(max_rows)
    for c in cols:
        # Addresses, times and numbers are read whole or not at all: only the free-text
        # columns wrap, and they give up width first when the terminal is narrow. A
        # findings cell holds one code per line, and a code is never cut.
        wrap = c in _WRAP
        longest = 12 if c == "tlvs" else _longest_line(shown[c])  # others: one item a line
        t.add_column(
            c,
            overflow="fold" if wrap else "ellipsis",
            no_wrap=not wrap,
            min_width=max(longest, len(c)) if wrap else None,
            ratio=1 if wrap else None,
            justify="right" if c in _NUMERIC else "left",
        )
    for row in shown[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, row, strict=True):
            text = _cell(v, time_format)
            # a Text, not a str: "[fd77::1]:80" is an address, not Rich markup
            style = _STATUS_STYLE.get(str(text), "") if c == "status" else ""
            cells.append(Text(str(text), style=style))
        t.add_row(*cells)
    if max_rows > 0 and len(df) > max_rows:
        t.caption = f"{len(df) - max_rows} more rows not shown (use --max-rows 0, or --format csv)"
    return t


def _longest_line(col: pd.Series) -> int:
    texts = col.dropna().astype(str)
    return max((len(x) for t in texts for x in t.split("\n")), default=0)


def _fitted(df: pd.DataFrame, console: Console, drop: tuple[str, ...], **kw: Any) -> Table:
    """The table with as many columns as fit the console whole, dropping them in ``drop``
    order; the narrow layout (no vertical rules) before any column is given up.

    Layouts are measured on a one-row stand-in holding each column's widest line, so
    trying a dozen of them costs no more than rendering the table once.
    """
    max_rows = kw.get("max_rows", 500)
    shown = df if max_rows <= 0 else df.head(max_rows)
    fmt = kw.get("time_format", "%Y-%m-%d %H:%M:%S.%f")
    widest = {
        c: "x" * max((len(x) for v in shown[c] for x in str(_cell(v, fmt)).split("\n")),
                     default=0)
        for c in df.columns
    }
    unbounded = console.options.update_width(1_000_000)

    def fits(cols: list[str], compact: bool) -> bool:
        stand_in = pd.DataFrame({c: [widest[c]] for c in cols})
        t = frame_table(stand_in, title="", compact=compact)
        return Measurement.get(console, unbounded, t).maximum <= console.width

    cols = list(df.columns)
    if fits(cols, False):
        return frame_table(df, **kw)
    dropped: list[str] = []
    for c in drop:
        if fits(cols, True):
            break
        if c in cols:
            cols.remove(c)
            dropped.append(c)
    # a column dropped early may fit again once a wider, more important one is gone
    for c in reversed(dropped[:-1]):
        wider = [x for x in df.columns if x in cols or x == c]
        if fits(wider, True):
            cols = wider
    return frame_table(df[cols], compact=True, **kw)


def print_report(
    a: Analysis,
    console: Console,
    *,
    by: str = "flow",
    max_rows: int = 500,
    explain: bool = False,
) -> None:
    """The summary, the findings (one line each, or in full with ``explain``) and the
    chosen table, fitted to the console's width: flows with problems first."""
    console.print(summary(a, explain=explain))
    titles = {
        "flow": "Flows",
        "egress": "Egress addresses",
        "client": "Clients",
        "origin": "Origins (listeners)",
        "rule": "Forwarding rules",
    }
    df = a.frame(by)
    title = titles[by]
    if a.selection is not None:
        title = f"{title} matching the filter ({len(a)} of {len(a.table)} flows)"
    time_format = "%Y-%m-%d %H:%M:%S"
    if by == "flow":
        if len(df) and df["start"].dt.date.nunique() == 1:
            # one day: the date goes in the title, the column keeps the time
            title = f"{title} ({df['start'].iloc[0].strftime('%Y-%m-%d')} UTC)"
            time_format = "%H:%M:%S.%f"
        else:
            time_format = "%Y-%m-%d %H:%M:%S.%f"
        df = df.iloc[np.argsort(-worst_rank(df), kind="stable")]  # problems first
        df = _flows_for_display(df, a.table.rules is not None)
    else:  # one finding, method or address a line: a narrow column, nothing cut
        lists = {"findings": ";", "methods": ",", "egress_ips": ","}
        df = df.assign(**{
            c: df[c].astype(str).str.replace(sep, "\n", regex=False)
            for c, sep in lists.items() if c in df.columns
        })
    table = _fitted(
        df, console, _DROP_FIRST[by], title=title, max_rows=max_rows, time_format=time_format
    )
    console.print(table)
def _joined(ip: pd.Series, port: pd.Series) -> list[str]:
    out = []
    for i, p in zip(ip.astype(object), port.astype(object), strict=True):
        if i is None or (not isinstance(i, str) and pd.isna(i)):
            out.append("")
            continue
        host = f"[{i}]" if ":" in i else i
        out.append(host if p is None or pd.isna(p) else f"{host}:{p}")
    return out


def _flows_for_display(f: pd.DataFrame, rules: bool = False) -> pd.DataFrame:
    """The flow table with address:port pairs joined, so it fits a terminal; the rule's
    line number with ``--rules``."""
    out = pd.DataFrame(
        {
            "flow": f["flow"],
            "proto": f["transport"],
            "start": f["start"],
            "egress": _joined(f["egress_ip"], f["egress_port"]),
            "origin": _joined(f["origin_ip"], f["origin_port"]),
            "tunnel": f["tunnel"],
            "method": f["method"],
            "client": _joined(f["client_ip"], f["client_port"]),
            "proxy dst": _joined(f["proxy_ip"], f["proxy_port"]),
            "cmd": f["pp_command"],
            "tlvs": f["tlvs"],
            "packets": f["packets"],
            "status": f["status"],
            "findings": f["findings"].astype(object).fillna("").str.replace(";", "\n", regex=False),
        }
    )
    if rules:
        line = f["rule"].astype(object).fillna("").str.partition(":")[0]
        out.insert(out.columns.get_loc("method"), "rule", line.to_numpy())
    return out
