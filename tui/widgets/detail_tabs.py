"""The detail pane's tabs (Packet, Timeline, Findings, Summary)."""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane


class DetailTabs(TabbedContent):
    """Textual's tabs switch to a pane when a widget in it gets the focus, by a message
    handled later. When the focus has moved on meanwhile (``Enter t`` typed at once), that
    late message would switch back to the old tab: it is ignored then."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.prevent_default()
        event.stop()
        focused = self.screen.focused
        pane = event.tab_pane
        if pane.id is not None and focused is not None and pane in focused.ancestors:
            self.active = pane.id
