"""The flows table: every flow, shown as flows or grouped by egress or client IP.

The table owns the rows behind it (a :class:`~pcapip.tui.model.FlowModel`), the
grouping, and the way back from a group the user drilled into; the app's keys ask
it to filter, sort and group. Whatever changes, the cursor stays on the same flow
when that flow is still shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pcapip.tui.model import FlowModel
from pcapip.tui.views import FlowsView, GroupsView
from pcapip.tui.widgets.table import VirtualTable


class FlowsTable(VirtualTable):
    """Flows (a FlowsView of ``model``) or per-IP groups (a GroupsView)."""

    def __init__(self, **kwargs: Any) -> None:
        self.model = FlowModel()
        self.flows_view = FlowsView(self.model)
        super().__init__(self.flows_view, **kwargs)
        self.grouping = "flows"
        self.groups_view: GroupsView | None = None
        #: (grouping, filter) before Enter on a group showed its flows
        self.drilled_from: tuple[str, str] | None = None

    def change(self, change: Callable[[], None]) -> None:
        """Apply a model change and keep the cursor on the same flow when it is still shown."""
        rec = self.current_record() if self.grouping == "flows" else None
        change()
        if self.grouping != "flows":
            self.group_by(self.grouping)
            return
        self.reload(cursor=self.model.find(rec) if rec is not None else None)

    def current_record(self) -> dict[str, Any] | None:
        """The flow under the cursor (None in the groups, or without rows)."""
        m = self.model
        if self.grouping != "flows" or not len(m.view):
            return None
        return m.record(m.position(min(self.cursor, len(m.view) - 1)))

    def group_by(self, by: str) -> None:
        """"flows", "egress" or "client"."""
        self.grouping = by
        if by == "flows":
            self.groups_view = None
            self.set_source(self.flows_view, cursor=0)
        else:
            self.groups_view = GroupsView(self.model, by)
            self.set_source(self.groups_view, cursor=min(self.cursor, 0))

    @property
    def groups(self) -> int:
        return len(self.groups_view.frame) if self.groups_view is not None else 0

    def filter(self, text: str) -> None:
        """Show the flows matching ``text``; raises FilterError (nothing changes then)."""
        self.change(lambda: self.model.set_filter(text))

    def sort(self, key: str | None, desc: bool) -> None:
        key = {"pp": "pp_command"}.get(key or "", key)
        self.change(lambda: self.model.set_sort(key, desc))

    def drill(self, key: str) -> str:
        """The flows of group ``key`` (Enter on a group); returns the filter that shows them."""
        field = "egress_ip" if self.grouping == "egress" else "client_ip"
        value = "none" if key == "(none)" else key
        base = self.model.filter_text
        self.drilled_from = (self.grouping, base)
        text = f"({base}) and {field}=={value}" if base else f"{field}=={value}"
        self.grouping = "flows"
        self.groups_view = None
        self.set_source(self.flows_view, cursor=0)
        return text
