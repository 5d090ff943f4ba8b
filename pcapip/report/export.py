"""Writing the flow table as CSV or JSON Lines straight from its columns.

``pcapip analyze --format csv`` is the fast path of the product: building
pandas frames (and importing pandas) would cost more than analysing a
million-packet capture, so the per-flow exports are written here with the
standard library. ``Analysis.to_csv``/``to_jsonl`` use the same writers, so the
CLI and the Python API produce identical files.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from typing import IO, Any

from pcapip.flows.table import COLUMNS, FlowTable

_TIME_COLUMNS = ("start", "end")


class _Stamp:
    """ISO 8601 UTC text for integer nanoseconds, caching the per-second prefix."""

    def __init__(self) -> None:
        self.sec: int | None = None
        self.prefix = ""

    def __call__(self, ns: int | None) -> str | None:
        if ns is None:
            return None
        sec, frac = divmod(ns, 1_000_000_000)
        if sec != self.sec:
            self.sec = sec
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self.prefix}.{frac:09d}Z"


def _rows(table: FlowTable) -> Iterator[list[Any]]:
    cols = table.columns
    stamp = _Stamp()
    starts = [stamp(v) for v in cols["start"]]
    ends = [stamp(v) for v in cols["end"]]
    data = [starts if c == "start" else ends if c == "end" else cols[c] for c in COLUMNS]
    return (list(r) for r in zip(*data, strict=True))


def write_csv(table: FlowTable, fh: IO[str]) -> None:
    """The documented schema as CSV: a header line, empty cells for missing values."""
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in _rows(table):
        w.writerow(["" if v is None else v for v in r])


def write_jsonl(table: FlowTable, fh: IO[str]) -> None:
    """The documented schema as JSON Lines: one object per flow, null for missing values."""
    dumps = json.dumps
    for r in _rows(table):
        fh.write(dumps(dict(zip(COLUMNS, r, strict=True)), ensure_ascii=False))
        fh.write("\n")
