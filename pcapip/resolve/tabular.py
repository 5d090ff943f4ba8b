"""Logs that name their own fields: JSON Lines (one object a line) and CSV with a header.

Fields keep their names and the order they first appear in; a nested value (a JSON object
or list) is kept as its JSON text, a field a record lacks is empty. ``a.b`` names a field
inside a nested object, for ``--ip-field`` and friends.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from itertools import chain, repeat
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


#: records gathered before their fields are added to the columns
BATCH = 1 << 16


class Columns:
    """Records' fields as columns, named in the order first met (a field first met late is
    None before), grown a batch of records at a time: each field taken from the batch's
    objects at once (no loop over every record's fields in Python), no batch kept once
    added. Readers give it each record (:meth:`add`)."""

    def __init__(self, wanted: Iterable[str]) -> None:
        self.dotted = [w for w in wanted if w and "." in w]
        self.columns: dict[str, list[Any]] = {}
        self.numbers: list[int] = []
        self.batch: list[dict[str, Any]] = []

    def add(self, number: int, obj: dict[str, Any]) -> None:
        """Record ``obj`` of line ``number``; its batch is added to the columns when full."""
        self.batch.append(obj)
        self.numbers.append(number)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        flats = [_flat(o, self.dotted) for o in self.batch] if self.dotted else self.batch
        for k in dict.fromkeys(chain.from_iterable(flats)):
            if k not in self.columns:
                self.columns[k] = [None] * (len(self.numbers) - len(self.batch))
        for k, col in self.columns.items():
            col.extend(map(dict.get, flats, repeat(k)))
        self.batch.clear()

    def finish(self, out: Parsed) -> Parsed:
        """``out`` given the records' fields (as text) and line numbers."""
        self.flush()
        out.line_numbers = np.array(self.numbers, dtype=np.int64)
        out.fields = {k: text_column(_texts(v)) for k, v in self.columns.items()}
        return out


def from_dicts(
    numbered: Iterable[tuple[int, dict[str, Any] | tuple[str, str]]], wanted: Iterable[str]
) -> Parsed:
    """Records from (line number, object, or (why it is none, the line)) pairs."""
    out = Parsed({}, np.zeros(0, np.int64))
    cols = Columns(wanted)
    for number, obj in numbered:
        if isinstance(obj, tuple):
            out.reject(number, *obj)
            continue
        cols.add(number, obj)
    return cols.finish(out)


def _texts(values: list[Any]) -> list[str | None]:
    """:func:`_text` of every value, the common cases (all text, all numbers) without a
    call per value."""
    none = type(None)
    kinds = set(map(type, values))
    if kinds <= {str, none}:
        return values
    if kinds <= {int, none}:  # (ints alone: equal ones are one value, written once)
        memo: dict[Any, str | None] = {v: str(v) for v in set(values)}
        memo[None] = None
        return list(map(memo.__getitem__, values))
    if kinds <= {str, int, float, none}:
        return [None if v is None else str(v) for v in values]
    return list(map(_text, values))


def text_column(values: list[str | None]) -> pa.ChunkedArray:
    """Python texts (None: missing) as an Arrow text column, as the pattern readers give."""
    return pa.chunked_array([pa.array(values, type=pa.large_string())])


def jsonl(numbered: Iterable[tuple[int, str]], wanted: Iterable[str]) -> Parsed:
    """JSON Lines: a line that is no JSON object is counted and quoted, blank lines skipped."""
    out = Parsed({}, np.zeros(0, np.int64))
    cols = Columns(wanted)
    add = cols.add
    loads = json.loads
    # json.loads' own scanner, called without loads' checks around it; a line it does not
    # take whole (leading or trailing space, no JSON) goes to json.loads for its verdict
    scan = json.JSONDecoder().scan_once
    for number, text in numbered:
        try:
            obj, end = scan(text, 0)
        except (StopIteration, ValueError):
            end = -1
        if end != len(text):
            try:
                obj = loads(text)
            except ValueError as exc:
                if not text.strip():  # (no blank line is JSON: asked only when not)
                    continue
                out.reject(number, f"not JSON ({exc.msg})", text)
                continue
        if type(obj) is not dict:
            out.reject(number, "not a JSON object", text)
            continue
        add(number, obj)
    cols.finish(out)
    return out


def csv_rows(numbered: Iterable[tuple[int, str]], wanted: Iterable[str]) -> Parsed:
    """CSV whose first line names the fields; a row with the wrong number of cells is
    counted and quoted. (A quoted cell spanning lines is not supported: one record a line.)"""
    it = iter(numbered)
    header: list[str] | None = None

    def objects() -> Iterable[tuple[int, dict[str, Any] | tuple[str, str]]]:
        nonlocal header
        for number, text in it:
            if not text.strip():
                continue
            try:
                cells = next(csv.reader([text]))
            except csv.Error as exc:
                yield number, (f"not CSV ({exc})", text)
                continue
            if header is None:
                header = cells
                continue
            if len(cells) != len(header):
                yield number, (f"{len(cells)} cells, the header has {len(header)}", text)
                continue
            yield number, {k: (v if v != "" else None) for k, v in zip(header, cells, strict=True)}

    out = from_dicts(objects(), wanted)
    if header is not None:  # every header field is a column, even one always empty
        for name in header:
            out.fields.setdefault(name, text_column([None] * len(out)))
    return out
