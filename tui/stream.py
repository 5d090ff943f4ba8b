"""Reading a capture once, showing flows while it is read, ending with the analysis.

``pcapip.analyze`` returns only when the whole capture is read; on a
multi-GB file that is many seconds of an empty screen. This loader runs
``analyze``'s own read loop (:func:`pcapip.flows.run.read_captures`) with
``analyze``'s tracker; every 2 seconds it hands the rows of the flows ended
so far to the UI (provisional rows: their own findings, not yet those that
compare flows), and it indexes the frames for the detail pane. The table at the end is
built by that loop, so the final rows, warnings and errors are ``analyze``'s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcapip.flows.tracker import FlowTracker
from pcapip.tui.frames import FrameIndex
from pcapip.tui.rows import Rows

#: frames per batch; smaller than ``analyze``'s so the first rows show within a blink
FIRST_BATCH = 8192
BATCH = 65536
#: seconds the reader waits at most for the first rows to be drawn
FIRST_DRAW_WAIT = 0.3
#: rows are handed over every ROWS_EVERY progress intervals (and after the first batch);
#: the progress interval is half a second: each update redraws the status line. Every 2 s:
#: each hand-over builds the previews of every flow open with its client known (again
#: when it ends) and re-sorts the table, ~0.1 s of the 5M bench file's 2 s less than at 1 s
ROWS_EVERY = 4
_libc: Any = None


def trim_heap() -> None:
    """Give the heaps' free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing).

    The reader's and the UI's threads each allocate from their own glibc heap, and glibc
    raises its mmap threshold to the size of each big block freed: after the first
    hand-over, columns of ~1 MB come from those heaps, and what they leave when freed
    stays in the process. Called after each hand-over of rows (a few times a load), it
    costs a walk of the free lists.
    """
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _libc = False  # not glibc: its allocator, its policy
    if _libc:
        _libc(0)


@dataclass
class Progress:
    """How far the reader is: frames and bytes read (bytes unknown for compressed input)."""

    frames: int = 0
    bytes_done: int = 0
    bytes_total: int | None = None
    flows: int = 0
    done: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def fraction(self) -> float | None:
        if self.done:
            return 1.0
        if not self.bytes_total:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


class LoadStopped(Exception):
    """The loader was stopped before the end (the app is closing)."""


@dataclass
class LoadResult:
    analysis: Any  # pcapip.report.analysis.Analysis
    errors: list[Exception] = field(default_factory=list)
    seconds: float = 0.0
    #: one line each, "FILE, packet N, byte offset X: message" (oddities that did not stop
    #: the reading: unsupported link types, damaged lengths, pcapng block notes)
    warnings: list[str] = field(default_factory=list)


class _ShowingTracker(FlowTracker):
    """``analyze``'s tracker, whose ended rows the loader shows as they come.

    :meth:`shown` takes the packed rows of the flows ended since its last call and keeps
    them for the table, in a temporary file (as the tracker itself keeps ended rows past a
    few MiB); :meth:`take_blocks` (what the table build asks for) gives them back ahead of
    the rest, so the final table is exactly ``analyze``'s.
    """

    def __init__(self, **kwargs: Any) -> None:
        from pcapip.flows.packed import DiskStore, PackedRows

        super().__init__(**kwargs)
        self._shown_rows = PackedRows(DiskStore())

    def shown(self) -> list[Any]:
        from pcapip.flows.packed import spill

        new = super().take_blocks()
        for block in new:
            spill(self._shown_rows.cols, block)
        return new

    def take_blocks(self) -> list[Any]:
        from pcapip.flows.packed import DiskStore, PackedRows

        trim_heap()  # (the table build starts here: what the reading left goes first)
        out = [self._shown_rows] if len(self._shown_rows) else []
        out += super().take_blocks()
        # taken means forgotten, as the tracker's own rows: a second call gives none twice
        self._shown_rows = PackedRows(DiskStore())
        return out


class HeaderFrames:
    """The packets that carried the client address of provisional rows, by the row's first
    frame: the packed rows' own columns (a few arrays a hand-over), not a list per row."""

    def __init__(self) -> None:
        # per hand-over: first frames of its rows that have some, their offsets into the
        # (capture, frame) columns, those columns
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def keep(self, block: Any) -> None:
        """Keep the header packets of ``block``'s rows (packed rows) that have any."""
        lens = np.asarray(block.cols["hf_len"])
        has = np.flatnonzero(lens)
        if not len(has):
            return
        off = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        end = int(off[-1])
        caps = np.asarray(block.cols.slice("hf_cap", 0, end))
        frames = np.asarray(block.cols.slice("hf_frame", 0, end))
        firsts = np.asarray(block.cols["first_frame"])[has]
        self._parts.append((firsts, np.stack([off[has], off[has + 1]]), caps, frames))

    def get(self, first: int, default: Any = None) -> Any:
        """(capture, frame) pairs of the last row kept whose first frame is ``first``
        (an ended row after its preview)."""
        for firsts, spans, caps, frames in reversed(self._parts):
            hit = np.flatnonzero(firsts == first)
            if len(hit):
                a, b = (int(x) for x in spans[:, hit[-1]])
                return list(zip(caps[a:b].tolist(), frames[a:b].tolist(), strict=True))
        return default


