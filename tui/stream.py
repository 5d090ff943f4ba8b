"""Reading a capture once, showing flows while it is read, ending with the analysis.

``pcapip.analyze`` returns only when the whole capture is read; on a
multi-GB file that is many seconds of an empty screen. This loader runs
``analyze``'s own read loop (:func:`pcapip.flows.run.read_captures`) with the
tracker that live capture uses, which reports each flow as soon as its client
question is answered; after every batch it hands those provisional rows to
the UI and indexes the frames for the detail pane. The table at the end is
built by that loop, so the final rows, warnings and errors are ``analyze``'s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pcapip.tui.frames import FrameIndex
from pcapip.tui.model import normalize

#: bytes read per chunk by the capture reader (as ``analyze`` reads)
CHUNK = 32 * 1024 * 1024
#: frames per batch; smaller than ``analyze``'s so the first rows show within a blink
FIRST_BATCH = 8192
BATCH = 65536


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


def rows_frame(rows: Sequence[Any], codes: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Provisional rows (flow-stage rows, findings judged so far) as a model frame."""
    from pcapip.flows.findings import ORDER

    data = {
        "flow": [None] * len(rows),
        "transport": [r.transport for r in rows],
        "start": [r.start_ns for r in rows],
        "end": [r.end_ns for r in rows],
        "egress_ip": [r.egress_ip for r in rows],
        "egress_port": [r.egress_port for r in rows],
        "origin_ip": [r.origin_ip for r in rows],
        "origin_port": [r.origin_port for r in rows],
        "method": [r.method for r in rows],
        "client_ip": [r.client_ip for r in rows],
        "client_port": [r.client_port for r in rows],
        "proxy_ip": [r.proxy_ip for r in rows],
        "proxy_port": [r.proxy_port for r in rows],
        "pp_command": [r.pp_command for r in rows],
        "pp_family": [r.pp_family for r in rows],
        "tlvs": [r.tlvs for r in rows],
        "packets": [r.packets for r in rows],
        "bytes": [r.bytes for r in rows],
        "status": [r.status for r in rows],
        "findings": [
            ";".join(sorted(set(c), key=lambda x: ORDER.get(x, len(ORDER)))) for c in codes
        ],
    }
    return normalize(pd.DataFrame(data), frames=[r.first_frame for r in rows])


class CaptureLoader:
    """One pass over a capture file: provisional rows, a frame index, the final Analysis."""

    def __init__(
        self,
        path: str,
        *,
        trusted: str | Sequence[str] | None = None,
        toa_kinds: Sequence[str | int] | None = None,
    ) -> None:
        from pcapip.flows.run import registry_for
        from pcapip.flows.trusted import parse_trusted

        self.path = os.fspath(path)
        self.trusted = trusted
        self.toa_kinds = toa_kinds
        self.nets = parse_trusted(trusted)
        self.registry = registry_for(toa_kinds)
        self.index = FrameIndex(self.path)
        self.progress = Progress()
        #: header packets of provisional rows, by first frame (final rows use the Analysis)
        self.header_frames: dict[int, list[tuple[int, int]]] = {}
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to stop after the batch it is on (it then raises LoadStopped)."""
        self._stop.set()

    def run(
        self,
        on_rows: Callable[[pd.DataFrame], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        *,
        interval: float = 0.25,
    ) -> LoadResult:
        """Read the capture; ``on_rows``/``on_progress`` are called at most every ``interval`` s.

        Raises LoadStopped when :meth:`stop` was called before the end.
        """
        from pcapip.errors import CaptureError
        from pcapip.flows.run import read_captures
        from pcapip.live.output import CrossFlow
        from pcapip.live.tracking import LiveTracker
        from pcapip.report.analysis import Analysis

        t0 = time.monotonic()
        # no cap on open flows: a file is analysed whole, exactly as analyze does; the rows
        # of ended flows stay in the tracker (packed, on disk past a few MiB) for the table
        tracker = LiveTracker(registry=self.registry, max_flows=1 << 62)
        cross = CrossFlow(self.nets)
        try:
            total: int | None = os.path.getsize(self.path)
        except OSError:
            total = None
        prog = self.progress
        pending: list[Any] = []
        pending_codes: list[list[str]] = []
        last = 0.0
        sources: list[Any] = []

        def flush(force: bool = False) -> None:
            nonlocal last, pending, pending_codes
            now = time.monotonic()
            if not force and now - last < interval:
                return
            last = now
            if pending and on_rows is not None:
                on_rows(rows_frame(pending, pending_codes))
            pending, pending_codes = [], []
            prog.seconds = now - t0
            if on_progress is not None:
                on_progress(prog)

        def take() -> None:
            for r in tracker.take_reports():
                pending.append(r)
                pending_codes.append(cross.codes(r))
                if r.header_frames:
                    self.header_frames[r.first_frame] = list(r.header_frames)
                prog.flows += 1

        def on_open(ci: int, src: Any) -> None:
            sources.append(src)
            self.index.format = src.format
            self.index.seekable = not src.compressed
            prog.bytes_total = None if src.compressed else total

        def on_batch(ci: int, src: Any, batch: Any, pk: Any) -> None:
            self.index.add(batch, pk)
            take()
            prog.frames = src.frames_read
            if len(batch) and not src.compressed:
                prog.bytes_done = int(batch.file_offset[-1]) + int(batch.caplen[-1])
            flush(force=prog.frames <= FIRST_BATCH)
            src.batch_size = BATCH  # after a quick first batch, analyze's batch size
            if self._stop.is_set():
                raise LoadStopped(self.path)

        # the one read loop (analyze's), with the frame index and the rows as it goes
        table, errors = read_captures(
            [self.path],
            tracker=tracker,
            trusted=self.trusted,
            toa_kinds=self.toa_kinds,
            batch_size=FIRST_BATCH,
            chunk_size=CHUNK,
            on_open=on_open,
            on_batch=on_batch,
        )
        if self._stop.is_set():
            raise LoadStopped(self.path)
        if errors:
            prog.error = str(errors[0])
        take()
        flush(force=True)
        analysis = Analysis(table, [e for e in errors if isinstance(e, CaptureError)])
        prog.done = True
        prog.seconds = time.monotonic() - t0
        if on_progress is not None:
            on_progress(prog)
        source_warnings = [str(w) for src in sources for w in src.warnings]
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


def final_frame(analysis: Any) -> pd.DataFrame:
    """The Analysis' flows as a model frame."""
    return normalize(analysis.flows)
