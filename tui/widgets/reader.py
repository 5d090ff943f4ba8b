"""The capture being read: a worker thread, its progress, its rows in batches, its result.

A widget without a look (like toolong's file watcher): it owns the
:class:`~pcapip.tui.stream.CaptureLoader` and what the reading knows — progress,
damage, warnings, the Analysis at the end — and tells its parent with dataclass
messages: rows to fold in (a few times a second at most, so the keyboard stays
responsive however fast the reader goes), the result, a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from textual import work
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from pcapip.tui.rows import Rows
from pcapip.tui.stream import CaptureLoader, LoadResult, LoadStopped, Progress


class CaptureReader(Widget):
    """Reads one capture at a time in a worker; ``loaded`` once its rows are final."""

    DEFAULT_CSS = "CaptureReader { display: none; }"

    progress: reactive[Progress] = reactive(Progress, always_update=True)
    loaded: reactive[bool] = reactive(False)

    @dataclass
    class Rows(Message):
        """Provisional rows to show (packed model rows)."""

        rows: Rows

    @dataclass
    class Loaded(Message):
        """The capture is read: ``result.analysis`` holds the final rows."""

        result: LoadResult

    @dataclass
    class Failed(Message):
        text: str

    # from the worker thread to the widget itself (stopped there)
    @dataclass
    class Progressed(Message):
        progress: Progress

    @dataclass
    class RowsIn(Message):
        rows: Rows

    @dataclass
    class Done(Message):
        result: LoadResult
        loader: CaptureLoader

    def __init__(
        self,
        *,
        trusted: str | Sequence[str] | None = None,
        toa_kinds: Sequence[str] | None = None,
        vxlan_ports: Sequence[int] = (),
        rules: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trusted = trusted
        self.rules = rules  # pcapip.rules.RuleSet (--rules) or None
        self.toa_kinds = toa_kinds
        self.vxlan_ports = tuple(vxlan_ports)
        self.loader: CaptureLoader | None = None
        self.analysis: Any = None
        self.errors: list[str] = []
        self.warnings: list[str] = []
        #: seconds the parent took to fold in the last batch: the next waits 4x as long
        self.apply_cost = 0.0
        self._pending: list[Rows] = []
        self._timer: Any = None
        self._handed = False  # rows were handed over already

    @property
    def loading(self) -> bool:
        return self.loader is not None and not self.loaded

    def start(self, path: str, *, provisional: bool) -> None:
        """Read ``path``; provisional rows are posted as they come (unless ``provisional``
        is False: the live feed showed them already)."""
        self.loader = CaptureLoader(
            path, trusted=self.trusted, toa_kinds=self.toa_kinds, vxlan_ports=self.vxlan_ports,
            rules=self.rules,
        )
        self.loader.first_drawn = threading.Event() if provisional else None
        self.loaded = False
        self._handed = False
        self._load(self.loader, provisional)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, loader: CaptureLoader, provisional: bool) -> None:
        on_rows = (lambda df: self.post_message(self.RowsIn(df))) if provisional else None
        try:
            result = loader.run(
                on_rows=on_rows,
                on_progress=lambda p: self.post_message(self.Progressed(replace(p))),
            )
        except LoadStopped:
            return
        except Exception as exc:  # noqa: BLE001 (shown in the UI, which stays usable)
            self.errors = [f"analysis failed: {type(exc).__name__}: {exc}"]
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Done(result, loader))

    def on_capture_reader_progressed(self, msg: Progressed) -> None:
        msg.stop()
        self.progress = msg.progress

    def on_capture_reader_rows_in(self, msg: RowsIn) -> None:
        msg.stop()
        if self.loaded:
            return
        self._pending.append(msg.rows)
        if self._timer is None:
            # the first rows at once; then coarse steps (each one re-sorts and re-counts
            # every row), never more than a fifth of the UI thread's time
            delay = max(0.5, 4 * self.apply_cost) if self._handed else 0.01
            self._timer = self.set_timer(delay, self._hand_over)

    def _hand_over(self) -> None:
        self._timer = None
        chunks, self._pending = self._pending, []
        if self.loaded or not chunks:
            return
        rows = Rows.concat(chunks)
        self._handed = True
        self.post_message(self.Rows(rows))
        loader = self.loader
        if loader is not None and loader.first_drawn is not None:
            # (after the parent folded them in and the screen was drawn)
            self.call_after_refresh(loader.first_drawn.set)

    def on_capture_reader_done(self, msg: Done) -> None:
        msg.stop()
        res = msg.result
        self._pending = []
        self.analysis = res.analysis
        self.errors = [str(e) for e in res.errors]
        self.warnings = [str(w) for w in res.warnings]
        self.post_message(self.Loaded(res))

    def finish(self) -> None:
        """The parent has shown the final rows."""
        self.loaded = True
        self.progress.done = True
        self.progress = self.progress

    def on_unmount(self) -> None:
        # quitting while a large capture is read must not wait for the rest of it
        if self.loader is not None:
            self.loader.stop()
        if self._timer is not None:
            self._timer.stop()

    def summary_stats(self) -> Any:
        """The capture's counters once it is read (None before)."""
        return self.analysis.stats if (self.analysis is not None and self.loaded) else None
