"""Writing the flow table as CSV, TSV or JSON Lines straight from its columns.

``pcapip analyze --format csv`` is the fast path of the product: building
pandas frames (and importing pandas) would cost more than analysing a
million-packet capture, so the per-flow exports are written here from the packed
columns: CSV, TSV and JSON Lines a block of rows at a time by one compiled loop
(``pcapip.report.textkernel``: no Python string per cell).
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
from pcapip.flows.packed import NO_IP
from pcapip.flows.table import FlowTable
from pcapip.report import textkernel
from pcapip.sources import accel

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


_QUOTE_IF = (",", '"', "\n", "\r")
_LINES = 1 << 15  # rows written at a time as text (CSV, JSON Lines)
# rows worth loading numba's JIT for (with current ahead-of-time kernels: always compiled);
# the loop's pure twin writes ~6,000 rows a second
_COMPILE_ROWS = 2_000


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


class _Lines:
    """The lines of a table's rows in one text format, a block of rows at a time, written
    by one compiled loop (``pcapip.report.textkernel``): every text spelled once in
    Python, numbers, times and addresses by the loop."""

    def __init__(self, table: FlowTable, rows: Any, sp: _Spelling) -> None:
        self.table, self.rows, self.sp = table, rows, sp
        self.n = len(table) if rows is None else len(rows)
        # the vocabulary spelled for this format; the last word: a missing value
        self.words = [*(sp.text(t).encode() for t in table.vocab.texts), sp.null.encode()]
        self.base = _word_table(self.words)
        self.widths = np.diff(self.base[1])  # each word's bytes
        seps = [s.encode() for s in (*sp.lead, sp.end)]
        self.seps = _word_table(seps)
        self.sep_bytes = sum(map(len, seps))
        self.quote = np.frombuffer(sp.quote.encode(), dtype=np.uint8).copy()
        self.backend = accel.choose(
            None, want_compiled=accel.compiled_cheap() or self.n >= _COMPILE_ROWS
        )
        self.buf = np.empty(0, dtype=np.uint8)

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

    def __iter__(self) -> Iterator[bytes | memoryview]:
        """The lines of a block of rows at a time, as UTF-8 (a view of a buffer that the
        next block overwrites)."""
        for a in range(0, self.n, _LINES):
            yield self.block(a, min(self.n, a + _LINES))

    def block(self, a: int, b: int) -> memoryview:
        vals = np.empty((len(COLUMNS), b - a), dtype=np.int64)
        kinds = np.empty(len(COLUMNS), dtype=np.int64)
        extra: list[bytes] = []  # words of a caller's columns, after the vocabulary's
        width = self.sep_bytes
        for c, name in enumerate(COLUMNS):
            kinds[c], w = self.column(name, a, b, vals[c], extra)
            width += w
        words = self.base if not extra else _word_table(self.words[:-1] + extra + self.words[-1:])
        need = width * (b - a)
        if self.buf.size < need:
            self.buf = np.empty(need, dtype=np.uint8)
        k = textkernel.text_lines.run(self.backend, vals, kinds, words, self.seps, self.quote, self.buf)
        return memoryview(self.buf)[:k]

    def column(
        self, name: str, a: int, b: int, into: np.ndarray, extra: list[bytes]
    ) -> tuple[int, int]:
        """Rows ``a:b`` of one column into ``into`` (int64); (its kind for the loop, the most
        bytes one of its cells takes)."""
        sp = self.sp
        null = len(self.words[-1])
        widths = self.widths
        if name in self.table.columns.assigned:  # a caller's list: any Python values
            values = self.assigned(name, a, b)
            if name in _TIME_COLUMNS:
                stamp = _Stamp()
                values = [stamp(v) for v in values]
            first = len(self.words) - 1 + len(extra)
            spelled = _spelled(values, lambda v: sp.null if v is None else sp.text(v))
            into[:] = spelled[1] + first
            extra.extend(spelled[0])
            return textkernel.K_WORD, max(map(len, spelled[0]), default=0)
        kind, values = self.raw(name, a, b)
        into[:] = values
        quoted = 2 * len(sp.quote)
        if kind == "text":
            used = values[values >= 0]
            return textkernel.K_WORD, max(null, _longest(widths, used))
        if kind == "ip":
            used = -2 - values[values < NO_IP]
            return textkernel.K_IP, max(null, 15 + quoted, _longest(widths, used))
        if name in _TIME_COLUMNS:
            return textkernel.K_TIME, max(null, 30 + quoted)
        return textkernel.K_INT, max(null, 20)


def _word_table(words: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Words as the loop reads them: (their bytes end to end, where each starts and, last,
    where the last ends)."""
    at = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=at[1:])
    return np.frombuffer(b"".join(words), dtype=np.uint8).copy(), at


def _longest(widths: np.ndarray, codes: np.ndarray) -> int:
    """The most bytes among the words ``codes`` (``widths``: each word's bytes)."""
    if codes.size == 0:
        return 0
    return int(widths[codes].max())


def _spelled(items: list[Any], spell: Any) -> tuple[list[bytes], np.ndarray]:
    """Any Python values as (distinct words, each value's word), each distinct value
    spelled once by ``spell``."""
    known: dict[Any, int] = {}
    words: list[bytes] = []
    codes = np.empty(len(items), dtype=np.int64)
    for k, v in enumerate(items):
        try:
            key: Any = (type(v), v)  # (1, 1.0 and True spell differently)
            c = known.get(key)
        except TypeError:  # unhashable: spelled on its own
            key, c = None, None
        if c is None:
            c = len(words)
            words.append(spell(v).encode())
            if key is not None:
                known[key] = c
        codes[k] = c
    return words, codes


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


def _put(fh: IO[str], lines: Iterable[bytes | memoryview]) -> None:
    """UTF-8 lines into a text file: straight into its bytes when it has them."""
    raw = getattr(fh, "buffer", None)
    if raw is not None and (getattr(fh, "encoding", "") or "").lower().replace("-", "") == "utf8":
        fh.flush()
        for data in lines:
            raw.write(data)
        raw.flush()
        return
    for data in lines:
        fh.write(bytes(data).decode("utf-8"))


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_lines(rows: Iterable[Iterable[Any]], fh: IO[str]) -> None:
    """Tab-separated lines; a missing value is an empty cell (see pcapip.report.formats)."""
    for r in rows:
        fh.write("\t".join("" if v is None else str(v).translate(_TSV_ESCAPES) for v in r))
        fh.write("\n")


def _tsv(v: Any) -> str:
    return str(v).translate(_TSV_ESCAPES)


_TSV = _Spelling(_tsv, "", "", ["", *["\t"] * (len(COLUMNS) - 1)], "\n")


def write_tsv(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as TSV: the CSV's header and cells, tab-separated and escaped
    (as :func:`tsv_lines` writes any rows); ``rows`` as for write_csv."""
    tsv_lines([COLUMNS], fh)
    _put(fh, _Lines(table, rows, _TSV))
