"""A resolved log written as CSV, JSON Lines or a terminal table, records in log order."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from pcapip.resolve.columns import ADDED_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


def write_csv(df: pd.DataFrame, out: IO[str]) -> None:
    """CSV with a header; empty cells for missing values (the csv module: on a log's
    millions of text cells twice as fast as ``DataFrame.to_csv``)."""
    import csv

    w = csv.writer(out, lineterminator="\n")
    w.writerow(df.columns)
    for part in _slices(df):
        w.writerows(zip(*_cells(part), strict=True))


#: rows converted to Python values at a time: a million records' cells at once would
#: cost more memory than the records themselves
SLICE = 100_000


def _slices(df: pd.DataFrame) -> list[pd.DataFrame]:
    return [df.iloc[i:i + SLICE] for i in range(0, len(df), SLICE)]


def _cells(df: pd.DataFrame) -> list[list[Any]]:
    """Each column as a list of plain values, None where missing."""
    return [df[c].astype(object).where(df[c].notna(), None).tolist() for c in df.columns]


def write_jsonl(df: pd.DataFrame, out: IO[str]) -> None:
    """One JSON object per record; null for missing values, numbers for the added counts."""
    cols = list(df.columns)
    dumps = json.dumps
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
