"""What the flows table shows: flow rows or per-IP groups, as table sources.

Cells are formatted on demand for the rows on screen only. Column widths
come from the data (the longest address in the capture), measured once per
data change with vectorised string lengths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rich.style import Style

from pcapip.flows.columns import BY_NAME
from pcapip.flows.packed import NO_IP, NULL
from pcapip.tui.model import FlowModel, clock, hostport
from pcapip.tui.rows import Rows
from pcapip.tui.widgets.table import Column

if TYPE_CHECKING:
    import pandas as pd

STATUS_STYLE: dict[str, Style] = {
    "ok": Style(color="green"),
    "malformed": Style(color="red", bold=True),
    "incomplete": Style(color="yellow"),
    "absent": Style(color="magenta"),
    "mid-stream": Style(dim=True),
    # connection attempts that never completed (a SYN flood is mostly these)
    "unanswered": Style(color="yellow", dim=True),
    "refused": Style(color="yellow", dim=True),
    "half-open": Style(color="yellow", dim=True),
}
#: worst finding level → (word, letter for a narrow terminal, style)
SEVERITY_MARK = {
    2: ("error", "E", Style(color="red", bold=True)),
    1: ("warning", "W", Style(color="yellow")),
    0: ("info", "i", Style(color="cyan")),
}

#: The flows table's columns, most useful first: (key, the declared output column whose
#: title heads it). An address column shows address:port, pp_command shows command/family.
#: At 80 columns the egress, client, method, status and findings fit; the rest scrolls in.
_SHOWN = (
    ("flow", "flow"),
    ("egress", "egress_ip"),
    ("client", "client_ip"),
    ("method", "method"),
    ("status", "status"),
    ("findings", "findings"),
    ("origin", "origin_ip"),
    ("start", "start"),
    ("packets", "packets"),
    ("bytes", "bytes"),
    ("proxy", "proxy_ip"),
    ("pp", "pp_command"),
    ("tlvs", "tlvs"),
    ("transport", "transport"),
)
#: (key, title, right-aligned) of the flows table: the severity mark, then the columns
#: above under their declared titles, numbers right-aligned
FLOW_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("sev", "Severity", False),
    *((key, BY_NAME[col].title, BY_NAME[col].kind == "int") for key, col in _SHOWN),
)
#: the columns up to here are the ones a narrow terminal must show whole
PRIMARY_LAST = "findings"
#: narrowest a shrinking column gets (sev: one letter; findings: a code and its ellipsis)
_MIN_WIDTH = {"sev": 1, "findings": 12}
#: Findings shrinks to this (not below) to let the next column show
ROOM_FLOOR = 24
_MAX_WIDTH = {"findings": 40, "tlvs": 40, "egress": 47, "client": 47, "origin": 47, "proxy": 47}


def _len_max(s: pd.Series, floor: int) -> int:
    if s.empty:
        return floor
    return max(floor, int(s.astype(str).str.len().max()))


def _pair_width(rows: Rows, ip: str, port: str) -> int:
    """Widest address:port cell (IPv6 in brackets, "-" for no address)."""
    if not len(rows):
        return 6
    v = rows.cols[ip]
    lens = np.ones(len(v), np.int64)  # "-"
    v4 = v >= 0
    if v4.any():  # dotted IPv4: its octets' digits and three dots, without the text
        octets = [(v[v4] >> sh) & 255 for sh in (24, 16, 8, 0)]
        lens[v4] = 7 + sum((o >= 10).astype(np.int64) + (o >= 100) for o in octets)
    other = v < NO_IP
    if other.any():
        inv, texts = Rows({ip: v[other]}, rows.vocab).texts_of(ip)  # (that column only)
        lens[other] = np.array([len(t) + (2 if ":" in t else 0) for t in texts])[inv]
    return int((lens + np.where(rows.cols[port] == NULL, 0, 6)).max())


def _text_width(rows: Rows, col: str, floor: int) -> int:
    """Longest text of ``col`` among ``rows`` (missing values count as nothing)."""
    _, texts = rows.texts_of(col)
    return max([floor, *(len(t) for t in texts if t is not None)])


def _int_width(rows: Rows, col: str, floor: int) -> int:
    v = rows.cols[col]
    if not len(v):
        return floor
    return max(floor, len(str(int(v.max()))), len(str(int(v.min()))))


def _count(v: object) -> str:
    return "" if v is None or int(v) < 0 else str(v)


def _measure(rows: Rows) -> dict[str, int]:
    """Widest cell per column among these rows (each distinct text measured once)."""
    _, findings = rows.texts_of("findings")
    return {
        # room for "Severity"/"warning" only when some flow has a finding
        "sev": 8 if any(findings) else 1,
        "flow": 4,
        "egress": _pair_width(rows, "egress_ip", "egress_port"),
        "client": _pair_width(rows, "client_ip", "client_port"),
        "origin": _pair_width(rows, "origin_ip", "origin_port"),
        "proxy": _pair_width(rows, "proxy_ip", "proxy_port"),
        "method": 7,
        "status": 10,
        "findings": _text_width(rows, "findings", 8),
        "start": 15,
        "packets": _int_width(rows, "packets", 4),
        "bytes": _int_width(rows, "bytes", 5),
        "pp": 13,
        "tlvs": _text_width(rows, "tlvs", 4),
        "transport": 3,
    }


def _fit_primary(widths: dict[str, int], avail: int) -> None:
    """Shrink severity, then Findings, until the primary columns fit ``avail`` cells; with
    room to spare, Findings gives cells (down to ROOM_FLOOR) so that Origin shows whole
    instead of leaving the right edge empty."""
    keys = [k for k, _, _ in FLOW_COLUMNS]
    primary = keys[: keys.index(PRIMARY_LAST) + 1]
    for k in ("sev", "findings"):
        over = sum(widths[c] + 1 for c in primary) - avail
        if over <= 0:
            break
        if k == "sev":
            widths[k] = _MIN_WIDTH[k]
        else:
            widths[k] = max(_MIN_WIDTH[k], widths[k] - over)
    # the first column after Findings (Origin, the other end of the flow) earns the room
    nxt = keys[len(primary)]
    need = sum(widths[c] + 1 for c in primary) + widths[nxt] + 1 - avail
    if 0 < need <= widths["findings"] - ROOM_FLOOR:
        widths["findings"] -= need


class FlowsView:
    """The filtered, sorted flows of a FlowModel."""

    def __init__(self, model: FlowModel) -> None:
        self.model = model
        self._widths: dict[str, int] = {}
        self._replaced = -1
        self._measured = 0  # rows of model.df measured so far (appends only add rows)
        self._sev_wide = True

    @property
    def generation(self) -> tuple[int, int]:
        """Changes whenever the column widths may change (the table caches its layout)."""
        return self.model.replaced, self.model.total

    def columns(self, width: int | None = None) -> list[Column]:
        """Widths from the data, fitted to ``width``: the columns up to Findings show whole
        (severity shrinks to a letter, Findings to an ellipsis) before any is cut."""
        m = self.model
        if self._replaced != m.replaced:
            self._replaced, self._measured, self._widths = m.replaced, 0, {}
        if self._measured < m.total or not self._widths:
            # (all rows as they are: a copy would read every column of the final rows)
            part = m.rows if not self._measured else m.rows.take(slice(self._measured, None))
            new = _measure(part)
            self._widths = {k: max(v, self._widths.get(k, 0)) for k, v in new.items()}
            self._widths["flow"] = max(4, len(str(m.total)))
            self._measured = m.total
        # a column is at least as wide as its title (severity has "!" for narrow)
        widths = {
            k: max(min(self._widths[k], _MAX_WIDTH.get(k, 99)), 1 if k == "sev" else len(t))
            for k, t, _ in FLOW_COLUMNS
        }
        if width is not None:
            _fit_primary(widths, width)
        self._sev_wide = widths["sev"] >= _MIN_WIDTH["sev"] + 1
        return [
            Column(k, t if len(t) <= widths[k] else "!" if k == "sev" else t, widths[k], right)
            for k, t, right in FLOW_COLUMNS
        ]

    def row_count(self) -> int:
        return len(self.model)

    def sort_state(self) -> tuple[str | None, bool]:
        return self.model.sort_key, self.model.sort_desc

    def cells(self, row: int) -> list[tuple[str, Style | None]]:
        m = self.model
        pos = m.position(row)

        def a(col: str) -> Any:
            return m.value(col, pos)

        sev = int(m.severity()[pos])
        word, letter, mstyle = SEVERITY_MARK.get(sev, ("", "", None))
        mark = word if self._sev_wide else letter
        flow = a("flow")
        status = a("status") or ""
        pp = "/".join(str(x) for x in (a("pp_command"), a("pp_family")) if x)
        return [
            (mark, mstyle),
            ("…" if flow is None else str(flow), None),
            (hostport(a("egress_ip"), a("egress_port")), None),
            (hostport(a("client_ip"), a("client_port")), None),
            (a("method") or "", None),
            (status, STATUS_STYLE.get(status)),
            (a("findings") or "", None),
            (hostport(a("origin_ip"), a("origin_port")), None),
            (clock(a("start")), None),
            (_count(a("packets")), None),
            (_count(a("bytes")), None),
            (
                hostport(a("proxy_ip"), a("proxy_port")) if a("proxy_ip") else "",
                None,
            ),
            (pp, None),
            (a("tlvs") or "", None),
            (a("transport") or "", None),
        ]

    def row_style(self, row: int) -> Style | None:
        pos = self.model.position(row)
        status = self.model.value("status", pos)
        if status in ("malformed",):
            return Style(color="red")
        if status == "mid-stream":
            return Style(dim=True)
        return None


class GroupsView:
    """Flows of the current view grouped by egress IP or by client IP, with counts."""

    def __init__(self, model: FlowModel, by: str) -> None:
        self.model = model
        self.by = by
        self.frame = model.groups(by)

    def columns(self, width: int | None = None) -> list[Column]:
        f = self.frame
        key_title = "Egress IP" if self.by == "egress" else "Client IP"
        other = "Clients" if self.by == "egress" else "Egress IPs"
        kw = _len_max(f["key"], len(key_title)) if len(f) else len(key_title)
        return [
            Column("key", key_title, min(kw, 39)),
            Column("flows", "Flows", max(5, _len_max(f["flows"], 5) if len(f) else 5), True),
            Column("others", other, len(other), True),
            Column("ok", "OK", 5, True),
            Column("problems", "Warn+", 5, True),
            Column("methods", "Methods", max(7, _len_max(f["methods"], 7) if len(f) else 7)),
            Column(
                "findings", "Findings", max(8, min(60, _len_max(f["findings"], 8) if len(f) else 8))
            ),
        ]

    def row_count(self) -> int:
        return len(self.frame)

    def sort_state(self) -> tuple[str | None, bool]:
        return "flows", True

    def key(self, row: int) -> str:
        return str(self.frame["key"].iat[row])

    def cells(self, row: int) -> list[tuple[str, Style | None]]:
        f = self.frame
        problems = int(f["problems"].iat[row])
        return [
            (str(f["key"].iat[row]), None),
            (str(f["flows"].iat[row]), None),
            (str(f["others"].iat[row]), None),
            (str(f["ok"].iat[row]), Style(color="green")),
            (str(problems), Style(color="yellow") if problems else None),
            (str(f["methods"].iat[row]), None),
            (str(f["findings"].iat[row]), None),
        ]

    def row_style(self, row: int) -> Style | None:
        return None
