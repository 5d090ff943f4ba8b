"""Findings as lists one can act on: Enter on a finding shows only the flows that have it.

Two places list findings: the capture summary (every code with its flow count) and a
flow's Findings tab (each finding with the catalogue's advice). Both are option lists
posting :class:`FindingChosen`; the app turns it into the filter ``finding:CODE``.
Severities are spelled out (error, warning, info), never cut to a few letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from pcapip.flows.columns import METHODS, STATUSES

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}
SEVERITY_WIDTH = max(len(s) for s in SEVERITY_STYLE)


@dataclass
class FindingChosen(Message):
    """Enter (or a click) on a finding: show the flows that have ``code``."""

    code: str


def severity_of(code: str) -> str:
    from pcapip.flows.findings import CATALOGUE

    k = CATALOGUE.get(code)
    return k.level.label if k is not None else "info"


def ranked(codes: dict[str, int]) -> list[str]:
    """Worst first, then the catalogue's order."""
    from pcapip.flows.findings import CATALOGUE, ORDER

    return sorted(
        codes,
        key=lambda c: (-int(CATALOGUE[c].level) if c in CATALOGUE else 0, ORDER.get(c, 99), c),
    )


class FindingsList(OptionList):
    """Option ids are finding codes (``CODE#n`` for a flow's n-th finding)."""

    DEFAULT_CSS = """
    FindingsList { height: auto; max-height: 100%; border: none; padding: 0;
                   background: $surface; }
    FindingsList:focus { border: none; }
    """

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(FindingChosen(str(event.option.id).split("#")[0]))

    def show_counts(self, codes: dict[str, int]) -> None:
        """One line per code: severity, code, flows (the capture summary)."""
        width = max((len(c) for c in codes), default=4)
        opts = []
        for code in ranked(codes):
            sev = severity_of(code)
            t = Text()
            t.append(sev.ljust(SEVERITY_WIDTH + 1), style=SEVERITY_STYLE[sev])
            t.append(code.ljust(width + 1))
            t.append(f"{codes[code]:>6,}")
            opts.append(Option(t, id=code))
        if not opts:
            opts.append(Option(Text("none", style="dim"), disabled=True))
        self._replace(opts)

    def show_flow(self, findings: list[Any]) -> None:
        """Each finding of one flow with what it means and what to do."""
        from pcapip.flows.findings import CATALOGUE

        opts = []
        for i, f in enumerate(findings):
            t = Text()
            t.append(f"{f.severity} ", style=SEVERITY_STYLE.get(f.severity, ""))
            t.append(f.code, style="bold")
            if f.packet is not None:
                t.append(f" (packet {f.packet})", style="dim")
            t.append(f"\n{f.message}")
            k = CATALOGUE.get(f.code)
            if k is not None:
                t.append(f"\nWhat happened: {k.meaning}", style="dim")
                t.append("\nWhat to do: ", style="bold green")
                t.append(k.fix)
            opts.append(Option(t, id=f"{f.code}#{i}"))  # ids are unique; a code may repeat
            if i < len(findings) - 1:
                opts.append(None)  # a separator line
        self._replace(opts)

    def _replace(self, opts: list[Any]) -> None:
        keep = self.highlighted
        self.set_options(opts)
        if opts and keep is not None:
            self.highlighted = min(keep, self.option_count - 1)


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=None,
        pad_edge=False,
        show_header=False,
        title_style="bold",
        min_width=34,
    )


@dataclass
class SummaryData:
    """What the summary shows; the app fills it from the model and the analysis."""

    counts: dict[str, Any]
    stats: dict[str, Any] | None
    loaded: bool
    errors: list[str]
    warnings: list[str]


def summary_head(d: SummaryData) -> Group:
    """Flows and packets, and the capture's damage and warnings: the first lines shown."""
    counts, stats = d.counts, d.stats
    head = Text()
    head.append(f"{counts['flows']:,} flows", style="bold")
    if stats is not None:
        head.append(
            f" ({stats.get('flows_tcp', 0)} TCP, {stats.get('flows_udp', 0)} UDP) "
            f"from {stats.get('packets', 0):,} packets"
        )
        undecoded = int(stats.get("packets_undecoded", 0) or 0)
        if undecoded:
            head.append(f"\n{undecoded:,} packets not decoded", style="yellow")
    elif not d.loaded:
        head.append(" so far", style="dim")
    parts: list[Any] = [head]
    if d.errors:
        parts.append(Text("Capture damage: " + "; ".join(d.errors), style="bold red"))
    if d.warnings:
        w = Text(f"Capture warnings ({len(d.warnings)}):", style="bold yellow")
        for line in d.warnings[:20]:
            w.append(f"\n• {line}", style="yellow")
        if len(d.warnings) > 20:
            w.append(f"\n… {len(d.warnings) - 20} more", style="yellow")
        parts.append(w)
    return Group(*parts)


