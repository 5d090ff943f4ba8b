"""A resolved log written as CSV, JSON Lines or a terminal table, records in log order."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pcapip.resolve.columns import ADDED_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


def write_csv(df: pd.DataFrame, out: IO[str]) -> None:
    """CSV with a header; empty cells for missing values; as the csv module writes it
    (quoted only where a cell holds a comma, a quote or a newline), but a column at a time
    in Arrow: each column's cells as one text array, rows joined element-wise."""
    import csv

    import pyarrow.compute as pc

    from pcapip.flows.run import collector_off

    w = csv.writer(out, lineterminator="\n")
    w.writerow(df.columns)
    with collector_off():  # (see :func:`pcapip.resolve.logs.load`)
        for part in _slices(df):
            if len(df.columns) < 2:  # a lone empty cell is written "": the csv module's way
                w.writerows(zip(*_cells(part), strict=True))
                continue
            cells = [_csv_texts(part[c]).cast(pa.string()) for c in part.columns]
            rows = pc.binary_join_element_wise(*cells, ",", null_handling="replace")
            for chunk in pc.binary_join_element_wise(rows, "", "\n").chunks:
                out.write(_text_of(chunk))


def _text_of(texts: pa.Array) -> str:
    """An Arrow text array's values one after the other."""
    return str(_bytes_of(texts), "utf-8") if len(texts) else ""


def _bytes_of(texts: pa.Array) -> memoryview:
    """The bytes of a non-empty Arrow text array's values, one after the other (its data
    between the offsets of its first and past its last value)."""
    wide = pa.types.is_large_string(texts.type)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64 if wide else np.int32)
    lo, hi = int(offsets[texts.offset]), int(offsets[texts.offset + len(texts)])
    return memoryview(texts.buffers()[2])[lo:hi]


def _q(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _has_any(text: pa.ChunkedArray, chars: bytes) -> bool:
    """Whether any value of an Arrow text column holds one of the ASCII ``chars``."""
    for chunk in text.chunks:
        if len(chunk) == 0:
            continue
        data = np.frombuffer(_bytes_of(chunk), dtype=np.uint8)
        if any((data == c).any() for c in chars):
            return True
    return False


def _needs_quotes(text: str) -> bool:
    """What makes the csv module (``QUOTE_MINIMAL``, ``lineterminator="\\n"``) quote a cell:
    a comma, a quote or a newline (``tests/test_resolve_cli.py`` holds it to the module)."""
    return "," in text or '"' in text or "\n" in text


#: :func:`_needs_quotes` as a pattern (RE2 and Python's ``re`` read it alike)
NEEDS_QUOTES = '[,"\n]'


def _csv_cell(v: Any) -> str:
    """One value as the csv module writes it: None empty, else its text, quoted (inner
    quotes doubled) when needed."""
    text = "" if v is None else v if type(v) is str else str(v)
    return '"' + text.replace('"', '""') + '"' if _needs_quotes(text) else text


def _csv_texts(col: pd.Series) -> pa.ChunkedArray:
    """A column's cells as CSV text (Arrow large strings, none missing): Arrow text quoted
    column-wise where needed; integer, categorical and other string columns written once
    per distinct value; other values one by one."""
    import pandas as pd
    import pyarrow.compute as pc
    from pandas.api.types import is_integer_dtype, is_string_dtype

    from pcapip.resolve.times import arrow_text

    text = arrow_text(col)
    if text is not None:
        text = pc.fill_null(text.cast(pa.large_string()), "")
        if not _has_any(text, b',"\n'):  # (a look at the bytes: no cell needs quotes)
            return text
        needs = pc.match_substring_regex(text, NEEDS_QUOTES)
        quoted = pc.binary_join_element_wise(_q('"'), pc.replace_substring(text, '"', '""'),
                                             _q('"'), _q(""))
        return pc.if_else(needs, quoted, text)
    if is_integer_dtype(col.dtype) or is_string_dtype(col.dtype) or isinstance(
        col.dtype, pd.CategoricalDtype
    ):
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        texts = pa.array([*map(_csv_cell, _plain_list(pd.Series(uniques))), ""], pa.large_string())
        return pa.chunked_array([texts.take(pa.array(np.where(codes < 0, len(texts) - 1, codes)))])
    return pa.chunked_array([pa.array(list(map(_csv_cell, _plain_list(col))), pa.large_string())])


#: rows written at a time: a million records' cells at once would cost more memory than
#: the records themselves; and at most ``SLICE_BYTES`` of text (32-bit Arrow offsets)
SLICE = 100_000
SLICE_BYTES = 1 << 28


def _slices(df: pd.DataFrame) -> list[pd.DataFrame]:
    """``df`` cut into runs of at most ``SLICE`` rows and about ``SLICE_BYTES`` of text."""
    import pyarrow.compute as pc

    from pcapip.resolve.times import arrow_text

    size = np.zeros(len(df), dtype=np.int64)
    for c in df.columns:
        text = arrow_text(df[c])
        if text is not None:
            size += pc.fill_null(pc.binary_length(text), 0).to_numpy()
    ends = np.cumsum(size + 24 * len(df.columns))  # (24 bytes: a number, quotes, a comma)
    cuts, start = [], 0
    while start < len(df):
        stop = min(start + SLICE, int(np.searchsorted(ends, ends[start] - size[start]
                                                             - 24 * len(df.columns) + SLICE_BYTES)))
        stop = max(stop, start + 1)
        cuts.append(df.iloc[start:stop])
        start = stop
    return cuts


def _cells(df: pd.DataFrame) -> list[list[Any]]:
    """Each column as a list of plain values, None where missing."""
    return [_plain_list(df[c]) for c in df.columns]


def _plain_list(col: pd.Series) -> list[Any]:
    """A column as plain values: a log's own text fields as they are when every one is a
    str (nothing missing; one typed scan instead of pandas' test for every kind of NA)."""
    if _all_str(col):
        return col.tolist()
    return col.astype(object).where(col.notna(), None).tolist()


def _all_str(col: pd.Series) -> bool:
    from pandas.api.types import infer_dtype

    return col.dtype == object and infer_dtype(col, skipna=False) == "string"


def write_jsonl(df: pd.DataFrame, out: IO[str]) -> None:
    """One JSON object per record; null for missing values, numbers for the added counts."""
    from pcapip.flows.run import collector_off

    cols = list(df.columns)
    dumps = json.dumps
    with collector_off():  # (see :func:`pcapip.resolve.logs.load`)
        for part in _slices(df):
            for row in zip(*_cells(part), strict=True):
                out.write(dumps(dict(zip(cols, map(_plain, row), strict=True)), ensure_ascii=False))
                out.write("\n")


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return str(v)


def write_table(df: pd.DataFrame, out: IO[str], shown: list[str], max_rows: int) -> None:
    """A Rich table of the ``shown`` own fields and the added columns (``max_rows`` 0: all)."""
    from rich.console import Console
    from rich.table import Table

    cols = [c for c in shown if c in df.columns] + list(ADDED_COLUMNS)
    table = Table(*cols, box=None, header_style="bold", pad_edge=False)
    rows = df if not max_rows else df.head(max_rows)
    data = [rows[c].astype(object).where(rows[c].notna(), "").tolist() for c in cols]
    for row in zip(*data, strict=True):
        table.add_row(*(str(v) for v in row))
    console = Console(file=out, width=max(160, Console().width), soft_wrap=False)
    console.print(table)
    if max_rows and len(df) > max_rows:
        console.print(f"… {len(df) - max_rows} more records (--max-rows 0 shows all)")
