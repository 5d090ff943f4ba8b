"""A resolved log written as CSV, JSON Lines or a terminal table, records in log order."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from pcapip.resolve.columns import ADDED_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


def write_csv(df: pd.DataFrame, out: IO[str]) -> None:
    """CSV with a header; empty cells for missing values; as the csv module writes it
    (quoted only where a cell holds a comma, a quote or a newline), but a column at a
    time: the csv module's cell-by-cell loop was half the time of resolving a 1M-line log."""
    import csv

    from pcapip.flows.run import collector_off

    w = csv.writer(out, lineterminator="\n")
    w.writerow(df.columns)
    with collector_off():  # (see :func:`pcapip.resolve.logs.load`)
        for part in _slices(df):
            if len(df.columns) < 2:  # a lone empty cell is written "": the csv module's way
                w.writerows(zip(*_cells(part), strict=True))
                continue
            texts = [_csv_texts(part[c]) for c in part.columns]
            out.write("\n".join(map(",".join, zip(*texts, strict=True))))
            out.write("\n" if len(part) else "")


def _needs_quotes(text: str) -> bool:
    """What makes the csv module (``QUOTE_MINIMAL``, ``lineterminator="\\n"``) quote a cell:
    a comma, a quote or a newline (``tests/test_resolve_cli.py`` holds it to the module)."""
    return "," in text or '"' in text or "\n" in text


def _csv_cell(v: Any) -> str:
    """One value as the csv module writes it: None empty, else its text, quoted (inner
    quotes doubled) when needed."""
    text = "" if v is None else v if type(v) is str else str(v)
    return '"' + text.replace('"', '""') + '"' if _needs_quotes(text) else text


def _csv_texts(col: pd.Series) -> list[str]:
    """A column's cells as CSV text: text fields tested all at once and quoted only if one
    needs it; integer, categorical and string columns written once per distinct value."""
    import pandas as pd
    from pandas.api.types import is_integer_dtype, is_string_dtype

    if col.dtype == object:
        values = col.tolist()
        try:
            text = "".join(values)
        except TypeError:  # not text alone: missing values, numbers
            return list(map(_csv_cell, _plain_list(col)))
        return list(map(_csv_cell, values)) if _needs_quotes(text) else values
    if is_integer_dtype(col.dtype) or is_string_dtype(col.dtype) or isinstance(
        col.dtype, pd.CategoricalDtype
    ):
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        texts = [*map(_csv_cell, _plain_list(pd.Series(uniques))), ""]
        return np.array(texts, dtype=object)[codes].tolist()  # code -1 picks the trailing ""
    return list(map(_csv_cell, _plain_list(col)))


#: rows converted to Python values at a time: a million records' cells at once would
#: cost more memory than the records themselves
SLICE = 100_000


def _slices(df: pd.DataFrame) -> list[pd.DataFrame]:
    return [df.iloc[i:i + SLICE] for i in range(0, len(df), SLICE)]


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
