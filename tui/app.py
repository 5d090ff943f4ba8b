"""The pcapip terminal UI: flows table, detail pane, summary, filter bar.

Threads: the capture is read by a worker thread (the loader); it posts
provisional rows every few seconds, and the UI thread folds them into the
model and redraws only what is on screen. The detail of a selected flow is
gathered by another worker (reading a few frames at known offsets), so
moving the cursor never waits for the disk.

The app composes the widgets and binds the keys; the widgets own their state and
talk in dataclass messages: the capture reader (tui.widgets.reader) the reading,
its progress and result, the detail tabs the selected flow's detail, the packet
pane its packet cursor, the filter bar its validity, the summary and findings
panes their lists, the screens (tui.screens) their dialogs. The app keeps the
flows model and the table's grouping, which the keys change.
"""

from __future__ import annotations

import os
import time
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, TabPane

from pcapip.tui.export import default_path, write_view
from pcapip.tui.model import GROUPINGS
from pcapip.tui.rows import Rows
from pcapip.tui.screens import ExportScreen, HelpScreen, SortScreen
from pcapip.tui.stream import final_rows, trim_heap
from pcapip.tui.views import FLOW_COLUMNS
from pcapip.tui.widgets.detail_tabs import DetailTabs
from pcapip.tui.widgets.filter import FilterInput
from pcapip.tui.widgets.findings import FindingChosen, FlowFindingsPane, SummaryData, SummaryPane
from pcapip.tui.widgets.flows_table import FlowsTable
from pcapip.tui.widgets.packet_pane import PacketPane
from pcapip.tui.widgets.reader import CaptureReader
from pcapip.tui.widgets.status import StatusData, StatusLine, place_of
from pcapip.tui.widgets.table import VirtualTable
from pcapip.tui.widgets.timeline import TimelineTable


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
    #detail ContentTabs { height: 1; }
    #detail Underline { display: none; }
    #detail Tab.-active { text-style: bold reverse; }
    #side { width: 44; display: none; border-left: tall $panel; }
    .wide #side { display: block; }
    #bottom { height: 1; dock: bottom; }
    #where { width: auto; height: 1; padding: 0 1; background: $accent; color: $text;
             text-style: bold; }
    #bottom Footer { dock: none; width: 1fr; }
    """

    BINDINGS = [
        # priority: handled before the key travels to the focused widget, so the keys typed
        # right after "/" already reach the filter (check_action lets "/" through to inputs)
        Binding("slash", "focus_filter", "Filter", priority=True),
        Binding("escape", "escape", "Back"),
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
    ]

    #: from this width the summary shows beside the table
    WIDE = 150
    SIDE = 44
    #: from this width of the detail pane, tree and hex sit side by side
    SIDE_BY_SIDE = 134

    def __init__(
        self,
        capture: str | None = None,
        *,
        trusted: str | list[str] | None = None,
        toa_kinds: list[str] | None = None,
        vxlan_ports: tuple[int, ...] = (),
        title: str | None = None,
        rules: Any = None,
    ) -> None:
        super().__init__()
        self.capture = capture
        self.trusted = trusted
        self.rules = rules  # pcapip.rules.RuleSet (--rules) or None
        self.toa_kinds = toa_kinds
        self.vxlan_ports = tuple(vxlan_ports)
        self.live_note: str | None = None
        self.export_stem: str | None = None  # default export file name stem
        self.sub_title = title or (os.path.basename(capture) if capture else "")

    # ---------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield CaptureReader(
            trusted=self.trusted,
            toa_kinds=self.toa_kinds,
            vxlan_ports=self.vxlan_ports,
            rules=self.rules,
            id="reader",
        )
        yield FilterInput(
            placeholder="/ filter: method==ppv2  client_ip in 203.0.113.0/24  "
            "finding:origin-rejected  text",
            id="filter",
        )
        yield StatusLine("", id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield FlowsTable(id="flows")
                with DetailTabs(id="detail", initial="tab-packet"):
                    with TabPane("Packet", id="tab-packet"):
                        yield PacketPane(id="packet")
                    with TabPane("Timeline", id="tab-timeline"):
                        yield TimelineTable(id="timeline")
                    with TabPane("Findings", id="tab-findings"):
                        yield FlowFindingsPane(id="findings-pane")
                    with TabPane("Summary", id="tab-summary"):
                        yield SummaryPane(id="summary")
            yield SummaryPane(id="side")
        with Horizontal(id="bottom"):
            yield Static("flows table", id="where")
            yield Footer(show_command_palette=False)

    @property
    def packet_pane(self) -> PacketPane:
        return self.query_one("#packet", PacketPane)

    @property
    def table(self) -> FlowsTable:
        return self.query_one("#flows", FlowsTable)

    @property
    def reader(self) -> CaptureReader:
        return self.query_one("#reader", CaptureReader)

    @property
    def details(self) -> DetailTabs:
        return self.query_one("#detail", DetailTabs)

    # what the reader and the detail tabs know, as the app's own (tests and tui.live read them)
    loaded = property(lambda self: self.reader.loaded)
    analysis = property(lambda self: self.reader.analysis)
    loader = property(lambda self: self.reader.loader)
    progress = property(lambda self: self.reader.progress)
    errors = property(lambda self: self.reader.errors)
    warnings = property(lambda self: self.reader.warnings)
    detail = property(lambda self: self.details.detail)
    # ... and what the table knows
    model = property(lambda self: self.table.model)
    flows_view = property(lambda self: self.table.flows_view)
    grouping = property(lambda self: self.table.grouping)

    def on_mount(self) -> None:
        self.details.reader = self.reader
        self.watch(self.reader, "progress", lambda _: self._refresh_status(), init=False)
        table = self.table
        # Enter opens at once, in the table's turn: the keys typed before it have moved the
        # cursor, and a key typed right after it ("Enter t") finds the focus in the detail
        table.opener = self._open
        table.focus()
        self._layout_for(self.size.width)
        self._refresh_status()
        self._refresh_summary()
        if self.capture is not None:
            self.start_loader(self.capture, provisional=True)

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        wide = width >= self.WIDE
        self.set_class(wide, "wide")
        left = width - (self.SIDE if wide else 0)
        self.packet_pane.set_class(left >= self.SIDE_BY_SIDE, "side-by-side")

    # ---------------------------------------------------------------- focus, footer
    def on_descendant_focus(self, event: Any) -> None:
        self._show_place()

    def _show_place(self) -> None:
        if not self.screen_stack:
            return  # the app is closing
        where = self.screen_stack[0].query("#where")  # the main screen's, under a dialog too
        if where:
            where.first(Static).update(place_of(self.focused, self.grouping))
        self.refresh_bindings()

    def _in_detail(self, widget: Widget | None) -> bool:
        detail = self.query_one("#detail")
        side = self.query_one("#side")
        return widget is not None and (
            detail in widget.ancestors_with_self or side in widget.ancestors_with_self
        )

    # ---------------------------------------------------------------- loading
    def start_loader(self, path: str, *, provisional: bool) -> None:
        """Read ``path``; provisional rows show as they come (unless the live feed already
        showed them)."""
        self.reader.start(path, provisional=provisional)

    def on_capture_reader_failed(self, msg: CaptureReader.Failed) -> None:
        self._refresh_status()
        self.notify(msg.text, title="Analysis failed", severity="error", timeout=15)

    def on_capture_reader_rows(self, msg: CaptureReader.Rows) -> None:
        t0 = time.perf_counter()
        self._with_cursor_kept(lambda: self.model.append(msg.rows))
        trim_heap()  # the copies the append made
        self._refresh_status()
        self._refresh_summary()
        self.reader.apply_cost = time.perf_counter() - t0

    def on_capture_reader_loaded(self, msg: CaptureReader.Loaded) -> None:
        def final() -> None:
            # the provisional rows go before the final ones are built: never both in memory
            self.model.replace(Rows.empty(), final=False)
            self.model.replace(final_rows(msg.result.analysis), final=True)

        self._with_cursor_kept(final)
        trim_heap()  # the provisional rows
        self.reader.finish()
        self._refresh_status()
        self._refresh_summary()
        if self.errors:
            self.notify(self.errors[0], title="Capture damaged", severity="error", timeout=8)
        if self.warnings:
            more = len(self.warnings) - 1
            tail = f"\n(and {more} more: Summary tab, u)" if more else ""
            self.notify(self.warnings[0] + tail, title="Capture warning", severity="warning")
        self._schedule_detail(0)

    def _with_cursor_kept(self, change: Any) -> None:
        self.table.change(change)

    # ---------------------------------------------------------------- status, summary
    def _refresh_status(self) -> None:
        m = self.model
        data = StatusData(
            shown=len(m.view),
            total=m.total,
            grouping=self.grouping,
            groups=self.table.groups,
            filter_text=m.filter_text,
            sort=(m.sort_key, m.sort_desc),
            live_note=self.live_note,
            loading=self.reader.loading,
            loaded=self.loaded,
            progress=self.progress,
            errors=self.errors,
            warnings=self.warnings,
        )
        self.query_one("#status", StatusLine).data = data

    def summary_data(self) -> SummaryData:
        r = self.reader
        return SummaryData(self.model.counts(), r.summary_stats(), r.loaded, r.errors, r.warnings)

    def _refresh_summary(self) -> None:
        data = self.summary_data()
        for pane in self.query(SummaryPane):
            pane.show(data)

    # ---------------------------------------------------------------- selection → detail
    def current_record(self) -> dict[str, Any] | None:
        return self.table.current_record()

    @on(VirtualTable.Highlighted, "#flows")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        # the table from the message, not a query: it may arrive while the app closes
        if getattr(event.table, "grouping", None) == "flows":
            self._schedule_detail(0.08)

    def _open(self, row: int) -> None:
        """Enter on a row: a group shows its flows, a flow its packet tree."""
        groups = self.table.groups_view
        if self.grouping != "flows" and groups is not None:
            text = self.table.drill(groups.key(row))
            self.query_one("#filter", Input).value = text
            self.apply_filter(text)
            self._show_place()
            return
        self._switch_tab("packet", focus=True)

    @on(VirtualTable.HeaderClicked, "#flows")
    def _header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        if self.grouping != "flows":
            return
        m = self.model
        desc = (not m.sort_desc) if m.sort_key == event.key else False
        self._sort(event.key, desc)

    def _schedule_detail(self, delay: float) -> None:
        if self.query("#flows"):  # (not when the app is closing)
            self.details.note = (
                "packets show when the capture has been read"
                if self.live_note is None
                else "packets show when the capture stops (x, or its --duration/--count)"
            )
            self.details.follow(self.current_record(), delay)

    @on(DataTable.RowSelected, "#timeline")
    def _timeline_selected(self, event: DataTable.RowSelected) -> None:
        self._switch_tab("packet", focus=True)

    @on(FindingChosen)
    def _finding_chosen(self, msg: FindingChosen) -> None:
        """A finding picked in a findings list: the table shows the flows that have it."""
        text = f"finding:{msg.code}"
        if self.grouping != "flows":
            self._set_grouping("flows")
        self.query_one("#filter", Input).value = text
        if self.apply_filter(text):
            self.table.focus()

    # ---------------------------------------------------------------- filter
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if len(self.screen_stack) > 1:
            return action == "quit"  # a dialog is open: its keys, not the table's
        if action == "focus_filter":
            return not isinstance(self.focused, Input)
        if action == "escape":
            return self._back_target() is not None
        return True

    def action_focus_filter(self) -> None:
        # focus now, not after a refresh: the keys typed right after "/" belong to the filter
        self.screen.set_focus(self.query_one("#filter", Input))

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self.apply_filter(event.value):
            self.table.drilled_from = None
            self.table.focus()

    def apply_filter(self, text: str) -> bool:
        from pcapip.report import filters

        try:
            self.table.filter(text)
        except filters.FilterError as exc:
            self.notify(str(exc), title="Filter", severity="error", timeout=6)
            return False
        self._refresh_status()
        self._schedule_detail(0)
        return True

    # ---------------------------------------------------------------- Esc: back one level
    def _back_target(self) -> str | None:
        """Where Esc goes from here: "table" (from the filter or the detail), "flows" (from
        the groups), "groups" (from a drilled-down group), or nowhere."""
        focused = self.focused
        if focused is not self.table:
            return "table"
        if self.grouping != "flows":
            return "flows"
        if self.table.drilled_from is not None:
            return "groups"
        return None

    def action_escape(self) -> None:
        target = self._back_target()
        table = self.table
        if target == "table":
            table.focus()
        elif target == "flows":
            self._set_grouping("flows")
        elif target == "groups" and table.drilled_from is not None:
            grouping, text = table.drilled_from
            table.drilled_from = None
            self.query_one("#filter", Input).value = text
            self.apply_filter(text)
            self._set_grouping(grouping)
        self._show_place()

    # ---------------------------------------------------------------- grouping, sorting
    def action_group(self) -> None:
        i = GROUPINGS.index(self.grouping)
        self._set_grouping(GROUPINGS[(i + 1) % len(GROUPINGS)])

    def _set_grouping(self, by: str) -> None:
        self.table.group_by(by)
        self._refresh_status()
        self._show_place()

    def action_sort(self) -> None:
        if self.grouping != "flows":
            self.notify("Groups are sorted by flow count; g returns to the flows.")
            return
        cols = [(k, t) for k, t, _ in FLOW_COLUMNS]
        m = self.model
        self.push_screen(SortScreen(cols, m.sort_key, m.sort_desc), self._sort_chosen)

    def _sort_chosen(self, choice: tuple[str, bool] | None) -> None:
        if choice is not None:
            self._sort(*choice)

    def action_sort_reverse(self) -> None:
        if self.grouping == "flows":
            self._sort(self.model.sort_key or "flow", not self.model.sort_desc)

    def _sort(self, key: str | None, desc: bool) -> None:
        self.table.sort(key, desc)
        self._refresh_status()

    # ---------------------------------------------------------------- tabs, packets
    def action_tab(self, name: str) -> None:
        self._switch_tab(name, focus=self._in_detail(self.focused))

    def _switch_tab(self, name: str, *, focus: bool) -> None:
        self.details.show_tab(name, focus=focus, release=focus or self._in_detail(self.focused))

    def action_packet(self, delta: int) -> None:
        self.packet_pane.step(delta)

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
        what = "the flows shown" if self.grouping == "flows" else f"the {self.grouping} groups"
        default = default_path(self.capture, self.export_stem, self.grouping)
        self.push_screen(ExportScreen(default, what), self._export_to)

    def _export_to(self, path: str | None) -> None:
        if path:
            self._export_worker(os.path.abspath(os.path.expanduser(path)))

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
        groups = None
        if self.grouping != "flows":
            view = self.table.groups_view
            groups = view.frame if view is not None else self.model.groups("egress").iloc[:0]
        return write_view(path, analysis=self.analysis, model=self.model, groups=groups)
