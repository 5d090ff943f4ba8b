"""Writing the flow table as CSV, TSV or JSON Lines straight from its columns.

``pcapip analyze --format csv`` is the fast path of the product: building
pandas frames (and importing pandas) would cost more than analysing a
million-packet capture, so the per-flow exports are written here with numpy:
CSV and JSON Lines a slice of rows at a time, column by column, as byte matrices
(``pcapip.report.cells``: no Python string per cell); TSV row by row.
``Analysis.to_csv``/``to_jsonl`` and ``pcapip.report.write`` (what ``pcapip analyze``
writes) use the same writers, so the CLI and the Python API produce identical files.
This module knows the flow table only: ``analysis`` imports it, never the reverse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import numpy as np

from pcapip.flows.columns import COLUMNS, of_kind
from pcapip.flows.packed import NO_IP, NULL
from pcapip.flows.table import FlowTable
from pcapip.report import cells

__all__ = ["tsv_lines", "write_csv", "write_jsonl", "write_tsv"]

_TIME_COLUMNS = of_kind("time")


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


def _picker(table: FlowTable, rows: Any) -> tuple[int, Any]:
    """(row count, slice(get, name, a, b)): rows ``a:b`` of the table, or of the chosen
    ``rows`` (sorted 0-based positions) when given, each through ``get(name, lo, hi)``."""
    if rows is None:
        return len(table), lambda get, c, a, b: get(c, a, b)

    def pick(get: Any, c: str, a: int, b: int) -> list[Any]:
        sel = rows[a:b]
        lo = int(sel[0])
        got = get(c, lo, int(sel[-1]) + 1)
        return [got[i] for i in (sel - lo).tolist()]

    return len(rows), pick


def _rows(table: FlowTable, rows: Any = None) -> Iterator[list[Any]]:
    """Rows as lists of Python values (times as ISO text), built a slice at a time."""
    get = table.columns.slice
    stamp = _Stamp()
    n, part = _picker(table, rows)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        data = [
            [stamp(v) for v in part(get, c, a, b)] if c in _TIME_COLUMNS else part(get, c, a, b)
            for c in COLUMNS
        ]
        rows = zip(*data, strict=True)
        del data
        yield from (list(r) for r in rows)


_QUOTE_IF = (",", '"', "\n", "\r")
_CHUNK = 8192  # rows built at a time as Python values (TSV)
_LINES = 1 << 14  # rows built at a time as text (CSV, JSON Lines): a slice fits the caches


def _cell(v: Any) -> str:
    """One CSV cell as csv.writer (QUOTE_MINIMAL) writes it."""
    if v is None:
        return ""
    s = v if isinstance(v, str) else str(v)
    if any(ch in s for ch in _QUOTE_IF):
        return '"' + s.replace('"', '""') + '"'
    return s


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


class _Spelling:
    """How one text format spells a cell: ``text`` a text value (quoted as the format
    quotes), ``quote`` what surrounds times and addresses, ``null`` a missing value;
    ``lead`` what comes before each column's cell on a line, ``end`` what ends a line."""

    def __init__(self, text: Any, quote: str, null: str, lead: list[str], end: str) -> None:
        self.text, self.quote, self.null, self.lead, self.end = text, quote, null, lead, end


_CSV = _Spelling(_cell, "", "", ["", *[","] * (len(COLUMNS) - 1)], "\n")
_JSONL = _Spelling(
    _json,
    '"',
    "null",
    [("{" if k == 0 else ", ") + _json(c) + ": " for k, c in enumerate(COLUMNS)],
    "}\n",
)


def _halves() -> tuple[np.ndarray, np.ndarray]:
    """'a.b' for each 16-bit a*256+b, as 8 bytes (uint64) and a length."""
    words = [f"{k >> 8}.{k & 255}".encode() for k in range(65536)]
    return (
        np.frombuffer(np.array(words, dtype="S8").tobytes(), dtype=np.uint64),
        np.fromiter(map(len, words), dtype=np.intp, count=65536),
    )


_HALVES: list[tuple[np.ndarray, np.ndarray]] = []


