"""Logs that name their own fields: JSON Lines (one object a line) and CSV with a header.

Fields keep their names and the order they first appear in; a nested value (a JSON object
or list) is kept as its JSON text, a field a record lacks is empty. ``a.b`` names a field
inside a nested object, for ``--ip-field`` and friends.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from pcapip.resolve.lines import Parsed


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return str(v)


def _flat(obj: dict[str, Any], wanted: Iterable[str]) -> dict[str, Any]:
    """``obj`` with each dotted name in ``wanted`` looked up inside nested objects."""
    out = dict(obj)
    for name in wanted:
        if name in out or "." not in name:
            continue
        cur: Any = obj
        for part in name.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            out[name] = cur
    return out


def from_dicts(numbered: Iterable[tuple[int, dict[str, Any] | str]], wanted: Iterable[str]) -> Parsed:
    """Records from (line number, object, or the reason it is none) pairs. The columns grow
    record by record (a field first met late is None before), so no record's object is kept:
    a million parsed JSON objects held to the end cost more than their values."""
    wanted = [w for w in wanted if w]
    out = Parsed({}, np.zeros(0, np.int64))
    columns: dict[str, list[str | None]] = {}
    numbers: list[int] = []
    n = 0
    for number, obj in numbered:
        if isinstance(obj, str):
            out.reject(number, obj, "")
            continue
        flat = _flat(obj, wanted)
        for k, v in flat.items():
            col = columns.get(k)
            if col is None:
                col = columns[k] = [None] * n
            col.append(_text(v))
        n += 1
        if len(flat) < len(columns):  # fields this record lacks
            for col in columns.values():
                if len(col) < n:
                    col.append(None)
        numbers.append(number)
    out.line_numbers = np.array(numbers, dtype=np.int64)
    out.fields = {k: text_column(v) for k, v in columns.items()}
    return out


def text_column(values: list[str | None]) -> pa.ChunkedArray:
    """Python texts (None: missing) as an Arrow text column, as the pattern readers give."""
    return pa.chunked_array([pa.array(values, type=pa.large_string())])


def jsonl(numbered: Iterable[tuple[int, str]], wanted: Iterable[str]) -> Parsed:
    """JSON Lines: a line that is no JSON object is counted and quoted, blank lines skipped."""
    texts: dict[int, str] = {}

    def objects() -> Iterable[tuple[int, dict[str, Any] | str]]:
        for number, text in numbered:
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                texts[number] = text
                yield number, f"not JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict):
                texts[number] = text
                yield number, "not a JSON object"
                continue
            yield number, obj

    out = from_dicts(objects(), wanted)
    out.examples = [(n, why, texts.get(n, "")[:200]) for n, why, _ in out.examples]
    return out


def csv_rows(numbered: Iterable[tuple[int, str]], wanted: Iterable[str]) -> Parsed:
    """CSV whose first line names the fields; a row with the wrong number of cells is
    counted and quoted. (A quoted cell spanning lines is not supported: one record a line.)"""
    it = iter(numbered)
    header: list[str] | None = None
    texts: dict[int, str] = {}

    def objects() -> Iterable[tuple[int, dict[str, Any] | str]]:
        nonlocal header
        for number, text in it:
            if not text.strip():
                continue
            try:
                cells = next(csv.reader([text]))
            except csv.Error as exc:
                texts[number] = text
                yield number, f"not CSV ({exc})"
                continue
            if header is None:
                header = cells
                continue
            if len(cells) != len(header):
                texts[number] = text
                yield number, f"{len(cells)} cells, the header has {len(header)}"
                continue
            yield number, {k: (v if v != "" else None) for k, v in zip(header, cells, strict=True)}

    out = from_dicts(objects(), wanted)
    if header is not None:  # every header field is a column, even one always empty
        for name in header:
            out.fields.setdefault(name, text_column([None] * len(out)))
    out.examples = [(n, why, texts.get(n, "")[:200]) for n, why, _ in out.examples]
    return out
