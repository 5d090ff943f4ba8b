"""The pcapip terminal UI: flows table, detail pane, summary, filter bar.

Threads: the capture is read by a worker thread (the loader); it posts
provisional rows a few times a second, and the UI thread folds them into the
model and redraws only what is on screen. The detail of a selected flow is
gathered by another worker (reading a few frames at known offsets), so
moving the cursor never waits for the disk.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import replace
from typing import Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from pcapip.report import filters
from tui.detail import FlowDetail, PacketView, build_detail, dissect, findings_for
from tui.model import GROUPINGS, FlowModel, clock, hostport
from tui.stream import CaptureLoader, LoadResult, LoadStopped, Progress, final_frame
from tui.views import FlowsView, GroupsView
from tui.widgets.packet import HexView, PacketTree
from tui.widgets.table import VirtualTable

HELP = (
    """\
[b]pcapip tui[/b] — which flows lost their real client, and why.

[b u]Keys[/b u]
  [b]/[/b]            edit the filter (Enter applies, Esc returns to the table)
  [b]↑ ↓ PgUp PgDn[/b] move in the table;  [b]← →[/b] scroll columns
  [b]Enter[/b]        table: open the flow (or the group) · tree: expand / collapse
  [b]Tab[/b] / [b]Shift+Tab[/b]  switch panes
  [b]s[/b] / [b]S[/b]        sort by the next column / reverse the order (or click a header)
  [b]g[/b]            group by: flows → egress IP → client IP
  [b]p t f u[/b]      detail tabs: packet, timeline, findings, summary
  [b][ ][/b]          previous / next packet of the flow
  [b]e[/b]            export the current view to CSV
  [b]x[/b]            stop a live capture (the recording is then analysed in full)
  [b]?[/b]            this help;  [b]q[/b] quit

[b u]Filter[/b u]  (terms next to each other must all match)
  method==ppv2          egress_ip=198.51.100.1      client_ip in 203.0.113.0/24
  finding:origin-rejected    finding:toa (every TOA finding)    status!=ok
  origin_port>=8000     has:client_ip    client_ip==none    tlvs~unique_id
  a or b,  not a,  ( ),  any other word: text anywhere in the row
  Fields: """
    + ", ".join(filters.FIELDS)
    + """
  Short names: client, egress, origin, proxy, ip (any address), port (any port)

[b u]Colours[/b u]  status: [green]ok[/] [red]malformed[/] [yellow]incomplete[/] [magenta]absent[/] [dim]mid-stream[/]
  first column: [red]E[/] error, [yellow]W[/] warning, [cyan]i[/] info finding
"""
)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same flow, in the same state (a provisional row and its final row differ)."""
    keys = (
        "transport",
        "egress_ip",
        "egress_port",
        "origin_ip",
        "origin_port",
        "start",
        "flow",
        "findings",
        "status",
        "packets",
    )
    return all(a.get(k) == b.get(k) for k in keys)


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


# ------------------------------------------------------------------------------ messages
class RowsReady(Message):
    def __init__(self, rows: pd.DataFrame) -> None:
        super().__init__()
        self.rows = rows


class ProgressMsg(Message):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress


class LoadedMsg(Message):
    def __init__(self, result: LoadResult, loader: CaptureLoader) -> None:
        super().__init__()
        self.result = result
        self.loader = loader


