"""The flows table: every flow, shown as flows or grouped by egress or client IP.

The table owns the rows behind it (a :class:`~pcapip.tui.model.FlowModel`) and the way
they are shown, as reactive attributes anyone may set: ``filter_text``, ``sort`` (key,
descending) and ``grouping``; its watchers apply them. Whatever changes, the cursor stays
on the same flow when that flow is still shown. It tells the rest of the screen what it
shows through ``shown`` (reactive: the counts the status line reports) and the flow under
its cursor through a :class:`FlowsTable.Current` message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message
from textual.reactive import reactive

from pcapip.tui.export import write_view
from pcapip.tui.model import GROUPINGS, FlowModel
from pcapip.tui.views import FlowsView, GroupsView
from pcapip.tui.widgets.table import VirtualTable


@dataclass(frozen=True)
class Shown:
    """What the table shows (the status line's first parts)."""

    shown: int = 0
    total: int = 0
    grouping: str = "flows"
    groups: int = 0
    filter_text: str = ""
    sort: tuple[str | None, bool] = (None, False)


class FlowsTable(VirtualTable):
    """Flows (a FlowsView of ``model``) or per-IP groups (a GroupsView)."""

    #: the filter (the filter language of pcapip.report.filters); a text that does not
    #: parse is refused (the value stays, a notification says why)
    filter_text: reactive[str] = reactive("", always_update=True, init=False)
    #: (column key, descending); None: capture order
    sort: reactive[tuple[str | None, bool]] = reactive((None, False), init=False)
    #: "flows", "egress" or "client"
    grouping: reactive[str] = reactive("flows", init=False)
    #: what is shown now: set after every change (rows, filter, sort, grouping)
    shown: reactive[Shown] = reactive(Shown, always_update=True, init=False)

    @dataclass
    class Current(Message):
        """The flow under the cursor (None: no flow), to show after ``delay`` seconds."""

        rec: dict[str, Any] | None
        delay: float

    def __init__(self, **kwargs: Any) -> None:
        self.model = FlowModel()
        self.flows_view = FlowsView(self.model)
        super().__init__(self.flows_view, **kwargs)
        self.groups_view: GroupsView | None = None
        #: (grouping, filter) before Enter on a group showed its flows
        self.drilled_from: tuple[str, str] | None = None

    # ------------------------------------------------------------ the reactive state
    def watch_filter_text(self, old: str, text: str) -> None:
        """Apply the filter; one that does not parse is refused: the value goes back to
        ``old`` and a notification says why."""
        from pcapip.report import filters

        try:
            self.change(lambda: self.model.set_filter(text))
        except filters.FilterError as exc:
            self.set_reactive(FlowsTable.filter_text, old)
            self.notify(str(exc), title="Filter", severity="error", timeout=6)
            return
        self.post_current(0)

    def validate_sort(self, sort: tuple[str | None, bool]) -> tuple[str | None, bool]:
        """The PROXY column ("pp") sorts by its command."""
        key, desc = sort
        return {"pp": "pp_command"}.get(key or "", key), desc

    def watch_sort(self, sort: tuple[str | None, bool]) -> None:
        self.change(lambda: self.model.set_sort(*sort))

    def watch_grouping(self, by: str) -> None:
        """Show the flows or the groups (a fresh GroupsView: the groups of what is shown)."""
        self._show(by)
        self.shown = self._shown()

    def filter(self, text: str) -> bool:
        """Show the flows matching ``text``; False (nothing changed) if it does not parse."""
        self.filter_text = text
        return self.model.filter_text == text.strip()

    def change(self, change: Callable[[], None]) -> None:
        """Apply a model change and keep the cursor on the same flow when it is still shown."""
        rec = self.current_record() if self.grouping == "flows" else None
        change()
        if self.grouping != "flows":
            self._show(self.grouping)
        else:
            self.reload(cursor=self.model.find(rec) if rec is not None else None)
        self.shown = self._shown()

    def _show(self, by: str) -> None:
        if by == "flows":
            self.groups_view = None
            self.set_source(self.flows_view, cursor=0)
        else:
            self.groups_view = GroupsView(self.model, by)
            self.set_source(self.groups_view, cursor=min(self.cursor, 0))

    def _shown(self) -> Shown:
        m = self.model
        groups = len(self.groups_view.frame) if self.groups_view is not None else 0
        sort = (m.sort_key, m.sort_desc)
        return Shown(len(m.view), m.total, self.grouping, groups, m.filter_text, sort)

    # ------------------------------------------------------------ the flow under the cursor
    def current_record(self) -> dict[str, Any] | None:
        """The flow under the cursor (None in the groups, or without rows)."""
        m = self.model
        if self.grouping != "flows" or not len(m.view):
            return None
        return m.record(m.position(min(self.cursor, len(m.view) - 1)))

    def post_current(self, delay: float) -> None:
        """Tell the screen which flow is under the cursor (None in the groups)."""
        self.post_message(self.Current(self.current_record(), delay))

    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        if self.grouping == "flows":  # (a group under the cursor leaves the detail be)
            self.post_current(0.08)

    def on_virtual_table_header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        event.stop()
        if self.grouping == "flows":
            key, desc = self.sort
            self.sort = (event.key, (not desc) if key == event.key else False)

    # ------------------------------------------------------------ keys
    def next_grouping(self) -> None:
        """``g``: flows → egress IP → client IP → flows."""
        self.grouping = GROUPINGS[(GROUPINGS.index(self.grouping) + 1) % len(GROUPINGS)]

    def reverse(self) -> None:
        """``S``: the flows in the other order (by flow number when unsorted)."""
        if self.grouping == "flows":
            key, desc = self.sort
            self.sort = (key or "flow", not desc)

    def _select(self, row: int) -> None:
        """Enter on a group shows its flows; on a flow, what the screen's opener does."""
        if self.grouping != "flows" and self.groups_view is not None:
            self.drill(self.groups_view.key(row))
        else:
            super()._select(row)

    def drill(self, key: str) -> None:
        """The flows of group ``key`` (Enter on a group); Esc comes back (:meth:`undrill`)."""
        field = "egress_ip" if self.grouping == "egress" else "client_ip"
        value = "none" if key == "(none)" else key
        base = self.model.filter_text
        self.drilled_from = (self.grouping, base)
        self.set_reactive(FlowsTable.grouping, "flows")
        self._show("flows")
        if not self.filter(f"({base}) and {field}=={value}" if base else f"{field}=={value}"):
            self.shown = self._shown()  # (the flows, unfiltered: the status line says so)

    def undrill(self) -> None:
        """Back from a group's flows to the groups, with the filter they had."""
        if self.drilled_from is not None:
            grouping, text = self.drilled_from
            self.drilled_from = None
            self.filter_text = text
            self.grouping = grouping

    # ------------------------------------------------------------ export
    def export_csv(self, path: str, analysis: Any) -> int:
        """Write what is shown (flows in the ``analyze`` CSV schema, or the groups)."""
        groups = None
        if self.grouping != "flows":
            view = self.groups_view
            groups = view.frame if view is not None else self.model.groups("egress").iloc[:0]
        return write_view(path, analysis=analysis, model=self.model, groups=groups)
