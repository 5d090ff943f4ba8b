"""Writing the flow table as CSV, TSV or JSON Lines straight from its columns.

``pcapip analyze --format csv`` is the fast path of the product: building
pandas frames (and importing pandas) would cost more than analysing a
million-packet capture, so the per-flow exports are written here with the
standard library. ``Analysis.to_csv``/``to_jsonl`` use the same writers, so the
CLI and the Python API produce identical files. This module never imports
``analysis`` (which imports it): ``write_analysis`` is handed an Analysis. A file that cannot be written
is one PcapipError line, and a closed standard output (``| head``) is a
BrokenPipeError for every format, the table included (``pcapip.cli.main``
exits 0 on it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pcapip.errors import PcapipError
from pcapip.flows.columns import COLUMNS, of_kind
from pcapip.flows.packed import NULL
from pcapip.flows.table import FlowTable
from pcapip.report.formats import FORMATS

__all__ = ["FORMATS", "stdout_console", "write_analysis", "write_csv", "write_jsonl", "write_tsv"]

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


def _stamps(ns: list[int | None]) -> list[str | None]:
    """ISO 8601 UTC text with nanoseconds for a column of integer nanoseconds."""
    if not ns or None in ns:
        stamp = _Stamp()
        return [stamp(v) for v in ns]
    import numpy as np

    text = np.datetime_as_string(np.asarray(ns, dtype=np.int64).astype("datetime64[ns]"), unit="ns")
    return [t + "Z" for t in text.tolist()]


_QUOTE_IF = (",", '"', "\n", "\r")
_CHUNK = 8192  # rows encoded at a time


def _cell(v: Any) -> str:
    """One CSV cell as csv.writer (QUOTE_MINIMAL) writes it."""
    if v is None:
        return ""
    s = v if isinstance(v, str) else str(v)
    if any(ch in s for ch in _QUOTE_IF):
        return '"' + s.replace('"', '""') + '"'
    return s


_NONE = type(None)


def _cells(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types == {int}:
        return list(map(str, values))
    if types <= {int, _NONE}:
        return ["" if v is None else str(v) for v in values]
    if types <= {str, _NONE}:
        if _NONE in types:
            values = ["" if v is None else v for v in values]
        distinct = set(values)
        joined = "".join(distinct)
        if not any(ch in joined for ch in _QUOTE_IF):  # nothing to quote in the whole column
            return values
    else:
        distinct = set(values)
    enc = {v: _cell(v) for v in distinct}
    return [enc[v] for v in values]


class _Cells:
    """CSV cells straight from a table's stored columns: each text of the vocabulary is
    quoted once, numbers are formatted without going through None checks."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table
        self.vocab = table.vocab
        self._enc: list[str] = []

    def _encoded(self) -> list[str]:
        texts = self.vocab.texts
        if len(self._enc) != len(texts) + 1:
            self._enc = [_cell(t) for t in texts] + [""]  # code -1: missing
        return self._enc

    def __call__(self, name: str, lo: int, hi: int) -> list[str]:
        kind, values = self.table.raw(name, lo, hi)
        if kind == "text":
            enc = self._encoded()
            return [enc[c] for c in values.tolist()]
        if kind == "ip":
            return _cells(self.vocab.ip_decode(values))
        if values.size and (values == NULL).any():
            return ["" if v == NULL else str(v) for v in values.tolist()]
        return list(map(str, values.tolist()))