class LoadFailed(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class DetailReady(Message):
    def __init__(self, detail: FlowDetail, token: int) -> None:
        super().__init__()
        self.detail = detail
        self.token = token


class PacketReady(Message):
    def __init__(self, packet: PacketView) -> None:
        super().__init__()
        self.packet = packet


# ------------------------------------------------------------------------------ screens
class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 100; max-width: 100%; height: auto; max-height: 100%;
            border: round $accent; background: $panel; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP, markup=True)

    def action_dismiss(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    #export { width: 70; max-width: 100%; height: auto; border: round $accent;
              background: $panel; padding: 0 1; }
    #export Input { width: 100%; }
    """

    def __init__(self, default: str, what: str) -> None:
        super().__init__()
        self.default = default
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="export"):
            yield Label(f"Export {self.what} to CSV file:")
            yield Input(self.default, id="export-path")
            yield Label("Enter writes it, Esc cancels", classes="dim")

    @on(Input.Submitted, "#export-path")
    def _done(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


# ------------------------------------------------------------------------------ the app
class PcapipApp(App[int]):
    """``pcapip tui CAPTURE``; also the screen of ``pcapip live --tui`` (see tui.live)."""

    TITLE = "pcapip"
    CSS = """
    Screen { layout: vertical; }
    #filter { height: 1; border: none; padding: 0 1; background: $boost; }
    #filter.-invalid { background: $error 30%; }
    #filter.-valid { background: $success 15%; }
    #status { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    #main { height: 1fr; }
    #left { width: 1fr; }
    #flows { height: 45%; min-height: 4; }
    #detail { height: 1fr; }
    #detail ContentSwitcher { height: 1fr; }
    #detail TabPane { padding: 0; height: 1fr; }
    #packet-title { height: 1; background: $panel; padding: 0 1; }
    #packet-box { height: 1fr; layout: vertical; }
    #tree { height: 1fr; min-height: 3; }
    #hex-scroll { height: 1fr; min-height: 3; background: $surface; }
    #side { width: 40; display: none; border-left: tall $panel; }
    .wide #side { display: block; }
    .wide #packet-box { layout: horizontal; }
    .wide #hex-scroll { width: 76; height: 1fr; }
    #timeline { height: 1fr; }
    .pane-text { padding: 0 1; }
    """

    BINDINGS = [
        # priority: handled before the key travels to the focused widget, so the keys typed
        # right after "/" already reach the filter (check_action lets "/" through to inputs)
        Binding("slash", "focus_filter", "Filter", priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("g", "group", "Group"),
        Binding("s", "sort", "Sort"),
        Binding("S", "sort_reverse", "Reverse", show=False),
        Binding("e", "export", "Export"),
        Binding("p", "tab('packet')", "Packet", show=False),
        Binding("t", "tab('timeline')", "Timeline", show=False),
        Binding("f", "tab('findings')", "Findings", show=False),
        Binding("u", "tab('summary')", "Summary", show=False),
        Binding("left_square_bracket", "packet(-1)", "Prev packet", show=False),
        Binding("right_square_bracket", "packet(1)", "Next packet", show=False),
        Binding("x", "stop_live", "Stop capture", show=False),
        Binding("escape", "escape", "Back", show=False),
    ]

    WIDE = 150

    def __init__(
        self,
        capture: str | None = None,
        *,
        trusted: str | list[str] | None = None,
        toa_kinds: list[str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__()
        self.capture = capture
        self.trusted = trusted
        self.toa_kinds = toa_kinds
        self.model = FlowModel()
        self.flows_view = FlowsView(self.model)
        self.grouping = "flows"
        self.groups_view: GroupsView | None = None
        self.loader: CaptureLoader | None = None
        self.analysis: Any = None
        self.progress = Progress()
        self.errors: list[str] = []
        self.loaded = False
        self.live_note: str | None = None
        self.detail: FlowDetail | None = None
        self.packet_i = 0
        self._detail_token = 0
        self._detail_timer: Any = None
        self._pending_rows: list[pd.DataFrame] = []
        self._apply_timer: Any = None
        self._apply_cost = 0.0
        self.export_stem: str | None = None  # default export file name stem
        self.sub_title = title or (os.path.basename(capture) if capture else "")

    # ---------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="/ filter: method==ppv2  client_ip in 203.0.113.0/24  "
            "finding:origin-rejected  text",
            id="filter",
        )
        yield Static("", id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield VirtualTable(self.flows_view, id="flows")
                with TabbedContent(id="detail", initial="tab-packet"):
                    with TabPane("Packet", id="tab-packet"):
                        yield Static("Select a flow (↑↓, Enter)", id="packet-title")
                        with Container(id="packet-box"):
                            yield PacketTree(id="tree")
                            with VerticalScroll(id="hex-scroll"):
                                yield HexView(id="hex")
                    with TabPane("Timeline", id="tab-timeline"):
                        yield DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
                    with TabPane("Findings", id="tab-findings"), VerticalScroll():
                        yield Static("", id="findings", classes="pane-text")
                    with TabPane("Summary", id="tab-summary"), VerticalScroll():
                        yield Static("", id="summary", classes="pane-text")
            with VerticalScroll(id="side"):
                yield Static("", id="side-summary", classes="pane-text")
        yield Footer()

    def on_mount(self) -> None:
        tl = self.query_one("#timeline", DataTable)
        tl.add_columns("Frame", "Time (UTC)", "Dir", "Flags", "Seq", "Ack", "Len", "Note")
        self.query_one("#flows", VirtualTable).focus()
        self._layout_for(self.size.width)
        self._refresh_status()
        self._refresh_summary()
        if self.capture is not None:
            self.start_loader(self.capture, provisional=True)

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width >= self.WIDE, "wide")

    # ---------------------------------------------------------------- loading
    def start_loader(self, path: str, *, provisional: bool) -> None:
        """Read ``path`` in a worker; provisional rows show as they come (unless the live
        feed already showed them)."""
        self.loader = CaptureLoader(path, trusted=self.trusted, toa_kinds=self.toa_kinds)
        self.loaded = False
        self._load(self.loader, provisional)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, loader: CaptureLoader, provisional: bool) -> None:
        on_rows = (lambda df: self.post_message(RowsReady(df))) if provisional else None
        try:
            result = loader.run(
                on_rows=on_rows, on_progress=lambda p: self.post_message(ProgressMsg(replace(p)))
            )
        except LoadStopped:
            return
        except Exception as exc:  # noqa: BLE001 (shown in the UI, which stays usable)
            self.post_message(LoadFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(LoadedMsg(result, loader))

    def on_load_failed(self, msg: LoadFailed) -> None:
        self.errors = [f"analysis failed: {msg.text}"]
        self._refresh_status()
        self.notify(msg.text, title="Analysis failed", severity="error", timeout=15)

    def on_unmount(self) -> None:
        # quitting while a large capture is read must not wait for the rest of it
        if self.loader is not None:
            self.loader.stop()
        for timer in (self._detail_timer, self._apply_timer):
            if timer is not None:
                timer.stop()

    def on_rows_ready(self, msg: RowsReady) -> None:
        """Rows are folded in batches: the UI thread spends at most a fifth of its time on
        them however fast the reader produces them, so keys stay responsive."""
        if self.loaded:
            return
        self._pending_rows.append(msg.rows)
        if self._apply_timer is None:
            delay = 0.01 if not len(self.model.df) else max(0.2, 4 * self._apply_cost)
            self._apply_timer = self.set_timer(delay, self._apply_rows)

    def _apply_rows(self) -> None:
        self._apply_timer = None
        if self.loaded or not self._pending_rows:
            self._pending_rows = []
            return
        t0 = time.perf_counter()
        chunks, self._pending_rows = self._pending_rows, []
        rows = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
        self._with_cursor_kept(lambda: self.model.append(rows))
        self._refresh_status()
        self._refresh_summary()
        self._apply_cost = time.perf_counter() - t0

    def on_progress_msg(self, msg: ProgressMsg) -> None:
        self.progress = msg.progress
        self._refresh_status()

    def on_loaded_msg(self, msg: LoadedMsg) -> None:
        res = msg.result
        self.analysis = res.analysis
        self.errors = [str(e) for e in res.errors]
        frame = final_frame(res.analysis)
        self._with_cursor_kept(lambda: self.model.replace(frame, final=True))
        self.loaded = True
        self.progress.done = True
        self._refresh_status()
        self._refresh_summary()
        if self.errors:
            self.notify(self.errors[0], title="Capture damaged", severity="error", timeout=8)
        self._schedule_detail(0)

    def _with_cursor_kept(self, change: Any) -> None:
        """Apply a model change and keep the cursor on the same flow when it is still shown."""
        table = self.query_one("#flows", VirtualTable)
        rec = self.current_record() if self.grouping == "flows" else None
        change()
        if self.grouping != "flows":
            self._set_grouping(self.grouping)
            return
        row = self.model.find(rec) if rec is not None else None
        table.reload(cursor=row)

    # ---------------------------------------------------------------- status, summary
    def _refresh_status(self) -> None:
        m = self.model
        parts = []
        shown = (
            len(m.view)
            if self.grouping == "flows"
            else (len(self.groups_view.frame) if self.groups_view else 0)
        )
        if self.grouping == "flows":
            parts.append(f"{shown:,}/{len(m.df):,} flows")
        else:
            parts.append(
                f"{shown:,} {'egress' if self.grouping == 'egress' else 'client'} IPs "
                f"over {len(m.view):,}/{len(m.df):,} flows"
            )
        if m.filter_text:
            parts.append(f"filter: {m.filter_text}")
        if m.sort_key and self.grouping == "flows":
            parts.append(f"sort: {m.sort_key} {'▼' if m.sort_desc else '▲'}")
        if self.live_note:
            parts.append(self.live_note)
        elif not self.loaded and self.loader is not None:
            p = self.progress
            frac = p.fraction
            pct = f" {frac * 100:.0f}%" if frac is not None else ""
            parts.append(f"reading{pct} · {p.frames:,} frames")
        elif self.loaded:
            parts.append(f"{self.progress.frames:,} frames")
        text = Text(" · ".join(parts))
        if self.errors:
            first = self.errors[0]
            prefix = "" if first.startswith("analysis failed") else "damaged: "
            text.append(f" · {prefix}{first}", style="bold red")
        self.query_one("#status", Static).update(text)

    def summary_renderable(self) -> Any:
        counts = self.model.counts()
        stats = self.analysis.stats if (self.analysis is not None and self.loaded) else None
        head = Text()
        head.append(f"{counts['flows']:,} flows", style="bold")
        if stats is not None:
            head.append(
                f" ({stats.get('flows_tcp', 0)} TCP, {stats.get('flows_udp', 0)} UDP) "
                f"from {stats.get('packets', 0):,} packets"
            )
        elif not self.loaded:
            head.append(" so far", style="dim")
        parts: list[Any] = [head]

        t = _table("Client address carried by")
        t.add_column("method")
        t.add_column("flows", justify="right")
        for m in ("toa", "ppv1", "ppv2", "none", "unknown"):
            n = (
                (stats or {}).get(f"method_{m}", counts["methods"].get(m, 0))
                if stats
                else counts["methods"].get(m, 0)
            )
            t.add_row(m, f"{n:,}")
        parts.append(t)

        st = _table("Status")
        st.add_column("status")
        st.add_column("flows", justify="right")
        from tui.views import STATUS_STYLE

        for s in ("ok", "malformed", "incomplete", "absent", "mid-stream"):
            n = counts["statuses"].get(s, 0)
            st.add_row(Text(s, style=STATUS_STYLE.get(s) or ""), f"{n:,}")
        parts.append(st)

        toa = _table("TOA handshakes")
        toa.add_column("counter")
        toa.add_column("n", justify="right")
        for k in ("syn_recv_sock_toa", "syn_recv_sock_no_toa", "toa_in_syn", "flows_with_toa"):
            toa.add_row(k, f"{stats.get(k, 0):,}" if stats is not None else "…")
        parts.append(toa)

        from pcapip.flows.findings import CATALOGUE, ORDER

        ft = _table("Findings (flows)")
        ft.add_column("sev")
        ft.add_column("code")
        ft.add_column("flows", justify="right")
        style = {"info": "cyan", "warning": "yellow", "error": "bold red"}
        codes = counts["codes"]
        for code in sorted(
            codes,
            key=lambda c: (-int(CATALOGUE[c].level) if c in CATALOGUE else 0, ORDER.get(c, 99), c),
        ):
            lvl = CATALOGUE[code].level.label if code in CATALOGUE else "info"
            ft.add_row(Text(lvl[:4], style=style[lvl]), code, f"{codes[code]:,}")
        if not codes:
            ft.add_row("", Text("none", style="dim"), "")
        parts.append(ft)
        if self.errors:
            parts.append(Text("Capture damage: " + "; ".join(self.errors), style="bold red"))
        return Group(*parts)

    def _refresh_summary(self) -> None:
        r = self.summary_renderable()
        self.query_one("#summary", Static).update(r)
        self.query_one("#side-summary", Static).update(r)

    # ---------------------------------------------------------------- selection → detail
    def current_record(self) -> dict[str, Any] | None:
        if self.grouping != "flows" or not len(self.model.view):
            return None
        table = self.query_one("#flows", VirtualTable)
        row = min(table.cursor, len(self.model.view) - 1)
        return self.model.record(self.model.position(row))

    @on(VirtualTable.Highlighted, "#flows")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        if self.grouping == "flows":
            self._schedule_detail(0.08)

    @on(VirtualTable.Selected, "#flows")
    def _selected(self, event: VirtualTable.Selected) -> None:
        if self.grouping != "flows" and self.groups_view is not None:
            self._drill(self.groups_view.key(event.row))
            return
        self.query_one("#detail", TabbedContent).active = "tab-packet"
        self.query_one("#tree", PacketTree).focus()

    @on(VirtualTable.HeaderClicked, "#flows")
    def _header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        if self.grouping != "flows":
            return
        m = self.model
        desc = (not m.sort_desc) if m.sort_key == event.key else False
        self._sort(event.key, desc)

    def _schedule_detail(self, delay: float) -> None:
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(delay, self._start_detail) if delay else None
        if not delay:
            self._start_detail()

    def _start_detail(self) -> None:
        self._detail_timer = None
        if not self.query("#flows"):
            return  # the app is closing
        rec = self.current_record()
        if rec is not None and self.detail is not None and _same(rec, self.detail.rec):
            return  # rows were added or re-sorted around the flow already shown
        self._detail_token += 1
        if rec is None:
            self._show_detail(None)
            return
        if self.loader is None or (self.loader.index.count == 0 and not self.loaded):
            self._show_detail(
                FlowDetail(
                    rec,
                    findings=findings_for(None, None, rec["findings"]),
                    note=self._no_bytes_note(),
                )
            )
            return
        self._gather(rec, self._detail_token)

    def _no_bytes_note(self) -> str:
        return (
            "packets show when the capture has been read"
            if self.live_note is None
            else "packets show when the capture stops (x, or its --duration/--count)"
        )

    @work(thread=True, exclusive=True, group="detail")
    def _gather(self, rec: dict[str, Any], token: int) -> None:
        loader = self.loader
        assert loader is not None
        final = self.loaded and rec.get("flow") is not None and self.analysis is not None
        if final:
            hf = [n for _, n in self.analysis.header_frames(int(rec["flow"]))]
            fnd = findings_for(self.analysis, int(rec["flow"]), rec["findings"])
        else:
            hf = [n for _, n in loader.header_frames.get(int(rec["_frame"] or 0), [])]
            fnd = findings_for(None, None, rec["findings"])
        det = build_detail(
            rec, loader.index, registry=loader.registry, header_frames=hf, findings=fnd
        )
        self.post_message(DetailReady(det, token))

    def on_detail_ready(self, msg: DetailReady) -> None:
        if msg.token == self._detail_token:
            self._show_detail(msg.detail)

    def _show_detail(self, det: FlowDetail | None) -> None:
        self.detail = det
        self.packet_i = 0
        self._show_packet()
        self._show_timeline()
        self._show_findings()

    def _show_packet(self) -> None:
        det = self.detail
        title = self.query_one("#packet-title", Static)
        tree = self.query_one("#tree", PacketTree)
        hexv = self.query_one("#hex", HexView)
        if det is None:
            title.update("No flow selected")
            tree.clear()
            hexv.show(b"")
            return
        if not det.packets:
            title.update(Text(self._flow_line(det.rec) + " · " + (det.note or "no packets")))
            tree.clear()
            hexv.show(b"")
            return
        pv = det.packets[self.packet_i % len(det.packets)]
        head = pv.title
        if len(det.packets) > 1:
            head += f" ({self.packet_i % len(det.packets) + 1}/{len(det.packets)}, [ ] switch)"
        if det.note:
            head += f" · {det.note}"
        title.update(Text(head))
        mark = (pv.focus.offset, pv.focus.length) if pv.focus is not None else None
        hexv.show(pv.data, mark)
        tree.show(pv.layers, pv.focus)

    def _flow_line(self, rec: dict[str, Any]) -> str:
        flow = rec.get("flow")
        return (
            f"Flow {flow if flow is not None else '…'}: "
            f"{hostport(rec['egress_ip'], rec['egress_port'])} → "
            f"{hostport(rec['origin_ip'], rec['origin_port'])}"
        )

    def _show_timeline(self) -> None:
        tl = self.query_one("#timeline", DataTable)
        tl.clear()
        det = self.detail
        if det is None:
            return
        for e in det.timeline:
            tl.add_row(
                str(e.frame),
                clock(e.ts_ns),
                e.direction,
                e.flags,
                "" if e.seq is None else str(e.seq),
                "" if e.ack is None else str(e.ack),
                str(e.length),
                e.note,
                key=str(e.frame),
            )
        if det.timeline_total > len(det.timeline):
            tl.add_row(
                "…",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{det.timeline_total - len(det.timeline):,} more packets not shown",
            )

    def _show_findings(self) -> None:
        from pcapip.flows.findings import CATALOGUE

        w = self.query_one("#findings", Static)
        det = self.detail
        if det is None:
            w.update("")
            return
        rec = det.rec
        parts: list[Any] = []
        head = Text(self._flow_line(rec), style="bold")
        client = hostport(rec["client_ip"], rec["client_port"])
        head.append(
            f"\nmethod {rec['method']} · status {rec['status']} · client {client}", style=""
        )
        parts.append(head)
        if not det.findings:
            parts.append(Text("No findings.", style="green"))
        style = {"info": "cyan", "warning": "yellow", "error": "bold red"}
        for f in det.findings:
            t = Text()
            t.append(f"\n[{f.severity}] ", style=style.get(f.severity, ""))
            t.append(f.code, style="bold")
            if f.packet is not None:
                t.append(f" (packet {f.packet})", style="dim")
            t.append(f"\n{f.message}")
            k = CATALOGUE.get(f.code)
            if k is not None:
                t.append(f"\nWhat happened: {k.meaning}", style="dim")
                t.append("\nWhat to do: ", style="bold green")
                t.append(k.fix)
            parts.append(t)
        w.update(Group(*parts))

    # ---------------------------------------------------------------- tree → hex
    @on(PacketTree.NodeHighlighted, "#tree")
    def _field_highlighted(self, event: PacketTree.NodeHighlighted) -> None:
        data = event.node.data
        if data is None or not hasattr(data, "offset"):
            return
        self.query_one("#hex", HexView).set_mark((data.offset, data.length))
        self._scroll_hex_to(data.offset)

    def _scroll_hex_to(self, offset: int) -> None:
        sc = self.query_one("#hex-scroll", VerticalScroll)
        line = offset // 16
        if not (sc.scroll_y <= line < sc.scroll_y + sc.size.height):
            sc.scroll_to(y=max(0, line - 1), animate=False)

    # ---------------------------------------------------------------- timeline → packet
    @on(DataTable.RowSelected, "#timeline")
    def _timeline_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key and key.isdigit() and self.loader is not None:
            self._packet_worker(int(key))

    @work(thread=True, exclusive=True, group="packet")
    def _packet_worker(self, number: int) -> None:
        loader = self.loader
        assert loader is not None
        frames = loader.index.frames([number])
        if number in frames:
            self.post_message(
                PacketReady(
                    dissect(frames[number], loader.registry, f"Frame {number} · from the timeline")
                )
            )

    def on_packet_ready(self, msg: PacketReady) -> None:
        if self.detail is None:
            return
        pk = [p for p in self.detail.packets if p.number != msg.packet.number or p.number is None]
        self.detail.packets = [*pk, msg.packet]
        self.packet_i = len(self.detail.packets) - 1
        self._show_packet()
        self.query_one("#detail", TabbedContent).active = "tab-packet"

    # ---------------------------------------------------------------- filter
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "focus_filter" and isinstance(self.focused, Input))

    def action_focus_filter(self) -> None:
        # focus now, not after a refresh: the keys typed right after "/" belong to the filter
        self.screen.set_focus(self.query_one("#filter", Input))

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        inp = event.input
        try:
            filters.parse(event.value)
        except filters.FilterError as exc:
            inp.set_class(True, "-invalid")
            inp.set_class(False, "-valid")
            inp.tooltip = str(exc)
            return
        inp.set_class(False, "-invalid")
        inp.set_class(bool(event.value.strip()), "-valid")
        inp.tooltip = None

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self.apply_filter(event.value):
            self.query_one("#flows", VirtualTable).focus()

    def apply_filter(self, text: str) -> bool:
        try:
            self._with_cursor_kept(lambda: self.model.set_filter(text))
        except filters.FilterError as exc:
            self.notify(str(exc), title="Filter", severity="error", timeout=6)
            return False
        self._refresh_status()
        self._schedule_detail(0)
        return True

    def action_escape(self) -> None:
        flt = self.query_one("#filter", Input)
        if flt.has_focus:
            self.query_one("#flows", VirtualTable).focus()
        elif self.grouping != "flows":
            self._set_grouping("flows")

    # ---------------------------------------------------------------- grouping, sorting
    def action_group(self) -> None:
        i = GROUPINGS.index(self.grouping)
        self._set_grouping(GROUPINGS[(i + 1) % len(GROUPINGS)])

    def _set_grouping(self, by: str) -> None:
        self.grouping = by
        table = self.query_one("#flows", VirtualTable)
        if by == "flows":
            self.groups_view = None
            table.set_source(self.flows_view, cursor=0)
        else:
            self.groups_view = GroupsView(self.model, by)
            table.set_source(self.groups_view, cursor=min(table.cursor, 0))
        self._refresh_status()

    def _drill(self, key: str) -> None:
        field = "egress_ip" if self.grouping == "egress" else "client_ip"
        value = "none" if key == "(none)" else key
        base = self.model.filter_text
        text = f"({base}) and {field}=={value}" if base else f"{field}=={value}"
        self.grouping = "flows"
        self.groups_view = None
        self.query_one("#flows", VirtualTable).set_source(self.flows_view, cursor=0)
        self.query_one("#filter", Input).value = text
        self.apply_filter(text)

    SORT_KEYS = (
        "flow",
        "egress",
        "client",
        "method",
        "status",
        "findings",
        "origin",
        "start",
        "packets",
        "bytes",
        "sev",
    )

    def action_sort(self) -> None:
        if self.grouping != "flows":
            return
        k = self.model.sort_key
        nxt = (
            self.SORT_KEYS[(self.SORT_KEYS.index(k) + 1) % len(self.SORT_KEYS)]
            if k in self.SORT_KEYS
            else "egress"
        )
        self._sort(nxt, False)

    def action_sort_reverse(self) -> None:
        if self.grouping == "flows":
            self._sort(self.model.sort_key or "flow", not self.model.sort_desc)

    def _sort(self, key: str | None, desc: bool) -> None:
        if key in ("pp", "tlvs", "transport", "proxy"):
            key = {"pp": "pp_command"}.get(key, key)
        self._with_cursor_kept(lambda: self.model.set_sort(key, desc))
        self._refresh_status()

    # ---------------------------------------------------------------- tabs, packets
    def action_tab(self, name: str) -> None:
        self.query_one("#detail", TabbedContent).active = f"tab-{name}"

    def action_packet(self, delta: int) -> None:
        if self.detail is not None and self.detail.packets:
            self.packet_i = (self.packet_i + delta) % len(self.detail.packets)
            self._show_packet()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_stop_live(self) -> None:
        """Only the live app (tui.live) has a capture to stop."""

    # ---------------------------------------------------------------- export
    def action_export(self) -> None:
        if not self.loaded or self.analysis is None:
            self.notify(
                "The capture is still being read; export when it is done.", severity="warning"
            )
            return
        stem = self.export_stem or os.path.splitext(os.path.basename(self.capture or "capture"))[0]
        what = "the flows shown" if self.grouping == "flows" else f"the {self.grouping} groups"
        default = f"{stem}-{'flows' if self.grouping == 'flows' else self.grouping}.csv"
        self.push_screen(ExportScreen(default, what), self._export_to)

    def _export_to(self, path: str | None) -> None:
        if path:
            self._export_worker(path)

    @work(thread=True, group="export")
    def _export_worker(self, path: str) -> None:
        try:
            n = self.export_csv(path)
        except OSError as exc:
            self.call_from_thread(
                self.notify,
                f"{path}: {exc.strerror or exc}",
                title="Export failed",
                severity="error",
            )
            return
        self.call_from_thread(self.notify, f"wrote {n:,} rows to {path}", title="Export")

    def export_csv(self, path: str) -> int:
        """Write the current view (flows in the ``analyze`` CSV schema, or the groups)."""
        if self.grouping != "flows":
            frame = self.groups_view.frame if self.groups_view is not None else pd.DataFrame()
            frame.to_csv(path, index=False, lineterminator="\n")
            return len(frame)
        text = self.analysis.to_csv()
        rows = list(csv.reader(io.StringIO(text)))
        header, body = rows[0], rows[1:]
        flows = self.model.df["flow"].to_numpy(dtype="int64", na_value=0)[self.model.view]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for f in flows:
            w.writerow(body[int(f) - 1])
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        return len(flows)
