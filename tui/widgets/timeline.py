"""The Timeline tab: every packet of the flow, one row each; its cursor follows [ ]."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from pcapip.tui.model import clock


class TimelineTable(DataTable):
    """Rows keyed by frame number (the last row may say how many more were left out)."""

    DEFAULT_CSS = "TimelineTable { height: 1fr; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def on_mount(self) -> None:
        self.add_columns("Frame", "Time (UTC)", "Dir", "Flags", "Seq", "Ack", "Len", "Note")

    def show(self, det: Any) -> None:
        self.clear()
        if det is None:
            return
        for e in det.timeline:
            self.add_row(
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
        more = det.timeline_total - len(det.timeline)
        if more > 0:
            self.add_row("…", "", "", "", "", "", "", f"{more:,} more packets not shown")

    def follow(self, number: int | None) -> None:
        """Put the cursor on frame ``number`` (the packet the Packet tab shows)."""
        if number is None:
            return
        try:
            row = self.get_row_index(str(number))
        except RowDoesNotExist:  # a frame past the timeline's limit
            return
        self.move_cursor(row=row, animate=False)