def summary_tables(d: SummaryData) -> Group:
    """Counts by method, status and TOA handshake counters."""
    from pcapip.tui.views import STATUS_STYLE

    counts, stats = d.counts, d.stats
    parts: list[Any] = []

    t = _table("Client address carried by")
    t.add_column("method")
    t.add_column("flows", justify="right")
    for m in METHODS:
        n = (stats or {}).get(f"method_{m}", counts["methods"].get(m, 0))
        t.add_row(m, f"{n:,}")
    parts.append(t)

    st = _table("Status")
    st.add_column("status")
    st.add_column("flows", justify="right")
    for s in STATUSES:
        st.add_row(Text(s, style=STATUS_STYLE.get(s) or ""), f"{counts['statuses'].get(s, 0):,}")
    parts.append(st)

    toa = _table("TOA handshakes")
    toa.add_column("counter")
    toa.add_column("n", justify="right")
    for k in ("syn_recv_sock_toa", "syn_recv_sock_no_toa", "toa_in_syn", "flows_with_toa"):
        toa.add_row(k, f"{stats.get(k, 0):,}" if stats is not None else "…")
    parts.append(toa)
    return Group(*parts)


class SummaryPane(VerticalScroll):
    """The capture summary, with its findings as a list that filters the table."""

    DEFAULT_CSS = """
    SummaryPane { height: 1fr; }
    SummaryPane .pane-text { padding: 0 1; }
    SummaryPane .findings-title { padding: 0 1; text-style: bold; }
    SummaryPane FindingsList { padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", classes="summary-head pane-text")
        yield Label("Findings (flows) · Enter: show those flows", classes="findings-title")
        yield FindingsList(classes="summary-findings")
        yield Static("", classes="summary-text pane-text")

    _data: SummaryData | None = None
    _on_screen = False

    def show(self, d: SummaryData) -> None:
        """Show ``d``: now when the pane is on screen or the capture is read, else when it
        comes on screen (while loading, a hidden pane's redraw would only take the
        reader's time: each one lays the whole screen out again)."""
        self._data = d
        if self._on_screen or d.loaded:
            self._draw(d)

    def on_show(self) -> None:
        self._on_screen = True
        if self._data is not None:
            self._draw(self._data)

    def on_hide(self) -> None:
        self._on_screen = False

    def _draw(self, d: SummaryData) -> None:
        self.query_one(".summary-head", Static).update(summary_head(d))
        self.query_one(FindingsList).show_counts(d.counts["codes"])
        self.query_one(".summary-text", Static).update(summary_tables(d))


class FlowFindingsPane(VerticalScroll):
    """One flow's findings (the Findings tab)."""

    DEFAULT_CSS = """
    FlowFindingsPane { height: 1fr; }
    FlowFindingsPane #findings { padding: 0 1; }
    FlowFindingsPane FindingsList { padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="findings")
        yield FindingsList(id="flow-findings")

    def show(self, det: Any) -> None:
        from pcapip.tui.widgets.packet_pane import flow_line

        head = self.query_one("#findings", Static)
        lst = self.query_one("#flow-findings", FindingsList)
        if det is None:
            head.update("")
            lst.show_flow([])
            return
        rec = det.rec
        from pcapip.tui.model import hostport

        t = Text(flow_line(rec), style="bold")
        client = hostport(rec["client_ip"], rec["client_port"])
        t.append(f"\nmethod {rec['method']} · status {rec['status']} · client {client}", style="")
        if rec.get("rule"):
            t.append(f"\nrule {rec['rule']}", style="")
        if det.findings:
            t.append("\nEnter on a finding: show every flow that has it", style="dim")
        else:
            t.append("\nNo findings.", style="green")
        head.update(Group(t))
        lst.show_flow(det.findings)
