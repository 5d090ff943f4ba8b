"""The filter bar: the flows filter, checked as it is typed."""

from __future__ import annotations

from textual.widgets import Input


class FilterInput(Input):
    """Marks its text valid or invalid as it is typed (the reason as a tooltip); the app
    applies it on Enter."""

    def on_input_changed(self, event: Input.Changed) -> None:
        from pcapip.report import filters  # (pandas: only once a filter is typed)

        try:
            filters.parse(event.value)
        except filters.FilterError as exc:
            self.set_class(True, "-invalid")
            self.set_class(False, "-valid")
            self.tooltip = str(exc)
            return
        self.set_class(False, "-invalid")
        self.set_class(bool(event.value.strip()), "-valid")
        self.tooltip = None