class _Lines:
    """The lines of a table's rows in one text format, a slice of rows at a time, built
    column by column (``pcapip.report.cells``): each distinct text spelled once, numbers,
    times and addresses by array arithmetic."""

    def __init__(self, table: FlowTable, rows: Any, sp: _Spelling) -> None:
        self.table, self.rows, self.sp = table, rows, sp
        self.n = len(table) if rows is None else len(rows)
        words = [sp.text(t).encode() for t in table.vocab.texts]
        self.texts = cells.table([*words, sp.null.encode()])  # code -1: the last

    def raw(self, name: str, a: int, b: int) -> tuple[str, np.ndarray]:
        if self.rows is None:
            return self.table.raw(name, a, b)
        sel = self.rows[a:b]
        lo = int(sel[0])
        kind, values = self.table.raw(name, lo, int(sel[-1]) + 1)
        return kind, values[sel - lo]

    def assigned(self, name: str, a: int, b: int) -> list[Any]:
        get = self.table.columns.slice
        if self.rows is None:
            return get(name, a, b)
        sel = self.rows[a:b]
        lo = int(sel[0])
        got = get(name, lo, int(sel[-1]) + 1)
        return [got[i] for i in (sel - lo).tolist()]

    def __iter__(self) -> Iterator[bytes]:
        """The lines of a slice of rows at a time, as UTF-8."""
        sp = self.sp
        for a in range(0, self.n, _LINES):
            b = min(self.n, a + _LINES)
            pieces: list[cells.Piece] = []
            for lead, c in zip(sp.lead, COLUMNS, strict=True):
                pieces.append(cells.const(lead))
                pieces.extend(self.column(c, a, b))
            pieces.append(cells.const(sp.end))
            yield cells.lines(pieces, b - a)

    def column(self, name: str, a: int, b: int) -> list[cells.Piece]:
        """Rows ``a:b`` of one column as pieces."""
        sp = self.sp
        if name in self.table.columns.assigned:  # a caller's list: any Python values
            values = self.assigned(name, a, b)
            if name in _TIME_COLUMNS:
                stamp = _Stamp()
                values = [stamp(v) for v in values]
            return [cells.spelled(values, lambda v: sp.null if v is None else sp.text(v))]
        kind, values = self.raw(name, a, b)
        if kind == "text":
            return [cells.gather(self.texts, np.where(values < 0, len(self.texts) - 1, values))]
        if kind == "ip":
            return self.addresses(values)
        null = values == NULL
        have = ~null
        if name in _TIME_COLUMNS:
            out = self.stamps(np.where(null, 0, values), have)
        else:
            out = [p.only(have) for p in cells.digits(np.where(null, 0, values))]
        return out + self.missing(null)

    def missing(self, null: np.ndarray) -> list[cells.Piece]:
        if not self.sp.null or not null.any():
            return []
        return [cells.const(self.sp.null).only(null)]

    def stamps(self, ns: np.ndarray, have: np.ndarray) -> list[cells.Piece]:
        """ISO 8601 UTC with nanoseconds, as ``np.datetime_as_string`` spells them."""
        q = self.sp.quote
        sec = ns // 1_000_000_000
        secs, inv = np.unique(sec, return_inverse=True)
        text = np.datetime_as_string(secs.astype("datetime64[s]"), unit="s")
        prefix = cells.gather(cells.table([(q + t + ".").encode() for t in text.tolist()]), inv)
        frac = cells.digits(ns - sec * 1_000_000_000, width=9)
        return [p.only(have) for p in (prefix, *frac, cells.const("Z" + q))]

    def addresses(self, codes: np.ndarray) -> list[cells.Piece]:
        """IPv4 values in dotted text, address texts from the vocabulary, missing ones."""
        q = self.sp.quote
        v4 = codes >= 0
        out: list[cells.Piece] = []
        if v4.any():
            if not _HALVES:
                _HALVES.append(_halves())
            words, lens = _HALVES[0]
            hi = np.where(v4, codes >> 16, 0)
            lo = np.where(v4, codes & 0xFFFF, 0)
            out += [
                cells.const(q),
                cells.Piece(words[hi].view(np.uint8).reshape(-1, 8), lens[hi]),
                cells.const("."),
                cells.Piece(words[lo].view(np.uint8).reshape(-1, 8), lens[lo]),
                cells.const(q),
            ]
            out = [p.only(v4) for p in out]
        named = codes < NO_IP
        if named.any():
            out.append(cells.gather(self.texts, np.where(named, -2 - codes, 0)).only(named))
        return out + self.missing(codes == NO_IP)


def write_csv(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as CSV: a header line, empty cells for missing values.

    Written a slice of rows at a time, column by column: the text of a whole table
    never exists at once. The bytes are those of the csv module's minimal quoting
    (a test checks it). ``rows``: only these table rows (sorted 0-based positions,
    as ``Analysis.filter`` selects them).
    """
    fh.write(",".join(COLUMNS) + "\n")
    _put(fh, _Lines(table, rows, _CSV))


def write_jsonl(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as JSON Lines: one object per flow, null for missing values
    (the text ``json.dumps`` gives each row's dict, built column by column as for CSV)."""
    _put(fh, _Lines(table, rows, _JSONL))


def _put(fh: IO[str], lines: Iterable[bytes]) -> None:
    """UTF-8 lines into a text file: straight into its bytes when it has them."""
    raw = getattr(fh, "buffer", None)
    if raw is not None and (getattr(fh, "encoding", "") or "").lower().replace("-", "") == "utf8":
        fh.flush()
        for data in lines:
            raw.write(data)
        raw.flush()
        return
    for data in lines:
        fh.write(data.decode("utf-8"))


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_lines(rows: Iterable[Iterable[Any]], fh: IO[str]) -> None:
    """Tab-separated lines; a missing value is an empty cell (see pcapip.report.formats)."""
    for r in rows:
        fh.write("\t".join("" if v is None else str(v).translate(_TSV_ESCAPES) for v in r))
        fh.write("\n")


def write_tsv(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as TSV: the CSV's header and cells, tab-separated and escaped;
    ``rows`` as for write_csv."""
    tsv_lines([COLUMNS], fh)
    tsv_lines(_rows(table, rows), fh)
