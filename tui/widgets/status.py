"""The status line under the filter, and the focus label at the footer's left end."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from pcapip.tui.stream import Progress


@dataclass
class StatusData:
    """Everything the status line reports; the app fills it in."""

    shown: int
    total: int
    grouping: str
    groups: int = 0
    filter_text: str = ""
    sort: tuple[str | None, bool] = (None, False)
    live_note: str | None = None
    loading: bool = False
    loaded: bool = False
    progress: Progress = field(default_factory=Progress)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def status_text(d: StatusData) -> Text:
    """``shown/total flows · filter · sort · reading N% · damage · warnings``."""
    parts = []
    if d.grouping == "flows":
        parts.append(f"{d.shown:,}/{d.total:,} flows")
    else:
        what = "egress" if d.grouping == "egress" else "client"
        parts.append(f"{d.groups:,} {what} IPs over {d.shown:,}/{d.total:,} flows")
    if d.filter_text:
        parts.append(f"filter: {d.filter_text}")
    key, desc = d.sort
    if key and d.grouping == "flows":
        parts.append(f"sort: {key} {'▼' if desc else '▲'}")
    if d.live_note:
        parts.append(d.live_note)
    elif d.loading:
        frac = d.progress.fraction
        pct = f" {frac * 100:.0f}%" if frac is not None else ""
        parts.append(f"reading{pct} · {d.progress.frames:,} frames")
    elif d.loaded:
        parts.append(f"{d.progress.frames:,} frames")
    text = Text(" · ".join(parts))
    if d.errors:
        first = d.errors[0]
        prefix = "" if first.startswith("analysis failed") else "damaged: "
        text.append(f" · {prefix}{first}", style="bold red")
    if d.warnings:
        n = len(d.warnings)
        text.append(f" · {n} capture warning{'s' if n > 1 else ''} (u)", style="bold yellow")
    return text


#: what the footer calls the widget that has the focus (by id, then by class)
PLACES = {
    "filter": "filter",
    "flows": "flows table",
    "tree": "packet tree",
    "hex-scroll": "hex dump",
    "timeline": "timeline",
    "flow-findings": "flow findings",
    "export-path": "export path",
    "sort-options": "sort menu",
    "summary-findings": "summary findings",
    "ContentTabs": "detail tabs",
}


def place_of(widget: Widget | None, grouping: str = "flows") -> str:
    """A short name for where the focus is (shown at the footer's left end)."""
    if widget is None:
        return "nothing"
    if widget.id == "flows" and grouping != "flows":
        return f"{grouping} groups"
    for name in (widget.id, *widget.classes, type(widget).__name__):
        if name in PLACES:
            return PLACES[name]
    return type(widget).__name__


class StatusLine(Static):
    """The status line: shows ``data`` whenever it is set."""

    data: reactive[StatusData | None] = reactive(None, always_update=True)

    def watch_data(self, old: StatusData | None, data: StatusData | None) -> None:
        if data is None:
            return
        # only the reading's progress moved (twice a second while loading): the line alone
        # is drawn again; when the rows changed too, with the screen's layout, so the new
        # counts and the rows they count show in the same frame
        progress_only = old is not None and replace(old, progress=data.progress) == data
        self.update(status_text(data), layout=not progress_only)