def write_csv(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as CSV: a header line, empty cells for missing values.

    Written a slice of rows at a time: the text of a whole table never exists at once.

    Cells are encoded column by column (each distinct text once) rather than
    row by row through ``csv.writer``; the bytes are the same as the csv
    module's minimal quoting (a test checks it). ``rows``: only these table rows
    (sorted 0-based positions, as ``Analysis.filter`` selects them).
    """
    cols = table.columns
    fh.write(",".join(COLUMNS) + "\n")
    n, part = _picker(table, rows)
    cells = _Cells(table)
    for a in range(0, n, _CHUNK):  # in slices, so the text never exists whole in memory
        b = min(n, a + _CHUNK)
        data = [
            _stamps(part(cols.slice, c, a, b))
            if c in _TIME_COLUMNS
            else _cells(part(cols.slice, c, a, b))
            if c in cols.assigned
            else part(cells, c, a, b)
            for c in COLUMNS
        ]
        text = "\n".join(map(",".join, zip(*data, strict=True)))
        del data  # (before the next slice is built: two slices are never alive at once)
        fh.write(text)
        fh.write("\n")
        del text


def write_jsonl(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as JSON Lines: one object per flow, null for missing values."""
    dumps = json.dumps
    for r in _rows(table, rows):
        fh.write(dumps(dict(zip(COLUMNS, r, strict=True)), ensure_ascii=False))
        fh.write("\n")


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _tsv_lines(rows: Iterable[Iterable[Any]], fh: IO[str]) -> None:
    """Tab-separated lines; a missing value is an empty cell (see pcapip.report.formats)."""
    for r in rows:
        fh.write("\t".join("" if v is None else str(v).translate(_TSV_ESCAPES) for v in r))
        fh.write("\n")


def write_tsv(table: FlowTable, fh: IO[str], rows: Any = None) -> None:
    """The documented schema as TSV: the CSV's header and cells, tab-separated and escaped;
    ``rows`` as for write_csv."""
    _tsv_lines([COLUMNS], fh)
    _tsv_lines(_rows(table, rows), fh)


def _csv_to_tsv(text: str, fh: IO[str]) -> None:
    """A summary frame's CSV (``--by egress|client``) as TSV, cell for cell."""
    _tsv_lines(csv.reader(io.StringIO(text)), fh)


def stdout_console(**kwargs: Any) -> Any:
    """A Rich Console on standard output for which a reader closing the pipe (``| head``)
    raises BrokenPipeError instead of Rich's ``SystemExit(1)``: 1 means findings."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipeConsole(**kwargs)


@contextlib.contextmanager
def _writing(output: str | os.PathLike[str]) -> Iterator[None]:
    """An output file that cannot be written is one line (exit 2), never a traceback."""
    try:
        yield
    except OSError as exc:
        raise PcapipError(f"cannot write {os.fspath(output)}: {exc.strerror or exc}") from None


def write_analysis(
    result: Any,
    fmt: str,
    output: str | os.PathLike[str] | None = None,
    *,
    by: str = "flow",
    max_rows: int = 500,
    explain: bool = False,
) -> None:
    """Write an analysis as ``pcapip analyze`` writes it (``pcapip live`` writes its summary
    the same way).

    ``result`` is an Analysis (``pcapip.analyze``); the per-flow CSV / TSV / JSON Lines are
    written from its table (its ``selection`` only), so they need neither pandas nor the
    frames. ``fmt`` is one of FORMATS; ``output`` None or "-" means standard output. A
    file that cannot be written raises PcapipError (one line).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if output is None or output == "-":
        _write(result, fmt, None, by, max_rows, explain)
        return
    with _writing(output):
        _write(result, fmt, output, by, max_rows, explain)


def _write(
    result: Any,
    fmt: str,
    output: str | os.PathLike[str] | None,
    by: str,
    max_rows: int,
    explain: bool,
) -> None:
    if fmt in ("csv", "tsv", "json") and by == "flow":
        write = {"csv": write_csv, "tsv": write_tsv, "json": write_jsonl}[fmt]
        if output is None:
            write(result.table, sys.stdout, result.selection)
            sys.stdout.flush()
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                write(result.table, fh, result.selection)
        return
    if fmt == "table":
        _write_table(result, output, by, max_rows, explain)
    elif fmt == "parquet":
        if output is None:
            buf = io.BytesIO()
            result.to_parquet(buf, by=by)
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        else:
            result.to_parquet(output, by=by)
    else:
        text = result.to_jsonl(by=by) if fmt == "json" else result.to_csv(by=by)
        with contextlib.ExitStack() as stack:
            fh = sys.stdout
            if output is not None:
                fh = stack.enter_context(open(output, "w", encoding="utf-8", newline=""))
            if fmt == "tsv":
                _csv_to_tsv(text or "", fh)
            else:
                fh.write(text or "")
            fh.flush()


def _write_table(
    result: Any, output: str | os.PathLike[str] | None, by: str, max_rows: int, explain: bool
) -> None:
    from rich.console import Console

    from pcapip.report.render import print_report

    if output is None:
        # a pipe has no width: a wide fixed layout, unless COLUMNS says how wide the reader is
        wide = sys.stdout.isatty() or os.environ.get("COLUMNS")
        console = stdout_console() if wide else stdout_console(width=160)
        print_report(result, console, by=by, max_rows=max_rows, explain=explain)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            console = Console(file=fh, width=200, no_color=True)
            print_report(result, console, by=by, max_rows=max_rows, explain=explain)
