"""Reading captures through the flow stage: the one loop every front end shares."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from typing import Any

from pcapip.errors import CaptureError, CaptureWarning, UsageError
from pcapip.flows.table import FlowTable, finish_table
from pcapip.flows.tracker import FlowTracker, parse_trusted

# bytes read per chunk: larger chunks mean fewer batches (less per-batch overhead) but chunks
# that no longer stay in the CPU caches while walked and decoded; 2-4 MiB measured best
# (bench/README.md)
CHUNK = 4 * 1024 * 1024

# progress(capture index, frames read so far in it, bytes read so far, total bytes or None)
Progress = Callable[[int, int, int, int | None], None]


def registry_for(toa_kinds: Sequence[str | int] | None) -> Any:
    """The TOA registry for ``--toa-kind`` values (None/empty: the default kinds)."""
    from pcapip.dissect import DEFAULT_REGISTRY, ToaRegistry

    if not toa_kinds:
        return DEFAULT_REGISTRY
    try:
        return ToaRegistry.from_spec([str(k) for k in toa_kinds])
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--toa-kind: {exc}") from None


def _size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def track_captures(
    paths: Sequence[str | os.PathLike[str]],
    *,
    toa_kinds: Sequence[str | int] | None = None,
    trusted: str | Sequence[str] | None = None,
    mode: str = "fast",
    progress: Progress | None = None,
    batch_size: int = 65536,
    backend: str | None = None,
) -> tuple[FlowTable, list[CaptureError]]:
    """Read every capture in order (as one continuous recording) and build the flow table.

    A damaged capture stops being read at the damage; what was decoded before
    it stays in the table and the error is returned, not raised, so callers can
    report both. A capture none of whose packets could be decoded (an
    unsupported link type, only tunnels) is an error too: nothing in it was
    analysed. Oddities that did not stop reading are ``table.warnings``.
    """
    nets = parse_trusted(trusted)
    registry = registry_for(toa_kinds)
    kinds = registry.kinds
    tracker = FlowTracker(registry=registry, mode=mode, backend=backend)
    errors: list[CaptureError] = []
    names = [os.fspath(p) for p in paths]
    # flows hold no reference cycles; the cyclic collector would only rescan
    # millions of live flow objects again and again (a third of the run time)
    gc_was = gc.isenabled()
    gc.disable()
    warnings: list[CaptureWarning] = []
    try:
        _read_all(names, tracker, kinds, progress, batch_size, errors, warnings)
        table = finish_table(tracker, names, nets, warnings=warnings, toa_asked=bool(toa_kinds))
    finally:
        if gc_was:
            gc.enable()
    errors.extend(tracker.undecoded.undecodable(names))
    return table, errors


def _read_all(names, tracker, kinds, progress, batch_size, errors, warnings) -> None:
    from pcapip.decode import decode
    from pcapip.sources import open_capture

    for ci, path in enumerate(names):
        total = _size(path)
        try:
            src = open_capture(path, batch_size=batch_size, chunk_size=CHUNK)
        except CaptureError as exc:  # not a capture at all: nothing to keep, go on with the next
            errors.append(exc)
            continue
        with src:
            try:
                for batch in src:
                    pk = decode(batch, toa_kinds=kinds)
                    tracker.feed(pk, ci)
                    if progress is not None and len(batch):
                        done = int(batch.file_offset[-1]) + int(batch.caplen[-1])
                        progress(ci, src.frames_read, done, total)
            except CaptureError as exc:
                errors.append(exc)
            else:
                if src.frames_read == 0:
                    warnings.append(
                        CaptureWarning(path, None, None, "the capture holds no packets", kind="empty")
                    )
            warnings.extend(src.warnings)
