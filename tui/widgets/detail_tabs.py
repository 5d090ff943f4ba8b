"""The detail pane's tabs (Packet, Timeline, Findings, Summary) and the flow they show.

The pane owns the detail of the selected flow: :meth:`DetailTabs.follow` is told which
flow the table's cursor is on; the detail (its packets, timeline, findings) is gathered
by a worker reading a few frames at known offsets, so moving the cursor never waits for
the disk, and ``detail`` (reactive) shows it in the tabs when it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, TabbedContent, TabPane

from pcapip.tui.detail import FlowDetail, build_detail, findings_for, header_frames_of
from pcapip.tui.widgets.findings import FlowFindingsPane
from pcapip.tui.widgets.packet_pane import PacketPane, PacketShown
from pcapip.tui.widgets.timeline import TimelineTable

#: what a flow's packet tab says before its packets can be read: a file still being read,
#: a live capture still running (the main screen binds ``note`` to one or the other)
NOTE_READING = "packets show when the capture has been read"
NOTE_LIVE = "packets show when the capture stops (x, or its --duration/--count)"

#: the fields that make a row the same flow in the same state (a provisional row and
#: its final row differ)
_SAME = (
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


#: the widget each tab puts the focus on when the focus was in the detail pane
TAB_FOCUS = {
    "packet": "#tree",
    "timeline": "#timeline",
    "findings": "#flow-findings",
    "summary": ".summary-findings",
}


def same_flow(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in _SAME)


class DetailTabs(TabbedContent):
    """Textual's tabs switch to a pane when a widget in it gets the focus, by a message
    handled later. When the focus has moved on meanwhile (``Enter t`` typed at once), that
    late message would switch back to the old tab: it is ignored then."""

    detail: reactive[FlowDetail | None] = reactive(None, always_update=True, init=False)
    #: what a flow's detail says before its packets can be read
    note: reactive[str] = reactive(NOTE_READING, repaint=False)

    @dataclass
    class Ready(Message):
        """A gathered detail (from the worker; shown only if still the latest asked)."""

        detail: FlowDetail
        token: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token = 0
        self._timer: Any = None
        self.reader: Any = None  # the CaptureReader whose capture the flows come from

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.prevent_default()
        event.stop()
        focused = self.screen.focused
        pane = event.tab_pane
        if pane.id is not None and focused is not None and pane in focused.ancestors:
            self.active = pane.id

    def show_tab(self, name: str, *, focus: bool, release: bool) -> None:
        """Show tab ``name``; with ``focus``, its main widget takes the focus.

        With ``release`` (the focus is in the detail pane) the focus leaves the old tab
        first: a focused widget in a tab being hidden would hand the focus to its
        neighbour in the same tab, which switches the tab back.
        """
        if release:
            self.screen.set_focus(None)
        self.active = f"tab-{name}"
        if focus:
            # now, not after a refresh: a key typed right after this one must find the
            # focus where this one put it
            target = self.query_one(f"#tab-{name} {TAB_FOCUS[name]}")
            self.screen.set_focus(target, scroll_visible=False)

    # ------------------------------------------------------------ which flow
    def follow(self, rec: dict[str, Any] | None, delay: float = 0.0) -> None:
        """Show flow ``rec`` (a model record; None: no flow) after ``delay`` seconds,
        unless another one is asked for meanwhile."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if delay:
            self._timer = self.set_timer(delay, lambda: self.follow(rec))
            return
        if rec is not None and self.detail is not None and same_flow(rec, self.detail.rec):
            return  # rows were added or re-sorted around the flow already shown
        self._token += 1
        reader = self.reader
        if rec is None:
            self.detail = None
        elif reader is None or reader.loader is None or (
            reader.loader.index.count == 0 and not reader.loaded
        ):
            findings = findings_for(None, None, rec["findings"])
            self.detail = FlowDetail(rec, findings=findings, note=self.note)
        else:
            self._gather(rec, self._token)

    @work(thread=True, exclusive=True, group="detail")
    def _gather(self, rec: dict[str, Any], token: int) -> None:
        reader = self.reader
        loader, analysis = reader.loader, reader.analysis
        if reader.loaded and rec.get("flow") is not None and analysis is not None:
            hf = header_frames_of(analysis, int(rec["flow"]))
            fnd = findings_for(analysis, int(rec["flow"]), rec["findings"])
        else:
            hf = [n for _, n in loader.header_frames.get(int(rec["_frame"] or 0), [])]
            fnd = findings_for(None, None, rec["findings"])
        det = build_detail(
            rec,
            loader.index,
            registry=loader.registry,
            header_frames=hf,
            findings=fnd,
            udp_ports=loader.udp_ports,
        )
        self.post_message(self.Ready(det, token))

    def on_detail_tabs_ready(self, msg: Ready) -> None:
        msg.stop()
        if msg.token == self._token:
            self.detail = msg.detail

    def watch_detail(self, det: FlowDetail | None) -> None:
        self.query_one("#timeline", TimelineTable).show(det)
        self.query_one("#findings-pane", FlowFindingsPane).show(det)
        loader = self.reader.loader if self.reader is not None else None
        self.query_one(PacketPane).show_detail(det, loader)

    # ------------------------------------------------------------ between the tabs
    @on(PacketShown)
    def _packet_shown(self, msg: PacketShown) -> None:
        self.query_one("#timeline", TimelineTable).follow(msg.number)

    @on(DataTable.RowSelected, "#timeline")
    def _timeline_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a timeline packet: the Packet tab shows it (the app moves the focus)."""
        key = event.row_key.value
        if key and key.isdigit():
            self.query_one(PacketPane).show_frame(int(key))
        else:
            event.stop()

    def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.stop()
