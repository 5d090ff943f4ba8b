"""The main screen: filter bar, status line, flows table, detail tabs, summary.

Like toolong's log view, the screen composes the widgets and carries what one tells
another: the reader's rows into the table, the table's shown counts into the status
line, the flow under the table's cursor into the detail tabs, a chosen finding into the
table's filter. Each widget keeps its own state (the table its filter, sort and
grouping; the detail tabs the selected flow's detail; the reader the reading).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, TabPane

from pcapip.tui.export import default_path
from pcapip.tui.rows import Rows
from pcapip.tui.screens import ExportScreen, SortScreen
from pcapip.tui.stream import final_rows, trim_heap
from pcapip.tui.views import FLOW_COLUMNS
from pcapip.tui.widgets.detail_tabs import NOTE_LIVE, NOTE_READING, DetailTabs
from pcapip.tui.widgets.filter import FilterInput
from pcapip.tui.widgets.findings import FindingChosen, FlowFindingsPane, SummaryData, SummaryPane
from pcapip.tui.widgets.flows_table import FlowsTable, Shown
from pcapip.tui.widgets.packet_pane import PacketPane
from pcapip.tui.widgets.reader import CaptureReader
from pcapip.tui.widgets.status import StatusData, StatusLine, place_of
from pcapip.tui.widgets.timeline import TimelineTable


class MainScreen(Screen[None]):
    """The flows and their detail; ``live_note`` (reactive) is what a live capture says."""

    #: from this width the summary shows beside the table
    WIDE = 150
    SIDE = 44
    #: from this width of the detail pane, tree and hex sit side by side
    SIDE_BY_SIDE = 134

    live_note: reactive[str | None] = reactive(None, init=False)
    #: what the packet tab says before a flow's packets can be read (bound to the tabs')
    detail_note: reactive[str] = reactive(NOTE_READING)

    @dataclass
    class Ready(Message):
        """The widgets are mounted: the app may start the reading."""

    def __init__(self, **reader_options: Any) -> None:
        super().__init__()
        self.reader_options = reader_options  # CaptureReader's (trusted, toa_kinds, ...)

    def compose(self) -> ComposeResult:
        yield CaptureReader(**self.reader_options, id="reader")
        yield FilterInput(
            placeholder="/ filter: method==ppv2  client_ip in 203.0.113.0/24  "
            "finding:origin-rejected  text",
            id="filter",
        )
        yield StatusLine("", id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield FlowsTable(id="flows")
                tabs = DetailTabs(id="detail", initial="tab-packet")
                with tabs.data_bind(note=MainScreen.detail_note):
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

    table = property(lambda self: self.query_one("#flows", FlowsTable))
    reader = property(lambda self: self.query_one("#reader", CaptureReader))
    details = property(lambda self: self.query_one("#detail", DetailTabs))

    def on_mount(self) -> None:
        self.details.reader = self.reader
        self.watch(self.reader, "progress", lambda _: self.refresh_status(), init=False)
        table = self.table
        self.watch(table, "shown", self._shown, init=False)
        self.watch(table, "filter_text", self._filter_applied, init=False)
        # Enter opens at once, in the table's turn: the keys typed before it have moved the
        # cursor, and a key typed right after it ("Enter t") finds the focus in the detail
        table.opener = lambda row: self.switch_tab("packet", focus=True)
        table.focus()
        self._layout_for(self.size.width)
        self.refresh_status()
        self.refresh_summary()
        self.post_message(self.Ready())

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        wide = width >= self.WIDE
        self.set_class(wide, "wide")
        left = width - (self.SIDE if wide else 0)
        self.query_one(PacketPane).set_class(left >= self.SIDE_BY_SIDE, "side-by-side")

    # ---------------------------------------------------------------- where the focus is
    def show_place(self) -> None:
        """The footer's left end names the focused widget (a dialog's too)."""
        tables = self.query(FlowsTable)
        if not tables:
            return  # the app is closing
        for where in self.query("#where"):
            where.update(place_of(self.app.focused, tables.first().grouping))
        self.app.refresh_bindings()

    def in_detail(self, widget: Widget | None) -> bool:
        detail, side = self.query_one("#detail"), self.query_one("#side")
        return widget is not None and (
            detail in widget.ancestors_with_self or side in widget.ancestors_with_self
        )

    def switch_tab(self, name: str, *, focus: bool) -> None:
        self.details.show_tab(name, focus=focus, release=focus or self.in_detail(self.focused))

    # ---------------------------------------------------------------- the reader's rows
    def add_rows(self, rows: Any) -> None:
        """Provisional rows (the reader's, or a live capture's lines) into the table."""
        self.table.change(lambda: self.table.model.append(rows))
        self.refresh_summary()

    @on(CaptureReader.Rows)
    def _rows(self, msg: CaptureReader.Rows) -> None:
        t0 = time.perf_counter()
        self.add_rows(msg.rows)
        trim_heap()  # the copies the append made
        self.reader.apply_cost = time.perf_counter() - t0

    @on(CaptureReader.Loaded)
    def _loaded(self, msg: CaptureReader.Loaded) -> None:
        model = self.table.model

        def final() -> None:
            # the provisional rows go before the final ones are built: never both in memory
            model.replace(Rows.empty(), final=False)
            model.replace(final_rows(msg.result.analysis), final=True)

        self.table.change(final)
        trim_heap()  # the provisional rows
        self.reader.finish()
        self.refresh_status()
        self.refresh_summary()
        errors, warnings = self.reader.errors, self.reader.warnings
        if errors:
            self.notify(errors[0], title="Capture damaged", severity="error", timeout=8)
        if warnings:
            more = len(warnings) - 1
            tail = f"\n(and {more} more: Summary tab, u)" if more else ""
            self.notify(warnings[0] + tail, title="Capture warning", severity="warning")
        self.table.post_current(0)

    @on(CaptureReader.Failed)
    def _failed(self, msg: CaptureReader.Failed) -> None:
        self.refresh_status()
        self.notify(msg.text, title="Analysis failed", severity="error", timeout=15)

    # ---------------------------------------------------------------- status, summary
    def _shown(self, old: Shown, new: Shown) -> None:
        self.refresh_status()
        if old.grouping != new.grouping:
            self.show_place()

    def compute_detail_note(self) -> str:
        return NOTE_READING if self.live_note is None else NOTE_LIVE

    def watch_live_note(self) -> None:
        if self.is_mounted:  # (a live app sets its first note before the screen is shown)
            self.refresh_status()

    def refresh_status(self) -> None:
        r = self.reader
        self.query_one("#status", StatusLine).data = StatusData(
            **vars(self.table.shown),
            live_note=self.live_note,
            loading=r.loading,
            loaded=r.loaded,
            progress=r.progress,
            errors=r.errors,
            warnings=r.warnings,
        )

    def summary_data(self) -> SummaryData:
        r = self.reader
        counts = self.table.model.counts()
        return SummaryData(counts, r.summary_stats(), r.loaded, r.errors, r.warnings)

    def refresh_summary(self) -> None:
        data = self.summary_data()
        for pane in self.query(SummaryPane):
            pane.show(data)

    # ---------------------------------------------------------------- selection → detail
    @on(FlowsTable.Current)
    def _current(self, msg: FlowsTable.Current) -> None:
        if self.query("#detail"):  # (not when the app is closing)
            self.details.follow(msg.rec, msg.delay)

    @on(DataTable.RowSelected, "#timeline")
    def _timeline_selected(self, event: DataTable.RowSelected) -> None:
        self.switch_tab("packet", focus=True)

    @on(FindingChosen)
    def _finding_chosen(self, msg: FindingChosen) -> None:
        """A finding picked in a findings list: the table shows the flows that have it."""
        table = self.table
        table.grouping = "flows"
        if table.filter(f"finding:{msg.code}"):
            table.focus()

    # ---------------------------------------------------------------- filter
    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        table = self.table
        if table.filter(event.value):
            table.drilled_from = None
            table.focus()

    def _filter_applied(self, text: str) -> None:
        """The filter bar shows the table's filter, however it was set (not one refused)."""
        if self.table.model.filter_text == text.strip():
            self.query_one("#filter", Input).value = text

    # ---------------------------------------------------------------- Esc: back one level
    def back_target(self) -> str | None:
        """Where Esc goes from here: "table" (from the filter or the detail), "flows" (from
        the groups), "groups" (from a drilled-down group), or nowhere."""
        table = self.table
        if self.focused is not table:
            return "table"
        if table.grouping != "flows":
            return "flows"
        if table.drilled_from is not None:
            return "groups"
        return None

    def back(self) -> None:
        target = self.back_target()
        table = self.table
        if target == "table":
            table.focus()
        elif target == "flows":
            table.grouping = "flows"
        elif target == "groups":
            table.undrill()
        self.show_place()

    # ---------------------------------------------------------------- dialogs
    def ask_sort(self) -> None:
        table = self.table
        if table.grouping != "flows":
            self.notify("Groups are sorted by flow count; g returns to the flows.")
            return
        cols = [(k, t) for k, t, _ in FLOW_COLUMNS]

        def chosen(choice: tuple[str, bool] | None) -> None:
            if choice is not None:
                table.sort = choice

        self.app.push_screen(SortScreen(cols, *table.sort), chosen)

    def ask_export(self, capture: str | None, stem: str | None) -> None:
        """Ask where to write the current view, then write it (off the UI thread)."""
        reader, grouping = self.reader, self.table.grouping
        if not reader.loaded or reader.analysis is None:
            self.notify(
                "The capture is still being read; export when it is done.", severity="warning"
            )
            return
        what = "the flows shown" if grouping == "flows" else f"the {grouping} groups"

        def chosen(path: str | None) -> None:
            if path:
                self._export(os.path.abspath(os.path.expanduser(path)))

        self.app.push_screen(ExportScreen(default_path(capture, stem, grouping), what), chosen)

    @work(thread=True, group="export")
    def _export(self, path: str) -> None:
        try:
            n = self.table.export_csv(path, self.reader.analysis)
        except OSError as exc:
            msg = f"{path}: {exc.strerror or exc}"
            self.app.call_from_thread(self.notify, msg, title="Export failed", severity="error")
            return
        self.app.call_from_thread(self.notify, f"wrote {n:,} rows to {path}", title="Export")
