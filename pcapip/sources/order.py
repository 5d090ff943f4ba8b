"""Several capture files as one recording: read in the order of time, not of names.

Rotated captures rarely sort by name: ``tcpdump -C`` names them ``cap``, ``cap1`` …
``cap10`` (a shell's ``cap*`` puts ``cap10`` before ``cap2``), a ``-W`` ring overwrites
its oldest file, and ``-G`` names cross midnight (``cap-23``, ``cap-00``). Read in that
order, connections are cut at every jump back in time and rejoined wrongly, without a
word. So files are ordered by their first packet, as ``mergecap`` and Wireshark's merge
order them; whether files still overlap (taken at once, not one after another) is only
known once they are read (:func:`overlaps`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from pcapip.errors import CaptureError, CaptureWarning
from pcapip.sources.batch import FrameBatch
from pcapip.sources.capture import OVERLAP_SLACK_NS, open_capture
from pcapip.sources.linktypes import LT_RECORD
from pcapip.sources.urls import is_url

#: frames looked at for a first packet (records without one are skipped, a few only)
_PEEK_FRAMES = 64


def iso_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ``analyze`` writes times: ISO 8601, 9 digits, ``Z``."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def first_time(path: str) -> int | None:
    """The time (ns) of a capture's first packet; None for stdin, a pipe (``<(zcat …)``:
    what a look ahead reads would be gone), a file without packets or one that cannot be
    read (reading it proper says why)."""
    if not (is_url(path) or os.path.isfile(path)):
        return None
    try:
        with open_capture(path, batch_size=1, chunk_size=65536) as src:
            for k, batch in enumerate(src):
                if len(batch) and int(batch.linktype[0]) != LT_RECORD:
                    return int(batch.ts_ns[0])
                if k >= _PEEK_FRAMES:
                    break
    except (CaptureError, OSError, ValueError):
        pass
    return None


def in_time_order(
    paths: Sequence[str], groups: Sequence[str] | None = None
) -> tuple[list[str], CaptureWarning | None]:
    """``paths`` ordered by their first packets (ties, and files whose first packet is not
    known, keep their places; with ``groups``, one label per path, a file moves only among
    the places of its group's files), and the warning that says so when the order changed."""
    if len(paths) < 2:
        return list(paths), None
    from concurrent.futures import ThreadPoolExecutor  # (not for one file: start-up)

    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:  # URLs: one GET each
        times = {i: t for i, t in enumerate(pool.map(first_time, paths)) if t is not None}
    labels = list(groups) if groups is not None else [""] * len(paths)
    out, said = list(paths), None
    for label in dict.fromkeys(labels):
        slots = [i for i in times if labels[i] == label]
        ordered = sorted(slots, key=times.__getitem__)
        for slot, i in zip(slots, ordered, strict=True):
            out[slot] = paths[i]
        if said is None and ordered != slots:
            said = _reordered([(paths[i], times[i]) for i in slots])
    return out, said


def _reordered(given: list[tuple[str, int]]) -> CaptureWarning:
    """The warning for the first place where files given in this order ((name, first
    packet's time) each) go back in time."""
    k = next(j for j in range(1, len(given)) if given[j][1] < given[j - 1][1])
    (late, late_ns), (early, early_ns) = given[k - 1], given[k]
    message = (
        f"starts at {iso_ns(early_ns)}, before {late} given ahead of it ({iso_ns(late_ns)}): "
        f"the {len(given)} captures are read in the order of their first packets, not as given"
    )
    return CaptureWarning(early, None, None, message, kind="reordered")


#: a file read: (its name, its first packet's time, its latest packet's time)
Span = tuple[str, int, int]


def batch_times(batch: FrameBatch) -> tuple[int, int] | None:
    """(first, latest) packet time of a batch (None: no packet in it, records only)."""
    ts = batch.ts_ns[batch.linktype != LT_RECORD]
    return (int(ts[0]), int(np.max(ts))) if ts.size else None


def overlaps(spans: Sequence[Span]) -> list[CaptureWarning]:
    """Files read one after another (``spans``, in reading order) that were taken at the
    same time (two interfaces, two hosts) or given out of order: a connection in both is
    not joined packet by packet. One warning (or none) names the first such file and counts
    the rest."""
    back: list[tuple[str, int, str, int]] = []  # (file, its first, the file ahead, its last)
    prev_name, prev = "", None  # the file with the latest packet so far, and its time
    for name, first, latest in spans:
        if prev is not None and first < prev - OVERLAP_SLACK_NS:
            back.append((name, first, prev_name, prev))
        if prev is None or latest > prev:
            prev_name, prev = name, latest
    if not back:
        return []
    name, first, ahead, last = back[0]
    more = f" ({len(back) - 1} more files go back in time like it)" if len(back) > 1 else ""
    return [CaptureWarning(name, None, None, (
        f"its packets from {iso_ns(first)} go back before the last of {ahead} "
        f"({iso_ns(last)}), read ahead of it: files are read one after the other, not "
        "merged, so a connection in both is cut (taken at the same time? mergecap -w "
        f"merged.pcap merges them packet by packet; --group-by-dir keeps directories apart){more}"
    ), kind="overlap")]