class _Pacer:
    """How often a load hands rows and progress to the screen: progress at most every
    ``interval`` s (twice as often until rows were shown), rows every ``ROWS_EVERY *
    interval`` s, each call turning the flows ended (and settled) since the last into
    rows at a cost per call (the UI folds rows in at most every half second anyway)."""

    def __init__(
        self,
        stream: Any,
        tracker: Any,
        on_rows: Callable[[Rows], None] | None,
        on_progress: Callable[[Progress], None] | None,
        interval: float,
    ) -> None:
        self.stream, self.tracker = stream, tracker
        self.on_rows, self.on_progress, self.interval = on_rows, on_progress, interval
        self.t0 = time.monotonic()
        self.last = self.last_rows = 0.0
        self.handed = False  # no rows handed over yet: every progress step tries

    def step(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (self.interval if self.handed else self.interval / 2):
            return
        self.last = now
        prog = self.stream.progress
        due = not self.handed or now - self.last_rows >= ROWS_EVERY * self.interval
        if self.on_rows is not None and (force or due):
            self.last_rows = now
            prog.flows += self._hand_rows()
        prog.seconds = now - self.t0
        if self.on_progress is not None:
            self.on_progress(prog)

    def _hand_rows(self) -> int:
        """Ended rows first, then the previews of flows still open, in one call; returns
        how many flows ended."""
        from pcapip.flows.packed import PackedRows

        new = self.tracker.shown()
        previews = self.tracker.settled_previews()
        if new or previews:
            block = PackedRows.concat([*new, *previews])
            self.stream.header_frames.keep(block)
            self.on_rows(Rows.of_packed(block, self.tracker.vocab))
            del block
            trim_heap()
            if not self.handed and self.stream.first_drawn is not None:
                self.stream.first_drawn.wait(FIRST_DRAW_WAIT)
            self.handed = True
        return sum(len(b) for b in new)


class CaptureLoader:
    """One pass over a capture file: provisional rows, a frame index, the final Analysis."""

    def __init__(
        self,
        path: str,
        *,
        trusted: str | Sequence[str] | None = None,
        toa_kinds: Sequence[str | int] | None = None,
        vxlan_ports: Sequence[int] = (),
        rules: Any = None,
    ) -> None:
        from pcapip.decode.tunnels import udp_tunnel_ports
        from pcapip.flows.run import registry_for

        self.path = os.fspath(path)
        self.trusted = trusted
        self.rules = rules  # pcapip.rules.RuleSet (--rules) or None
        self.toa_kinds = toa_kinds
        self.vxlan_ports = tuple(int(p) for p in vxlan_ports)
        self.registry = registry_for(toa_kinds)
        #: UDP port -> tunnel opened there (``--vxlan-port``): the detail pane decodes and
        #: dissects frames with the same tunnels as the reader
        self.udp_ports = udp_tunnel_ports(self.vxlan_ports)
        self.index = FrameIndex(self.path)
        self.progress = Progress()
        #: header packets of provisional rows, by first frame (final rows use the Analysis)
        self.header_frames = HeaderFrames()
        self._stop = threading.Event()
        #: set by a UI once the first rows are on screen; the reader waits for it (a moment
        #: at most) after handing them over, so the first screen does not share the GIL
        self.first_drawn: threading.Event | None = None

    def stop(self) -> None:
        """Ask :meth:`run` to stop after the batch it is on (it then raises LoadStopped)."""
        self._stop.set()

    def run(
        self,
        on_rows: Callable[[Rows], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        *,
        interval: float = 0.5,
    ) -> LoadResult:
        """Read the capture; ``on_progress`` is called at most every ``interval`` s,
        ``on_rows`` every ``ROWS_EVERY * interval`` s once it had rows (both after the first batch).

        ``on_rows`` gets the rows of the flows ended since its last call and the previews
        of the flows whose client became known since then (a later call gives such a flow
        again, ended: the same first frame). Raises LoadStopped when :meth:`stop` was
        called before the end.
        """
        from pcapip.flows.run import read_captures

        tracker = self._tracker(showing=on_rows is not None)
        try:
            total: int | None = os.path.getsize(self.path)
        except OSError:
            total = None
        prog = self.progress
        pace = _Pacer(self, tracker, on_rows, on_progress, interval)
        sources: list[Any] = []

        def on_open(ci: int, src: Any) -> None:
            sources.append(src)
            self.index.format = src.format
            self.index.seekable = not src.compressed
            prog.bytes_total = None if src.compressed else total

        def on_batch(ci: int, src: Any, batch: Any, pk: Any) -> None:
            self.index.add(batch, pk)
            prog.frames = src.frames_read
            if len(batch) and not src.compressed:
                prog.bytes_done = int(batch.file_offset[-1]) + int(batch.caplen[-1])
            pace.step(force=prog.frames <= FIRST_BATCH)
            src.batch_size = BATCH  # after a quick first batch, analyze's batch size
            if self._stop.is_set():
                raise LoadStopped(self.path)

        # the one read loop (analyze's, with analyze's tracker), with the frame index and
        # the rows as flows end
        table, errors = read_captures(
            [self.path],
            tracker=tracker,
            trusted=self.trusted,
            toa_kinds=self.toa_kinds,
            rules=self.rules,
            batch_size=FIRST_BATCH,
            on_open=on_open,
            on_batch=on_batch,
        )
        if self._stop.is_set():
            raise LoadStopped(self.path)
        warnings = [str(w) for src in sources for w in src.warnings]
        return self._result(table, errors, warnings, pace.t0, on_progress)

    def _tracker(self, *, showing: bool) -> FlowTracker:
        """Showing: a flow shows as soon as its client is known (a preview built column by
        column from the flow table), and again when it ends; else analyze's tracker."""
        tracker = (_ShowingTracker if showing else FlowTracker)(
            registry=self.registry, vxlan_ports=self.vxlan_ports
        )
        tracker.keep_settled = showing
        return tracker

    def _result(
        self,
        table: Any,
        errors: list[Any],
        source_warnings: list[str],
        t0: float,
        on_progress: Callable[[Progress], None] | None,
    ) -> LoadResult:
        """The read table as an Analysis, the last progress, the warnings."""
        from pcapip.errors import CaptureError
        from pcapip.report.analysis import Analysis

        prog = self.progress
        trim_heap()  # what the reading and the table build left
        if errors:
            prog.error = str(errors[0])
        self.header_frames = HeaderFrames()  # the final rows have theirs in the table
        analysis = Analysis(table, [e for e in errors if isinstance(e, CaptureError)])
        prog.flows = len(table)
        prog.done = True
        prog.seconds = time.monotonic() - t0
        if on_progress is not None:
            on_progress(prog)
        return LoadResult(
            analysis, list(errors), prog.seconds, capture_warnings(analysis, source_warnings)
        )


def capture_warnings(analysis: Any, source: list[str]) -> list[str]:
    """The engine's warnings (``Analysis.warnings``/``FlowTable.warnings`` where the engine
    has them) and the capture reader's, each once, in that order."""
    out: list[str] = []
    engine = getattr(analysis, "warnings", None) or getattr(
        getattr(analysis, "table", None), "warnings", None
    )
    for w in [*(engine or []), *source]:
        text = str(w)
        if text not in out:
            out.append(text)
    return out


def final_rows(analysis: Any) -> Rows:
    """The Analysis' flows as model rows, read from its table's packed columns."""
    return Rows.of_table(analysis.table)
