"""Reading captures through the flow stage: the one read loop every front end shares.

``pcapip.analyze`` (and so ``pcapip analyze``), the TUI's loader and ``pcapip live`` all
call :func:`read_captures`; what differs between them (a progress bar, a frame index,
rolling output) is a callback. Live capture passes a source of its own (batches from a
pipe, waiting on a clock and signals) in place of a file name.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pcapip.errors import CaptureError, CaptureWarning, UsageError
from pcapip.flows.table import FlowTable, finish_table
from pcapip.flows.tracker import FlowTracker
from pcapip.flows.trusted import parse_trusted
from pcapip.sources.order import Span, batch_times, overlaps

if TYPE_CHECKING:
    from pcapip.decode import Packets
    from pcapip.sources import FrameBatch

# bytes read per chunk: larger chunks mean fewer batches (less per-batch overhead) but chunks
# that no longer stay in the CPU caches while walked and decoded; 2-4 MiB measured best
# (bench/README.md)
CHUNK = 4 * 1024 * 1024

# progress(capture index, frames read so far in it, bytes read so far, total bytes or None)
Progress = Callable[[int, int, int, int | None], None]
# on_batch(capture index, source, batch, its decoded packets): after the tracker was fed
OnBatch = Callable[[int, Any, "FrameBatch", "Packets"], None]


class Batches(Protocol):
    """A source that is not a file (live capture): frame batches under a capture name.

    Iterating may raise CaptureError (the batches before it were yielded); ``warnings``
    holds the reader's warnings once iteration has ended.
    """

    name: str
    warnings: list[CaptureWarning]

    def __iter__(self) -> Iterator[FrameBatch]: ...


def registry_for(toa_kinds: Sequence[str | int] | None) -> Any:
    """The TOA registry for ``--toa-kind`` values (None/empty: the default kinds)."""
    from pcapip.dissect import DEFAULT_REGISTRY, ToaRegistry

    if not toa_kinds:
        return DEFAULT_REGISTRY
    try:
        return ToaRegistry.from_spec([str(k) for k in toa_kinds])
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--toa-kind: {exc}") from None


# the longest --attempt-timeout: ~31.7 years of capture time, far inside int64 nanoseconds
MAX_ATTEMPT_TIMEOUT = 1e9


def timeouts(attempt_timeout: float | None) -> dict[str, float]:
    """FlowTracker keywords for ``--attempt-timeout`` (None: the tracker's default)."""
    if attempt_timeout is None:
        return {}
    if not 0 < attempt_timeout <= MAX_ATTEMPT_TIMEOUT:
        raise UsageError(
            f"--attempt-timeout must be more than 0 and at most {MAX_ATTEMPT_TIMEOUT:.0e} "
            f"seconds, not {attempt_timeout}"
        )
    return {"attempt_timeout": float(attempt_timeout)}


def new_tracker(
    toa_kinds: Sequence[str | int] | None = None,
    attempt_timeout: float | None = None,
    vxlan_ports: Sequence[int] = (),
) -> FlowTracker:
    """A tracker for ``pcapip analyze``'s options (``--toa-kind``, ``--attempt-timeout``,
    ``--vxlan-port``)."""
    return FlowTracker(
        registry=registry_for(toa_kinds),
        vxlan_ports=vxlan_ports,
        **timeouts(attempt_timeout),
    )


def _size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _is_file(capture: str | os.PathLike[str] | Batches) -> bool:
    return isinstance(capture, str | os.PathLike)


def read_captures(
    captures: Sequence[str | os.PathLike[str] | Batches],
    *,
    toa_kinds: Sequence[str | int] | None = None,
    trusted: str | Sequence[str] | None = None,
    attempt_timeout: float | None = None,
    vxlan_ports: Sequence[int] = (),
    tracker: FlowTracker | None = None,
    batch_size: int = 65536,
    chunk_size: int = CHUNK,
    progress: Progress | None = None,
    on_open: Callable[[int, Any], None] | None = None,
    on_batch: OnBatch | None = None,
    rules: Any = None,
) -> tuple[FlowTable, list[CaptureError]]:
    """Read every capture in order (as one continuous recording) and build the flow table.

    ``captures``: file names (``"-"`` is stdin) or :class:`Batches`. ``tracker``: the
    tracker to feed (default: a FlowTracker for ``toa_kinds`` and ``attempt_timeout``, the
    seconds of capture time after which an incomplete handshake ends; None: 5;
    ``vxlan_ports``: UDP ports carrying VXLAN besides 4789).
    ``on_open(index, source)`` is called when a file is opened, ``on_batch`` after each
    batch went through the tracker, ``progress`` as in :data:`Progress`; ``rules``: a
    :class:`pcapip.rules.RuleSet` every flow is judged against (``--rules``).

    A damaged capture stops being read at the damage; what was decoded before
    it stays in the table and the error is returned, not raised, so callers can
    report both. A capture none of whose packets could be decoded (an
    unsupported link type, only tunnels) is an error too: nothing in it was
    analysed. Oddities that did not stop reading are ``table.warnings``.
    """
    nets = parse_trusted(trusted)
    if tracker is None:
        tracker = new_tracker(toa_kinds, attempt_timeout, vxlan_ports)
    names = [os.fspath(c) if _is_file(c) else c.name for c in captures]  # type: ignore[union-attr,arg-type]
    reader = Reader(tracker, on_batch)
    with collector_off():
        for ci, capture in enumerate(captures):
            if _is_file(capture):
                reader.file(ci, names[ci], (batch_size, chunk_size), on_open, progress)
            else:
                reader.source(ci, capture)
                reader.warnings.extend(capture.warnings)  # type: ignore[union-attr]
        table = finish_table(
            tracker, names, nets, warnings=[*reader.warnings, *overlaps(reader.spans)],
            toa_asked=bool(toa_kinds),
            rules=rules,
        )
    return table, reader.errors + tracker.undecoded.undecodable(names)


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """Flows hold no reference cycles; the cyclic collector would only rescan millions of
    live flow objects again and again (a third of the run time)."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc_was:
            gc.enable()


def read_into(
    tracker: FlowTracker,
    files: Sequence[tuple[int, str]],
    sizes: tuple[int, int],
    progress: Progress | None = None,
    on_batch: OnBatch | None = None,
) -> Reader:
    """Consecutive capture files ((index in the recording, path), in order) of a recording
    read in parts (``pcapip.flows.parts``), into ``tracker``, which is not finished."""
    reader = Reader(tracker, on_batch)
    with collector_off():
        for index, path in files:
            reader.file(index, path, sizes, None, progress)
    return reader


def replay_into(tracker: FlowTracker, batches: Sequence[tuple[int, FrameBatch]]) -> None:
    """Frames taken out of captures ((capture index, batch) in recording order) into
    ``tracker``: a recording read in parts replays the connections its parts cut."""
    reader = Reader(tracker, None)
    with collector_off():
        for ci, batch in batches:
            reader.source(ci, [batch])


class Reader:
    """Batches through the decoder into the tracker; the damage and warnings met on the way."""

    def __init__(self, tracker: FlowTracker, on_batch: OnBatch | None) -> None:
        self.tracker = tracker
        self.on_batch = on_batch
        self.errors: list[CaptureError] = []
        self.warnings: list[CaptureWarning] = []
        self.spans: list[Span] = []  # per file read: when its packets were taken

    def source(self, ci: int, src: Any, said: Callable[[Any], None] | None = None) -> bool:
        """Decode and track every batch of ``src``; False when it ended in damage (kept)."""
        from pcapip.decode import decode

        kinds = self.tracker.registry.kinds
        ports = self.tracker.tunnels.ports
        try:
            for batch in src:
                pk = decode(batch, toa_kinds=kinds, tunnel_ports=ports)
                self.tracker.feed(pk, ci)
                if self.on_batch is not None:
                    self.on_batch(ci, src, batch, pk)
                if said is not None:
                    said(batch)
        except CaptureError as exc:
            self.errors.append(exc)
            return False
        return True

    def file(
        self,
        ci: int,
        path: str,
        sizes: tuple[int, int],
        on_open: Callable[[int, Any], None] | None,
        progress: Progress | None,
    ) -> None:
        """One capture file; a file that is not a capture is an error, and the next is read."""
        from pcapip.sources import open_capture

        try:
            src = open_capture(path, batch_size=sizes[0], chunk_size=sizes[1])
        except CaptureError as exc:  # not a capture at all: nothing to keep, go on
            self.errors.append(exc)
            return
        with src:
            if on_open is not None:
                on_open(ci, src)
            total = _size(path)
            span: list[int] = []  # the file's first and latest packet times so far

            def said(batch: Any) -> None:
                if progress is not None and len(batch):
                    done = int(batch.file_offset[-1]) + int(batch.caplen[-1])
                    progress(ci, src.frames_read, done, total)
                if (t := batch_times(batch)) is not None:
                    span[:] = [span[0], max(span[1], t[1])] if span else list(t)

            ok = self.source(ci, src, said)
            if span:  # (up to any damage: what was read of it)
                self.spans.append((path, span[0], span[1]))
            if ok and src.frames_read == 0:
                self.warnings.append(
                    CaptureWarning(path, None, None, "the capture holds no packets", kind="empty")
                )
            self.warnings.extend(src.warnings)
